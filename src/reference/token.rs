//! The reference token endpoint (O21 3.2): client authentication (3.2.1), the
//! authorization_code grant with PKCE (4.1.3) and the refresh_token grant with rotation (4.3).

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::authorize::pairs;
use super::store::{ACCESS_TTL_SECS, CODE_TTL, REFRESH_IDLE, TokenGrant, random_id};
use super::{Ref, json};

fn err(status: u16, code: &str, desc: &str) -> Response {
    json(status, json!({ "error": code, "error_description": desc }))
}

pub(super) fn token_error(s: &Ref, status: u16, code: &str, desc: &str) -> Response {
    // Every refused grant with 401: one wrong shape that every refusal case provokes.
    let status = if code == "invalid_grant" && s.fault("tok-error-format.status") {
        401
    } else {
        status
    };
    if s.fault("tok-error-format") {
        return Response::builder()
            .status(status)
            .header("content-type", "text/html")
            .body(axum::body::Body::from(format!(
                "<h1>Error</h1><p>{code}</p>"
            )))
            .unwrap_or_default();
    }
    err(status, code, desc)
}

fn invalid_client(s: &Ref, basic_used: bool) -> Response {
    if s.fault("tok-invalid-client-basic") {
        return token_error(s, 400, "invalid_client", "client authentication failed");
    }
    let mut r = token_error(s, 401, "invalid_client", "client authentication failed");
    if basic_used && let Ok(v) = "Basic realm=\"reference\"".parse() {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

/// `code_verifier = 43*128unreserved` (O21 4.1.1).
fn verifier_syntax(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn b64url_sha256(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
}

fn pct_decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("x={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The first value of a parameter; an empty one counts as omitted (O21 3.2).
fn param(all: &[(String, String)], k: &str) -> Option<String> {
    all.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// HTTP Basic client credentials (O21 2.4.1: each part form-urlencoded).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        })
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| {
            t.split_once(':')
                .map(|(i, p)| (pct_decode(i), pct_decode(p)))
        })
}

/// A client named by a metadata document that cannot be used.
pub fn refused_client(s: &Ref, why: &str) -> Response {
    token_error(
        s,
        401,
        "invalid_client",
        &format!("client metadata document: {why}"),
    )
}

pub fn token(s: &Ref, method: &Method, query: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let get_ok = *method == Method::GET && s.fault("tok-post-only");
    if *method != Method::POST && !get_ok {
        return token_error(s, 405, "invalid_request", "use POST");
    }
    let ct = super::media_type(headers);
    if std::str::from_utf8(body).is_err() {
        if s.fault("tok-fuzz") {
            return err(500, "server_error", "utf-8 decode failed");
        }
        return token_error(s, 400, "invalid_request", "the body is not UTF-8");
    }
    let body_text = String::from_utf8_lossy(body).into_owned();
    let all: Vec<(String, String)> = if get_ok {
        pairs(query)
    } else if ct == "application/json" && s.fault("tok-form-encoded") {
        match serde_json::from_str::<Value>(&body_text) {
            Ok(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                .collect(),
            _ => Vec::new(),
        }
    } else if ct != "application/x-www-form-urlencoded" {
        return token_error(
            s,
            400,
            "invalid_request",
            "use application/x-www-form-urlencoded",
        );
    } else {
        pairs(&body_text)
    };
    if all.len() > 1000 {
        return token_error(s, 400, "invalid_request", "too many parameters");
    }
    let mut query_creds = Vec::new();
    if !get_ok {
        query_creds = pairs(query);
    }
    let count = |k: &str| all.iter().filter(|(n, _)| n == k).count();
    if all.iter().any(|(k, _)| count(k) > 1) && !s.fault("tok-duplicate-param") {
        return token_error(
            s,
            400,
            "invalid_request",
            "a parameter was sent more than once",
        );
    }
    // O21 3.2: an empty parameter is treated as omitted.
    let get = |k: &str| param(&all, k);
    if s.fault("tok-unknown-param") && all.iter().any(|(k, _)| k == "foo") {
        return token_error(s, 400, "invalid_request", "unknown parameter foo");
    }

    // Client authentication.
    let basic = basic_credentials(headers);
    let body_secret = get("client_secret");
    let (mut q_id, mut q_secret) = (None, None);
    for (k, v) in &query_creds {
        match k.as_str() {
            "client_id" => q_id = Some(v.clone()),
            "client_secret" => q_secret = Some(v.clone()),
            _ => {}
        }
    }
    if q_secret.is_some() && !s.fault("tok-client-creds-in-query") {
        return token_error(
            s,
            400,
            "invalid_request",
            "credentials in the URL are not accepted",
        );
    }
    if basic.is_some() && body_secret.is_some() && !s.fault("tok-multi-auth-methods") {
        return token_error(
            s,
            400,
            "invalid_request",
            "more than one client authentication method",
        );
    }
    let grant_type = get("grant_type");
    // The RFC 7523 §2.1 grant authenticates by its assertion; client_credentials faults.
    if let Some(r) = super::client_credentials::before_client_auth(s, headers, &get) {
        return r;
    }
    let authenticated = authenticate_client(s, &get, basic, body_secret, q_id, q_secret, false);
    let (client_id, public) = match authenticated {
        Ok(c) => c,
        Err(r) => return *r,
    };

    // RFC 9449 §4.3, §5: an optional DPoP proof, checked once for every grant; the key it
    // proves binds the tokens of the grants that take `dpop`.
    let dpop = match super::dpop::at_token_endpoint(s, headers, method) {
        Ok(p) => super::dpop::Binding {
            alg: p.as_ref().map(|p| p.alg.clone()).unwrap_or_default(),
            jkt: p.map(|p| p.jkt),
        },
        Err(r) => return *r,
    };

    match grant_type.as_deref() {
        None => token_error(s, 400, "invalid_request", "grant_type is required"),
        Some("authorization_code") => authorization_code(s, &client_id, &get, &dpop),
        Some("refresh_token") => refresh(s, &client_id, public, &get, &dpop),
        Some("client_credentials") => super::client_credentials::grant(s, &client_id, public, &get),
        Some(super::token_exchange::GRANT) => {
            super::token_exchange::grant(s, &client_id, public, &get)
        }
        // Only an ID-JAG gets here (client_credentials::before_client_auth routes the rest).
        Some(super::client_credentials::JWT_BEARER_GRANT) => {
            super::id_jag::grant(s, &client_id, public, &get)
        }
        Some("password") if s.fault("tok-unsupported-grant") => {
            issue(s, TokenGrant::new(client_id, None, None), true)
        }
        Some(_) => token_error(s, 400, "unsupported_grant_type", "unsupported grant_type"),
    }
}

/// Client authentication, the same at the token, revocation and introspection endpoints: a
/// `private_key_jwt` assertion (RFC 7523 §2.2, §3), else the secret (O21 3.2.1: Basic, body,
/// or, only under the tok-client-creds-in-query fault, the query); a public client names itself
/// by `client_id`. Returns the client id and whether the client is public.
pub(super) fn authenticate_client(
    s: &Ref,
    get: &dyn Fn(&str) -> Option<String>,
    basic: Option<(String, String)>,
    body_secret: Option<String>,
    q_id: Option<String>,
    q_secret: Option<String>,
    // Revocation or introspection: the rev-confidential-auth fault lets a confidential client
    // skip authentication there.
    outside_token_endpoint: bool,
) -> Result<(String, bool), Box<Response>> {
    if let Some(kind) = get("client_assertion_type") {
        return verify_assertion(s, &kind, get("client_assertion").as_deref()).map(|c| (c, false));
    }
    let (client_id, presented, via) = match (&basic, &body_secret, &q_secret) {
        (Some((id, sec)), _, _) => (Some(id.clone()), Some(sec.clone()), "client_secret_basic"),
        (None, Some(sec), _) => (get("client_id"), Some(sec.clone()), "client_secret_post"),
        // Only reachable under tok-client-creds-in-query: the faulty server takes them as if
        // they had come the registered way.
        (None, None, Some(sec)) => (q_id.clone(), Some(sec.clone()), "query"),
        _ => (get("client_id"), None, "none"),
    };
    // Under code-client-missing, a public client's id is taken from the code itself.
    let client_id = match client_id {
        Some(c) => c,
        None if s.fault("code-client-missing") => get("code")
            .and_then(|c| {
                s.store
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .codes
                    .get(&c)
                    .map(|g| g.p.client_id.clone())
            })
            .unwrap_or_default(),
        None => {
            return Err(Box::new(token_error(
                s,
                400,
                "invalid_request",
                "client_id is required",
            )));
        }
    };
    let Some(client) = s.client(&client_id) else {
        if s.fault("tok-invalid-client-unknown") {
            return Err(Box::new(token_error(
                s,
                400,
                "invalid_grant",
                "unknown code",
            )));
        }
        return Err(Box::new(invalid_client(s, basic.is_some())));
    };
    let registered_method = client
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_string();
    let public = registered_method == "none";
    // Listed in the metadata, refused here: every client_secret_post request fails.
    if via == "client_secret_post"
        && !outside_token_endpoint
        && s.fault("asm-auth-methods.advertised")
    {
        return Err(Box::new(invalid_client(s, false)));
    }
    if !public {
        let secret = client.get("client_secret").and_then(Value::as_str);
        match &presented {
            None if s.fault("tok-confidential-needs-auth") => {}
            None if s.fault("rt-confidential-auth")
                && get("grant_type").as_deref() == Some("refresh_token") => {}
            None if s.fault("rev-confidential-auth") && outside_token_endpoint => {}
            None => return Err(Box::new(invalid_client(s, false))),
            Some(p) if Some(p.as_str()) != secret => {
                return Err(Box::new(invalid_client(s, basic.is_some())));
            }
            Some(_) => {
                if via != registered_method
                    && via != "query"
                    && !s.fault("tok-auth-method-mismatch")
                {
                    return Err(Box::new(invalid_client(s, basic.is_some())));
                }
            }
        }
    }

    Ok((client_id, public))
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Verifies a client assertion with `jsonwebtoken`: ES256 with the key the client registered,
/// `iss` = `sub` = client id, `aud` the token endpoint or the issuer, an unexpired `exp`, and a
/// `jti` never seen before. Returns the client id.
fn verify_assertion(s: &Ref, kind: &str, jwt: Option<&str>) -> Result<String, Box<Response>> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let refuse = |why: &str| Box::new(token_error(s, 401, "invalid_client", why));
    if kind != JWT_BEARER {
        return Err(refuse("unsupported client_assertion_type"));
    }
    let jwt = jwt.ok_or_else(|| refuse("client_assertion is missing"))?;
    // The client is named by the (not yet trusted) claims; the signature then proves it.
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .map_err(|_| refuse("client_assertion is not a JWT"))?;
    let client_id = unverified
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("no iss"))?
        .to_string();
    let client = s
        .client(&client_id)
        .ok_or_else(|| refuse("unknown client"))?;
    if client
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        != Some("private_key_jwt")
    {
        return Err(refuse("the client is not registered for private_key_jwt"));
    }
    let jwk = &client["jwks"]["keys"][0];
    let key = DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap_or(""),
        jwk["y"].as_str().unwrap_or(""),
    )
    .map_err(|_| refuse("the registered key is unusable"))?;
    let token_endpoint = format!("{}/token", s.issuer);
    let mut v = Validation::new(Algorithm::ES256);
    v.leeway = 30;
    // RFC 7523 §3: a JWT not yet valid (`nbf`) is refused too (beyond the clock-skew leeway).
    v.validate_nbf = true;
    if s.fault("tok-jwt-assertion-aud-issuer") {
        v.set_audience(&[token_endpoint]);
    } else {
        v.set_audience(&[token_endpoint, s.issuer.clone()]);
    }
    v.set_issuer(std::slice::from_ref(&client_id));
    v.sub = Some(client_id.clone());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let lax = s.fault("tok-jwt-assertion") || s.fault("tok-jwt-assertion.replay");
    if s.fault("tok-jwt-assertion") {
        // The broken server checks the signature only.
        v.validate_aud = false;
        v.validate_exp = false;
        v.validate_nbf = false;
        v.sub = None;
        v.iss = None;
        v.set_required_spec_claims::<&str>(&[]);
    }
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .map_err(|e| refuse(&format!("client_assertion rejected: {e}")))?;
    let jti = data
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !lax {
        let jti = jti.ok_or_else(|| refuse("client_assertion has no jti"))?;
        let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        if !st.seen_jti(jti) {
            return Err(refuse("client_assertion jti was already used"));
        }
    }
    Ok(client_id)
}

fn authorization_code(
    s: &Ref,
    client_id: &str,
    get: &dyn Fn(&str) -> Option<String>,
    dpop: &super::dpop::Binding,
) -> Response {
    let Some(code) = get("code") else {
        if s.fault("tok-missing-param") {
            return err(500, "server_error", "missing code");
        }
        return token_error(s, 400, "invalid_request", "code is required");
    };
    let verifier = get("code_verifier");
    let raw_verifier_empty = verifier.is_none() && s.fault("tok-empty-as-omitted");
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let Some(g) = st.codes.get(&code).cloned() else {
        return token_error(s, 400, "invalid_grant", "unknown code");
    };
    let bound_ok = g.p.client_id == client_id
        || s.fault("code-client-binding")
        || (s.fault("cimd-token-client-match")
            && super::cimd::is_url(&g.p.client_id)
            && super::cimd::is_url(client_id));
    // PKCE (O21 4.1.3): the verifier must be present if and only if a challenge was sent.
    let pkce_ok = match (&g.p.challenge, &verifier) {
        (Some(c), Some(v)) => {
            (verifier_syntax(v) || s.fault("pkce-verifier-syntax"))
                && (s.fault("pkce-verifier-mismatch")
                    || (g.p.method == "plain" && v == c)
                    || (g.p.method == "S256"
                        && !s.fault("pkce-positive")
                        && b64url_sha256(v) == *c)
                    || (s.fault("pkce-positive") && v == c)
                    || (s.fault("pkce-s256-challenge-as-verifier") && v == c))
        }
        (Some(_), None) => s.fault("pkce-verifier-missing") || raw_verifier_empty,
        (None, Some(_)) => {
            if !s.fault("pkce-downgrade") {
                drop(st);
                return token_error(
                    s,
                    400,
                    "invalid_request",
                    "code_verifier sent for a code issued without code_challenge",
                );
            }
            true
        }
        (None, None) => {
            s.fault("pkce-no-challenge-token-reject")
                || s.fault("pkce-required-confidential")
                || s.fault("pkce-required-public")
        }
    };
    // The grant-revocation-complete fault: a redemption racing the first one is let through,
    // and its tokens are recorded without the user, so revoking the user's grant misses them.
    let racing = g.used && s.fault("grant-revocation-complete");
    if g.used && !s.fault("code-single-use") && !s.fault("code-concurrent-redeem") && !racing {
        // O21 4.1.3 / 7.5.3: a replayed code revokes what it issued, but only when the replay
        // is otherwise valid; a bad replay must not let anyone revoke a user's tokens.
        if (bound_ok && pkce_ok && !s.fault("code-replay-revokes"))
            || s.fault("code-replay-invalid-no-revoke")
        {
            for t in &g.tokens {
                st.revoke(t);
            }
            // "All tokens previously issued based on that authorization code": those of the
            // refreshes since, too (the family the code started).
            if let Some(f) = &g.family {
                st.revoke_family(f);
            }
        }
        return token_error(s, 400, "invalid_grant", "code already used");
    }
    if g.issued.elapsed() > CODE_TTL && !s.fault("code-lifetime") {
        return token_error(s, 400, "invalid_grant", "code expired");
    }
    if !bound_ok {
        return token_error(s, 400, "invalid_grant", "code was issued to another client");
    }
    if g.p.redirect_sent
        && get("redirect_uri").as_deref() != Some(g.p.redirect_uri.as_str())
        && !s.fault("redir-token-endpoint-consistency")
        && !s.fault("code-redirect-binding")
    {
        return token_error(
            s,
            400,
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        );
    }
    if !pkce_ok {
        return token_error(s, 400, "invalid_grant", "PKCE verification failed");
    }
    if !dpop.code_ok(s, g.p.dpop_jkt.as_deref()) {
        return token_error(
            s,
            400,
            "invalid_grant",
            "the DPoP proof's key is not the one dpop_jkt named",
        );
    }
    // MCP 2025-11-25 §8.1: scheme and host compare case-insensitively (the authorization
    // request's resource was stored canonical).
    let asked = get("resource").map(|r| super::authorize::canonical_resource(&r));
    let resource = match (asked, &g.p.resource) {
        (Some(r), Some(a))
            if r != *a
                && !s.fault("code-resource-binding")
                && !(s.fault("as-resource-token-mismatch")
                    && super::authorize::known_resource(s, &r)) =>
        {
            return token_error(
                s,
                400,
                "invalid_target",
                "resource differs from the authorized one",
            );
        }
        (Some(r), _) => Some(r),
        (None, a) => a.clone(),
    };
    if !s.fault("code-concurrent-redeem")
        && let Some(c) = st.codes.get_mut(&code)
    {
        c.used = true;
    }
    // The faulty servers: one drops the resource (tokens come out alike whether one was
    // named), one grants only the first of several scopes (and respond() leaves scope out).
    let resource = if s.fault("as-resource-ignored") {
        None
    } else {
        resource
    };
    let scope = match &g.p.scope {
        Some(sc) if s.fault("as-scope-subset-reported") => sc.split(' ').next().map(str::to_string),
        other => other.clone(),
    };
    let mut grant = TokenGrant::new(client_id.to_string(), resource, scope);
    grant.user = if racing { None } else { g.p.user.clone() };
    grant.jkt = dpop.access(s);
    let at = new_access_token(s, &grant);
    let (at, rt) = st.issue(grant.clone(), at);
    // RFC 9449 §5: only a public client's refresh token is bound to its DPoP key.
    if let Some(r) = st.refresh.get_mut(&rt) {
        r.jkt = if g.p.public { dpop.jkt.clone() } else { None };
    }
    if let Some(c) = st.codes.get_mut(&code) {
        c.tokens.push(at.clone());
        c.tokens.push(rt.clone());
        c.family = Some(grant.family.clone());
    }
    drop(st);
    // OIDC Core 1.0 §3.1.3.3: a code granted with `openid` brings an ID token too.
    let id_token = super::oidc::id_token(s, &g.p, &grant);
    respond_with(s, &at, Some(&rt), &grant, id_token)
}

/// A JWT for the grant's resource (RFC 9068), or an opaque token when no resource was named.
fn new_access_token(s: &Ref, g: &TokenGrant) -> String {
    if s.fault("tok-token-charset") {
        return format!("tok\u{e9}n {}", random_id(24));
    }
    match &g.resource {
        Some(aud) => s.signer().mint(&super::jwt::claims(
            s,
            g,
            if s.fault("as-resource-bound") {
                &s.issuer
            } else {
                aud
            },
            g.scope.as_deref(),
            ACCESS_TTL_SECS,
        )),
        None => random_id(32),
    }
}

fn refresh(
    s: &Ref,
    client_id: &str,
    public: bool,
    get: &dyn Fn(&str) -> Option<String>,
    dpop: &super::dpop::Binding,
) -> Response {
    let Some(rt) = get("refresh_token") else {
        if s.fault("tok-missing-param") {
            return err(500, "server_error", "missing refresh_token");
        }
        return token_error(s, 400, "invalid_request", "refresh_token is required");
    };
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let Some(g) = st.refresh.get(&rt).cloned() else {
        return token_error(s, 400, "invalid_grant", "unknown refresh token");
    };
    if g.client_id != client_id && !s.fault("rt-client-binding") {
        return token_error(
            s,
            400,
            "invalid_grant",
            "refresh token was issued to another client",
        );
    }
    if !dpop.refresh_ok(s, g.jkt.as_deref()) {
        return token_error(
            s,
            400,
            "invalid_grant",
            "the refresh token is bound to another DPoP key",
        );
    }
    let in_grace = g.grace_until.is_some_and(|t| Instant::now() < t);
    if !g.active && !in_grace {
        // O21 4.3.1: a spent refresh token presented again means it leaked; the whole family
        // (the tokens that replaced it included) is revoked.
        if !s.fault("rt-reuse-detection") {
            st.revoke_family(&g.family);
        }
        return token_error(s, 400, "invalid_grant", "refresh token is no longer valid");
    }
    if g.expires <= Instant::now() {
        return token_error(s, 400, "invalid_grant", "refresh token expired");
    }
    // O21 4.3.3: a refresh token unused for too long expires (the built-in profile states the
    // idle time as timing.refresh_idle_secs).
    if g.last_used.elapsed() > REFRESH_IDLE && !s.fault("rt-inactivity-expiry") {
        return token_error(
            s,
            400,
            "invalid_grant",
            "refresh token expired (unused too long)",
        );
    }
    // O21 4.3.1: the requested scope must be within the granted one; the new access token
    // may be narrower, the new refresh token keeps the grant's scope.
    let granted: Vec<&str> = g
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|x| !x.is_empty())
        .collect();
    // The lifecycle.refresh-scope-regrowth fault: a later-generation refresh token is checked
    // against every scope the server knows, not its grant's, and the new tokens (refresh token
    // too) carry what was asked: a narrow grant regrows to the full scope (breaks O21 4.3.1).
    let regrowth = g.generation >= 1 && s.fault("lifecycle.refresh-scope-regrowth");
    let mut regrown = None;
    let granted = if regrowth {
        super::scopes::CATALOGUE.to_vec()
    } else {
        granted
    };
    let at_scope = match get("scope") {
        Some(req) => {
            let wanted: Vec<&str> = req.split(' ').filter(|x| !x.is_empty()).collect();
            if regrowth {
                regrown = Some(wanted.join(" "));
            }
            if !wanted.iter().all(|w| granted.contains(w)) && !s.fault("rt-scope-escalation") {
                return token_error(
                    s,
                    400,
                    "invalid_scope",
                    "the requested scope exceeds the grant",
                );
            }
            // O21 4.3.1: a narrower scope is honoured (the faulty server ignores it).
            if s.fault("rt-scope-downscope") {
                g.scope.clone()
            } else {
                Some(wanted.join(" "))
            }
        }
        None => g.scope.clone(),
    };
    // O21 3.2.3 / RFC 8707 §2.2: the refresh token stays bound to the resource it was granted
    // for; a `resource` in the refresh request cannot move it (except under the fault).
    let at_resource = match get("resource") {
        Some(r) if s.fault("rt-resource-binding") => Some(r),
        _ => g.resource.clone(),
    };
    let rotate = !s.fault("rt-rotation-public");
    if rotate {
        if let Some(old) = st.refresh.get_mut(&rt) {
            old.active = false;
            // The lifecycle.refresh-race-later-generation fault: rt-concurrent's grace window, for
            // later generations only (concurrent refreshes fork the family, O21 4.3.1).
            let grace = s.fault("rt-concurrent")
                || (g.generation >= 1 && s.fault("lifecycle.refresh-race-later-generation"));
            if grace && old.grace_until.is_none() {
                old.grace_until = Some(Instant::now() + Duration::from_secs(2));
            }
        }
    }
    let mut at_grant = TokenGrant::new(g.client_id.clone(), at_resource, at_scope);
    at_grant.family = g.family.clone();
    at_grant.generation = g.generation + 1;
    at_grant.user = g.user.clone();
    at_grant.jkt = dpop.access(s);
    let at = guessable_access(s, new_access_token(s, &at_grant));
    let rt2 = if rotate {
        // O21 4.3.3: the new refresh token keeps the grant's scope, however narrow the new
        // access token is (the faulty server narrows the grant too).
        let rt_scope = if s.fault("rt-new-rt-same-scope") {
            at_grant.scope.clone()
        } else {
            regrown.or(g.scope)
        };
        let mut rt_grant = TokenGrant::new(g.client_id, g.resource, rt_scope);
        rt_grant.family = g.family.clone();
        rt_grant.generation = g.generation + 1;
        rt_grant.user = g.user.clone();
        // The binding stays; a public client's unbound refresh token is bound now (§5).
        rt_grant.jkt = g.jkt.clone().or(dpop.jkt.clone().filter(|_| public));
        let fresh = st.new_refresh(rt_grant);
        guessable_refresh(s, &mut st, fresh)
    } else {
        if let Some(same) = st.refresh.get_mut(&rt) {
            same.last_used = Instant::now();
        }
        rt.clone()
    };
    st.new_access(at.clone(), at_grant.clone());
    // The lifecycle.code-replay-after-refresh fault: refreshing rewrites the family's code
    // record and loses its "used" mark, so the code can be redeemed again (breaks O21 4.1.3
    // single use once the family was refreshed; the code still expires).
    if s.fault("lifecycle.code-replay-after-refresh")
        && let Some(c) = st
            .codes
            .values_mut()
            .find(|c| c.family.as_deref() == Some(g.family.as_str()))
    {
        c.used = false;
    }
    drop(st);
    let mut r = respond(s, &at, Some(&rt2), &at_grant);
    if s.fault("rt-no-store") {
        r.headers_mut().remove("cache-control");
        r.headers_mut().remove("pragma");
    }
    r
}

/// Under the at-entropy fault, opaque access tokens issued on refresh are a counter
/// (RFC 6749 §10.10 wants them unguessable).
fn guessable_access(s: &Ref, at: String) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if s.fault("at-entropy") && !at.contains('.') {
        return format!(
            "at{}",
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
    }
    at
}

/// Under the rt-entropy fault, rotated refresh tokens are a counter.
fn guessable_refresh(s: &Ref, st: &mut super::store::Store, rt: String) -> String {
    if !s.fault("rt-entropy") {
        return rt;
    }
    let Some(g) = st.refresh.remove(&rt) else {
        return rt;
    };
    st.seq += 1;
    let n = format!("rt{}", st.seq);
    st.refresh.insert(n.clone(), g);
    n
}

/// Revokes the access tokens of a family and leaves its refresh tokens working: the
/// rt-after-revocation fault.
fn revoke_family_access_only(st: &mut super::store::Store, family: &str) {
    for g in st.access.values_mut() {
        if g.family == family {
            g.active = false;
        }
    }
}

pub(super) fn issue(s: &Ref, grant: TokenGrant, with_refresh: bool) -> Response {
    let at = new_access_token(s, &grant);
    let (at, rt) = s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .issue(grant.clone(), at);
    respond(s, &at, with_refresh.then_some(rt.as_str()), &grant)
}

fn respond(s: &Ref, at: &str, rt: Option<&str>, g: &TokenGrant) -> Response {
    respond_with(s, at, rt, g, None)
}

fn respond_with(
    s: &Ref,
    at: &str,
    rt: Option<&str>,
    g: &TokenGrant,
    id_token: Option<String>,
) -> Response {
    let mut body = json!({
        "access_token": at,
        "token_type": if g.jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": if s.fault("at-short-lived") { 30 * 86_400 } else { ACCESS_TTL_SECS },
    });
    if let Some(t) = id_token {
        body["id_token"] = json!(t);
    }
    if let Some(r) = rt {
        body["refresh_token"] = json!(r);
    }
    if let Some(sc) = &g.scope
        && !s.fault("as-scope-subset-reported")
    {
        body["scope"] = json!(sc);
    }
    if s.fault("tok-response-shape") {
        body["expires_in"] = json!("3600");
        if let Some(o) = body.as_object_mut() {
            o.remove("token_type");
        }
    }
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    if !s.fault("tok-no-store") {
        b = b.header("cache-control", "no-store");
    }
    if !s.fault("tok-pragma-no-cache") {
        b = b.header("pragma", "no-cache");
    }
    b.body(axum::body::Body::from(body.to_string()))
        .unwrap_or_default()
}

/// POST `/as/revoke` (RFC 7009): the client authenticates as at the token endpoint and may
/// revoke only its own tokens; revoking a refresh token revokes its whole family (§2.1: the
/// access tokens of the same grant too). An unknown token is not an error (§2.2).
pub fn revoke(s: &Ref, method: &Method, query: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let get_ok = *method == Method::GET && s.fault("rev-post-form");
    if *method != Method::POST && !get_ok {
        return token_error(s, 405, "invalid_request", "use POST");
    }
    let all = if get_ok {
        pairs(query)
    } else if super::media_type(headers) != "application/x-www-form-urlencoded" {
        return token_error(
            s,
            400,
            "invalid_request",
            "use application/x-www-form-urlencoded",
        );
    } else {
        pairs(&String::from_utf8_lossy(body))
    };
    let get = |k: &str| param(&all, k);
    let authenticated = authenticate_client(
        s,
        &get,
        basic_credentials(headers),
        get("client_secret"),
        None,
        None,
        true,
    );
    let (client_id, _) = match authenticated {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(token) = get("token") else {
        return token_error(s, 400, "invalid_request", "token is required");
    };
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    // §2.1: the hint only speeds up the search; the faulty server takes it as a filter.
    let found = match get("token_type_hint").as_deref() {
        Some("access_token") if s.fault("rev-hint-wrong") => st.access.get(&token).cloned(),
        Some("refresh_token") if s.fault("rev-hint-wrong") => st.refresh.get(&token).cloned(),
        _ => st
            .access
            .get(&token)
            .or_else(|| st.refresh.get(&token))
            .cloned(),
    };
    let ok = || json(200, json!({}));
    match found {
        None if s.fault("rev-invalid-token-200") => {
            token_error(s, 400, "invalid_request", "unknown token")
        }
        None => ok(),
        Some(g) if g.client_id != client_id && !s.fault("rev-client-binding") => token_error(
            s,
            400,
            "unauthorized_client",
            "the token was issued to another client",
        ),
        Some(_) if st.access.contains_key(&token) && s.fault("rev-at-cascades-rt") => {
            err(500, "server_error", "cannot revoke access tokens")
        }
        // A server that cannot revoke access tokens must say unsupported_token_type
        // (RFC 7009 §2.2.1); the faulty one uses another code.
        Some(_) if st.access.contains_key(&token) && s.fault("rev-unsupported-type") => {
            token_error(s, 400, "invalid_request", "access tokens cannot be revoked")
        }
        // The lifecycle.rt-revocation-later-generation fault: a refresh token rotated in twice
        // or more is "revoked" with 200 and stays usable, its family too (breaks RFC 7009 §2.1).
        // Generation 2, not 1: rt-after-revocation revokes the first refresh's token.
        Some(g)
            if g.generation >= 2
                && st.refresh.contains_key(&token)
                && s.fault("lifecycle.rt-revocation-later-generation") =>
        {
            ok()
        }
        Some(g) => {
            if !s.fault("rev-valid") {
                if st.refresh.contains_key(&token) && s.fault("rt-after-revocation") {
                    revoke_family_access_only(&mut st, &g.family);
                } else if st.refresh.contains_key(&token) && !s.fault("rev-rt-cascades") {
                    st.revoke_family(&g.family);
                } else {
                    st.revoke(&token);
                }
            }
            ok()
        }
    }
}

/// POST `/as/introspect` (RFC 7662): only an authenticated confidential client may ask (§2.1,
/// §4: anonymous introspection is a token-scanning oracle). An active token gets its claims; an
/// unknown, expired or revoked one gets `{"active": false}` and nothing else (§2.2).
pub fn introspect(s: &Ref, method: &Method, headers: &HeaderMap, body: &[u8]) -> Response {
    if *method != Method::POST {
        return token_error(s, 405, "invalid_request", "use POST");
    }
    if super::media_type(headers) != "application/x-www-form-urlencoded" {
        return token_error(
            s,
            400,
            "invalid_request",
            "use application/x-www-form-urlencoded",
        );
    }
    let all = pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| param(&all, k);
    let basic = basic_credentials(headers);
    let anonymous =
        basic.is_none() && get("client_secret").is_none() && get("client_assertion").is_none();
    if !(anonymous && s.fault("intro-auth-required")) {
        match authenticate_client(s, &get, basic, get("client_secret"), None, None, true) {
            Ok((_, false)) => {}
            Ok((_, true)) => return invalid_client(s, false),
            Err(_) if anonymous => return invalid_client(s, false),
            Err(r) => return *r,
        }
    }
    let Some(token) = get("token") else {
        return token_error(s, 400, "invalid_request", "token is required");
    };
    let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let lookup = |kind: &str| match kind {
        "refresh_token" => st.refresh.get(&token).map(|g| (g.clone(), "refresh_token")),
        _ => st.access.get(&token).map(|g| (g.clone(), "access_token")),
    };
    // §2.1: the hint may speed up the search, never limit it.
    let found = match get("token_type_hint").as_deref() {
        Some(h) if s.fault("intro-hint-ignored") => lookup(h),
        Some("refresh_token") => lookup("refresh_token").or_else(|| lookup("access_token")),
        _ => lookup("access_token").or_else(|| lookup("refresh_token")),
    };
    drop(st);
    let now = Instant::now();
    match found {
        Some((_, "refresh_token")) if s.fault("intro-refresh-token") => {
            err(500, "server_error", "cannot introspect refresh tokens")
        }
        Some((g, kind)) if g.active && g.expires > now => {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let mut v = json!({
                "active": true,
                "client_id": g.client_id,
                "token_type": match (kind, &g.jkt) {
                    ("access_token", Some(_)) => "DPoP",
                    ("access_token", None) => "Bearer",
                    _ => "refresh_token",
                },
                "exp": unix + (g.expires - now).as_secs(),
                "iss": s.issuer,
                "sub": g.user.as_ref().unwrap_or(&s.username),
            });
            if let Some(sc) = &g.scope {
                v["scope"] = json!(sc);
            }
            // RFC 9449 §6.2: the key a DPoP-bound token is bound to.
            if let (Some(j), "access_token") = (&g.jkt, kind) {
                v["cnf"] = json!({ "jkt": j });
            }
            if let Some(r) = &g.resource
                && !s.fault("intro-aud-present")
            {
                v["aud"] = json!(r);
            }
            if s.fault("intro-active")
                && let Some(o) = v.as_object_mut()
            {
                o.remove("active");
                o.insert("valid".into(), json!(true));
            }
            json(200, v)
        }
        None if s.fault("intro-inactive") => token_error(s, 404, "invalid_token", "unknown token"),
        // The faulty server says more than "not active": whose it would be and why it is not.
        _ if s.fault("intro-inactive.no-extra") => json(
            200,
            json!({ "active": false, "iss": s.issuer, "token_type": "Bearer", "reason": "unknown or expired" }),
        ),
        _ => json(200, json!({ "active": false })),
    }
}

/// Is this access token one the reference issued, still active and unexpired, for `resource`?
pub fn valid_access_token(s: &Ref, token: &str, resource: &str) -> bool {
    accepted_access(s, token, resource).is_some()
}

/// What the RS knows of a bearer token it accepts.
pub struct Access {
    /// The scope the token carries (for a JWT: its `scope` claim, as the RS reads it).
    pub scope: Option<String>,
    /// A client_credentials token (no user).
    pub machine: bool,
}

/// The RS's decision on a bearer token: a JWT is verified locally (signature, `iss`, `aud`,
/// `exp`, `nbf`; see `jwt::verify`) and then looked up by `jti` for revocation; an opaque token
/// must be one the AS issued for `resource`, active and unexpired.
pub fn accepted_access(s: &Ref, token: &str, resource: &str) -> Option<Access> {
    let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let token = forged_lookalike(s, &st, token).unwrap_or(token);
    let now = Instant::now();
    // The reference's opaque tokens are base64url: no dots.
    if token.split('.').count() == 3 {
        if let Some(a) = super::upstream::faulty_acceptance(s, token) {
            return Some(a);
        }
        if let Some(c) = super::jwt::forged_acceptance(s, token) {
            let scope = c.get("scope").and_then(Value::as_str).map(str::to_string);
            return Some(Access {
                scope,
                machine: false,
            });
        }
        let v = super::jwt::verify(s, token)?;
        let jti = v.claims.get("jti").and_then(Value::as_str)?;
        let g = st.access.get(st.jwt_ids.get(jti)?)?;
        // The JWT's own `exp` was checked; revocation is what only the AS knows.
        if (!g.active && !s.fault("rev-at") && !rs_ignores_revocation(s, g))
            || (g.expires <= now && !s.fault("at-expired-rs") && !s.fault("rs-401-expired-token"))
        {
            return None;
        }
        let scope = v
            .claims
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_string);
        return Some(Access {
            scope,
            machine: g.machine,
        });
    }
    let g = st.access.get(token)?;
    let expired = g.expires <= now && !s.fault("at-expired-rs") && !s.fault("rs-401-expired-token");
    // A token bound to no resource is for no resource server (MCP 2025-11-25 §11.8).
    let aud_ok = match &g.resource {
        Some(r) => r == resource || s.fault("rs-aud-wrong"),
        None => s.fault("rs-aud-missing"),
    };
    ((g.active || s.fault("rev-at") || rs_ignores_revocation(s, g)) && !expired && aud_ok).then(
        || Access {
            scope: g.scope.clone(),
            machine: g.machine,
        },
    )
}

/// The lifecycle.rs-revocation-later-generation fault: the RS keeps its own view of tokens
/// issued by a second or later refresh and never hears they were revoked; introspection does
/// (breaks RFC 7009 §2: a revoked token must not be usable at the resource). Generation 2, not
/// 1: grant-revocation-complete checks the access token of a first (racing) refresh.
fn rs_ignores_revocation(s: &Ref, g: &TokenGrant) -> bool {
    g.generation >= 2 && s.fault("lifecycle.rs-revocation-later-generation")
}

/// The faults of the opaque-token attacks: an RS that matches tokens loosely (by prefix, or
/// case-insensitively) maps a forged string onto a token it issued.
fn forged_lookalike<'a>(s: &Ref, st: &'a super::store::Store, token: &str) -> Option<&'a str> {
    if st.access.contains_key(token) || token.len() < 16 {
        return None;
    }
    let hit = |f: &dyn Fn(&str) -> bool| st.access.keys().find(|k| f(k)).map(String::as_str);
    if s.fault("rs-jwt-attacks.truncated") {
        return hit(&|k| k.starts_with(token));
    }
    if s.fault("rs-jwt-attacks.extended") {
        return hit(&|k| token.starts_with(k));
    }
    if s.fault("rs-jwt-attacks.case-flipped") {
        return hit(&|k| k.eq_ignore_ascii_case(token));
    }
    None
}
