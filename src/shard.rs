//! Sharding: one run split across machines (`run --shard K/N`, `fuzz --shard K/N`).
//!
//! Every machine computes the same partition from the same inputs (the selected cases and, when
//! given, the same timings file), whatever its `--concurrency`: nothing here reads the clock, the
//! machine or the flags beyond those.
//!
//! The unit of a run's partition is a **group** of cases that must stay together:
//! - the variants of one requirement (`<id>.<variant>` files share the requirement id): one
//!   requirement's verdicts are read together, and a variant file is never judged in a shard
//!   without its siblings;
//! - every `exclusive` case (a replayed code or refresh token, a withdrawn grant may make an AS
//!   revoke the test user's other grants): all of them in one group, so they still run one at a
//!   time after that shard's shared phase instead of on N machines at once.
//!
//! Nothing else couples cases across a run: clients registered and test users leased are a
//! shard's own, and the cross-checks (`after_others`) compare the metadata with the facts
//! published by the cases of their own shard plus their own probes (a sharded run says so in
//! their details).
//!
//! Balance is by expected duration, not by count: a shard's time is modelled as the longest
//! wait among its cases (cases that wait on purpose, for a code or token to expire, start first
//! and overlap the rest) or its other work spread over a nominal four parallel cases, whichever
//! is longer. Durations come from a previous run's `results.json` when one is given, else from
//! an estimate: a `wait` step's seconds, [`ESTIMATED_EXPIRY_WAIT`] for waits on an expiry the
//! case learns at run time, [`ESTIMATED_CASE`] for every other case. Groups are placed largest
//! first, each on the shard whose modelled time grows least (ties: the lower index).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::case::{Case, Step};

/// One share of N: `index` is 1-based, as written on the command line (`--shard 2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The largest N accepted: more shards than that is a typo, not a plan.
    pub const MAX_COUNT: usize = 1024;

    /// This share's residue among numbered items (fuzz case numbers): item `i` is this
    /// shard's when `i % count == index - 1`.
    pub fn residue(&self) -> u64 {
        (self.index - 1) as u64
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N` with 1 ≤ K ≤ N ≤ [`Shard::MAX_COUNT`].
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not K/N (e.g. 2/4: the second of four shares)"))?;
        let num = |x: &str, what: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?}: {what} {x:?} is not a whole number"))
        };
        let (index, count) = (num(k, "K")?, num(n, "N")?);
        if count == 0 || count > Self::MAX_COUNT {
            return Err(format!(
                "{s:?}: N must be between 1 and {}",
                Self::MAX_COUNT
            ));
        }
        if index == 0 || index > count {
            return Err(format!("{s:?}: K must be between 1 and N ({count})"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// An ordinary case's estimated duration, when no timings are given.
pub const ESTIMATED_CASE: Duration = Duration::from_secs(1);
/// The estimated wait of a case that waits for an expiry it learns at run time (a token's
/// `expires_in`, the profile's code lifetime or refresh idle time).
pub const ESTIMATED_EXPIRY_WAIT: Duration = Duration::from_secs(60);
/// The parallel cases the model spreads work over: a constant, so the partition does not
/// depend on any machine's `--concurrency`.
const NOMINAL_PARALLEL: f64 = 4.0;

/// A case's expected cost: time spent waiting on purpose (overlaps other cases) or working.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cost {
    wait: f64,
    work: f64,
}

impl Cost {
    fn add(self, o: Cost) -> Cost {
        Cost {
            wait: self.wait.max(o.wait),
            work: self.work + o.work,
        }
    }
    /// Modelled wall-clock seconds.
    fn time(self) -> f64 {
        self.wait.max(self.work / NOMINAL_PARALLEL)
    }
}

/// The group a case belongs to: all exclusive cases share one; others their requirement id.
pub fn group_key(case: &Case) -> String {
    if case.file.exclusive {
        // Not a requirement id (ids are lowercase with dashes and dots): no clash.
        "[exclusive]".into()
    } else {
        case.requirement().to_string()
    }
}

/// A case's estimated cost without measurements.
fn estimate(case: &Case) -> Cost {
    if !case.waits() {
        return Cost {
            wait: 0.0,
            work: ESTIMATED_CASE.as_secs_f64(),
        };
    }
    let fixed = case
        .file
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Wait(w) if w.until_expiry.is_none() && !w.cimd_cache => Some(w.secs as f64),
            _ => None,
        })
        .fold(0.0, f64::max);
    let learnt = case.file.steps.iter().any(|s| match s {
        Step::Wait(w) => w.until_expiry.is_some() || w.cimd_cache,
        Step::Check(_) => true,
        _ => false,
    });
    let wait = if learnt {
        fixed.max(ESTIMATED_EXPIRY_WAIT.as_secs_f64())
    } else {
        fixed
    };
    Cost {
        wait,
        work: ESTIMATED_CASE.as_secs_f64(),
    }
}

/// Measured durations by case id (from a previous run's `results.json`).
pub type Timings = BTreeMap<String, Duration>;

/// The indices (into `cases`) of the cases in `shard`, in their original order. `timings`
/// replaces the estimate of every case it names.
pub fn select(cases: &[Case], shard: Shard, timings: Option<&Timings>) -> Vec<usize> {
    let assignment = assign(cases, shard.count, timings);
    (0..cases.len())
        .filter(|&i| assignment[i] == shard.index - 1)
        .collect()
}

/// Each case's shard (0-based), for all `count` shards at once.
pub fn assign(cases: &[Case], count: usize, timings: Option<&Timings>) -> Vec<usize> {
    let count = count.max(1);
    let mut groups: BTreeMap<String, (Cost, Vec<usize>)> = BTreeMap::new();
    for (i, c) in cases.iter().enumerate() {
        let cost = match timings.and_then(|t| t.get(c.id())) {
            Some(d) if c.waits() => Cost {
                wait: d.as_secs_f64(),
                work: 0.0,
            },
            Some(d) => Cost {
                wait: 0.0,
                work: d.as_secs_f64(),
            },
            None => estimate(c),
        };
        let g = groups.entry(group_key(c)).or_default();
        g.0 = g.0.add(cost);
        g.1.push(i);
    }
    // Largest first; equal sizes in key order, so every machine places them alike.
    let mut order: Vec<(&String, &(Cost, Vec<usize>))> = groups.iter().collect();
    order.sort_by(|a, b| {
        b.1.0
            .time()
            .total_cmp(&a.1.0.time())
            .then_with(|| a.0.cmp(b.0))
    });
    let mut load = vec![Cost::default(); count];
    let mut out = vec![0; cases.len()];
    for (_, (cost, members)) in order {
        let best = (0..count)
            .min_by(|&a, &b| {
                let (na, nb) = (load[a].add(*cost).time(), load[b].add(*cost).time());
                na.total_cmp(&nb)
                    .then_with(|| (na - load[a].time()).total_cmp(&(nb - load[b].time())))
                    .then(a.cmp(&b))
            })
            .unwrap_or(0);
        load[best] = load[best].add(*cost);
        for &i in members {
            out[i] = best;
        }
    }
    out
}

/// The durations of a previous run's `results.json` (`--shard-timings`), by case id.
pub fn load_timings(path: &std::path::Path) -> Result<Timings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: crate::record::RunReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a results.json: {e}", path.display()))?;
    Ok(report
        .results
        .iter()
        .map(|r| (r.id.clone(), Duration::from_millis(r.duration_ms)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> Vec<Case> {
        crate::case::load_builtin(crate::checks::NAMES).expect("shipped cases load")
    }

    #[test]
    fn parses_k_of_n_and_names_what_is_wrong() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<Shard>(), Ok(Shard { index: 1, count: 1 }));
        for (bad, says) in [
            ("0/4", "K must be between 1 and N"),
            ("5/4", "K must be between 1 and N"),
            ("1/0", "N must be between 1"),
            ("4", "is not K/N"),
            ("a/4", "K \"a\""),
            ("1/4/2", "N \"4/2\""),
            ("-1/4", "K \"-1\""),
        ] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn every_case_is_in_exactly_one_shard_and_groups_stay_together() {
        let cases = cases();
        for n in [1, 2, 3, 4, 7] {
            let mut seen = vec![0; cases.len()];
            let mut shard_of_group: BTreeMap<String, usize> = BTreeMap::new();
            for k in 1..=n {
                for i in select(&cases, Shard { index: k, count: n }, None) {
                    seen[i] += 1;
                    let g = group_key(&cases[i]);
                    let prev = *shard_of_group.entry(g.clone()).or_insert(k);
                    assert_eq!(
                        prev, k,
                        "group {g} split across shards {prev} and {k} of {n}"
                    );
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "n={n}: {seen:?}");
        }
        // The groups that matter exist in the shipped cases, or the test above proves little.
        assert!(cases.iter().filter(|c| c.file.exclusive).count() >= 2);
        assert!(cases.iter().any(|c| c.id() != c.requirement()));
    }

    #[test]
    fn the_partition_is_balanced_by_expected_time() {
        let cases = cases();
        let n = 4;
        let a = assign(&cases, n, None);
        let mut load = vec![Cost::default(); n];
        for (i, c) in cases.iter().enumerate() {
            load[a[i]] = load[a[i]].add(estimate(c));
        }
        let times: Vec<f64> = load.iter().map(|c| c.time()).collect();
        let total = cases
            .iter()
            .fold(Cost::default(), |acc, c| acc.add(estimate(c)));
        // No shard is modelled slower than the longest single wait or an even share of the
        // work, plus one group's worth of slack.
        let bound = (total.work / NOMINAL_PARALLEL / n as f64).max(total.wait) + 5.0;
        assert!(times.iter().all(|&t| t <= bound), "{times:?} > {bound}");
        // And every shard got something.
        assert!((0..n).all(|k| a.contains(&k)), "{a:?}");
    }

    #[test]
    fn timings_move_a_slow_case_and_the_same_inputs_give_the_same_partition() {
        let cases = cases();
        let a = assign(&cases, 3, None);
        assert_eq!(a, assign(&cases, 3, None));
        let slow = cases
            .iter()
            .position(|c| !c.waits() && !c.file.exclusive && c.id() == c.requirement())
            .unwrap();
        let mut t = Timings::new();
        t.insert(cases[slow].id().to_string(), Duration::from_secs(10_000));
        let b = assign(&cases, 3, Some(&t));
        // Alone on its shard: nothing else fits beside a case that long.
        assert!(
            (0..cases.len()).all(|i| i == slow || b[i] != b[slow]),
            "the slow case shares its shard"
        );
    }
}
