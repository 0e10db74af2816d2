//! What the AS metadata advertises (RFC 8414 §2) against what the run saw the server do: the
//! cross-checks that run after every other case (`after_others`), read the run facts the
//! others published ([`crate::step::facts`]), add probes of their own, and judge both ways:
//! what is advertised works, and what works is advertised. Each verdict names the cases whose
//! evidence it used.

use serde_json::Value;

use crate::step::discovery::require_doc;
use crate::step::facts::{FactKind, TokenAnswer};
use crate::step::{CaseCtx, StepResult, Stop};

type Doc = serde_json::Map<String, Value>;

fn doc_of(ctx: &mut CaseCtx<'_>, on: &str) -> Result<Doc, Stop> {
    let d = ctx.discovery(on)?.clone();
    require_doc(&d, "authorization server metadata")
        .map_err(|e| crate::step::discovery::without_doc(ctx, e, "asm-available"))
}

/// Which way the client-authentication cross-check compares metadata and behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What is advertised works: a correct code redemption with each listed method is accepted.
    Advertised,
    /// What works is advertised: a method the token endpoint accepts is listed.
    Accepted,
}

/// The client authentication methods the suite can present, with the token step's `auth`
/// value that presents each.
const METHODS: [(&str, &str); 4] = [
    ("none", "none"),
    ("client_secret_basic", "basic"),
    ("client_secret_post", "post"),
    ("private_key_jwt", "jwt"),
];

/// What one method's probe saw.
enum Probe {
    Accepted,
    Refused(String),
    /// The probe could not be made (no client with the method, no code); not a verdict.
    NotTried(String),
}

/// A code redemption by a client registered (or configured) for `method`, presented with it.
async fn redeem_with(ctx: &mut CaseCtx<'_>, method: &str, auth: &str) -> Probe {
    use crate::case::model::{AuthorizeStep, ClientKind, ClientStep, Judge};
    use crate::step::{authorize, client, token};
    let want = ClientStep {
        save: "client".into(),
        kind: if method == "none" {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        },
        auth_method: (method != "none").then(|| method.to_string()),
        refused: Judge::Skip,
        ..Default::default()
    };
    // Whatever stopped a step of the probe, it is only a reason the probe was not made.
    let why = |s: Stop| match s {
        Stop::Skip(m) | Stop::Error(m) | Stop::Fail(m) | Stop::Pass(m) => m,
    };
    let c = match client::provision(ctx, &want).await {
        Ok(c) => c,
        Err(s) => return Probe::NotTried(format!("no client registered for it ({})", why(s))),
    };
    if c.auth_method != method {
        return Probe::NotTried(format!(
            "the AS registered the client with {} instead",
            c.auth_method
        ));
    }
    ctx.saved
        .insert("client".into(), crate::step::Saved::Client(c));
    let a = match authorize::authorize(ctx, &AuthorizeStep::default()).await {
        Ok(a) if a.code().is_some() => a,
        Ok(a) => return Probe::NotTried(format!("no code: {}", a.describe())),
        Err(s) => return Probe::NotTried(format!("no code: {}", why(s))),
    };
    ctx.saved.insert(
        "auth".into(),
        crate::step::Saved::Authorization(Box::new(a)),
    );
    let mut step = token::redeeming("auth", Default::default());
    step.auth = Some(auth.to_string());
    let saved = match token::token(ctx, &step).await {
        Ok(s) => s,
        Err(s) => return Probe::NotTried(format!("no answer: {}", why(s))),
    };
    let Some((_, r)) = saved.response() else {
        return Probe::NotTried("no answer".into());
    };
    let a = TokenAnswer::of(r);
    if a.issued {
        Probe::Accepted
    } else if a.auth_refused() {
        Probe::Refused(a.answer())
    } else {
        // Refused for another reason (a bad code, a server error): says nothing about the
        // client's authentication.
        Probe::NotTried(format!(
            "the redemption answered {} {}, not about client authentication",
            a.status,
            a.error.unwrap_or_default()
        ))
    }
}

/// asm-auth-methods.advertised / .accepted (RFC 8414 §2: `token_endpoint_auth_methods_supported`
/// lists the methods the token endpoint supports; omitted means `client_secret_basic`): each
/// method the suite can present is tried with a correct code redemption, and what this run's
/// other cases saw is added (they run before this one). `Advertised` fails a listed method the
/// endpoint refuses as an authentication failure; `Accepted` fails a method that issued tokens
/// but is not listed.
pub async fn auth_methods_behaviour(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    direction: Direction,
) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let listed = listed(
        ctx,
        &doc,
        "token_endpoint_auth_methods_supported",
        &["client_secret_basic"],
    );
    let mut seen: Vec<(String, bool, String, String)> = Vec::new(); // method, accepted, answer, by
    for (method, auth) in METHODS {
        let relevant = match direction {
            Direction::Advertised => listed.iter().any(|m| m == method),
            Direction::Accepted => true,
        };
        if !relevant {
            continue;
        }
        match redeem_with(ctx, method, auth).await {
            Probe::Accepted => seen.push((method.into(), true, String::new(), "this case".into())),
            Probe::Refused(a) => seen.push((method.into(), false, a, "this case".into())),
            Probe::NotTried(why) => ctx.note(format!("{method}: not tried: {why}")),
        }
    }
    for f in ctx.env.facts.all() {
        if let FactKind::ClientAuth {
            method,
            accepted,
            answer,
        } = f.kind
        {
            seen.push((method.into(), accepted, answer, f.case));
        }
    }
    // One line per method and outcome, naming a few of the cases that saw it.
    let mut failures = Vec::new();
    let mut held = Vec::new();
    for (method, _) in METHODS {
        for accepted in [true, false] {
            let of: Vec<&(String, bool, String, String)> = seen
                .iter()
                .filter(|(m, a, _, _)| m == method && *a == accepted)
                .collect();
            let Some((_, _, answer, _)) = of.first() else {
                continue;
            };
            let by: Vec<String> = of.iter().map(|(_, _, _, c)| c.clone()).collect();
            let by = named(&by);
            let is_listed = listed.iter().any(|m| m == method);
            match (direction, accepted, is_listed) {
                (Direction::Advertised, false, true) => failures.push(format!(
                    "{method} is listed, but correct requests authenticated with it were refused ({answer}; seen by {by})"
                )),
                (Direction::Advertised, true, true) => {
                    held.push(format!("{method} accepted (seen by {by})"))
                }
                (Direction::Accepted, true, false) => failures.push(format!(
                    "{method} is not listed, but requests authenticated with it were issued tokens (seen by {by})"
                )),
                (Direction::Accepted, true, true) => {
                    held.push(format!("{method} accepted and listed (seen by {by})"))
                }
                _ => {}
            }
        }
    }
    conclude(
        ctx,
        held,
        failures,
        "no client authentication method could be tried (no client for any, or no code)",
        match direction {
            Direction::Advertised => "every listed method that was tried is accepted",
            Direction::Accepted => "every method that was accepted is listed",
        },
    )
}

/// The metadata's list `member`, or the RFC 8414 default when it is absent (or not an array),
/// noted as read.
fn listed(ctx: &mut CaseCtx<'_>, doc: &Doc, member: &str, default: &[&str]) -> Vec<String> {
    let listed: Vec<String> = match doc.get(member) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => default.iter().map(|d| d.to_string()).collect(),
    };
    ctx.note(format!("listed: {listed:?} (omitted means {default:?})"));
    listed
}

/// A cross-check's verdict: what held, then the first failure (the others as notes); with
/// nothing seen either way, skipped for `nothing_seen`.
fn conclude(
    ctx: &mut CaseCtx<'_>,
    held: Vec<String>,
    failures: Vec<String>,
    nothing_seen: &str,
    all_held: &str,
) -> StepResult {
    for h in &held {
        ctx.pass(h.clone());
    }
    if let Some(first) = failures.first() {
        for f in &failures[1..] {
            ctx.note(format!("also: {f}"));
        }
        return ctx.fail(first.clone());
    }
    if held.is_empty() {
        return Err(Stop::Skip(nothing_seen.into()));
    }
    ctx.pass(all_held);
    Ok(())
}

/// The cases that saw something, named briefly: the first three and how many more.
pub(super) fn named(cases: &[String]) -> String {
    let mut cases: Vec<&str> = cases.iter().map(String::as_str).collect();
    cases.dedup();
    let shown = cases.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    match cases.len() {
        n if n > 3 => format!("{shown} and {} more", n - 3),
        _ => shown,
    }
}

/// asm-grant-types.behaviour (RFC 8414 §2: `grant_types_supported` lists "the OAuth 2.0 grant
/// type values that this authorization server supports"; omitted means authorization_code and
/// implicit): a grant type that issued tokens on a correct request is listed, and a listed one
/// is not refused as `unsupported_grant_type`. This case redeems a code and refreshes once
/// itself; every correct token request of the run's other cases counts too (client_credentials,
/// the JWT bearer grant).
pub async fn grant_types_behaviour(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let listed = listed(
        ctx,
        &doc,
        "grant_types_supported",
        &["authorization_code", "implicit"],
    );
    // (grant type, accepted, answer, case)
    let mut seen: Vec<(String, bool, String, String)> = Vec::new();
    match super::tokens::scoped_grant(ctx, None, &[]).await {
        Ok((_, Some(r))) => {
            let mut grant = |grant_type: &str, a: TokenAnswer| {
                if a.issued || a.grant_refused() {
                    seen.push((grant_type.into(), a.issued, a.answer(), "this case".into()));
                }
            };
            grant("authorization_code", TokenAnswer::of(&r));
            let doc = r.json().unwrap_or_default();
            if let Some(rt) = doc.get("refresh_token").and_then(Value::as_str) {
                let r = super::tokens::refresh(ctx, rt, &[]).await?;
                grant("refresh_token", TokenAnswer::of(&r));
            }
        }
        Ok((a, None)) => ctx.note(format!("no code to redeem: the AS {}", a.describe())),
        Err(Stop::Skip(m) | Stop::Error(m) | Stop::Fail(m) | Stop::Pass(m)) => {
            ctx.note(format!("no code flow of its own: {m}"))
        }
    }
    for f in ctx.env.facts.all() {
        if let FactKind::Grant {
            grant_type,
            accepted,
            answer,
        } = f.kind
        {
            seen.push((grant_type, accepted, answer, f.case));
        }
    }
    let mut grants: Vec<&str> = seen.iter().map(|(g, ..)| g.as_str()).collect();
    grants.sort();
    grants.dedup();
    let mut failures = Vec::new();
    let mut held = Vec::new();
    for g in grants {
        let is_listed = listed.iter().any(|l| l == g);
        for accepted in [true, false] {
            let by: Vec<String> = seen
                .iter()
                .filter(|(x, a, ..)| x == g && *a == accepted)
                .map(|(.., c)| c.clone())
                .collect();
            if by.is_empty() {
                continue;
            }
            match (accepted, is_listed) {
                (true, true) => held.push(format!("{g} works and is listed (seen by {})", named(&by))),
                (true, false) => failures.push(format!(
                    "{g} is not listed in grant_types_supported, but it issued tokens (seen by {})",
                    named(&by)
                )),
                (false, true) => failures.push(format!(
                    "{g} is listed, but a correct request with it was refused as unsupported_grant_type (seen by {})",
                    named(&by)
                )),
                (false, false) => {}
            }
        }
    }
    conclude(
        ctx,
        held,
        failures,
        "no grant was seen to work in this run (no code flow, no other token request)",
        "every grant type seen working is listed, and no listed one was refused",
    )
}
