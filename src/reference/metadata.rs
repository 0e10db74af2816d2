//! The reference AS's metadata (RFC 8414, OIDC Discovery) and JWK Set, and the routing of its
//! registration endpoint to [`super::registration`].

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Ref, json};

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
        "registration_endpoint": match (&s.plain_origin, s.fault("dcr-https-only")) {
            (Some(plain), true) => format!("{plain}/as/register"),
            _ => format!("{base}/register"),
        },
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "authorization_response_iss_parameter_supported": !s.fault("code-iss-param"),
        "jwks_uri": format!("{base}/jwks.json"),
        "scopes_supported": super::scopes::CATALOGUE,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true,
        "protected_resources": [s.resource],
    });
    if oidc {
        m["subject_types_supported"] = json!(["public"]);
        m["id_token_signing_alg_values_supported"] = json!(["ES256"]);
        // OIDC Discovery 1.0 §3: an OpenID Provider supports the openid scope (listed here
        // only: it is no scope of the MCP resource).
        if let Some(a) = m["scopes_supported"].as_array_mut() {
            a.push(json!(super::oidc::OPENID));
        }
    }
    // RFC 8693 §2 has no metadata of its own: the grant type is listed (the tx-advertised
    // fault serves it unlisted).
    if s.offer.token_exchange
        && !s.fault("tx-advertised")
        && let Some(g) = m["grant_types_supported"].as_array_mut()
    {
        g.push(json!(super::token_exchange::GRANT));
    }
    super::dpop::advertise(s, &mut m, false);
    let o = m.as_object_mut().expect("object literal");
    // An open-registration server (a mock) takes any client id: there is nothing to register.
    if s.open_registration {
        o.remove("registration_endpoint");
    }
    // Draft-ietf-oauth-identity-assertion-authz-grant §7.2: the ID-JAG profile, when offered.
    if s.offer.id_jag && !s.id_jag_idps.is_empty() && !s.fault("idjag-advertised") {
        o.insert(
            "authorization_grant_profiles_supported".into(),
            json!([super::id_jag::PROFILE]),
        );
    }
    if s.fault("asm-required-fields") {
        o.remove("response_types_supported");
    }
    if s.fault("asm-pkce-advertised") {
        o.insert("code_challenge_methods_supported".into(), json!(["plain"]));
    }
    if s.fault("asm-no-implicit-ropc") {
        o.insert("response_types_supported".into(), json!(["code", "token"]));
    }
    if s.fault("asm-no-implicit-ropc.password") {
        o.insert(
            "grant_types_supported".into(),
            json!(["authorization_code", "refresh_token", "password"]),
        );
    }
    if s.fault("asm-grant-types") {
        o.remove("grant_types_supported");
    }
    // Refresh still works; the list no longer says so.
    if s.fault("asm-grant-types.behaviour") {
        o.insert(
            "grant_types_supported".into(),
            json!([
                "authorization_code",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ]),
        );
    }
    if s.fault("asm-auth-methods") {
        o.remove("token_endpoint_auth_methods_supported");
    }
    // Public clients still redeem codes; the list no longer says so.
    if s.fault("asm-auth-methods.accepted") {
        o.insert(
            "token_endpoint_auth_methods_supported".into(),
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ]),
        );
    }
    if s.fault("cimd-flag") {
        o.remove("client_id_metadata_document_supported");
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
    if s.fault("as-auth-endpoint-get-fragment") {
        o.insert(
            "authorization_endpoint".into(),
            json!(format!("{base}/authorize#login")),
        );
    }
    if s.fault("asm-response-types-values") {
        // Grant type names where response types belong: a common mix-up of the two lists.
        o.insert(
            "response_types_supported".into(),
            json!(["code", "authorization_code", "refresh_token"]),
        );
    }
    // RFC 9126 §5. No client is made to push by the server as a whole; one registered with
    // require_pushed_authorization_requests is (§6).
    if s.offer.par {
        o.insert(
            "pushed_authorization_request_endpoint".into(),
            json!(format!("{base}/par")),
        );
        o.insert(
            "require_pushed_authorization_requests".into(),
            if s.fault("par-advertised") {
                json!("false")
            } else {
                json!(false)
            },
        );
    }
    if s.fault("asm-value-types") {
        o.insert(
            "scopes_supported".into(),
            json!(super::scopes::CATALOGUE.join(" ")),
        );
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
    headers: &HeaderMap,
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
            let mut keys: Vec<Value> = s
                .verification_keys()
                .iter()
                .map(|k| k.jwk.clone())
                .collect();
            if s.fault("asm-jwks-uri")
                && let Some(key) = keys.first_mut()
            {
                let d: [u8; 32] = rand::random();
                key["d"] = json!(URL_SAFE_NO_PAD.encode(d));
            }
            Some(json(200, json!({ "keys": keys })))
        }
        "/as/register" => {
            if s.fault("asm-registration-endpoint") || s.open_registration {
                return None;
            }
            if *method != Method::POST {
                return Some(json(405, json!({ "error": "method_not_allowed" })));
            }
            Some(super::registration::register(s, headers, body))
        }
        _ => None,
    }
}
