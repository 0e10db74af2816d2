//! The `token` step (O21 3.2): a request to the token endpoint, or with the same client
//! authentication to the revocation (RFC 7009) or introspection (RFC 7662) endpoint, usually
//! redeeming a saved authorization's code. Built from raw strings like the authorization request.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::authorize::{authorization, new_verifier};
use super::client::{Client, judged};
use super::context::{CaseCtx, Saved, StepResult, Stop};
use super::discovery::as_endpoint;
use super::params::{adjust, enc, encode_pairs};
use crate::case::model::{Assertion, TokenStep};
use crate::http::{Request, Response};
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Builds a client assertion (RFC 7523 §3) as the case describes it, valid by default.
fn client_assertion(
    ctx: &CaseCtx<'_>,
    client: &Client,
    spec: &Assertion,
    token_endpoint: &str,
) -> Result<String, Stop> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let key = client.key.as_ref().ok_or_else(|| {
        Stop::Error(format!(
            "client {} has no key: register it with auth_method = \"private_key_jwt\"",
            client.client_id
        ))
    })?;
    let field = |v: &Option<String>, default: String| -> Result<Option<String>, Stop> {
        let v = match v {
            Some(t) => ctx.expand(t).map_err(Stop::Error)?,
            None => default,
        };
        Ok((!v.is_empty()).then_some(v))
    };
    let offset = |v: Option<String>| -> Result<Option<i64>, Stop> {
        v.map(|s| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| Stop::Error(format!("assertion time offset {s:?} is not a number")))
        })
        .transpose()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut claims = serde_json::Map::new();
    for (name, v, default) in [
        ("iss", &spec.iss, client.client_id.clone()),
        ("sub", &spec.sub, client.client_id.clone()),
        ("aud", &spec.aud, token_endpoint.to_string()),
        ("jti", &spec.jti, new_verifier()),
    ] {
        if let Some(x) = field(v, default)? {
            claims.insert(name.into(), Value::String(x));
        }
    }
    if let Some(e) = offset(field(&spec.exp, "60".into())?)? {
        claims.insert("exp".into(), json!(now + e));
    }
    if let Some(n) = offset(field(&spec.nbf, String::new())?)? {
        claims.insert("nbf".into(), json!(now + n));
    }
    claims.insert("iat".into(), json!(now));
    let alg = field(&spec.alg, "ES256".into())?.unwrap_or_default();
    let signed = match alg.as_str() {
        "ES256" => {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = key.jwk["kid"].as_str().map(str::to_string);
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&key.pkcs8))
        }
        // Same kid, a key the AS never saw: the signature must not verify.
        "ES256-other-key" => {
            let other = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
            let mut h = Header::new(Algorithm::ES256);
            h.kid = key.jwk["kid"].as_str().map(str::to_string);
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&other.pkcs8))
        }
        "HS256-public-key" => jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.public_pem.as_bytes()),
        ),
        // An unsigned token is an attack string to send, not something to build with a
        // JWT library (which rightly refuses to).
        "none" => Ok(format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        )),
        other => return Err(Stop::Error(format!("unknown assertion alg {other:?}"))),
    };
    signed.map_err(|e| Stop::Error(format!("signing the client assertion: {e}")))
}

/// Builds and sends a token request; returns the (first) response.
pub async fn token(ctx: &mut CaseCtx<'_>, t: &TokenStep) -> Result<Saved, Stop> {
    let client = super::client::named(ctx, &t.client)?.clone();
    // A push carries an authorization request (RFC 9126 §2.1), the default one of this client.
    if t.endpoint.as_deref() == Some("par") {
        let redirect = client.redirect_uris.first().cloned().unwrap_or_default();
        let challenge = super::authorize::s256(&new_verifier());
        let pairs = super::authorize::default_params(ctx, &client, redirect, &challenge);
        return send(ctx, t, pairs).await;
    }
    let grant_type = ctx.expand(&t.grant_type).map_err(Stop::Error)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !grant_type.is_empty() {
        pairs.push(("grant_type".into(), grant_type.clone()));
    }
    // By default a code grant redeems the authorization saved as `auth`, if there is one.
    let from = t.from.as_deref().or((grant_type == "authorization_code"
        && matches!(ctx.saved.get("auth"), Some(Saved::Authorization(_))))
    .then_some("auth"));
    if let Some(f) = from {
        let a = authorization(ctx, f)?.clone();
        match a.code() {
            Some(c) => pairs.push(("code".into(), c.to_string())),
            None => {
                let msg = format!("no code to redeem: the authorization {}", a.describe());
                return Err(judged(ctx, t.if_no_code, msg));
            }
        }
        if let Some(r) = &a.redirect_uri {
            pairs.push(("redirect_uri".into(), r.clone()));
        }
        if let Some(v) = &a.verifier {
            pairs.push(("code_verifier".into(), v.clone()));
        }
        if let Some(r) = a.param("resource") {
            pairs.push(("resource".into(), r.to_string()));
        }
    }
    send(ctx, t, pairs).await
}

/// Sends `pairs` to the step's endpoint with the client's authentication (or the step's
/// choice of it) and the step's `params`/`omit` applied; returns the (first) response.
pub async fn send(
    ctx: &mut CaseCtx<'_>,
    t: &TokenStep,
    mut pairs: Vec<(String, String)>,
) -> Result<Saved, Stop> {
    let member = match t.endpoint.as_deref().unwrap_or("token") {
        "token" => "token_endpoint",
        "revocation" => "revocation_endpoint",
        "introspection" => "introspection_endpoint",
        "par" => super::par::MEMBER,
        other => return Err(Stop::Error(format!("unknown endpoint {other:?}"))),
    };
    let par = member == super::par::MEMBER;
    let endpoint = if par {
        super::par::endpoint(ctx).await?
    } else {
        as_endpoint(ctx, member).await?
    };
    // An assertion's audience is the token endpoint whichever endpoint it is sent to.
    let token_endpoint = if member == "token_endpoint" {
        endpoint.clone()
    } else {
        as_endpoint(ctx, "token_endpoint").await?
    };
    let client = super::client::named(ctx, &t.client)?.clone();
    let grant_type = if par {
        String::new()
    } else {
        ctx.expand(&t.grant_type).map_err(Stop::Error)?
    };
    let secret = match &t.secret {
        Some(s) => Some(ctx.expand(s).map_err(Stop::Error)?),
        None => client.secret.clone(),
    };
    let method = t
        .auth
        .as_deref()
        .unwrap_or(match client.auth_method.as_str() {
            "client_secret_basic" => "basic",
            "client_secret_post" => "post",
            "private_key_jwt" => "jwt",
            _ => "none",
        });
    // An assertion that is the grant (RFC 7523 §2.1) goes in `assertion`, and the request
    // carries no client authentication unless the step names one.
    let grant_assertion = t.assertion.as_ref().filter(|a| a.grant);
    let method = match (grant_assertion, &t.assertion) {
        (Some(_), _) => t.auth.as_deref().unwrap_or("omit"),
        (None, Some(_)) => "jwt",
        (None, None) => method,
    };
    if let Some(spec) = grant_assertion {
        let jwt = client_assertion(ctx, &client, spec, &token_endpoint)?;
        pairs.push(("assertion".into(), jwt));
    }
    let mut basic = None;
    let mut query = Vec::new();
    let sec = secret.clone().unwrap_or_default();
    match method {
        "none" => pairs.push(("client_id".into(), client.client_id.clone())),
        "post" => {
            pairs.push(("client_id".into(), client.client_id.clone()));
            pairs.push(("client_secret".into(), sec));
        }
        "basic" => basic = Some(basic_auth(&client.client_id, &sec)),
        "both" => {
            basic = Some(basic_auth(&client.client_id, &sec));
            pairs.push(("client_id".into(), client.client_id.clone()));
            pairs.push(("client_secret".into(), sec));
        }
        "query" => {
            query.push(("client_id".to_string(), client.client_id.clone()));
            query.push(("client_secret".to_string(), sec));
        }
        "omit" => {}
        "jwt" => {
            let spec = t.assertion.clone().unwrap_or_default();
            let jwt = client_assertion(ctx, &client, &spec, &token_endpoint)?;
            pairs.push(("client_id".into(), client.client_id.clone()));
            pairs.push(("client_assertion_type".into(), JWT_BEARER.into()));
            pairs.push(("client_assertion".into(), jwt));
        }
        other => return Err(Stop::Error(format!("unknown token auth {other:?}"))),
    }
    // A pushed request already names its client_id (RFC 9126 §2.1): once is enough.
    if par {
        let mut seen = false;
        pairs.retain(|(k, _)| k != "client_id" || !std::mem::replace(&mut seen, true));
    }
    if let Some(s) = &secret {
        ctx.env.http.redactor().add_secret(s);
    }
    adjust(ctx, &mut pairs, &t.params, &t.omit)?;
    let mut body = if t.json_body {
        let m: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(m).to_string()
    } else {
        encode_pairs(&pairs)
    };
    if let Some(x) = &t.extra {
        body.push_str(&ctx.expand(x).map_err(Stop::Error)?);
    }
    let mut url = endpoint.clone();
    if t.method == "GET" {
        query.extend(pairs.iter().cloned());
    }
    if !query.is_empty() {
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}{}", encode_pairs(&query));
    }
    let mut req = Request::new(
        &t.method,
        url.clone(),
        match member {
            "token_endpoint" => format!("token request ({grant_type})"),
            "revocation_endpoint" => "revocation request".to_string(),
            super::par::MEMBER => "pushed authorization request (RFC 9126)".to_string(),
            _ => "introspection request".to_string(),
        },
    )
    .header("Accept", "application/json");
    if t.method != "GET" {
        let ct = if t.json_body {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        req = req.header("Content-Type", ct).body(body);
    }
    if let Some(b) = basic {
        req = req.header("Authorization", b);
    }
    let n = t.parallel.unwrap_or(1).clamp(1, 32);
    let mut responses: Vec<Response> = Vec::new();
    if let Some(spec) = &t.dpop {
        // RFC 9449 §5: the proof of a token request; a nonce asked for is used in one retry.
        let r = super::dpop::send(ctx, req, spec, None).await?;
        remember_tokens(ctx, &r);
        responses.push(r);
    } else if n == 1 {
        let r = ctx
            .send(req)
            .await
            .map_err(|e| Stop::Error(format!("token request to {endpoint}: {e}")))?;
        remember_tokens(ctx, &r);
        responses.push(r);
    } else {
        let http = ctx.env.http.clone();
        let futs = (0..n).map(|_| {
            let http = http.clone();
            let req = req.clone();
            async move { http.send(req).await }
        });
        let all = futures_util::future::join_all(futs).await;
        for (res, ex) in all {
            ctx.exchanges.push(ex);
            ctx.recorder().note_blocked(&url, &res);
            match res {
                Ok(r) => {
                    remember_tokens(ctx, &r);
                    responses.push(r);
                }
                Err(e) => {
                    return Err(Stop::Error(format!("token request to {endpoint}: {e}")));
                }
            }
        }
    }
    let first = responses[0].clone();
    if n > 1 {
        ctx.parallel = responses;
    }
    Ok(Saved::Response {
        url,
        response: first,
    })
}

/// A correct request to the token endpoint (one that must succeed) tells how the AS treats its
/// grant type and its client authentication method: accepted, or refused for them
/// (`unsupported_grant_type`; 401 or `invalid_client`). The metadata cross-checks
/// (asm-grant-types, asm-auth-methods) read these facts after the run.
fn publish_facts(ctx: &CaseCtx<'_>, s: &TokenStep, saved: &Saved) {
    use super::facts::{Fact, FactKind};
    let must_succeed =
        s.precondition == Some(true) || s.expect.as_ref().is_some_and(|e| e.demands_success());
    let endpoint = s.endpoint.as_deref().unwrap_or("token");
    let (Some((_, r)), Some(x)) = (saved.response(), ctx.exchanges.last()) else {
        return;
    };
    let fact = |kind| Fact {
        case: ctx.case_id.clone(),
        kind,
    };
    if let Some(member) = match endpoint {
        "revocation" => Some("revocation_endpoint"),
        "introspection" => Some("introspection_endpoint"),
        _ => None,
    } {
        let worked = must_succeed
            && r.status == 200
            && (member == "revocation_endpoint"
                || r.json()
                    .is_some_and(|j| j.get("active").is_some_and(|a| a.is_boolean())));
        ctx.env.facts.add(fact(FactKind::Endpoint {
            member,
            status: r.status,
            worked,
            correct: must_succeed,
        }));
    }
    if !must_succeed || endpoint != "token" {
        return;
    }
    let a = super::facts::TokenAnswer::of(r);
    if a.issued || a.grant_refused() {
        ctx.env.facts.add(fact(FactKind::Grant {
            grant_type: s.grant_type.clone(),
            accepted: a.issued,
            answer: a.answer(),
        }));
    }
    // A case that chose how to authenticate (a wrong secret, two methods) sent no correct
    // request for this purpose.
    if (a.issued || a.auth_refused()) && s.auth.is_none() && s.secret.is_none() {
        ctx.env.facts.add(fact(FactKind::ClientAuth {
            method: super::client_auth_method(x),
            accepted: a.issued,
            answer: a.answer(),
        }));
    }
}

/// Issued tokens become known secrets: they are redacted wherever they appear later.
fn remember_tokens(ctx: &CaseCtx<'_>, r: &Response) {
    if let Some(doc) = r.json() {
        for k in ["access_token", "refresh_token", "id_token"] {
            if let Some(s) = doc.get(k).and_then(Value::as_str) {
                ctx.env.http.redactor().add_secret(s);
            }
        }
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded, then joined and base64-encoded.
pub fn basic_auth(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// The default token request, redeeming the code of the authorization saved as `from`, with
/// `params` added: what checks send where a case would write a plain `token` step.
pub fn redeeming(from: &str, params: BTreeMap<String, String>) -> TokenStep {
    TokenStep {
        from: Some(from.to_string()),
        params,
        ..Default::default()
    }
}

/// The `token` step: the request, saved and judged. A failed expectation of a request marked
/// `precondition` means the case cannot be judged.
pub async fn run(ctx: &mut CaseCtx<'_>, s: &TokenStep) -> StepResult {
    let saved = token(ctx, s).await?;
    publish_facts(ctx, s, &saved);
    // The PAR endpoint's errors are not the token endpoint's error-format case's to judge.
    let owner = (s.endpoint.as_deref() != Some("par")).then_some(super::ErrorOwner::Token);
    let r = super::save_and_expect(ctx, saved, &s.save, s.expect.as_ref(), owner);
    super::precondition_held(
        ctx,
        r,
        s.precondition == Some(true),
        &s.save,
        match s.endpoint.as_deref() {
            Some("revocation") => super::Stage::Revocation,
            Some("introspection" | "par") => super::Stage::Http,
            _ => super::Stage::Token(&s.grant_type),
        },
    )
}
