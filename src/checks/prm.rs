//! Protected Resource Metadata: RFC 9728 §2 (members), §3.1 (well-known URL), §3.2 (response),
//! §3.3 (validation); MCP 2025-11-25 §4.1, §4.2, §8.1.

use std::collections::BTreeMap;

use authconform_core::judge;
use serde_json::Value;

use super::https_rule;
use crate::discovery;
use crate::http::Request;
use crate::step::discovery::require_doc;
use crate::step::{CaseCtx, StepResult, Stop};

/// prm-wellknown-path: PRM at the path-inserted or root well-known URL.
pub fn wellknown(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::wellknown(f, &d))
}

/// prm-unauthenticated: no PRM source demands credentials.
pub fn unauthenticated(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::unauthenticated(f, &d))
}

/// prm-resource-match (RFC 9728 §3.3): `resource` identical to the URL the metadata URL was
/// derived from; a parent path is a warning only from the root well-known URL.
pub fn resource_match(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::resource_match(f, &d))
}

/// prm-resource-form (MCP 8.1, RFC 8707 §2): absolute, lowercase scheme and host, no fragment;
/// no query and no trailing slash as SHOULDs (warnings).
pub fn resource_form(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::resource_form(f, &d))
}

/// prm-authorization-servers (MCP 4.1): non-empty array of issuer identifiers (https, no
/// query or fragment, not a metadata URL).
pub fn authorization_servers(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::authorization_servers(f, &d))
}

/// prm-as-reachable: some listed issuer resolves, via the MCP discovery order, to metadata
/// whose `issuer` is that same string. When the listed AS serves no metadata at all this fails
/// beside asm-available: from outside, an RS naming a wrong issuer and an AS serving nothing at
/// the right one look the same.
pub async fn as_reachable(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    let doc = require_doc(&d, "Protected Resource Metadata")
        .map_err(|e| crate::step::discovery::without_doc(ctx, e, "prm-200-json"))?;
    let issuers: Vec<String> = doc
        .get("authorization_servers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if issuers.is_empty() {
        return ctx.fail("PRM lists no authorization server to reach");
    }
    let mut problems = Vec::new();
    for issuer in issuers {
        let saved =
            crate::step::discovery::discover_as_literal(ctx, issuer.clone(), "auto").await?;
        let crate::step::Saved::Discovery(ad) = saved else {
            continue;
        };
        match ad.doc() {
            Some(m) => match m.get("issuer").and_then(Value::as_str) {
                Some(i) if i == issuer => {
                    ctx.pass(format!(
                        "{issuer} resolves to metadata at {}",
                        ad.chosen().map(|a| a.url.as_str()).unwrap_or("")
                    ));
                    return Ok(());
                }
                Some(other) => {
                    problems.push(format!("{issuer}: its metadata states issuer {other:?}"))
                }
                None => problems.push(format!("{issuer}: its metadata has no string issuer")),
            },
            None => problems.push(format!("{issuer}: no metadata at any discovery URL")),
        }
    }
    ctx.fail(format!(
        "no listed authorization server is reachable: {}",
        problems.join("; ")
    ))
}

/// prm-no-empty-values (RFC 9728 §3.2): no member with an empty value, except
/// `bearer_methods_supported: []`, which RFC 9728 §2 allows.
pub fn no_empty_values(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::no_empty_values(f, &d))
}

fn is_prm(r: &crate::http::Response) -> bool {
    r.status == 200 && r.json().is_some_and(|v| v.get("resource").is_some())
}

/// prm-trailing-slash-insertion (RFC 9728 §3.1): the well-known URL built with the slash after
/// the host dropped serves the PRM; the naive concatenation (`.../oauth-protected-resource//mcp`,
/// or a trailing `/` for a root resource) must not be the only place it lives.
pub async fn trailing_slash(ctx: &mut CaseCtx<'_>) -> StepResult {
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given".into()));
    };
    let correct = discovery::prm_rfc_url(&resource).map_err(Stop::Error)?;
    let u = url::Url::parse(&resource).map_err(|e| Stop::Error(e.to_string()))?;
    let naive = if u.path() == "/" || u.path().is_empty() {
        format!("{}{}/", discovery::origin(&u), discovery::PRM_SUFFIX)
    } else {
        format!(
            "{}{}/{}",
            discovery::origin(&u),
            discovery::PRM_SUFFIX,
            u.path()
        )
    };
    let ok = ctx
        .send(Request::new(
            "GET",
            correct.clone(),
            "PRM at the RFC 9728 §3.1 well-known URL",
        ))
        .await
        .map(|r| is_prm(&r))
        .unwrap_or(false);
    if ok {
        ctx.pass(format!("PRM served at {correct}"));
        return Ok(());
    }
    let naive_ok = ctx
        .send(Request::new(
            "GET",
            naive.clone(),
            "PRM at the mis-joined well-known URL",
        ))
        .await
        .map(|r| is_prm(&r))
        .unwrap_or(false);
    if naive_ok {
        return ctx.fail(format!(
            "PRM is served at {naive} but not at {correct}: the slash after the host was not dropped before insertion"
        ));
    }
    Err(Stop::Skip(format!(
        "PRM is served at neither {correct} nor {naive}: the server does not use path-inserted discovery"
    )))
}

/// prm-consistent-sources (RFC 9728 §3.3): every source that serves PRM agrees on
/// `authorization_servers`.
pub fn consistent_sources(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::prm::consistent_sources(f, &d))
}

/// prm-https (OAuth 2.1 §1.5, MCP 11.3): PRM is not served over plain http.
pub async fn https(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    require_doc(&d, "Protected Resource Metadata")
        .map_err(|e| crate::step::discovery::without_doc(ctx, e, "prm-200-json"))?;
    let served: Vec<String> = d
        .attempts
        .iter()
        .filter(|a| a.doc().is_some())
        .map(|a| a.url.clone())
        .collect();
    for u in &served {
        if u.to_ascii_lowercase().starts_with("http:") {
            return https_rule(ctx, "the PRM URL", u);
        }
    }
    // Served over https: the same URL over plain http must not answer with the document.
    let plain = format!("http{}", &served[0]["https".len()..]);
    match ctx
        .send(Request::new(
            "GET",
            plain.clone(),
            "the PRM URL over plain http",
        ))
        .await
    {
        // The same rule as a PRM discovered over http: a failure, or on a loopback host the
        // usual tolerated warning (equal deviations, equal grades).
        Ok(r) if is_prm(&r) => https_rule(ctx, "PRM, also served over plain http,", &plain),
        Ok(r) => {
            ctx.pass(format!(
                "plain http answered {} without the document",
                r.status
            ));
            Ok(())
        }
        Err(e) => {
            ctx.pass(format!("plain http refused ({e})"));
            Ok(())
        }
    }
}

/// prm-fuzz-paths: odd suffixes on the well-known path get 404 or the document, never a 5xx,
/// never file contents; an HTML 200 (a single-page app catching every path) is a warning.
pub async fn fuzz_paths(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given".into()));
    };
    let u = url::Url::parse(&resource).map_err(|e| Stop::Error(e.to_string()))?;
    let base = format!("{}{}", discovery::origin(&u), discovery::PRM_SUFFIX);
    let suffixes: Vec<String> = args
        .get("suffixes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if suffixes.is_empty() {
        return Err(Stop::Error("prm_fuzz_paths needs args.suffixes".into()));
    }
    for s in suffixes {
        let s = if s == "LONG" {
            format!("/{}", "a".repeat(8192))
        } else {
            s
        };
        let url = format!("{base}{s}");
        let r = match ctx
            .send(Request::new("GET", url.clone(), "odd well-known path"))
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(Stop::Error(format!("no answer to {url}: {e}"))),
        };
        if r.status >= 500 {
            return ctx.fail(format!("{} answered {}", short(&url), r.status));
        }
        let text = r.text();
        if text.contains("root:x:0:0") || text.contains("[boot loader]") {
            return ctx.fail(format!(
                "{} returned what looks like a system file",
                short(&url)
            ));
        }
        if r.status == 200 && r.media_type().as_deref() == Some("text/html") {
            ctx.warn(format!(
                "{} answered 200 with HTML (a catch-all page)",
                short(&url)
            ));
        } else {
            ctx.pass(format!("{} -> {}", short(&url), r.status));
        }
    }
    Ok(())
}

fn short(u: &str) -> String {
    if u.len() > 120 {
        format!(
            "{}…({} bytes)",
            u.chars().take(100).collect::<String>(),
            u.len()
        )
    } else {
        u.to_string()
    }
}
