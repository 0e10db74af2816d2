//! MCP sessions of the reference resource server (MCP 2025-11-25 transports, "Session
//! Management"): an `initialize` that the bearer token authorizes gets a fresh, random
//! `Mcp-Session-Id`; a request naming a session the server never issued (or has forgotten) gets
//! 404. Sessions never authenticate: every request still needs its token (MCP 2025-11-25 §9.1,
//! Security Best Practices "Session Hijacking"), which `resource::mcp` checks before it gets here.
//! A session belongs to the user whose token created it: the same Best Practices key sessions
//! as `<user_id>:<session_id>`, so another user's token naming it finds no session (404).

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::{Ref, json};

/// The session id a request names, if any.
fn named(headers: &HeaderMap) -> Option<String> {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn is_initialize(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string))
        .as_deref()
        == Some("initialize")
}

/// A new session id for `user`: 128 random bits as a UUIDv4 (RFC 9562 §5.4), or, under the
/// rs-session-id-entropy fault, a counter.
fn new_id(s: &Ref, user: Option<&str>) -> String {
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let id = if s.fault("rs-session-id-entropy") {
        st.seq += 1;
        format!("session-{}", st.seq)
    } else {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    if st.mcp_sessions.len() >= 10_000 {
        st.mcp_sessions.clear();
        st.mcp_session_users.clear();
    }
    st.mcp_sessions.insert(id.clone());
    st.mcp_session_users
        .insert(id.clone(), user.map(str::to_string));
    id
}

fn known(s: &Ref, id: &str) -> bool {
    s.store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .mcp_sessions
        .contains(id)
}

/// A request without a token. Only the rs-auth-every-request fault lets a live session id
/// stand in for it.
pub fn without_token(
    s: &Ref,
    headers: &HeaderMap,
    ok: impl FnOnce() -> Response,
) -> Option<Response> {
    let id = named(headers)?;
    (s.fault("rs-auth-every-request") && known(s, &id)).then(ok)
}

/// Whether the session was created for another user than the request's (its token's).
fn someone_elses(s: &Ref, id: &str, user: Option<&str>) -> bool {
    if s.fault("rs-session-user-binding") {
        // The faulty server looks sessions up by id alone.
        return false;
    }
    s.store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .mcp_session_users
        .get(id)
        .is_some_and(|owner| owner.as_deref() != user)
}

/// An authorized request of `user`: a named session must exist and be that user's (404
/// otherwise); an `initialize` starts a new one, returned in `Mcp-Session-Id`.
pub fn authorized(
    s: &Ref,
    headers: &HeaderMap,
    body: &[u8],
    ok: Response,
    user: Option<&str>,
) -> Response {
    // A 2026-07-28 endpoint has no sessions: it ignores the header and mints none (2026
    // streamable-http, "Earlier Streamable HTTP Revisions"; changelog major 1, SEP-2567).
    if s.stateless() {
        return ok;
    }
    if let Some(id) = named(headers)
        && (!known(s, &id) || someone_elses(s, &id, user))
    {
        if s.fault("rs-stale-session-4xx") {
            return json(
                500,
                json!({ "error": "server_error", "error_description": "no such session" }),
            );
        }
        return json(
            404,
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32001, "message": "session not found" } }),
        );
    }
    let mut ok = ok;
    if is_initialize(body)
        && named(headers).is_none()
        && let Ok(v) = new_id(s, user).parse()
    {
        ok.headers_mut().insert("mcp-session-id", v);
    }
    ok
}
