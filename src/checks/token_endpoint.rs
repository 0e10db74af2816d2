//! Token endpoint responses (O21 3.2.3, 3.2.4; RFC 6749 A.12, A.17, §5.1) and robustness.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::http::Response;
use crate::runner::flow;
use crate::runner::{CaseCtx, Saved, StepResult, Stop};

fn ok_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) if response.status == 200 => Ok(response.clone()),
        Some(Saved::Response { response, .. }) => Err(Stop::Error(format!(
            "the token request answered {}, so there is no successful response to inspect",
            response.status
        ))),
        _ => Err(Stop::Error(format!("`{on}` holds no token response"))),
    }
}

/// `tok-response-shape`: access_token and token_type Bearer; expires_in a number; scope a string.
pub fn response_shape(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = ok_response(ctx, on)?;
    let Some(doc) = r.json() else {
        return ctx.fail("the token response is not JSON");
    };
    match doc.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => ctx.pass("access_token is a non-empty string"),
        other => return ctx.fail(format!("access_token is {other:?}, not a non-empty string")),
    }
    match doc.get("token_type") {
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop") =>
        {
            ctx.pass(format!("token_type {t}"))
        }
        other => return ctx.fail(format!("token_type is {other:?}, expected \"Bearer\"")),
    }
    match doc.get("expires_in") {
        None => ctx.note("no expires_in (RECOMMENDED)"),
        Some(Value::Number(n)) if n.as_u64().is_some() => ctx.pass(format!("expires_in {n}")),
        Some(other) => {
            return ctx.fail(format!("expires_in is {other}, not a non-negative integer"));
        }
    }
    if let Some(s) = doc.get("scope")
        && !s.is_string()
    {
        return ctx.fail(format!("scope is {s}, not a space-separated string"));
    }
    Ok(())
}

/// `tok-jwt-assertion-aud-issuer`: a request the AS should accept; a proper `invalid_client`
/// refusal is a tolerated deviation, anything else a failure.
pub fn accepted_or_warn(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => response.clone(),
        _ => return Err(Stop::Error(format!("`{on}` holds no token response"))),
    };
    let doc = r.json();
    let err = doc
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if r.status == 200
        && doc
            .as_ref()
            .is_some_and(|d| d.get("access_token").is_some())
    {
        ctx.pass("the AS accepted the assertion");
        Ok(())
    } else if matches!(r.status, 400 | 401) && err.as_deref() == Some("invalid_client") {
        ctx.warn("the AS refused the assertion with invalid_client (RFC 7523 lets it; the issuer is a value it should accept)");
        Ok(())
    } else {
        ctx.fail(format!("the AS answered {} error={err:?}", r.status))
    }
}

/// `tok-token-charset`: tokens use only visible ASCII (RFC 6749 A.12, A.17).
pub fn token_charset(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = ok_response(ctx, on)?;
    let doc = r.json().unwrap_or(Value::Null);
    for k in ["access_token", "refresh_token"] {
        if let Some(t) = doc.get(k).and_then(Value::as_str) {
            if let Some(c) = t.chars().find(|c| !(' '..='~').contains(c)) {
                return ctx.fail(format!(
                    "{k} contains {:?} (U+{:04X}), outside %x20-7E",
                    c, c as u32
                ));
            }
            ctx.pass(format!("{k} uses visible ASCII only"));
        }
    }
    Ok(())
}

/// `at-short-lived`: short access token lifetimes (≤ 1 h pass; ≤ 24 h warn; longer fail).
pub fn short_lived(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = ok_response(ctx, on)?;
    let doc = r.json().unwrap_or(Value::Null);
    let Some(secs) = super::pkce::lifetime(&doc) else {
        return ctx.fail("the token response gives no expires_in and the token carries no readable exp: no bounded lifetime is advertised");
    };
    if secs <= 3600 {
        ctx.pass(format!("access tokens live {secs} s (≤ 1 h)"));
        Ok(())
    } else if secs <= 86_400 {
        ctx.warn(format!(
            "access tokens live {secs} s: over an hour, up to a day"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "access tokens live {secs} s ({} days): MCP 11.2 wants short-lived tokens",
            secs / 86_400
        ))
    }
}

/// `code-concurrent-redeem`: of parallel redemptions of one code, exactly one succeeds.
pub fn one_of_parallel(ctx: &mut CaseCtx<'_>) -> StepResult {
    let all = ctx.parallel.clone();
    if all.len() < 2 {
        return Err(Stop::Error("no parallel responses to compare".into()));
    }
    let ok = all
        .iter()
        .filter(|r| r.status == 200 && r.json().is_some_and(|d| d.get("access_token").is_some()))
        .count();
    match ok {
        1 => {
            ctx.pass(format!(
                "exactly one of {} parallel requests succeeded",
                all.len()
            ));
            Ok(())
        }
        0 => Err(Stop::Error(format!(
            "none of {} parallel requests succeeded (statuses {:?}): nothing to judge",
            all.len(),
            all.iter().map(|r| r.status).collect::<Vec<_>>()
        ))),
        n => ctx.fail(format!(
            "{n} of {} parallel requests with one single-use credential got tokens (a race)",
            all.len()
        )),
    }
}

/// `tok-fuzz`: hostile bodies get a 4xx, never a 5xx or a hang.
pub async fn fuzz(ctx: &mut CaseCtx<'_>, _args: &BTreeMap<String, toml::Value>) -> StepResult {
    let endpoint = crate::runner::flow::as_endpoint(ctx, "token_endpoint").await?;
    let many: String = (0..10_000).map(|i| format!("p{i}=x&")).collect();
    let h = |what, body: Vec<u8>| super::Hostile {
        what,
        body,
        acceptance_fails: false,
    };
    let bodies = vec![
        h(
            "huge parameter",
            format!("grant_type=authorization_code&code={}", "A".repeat(200_000)).into_bytes(),
        ),
        h(
            "invalid UTF-8",
            b"grant_type=authorization_code&code=\xff\xfe\xfd".to_vec(),
        ),
        h(
            "percent-encoded invalid UTF-8",
            b"grant_type=authorization_code&code=%FF%FE".to_vec(),
        ),
        h(
            "NUL",
            b"grant_type=authorization_code%00&code=a%00b".to_vec(),
        ),
        h(
            "10k parameters",
            format!("{many}grant_type=authorization_code").into_bytes(),
        ),
        h("lone percent signs", b"grant_type=%&code=%zz%".to_vec()),
    ];
    let worst = super::hostile_bodies(
        ctx,
        &endpoint,
        "application/x-www-form-urlencoded",
        bodies,
        |_| false,
    )
    .await;
    match worst {
        Some(w) => ctx.fail(format!("the token endpoint broke on a hostile body: {w}")),
        None => Ok(()),
    }
}

/// `rt-scope-escalation`: a refresh request asking for a scope the grant lacks (one the AS
/// lists in `scopes_supported`) is refused with `invalid_scope`, or answered with a scope that
/// leaves it out. A 200 without `scope` means the requested scope was granted (RFC 6749 §5.1).
pub async fn refresh_scope_escalation(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let t1 = match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => r.json().unwrap_or_default(),
        None => return Err(Stop::Error(format!("nothing saved as `{on}`"))),
    };
    let rt = t1
        .get("refresh_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?
        .to_string();
    let granted: Vec<String> = t1
        .get("scope")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| ctx.env.profile.authorization.scope.clone())
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let supported: Vec<String> = match ctx.saved.get("asm") {
        Some(Saved::Discovery(d)) => d
            .doc()
            .and_then(|m| m.get("scopes_supported").cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let Some(extra) = supported
        .iter()
        .find(|x| !granted.contains(x) && *x != "openid" && *x != "offline_access")
        .cloned()
    else {
        return Err(Stop::Skip(
            "scopes_supported names no scope beyond the granted ones".into(),
        ));
    };
    let wider = format!("{} {extra}", granted.join(" ")).trim().to_string();
    let params = BTreeMap::from([
        ("refresh_token".to_string(), rt),
        ("scope".to_string(), wider.clone()),
    ]);
    let saved = flow::token(
        ctx,
        flow::Token {
            grant_type: "refresh_token",
            from: None,
            ..crate::checks::pkce::token_opts("", &params)
        },
    )
    .await?;
    let Some((_, r)) = saved.response() else {
        return Err(Stop::Error("no response".into()));
    };
    let r = r.clone();
    let doc = r.json().unwrap_or_default();
    if r.status != 200 {
        let code = doc.get("error").and_then(Value::as_str).unwrap_or("");
        return if code == "invalid_scope" {
            ctx.pass(format!(
                "asking for {wider:?} on refresh was refused with invalid_scope"
            ));
            Ok(())
        } else {
            ctx.fail(format!(
                "asking for a scope beyond the grant ({extra:?}) got {} error={code:?}, not invalid_scope",
                r.status
            ))
        };
    }
    match doc.get("scope").and_then(Value::as_str) {
        None => ctx.fail(format!(
            "asking for {wider:?} on refresh got tokens without a scope member, which means the requested scope was granted (RFC 6749 §5.1): {extra:?} was added"
        )),
        Some(sc) if sc.split(' ').any(|x| x == extra) => ctx.fail(format!(
            "the refreshed token's scope {sc:?} includes {extra:?}, which the grant did not have"
        )),
        Some(sc) => {
            ctx.pass(format!(
                "the refreshed token's scope {sc:?} leaves out the requested {extra:?}"
            ));
            Ok(())
        }
    }
}

/// `intro-aud-present`: the introspection of an MCP access token names the MCP server in
/// `aud` (a string or an array), so a resource server that introspects can check audience.
pub fn introspection_aud(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) if r.status == 200 => r.json().unwrap_or_default(),
        Some((_, r)) => {
            return Err(Stop::Error(format!(
                "the introspection answered {}: nothing to read",
                r.status
            )));
        }
        None => return Err(Stop::Error(format!("nothing saved as `{on}`"))),
    };
    if doc.get("active") != Some(&Value::Bool(true)) {
        return Err(Stop::Error(
            "the token was not reported active: its audience cannot be read".into(),
        ));
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint known to look for in aud".into(),
        ));
    };
    let found = match doc.get("aud") {
        Some(Value::String(a)) => a == &resource,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(resource.as_str())),
        _ => {
            return ctx.fail(format!(
                "the introspection response has no aud, so a resource server cannot tell that the token is meant for {resource}"
            ));
        }
    };
    if found {
        ctx.pass(format!("aud names {resource}"));
        Ok(())
    } else {
        ctx.fail(format!(
            "aud is {}, which does not name {resource}",
            doc.get("aud").cloned().unwrap_or_default()
        ))
    }
}

/// `rev-rt-cascades`: after the refresh token is revoked, the access token of the same grant
/// stops working at the MCP endpoint too. A self-contained JWT access token may live on until
/// it expires: a warning, not a failure (RFC 7009 §2.1 lets such tokens be).
pub async fn revoked_grant_at_resource(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = super::saved_access_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint to try the access token at".into(),
        ));
    };
    let r = crate::runner::actions::mcp_with_token(
        ctx,
        &resource,
        &at,
        "the access token of the revoked grant at the MCP endpoint",
    )
    .await?;
    let jwt = at.split('.').count() == 3;
    match r.status {
        401 => {
            ctx.pass("the access token of the revoked grant is refused (401)");
            Ok(())
        }
        s if s < 300 && jwt => {
            ctx.warn(format!(
                "the access token of the revoked grant still works ({s}); it is a self-contained JWT, valid until it expires"
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the access token of the revoked grant still works ({s})"
        )),
        s => Err(Stop::Error(format!(
            "the MCP endpoint answered {s}, neither accepting nor refusing the token"
        ))),
    }
}
