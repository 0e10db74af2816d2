//! The action vocabulary: steps that talk to the target and save what they observed.

use std::collections::BTreeMap;

use super::context::{Attempt, CaseCtx, Discovery, Saved, Stop};
use crate::discovery;
use crate::http::Request;
use crate::spec::Revision;
use crate::www_authenticate;

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

pub struct McpRequest<'s> {
    pub method: &'s str,
    pub rpc: &'s str,
    pub tool: Option<&'s str>,
    pub authorization: &'s [String],
    pub authorization_size: Option<usize>,
    pub headers: &'s BTreeMap<String, String>,
    pub note: Option<&'s str>,
}

/// Sends a request to the MCP endpoint. Every credential a case sends here is a probe the
/// harness invented, so it is shown in reports.
pub async fn mcp_request(ctx: &mut CaseCtx<'_>, m: McpRequest<'_>) -> Result<Saved, Stop> {
    let Some(url) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let note = m.note.map(str::to_string).unwrap_or_else(|| {
        if m.authorization.is_empty() && m.authorization_size.is_none() {
            format!("{} to the MCP endpoint without credentials", m.method)
        } else {
            format!("{} to the MCP endpoint with a probe credential", m.method)
        }
    });
    let mut req = Request::new(m.method, url.clone(), note);
    req.reveal_auth = true;
    req = req.header("Accept", "application/json, text/event-stream");
    if let Some(t) = m.tool {
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
        let (body, extra) = mcp_body(m.rpc, ctx.env.revision);
        req = req.header("Content-Type", "application/json");
        for (n, v) in extra {
            req = req.header(n, v);
        }
        req = req.body(body);
    }
    for a in m.authorization {
        // Templates first (`Bearer ${t1.doc.access_token}`), then byte escapes.
        let a = ctx.expand(a).map_err(Stop::Error)?;
        req = req.header("Authorization", unescape_bytes(&a));
    }
    if let Some(size) = m.authorization_size {
        let mut v = b"Bearer ".to_vec();
        v.resize(size.max(8), b'a');
        req = req.header("Authorization", v);
    }
    for (n, v) in m.headers {
        req = req.header(n, ctx.expand(v).map_err(Stop::Error)?);
    }
    let response = ctx
        .send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from the MCP endpoint: {e}")))?;
    Ok(Saved::Response { url, response })
}

/// An `initialize` (or the revision's equivalent) to the MCP endpoint with a bearer token the
/// suite obtained: does the resource server take it?
pub async fn mcp_with_token(
    ctx: &mut CaseCtx<'_>,
    resource: &str,
    token: &str,
    note: &str,
) -> Result<crate::http::Response, Stop> {
    let (body, headers) = mcp_body("initialize", ctx.env.revision);
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

pub struct HttpStep<'s> {
    pub method: &'s str,
    pub url: &'s str,
    pub headers: &'s BTreeMap<String, String>,
    pub body: Option<&'s str>,
    pub note: Option<&'s str>,
    pub skip_if_unresolved: Option<&'s str>,
}

pub async fn http(ctx: &mut CaseCtx<'_>, s: HttpStep<'_>) -> Result<Saved, Stop> {
    let url = match ctx.expand(s.url) {
        Ok(u) => u,
        Err(e) => {
            return Err(match s.skip_if_unresolved {
                Some(reason) => Stop::Skip(reason.to_string()),
                None => Stop::Error(e),
            });
        }
    };
    let mut req = Request::new(
        s.method,
        url.clone(),
        s.note.unwrap_or("request from the case file"),
    );
    for (n, v) in s.headers {
        req = req.header(n, ctx.expand(v).map_err(Stop::Error)?);
    }
    if let Some(b) = s.body {
        req = req.body(ctx.expand(b).map_err(Stop::Error)?);
    }
    let response = ctx
        .send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from {url}: {e}")))?;
    Ok(Saved::Response { url, response })
}

async fn fetch_attempt(
    ctx: &mut CaseCtx<'_>,
    source: &'static str,
    url: String,
    what: &str,
) -> Attempt {
    let req = Request::new("GET", url.clone(), format!("{what} ({source})"))
        .header("Accept", "application/json");
    let result = ctx.send(req).await.map_err(|e| e.to_string());
    Attempt::new(source, url, result)
}

/// PRM discovery. `auto` is the client order (header URL wins; else path-inserted, then root);
/// `all` fetches every source so cases can compare them.
pub async fn discover_prm(ctx: &mut CaseCtx<'_>, via: &str) -> Result<Saved, Stop> {
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let mut d = Discovery {
        identifier: resource.clone(),
        probe: None,
        attempts: Vec::new(),
        chosen: None,
    };
    let mut header_url = None;
    if via != "well_known" {
        let probe = mcp_request(
            ctx,
            McpRequest {
                method: "POST",
                rpc: "auto",
                tool: None,
                authorization: &[],
                authorization_size: None,
                headers: &BTreeMap::new(),
                note: Some("unauthenticated MCP request to start discovery"),
            },
        )
        .await?;
        if let Saved::Response { response, .. } = probe {
            header_url = resource_metadata_param(&response);
            d.probe = Some(response);
        }
    }
    if let Some(u) = header_url.clone() {
        // Relative references resolve against the MCP URL, as a client's URL library would.
        let abs = url::Url::parse(&resource)
            .and_then(|b| b.join(&u))
            .map(|x| x.to_string())
            .unwrap_or(u);
        let a = fetch_attempt(ctx, "header", abs, "PRM named by the 401 challenge").await;
        d.attempts.push(a);
    }
    let want_well_known = match via {
        "header" => false,
        "auto" => d.attempts.iter().all(|a| a.doc().is_none()),
        _ => true,
    };
    if via == "header" && header_url.is_none() {
        ctx.note("the 401 challenge carries no resource_metadata parameter");
    }
    if want_well_known {
        let cands = discovery::prm_candidates(&resource).map_err(Stop::Error)?;
        for c in cands {
            let a = fetch_attempt(ctx, c.source, c.url, "well-known PRM").await;
            let found = a.doc().is_some();
            d.attempts.push(a);
            if found && via != "all" {
                break;
            }
        }
    }
    Ok(finish_discovery(ctx, d, "PRM"))
}

/// Picks the document a client would use (the first usable one, in order) and notes every
/// attempt for the report.
fn finish_discovery(ctx: &mut CaseCtx<'_>, mut d: Discovery, what: &str) -> Saved {
    d.chosen = d.attempts.iter().position(|a| a.doc().is_some());
    for a in &d.attempts {
        let status = match &a.result {
            Ok(r) => format!("{}", r.status),
            Err(e) => format!("error: {e}"),
        };
        ctx.note(format!("{what} {} {} -> {status}", a.source, a.url));
    }
    Saved::Discovery(d)
}

/// The `resource_metadata` parameter of the response's Bearer challenge, if any.
pub fn resource_metadata_param(r: &crate::http::Response) -> Option<String> {
    let values: Vec<&str> = r.header_all("www-authenticate").collect();
    let challenges = www_authenticate::parse_all(values).ok()?;
    challenges
        .iter()
        .filter(|c| c.is_scheme("bearer"))
        .find_map(|c| c.param("resource_metadata").map(str::to_string))
}

/// The issuer to discover: explicit template, the target's issuer, or the PRM's first entry.
pub async fn issuer_for(ctx: &mut CaseCtx<'_>, template: Option<&str>) -> Result<String, Stop> {
    if let Some(t) = template {
        return ctx.expand(t).map_err(Stop::Error);
    }
    if let Some(i) = &ctx.env.target.issuer {
        return Ok(i.clone());
    }
    if ctx.env.target.resource.is_none() {
        return Err(Stop::Skip(
            "no authorization server given (--issuer or --resource)".into(),
        ));
    }
    let prm = match ctx.saved.get("prm") {
        Some(s) => s.clone(),
        None => {
            let s = discover_prm(ctx, "auto").await?;
            ctx.saved.insert("prm".into(), s.clone());
            s
        }
    };
    let doc = match &prm {
        Saved::Discovery(d) => d.doc(),
        _ => None,
    };
    let Some(doc) = doc else {
        return Err(Stop::Error(
            "no Protected Resource Metadata found, so no authorization server to test (see the prm-* cases)".into(),
        ));
    };
    match doc
        .get("authorization_servers")
        .and_then(|v| v.as_array())
        .and_then(|a| a.first())
    {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        _ => Err(Stop::Error(
            "the PRM lists no authorization server (see prm-authorization-servers)".into(),
        )),
    }
}

/// AS metadata discovery in the MCP order. `auto` stops at the first usable document;
/// `oauth` / `oidc` try only that family; `all` fetches every candidate.
pub async fn discover_as(
    ctx: &mut CaseCtx<'_>,
    issuer: Option<&str>,
    via: &str,
) -> Result<Saved, Stop> {
    let issuer = issuer_for(ctx, issuer).await?;
    discover_as_literal(ctx, issuer, via).await
}

/// AS metadata discovery for an issuer string taken as is (never expanded as a template: it may
/// come from the server).
pub async fn discover_as_literal(
    ctx: &mut CaseCtx<'_>,
    issuer: String,
    via: &str,
) -> Result<Saved, Stop> {
    let cands = discovery::as_candidates(&issuer).map_err(Stop::Error)?;
    let mut d = Discovery {
        identifier: issuer,
        probe: None,
        attempts: Vec::new(),
        chosen: None,
    };
    for c in cands {
        let family_ok = match via {
            "oauth" => c.source.starts_with("oauth"),
            "oidc" => c.source.starts_with("oidc"),
            _ => true,
        };
        if !family_ok {
            continue;
        }
        let a = fetch_attempt(ctx, c.source, c.url, "authorization server metadata").await;
        let found = a.doc().is_some();
        d.attempts.push(a);
        if found && via != "all" {
            break;
        }
    }
    Ok(finish_discovery(ctx, d, "AS metadata"))
}

/// Shorthand for checks: a prerequisite discovery that found nothing usable.
pub fn require_doc(
    d: &Discovery,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Stop> {
    d.doc().ok_or_else(|| {
        Stop::Error(format!(
            "no {what} could be retrieved (tried {}), so this requirement cannot be judged",
            d.attempts
                .iter()
                .map(|a| a.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}
