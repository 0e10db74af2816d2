//! The client side of discovery: which URLs a conforming MCP client tries, in which order.
//!
//! - Protected Resource Metadata: RFC 9728 §3.1 (well-known suffix inserted between host and
//!   path; a trailing `/` right after the host is dropped first; the query stays at the end) and
//!   MCP 2025-11-25 §4.2 (the `resource_metadata` URL from the 401 wins; else path-inserted, then
//!   root).
//! - Authorization server metadata: RFC 8414 §3.1 and OIDC Discovery §4, in the MCP 2025-11-25
//!   §4.3 order (`../shared/mcp-auth-versions.md` §4.2).
//!
//! These URLs are built from the *target's* configured identifiers, not from attack strings, so
//! parsing them with `url` is safe here.

use url::Url;

pub const PRM_SUFFIX: &str = "/.well-known/oauth-protected-resource";
pub const OAUTH_SUFFIX: &str = "/.well-known/oauth-authorization-server";
pub const OIDC_SUFFIX: &str = "/.well-known/openid-configuration";

/// Scheme, host and port of a URL, as a client would rebuild them (`https://h:8443`).
pub fn origin(u: &Url) -> String {
    let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    s
}

/// Path of an identifier with a terminating `/` removed; empty for the root.
fn trimmed_path(u: &Url) -> String {
    let p = u.path();
    let p = p.strip_suffix('/').unwrap_or(p);
    p.to_string()
}

fn with_query(mut s: String, u: &Url) -> String {
    if let Some(q) = u.query() {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// A candidate metadata URL with the name of the rule that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: &'static str,
    pub url: String,
}

/// PRM well-known candidates for a resource, in client order: path-inserted (skipped for a
/// resource at the root), then root.
pub fn prm_candidates(resource: &str) -> Result<Vec<Candidate>, String> {
    let u = Url::parse(resource).map_err(|e| format!("resource {resource:?}: {e}"))?;
    let base = origin(&u);
    let path = trimmed_path(&u);
    let mut out = Vec::new();
    if !path.is_empty() {
        out.push(Candidate {
            source: "path_inserted",
            url: with_query(format!("{base}{PRM_SUFFIX}{path}"), &u),
        });
    }
    out.push(Candidate {
        source: "root",
        url: with_query(format!("{base}{PRM_SUFFIX}"), &u),
    });
    Ok(out)
}

/// The single RFC 9728 §3.1 well-known URL for a resource (path-inserted, or root for `/`).
pub fn prm_rfc_url(resource: &str) -> Result<String, String> {
    prm_candidates(resource).map(|c| c[0].url.clone())
}

/// AS metadata candidates for an issuer, in the MCP 2025-11-25 order.
pub fn as_candidates(issuer: &str) -> Result<Vec<Candidate>, String> {
    let u = Url::parse(issuer).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
    let base = origin(&u);
    let path = trimmed_path(&u);
    Ok(if path.is_empty() {
        vec![
            Candidate {
                source: "oauth",
                url: format!("{base}{OAUTH_SUFFIX}"),
            },
            Candidate {
                source: "oidc",
                url: format!("{base}{OIDC_SUFFIX}"),
            },
        ]
    } else {
        vec![
            Candidate {
                source: "oauth_inserted",
                url: format!("{base}{OAUTH_SUFFIX}{path}"),
            },
            Candidate {
                source: "oidc_inserted",
                url: format!("{base}{OIDC_SUFFIX}{path}"),
            },
            Candidate {
                source: "oidc_appended",
                url: format!("{base}{path}{OIDC_SUFFIX}"),
            },
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prm_order_follows_rfc9728() {
        let c = prm_candidates("https://example.com/public/mcp").unwrap();
        assert_eq!(
            c.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(),
            [
                "https://example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://example.com/.well-known/oauth-protected-resource"
            ]
        );
        // A trailing slash right after the host is dropped: root form only.
        let c = prm_candidates("https://h/").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].url, "https://h/.well-known/oauth-protected-resource");
        // The query stays after the inserted suffix.
        assert_eq!(
            prm_rfc_url("https://h:8443/mcp?t=1").unwrap(),
            "https://h:8443/.well-known/oauth-protected-resource/mcp?t=1"
        );
    }

    #[test]
    fn as_order_follows_mcp() {
        let c = as_candidates("https://auth.example.com/tenant1").unwrap();
        assert_eq!(
            c.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let c = as_candidates("https://auth.example.com").unwrap();
        assert_eq!(
            c.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }
}
