//! PKCE (O21 4.1.1, 4.1.3; RFC 7636): the rules that depend on what the AS advertises or on
//! what a code reveals.

use serde_json::Value;

use crate::step::authorize::Authorization;
use crate::step::{CaseCtx, StepResult, Stop};
use crate::step::{authorize, token};

fn advertises_plain(ctx: &CaseCtx<'_>) -> bool {
    ctx.discovery("asm")
        .ok()
        .and_then(|d| d.doc())
        .and_then(|d| d.get("code_challenge_methods_supported").cloned())
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|a| a.iter().any(|m| m == "plain"))
}

/// `pkce-plain-rejected`: `plain` must be refused unless advertised; MCP servers should refuse
/// it anyway (a tolerated deviation when advertised).
pub fn plain(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = authorize::authorization(ctx, on)?.clone();
    let plain = advertises_plain(ctx);
    // O21 4.1.2.1: an unsupported method gets "the authorization error response with error
    // value set to invalid_request" (as pkce-unknown-method judges it); an error page is
    // code-error-redirect's matter, not this one's.
    let error = a
        .callback
        .as_ref()
        .and_then(|c| c.get("error"))
        .map(str::to_string);
    if a.code().is_none()
        && !plain
        && let Some(e) = error.filter(|e| e != "invalid_request")
    {
        return ctx.fail(format!(
            "code_challenge_method=plain (not advertised) was refused with error={e}, not invalid_request"
        ));
    }
    if a.code().is_none() {
        ctx.pass(format!(
            "code_challenge_method=plain was refused: the AS {}",
            a.describe()
        ));
        return Ok(());
    }
    if plain {
        ctx.warn(
            "the AS accepts code_challenge_method=plain (it advertises it; MCP clients must use S256 and MCP-focused servers should refuse plain)",
        );
        Ok(())
    } else {
        ctx.fail("the AS issued a code for code_challenge_method=plain although code_challenge_methods_supported does not list plain")
    }
}

/// `pkce-method-default-plain`: a challenge without a method means `plain` (O21 4.1.1:
/// "defaults to `plain` if not present in the request"). Judged by behaviour, not by what the
/// metadata lists: a refusal is conforming (an AS without plain refuses it), and a code is
/// conforming only if verifier == challenge redeems it (plain). Whether the metadata tells
/// the truth about plain is asm-pkce-advertised's requirement, noted here only.
pub async fn default_method(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = authorize::authorization(ctx, on)?.clone();
    if a.code().is_none() {
        ctx.pass(format!(
            "a code_challenge without code_challenge_method (= plain) was refused: the AS {}",
            a.describe()
        ));
        return Ok(());
    }
    if !advertises_plain(ctx) {
        ctx.note(
            "the AS issued a code for a challenge without a method although its metadata does not list plain: trying verifier == challenge to see how it treated the challenge",
        );
    }
    let challenge = a.param("code_challenge").unwrap_or("").to_string();
    let params = [("code_verifier".to_string(), challenge)]
        .into_iter()
        .collect();
    let saved = token::token(ctx, &token::redeeming(on, params)).await?;
    let ok = saved.response().is_some_and(|(_, r)| r.status == 200);
    if ok {
        ctx.pass("the challenge was treated as plain: verifier == challenge redeemed the code");
        Ok(())
    } else {
        ctx.fail("a challenge without a method was not treated as plain: verifier == challenge was refused (the AS treated it as S256, or as something else)")
    }
}

/// The payload of a three-part token as text, when it is one.
fn jwt_payload(s: &str) -> Option<String> {
    String::from_utf8(super::tokens::jwt_payload(s)?).ok()
}

/// `pkce-challenge-not-leaked`: neither the callback nor a readable code carries the challenge.
pub fn not_leaked(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a: Authorization = authorize::authorization(ctx, on)?.clone();
    let (Some(challenge), Some(cb)) = (a.challenge.clone(), a.callback.clone()) else {
        return Err(Stop::Error(
            "no callback with a challenge to inspect".into(),
        ));
    };
    for (k, v) in cb.query.iter().chain(cb.fragment.iter()) {
        if v.contains(&challenge) {
            return ctx.fail(format!(
                "the callback parameter {k} carries the code_challenge"
            ));
        }
        if let Some(p) = jwt_payload(v) {
            if p.contains(&challenge) {
                return ctx.fail(format!(
                    "the {k} is an unencrypted JWT whose payload holds the code_challenge"
                ));
            }
            ctx.note(format!(
                "the {k} is a readable JWT; it does not hold the challenge"
            ));
        }
    }
    ctx.pass("the challenge is not readable from the authorization response");
    Ok(())
}

/// Reads `expires_in` or, for a JWT, `exp - iat` of an access token response.
pub fn lifetime(doc: &Value) -> Option<i64> {
    if let Some(n) = doc.get("expires_in").and_then(Value::as_i64) {
        return Some(n);
    }
    let at = doc.get("access_token")?.as_str()?;
    let p: Value = serde_json::from_str(&jwt_payload(at)?).ok()?;
    Some(p.get("exp")?.as_i64()? - p.get("iat")?.as_i64()?)
}
