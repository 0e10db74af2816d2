//! Machine clients with no user: the client_credentials grant (O21 4.2) and the JWT bearer
//! authorization grant (RFC 7523 §2.1), the JWT path of the MCP `oauth-client-credentials`
//! extension (SEP-1046).
//!
//! For client_credentials the token endpoint (`token.rs`) authenticates the client first; this
//! file decides what the authenticated client may have. The jwt-bearer grant is authenticated
//! by its assertion alone, so it is handled before the token endpoint's client authentication.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use super::Ref;
use super::store::TokenGrant;
use super::token::{basic_credentials, issue, token_error};

/// RFC 7523 §2.1.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The scopes this server knows (its metadata's `scopes_supported`).
const SCOPES: &[&str] = super::scopes::CATALOGUE;

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Runs before the token endpoint authenticates the client: the jwt-bearer grant, and the
/// faults whose servers authenticate client_credentials requests wrongly. `None`: carry on.
pub fn before_client_auth(s: &Ref, headers: &HeaderMap, get: Get) -> Option<Response> {
    match get("grant_type").as_deref() {
        // An ID-JAG is redeemed by a client authenticated as registered (id_jag.rs).
        Some(JWT_BEARER_GRANT)
            if get("assertion").is_some_and(|a| super::id_jag::routed_here(s, &a)) =>
        {
            None
        }
        Some(JWT_BEARER_GRANT) => Some(jwt_bearer(s, headers, get)),
        Some("client_credentials") => faulty_authentication(s, headers, get),
        _ => None,
    }
}

/// `grant_type=client_credentials` from an authenticated client (O21 4.2.1): only a
/// confidential client registered for the grant; the scope must be known and within the
/// client's registration; `resource` (RFC 8707) becomes the token's audience; no refresh token
/// (RFC 6749 §4.4.3).
pub fn grant(s: &Ref, client_id: &str, public: bool, get: Get) -> Response {
    if public {
        if s.fault("tok-unauthorized-client") || s.fault("cc-confidential-only") {
            return issue(s, TokenGrant::new(client_id.to_string(), None, None), false);
        }
        return token_error(
            s,
            400,
            "unauthorized_client",
            "public clients cannot use client_credentials",
        );
    }
    let Some(client) = s.client(client_id) else {
        return token_error(s, 401, "invalid_client", "unknown client");
    };
    if !registered_for(&client, "client_credentials") && !s.fault("cc-grant-registered") {
        return token_error(
            s,
            400,
            "unauthorized_client",
            "the client is not registered for client_credentials",
        );
    }
    finish(s, &client, client_id, get)
}

/// The grant types a client registered (RFC 7591 §2: `authorization_code` when omitted).
fn registered_for(client: &Value, grant: &str) -> bool {
    match client.get("grant_types").and_then(Value::as_array) {
        Some(g) => g.iter().any(|x| x.as_str() == Some(grant)),
        None => grant == "authorization_code",
    }
}

/// Scope, resource and the token response, the same for both grants.
fn finish(s: &Ref, client: &Value, client_id: &str, get: Get) -> Response {
    let registered: Option<Vec<&str>> = client
        .get("scope")
        .and_then(Value::as_str)
        .map(|sc| sc.split(' ').filter(|x| !x.is_empty()).collect());
    let scope = match get("scope") {
        Some(req) => {
            let wanted: Vec<&str> = req.split(' ').filter(|x| !x.is_empty()).collect();
            // Known to the server, and within what the client registered (when it did).
            let allowed = |w: &str| {
                if SCOPES.contains(&w) {
                    registered.as_ref().is_none_or(|r| r.contains(&w))
                        || s.fault("cc-scope.beyond-registration")
                } else {
                    s.fault("cc-scope")
                }
            };
            if !wanted.iter().all(|w| allowed(w)) {
                return token_error(
                    s,
                    400,
                    "invalid_scope",
                    "the requested scope is unknown or beyond the client's registration",
                );
            }
            Some(wanted.join(" ")).filter(|x| !x.is_empty())
        }
        None => registered.map(|r| r.join(" ")).filter(|x| !x.is_empty()),
    };
    // RFC 8707 §2: the one protected resource this AS issues tokens for.
    let resource = match get("resource") {
        None => None,
        // The faulty server ignores the resource and names itself as the audience.
        Some(_) if s.fault("cc-resource-aud") => Some(s.issuer.clone()),
        Some(r) if r == s.resource => Some(r),
        Some(_) => {
            return token_error(
                s,
                400,
                "invalid_target",
                "this server issues tokens for its own MCP endpoint only",
            );
        }
    };
    let mut g = TokenGrant::new(client_id.to_string(), resource, scope);
    g.machine = true;
    issue(s, g, s.fault("cc-no-refresh-token"))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>` (RFC 7523 §2.1):
/// the assertion, signed with the key the client registered, is the grant; a bad one is
/// `invalid_grant` (§3.1). The client authenticates by the assertion alone.
fn jwt_bearer(s: &Ref, headers: &HeaderMap, get: Get) -> Response {
    if basic_credentials(headers).is_some()
        || get("client_secret").is_some()
        || get("client_assertion").is_some()
    {
        return token_error(
            s,
            400,
            "invalid_request",
            "the jwt-bearer grant is authenticated by its assertion alone",
        );
    }
    let Some(jwt) = get("assertion") else {
        return token_error(s, 400, "invalid_request", "assertion is required");
    };
    let (client_id, client) = match verify(s, &jwt, s.fault("cc-ext-jwt-bearer")) {
        Ok(c) => c,
        Err(why) => return token_error(s, 400, "invalid_grant", &why),
    };
    if get("client_id").is_some_and(|c| c != client_id) {
        return token_error(
            s,
            400,
            "invalid_grant",
            "client_id differs from the assertion's subject",
        );
    }
    if !registered_for(&client, JWT_BEARER_GRANT) {
        return token_error(
            s,
            400,
            "unauthorized_client",
            "the client is not registered for the jwt-bearer grant",
        );
    }
    finish(s, &client, &client_id, get)
}

/// Verifies an assertion (RFC 7523 §3) with the key its client registered: ES256, `iss` =
/// `sub` = the client, `aud` the token endpoint or the issuer, `exp` (and `nbf`) with 30 s of
/// leeway, a `jti` never seen before. `signature_only` is the faulty servers' check. Returns
/// the client id and registration.
fn verify(s: &Ref, jwt: &str, signature_only: bool) -> Result<(String, Value), String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .map_err(|_| "the assertion is not a JWT".to_string())?;
    let client_id = unverified
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("the assertion has no iss")?
        .to_string();
    let client = s
        .client(&client_id)
        .ok_or("the assertion's issuer is not a known client")?;
    let jwk = &client["jwks"]["keys"][0];
    let key = DecodingKey::from_ec_components(
        jwk["x"].as_str().ok_or("the client registered no key")?,
        jwk["y"].as_str().ok_or("the client registered no key")?,
    )
    .map_err(|_| "the registered key is unusable".to_string())?;
    let mut v = Validation::new(Algorithm::ES256);
    v.leeway = 30;
    v.validate_nbf = true;
    v.set_audience(&[format!("{}/token", s.issuer), s.issuer.clone()]);
    v.set_issuer(std::slice::from_ref(&client_id));
    v.sub = Some(client_id.clone());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    if signature_only {
        v.validate_aud = false;
        v.validate_exp = false;
        v.validate_nbf = false;
        v.sub = None;
        v.iss = None;
        v.set_required_spec_claims::<&str>(&[]);
    }
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .map_err(|e| format!("the assertion was rejected: {e}"))?;
    if !signature_only {
        let jti = data
            .claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or("the assertion has no jti")?;
        let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        if !st.seen_jti(jti.to_string()) {
            return Err("the assertion's jti was used before".into());
        }
    }
    Ok((client_id, client))
}

/// The faulty servers' client authentication for client_credentials (`None`: the token
/// endpoint authenticates as usual).
fn faulty_authentication(s: &Ref, headers: &HeaderMap, get: Get) -> Option<Response> {
    let basic = basic_credentials(headers);
    // A wrong Basic secret gets 400 and no WWW-Authenticate (O21 3.2.4 wants 401 and one).
    if s.fault("cc-ext-secret-basic")
        && let Some((id, secret)) = &basic
    {
        let known = s.client(id).and_then(|c| {
            c.get("client_secret")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if known.as_deref() != Some(secret.as_str()) {
            return Some(token_error(
                s,
                400,
                "invalid_client",
                "client authentication failed",
            ));
        }
    }
    // A confidential client is served on its client_id: no secret, or any secret.
    if s.fault("cc-auth-required") && get("client_assertion").is_none() {
        let id = basic.map(|(i, _)| i).or_else(|| get("client_id"))?;
        let client = s.client(&id)?;
        if client
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            != Some("none")
        {
            return Some(grant(s, &id, false, get));
        }
    }
    // Client assertions are checked for their signature only.
    if s.fault("cc-jwt-assertion")
        && let Some(jwt) = get("client_assertion")
    {
        return Some(match verify(s, &jwt, true) {
            Ok((id, _)) => grant(s, &id, false, get),
            Err(why) => token_error(s, 401, "invalid_client", &why),
        });
    }
    None
}
