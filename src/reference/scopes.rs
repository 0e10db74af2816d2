//! Scope enforcement at the reference RS (MCP 2025-11-25 §10.1, RFC 6750 §3.1): every request
//! needs a valid token, and the `admin_reset` tool needs `mcp:admin` on top of the baseline
//! `mcp:tools` (the scope the 401 challenge names). A token short of it gets 403
//! `insufficient_scope` naming what the call needs, granted scopes included, so a client that
//! re-authorizes with exactly that set can retry (MCP §10.1.2 step-up).

use axum::response::Response;
use serde_json::{Value, json};

use super::token::Access;
use super::{Ref, json};

/// The tool the built-in profile names as `[scopes] elevated_tool`.
pub const ELEVATED_TOOL: &str = "admin_reset";
const BASELINE: &str = "mcp:tools";
const ADMIN: &str = "mcp:admin";

/// The tool a JSON-RPC `tools/call` body names.
pub fn tool_called(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("method")?.as_str()? != "tools/call" {
        return None;
    }
    v.get("params")?.get("name")?.as_str().map(str::to_string)
}

fn has(access: &Access, scope: &str) -> bool {
    access
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|x| x == scope)
}

/// `Ok` with the JSON-RPC result when the token's scope covers the request, else the 403.
pub fn enforce(s: &Ref, access: &Access, body: &[u8]) -> Result<Option<Response>, Box<Response>> {
    // The fault of rs-downscoped-accepted and rs-initial-scope-sufficient: every request
    // demands the whole catalogue.
    if (s.fault("rs-downscoped-accepted") || s.fault("rs-initial-scope-sufficient"))
        && !has(access, ADMIN)
    {
        return Err(Box::new(insufficient(s, &format!("{BASELINE} {ADMIN}"))));
    }
    let Some(tool) = tool_called(body) else {
        return Ok(None);
    };
    if tool != ELEVATED_TOOL {
        return Ok(Some(json(
            200,
            json!({ "jsonrpc": "2.0", "id": 1, "error": { "code": -32602, "message": "unknown tool" } }),
        )));
    }
    // rs-stepup-works' fault: the challenge asks for mcp:admin, the tool checks another scope.
    let needed = if s.fault("rs-stepup-works") {
        "mcp:owner"
    } else {
        ADMIN
    };
    if has(access, needed) {
        return Ok(Some(json(
            200,
            json!({ "jsonrpc": "2.0", "id": 1, "result": {
                "content": [ { "type": "text", "text": "reset done" } ] } }),
        )));
    }
    if s.fault("rs-403-insufficient-scope") {
        // The client then loops on re-authorization: a 401 says the token is bad.
        return Err(Box::new(super::resource::unauthorized(
            s,
            Some("invalid_token"),
            401,
        )));
    }
    let scope = if s.fault("rs-403-scope-content") {
        // Names only what the token already has: nothing to step up to.
        access.scope.clone().unwrap_or_default()
    } else {
        format!("{BASELINE} {ADMIN}")
    };
    Err(Box::new(insufficient(s, &scope)))
}

/// 403 with `error="insufficient_scope"`, the needed `scope` and the PRM URL (RFC 6750 §3.1,
/// MCP 2025-11-25 §10.1.1).
pub fn insufficient(s: &Ref, scope: &str) -> Response {
    let mut r = json(
        403,
        json!({ "error": "insufficient_scope", "error_description": "this tool needs more scope" }),
    );
    let v = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}{}\"",
        s.origin,
        super::resource::prm_path(s)
    );
    if let Ok(h) = v.parse() {
        r.headers_mut().insert("www-authenticate", h);
    }
    r
}
