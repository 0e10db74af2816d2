//! The `wait` step: a deliberate wait (for a code, a token or a cached document to expire),
//! bounded by the run's maximum. The case gives up its running place meanwhile.

use super::context::{CaseCtx, Saved, StepResult, Stop};
use crate::case::model::WaitStep;

/// The `wait` step.
pub async fn run(ctx: &mut CaseCtx<'_>, s: &WaitStep) -> StepResult {
    let secs = match &s.until_expiry {
        Some(on) => expiry_wait(ctx, on)?,
        None => s.secs,
    };
    let secs = match ctx.env.profile.cimd.cache_secs {
        Some(c) if s.cimd_cache => c,
        _ => secs,
    };
    let max = ctx.env.max_wait().as_secs();
    if secs > max {
        return Err(Stop::Skip(format!(
            "this case waits {secs} s, more than the allowed {max} s (--max-wait or timing.max_wait_secs)"
        )));
    }
    let what = if s.cimd_cache && ctx.env.profile.cimd.cache_secs.is_some() {
        "for the cached document to expire"
    } else if let Some(on) = &s.until_expiry {
        // A PAR answer's expires_in is its request_uri's lifetime (RFC 9126 §2.2).
        let par = matches!(ctx.saved.get(on), Some(Saved::Response { response, .. })
            if response.json().is_some_and(|d| d.get("request_uri").is_some()));
        if par {
            "for the request_uri to expire"
        } else {
            "for the access token to expire"
        }
    } else {
        "before the next step"
    };
    ctx.note(format!("waited {secs} s"));
    ctx.idle(std::time::Duration::from_secs(secs), what).await;
    Ok(())
}

/// `expires_in` + 1 of a saved token response: how long until its access token has expired.
fn expiry_wait(ctx: &CaseCtx<'_>, on: &str) -> Result<u64, Stop> {
    let doc = match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => response.json(),
        _ => None,
    }
    .ok_or_else(|| Stop::Error(format!("`{on}` holds no token response")))?;
    match doc.get("expires_in").and_then(serde_json::Value::as_u64) {
        Some(n) => Ok(n + 1),
        None => Err(Stop::Skip(
            "the token response has no numeric expires_in: its lifetime is unknown".into(),
        )),
    }
}
