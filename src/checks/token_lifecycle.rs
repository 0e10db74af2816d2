//! Area 9, the life of the tokens a grant brings: access-token lifetimes (MCP 11.2); refresh
//! tokens: no scope escalation, a narrower scope on refresh
//! and the whole grant kept by the new refresh token (O21 4.3.1, 4.3.3; RFC 6749 §6, §5.1), no
//! move to another resource (RFC 8707 §2.2; O21 3.2.3), idle expiry (O21 4.3.3); token entropy
//! (RFC 6749 §10.10). A grant the user withdraws at the AS is `grant_revocation`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::scopes::{granted, scope_set, show};
use super::tokens::{
    OTHER_RESOURCE, aud_names, jwt_claims, oauth_error, refresh, saved_refresh_token, scoped_grant,
    str_member, token_claims, token_doc,
};
use crate::case::model::TokenStep;
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{authorize, token};

// ---------------------------------------------------------------------------------------------
// Refresh tokens (O21 4.3)

/// The grant saved as `on` (its authorization saved as `auth`): its refresh token, and the scope
/// it was granted.
fn refreshable_grant(ctx: &CaseCtx<'_>, on: &str) -> Result<(String, BTreeSet<String>), Stop> {
    let rt = saved_refresh_token(ctx, on)?;
    let asked = authorize::authorization(ctx, "auth")?
        .param("scope")
        .unwrap_or("")
        .to_string();
    Ok((rt, granted(&token_doc(ctx, on)?, &asked).0))
}

/// `rt-scope-downscope`: a refresh asking for part of the grant gets an access token for that
/// part, and says so in `scope` (O21 4.3.1; RFC 6749 §6, §5.1).
pub async fn refresh_downscope(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (rt, have) = refreshable_grant(ctx, on)?;
    let Some(narrow) = have.iter().next().cloned().filter(|_| have.len() >= 2) else {
        return Err(Stop::Skip(format!(
            "the grant has one scope ({}): nothing narrower to ask for",
            show(&have)
        )));
    };
    let r = refresh(ctx, &rt, &[("scope", &narrow)]).await?;
    if r.status != 200 {
        return ctx.fail(format!(
            "a refresh asking for {narrow:?}, part of the grant ({}), was refused: {} error={:?}",
            show(&have),
            r.status,
            oauth_error(&r)
        ));
    }
    let d = r.json().unwrap_or_default();
    match str_member(&d, "scope") {
        Some(sc) if scope_set(&sc) == scope_set(&narrow) => {
            ctx.pass(format!(
                "the refresh asking for {narrow:?} got an access token whose scope is {sc:?}"
            ));
            Ok(())
        }
        Some(sc) => ctx.fail(format!(
            "a refresh asking for {narrow:?} got scope {sc:?}: the narrower request was not honoured"
        )),
        None => {
            ctx.pass(format!(
                "the refresh asking for {narrow:?} succeeded without a scope member, which means the requested scope was granted (RFC 6749 §5.1)"
            ));
            Ok(())
        }
    }
}

/// `rt-new-rt-same-scope`: after a narrowed refresh, the new refresh token still carries the
/// whole grant (O21 4.3.3: "the new refresh token ... MUST be identical to that of the refresh
/// token included by the client in the request"): refreshing it without `scope` gives the
/// original scope back.
pub async fn refresh_scope_kept(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (rt1, original) = refreshable_grant(ctx, on)?;
    let narrow = original.iter().next().cloned().unwrap_or_default();
    let mut rt = rt1.clone();
    if original.len() >= 2 {
        let r = refresh(ctx, &rt1, &[("scope", &narrow)]).await?;
        let d = r.json().unwrap_or_default();
        if r.status == 200 {
            ctx.note(format!(
                "refreshed with scope {narrow:?}: the access token got {:?}",
                str_member(&d, "scope")
            ));
            if let Some(next) = str_member(&d, "refresh_token") {
                rt = next;
            }
        } else {
            ctx.note(format!(
                "the AS does not narrow on refresh ({} error={:?}); the refresh token is followed without narrowing",
                r.status,
                oauth_error(&r)
            ));
        }
    }
    let r = refresh(ctx, &rt, &[]).await?;
    if r.status != 200 {
        return ctx.fail(format!(
            "the refresh token from the previous refresh does not work: {} error={:?}",
            r.status,
            oauth_error(&r)
        ));
    }
    let d = r.json().unwrap_or_default();
    match str_member(&d, "scope") {
        Some(sc) if scope_set(&sc) == original => {
            ctx.pass(format!(
                "refreshing the new refresh token without scope gives the grant's scope {sc:?} back"
            ));
            Ok(())
        }
        Some(sc) => ctx.fail(format!(
            "the new refresh token carries scope {sc:?}, not the grant's {:?}",
            show(&original)
        )),
        None => {
            ctx.pass(format!(
                "refreshing the new refresh token without scope succeeded without a scope member: the grant's scope {:?} (RFC 6749 §5.1, §6)",
                show(&original)
            ));
            Ok(())
        }
    }
}

/// `rt-resource-binding`: a refresh naming another resource gets no token for it (RFC 8707
/// §2.2; O21 3.2.3): a refusal, or an access token whose audience is still the MCP server.
pub async fn refresh_resource_binding(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let rt = saved_refresh_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip(
            "no MCP endpoint to compare the audience with".into(),
        ));
    };
    let r = refresh(ctx, &rt, &[("resource", OTHER_RESOURCE)]).await?;
    if r.status >= 500 {
        return ctx.fail(format!(
            "the refresh naming another resource answered {}",
            r.status
        ));
    }
    super::tokens::not_rate_limited(&r, "the refresh")?;
    // Any refusal keeps the binding; its shape (invalid_target is RFC 8707's code) is
    // tok-error-format's requirement, noted.
    if let Some(shape) =
        crate::step::expect::token_refused(&r, &["invalid_target", "invalid_grant"])
    {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "the refresh naming {OTHER_RESOURCE} was refused ({} error={:?})",
            r.status,
            oauth_error(&r)
        ));
        return Ok(());
    }
    if r.status != 200 {
        return ctx.fail(format!(
            "the refresh naming another resource answered {} error={:?}: neither a refusal (a 4xx that issues nothing) nor a token",
            r.status,
            oauth_error(&r)
        ));
    }
    let at = str_member(&r.json().unwrap_or_default(), "access_token")
        .ok_or_else(|| ctx.failed("the refresh answered 200 without an access token"))?;
    let claims = token_claims(ctx, &at).await?;
    let aud = claims.get("aud").cloned().unwrap_or(Value::Null);
    if aud_names(&aud, OTHER_RESOURCE) {
        ctx.fail(format!(
            "the refresh token moved to another resource: the new access token's aud is {aud}"
        ))
    } else if aud_names(&aud, &resource) {
        ctx.pass(format!(
            "the refresh naming {OTHER_RESOURCE} still got a token for {resource} only (aud {aud})"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "after a refresh naming another resource, the access token's aud is {aud}, not the MCP server {resource}"
        ))
    }
}

/// `rt-inactivity-expiry`: a refresh token left unused longer than the AS's stated idle time
/// (profile `timing.refresh_idle_secs`) is refused (O21 4.3.3).
pub async fn refresh_idle_expiry(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some(idle) = ctx.env.profile.timing.refresh_idle_secs else {
        return Err(Stop::Skip(
            "the profile states no refresh-token idle time (timing.refresh_idle_secs): there is no configured expiry to observe".into(),
        ));
    };
    let wait = Duration::from_secs(idle + 1);
    if wait > ctx.env.max_wait() {
        return Err(Stop::Skip(format!(
            "needs a wait of {} s (idle time {idle} s + 1); allow it with --max-wait {} (or timing.max_wait_secs)",
            wait.as_secs(),
            wait.as_secs()
        )));
    }
    let rt = saved_refresh_token(ctx, on)?;
    // A first refresh shows the token works (and, with rotation, starts a new one's clock).
    let r = refresh(ctx, &rt, &[]).await?;
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "a fresh refresh token was refused ({} error={:?}): its expiry proves nothing",
            r.status,
            oauth_error(&r)
        )));
    }
    let rt = str_member(&r.json().unwrap_or_default(), "refresh_token").unwrap_or(rt);
    ctx.note(format!(
        "waiting {} s with the refresh token unused",
        wait.as_secs()
    ));
    ctx.idle(wait, "for the refresh token's idle time to pass")
        .await;
    let r = refresh(ctx, &rt, &[]).await?;
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_grant"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "a refresh token unused for {} s was refused",
            wait.as_secs()
        ));
        return Ok(());
    }
    match (r.status, oauth_error(&r).as_deref()) {
        (200, _) => ctx.fail(format!(
            "a refresh token unused for {} s (idle time {idle} s) still works",
            wait.as_secs()
        )),
        (s, e) => ctx.fail(format!(
            "the idle refresh token got {s} error={e:?}, expected invalid_grant"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Entropy (RFC 6749 §10.10)

/// `rt-entropy` / `at-entropy`: collects up to `samples` (default 16, at most 20) refresh or
/// access tokens, by refreshing the grant saved as `on` (each rotation brings a new one) or, when
/// refresh tokens do not rotate, by new authorizations; signed JWT access tokens are left out
/// (their security rests on the signature). Loops are bounded by the sample count.
pub async fn token_entropy(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let kind = super::arg_str(args, "kind", "refresh");
    let member = if kind == "access" {
        "access_token"
    } else {
        "refresh_token"
    };
    let n = super::arg_samples(args, 16, 20);
    let omit: Vec<String> =
        if args.get("omit_resource").and_then(toml::Value::as_bool) == Some(true) {
            vec!["resource".into()]
        } else {
            Vec::new()
        };
    let doc = token_doc(ctx, on)?;
    let first = str_member(&doc, member)
        .ok_or_else(|| Stop::Skip(format!("the token response carries no {member}")))?;
    let mut values = vec![first];
    let mut rt = str_member(&doc, "refresh_token");
    let mut by_refresh = rt.is_some();
    for _ in 0..(2 * n) {
        if values.len() >= n {
            break;
        }
        let d = if let (true, Some(cur)) = (by_refresh, rt.clone()) {
            let r = refresh(ctx, &cur, &[]).await?;
            if r.status != 200 {
                return Err(Stop::Error(format!(
                    "refresh {} answered {} error={:?}: no more samples",
                    values.len(),
                    r.status,
                    oauth_error(&r)
                )));
            }
            let d = r.json().unwrap_or_default();
            let next = str_member(&d, "refresh_token");
            if kind != "access" && next.as_deref().is_none_or(|x| x == cur) {
                // No rotation: new refresh tokens only come from new authorizations.
                ctx.note("the refresh token is not rotated: sampling new authorizations instead");
                by_refresh = false;
                continue;
            }
            rt = next.or(Some(cur));
            d
        } else {
            let (a, r) = scoped_grant(
                ctx,
                ctx.env.profile.authorization.scope.clone().as_deref(),
                &omit,
            )
            .await?;
            match r {
                Some(r) if r.status == 200 => r.json().unwrap_or_default(),
                Some(r) => {
                    return Err(Stop::Error(format!(
                        "a token request for a sample answered {}",
                        r.status
                    )));
                }
                None => {
                    return Err(Stop::Error(format!(
                        "no code to sample: the AS {}",
                        a.describe()
                    )));
                }
            }
        };
        match str_member(&d, member) {
            Some(v) => values.push(v),
            None => {
                return Err(Stop::Error(format!(
                    "a sample response carries no {member}"
                )));
            }
        }
    }
    let what = if kind == "access" {
        let jwts = values.iter().filter(|v| jwt_claims(v).is_some()).count();
        values.retain(|v| jwt_claims(v).is_none());
        if values.is_empty() {
            return Err(Stop::Skip(format!(
                "all {jwts} access tokens are signed JWTs: their security rests on the signature, not on entropy"
            )));
        }
        if jwts > 0 {
            ctx.note(format!("{jwts} signed JWT access tokens left out"));
        }
        "opaque access tokens"
    } else {
        "refresh tokens"
    };
    if values.len() < 5 {
        return Err(Stop::Error(format!(
            "only {} {what} could be collected",
            values.len()
        )));
    }
    super::judge_entropy(ctx, what, &values, 128.0)
}

/// `at-short-lived`: short access token lifetimes (≤ 1 h pass; ≤ 24 h warn; longer fail; not
/// shown: skipped).
pub fn short_lived(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = super::tokens::token_doc(ctx, on)?;
    // A lifetime the response does not show cannot be judged short or long; the missing
    // expires_in (RECOMMENDED, O21 3.2.3) is tok-response-shape's, noted there.
    let Some(secs) = super::pkce::lifetime(&doc) else {
        return Err(Stop::Skip("the token response gives no expires_in and the token carries no readable exp: the lifetime cannot be seen (expires_in is RECOMMENDED; tok-response-shape notes its absence)".into()));
    };
    if secs <= 3600 {
        ctx.pass(format!("access tokens live {secs} s (≤ 1 h)"));
        Ok(())
    } else if secs <= 86_400 {
        ctx.warn(format!(
            "access tokens live {secs} s: over an hour, up to a day"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "access tokens live {secs} s ({} days): MCP 11.2 wants short-lived tokens",
            secs / 86_400
        ))
    }
}

/// `rt-scope-escalation`: a refresh request asking for a scope the grant lacks (one the AS
/// lists in `scopes_supported`) is refused (any 4xx that issues nothing; not `invalid_scope` is
/// noted for tok-error-format), or answered with a scope that leaves it out. A 200 without `scope` means the requested scope was granted (RFC 6749 §5.1).
pub async fn refresh_scope_escalation(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let t1 = match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => r.json().unwrap_or_default(),
        None => return Err(Stop::Error(format!("nothing saved as `{on}`"))),
    };
    let rt = t1
        .get("refresh_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?
        .to_string();
    let granted: Vec<String> = t1
        .get("scope")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| ctx.env.profile.authorization.scope.clone())
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let supported: Vec<String> = match ctx.saved.get("asm") {
        Some(Saved::Discovery(d)) => d
            .doc()
            .and_then(|m| m.get("scopes_supported").cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let Some(extra) = supported
        .iter()
        .find(|x| !granted.contains(x) && *x != "openid" && *x != "offline_access")
        .cloned()
    else {
        return Err(Stop::Skip(
            "scopes_supported names no scope beyond the granted ones".into(),
        ));
    };
    let wider = format!("{} {extra}", granted.join(" ")).trim().to_string();
    let params = BTreeMap::from([
        ("refresh_token".to_string(), rt),
        ("scope".to_string(), wider.clone()),
    ]);
    let saved = token::token(
        ctx,
        &TokenStep {
            grant_type: "refresh_token".into(),
            params,
            ..Default::default()
        },
    )
    .await?;
    let Some((_, r)) = saved.response() else {
        return Err(Stop::Error("no response".into()));
    };
    let r = r.clone();
    let doc = r.json().unwrap_or_default();
    super::tokens::not_rate_limited(&r, "the refresh")?;
    // Any refusal keeps the grant's scope; its shape (invalid_scope is the defined code) is
    // tok-error-format's requirement, noted.
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_scope"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "asking for {wider:?} on refresh was refused ({})",
            r.status
        ));
        return Ok(());
    }
    if r.status != 200 {
        let code = doc.get("error").and_then(Value::as_str).unwrap_or("");
        return ctx.fail(format!(
            "asking for a scope beyond the grant ({extra:?}) got {} error={code:?}: neither a refusal (a 4xx that issues nothing) nor a token",
            r.status
        ));
    }
    match doc.get("scope").and_then(Value::as_str) {
        None => ctx.fail(format!(
            "asking for {wider:?} on refresh got tokens without a scope member, which means the requested scope was granted (RFC 6749 §5.1): {extra:?} was added"
        )),
        Some(sc) if sc.split(' ').any(|x| x == extra) => ctx.fail(format!(
            "the refreshed token's scope {sc:?} includes {extra:?}, which the grant did not have"
        )),
        Some(sc) => {
            ctx.pass(format!(
                "the refreshed token's scope {sc:?} leaves out the requested {extra:?}"
            ));
            Ok(())
        }
    }
}

/// A gate for `rt-reuse-detection`: reuse detection is what rotation makes possible (O21 4.3.1:
/// "the previous refresh token is invalidated but information about the relationship is
/// retained"). An AS whose refresh response `on` carries no new refresh token does not rotate,
/// and rt-rotation-public already judges that; failing it again here would grade one fault
/// twice, so the case is skipped with the reason. `args.previous` names the response that held
/// the refresh token just spent.
pub fn rotated(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let previous = super::arg_str(args, "previous", "t1");
    let rt = |ctx: &CaseCtx<'_>, name: &str| -> Result<Option<String>, Stop> {
        Ok(token_doc(ctx, name)?
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_string))
    };
    let old = rt(ctx, previous)?;
    match rt(ctx, on)? {
        Some(new) if Some(&new) != old.as_ref() => {
            ctx.note("the refresh response carries a new refresh token (rotation)");
            Ok(())
        }
        Some(_) => Err(Stop::Skip(
            "the AS returned the same refresh token: it does not rotate, so there is no spent token whose reuse it could detect (rotation itself is rt-rotation-public's requirement)".into(),
        )),
        None => Err(Stop::Skip(
            "the refresh response carries no new refresh token: the AS does not rotate, so there is no spent token whose reuse it could detect (rotation itself is rt-rotation-public's requirement)".into(),
        )),
    }
}
