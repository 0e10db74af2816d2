//! Token endpoint responses (O21 3.2.3, 3.2.4; RFC 6749 A.12, A.17, §5.1) and robustness.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::http::Response;
use crate::step::{CaseCtx, Saved, StepResult, Stop};

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
    let endpoint = crate::step::discovery::as_endpoint(ctx, "token_endpoint").await?;
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
