//! client_credentials (O21 4.2) and the JWT bearer grant (RFC 7523 §2.1): whether the AS offers
//! the grant at all, and what audience a machine client's access token carries (RFC 8707 §2).

use std::collections::BTreeMap;

use serde_json::Value;

use super::tokens::{aud_names, jwt_claims, saved_access_token};
use crate::case::model::TokenStep;
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{discovery, token};

/// `cc-*`: the AS lists the grant (`args.grant`, default `client_credentials`) in
/// `grant_types_supported` (RFC 8414 §2), else the case is skipped: the grant is optional. The
/// metadata is saved as `asm` for later templates.
pub async fn supported(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let grant = match args.get("grant") {
        Some(toml::Value::String(g)) => g.clone(),
        Some(other) => return Err(Stop::Error(format!("args.grant {other} is not a string"))),
        None => "client_credentials".to_string(),
    };
    let doc = discovery::shared_as_doc(ctx).await?;
    match doc.get("grant_types_supported") {
        Some(Value::Array(a)) if a.iter().any(|g| g.as_str() == Some(grant.as_str())) => {
            ctx.note(format!("grant_types_supported lists {grant}"));
            Ok(())
        }
        Some(Value::Array(a)) => Err(Stop::Skip(format!(
            "the AS does not offer {grant}: grant_types_supported is {}",
            Value::Array(a.clone())
        ))),
        _ => Err(Stop::Skip(format!(
            "the AS metadata has no grant_types_supported list, so {grant} is not offered (RFC 8414 §2 default: authorization_code, implicit)"
        ))),
    }
}

/// `cc-resource-aud`, `as-resource-bound`: the access token of a request that named
/// `resource` = the MCP endpoint has that endpoint as its audience (RFC 8707 §2). A JWT's `aud`
/// is read from its payload; an opaque token's from the AS's introspection (RFC 7662 §2.2),
/// when it has one; otherwise the audience cannot be seen and the case is skipped.
pub async fn token_audience(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = saved_access_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint known to look for in aud".into(),
        ));
    };
    if let Some(claims) = jwt_claims(&at) {
        return match claims.get("aud") {
            Some(aud) if aud_names(aud, &resource) => {
                ctx.pass(format!("the JWT access token's aud {aud} names {resource}"));
                Ok(())
            }
            Some(aud) => ctx.fail(format!(
                "the JWT access token's aud is {aud}, which does not name {resource}: the token is not bound to the MCP server it was requested for"
            )),
            None => ctx.fail(format!(
                "the JWT access token has no aud claim: it is bound to no resource, though it was requested for {resource}"
            )),
        };
    }
    ctx.note("the access token is not a JWT: asking the introspection endpoint for its audience");
    let saved = token::token(
        ctx,
        &TokenStep {
            grant_type: String::new(),
            endpoint: Some("introspection".into()),
            params: BTreeMap::from([("token".to_string(), at)]),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| match e {
        Stop::Skip(why) => Stop::Skip(format!(
            "the access token is opaque and its audience cannot be seen: {why}"
        )),
        other => other,
    })?;
    ctx.saved.insert("cc_introspection".into(), saved);
    super::revocation::introspection_aud(ctx, "cc_introspection")
}

/// `cc-scope`: a client_credentials request for a scope the client may not have (`args.scope`,
/// a template: unknown, or beyond its registration) gets `invalid_scope` (O21 3.2.4). A token
/// whose `scope` member leaves that scope out is a tolerated deviation (RFC 6749 §3.3 lets the
/// AS grant less than asked, saying so); a token without `scope`, or with it, was granted.
/// With `args.narrowing = "pass"` (cc-scope.beyond-registration) the case is judged by its
/// sentence: the narrowed token passes (O21 1.4.1 MAY), and any refusal passes, its shape noted
/// for tok-error-format.
pub fn scope_refused(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let Some(toml::Value::String(t)) = args.get("scope") else {
        return Err(Stop::Error("cc_scope_refused needs args.scope".into()));
    };
    let asked = ctx.expand(t).map_err(Stop::Error)?;
    // `narrowing = "pass"`: judged by the sentence (O21 1.4.1: the AS MAY ignore a requested
    // scope and say so in the scope member; a refusal's shape is tok-error-format's).
    let by_sentence = matches!(args.get("narrowing"), Some(toml::Value::String(v)) if v == "pass");
    let Some((_, r)) = ctx.saved.get(on).and_then(Saved::response) else {
        return Err(Stop::Error(format!("nothing saved as `{on}`")));
    };
    let r = r.clone();
    let (status, doc) = (r.status, r.json().unwrap_or_default());
    let error = doc.get("error").and_then(Value::as_str).unwrap_or("");
    if by_sentence && let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_scope"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "scope {asked:?} was refused ({status}), nothing issued"
        ));
        return Ok(());
    }
    if status != 200 {
        return if status == 400 && error == "invalid_scope" {
            ctx.pass(format!(
                "scope {asked:?} was refused with 400 invalid_scope"
            ));
            Ok(())
        } else {
            ctx.fail(format!(
                "scope {asked:?} was refused with {status} error={error:?}, not 400 invalid_scope"
            ))
        };
    }
    match doc.get("scope").and_then(Value::as_str) {
        Some(sc) if by_sentence && !sc.split(' ').any(|x| x == asked) => {
            ctx.pass(format!(
                "scope {asked:?} was left out: the token's scope is {sc:?} (O21 1.4.1: the AS MAY ignore a requested scope)"
            ));
            Ok(())
        }
        Some(sc) if !sc.split(' ').any(|x| x == asked) => {
            ctx.warn(format!(
                "scope {asked:?} got a token with the narrower scope {sc:?} instead of invalid_scope"
            ));
            Ok(())
        }
        Some(sc) => ctx.fail(format!(
            "scope {asked:?} was granted: the token's scope is {sc:?}"
        )),
        None => ctx.fail(format!(
            "scope {asked:?} was granted: the token response has no scope member, so the scope asked for is the scope granted (RFC 6749 §5.1)"
        )),
    }
}
