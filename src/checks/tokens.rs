//! The tokens a case holds, for the checks of every area: reading a saved token response and
//! its tokens (RFC 6749 §5.1), what a JWT says of itself (RFC 7515 §7.1, RFC 7519 §4.1.3
//! `aud`), getting tokens (the test user's approved authorization and its redemption), and
//! asking the AS about a token with the client's own authentication: a refresh (RFC 6749 §6)
//! or an introspection (RFC 7662 §2.1). Nothing here judges: the checks do.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::case::model::{AuthorizeStep, ClientKind, TokenStep};
use crate::http::Response;
use crate::step::{CaseCtx, Saved, Stop};
use crate::step::{authorize, client, discovery, token};

/// A second resource server, for the binding probes (the reference registers it; other servers
/// do not know it).
pub const OTHER_RESOURCE: &str = "https://other.authconform.test/mcp";

// ---------------------------------------------------------------------------------------------
// Saved token responses

pub fn saved_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => Ok(r.clone()),
        None => Err(Stop::Error(format!("nothing saved as `{on}`"))),
    }
}

/// The JSON of a successful token response saved as `on`.
pub fn token_doc(ctx: &CaseCtx<'_>, on: &str) -> Result<Value, Stop> {
    let r = saved_response(ctx, on)?;
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "the token request answered {}: no tokens to work with",
            r.status
        )));
    }
    r.json()
        .ok_or_else(|| Stop::Error("the token response is not JSON".into()))
}

/// The `access_token` of the successful token response saved as `on`.
pub fn saved_access_token(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    str_member(&token_doc(ctx, on)?, "access_token")
        .ok_or_else(|| Stop::Error(format!("`{on}` holds no access token")))
}

/// The `refresh_token` of the successful token response saved as `on`; without one the case is
/// skipped (an AS need not issue refresh tokens, RFC 6749 §5.1).
pub fn saved_refresh_token(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    str_member(&token_doc(ctx, on)?, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))
}

pub fn str_member(doc: &Value, k: &str) -> Option<String> {
    doc.get(k).and_then(Value::as_str).map(str::to_string)
}

pub fn oauth_error(r: &Response) -> Option<String> {
    r.json().and_then(|d| str_member(&d, "error"))
}

// ---------------------------------------------------------------------------------------------
// What a JWT says of itself (nothing verified)

/// The three parts of a JWS compact serialization (RFC 7515 §7.1), when the string has three.
pub fn jwt_parts(token: &str) -> Option<[&str; 3]> {
    token.split('.').collect::<Vec<_>>().try_into().ok()
}

/// One base64url part of a JWT, decoded (trailing `=` padding tolerated).
fn b64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// The decoded payload of a three-part token, whatever it holds.
pub fn jwt_payload(token: &str) -> Option<Vec<u8>> {
    let [_, payload, _] = jwt_parts(token)?;
    b64url(payload)
}

/// One part of a JWT (header or payload) as the JSON object it encodes.
pub fn jwt_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64url(part)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The claims of a JWT (a JSON header naming an `alg`, and a JSON payload), or `None` for an
/// opaque token. Nothing is verified: only what the token says of itself is read, and reading
/// the audience needs no trust.
pub fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let [header, payload, _] = jwt_parts(token)?;
    jwt_object(header)?.get("alg")?.as_str()?;
    jwt_object(payload)
}

/// Does `aud` (a string or an array, RFC 7519 §4.1.3) name the resource?
pub fn aud_names(aud: &Value, resource: &str) -> bool {
    match aud {
        Value::String(a) => a == resource,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(resource)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Getting tokens, and asking the AS about them

/// A request to the token, revocation or introspection endpoint with the client's own
/// authentication and nothing taken from an authorization.
pub async fn endpoint_request(
    ctx: &mut CaseCtx<'_>,
    endpoint: &str,
    grant_type: &str,
    params: &BTreeMap<String, String>,
) -> Result<Response, Stop> {
    let saved = token::token(
        ctx,
        &TokenStep {
            grant_type: grant_type.to_string(),
            endpoint: Some(endpoint.to_string()),
            params: params.clone(),
            ..Default::default()
        },
    )
    .await?;
    saved
        .response()
        .map(|(_, r)| r.clone())
        .ok_or_else(|| Stop::Error("no response".into()))
}

/// A refresh (RFC 6749 §6) with the refresh token `rt` and the `extra` parameters.
pub async fn refresh(
    ctx: &mut CaseCtx<'_>,
    rt: &str,
    extra: &[(&str, &str)],
) -> Result<Response, Stop> {
    let mut p = BTreeMap::from([("refresh_token".to_string(), rt.to_string())]);
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    endpoint_request(ctx, "token", "refresh_token", &p).await
}

/// Introspects a token (RFC 7662 §2.1) when the AS offers introspection and the case's client
/// can authenticate; `None` when it cannot be asked.
pub async fn introspect(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Option<Value>, Stop> {
    if discovery::as_endpoint(ctx, "introspection_endpoint")
        .await
        .is_err()
    {
        return Ok(None);
    }
    if client::named(ctx, "client")?.kind != ClientKind::Confidential {
        return Ok(None);
    }
    let p = BTreeMap::from([("token".to_string(), token.to_string())]);
    let r = endpoint_request(ctx, "introspection", "", &p).await?;
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "the introspection answered {}: the token's claims cannot be read",
            r.status
        )));
    }
    Ok(r.json())
}

/// What the token says of itself, for a JWT, else what introspection says of an active token.
pub async fn token_claims(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Value, Stop> {
    if let Some(c) = jwt_claims(token) {
        return Ok(Value::Object(c));
    }
    match introspect(ctx, token).await? {
        Some(d) if d.get("active") == Some(&Value::Bool(true)) => Ok(d),
        Some(_) => Err(Stop::Error(
            "the new access token is not reported active: its claims cannot be read".into(),
        )),
        None => Err(Stop::Skip(
            "the access token is opaque and cannot be introspected (no introspection_endpoint, or the case's client is public): its audience and scope cannot be read".into(),
        )),
    }
}

/// The test user's approved authorization of the case's client, with these parameters, in the
/// browser session `session` (the authorizations that name one share its login).
pub async fn user_authorization(
    ctx: &mut CaseCtx<'_>,
    params: &BTreeMap<String, String>,
    omit: &[String],
    session: Option<&str>,
) -> Result<authorize::Authorization, Stop> {
    authorize::authorize(
        ctx,
        &AuthorizeStep {
            params: params.clone(),
            omit: omit.to_vec(),
            session: session.map(str::to_string),
            ..Default::default()
        },
    )
    .await
}

/// An authorization with this scope, and, when it brings a code, its redemption.
pub async fn scoped_grant(
    ctx: &mut CaseCtx<'_>,
    scope: Option<&str>,
    omit: &[String],
) -> Result<(authorize::Authorization, Option<Response>), Stop> {
    let params: BTreeMap<String, String> = scope
        .map(|s| BTreeMap::from([("scope".to_string(), s.to_string())]))
        .unwrap_or_default();
    let mut omit = omit.to_vec();
    if scope.is_none() {
        omit.push("scope".into());
    }
    let a = user_authorization(ctx, &params, &omit, Some("lifecycle")).await?;
    if a.code().is_none() {
        return Ok((a, None));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a.clone())));
    let none = BTreeMap::new();
    let saved = token::token(ctx, &token::redeeming("auth", none)).await?;
    let r = saved.response().map(|(_, r)| r.clone());
    Ok((a, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aud_from_a_jws_payload_only() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"ES256"}"#),
            enc(r#"{"aud":["https://a.test/mcp","x"]}"#)
        );
        let claims = jwt_claims(&jwt).expect("a JWT");
        assert!(aud_names(&claims["aud"], "https://a.test/mcp"));
        assert!(!aud_names(&claims["aud"], "https://a.test/"));
        assert!(aud_names(&Value::String("r".into()), "r"));
        // Opaque tokens, and three parts that are not a JWS, are not JWTs.
        assert!(jwt_claims("abc_DEF-123").is_none());
        assert!(jwt_claims("a.b.c").is_none());
        assert!(jwt_claims(&format!("{}.{}.s", enc("{}"), enc("{}"))).is_none());
    }
}
