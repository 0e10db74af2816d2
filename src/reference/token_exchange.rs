//! OAuth 2.0 Token Exchange (RFC 8693) at the reference token endpoint: a confidential client
//! registered for the grant trades an access token this AS issued (the subject token) for a new
//! one, optionally naming an actor (the actor token, also one of this AS's access tokens).
//!
//! - §2.1 request validation: `subject_token` and `subject_token_type` are required, a type is
//!   one of §3's identifiers, `actor_token` and `actor_token_type` come together; any invalid
//!   request or token is `invalid_request` (§2.2.2).
//! - The subject and actor tokens must be this AS's own, active, unrevoked and unexpired (§2.1:
//!   "the appropriate validation procedures for the indicated token type").
//! - Delegation: the issued token carries `act` naming the actor (§4.1), nested when the subject
//!   token already had one (a chain). `may_act` in the subject token (§4.4) limits who may act.
//! - `resource`/`audience` must name a resource this AS issues tokens for, else `invalid_target`
//!   (§2.2.2); the scope is never wider than the subject token's (`invalid_scope`).
//! - The response carries `issued_token_type` (§2.2.1).
//!
//! Policy of this server for `may_act`: a user's access token issued to a client registered
//! for token exchange says that this client may act for the user (`may_act: {"sub": client}`),
//! so an actor token of any other party is refused.
//!
//! Independent of the checks: nothing here is shared with `src/checks/token_exchange.rs`.

use std::time::Instant;

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::Ref;
use super::store::{ACCESS_TTL_SECS, TokenGrant};
use super::token::token_error;

/// RFC 8693 §2.1: the grant type.
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the token type identifiers.
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const KNOWN_TYPES: [&str; 6] = [
    ACCESS_TOKEN,
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    JWT,
];
/// The second resource this AS knows (see `authorize::known_resource`).
const OTHER_RESOURCE: &str = "https://other.authconform.test/mcp";

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

fn invalid_request(s: &Ref, why: &str) -> Response {
    token_error(s, 400, "invalid_request", why)
}

/// The grant types a client registered (RFC 7591 §2: `authorization_code` when omitted).
fn registered_for_exchange(client: &Value) -> bool {
    client
        .get("grant_types")
        .and_then(Value::as_array)
        .is_some_and(|g| g.iter().any(|x| x.as_str() == Some(GRANT)))
}

/// The claims of a JWT payload, unverified: only called on tokens found in the AS's own store.
fn payload(token: &str) -> Option<Value> {
    let p = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

/// A token presented for exchange, as this AS knows it.
struct Presented {
    grant: TokenGrant,
    /// Who it stands for (`sub`): the user, or a machine client itself.
    sub: String,
    /// Its own claims when it is a JWT (`act`, `may_act`).
    claims: Option<Value>,
}

/// Validates a subject or actor token (§2.1): an access token of this AS, active and
/// unexpired. `what` names it in errors. The faults of tx-invalid-subject* let one kind of bad
/// subject token through.
fn validate(s: &Ref, token: &str, kind: &str, what: &str) -> Result<Presented, Box<Response>> {
    // The tx-required-params fault takes any type for an access token.
    let lax = what == "subject_token" && s.fault("tx-required-params");
    if !(KNOWN_TYPES.contains(&kind) || lax) {
        return Err(Box::new(invalid_request(
            s,
            &format!("unknown {what}_type"),
        )));
    }
    if kind != ACCESS_TOKEN && kind != JWT && !lax {
        return Err(Box::new(invalid_request(
            s,
            &format!("this server exchanges access tokens only ({what}_type)"),
        )));
    }
    let found = s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .access
        .get(token)
        .cloned();
    let subject = what == "subject_token";
    let Some(g) = found else {
        // A token of another issuer, taken on its own word (tx-invalid-subject's fault).
        if subject && s.fault("tx-invalid-subject") {
            let c = payload(token).unwrap_or_default();
            let sub = c.get("sub").and_then(Value::as_str).unwrap_or("unknown");
            let mut g = TokenGrant::new(String::new(), None, None);
            g.user = Some(sub.to_string());
            g.scope = c.get("scope").and_then(Value::as_str).map(str::to_string);
            return Ok(Presented {
                sub: sub.to_string(),
                grant: g,
                claims: None,
            });
        }
        return Err(Box::new(invalid_request(
            s,
            &format!("the {what} is not a token of this server"),
        )));
    };
    let revoked_ok = subject && s.fault("tx-invalid-subject.revoked");
    if !(g.active || revoked_ok) {
        return Err(Box::new(invalid_request(
            s,
            &format!("the {what} was revoked"),
        )));
    }
    let expired_ok = subject && s.fault("tx-invalid-subject.expired");
    if g.expires <= Instant::now() && !expired_ok {
        return Err(Box::new(invalid_request(
            s,
            &format!("the {what} has expired"),
        )));
    }
    let claims = payload(token);
    // RFC 9068 §2.2 as jwt.rs writes it: a machine token's subject is its client.
    let sub = claims
        .as_ref()
        .and_then(|c| c.get("sub").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            if g.machine {
                g.client_id.clone()
            } else {
                g.user.clone().unwrap_or_else(|| s.username.clone())
            }
        });
    Ok(Presented {
        grant: g,
        sub,
        claims,
    })
}

/// The audience of the issued token: `resource` (RFC 8707) or `audience` (§2.1), each a
/// resource this AS issues tokens for; neither: the subject token's own.
fn target(s: &Ref, get: Get, subject: &TokenGrant) -> Result<Option<String>, Box<Response>> {
    let asked = get("resource").or_else(|| get("audience"));
    let Some(t) = asked else {
        return Ok(subject.resource.clone());
    };
    let c = super::authorize::canonical_resource(&t);
    if c == super::authorize::canonical_resource(&s.resource) {
        return Ok(Some(s.resource.clone()));
    }
    if c == OTHER_RESOURCE || s.fault("tx-target") {
        return Ok(Some(t));
    }
    Err(Box::new(token_error(
        s,
        400,
        "invalid_target",
        "this server issues no token for that resource or audience",
    )))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` from an authenticated client.
pub fn grant(s: &Ref, client_id: &str, public: bool, get: Get) -> Response {
    if !s.offer.token_exchange {
        return token_error(s, 400, "unsupported_grant_type", "unsupported grant_type");
    }
    // Token exchange is for clients that authenticate: a public client could launder any
    // token it got hold of (RFC 8693 §2.1, "omitting client authentication...").
    if public {
        return token_error(
            s,
            400,
            "unauthorized_client",
            "token exchange is for confidential clients",
        );
    }
    match s.client(client_id) {
        Some(c) if registered_for_exchange(&c) => {}
        _ => {
            return token_error(
                s,
                400,
                "unauthorized_client",
                "the client is not registered for token exchange",
            );
        }
    }
    let lax_params = s.fault("tx-required-params");
    let Some(subject_token) = get("subject_token") else {
        if lax_params {
            return super::json(500, json!({ "error": "server_error" }));
        }
        return invalid_request(s, "subject_token is required");
    };
    let subject_type = match get("subject_token_type") {
        Some(t) => t,
        None if lax_params => ACCESS_TOKEN.to_string(),
        None => return invalid_request(s, "subject_token_type is required"),
    };
    // §2.1: actor_token_type is REQUIRED with actor_token and MUST NOT come without it.
    let actor = match (get("actor_token"), get("actor_token_type")) {
        (Some(t), Some(k)) => Some((t, k)),
        (Some(t), None) if s.fault("tx-actor-type-pairing") => Some((t, ACCESS_TOKEN.into())),
        (None, Some(_)) if s.fault("tx-actor-type-pairing") => None,
        (None, None) => None,
        _ => {
            return invalid_request(s, "actor_token and actor_token_type must be sent together");
        }
    };
    let subject = match validate(s, &subject_token, &subject_type, "subject_token") {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let actor = match actor {
        Some((t, k)) => match validate(s, &t, &k, "actor_token") {
            Ok(p) => Some(p),
            Err(r) => return *r,
        },
        None => None,
    };
    // §4.4: the subject token names who may act for its subject.
    if let (Some(a), Some(may)) = (
        &actor,
        subject.claims.as_ref().and_then(|c| c.get("may_act")),
    ) && may.get("sub").and_then(Value::as_str) != Some(a.sub.as_str())
        && !s.fault("tx-may-act")
    {
        return invalid_request(
            s,
            "the actor is not the party the subject token's may_act names",
        );
    }
    let audience = match target(s, get, &subject.grant) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    // The issued token never carries more than the subject token (RFC 9700 §2.3).
    let held: Vec<&str> = subject
        .grant
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|x| !x.is_empty())
        .collect();
    let scope = match get("scope") {
        Some(req) => {
            let wanted: Vec<&str> = req.split(' ').filter(|x| !x.is_empty()).collect();
            if !wanted.iter().all(|w| held.contains(w)) && !s.fault("tx-no-escalation") {
                return token_error(
                    s,
                    400,
                    "invalid_scope",
                    "the requested scope exceeds the subject token's",
                );
            }
            Some(wanted.join(" ")).filter(|x| !x.is_empty())
        }
        None => subject.grant.scope.clone(),
    };
    let mut g = TokenGrant::new(client_id.to_string(), audience.clone(), scope.clone());
    g.user = subject.grant.user.clone();
    g.machine = subject.grant.machine;
    // The issued token belongs to the subject token's grant: revoking that grant ends it too.
    if !subject.grant.family.is_empty() && !subject.grant.client_id.is_empty() {
        g.family = subject.grant.family.clone();
    }
    let token = match &audience {
        Some(aud) => {
            let mut c = super::jwt::claims(s, &g, aud, scope.as_deref(), ACCESS_TTL_SECS);
            c["sub"] = json!(subject.sub);
            if let Some(o) = c.as_object_mut() {
                // may_act speaks for the user's original grant, not for exchanged tokens.
                o.remove("may_act");
            }
            // §4.1: the current actor outermost, the subject token's actors nested inside.
            if let Some(a) = &actor
                && !s.fault("tx-act-claim")
            {
                let mut act = json!({ "sub": a.sub });
                if let Some(prior) = subject.claims.as_ref().and_then(|c| c.get("act")) {
                    act["act"] = prior.clone();
                }
                c["act"] = act;
            }
            s.signer().mint(&c)
        }
        None => super::store::random_id(32),
    };
    s.store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .new_access(token.clone(), g);
    let mut body = json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
    });
    if let Some(sc) = &scope {
        body["scope"] = json!(sc);
    }
    if s.fault("tx-response")
        && let Some(o) = body.as_object_mut()
    {
        o.remove("issued_token_type");
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("pragma", "no-cache")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap_or_default()
}

/// §4.4, this server's policy: a user's access token issued to a client registered for token
/// exchange says that client may act for the user. Called as access tokens are minted.
pub fn add_may_act(s: &Ref, g: &TokenGrant, claims: &mut Value) {
    if !s.offer.token_exchange || g.machine {
        return;
    }
    if s.client(&g.client_id)
        .is_some_and(|c| registered_for_exchange(&c))
    {
        claims["may_act"] = json!({ "sub": g.client_id });
    }
}

/// tx-mcp-rs-audience's fault: the RS takes a token for any resource its AS knows, not only
/// for itself.
pub fn any_known_audience(s: &Ref, claims: &Value) -> bool {
    s.fault("tx-mcp-rs-audience")
        && match claims.get("aud") {
            Some(Value::String(a)) => a == OTHER_RESOURCE,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(OTHER_RESOURCE)),
            _ => false,
        }
}
