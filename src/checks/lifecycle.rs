//! Token lifecycle beyond the basics, and the AS's handling of scope and resource:
//! refresh-token scope and resource binding (O21 4.3.1, 4.3.3, 3.2.3; RFC 8707 §2.2), idle
//! expiry (O21 4.3.3), token entropy (RFC 6749 §10.10), access-token revocation (RFC 7009 §2,
//! §2.1, §2.2.1), audience binding (RFC 8707 §2; MCP 2025-11-25 §8.1, §11.1), scope requests
//! (RFC 6749 §3.3, §5.1; O21 1.4.1, 3.2.3, 4.1.2.1, A.4) and MCP sessions at the resource server
//! (MCP 2025-11-25 §9.1 and transports "Session Management"; Security Best Practices "Session
//! Hijacking").

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::case::model::{ClientKind, Consent, Judge};
use crate::http::{Request, Response};
use crate::login::Outcome;
use crate::runner::flow;
use crate::runner::{CaseCtx, Saved, StepResult, Stop};
use crate::spec::Revision;

/// A second resource server, for the binding probes (the reference registers it; other servers
/// do not know it).
const OTHER_RESOURCE: &str = "https://other.authconform.test/mcp";

// ---------------------------------------------------------------------------------------------
// Helpers

fn saved_response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => Ok(r.clone()),
        None => Err(Stop::Error(format!("nothing saved as `{on}`"))),
    }
}

/// The JSON of a successful token response saved as `on`.
fn token_doc(ctx: &CaseCtx<'_>, on: &str) -> Result<Value, Stop> {
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

pub(crate) fn str_member(doc: &Value, k: &str) -> Option<String> {
    doc.get(k).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn oauth_error(r: &Response) -> Option<String> {
    r.json().and_then(|d| str_member(&d, "error"))
}

fn scopes(s: &str) -> BTreeSet<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn show(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// The claims of a JWT (a header naming an `alg`, and a JSON payload), or `None` for an opaque
/// token. Nothing is verified: only what the token says of itself is read.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let part = |p: &str| -> Option<Value> {
        let b = URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()?;
        serde_json::from_slice::<Value>(&b).ok()
    };
    part(parts[0])?.get("alg")?;
    part(parts[1]).filter(Value::is_object)
}

/// A request to the token, revocation or introspection endpoint with the client's own
/// authentication and nothing taken from an authorization.
async fn endpoint_request(
    ctx: &mut CaseCtx<'_>,
    client: &str,
    endpoint: &str,
    grant_type: &str,
    params: &BTreeMap<String, String>,
) -> Result<Response, Stop> {
    let saved = flow::token(
        ctx,
        flow::Token {
            client,
            from: None,
            grant_type,
            params,
            omit: &[],
            extra: None,
            auth: None,
            secret: None,
            method: "POST",
            json_body: false,
            if_no_code: Judge::Error,
            assertion: None,
            parallel: None,
            endpoint: Some(endpoint),
        },
    )
    .await?;
    saved
        .response()
        .map(|(_, r)| r.clone())
        .ok_or_else(|| Stop::Error("no response".into()))
}

pub(crate) async fn refresh(
    ctx: &mut CaseCtx<'_>,
    rt: &str,
    extra: &[(&str, &str)],
) -> Result<Response, Stop> {
    let mut p = BTreeMap::from([("refresh_token".to_string(), rt.to_string())]);
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    endpoint_request(ctx, "client", "token", "refresh_token", &p).await
}

async fn revoke(ctx: &mut CaseCtx<'_>, token: &str, hint: &str) -> Result<Response, Stop> {
    let p = BTreeMap::from([
        ("token".to_string(), token.to_string()),
        ("token_type_hint".to_string(), hint.to_string()),
    ]);
    endpoint_request(ctx, "client", "revocation", "", &p).await
}

/// Introspects a token (RFC 7662 §2.1) when the AS offers introspection and the case's client
/// can authenticate; `None` when it cannot be asked.
pub(crate) async fn introspect(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Option<Value>, Stop> {
    if flow::as_endpoint(ctx, "introspection_endpoint")
        .await
        .is_err()
    {
        return Ok(None);
    }
    if flow::client(ctx, "client")?.kind != ClientKind::Confidential {
        return Ok(None);
    }
    let p = BTreeMap::from([("token".to_string(), token.to_string())]);
    let r = endpoint_request(ctx, "client", "introspection", "", &p).await?;
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "the introspection answered {}: the token's claims cannot be read",
            r.status
        )));
    }
    Ok(r.json())
}

/// What the token says of itself, for a JWT, else what introspection says of an active token.
async fn token_claims(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Value, Stop> {
    if let Some(c) = jwt_claims(token) {
        return Ok(c);
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

fn aud_names(aud: &Value, r: &str) -> bool {
    match aud {
        Value::String(a) => a == r,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(r)),
        _ => false,
    }
}

/// An MCP request with an optional token and session id.
pub(crate) async fn mcp_post(
    ctx: &mut CaseCtx<'_>,
    rpc: &str,
    token: Option<&str>,
    session: Option<&str>,
    note: &str,
) -> Result<Response, Stop> {
    let Some(url) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let (body, headers) = crate::runner::actions::mcp_body(rpc, ctx.env.revision);
    let mut req = Request::new("POST", url.clone(), note)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(s) = session {
        req = req.header("Mcp-Session-Id", s);
    }
    ctx.send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from the MCP endpoint {url}: {e}")))
}

/// Two scopes the server names (the profile's first, then `scopes_supported` of the PRM and of
/// the AS metadata; `openid` and `offline_access` aside).
async fn scope_pair(ctx: &mut CaseCtx<'_>) -> Result<(String, String), Stop> {
    let mut names: Vec<String> = ctx
        .env
        .profile
        .authorization
        .scope
        .clone()
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect();
    let mut docs = Vec::new();
    if ctx.env.target.resource.is_some() {
        if !ctx.saved.contains_key("prm") {
            let s = crate::runner::actions::discover_prm(ctx, "auto").await?;
            ctx.saved.insert("prm".into(), s);
        }
        if let Some(Saved::Discovery(d)) = ctx.saved.get("prm") {
            docs.push(d.doc());
        }
    }
    flow::as_endpoint(ctx, "authorization_endpoint").await?;
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

/// An authorization with this scope, and, when it brings a code, its redemption.
async fn grant(
    ctx: &mut CaseCtx<'_>,
    scope: Option<&str>,
    omit: &[String],
) -> Result<(flow::Authorization, Option<Response>), Stop> {
    let params: BTreeMap<String, String> = scope
        .map(|s| BTreeMap::from([("scope".to_string(), s.to_string())]))
        .unwrap_or_default();
    let mut omit = omit.to_vec();
    if scope.is_none() {
        omit.push("scope".into());
    }
    let a = flow::authorize(
        ctx,
        flow::Authorize {
            client: "client",
            redirect_uri: None,
            params: &params,
            omit: &omit,
            extra: None,
            verifier: None,
            session: Some("lifecycle"),
            login: true,
            consent: Consent::Approve,
        },
    )
    .await?;
    if a.code().is_none() {
        return Ok((a, None));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a.clone())));
    let none = BTreeMap::new();
    let saved = flow::token(ctx, super::pkce::token_opts("auth", &none)).await?;
    let r = saved.response().map(|(_, r)| r.clone());
    Ok((a, r))
}

/// What a token response granted: its `scope`, or, when it names none, what was asked
/// (RFC 6749 §5.1: scope is omitted only when it is the requested one).
fn granted(doc: &Value, asked: &str) -> (BTreeSet<String>, bool) {
    match str_member(doc, "scope") {
        Some(s) => (scopes(&s), true),
        None => (scopes(asked), false),
    }
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens (O21 4.3)

/// Authorizes with two scopes the server names and saves the authorization as `auth` and the
/// token response as `on` (default `t1`): a grant that can be narrowed.
pub async fn two_scope_grant(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (a, b) = scope_pair(ctx).await?;
    let asked = format!("{a} {b}");
    let (auth, r) = grant(ctx, Some(&asked), &[]).await?;
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

/// `rt-scope-downscope`: a refresh asking for part of the grant gets an access token for that
/// part, and says so in `scope` (O21 4.3.1; RFC 6749 §6, §5.1).
pub async fn refresh_downscope(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = token_doc(ctx, on)?;
    let rt = str_member(&doc, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?;
    let asked = flow::authorization(ctx, "auth")?
        .param("scope")
        .unwrap_or("")
        .to_string();
    let (have, _) = granted(&doc, &asked);
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
        Some(sc) if scopes(&sc) == scopes(&narrow) => {
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
    let doc = token_doc(ctx, on)?;
    let rt1 = str_member(&doc, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?;
    let asked = flow::authorization(ctx, "auth")?
        .param("scope")
        .unwrap_or("")
        .to_string();
    let (original, _) = granted(&doc, &asked);
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
        Some(sc) if scopes(&sc) == original => {
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
    let doc = token_doc(ctx, on)?;
    let rt = str_member(&doc, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?;
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
    if r.status != 200 {
        let e = oauth_error(&r);
        return match e.as_deref() {
            Some(code) => {
                ctx.pass(format!(
                    "the refresh naming {OTHER_RESOURCE} was refused ({} error={code})",
                    r.status
                ));
                Ok(())
            }
            None => ctx.fail(format!(
                "the refresh naming another resource answered {} without an OAuth error",
                r.status
            )),
        };
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
    let doc = token_doc(ctx, on)?;
    let rt = str_member(&doc, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?;
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
    ctx.idle(wait).await;
    let r = refresh(ctx, &rt, &[]).await?;
    match (r.status, oauth_error(&r).as_deref()) {
        (400 | 401, Some("invalid_grant")) => {
            ctx.pass(format!(
                "a refresh token unused for {} s was refused with invalid_grant",
                wait.as_secs()
            ));
            Ok(())
        }
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

/// Bits an attacker must guess, estimated from the samples: positions (up to the shortest
/// value) where the samples differ, times the bits of the alphabet they use (hex, decimal,
/// alphanumeric or base64url).
fn estimated_bits(values: &[String]) -> f64 {
    let shortest = values.iter().map(String::len).min().unwrap_or(0);
    let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let varying: Vec<usize> = (0..shortest)
        .filter(|&i| bytes.iter().any(|b| b[i] != bytes[0][i]))
        .collect();
    let chars: Vec<u8> = varying
        .iter()
        .flat_map(|&i| bytes.iter().map(move |b| b[i]))
        .collect();
    let per_char = if chars.iter().all(u8::is_ascii_digit) {
        10f64.log2()
    } else if chars.iter().all(u8::is_ascii_hexdigit) {
        4.0
    } else if chars.iter().all(u8::is_ascii_alphanumeric) {
        62f64.log2()
    } else {
        6.0
    };
    varying.len() as f64 * per_char
}

/// The shared judgement: distinct, no counters, and at least `min_bits` estimated.
pub(crate) fn judge_entropy(
    ctx: &mut CaseCtx<'_>,
    what: &str,
    values: &[String],
    min_bits: f64,
) -> StepResult {
    super::authorization_code::unpredictable(ctx, what, values)?;
    let bits = estimated_bits(values);
    if bits < min_bits {
        return ctx.fail(format!(
            "the {what} carry about {bits:.0} bits that vary across {} samples, fewer than {min_bits:.0}",
            values.len()
        ));
    }
    ctx.pass(format!(
        "{} {what}: distinct, no counter, about {bits:.0} varying bits (≥ {min_bits:.0})",
        values.len()
    ));
    Ok(())
}

/// `rt-entropy` / `at-entropy`: collects up to `samples` (default 16, at most 20) refresh or
/// access tokens, by refreshing the grant saved as `on` (each rotation brings a new one) or, when
/// refresh tokens do not rotate, by new authorizations; signed JWT access tokens are left out
/// (their security rests on the signature). Loops are bounded by the sample count.
pub async fn token_entropy(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let kind = args
        .get("kind")
        .and_then(toml::Value::as_str)
        .unwrap_or("refresh");
    let member = if kind == "access" {
        "access_token"
    } else {
        "refresh_token"
    };
    let n = args
        .get("samples")
        .and_then(toml::Value::as_integer)
        .unwrap_or(16)
        .clamp(5, 20) as usize;
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
            let (a, r) = grant(
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
    judge_entropy(ctx, what, &values, 128.0)
}

// ---------------------------------------------------------------------------------------------
// Revocation of access tokens (RFC 7009)

pub(crate) fn access_token_of(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    str_member(&token_doc(ctx, on)?, "access_token")
        .ok_or_else(|| Stop::Error(format!("`{on}` holds no access token")))
}

/// `rev-at`: after the AS accepted the revocation of an access token, the MCP server refuses
/// it (RFC 7009 §2). A self-contained JWT the RS checks only locally may live on until `exp`:
/// reported as a warning (the row grades it INFO).
pub async fn revoked_access_at_resource(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = access_token_of(ctx, on)?;
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
    let r = crate::runner::actions::mcp_with_token(
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
    let doc = token_doc(ctx, on)?;
    let rt = str_member(&doc, "refresh_token")
        .ok_or_else(|| Stop::Skip("no refresh token was issued".into()))?;
    let at = access_token_of(ctx, on)?;
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
    match (r.status, oauth_error(&r).as_deref()) {
        (200, _) => {
            ctx.pass("revoking the access token left the refresh token of its grant working (RFC 7009 §2.1 allows either)");
            Ok(())
        }
        (400 | 401, Some("invalid_grant")) => {
            ctx.pass("revoking the access token revoked the refresh token of its grant too (RFC 7009 §2.1 allows either)");
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
    let at = access_token_of(ctx, on)?;
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
    let r = crate::runner::actions::mcp_with_token(
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

// ---------------------------------------------------------------------------------------------
// Audience (RFC 8707)

/// `as-resource-ignored`: the access token obtained with `resource` has a different audience
/// from the one obtained without it (MCP 2025-11-25 §11.1: the AS binds tokens when it supports
/// the parameter). `on` names the token with `resource`; `args.without` the one without.
pub async fn resource_changes_aud(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let without = args
        .get("without")
        .and_then(toml::Value::as_str)
        .unwrap_or("t2")
        .to_string();
    let resource = ctx
        .env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint: no resource to name".into()))?;
    let with_at = access_token_of(ctx, on)?;
    let without_at = access_token_of(ctx, &without)?;
    let a1 = token_claims(ctx, &with_at)
        .await?
        .get("aud")
        .cloned()
        .unwrap_or(Value::Null);
    let a2 = token_claims(ctx, &without_at)
        .await?
        .get("aud")
        .cloned()
        .unwrap_or(Value::Null);
    ctx.note(format!("aud with resource: {a1}; without: {a2}"));
    if a1 == a2 {
        ctx.warn(format!(
            "the tokens have the same audience ({a1}) with and without resource: the AS ignores the parameter, so the MCP server must check the audience some other way"
        ));
        return Ok(());
    }
    if !aud_names(&a1, &resource) {
        ctx.warn(format!(
            "the audience differs with resource, but does not name {resource} (aud {a1})"
        ));
        return Ok(());
    }
    ctx.pass(format!(
        "naming the resource binds the token to it (aud {a1}; without resource: {a2})"
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scopes at the AS

/// `as-scope-invalid`, `as-scope-omitted`, `as-scope-syntax`, `as-resource-unknown`: what came
/// of the authorization saved as `on` (sent with `expect = "any"`) and its odd `args.param`. A
/// controlled refusal (an error redirect with one of `args.errors`, default `invalid_scope`; a
/// 4xx page; the token endpoint's error) passes; a 5xx fails; tokens issued anyway are judged
/// by `args.accepted` (`warn`: ignored silently; `pass`: e.g. a default scope is a conforming
/// answer; `fail`).
pub async fn request_refused(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let errors: Vec<String> = args
        .get("errors")
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec!["invalid_scope".into()]);
    let accepted = args
        .get("accepted")
        .and_then(toml::Value::as_str)
        .unwrap_or("warn")
        .to_string();
    let param = args
        .get("param")
        .and_then(toml::Value::as_str)
        .unwrap_or("scope")
        .to_string();
    let a = flow::authorization(ctx, on)?.clone();
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
    let saved = flow::token(ctx, super::pkce::token_opts(on, &none)).await?;
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
    let (auth1, r1) = grant(ctx, Some(&first), &[]).await?;
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
    let (auth2, r2) = grant(ctx, Some(&second), &[]).await?;
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
    let asked = scopes(
        flow::authorization(ctx, "auth")?
            .param("scope")
            .unwrap_or(""),
    );
    if let Some(sc) = str_member(&doc, "scope") {
        let got = scopes(&sc);
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
    let at = access_token_of(ctx, on)?;
    let claims = token_claims(ctx, &at).await?;
    let Some(real) = str_member(&claims, "scope") else {
        return Err(Stop::Skip(
            "the token response omits scope and the token's own claims name none: what was granted cannot be read".into(),
        ));
    };
    if scopes(&real) == asked {
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

// ---------------------------------------------------------------------------------------------
// MCP sessions at the resource server

pub(crate) async fn session_from_initialize(
    ctx: &mut CaseCtx<'_>,
    token: &str,
) -> Result<Option<String>, Stop> {
    let r = mcp_post(
        ctx,
        "initialize",
        Some(token),
        None,
        "initialize with a valid token",
    )
    .await?;
    if !(200..300).contains(&r.status) {
        return Err(Stop::Error(format!(
            "initialize with a valid token answered {}: no session to probe",
            r.status
        )));
    }
    Ok(r.header("mcp-session-id").map(str::to_string))
}

/// `rs-auth-every-request`: a live session id without a token is refused with 401 (MCP §9.1;
/// Security Best Practices: sessions must not authenticate).
pub async fn session_needs_token(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = access_token_of(ctx, on)?;
    let Some(sid) = session_from_initialize(ctx, &at).await? else {
        return Err(Stop::Skip(
            "initialize returned no Mcp-Session-Id: the server keeps no sessions to abuse".into(),
        ));
    };
    let live = mcp_post(
        ctx,
        "tools/list",
        Some(&at),
        Some(&sid),
        "tools/list in the session, with the token (the session must be live)",
    )
    .await?;
    if !(200..300).contains(&live.status) {
        return Err(Stop::Error(format!(
            "tools/list in the new session with the token answered {}: the session is not usable",
            live.status
        )));
    }
    let r = mcp_post(
        ctx,
        "tools/list",
        None,
        Some(&sid),
        "tools/list with the session id and no token",
    )
    .await?;
    match r.status {
        401 => {
            ctx.pass("a live session id without a token gets 401");
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the session id alone was enough: tools/list without a token answered {s}"
        )),
        s => ctx.fail(format!(
            "tools/list with a session id and no token answered {s}, not 401 with a challenge"
        )),
    }
}

/// `rs-stale-session-4xx`: a session id the server never issued, on a non-initialize request
/// with a valid token. Up to 2025-11-25 a server with sessions answers 404 (another 4xx is a
/// warning); a server without sessions, and any 2026-07-28 server, ignores the header. A 5xx, or
/// echoing the unknown id as if it were live, fails.
pub async fn stale_session(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    const STALE: &str = "00000000-0000-0000-0000-000000000000";
    let at = access_token_of(ctx, on)?;
    let minted = session_from_initialize(ctx, &at).await?.is_some();
    let r = mcp_post(
        ctx,
        "tools/list",
        Some(&at),
        Some(STALE),
        "tools/list with a valid token and a session id never issued",
    )
    .await?;
    let echoed = r.header("mcp-session-id") == Some(STALE);
    let stateless_rev = ctx.env.revision == Revision::V2026_07_28;
    match r.status {
        s if s >= 500 => ctx.fail(format!("an unknown session id caused a server error ({s})")),
        s if s < 300 && echoed => ctx.fail(format!(
            "the server answered {s} and echoed the unknown session id as if it were live"
        )),
        404 if !stateless_rev => {
            ctx.pass("an unknown session id gets 404");
            Ok(())
        }
        s if s < 300 && (stateless_rev || !minted) => {
            ctx.pass(format!(
                "the header was ignored and the request served ({s}){}",
                if minted { "" } else { ": the server keeps no sessions" }
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the server issues sessions but served a request naming one it never issued ({s}); MCP 2025-11-25 wants 404"
        )),
        s if stateless_rev => {
            ctx.warn(format!(
                "a 2026-07-28 server should ignore Mcp-Session-Id; it answered {s}"
            ));
            Ok(())
        }
        s if minted => {
            ctx.warn(format!(
                "an unknown session id got {s}: a refusal, but MCP 2025-11-25 says 404"
            ));
            Ok(())
        }
        s => {
            ctx.pass(format!(
                "the server keeps no sessions and refused the unknown id ({s})"
            ));
            Ok(())
        }
    }
}

/// `rs-session-id-entropy`: `Mcp-Session-Id` values from `samples` initializes (default 32, at
/// most 100) are distinct, not counters, and carry at least ~122 bits (a UUIDv4's).
pub async fn session_id_entropy(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let n = args
        .get("samples")
        .and_then(toml::Value::as_integer)
        .unwrap_or(32)
        .clamp(5, 100) as usize;
    let at = access_token_of(ctx, on)?;
    let mut ids = Vec::new();
    for _ in 0..n {
        match session_from_initialize(ctx, &at).await? {
            Some(id) => ids.push(id),
            None if ids.is_empty() => {
                return Err(Stop::Skip(
                    "initialize returned no Mcp-Session-Id: the server keeps no sessions".into(),
                ));
            }
            None => {
                return ctx.fail("some initialize responses carry an Mcp-Session-Id, others none");
            }
        }
    }
    judge_entropy(ctx, "session ids", &ids, 120.0)
}
