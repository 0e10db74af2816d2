//! `authconform fuzz --lifecycle`: prepare the target as a run does (login, clients, shared
//! discovery), run the lifecycle campaign (or replay a report's lifecycle findings), and turn
//! what it found into one result per invariant.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::fuzz::FuzzOptions;
use super::reports::Clock;
use super::run::{Prepared, SetupOptions, prepare};
use super::{Error, Event, Events, StopSignal};
use crate::case::Case;
use crate::case::model::ClientStep;
use crate::expected_verdicts;
use crate::fuzz::lifecycle::exec::{SequenceRun, Target};
use crate::fuzz::lifecycle::model::{Op, Shape, scopes};
use crate::fuzz::lifecycle::oracle::{Choice, Invariant, Learned, Timing};
use crate::fuzz::lifecycle::{self as lc, Found};
use crate::record::{
    CaseResult, FuzzRecord, LearnedChoice, LifecycleFinding, LifecycleRecord, LifecycleStep,
    RunReport, SpecInfo, Status,
};
use crate::spec::SpecChoice;
use crate::step::{CaseCtx, RunEnv};

/// Default campaign time when neither `--seconds` nor `--cases` is given.
const DEFAULT_SECS: u64 = 60;

/// Runs the campaign or the replay and writes the reports.
pub async fn lifecycle(
    opts: &FuzzOptions,
    cases: &[Case],
    replay: Option<Vec<LifecycleFinding>>,
    stop: &StopSignal,
    events: Events<'_>,
) -> Result<RunReport, Error> {
    let expect = match &opts.expect {
        Some(p) => Some(expected_verdicts::load(p).map_err(Error::new)?),
        None => None,
    };
    let prepared = prepare(
        &SetupOptions {
            target: opts.target.clone(),
            documents: None,
            spec: SpecChoice::Auto,
            max_wait: None,
        },
        events,
    )
    .await?;
    let Prepared {
        env,
        target: info,
        spec,
        reference,
        ..
    } = prepared;
    let clock = Clock::start();
    let spec_s = spec.graded.clone();
    let result = async {
        let target = target(&env).await;
        match replay {
            Some(findings) => {
                let results = replay_findings(&env, &target, &findings, cases, &spec_s).await;
                (results, None, "reports/fuzz-replay")
            }
            None => {
                let (results, record) =
                    campaign(&env, &target, opts, cases, &spec_s, stop, events).await;
                (results, Some(record), "reports/fuzz")
            }
        }
    }
    .await;
    super::shut_down(reference);
    let (results, record, default_dir) = result;
    for r in &results {
        events(Event::Result(r));
    }
    let interrupted = stop.is_stopped();
    let spec = SpecInfo {
        graded: spec.graded,
        source: "fuzz".into(),
        detection: format!("lifecycle campaign; {}", spec.detection),
    };
    let mut report = clock.report(info, spec, interrupted, results, record);
    report.outcome = Some(match &expect {
        // With expectations, every verdict must match them (as a run's: exit 0, 1 or 3).
        Some(exp) => {
            let known: Vec<String> = Invariant::ALL.iter().map(|i| i.result_id()).collect();
            super::run::judge(&report, Some(exp), &known).0
        }
        None => super::fuzz::fuzz_outcome(&report),
    });
    opts.reports.write(&report, default_dir, events)?;
    if let Some(p) = &opts.write_expect {
        super::run::write_expectations(&report, p, "authconform fuzz --lifecycle --expect")?;
    }
    Ok(report)
}

/// The campaign's clients and what it knows of the target. A second client is registered when
/// the AS allows it; without one the binding probes are not drawn.
async fn target(env: &RunEnv) -> Target {
    let mut ctx = CaseCtx::new(env);
    ctx.case_id = "lifecycle-setup".into();
    let mut clients = Vec::new();
    if let Ok(a) = crate::step::client::provision(
        &mut ctx,
        &ClientStep {
            save: "a".into(),
            ..Default::default()
        },
    )
    .await
    {
        clients.push(a);
        if let Ok(b) = crate::step::client::provision(
            &mut ctx,
            &ClientStep {
                save: "b".into(),
                fresh: true,
                ..Default::default()
            },
        )
        .await
        {
            clients.push(b);
        }
    }
    let asked = env
        .profile
        .authorization
        .scope
        .as_deref()
        .map(scopes)
        .unwrap_or_default();
    let doc = crate::step::discovery::shared_as_doc(&mut ctx).await.ok();
    let mut known = asked.clone();
    if let Some(list) = doc
        .as_ref()
        .and_then(|d| d.get("scopes_supported"))
        .and_then(|v| v.as_array())
    {
        for s in list.iter().filter_map(|v| v.as_str()) {
            if !known.iter().any(|k| k == s) && s != "openid" && s != "offline_access" {
                known.push(s.to_string());
            }
        }
    }
    let has = |member: &str| {
        doc.as_ref()
            .and_then(|d| d.get(member))
            .is_some_and(|v| v.is_string())
    };
    let revocation = has("revocation_endpoint");
    // Introspection needs a client the endpoint answers: a confidential one (RFC 7662 §2.1).
    let introspector = match has("introspection_endpoint") {
        true => crate::step::client::provision(
            &mut ctx,
            &ClientStep {
                save: "introspector".into(),
                kind: crate::case::model::ClientKind::Confidential,
                ..Default::default()
            },
        )
        .await
        .ok(),
        false => None,
    };
    Target {
        introspection: introspector.is_some(),
        introspector,
        registration: has("registration_endpoint"),
        clients,
        asked,
        known_scopes: known,
        revocation,
        resource: env.target.resource.clone(),
        // The reference's access tokens live 3 s; an AS whose tokens live longer is not
        // waited for (at-expired-rs judges expiry once, with its own wait).
        max_expiry_wait: 8,
        timing: Timing {
            refresh_idle: env
                .profile
                .timing
                .refresh_idle_secs
                .map(Duration::from_secs),
        },
    }
}

fn shape(opts: &FuzzOptions, target: &Target) -> Shape {
    Shape {
        min_len: 4,
        max_len: 16,
        // Concurrent duplicates: up to `--concurrency` requests at once, five at most (a race
        // shows with a few; more only loads the server).
        max_copies: opts.concurrency.clamp(1, 5) as u8,
        max_wait_secs: 2,
        revocation: target.revocation,
        introspection: target.introspection,
        registration: target.registration,
    }
}

async fn campaign(
    env: &RunEnv,
    target: &Target,
    opts: &FuzzOptions,
    cases: &[Case],
    spec: &str,
    stop: &StopSignal,
    events: Events<'_>,
) -> (Vec<CaseResult>, FuzzRecord) {
    let seed = opts.seed.unwrap_or_else(rand::random);
    let duration = match (opts.seconds, opts.cases) {
        (Some(s), _) => Some(Duration::from_secs_f64(s)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(DEFAULT_SECS)),
    };
    let settings = lc::Settings {
        seed,
        duration,
        sequences: opts.cases,
        shape: shape(opts, target),
        shrink_tries: 60,
        shrink_time: Duration::from_secs(90),
    };
    events(Event::LifecyclePlan {
        seed,
        duration,
        sequences: opts.cases,
        clients: target.clients.len(),
        revocation: target.revocation,
    });
    let mut record = FuzzRecord {
        seed,
        ..FuzzRecord::default()
    };
    if target.clients.is_empty() {
        let why = "no client could be provisioned for the campaign (see the dcr-* and cimd-* \
                   cases, or name a client in the profile)";
        let results = Invariant::ALL
            .iter()
            .map(|i| {
                let mut r = blank(*i, cases, spec);
                r.status = Status::Errored;
                r.message = why.into();
                r
            })
            .collect();
        record.lifecycle = Some(LifecycleRecord {
            stopped_early: Some(why.into()),
            ..Default::default()
        });
        return (results, record);
    }
    let progress = Arc::new(crate::fuzz::Progress::default());
    let run = lc::campaign(env, target, &settings, stop, progress.clone());
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let outcome = loop {
        tokio::select! {
            o = &mut run => break o,
            _ = tick.tick() => {
                let Some(started) = progress.started.lock().ok().and_then(|s| *s) else {
                    continue;
                };
                events(Event::LifecycleProgress {
                    elapsed: started.elapsed(),
                    transitions: progress.requests.load(Ordering::Relaxed),
                    findings: progress.findings.load(Ordering::Relaxed),
                });
            }
        }
    };
    let secs = outcome.duration.as_secs_f64().max(1e-3);
    let lr = LifecycleRecord {
        sequences: outcome.sequences,
        transitions: outcome.transitions,
        duration_ms: outcome.duration.as_millis() as u64,
        transitions_per_sec: (outcome.transitions as f64 / secs * 10.0).round() / 10.0,
        logins: outcome.logins,
        login_ms: outcome.login_ms,
        login_share: ((outcome.login_ms as f64 / 1000.0 / secs).min(1.0) * 1000.0).round() / 1000.0,
        unjudged: outcome.unjudged,
        choices: outcome
            .choices
            .0
            .iter()
            .map(|((c, _), l)| LearnedChoice {
                choice: choice_name(*c),
                tokens: kind(l.access).into(),
                behaviour: behaviour(*c, l),
                sequence: l.sequence,
                step: l.step + 1,
            })
            .collect(),
        findings: outcome.found.iter().map(|f| finding(f, seed)).collect(),
        stopped_early: outcome.stopped_early.clone(),
    };
    events(Event::LifecycleDone(&lr));
    let mut results = Vec::new();
    for inv in Invariant::ALL {
        let mut r = blank(inv, cases, spec);
        let checks = outcome.checked.get(&inv).copied().unwrap_or(0);
        if let Some(f) = outcome.found.iter().find(|f| f.invariant == inv) {
            r.status = Status::Failed;
            r.message = format!(
                "{} ({} steps{})",
                f.message,
                f.ops.len(),
                if f.reproduced {
                    ", shrunk and reproduced on its own"
                } else {
                    "; the sequence did not break it again on its own"
                }
            );
            r.details = steps_text(f);
            if let Some((s, ex)) = &f.taught {
                let (c, l) = f
                    .assumes
                    .as_ref()
                    .expect("a taught finding assumes its choice");
                r.details.push(format!(
                    "held to what sequence {} showed at step {}: {} ({} → {}; its exchanges follow the sequence's)",
                    l.sequence,
                    l.step + 1,
                    behaviour(*c, l),
                    s.op.describe(),
                    s.outcome
                ));
                r.exchanges.extend(ex.iter().cloned());
            }
            r.details.push(format!(
                "replay: authconform fuzz --replay {} (with this run's target options)",
                opts.reports.json_path("reports/fuzz").display()
            ));
            let taught = std::mem::take(&mut r.exchanges);
            r.exchanges = f.run.exchanges.clone();
            r.exchanges.extend(taught);
        } else if checks > 0 {
            r.message = format!(
                "held in {checks} check(s) over {} sequence(s)",
                outcome.sequences
            );
        } else if let Some(why) = &outcome.stopped_early {
            r.status = Status::Errored;
            r.message = format!("never checked: the campaign stopped early ({why})");
        } else if outcome.sequences > 0 && outcome.logins > 0 && no_code(&outcome) {
            r.status = Status::Errored;
            r.message =
                "never checked: no login of the campaign gave a code (see `authconform login`)"
                    .into();
        } else {
            r.status = Status::Skipped;
            r.message = format!(
                "never checked in {} sequence(s): {}",
                outcome.sequences,
                unreached(inv, target)
            );
        }
        results.push(r);
    }
    record.lifecycle = Some(lr);
    (results, record)
}

fn no_code(o: &lc::Outcome) -> bool {
    o.checked.is_empty() && o.transitions > 0
}

/// Why an invariant may go unchecked on this target.
fn unreached(inv: Invariant, t: &Target) -> &'static str {
    use Invariant::*;
    match inv {
        CodeClient | RefreshClient | RevokeClient if t.clients.len() < 2 => {
            "only one client could be provisioned (binding probes need two)"
        }
        RevokedRefresh
        | RevokeClient
        | ResourceRevocation
        | RefreshRevocationCascade
        | AccessRevocationCascade
            if !t.revocation =>
        {
            "the AS metadata names no revocation_endpoint"
        }
        IntrospectionInactive if !t.introspection => {
            "no introspection_endpoint, or no confidential client to ask it with"
        }
        ExpiredAccess | ResourceRevocation | RefreshRevocationCascade if t.resource.is_none() => {
            "no MCP endpoint to call (--resource)"
        }
        RotatedRefresh
        | RefreshConcurrent
        | ReuseRevokesFamily
        | ScopeCeiling
        | RevokedRefresh
        | RefreshClient
        | AccessRevocationCascade => {
            "the state it needs never arose (no refresh token issued, or none rotated)"
        }
        _ => "the state it needs never arose within the budget",
    }
}

fn blank(inv: Invariant, cases: &[Case], spec: &str) -> CaseResult {
    let req = inv.requirement();
    let title = format!(
        "{} (lifecycle: {})",
        crate::fuzz::results::requirement_case(cases, req).map_or(req, |c| c.file.title.as_str()),
        inv.describe()
    );
    crate::fuzz::results::result_for(inv.result_id(), req, title, cases, spec)
}

fn steps_text(f: &Found) -> Vec<String> {
    f.run
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "step {}: {} → {}{}",
                i + 1,
                s.op.describe(),
                s.outcome,
                if s.exchanges.is_empty() {
                    String::new()
                } else {
                    format!(" (exchanges {}–{})", s.exchanges.start + 1, s.exchanges.end)
                }
            )
        })
        .collect()
}

fn finding(f: &Found, seed: u64) -> LifecycleFinding {
    LifecycleFinding {
        result_id: f.invariant.result_id(),
        invariant: f.invariant.as_str().into(),
        seed,
        sequence: f.sequence,
        message: f.message.clone(),
        original_steps: f.original_len,
        shrunk_steps: f.ops.len(),
        shrink_tries: f.tries,
        reproduced: f.reproduced,
        steps: f
            .run
            .steps
            .iter()
            .map(|s| LifecycleStep {
                op: s.op.describe(),
                outcome: s.outcome.clone(),
                exchanges: s.exchanges.clone().collect(),
            })
            .collect(),
        ops: serde_json::to_value(&f.ops).unwrap_or_default(),
        assumes: f
            .assumes
            .as_ref()
            .map(|(c, l)| crate::record::AssumedChoice {
                choice: choice_name(*c),
                kills: l.kills,
                tokens: kind(l.access).into(),
                behaviour: behaviour(*c, l),
                sequence: l.sequence,
                step: l.step + 1,
            }),
    }
}

fn kind(access: bool) -> &'static str {
    if access { "access" } else { "refresh" }
}

/// What the server chose, for which tokens.
fn behaviour(c: Choice, l: &Learned) -> String {
    format!(
        "{} (seen on {} tokens)",
        c.describe(l.kills),
        kind(l.access)
    )
}

/// A choice's name as the report writes it (`refresh-revocation-cascades`).
fn choice_name(c: Choice) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The choice a recorded finding assumes, read back.
fn assumed(a: &crate::record::AssumedChoice) -> Option<(Choice, Learned)> {
    let c: Choice = serde_json::from_value(serde_json::Value::String(a.choice.clone())).ok()?;
    Some((
        c,
        Learned {
            kills: a.kills,
            access: a.tokens == "access",
            sequence: a.sequence,
            step: a.step.saturating_sub(1),
        },
    ))
}

/// Each finding's operations run again, on their own: `failed` when the invariant breaks
/// again (confirmed), `passed` when it no longer does.
async fn replay_findings(
    env: &RunEnv,
    target: &Target,
    findings: &[LifecycleFinding],
    cases: &[Case],
    spec: &str,
) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for f in findings {
        let inv = Invariant::parse(&f.invariant);
        let ops: Result<Vec<Op>, _> = serde_json::from_value(f.ops.clone());
        let (Some(inv), Ok(ops)) = (inv, ops) else {
            let mut r = crate::fuzz::results::result_for(
                f.result_id.clone(),
                f.result_id.split('.').next().unwrap_or_default(),
                "replay of a lifecycle finding".into(),
                cases,
                spec,
            );
            r.status = Status::Errored;
            r.message = format!(
                "the replay record is damaged: unknown invariant {:?} or unreadable operations",
                f.invariant
            );
            out.push(r);
            continue;
        };
        let mut r = blank(inv, cases, spec);
        r.title = format!(
            "replay of seed {} sequence {} ({}, {} steps)",
            f.seed,
            f.sequence,
            inv.as_str(),
            ops.len()
        );
        let assumes = f.assumes.as_ref().and_then(assumed);
        let (hit, run): (bool, SequenceRun) =
            lc::replay(env, target, &ops, inv, assumes.clone()).await;
        let found = Found {
            invariant: inv,
            sequence: f.sequence,
            original_len: f.original_steps,
            ops: ops.clone(),
            message: String::new(),
            tries: 0,
            reproduced: hit,
            run,
            assumes: None,
            taught: None,
        };
        r.details = vec![format!("recorded: {}", f.message)];
        if let Some(a) = &f.assumes {
            r.details.push(format!(
                "knowing what the recorded campaign's sequence {} showed at step {}: {}",
                a.sequence, a.step, a.behaviour
            ));
        }
        r.details.extend(steps_text(&found));
        r.exchanges = found.run.exchanges.clone();
        match found.run.violations.iter().find(|v| v.invariant == inv) {
            Some(v) => {
                r.status = Status::Failed;
                r.message = format!("reproduced: {}", v.message);
            }
            None if found.run.unjudged > 0 || found.run.target_down.is_some() => {
                r.status = Status::Errored;
                r.message = format!(
                    "not reproduced, but {} step(s) got no judgeable answer",
                    found.run.unjudged
                );
            }
            None => r.message = "did not break the invariant again".into(),
        }
        out.push(r);
    }
    out
}
