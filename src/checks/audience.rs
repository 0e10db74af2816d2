//! Area 11, audience: a token is for one resource (RFC 8707 §2; MCP 2025-11-25 §11.1). At the
//! AS: naming the resource changes the audience of the token it issues. At the resource server:
//! a token must be one the AS issued for this resource, and a forged one must be refused (MCP
//! 2025-11-25 §9.2, §11.8; OAuth 2.1 §5.2).
//!
//! Most forged tokens start from a real access token the AS issued to the suite, so a refusal
//! can only come from the change the attack made (the case first shows the real token works).
//! Two are built from scratch (`forged-none`, `forged-unknown-key`), with plausible claims, so
//! they apply whether or not the AS issues JWT access tokens: an RS that takes opaque tokens
//! may still take a JWT that claims its issuer.
//! Tokens are taken apart and reassembled as strings: the attacks are byte strings to send,
//! not JWTs a library would agree to build (it rightly refuses `alg: none`). Signatures, where
//! an attack needs one, come from `jsonwebtoken`'s signing primitive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::tokens::{
    OTHER_RESOURCE, aud_names, jwt_claims, jwt_object, jwt_parts, saved_access_token,
    saved_response, token_claims,
};
use crate::case::model::{ClientKind, ClientStep, TokenStep};
use crate::http::Request;
use crate::step::{CaseCtx, Saved, StepResult, Stop, client, discovery, token};

// ---------------------------------------------------------------------------------------------
// At the AS (RFC 8707 §2)

/// `as-resource-ignored`: the access token obtained with `resource` has a different audience
/// from the one obtained without it (MCP 2025-11-25 §11.1: the AS binds tokens when it supports
/// the parameter; RFC 8707 §2 SHOULD). `on` names the token with `resource`; `args.without` the
/// one without. The same audience both ways is a warning; what the audience names is
/// as-resource-bound's.
pub async fn resource_changes_aud(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let without = super::arg_str(args, "without", "t2").to_string();
    let resource = ctx
        .env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint: no resource to name".into()))?;
    let with_at = saved_access_token(ctx, on)?;
    let without_at = saved_access_token(ctx, &without)?;
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
    // Naming the resource changed the audience: this case's requirement held. Whether that
    // audience names the MCP endpoint is as-resource-bound's requirement (RFC 8707 §2 also
    // lets the AS map the resource to a more general or abstract identifier): noted only.
    if !aud_names(&a1, &resource) {
        ctx.note(format!(
            "the audience with resource does not name {resource} (aud {a1}): judged by as-resource-bound"
        ));
        ctx.pass(format!(
            "naming the resource changes the token's audience ({a1}; without resource: {a2})"
        ));
        return Ok(());
    }
    ctx.pass(format!(
        "naming the resource binds the token to it (aud {a1}; without resource: {a2})"
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// At the resource server: real tokens whose audience is not the MCP server

/// What the suite could learn of a token's audience, and from where.
#[derive(Debug, Clone, PartialEq)]
enum Audience {
    /// The audience names the MCP endpoint (alone or among others).
    Names(Value),
    /// An audience that does not name the MCP endpoint.
    Other(Value),
    /// The token states no audience at all.
    Absent,
    /// The suite could not read it (why).
    Unknown(String),
}

/// The audience of `token`: its `aud` claim when it is a JWT, else what introspection says
/// (RFC 7662 §2.2) when the AS offers it and a confidential client can ask.
async fn audience_of(ctx: &mut CaseCtx<'_>, token: &str, resource: &str) -> (Audience, String) {
    let read = |aud: Option<&Value>| match aud {
        Some(a) if aud_names(a, resource) => Audience::Names(a.clone()),
        None | Some(Value::Null) => Audience::Absent,
        Some(Value::Array(a)) if a.is_empty() => Audience::Absent,
        Some(a) => Audience::Other(a.clone()),
    };
    if let Some(c) = jwt_claims(token) {
        return (read(c.get("aud")), "the JWT's aud claim".into());
    }
    match introspect_any(ctx, token).await {
        Ok(Some(d)) if d.get("active") == Some(&Value::Bool(true)) => {
            (read(d.get("aud")), "introspection (RFC 7662)".into())
        }
        Ok(Some(d)) => (
            Audience::Unknown(format!(
                "introspection answered {d} (not active): the AS may let a client introspect only its own tokens"
            )),
            "introspection".into(),
        ),
        Ok(None) => (
            Audience::Unknown(
                "the token is opaque and the AS offers no introspection_endpoint".into(),
            ),
            "nothing".into(),
        ),
        Err(why) => (Audience::Unknown(why), "nothing".into()),
    }
}

/// Introspects with the case's client when it is confidential, else with a confidential client
/// provisioned for the purpose (a profile one, or one registered): `Ok(None)` when the AS has no
/// introspection endpoint, `Err` with the reason when no answer could be had.
async fn introspect_any(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Option<Value>, String> {
    if discovery::as_endpoint(ctx, "introspection_endpoint")
        .await
        .is_err()
    {
        return Ok(None);
    }
    let confidential =
        client::named(ctx, "client").is_ok_and(|c| c.kind == ClientKind::Confidential);
    let name = if confidential {
        "client"
    } else {
        let want = ClientStep {
            kind: ClientKind::Confidential,
            save: "introspector".into(),
            ..Default::default()
        };
        match client::provision(ctx, &want).await {
            Ok(c) => {
                ctx.saved.insert("introspector".into(), Saved::Client(c));
                "introspector"
            }
            Err(e) => {
                return Err(format!(
                    "the token is opaque and no confidential client could be had to introspect it ({})",
                    stop_reason(&e)
                ));
            }
        }
    };
    let saved = token::token(
        ctx,
        &TokenStep {
            client: name.into(),
            grant_type: String::new(),
            endpoint: Some("introspection".into()),
            params: BTreeMap::from([("token".to_string(), token.to_string())]),
            save: "introspection".into(),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| format!("introspection: {}", stop_reason(&e)))?;
    match saved.response() {
        Some((_, r)) if r.status == 200 => r
            .json()
            .map(Some)
            .ok_or_else(|| "introspection answered 200 without a JSON body".to_string()),
        Some((_, r)) => Err(format!("introspection answered {}", r.status)),
        None => Err("introspection gave no response".into()),
    }
}

fn stop_reason(s: &Stop) -> &str {
    match s {
        Stop::Pass(m) | Stop::Fail(m) | Stop::Skip(m) | Stop::Error(m) => m,
    }
}

/// How an audience probe ends, from what the token's audience is and whether the MCP server
/// took it. `probe` is `wrong` (requested for another resource: the row demands refusal even
/// when the audience cannot be read, since the token was issued for that other resource) or
/// `missing` (requested without `resource`: RFC 8707 §2 lets the AS bind it to a default
/// resource, so only an audience shown to exclude the MCP server demands refusal).
fn audience_verdict(probe: &str, aud: &Audience, accepted: bool) -> Result<String, Stop> {
    let requested = if probe == "wrong" {
        format!("requested with resource={OTHER_RESOURCE}")
    } else {
        "requested without resource".to_string()
    };
    match (aud, accepted) {
        (Audience::Names(a), true) => Err(Stop::Skip(format!(
            "the token {requested} is bound to the MCP server itself (aud {a}){}: accepting it is correct, and no token for another audience could be had to probe the requirement",
            if probe == "missing" {
                ", a default resource RFC 8707 allows"
            } else {
                " (the AS ignored the other resource: see as-resource-ignored)"
            }
        ))),
        (Audience::Names(a), false) => Err(Stop::Skip(format!(
            "the token {requested} is bound to the MCP server itself (aud {a}), yet the MCP server refused it: nothing of this requirement was probed"
        ))),
        (Audience::Other(a), true) => Err(Stop::Fail(format!(
            "the MCP server ACCEPTED a token {requested} whose audience is {a}, not the MCP server (MCP 2025-11-25 §9.2, §11.8)"
        ))),
        (Audience::Absent, true) => Err(Stop::Fail(format!(
            "the MCP server ACCEPTED a token {requested} that names no audience: nothing binds it to this server (MCP 2025-11-25 §11.8)"
        ))),
        (Audience::Unknown(why), true) if probe == "wrong" => Err(Stop::Fail(format!(
            "the MCP server ACCEPTED a token the AS issued for another resource ({requested}); its audience could not be read ({why}), but the token was issued for that resource"
        ))),
        (Audience::Unknown(why), true) => Err(Stop::Skip(format!(
            "the MCP server accepted the token {requested}, whose audience could not be read ({why}): if the AS bound it to the MCP server by default (RFC 8707 allows it), accepting it is correct; configure a confidential client for introspection to judge"
        ))),
        (Audience::Other(a), false) => {
            Ok(format!("refused a token {requested} whose audience is {a}"))
        }
        (Audience::Absent, false) => Ok(format!(
            "refused a token {requested} that names no audience"
        )),
        (Audience::Unknown(why), false) => Ok(format!(
            "refused the token {requested} (its audience could not be read: {why})"
        )),
    }
}

/// `rs-aud-wrong`, `rs-aud-missing`: the MCP server's answer to a real token of its AS (saved as
/// `on`), judged by the token's audience (`args.probe`: `wrong` or `missing`; `args.response`:
/// the saved answer of the MCP endpoint). The `error="invalid_token"` of the challenge is a
/// SHOULD (RFC 6750 §3.1, OAuth 2.1 §5.3.1): its absence is noted, never failed here.
pub async fn token_audience_at_rs(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let probe = super::arg_str(args, "probe", "wrong").to_string();
    let response = super::arg_str(args, "response", "r").to_string();
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint to present tokens to".into()));
    };
    let at = saved_access_token(ctx, on)?;
    let r = saved_response(ctx, &response)?;
    let accepted = match r.status {
        200..=299 => true,
        s if (400..500).contains(&s) && s != 429 => false,
        s => {
            return Err(Stop::Error(format!(
                "the MCP endpoint answered {s}: neither an acceptance nor a refusal"
            )));
        }
    };
    let (aud, source) = audience_of(ctx, &at, &resource).await;
    ctx.note(format!(
        "the token's audience, from {source}: {}",
        match &aud {
            Audience::Names(a) => format!("{a} (names the MCP server)"),
            Audience::Other(a) => format!("{a} (not the MCP server)"),
            Audience::Absent => "none stated".into(),
            Audience::Unknown(why) => format!("unknown: {why}"),
        }
    ));
    let verdict = audience_verdict(&probe, &aud, accepted);
    if let Ok(m) = &verdict {
        if r.status != 401 {
            ctx.note(format!(
                "refused with {} (MCP 2025-11-25 §9.2 asks for 401 for a token it cannot accept)",
                r.status
            ));
        } else {
            let error = crate::www_authenticate::parse_all(r.header_all("www-authenticate"))
                .ok()
                .into_iter()
                .flatten()
                .find(|c| c.is_scheme("bearer"))
                .and_then(|c| {
                    c.params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("error"))
                        .map(|(_, v)| v.clone())
                });
            match error.as_deref() {
                Some("invalid_token") => {}
                Some(e) => ctx.note(format!(
                    "the challenge says error={e:?}; RFC 6750 §3.1 suggests invalid_token (a SHOULD: not judged here)"
                )),
                None => ctx.note(
                    "the challenge carries no error parameter; RFC 6750 §3.1 suggests error=\"invalid_token\" (a SHOULD: not judged here)",
                ),
            }
        }
        ctx.pass(m.clone());
    }
    match verdict {
        Ok(_) => Ok(()),
        Err(Stop::Fail(m)) => ctx.fail(m),
        Err(other) => Err(other),
    }
}

// ---------------------------------------------------------------------------------------------
// At the resource server: forged tokens

/// A JWT taken apart: header and claims as JSON objects, and the signature as sent.
struct Jwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: String,
}

fn parse_jwt(token: &str) -> Option<Jwt> {
    let [header, claims, signature] = jwt_parts(token)?;
    Some(Jwt {
        header: jwt_object(header)?,
        claims: jwt_object(claims)?,
        signature: signature.to_string(),
    })
}

fn b64(m: &Map<String, Value>) -> String {
    URL_SAFE_NO_PAD.encode(Value::Object(m.clone()).to_string())
}

/// `header.claims` signed with `key` (RFC 7515 §5.1 signing input).
pub(super) fn signed(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &EncodingKey,
    alg: Algorithm,
) -> Result<String, Stop> {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg)
        .map_err(|e| Stop::Error(format!("signing the forged token: {e}")))?;
    Ok(format!("{input}.{sig}"))
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The attacks that work on any token string, opaque or not.
const OPAQUE: &[&str] = &["truncated", "extended", "case-flipped"];

/// Bit flips and case flips keep the token's alphabet, so the RS sees a well-formed token.
fn flip_case(t: &str) -> String {
    t.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `rs-jwt-attacks.*`, `rs-time-claims.*`, `rs-scope-claim-tamper`, `rs-foreign-issuer`: a
/// token forged from the access token saved as `on` must be refused at the MCP endpoint.
/// `args.attack` names the forgery.
pub async fn forged_token(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let attack = args
        .get("attack")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| Stop::Error("forged_token needs args.attack".into()))?
        .to_string();
    let at = saved_access_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint to present tokens to".into()));
    };
    // A key server for the jku / x5u attacks lives until the verdict is in.
    let mut key_server = None;
    let (forged, what) = if let Some(kind) = attack.strip_prefix("forged-") {
        from_scratch(ctx, kind, &at, &resource).await?
    } else if OPAQUE.contains(&attack.as_str()) {
        opaque_forgery(&attack, &at)?
    } else {
        let Some(jwt) = parse_jwt(&at) else {
            return Err(Stop::Skip(format!(
                "the access token is opaque (not a JWT): the {attack} forgery applies to JWTs only"
            )));
        };
        jwt_forgery(ctx, &attack, jwt, &mut key_server).await?
    };
    ctx.note(format!("forged token: {what}"));
    let r = crate::step::request::mcp_with_token(ctx, &resource, &forged, "a forged access token")
        .await?;
    if let Some(ks) = key_server.take() {
        let hits = ks.stop();
        if hits > 0 {
            ctx.warn(format!(
                "the resource server fetched the key URL the token named ({hits} request(s)): it lets a token choose where its keys come from (RFC 8725 §3.1 asks for an allow-list), which is also a server-side request forgery"
            ));
        }
    }
    match r.status {
        401 => {
            ctx.pass("refused with 401");
            Ok(())
        }
        s if (400..500).contains(&s) => {
            ctx.pass(format!(
                "refused with {s} (MCP 2025-11-25 §9.2 expects 401 invalid_token for a token it cannot accept)"
            ));
            Ok(())
        }
        s if s >= 500 => ctx.fail(format!(
            "the resource server failed with {s} on a forged token instead of refusing it with 401"
        )),
        s => ctx.fail(format!(
            "the resource server ACCEPTED the forged token ({s}): {what}"
        )),
    }
}

/// A JWT access token made up by the suite (RFC 9068 §2 shape): `iss` the AS's issuer, `aud`
/// the MCP endpoint, `sub` the test user (the real token's `sub` when it is a JWT, else the
/// profile's user name), `iat`/`nbf` now, `exp` an hour ahead, `scope` the profile's, and the
/// case's client. `kind` says how it is "signed": `none` (unsigned, RFC 7519 §6) or
/// `unknown-key` (ES256 with a P-256 key the suite generated, under its own `kid`).
async fn from_scratch(
    ctx: &mut CaseCtx<'_>,
    kind: &str,
    real: &str,
    resource: &str,
) -> Result<(String, String), Stop> {
    let issuer = discovery::as_endpoint(ctx, "issuer").await?;
    let real_claims = jwt_claims(real);
    let sub = real_claims
        .as_ref()
        .and_then(|c| c.get("sub").and_then(Value::as_str).map(str::to_string))
        .or_else(|| ctx.env.profile.login.username.clone())
        .unwrap_or_else(|| "authconform-test-user".to_string());
    let t = now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(resource));
    claims.insert("sub".into(), json!(sub));
    claims.insert("iat".into(), json!(t));
    claims.insert("nbf".into(), json!(t));
    claims.insert("exp".into(), json!(t + 3600));
    claims.insert(
        "jti".into(),
        json!(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())),
    );
    if let Some(sc) = &ctx.env.profile.authorization.scope {
        claims.insert("scope".into(), json!(sc));
    }
    if let Ok(c) = client::named(ctx, "client") {
        claims.insert("client_id".into(), json!(c.client_id));
    }
    let mut header = Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    let mut shown = claims.clone();
    shown.remove("sub");
    let shown = Value::Object(shown);
    Ok(match kind {
        "none" => {
            header.insert("alg".into(), json!("none"));
            (
                format!("{}.{}.", b64(&header), b64(&claims)),
                format!("a JWT made up by the suite, unsigned (alg none), claims {shown}"),
            )
        }
        "unknown-key" => {
            let k = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
            header.insert("alg".into(), json!("ES256"));
            header.insert("kid".into(), k.jwk["kid"].clone());
            let tok = signed(
                &header,
                &claims,
                &EncodingKey::from_ec_der(&k.pkcs8),
                Algorithm::ES256,
            )?;
            (
                tok,
                format!(
                    "a JWT made up by the suite, ES256-signed with a key of its own (kid {}, unknown to the AS), claims {shown}",
                    k.jwk["kid"]
                ),
            )
        }
        _ => return Err(Stop::Error(format!("unknown attack forged-{kind}"))),
    })
}

fn opaque_forgery(attack: &str, at: &str) -> Result<(String, String), Stop> {
    let n = at.chars().count();
    Ok(match attack {
        // Half the token: an RS that compares by prefix (or only the first bytes) takes it.
        "truncated" => (
            at.chars().take(n / 2).collect(),
            format!(
                "the real token cut to its first {} of {n} characters",
                n / 2
            ),
        ),
        "extended" => (
            format!("{at}AAAA"),
            "the real token with 4 characters appended".into(),
        ),
        "case-flipped" => {
            let f = flip_case(at);
            if f == at {
                return Err(Stop::Skip(
                    "the access token has no letters whose case could be flipped".into(),
                ));
            }
            (
                f,
                "the real token with the case of every letter flipped".into(),
            )
        }
        _ => return Err(Stop::Error(format!("unknown attack {attack:?}"))),
    })
}

async fn jwt_forgery(
    ctx: &mut CaseCtx<'_>,
    attack: &str,
    jwt: Jwt,
    key_server: &mut Option<KeyServer>,
) -> Result<(String, String), Stop> {
    let Jwt {
        mut header,
        mut claims,
        signature,
    } = jwt;
    let t = now();
    let keep_sig = |h: &Map<String, Value>, c: &Map<String, Value>| {
        format!("{}.{}.{signature}", b64(h), b64(c))
    };
    let shown = |h: &Map<String, Value>, c: &Map<String, Value>| {
        let mut c = c.clone();
        c.remove("sub");
        format!(
            "header {}, claims {}",
            Value::Object(h.clone()),
            Value::Object(c)
        )
    };
    Ok(match attack {
        "alg-none" => {
            header.insert("alg".into(), json!("none"));
            let tok = format!("{}.{}.", b64(&header), b64(&claims));
            (
                tok,
                format!("unsigned (alg none): {}", shown(&header, &claims)),
            )
        }
        "no-signature" => {
            let tok = format!("{}.{}.", b64(&header), b64(&claims));
            (tok, "the real token with its signature removed".into())
        }
        "flipped-signature" => {
            let mut raw = URL_SAFE_NO_PAD
                .decode(&signature)
                .map_err(|_| Stop::Error("the token's signature is not base64url".into()))?;
            if let Some(b) = raw.last_mut() {
                *b ^= 0x01;
            }
            if let Some(b) = raw.first_mut() {
                *b ^= 0x80;
            }
            let tok = format!(
                "{}.{}.{}",
                b64(&header),
                b64(&claims),
                URL_SAFE_NO_PAD.encode(raw)
            );
            (
                tok,
                "the real token with one bit flipped in the first and the last byte of its signature".into(),
            )
        }
        "hs256-public-key" => {
            let pem = as_public_key_pem(ctx, header.get("kid").and_then(Value::as_str)).await?;
            header.insert("alg".into(), json!("HS256"));
            let tok = signed(
                &header,
                &claims,
                &EncodingKey::from_secret(pem.as_bytes()),
                Algorithm::HS256,
            )?;
            (
                tok,
                "HS256, keyed with the AS's public key in PEM (algorithm confusion, RFC 8725 §2.1)"
                    .into(),
            )
        }
        "kid-traversal" => {
            header.insert("alg".into(), json!("HS256"));
            header.insert(
                "kid".into(),
                json!("../../../../../../../../../../dev/null"),
            );
            let tok = signed(
                &header,
                &claims,
                &EncodingKey::from_secret(b""),
                Algorithm::HS256,
            )?;
            (
                tok,
                "kid \"../../../../../../../../../../dev/null\", HS256 with an empty key (a server that reads the key from the file the kid names)".into(),
            )
        }
        "jwk-embedded" | "jku" | "x5u" | "foreign-issuer" => {
            let k = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
            let enc = EncodingKey::from_ec_der(&k.pkcs8);
            header.insert("alg".into(), json!("ES256"));
            let what = match attack {
                "jwk-embedded" => {
                    header.insert("kid".into(), k.jwk["kid"].clone());
                    header.insert("jwk".into(), k.jwk.clone());
                    "signed with the suite's own key, carried in the header's jwk (CVE-2018-0114)"
                        .to_string()
                }
                "jku" | "x5u" => {
                    let ks = KeyServer::start(&k).await?;
                    let url = if attack == "jku" {
                        header.insert("kid".into(), k.jwk["kid"].clone());
                        format!("{}/jwks.json", ks.origin)
                    } else {
                        format!("{}/cert.pem", ks.origin)
                    };
                    header.insert(attack.into(), json!(url));
                    *key_server = Some(ks);
                    format!("signed with the suite's own key, whose {attack} URL {url} is named in the header (served on 127.0.0.1)")
                }
                // Same kid, same claims: only the signature says who made it.
                _ => "the real token's header and claims, signed with a key of the suite's (same kid and iss)".to_string(),
            };
            (signed(&header, &claims, &enc, Algorithm::ES256)?, what)
        }
        "aud-tampered" => {
            claims.insert("aud".into(), json!(OTHER_RESOURCE));
            (
                keep_sig(&header, &claims),
                format!("aud changed to {OTHER_RESOURCE}, signature kept"),
            )
        }
        "iss-tampered" => {
            claims.insert("iss".into(), json!("https://attacker.authconform.test"));
            (
                keep_sig(&header, &claims),
                "iss changed to https://attacker.authconform.test, signature kept".into(),
            )
        }
        "scope-widened" => {
            let wider = widened_scope(ctx, claims.get("scope").and_then(Value::as_str));
            claims.insert("scope".into(), json!(wider));
            (
                keep_sig(&header, &claims),
                format!("scope claim widened to {wider:?}, signature kept"),
            )
        }
        "exp-past" => {
            claims.insert("exp".into(), json!(t - 3600));
            claims.insert("iat".into(), json!(t - 7200));
            (
                keep_sig(&header, &claims),
                "exp an hour ago (iat two hours ago), signature kept".into(),
            )
        }
        "nbf-future" => {
            claims.insert("nbf".into(), json!(t + 3600));
            claims.insert("iat".into(), json!(t + 3600));
            (
                keep_sig(&header, &claims),
                "nbf and iat an hour ahead, signature kept".into(),
            )
        }
        _ => return Err(Stop::Error(format!("unknown attack {attack:?}"))),
    })
}

/// The scope claim with every scope the resource advertises added (and a made-up one, so the
/// claim changes even when the token already held them all).
fn widened_scope(ctx: &CaseCtx<'_>, current: Option<&str>) -> String {
    let mut s = super::scopes::words(current.unwrap_or(""));
    if let Ok(d) = ctx.discovery("prm")
        && let Some(Value::Array(all)) = d.doc().and_then(|d| d.get("scopes_supported").cloned())
    {
        for v in all.iter().filter_map(Value::as_str) {
            if !s.iter().any(|x| x == v) {
                s.push(v.to_string());
            }
        }
    }
    s.push("admin".into());
    s.join(" ")
}

/// The AS's signing key (by `kid`, else the first signing key of its JWK Set) in PEM, as an
/// attacker would download and convert it.
async fn as_public_key_pem(ctx: &mut CaseCtx<'_>, kid: Option<&str>) -> Result<String, Stop> {
    let doc = ctx
        .discovery("asm")?
        .doc()
        .ok_or_else(|| Stop::Error("no authorization server metadata".into()))?;
    let Some(Value::String(uri)) = doc.get("jwks_uri") else {
        return Err(Stop::Skip(
            "the AS publishes no jwks_uri: no public key to confuse".into(),
        ));
    };
    let r = ctx
        .send(Request::new("GET", uri.clone(), "the AS's JWK Set"))
        .await
        .map_err(|e| Stop::Error(format!("jwks_uri {uri}: {e}")))?;
    let set = r.json().unwrap_or_default();
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key = keys
        .iter()
        .find(|k| kid.is_some() && k.get("kid").and_then(Value::as_str) == kid)
        .or_else(|| {
            keys.iter()
                .find(|k| k.get("use").is_none_or(|u| u == "sig"))
        })
        .ok_or_else(|| Stop::Error(format!("no signing key in the JWK Set at {uri}")))?;
    spki_pem(key).ok_or_else(|| {
        Stop::Skip(format!(
            "the AS key is neither P-256 nor RSA ({}): no PEM form to build",
            key.get("kty").and_then(Value::as_str).unwrap_or("?")
        ))
    })
}

/// A P-256 or RSA JWK as a SubjectPublicKeyInfo PEM (RFC 5480, RFC 8017 A.1.1): the bytes a
/// careless HS256 verifier uses as its secret.
fn spki_pem(jwk: &Value) -> Option<String> {
    let field = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    let der = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 0x04||x||y }
            let mut d = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
            d.push(0x04);
            d.extend(x);
            d.extend(y);
            d
        }
        "RSA" => {
            let rsa_key = der_seq(&[der_uint(&field("n")?), der_uint(&field("e")?)]);
            let mut bits = vec![0u8];
            bits.extend(rsa_key);
            // rsaEncryption with NULL parameters.
            let alg = hex_bytes("300d06092a864886f70d0101010500");
            der_seq(&[alg, der_tlv(0x03, &bits)])
        }
        _ => return None,
    };
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Some(pem)
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | len.len() as u8);
        out.extend(len);
    }
    out.extend_from_slice(body);
    out
}

fn der_seq(items: &[Vec<u8>]) -> Vec<u8> {
    der_tlv(0x30, &items.concat())
}

/// A positive INTEGER: leading zeros dropped, one added when the high bit is set.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    let mut body = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend(v);
    der_tlv(0x02, &body)
}

/// A plain-http server on 127.0.0.1 serving the suite's key as a JWK Set and as a
/// certificate, counting requests (a fetch is evidence the RS follows token-supplied URLs).
struct KeyServer {
    origin: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    async fn start(k: &crate::client_key::ClientKey) -> Result<Self, Stop> {
        let kp = rcgen::KeyPair::try_from(k.pkcs8.as_slice())
            .map_err(|e| Stop::Error(format!("key: {e}")))?;
        let cert = rcgen::CertificateParams::new(vec!["attacker.authconform.test".to_string()])
            .and_then(|p| p.self_signed(&kp))
            .map_err(|e| Stop::Error(format!("certificate: {e}")))?
            .pem();
        let jwks = json!({ "keys": [k.jwk] }).to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Stop::Error(format!("key server: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Stop::Error(format!("key server: {e}")))?
            .port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (h, jwks, cert) = (h.clone(), jwks.clone(), cert.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                if uri.path().ends_with(".pem") {
                    ([("content-type", "application/x-pem-file")], cert)
                } else {
                    ([("content-type", "application/json")], jwks)
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            origin: format!("http://127.0.0.1:{port}"),
            hits,
            task,
        })
    }

    fn stop(self) -> usize {
        self.task.abort();
        self.hits.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_spki_pem_parses_back() {
        let k = crate::client_key::ClientKey::generate().unwrap();
        let pem = spki_pem(&k.jwk).unwrap();
        // The PEM the suite builds from the JWK is the one rcgen writes for the same key.
        assert_eq!(pem.trim(), k.public_pem.trim());
    }

    #[test]
    fn der_uint_adds_sign_byte() {
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00, 0x01]), vec![0x02, 0x01, 0x01]);
    }

    #[test]
    fn audience_verdicts() {
        let mcp = Audience::Names(json!("https://mcp.test/mcp"));
        let other = Audience::Other(json!("https://other.test"));
        let unknown = Audience::Unknown("opaque".into());
        // A default-bound token: accepting it is right, never a failure.
        assert!(matches!(
            audience_verdict("missing", &mcp, true),
            Err(Stop::Skip(_))
        ));
        assert!(matches!(
            audience_verdict("missing", &unknown, true),
            Err(Stop::Skip(_))
        ));
        assert!(matches!(
            audience_verdict("missing", &Audience::Absent, true),
            Err(Stop::Fail(_))
        ));
        assert!(matches!(
            audience_verdict("wrong", &other, true),
            Err(Stop::Fail(_))
        ));
        // The row demands refusal of a token issued for another resource.
        assert!(matches!(
            audience_verdict("wrong", &unknown, true),
            Err(Stop::Fail(_))
        ));
        assert!(audience_verdict("wrong", &other, false).is_ok());
        assert!(audience_verdict("missing", &Audience::Absent, false).is_ok());
    }

    #[test]
    fn opaque_forgeries_differ_from_the_token() {
        let t = "AbCdEfGhIjKlMnOpQrSt";
        for a in OPAQUE {
            let (f, _) = opaque_forgery(a, t).unwrap();
            assert_ne!(f, t, "{a}");
        }
    }
}
