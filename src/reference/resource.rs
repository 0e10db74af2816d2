//! The MCP resource server side: the protected `/mcp` endpoint (MCP 2025-11-25 §9, RFC 6750 §3)
//! and its Protected Resource Metadata (RFC 9728).

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::json;

use super::{Ref, json};

/// Where the PRM lives for this resource (the RFC 9728 §3.1 path-inserted form), and what the
/// 401 challenge points at.
pub(super) fn prm_path(s: &Ref) -> &'static str {
    if s.fault("prm-trailing-slash-insertion") {
        "/.well-known/oauth-protected-resource//mcp"
    } else if s.fault("prm-wellknown-path") {
        "/meta/protected-resource"
    } else if s.fault("rs-401-discovery-mechanism") {
        "/mcp/.well-known/oauth-protected-resource"
    } else {
        "/.well-known/oauth-protected-resource/mcp"
    }
}

pub(super) fn challenge(s: &Ref, error: Option<&str>) -> String {
    let scheme = if s.fault("rs-401-bearer-scheme") {
        "Token"
    } else {
        "Bearer"
    };
    let mut parts = Vec::new();
    if let Some(e) = error {
        parts.push(format!("error=\"{e}\""));
    }
    let url = if s.fault("rs-401-resource-metadata-url") {
        prm_path(s).to_string()
    } else if let (true, Some(plain)) = (s.fault("prm-https"), &s.plain_origin) {
        format!("{plain}{}", prm_path(s))
    } else {
        format!("{}{}", s.origin, prm_path(s))
    };
    if !s.fault("rs-401-discovery-mechanism") {
        parts.push(format!("resource_metadata=\"{url}\""));
    }
    if !s.fault("rs-401-scope-hint") {
        parts.push("scope=\"mcp:tools\"".to_string());
    }
    if s.fault("rs-challenge-syntax") {
        parts.push("scope=\"mcp:admin\"".to_string());
    }
    format!("{scheme} {}", parts.join(", "))
}

pub(super) fn unauthorized(s: &Ref, error: Option<&str>, status: u16) -> Response {
    let body = match error {
        Some(e) => json!({ "error": e }),
        None => json!({ "error": "unauthorized", "error_description": "authorization required" }),
    };
    let mut r = json(status, body);
    if let Ok(v) = challenge(s, error).parse() {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

fn server_error() -> Response {
    json(500, json!({ "error": "server_error" }))
}

/// What the bearer credential of a request amounts to (RFC 6750 §2.1 syntax, by hand).
enum Credential {
    None,
    Malformed,
    /// Syntactically a token; not one this server issued.
    Unknown(String),
}

fn credential(s: &Ref, headers: &HeaderMap) -> Result<Credential, Box<Response>> {
    let values: Vec<&[u8]> = headers
        .get_all("authorization")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if values.is_empty() {
        return Ok(Credential::None);
    }
    if values.len() > 1 {
        if s.fault("rs-400-malformed-auth.double-header") {
            return Err(Box::new(server_error()));
        }
        return Ok(Credential::Malformed);
    }
    let v = values[0];
    if !v.iter().all(|b| (0x20..0x7f).contains(b)) {
        if s.fault("rs-400-malformed-auth.non-ascii") {
            return Err(Box::new(server_error()));
        }
        return Ok(Credential::Malformed);
    }
    let v = std::str::from_utf8(v).unwrap_or("");
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    // RFC 9110 §11.1: the auth-scheme is case-insensitive (the faulty server wants `Bearer`).
    if !scheme.eq_ignore_ascii_case("bearer")
        || (s.fault("rs-bearer-scheme-case-insensitive") && scheme != "Bearer")
    {
        return Ok(Credential::Malformed);
    }
    if rest.is_empty() {
        if s.fault("rs-400-malformed-auth.empty") {
            return Err(Box::new(server_error()));
        }
        return Ok(Credential::Malformed);
    }
    if rest.len() > 8192 && s.fault("rs-400-malformed-auth.long-token") {
        return Err(Box::new(server_error()));
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = rest.trim_end_matches('=');
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !ok {
        return Ok(Credential::Malformed);
    }
    Ok(Credential::Unknown(rest.to_string()))
}

/// Tokens anywhere but the Authorization header, as only a faulty server would take them
/// (O21 5.1, MCP §9.1: the header is the only place a client sends the token).
fn stray_token(s: &Ref, query: &str, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    // rs-body-token: an `access_token` member of a JSON-RPC body, a place no method of
    // OAuth 2.1 §5.1 defines (a form-encoded body is one, which resource servers MAY support).
    if s.fault("rs-body-token")
        && super::media_type(headers) == "application/json"
        && let Some(t) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("access_token")?.as_str().map(str::to_string))
    {
        return Some(t);
    }
    let q = super::authorize::pairs(query)
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v);
    if let Some(t) = q
        && (s.fault("rs-query-token-ignored") || s.fault("rs-query-and-header"))
    {
        return Some(t);
    }
    if s.fault("rs-cookie-token") {
        return headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("access_token=").map(str::to_string));
    }
    None
}

/// The JSON-RPC method and id of a request body, read by hand (the reference shares no parser
/// with the harness).
fn rpc_of(body: &[u8]) -> (Option<String>, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let method = v.get("method").and_then(|m| m.as_str()).map(str::to_string);
    let id = v.get("id").cloned().unwrap_or(json!(1));
    (method, id)
}

const SERVER_INFO: &str = "authconform-reference";

/// The answer to an authorized (or, under a fault, wrongly served) request, in the revision the
/// endpoint speaks. 2025-11-25 (transports, lifecycle): `initialize` negotiates 2025-11-25, and
/// `server/discover` does not exist. 2026-07-28 (changelog major 1 and 2, SEP-2567, SEP-2575):
/// no `initialize` handshake; `server/discover` names the versions the server speaks. An
/// unknown method is JSON-RPC's -32601, in a 200: the HTTP request itself was fine.
fn ok_result(s: &Ref, body: &[u8]) -> Response {
    let (method, id) = rpc_of(body);
    let info = json!({ "name": SERVER_INFO, "version": "0" });
    let unknown = |m: &str| {
        json(
            200,
            json!({ "jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("method not found: {m}") } }),
        )
    };
    match (method.as_deref(), s.stateless()) {
        (Some("server/discover"), true) => json(
            200,
            json!({ "jsonrpc": "2.0", "id": id, "result": {
                "supportedVersions": [s.revision.as_str()], "capabilities": { "tools": {} },
                "serverInfo": info } }),
        ),
        (Some(m @ "initialize"), true) | (Some(m @ "server/discover"), false) => unknown(m),
        (_, true) => json(200, json!({ "jsonrpc": "2.0", "id": id, "result": {} })),
        // What the 2025-11-25 endpoint has always answered, whatever the method.
        (_, false) => json(
            200,
            json!({ "jsonrpc": "2.0", "id": 1, "result": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "serverInfo": info } }),
        ),
    }
}

/// `/mcp`: every method needs a valid bearer token (MCP 2025-11-25 §9.1).
pub fn mcp(s: &Ref, method: &Method, query: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    // Streamable HTTP: an Origin that is not this server's is refused (DNS rebinding).
    if let Some(o) = headers.get("origin").and_then(|v| v.to_str().ok())
        && o != s.origin
        && !s.fault("rs-origin-check")
    {
        return json(
            403,
            json!({ "error": "forbidden", "error_description": "invalid Origin" }),
        );
    }
    // RFC 9449 §7: a DPoP-bound token with its proof, or one refused for how it came.
    let cred = match super::dpop::at_resource(s, headers, method) {
        Some(Ok(token)) => Credential::Unknown(token),
        Some(Err(r)) => return *r,
        None => match credential(s, headers) {
            Ok(c) => c,
            Err(r) => return *r,
        },
    };
    if let Some(t) = stray_token(s, query, headers, body) {
        let header_ok = matches!(&cred, Credential::Unknown(h) if super::token::valid_access_token(s, h, &s.resource));
        let only_query = matches!(cred, Credential::None) || s.fault("rs-query-and-header");
        if !header_ok && only_query && super::token::valid_access_token(s, &t, &s.resource) {
            return ok_result(s, body);
        }
    }
    match cred {
        Credential::None => {
            if let Some(r) = super::session::without_token(s, headers, || ok_result(s, body)) {
                return r;
            }
            if *method == Method::POST && s.fault("rs-401-no-token") {
                return ok_result(s, body);
            }
            if *method == Method::GET && s.fault("rs-401-all-methods.get") {
                return Response::builder()
                    .status(200)
                    .header("content-type", "text/event-stream")
                    .body(Body::from("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n"))
                    .unwrap_or_default();
            }
            if *method == Method::DELETE && s.fault("rs-401-all-methods.delete") {
                return Response::builder()
                    .status(204)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            let error = s
                .fault("rs-401-no-error-without-creds")
                .then_some("invalid_token");
            unauthorized(s, error, 401)
        }
        Credential::Malformed => unauthorized(s, Some("invalid_request"), 400),
        Credential::Unknown(token) => {
            if let Some(a) = super::token::accepted_access(s, &token, &s.resource) {
                // Sessions and state handles belong to the user the token is for.
                let user = super::handles::user_of(s, &token);
                if let Some(r) = super::handles::call(s, user.as_deref(), body) {
                    return r;
                }
                return match super::scopes::enforce(s, &a, body) {
                    Ok(Some(tool_result)) => tool_result,
                    Ok(None) => super::session::authorized(
                        s,
                        headers,
                        body,
                        ok_result(s, body),
                        user.as_deref(),
                    ),
                    Err(r) => *r,
                };
            }
            // The faulty server takes any JWT a trusted IdP signed, ID-JAGs included.
            if s.fault("idjag-not-a-bearer") && super::id_jag::verifies(s, &token) {
                return ok_result(s, body);
            }
            if s.fault("rs-403-vs-401") && super::scopes::tool_called(body).is_some() {
                return super::scopes::insufficient(s, "mcp:tools mcp:admin");
            }
            if s.fault("rs-401-invalid-token.fake-jwt") && token.split('.').count() == 3 {
                return json(200, json!({ "jsonrpc": "2.0", "id": 1, "result": {} }));
            }
            if s.fault("rs-401-invalid-token") {
                return json(403, json!({ "error": "forbidden" }));
            }
            if s.fault("rs-401-invalid-token.error-code") {
                return unauthorized(s, None, 401);
            }
            // No token has been issued by this reference yet that could match.
            unauthorized(s, Some("invalid_token"), 401)
        }
    }
}

fn prm_document(s: &Ref, for_root: bool) -> serde_json::Value {
    let resource = if s.fault("prm-resource-match") {
        "https://mcp-backend.internal:8443/mcp".to_string()
    } else if s.fault("prm-resource-form") {
        format!("{}#main", s.resource)
    } else {
        s.resource.clone()
    };
    let issuer = if s.fault("asm-issuer-form") {
        format!("{}?tenant=1", s.issuer)
    } else if s.fault("prm-as-reachable") {
        format!("{}/tenant-gone", s.origin)
    } else if s.fault("prm-authorization-servers") {
        format!("{}/.well-known/oauth-authorization-server/as", s.origin)
    } else if for_root && s.fault("prm-consistent-sources") {
        format!("{}/as-legacy", s.origin)
    } else {
        s.issuer.clone()
    };
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": if s.fault("prm-scopes-supported") { json!(["*"]) } else { {
            let mut c = json!(super::scopes::CATALOGUE);
            if let Some(a) = c.as_array_mut() {
                if s.fault("prm-no-offline-access") {
                    a.push(json!("offline_access"));
                }
                if s.fault("prm-scope-catalogue") {
                    a.push(json!("full-access"));
                }
            }
            c
        } },
        "bearer_methods_supported": if s.fault("prm-bearer-methods") { json!(["header", "query"]) } else { json!(["header"]) },
        "resource_name": "authconform reference MCP server",
    });
    if s.fault("prm-no-empty-values") {
        doc["resource_documentation"] = json!("");
    }
    super::dpop::advertise(s, &mut doc, true);
    doc
}

/// PRM routes: the path-inserted form (RFC 9728 §3.1) and the root form MCP clients fall back
/// to. Returns `None` for paths that are not PRM.
pub fn metadata(s: &Ref, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if path.contains('\0') || path.contains("%00") {
        if s.fault("prm-fuzz-paths") && path.starts_with("/.well-known/oauth-protected-resource") {
            return Some(server_error());
        }
        return None;
    }
    let root = path == "/.well-known/oauth-protected-resource";
    if path != prm_path(s) && !root {
        return None;
    }
    if root && (s.fault("prm-wellknown-path") || s.fault("rs-401-discovery-mechanism")) {
        return None;
    }
    if *method != Method::GET && *method != Method::HEAD {
        return Some(json(405, json!({ "error": "method_not_allowed" })));
    }
    if s.fault("prm-unauthenticated") && headers.get("authorization").is_none() {
        return Some(unauthorized(s, None, 401));
    }
    let mut r = json(200, prm_document(s, root));
    if s.fault("prm-200-json")
        && let Ok(v) = "text/plain".parse()
    {
        r.headers_mut().insert("content-type", v);
    }
    Some(r)
}
