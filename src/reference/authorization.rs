//! The authorization server side: metadata (RFC 8414, OIDC Discovery), the JWK Set, Dynamic
//! Client Registration (RFC 7591) and revocation (RFC 7009). The authorization and token
//! endpoints grow with the authorization-code and token issues.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Ref, json};

/// A fresh P-256 public key as a JWK (RFC 7518 §6.2.1).
pub fn public_jwk() -> Value {
    let kp = rcgen::KeyPair::generate().ok();
    let raw = kp
        .as_ref()
        .map(|k| k.public_key_raw().to_vec())
        .unwrap_or_default();
    // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
    let (x, y) = if raw.len() == 65 {
        (
            URL_SAFE_NO_PAD.encode(&raw[1..33]),
            URL_SAFE_NO_PAD.encode(&raw[33..65]),
        )
    } else {
        (String::new(), String::new())
    };
    let kid: [u8; 12] = rand::random();
    json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256",
            "kid": URL_SAFE_NO_PAD.encode(kid) })
}

fn metadata(s: &Ref, oidc: bool) -> Value {
    let iss = if s.fault("asm-issuer-form") {
        format!("{}?tenant=1", s.issuer)
    } else if s.fault("asm-issuer-match") {
        format!("{}/", s.issuer)
    } else {
        s.issuer.clone()
    };
    let base = &s.issuer;
    let token_endpoint = if s.fault("asm-endpoints-https") {
        "http://auth.example.test/as/token".to_string()
    } else if oidc && s.fault("asm-oidc-consistency") {
        format!("{base}/oidc/token")
    } else {
        format!("{base}/token")
    };
    let mut m = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": token_endpoint,
        "registration_endpoint": format!("{base}/register"),
        "revocation_endpoint": format!("{base}/revoke"),
        "authorization_response_iss_parameter_supported": true,
        "jwks_uri": format!("{base}/jwks.json"),
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": false,
        "protected_resources": [s.resource],
    });
    if oidc {
        m["subject_types_supported"] = json!(["public"]);
        m["id_token_signing_alg_values_supported"] = json!(["ES256"]);
    }
    let o = m.as_object_mut().expect("object literal");
    if s.fault("asm-required-fields") {
        o.remove("response_types_supported");
    }
    if s.fault("asm-pkce-advertised") {
        o.insert("code_challenge_methods_supported".into(), json!(["plain"]));
    }
    if s.fault("asm-no-implicit-ropc") {
        o.insert("response_types_supported".into(), json!(["code", "token"]));
        o.insert(
            "grant_types_supported".into(),
            json!(["authorization_code", "refresh_token", "password"]),
        );
    }
    if s.fault("asm-grant-types") {
        o.remove("grant_types_supported");
    }
    if s.fault("asm-auth-methods") {
        o.remove("token_endpoint_auth_methods_supported");
    }
    if s.fault("asm-cimd-flag") {
        o.insert(
            "client_id_metadata_document_supported".into(),
            json!("false"),
        );
    }
    if s.fault("asm-protected-resources") {
        o.insert(
            "protected_resources".into(),
            json!(["https://old.example/mcp"]),
        );
    }
    if s.fault("asm-value-types") {
        o.insert("scopes_supported".into(), json!("mcp:tools mcp:admin"));
    }
    m
}

/// Which metadata document a path asks for (RFC 8414 §3.1 path-inserted; OIDC both forms).
fn metadata_kind(path: &str) -> Option<bool> {
    match path {
        "/.well-known/oauth-authorization-server/as" => Some(false),
        "/.well-known/openid-configuration/as" | "/as/.well-known/openid-configuration" => {
            Some(true)
        }
        _ => None,
    }
}

pub fn handle(
    s: &Ref,
    method: &Method,
    path: &str,
    _headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    if let Some(oidc) = metadata_kind(path) {
        if s.fault("asm-available") {
            return None;
        }
        if *method == Method::HEAD && s.fault("asm-fuzz") {
            return Some(json(500, json!({ "error": "server_error" })));
        }
        if *method != Method::GET && *method != Method::HEAD {
            return Some(json(405, json!({ "error": "method_not_allowed" })));
        }
        let mut r = json(200, metadata(s, oidc));
        if s.fault("asm-content-type")
            && let Ok(v) = "text/html".parse()
        {
            r.headers_mut().insert("content-type", v);
        }
        return Some(r);
    }
    match path {
        "/as/jwks.json" => {
            let mut key = s.jwk.clone();
            if s.fault("asm-jwks-uri") {
                let d: [u8; 32] = rand::random();
                key["d"] = json!(URL_SAFE_NO_PAD.encode(d));
            }
            Some(json(200, json!({ "keys": [key] })))
        }
        "/as/register" => {
            if s.fault("asm-registration-endpoint") {
                return None;
            }
            if *method != Method::POST {
                return Some(json(405, json!({ "error": "method_not_allowed" })));
            }
            Some(register(s, body))
        }
        "/as/revoke" => {
            if s.fault("asm-revocation-introspection") || *method != Method::POST {
                return Some(json(405, json!({ "error": "method_not_allowed" })));
            }
            // RFC 7009 §2.2: an unknown or invalid token is not an error.
            let form = super::authorize::pairs(&String::from_utf8_lossy(body));
            if let Some((_, t)) = form.iter().find(|(k, _)| k == "token") {
                s.store.lock().unwrap_or_else(|e| e.into_inner()).revoke(t);
            }
            Some(json(200, json!({})))
        }
        _ => None,
    }
}

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

fn register(s: &Ref, body: &[u8]) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return json(
            400,
            json!({ "error": "invalid_client_metadata", "error_description": "body is not a JSON object" }),
        );
    };
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
        _ => {
            return json(
                400,
                json!({ "error": "invalid_redirect_uri", "error_description": "redirect_uris is required" }),
            );
        }
    };
    if !uris.iter().all(|u| acceptable_redirect(s, u)) {
        return json(400, json!({ "error": "invalid_redirect_uri" }));
    }
    let method = req
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_string();
    let id: [u8; 16] = rand::random();
    let mut client = json!({
        "client_id": URL_SAFE_NO_PAD.encode(id),
        "client_id_issued_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "redirect_uris": uris,
        "token_endpoint_auth_method": method,
        "grant_types": req.get("grant_types").cloned().unwrap_or(json!(["authorization_code"])),
        "response_types": req.get("response_types").cloned().unwrap_or(json!(["code"])),
    });
    if let Some(n) = req.get("client_name") {
        client["client_name"] = n.clone();
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
            return json(
                400,
                json!({ "error": "invalid_client_metadata", "error_description": "private_key_jwt needs jwks with a P-256 key" }),
            );
        }
        client["jwks"] = req["jwks"].clone();
    } else if method != "none" {
        let secret: [u8; 32] = rand::random();
        client["client_secret"] = json!(URL_SAFE_NO_PAD.encode(secret));
        client["client_secret_expires_at"] = json!(0);
    }
    if let Ok(mut c) = s.clients.lock() {
        // Bounded: a fuzz campaign must not grow the reference without limit.
        if c.len() >= 10_000 {
            c.remove(0);
        }
        c.push(client.clone());
    }
    json(201, client)
}
