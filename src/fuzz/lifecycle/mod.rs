//! Lifecycle campaigns (`authconform fuzz --lifecycle`): proptest draws sequences of protocol
//! operations (authorize through the profile's login, redeem, refresh, revoke, call the MCP
//! endpoint, wait), each with the mutations of the single-request vocabulary (another client,
//! a wrong verifier, a replayed value, concurrent duplicates), and runs them against the live
//! target through the step layer. A model ([`oracle::Model`]) predicts what a conforming server
//! may answer at every step and names the invariant an answer breaks.
//!
//! A broken invariant is shrunk to the shortest sequence that still breaks it (delta debugging
//! over the operations, every candidate run again against the target), and written with each
//! step's exchanges and the operations as a replay record. Sequence `n` of a campaign is drawn
//! from an RNG seeded with (seed, n): a finding is reproducible from its seed and number.

pub mod exec;
pub mod model;
pub mod oracle;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng};
use sha2::{Digest, Sha256};

use crate::step::RunEnv;
use crate::stop::StopSignal;
use exec::{SequenceRun, Target};
use model::{Op, Shape};
use oracle::{Choices, Invariant};

/// Bounds of a lifecycle campaign.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Stop starting sequences after this long...
    pub duration: Option<Duration>,
    /// ...or after this many sequences, whichever comes first.
    pub sequences: Option<u64>,
    pub shape: Shape,
    /// Candidate sequences run, and time spent, shrinking one finding at most.
    pub shrink_tries: u32,
    pub shrink_time: Duration,
}

/// A broken invariant, shrunk.
#[derive(Debug)]
pub struct Found {
    pub invariant: Invariant,
    /// The campaign sequence that broke it first.
    pub sequence: u64,
    pub original_len: usize,
    pub ops: Vec<Op>,
    /// The run of `ops` whose violation is the evidence (the shrunk sequence, run on its own;
    /// the campaign's own run when the shrunk one did not reproduce).
    pub run: SequenceRun,
    pub message: String,
    pub tries: u32,
    pub reproduced: bool,
    /// The server's choice the finding holds it to, when another sequence showed it: the
    /// shrunk sequence and its replay start knowing it (the teaching step is evidence too).
    pub assumes: Option<(oracle::Choice, oracle::Learned)>,
    /// The teaching step: what it did and its exchanges.
    pub taught: Option<(exec::StepRun, Vec<crate::record::Exchange>)>,
}

/// What a campaign did and found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sequences: u64,
    pub transitions: u64,
    pub duration: Duration,
    pub logins: u64,
    pub login_ms: u64,
    pub unjudged: u64,
    pub checked: BTreeMap<Invariant, u64>,
    pub choices: Choices,
    pub found: Vec<Found>,
    pub stopped_early: Option<String>,
}

/// Sequence `n` of the campaign with `seed`: the same operations on every run.
pub fn generate(seed: u64, n: u64, shape: Shape) -> Vec<Op> {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(b"lifecycle");
    h.update(n.to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    let mut runner = super::runner();
    *runner.rng() = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    model::sequence(shape)
        .new_tree(&mut runner)
        .map(|t| t.current())
        .unwrap_or_default()
}

fn count(out: &mut Outcome, run: &SequenceRun) {
    out.transitions += run.steps.len() as u64;
    out.unjudged += run.unjudged;
    for s in &run.steps {
        if let Some(ms) = s.login_ms {
            out.logins += 1;
            out.login_ms += ms;
        }
    }
}

/// Runs sequences until the budget is spent, `stop` fires or the target stops answering;
/// shrinks the first violation of each invariant. `progress` counts operations and findings.
pub async fn campaign(
    env: &RunEnv,
    target: &Target,
    settings: &Settings,
    stop: &StopSignal,
    progress: Arc<super::Progress>,
) -> Outcome {
    let started = Instant::now();
    if let Ok(mut s) = progress.started.lock() {
        *s = Some(started);
    }
    let mut out = Outcome::default();
    let mut sessions = HashMap::new();
    // The runs that taught each choice: a finding that holds the server to a choice another
    // sequence showed carries the teaching step as evidence, and is shrunk and replayed
    // knowing that choice.
    let mut teachers: HashMap<u64, SequenceRun> = HashMap::new();
    for n in 0.. {
        if stop.is_stopped()
            || settings.sequences.is_some_and(|c| n >= c)
            || settings.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        let ops = generate(settings.seed, n, settings.shape);
        let before: Vec<_> = out.choices.0.keys().copied().collect();
        let run = exec::run(env, target, &ops, n, &mut out.choices, &mut sessions).await;
        out.sequences += 1;
        count(&mut out, &run);
        progress
            .requests
            .fetch_add(run.steps.len() as u64, Ordering::Relaxed);
        for (inv, k) in &run.checked {
            *out.checked.entry(*inv).or_default() += k;
        }
        if out.choices.0.keys().any(|c| !before.contains(c)) {
            teachers.insert(n, run.clone());
        }
        let down = run.target_down.clone();
        let mut seen: Vec<Invariant> = Vec::new();
        for v in &run.violations {
            if seen.contains(&v.invariant) || out.found.iter().any(|f| f.invariant == v.invariant) {
                continue;
            }
            seen.push(v.invariant);
            if stop.is_stopped() {
                break;
            }
            let assumes = v.taught_by.and_then(|taught| {
                out.choices
                    .0
                    .iter()
                    .find(|((c, _), l)| {
                        c.invariant() == v.invariant && (l.sequence, l.step) == taught
                    })
                    .map(|((c, _), l)| (*c, l.clone()))
            });
            let taught = v.taught_by.and_then(|(t, step)| {
                let r = teachers.get(&t)?;
                let s = r.steps.get(step)?.clone();
                let ex = r.exchanges.get(s.exchanges.clone())?.to_vec();
                Some((s, ex))
            });
            let mut found = shrink(
                env,
                target,
                settings,
                n,
                v.invariant,
                ops.clone(),
                assumes.clone(),
                &run,
                &mut sessions,
                stop,
            )
            .await;
            found.assumes = assumes;
            found.taught = taught;
            progress.findings.fetch_add(1, Ordering::Relaxed);
            out.found.push(found);
        }
        if let Some(d) = down {
            out.stopped_early = Some(d);
            break;
        }
    }
    out.duration = started.elapsed();
    out
}

/// Runs `ops` on their own (knowing only the choice `assumes`, if any): does `inv` break?
async fn alone(
    env: &RunEnv,
    target: &Target,
    ops: &[Op],
    inv: Invariant,
    assumes: Option<(oracle::Choice, oracle::Learned)>,
    sessions: &mut HashMap<String, crate::login::Browser>,
) -> (bool, SequenceRun) {
    let mut fresh = Choices::default();
    if let Some((c, l)) = assumes {
        fresh.0.insert((c, l.access), l);
    }
    // Shrinking runs are numbered apart from the campaign's sequences.
    let run = exec::run(env, target, ops, u64::MAX, &mut fresh, sessions).await;
    (run.violations.iter().any(|v| v.invariant == inv), run)
}

/// Delta debugging (ddmin) over the operations: remove chunks, halving their size, while the
/// invariant still breaks, within the try and time budget.
#[allow(clippy::too_many_arguments)]
async fn shrink(
    env: &RunEnv,
    target: &Target,
    settings: &Settings,
    sequence: u64,
    inv: Invariant,
    initial: Vec<Op>,
    assumes: Option<(oracle::Choice, oracle::Learned)>,
    original: &SequenceRun,
    sessions: &mut HashMap<String, crate::login::Browser>,
    stop: &StopSignal,
) -> Found {
    let started = Instant::now();
    let original_len = initial.len();
    let mut tries = 1u32;
    let (ok, first) = alone(env, target, &initial, inv, assumes.clone(), sessions).await;
    if !ok {
        // The campaign saw it, but the sequence does not break it on its own: report what
        // was seen, unshrunk.
        let message = original
            .violations
            .iter()
            .find(|v| v.invariant == inv)
            .map(|v| v.message.clone())
            .unwrap_or_default();
        let ops: Vec<Op> = original.steps.iter().map(|s| s.op.clone()).collect();
        return Found {
            invariant: inv,
            sequence,
            original_len,
            ops,
            run: original.clone(),
            message,
            tries,
            reproduced: false,
            assumes: None,
            taught: None,
        };
    }
    let mut best = initial;
    let mut best_run = first;
    let mut chunks = 2usize;
    'outer: while best.len() >= 2 {
        let size = best.len().div_ceil(chunks);
        let mut reduced = false;
        for k in 0..chunks {
            if tries >= settings.shrink_tries
                || started.elapsed() >= settings.shrink_time
                || stop.is_stopped()
            {
                break 'outer;
            }
            let lo = k * size;
            if lo >= best.len() {
                break;
            }
            let hi = (lo + size).min(best.len());
            let candidate: Vec<Op> = best[..lo].iter().chain(&best[hi..]).cloned().collect();
            if candidate.is_empty() {
                continue;
            }
            tries += 1;
            let (ok, run) = alone(env, target, &candidate, inv, assumes.clone(), sessions).await;
            if ok {
                best = candidate;
                best_run = run;
                reduced = true;
                break;
            }
        }
        if reduced {
            chunks = (chunks - 1).max(2);
        } else {
            if chunks >= best.len() {
                break;
            }
            chunks = (chunks * 2).min(best.len());
        }
    }
    let message = best_run
        .violations
        .iter()
        .find(|v| v.invariant == inv)
        .map(|v| v.message.clone())
        .unwrap_or_default();
    Found {
        invariant: inv,
        sequence,
        original_len,
        ops: best,
        run: best_run,
        message,
        tries,
        reproduced: true,
        assumes: None,
        taught: None,
    }
}

/// `fuzz --replay` of a lifecycle finding: the operations run again, on their own.
pub async fn replay(
    env: &RunEnv,
    target: &Target,
    ops: &[Op],
    inv: Invariant,
    assumes: Option<(oracle::Choice, oracle::Learned)>,
) -> (bool, SequenceRun) {
    let mut sessions = HashMap::new();
    alone(env, target, ops, inv, assumes, &mut sessions).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_is_a_function_of_seed_and_number() {
        let shape = Shape {
            min_len: 4,
            max_len: 14,
            max_copies: 4,
            max_wait_secs: 4,
            revocation: true,
            introspection: true,
            registration: false,
        };
        assert_eq!(generate(7, 3, shape), generate(7, 3, shape));
        assert_ne!(generate(7, 3, shape), generate(7, 4, shape));
        assert_ne!(generate(7, 3, shape), generate(8, 3, shape));
    }
}
