//! `authconform login`: one login with the profile's driver, every step of it kept, so a user
//! can debug a profile in seconds instead of reading a whole run's report.

use super::{Error, Events, SetupOptions, TargetOptions};
use crate::runner::{self, LoginTrace};
use crate::spec::{Revision, SpecChoice};

/// What `authconform login` does.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    pub target: TargetOptions,
    /// `first`, `second`, a `[[login.users]]` name or a username (default: the first user).
    pub user: Option<String>,
}

/// Sets the target up as a run would (the built-in reference when none is named, the
/// profile's provisioning, the shared discovery), then logs one user in. `Err` is bad usage or
/// configuration; a login that fails is a [`LoginTrace`] whose `failed` says where.
pub async fn login(opts: LoginOptions, events: Events<'_>) -> Result<LoginTrace, Error> {
    let setup = SetupOptions {
        target: opts.target,
        documents: None,
        // Nothing is graded: detection would only log in once more.
        spec: SpecChoice::Fixed(Revision::FALLBACK),
        max_wait: None,
    };
    let prepared = super::prepare(&setup, events).await?;
    let user = match &opts.user {
        None => None,
        Some(name) => match prepared.env.users.find(name) {
            Some(i) => Some(i),
            None => {
                let known: Vec<String> = prepared
                    .env
                    .users
                    .pool()
                    .iter()
                    .map(|u| format!("{} ({})", u.label, u.username))
                    .collect();
                prepared.shutdown();
                return Err(Error(if known.is_empty() {
                    format!("--user {name:?}: the profile names no test users ([login] username)")
                } else {
                    format!(
                        "--user {name:?} is not a test user of the profile; it has: {}",
                        known.join(", ")
                    )
                }));
            }
        },
    };
    let trace = runner::login_trace(&prepared.env, user).await;
    prepared.shutdown();
    Ok(trace)
}
