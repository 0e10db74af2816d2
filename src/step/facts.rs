//! Run facts: what cases observed about the server, kept for the cross-checks that run after
//! every other case and compare the metadata with behaviour (RFC 8414 §2: the metadata lists
//! what the server supports). A fact names the case that produced it, so a cross-check's
//! verdict can cite its evidence.

use std::sync::Mutex;

use crate::http::Response;

/// One observation, with the case that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub case: String,
    pub kind: FactKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactKind {
    /// A correct token request authenticated with `method` (RFC 8414 names) was accepted
    /// (tokens issued) or refused for its client authentication (401 or `invalid_client`).
    ClientAuth {
        method: &'static str,
        accepted: bool,
        /// The refusal, as status and error code, when not accepted.
        answer: String,
    },
    /// A correct token request of `grant_type` was accepted (tokens issued) or refused as
    /// `unsupported_grant_type`.
    Grant {
        grant_type: String,
        accepted: bool,
        answer: String,
    },
    /// A request to an endpoint the metadata names (`registration_endpoint`,
    /// `revocation_endpoint`, `introspection_endpoint`): its status, and whether it did its job
    /// for a correct request (a client registered; 200 to a revocation; an introspection
    /// answer with a boolean `active`). `correct`: the case meant the request to succeed.
    Endpoint {
        member: &'static str,
        status: u16,
        worked: bool,
        correct: bool,
    },
}

impl FactKind {
    /// A status that says the endpoint is not there or broken, whatever was asked.
    pub fn dead_status(status: u16) -> bool {
        matches!(status, 404 | 405 | 501) || (status >= 500 && status != 503)
    }
}

/// The run's facts, shared by every case.
#[derive(Debug, Default)]
pub struct Facts(Mutex<Vec<Fact>>);

impl Facts {
    pub fn add(&self, fact: Fact) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a few per case is plenty for any cross-check; a run of thousands of cases
        // must not grow this without end.
        if v.len() < 4096 && !v.contains(&fact) {
            v.push(fact);
        }
    }

    pub fn all(&self) -> Vec<Fact> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a token-endpoint answer says for the facts: tokens issued, or the refusal's status and
/// error code. The token step, and the cross-checks' own probes, classify answers with it.
#[derive(Debug, Clone)]
pub struct TokenAnswer {
    pub status: u16,
    pub issued: bool,
    pub error: Option<String>,
}

impl TokenAnswer {
    pub fn of(r: &Response) -> Self {
        let doc = r.json();
        TokenAnswer {
            status: r.status,
            issued: (200..300).contains(&r.status)
                && doc
                    .as_ref()
                    .is_some_and(|d| d.get("access_token").is_some()),
            error: doc.and_then(|d| d.get("error")?.as_str().map(str::to_string)),
        }
    }

    /// Refused for its grant type.
    pub fn grant_refused(&self) -> bool {
        self.error.as_deref() == Some("unsupported_grant_type")
    }

    /// Refused for its client authentication.
    pub fn auth_refused(&self) -> bool {
        self.status == 401 || self.error.as_deref() == Some("invalid_client")
    }

    /// `400 invalid_grant`, for reports.
    pub fn answer(&self) -> String {
        format!(
            "{} {}",
            self.status,
            self.error.as_deref().unwrap_or_default()
        )
        .trim()
        .to_string()
    }
}
