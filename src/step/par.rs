//! Pushed Authorization Requests (RFC 9126): where the PAR endpoint is, and pushing an
//! authorization request there. The push is a token-endpoint-style request (the client's own
//! authentication, §2) whose body is the authorization request (§2.1); the `authorize` step
//! (`push`, `request_uri`) and the `token` step (`endpoint = "par"`) build on it.

use serde_json::Value;

use super::context::{CaseCtx, Saved, Stop};

/// The AS metadata member naming the PAR endpoint (RFC 9126 §5).
pub const MEMBER: &str = "pushed_authorization_request_endpoint";
/// The URN prefix RFC 9126 §2.2 suggests for `request_uri` values.
pub const URN_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The PAR endpoint: the AS metadata's, else the profile's `[par] endpoint`. A server that names
/// neither does not offer PAR, and the case is skipped saying so.
pub async fn endpoint(ctx: &mut CaseCtx<'_>) -> Result<String, Stop> {
    match super::discovery::as_endpoint(ctx, MEMBER).await {
        Ok(e) => Ok(e),
        Err(Stop::Skip(_)) => match &ctx.env.profile.par.endpoint {
            Some(e) => Ok(e.clone()),
            None => Err(Stop::Skip(format!(
                "the AS does not offer PAR: its metadata has no {MEMBER} (RFC 9126 §5) and the profile names none ([par] endpoint)"
            ))),
        },
        Err(other) => Err(other),
    }
}

/// The AS metadata's `require_pushed_authorization_requests` (RFC 9126 §5), when the case has
/// the metadata.
pub fn required_by_metadata(ctx: &CaseCtx<'_>) -> Option<Value> {
    match ctx.saved.get("asm") {
        Some(Saved::Discovery(d)) => d
            .doc()?
            .get("require_pushed_authorization_requests")
            .cloned(),
        _ => None,
    }
}

/// The `request_uri` of a PAR answer that succeeded (201 with a non-empty string member),
/// else `None`.
pub fn request_uri(r: &crate::http::Response) -> Option<String> {
    if r.status != 201 {
        return None;
    }
    r.json()?
        .get("request_uri")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
