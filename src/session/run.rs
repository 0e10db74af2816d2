//! `authconform run`: set up the target, run the cases, write the reports, gate the verdicts.

use std::path::PathBuf;
use std::sync::Arc;

use super::reports::Clock;
use super::{Error, Event, Events, Exit, ReportOptions, Resolved, StopSignal, TargetOptions};
use crate::case::{Case, Selection};
use crate::expected_verdicts::{self, Comparison, Expectations};
use crate::record::{
    CaseResult, ExpectChange, ExpectRecord, ExpiredEntry, IncidentRecord, Outcome, OutcomeState,
    RunReport, ShardRecord, SpecInfo, Status, TargetInfo,
};
use crate::reference::Reference;
use crate::runner;
use crate::spec::{Revision, SpecChoice};
use crate::step::RunEnv;

/// The Client ID Metadata Document host's settings (`--public-base-url`, `--document-port`,
/// `--ca-dir`); each falls back on the profile's `[cimd]`, then on a default.
#[derive(Debug, Clone, Default)]
pub struct DocumentOptions {
    /// Where the AS reaches the host (a tunnel to it), when the AS is not on this machine.
    pub public_base_url: Option<String>,
    /// The https listener's port on 127.0.0.1 (default: any free port).
    pub port: Option<u16>,
    /// authconform's persistent CA (default: `local_ca::default_dir()`).
    pub ca_dir: Option<PathBuf>,
}

/// How to make a target ready for cases.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub target: TargetOptions,
    /// The document host, when CIMD cases run.
    pub documents: Option<DocumentOptions>,
    /// The MCP revision to grade at.
    pub spec: SpecChoice,
    /// Overrides the profile's `timing.max_wait_secs`.
    pub max_wait: Option<u64>,
}

/// A target ready for cases: the run environment, what the report says about the target, the
/// graded revision, and the reference to stop afterwards.
pub struct Prepared {
    pub env: RunEnv,
    pub target: TargetInfo,
    pub spec: SpecInfo,
    /// The profile's provisioning command, when it has one (it ran before anything was sent).
    pub provision: Option<crate::record::ProvisionRecord>,
    pub(super) reference: Option<Reference>,
}

impl Prepared {
    /// Stops the built-in reference, if this session started one.
    pub fn shutdown(self) {
        super::shut_down(self.reference);
    }
}

/// Resolves the target, starts the document host (when asked for) and the built-in reference
/// (when no target is named), builds the audited client and chooses the revision.
pub async fn prepare(opts: &SetupOptions, events: Events<'_>) -> Result<Prepared, Error> {
    let mut resolved = Resolved::load(&opts.target)?;
    let reference_target = resolved.names_no_target();
    let enterprise = resolved.profile.enterprise.clone();
    let documents = match &opts.documents {
        Some(d) => {
            let mut docs = start_documents(d, &resolved, reference_target, events).await?;
            // The enterprise IdP (ID-JAG) on the document host: for the reference when it
            // offers the grant, for another AS when its profile says it trusts the suite's IdP.
            docs.idp = match &enterprise {
                _ if reference_target && opts.target.reference_offer.id_jag => Some(Arc::new(
                    crate::idp::Idp::publish(&docs.host, "/idp", None).map_err(Error)?,
                )),
                Some(e) if !reference_target => {
                    let idp = crate::idp::Idp::publish(&docs.host, &e.path(), e.key.clone())
                        .map_err(Error)?;
                    events(Event::EnterpriseIdp {
                        issuer: &idp.issuer,
                        jwks_url: &idp.jwks_url,
                    });
                    Some(Arc::new(idp))
                }
                _ => None,
            };
            Some(Arc::new(docs))
        }
        None => None,
    };
    if reference_target {
        resolved
            .start_reference(
                &opts.target,
                documents.as_deref(),
                "running against",
                events,
            )
            .await?;
    }
    let result = async {
        let http = resolved.audited_http().await?;
        let provisioned =
            super::provision(&resolved.profile.login, &resolved.base_dir, http.redactor()).await?;
        if let Some(p) = &provisioned {
            events(Event::Provisioned(p));
        }
        let target = resolved.info(&opts.target.reference_faults);
        let mut profile = std::mem::take(&mut resolved.profile);
        let profile_pool = profile.login.pool();
        if let Some(w) = opts.max_wait {
            profile.timing.max_wait_secs = Some(w);
        }
        let callback = crate::callback::Listener::start(&profile.callback)
            .await
            .map_err(|e| {
                Error(format!(
                    "callback listener on 127.0.0.1:{}: {e}",
                    profile.callback.port.unwrap_or(0)
                ))
            })?;
        // Graded at the fallback until detection says otherwise: detection after login needs
        // the environment (clients, login driver, discovered AS) before the revision is known,
        // and nothing it does depends on the revision.
        let mut env = RunEnv {
            http,
            target: resolved.target.clone(),
            revision: Revision::FALLBACK,
            profile,
            callback,
            registered: Default::default(),
            prm: Default::default(),
            as_metadata: Default::default(),
            documents,
            facts: Default::default(),
            users: crate::login::users::Leases::new(profile_pool),
            waits: None,
        };
        // Detection first, as it always came first: its token-less probes are the cheapest
        // way to find a target that does not answer (a second timeout would follow otherwise).
        // Its login, when it needs one, makes the shared discovery (it is made once either way).
        let spec = runner::choose_revision(&env, opts.spec).await;
        env.revision = spec.graded.parse().unwrap_or(Revision::FALLBACK);
        crate::step::discovery::resolve_shared(&env).await;
        Ok((env, target, spec, provisioned))
    }
    .await;
    match result {
        Ok((env, target, spec, provision)) => Ok(Prepared {
            env,
            target,
            spec,
            provision,
            reference: resolved.reference,
        }),
        Err(e) => {
            super::shut_down(resolved.reference);
            Err(e)
        }
    }
}

/// The document host. Against the built-in reference it uses a throw-away CA the reference is
/// handed; against a real AS, the persistent CA the AS was told to trust (`authconform ca`).
async fn start_documents(
    d: &DocumentOptions,
    resolved: &Resolved,
    reference_target: bool,
    events: Events<'_>,
) -> Result<crate::cimd::Documents, Error> {
    let public = d
        .public_base_url
        .clone()
        .or_else(|| resolved.profile.cimd.public_base_url.clone());
    if let Some(u) = &public {
        crate::target::check_url(u).map_err(|e| Error(format!("--public-base-url: {e}")))?;
    }
    let (ca, ca_path) = if reference_target {
        let ca = crate::local_ca::generate_for("document host")
            .map_err(|e| Error(format!("document host CA: {e}")))?;
        (ca, None)
    } else {
        let dir = d
            .ca_dir
            .clone()
            .unwrap_or_else(crate::local_ca::default_dir);
        let (ca, p) = crate::local_ca::persistent(&dir)
            .map_err(|e| Error(format!("authconform's CA: {e}")))?;
        (ca, Some(p))
    };
    let port = d.port.or(resolved.profile.cimd.port).unwrap_or(0);
    // The built-in reference resolves through a rebinding DNS server of the run's own; a real
    // AS only when its operator pointed it at one (`[cimd] resolver`).
    let resolver = if reference_target {
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    } else {
        resolved.profile.cimd.resolver
    };
    let docs = crate::cimd::Documents::start(port, public, ca, ca_path, resolver)
        .await
        .map_err(Error)?;
    if !reference_target {
        events(Event::DocumentHost {
            base_url: &docs.host.base_url,
            ca_path: docs.ca_path.as_deref(),
        });
    }
    Ok(docs)
}

/// What `authconform run` does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub setup: SetupOptions,
    /// A folder of case files instead of the shipped ones.
    pub cases_dir: Option<PathBuf>,
    pub selection: Selection,
    /// Cases run at once.
    pub concurrency: usize,
    pub reports: ReportOptions,
    /// Expected verdicts the run must match.
    pub expect: Option<PathBuf>,
    /// Where to write the run's verdicts as an expectations file.
    pub write_expect: Option<PathBuf>,
    /// The whole run's time limit (`--deadline`): cases not finished by then are `errored`.
    pub deadline: Option<std::time::Duration>,
    /// Run only this share of the selected cases (`--shard K/N`; see [`crate::shard`]).
    pub shard: Option<crate::shard::Shard>,
    /// A previous run's `results.json` whose durations balance the shards (`--shard-timings`).
    pub shard_timings: Option<PathBuf>,
}

/// Loads and selects the cases, sets up, runs them (until `stop`), and writes the reports.
/// Each result goes out as an [`Event::Result`] as its case finishes.
pub async fn run(
    mut opts: RunOptions,
    stop: &StopSignal,
    events: Events<'_>,
) -> Result<Finished, Error> {
    let all_cases = super::load_cases(opts.cases_dir.as_deref())?;
    let known_ids: Vec<String> = all_cases.iter().map(|c| c.id().to_string()).collect();
    for p in &opts.selection.only {
        if !all_cases.iter().any(|c| Selection::matches(p, c)) {
            return Err(Error(format!(
                "--only {p:?} matches no case (see `authconform list`)"
            )));
        }
    }
    let mut cases: Vec<Case> = all_cases
        .into_iter()
        .filter(|c| opts.selection.keeps(c))
        .collect();
    super::check_faults(&opts.setup.target.reference_faults, &cases)?;
    let shard = match opts.shard {
        Some(s) => Some(take_shard(&mut cases, s, opts.shard_timings.as_deref())?),
        None => None,
    };
    let expect = match &opts.expect {
        Some(p) => Some(expected_verdicts::load(p).map_err(Error::new)?),
        None => None,
    };
    // The document host also serves the enterprise IdP of the ID-JAG cases.
    if !cases
        .iter()
        .any(|c| c.file.area == "cimd" || c.file.area == "id_jag")
    {
        opts.setup.documents = None;
    }
    // The clock starts before set-up: revision detection and the shared discovery are part of
    // what the run spent on the target.
    let clock = Clock::start();
    let prepared = prepare(&opts.setup, events).await?;
    events(Event::Grading {
        spec: &prepared.spec,
        cases: cases.len(),
    });
    let Prepared {
        mut env,
        target,
        spec,
        provision,
        reference,
    } = prepared;
    // Cases announce their deliberate waits from their own tasks; the session turns them into
    // events on its own, between results.
    let (waits_tx, mut waits) = tokio::sync::mpsc::unbounded_channel();
    env.waits = Some(waits_tx);
    let env = Arc::new(env);
    let started = std::time::Instant::now();
    let (mut results, deadline) = with_waits(
        runner::run_all(
            env.clone(),
            cases.clone(),
            opts.concurrency,
            stop,
            opts.deadline,
            |r| events(Event::Result(r)),
        ),
        &mut waits,
        events,
    )
    .await;
    // A server that buckled under parallel clients gets those cases again, one at a time,
    // within what is left of the deadline.
    let remaining = opts
        .deadline
        .map(|d| d.saturating_sub(started.elapsed()))
        .unwrap_or(std::time::Duration::from_secs(3600));
    let mut unstable = Vec::new();
    if deadline.is_none() && !stop.is_stopped() {
        let rerun = runner::rerun_alone(&env, &cases, &mut results, opts.concurrency, 20, |r| {
            events(Event::Result(r))
        });
        let rerun = with_waits(rerun, &mut waits, events);
        tokio::select! {
            changed = rerun => unstable = changed,
            _ = tokio::time::sleep(remaining) => {}
            _ = stop.stopped() => {}
        }
    }
    if let Some(s) = &shard {
        note_shard_on_cross_checks(&mut results, &cases, s);
    }
    let mut report = clock.report(target, spec, stop.is_stopped(), results, None);
    report.provision = provision;
    report.shard = shard;
    report.unstable = (!unstable.is_empty()).then_some(crate::record::UnstableRecord {
        concurrency: opts.concurrency,
        cases: unstable,
    });
    let record = |inc: crate::health::Incident, kind: &str| IncidentRecord {
        kind: kind.into(),
        origin: (!inc.origin.is_empty()).then(|| inc.origin.clone()),
        cases: report
            .results
            .iter()
            .filter(|r| r.incident.as_deref() == Some(inc.id.as_str()))
            .map(|r| r.id.clone())
            .collect(),
        id: inc.id,
        at: inc.at,
        reason: inc.reason,
    };
    let incidents = (env.http.health().incidents().into_iter())
        .map(|inc| record(inc, "target-down"))
        .chain(deadline.map(|inc| record(inc, "deadline")))
        .collect();
    report.incidents = incidents;
    drop(env);
    super::shut_down(reference);
    let (outcome, comparison) = judge(&report, expect.as_ref(), &known_ids);
    report.outcome = Some(outcome);
    opts.reports.write(&report, "reports", events)?;
    Ok(Finished {
        report,
        comparison,
        write_expect: opts.write_expect,
    })
}

/// Runs `work`, passing on each wait a case announces meanwhile as an [`Event::Waiting`].
async fn with_waits<T>(
    work: impl std::future::Future<Output = T>,
    waits: &mut tokio::sync::mpsc::UnboundedReceiver<crate::step::Waiting>,
    events: Events<'_>,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            Some(w) = waits.recv() => events(Event::Waiting(&w)),
        }
    }
}

/// Keeps only `shard`'s share of the selected cases (the selection is the same on every
/// machine, so the shares are too); the record says which share of how many cases.
fn take_shard(
    cases: &mut Vec<Case>,
    shard: crate::shard::Shard,
    timings: Option<&std::path::Path>,
) -> Result<ShardRecord, Error> {
    let timings = match timings {
        Some(p) => {
            Some(crate::shard::load_timings(p).map_err(|e| Error(format!("--shard-timings {e}")))?)
        }
        None => None,
    };
    let total = cases.len();
    let keep = crate::shard::select(cases, shard, timings.as_ref());
    let mut i = 0;
    cases.retain(|_| {
        i += 1;
        keep.binary_search(&(i - 1)).is_ok()
    });
    Ok(ShardRecord {
        index: shard.index,
        count: shard.count,
        total,
    })
}

/// A cross-check of a sharded run compared the metadata with the facts of its own shard's
/// cases only (and its own probes): its details say so, so a reader of the merged report knows
/// what evidence it had.
fn note_shard_on_cross_checks(results: &mut [CaseResult], cases: &[Case], s: &ShardRecord) {
    for r in results.iter_mut() {
        if cases.iter().any(|c| c.id() == r.id && c.file.after_others) {
            r.details.push(format!(
                "sharded run ({}/{}): compared with the facts of this shard's {} cases, not all {} of the run",
                s.index,
                s.count,
                cases.len(),
                s.total
            ));
        }
    }
}

/// A run whose reports are written (its verdict in them), before `--write-expect`.
pub struct Finished {
    pub report: RunReport,
    comparison: Option<(String, Comparison)>,
    write_expect: Option<PathBuf>,
}

/// The run's verdict: its exit, and the comparison with `--expect` when one was made.
pub struct Gate {
    pub exit: Exit,
    /// The expectations file's name and what differed.
    pub comparison: Option<(String, Comparison)>,
}

impl Finished {
    /// Writes `--write-expect`, then gives the run's verdict (judged before the reports were
    /// written, so they say the same; see [`judge`]).
    pub fn gate(&self) -> Result<Gate, Error> {
        let report = &self.report;
        if let Some(p) = &self.write_expect {
            write_expectations(report, p, "authconform run --expect")?;
        }
        let exit = match report.outcome.as_ref().map(|o| o.state) {
            Some(OutcomeState::Passed) => Exit::Ok,
            Some(OutcomeState::Incomplete) => Exit::Unjudged,
            _ => Exit::Failed,
        };
        Ok(Gate {
            exit,
            comparison: self.comparison.clone(),
        })
    }
}

/// Writes `report`'s verdicts to `path` as an expectations file for `command` (`--write-expect`
/// of a run or a lifecycle campaign). Reasons and dates written by hand outlive a refresh.
pub(super) fn write_expectations(
    report: &RunReport,
    path: &std::path::Path,
    command: &str,
) -> Result<(), Error> {
    let header = format!(
        "Expected verdicts for `{command}`; written by --write-expect.\nTarget: {} {}",
        report.target.kind,
        report
            .target
            .resource
            .as_deref()
            .or(report.target.issuer.as_deref())
            .unwrap_or("")
    );
    let previous = if path.exists() {
        Some(expected_verdicts::load(path).map_err(Error::new)?)
    } else {
        None
    };
    let text = expected_verdicts::render(&report.results, &header, previous.as_ref());
    std::fs::write(path, text).map_err(|e| Error(format!("cannot write {}: {e}", path.display())))
}

/// The run's verdict. An interrupted run fails. With `--expect`, every verdict must match the
/// file; without, no MUST case may fail (tolerated warnings aside). Where nothing failed but
/// gating cases could not be judged (an errored MUST case, a case an incident kept from its
/// verdict; with `--expect`, every difference an `errored`), the run is incomplete: exit 3,
/// so a pipeline can tell a broken run or an unreachable server from a non-conformant one.
pub fn judge(
    report: &RunReport,
    expect: Option<&Expectations>,
    known_ids: &[String],
) -> (Outcome, Option<(String, Comparison)>) {
    let outcome = |state: OutcomeState, reason: String, expect: Option<ExpectRecord>| Outcome {
        exit_code: match state {
            OutcomeState::Passed => Exit::Ok,
            OutcomeState::Incomplete => Exit::Unjudged,
            OutcomeState::Failed | OutcomeState::Interrupted => Exit::Failed,
        }
        .code(),
        state,
        reason,
        expect,
    };
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let cmp = expect.map(|exp| {
        let cmp = expected_verdicts::compare(exp, &report.results, known_ids);
        (exp.path.clone(), cmp)
    });
    let record = cmp.as_ref().map(|(path, cmp)| ExpectRecord {
        file: path.clone(),
        matched: cmp.matched,
        changed: (cmp.mismatches.iter())
            .map(|(id, want, got)| ExpectChange {
                id: id.clone(),
                expected: Some(*want),
                observed: *got,
            })
            .collect(),
        unlisted: (cmp.unlisted.iter())
            .map(|(id, got)| ExpectChange {
                id: id.clone(),
                expected: None,
                observed: *got,
            })
            .collect(),
        stale: cmp.stale.clone(),
        expired: (cmp.expired.iter())
            .map(|e| ExpiredEntry {
                id: e.id.clone(),
                until: e
                    .entry
                    .until
                    .map(expected_verdicts::format_date)
                    .unwrap_or_default(),
                reason: e.entry.reason.clone(),
                expected: e.entry.status,
                observed: e.observed,
            })
            .collect(),
    });
    if report.interrupted {
        let o = outcome(
            OutcomeState::Interrupted,
            "interrupted before every case had a verdict".into(),
            record,
        );
        return (o, cmp);
    }
    let cut_short = report.results.iter().any(|r| r.incident.is_some());
    let o = match (&cmp, record) {
        (Some((path, c)), Some(rec)) => {
            let differences: Vec<Status> = c.differences().map(|d| d.1).collect();
            // An expired entry is named in the reason: that is what a reader must act on.
            let expired: Vec<String> = (c.expired.iter())
                .filter(|e| e.gates())
                .map(|e| {
                    let until = e.entry.until.map(expected_verdicts::format_date);
                    format!("{} (until {})", e.id, until.unwrap_or_default())
                })
                .collect();
            if differences.is_empty() {
                let mut reason = format!("every verdict as {path} expects ({} matched)", c.matched);
                if !c.expired.is_empty() {
                    reason.push_str(&format!(
                        "; {} past its date",
                        plural(c.expired.len(), "entry", "entries")
                    ));
                }
                outcome(OutcomeState::Passed, reason, Some(rec))
            } else {
                let mut reason = format!(
                    "{} from {path}",
                    plural(differences.len(), "verdict differs", "verdicts differ")
                );
                if !expired.is_empty() {
                    reason.push_str(&format!(
                        " ({} gating again: {})",
                        plural(expired.len(), "expired entry", "expired entries"),
                        expired.join(", ")
                    ));
                }
                let unjudged = differences.iter().all(|s| *s == Status::Errored);
                let state = if unjudged {
                    OutcomeState::Incomplete
                } else {
                    OutcomeState::Failed
                };
                outcome(state, reason, Some(rec))
            }
        }
        _ => {
            let failed = report
                .results
                .iter()
                .filter(|r| r.gates() && r.status == Status::Failed)
                .count();
            let unjudged = report.results.iter().filter(|r| r.gates()).count() - failed;
            if failed > 0 {
                let reason = format!(
                    "{} failed",
                    plural(failed, "MUST requirement", "MUST requirements")
                );
                outcome(OutcomeState::Failed, reason, None)
            } else if unjudged > 0 || cut_short {
                let reason = if unjudged > 0 {
                    format!(
                        "nothing failed, but {} could not be judged",
                        plural(unjudged, "MUST case", "MUST cases")
                    )
                } else {
                    "nothing failed, but an incident kept cases from their verdicts".into()
                };
                outcome(OutcomeState::Incomplete, reason, None)
            } else {
                let warnings = report.summary.warnings;
                let reason = if warnings > 0 {
                    format!(
                        "no MUST requirement failed ({} tolerated)",
                        plural(warnings, "warning", "warnings")
                    )
                } else {
                    "no MUST requirement failed".into()
                };
                outcome(OutcomeState::Passed, reason, None)
            }
        }
    };
    (o, cmp)
}
