//! Metadata documents as discovery fetched them (RFC 9728 Protected Resource Metadata, RFC 8414
//! / OIDC authorization server metadata): each URL tried ([`Attempt`], where a fetched body is
//! parsed, once) and the outcome ([`Discovery`]). The discovery step that fetches them lives in
//! `authconform::step::discovery`; it re-exports these.

use serde_json::Value;

use crate::response::Response;
use crate::verdict::Stop;

/// One request a discovery step tried, and what came back.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Which rule produced the URL (`header`, `path_inserted`, `root`, `oauth`, `oidc`...).
    pub source: &'static str,
    pub url: String,
    pub result: Result<Response, String>,
    /// The usable document, parsed once: discovery and several checks ask for it.
    doc: Option<serde_json::Map<String, Value>>,
}

impl Attempt {
    pub fn new(source: &'static str, url: String, result: Result<Response, String>) -> Self {
        // Usable means 200 with a JSON object body.
        let doc = match &result {
            Ok(r) if r.status == 200 => match r.json() {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            },
            _ => None,
        };
        Self {
            source,
            url,
            result,
            doc,
        }
    }

    /// The usable metadata document, if this attempt returned one.
    pub fn doc(&self) -> Option<serde_json::Map<String, Value>> {
        self.doc.clone()
    }
    pub fn response(&self) -> Option<&Response> {
        self.result.as_ref().ok()
    }
}

/// The outcome of a discovery step.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// PRM: the identifier the well-known URLs were derived from. AS: the issuer.
    pub identifier: String,
    /// The unauthenticated MCP response whose challenge started PRM discovery.
    pub probe: Option<Response>,
    pub attempts: Vec<Attempt>,
    /// Index of the attempt a client would use (the first usable one, in order).
    pub chosen: Option<usize>,
}

impl Discovery {
    pub fn chosen(&self) -> Option<&Attempt> {
        self.chosen.map(|i| &self.attempts[i])
    }
    pub fn doc(&self) -> Option<serde_json::Map<String, Value>> {
        self.chosen().and_then(Attempt::doc)
    }
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
