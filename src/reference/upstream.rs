//! Tokens that are not the MCP server's, and the upstream API behind it (MCP 2025-11-25 §9.2:
//! the server "MUST NOT accept or transit any other tokens"; §11.8 and the Security Best
//! Practices "Token Passthrough").
//!
//! - A stand-in upstream authorization server: its own key and issuer, which mint the token the
//!   built-in profile names as `[tokens] upstream` (rs-upstream-token-rejected presents it).
//! - The `fetch_url` tool: it calls a loopback http URL it is given, with the server's own
//!   upstream credential, never the client's token (rs-no-passthrough's canary is that URL).
//! - The faults: an RS that takes foreign JWTs on trust (passing them through to the upstream
//!   that is supposed to judge them), one that takes any JWT its AS key signed whatever its
//!   audience (an ID token passes), and a tool that forwards the client's bearer token.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::token::Access;
use super::{Ref, json};

/// The tool the built-in profile names as `[passthrough] tool`, and its URL argument.
pub const FETCH_TOOL: &str = "fetch_url";
pub const FETCH_ARGUMENT: &str = "url";
/// The stand-in upstream AS and the API its tokens are for.
const UPSTREAM_ISSUER: &str = "https://upstream-as.reference.authconform.test";
const UPSTREAM_API: &str = "https://api.upstream.reference.authconform.test";
/// The whole upstream call, and the most of its body read.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// An access token the stand-in upstream AS issued for its API (RFC 9068 claims, signed by a
/// key of its own): what a user of the MCP server also holds, and must not be able to use here.
pub fn token() -> Option<String> {
    let upstream = super::jwt::Signer::generate().ok()?;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .ok()?;
    Some(upstream.mint(&json!({
        "iss": UPSTREAM_ISSUER, "sub": "alice", "aud": UPSTREAM_API, "client_id": "upstream-app",
        "scope": "repo", "iat": t, "nbf": t, "exp": t + 86_400,
        "jti": super::store::random_id(16),
    })))
}

fn claims(token: &str) -> Option<Value> {
    let mut p = token.split('.');
    let (h, c) = (p.next()?, p.next()?);
    let decode = |x: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(x).ok()?).ok()
    };
    decode(h)?.get("alg")?;
    decode(c).filter(Value::is_object)
}

/// The resource-server faults that take a JWT without the checks `jwt::verify` makes:
/// - rs-upstream-token-rejected: a JWT from any other issuer is taken on trust, as by a server
///   that leaves judging it to the upstream API it passes it on to;
/// - rs-id-token-as-at: whatever the AS key signed is good, whatever its `aud` and whether or
///   not the AS recorded it as an access token (a stateless RS: an ID token passes).
pub fn faulty_acceptance(s: &Ref, token: &str) -> Option<Access> {
    if s.fault("rs-upstream-token-rejected") {
        let c = claims(token)?;
        let iss = c.get("iss").and_then(Value::as_str)?;
        if iss != s.issuer {
            return Some(access(&c));
        }
    }
    if s.fault("rs-id-token-as-at") {
        let v = super::jwt::verify(s, token)?;
        return Some(access(&v.claims));
    }
    None
}

fn access(c: &Value) -> Access {
    Access {
        scope: c.get("scope").and_then(Value::as_str).map(str::to_string),
        machine: false,
    }
}

/// A `fetch_url` call the RS authorized: the upstream request is made by [`complete`], which
/// can wait for it (the RS's decision is synchronous).
#[derive(Clone)]
struct PendingFetch(Option<String>);

/// The tool call's placeholder answer, carrying the URL argument to [`complete`].
pub fn fetch_later(body: &[u8]) -> Response {
    let url = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer(&format!("/params/arguments/{FETCH_ARGUMENT}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let mut r = json(200, json!({}));
    r.extensions_mut().insert(PendingFetch(url));
    r
}

/// Makes the upstream call of an authorized `fetch_url` request (the MCP endpoint's answer
/// carries it); any other answer is returned as it is.
pub async fn complete(s: &Ref, r: Response, headers: &HeaderMap) -> Response {
    let Some(PendingFetch(url)) = r.extensions().get::<PendingFetch>().cloned() else {
        return r;
    };
    let (text, is_error) = match url {
        None => (format!("missing argument {FETCH_ARGUMENT:?}"), true),
        Some(u) => match fetch(s, &u, headers).await {
            Ok(t) => (t, false),
            Err(e) => (e, true),
        },
    };
    // MCP tools report their own failures in the result (`isError`), not as JSON-RPC errors.
    json(
        200,
        json!({ "jsonrpc": "2.0", "id": 1, "result": {
            "content": [ { "type": "text", "text": text } ], "isError": is_error } }),
    )
}

/// The server's own credential at the upstream API (what it must use instead of the client's).
fn own_credential() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    C.get_or_init(|| super::store::random_id(24))
}

/// GET of a loopback http URL (127.0.0.0/8 or ::1 only: the reference reaches no other
/// machine), no redirects, bounded in time and size.
async fn fetch(s: &Ref, url: &str, headers: &HeaderMap) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if u.scheme() != "http" || !loopback {
        return Err("only http URLs on a loopback address are fetched".into());
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .user_agent("authconform-reference")
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(u);
    // MCP 2025-11-25 §11.8: the upstream gets the server's own credential; the faulty server
    // forwards the client's Authorization header as it came.
    let forwarded = headers
        .get("authorization")
        .filter(|_| s.fault("rs-no-passthrough"));
    req = match forwarded {
        Some(v) => req.header("authorization", v.clone()),
        None => req.bearer_auth(own_credential()),
    };
    let mut r = req.send().await.map_err(|e| format!("fetch failed: {e}"))?;
    let status = r.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| format!("reading: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_UPSTREAM_BODY {
            body.truncate(MAX_UPSTREAM_BODY);
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    Ok(format!(
        "upstream answered {status}: {}",
        text.chars().take(200).collect::<String>()
    ))
}
