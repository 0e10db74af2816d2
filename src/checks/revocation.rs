//! Area 10, revocation (RFC 7009) and introspection (RFC 7662). An access token whose
//! revocation the AS accepted is refused at the MCP server (RFC 7009 §2), revoking it may or
//! may not end its grant's refresh token (§2.1), an AS that does not revoke access tokens says
//! `unsupported_token_type` (§2.2.1), revoking a refresh token ends its grant's access tokens
//! (§2.1), and an introspection names the MCP server in `aud` (RFC 7662 §2.2).

use std::collections::BTreeMap;

use serde_json::Value;

use super::tokens::{
    aud_names, endpoint_request, introspect, jwt_claims, jwt_parts, oauth_error, refresh,
    saved_access_token, saved_refresh_token, saved_response,
};
use crate::http::Response;
use crate::step::{CaseCtx, StepResult, Stop};

/// A revocation request (RFC 7009 §2.1) for `token`, with its `token_type_hint`.
async fn revoke(ctx: &mut CaseCtx<'_>, token: &str, hint: &str) -> Result<Response, Stop> {
    let p = BTreeMap::from([
        ("token".to_string(), token.to_string()),
        ("token_type_hint".to_string(), hint.to_string()),
    ]);
    endpoint_request(ctx, "revocation", "", &p).await
}

/// `rev-at`: after the AS accepted the revocation of an access token, the MCP server refuses
/// it (RFC 7009 §2). A self-contained JWT the RS checks only locally may live on until `exp`:
/// reported as a warning (the row grades it INFO).
pub async fn revoked_access_at_resource(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = saved_access_token(ctx, on)?;
    let r = revoke(ctx, &at, "access_token").await?;
    match (r.status, oauth_error(&r).as_deref()) {
        (200, _) => {}
        (_, Some("unsupported_token_type")) => {
            return Err(Stop::Skip(
                "the AS does not revoke access tokens (unsupported_token_type, RFC 7009 §2.2.1)"
                    .into(),
            ));
        }
        (s, e) => {
            return Err(Stop::Error(format!(
                "the revocation answered {s} error={e:?}: no revoked access token to try (see rev-unsupported-type)"
            )));
        }
    }
    let resource = ctx
        .env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint to try the token at".into()))?;
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &at,
        "the revoked access token at the MCP endpoint",
    )
    .await?;
    match r.status {
        401 => {
            ctx.pass("the MCP server refuses the revoked access token (401)");
            Ok(())
        }
        s if s < 300 && jwt_claims(&at).is_some() => {
            ctx.warn(format!(
                "the revoked access token still works ({s}): a self-contained JWT the MCP server checks locally, valid until its exp"
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the revoked (opaque) access token still works at the MCP server ({s})"
        )),
        s => Err(Stop::Error(format!(
            "the MCP endpoint answered {s}, neither accepting nor refusing the token"
        ))),
    }
}

/// `rev-at-cascades-rt`: revoking an access token may or may not revoke the refresh token of the
/// same grant (RFC 7009 §2.1); either is conforming and the result says which. A server error
/// or an unexplained refusal is not.
pub async fn access_revocation_cascade(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let rt = saved_refresh_token(ctx, on)?;
    let at = saved_access_token(ctx, on)?;
    let r = revoke(ctx, &at, "access_token").await?;
    match (r.status, oauth_error(&r).as_deref()) {
        (200, _) => {}
        (400, Some("unsupported_token_type")) => {
            return Err(Stop::Skip(
                "the AS does not revoke access tokens (unsupported_token_type): nothing can cascade"
                    .into(),
            ));
        }
        (s, e) => {
            return ctx.fail(format!(
                "revoking an access token answered {s} error={e:?} (RFC 7009 §2.2: 200, or unsupported_token_type)"
            ));
        }
    }
    let r = refresh(ctx, &rt, &[]).await?;
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_grant"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass("revoking the access token revoked the refresh token of its grant too (RFC 7009 §2.1 allows either)");
        return Ok(());
    }
    match (r.status, oauth_error(&r).as_deref()) {
        (200, _) => {
            ctx.pass("revoking the access token left the refresh token of its grant working (RFC 7009 §2.1 allows either)");
            Ok(())
        }
        (s, e) => ctx.fail(format!(
            "after the access token was revoked, the refresh answered {s} error={e:?}: neither working nor invalid_grant"
        )),
    }
}

/// `rev-unsupported-type`: an AS asked to revoke an access token either revokes it (200, and
/// the token is then inactive) or says `unsupported_token_type` (RFC 7009 §2.2.1); a 200 with
/// no effect, or another error, is the violation.
pub async fn access_revocation_answer(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = saved_access_token(ctx, on)?;
    let r = revoke(ctx, &at, "access_token").await?;
    let e = oauth_error(&r);
    match (r.status, e.as_deref()) {
        (400, Some("unsupported_token_type")) => {
            ctx.pass("the AS says it does not revoke access tokens: unsupported_token_type");
            return Ok(());
        }
        (200, _) => {}
        (s, e) => {
            return ctx.fail(format!(
                "revoking an access token answered {s} error={e:?}: an AS that does not revoke this type answers unsupported_token_type (RFC 7009 §2.2.1)"
            ));
        }
    }
    // 200: was it revoked?
    if let Some(d) = introspect(ctx, &at).await? {
        return match d.get("active") {
            Some(Value::Bool(false)) => {
                ctx.pass("the AS revoked the access token (200, then introspected as inactive)");
                Ok(())
            }
            _ => ctx.fail(
                "the AS answered 200 but the access token is still active: an AS that cannot revoke it must say unsupported_token_type",
            ),
        };
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no introspection and no MCP endpoint to see whether the revocation took effect".into(),
        ));
    };
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &at,
        "the access token after its revocation was accepted",
    )
    .await?;
    match r.status {
        401 => {
            ctx.pass("the AS revoked the access token (200, then refused at the MCP server)");
            Ok(())
        }
        s if s < 300 && jwt_claims(&at).is_some() => {
            ctx.warn(format!(
                "the AS answered 200 and the JWT access token still works ({s}): either the MCP server checks JWTs locally or the revocation had no effect"
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the AS answered 200 but the access token still works ({s}): a silent no-op, where unsupported_token_type is due"
        )),
        s => Err(Stop::Error(format!("the MCP endpoint answered {s}"))),
    }
}

/// `intro-aud-present`: the introspection of an MCP access token names the MCP server in
/// `aud` (a string or an array), so a resource server that introspects can check audience.
pub fn introspection_aud(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = saved_response(ctx, on)?;
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "the introspection answered {}: nothing to read",
            r.status
        )));
    }
    let doc = r.json().unwrap_or_default();
    if doc.get("active") != Some(&Value::Bool(true)) {
        return Err(Stop::Error(
            "the token was not reported active: its audience cannot be read".into(),
        ));
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint known to look for in aud".into(),
        ));
    };
    let Some(aud) = doc.get("aud").filter(|a| a.is_string() || a.is_array()) else {
        return ctx.fail(format!(
            "the introspection response has no aud, so a resource server cannot tell that the token is meant for {resource}"
        ));
    };
    if aud_names(aud, &resource) {
        ctx.pass(format!("aud names {resource}"));
        Ok(())
    } else {
        ctx.fail(format!("aud is {aud}, which does not name {resource}"))
    }
}

/// `rev-rt-cascades`: after the refresh token is revoked, the access token of the same grant
/// stops working at the MCP endpoint too. A self-contained JWT access token may live on until
/// it expires: a warning, not a failure (RFC 7009 §2.1 lets such tokens be).
pub async fn revoked_grant_at_resource(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = saved_access_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint to try the access token at".into(),
        ));
    };
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &at,
        "the access token of the revoked grant at the MCP endpoint",
    )
    .await?;
    let jwt = jwt_parts(&at).is_some();
    match r.status {
        401 => {
            ctx.pass("the access token of the revoked grant is refused (401)");
            Ok(())
        }
        s if s < 300 && jwt => {
            ctx.warn(format!(
                "the access token of the revoked grant still works ({s}); it is a self-contained JWT, valid until it expires"
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the access token of the revoked grant still works ({s})"
        )),
        s => Err(Stop::Error(format!(
            "the MCP endpoint answered {s}, neither accepting nor refusing the token"
        ))),
    }
}
