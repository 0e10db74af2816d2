//! Pushed Authorization Requests (RFC 9126): whether the AS offers PAR (§5, else every par-*
//! case is skipped), what it advertises, the shape of a push's answer (§2.2), which client must
//! push (§5, §6), and how guessable its `request_uri` values are (§2.2, §7.1). The pushes and
//! the authorization requests behind them are step-layer requests (`token` with
//! `endpoint = "par"`, `authorize` with `push` or `request_uri`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::case::model::{ClientKind, ClientStep, Judge, TokenStep};
use crate::step::{CaseCtx, Saved, StepResult, Stop, client, par, token};

/// Every par-* case starts here: the PAR endpoint (the metadata's, else the profile's), or the
/// case is skipped because the AS does not offer PAR.
pub async fn offered(ctx: &mut CaseCtx<'_>) -> StepResult {
    let e = par::endpoint(ctx).await?;
    ctx.note(format!("PAR endpoint: {e}"));
    Ok(())
}

/// par-advertised (RFC 9126 §2, §5): the endpoint is in the AS metadata (SHOULD), as an https
/// URL (MUST; plain http on a loopback target is a warning), and
/// `require_pushed_authorization_requests`, when present, is a boolean.
pub fn advertised(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = match ctx.saved.get(on) {
        Some(Saved::Discovery(d)) => d.doc(),
        _ => None,
    }
    .ok_or_else(|| Stop::Error(format!("no AS metadata saved as `{on}`")))?;
    match doc.get(par::MEMBER) {
        None => {
            return ctx.fail(format!(
                "the AS serves PAR (the profile's [par] endpoint) but its metadata has no {}",
                par::MEMBER
            ));
        }
        Some(Value::String(u)) => {
            let u = u.clone();
            if url::Url::parse(&u).is_err() {
                return ctx.fail(format!("{} is not an absolute URL: {u:?}", par::MEMBER));
            }
            super::https_rule(ctx, par::MEMBER, &u)?;
        }
        Some(other) => {
            return ctx.fail(format!("{} is not a string: {other}", par::MEMBER));
        }
    }
    match doc.get("require_pushed_authorization_requests") {
        None => {
            ctx.note(
                "require_pushed_authorization_requests is absent (default false, RFC 9126 §5)",
            );
            Ok(())
        }
        Some(Value::Bool(b)) => {
            ctx.pass(format!("require_pushed_authorization_requests is {b}"));
            Ok(())
        }
        Some(other) => ctx.fail(format!(
            "require_pushed_authorization_requests is not a JSON boolean: {other}"
        )),
    }
}

/// par-201 (RFC 9126 §2.2): a valid push is answered 201 with a JSON object holding a
/// `request_uri` string and `expires_in`, a positive integer.
pub fn response(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some((_, r)) = ctx.saved.get(on).and_then(Saved::response) else {
        return Err(Stop::Error(format!("nothing saved as `{on}`")));
    };
    let r = r.clone();
    if r.status >= 500 {
        return ctx.fail(format!("a valid push was answered {}", r.status));
    }
    if r.status == 401 || (400..500).contains(&r.status) {
        let err = r
            .json()
            .and_then(|d| d.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        return ctx.fail(format!(
            "a valid push was refused: {} error={err}",
            r.status
        ));
    }
    let Some(doc) = r.json().filter(Value::is_object) else {
        return ctx.fail(format!(
            "the answer ({}) is not a JSON object (RFC 9126 §2.2: application/json)",
            r.status
        ));
    };
    let mut problems = Vec::new();
    if r.status != 201 {
        problems.push(format!("status {}, not 201", r.status));
    }
    match doc.get("request_uri") {
        Some(Value::String(u)) if !u.is_empty() => {
            if u.starts_with(par::URN_PREFIX) {
                ctx.note(format!("request_uri has the {} form", par::URN_PREFIX));
            } else {
                ctx.note("request_uri does not use the urn:ietf:params:oauth:request_uri: form (a MAY of RFC 9126 §2.2)");
            }
        }
        Some(other) => problems.push(format!("request_uri is not a non-empty string: {other}")),
        None => problems.push("no request_uri".into()),
    }
    match doc.get("expires_in") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|x| x > 0) => {
            ctx.note(format!("expires_in {n}"));
        }
        Some(other) => problems.push(format!("expires_in is not a positive integer: {other}")),
        None => problems.push("no expires_in".into()),
    }
    if problems.is_empty() {
        ctx.pass("201 with request_uri and expires_in");
        Ok(())
    } else {
        ctx.fail(format!(
            "the answer to a valid push breaks RFC 9126 §2.2: {}",
            problems.join("; ")
        ))
    }
}

/// par-required (RFC 9126 §4, §5, §6): a client that may only push. When the metadata says
/// `require_pushed_authorization_requests: true`, any client; else a client registered with
/// that client metadata (§6), if the AS registers one and says so in its answer (RFC 7591
/// §3.2.1 echoes the registered metadata). Otherwise nothing requires PAR: skipped. The client
/// is saved as `client`.
pub async fn required_client(ctx: &mut CaseCtx<'_>) -> StepResult {
    par::endpoint(ctx).await?;
    let all = par::required_by_metadata(ctx);
    let want = |metadata: BTreeMap<String, toml::Value>| ClientStep {
        kind: ClientKind::Confidential,
        metadata,
        refused: Judge::Skip,
        ..Default::default()
    };
    let c = if all == Some(Value::Bool(true)) {
        ctx.note("the AS metadata says require_pushed_authorization_requests: true");
        client::provision(ctx, &want(BTreeMap::new())).await?
    } else {
        let why = match &all {
            Some(v) => format!("the AS metadata says require_pushed_authorization_requests: {v}"),
            None => "the AS metadata does not set require_pushed_authorization_requests".into(),
        };
        let metadata = BTreeMap::from([(
            "require_pushed_authorization_requests".to_string(),
            toml::Value::Boolean(true),
        )]);
        let c = client::provision(ctx, &want(metadata))
            .await
            .map_err(|e| match e {
                Stop::Skip(m) => Stop::Skip(format!(
                    "{why}, and no client could be registered with require_pushed_authorization_requests (RFC 9126 §6): {m}"
                )),
                other => other,
            })?;
        let echoed = ctx
            .saved
            .get("client_registration")
            .and_then(Saved::response)
            .and_then(|(_, r)| r.json())
            .and_then(|d| d.get("require_pushed_authorization_requests").cloned());
        if echoed != Some(Value::Bool(true)) {
            return Err(Stop::Skip(format!(
                "{why}, and the AS registered client {} without require_pushed_authorization_requests: true (its answer has {}): nothing requires PAR",
                c.client_id,
                echoed.map_or("no such member".to_string(), |v| v.to_string())
            )));
        }
        ctx.note(format!(
            "{why}; client {} is registered with require_pushed_authorization_requests: true (RFC 9126 §6)",
            c.client_id
        ));
        c
    };
    ctx.saved.insert("client".into(), Saved::Client(c));
    Ok(())
}

/// par-request-uri-entropy (RFC 9126 §2.2, §7.1): `args.samples` pushes (default 30) of the
/// client saved as `client`; the part of each `request_uri` after the URN prefix must be
/// distinct, no counter, and carry at least 128 bits (RFC 6749 §10.10, which §2.2 points to).
pub async fn request_uri_entropy(
    ctx: &mut CaseCtx<'_>,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let n = super::arg_samples(args, 30, 100);
    let mut values = Vec::new();
    for i in 0..n {
        let step = TokenStep {
            endpoint: Some("par".into()),
            ..Default::default()
        };
        let saved = token::token(ctx, &step).await?;
        let Some((_, r)) = saved.response() else {
            return Err(Stop::Error("the push saved no response".into()));
        };
        match par::request_uri(r) {
            Some(u) => {
                let reference = u.strip_prefix(par::URN_PREFIX).unwrap_or(&u).to_string();
                values.push(reference);
            }
            None => {
                let reason = format!(
                    "push {i} was answered {} without a request_uri: nothing to sample",
                    r.status
                );
                ctx.block("par-push-refused", Some("par-201"), &reason);
                return Err(Stop::Error(reason));
            }
        }
    }
    super::judge_entropy(ctx, "request_uri references", &values, 128.0)
}
