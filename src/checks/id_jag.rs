//! Enterprise-managed authorization (MCP's SEP-990 extension): the Identity Assertion JWT
//! Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant, ID-JAG), redeemed at
//! the token endpoint as an RFC 7523 §2.1 jwt-bearer grant by a client authenticated as it
//! registered. The suite plays the enterprise IdP (`crate::idp`): it signs ID-JAGs, and the
//! attacks on them, and judges what the AS under test issues for each.
//!
//! Every probe is judged only after a valid ID-JAG was redeemed in the same case: a refusal
//! means nothing from an AS that does not trust the suite's IdP at all (that is `idjag-accepted`'s
//! finding, and the other cases are blocked by it).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::tokens::{OTHER_RESOURCE, aud_names, jwt_claims, not_rate_limited};
use crate::case::model::{ClientKind, TokenStep};
use crate::http::Response;
use crate::idp::{ID_JAG_TYP, Idp, Signing};
use crate::step::{CaseCtx, Saved, StepResult, Stop, discovery, request, token};

/// RFC 7523 §2.1's grant type, which an ID-JAG is redeemed with.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The ID-JAG profile's identifier in `authorization_grant_profiles_supported` (draft §7.2).
pub const PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

fn idp(ctx: &CaseCtx<'_>) -> Result<std::sync::Arc<Idp>, Stop> {
    let idp = ctx.env.documents.as_ref().and_then(|d| d.idp.clone());
    idp.ok_or_else(|| {
        Stop::Error("the enterprise IdP is not running (the document host did not start)".into())
    })
}

/// `idjag-*`: the AS trusts the suite's IdP (the profile's `[enterprise]` section; the
/// reference's when it offers ID-JAG), else the case is skipped. Saves the AS metadata as
/// `asm` and the redeeming client as `client`; notes whether the metadata lists the grant.
pub async fn ready(ctx: &mut CaseCtx<'_>) -> StepResult {
    let Some(e) = ctx.env.profile.enterprise.clone() else {
        return Err(Stop::Skip(
            "no [enterprise] section in the profile: the AS is not known to trust the suite's enterprise IdP, so no ID-JAG can be redeemed (README, \"Enterprise-managed authorization\")".into(),
        ));
    };
    let idp = idp(ctx)?;
    let doc = discovery::shared_as_doc(ctx).await?;
    let listed = doc
        .get("grant_types_supported")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|g| g.as_str() == Some(JWT_BEARER)));
    ctx.note(format!(
        "the profile's [enterprise] section says the AS trusts the IdP {}; grant_types_supported {} {JWT_BEARER}",
        idp.issuer,
        if listed { "lists" } else { "does not list" }
    ));
    let Some(c) = ctx
        .env
        .profile
        .clients
        .iter()
        .find(|c| c.client_id == e.client)
        .cloned()
    else {
        return Err(Stop::Error(format!(
            "[enterprise] client {:?} is not a [[clients]] entry",
            e.client
        )));
    };
    let client = crate::step::client::Client {
        client_id: c.client_id.clone(),
        secret: c.secret.clone(),
        auth_method: c.auth_method.clone(),
        redirect_uris: c.redirect_uris.clone(),
        kind: ClientKind::Confidential,
        source: "profile",
        key: c.key.clone(),
    };
    ctx.saved.insert("client".into(), Saved::Client(client));
    Ok(())
}

/// `idjag-advertised`: the metadata lists the ID-JAG profile in
/// `authorization_grant_profiles_supported` (draft §7.2, SHOULD), and then the jwt-bearer grant
/// in `grant_types_supported` (MUST).
pub fn advertised(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = ctx.discovery(on)?.doc().unwrap_or_default();
    let has = |member: &str, v: &str| {
        doc.get(member)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|g| g.as_str() == Some(v)))
    };
    if !has("authorization_grant_profiles_supported", PROFILE) {
        return ctx.fail(format!(
            "authorization_grant_profiles_supported does not list {PROFILE} (it is {})",
            doc.get("authorization_grant_profiles_supported")
                .map(Value::to_string)
                .unwrap_or_else(|| "absent".into())
        ));
    }
    if !has("grant_types_supported", JWT_BEARER) {
        return ctx.fail(format!(
            "authorization_grant_profiles_supported lists {PROFILE} but grant_types_supported does not list {JWT_BEARER}"
        ));
    }
    ctx.pass(format!(
        "authorization_grant_profiles_supported lists {PROFILE}, grant_types_supported lists {JWT_BEARER}"
    ));
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What one probe sends: the ID-JAG (header `typ`, claims, signing) and the token request's
/// extra parameters.
struct Probe {
    typ: Option<&'static str>,
    claims: Map<String, Value>,
    signing: Signing,
    params: BTreeMap<String, String>,
    what: String,
}

/// The scope an ID-JAG grants: the profile's authorization scope, else `mcp:tools`.
fn granted_scope(ctx: &CaseCtx<'_>) -> String {
    ctx.env
        .profile
        .authorization
        .scope
        .clone()
        .unwrap_or_else(|| "mcp:tools".into())
}

/// A valid ID-JAG for the case's client (draft §3's claims).
fn valid(ctx: &CaseCtx<'_>, idp: &Idp) -> Result<Probe, Stop> {
    let issuer = ctx
        .discovery("asm")?
        .doc()
        .and_then(|d| d.get("issuer").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| Stop::Error("the AS metadata has no issuer".into()))?;
    let client = crate::step::client::named(ctx, "client")?.client_id.clone();
    let t = now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(idp.issuer));
    claims.insert("sub".into(), json!("authconform-enterprise-user"));
    claims.insert("aud".into(), json!(issuer));
    claims.insert("client_id".into(), json!(client));
    if let Some(r) = &ctx.env.target.resource {
        claims.insert("resource".into(), json!(r));
    }
    claims.insert("scope".into(), json!(granted_scope(ctx)));
    claims.insert("jti".into(), json!(crate::step::authorize::new_verifier()));
    claims.insert("iat".into(), json!(t));
    claims.insert("exp".into(), json!(t + 300));
    claims.insert("email".into(), json!("enterprise-user@authconform.test"));
    Ok(Probe {
        typ: Some(ID_JAG_TYP),
        claims,
        signing: Signing::Trusted,
        params: BTreeMap::new(),
        what: "a valid ID-JAG".into(),
    })
}

/// The attack `name` on a valid ID-JAG.
fn attack(ctx: &CaseCtx<'_>, idp: &Idp, name: &str) -> Result<Probe, Stop> {
    let mut p = valid(ctx, idp)?;
    let t = now();
    let what = match name {
        "typ-jwt" => {
            p.typ = Some("JWT");
            "the same claims with typ JWT"
        }
        "id-token" => {
            // What the IdP issued the client at sign-in: an OIDC ID token (aud = the client).
            let client = p.claims["client_id"].clone();
            p.typ = Some("JWT");
            for k in ["client_id", "resource", "scope"] {
                p.claims.remove(k);
            }
            p.claims.insert("aud".into(), client.clone());
            p.claims.insert("azp".into(), client);
            p.claims.insert("auth_time".into(), json!(t));
            "an OIDC ID token of the IdP (typ JWT, aud the client)"
        }
        "other-key" => {
            p.signing = Signing::UnknownKey;
            "an ID-JAG signed with a key the IdP never published (its kid)"
        }
        "alg-none" => {
            p.signing = Signing::None;
            "an unsigned ID-JAG (alg none)"
        }
        "hs256-public-key" => {
            p.signing = Signing::Hs256PublicKey;
            "an ID-JAG MACed with HS256 keyed with the IdP's public key"
        }
        "jwk-header" => {
            p.signing = Signing::EmbeddedJwk;
            "an ID-JAG signed with the suite's own key, carried in a jwk header"
        }
        "jku-header" => {
            p.signing = Signing::Jku;
            "an ID-JAG signed with the suite's own key, whose JWK Set a jku header names"
        }
        "untrusted-issuer" => {
            p.signing = Signing::Untrusted;
            p.claims.insert("iss".into(), json!(idp.untrusted_issuer));
            "a well-formed ID-JAG from a second IdP the AS was not told to trust (its metadata and JWK Set served)"
        }
        "aud-other" => {
            p.claims
                .insert("aud".into(), json!("https://other-as.authconform.test"));
            "an ID-JAG whose aud is another authorization server's issuer"
        }
        "aud-missing" => {
            p.claims.remove("aud");
            "an ID-JAG without aud"
        }
        "other-client" => {
            let other = ctx
                .env
                .profile
                .clients
                .iter()
                .map(|c| c.client_id.clone())
                .find(|c| Some(c.as_str()) != p.claims["client_id"].as_str())
                .unwrap_or_else(|| "authconform-other-client".into());
            p.claims.insert("client_id".into(), json!(other));
            "an ID-JAG whose client_id names another client"
        }
        "expired" => {
            p.claims.insert("iat".into(), json!(t - 900));
            p.claims.insert("exp".into(), json!(t - 300));
            "an ID-JAG that expired 300 s ago"
        }
        "iat-future" => {
            p.claims.insert("iat".into(), json!(t + 3600));
            p.claims.insert("exp".into(), json!(t + 3900));
            "an ID-JAG issued an hour in the future"
        }
        "exp-missing" => {
            p.claims.remove("exp");
            "an ID-JAG without exp"
        }
        "resource-mismatch" => {
            p.params.insert("resource".into(), OTHER_RESOURCE.into());
            "a valid ID-JAG for the MCP server, redeemed with resource= another server"
        }
        "resource-unknown" => {
            p.claims.insert("resource".into(), json!(OTHER_RESOURCE));
            "an ID-JAG for a resource this AS does not serve"
        }
        "wider-scope" => {
            let wider = ctx
                .env
                .profile
                .scopes
                .broad_scope
                .clone()
                .unwrap_or_else(|| "authconform-wider".into());
            p.params
                .insert("scope".into(), format!("{} {wider}", granted_scope(ctx)));
            "a valid ID-JAG redeemed with a scope wider than its own"
        }
        other => return Err(Stop::Error(format!("unknown ID-JAG attack {other:?}"))),
    };
    p.what = what.to_string();
    Ok(p)
}

/// Signs the probe's ID-JAG (a secret in reports from then on).
fn sign(ctx: &CaseCtx<'_>, idp: &Idp, p: &Probe) -> Result<String, Stop> {
    let jwt = idp.sign(p.typ, &p.claims, p.signing).map_err(Stop::Error)?;
    ctx.env.http.redactor().add_secret(&jwt);
    Ok(jwt)
}

/// Redeems `jwt` at the token endpoint (RFC 7523 §2.1), the client authenticated as registered.
async fn redeem(
    ctx: &mut CaseCtx<'_>,
    jwt: &str,
    params: &BTreeMap<String, String>,
    save: &str,
) -> Result<Response, Stop> {
    let mut params = params.clone();
    params.insert("assertion".into(), jwt.to_string());
    let saved = token::token(
        ctx,
        &TokenStep {
            grant_type: JWT_BEARER.into(),
            params,
            ..Default::default()
        },
    )
    .await?;
    let r = saved
        .response()
        .map(|(_, r)| r.clone())
        .ok_or_else(|| Stop::Error("no response".into()))?;
    ctx.saved.insert(save.into(), saved);
    not_rate_limited(&r, "the ID-JAG redemption")?;
    Ok(r)
}

fn access_token(r: &Response) -> Option<String> {
    (r.status == 200)
        .then(|| r.json())
        .flatten()
        .and_then(|d| d.get("access_token")?.as_str().map(str::to_string))
}

/// The valid redemption that sets the stage: it must issue a token, else the case is blocked
/// (by `idjag-accepted`, whose requirement it is).
async fn stage(ctx: &mut CaseCtx<'_>, idp: &Idp) -> Result<String, Stop> {
    let p = valid(ctx, idp)?;
    let jwt = sign(ctx, idp, &p)?;
    let r = redeem(ctx, &jwt, &p.params, "idjag_valid").await?;
    if access_token(&r).is_some() {
        ctx.note("a valid ID-JAG was redeemed for an access token");
        return Ok(jwt);
    }
    let reason = format!(
        "the AS refused a valid ID-JAG ({}{}), so this case's probe cannot be judged",
        r.status,
        r.json()
            .and_then(|d| d.get("error")?.as_str().map(|e| format!(" {e}")))
            .unwrap_or_default()
    );
    let condition = if r.status >= 500 {
        "server-error"
    } else {
        "valid-token-request-refused"
    };
    ctx.block(condition, Some("idjag-accepted"), &reason);
    Err(Stop::Error(reason))
}

/// What an issued token says of itself (a JWT's claims, else introspection's), if it can be
/// read; `None` when it cannot (noted).
async fn claims_of(ctx: &mut CaseCtx<'_>, at: &str) -> Option<Value> {
    if let Some(c) = jwt_claims(at) {
        return Some(Value::Object(c));
    }
    match super::tokens::token_claims(ctx, at).await {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.note(format!("the token's claims cannot be read: {e:?}"));
            None
        }
    }
}

/// `idjag-accepted`: a valid ID-JAG gets an access token for the MCP resource, which the MCP
/// endpoint takes.
pub async fn accepted(ctx: &mut CaseCtx<'_>) -> StepResult {
    let idp = idp(ctx)?;
    let p = valid(ctx, &idp)?;
    let jwt = sign(ctx, &idp, &p)?;
    let r = redeem(ctx, &jwt, &p.params, "token").await?;
    let Some(at) = access_token(&r) else {
        return ctx.fail(format!(
            "a valid ID-JAG from the trusted IdP was refused: {} {}",
            r.status,
            r.json().map(|d| d.to_string()).unwrap_or_default()
        ));
    };
    ctx.pass("a valid ID-JAG was redeemed for an access token");
    let Some(resource) = ctx.env.target.resource.clone() else {
        ctx.note("no MCP endpoint is known: the token's use there is not tried");
        return Ok(());
    };
    if let Some(c) = claims_of(ctx, &at).await {
        match c.get("aud") {
            Some(aud) if aud_names(aud, &resource) => {
                ctx.pass(format!("its audience {aud} names {resource}"));
            }
            Some(aud) => {
                return ctx.fail(format!(
                    "the token's audience {aud} does not name the MCP resource {resource} the ID-JAG was for"
                ));
            }
            None => {
                return ctx.fail(format!(
                    "the token has no audience: it is bound to no resource, though the ID-JAG was for {resource}"
                ));
            }
        }
    }
    let m =
        request::mcp_with_token(ctx, &resource, &at, "MCP request with the ID-JAG's token").await?;
    if (200..300).contains(&m.status) {
        ctx.pass(format!("the MCP endpoint took the token ({})", m.status));
        Ok(())
    } else {
        ctx.fail(format!(
            "the MCP endpoint refused the token issued for the ID-JAG ({})",
            m.status
        ))
    }
}

/// `idjag-typ`, `-signature`, `-issuer-trust`, `-audience`, `-client-binding`, `-time`: after a
/// valid ID-JAG was redeemed, the attack `args.attack` must be refused (`invalid_grant`, RFC
/// 7523 §3.1; another refusal shape is noted for tok-error-format). Issued tokens fail.
pub async fn refused(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let name = ctx
        .expand(super::arg_str(args, "attack", ""))
        .map_err(Stop::Error)?;
    let idp = idp(ctx)?;
    stage(ctx, &idp).await?;
    let p = attack(ctx, &idp, &name)?;
    let jwt = sign(ctx, &idp, &p)?;
    let r = redeem(ctx, &jwt, &p.params, "token").await?;
    judge_refusal(ctx, &r, &p.what, &["invalid_grant"])
}

fn judge_refusal(ctx: &mut CaseCtx<'_>, r: &Response, what: &str, codes: &[&str]) -> StepResult {
    if let Some(shape) = crate::step::expect::token_refused(r, codes) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!("{what}: refused ({})", r.status));
        return Ok(());
    }
    if access_token(r).is_some() {
        return ctx.fail(format!("{what}: an access token was issued"));
    }
    ctx.fail(format!(
        "{what}: answered {} where a refusal was due",
        r.status
    ))
}

/// `idjag-replay`: the ID-JAG just redeemed, sent again. Refused passes; a second token is the
/// draft's re-submission (§4.4.3: clients MAY re-submit the ID-JAG for a new access token) and
/// RFC 7523 §3 item 7 leaves replay checks to the AS (MAY): skipped, saying so. A 5xx or
/// another answer fails: the AS did not decide.
pub async fn replay(ctx: &mut CaseCtx<'_>) -> StepResult {
    let idp = idp(ctx)?;
    let jwt = stage(ctx, &idp).await?;
    let r = redeem(ctx, &jwt, &BTreeMap::new(), "token").await?;
    if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_grant"]) {
        crate::step::expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "the same ID-JAG (same jti) again: refused ({})",
            r.status
        ));
        return Ok(());
    }
    if access_token(&r).is_some() {
        return Err(Stop::Skip(
            "the same ID-JAG (same jti) got a second token: the draft lets clients re-submit an ID-JAG for a new access token (§4.4.3) and RFC 7523 §3 item 7 leaves replay checks to the AS (MAY), so this is policy".into(),
        ));
    }
    ctx.fail(format!(
        "the same ID-JAG again was answered {}: neither a token nor a refusal",
        r.status
    ))
}

/// `idjag-resource-binding`: an ID-JAG's `resource` bounds the token's audience (draft §4.4.1,
/// RFC 8707 §2). Refused passes; an issued token must name only the ID-JAG's resource.
pub async fn resource_binding(
    ctx: &mut CaseCtx<'_>,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let name = ctx
        .expand(super::arg_str(args, "attack", ""))
        .map_err(Stop::Error)?;
    let idp = idp(ctx)?;
    stage(ctx, &idp).await?;
    let p = attack(ctx, &idp, &name)?;
    let jwt = sign(ctx, &idp, &p)?;
    let r = redeem(ctx, &jwt, &p.params, "token").await?;
    let Some(at) = access_token(&r) else {
        return judge_refusal(ctx, &r, &p.what, &["invalid_target", "invalid_grant"]);
    };
    let Some(c) = claims_of(ctx, &at).await else {
        return Err(Stop::Skip(format!(
            "{}: a token was issued, and its audience cannot be read (opaque, no introspection)",
            p.what
        )));
    };
    let allowed = p
        .claims
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or("");
    match c.get("aud") {
        Some(aud) if aud_names(aud, OTHER_RESOURCE) => ctx.fail(format!(
            "{}: the token's audience {aud} names {OTHER_RESOURCE}, which the ID-JAG did not grant",
            p.what
        )),
        Some(aud) if allowed == OTHER_RESOURCE => ctx.fail(format!(
            "{}: a token was issued (audience {aud}) for a grant whose only resource this AS does not serve",
            p.what
        )),
        Some(aud) => {
            ctx.pass(format!(
                "{}: the token's audience {aud} stays the ID-JAG's resource",
                p.what
            ));
            Ok(())
        }
        None => ctx.fail(format!(
            "{}: a token bound to no audience was issued",
            p.what
        )),
    }
}

/// `idjag-scope`: a request for more scope than the ID-JAG grants is refused, or narrowed to
/// it and the response says so (draft §4.4.1: the granted scope MUST be in the response).
pub async fn scope(ctx: &mut CaseCtx<'_>) -> StepResult {
    let idp = idp(ctx)?;
    stage(ctx, &idp).await?;
    let p = attack(ctx, &idp, "wider-scope")?;
    let jwt = sign(ctx, &idp, &p)?;
    let r = redeem(ctx, &jwt, &p.params, "token").await?;
    if access_token(&r).is_none() {
        return judge_refusal(ctx, &r, &p.what, &["invalid_scope", "invalid_grant"]);
    }
    let grant = granted_scope(ctx);
    let granted: Vec<&str> = grant.split(' ').collect();
    let doc = r.json().unwrap_or_default();
    match doc.get("scope").and_then(Value::as_str) {
        Some(sc) if sc.split(' ').all(|s| s.is_empty() || granted.contains(&s)) => {
            ctx.pass(format!(
                "{}: narrowed to {sc:?}, within the ID-JAG's scope {grant:?}",
                p.what
            ));
            Ok(())
        }
        Some(sc) => ctx.fail(format!(
            "{}: the token's scope {sc:?} is wider than the ID-JAG's {grant:?}",
            p.what
        )),
        None => ctx.fail(format!(
            "{}: a token was issued and the response has no scope member, so the scope asked for ({:?}) is the scope granted (RFC 6749 §5.1), wider than the ID-JAG's {grant:?}",
            p.what,
            p.params.get("scope").cloned().unwrap_or_default()
        )),
    }
}

/// `idjag-not-a-bearer`: the ID-JAG itself presented as a bearer token at the MCP endpoint is
/// refused with 401: it is a grant for the AS (its `aud`), not an access token for the resource.
pub async fn not_a_bearer(ctx: &mut CaseCtx<'_>) -> StepResult {
    let idp = idp(ctx)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint is known".into()));
    };
    let p = valid(ctx, &idp)?;
    let jwt = sign(ctx, &idp, &p)?;
    let m = request::mcp_with_token(
        ctx,
        &resource,
        &jwt,
        "MCP request with the ID-JAG as a bearer token",
    )
    .await?;
    match m.status {
        401 => {
            ctx.pass("the ID-JAG as a bearer token: 401");
            Ok(())
        }
        s if (200..300).contains(&s) => ctx.fail(format!(
            "the MCP endpoint served a request whose bearer token was the ID-JAG itself ({s})"
        )),
        s if (400..500).contains(&s) => {
            ctx.pass(format!("the ID-JAG as a bearer token: refused ({s})"));
            ctx.note("a refused token is answered 401 invalid_token (RFC 6750 §3.1): rs-401-invalid-token judges that");
            Ok(())
        }
        s => ctx.fail(format!(
            "the ID-JAG as a bearer token was answered {s}, not refused"
        )),
    }
}
