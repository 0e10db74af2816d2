//! Token endpoint responses (O21 3.2.3, 3.2.4; RFC 6749 A.12, A.17, §5.1) and robustness.

use std::collections::BTreeMap;

use authconform_core::judge;

use crate::http::Response;
use crate::step::{CaseCtx, Saved, StepResult, Stop};

/// The token response saved as `on` (the judgements check that it is a success).
fn token_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => Ok(response.clone()),
        _ => Err(Stop::Error(format!("`{on}` holds no token response"))),
    }
}

/// `tok-response-shape`: access_token and token_type Bearer; expires_in a number; scope a string.
pub fn response_shape(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::response_shape(f, &r))
}

/// `tok-jwt-assertion-aud-issuer`: a request the AS should accept; a proper `invalid_client`
/// refusal is a tolerated deviation, anything else a failure.
pub fn accepted_or_warn(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::accepted_or_warn(f, &r))
}

/// `tok-token-charset`: tokens use only visible ASCII (RFC 6749 A.12, A.17).
pub fn token_charset(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    ctx.judged(|f| judge::token_endpoint::token_charset(f, &r))
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

/// What the AS says about itself that makes it an OpenID Provider: the OIDC discovery document
/// answered (with its own issuer), or its metadata lists the `openid` scope. `None` when it
/// claims no OIDC.
fn claims_oidc(ctx: &CaseCtx<'_>, on: &str) -> Option<String> {
    let d = ctx.discovery(on).ok()?;
    for a in &d.attempts {
        let Some(doc) = a.doc() else { continue };
        let issuer_ok = doc.get("issuer").and_then(|v| v.as_str()) == Some(d.identifier.as_str());
        if a.source.starts_with("oidc") && issuer_ok {
            return Some(format!("it serves OpenID Connect discovery at {}", a.url));
        }
        let lists_openid = doc
            .get("scopes_supported")
            .and_then(|v| v.as_array())
            .is_some_and(|s| s.iter().any(|x| x == "openid"));
        if lists_openid && issuer_ok {
            return Some(format!("its metadata at {} lists the openid scope", a.url));
        }
    }
    None
}

/// `tok-jwt-assertion.replay`: a `private_key_jwt` assertion presented a second time. RFC 7523
/// §3 only lets the AS reject it ("MAY ensure that JWTs are not replayed"); OIDC Core §9 says
/// such assertions "MUST only be used once". So the grade depends on the spec the AS claims: an
/// OpenID Provider that takes the replay fails; an OAuth-only AS that takes it is within RFC
/// 7523, and the case is skipped saying so. A refusal passes either way.
pub fn jwt_replay_graded(ctx: &mut CaseCtx<'_>, on: &str, asm: &str) -> StepResult {
    let r = token_response(ctx, on)?;
    let issued = r.status == 200
        && r.json()
            .is_some_and(|d| d.get("access_token").and_then(|t| t.as_str()).is_some());
    let oidc = claims_oidc(ctx, asm);
    if !issued {
        let code = r
            .json()
            .and_then(|d| d.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| "no OAuth error code".into());
        if !(400..500).contains(&r.status) {
            return ctx.fail(format!(
                "the replayed assertion got status {} ({code}): a refusal is a 4xx",
                r.status
            ));
        }
        ctx.pass(format!(
            "the replayed assertion was refused ({}, {code}){}",
            r.status,
            match &oidc {
                Some(why) => format!(": graded by OIDC Core §9, since {why}"),
                None => String::new(),
            }
        ));
        return Ok(());
    }
    match oidc {
        Some(why) => ctx.fail(format!(
            "the AS issued tokens for a replayed client assertion (same jti); graded by OIDC Core §9 (\"MUST only be used once\"), since {why}"
        )),
        None => Err(Stop::Skip(
            "the AS accepted a replayed client assertion (same jti), which RFC 7523 §3 permits (\"MAY ensure that JWTs are not replayed\"); it claims no OpenID Connect (no OIDC discovery, no openid scope), so OIDC Core §9's single-use MUST does not apply".into(),
        )),
    }
}
