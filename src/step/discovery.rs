//! Discovery as a client makes it: Protected Resource Metadata (RFC 9728; MCP: the challenge's
//! `resource_metadata` URL, then the path-inserted and root well-known URLs) and authorization
//! server metadata (RFC 8414 and OIDC Discovery, in the MCP order). Every attempt is kept, so
//! checks can compare sources and reports show what was tried.

use authconform_core::judge::challenge::resource_metadata_param;
use serde_json::Value;

use super::context::{Attempt, CaseCtx, Discovery, RunEnv, Saved, StepResult, Stop};
use super::request::mcp_request;
use crate::case::model::{DiscoverAsStep, DiscoverPrmStep, McpRequestStep};
use crate::discovery;
use crate::http::Request;
use crate::record::Exchange;

/// An endpoint named in the AS metadata (discovering the metadata once per case).
pub async fn as_endpoint(ctx: &mut CaseCtx<'_>, member: &str) -> Result<String, Stop> {
    if !ctx.saved.contains_key("asm") {
        let s = shared_as_metadata(ctx).await?;
        ctx.saved.insert("asm".into(), s);
    }
    let doc = match ctx.saved.get("asm") {
        Some(Saved::Discovery(d)) => d.doc(),
        _ => None,
    };
    let Some(doc) = doc else {
        let e = Stop::Error("no authorization server metadata found (see the asm-* cases)".into());
        return Err(without_doc(ctx, e, "asm-available"));
    };
    match doc.get(member) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Stop::Skip(format!("the AS metadata has no {member}"))),
    }
}

/// A metadata document that is not there blocks a case that reads its members: the case is
/// errored, blocked by the case that judges whether a document is served (`owner`:
/// asm-available or prm-200-json), instead of failing for it. Other stops pass through.
pub fn without_doc(ctx: &mut CaseCtx<'_>, e: Stop, owner: &str) -> Stop {
    if let Stop::Error(m) = &e {
        ctx.block("no-metadata-document", Some(owner), m);
    }
    e
}

/// The run's AS metadata discovery (401 → PRM → AS metadata), made once per run: the session
/// resolves it before the first case, and every case that relies on it gets its exchanges as
/// evidence.
/// The AS metadata document, found once per run and kept in the case as `asm`; without one
/// the case is errored and blocked by asm-available.
pub async fn shared_as_doc(
    ctx: &mut CaseCtx<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>, Stop> {
    let asm = shared_as_metadata(ctx).await?;
    let doc = match &asm {
        Saved::Discovery(d) => d.doc(),
        _ => None,
    };
    ctx.saved.entry("asm".into()).or_insert(asm);
    doc.ok_or_else(|| {
        let e = Stop::Error("no authorization server metadata found (see the asm-* cases)".into());
        without_doc(ctx, e, "asm-available")
    })
}

pub async fn shared_as_metadata(ctx: &mut CaseCtx<'_>) -> Result<Saved, Stop> {
    let env = ctx.env;
    let shared = env
        .as_metadata
        .get_or_init(|| async {
            let mut sub = CaseCtx::new(env);
            // The PRM part of the chain is the shared PRM's evidence, adopted on its own.
            sub.adopted.push("PRM");
            let result = discover_as(&mut sub, None, "auto").await;
            Shared::from(sub, result)
        })
        .await;
    if let Some(prm) = env.prm.get() {
        let _ = adopt(ctx, "PRM", prm);
    }
    adopt(ctx, "AS metadata", shared)
}

/// The run's PRM discovery in the client order (`auto`), made once per run like
/// [`shared_as_metadata`]. Cases that test discovery itself run their own `discover_prm`.
pub async fn shared_prm(ctx: &mut CaseCtx<'_>) -> Result<Saved, Stop> {
    let env = ctx.env;
    let shared = env
        .prm
        .get_or_init(|| async {
            let mut sub = CaseCtx::new(env);
            let result = discover_prm(&mut sub, "auto").await;
            Shared::from(sub, result)
        })
        .await;
    adopt(ctx, "PRM", shared)
}

/// Resolves the run's discovery chain before any case runs: a dead or hostile target is met
/// once, here, and the breaker ([`crate::health`]) knows its state before cases spend their
/// own timeouts.
pub async fn resolve_shared(env: &RunEnv) {
    let mut ctx = CaseCtx::new(env);
    if env.target.resource.is_some() {
        let _ = shared_prm(&mut ctx).await;
    }
    if env.target.resource.is_some() || env.target.issuer.is_some() {
        let _ = shared_as_metadata(&mut ctx).await;
    }
}

/// A discovery made once for the run, with the exchanges and notes that prove it.
pub struct Shared {
    pub result: Result<Saved, Stop>,
    pub exchanges: Vec<Exchange>,
    pub details: Vec<String>,
    pub blocked: Option<crate::health::Incident>,
}

impl Shared {
    fn from(sub: CaseCtx<'_>, result: Result<Saved, Stop>) -> Self {
        Shared {
            result,
            exchanges: sub.exchanges,
            details: sub.details,
            blocked: sub.blocked,
        }
    }
}

/// The shared result for this case: its exchanges and notes join the case's evidence (once per
/// case), marked as the run's shared discovery.
fn adopt(ctx: &mut CaseCtx<'_>, what: &'static str, shared: &Shared) -> Result<Saved, Stop> {
    if !ctx.adopted.contains(&what) {
        ctx.adopted.push(what);
        for ex in &shared.exchanges {
            let mut ex = ex.clone();
            ex.note = format!("shared {what} discovery, made once per run: {}", ex.note);
            ctx.exchanges.push(ex);
        }
        for d in &shared.details {
            ctx.details.push(format!("(shared discovery) {d}"));
        }
        if ctx.blocked.is_none() {
            ctx.blocked = shared.blocked.clone();
        }
    }
    shared.result.clone()
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
            &McpRequestStep {
                rpc: "auto".into(),
                note: Some("unauthenticated MCP request to start discovery".into()),
                ..Default::default()
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
            let s = shared_prm(ctx).await?;
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

pub use authconform_core::metadata::require_doc;

/// The `discover_prm` step.
pub async fn run_prm(ctx: &mut CaseCtx<'_>, s: &DiscoverPrmStep) -> StepResult {
    let saved = discover_prm(ctx, &s.via).await?;
    super::save_and_expect(ctx, saved, &s.save, s.expect.as_ref(), None)
}

/// The `discover_as` step: a discovery of its own, or the run's shared one (`cached`).
pub async fn run_as(ctx: &mut CaseCtx<'_>, s: &DiscoverAsStep) -> StepResult {
    let saved = if s.cached {
        shared_as_metadata(ctx).await?
    } else {
        discover_as(ctx, s.issuer.as_deref(), &s.via).await?
    };
    super::save_and_expect(ctx, saved, &s.save, s.expect.as_ref(), None)
}
