//! Requests a case names directly: to the MCP endpoint (`mcp_request`, in the graded revision's
//! JSON-RPC form) and to any URL (`http`).

use super::context::{CaseCtx, Saved, StepResult, Stop};
use crate::case::model::{HttpStep, McpRequestStep};
use crate::http::Request;
use crate::spec::Revision;

/// The JSON-RPC body and extra headers of an MCP request for a revision.
pub fn mcp_body(rpc: &str, rev: Revision) -> (String, Vec<(&'static str, String)>) {
    let rpc = match rpc {
        "auto" if rev == Revision::V2026_07_28 => "tools/list",
        "auto" => "initialize",
        other => other,
    };
    let version = rev.as_str();
    let body = match rpc {
        "initialize" => serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": { "name": "authconform", "version": env!("CARGO_PKG_VERSION") }
            }
        }),
        // 2026-07-28 is stateless: the version travels in `_meta` and the method in a header.
        m => serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": m,
            "params": { "_meta": { "io.modelcontextprotocol/protocolVersion": version } }
        }),
    };
    let mut headers = vec![("MCP-Protocol-Version", version.to_string())];
    if rpc != "initialize" {
        headers.push(("Mcp-Method", rpc.to_string()));
    }
    (body.to_string(), headers)
}

/// `tools/call` of a tool with no arguments (MCP `server/tools`), in the revision's form.
fn tool_call_body(name: &str, rev: Revision) -> (String, Vec<(&'static str, String)>) {
    let (body, headers) = mcp_body("tools/call", rev);
    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["params"]["name"] = serde_json::json!(name);
    v["params"]["arguments"] = serde_json::json!({});
    (v.to_string(), headers)
}

/// Sends a request to the MCP endpoint. Every credential a case sends here is a probe the
/// harness invented, so it is shown in reports.
pub async fn mcp_request(ctx: &mut CaseCtx<'_>, m: &McpRequestStep) -> Result<Saved, Stop> {
    let Some(url) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let note = m.note.clone().unwrap_or_else(|| {
        if m.authorization.is_empty() && m.authorization_size.is_none() {
            format!("{} to the MCP endpoint without credentials", m.method)
        } else {
            format!("{} to the MCP endpoint with a probe credential", m.method)
        }
    });
    let mut req = Request::new(&m.method, url.clone(), note);
    req.reveal_auth = true;
    req = req.header("Accept", "application/json, text/event-stream");
    if let Some(t) = m.tool.as_deref() {
        // Named roles resolve to the profile's tools; a missing one skips the case.
        let sc = &ctx.env.profile.scopes;
        let (configured, key) = match t {
            "elevated" => (sc.elevated_tool.clone(), "elevated_tool"),
            "multi" => (sc.multi_scope_tool.clone(), "multi_scope_tool"),
            "narrow" => (sc.narrow_tool.clone(), "narrow_tool"),
            _ => (Some(ctx.expand(t).map_err(Stop::Error)?), ""),
        };
        let name = configured.ok_or_else(|| {
            Stop::Skip(format!(
                "the profile names no such tool ([scopes] {key}): nothing to call"
            ))
        })?;
        let (body, extra) = tool_call_body(&name, ctx.env.revision);
        req = req.header("Content-Type", "application/json");
        for (n, v) in extra {
            req = req.header(n, v);
        }
        req = req.body(body);
    } else if m.method == "POST" {
        let (body, extra) = mcp_body(&m.rpc, ctx.env.revision);
        req = req.header("Content-Type", "application/json");
        for (n, v) in extra {
            req = req.header(n, v);
        }
        req = req.body(body);
    }
    for a in &m.authorization {
        // Templates first (`Bearer ${t1.doc.access_token}`), then byte escapes.
        let a = ctx.expand(a).map_err(Stop::Error)?;
        req = req.header("Authorization", unescape_bytes(&a));
    }
    if let Some(size) = m.authorization_size {
        let mut v = b"Bearer ".to_vec();
        v.resize(size.max(8), b'a');
        req = req.header("Authorization", v);
    }
    for (n, v) in &m.headers {
        req = req.header(n, ctx.expand(v).map_err(Stop::Error)?);
    }
    let response = match &m.dpop {
        // RFC 9449 §7: the proof's `ath` hashes the token the Authorization value carries.
        Some(spec) => {
            let auth = match m.authorization.first() {
                Some(a) => Some(ctx.expand(a).map_err(Stop::Error)?),
                None => None,
            };
            let token = auth.as_deref().and_then(super::dpop::token_of);
            super::dpop::send(ctx, req, spec, token).await?
        }
        None => ctx
            .send(req)
            .await
            .map_err(|e| Stop::Error(format!("no response from the MCP endpoint: {e}")))?,
    };
    Ok(Saved::Response { url, response })
}

/// An `initialize` (or the revision's equivalent: 2026-07-28 has no handshake, so a stateless
/// `tools/list`) to the MCP endpoint with a bearer token the suite obtained: does the resource
/// server take it?
pub async fn mcp_with_token(
    ctx: &mut CaseCtx<'_>,
    resource: &str,
    token: &str,
    note: &str,
) -> Result<crate::http::Response, Stop> {
    let (body, headers) = mcp_body("auto", ctx.env.revision);
    let mut req = Request::new("POST", resource, note)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {token}"))
        .body(body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    ctx.send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from the MCP endpoint {resource}: {e}")))
}

/// `\xNN` escapes in a case string become raw bytes, so a case can send non-ASCII header bytes.
fn unescape_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A raw request to any URL the case names (a template), sent without normalisation.
pub async fn http(ctx: &mut CaseCtx<'_>, s: &HttpStep) -> Result<Saved, Stop> {
    let url = match ctx.expand(&s.url) {
        Ok(u) => u,
        Err(e) => {
            return Err(match &s.skip_if_unresolved {
                Some(reason) => Stop::Skip(reason.to_string()),
                None => Stop::Error(e),
            });
        }
    };
    let mut req = Request::new(
        &s.method,
        url.clone(),
        s.note.as_deref().unwrap_or("request from the case file"),
    );
    for (n, v) in &s.headers {
        req = req.header(n, ctx.expand(v).map_err(Stop::Error)?);
    }
    if let Some(b) = &s.body {
        req = req.body(ctx.expand(b).map_err(Stop::Error)?);
    }
    let response = ctx
        .send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from {url}: {e}")))?;
    Ok(Saved::Response { url, response })
}

/// The `mcp_request` step.
pub async fn run_mcp(ctx: &mut CaseCtx<'_>, s: &McpRequestStep) -> StepResult {
    let saved = mcp_request(ctx, s).await?;
    let name = s.save.as_deref().unwrap_or("last");
    let r = super::save_and_expect(
        ctx,
        saved,
        name,
        s.expect.as_ref(),
        Some(super::ErrorOwner::Resource),
    );
    // A precondition that asks for a 401 sets the stage for a challenge check; any other,
    // for a valid request.
    let stage = match s.expect.as_ref().and_then(|e| e.status.as_deref()) {
        Some([401]) => super::Stage::Challenge {
            with_token: !s.authorization.is_empty(),
        },
        _ => super::Stage::Mcp,
    };
    super::precondition_held(ctx, r, s.precondition == Some(true), name, stage)
}

/// The `http` step.
pub async fn run_http(ctx: &mut CaseCtx<'_>, s: &HttpStep) -> StepResult {
    let saved = http(ctx, s).await?;
    let name = s.save.as_deref().unwrap_or("last");
    let r = super::save_and_expect(ctx, saved, name, s.expect.as_ref(), None);
    super::precondition_held(ctx, r, s.precondition, name, super::Stage::Http)
}
