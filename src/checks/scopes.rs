//! Area 12, scopes. At the AS: what a scope request gets (RFC 6749 §3.3, §5.1; O21 1.4.1,
//! 3.2.3, 4.1.2.1, A.4): an invalid, malformed or missing scope, the order of scope values, a
//! grant smaller than asked for, and a grant with two scopes for the refresh cases to narrow. At
//! the resource server: what a 403 `insufficient_scope` challenge asks for (MCP 2025-11-25
//! §10.1.1 "Server Scope Management"), the syntax of its challenges (O21 5.3.1, RFC 6750 §3),
//! and the scopes its PRM offers (MCP 2026-07-28 "Refresh Tokens"; Security Best Practices
//! "Scope Minimization").

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::tokens::{
    oauth_error, saved_access_token, scoped_grant, str_member, token_claims, token_doc,
};
use super::{arg_str, arg_strings};
use crate::login::Outcome;
use crate::spec::Revision;
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{authorize, discovery, token};

/// The values of a space-delimited scope string (RFC 6749 §3.3), in their order.
pub(super) fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// The values of a scope string as a set: their order does not matter (RFC 6749 §3.3).
pub(super) fn scope_set(s: &str) -> BTreeSet<String> {
    words(s).into_iter().collect()
}

pub(super) fn show(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// What a token response granted: its `scope`, or, when it names none, what was asked
/// (RFC 6749 §5.1: scope is omitted only when it is the requested one).
pub(super) fn granted(doc: &Value, asked: &str) -> (BTreeSet<String>, bool) {
    match str_member(doc, "scope") {
        Some(s) => (scope_set(&s), true),
        None => (scope_set(asked), false),
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes at the resource server

/// `rs-403-scope-content`: the challenge's `scope` must name at least one scope the token
/// lacks (else re-authorizing with it changes nothing), and should keep the granted ones (a
/// client that asks for only the new scope loses the old ones).
pub fn insufficient_scope_content(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (_, r) = ctx
        .saved
        .get(on)
        .and_then(|s| s.response())
        .ok_or_else(|| Stop::Error(format!("nothing saved as `{on}`")))?;
    let values: Vec<&str> = r.header_all("www-authenticate").collect();
    let challenged = crate::www_authenticate::parse_all(values)
        .ok()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.is_scheme("bearer"))
                .and_then(|c| c.param("scope").map(str::to_string))
        });
    let Some(challenged) = challenged else {
        return ctx.fail("the 403 carries no Bearer challenge with a scope parameter");
    };
    // What the token holds: the token response's scope (O21 3.2.3), else what was asked.
    let granted = ctx
        .saved
        .get("token")
        .and_then(|s| s.response())
        .and_then(|(_, r)| r.json())
        .and_then(|d| d.get("scope").and_then(Value::as_str).map(str::to_string))
        .or_else(|| ctx.env.profile.authorization.scope.clone())
        .unwrap_or_default();
    let (c, g) = (words(&challenged), words(&granted));
    let new: Vec<&String> = c.iter().filter(|x| !g.contains(x)).collect();
    let dropped: Vec<&String> = g.iter().filter(|x| !c.contains(x)).collect();
    if new.is_empty() {
        return ctx.fail(format!(
            "the challenge asks for scope {challenged:?}, all of which the token already holds ({granted:?}): re-authorizing with it cannot help"
        ));
    }
    // 2026-07-28 "Server Scope Management": "servers are not required to include the client's
    // previously granted scopes" (the client unions them); up to 2025-11-25 keeping them is the
    // "Recommended approach" (no keyword): a warning.
    if !dropped.is_empty() && ctx.env.revision == Revision::V2026_07_28 {
        ctx.note(format!(
            "the challenge leaves out {dropped:?}, which the token holds: 2026-07-28 does not require previously granted scopes (the client unions them)"
        ));
    } else if !dropped.is_empty() {
        ctx.warn(format!(
            "the challenge asks for {challenged:?} and leaves out {dropped:?}, which the token holds: a client re-authorizing with it loses them"
        ));
        return Ok(());
    }
    ctx.pass(if dropped.is_empty() {
        format!(
            "the challenge asks for {challenged:?}: adds {new:?} and keeps the granted {granted:?}"
        )
    } else {
        format!("the challenge asks for {challenged:?}: adds {new:?}")
    });
    Ok(())
}

/// The Bearer challenges of the saved responses, each with the raw header value it came from.
fn bearer_challenges(
    ctx: &CaseCtx<'_>,
    names: &[String],
) -> Result<Vec<(String, crate::www_authenticate::Challenge)>, String> {
    let mut out = Vec::new();
    for n in names {
        let Some((url, r)) = ctx.saved.get(n).and_then(|s| s.response()) else {
            continue;
        };
        for raw in r.header_all("www-authenticate") {
            let cs = crate::www_authenticate::parse(raw)
                .map_err(|e| format!("{url}: WWW-Authenticate {raw:?} does not parse: {e}"))?;
            out.extend(
                cs.into_iter()
                    .filter(|c| c.is_scheme("bearer"))
                    .map(|c| (raw.to_string(), c)),
            );
        }
    }
    Ok(out)
}

/// RFC 6749 §3.3 / O21 A.4: scope = scope-token *( SP scope-token ), scope-token = 1*NQCHAR.
fn scope_syntax_ok(v: &str) -> bool {
    !v.is_empty()
        && v.split(' ').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        })
}

/// `rs-challenge-syntax` (O21 5.3.1, RFC 6750 §3): every Bearer challenge the case collected
/// parses, names each attribute at most once, quotes its values, and its `scope` is a
/// space-delimited list of scope tokens.
pub fn challenge_syntax(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let names = arg_strings(args, "responses").unwrap_or_default();
    let challenges = match bearer_challenges(ctx, &names) {
        Ok(c) => c,
        Err(e) => return ctx.fail(e),
    };
    if challenges.is_empty() {
        return Err(Stop::Error(
            "no Bearer challenge in the responses collected: nothing to parse".into(),
        ));
    }
    for (raw, c) in &challenges {
        for (name, _) in &c.params {
            if c.param_count(name) > 1 {
                return ctx.fail(format!(
                    "the challenge {raw:?} names {name} more than once (RFC 6750 §3: each attribute at most once)"
                ));
            }
            // RFC 6750 §3 writes every attribute value as a quoted-string.
            let quoted = format!("{}=\"", name.to_ascii_lowercase());
            if !raw.to_ascii_lowercase().contains(&quoted) {
                return ctx.fail(format!(
                    "the challenge {raw:?} does not quote the value of {name} (RFC 6750 §3)"
                ));
            }
        }
        if let Some(sc) = c.param("scope")
            && !scope_syntax_ok(sc)
        {
            return ctx.fail(format!(
                "the challenge's scope {sc:?} is not a space-delimited list of scope tokens (O21 A.4)"
            ));
        }
    }
    ctx.pass(format!(
        "{} Bearer challenge(s) parse, with each attribute once, quoted, and scope space-delimited",
        challenges.len()
    ));
    Ok(())
}

/// The PRM's `scopes_supported`, when the case discovered it as `prm`.
fn prm_scopes(ctx: &CaseCtx<'_>) -> Result<Vec<String>, Stop> {
    let doc = ctx
        .discovery("prm")?
        .doc()
        .ok_or_else(|| Stop::Error("no Protected Resource Metadata document".into()))?;
    Ok(doc
        .get("scopes_supported")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// `prm-no-offline-access` (MCP 2026-07-28 "Refresh Tokens"): `offline_access` is the
/// client's business with its AS; the resource names it neither in PRM `scopes_supported` nor
/// in its challenges, or clients ask users for offline access the resource does not need.
pub fn no_offline_access(ctx: &mut CaseCtx<'_>, challenge_on: &str) -> StepResult {
    let prm = prm_scopes(ctx)?;
    if prm.iter().any(|s| s == "offline_access") {
        return ctx.fail(format!(
            "the PRM's scopes_supported {prm:?} names offline_access"
        ));
    }
    let challenges = bearer_challenges(ctx, &[challenge_on.to_string()]).map_err(Stop::Error)?;
    for (raw, c) in &challenges {
        if c.param("scope")
            .is_some_and(|v| words(v).iter().any(|s| s == "offline_access"))
        {
            return ctx.fail(format!("the challenge {raw:?} asks for offline_access"));
        }
    }
    ctx.pass(format!(
        "offline_access is in neither the PRM's scopes_supported {prm:?} nor the 401 challenge"
    ));
    Ok(())
}

/// Names that grant everything: a catalogue offering one invites clients to ask for it.
const OMNIBUS: &[&str] = &[
    "*",
    "all",
    "full",
    "full-access",
    "full_access",
    "root",
    "superuser",
    "everything",
];

/// `prm-scope-catalogue` (MCP security best practices, "Scope Minimization"): the PRM's
/// `scopes_supported` offers no omnibus scope (`*`, `all`, `full-access`, `x:*`...).
pub fn scope_catalogue(ctx: &mut CaseCtx<'_>) -> StepResult {
    let prm = prm_scopes(ctx)?;
    if prm.is_empty() {
        return Err(Stop::Skip(
            "the PRM lists no scopes_supported: no catalogue to judge".into(),
        ));
    }
    let omnibus: Vec<&String> = prm
        .iter()
        .filter(|s| {
            OMNIBUS.contains(&s.to_ascii_lowercase().as_str())
                || s.ends_with(":*")
                || s.ends_with(".*")
        })
        .collect();
    if !omnibus.is_empty() {
        return ctx.fail(format!(
            "scopes_supported {prm:?} offers omnibus scope(s) {omnibus:?}"
        ));
    }
    ctx.pass(format!("scopes_supported {prm:?} has no omnibus scope"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scopes at the AS

/// Two scopes the server names (the profile's first, then `scopes_supported` of the PRM and of
/// the AS metadata; `openid` and `offline_access` aside).
async fn scope_pair(ctx: &mut CaseCtx<'_>) -> Result<(String, String), Stop> {
    let mut names = words(ctx.env.profile.authorization.scope.as_deref().unwrap_or(""));
    let mut docs = Vec::new();
    if ctx.env.target.resource.is_some() {
        if !ctx.saved.contains_key("prm") {
            let s = crate::step::discovery::shared_prm(ctx).await?;
            ctx.saved.insert("prm".into(), s);
        }
        if let Some(Saved::Discovery(d)) = ctx.saved.get("prm") {
            docs.push(d.doc());
        }
    }
    discovery::as_endpoint(ctx, "authorization_endpoint").await?;
    if let Some(Saved::Discovery(d)) = ctx.saved.get("asm") {
        docs.push(d.doc());
    }
    for d in docs.into_iter().flatten() {
        for v in d
            .get("scopes_supported")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            if let Some(s) = v.as_str()
                && !names.iter().any(|n| n == s)
            {
                names.push(s.to_string());
            }
        }
    }
    names.retain(|n| n != "openid" && n != "offline_access");
    match names.as_slice() {
        [a, b, ..] => Ok((a.clone(), b.clone())),
        _ => Err(Stop::Skip(format!(
            "the server names fewer than two scopes ({names:?}): no grant with two scopes to request"
        ))),
    }
}

/// Authorizes with two scopes the server names and saves the authorization as `auth` and the
/// token response as `on` (default `t1`): a grant that can be narrowed.
pub async fn two_scope_grant(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (a, b) = scope_pair(ctx).await?;
    let asked = format!("{a} {b}");
    let (auth, r) = scoped_grant(ctx, Some(&asked), &[]).await?;
    let Some(r) = r else {
        return Err(Stop::Error(format!(
            "the authorization for scope {asked:?} brought no code: the AS {}",
            auth.describe()
        )));
    };
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "redeeming the code for scope {asked:?} answered {} error={:?}",
            r.status,
            oauth_error(&r)
        )));
    }
    ctx.note(format!("a grant for scope {asked:?}"));
    let url = auth.url.clone();
    ctx.saved
        .insert(on.into(), Saved::Response { url, response: r });
    Ok(())
}

/// `as-scope-invalid`, `as-scope-omitted`, `as-scope-syntax`, `as-resource-unknown`: what came
/// of the authorization saved as `on` (sent with `expect = "any"`) and its odd `args.param`. A
/// controlled refusal (an error redirect with one of `args.errors`, default `invalid_scope`; a
/// 4xx page; the token endpoint's error) passes; a 5xx fails; tokens issued anyway are judged
/// by `args.accepted` (`warn`: ignored silently; `pass`: e.g. a default scope is a conforming
/// answer; `fail`), except that with `args.narrowing = "pass"` a token response whose `scope`
/// member leaves the requested value out passes (O21 1.4.1: the AS MAY ignore it).
pub async fn request_refused(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let errors = arg_strings(args, "errors").unwrap_or_else(|| vec!["invalid_scope".into()]);
    let accepted = arg_str(args, "accepted", "warn").to_string();
    let param = arg_str(args, "param", "scope").to_string();
    let a = authorize::authorization(ctx, on)?.clone();
    let sent = a.param(&param).map(|s| {
        if s.len() > 80 {
            format!(
                "{}… ({} bytes)",
                s.chars().take(60).collect::<String>(),
                s.len()
            )
        } else {
            s.to_string()
        }
    });
    let what = match &sent {
        Some(s) => format!("{param} {s:?}"),
        None => format!("no {param}"),
    };
    let cb = a.callback.clone().unwrap_or_default();
    match (&a.journey.outcome, cb.get("code"), cb.get("error")) {
        (Outcome::Page { status, .. }, _, _) if *status >= 500 => {
            return ctx.fail(format!(
                "the authorization request with {what} got a server error ({status})"
            ));
        }
        (Outcome::Page { status, .. }, _, _) if (400..500).contains(status) => {
            ctx.pass(format!(
                "the authorization request with {what} was refused with an error page ({status})"
            ));
            return Ok(());
        }
        (Outcome::Page { status, url, .. }, _, _) => {
            return Err(Stop::Error(format!(
                "the authorization request with {what} ended on a page ({status}, {url}) the login driver could not go past"
            )));
        }
        (Outcome::Redirected { .. }, _, Some(e)) if errors.iter().any(|x| x == e) => {
            ctx.pass(format!("the AS answered {what} with error={e}"));
            return Ok(());
        }
        (Outcome::Redirected { .. }, _, Some(e)) => {
            return ctx.fail(format!(
                "the AS answered {what} with error={e}, expected one of {errors:?}"
            ));
        }
        (Outcome::Redirected { .. }, None, None) => {
            return ctx.fail(format!(
                "the AS redirected with neither a code nor an error for {what}"
            ));
        }
        _ => {}
    }
    // A code: the token endpoint may still refuse.
    let none = BTreeMap::new();
    let saved = token::token(ctx, &token::redeeming(on, none)).await?;
    let r = saved
        .response()
        .map(|(_, r)| r.clone())
        .ok_or_else(|| Stop::Error("no token response".into()))?;
    let e = oauth_error(&r);
    if r.status >= 500 {
        return ctx.fail(format!(
            "redeeming the code for {what} got a server error ({})",
            r.status
        ));
    }
    if r.status != 200 {
        return match e.as_deref() {
            Some(code) if errors.iter().any(|x| x == code) => {
                ctx.pass(format!("the token endpoint refused {what} with {code}"));
                Ok(())
            }
            _ => ctx.fail(format!(
                "redeeming the code for {what} answered {} error={e:?}, expected one of {errors:?}",
                r.status
            )),
        };
    }
    let got = str_member(&r.json().unwrap_or_default(), "scope");
    // `narrowing = "pass"` (as-scope-invalid): O21 1.4.1 lets the AS "fully or partially
    // ignore the scope requested"; a token response whose scope member leaves every requested
    // value out says so, and passes. One that does not say (no scope member) stays `accepted`:
    // reporting the granted scope is as-scope-subset-reported's MUST.
    let by_sentence = matches!(args.get("narrowing"), Some(toml::Value::String(v)) if v == "pass");
    if by_sentence
        && let (Some(g), Some(asked)) = (got.as_deref(), a.param(&param))
        && !asked.split(' ').any(|w| g.split(' ').any(|x| x == w))
    {
        ctx.pass(format!(
            "the AS ignored {what} and said so: the token response's scope is {g:?} (O21 1.4.1: the AS MAY ignore a requested scope)"
        ));
        return Ok(());
    }
    let msg = format!(
        "the AS issued tokens for {what} (granted scope: {})",
        got.as_deref().unwrap_or("not stated")
    );
    match accepted.as_str() {
        "pass" => {
            ctx.pass(msg);
            Ok(())
        }
        "fail" => ctx.fail(format!("{msg}, where one of {errors:?} is due")),
        _ => {
            ctx.warn(format!(
                "{msg}: the request was ignored silently, not refused with {errors:?}"
            ));
            Ok(())
        }
    }
}

/// `as-scope-order-independent`: `b a` gets the same grant as `a b` (RFC 6749 §3.3: the
/// order of scope values does not matter).
pub async fn scope_order(ctx: &mut CaseCtx<'_>) -> StepResult {
    let (a, b) = scope_pair(ctx).await?;
    let (first, second) = (format!("{a} {b}"), format!("{b} {a}"));
    let (auth1, r1) = scoped_grant(ctx, Some(&first), &[]).await?;
    let g1 = match r1 {
        Some(r) if r.status == 200 => granted(&r.json().unwrap_or_default(), &first).0,
        Some(r) => {
            return Err(Stop::Error(format!(
                "the grant for {first:?} could not be redeemed ({}): nothing to compare with",
                r.status
            )));
        }
        None => {
            return Err(Stop::Error(format!(
                "the request for {first:?} brought no code: the AS {}",
                auth1.describe()
            )));
        }
    };
    let (auth2, r2) = scoped_grant(ctx, Some(&second), &[]).await?;
    let g2 = match r2 {
        Some(r) if r.status == 200 => granted(&r.json().unwrap_or_default(), &second).0,
        Some(r) => {
            return ctx.fail(format!(
                "{second:?} was authorized but its code was refused: {} error={:?}",
                r.status,
                oauth_error(&r)
            ));
        }
        None => {
            return ctx.fail(format!(
                "{first:?} is granted but {second:?} is not: the AS {}",
                auth2.describe()
            ));
        }
    };
    if g1 == g2 {
        ctx.pass(format!(
            "{first:?} and {second:?} get the same grant ({})",
            show(&g1)
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "{first:?} got {:?} but {second:?} got {:?}",
            show(&g1),
            show(&g2)
        ))
    }
}

/// `as-scope-subset-reported`: when the AS grants less than was asked, the token response says
/// so in `scope` (O21 3.2.3). A response without `scope` claims the whole request; what the
/// token really carries (its JWT claims or introspection) shows whether that is true.
pub async fn scope_reported(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = token_doc(ctx, on)?;
    let asked = scope_set(
        authorize::authorization(ctx, "auth")?
            .param("scope")
            .unwrap_or(""),
    );
    if let Some(sc) = str_member(&doc, "scope") {
        let got = scope_set(&sc);
        if got == asked {
            ctx.pass(format!(
                "the token response states the granted scope {sc:?} (all that was asked)"
            ));
        } else {
            ctx.pass(format!(
                "the token response states the granted scope {sc:?}, which differs from the requested {:?}",
                show(&asked)
            ));
        }
        return Ok(());
    }
    let at = saved_access_token(ctx, on)?;
    let claims = token_claims(ctx, &at).await?;
    let Some(real) = str_member(&claims, "scope") else {
        return Err(Stop::Skip(
            "the token response omits scope and the token's own claims name none: what was granted cannot be read".into(),
        ));
    };
    if scope_set(&real) == asked {
        ctx.pass(format!(
            "scope is omitted and the token carries exactly the requested {real:?} (RFC 6749 §5.1 allows the omission)"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "the token response omits scope, which claims the requested {:?}, but the token carries {real:?}",
            show(&asked)
        ))
    }
}
