//! Area 11, tokens that are not the MCP server's own (MCP 2025-11-25 §9.2: it "MUST NOT accept
//! or transit any other tokens"; §11.8 and the Security Best Practices "Token Passthrough"):
//! an OpenID Connect ID token presented as the bearer token, a token another authorization
//! server issued (the upstream API's), and the client's token forwarded to an upstream API.
//!
//! Tokens are compared, never printed: what reaches a report goes through the redactor, and the
//! canary upstream's log keeps only what the verdict needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::tokens::{jwt_object, jwt_parts, saved_access_token};
use crate::http::{Request, Response};
use crate::step::token;
use crate::step::{CaseCtx, Saved, StepResult, Stop};

/// The issuer of the stand-in foreign token: no authorization server of the target's.
const STAND_IN_ISSUER: &str = "https://upstream-as.authconform.test";
/// Requests the canary keeps at most (a tool that loops on it must not grow the log).
const CANARY_MAX_HITS: usize = 16;
/// How long the canary waits for a request after the tool call has answered (a tool may
/// return before its upstream request is made).
const CANARY_GRACE: Duration = Duration::from_secs(1);

/// The claims of a JWT, when the string is one (no verification: only to describe it). Only the
/// payload is read, not the header [`super::tokens::jwt_claims`] also asks for.
fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let [_, claims, _] = jwt_parts(token)?;
    jwt_object(claims)
}

/// A resource server's answer to a token it must refuse (MCP 2025-11-25 §9.2, RFC 6750 §3.1:
/// 401 `invalid_token`). A 403 says the token is valid but short of scope: taken as authentic.
fn judge_refusal(ctx: &mut CaseCtx<'_>, r: &Response, what: &str) -> StepResult {
    match r.status {
        401 => {
            ctx.pass(format!("{what}: refused with 401"));
            Ok(())
        }
        403 => ctx.fail(format!(
            "{what}: answered 403, which says the token is valid but lacks scope (RFC 6750 §3.1); a token that is not the server's own must get 401 invalid_token (MCP 2025-11-25 §9.2)"
        )),
        s if (200..300).contains(&s) => ctx.fail(format!("{what}: ACCEPTED ({s})")),
        s if s >= 500 => ctx.fail(format!(
            "{what}: the resource server failed with {s} instead of refusing it with 401"
        )),
        s => {
            ctx.warn(format!(
                "{what}: refused with {s}; MCP 2025-11-25 §9.2 and RFC 6750 §3.1 expect 401 invalid_token"
            ));
            Ok(())
        }
    }
}

fn resource(ctx: &CaseCtx<'_>) -> Result<String, Stop> {
    ctx.env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint to present tokens to".into()))
}

// ---------------------------------------------------------------------------------------------
// rs-id-token-as-at

/// Authorizes with `openid` added to the profile's scope (and a `nonce`, OIDC Core 1.0
/// §3.1.2.1), redeems the code and saves the token response as `on`. An AS that does not grant
/// `openid` is no OpenID Provider: nothing to test, skipped.
pub async fn openid_grant(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let base = ctx
        .env
        .profile
        .authorization
        .scope
        .clone()
        .unwrap_or_default();
    let scope = std::iter::once("openid")
        .chain(base.split(' ').filter(|x| !x.is_empty() && *x != "openid"))
        .collect::<Vec<_>>()
        .join(" ");
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let params = BTreeMap::from([
        ("scope".to_string(), scope.clone()),
        ("nonce".to_string(), nonce),
    ]);
    let a = super::tokens::user_authorization(ctx, &params, &[], None).await?;
    if a.code().is_none() {
        return Err(Stop::Skip(format!(
            "the AS did not grant scope {scope:?} (it {}): not an OpenID Provider, so no ID token to present",
            a.describe()
        )));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a)));
    let none = BTreeMap::new();
    let saved = token::token(ctx, &token::redeeming("auth", none)).await?;
    let status = saved.response().map(|(_, r)| r.status);
    if status != Some(200) {
        return Err(Stop::Error(format!(
            "redeeming the code granted for scope {scope:?} answered {status:?}: no tokens to work with"
        )));
    }
    ctx.note(format!("tokens granted for scope {scope:?}"));
    ctx.saved.insert(on.into(), saved);
    Ok(())
}

/// The `id_token` of the token response saved as `on`, presented as the bearer token: the RS
/// must refuse it (its `aud` is the client, OIDC Core 1.0 §2; not this resource, MCP §9.2).
pub async fn id_token_as_access(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => r.json().unwrap_or_default(),
        None => return Err(Stop::Error(format!("nothing saved as `{on}`"))),
    };
    let Some(id_token) = doc
        .get("id_token")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(Stop::Skip(
            "the token response for the openid scope carries no id_token: the AS issued no OpenID Connect ID token, so there is none to present".into(),
        ));
    };
    let resource = resource(ctx)?;
    match jwt_claims(&id_token) {
        Some(c) => {
            let show = |k: &str| c.get(k).map(Value::to_string).unwrap_or("(none)".into());
            ctx.note(format!(
                "the ID token's iss {}, aud {} (the resource is {resource:?})",
                show("iss"),
                show("aud")
            ));
        }
        None => ctx.note("the id_token is not a JWT (OIDC Core 1.0 §2 says it is)"),
    }
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &id_token,
        "the OIDC ID token as the bearer token",
    )
    .await?;
    judge_refusal(ctx, &r, "the ID token")
}

// ---------------------------------------------------------------------------------------------
// rs-upstream-token-rejected

/// A token another authorization server issued must be refused: the profile's real one
/// (`[tokens] upstream_env`), else a stand-in the suite signs, which can show a failure but
/// not a pass. `on` is the real token response (the stand-in copies its scope).
pub async fn upstream_token(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let resource = resource(ctx)?;
    if let Some(t) = ctx.env.profile.tokens.upstream.clone() {
        ctx.env.http.redactor().add_secret(&t);
        let r = crate::step::request::mcp_with_token(
            ctx,
            &resource,
            &t,
            "a token another authorization server issued (profile [tokens] upstream_env)",
        )
        .await?;
        return judge_refusal(ctx, &r, "the upstream authorization server's token");
    }
    // The stand-in: an RFC 9068 access token for this resource, with the real token's scope,
    // from an issuer that is not the target's and signed with a key of the suite's.
    let at = saved_access_token(ctx, on)?;
    let scope = jwt_claims(&at)
        .and_then(|c| c.get("scope").and_then(Value::as_str).map(str::to_string))
        .or_else(|| ctx.env.profile.authorization.scope.clone());
    let key = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
    let t = super::audience::now();
    let header: Map<String, Value> =
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": key.jwk["kid"] })
            .as_object()
            .cloned()
            .unwrap_or_default();
    let mut claims: Map<String, Value> = json!({
        "iss": STAND_IN_ISSUER, "sub": "authconform-upstream-user", "aud": resource,
        "client_id": "authconform-upstream-client", "iat": t, "nbf": t, "exp": t + 600,
        "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    if let Some(sc) = scope {
        claims.insert("scope".into(), json!(sc));
    }
    let stand_in = super::audience::signed(
        &header,
        &claims,
        &EncodingKey::from_ec_der(&key.pkcs8),
        Algorithm::ES256,
    )?;
    ctx.note(format!(
        "no upstream token configured: a stand-in JWT access token for this resource from issuer {STAND_IN_ISSUER}, signed with a key of the suite's"
    ));
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &stand_in,
        "a stand-in token from another issuer (no [tokens] upstream_env in the profile)",
    )
    .await?;
    if (200..300).contains(&r.status) {
        return ctx.fail(format!(
            "the resource server ACCEPTED ({}) a JWT from issuer {STAND_IN_ISSUER}, which is not its authorization server",
            r.status
        ));
    }
    Err(Stop::Skip(format!(
        "no upstream token configured; a stand-in from another issuer, signed by the suite, was refused ({}), which shows only that unverifiable tokens are refused (rs-foreign-issuer's ground). Set [tokens] upstream_env to a variable holding a real token of the upstream API's authorization server: a server that hands tokens on to the upstream to judge accepts that one, and only it can show the requirement holds",
        r.status
    )))
}

// ---------------------------------------------------------------------------------------------
// rs-no-passthrough

/// One request the canary received: what the verdict needs, and the exchange for the report.
struct Hit {
    /// The request carried the client's token: as the whole `Authorization` value
    /// (`Bearer <token>`, scheme case-insensitive), or anywhere else (header or URL).
    verbatim: bool,
    elsewhere: Option<String>,
    /// `Authorization` present: its scheme and the credential's length.
    authorization: Option<(String, usize)>,
    exchange: crate::record::Exchange,
}

/// A plain-http upstream on 127.0.0.1 that logs what it receives (bounded) and answers 200.
struct Canary {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start(token: String, redactor: crate::redact::Redactor) -> Result<Self, Stop> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Stop::Error(format!("canary: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Stop::Error(format!("canary: {e}")))?
            .port();
        let path = format!(
            "/authconform-canary/{}",
            URL_SAFE_NO_PAD.encode(rand::random::<[u8; 9]>())
        );
        let url = format!("http://127.0.0.1:{port}{path}");
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let h = hits.clone();
        let base = format!("http://127.0.0.1:{port}");
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap| {
                let (h, token, redactor, base) =
                    (h.clone(), token.clone(), redactor.clone(), base.clone());
                async move {
                    let hit = inspect(&token, &redactor, &base, &method, &uri, &headers);
                    let mut log = h.lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() < CANARY_MAX_HITS {
                        log.push(hit);
                    }
                    ([("content-type", "text/plain")], "authconform canary\n")
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, hits, task })
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn stop(self) -> Vec<Hit> {
        self.task.abort();
        std::mem::take(&mut *self.hits.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What one canary request says about the client's token; the recorded exchange is redacted
/// (the `Authorization` credential masked, known secrets masked everywhere).
fn inspect(
    token: &str,
    redactor: &crate::redact::Redactor,
    base: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Hit {
    let mut verbatim = false;
    let mut elsewhere = None;
    let mut authorization = None;
    let mut recorded = Vec::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name.as_str() == "authorization" {
            let (scheme, cred) = v.split_once(' ').unwrap_or(("", v.as_str()));
            authorization = Some((scheme.to_string(), cred.trim().len()));
            if scheme.eq_ignore_ascii_case("bearer") && cred.trim() == token {
                verbatim = true;
            }
        }
        if !verbatim && v.contains(token) {
            elsewhere.get_or_insert(format!("the {} header", name.as_str()));
        }
        recorded.push((
            name.as_str().to_string(),
            redactor.header(name.as_str(), &v, false),
        ));
    }
    let target = uri.to_string();
    if target.contains(token) {
        elsewhere.get_or_insert("the request URL".to_string());
    }
    Hit {
        verbatim,
        elsewhere,
        authorization,
        exchange: crate::record::Exchange {
            note: "inbound: the MCP server's upstream request, received by authconform's canary"
                .into(),
            method: method.to_string(),
            url: redactor.text(&format!("{base}{target}")),
            request_headers: recorded,
            request_body: None,
            status: Some(200),
            response_headers: vec![("content-type".into(), "text/plain".into())],
            response_body: Some("authconform canary\n".into()),
            body_truncated: false,
            error: None,
            duration_ms: 0,
        },
    }
}

/// Calls the profile's upstream-calling tool (`[passthrough] tool`, the URL in `argument`)
/// with the access token saved as `on`, pointing it at a canary on 127.0.0.1: the canary must
/// not receive that token (MCP 2025-11-25 §11.8; Security Best Practices "Token Passthrough").
pub async fn no_passthrough(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let cfg = ctx.env.profile.passthrough.clone();
    let Some(tool) = cfg.tool else {
        return Err(Stop::Skip(
            "no tool that calls an upstream URL is configured ([passthrough] tool and argument in the profile): token passthrough can only be observed at an upstream the tester controls".into(),
        ));
    };
    let argument = cfg.argument.unwrap_or_else(|| "url".into());
    let resource = resource(ctx)?;
    let at = saved_access_token(ctx, on)?;
    let canary = Canary::start(at.clone(), ctx.env.http.redactor().clone()).await?;
    ctx.note(format!(
        "calling tool {tool:?} with {argument} = {} (a canary upstream on 127.0.0.1)",
        canary.url
    ));
    let (body, extra) = crate::step::request::mcp_body("tools/call", ctx.env.revision);
    let mut v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["params"]["name"] = json!(tool);
    let mut arguments = Map::new();
    arguments.insert(argument.clone(), json!(canary.url));
    v["params"]["arguments"] = Value::Object(arguments);
    let mut req = Request::new(
        "POST",
        resource.clone(),
        format!("tools/call {tool} with the canary URL and the client's access token"),
    )
    .header("Content-Type", "application/json")
    .header("Accept", "application/json, text/event-stream")
    .header("Authorization", format!("Bearer {at}"))
    .body(v.to_string());
    for (n, val) in extra {
        req = req.header(n, val);
    }
    let sent = ctx.send(req).await;
    // The tool may answer before its upstream request lands: a short, bounded grace.
    let deadline = Instant::now() + CANARY_GRACE;
    while canary.count() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hits = canary.stop();
    let r = sent.map_err(|e| Stop::Error(format!("no response to the tool call: {e}")))?;
    for h in &hits {
        ctx.exchanges.push(h.exchange.clone());
    }
    if hits.is_empty() {
        let outcome = tool_outcome(&r);
        return Err(Stop::Error(format!(
            "no request reached the canary (the tool call answered {}{outcome}): the suite cannot tell what the upstream would receive. The MCP server must run on this machine, the tool must accept an http URL on 127.0.0.1, and `{argument}` must be the argument that carries it",
            r.status
        )));
    }
    ctx.note(format!(
        "the canary received {} request(s) from the MCP server",
        hits.len()
    ));
    if hits.iter().any(|h| h.verbatim) {
        return ctx.fail(
            "the upstream received the client's access token verbatim as its Authorization bearer token: token passthrough (MCP 2025-11-25 §11.8; Security Best Practices \"Token Passthrough\")",
        );
    }
    if let Some(w) = hits.iter().find_map(|h| h.elsewhere.clone()) {
        return ctx.fail(format!(
            "the upstream received the client's access token in {w}: token passthrough (MCP 2025-11-25 §11.8)"
        ));
    }
    let seen: Vec<String> = hits
        .iter()
        .map(|h| match &h.authorization {
            Some((scheme, n)) => format!("{scheme} credential of {n} bytes, not the client's"),
            None => "no Authorization header".into(),
        })
        .collect();
    ctx.pass(format!(
        "the upstream request(s) carried {}; the client's token was not passed through",
        seen.join("; ")
    ));
    Ok(())
}

/// A few words on what the tool call answered, for an error message.
fn tool_outcome(r: &Response) -> String {
    let Some(doc) = r.json() else {
        return String::new();
    };
    if let Some(e) = doc.get("error") {
        let m = e.get("message").and_then(Value::as_str).unwrap_or("");
        return format!(", a JSON-RPC error {m:?}");
    }
    if doc.pointer("/result/isError") == Some(&Value::Bool(true)) {
        let t = doc
            .pointer("/result/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or("");
        let t: String = t.chars().take(200).collect();
        return format!(", a tool error {t:?}");
    }
    String::new()
}
