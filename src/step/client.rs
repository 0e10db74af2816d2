//! OAuth clients the suite acts as: pre-registered ones from the target profile, or fresh ones
//! made by Dynamic Client Registration (RFC 7591) so that one case's grants, consents and codes
//! cannot leak into another's. (Client ID Metadata Documents will be a third source.)

use serde_json::{Map, Value, json};

use super::context::{CaseCtx, Saved, StepResult, Stop};
use crate::case::model::{ClientKind, ClientStep, Judge, RedirectKind, toml_to_json};
use crate::client_key::ClientKey;
use crate::http::Request;

/// A client a case acts as.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub secret: Option<String>,
    pub auth_method: String,
    pub redirect_uris: Vec<String>,
    pub kind: ClientKind,
    /// `profile`, `registration`, or `minted` (made up for an AS with open registration).
    pub source: &'static str,
    /// The signing key of a `private_key_jwt` client.
    pub key: Option<std::sync::Arc<ClientKey>>,
}

impl Client {
    pub fn to_json(&self) -> Value {
        let first = self.redirect_uris.first().cloned().unwrap_or_default();
        json!({
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "redirect_uri": first,
            "redirect_uris": self.redirect_uris,
            "redirect": redirect_parts(&first),
            "source": self.source,
        })
    }
}

/// The `client` step: a client provisioned and saved under the step's name.
pub async fn run(ctx: &mut CaseCtx<'_>, s: &ClientStep) -> StepResult {
    let c = provision(ctx, s).await?;
    ctx.saved.insert(s.save.clone(), Saved::Client(c));
    Ok(())
}

/// The client a case saved under `name`.
pub fn named<'a>(ctx: &'a CaseCtx<'_>, name: &str) -> Result<&'a Client, Stop> {
    match ctx.saved.get(name) {
        Some(Saved::Client(c)) => Ok(c),
        Some(_) => Err(Stop::Error(format!("`{name}` is not a client"))),
        None => Err(Stop::Error(format!(
            "no client saved as `{name}` (add a `client` step)"
        ))),
    }
}

/// The parts of a redirect URI, for case templates that build variants of it
/// (`${client.redirect.scheme}://evil.${client.redirect.host}...`). Split by hand on the raw
/// string: a URL type would normalise the very details the variants are about.
pub fn redirect_parts(uri: &str) -> Value {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let (authority, path_query) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, format!("?{q}")),
        None => (path_query, String::new()),
    };
    let (host, port) = if authority.starts_with('[') {
        match authority.split_once("]:") {
            Some((h, p)) => (format!("{h}]"), format!(":{p}")),
            None => (authority.to_string(), String::new()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), format!(":{p}")),
            None => (authority.to_string(), String::new()),
        }
    };
    json!({ "scheme": scheme, "authority": authority, "host": host, "port": port,
            "path": path, "query": query })
}

fn is_loopback_ip_redirect(u: &str) -> bool {
    let host = redirect_parts(u)["host"].as_str().unwrap_or("").to_string();
    u.starts_with("http://") && (host == "127.0.0.1" || host == "[::1]")
}

fn is_https_redirect(u: &str) -> bool {
    u.starts_with("https://") && !is_loopback_ip_redirect(u)
}

fn fits(kind: RedirectKind, uri: &str) -> bool {
    match kind {
        RedirectKind::Any => true,
        RedirectKind::Https => is_https_redirect(uri),
        RedirectKind::Loopback => is_loopback_ip_redirect(uri),
    }
}

/// Provides a client: a fitting profile client unless the case wants a fresh one or specific
/// redirect URIs, else one registered now.
pub async fn provision(ctx: &mut CaseCtx<'_>, want: &ClientStep) -> Result<Client, Stop> {
    let mut want = want.clone();
    // Templates are expanded first: the cache below keys on the URIs actually registered.
    let expanded: Vec<String> = want
        .redirect_uris
        .iter()
        .map(|t| ctx.expand(t).map_err(Stop::Error))
        .collect::<Result<_, _>>()?;
    want.redirect_uris = expanded;
    let needs_registration =
        want.fresh || !want.redirect_uris.is_empty() || !want.metadata.is_empty();
    // A case asking for a confidential client without naming a method wants a secret.
    let method_fits = |m: &str| match want.auth_method.as_deref() {
        Some(w) => m == w,
        None => m != "private_key_jwt",
    };
    if !needs_registration
        && let Some(c) = ctx.env.profile.clients.iter().find(|c| {
            c.kind() == want.kind
                && method_fits(&c.auth_method)
                && c.redirect_uris
                    .first()
                    .is_some_and(|u| fits(want.redirect, u))
        })
    {
        let mut uris = c.redirect_uris.clone();
        // The fitting URI first: it is the one requests use by default.
        if let Some(i) = uris.iter().position(|u| fits(want.redirect, u)) {
            uris.swap(0, i);
        }
        ctx.note(format!(
            "client {} from the profile ({})",
            c.client_id, c.auth_method
        ));
        return Ok(Client {
            client_id: c.client_id.clone(),
            secret: c.secret.clone(),
            auth_method: c.auth_method.clone(),
            redirect_uris: uris,
            kind: c.kind(),
            source: "profile",
            key: c.key.clone(),
        });
    }
    // Metadata is expanded per registration (its templates may differ by variant), so such
    // clients are never shared.
    if want.fresh || !want.metadata.is_empty() {
        return register(ctx, &want).await;
    }
    // Shared registrations: one per shape of request, made once per run (the lock is held
    // across the registration so concurrent cases do not register the same client twice).
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        want.kind, want.redirect, want.redirect_uris, want.metadata, want.auth_method
    );
    let env = ctx.env;
    let mut cache = env.registered.lock().await;
    if let Some(c) = cache.get(&key) {
        ctx.note(format!(
            "client {} (registered earlier in this run)",
            c.client_id
        ));
        return Ok(c.clone());
    }
    let c = register(ctx, &want).await?;
    cache.insert(key, c.clone());
    Ok(c)
}

/// The shared-secret method a confidential client is registered with when neither the case nor
/// the profile names one: `client_secret_basic` if the AS lists it (or lists nothing: RFC 8414
/// §2's default), else `client_secret_post` if listed. A client registered with a method the AS
/// does not list could be refused at the token endpoint, and every case using it would be
/// errored for the suite's choice, not the server's.
fn advertised_secret_method(ctx: &CaseCtx<'_>) -> &'static str {
    match listed_auth_methods(ctx) {
        Some(l)
            if !l.iter().any(|m| m == "client_secret_basic")
                && l.iter().any(|m| m == "client_secret_post") =>
        {
            "client_secret_post"
        }
        _ => "client_secret_basic",
    }
}

/// The AS metadata's `token_endpoint_auth_methods_supported` (as the case discovered it), when
/// it is a list; `None` when absent (RFC 8414 §2: client_secret_basic).
fn listed_auth_methods(ctx: &CaseCtx<'_>) -> Option<Vec<String>> {
    let Some(Saved::Discovery(d)) = ctx.saved.get("asm") else {
        return None;
    };
    let listed = d
        .doc()?
        .get("token_endpoint_auth_methods_supported")?
        .clone();
    Some(
        listed
            .as_array()?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect(),
    )
}

async fn register(ctx: &mut CaseCtx<'_>, want: &ClientStep) -> Result<Client, Stop> {
    let what = match want.kind {
        ClientKind::Public => "public",
        ClientKind::Confidential => "confidential",
    };
    let endpoint = match super::discovery::as_endpoint(ctx, "registration_endpoint").await {
        Ok(e) => e,
        Err(Stop::Skip(m) | Stop::Error(m)) => {
            if let Some(c) = minted(ctx, want) {
                return Ok(c);
            }
            let open = ctx.env.profile.registration.open;
            return Err(Stop::Skip(format!(
                "this case needs a fresh {what} client, the profile has none fitting and \
                 Dynamic Client Registration is unavailable ({m}){}",
                if !open {
                    ""
                } else if want.kind == ClientKind::Confidential {
                    "; [registration] open cannot make up a confidential client (its secret must be known to the AS)"
                } else if !want.metadata.is_empty() {
                    "; [registration] open cannot make up a client with this case's metadata (only registration conveys it)"
                } else {
                    "; [registration] open does not stand in for the registration this case is about"
                }
            )));
        }
        Err(other) => return Err(other),
    };
    let uris = wanted_redirect_uris(want);
    let method = match want.kind {
        ClientKind::Public => "none".to_string(),
        ClientKind::Confidential => want
            .auth_method
            .clone()
            .or_else(|| ctx.env.profile.registration.confidential_method.clone())
            .unwrap_or_else(|| advertised_secret_method(ctx).into()),
    };
    let key = if method == "private_key_jwt" {
        if !listed_auth_methods(ctx).is_some_and(|l| l.iter().any(|m| m == "private_key_jwt")) {
            return Err(Stop::Skip(
                "the AS does not list private_key_jwt in token_endpoint_auth_methods_supported"
                    .into(),
            ));
        }
        Some(std::sync::Arc::new(
            ClientKey::generate().map_err(Stop::Error)?,
        ))
    } else {
        None
    };
    let mut body = Map::new();
    body.insert("redirect_uris".into(), json!(uris));
    body.insert("token_endpoint_auth_method".into(), json!(method));
    body.insert(
        "grant_types".into(),
        json!(["authorization_code", "refresh_token"]),
    );
    body.insert("response_types".into(), json!(["code"]));
    body.insert("client_name".into(), json!("authconform test client"));
    if let Some(s) = &ctx.env.profile.authorization.scope {
        body.insert("scope".into(), json!(s));
    }
    // MCP 2026-07-28 clients send application_type (OIDC Registration §2; non-OIDC servers
    // ignore it): native for loopback and private-use redirect URIs, web otherwise. An OIDC AS
    // may apply RFC 8252 loopback rules only to native clients.
    let native = uris.iter().any(|u| {
        is_loopback_ip_redirect(u)
            || u.starts_with("http://localhost")
            || !(u.starts_with("http://") || u.starts_with("https://"))
    });
    body.insert(
        "application_type".into(),
        json!(if native { "native" } else { "web" }),
    );
    if let Some(k) = &key {
        body.insert("jwks".into(), json!({ "keys": [k.jwk] }));
        body.insert("token_endpoint_auth_signing_alg".into(), json!("ES256"));
    }
    for (k, v) in ctx.env.profile.registration.metadata.iter() {
        body.insert(k.clone(), toml_to_json(v));
    }
    // A case's metadata strings are templates; an empty one leaves the member out.
    for (k, v) in want.metadata.iter() {
        match v {
            toml::Value::String(t) => {
                let x = ctx.expand(t).map_err(Stop::Error)?;
                if x.is_empty() {
                    body.remove(k);
                } else {
                    body.insert(k.clone(), json!(x));
                }
            }
            other => {
                body.insert(k.clone(), toml_to_json(other));
            }
        }
    }
    let req = Request::new(
        "POST",
        endpoint.clone(),
        format!("register a {what} client (RFC 7591)"),
    )
    .header("Content-Type", "application/json")
    .header("Accept", "application/json")
    .body(Value::Object(body).to_string());
    let resp = ctx
        .send(req)
        .await
        .map_err(|e| Stop::Error(format!("registration at {endpoint}: {e}")))?;
    let doc = resp.json();
    let client_id = doc
        .as_ref()
        .and_then(|d| d.get("client_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    ctx.env.facts.add(super::facts::Fact {
        case: ctx.case_id.clone(),
        kind: super::facts::FactKind::Endpoint {
            member: "registration_endpoint",
            status: resp.status,
            worked: matches!(resp.status, 200 | 201) && client_id.is_some(),
            // Meant to succeed unless the case judges a refusal itself (`refused = "pass"`...).
            correct: want.refused == crate::case::model::Judge::Error,
        },
    });
    if resp.status == 429 || resp.status >= 500 {
        // Not a refusal of these redirect URIs: the AS would not say (rate limit, crash).
        return Err(Stop::Error(format!(
            "registration at {endpoint} answered {}: no client to run the case with",
            resp.status
        )));
    }
    let ok = (200..300).contains(&resp.status) && client_id.is_some();
    if !ok {
        let err = doc
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("-");
        let msg = format!(
            "the AS refused to register redirect URIs {uris:?}: {} error={err}",
            resp.status
        );
        return Err(judged(ctx, want.refused, msg));
    }
    let client_id = client_id.unwrap_or_default();
    // What the AS registered (RFC 7591 §3.2.1 echoes it), for checks that depend on whether
    // it kept a member (par-required: require_pushed_authorization_requests).
    ctx.saved.insert(
        format!("{}_registration", want.save),
        Saved::Response {
            url: endpoint.clone(),
            response: resp.clone(),
        },
    );
    let secret = doc
        .as_ref()
        .and_then(|d| d.get("client_secret"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(s) = &secret {
        ctx.env.http.redactor().add_secret(s);
    }
    if want.kind == ClientKind::Confidential && secret.is_none() && key.is_none() {
        return Err(Stop::Error(format!(
            "registered confidential client {client_id} came back without a client_secret"
        )));
    }
    if let Some(j) = want.accepted {
        let msg = format!("the AS registered redirect URIs {uris:?} (client {client_id})");
        apply(ctx, j, msg)?;
    } else {
        ctx.note(format!("registered client {client_id} ({method})"));
    }
    Ok(Client {
        client_id,
        secret,
        auth_method: method,
        redirect_uris: uris,
        kind: want.kind,
        source: "registration",
        key,
    })
}

/// A public client made up for an AS with open registration (`[registration] open = true`):
/// a new `client_id` the AS has never seen and the redirect URIs the case wants, which such an
/// AS accepts as they come. `None` where that is not possible or not meaningful: a confidential
/// client (the AS would know no secret), metadata (nothing conveys it), a case that judges the
/// registration (`accepted`, `refused`) or is about registration (area `dcr`).
/// The redirect URIs a fresh client is made with: the case's, else one of the kind it wants.
fn wanted_redirect_uris(want: &ClientStep) -> Vec<String> {
    if !want.redirect_uris.is_empty() {
        return want.redirect_uris.to_vec();
    }
    vec![
        match want.redirect {
            RedirectKind::Loopback => "http://127.0.0.1/cb",
            _ => "https://client.test/cb",
        }
        .to_string(),
    ]
}

fn minted(ctx: &mut CaseCtx<'_>, want: &ClientStep) -> Option<Client> {
    if !ctx.env.profile.registration.open
        || want.kind != ClientKind::Public
        || !want.metadata.is_empty()
        || want.accepted.is_some()
        || want.refused != crate::case::model::Judge::Error
        || ctx.area == "dcr"
    {
        return None;
    }
    let uris = wanted_redirect_uris(want);
    let tag: [u8; 8] = rand::random();
    let client_id = format!(
        "authconform-{}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    ctx.note(format!(
        "client {client_id} minted, not registered: the profile says the AS accepts any client_id ([registration] open), redirect URIs {uris:?}"
    ));
    Some(Client {
        client_id,
        secret: None,
        auth_method: "none".into(),
        redirect_uris: uris,
        kind: ClientKind::Public,
        source: "minted",
        key: None,
    })
}

/// Applies a judgement to an observation: `Warn` records a tolerated deviation and the step
/// carries on; every other verdict ends the case as [`judged`] says.
pub fn apply(ctx: &mut CaseCtx<'_>, j: Judge, msg: String) -> StepResult {
    match j {
        Judge::Warn => {
            ctx.warn(format!("{msg} (a tolerated deviation)"));
            Ok(())
        }
        j => Err(judged(ctx, j, msg)),
    }
}

/// Turns a judgement into the way a step ends. `Warn` cannot end a step (it fails here); use
/// [`apply`] where a warning may carry on.
pub fn judged(ctx: &mut CaseCtx<'_>, j: Judge, msg: String) -> Stop {
    match j {
        Judge::Fail | Judge::Warn => ctx.failed(msg),
        Judge::Pass => {
            ctx.pass(msg.clone());
            Stop::Pass(msg)
        }
        Judge::Skip => Stop::Skip(msg),
        Judge::Error => Stop::Error(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_parts_keep_the_raw_text() {
        let p = redirect_parts("https://Client.test:8443/cb/x?a=1");
        assert_eq!(p["scheme"], "https");
        assert_eq!(p["host"], "Client.test");
        assert_eq!(p["port"], ":8443");
        assert_eq!(p["path"], "/cb/x");
        assert_eq!(p["query"], "?a=1");
        let p = redirect_parts("http://[::1]:61023/cb");
        assert_eq!(p["host"], "[::1]");
        assert_eq!(p["port"], ":61023");
        let p = redirect_parts("http://127.0.0.1/cb");
        assert_eq!(p["port"], "");
        assert!(is_loopback_ip_redirect("http://127.0.0.1:8765/callback"));
        assert!(!is_loopback_ip_redirect("http://localhost:8765/callback"));
        assert!(is_https_redirect("https://client.test/cb"));
    }

    #[test]
    fn a_pem_key_reads_back_as_the_same_jwk() {
        let kp = rcgen::KeyPair::generate().expect("key");
        let k = ClientKey::from_pem(&kp.serialize_pem(), Some("k1".into())).expect("P-256 key");
        assert_eq!(k.jwk["kid"], "k1");
        assert_eq!(k.jwk["crv"], "P-256");
        assert_eq!(k.pkcs8, kp.serialize_der());
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(ClientKey::from_pem(garbage, None).is_err());
    }
}
