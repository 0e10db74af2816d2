//! Runs a sequence of operations against the live target through the step layer (the same
//! client provisioning, login drivers, PKCE and token requests the cases use), hands every
//! answer to the model, and keeps each step's exchanges as evidence.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::model::{CodeUse, Hint, Op, client_name};
use super::oracle::{self, Answer, Call, Choices, Model, Timing, Violation, asked_scope, usable};
use crate::case::model::{AuthorizeStep, TokenStep};
use crate::record::Exchange;
use crate::step::{CaseCtx, RunEnv, Saved, Stop};

/// What a campaign knows of its target before the first sequence.
pub struct Target {
    /// The two clients (`a`, `b`), provisioned once.
    pub clients: Vec<crate::step::client::Client>,
    /// A confidential client the introspection endpoint answers (RFC 7662 §2.1), if any.
    pub introspector: Option<crate::step::client::Client>,
    /// The scope the profile asks for, as a list.
    pub asked: Vec<String>,
    /// Every scope the campaign knows of (asked + advertised): a "wider" refresh asks these.
    pub known_scopes: Vec<String>,
    pub revocation: bool,
    pub introspection: bool,
    pub registration: bool,
    pub resource: Option<String>,
    pub timing: Timing,
    /// Longest wait for an access token to expire, in seconds.
    pub max_expiry_wait: u64,
}

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRun {
    pub op: Op,
    /// What the step did and what came back, in words.
    pub outcome: String,
    /// Indices of its exchanges in [`SequenceRun::exchanges`].
    pub exchanges: std::ops::Range<usize>,
    pub millis: u64,
    /// Whether it logged in (and how long that took).
    pub login_ms: Option<u64>,
}

/// A sequence as it ran.
#[derive(Debug, Default, Clone)]
pub struct SequenceRun {
    pub steps: Vec<StepRun>,
    pub exchanges: Vec<Exchange>,
    pub violations: Vec<Violation>,
    /// Checks made, per invariant.
    pub checked: BTreeMap<super::oracle::Invariant, u64>,
    /// Steps whose request got no answer that could be judged.
    pub unjudged: u64,
    /// The target stopped answering (the run's health breaker), if it did.
    pub target_down: Option<String>,
}

/// Runs `ops` as sequence number `sequence`, against `choices` learned so far. `sessions`
/// carries the login sessions (cookies) from one sequence to the next, so a campaign logs in
/// once per client where the AS keeps sessions.
pub async fn run(
    env: &RunEnv,
    target: &Target,
    ops: &[Op],
    sequence: u64,
    choices: &mut Choices,
    sessions: &mut HashMap<String, crate::login::Browser>,
) -> SequenceRun {
    let mut ctx = CaseCtx::new(env);
    ctx.case_id = format!("lifecycle-{sequence}");
    ctx.area = "lifecycle".into();
    for (i, c) in target.clients.iter().enumerate() {
        ctx.saved
            .insert(client_name(i).to_string(), Saved::Client(c.clone()));
    }
    if let Some(c) = &target.introspector {
        ctx.saved
            .insert(INTROSPECTOR.to_string(), Saved::Client(c.clone()));
    }
    ctx.sessions = std::mem::take(sessions);
    // Clients registered by this sequence: "the other client" is the newest of them.
    let mut others: Vec<String> = Vec::new();
    let mut model = Model::new(choices, sequence, target.timing);
    let mut out = SequenceRun::default();
    for (step, op) in ops.iter().enumerate() {
        if let Some(inc) = env.target_down() {
            out.target_down = Some(inc.reason);
            break;
        }
        let first = ctx.exchanges.len();
        let started = Instant::now();
        let (outcome, login_ms, violations) = if usable(op, &model.holdings) {
            perform(&mut ctx, &mut model, target, &mut others, step, op).await
        } else {
            ("nothing held to use: skipped".to_string(), None, Vec::new())
        };
        if outcome.starts_with("no judgeable") || outcome.starts_with("could not") {
            out.unjudged += 1;
        }
        out.violations.extend(violations);
        out.steps.push(StepRun {
            op: op.clone(),
            outcome,
            exchanges: first..ctx.exchanges.len(),
            millis: started.elapsed().as_millis() as u64,
            login_ms,
        });
    }
    out.checked = std::mem::take(&mut model.checked);
    *sessions = std::mem::take(&mut ctx.sessions);
    out.exchanges = std::mem::take(&mut ctx.exchanges);
    out
}

fn stop_text(s: &Stop) -> String {
    match s {
        Stop::Pass(m) | Stop::Fail(m) | Stop::Skip(m) | Stop::Error(m) => m.clone(),
    }
}

/// The answers of the last token request: every parallel response, or the one.
fn answers(ctx: &CaseCtx<'_>, r: Result<Saved, Stop>, copies: u8) -> Vec<Answer> {
    match r {
        Ok(_) if copies > 1 && !ctx.parallel.is_empty() => {
            ctx.parallel.iter().map(|r| Answer::of(Ok(r))).collect()
        }
        Ok(saved) => match saved.response() {
            Some((_, r)) => vec![Answer::of(Ok(r))],
            None => vec![Answer::Unjudged("no response".into())],
        },
        Err(s) => vec![Answer::Unjudged(stop_text(&s))],
    }
}

fn summary(answers: &[Answer]) -> String {
    if answers.len() == 1 {
        return answers[0].describe();
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in answers {
        *counts.entry(a.describe()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| format!("{n}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The saved name of the introspecting client.
const INTROSPECTOR: &str = "introspector";

/// The client a step acts as: `owner` itself, or (`other`) the newest client this sequence
/// registered, else the other of the campaign's two.
fn acting(others: &[String], owner: usize, other: bool) -> String {
    match (other, others.last()) {
        (false, _) => client_name(owner).to_string(),
        (true, Some(newest)) => newest.clone(),
        (true, None) => client_name(owner + 1).to_string(),
    }
}

async fn perform(
    ctx: &mut CaseCtx<'_>,
    model: &mut Model<'_>,
    target: &Target,
    others: &mut Vec<String>,
    step: usize,
    op: &Op,
) -> (String, Option<u64>, Vec<Violation>) {
    match op {
        Op::Register => {
            let name = format!("registered{step}");
            let want = crate::case::model::ClientStep {
                save: name.clone(),
                fresh: true,
                ..Default::default()
            };
            match crate::step::client::provision(ctx, &want).await {
                Ok(c) => {
                    let id = c.client_id.clone();
                    ctx.saved.insert(name.clone(), Saved::Client(c));
                    others.push(name);
                    (format!("registered client {id}"), None, Vec::new())
                }
                Err(s) => (
                    format!("could not register: {}", stop_text(&s)),
                    None,
                    Vec::new(),
                ),
            }
        }
        Op::Introspect { token, access } => {
            let Some(ti) = model.holdings.token(*token, *access) else {
                return ("no such token held".into(), None, Vec::new());
            };
            if target.introspector.is_none() {
                return ("no client may introspect".into(), None, Vec::new());
            }
            let mut params = std::collections::BTreeMap::new();
            params.insert("token".to_string(), model.holdings.tokens[ti].value.clone());
            let step_def = TokenStep {
                client: INTROSPECTOR.into(),
                endpoint: Some("introspection".into()),
                grant_type: String::new(),
                params,
                save: format!("introspect{step}"),
                ..Default::default()
            };
            let r = crate::step::token::token(ctx, &step_def).await;
            let active = match &r {
                Ok(s) => s.response().and_then(|(_, r)| {
                    (r.status == 200)
                        .then(|| r.json())
                        .flatten()
                        .and_then(|d| d.get("active").and_then(|a| a.as_bool()))
                }),
                Err(_) => None,
            };
            let v = model.introspected(step, ti, active);
            let outcome = match (active, r) {
                (Some(a), _) => format!("active: {a}"),
                (None, Ok(s)) => format!(
                    "no judgeable answer ({})",
                    s.response()
                        .map(|(_, r)| format!("status {}", r.status))
                        .unwrap_or_default()
                ),
                (None, Err(s)) => format!("no judgeable answer ({})", stop_text(&s)),
            };
            (outcome, None, v.into_iter().collect())
        }
        Op::Authorize { client, narrow } => {
            let ci = *client as usize % target.clients.len();
            let save = format!("auth{step}");
            let mut params = std::collections::BTreeMap::new();
            let asked = if *narrow && target.asked.len() > 1 {
                params.insert("scope".to_string(), target.asked[0].clone());
                vec![target.asked[0].clone()]
            } else {
                target.asked.clone()
            };
            let a = AuthorizeStep {
                client: client_name(ci).into(),
                save: save.clone(),
                session: Some(format!("session-{}", client_name(ci))),
                params,
                ..Default::default()
            };
            let started = Instant::now();
            let r = crate::step::authorize::authorize(ctx, &a).await;
            let login = Some(started.elapsed().as_millis() as u64);
            match r {
                Ok(auth) => {
                    let outcome = match auth.code() {
                        Some(_) => "a code came back".to_string(),
                        None => format!("no code: the authorization {}", auth.describe()),
                    };
                    if auth.code().is_some() {
                        ctx.saved
                            .insert(save.clone(), Saved::Authorization(Box::new(auth)));
                        model.authorized(save, ci, *narrow, asked);
                    }
                    (outcome, login, Vec::new())
                }
                Err(s) => (
                    format!("could not log in: {}", stop_text(&s)),
                    login,
                    Vec::new(),
                ),
            }
        }
        Op::Redeem { code, by, copies } => {
            let Some(ci) = model.holdings.code(*code) else {
                return ("no code held".into(), None, Vec::new());
            };
            let c = model.holdings.codes[ci].clone();
            let client = acting(others, c.client, *by == CodeUse::OtherClient);
            let mut params = std::collections::BTreeMap::new();
            if *by == CodeUse::WrongVerifier {
                params.insert(
                    "code_verifier".to_string(),
                    crate::step::authorize::new_verifier(),
                );
            }
            let t = TokenStep {
                client,
                from: Some(c.saved.clone()),
                params,
                parallel: (*copies > 1).then_some(*copies as usize),
                save: format!("redeem{step}"),
                ..Default::default()
            };
            ctx.parallel.clear();
            let r = crate::step::token::token(ctx, &t).await;
            let a = answers(ctx, r, *copies);
            let v = model.redeemed(step, ci, *by, &a);
            (summary(&a), None, v)
        }
        Op::Refresh {
            token,
            scope,
            other_client,
            copies,
        } => {
            let Some(ti) = model.holdings.token(*token, false) else {
                return ("no refresh token held".into(), None, Vec::new());
            };
            let t = model.holdings.tokens[ti].clone();
            let fam = model.holdings.families[t.family].clone();
            let client = acting(others, fam.client, *other_client);
            let asked = asked_scope(*scope, &fam.granted, &target.known_scopes);
            let mut params = std::collections::BTreeMap::new();
            params.insert("refresh_token".to_string(), t.value.clone());
            if let Some(s) = &asked {
                params.insert("scope".to_string(), s.join(" "));
            }
            let step_def = TokenStep {
                client,
                grant_type: "refresh_token".into(),
                params,
                parallel: (*copies > 1).then_some(*copies as usize),
                save: format!("refresh{step}"),
                ..Default::default()
            };
            ctx.parallel.clear();
            let r = crate::step::token::token(ctx, &step_def).await;
            let a = answers(ctx, r, *copies);
            let v = model.refreshed(step, ti, *scope, asked, *other_client, &a);
            (summary(&a), None, v)
        }
        Op::Revoke {
            token,
            access,
            hint,
            other_client,
        } => {
            let Some(ti) = model.holdings.token(*token, *access) else {
                return ("no such token held".into(), None, Vec::new());
            };
            let t = model.holdings.tokens[ti].clone();
            let fam = model.holdings.families[t.family].clone();
            let client = acting(others, fam.client, *other_client);
            let mut params = std::collections::BTreeMap::new();
            params.insert("token".to_string(), t.value.clone());
            let right = if *access {
                "access_token"
            } else {
                "refresh_token"
            };
            let wrong = if *access {
                "refresh_token"
            } else {
                "access_token"
            };
            match hint {
                Hint::None => {}
                Hint::Right => {
                    params.insert("token_type_hint".into(), right.into());
                }
                Hint::Wrong => {
                    params.insert("token_type_hint".into(), wrong.into());
                }
            }
            let step_def = TokenStep {
                client,
                endpoint: Some("revocation".into()),
                grant_type: String::new(),
                params,
                save: format!("revoke{step}"),
                ..Default::default()
            };
            let r = crate::step::token::token(ctx, &step_def).await;
            let status = match &r {
                Ok(s) => s.response().map(|(_, r)| r.status),
                Err(_) => None,
            };
            model.revoked(step, ti, *other_client, *hint == Hint::Wrong, status);
            let outcome = match (status, r) {
                (Some(s), _) => format!("answered {s}"),
                (None, Err(s)) => format!("no judgeable answer ({})", stop_text(&s)),
                (None, Ok(_)) => "no judgeable answer".into(),
            };
            (outcome, None, Vec::new())
        }
        Op::Call { token } => {
            let Some(ti) = model.holdings.token(*token, true) else {
                return ("no access token held".into(), None, Vec::new());
            };
            let Some(resource) = target.resource.clone() else {
                return ("no MCP endpoint to call".into(), None, Vec::new());
            };
            let value = model.holdings.tokens[ti].value.clone();
            let r = crate::step::request::mcp_with_token(
                ctx,
                &resource,
                &value,
                &format!("lifecycle step {}: {}", step + 1, op.describe()),
            )
            .await;
            let status = r.as_ref().ok().map(|r| r.status);
            let call = Call::of(status);
            let v = model.called(step, ti, call);
            let outcome = match (status, &r) {
                (Some(s), _) => format!("answered {s}"),
                (None, Err(s)) => format!("no judgeable answer ({})", stop_text(s)),
                (None, Ok(_)) => "no judgeable answer".into(),
            };
            (outcome, None, v.into_iter().collect())
        }
        Op::Expire => {
            let Some(ti) = model.holdings.token(0, true) else {
                return ("no access token held".into(), None, Vec::new());
            };
            let t = &model.holdings.tokens[ti];
            let Some(e) = t.expires_in else {
                return (
                    "its lifetime is unknown (no expires_in)".into(),
                    None,
                    Vec::new(),
                );
            };
            let end = t.issued + Duration::from_secs(e) + oracle::SLACK;
            let left = end.saturating_duration_since(Instant::now());
            if left > Duration::from_secs(target.max_expiry_wait) {
                return (
                    format!(
                        "it expires in {} s: longer than the campaign waits",
                        left.as_secs()
                    ),
                    None,
                    Vec::new(),
                );
            }
            ctx.idle(
                left + Duration::from_millis(200),
                "for an access token to expire",
            )
            .await;
            (
                format!("waited {:.1} s", left.as_secs_f64()),
                None,
                Vec::new(),
            )
        }
        Op::Wait { secs } => {
            ctx.idle(Duration::from_secs(u64::from(*secs)), "for tokens to age")
                .await;
            (format!("waited {secs} s"), None, Vec::new())
        }
    }
}
