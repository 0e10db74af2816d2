//! The runner: orders the cases (waiting ones first), expands their variants, dispatches each
//! step to the step layer ([`crate::step`]) or to a named check ([`crate::checks`]), and
//! collects a [`CaseResult`] per case. It formats nothing; reporters read the records
//! afterwards. Only the session imports it.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;

use crate::case::{Case, Feature, Step};
use crate::checks;
use crate::health::Incident;
use crate::http::Request;
use crate::record::{CaseResult, SpecInfo, Status};
use crate::spec::{Revision, SpecChoice};
use crate::step;
use crate::step::{CaseCtx, RunEnv, Slot, StepResult, Stop};

mod login;
pub use login::{LoginFailure, LoginTrace, login_trace};

/// Runs one case to a verdict. Never panics on server behaviour; every way a step can end is a
/// status.
pub async fn run_case(env: &RunEnv, case: &Case) -> CaseResult {
    run_case_in(env, case, None).await
}

/// Runs a case holding a running place it gives up while it waits.
pub async fn run_case_in(env: &RunEnv, case: &Case, slot: Option<Slot>) -> CaseResult {
    let started = Instant::now();
    let redactor = env.http.redactor();
    let mut ctx = CaseCtx::new(env);
    ctx.slot = slot;
    ctx.case_id = case.id().to_string();
    ctx.area = case.file.area.clone();
    ctx.error_shape_own = case.file.error_shape == crate::case::model::ErrorShape::Own;
    ctx.needs_second_user = needs_second_user(case);
    let level = case.level_at(env.revision);
    // A case that starts after the target went down is tied to that incident at once, whatever
    // it would have needed: nothing it could learn now would be the server's answer.
    let outcome = if let Some(inc) = env.target_down() {
        ctx.blocked = Some(inc);
        Err(Stop::Error(String::new()))
    } else {
        match missing_feature(env, case) {
            Some(reason) => Err(Stop::Skip(reason)),
            None => {
                // A case that may log in takes its user(s) as it starts, not at its first
                // login: a case that starts alongside it can then never get the same user, even
                // when one of them reaches its login later (after its own discovery requests).
                if may_log_in(case) {
                    let _ = ctx.test_user(crate::case::model::TestUser::First);
                }
                run_variants(&mut ctx, case).await
            }
        }
    };
    let (status, warning, message) = match outcome {
        Ok(()) if !ctx.warnings.is_empty() => (Status::Failed, true, ctx.warnings[0].clone()),
        Ok(()) => (
            Status::Passed,
            false,
            ctx.last_pass
                .clone()
                .unwrap_or_else(|| "all expectations held".into()),
        ),
        Err(Stop::Pass(m)) if !ctx.warnings.is_empty() => {
            let _ = m;
            (Status::Failed, true, ctx.warnings[0].clone())
        }
        Err(Stop::Pass(m)) => (Status::Passed, false, m),
        Err(Stop::Fail(m)) => (Status::Failed, false, m),
        Err(Stop::Skip(m)) => (Status::Skipped, false, m),
        Err(Stop::Error(m)) => (Status::Errored, false, m),
    };
    // A case that met a server that stopped answering was not judged on its own evidence: it
    // is errored with the shared reason, unless it had already seen its requirement broken.
    let (status, warning, message, incident) = match ctx.blocked.take() {
        Some(inc) if status != Status::Failed || warning => {
            if !message.is_empty() {
                ctx.note(format!("before the incident: {message}"));
            }
            (Status::Errored, false, inc.reason, Some(inc.id))
        }
        _ => (status, warning, message, None),
    };
    // A stage-setting request that failed names its cause; only an unjudged case carries it.
    let blocked_by = ctx
        .blocked_by
        .take()
        .filter(|_| status == Status::Errored && incident.is_none())
        .map(|mut b| {
            b.reason = redactor.text(&b.reason);
            b
        });
    step::document::attach_evidence(&mut ctx);
    let test_users = ctx.users_used();
    // The users go back to the pool as the case ends, not when its record is read.
    ctx.leases.clear();
    CaseResult {
        id: case.id().to_string(),
        area: case.file.area.clone(),
        level,
        role: case.file.role.as_str().to_string(),
        title: case.file.title.clone(),
        refs: case.file.refs.clone(),
        status,
        warning,
        message: redactor.text(&message),
        details: ctx.details.iter().map(|d| redactor.text(d)).collect(),
        spec: env.revision.as_str().to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
        exchanges: ctx.exchanges,
        incident,
        blocked_by,
        quote: case.file.quote.clone(),
        test_users,
    }
}

/// Can the case log a user in? Only `authorize` steps, named checks and `document` steps
/// (the CIMD control) do; a case of requests and expectations alone never holds a user.
fn may_log_in(case: &Case) -> bool {
    case.file
        .steps
        .iter()
        .any(|s| matches!(s, Step::Authorize(_) | Step::Check(_) | Step::Document(_)))
}

/// Does the case log in as a second user anywhere (a requirement, or an `authorize` step)?
fn needs_second_user(case: &Case) -> bool {
    case.file.requires.contains(&Feature::SecondUser)
        || case.file.steps.iter().any(
            |s| matches!(s, Step::Authorize(a) if a.user == crate::case::model::TestUser::Second),
        )
}

fn missing_feature(env: &RunEnv, case: &Case) -> Option<String> {
    for f in &case.file.requires {
        match f {
            Feature::Resource if env.target.resource.is_none() => {
                return Some(
                    "no MCP endpoint given (--resource): this checks the resource server".into(),
                );
            }
            Feature::Issuer if env.target.issuer.is_none() && env.target.resource.is_none() => {
                return Some("no authorization server given (--issuer) or discoverable".into());
            }
            Feature::Proxy if env.profile.target.proxy != Some(true) => {
                return Some(
                    "the AS is not declared an MCP proxy (profile target.proxy = true)".into(),
                );
            }
            Feature::ScopeTiers
                if env.profile.scopes.elevated_tool.is_none()
                    || env.profile.authorization.scope.is_none() =>
            {
                return Some(
                    "no scope tiers configured: the profile names no tool that needs more than the baseline scope ([scopes] elevated_tool, with the baseline in [authorization] scope)".into(),
                );
            }
            Feature::ScopeHierarchy
                if env.profile.scopes.broad_scope.is_none()
                    || env.profile.scopes.narrow_tool.is_none() =>
            {
                return Some(
                    "no scope hierarchy declared: the profile names no broader scope and a tool its narrower one covers ([scopes] broad_scope, narrow_tool)".into(),
                );
            }
            Feature::SecondUser if env.users.pool().len() < 2 => {
                return Some(
                    "no second test user is configured ([login] second_username / second_password_env, or [[login.users]])".into(),
                );
            }
            Feature::StateHandles if env.profile.state_handles.tools().is_none() => {
                return Some(
                    "no state-handle tools are configured ([state_handles] create_tool, use_tool, argument): the server is not known to mint handles".into(),
                );
            }
            Feature::GrantRevocation if !env.profile.grant_revocation.configured() => {
                return Some(
                    "no way for the test user to revoke a client's access is configured ([grant_revocation] url or command): this row is manual otherwise".into(),
                );
            }
            _ => {}
        }
    }
    None
}

/// Runs the steps once, or once per variant (each from a clean slate but the discovered
/// metadata), and combines the verdicts: any failure fails the case and every failing variant is
/// named; otherwise any error errors it; a case whose variants all skip is skipped.
async fn run_variants(ctx: &mut CaseCtx<'_>, case: &Case) -> StepResult {
    let variants = &case.file.variants;
    if variants.is_empty() {
        return run_steps(ctx, case).await;
    }
    let (mut fails, mut errors, mut skips, mut passes) = (vec![], vec![], vec![], 0);
    for v in variants {
        ctx.saved.retain(|k, _| k == "asm" || k == "prm");
        ctx.sessions.clear();
        ctx.variant = v.vars.clone();
        ctx.variant_label = Some(v.label.clone());
        ctx.note(format!("variant {}:", v.label));
        match run_steps(ctx, case).await {
            Ok(()) | Err(Stop::Pass(_)) => passes += 1,
            Err(Stop::Fail(m)) => fails.push(format!("[{}] {m}", v.label)),
            Err(Stop::Error(m)) => errors.push(format!("[{}] {m}", v.label)),
            Err(Stop::Skip(m)) => skips.push(format!("[{}] {m}", v.label)),
        }
    }
    let n = variants.len();
    if !fails.is_empty() {
        return Err(Stop::Fail(format!(
            "{} of {n} variants failed: {}",
            fails.len(),
            fails.join("; ")
        )));
    }
    if !errors.is_empty() {
        return Err(Stop::Error(format!(
            "{} of {n} variants could not be judged: {}",
            errors.len(),
            errors.join("; ")
        )));
    }
    if passes == 0 {
        return Err(Stop::Skip(skips.join("; ")));
    }
    let skipped = if skips.is_empty() {
        String::new()
    } else {
        format!(" ({} skipped: {})", skips.len(), skips.join("; "))
    };
    ctx.last_pass = Some(format!("all {passes} variants held{skipped}"));
    Ok(())
}

/// Runs a case's steps in order, each by the step layer (or, for `check`, by the named check),
/// until one stops the case.
async fn run_steps(ctx: &mut CaseCtx<'_>, case: &Case) -> StepResult {
    for step in &case.file.steps {
        match step {
            Step::McpRequest(s) => step::request::run_mcp(ctx, s).await,
            Step::Http(s) => step::request::run_http(ctx, s).await,
            Step::DiscoverPrm(s) => step::discovery::run_prm(ctx, s).await,
            Step::DiscoverAs(s) => step::discovery::run_as(ctx, s).await,
            Step::Expect(s) => step::run_expect(ctx, s),
            Step::Client(s) => step::client::run(ctx, s).await,
            Step::Authorize(s) => step::authorize::run(ctx, s).await,
            Step::Document(s) => step::document::document(ctx, s).await,
            Step::Fetches(s) => step::document::fetches(ctx, s),
            Step::Wait(s) => step::wait::run(ctx, s).await,
            Step::Token(s) => step::token::run(ctx, s).await,
            Step::Check(s) => checks::run(ctx, s).await,
        }?;
    }
    Ok(())
}

/// Picks the revision to grade at. `auto` asks the server: a 2026-07-28 server answers the
/// stateless `server/discover`, older ones the `initialize` handshake. Most protected servers
/// answer 401 to both before any dispatch; then, when the profile can log in, the suite logs the
/// test user in once (before any case, its exchanges attributed to none) and asks again with
/// the access token. Only when that is impossible or fails is the fallback revision graded,
/// saying why.
pub async fn choose_revision(env: &RunEnv, choice: SpecChoice) -> SpecInfo {
    if let SpecChoice::Fixed(r) = choice {
        return SpecInfo {
            graded: r.as_str().into(),
            source: "flag".into(),
            detection: "--spec".into(),
        };
    }
    let fallback = |why: String| SpecInfo {
        graded: Revision::FALLBACK.as_str().into(),
        source: "auto".into(),
        detection: format!(
            "{why}; graded at {} (choose with --spec)",
            Revision::FALLBACK
        ),
    };
    let Some(resource) = env.target.resource.as_deref() else {
        return fallback("no MCP endpoint to ask".into());
    };
    let (without, wants_token) = match ask_revision(&env.http, resource, None).await {
        (Some(found), ..) => {
            return SpecInfo {
                graded: found.revision.as_str().into(),
                source: "auto".into(),
                detection: format!(
                    "{} answered without authorization, versions {:?}",
                    found.rpc, found.versions
                ),
            };
        }
        (None, observations, wants_token) => (observations, wants_token),
    };
    // Only a refusal for want of authorization is worth a login: a server that did not answer,
    // or answered otherwise, would not say more with a token, and a login against a server that
    // is down would only spend the run's time on timeouts.
    if !wants_token || env.target_down().is_some() {
        return fallback(format!("detection inconclusive ({without})"));
    }
    let token = match login_for_detection(env).await {
        Ok(t) => t,
        Err(why) => {
            return fallback(format!(
                "detection inconclusive ({without}): the server requires authorization before it says which revision it speaks, and no token could be had to ask with: {why}"
            ));
        }
    };
    match ask_revision(&env.http, resource, Some(&token)).await {
        (Some(found), with, _) => SpecInfo {
            graded: found.revision.as_str().into(),
            source: "auto".into(),
            detection: format!(
                "{} with a token from the profile's login answered {} {:?}: graded at {} (with the token {with}; without a token {without})",
                found.rpc,
                if found.rpc == "server/discover" {
                    "supportedVersions"
                } else {
                    "protocolVersion"
                },
                found.versions,
                found.revision
            ),
        },
        (None, with, _) => fallback(format!(
            "detection inconclusive: without a token {without}; with a token from the profile's login {with}"
        )),
    }
}

/// A revision a server said it speaks: the question that told, and the versions it named.
struct Detected {
    rpc: &'static str,
    versions: Vec<String>,
    revision: Revision,
}

/// Asks the MCP endpoint which revision it speaks, with `token` when there is one:
/// `server/discover` (2026-07-28) and `initialize` (up to 2025-11-25), both at once so a silent
/// server costs one timeout, not two in a row. The newest known revision any answer names wins.
/// And what each question got, in words, and whether any was refused for want of authorization
/// (401 or 403).
async fn ask_revision(
    http: &crate::http::Http,
    resource: &str,
    token: Option<&str>,
) -> (Option<Detected>, String, bool) {
    let asks = ["server/discover", "initialize"].map(|rpc| {
        // Asked in the newest form: a server that knows 2026-07-28 answers it, an older one
        // answers `initialize` with the version it speaks instead (MCP lifecycle negotiation).
        let (body, headers) = step::request::mcp_body(rpc, Revision::V2026_07_28);
        let note = match token {
            Some(_) => format!("revision detection: {rpc} with a token"),
            None => format!("revision detection: {rpc}"),
        };
        let mut req = Request::new("POST", resource, note)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        async move { (rpc, http.send(req).await.0) }
    });
    let mut observations = Vec::new();
    let mut best: Option<Detected> = None;
    let mut refused = false;
    for (rpc, res) in futures_util::future::join_all(asks).await {
        match res {
            Ok(r) if r.status == 200 => {
                let text = r.text();
                // An SSE answer carries the JSON in `data:` lines.
                let json = r.json().or_else(|| {
                    text.lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .find_map(|d| serde_json::from_str(d.trim()).ok())
                });
                let result = json.as_ref().and_then(|j| j.get("result"));
                let mut versions: Vec<String> = Vec::new();
                if let Some(v) = result
                    .and_then(|r| r.get("protocolVersion"))
                    .and_then(|v| v.as_str())
                {
                    versions.push(v.to_string());
                }
                if let Some(a) = result
                    .and_then(|r| r.get("supportedVersions"))
                    .and_then(|v| v.as_array())
                {
                    versions.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
                }
                match versions
                    .iter()
                    .filter_map(|v| Revision::from_protocol_version(v))
                    .max()
                {
                    Some(rev) if best.as_ref().is_none_or(|b| rev > b.revision) => {
                        observations.push(format!("{rpc}: {versions:?}"));
                        best = Some(Detected {
                            rpc,
                            versions,
                            revision: rev,
                        });
                    }
                    Some(_) => observations.push(format!("{rpc}: {versions:?}")),
                    None => {
                        let why = json
                            .as_ref()
                            .and_then(|j| j.get("error"))
                            .and_then(|e| e.get("message"))
                            .and_then(|m| m.as_str())
                            .map(|m| format!(" (JSON-RPC error: {})", one_line(m)))
                            .unwrap_or_default();
                        observations
                            .push(format!("{rpc}: 200 without a known protocol version{why}"));
                    }
                }
            }
            Ok(r) => {
                refused |= r.status == 401 || r.status == 403;
                observations.push(format!("{rpc}: {}", r.status));
            }
            Err(e) => observations.push(format!("{rpc}: {e}")),
        }
    }
    (best, observations.join(", "), refused)
}

/// The longest the detection login may take in all: each of its requests is bounded by the
/// run's HTTP timeout, and a login that needs many of them must not hold the whole run up.
const DETECTION_LOGIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One access token for revision detection, obtained as a case obtains one (a `client` step,
/// an `authorize` step through the profile's login driver, a `token` step), in a context of its
/// own whose exchanges are dropped: they belong to no case. Why not, in words, when it cannot.
async fn login_for_detection(env: &RunEnv) -> Result<String, String> {
    if env.profile.login.driver == crate::login::Driver::Manual {
        // A person would be asked to log in once more, before any case, only to learn this.
        return Err("the profile's login is manual".into());
    }
    let login = async {
        let mut ctx = CaseCtx::new(env);
        ctx.case_id = "revision-detection".into();
        login::one_login(&mut ctx).await.1
    };
    match tokio::time::timeout(DETECTION_LOGIN_LIMIT, login).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(f)) => Err(format!(
            "the profile's login failed at the {} step: {}",
            f.step,
            one_line(&f.why)
        )),
        Err(_) => Err(format!(
            "the profile's login took longer than {} s",
            DETECTION_LOGIN_LIMIT.as_secs()
        )),
    }
}

/// Runs the cases with bounded concurrency, calling `on_result` as each finishes (console
/// progress), and returns the results in case order: all of them, or once `stop` is
/// signalled, those that finished. When `deadline` passes first, every case not finished by
/// then is `errored` with the one shared reason, returned as the second value.
pub async fn run_all(
    env: Arc<RunEnv>,
    cases: Vec<Case>,
    concurrency: usize,
    stop: &crate::stop::StopSignal,
    deadline: Option<std::time::Duration>,
    on_result: impl Fn(&CaseResult) + Send + Sync,
) -> (Vec<CaseResult>, Option<Incident>) {
    let n = cases.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    // Cases that wait on purpose start first, so their waits overlap the rest of the run.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (phase_of(&cases[i]), !cases[i].waits()));
    // Three phases: the cases that can share the server, then those that must have it to
    // themselves (one at a time), then the cross-checks (metadata against behaviour) that read
    // the facts the others published. A phase starts once every case of the earlier ones ended.
    let mut left = [0usize; 3];
    for c in &cases {
        left[phase_of(c)] += 1;
    }
    let open_phase = |left: &[usize; 3]| left.iter().position(|&n| n > 0).unwrap_or(2);
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(open_phase(&left));
    let alone = Arc::new(tokio::sync::Mutex::new(()));
    let mut aborts = Vec::with_capacity(n);
    let mut running = futures_util::stream::FuturesUnordered::new();
    for i in order {
        let env = env.clone();
        let sem = sem.clone();
        let c2 = cases[i].clone();
        let mut phase_rx = phase_rx.clone();
        let alone = alone.clone();
        // Each case in its own task: a panic in one check must not take the run down, and a
        // deadline or a stop can abort what is still running.
        let handle = tokio::spawn(async move {
            let phase = phase_of(&c2);
            let _ = phase_rx.wait_for(|open| *open >= phase).await;
            let _alone = if phase == 1 {
                Some(alone.lock().await)
            } else {
                None
            };
            let permit = sem.clone().acquire_owned().await.ok();
            run_case_in(&env, &c2, Some(Slot { sem, permit })).await
        });
        aborts.push(handle.abort_handle());
        running.push(async move { (i, handle.await) });
    }
    let mut slots: Vec<Option<CaseResult>> = vec![None; n];
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let mut passed_deadline = false;
    loop {
        let next = tokio::select! {
            next = running.next() => next,
            _ = stop.stopped() => None,
            _ = &mut expired => {
                passed_deadline = true;
                None
            }
        };
        let Some((i, joined)) = next else { break };
        let r = match joined {
            Ok(r) => r,
            Err(e) => crashed(
                &cases[i],
                format!("internal error while running {}: {e}", cases[i].id()),
            ),
        };
        on_result(&r);
        slots[i] = Some(r);
        left[phase_of(&cases[i])] -= 1;
        phase_tx.send_replace(open_phase(&left));
    }
    // Whatever still runs is abandoned: nothing it sends from now on would be reported.
    for a in &aborts {
        a.abort();
    }
    let mut incident = None;
    if passed_deadline {
        let secs = deadline.unwrap_or_default().as_secs_f64();
        let inc = Incident {
            id: "deadline".into(),
            origin: String::new(),
            at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            reason: format!(
                "not run: the run's deadline ({secs:.0} s, --deadline) passed before this case finished"
            ),
        };
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() {
                let mut r = crashed(&cases[i], inc.reason.clone());
                r.level = cases[i].level_at(env.revision);
                r.spec = env.revision.as_str().to_string();
                r.incident = Some(inc.id.clone());
                on_result(&r);
                *slot = Some(r);
            }
        }
        incident = Some(inc);
    }
    (slots.into_iter().flatten().collect(), incident)
}

/// A case's phase in a run: 0 shares the server, 1 runs alone, 2 cross-checks after all.
fn phase_of(c: &Case) -> usize {
    if c.file.after_others {
        2
    } else if c.file.exclusive {
        1
    } else {
        0
    }
}

/// Did the server answer any of the case's requests with a server error or a rate limit? Under
/// concurrency that may be the load of the other cases, not this case's requirement.
fn saw_overload(r: &CaseResult) -> bool {
    r.exchanges
        .iter()
        .any(|x| x.status.is_some_and(|s| s >= 500 || s == 429))
}

/// Re-runs, one at a time, each case that failed or errored after the server answered it with
/// a 5xx or 429 while `concurrency` cases ran at once: a fragile server must not have its
/// overload filed under unrelated requirements. A case whose verdict changes alone takes the
/// verdict it got alone, with the concurrent one in its details; the ids of those cases are
/// returned (the run reports them as one finding: unstable under parallel clients), and each
/// new verdict is passed to `on_result` (the console prints it again). At most `limit` cases are
/// re-run.
pub async fn rerun_alone(
    env: &RunEnv,
    cases: &[Case],
    results: &mut [CaseResult],
    concurrency: usize,
    limit: usize,
    on_result: impl Fn(&CaseResult),
) -> Vec<String> {
    let mut changed = Vec::new();
    if concurrency <= 1 {
        return changed;
    }
    let suspects: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            matches!(r.status, Status::Failed | Status::Errored)
                && r.incident.is_none()
                && saw_overload(r)
        })
        .map(|(i, _)| i)
        .take(limit)
        .collect();
    for i in suspects {
        let Some(case) = cases.iter().find(|c| c.id() == results[i].id) else {
            continue;
        };
        if env.target_down().is_some() {
            break;
        }
        let alone = run_case(env, case).await;
        if alone.status == results[i].status && alone.warning == results[i].warning {
            continue;
        }
        // Alone the suite could not tell (a rate limit, a refused stage): that is no better
        // evidence than the verdict it replaces, which stays, saying so.
        if alone.status == Status::Errored {
            results[i].details.push(format!(
                "re-run alone after a 5xx or 429 under {concurrency} parallel clients, it could not be judged ({}): the verdict above stands",
                one_line(&alone.message)
            ));
            continue;
        }
        let before = &results[i];
        let mut r = alone;
        r.details.insert(
            0,
            format!(
                "unstable under {concurrency} parallel clients: with the other cases running this case was {} ({}), after the server answered a 5xx or 429; run alone it is {}",
                before.status.as_str(),
                one_line(&before.message),
                r.status.as_str()
            ),
        );
        changed.push(r.id.clone());
        on_result(&r);
        results[i] = r;
    }
    changed
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().take(200).collect();
    s.replace(['\n', '\r'], " ")
}

fn crashed(case: &Case, msg: String) -> CaseResult {
    CaseResult {
        id: case.id().to_string(),
        area: case.file.area.clone(),
        level: case.file.level.into(),
        role: case.file.role.as_str().into(),
        title: case.file.title.clone(),
        refs: case.file.refs.clone(),
        status: Status::Errored,
        warning: false,
        message: msg,
        details: vec![],
        spec: String::new(),
        duration_ms: 0,
        exchanges: vec![],
        incident: None,
        blocked_by: None,
        quote: case.file.quote.clone(),
        test_users: Vec::new(),
    }
}
