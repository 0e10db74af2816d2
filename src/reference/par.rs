//! The reference PAR endpoint (RFC 9126), served only when PAR is offered (`s.offer.par`).
//!
//! A push is processed as §2.1 lists: the client authenticates as at the token endpoint, a
//! `request_uri` inside the push is refused, and the request is validated as the authorization
//! endpoint would (response type, redirect URI) before anything is stored. The answer is 201
//! with a `urn:ietf:params:oauth:request_uri:` reference of 256 random bits and a short
//! lifetime (§2.2). At the authorization endpoint ([`resolve`]) the reference is one-time,
//! expires, is bound to the pushing client, and only the pushed parameters count (§4).
//! A client registered with `require_pushed_authorization_requests` (§6) may use nothing else.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};

use super::authorize::pairs;
use super::store::random_id;
use super::{Ref, json};

/// How long a pushed request may be used (RFC 9126 §2.2: "typically ... between 5 and 600
/// seconds"); short, so that par-expiry runs quickly.
pub const LIFETIME: Duration = Duration::from_secs(10);
const URN: &str = "urn:ietf:params:oauth:request_uri:";
/// Pushed requests kept at most (a fuzz campaign must not grow the reference without limit).
const MAX_PUSHED: usize = 10_000;

/// One pushed authorization request.
struct Pushed {
    client_id: String,
    params: Vec<(String, String)>,
    created: Instant,
    used: bool,
}

/// The pushed requests, by their `request_uri`.
#[derive(Default)]
pub struct Store {
    pushed: HashMap<String, Pushed>,
    /// The par-request-uri-entropy fault's counter.
    seq: u64,
}

fn error(status: u16, code: &str, desc: &str) -> Response {
    json(status, json!({ "error": code, "error_description": desc }))
}

/// POST `/as/par`.
pub fn push(s: &Ref, method: &Method, query: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    // RFC 9126 §2: the endpoint accepts HTTP POST requests, a form in the body.
    let from_query = *method == Method::GET && s.fault("par-post-only");
    if *method != Method::POST && !from_query {
        return error(405, "invalid_request", "use POST");
    }
    let all = if from_query {
        pairs(query)
    } else {
        if super::media_type(headers) != "application/x-www-form-urlencoded" {
            return error(
                400,
                "invalid_request",
                "use application/x-www-form-urlencoded",
            );
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return error(400, "invalid_request", "the body is not UTF-8");
        };
        pairs(text)
    };
    if all.len() > 200 {
        return error(400, "invalid_request", "too many parameters");
    }
    if all
        .iter()
        .any(|(k, _)| all.iter().filter(|(n, _)| n == k).count() > 1)
    {
        return error(
            400,
            "invalid_request",
            "a parameter was sent more than once",
        );
    }
    let get = |k: &str| {
        all.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    // 1. The client authenticates as at the token endpoint (§2, §2.1).
    let client_id = if s.fault("par-client-auth") {
        match get("client_id").or_else(|| super::token::basic_credentials(headers).map(|b| b.0)) {
            Some(c) => c,
            None => return error(400, "invalid_request", "client_id is required"),
        }
    } else {
        let basic = super::token::basic_credentials(headers);
        match super::token::authenticate_client(
            s,
            &get,
            basic,
            get("client_secret"),
            None,
            None,
            false,
        ) {
            Ok((c, _public)) => c,
            Err(r) => return *r,
        }
    };
    // The client_id parameter, required in a push (§2.1), names the authenticated client.
    match get("client_id") {
        Some(c) if c == client_id => {}
        Some(_) => {
            return error(
                400,
                "invalid_request",
                "client_id is not the authenticated client",
            );
        }
        None => return error(400, "invalid_request", "client_id is required"),
    }
    let Some(client) = s.client(&client_id) else {
        return error(401, "invalid_client", "unknown client");
    };
    // 2. A request_uri inside a push is refused (§2.1).
    if get("request_uri").is_some() && !s.fault("par-no-request-uri-inside") {
        return error(400, "invalid_request", "request_uri must not be pushed");
    }
    // 3. Validated as the authorization endpoint would (§2.1): what fails here is refused
    // now; the authorization endpoint validates the whole request again when it is used.
    if get("response_type").as_deref() != Some("code") {
        return error(400, "unsupported_response_type", "only code is supported");
    }
    let registered: Vec<String> = client
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let any_redirect = client.get("x_any_redirect") == Some(&Value::Bool(true));
    match get("redirect_uri") {
        Some(r) if !any_redirect && !s.fault("par-redirect-validated") => {
            if !registered
                .iter()
                .any(|reg| super::authorize::redirect_matches(s, reg, &r))
            {
                return error(
                    400,
                    "invalid_request",
                    "the redirect URI is not registered for this client",
                );
            }
        }
        Some(_) => {}
        None if registered.len() == 1 => {}
        None => return error(400, "invalid_request", "redirect_uri is required"),
    }
    let mut st = s.par.lock().unwrap_or_else(|e| e.into_inner());
    let reference = if s.fault("par-request-uri-entropy") {
        st.seq += 1;
        format!("req-{:06}", st.seq)
    } else {
        random_id(32)
    };
    let request_uri = format!("{URN}{reference}");
    if st.pushed.len() >= MAX_PUSHED {
        st.pushed
            .retain(|_, p| p.created.elapsed() < LIFETIME && !p.used);
        if st.pushed.len() >= MAX_PUSHED {
            return error(503, "temporarily_unavailable", "too many pushed requests");
        }
    }
    st.pushed.insert(
        request_uri.clone(),
        Pushed {
            client_id,
            params: all,
            created: Instant::now(),
            used: false,
        },
    );
    if s.fault("par-201") {
        return json(200, json!({ "request_uri": request_uri }));
    }
    json(
        201,
        json!({ "request_uri": request_uri, "expires_in": LIFETIME.as_secs() }),
    )
}

/// Does this client have to push its requests (RFC 9126 §6 client metadata)?
pub fn required_for(s: &Ref, client: &Value) -> bool {
    s.offer.par
        && client.get("require_pushed_authorization_requests") == Some(&Value::Bool(true))
        && !s.fault("par-required")
}

/// The authorization request behind a `request_uri` (RFC 9126 §4): the pushed parameters
/// only, for the client that pushed them, once, before it expires. `Err` is why not.
pub fn resolve(s: &Ref, given: &[(String, String)]) -> Result<Vec<(String, String)>, &'static str> {
    let get = |k: &str| given.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let request_uri = get("request_uri").unwrap_or("");
    let client_id = get("client_id");
    let mut st = s.par.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = st.pushed.get_mut(request_uri) else {
        return Err("invalid_request_uri: unknown request_uri");
    };
    if client_id != Some(p.client_id.as_str()) && !s.fault("par-client-binding") {
        return Err("invalid_request_uri: the request_uri was pushed by another client");
    }
    if p.created.elapsed() >= LIFETIME && !s.fault("par-expiry") {
        return Err("invalid_request_uri: the request_uri has expired");
    }
    if p.used && !s.fault("par-one-time") {
        return Err("invalid_request_uri: the request_uri was used already");
    }
    // The faulty server wants the parameters again beside the reference.
    if s.fault("par-minimal-auth-request") && get("response_type").is_none() {
        return Err("invalid_request: response_type is required");
    }
    p.used = true;
    Ok(p.params.clone())
}
