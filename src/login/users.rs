//! The test users a run logs in as: the profile's first and second user, then `[[login.users]]`,
//! in that order (the pool), and the leases that keep cases running at once from logging in as
//! the same user.
//!
//! Why leases: one user logged in by two cases at once shares their grants, consents and
//! sessions at the AS, so a case that withdraws a grant or counts sessions could see another
//! case's. A case that may log in leases a user as it starts (and, when it needs a second
//! user, a second distinct one with it) and gives it back when it ends. With too few users there is no
//! waiting: a case that finds none free shares the default one (the first user, or for the
//! second role the second), exactly as runs did before pools existed.

use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// `[[login.users]]`: one more test user of the pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// A label for reports and `authconform login --user` (default: the username).
    pub name: Option<String>,
    pub username: String,
    /// Environment variable holding the user's password.
    pub password_env: Option<String>,
    /// Read from `password_env` when the profile loads.
    #[serde(skip)]
    pub password: Option<String>,
}

/// One user of the pool, as a login uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUser {
    /// `first`, `second`, or the `[[login.users]]` entry's name (else its username).
    pub label: String,
    pub username: String,
    pub password: Option<String>,
}

/// The users cases lease from, and which of them are leased now.
#[derive(Debug, Default)]
pub struct Leases {
    pool: Vec<PoolUser>,
    held: Arc<Mutex<Vec<bool>>>,
}

/// A user held for a case. Dropping it gives an exclusive lease back.
#[derive(Debug)]
pub struct Lease {
    pub index: usize,
    /// Leased for this case alone (false: the shared default, no user was free).
    pub exclusive: bool,
    held: Option<Arc<Mutex<Vec<bool>>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = &self.held {
            let mut held = h.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = held.get_mut(self.index) {
                *slot = false;
            }
        }
    }
}

impl Lease {
    /// A user chosen by name, not leased (`authconform login --user`).
    pub fn pinned(index: usize) -> Self {
        Lease {
            index,
            exclusive: false,
            held: None,
        }
    }
}

impl Leases {
    pub fn new(pool: Vec<PoolUser>) -> Self {
        let n = pool.len();
        Leases {
            pool,
            held: Arc::new(Mutex::new(vec![false; n])),
        }
    }

    pub fn pool(&self) -> &[PoolUser] {
        &self.pool
    }

    /// Leases `count` (1 or 2) distinct users at once: the lowest free indexes, so the same
    /// run order leases the same users. A role no free user is left for gets its default (the
    /// first user for the first role, the second for the second; never the user the first role
    /// got), shared with whoever else has it.
    pub fn lease(&self, count: usize) -> Vec<Lease> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Lease> = Vec::with_capacity(count);
        for role in 0..count.min(2) {
            let taken: Vec<usize> = out.iter().map(|l| l.index).collect();
            let free = (0..self.pool.len()).find(|&i| !held[i] && !taken.contains(&i));
            let lease = match free {
                Some(i) => {
                    held[i] = true;
                    Lease {
                        index: i,
                        exclusive: true,
                        held: Some(self.held.clone()),
                    }
                }
                None => {
                    let default = (role..self.pool.len())
                        .chain(0..role)
                        .find(|i| !taken.contains(i))
                        .unwrap_or(role);
                    Lease::pinned(default)
                }
            };
            out.push(lease);
        }
        out
    }

    /// The pool index of a user named on the command line: `first`, `second`, a label or a
    /// username.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.pool
            .iter()
            .position(|u| u.label == name)
            .or_else(|| self.pool.iter().position(|u| u.username == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Leases {
        Leases::new(
            (0..n)
                .map(|i| PoolUser {
                    label: format!("u{i}"),
                    username: format!("user{i}"),
                    password: None,
                })
                .collect(),
        )
    }

    #[test]
    fn cases_running_at_once_get_distinct_users_until_the_pool_runs_out() {
        let l = pool(3);
        let a = l.lease(1);
        let b = l.lease(2);
        assert_eq!((a[0].index, b[0].index, b[1].index), (0, 1, 2));
        assert!(a[0].exclusive && b[0].exclusive && b[1].exclusive);
        // None free: the shared defaults, still two distinct users for a two-user case.
        let c = l.lease(2);
        assert_eq!((c[0].index, c[1].index), (0, 1));
        assert!(!c[0].exclusive && !c[1].exclusive);
        // A lease given back is leased again, lowest first.
        drop(b);
        let d = l.lease(1);
        assert_eq!((d[0].index, d[0].exclusive), (1, true));
        drop(c);
        // The shared defaults were never held: giving them back freed nothing.
        let e = l.lease(1);
        assert_eq!((e[0].index, e[0].exclusive), (2, true));
    }

    #[test]
    fn the_second_role_never_gets_the_first_roles_user() {
        let l = pool(2);
        let _a = l.lease(1); // index 0 held
        let b = l.lease(2);
        // The first role got the free user 1; the second falls back, but not onto user 1.
        assert_eq!((b[0].index, b[1].index), (1, 0));
        assert!(b[0].exclusive && !b[1].exclusive);
        assert_eq!(l.find("u1"), Some(1));
        assert_eq!(l.find("user0"), Some(0));
        assert_eq!(l.find("nobody"), None);
    }
}
