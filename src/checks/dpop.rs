//! DPoP (RFC 9449): whether the AS and the MCP server offer it (the gate of every `dpop-*`
//! case), what they advertise (§5.1, RFC 9728 §2), whether an issued token is bound (§5, §6),
//! and the nonce exchange (§8, §9, §11.3). The proofs themselves are the step layer's
//! ([`crate::step::dpop`]); the attacks are declarative `token` / `mcp_request` steps.

use std::collections::BTreeMap;

use serde_json::Value;

use super::arg_str;
use super::tokens::jwt_claims;
use crate::case::model::{DpopSpec, McpRequestStep, TokenStep};
use crate::step::dpop::ALGS;
use crate::step::{CaseCtx, Saved, StepResult, Stop, discovery, request, token};

/// Algorithms no DPoP proof may use (RFC 9449 §4.2: not `none`, not a MAC).
fn forbidden_alg(a: &str) -> bool {
    a.eq_ignore_ascii_case("none") || a.to_ascii_uppercase().starts_with("HS")
}

async fn as_doc(ctx: &mut CaseCtx<'_>) -> Result<Value, Stop> {
    let asm = discovery::shared_as_metadata(ctx).await?;
    let doc = match &asm {
        Saved::Discovery(d) => d.doc().map(Value::Object),
        _ => None,
    };
    ctx.saved.entry("asm".into()).or_insert(asm);
    match doc {
        Some(d) => Ok(d),
        None => {
            let e =
                Stop::Error("no authorization server metadata found (see the asm-* cases)".into());
            Err(discovery::without_doc(ctx, e, "asm-available"))
        }
    }
}

async fn prm_doc(ctx: &mut CaseCtx<'_>) -> Option<Value> {
    ctx.env.target.resource.as_ref()?;
    match discovery::shared_prm(ctx).await {
        Ok(Saved::Discovery(d)) => d.doc().map(Value::Object),
        _ => None,
    }
}

/// The gate of every `dpop-*` case. The AS must advertise `dpop_signing_alg_values_supported`
/// (RFC 9449 §5.1) with an algorithm the suite signs with (`args.alg`, when given, must be
/// listed); proofs then use the first of ES256, EdDSA it lists. With `args.role = "rs"` the MCP
/// server must also accept DPoP: its PRM says `dpop_bound_access_tokens_required` or lists
/// `dpop_signing_alg_values_supported` (RFC 9728 §2), its 401 challenge names the `DPoP` scheme
/// (RFC 9449 §7.1), or the profile says so (`[dpop] resource = true`). Otherwise: skipped.
pub async fn offered(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let doc = as_doc(ctx).await?;
    let algs: Vec<String> = match doc.get("dpop_signing_alg_values_supported") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .take(64)
            .map(str::to_string)
            .collect(),
        _ => {
            return Err(Stop::Skip(
                "the AS does not offer DPoP: its metadata has no dpop_signing_alg_values_supported (RFC 9449 §5.1)".into(),
            ));
        }
    };
    let usable: Vec<&str> = ALGS
        .into_iter()
        .filter(|a| algs.iter().any(|x| x == a))
        .collect();
    if usable.is_empty() {
        return Err(Stop::Skip(format!(
            "the AS lists DPoP algorithms {algs:?}, none of which the suite signs with ({})",
            ALGS.join(", ")
        )));
    }
    if let Some(want) = args.get("alg").and_then(toml::Value::as_str)
        && !usable.contains(&want)
    {
        return Err(Stop::Skip(format!(
            "the AS does not list {want} in dpop_signing_alg_values_supported ({algs:?})"
        )));
    }
    ctx.dpop.advertised = algs.clone();
    ctx.note(format!(
        "the AS advertises DPoP proofs with {algs:?}; the suite signs with {}",
        ctx.dpop.default_alg()
    ));
    if arg_str(args, "role", "as") != "rs" {
        return Ok(());
    }
    let Some(_) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    if let Some(prm) = prm_doc(ctx).await {
        for member in [
            "dpop_bound_access_tokens_required",
            "dpop_signing_alg_values_supported",
        ] {
            if let Some(v) = prm.get(member) {
                ctx.note(format!("the PRM says {member} = {v}"));
                return Ok(());
            }
        }
    }
    if ctx.env.profile.dpop.resource == Some(true) {
        ctx.note("the profile says the MCP server accepts DPoP ([dpop] resource = true)");
        return Ok(());
    }
    let probe = McpRequestStep {
        note: Some("does the MCP endpoint challenge with the DPoP scheme?".into()),
        ..Default::default()
    };
    if let Ok(Saved::Response { response, .. }) = request::mcp_request(ctx, &probe).await {
        let values: Vec<&str> = response.header_all("www-authenticate").collect();
        if let Ok(cs) = crate::www_authenticate::parse_all(values)
            && cs.iter().any(|c| c.is_scheme("dpop"))
        {
            ctx.note("the MCP endpoint's 401 challenge names the DPoP scheme");
            return Ok(());
        }
    }
    Err(Stop::Skip(
        "the MCP server does not say it accepts DPoP: no dpop_* member in its PRM, no DPoP challenge, and no [dpop] resource = true in the profile".into(),
    ))
}

/// `dpop-advertised`: `dpop_signing_alg_values_supported` (AS metadata, RFC 9449 §5.1; PRM,
/// RFC 9728 §2) is a non-empty list of JWS algorithm names, none of them `none` or a MAC
/// (§4.2 forbids both for proofs); the PRM's `dpop_bound_access_tokens_required`, when
/// present, is a boolean.
pub async fn advertised(ctx: &mut CaseCtx<'_>) -> StepResult {
    let asm = as_doc(ctx).await?;
    let mut docs = vec![("AS metadata", asm)];
    if let Some(prm) = prm_doc(ctx).await {
        docs.push(("PRM", prm));
    }
    let mut bad = Vec::new();
    for (what, doc) in &docs {
        match doc.get("dpop_signing_alg_values_supported") {
            None if *what == "PRM" => {}
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                let wrong: Vec<&str> = a
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|x| forbidden_alg(x))
                    .collect();
                if wrong.is_empty() {
                    ctx.pass(format!(
                        "the {what} lists dpop_signing_alg_values_supported {}",
                        Value::Array(a.clone())
                    ));
                } else {
                    bad.push(format!(
                        "the {what}'s dpop_signing_alg_values_supported lists {wrong:?}, which no DPoP proof may use (RFC 9449 §4.2: not none, not a MAC)"
                    ));
                }
            }
            Some(other) => bad.push(format!(
                "the {what}'s dpop_signing_alg_values_supported is {other}, not a non-empty list of algorithm names"
            )),
            None => bad.push(format!(
                "the {what} has no dpop_signing_alg_values_supported"
            )),
        }
        if *what == "PRM"
            && let Some(v) = doc.get("dpop_bound_access_tokens_required")
        {
            if v.is_boolean() {
                ctx.pass(format!(
                    "the PRM says dpop_bound_access_tokens_required = {v}"
                ));
            } else {
                bad.push(format!(
                    "the PRM's dpop_bound_access_tokens_required is {v}, not a boolean (RFC 9728 §2)"
                ));
            }
        }
    }
    match bad.first() {
        Some(b) => ctx.fail(b.clone()),
        None => Ok(()),
    }
}

/// `dpop-token-type`: the token response to a request with a valid proof says
/// `token_type: DPoP` (RFC 9449 §5; token types compare case-insensitively, RFC 6749 §5.1),
/// and the token is bound to the proof's key: a JWT access token's `cnf.jkt` (§6.1) is the
/// key's thumbprint. An opaque token's binding is asked of the introspection endpoint (§6.2)
/// when the AS has one and answers; otherwise only `token_type` is judged, and noted so.
pub async fn bound(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let key_name = arg_str(args, "key", "k1").to_string();
    let Some((_, r)) = ctx.saved.get(on).and_then(Saved::response) else {
        return Err(Stop::Error(format!("nothing saved as `{on}`")));
    };
    let doc = r.json().unwrap_or_default();
    let jkt = ctx
        .dpop
        .key(&key_name, None)
        .map_err(Stop::Error)?
        .thumbprint();
    let tt = doc.get("token_type").and_then(Value::as_str).unwrap_or("");
    // A case that only needs a bound token to probe the MCP server with.
    if arg_str(args, "if_unbound", "fail") == "skip" {
        if tt.eq_ignore_ascii_case("dpop") {
            ctx.note("token_type is DPoP");
            return Ok(());
        }
        return Err(Stop::Skip(format!(
            "the AS answered a valid DPoP token request with token_type {tt:?}: there is no bound token to present (dpop-token-type judges that)"
        )));
    }
    if !tt.eq_ignore_ascii_case("dpop") {
        return ctx.fail(format!(
            "the token response to a request with a valid DPoP proof says token_type {tt:?}, not DPoP: the access token is not bound to the client's key"
        ));
    }
    ctx.pass("token_type is DPoP");
    let Some(at) = doc.get("access_token").and_then(Value::as_str) else {
        return ctx.fail("the token response has no access_token");
    };
    let at = at.to_string();
    if let Some(claims) = jwt_claims(&at) {
        return match claims.get("cnf").and_then(|c| c.get("jkt")).and_then(Value::as_str) {
            Some(j) if j == jkt => {
                ctx.pass(format!(
                    "the JWT access token's cnf.jkt is the proof key's thumbprint {jkt}"
                ));
                Ok(())
            }
            Some(j) => ctx.fail(format!(
                "the JWT access token's cnf.jkt is {j}, not the proof key's thumbprint {jkt}"
            )),
            None => ctx.fail(
                "the JWT access token has no cnf.jkt (RFC 9449 §6.1): a resource server cannot tell it is bound",
            ),
        };
    }
    let introspected = token::token(
        ctx,
        &TokenStep {
            grant_type: String::new(),
            endpoint: Some("introspection".into()),
            params: BTreeMap::from([("token".to_string(), at)]),
            ..Default::default()
        },
    )
    .await;
    let intro = match introspected {
        Ok(Saved::Response { response, .. }) if response.status == 200 => response.json(),
        _ => None,
    };
    match intro.as_ref().and_then(|d| d.pointer("/cnf/jkt")?.as_str()) {
        Some(j) if j == jkt => {
            ctx.pass(format!(
                "introspection says cnf.jkt = the proof key's thumbprint {jkt}"
            ));
            Ok(())
        }
        Some(j) => ctx.fail(format!(
            "introspection says cnf.jkt = {j}, not the proof key's thumbprint {jkt}"
        )),
        None if intro
            .as_ref()
            .is_some_and(|d| d.get("active") == Some(&Value::Bool(true))) =>
        {
            ctx.fail("introspection of the opaque access token shows no cnf.jkt (RFC 9449 §6.2)")
        }
        None => {
            ctx.note(
                "the access token is opaque and the introspection endpoint did not describe it: only token_type is judged",
            );
            Ok(())
        }
    }
}

/// `dpop-nonce`: the token saved as `on` is first presented at the MCP endpoint (when there is
/// one and the token is bound). Then: a server that asked for a nonce (`use_dpop_nonce` with `DPoP-Nonce`, RFC 9449
/// §8, §9) took the one retry the suite made with it; asked again, it loops. With
/// `args.probe = "downgrade"` (§11.3): once a nonce was provided, a proof without it is
/// refused: at the MCP endpoint with the access token saved as `on`, at the token endpoint by
/// refreshing its refresh token. Skipped when no server asked for a nonce (a MAY).
pub async fn nonce(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    // At the MCP endpoint too, when there is one and the token is bound: RS nonces (§9).
    let doc = ctx
        .saved
        .get(on)
        .and_then(Saved::response)
        .and_then(|(_, r)| r.json())
        .unwrap_or_default();
    let bound = doc
        .get("token_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop"));
    if let (Some(_), true, Some(at)) = (
        ctx.env.target.resource.clone(),
        bound,
        doc.get("access_token").and_then(Value::as_str),
    ) {
        let step = McpRequestStep {
            authorization: vec![format!("DPoP {at}")],
            dpop: Some(DpopSpec::default()),
            note: Some("the DPoP-bound token with a proof at the MCP endpoint".into()),
            ..Default::default()
        };
        if let Ok(Saved::Response { response, .. }) = request::mcp_request(ctx, &step).await {
            ctx.note(format!("the MCP endpoint answered {}", response.status));
        }
    }
    let challenges = ctx.dpop.challenges.clone();
    if challenges.is_empty() {
        return Err(Stop::Skip(
            "neither the AS nor the MCP server asked for a DPoP nonce (RFC 9449 §8, §9: a server MAY)".into(),
        ));
    }
    if arg_str(args, "probe", "retry") != "downgrade" {
        for c in &challenges {
            match c.retry_status {
                Some(s) if (200..300).contains(&s) => ctx.pass(format!(
                    "{} asked for a nonce ({}); the retry with it was answered {s}",
                    c.url, c.status
                )),
                Some(s) if c.retry_challenged => {
                    return ctx.fail(format!(
                        "{} asked for a nonce, and asked again ({s} use_dpop_nonce) when the retry carried the nonce it supplied: a client following RFC 9449 §8 loops",
                        c.url
                    ));
                }
                Some(s) => {
                    return ctx.fail(format!(
                        "{} asked for a nonce, then refused the retry that carried it ({s})",
                        c.url
                    ));
                }
                None => return Err(Stop::Error(format!("{}: no retry was made", c.url))),
            }
        }
        return Ok(());
    }
    let resource = ctx.env.target.resource.clone();
    let no_nonce = DpopSpec {
        attack: Some("no-nonce".into()),
        nonce_retry: false,
        ..Default::default()
    };
    let mut probed = false;
    for c in &challenges {
        let at_rs = resource
            .as_deref()
            .is_some_and(|r| crate::step::dpop::htu_of(r) == c.url);
        let r = if at_rs {
            let Some(at) = doc.get("access_token").and_then(Value::as_str) else {
                continue;
            };
            let step = McpRequestStep {
                authorization: vec![format!("DPoP {at}")],
                dpop: Some(no_nonce.clone()),
                note: Some("a DPoP proof without the nonce the MCP server supplied".into()),
                ..Default::default()
            };
            match request::mcp_request(ctx, &step).await? {
                Saved::Response { response, .. } => response,
                _ => continue,
            }
        } else {
            let Some(rt) = doc.get("refresh_token").and_then(Value::as_str) else {
                ctx.note(format!(
                    "{}: no refresh token to make a second token request with",
                    c.url
                ));
                continue;
            };
            let step = TokenStep {
                grant_type: "refresh_token".into(),
                params: BTreeMap::from([("refresh_token".to_string(), rt.to_string())]),
                dpop: Some(no_nonce.clone()),
                ..Default::default()
            };
            match token::token(ctx, &step).await? {
                Saved::Response { response, .. } => response,
                _ => continue,
            }
        };
        probed = true;
        let issued = r.json().is_some_and(|d| d.get("access_token").is_some());
        if (200..300).contains(&r.status) || issued {
            return ctx.fail(format!(
                "{} supplied a DPoP nonce, then accepted a proof without it ({}): RFC 9449 §11.3 forbids that",
                c.url, r.status
            ));
        }
        ctx.pass(format!(
            "{} refused a proof without its nonce ({})",
            c.url, r.status
        ));
    }
    if !probed {
        return Err(Stop::Skip(
            "no second request could be made where the nonce was asked for".into(),
        ));
    }
    Ok(())
}

/// `dpop-proof-validation.iat-*`: the token request whose proof is dated an hour off (saved as
/// `on`) is refused. RFC 9449 §4.3 item 11 dates a proof "by either the iat claim or a server
/// managed timestamp via the nonce claim": a server that made the proof carry its nonce may
/// accept any `iat`, so an acceptance is then not judged (skipped, saying so).
pub fn iat_refused(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some((url, r)) = ctx.saved.get(on).and_then(Saved::response) else {
        return Err(Stop::Error(format!("nothing saved as `{on}`")));
    };
    let (url, status) = (url.to_string(), r.status);
    let doc = r.json().unwrap_or_default();
    let error = doc
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if doc.get("access_token").is_none() && (400..500).contains(&status) {
        if error == "invalid_dpop_proof" {
            ctx.pass(format!("refused: {status} invalid_dpop_proof"));
        } else {
            ctx.pass(format!(
                "refused ({status} {error:?}; RFC 9449 §5 names invalid_dpop_proof)"
            ));
        }
        return Ok(());
    }
    if ctx.dpop.nonce_for(&url).is_some() {
        return Err(Stop::Skip(format!(
            "{url} accepted the proof ({status}), which carried the nonce it asked for: RFC 9449 §4.3 item 11 lets a server date proofs by its nonce instead of iat, so iat is not judged"
        )));
    }
    ctx.fail(format!(
        "{url} answered {status} to a proof dated an hour off, without a nonce of its own to date it by: the proof was accepted"
    ))
}
