//! The reference AS's Dynamic Client Registration endpoint (RFC 7591): metadata validation, the
//! error codes of §3.2.2, and the client it stores.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::store::random_id;
use super::{Ref, json};

/// Is this a redirect URI we accept at registration? https, or http on a loopback IP literal
/// (MCP 11.3, RFC 8252 §7.3); no fragment.
fn acceptable_redirect(s: &Ref, u: &str) -> bool {
    if s.fault("redir-dangerous-scheme") && !u.contains('#') {
        return true;
    }
    if s.fault("redir-private-scheme-no-dot")
        && let Some((scheme, _)) = u.split_once(':')
        && !scheme.contains('.')
        && !scheme.starts_with("http")
    {
        return true;
    }
    if u.contains('#') {
        return false;
    }
    if let Some(rest) = u.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    if let Some(rest) = u.strip_prefix("http://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = if authority.starts_with('[') {
            authority.split_inclusive(']').next().unwrap_or("")
        } else {
            authority
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(authority)
        };
        return host == "127.0.0.1"
            || host == "[::1]"
            || host == "localhost"
            || s.fault("redir-http-nonloopback-registration");
    }
    false
}

fn metadata_error(why: &str) -> Response {
    json(
        400,
        json!({ "error": "invalid_client_metadata", "error_description": why }),
    )
}

/// Largest registration request taken (a client's metadata is a few hundred bytes).
const MAX_REGISTRATION: usize = 64 << 10;

/// RFC 7591 §3: registration. Metadata is validated member by member (§2, §3.2.2); unknown
/// members are ignored.
pub fn register(s: &Ref, headers: &HeaderMap, body: &[u8]) -> Response {
    let ct = super::media_type(headers);
    if ct != "application/json" {
        return metadata_error("the request must be application/json");
    }
    if body.len() > MAX_REGISTRATION && !s.fault("dcr-size-fuzz") {
        return json(
            413,
            json!({ "error": "invalid_client_metadata", "error_description": "request too large" }),
        );
    }
    let req = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Array(_)) if s.fault("dcr-content-type") => {
            return json(500, json!({ "error": "server_error" }));
        }
        _ => return metadata_error("the body is not a JSON object"),
    };
    if s.fault("dcr-unknown-ignored") && req.keys().any(|k| k.starts_with("x_")) {
        return metadata_error("unknown metadata member");
    }
    let uris: Vec<String> = match req.get("redirect_uris") {
        Some(Value::Array(a)) if !a.is_empty() => {
            let v: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if v.len() != a.len() {
                return json(400, json!({ "error": "invalid_redirect_uri" }));
            }
            v
        }
        Some(_) => return metadata_error("redirect_uris must be a non-empty array of strings"),
        None => {
            return json(
                400,
                json!({ "error": "invalid_redirect_uri", "error_description": "redirect_uris is required" }),
            );
        }
    };
    if !uris.iter().all(|u| acceptable_redirect(s, u)) && !s.fault("dcr-invalid-redirect") {
        return json(400, json!({ "error": "invalid_redirect_uri" }));
    }
    let strings = |k: &str| match req.get(k) {
        None => Ok(None),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(a.clone())),
        Some(_) => Err(format!("{k} must be an array of strings")),
    };
    let (grants, responses) = match (strings("grant_types"), strings("response_types")) {
        (Ok(g), Ok(r)) => (g, r),
        (Err(e), _) | (_, Err(e)) if !s.fault("dcr-invalid-metadata") => {
            return metadata_error(&e);
        }
        _ => (None, None),
    };
    for k in [
        "client_name",
        "scope",
        "token_endpoint_auth_method",
        "application_type",
    ] {
        if req.get(k).is_some_and(|v| !v.is_string()) && !s.fault("dcr-invalid-metadata") {
            return metadata_error(&format!("{k} must be a string"));
        }
    }
    if req.contains_key("jwks") && req.contains_key("jwks_uri") && !s.fault("dcr-invalid-metadata")
    {
        return metadata_error("jwks and jwks_uri are mutually exclusive");
    }
    // This server implements the code flow only: `response_types` other than `code` are refused
    // rather than stored inconsistently with `grant_types` (RFC 7591 §2.1).
    let grants = grants.unwrap_or_else(|| vec![json!("authorization_code")]);
    let responses = responses.unwrap_or_else(|| vec![json!("code")]);
    if responses.iter().any(|r| r != "code") && !s.fault("dcr-grant-response-consistency") {
        return metadata_error("only response_type code is supported");
    }
    // Display URIs must be https: they end up as links and images on the consent page.
    for k in ["logo_uri", "policy_uri", "tos_uri", "client_uri"] {
        if let Some(v) = req.get(k) {
            let ok = v.as_str().is_some_and(|u| u.starts_with("https://"));
            if !ok && !s.fault("dcr-display-escaping") {
                return metadata_error(&format!("{k} must be an https URL"));
            }
        }
    }
    if s.fault("dcr-application-type.web")
        && req.get("application_type") == Some(&json!("web"))
        && uris.iter().any(|u| u.starts_with("http://127.0.0.1"))
    {
        return json(500, json!({ "error": "server_error" }));
    }
    // OIDC Registration §2: application_type defaults to web. The faulty server applies the
    // web rules (https only, no loopback) to a client that never said what it is, which is
    // every MCP 2025-11-25 client.
    if s.fault("dcr-loopback-no-application-type")
        && req.get("application_type").is_none()
        && uris.iter().any(|u| u.starts_with("http://"))
    {
        return json(
            400,
            json!({ "error": "invalid_redirect_uri",
                    "error_description": "application_type web requires https redirect URIs" }),
        );
    }
    if s.fault("dcr-application-type.native")
        && req.get("application_type") == Some(&json!("native"))
    {
        return metadata_error("application_type native is not supported");
    }
    let mut method = req
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_string();
    if method == "none" && s.fault("dcr-public-no-secret") {
        method = "client_secret_basic".into();
    }
    let client_id = if s.fault("dcr-no-https-client-ids") {
        format!("{}/clients/{}", s.origin, random_id(12))
    } else {
        random_id(16)
    };
    let mut client = json!({
        "client_id": client_id,
        "client_id_issued_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "redirect_uris": uris,
        "token_endpoint_auth_method": method,
        "grant_types": grants,
        "response_types": responses,
    });
    for k in [
        "client_name",
        "logo_uri",
        "policy_uri",
        "tos_uri",
        "client_uri",
        "application_type",
    ] {
        if let Some(v) = req.get(k) {
            client[k] = v.clone();
        }
    }
    // RFC 9126 §6: a client may be registered to use nothing but PAR.
    if s.offer.par
        && let Some(b @ Value::Bool(_)) = req.get("require_pushed_authorization_requests")
    {
        client["require_pushed_authorization_requests"] = b.clone();
    }
    // RFC 7591 §2: the server may narrow the scope; the response says what was granted.
    if let Some(sc) = req.get("scope").and_then(Value::as_str)
        && !s.fault("dcr-scope-restriction")
    {
        let kept: Vec<&str> = sc
            .split(' ')
            .filter(|t| super::scopes::CATALOGUE.contains(t))
            .collect();
        client["scope"] = json!(kept.join(" "));
    }
    if method == "private_key_jwt" {
        // RFC 7591 §2: the key comes inline (`jwks`); one P-256 key is what this server takes.
        let ok = req
            .get("jwks")
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array)
            .and_then(|k| k.first())
            .is_some_and(|k| {
                k.get("kty") == Some(&json!("EC")) && k.get("crv") == Some(&json!("P-256"))
            });
        if !ok {
            return metadata_error("private_key_jwt needs jwks with a P-256 key");
        }
        client["jwks"] = req["jwks"].clone();
    } else if method != "none" {
        let secret = if s.fault("dcr-secret-entropy") {
            let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
            st.seq += 1;
            format!("secret-{:06}", st.seq)
        } else {
            random_id(32)
        };
        client["client_secret"] = json!(secret);
        if !s.fault("dcr-secret-expiry") {
            client["client_secret_expires_at"] = json!(0);
        }
    }
    if let Ok(mut c) = s.clients.lock() {
        // Bounded: a fuzz campaign must not grow the reference without limit.
        if c.len() >= 10_000 {
            c.remove(0);
        }
        c.push(client.clone());
    }
    if s.fault("dcr-basic") {
        return json(200, json!({ "client_id": client["client_id"] }));
    }
    let mut r = json(201, client);
    if s.fault("as-sensitive-no-store") {
        r.headers_mut().remove("cache-control");
    }
    r
}
