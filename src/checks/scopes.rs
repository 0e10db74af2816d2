//! Area 12 at the resource server: what a 403 `insufficient_scope` challenge asks for
//! (MCP 2025-11-25 §10.1.1 "Server Scope Management").

use serde_json::Value;

use crate::runner::{CaseCtx, StepResult, Stop};

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

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
    if !dropped.is_empty() {
        ctx.warn(format!(
            "the challenge asks for {challenged:?} and leaves out {dropped:?}, which the token holds: a client re-authorizing with it loses them"
        ));
        return Ok(());
    }
    ctx.pass(format!(
        "the challenge asks for {challenged:?}: adds {new:?} and keeps the granted {granted:?}"
    ));
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
pub fn challenge_syntax(
    ctx: &mut CaseCtx<'_>,
    args: &std::collections::BTreeMap<String, toml::Value>,
) -> StepResult {
    let names: Vec<String> = args
        .get("responses")
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
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
