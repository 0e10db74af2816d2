//! Protected Resource Metadata judgements (RFC 9728 §2, §3.1–§3.3; MCP 2025-11-25 §4.1, §8.1):
//! the `prm-*` checks that read a discovery and send nothing. `authconform::checks::prm` wraps
//! each one in the check of the same name.

use serde_json::Value;

use super::https_rule;
use crate::metadata::{Discovery, require_doc};
use crate::verdict::{Findings, StepResult, Stop};

/// prm-wellknown-path: PRM at the path-inserted or root well-known URL.
pub fn wellknown(f: &mut Findings, d: &Discovery) -> StepResult {
    if let Some(a) = d
        .attempts
        .iter()
        .find(|a| a.source != "header" && a.doc().is_some())
    {
        f.pass(format!(
            "PRM served at the {} well-known URL {}",
            a.source, a.url
        ));
        return Ok(());
    }
    if d.attempts
        .iter()
        .any(|a| a.source == "header" && a.doc().is_some())
    {
        f.warn(
            "PRM is not served at any well-known URL; allowed (the 401 challenge names it), but clients that probe well-known URLs first will not find it",
        );
        return Ok(());
    }
    // Neither mechanism: MCP §4.2's MUST ("one of"), which rs-401-discovery-mechanism judges.
    Err(Stop::Skip(
        "PRM is served neither at a well-known URL nor at a URL named by the challenge: that is rs-401-discovery-mechanism's finding".into(),
    ))
}

/// prm-unauthenticated: no PRM source demands credentials. The URL the challenge names (the
/// one MCP clients must use), or every source, demanding credentials fails: a discovery loop.
/// A well-known URL that demands them while PRM is served without credentials elsewhere is a
/// warning: clients fall back to the next URL, but one that stops at the 401 is stuck.
pub fn unauthenticated(f: &mut Findings, d: &Discovery) -> StepResult {
    let served_freely = d.attempts.iter().any(|a| a.doc().is_some());
    for a in &d.attempts {
        if let Ok(r) = &a.result
            && (r.status == 401 || r.status == 403)
        {
            if a.source == "header" || !served_freely {
                return f.fail(format!(
                    "{} ({}) answered {} to an unauthenticated request: a client cannot discover how to authenticate",
                    a.url, a.source, r.status
                ));
            }
            f.warn(format!(
                "{} ({}) answered {} to an unauthenticated request; PRM is served without credentials elsewhere, but a client that tries this URL first may stop there",
                a.url, a.source, r.status
            ));
        }
    }
    require_doc(d, "Protected Resource Metadata")?;
    f.pass("PRM is served without credentials");
    Ok(())
}

/// prm-resource-match (RFC 9728 §3.3): `resource` identical to the URL the metadata URL was
/// derived from, or (from the challenge's URL) to the URL requested: a parent path fails. Only
/// from the root well-known URL, whose own identifier is the origin, is a parent a warning.
pub fn resource_match(f: &mut Findings, d: &Discovery) -> StepResult {
    require_doc(d, "Protected Resource Metadata")?;
    let expected = d.identifier.clone();
    for a in d.attempts.iter() {
        let Some(doc) = a.doc() else { continue };
        let got = match doc.get("resource") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return f.fail(format!("PRM at {} has a non-string resource: {v}", a.url)),
            None => return f.fail(format!("PRM at {} has no resource member", a.url)),
        };
        if got == expected {
            f.pass(format!(
                "PRM at {} ({}) names resource {got:?}, identical to the MCP URL",
                a.url, a.source
            ));
        } else if is_parent(&got, &expected) && a.source == "root" {
            // The root URL's RFC 9728 identifier is the origin (§3.3), while MCP uses it as a
            // fallback for the MCP URL: a parent there is a warning, not a failure.
            f.warn(format!(
                "PRM at the root URL {} names {got:?}, a parent of the MCP URL {expected:?}: only lenient clients accept this (RFC 9728 §3.3 demands identity)",
                a.url
            ));
        } else {
            return f.fail(format!(
                "PRM at {} ({}) names resource {got:?}, but the MCP URL is {expected:?}; RFC 9728 §3.3 clients must reject it",
                a.url, a.source
            ));
        }
    }
    Ok(())
}

/// Same origin, and `parent`'s path is a proper prefix (at a segment boundary) of `child`'s.
fn is_parent(parent: &str, child: &str) -> bool {
    let (Ok(p), Ok(c)) = (url::Url::parse(parent), url::Url::parse(child)) else {
        return false;
    };
    if p.origin() != c.origin() || p.query().is_some() || p.fragment().is_some() {
        return false;
    }
    let pp = p.path().trim_end_matches('/');
    let cp = c.path();
    cp.len() > pp.len() && cp.starts_with(pp) && cp.as_bytes()[pp.len()] == b'/'
}

/// prm-resource-form (RFC 9728 §1.2, RFC 8707 §2, MCP 8.1): an https URL without fragment.
/// RFC 9728 §1.2 defines the resource identifier as "a URL that uses the https scheme and has
/// no fragment component" (plain http is tolerated on loopback only, as everywhere). Upper-case
/// scheme or host is the same identifier (RFC 3986 §6.2.2.1) and MCP says implementations
/// SHOULD accept it: not the canonical form, so a warning, never a failure. A query (SHOULD NOT,
/// RFC 8707 §2) and a trailing slash (MCP 8.1 prefers none) are warnings too.
pub fn resource_form(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "Protected Resource Metadata")?;
    let Some(Value::String(r)) = doc.get("resource") else {
        return f.fail("PRM has no string `resource`");
    };
    let r = r.clone();
    // Judge the raw string: a URL type would lowercase and repair what we must observe.
    let Some((scheme, rest)) = r.split_once("://") else {
        return f.fail(format!("resource {r:?} is not an absolute URI"));
    };
    if scheme.is_empty() || url::Url::parse(&r).is_err() {
        return f.fail(format!("resource {r:?} is not an absolute URI"));
    }
    if r.contains('#') {
        return f.fail(format!(
            "resource {r:?} has a fragment (RFC 9728 §1.2 and RFC 8707 §2 forbid it)"
        ));
    }
    super::https_rule(f, "resource", &r)?;
    f.pass(format!(
        "resource {r:?} is an absolute URL without fragment"
    ));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if scheme != scheme.to_ascii_lowercase() || host != host.to_ascii_lowercase() {
        f.warn(format!(
            "resource {r:?}: scheme or host is not lowercase, the canonical form (the same identifier; MCP says implementations SHOULD accept it, but a client comparing strings may not)"
        ));
    }
    if r.contains('?') {
        f.warn(format!(
            "resource {r:?} has a query component (SHOULD NOT, RFC 8707 §2)"
        ));
    }
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if path.len() > 1 && path.ends_with('/') {
        f.warn(format!(
            "resource {r:?} ends with a slash (MCP 8.1 prefers none)"
        ));
    }
    Ok(())
}

/// prm-authorization-servers (MCP 4.1): non-empty array of issuer identifiers (https, no
/// query or fragment, not a metadata URL).
pub fn authorization_servers(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "Protected Resource Metadata")?;
    let list = match doc.get("authorization_servers") {
        None => {
            return f.fail("PRM has no authorization_servers (MCP 4.1 requires at least one)");
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return f.fail("authorization_servers is empty (MCP 4.1 requires at least one)");
        }
        Some(Value::Array(a)) => a.clone(),
        Some(v) => return f.fail(format!("authorization_servers is not an array: {v}")),
    };
    for v in list {
        let Value::String(s) = v else {
            return f.fail(format!("authorization_servers holds a non-string: {v}"));
        };
        if url::Url::parse(&s).is_err() {
            return f.fail(format!("{s:?} is not an absolute URL"));
        }
        if s.contains("/.well-known/") {
            return f.fail(format!(
                "{s:?} is a metadata URL; authorization_servers lists issuer identifiers"
            ));
        }
        if s.contains('?') || s.contains('#') {
            return f.fail(format!(
                "{s:?} has a query or fragment; an issuer has neither"
            ));
        }
        https_rule(f, "authorization server", &s)?;
    }
    Ok(())
}

/// prm-no-empty-values (RFC 9728 §3.2): no member with an empty value, except
/// `bearer_methods_supported: []`, which RFC 9728 §2 allows.
pub fn no_empty_values(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "Protected Resource Metadata")?;
    for (k, v) in &doc {
        let empty = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty() && k != "bearer_methods_supported",
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            return f.fail(format!(
                "member {k:?} has an empty value ({v}); RFC 9728 §3.2 says omit it"
            ));
        }
    }
    f.pass(format!("none of the {} members is empty", doc.len()));
    Ok(())
}

/// prm-consistent-sources (RFC 9728 §3.3): every source that serves PRM agrees on
/// `authorization_servers` (each source's `resource` is prm-resource-match's finding).
pub fn consistent_sources(f: &mut Findings, d: &Discovery) -> StepResult {
    let docs: Vec<(String, serde_json::Map<String, Value>)> = d
        .attempts
        .iter()
        .filter_map(|a| a.doc().map(|m| (a.url.clone(), m)))
        .collect();
    if docs.len() < 2 {
        return Err(Stop::Skip(format!(
            "PRM is served by {} source(s); nothing to compare",
            docs.len()
        )));
    }
    let (u0, first) = &docs[0];
    for (u, doc) in &docs[1..] {
        for key in ["authorization_servers"] {
            if first.get(key) != doc.get(key) {
                return f.fail(format!(
                    "{key} differs: {} at {u0} but {} at {u}",
                    first.get(key).unwrap_or(&Value::Null),
                    doc.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    f.pass(format!(
        "{} PRM sources agree on authorization_servers",
        docs.len()
    ));
    Ok(())
}
