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
