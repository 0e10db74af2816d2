//! `authconform fuzz`: set up the target, run each endpoint's campaign (or replay a report's
//! findings), write the reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::reports::Clock;
use super::{Error, Event, Events, ReportOptions, Resolved, StopSignal, TargetOptions};
use crate::case::Case;
use crate::fuzz::{self as fz, Base, Endpoint, Probe, Rule, oracle};
use crate::record::{
    CaseResult, Finding, Outcome, OutcomeState, RunReport, SpecInfo, Status, TargetInfo,
};
use crate::reference::Reference;
use crate::spec::Revision;

/// What `authconform fuzz` does.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    pub target: TargetOptions,
    /// The endpoints attacked, in turn.
    pub endpoints: Vec<Endpoint>,
    /// Seconds per endpoint (default 20 when `cases` is not given either).
    pub seconds: Option<f64>,
    /// Generated requests per endpoint, at most.
    pub cases: Option<u64>,
    /// Campaign seed (default: random).
    pub seed: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The latency rule's bound, in milliseconds.
    pub slow_ms: u64,
    /// A fuzz report whose findings are sent again instead of a campaign.
    pub replay: Option<PathBuf>,
    pub reports: ReportOptions,
    /// Send only this share of each campaign's case numbers (`--shard K/N`; needs a seed).
    pub shard: Option<crate::shard::Shard>,
    /// Run the lifecycle campaign (sequences of operations) instead of the endpoints'.
    pub lifecycle: bool,
    /// Expected verdicts the lifecycle campaign must match (`--expect`).
    pub expect: Option<PathBuf>,
    /// Where to write the lifecycle campaign's verdicts as an expectations file.
    pub write_expect: Option<PathBuf>,
}

/// A target as campaigns know it: discovered URLs and the audited client.
pub struct FuzzTarget {
    pub setup: Arc<fz::Setup>,
    pub target: TargetInfo,
    reference: Option<Reference>,
}

impl FuzzTarget {
    /// Whether the target is the built-in reference this session started.
    pub fn is_reference(&self) -> bool {
        self.reference.is_some()
    }

    /// Stops the built-in reference, if this session started one.
    pub fn shutdown(self) {
        super::shut_down(self.reference);
    }
}

/// Resolves the target (starting the built-in reference when none is named), builds the
/// audited client and discovers the endpoints to attack.
pub async fn fuzz_target(
    t: &TargetOptions,
    slow: Duration,
    events: Events<'_>,
) -> Result<FuzzTarget, Error> {
    let mut resolved = Resolved::load(t)?;
    if resolved.names_no_target() {
        resolved
            .start_reference(t, None, "attacking", events)
            .await?;
    }
    let setup = async {
        let http = resolved.audited_http().await?;
        fz::discover(
            http,
            resolved.target.resource.as_deref(),
            resolved.target.issuer.as_deref(),
            &resolved.profile.clients,
            slow,
        )
        .await
        .map_err(Error)
    }
    .await;
    let target = resolved.info(&t.reference_faults);
    match setup {
        Ok(s) => Ok(FuzzTarget {
            setup: Arc::new(s),
            target,
            reference: resolved.reference,
        }),
        Err(e) => {
            super::shut_down(resolved.reference);
            Err(e)
        }
    }
}

/// Checks the options, sets up, runs the campaigns (until `stop`) or the replay, and writes
/// the reports. Each result goes out as an [`Event::Result`] before the reports are written.
pub async fn fuzz(
    opts: FuzzOptions,
    stop: &StopSignal,
    events: Events<'_>,
) -> Result<RunReport, Error> {
    let cases = super::load_cases(None)?;
    super::check_faults(&opts.target.reference_faults, &cases)?;
    if opts.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        return Err(Error::new("--seconds must be a positive number"));
    }
    if opts.cases == Some(0) {
        return Err(Error::new("--cases must be at least 1"));
    }
    if opts.concurrency == 0 {
        return Err(Error::new("--concurrency must be at least 1"));
    }
    if opts.shard.is_some() && opts.seed.is_none() {
        return Err(Error::new(
            "--shard needs --seed: every shard must draw its case numbers from the same campaign",
        ));
    }
    if opts.shard.is_some() && opts.replay.is_some() {
        return Err(Error::new(
            "--shard splits a campaign; --replay sends findings again: choose one",
        ));
    }
    if opts.shard.is_some() && opts.lifecycle {
        return Err(Error::new(
            "--shard splits the endpoints' campaigns; a lifecycle campaign is not sharded",
        ));
    }
    // A report whose findings are lifecycle sequences is replayed as sequences.
    if let Some(p) = &opts.replay
        && let Some(found) = load_lifecycle_replay(p)?
    {
        return super::lifecycle::lifecycle(&opts, &cases, Some(found), stop, events).await;
    }
    if opts.lifecycle && opts.replay.is_none() {
        return super::lifecycle::lifecycle(&opts, &cases, None, stop, events).await;
    }
    let replay = match &opts.replay {
        Some(p) => Some(load_replay(p)?),
        None => None,
    };
    let slow = Duration::from_millis(opts.slow_ms.max(1));
    let target = fuzz_target(&opts.target, slow, events).await?;
    let clock = Clock::start();
    let spec = Revision::FALLBACK.as_str();
    let (results, record, default_dir) = match replay {
        Some(findings) => {
            let results = replay_findings(&target.setup, &findings, &cases, spec).await;
            (results, None, "reports/fuzz-replay")
        }
        None => {
            let (results, record) = campaigns(&opts, &target, &cases, stop, events).await;
            (results, Some(record), "reports/fuzz")
        }
    };
    let interrupted = stop.is_stopped();
    let info = target.target.clone();
    target.shutdown();
    for r in &results {
        events(Event::Result(r));
    }
    let spec = SpecInfo {
        graded: spec.into(),
        source: "fuzz".into(),
        detection: "fuzz rules are not graded by revision; levels are the requirements' own".into(),
    };
    let mut report = clock.report(info, spec, interrupted, results, record);
    report.shard = opts.shard.map(|s| crate::record::ShardRecord {
        index: s.index,
        count: s.count,
        total: opts.endpoints.len(),
    });
    report.outcome = Some(fuzz_outcome(&report));
    opts.reports.write(&report, default_dir, events)?;
    Ok(report)
}

/// A campaign session's verdict, in the four states of a run: any finding (a `failed` rule,
/// whatever its requirement's level: a campaign gates on what it finds) fails it, as does an
/// interruption; with no finding, a rule that could not be judged (the target stopped
/// answering) leaves it incomplete (exit 3), as an unjudged MUST case leaves a run.
pub fn fuzz_outcome(report: &RunReport) -> Outcome {
    let s = &report.summary;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (state, reason) = if report.interrupted {
        (
            OutcomeState::Interrupted,
            "interrupted before every campaign ended".to_string(),
        )
    } else if s.failed > 0 {
        (
            OutcomeState::Failed,
            format!("{} broken", plural(s.failed, "rule", "rules")),
        )
    } else if s.errored > 0 {
        (
            OutcomeState::Incomplete,
            format!(
                "nothing found, but {} could not be judged",
                plural(s.errored, "rule", "rules")
            ),
        )
    } else {
        (OutcomeState::Passed, "no rule broken".to_string())
    };
    let exit = match state {
        OutcomeState::Passed => super::Exit::Ok,
        OutcomeState::Incomplete => super::Exit::Unjudged,
        OutcomeState::Failed | OutcomeState::Interrupted => super::Exit::Failed,
    };
    Outcome {
        state,
        exit_code: exit.code(),
        reason,
        expect: None,
    }
}

/// A campaign session's exit: its [`fuzz_outcome`]'s.
pub fn fuzz_exit(report: &RunReport) -> super::Exit {
    let state = match &report.outcome {
        Some(o) => o.state,
        None => fuzz_outcome(report).state,
    };
    match state {
        OutcomeState::Passed => super::Exit::Ok,
        OutcomeState::Incomplete => super::Exit::Unjudged,
        OutcomeState::Failed | OutcomeState::Interrupted => super::Exit::Failed,
    }
}

/// The lifecycle findings of a fuzz report's `results.json`, if it has any.
fn load_lifecycle_replay(
    p: &std::path::Path,
) -> Result<Option<Vec<crate::record::LifecycleFinding>>, Error> {
    let report = std::fs::read_to_string(p)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<RunReport>(&t).map_err(|e| e.to_string()))
        .map_err(|e| Error(format!("--replay {}: {e}", p.display())))?;
    Ok(report
        .fuzz
        .and_then(|f| f.lifecycle)
        .map(|l| l.findings)
        .filter(|f| !f.is_empty()))
}

/// The findings of a fuzz report's `results.json`.
fn load_replay(p: &std::path::Path) -> Result<Vec<Finding>, Error> {
    let report = std::fs::read_to_string(p)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<RunReport>(&t).map_err(|e| e.to_string()))
        .map_err(|e| Error(format!("--replay {}: {e}", p.display())))?;
    match report.fuzz {
        Some(f) if !f.findings.is_empty() => Ok(f.findings),
        Some(_) => Err(Error(format!(
            "{}: the report has no findings to replay",
            p.display()
        ))),
        None => Err(Error(format!(
            "{}: not a fuzz report (no \"fuzz\" section)",
            p.display()
        ))),
    }
}

/// Each endpoint's campaign in turn, until `stop`; their results and the report's record.
async fn campaigns(
    opts: &FuzzOptions,
    target: &FuzzTarget,
    cases: &[Case],
    stop: &StopSignal,
    events: Events<'_>,
) -> (Vec<CaseResult>, crate::record::FuzzRecord) {
    let setup = &target.setup;
    let seed = opts.seed.unwrap_or_else(rand::random);
    let duration = match (opts.seconds, opts.cases) {
        (Some(s), _) => Some(Duration::from_secs_f64(s)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(20)),
    };
    events(Event::FuzzPlan {
        seed,
        endpoints: opts.endpoints.len(),
        duration,
        cases: opts.cases,
        concurrency: opts.concurrency,
    });
    let settings = fz::Settings {
        seed,
        duration,
        cases: opts.cases,
        concurrency: opts.concurrency,
        shrink_tries: 400,
        shrink_time: Duration::from_secs(20),
        insecure_curl: target.is_reference(),
        shard: opts.shard,
    };
    let mut outcomes = Vec::new();
    for &ep in &opts.endpoints {
        if stop.is_stopped() {
            break;
        }
        if ep.bases().iter().all(|b| !setup.urls.contains_key(b)) {
            let why = ep.bases().iter().find_map(|b| setup.missing.get(b));
            events(Event::CampaignSkipped {
                endpoint: ep,
                why: why.map_or("", String::as_str),
            });
        }
        let progress = Arc::new(fz::Progress::default());
        let campaign = fz::campaign(
            setup.clone(),
            ep,
            settings.clone(),
            stop.clone(),
            progress.clone(),
        );
        tokio::pin!(campaign);
        // The counters are read here, between the campaign's steps, so no event can follow
        // the campaign's end.
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let outcome = loop {
            tokio::select! {
                o = &mut campaign => break o,
                _ = tick.tick() => {
                    let Some(started) = progress.started.lock().ok().and_then(|s| *s) else {
                        continue;
                    };
                    events(Event::CampaignProgress {
                        endpoint: ep,
                        elapsed: started.elapsed(),
                        requests: progress.requests.load(Ordering::Relaxed),
                        findings: progress.findings.load(Ordering::Relaxed),
                    });
                }
            }
        };
        events(Event::CampaignDone(&outcome));
        outcomes.push(outcome);
    }
    let json_path = opts.reports.json_path("reports/fuzz");
    let hint = format!(
        "authconform fuzz --replay {}{}",
        json_path.display(),
        if target.is_reference() {
            opts.target
                .reference_faults
                .iter()
                .map(|f| format!(" --reference-fault {f}"))
                .collect::<String>()
        } else {
            " (with this run's target options)".to_string()
        }
    );
    fz::results::build(
        &outcomes,
        setup,
        cases,
        seed,
        Revision::FALLBACK.as_str(),
        &hint,
    )
}

/// `fuzz --replay`: each finding's request, rebuilt for this target, sent once and judged by
/// its rule again. A finding that breaks the rule again is `failed` (confirmed); one that no
/// longer does is `passed`.
async fn replay_findings(
    setup: &fz::Setup,
    findings: &[Finding],
    cases: &[Case],
    spec: &str,
) -> Vec<CaseResult> {
    let mut out = Vec::new();
    let mut conn = fz::wire::Conn::default();
    for f in findings {
        let base = Base::parse(&f.request.base);
        let rule = Rule::parse(&f.rule);
        let mut r = fz::results::result_for(
            f.result_id.clone(),
            f.result_id
                .rsplit_once('.')
                .map_or(f.result_id.as_str(), |(r, _)| r),
            format!("replay of seed {} case {} ({})", f.seed, f.case, f.rule),
            cases,
            spec,
        );
        r.status = Status::Errored;
        r.details = vec![
            format!("recorded: {}", f.message),
            format!("reproduce: {}", f.curl),
        ];
        let (Some(base), Some(rule)) = (base, rule) else {
            r.message = format!(
                "unknown base {:?} or rule {:?} in the replay file",
                f.request.base, f.rule
            );
            out.push(r);
            continue;
        };
        let Some(url) = setup.urls.get(&base) else {
            r.message = format!(
                "this target has no {} URL: {}",
                base.as_str(),
                setup.missing.get(&base).cloned().unwrap_or_default()
            );
            r.exchanges = setup.discovery.clone();
            out.push(r);
            continue;
        };
        let probe = match Probe::from_replay(&f.request, &setup.substitutions) {
            Ok(p) => p,
            Err(e) => {
                r.message = format!("the replay record is damaged: {e}");
                out.push(r);
                continue;
            }
        };
        // Sent as the campaign sent it (raw request target), recorded by the audited client.
        let req = probe.to_request(url, &format!("replay of a {} finding", rule.as_str()));
        let t = Instant::now();
        let res = setup.wire.send(&mut conn, &req).await;
        let elapsed = t.elapsed();
        let ex = setup
            .http
            .record_sent(&req, &res, elapsed.as_millis() as u64);
        r.duration_ms = elapsed.as_millis() as u64;
        r.exchanges.push(ex);
        let hit = if rule == Rule::StillAnswers {
            match &res {
                Ok(x) if x.status < 500 => None,
                Ok(x) => Some(format!("the known-good request now gets {}", x.status)),
                Err(e) => Some(format!("the known-good request gets no answer: {e}")),
            }
        } else {
            oracle::judge(&probe, &res, elapsed, &setup.bounds)
                .into_iter()
                .find(|v| v.rule == rule)
                .map(|v| v.detail)
        };
        match hit {
            Some(d) => {
                r.status = Status::Failed;
                r.message = format!("confirmed: {d}");
            }
            // A rate limit answers nothing about the rule.
            None if res.as_ref().is_ok_and(|x| x.status == 429) => {
                r.message = "the target answered 429 (rate limited): could not tell".into();
            }
            None => {
                r.status = Status::Passed;
                r.message = format!(
                    "not reproduced: {}",
                    match &res {
                        Ok(x) => format!("answered {}", x.status),
                        Err(e) => e.to_string(),
                    }
                );
            }
        }
        out.push(r);
    }
    out
}
