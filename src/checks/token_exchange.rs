//! OAuth 2.0 Token Exchange (RFC 8693): whether the AS offers the grant (§2, metadata or
//! profile), the client that may exchange, the successful response (§2.2.1), delegation and
//! its `act` claim (§4.1), `may_act` (§4.4), subject tokens the AS must refuse (§2.1, §2.2.2),
//! scope escalation (RFC 9700 §2.3) and the exchanged token at the MCP endpoint when it is for
//! another audience (MCP 2025-11-25 §9.2).
//!
//! The subject token is the test user's access token from a normal login; the actor token is a
//! client_credentials token (its `sub` is the client, RFC 9068 §2.2). What a token says of
//! itself is read from the JWT, else from introspection.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::tokens::{endpoint_request, jwt_claims, saved_response, token_claims, token_doc};
use super::{arg_str, arg_strings};
use crate::case::model::{ClientKind, ClientStep, Judge};
use crate::http::Response;
use crate::step::{CaseCtx, Saved, StepResult, Stop, client, discovery};

/// RFC 8693 §2.1.
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `tx-*`: the AS offers token exchange when `grant_types_supported` lists the grant type or
/// the profile's `[token_exchange] offered` says so; otherwise the case is skipped. With
/// `args.judge = true` (tx-advertised) the listing itself is judged: an AS the profile says
/// offers the grant, whose metadata does not list it, fails (a MAY).
pub async fn supported(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let judge = matches!(args.get("judge"), Some(toml::Value::Boolean(true)));
    let doc = discovery::shared_as_doc(ctx).await?;
    let listed = match doc.get("grant_types_supported") {
        Some(Value::Array(a)) => Some(a.iter().any(|g| g.as_str() == Some(GRANT))),
        _ => None,
    };
    let offered = ctx.env.profile.token_exchange.offered;
    let shown = doc
        .get("grant_types_supported")
        .map(Value::to_string)
        .unwrap_or_else(|| "absent".into());
    match (listed, offered) {
        (Some(true), _) => {
            let msg = format!("grant_types_supported lists {GRANT}");
            if judge {
                ctx.pass(msg);
            } else {
                ctx.note(msg);
            }
            Ok(())
        }
        (_, true) if judge => ctx.fail(format!(
            "the profile says the AS offers token exchange ([token_exchange] offered), but grant_types_supported ({shown}) does not list {GRANT}"
        )),
        (_, true) => {
            ctx.note(format!(
                "grant_types_supported ({shown}) does not list {GRANT}; the profile says the AS offers it ([token_exchange] offered)"
            ));
            Ok(())
        }
        (_, false) => Err(Stop::Skip(format!(
            "the AS does not offer token exchange: grant_types_supported ({shown}) does not list {GRANT}, and the profile's [token_exchange] offered is not set"
        ))),
    }
}

/// The client a token-exchange case acts as, saved as `args.save` (default `client`): the
/// profile's `[token_exchange] client`, else a confidential client registered for the grant
/// types `args.grants` (default: authorization_code, refresh_token, client_credentials and
/// token exchange). `args.second = true` always registers a new client (another party: the
/// actor the subject token does not name); a registration refused skips the case.
pub async fn client(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let save = arg_str(args, "save", "client").to_string();
    let second = matches!(args.get("second"), Some(toml::Value::Boolean(true)));
    if !second && let Some(id) = ctx.env.profile.token_exchange.client.clone() {
        let c = ctx
            .env
            .profile
            .clients
            .iter()
            .find(|c| c.client_id == id)
            .ok_or_else(|| {
                Stop::Error(format!(
                    "[token_exchange] client {id} is not a profile client"
                ))
            })?;
        let found = client::Client {
            client_id: c.client_id.clone(),
            secret: c.secret.clone(),
            auth_method: c.auth_method.clone(),
            redirect_uris: c.redirect_uris.clone(),
            kind: c.kind(),
            source: "profile",
            key: c.key.clone(),
        };
        ctx.note(format!(
            "client {id} from the profile ([token_exchange] client)"
        ));
        ctx.saved.insert(save, Saved::Client(found));
        return Ok(());
    }
    let grants = arg_strings(args, "grants").unwrap_or_else(|| {
        vec![
            "authorization_code".into(),
            "refresh_token".into(),
            "client_credentials".into(),
            GRANT.into(),
        ]
    });
    let mut metadata = BTreeMap::new();
    // A client without the code flow asks for no response type (RFC 7591 §2.1 consistency).
    if !grants.iter().any(|g| g == "authorization_code") {
        metadata.insert("response_types".to_string(), toml::Value::Array(Vec::new()));
    }
    metadata.insert(
        "grant_types".to_string(),
        toml::Value::Array(grants.into_iter().map(toml::Value::String).collect()),
    );
    let want = ClientStep {
        save: save.clone(),
        kind: ClientKind::Confidential,
        fresh: second,
        metadata,
        refused: Judge::Skip,
        ..Default::default()
    };
    let c = client::provision(ctx, &want).await?;
    ctx.saved.insert(save, Saved::Client(c));
    Ok(())
}

/// A token-exchange request (with the case's client) for the subject token `subject`, and
/// these other parameters.
async fn exchange(
    ctx: &mut CaseCtx<'_>,
    subject: &str,
    extra: &[(&str, &str)],
) -> Result<Response, Stop> {
    let mut p = BTreeMap::from([
        ("subject_token".to_string(), subject.to_string()),
        (
            "subject_token_type".to_string(),
            ACCESS_TOKEN_TYPE.to_string(),
        ),
    ]);
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    endpoint_request(ctx, "token", GRANT, &p).await
}

/// The access token of the token response saved as `on`.
fn access_token(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    token_doc(ctx, on)?
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Stop::Error(format!("`{on}` holds no access_token")))
}

/// The `sub` a token names, from its own claims (JWT) or its introspection.
async fn subject_of(ctx: &mut CaseCtx<'_>, token: &str, what: &str) -> Result<String, Stop> {
    let claims = token_claims(ctx, token).await?;
    claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Stop::Skip(format!(
                "the {what} names no sub (JWT or introspection): who it stands for cannot be seen"
            ))
        })
}

/// `tx-response`: a successful exchange's response (RFC 8693 §2.2.1) has `access_token`,
/// `issued_token_type` (a token type identifier, a URI) and `token_type`, all REQUIRED.
pub fn response(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = token_doc(ctx, on)?;
    let mut missing = Vec::new();
    for k in ["access_token", "issued_token_type", "token_type"] {
        match doc.get(k) {
            Some(Value::String(v)) if !v.is_empty() => {}
            Some(other) => missing.push(format!("{k} is {other}, not a non-empty string")),
            None => missing.push(format!("{k} is missing")),
        }
    }
    if let Some(t) = doc.get("issued_token_type").and_then(Value::as_str)
        && !t.contains(':')
    {
        missing.push(format!(
            "issued_token_type {t:?} is not a token type identifier (a URI, §3)"
        ));
    }
    if !missing.is_empty() {
        return ctx.fail(format!(
            "the token-exchange response breaks §2.2.1: {}",
            missing.join("; ")
        ));
    }
    ctx.pass(format!(
        "access_token, issued_token_type {} and token_type {} are present",
        doc["issued_token_type"], doc["token_type"]
    ));
    Ok(())
}

/// `tx-act-claim`: the token issued for an exchange with an actor token (saved as `on`) names
/// the actor in `act` (§4.1: `act.sub` = the actor token's subject) and keeps the subject token's
/// `sub`. Then, with `args.second_actor` (a saved token response), a second hop: the exchanged
/// token as subject, another actor; the result's `act` names the second actor with the first
/// nested inside (the chain). An AS that refuses the second hop (policy) is noted, not failed.
pub async fn act_claim(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let subject = access_token(ctx, arg_str(args, "subject", "subject"))?;
    let actor = access_token(ctx, arg_str(args, "actor", "actor"))?;
    let issued = access_token(ctx, on)?;
    let subject_sub = subject_of(ctx, &subject, "subject token").await?;
    let actor_sub = subject_of(ctx, &actor, "actor token").await?;
    let claims = token_claims(ctx, &issued).await?;
    let act_sub = claims.pointer("/act/sub").and_then(Value::as_str);
    match (claims.get("act"), act_sub) {
        (None, _) => {
            return ctx.fail(format!(
                "the token issued for an exchange with an actor token has no act claim: the actor ({actor_sub}) is not named, the token impersonates {subject_sub} instead of recording the delegation"
            ));
        }
        (Some(a), Some(s)) if s == actor_sub => ctx.pass(format!("act is {a}: it names the actor")),
        (Some(a), _) => {
            return ctx.fail(format!(
                "act is {a}, which does not name the actor token's subject {actor_sub:?}"
            ));
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(s) if s == subject_sub => ctx.pass(format!("sub is still the subject, {s}")),
        other => {
            return ctx.fail(format!(
                "the exchanged token's sub is {other:?}, not the subject token's {subject_sub:?}"
            ));
        }
    }
    let Some(second) = args.get("second_actor").and_then(toml::Value::as_str) else {
        return Ok(());
    };
    let second = access_token(ctx, second)?;
    let second_sub = subject_of(ctx, &second, "second actor token").await?;
    let r = exchange(
        ctx,
        &issued,
        &[
            ("actor_token", second.as_str()),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await?;
    let Some(chained) = r
        .json()
        .and_then(|d| d.get("access_token")?.as_str().map(str::to_string))
        .filter(|_| r.status == 200)
    else {
        ctx.note(format!(
            "a second hop (the exchanged token as subject, {second_sub} acting) was refused ({}): the AS does not chain delegations, which is its policy",
            r.status
        ));
        return Ok(());
    };
    let c = token_claims(ctx, &chained).await?;
    let outer = c.pointer("/act/sub").and_then(Value::as_str);
    let inner = c.pointer("/act/act/sub").and_then(Value::as_str);
    if outer == Some(second_sub.as_str()) && inner == Some(actor_sub.as_str()) {
        ctx.pass(format!(
            "the chained token's act is {}: the current actor outermost, the prior one nested",
            c["act"]
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "the chained token's act is {}, not {{\"sub\": {second_sub:?}, \"act\": {{\"sub\": {actor_sub:?}}}}} (§4.1: the current actor outermost, prior actors nested)",
            c.get("act").cloned().unwrap_or(Value::Null)
        ))
    }
}

/// `tx-may-act`: the subject token (saved as `args.subject`) names in `may_act` who may act
/// for its subject (§4.4); an exchange (saved as `on`) with an actor token of another party
/// (`args.actor`) must be refused. A subject token without `may_act` skips the case: issuing
/// one is the AS's policy.
pub async fn may_act(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let r = saved_response(ctx, on)?;
    let subject = access_token(ctx, arg_str(args, "subject", "subject"))?;
    let actor = access_token(ctx, arg_str(args, "actor", "other_actor"))?;
    let claims = token_claims(ctx, &subject).await?;
    let Some(may) = claims.get("may_act").cloned() else {
        return Err(Stop::Skip(
            "the subject token carries no may_act claim (JWT or introspection): when an AS issues one is its policy (RFC 8693 §4.4)".into(),
        ));
    };
    let actor_sub = subject_of(ctx, &actor, "actor token").await?;
    if may.get("sub").and_then(Value::as_str) == Some(actor_sub.as_str()) {
        return Err(Stop::Skip(format!(
            "may_act ({may}) names the actor token's subject {actor_sub:?}: no other party to try"
        )));
    }
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_request"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "the subject token's may_act is {may}; the exchange with {actor_sub:?} acting was refused ({})",
            r.status
        ));
        return Ok(());
    }
    if r.status == 200 {
        return ctx.fail(format!(
            "the subject token's may_act is {may}, yet an exchange with {actor_sub:?} acting issued a token: may_act is ignored"
        ));
    }
    Err(Stop::Error(format!(
        "the exchange answered {}, neither a refusal nor a token",
        r.status
    )))
}

/// A JWT from an authorization server that is not the target's: the profile's `[tokens]
/// upstream` token, else one made up here and signed with a key of the suite's own.
fn foreign_token(ctx: &CaseCtx<'_>) -> Result<(String, &'static str), Stop> {
    if let Some(t) = &ctx.env.profile.tokens.upstream {
        return Ok((t.clone(), "the profile's upstream token ([tokens])"));
    }
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let key = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let user = ctx
        .env
        .profile
        .login
        .username
        .clone()
        .unwrap_or_else(|| "alice".into());
    let claims = json!({
        "iss": "https://foreign-as.authconform.test", "sub": user,
        "aud": ctx.env.target.resource.clone().unwrap_or_default(),
        "client_id": "authconform-foreign", "scope": ctx.env.profile.authorization.scope,
        "iat": now, "nbf": now, "exp": now + 3600, "jti": crate::step::authorize::new_verifier(),
    });
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("at+jwt".into());
    h.kid = key.jwk["kid"].as_str().map(str::to_string);
    let t = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&key.pkcs8))
        .map_err(|e| Stop::Error(format!("signing the foreign token: {e}")))?;
    Ok((
        t,
        "a JWT of a made-up issuer, signed with a key of the suite's own",
    ))
}

/// `tx-invalid-subject`: a subject token another authorization server issued is refused with
/// `invalid_request` (§2.1: the AS validates the subject token; §2.2.2: an invalid one is
/// `invalid_request`).
pub async fn foreign_subject(ctx: &mut CaseCtx<'_>) -> StepResult {
    let (token, what) = foreign_token(ctx)?;
    ctx.env.http.redactor().add_secret(&token);
    let r = exchange(ctx, &token, &[]).await?;
    judge_refusal(
        ctx,
        &r,
        &format!("the subject token {what}"),
        "invalid_request",
    )
}

/// A refusal with `code` passes; a token issued fails; another refusal fails, naming its code
/// (the code is the requirement here).
fn judge_refusal(ctx: &mut CaseCtx<'_>, r: &Response, what: &str, code: &str) -> StepResult {
    super::tokens::not_rate_limited(r, "the exchange")?;
    let doc = r.json().unwrap_or_default();
    let error = doc.get("error").and_then(Value::as_str);
    if doc.get("access_token").is_some() && (200..300).contains(&r.status) {
        return ctx.fail(format!("{what} was exchanged for a token ({})", r.status));
    }
    match (r.status, error) {
        (400, Some(e)) if e == code => {
            ctx.pass(format!("{what} was refused: 400 {code}"));
            Ok(())
        }
        (s, e) if (400..500).contains(&s) => ctx.fail(format!(
            "{what} was refused with {s} error={e:?}, not 400 {code} (RFC 8693 §2.2.2)"
        )),
        (s, e) => Err(Stop::Error(format!(
            "the exchange answered {s} error={e:?}, neither a refusal nor a token"
        ))),
    }
}

/// `tx-no-escalation`: an exchange of the subject token (saved as `on`) asking for its scope
/// plus the profile's `[scopes] broad_scope`, which it does not hold: refused (any refusal; its
/// code is noted) or narrowed to what the subject holds. A token whose scope (response member,
/// else its claims; neither: the scope asked for, §2.2.1) is broader fails.
pub async fn no_escalation(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let subject = access_token(ctx, on)?;
    let Some(extra) = ctx.env.profile.scopes.broad_scope.clone() else {
        return Err(Stop::Skip(
            "no scope beyond the test user's to ask for: the profile sets no [scopes] broad_scope"
                .into(),
        ));
    };
    let held = match token_doc(ctx, on)?.get("scope").and_then(Value::as_str) {
        Some(s) => s.to_string(),
        None => token_claims(ctx, &subject)
            .await?
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default(),
    };
    let held: Vec<String> = held
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let beyond: Vec<String> = extra
        .split(' ')
        .filter(|s| !s.is_empty() && !held.iter().any(|h| h == s))
        .map(str::to_string)
        .collect();
    if beyond.is_empty() {
        return Err(Stop::Skip(format!(
            "the subject token already holds {extra:?}: nothing broader to ask for"
        )));
    }
    let asked = held
        .iter()
        .chain(beyond.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let r = exchange(ctx, &subject, &[("scope", asked.as_str())]).await?;
    super::tokens::not_rate_limited(&r, "the exchange")?;
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_scope"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "asking for {asked:?} with a subject token holding {held:?} was refused ({})",
            r.status
        ));
        return Ok(());
    }
    let doc = r.json().unwrap_or_default();
    let Some(issued) = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|_| r.status == 200)
    else {
        return Err(Stop::Error(format!(
            "the exchange answered {}, neither a refusal nor a token",
            r.status
        )));
    };
    let (granted, source) = match doc.get("scope").and_then(Value::as_str) {
        Some(s) => (s.to_string(), "the response's scope"),
        None => match jwt_claims(issued)
            .and_then(|c| c.get("scope").and_then(Value::as_str).map(str::to_string))
        {
            Some(s) => (s, "the token's scope claim"),
            None => (
                asked.clone(),
                "no scope member: the scope asked for (RFC 8693 §2.2.1)",
            ),
        },
    };
    let wider: Vec<&str> = granted
        .split(' ')
        .filter(|s| beyond.iter().any(|b| b == s))
        .collect();
    if wider.is_empty() {
        ctx.pass(format!(
            "asking for {asked:?} was narrowed to {granted:?} ({source})"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "the exchanged token holds {wider:?}, which the subject token ({held:?}) does not ({source}: {granted:?})"
        ))
    }
}

/// `tx-mcp-rs-audience`: the token exchanged for another resource (saved as `on`) is refused
/// at the MCP endpoint (401, MCP 2025-11-25 §9.2: only tokens issued for it). An AS that
/// refused to issue it, or issued it for the MCP endpoint anyway, leaves nothing to try.
pub async fn other_audience_at_rs(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = saved_response(ctx, on)?;
    if r.status != 200 {
        return Err(Stop::Skip(format!(
            "the AS issued no token for another audience ({}): nothing to present",
            r.status
        )));
    }
    let token = access_token(ctx, on)?;
    let resource = ctx
        .env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint to present the token at".into()))?;
    if let Ok(c) = token_claims(ctx, &token).await
        && let Some(aud) = c.get("aud")
    {
        if super::tokens::aud_names(aud, &resource) {
            return Err(Stop::Skip(format!(
                "the exchanged token's aud {aud} names the MCP endpoint itself: it is not a token for another audience"
            )));
        }
        ctx.note(format!("the exchanged token's aud is {aud}"));
    }
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &token,
        "the token exchanged for another audience, at the MCP endpoint",
    )
    .await?;
    match r.status {
        401 => {
            ctx.pass("the MCP endpoint refuses the token exchanged for another audience (401)");
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the MCP endpoint accepted ({s}) a token exchanged for another audience"
        )),
        s => Err(Stop::Error(format!(
            "the MCP endpoint answered {s}, neither accepting nor refusing the token"
        ))),
    }
}
