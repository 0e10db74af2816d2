//! The tokens a case holds, for the checks of every area: reading a saved token response and
//! its tokens (RFC 6749 §5.1), what a JWT says of itself (RFC 7515 §7.1, RFC 7519 §4.1.3
//! `aud`), getting tokens (the test user's approved authorization and its redemption), and
//! asking the AS about a token with the client's own authentication: a refresh (RFC 6749 §6)
//! or an introspection (RFC 7662 §2.1). Nothing here judges: the checks do.

use std::collections::BTreeMap;

use serde_json::Value;

// The pure readers live in the member crate (the fuzz targets exercise them there).
use authconform_core::tokens::{access_token_of, refresh_token_of};
pub use authconform_core::tokens::{
    aud_names, jwt_claims, jwt_object, jwt_parts, jwt_payload, oauth_error, str_member,
};

use crate::case::model::{AuthorizeStep, ClientKind, TokenStep};
use crate::http::Response;
use crate::step::{CaseCtx, Saved, Stop};
use crate::step::{authorize, client, discovery, token};

/// A second resource server, for the binding probes (the reference registers it; other servers
/// do not know it).
pub const OTHER_RESOURCE: &str = "https://other.authconform.test/mcp";

// ---------------------------------------------------------------------------------------------
// Saved token responses

/// A token endpoint answer that is a rate limit says nothing about the requirement: the suite
/// could not tell (`errored`). `what` names the request in the message.
pub fn not_rate_limited(r: &Response, what: &str) -> Result<(), Stop> {
    match r.rate_limited() {
        Some(limit) => Err(Stop::Error(format!(
            "the token endpoint rate-limited {what} ({limit})"
        ))),
        None => Ok(()),
    }
}

pub fn saved_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => Ok(r.clone()),
        None => Err(Stop::Error(format!("nothing saved as `{on}`"))),
    }
}

/// The JSON of a successful token response saved as `on`.
pub fn token_doc(ctx: &CaseCtx<'_>, on: &str) -> Result<Value, Stop> {
    authconform_core::tokens::token_doc_of(&saved_response(ctx, on)?)
}

/// The `access_token` of the successful token response saved as `on`, while it lives: a
/// check presents it, and a token past its `expires_in` makes the case `errored`, not judged
/// on a refusal that its age explains.
pub fn saved_access_token(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    let token = access_token_of(&token_doc(ctx, on)?, on)?;
    match ctx.outlived(on) {
        Some(why) => Err(Stop::Error(why)),
        None => Ok(token),
    }
}

/// The `refresh_token` of the successful token response saved as `on`; without one the case is
/// skipped (an AS need not issue refresh tokens, RFC 6749 §5.1).
pub fn saved_refresh_token(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    refresh_token_of(&token_doc(ctx, on)?)
}

// ---------------------------------------------------------------------------------------------
// What a JWT says of itself (nothing verified)

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
