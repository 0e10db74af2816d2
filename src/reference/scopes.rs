//! Scope enforcement at the reference RS (MCP 2025-11-25 §10.1, RFC 6750 §3.1): every request
//! needs a valid token; `echo` needs the baseline `mcp:tools` (the scope the 401 challenge
//! names, implied by `mcp:admin`), `admin_reset` needs `mcp:admin`, `admin_export` needs
//! `mcp:admin` and `mcp:export`. A token short of a tool's scope gets 403 `insufficient_scope`
//! naming everything the call needs, granted scopes included, so a client that re-authorizes
//! with exactly that set can retry (MCP §10.1.2 step-up).

use axum::response::Response;
use serde_json::{Value, json};

use super::token::Access;
use super::{Ref, json};

/// The scopes this server knows (PRM and AS metadata `scopes_supported`).
pub const CATALOGUE: &[&str] = &["mcp:tools", "mcp:admin", "mcp:export"];
/// The tool the built-in profile names as `[scopes] elevated_tool`.
pub const ELEVATED_TOOL: &str = "admin_reset";
/// `[scopes] multi_scope_tool`: needs two scopes beyond the baseline.
pub const MULTI_SCOPE_TOOL: &str = "admin_export";
/// `[scopes] narrow_tool`: needs the baseline, which `mcp:admin` implies (`broad_scope`).
pub const NARROW_TOOL: &str = "echo";
const BASELINE: &str = "mcp:tools";
const ADMIN: &str = "mcp:admin";

/// What each scope-gated tool needs.
fn needs(tool: &str) -> Option<&'static [&'static str]> {
    match tool {
        ELEVATED_TOOL => Some(&[ADMIN]),
        MULTI_SCOPE_TOOL => Some(&[ADMIN, "mcp:export"]),
        NARROW_TOOL => Some(&[BASELINE]),
        _ => None,
    }
}

/// The tool a JSON-RPC `tools/call` body names.
pub fn tool_called(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("method")?.as_str()? != "tools/call" {
        return None;
    }
    v.get("params")?.get("name")?.as_str().map(str::to_string)
}

fn holds(access: &Access, scope: &str) -> bool {
    access
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|x| x == scope)
}

/// Held, or implied by a broader scope held (MCP 2026-07-28 "Step-Up Authorization Flow":
/// `mcp:admin` covers what `mcp:tools` does).
fn has(s: &Ref, access: &Access, scope: &str) -> bool {
    holds(access, scope)
        || (scope == BASELINE && holds(access, ADMIN) && !s.fault("rs-scope-hierarchy"))
}

/// `Ok` with the JSON-RPC result when the token's scope covers the request, else the 403.
pub fn enforce(s: &Ref, access: &Access, body: &[u8]) -> Result<Option<Response>, Box<Response>> {
    // The fault of rs-downscoped-accepted and rs-initial-scope-sufficient: every request
    // demands the whole catalogue.
    if (s.fault("rs-downscoped-accepted") || s.fault("rs-initial-scope-sufficient"))
        && !holds(access, ADMIN)
    {
        return Err(Box::new(insufficient(s, &format!("{BASELINE} {ADMIN}"))));
    }
    let Some(tool) = tool_called(body) else {
        return Ok(None);
    };
    // The upstream-calling tool (upstream.rs) needs a valid token and no particular scope.
    if tool == super::upstream::FETCH_TOOL {
        return Ok(Some(super::upstream::fetch_later(body)));
    }
    let Some(needed) = needs(&tool) else {
        return Ok(Some(json(
            200,
            json!({ "jsonrpc": "2.0", "id": 1, "error": { "code": -32602, "message": "unknown tool" } }),
        )));
    };
    // rs-stepup-works' fault: the challenge asks for mcp:admin, the tool checks another scope.
    let checked: Vec<&str> = if s.fault("rs-stepup-works") && tool == ELEVATED_TOOL {
        vec!["mcp:owner"]
    } else {
        needed.to_vec()
    };
    let missing: Vec<&str> = checked
        .iter()
        .copied()
        .filter(|n| !has(s, access, n))
        .collect();
    if missing.is_empty() {
        return Ok(Some(json(
            200,
            json!({ "jsonrpc": "2.0", "id": 1, "result": {
                "content": [ { "type": "text", "text": format!("{tool} done") } ] } }),
        )));
    }
    if s.fault("rs-403-insufficient-scope") || (s.fault("cc-rs-403") && access.machine) {
        // The client then loops on re-authorization: a 401 says the token is bad.
        return Err(Box::new(super::resource::unauthorized(
            s,
            Some("invalid_token"),
            401,
        )));
    }
    // MCP 10.1.1: the challenge names what this call needs, granted scopes kept, all at once
    // (rs-403-single-challenge's fault names one missing scope per 403).
    let granted = access.scope.clone().unwrap_or_default();
    let mut scope: Vec<&str> = granted.split(' ').filter(|x| !x.is_empty()).collect();
    if !s.fault("rs-403-scope-content") {
        let ask: &[&str] = if s.fault("rs-stepup-works") {
            needed
        } else if s.fault("rs-403-single-challenge") {
            &missing[..1]
        } else {
            &missing
        };
        for n in ask {
            if !scope.contains(n) {
                scope.push(n);
            }
        }
    }
    Err(Box::new(insufficient(s, &scope.join(" "))))
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
