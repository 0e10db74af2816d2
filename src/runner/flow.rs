//! The authorization code flow as case steps: `client`, `authorize` and `token`.
//!
//! Requests are built from raw strings: parameter values are percent-encoded one by one (which
//! changes nothing about them once the AS decodes), never passed through a URL type, so a
//! redirect URI such as `https://client.test/cb/../evil` reaches the AS exactly as written.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::context::{CaseCtx, Saved, StepResult, Stop};
use crate::case::model::{AuthzExpect, Consent, Judge, TestUser};
use crate::client::{Client, apply, judged};
use crate::http::{Request, Response};
use crate::login::{self, Browser, Journey, Outcome};

/// An endpoint named in the AS metadata (discovering the metadata once per case).
pub async fn as_endpoint(ctx: &mut CaseCtx<'_>, member: &str) -> Result<String, Stop> {
    if !ctx.saved.contains_key("asm") {
        let s = shared_as_metadata(ctx).await?;
        ctx.saved.insert("asm".into(), s);
    }
    let doc = match ctx.saved.get("asm") {
        Some(Saved::Discovery(d)) => d.doc(),
        _ => None,
    };
    let Some(doc) = doc else {
        return Err(Stop::Error(
            "no authorization server metadata found (see the asm-* cases)".into(),
        ));
    };
    match doc.get(member) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Stop::Skip(format!("the AS metadata has no {member}"))),
    }
}

/// The run's AS metadata discovery, made once by the first case that asks.
pub async fn shared_as_metadata(ctx: &mut CaseCtx<'_>) -> Result<Saved, Stop> {
    let env = ctx.env;
    env.as_metadata
        .get_or_init(|| async { super::actions::discover_as(ctx, None, "auto").await })
        .await
        .clone()
}

/// A PKCE verifier: 32 random bytes, base64url (43 characters, RFC 7636 §4.1).
pub fn new_verifier() -> String {
    let b: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(b)
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Serialises ordered pairs as `a=b&c=d`, each value percent-encoded on its own.
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn set(pairs: &mut Vec<(String, String)>, k: &str, v: String) {
    match pairs.iter_mut().find(|(n, _)| n == k) {
        Some(p) => p.1 = v,
        None => pairs.push((k.to_string(), v)),
    }
}

/// Parameters of an authorization response, from the query and the fragment of the
/// `Location`, in order and with duplicates kept (duplicates are a finding).
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub query: Vec<(String, String)>,
    pub fragment: Vec<(String, String)>,
}

impl Callback {
    pub fn parse(location: &str) -> Self {
        let (before, fragment) = match location.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (location, None),
        };
        let pairs = |s: &str| -> Vec<(String, String)> {
            url::form_urlencoded::parse(s.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        Self {
            query: before
                .split_once('?')
                .map(|(_, q)| pairs(q))
                .unwrap_or_default(),
            fragment: fragment.map(pairs).unwrap_or_default(),
        }
    }
    /// A parameter from the query, else from the fragment (where responses for `token`
    /// response types, errors included, arrive: OAuth 2.0 Multiple Response Types §2.1).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(self.fragment.iter())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn count(&self, k: &str) -> usize {
        self.query.iter().filter(|(n, _)| n == k).count()
    }
}

/// What an `authorize` step sent and what came of it.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub url: String,
    pub params: Vec<(String, String)>,
    pub redirect_uri: Option<String>,
    pub verifier: Option<String>,
    pub challenge: Option<String>,
    pub client: Client,
    pub journey: Journey,
    pub callback: Option<Callback>,
}

impl Authorization {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn location(&self) -> Option<&str> {
        match &self.journey.outcome {
            Outcome::Redirected { location, .. } => Some(location),
            Outcome::Page { .. } => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        self.callback.as_ref().and_then(|c| c.get("code"))
    }

    pub fn to_json(&self) -> Value {
        let cb = self.callback.clone().unwrap_or_default();
        let params: serde_json::Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut v = json!({
            "url": self.url,
            "params": params,
            "redirect_uri": self.redirect_uri,
            "verifier": self.verifier,
            "challenge": self.challenge,
            "location": self.location(),
        });
        for k in ["code", "state", "iss", "error", "error_description"] {
            if let Some(x) = cb.get(k) {
                v[k] = Value::String(x.to_string());
            }
        }
        v
    }

    /// A one-line account of the outcome, for messages.
    pub fn describe(&self) -> String {
        match &self.journey.outcome {
            Outcome::Redirected { location, .. } => {
                let cb = self.callback.clone().unwrap_or_default();
                let what = match (cb.get("code"), cb.get("error")) {
                    (Some(_), None) => "a code".to_string(),
                    (_, Some(e)) => format!("error={e}"),
                    _ if cb.fragment.iter().any(|(k, _)| k == "access_token") => {
                        "an access token in the fragment".into()
                    }
                    _ => "no code and no error".into(),
                };
                let target = location.split(['?', '#']).next().unwrap_or(location);
                format!("redirected to {target} with {what}")
            }
            Outcome::Page { status, url, .. } => {
                format!("showed a page ({status}) at {url} and did not redirect")
            }
        }
    }
}

pub fn client<'a>(ctx: &'a CaseCtx<'_>, name: &str) -> Result<&'a Client, Stop> {
    match ctx.saved.get(name) {
        Some(Saved::Client(c)) => Ok(c),
        Some(_) => Err(Stop::Error(format!("`{name}` is not a client"))),
        None => Err(Stop::Error(format!(
            "no client saved as `{name}` (add a `client` step)"
        ))),
    }
}

pub fn authorization<'a>(ctx: &'a CaseCtx<'_>, name: &str) -> Result<&'a Authorization, Stop> {
    match ctx.saved.get(name) {
        Some(Saved::Authorization(a)) => Ok(a),
        Some(_) => Err(Stop::Error(format!("`{name}` is not an authorization"))),
        None => Err(Stop::Error(format!("no authorization saved as `{name}`"))),
    }
}

/// The `authorize` step's options.
pub struct Authorize<'a> {
    pub client: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub params: &'a std::collections::BTreeMap<String, String>,
    pub omit: &'a [String],
    pub extra: Option<&'a str>,
    pub verifier: Option<&'a str>,
    pub session: Option<&'a str>,
    pub login: bool,
    pub consent: Consent,
}

/// Sends an authorization request and drives it to its end. A login that cannot complete is
/// an error of the suite's (the case errors), never the server's failure.
pub async fn authorize(ctx: &mut CaseCtx<'_>, a: Authorize<'_>) -> Result<Authorization, Stop> {
    authorize_as(ctx, a, TestUser::First).await
}

/// [`authorize`], logging in as the given test user. Without a second user in the profile the
/// case is skipped: a feature of the target's setup is missing, nothing was judged.
pub async fn authorize_as(
    ctx: &mut CaseCtx<'_>,
    a: Authorize<'_>,
    user: TestUser,
) -> Result<Authorization, Stop> {
    if user == TestUser::Second && ctx.env.profile.login.second_username.is_none() {
        return Err(Stop::Skip(
            "no second test user is configured ([login] second_username / second_password_env)"
                .into(),
        ));
    }
    let endpoint = as_endpoint(ctx, "authorization_endpoint").await?;
    let token_endpoint = as_endpoint(ctx, "token_endpoint").await.unwrap_or_default();
    let client = client(ctx, a.client)?.clone();
    let verifier = match a.verifier {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => new_verifier(),
    };
    let challenge = s256(&verifier);
    let redirect_uri = match a.redirect_uri {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => client.redirect_uris.first().cloned().unwrap_or_default(),
    };
    let state: [u8; 16] = rand::random();
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client.client_id.clone()),
        ("redirect_uri".into(), redirect_uri),
    ];
    if let Some(s) = &ctx.env.profile.authorization.scope {
        params.push(("scope".into(), s.clone()));
    }
    params.push(("state".into(), URL_SAFE_NO_PAD.encode(state)));
    params.push(("code_challenge".into(), challenge.clone()));
    params.push(("code_challenge_method".into(), "S256".into()));
    if ctx.env.profile.authorization.resource.unwrap_or(true)
        && let Some(r) = &ctx.env.target.resource
    {
        params.push(("resource".into(), r.clone()));
    }
    for (k, t) in a.params {
        let (k, v) = (
            ctx.expand(k).map_err(Stop::Error)?,
            ctx.expand(t).map_err(Stop::Error)?,
        );
        set(&mut params, &k, v);
    }
    let omit: Vec<String> = a
        .omit
        .iter()
        .map(|o| ctx.expand(o).map_err(Stop::Error))
        .collect::<Result<_, _>>()?;
    params.retain(|(k, _)| !omit.contains(k));
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let mut url = format!("{endpoint}{sep}{}", encode_pairs(&params));
    if let Some(x) = a.extra {
        url.push_str(&ctx.expand(x).map_err(Stop::Error)?);
    }
    let sent_redirect = params
        .iter()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.clone());
    let has_challenge = params.iter().any(|(k, _)| k == "code_challenge");

    let session_key = a.session.map(|s| format!("session:{s}"));
    let mut browser = match session_key.as_ref().and_then(|k| ctx.sessions.remove(k)) {
        Some(b) => b,
        None => Browser::new(login::allowed_origins(ctx, &[&endpoint, &token_endpoint])),
    };
    browser.user = user;
    let journey = login::drive(
        ctx,
        &mut browser,
        login::Drive {
            url: url.clone(),
            redirect_uri: sent_redirect.as_deref(),
            consent: a.consent,
            login: a.login,
        },
    )
    .await;
    if let Some(k) = session_key {
        ctx.sessions.insert(k, browser);
    }
    let journey = journey.map_err(|e| Stop::Error(format!("login could not complete: {e}")))?;
    if a.consent == Consent::Deny && !journey.interactions.contains(&"deny") {
        return Err(Stop::Skip(format!(
            "the AS showed no consent page to deny (it approves without asking the user, or the login driver cannot deny): it {}",
            match &journey.outcome {
                Outcome::Redirected { .. } => "redirected back at once",
                Outcome::Page { .. } => "stopped at a page",
            }
        )));
    }
    let callback = match &journey.outcome {
        Outcome::Redirected { location, .. } => Some(Callback::parse(location)),
        Outcome::Page { .. } => None,
    };
    let auth = Authorization {
        url,
        params,
        redirect_uri: sent_redirect,
        verifier: has_challenge.then_some(verifier),
        challenge: has_challenge.then_some(challenge),
        client,
        journey,
        callback,
    };
    if let Some(c) = auth.code() {
        ctx.env.http.redactor().add_secret(c);
    }
    Ok(auth)
}

fn starts_with_uri(location: &str, uri: &str) -> bool {
    location == uri
        || location
            .strip_prefix(uri)
            .is_some_and(|rest| rest.starts_with(['?', '&', '#']))
}

/// Does the redirect go to this registered URI? For a loopback IP literal the port may differ
/// (RFC 8252 §7.3): such a redirect still reaches the registered client.
fn to_registered(location: &str, registered: &str) -> bool {
    if starts_with_uri(location, registered) {
        return true;
    }
    let (r, l) = (
        crate::client::redirect_parts(registered),
        crate::client::redirect_parts(location.split(['?', '#']).next().unwrap_or("")),
    );
    let loopback = r["scheme"] == "http" && (r["host"] == "127.0.0.1" || r["host"] == "[::1]");
    loopback && r["scheme"] == l["scheme"] && r["host"] == l["host"] && r["path"] == l["path"]
}

/// What unexpected outcomes of an authorization mean.
#[derive(Debug, Clone, Copy)]
pub struct Judges {
    /// A code where none was expected.
    pub accepted: Judge,
    /// An error page where an error redirect was expected.
    pub error_page: Judge,
    /// A refusal where a code was expected.
    pub refused: Judge,
}

/// Grades an authorization against what the step expected.
pub fn judge(
    ctx: &mut CaseCtx<'_>,
    auth: &Authorization,
    expect: AuthzExpect,
    errors: Option<&[String]>,
    j: Judges,
) -> StepResult {
    let (accepted, error_page) = (j.accepted, j.error_page);
    let sent = auth.redirect_uri.clone().unwrap_or_default();
    let registered = &auth.client.redirect_uris;
    let cb = auth.callback.clone().unwrap_or_default();
    let code = cb.get("code").is_some();
    let token_in_fragment = cb.fragment.iter().any(|(k, _)| k == "access_token");
    let error = cb.get("error").map(str::to_string);
    let what = auth.describe();
    // Where the step expected no code, a code (or an implicit-flow token) is the finding.
    if !matches!(expect, AuthzExpect::Code | AuthzExpect::Any) && (code || token_in_fragment) {
        return apply(
            ctx,
            accepted,
            format!("the AS accepted the request: it {what}"),
        );
    }
    // An error redirect is acceptable only to a registered URI and with an expected code.
    let error_redirect = |ctx: &mut CaseCtx<'_>, location: &str, e: &str| -> StepResult {
        if !registered.iter().any(|r| to_registered(location, r)) {
            return ctx.fail(format!(
                "the AS sent error={e} to {location:?}, which is not a registered redirect URI"
            ));
        }
        if !errors.is_none_or(|l| l.iter().any(|x| x == e)) {
            return ctx.fail(format!(
                "the AS answered error={e}, expected one of {:?}",
                errors.unwrap_or_default()
            ));
        }
        ctx.pass(format!("the AS {what}"));
        Ok(())
    };
    match (expect, &auth.journey.outcome) {
        (AuthzExpect::Any, _) => {
            ctx.note(format!("the AS {what}"));
            Ok(())
        }
        (AuthzExpect::Code, Outcome::Redirected { location, .. }) if code && error.is_none() => {
            if !sent.is_empty() && !starts_with_uri(location, &sent) {
                return ctx.fail(format!(
                    "the AS issued a code but redirected to {location:?}, not to the requested {sent:?}"
                ));
            }
            ctx.pass(format!("the AS {what}"));
            Ok(())
        }
        (AuthzExpect::Code, _) => apply(
            ctx,
            j.refused,
            format!("a valid request was refused: the AS {what}"),
        ),
        (
            AuthzExpect::Rejected | AuthzExpect::ErrorRedirect,
            Outcome::Redirected { location, .. },
        ) => match &error {
            Some(e) => error_redirect(ctx, location, e),
            None => ctx.fail(format!("the AS {what}: neither a refusal nor a code")),
        },
        (AuthzExpect::Rejected, Outcome::Page { status, .. }) => {
            ctx.pass(format!(
                "the AS refused with an error page (status {status})"
            ));
            Ok(())
        }
        (AuthzExpect::ErrorRedirect, Outcome::Page { status, .. }) => apply(
            ctx,
            error_page,
            format!(
                "the AS showed an error page (status {status}) instead of redirecting the error to the registered URI"
            ),
        ),
        (AuthzExpect::NoRedirect, Outcome::Page { status, .. }) => {
            ctx.pass(format!(
                "the AS refused {sent:?} without redirecting (an error page, status {status})"
            ));
            Ok(())
        }
        (AuthzExpect::NoRedirect, Outcome::Redirected { location, .. }) => {
            if !sent.is_empty() && starts_with_uri(location, &sent) && !registered.contains(&sent) {
                ctx.fail(format!(
                    "the AS redirected to the unregistered URI it was given ({what}): an open redirector"
                ))
            } else if registered.iter().any(|r| to_registered(location, r)) {
                ctx.warn(format!(
                    "the AS {what}: a registered URI, but O21 4.1.2.1 says an invalid redirect URI gets no redirect at all"
                ));
                Ok(())
            } else {
                ctx.fail(format!("the AS {what}"))
            }
        }
    }
}

/// The `token` step's options.
pub struct Token<'a> {
    pub client: &'a str,
    pub from: Option<&'a str>,
    pub grant_type: &'a str,
    pub params: &'a std::collections::BTreeMap<String, String>,
    pub omit: &'a [String],
    pub extra: Option<&'a str>,
    pub auth: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub method: &'a str,
    pub json_body: bool,
    pub if_no_code: Judge,
    pub assertion: Option<&'a crate::case::model::Assertion>,
    pub parallel: Option<usize>,
    pub endpoint: Option<&'a str>,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Builds a client assertion (RFC 7523 §3) as the case describes it, valid by default.
fn client_assertion(
    ctx: &CaseCtx<'_>,
    client: &Client,
    spec: &crate::case::model::Assertion,
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
            let other = crate::client::ClientKey::generate().map_err(Stop::Error)?;
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
pub async fn token(ctx: &mut CaseCtx<'_>, t: Token<'_>) -> Result<Saved, Stop> {
    let member = match t.endpoint.unwrap_or("token") {
        "token" => "token_endpoint",
        "revocation" => "revocation_endpoint",
        "introspection" => "introspection_endpoint",
        other => return Err(Stop::Error(format!("unknown endpoint {other:?}"))),
    };
    let endpoint = as_endpoint(ctx, member).await?;
    // An assertion's audience is the token endpoint whichever endpoint it is sent to.
    let token_endpoint = if member == "token_endpoint" {
        endpoint.clone()
    } else {
        as_endpoint(ctx, "token_endpoint").await?
    };
    let client = client(ctx, t.client)?.clone();
    let grant_type = ctx.expand(t.grant_type).map_err(Stop::Error)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !grant_type.is_empty() {
        pairs.push(("grant_type".into(), grant_type.clone()));
    }
    // By default a code grant redeems the authorization saved as `auth`, if there is one.
    let from = t.from.or((grant_type == "authorization_code"
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
    let secret = match t.secret {
        Some(s) => Some(ctx.expand(s).map_err(Stop::Error)?),
        None => client.secret.clone(),
    };
    let method = t.auth.unwrap_or(match client.auth_method.as_str() {
        "client_secret_basic" => "basic",
        "client_secret_post" => "post",
        "private_key_jwt" => "jwt",
        _ => "none",
    });
    // An assertion that is the grant (RFC 7523 §2.1) goes in `assertion`, and the request
    // carries no client authentication unless the step names one.
    let grant_assertion = t.assertion.filter(|a| a.grant);
    let method = match (grant_assertion, t.assertion) {
        (Some(_), _) => t.auth.unwrap_or("omit"),
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
            let spec = t.assertion.cloned().unwrap_or_default();
            let jwt = client_assertion(ctx, &client, &spec, &token_endpoint)?;
            pairs.push(("client_id".into(), client.client_id.clone()));
            pairs.push(("client_assertion_type".into(), JWT_BEARER.into()));
            pairs.push(("client_assertion".into(), jwt));
        }
        other => return Err(Stop::Error(format!("unknown token auth {other:?}"))),
    }
    if let Some(s) = &secret {
        ctx.env.http.redactor().add_secret(s);
    }
    for (k, v) in t.params {
        let (k, v) = (
            ctx.expand(k).map_err(Stop::Error)?,
            ctx.expand(v).map_err(Stop::Error)?,
        );
        set(&mut pairs, &k, v);
    }
    let omit: Vec<String> = t
        .omit
        .iter()
        .map(|o| ctx.expand(o).map_err(Stop::Error))
        .collect::<Result<_, _>>()?;
    pairs.retain(|(k, _)| !omit.contains(k));
    let mut body = if t.json_body {
        let m: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(m).to_string()
    } else {
        encode_pairs(&pairs)
    };
    if let Some(x) = t.extra {
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
        t.method,
        url.clone(),
        match member {
            "token_endpoint" => format!("token request ({grant_type})"),
            "revocation_endpoint" => "revocation request".to_string(),
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
    if n == 1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn encoding_keeps_the_value() {
        let s = encode_pairs(&[("redirect_uri".into(), "https://c.test/cb/../x%2F y".into())]);
        let back: Vec<(String, String)> = url::form_urlencoded::parse(s.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(back[0].1, "https://c.test/cb/../x%2F y");
    }

    #[test]
    fn callback_keeps_duplicates_and_fragment() {
        let c = Callback::parse("https://c.test/cb?code=a&code=b&state=s#access_token=t");
        assert_eq!(c.count("code"), 2);
        assert_eq!(c.get("state"), Some("s"));
        assert_eq!(c.fragment[0].0, "access_token");
    }
}
