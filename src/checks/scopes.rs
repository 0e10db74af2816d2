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
