//! The `authorize` step (O21 4.1.1): an authorization request built from raw strings, driven
//! through the profile's login driver up to the redirect back to the client, which is recorded
//! and never followed, then graded.
//!
//! Parameter values are percent-encoded one by one (which changes nothing about them once the
//! AS decodes), never passed through a URL type, so a redirect URI such as
//! `https://client.test/cb/../evil` reaches the AS exactly as written.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::client::{Client, apply};
use super::context::{CaseCtx, Saved, StepResult, Stop};
use super::discovery::as_endpoint;
use super::params::{adjust, encode_pairs};
use crate::case::model::{AuthorizeStep, AuthzExpect, Consent, TestUser};
use crate::login::{self, Browser, Journey, Outcome};

/// A PKCE verifier: 32 random bytes, base64url (43 characters, RFC 7636 §4.1).
pub fn new_verifier() -> String {
    let b: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(b)
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
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

pub fn authorization<'a>(ctx: &'a CaseCtx<'_>, name: &str) -> Result<&'a Authorization, Stop> {
    match ctx.saved.get(name) {
        Some(Saved::Authorization(a)) => Ok(a),
        Some(_) => Err(Stop::Error(format!("`{name}` is not an authorization"))),
        None => Err(Stop::Error(format!("no authorization saved as `{name}`"))),
    }
}

/// The authorization request a suite client sends by default (O21 4.1.1): code, PKCE S256,
/// the profile's scope, a fresh state, and the MCP endpoint as `resource` (RFC 8707).
pub fn default_params(
    ctx: &CaseCtx<'_>,
    client: &Client,
    redirect_uri: String,
    challenge: &str,
) -> Vec<(String, String)> {
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
    params.push(("code_challenge".into(), challenge.to_string()));
    params.push(("code_challenge_method".into(), "S256".into()));
    if ctx.env.profile.authorization.resource.unwrap_or(true)
        && let Some(r) = &ctx.env.target.resource
    {
        params.push(("resource".into(), r.clone()));
    }
    params
}

fn with_query(endpoint: &str, params: &[(String, String)]) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", encode_pairs(params))
}

/// Pushes the authorization request to the PAR endpoint (RFC 9126 §2.1) with the client's
/// token endpoint authentication, saves the answer as `<save>_par`, and returns its
/// `request_uri`. A push that does not succeed leaves nothing to open: the case cannot be
/// judged (par-201 judges the push itself).
async fn push(
    ctx: &mut CaseCtx<'_>,
    a: &AuthorizeStep,
    params: &[(String, String)],
) -> Result<String, Stop> {
    let step = crate::case::model::TokenStep {
        client: a.client.clone(),
        endpoint: Some("par".into()),
        ..Default::default()
    };
    let saved = super::token::send(ctx, &step, params.to_vec()).await?;
    let name = format!("{}_par", a.save);
    ctx.saved.insert(name.clone(), saved.clone());
    let Some((_, r)) = saved.response() else {
        return Err(Stop::Error(format!("`{name}` holds no response")));
    };
    match super::par::request_uri(r) {
        Some(ru) => Ok(ru),
        None => {
            let reason = format!(
                "the PAR endpoint answered {} without a request_uri to a valid pushed request, so this case's probe cannot be judged",
                r.status
            );
            ctx.block("par-push-refused", Some("par-201"), &reason);
            Err(Stop::Error(reason))
        }
    }
}

/// Sends an authorization request and drives it through the login of the step's test user to
/// its end. A login that cannot complete is an error of the suite's (the case errors), never
/// the server's failure. Without a second user in the profile a `user = "second"` step is
/// skipped: a feature of the target's setup is missing, nothing was judged.
pub async fn authorize(ctx: &mut CaseCtx<'_>, a: &AuthorizeStep) -> Result<Authorization, Stop> {
    let user = a.user;
    if user == TestUser::Second && ctx.env.users.pool().len() < 2 {
        return Err(Stop::Skip(
            "no second test user is configured ([login] second_username / second_password_env, or [[login.users]])"
                .into(),
        ));
    }
    let endpoint = as_endpoint(ctx, "authorization_endpoint").await?;
    let token_endpoint = as_endpoint(ctx, "token_endpoint").await.unwrap_or_default();
    let client = super::client::named(ctx, &a.client)?.clone();
    let verifier = match &a.verifier {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => new_verifier(),
    };
    let challenge = s256(&verifier);
    let redirect_uri = match &a.redirect_uri {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => client.redirect_uris.first().cloned().unwrap_or_default(),
    };
    let (url, params, sent_redirect, has_challenge) = match &a.request_uri {
        // A request_uri pushed earlier: only it and client_id are sent (RFC 9126 §4); the
        // login driver expects the client's registered redirect URI, which the push used.
        Some(t) => {
            let ru = ctx.expand(t).map_err(Stop::Error)?;
            let params = vec![
                ("client_id".to_string(), client.client_id.clone()),
                ("request_uri".to_string(), ru),
            ];
            let url = with_query(&endpoint, &params);
            (url, params, Some(redirect_uri), false)
        }
        None => {
            let mut params = default_params(ctx, &client, redirect_uri, &challenge);
            if let Some(name) = &a.dpop_jkt {
                // RFC 9449 §10: the code is bound to the thumbprint of this key of the case.
                let k = ctx.dpop.key(name, None).map_err(Stop::Error)?;
                params.push(("dpop_jkt".into(), k.thumbprint()));
            }
            adjust(ctx, &mut params, &a.params, &a.omit)?;
            let sent_redirect = params
                .iter()
                .find(|(k, _)| k == "redirect_uri")
                .map(|(_, v)| v.clone());
            let has_challenge = params.iter().any(|(k, _)| k == "code_challenge");
            let url = if a.push {
                let ru = push(ctx, a, &params).await?;
                with_query(
                    &endpoint,
                    &[
                        ("client_id".to_string(), client.client_id.clone()),
                        ("request_uri".to_string(), ru),
                    ],
                )
            } else {
                with_query(&endpoint, &params)
            };
            (url, params, sent_redirect, has_challenge)
        }
    };
    let mut url = url;
    if let Some(x) = &a.extra {
        url.push_str(&ctx.expand(x).map_err(Stop::Error)?);
    }

    let session_key = a.session.as_ref().map(|s| format!("session:{s}"));
    let mut browser = match session_key.as_ref().and_then(|k| ctx.sessions.remove(k)) {
        Some(b) => b,
        None => Browser::new(login::allowed_origins(
            &ctx.env.profile.login,
            &[&endpoint, &token_endpoint],
        )),
    };
    browser.user = user;
    // The user this case leased for the role (the profile's own settings when the pool is
    // empty: a driver that logs in as nobody in particular).
    let config = match ctx.test_user(user) {
        Some(u) => ctx.env.profile.login.as_user(&u),
        None => ctx.env.profile.login.clone(),
    };
    let env = ctx.env;
    let mut agent = login::Agent {
        wire: crate::http::Recorder {
            http: &env.http,
            exchanges: &mut ctx.exchanges,
            blocked: &mut ctx.blocked,
        },
        config: &config,
        callback: env.callback.clone(),
    };
    let journey = login::drive(
        &mut agent,
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
    let journey = journey.map_err(|e| match e {
        login::LoginError::Failed(m) => Stop::Error(format!("login could not complete: {m}")),
        login::LoginError::Unavailable(m) => {
            Stop::Skip(format!("the login driver cannot run: {m}"))
        }
    })?;
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
        crate::step::client::redirect_parts(registered),
        crate::step::client::redirect_parts(location.split(['?', '#']).next().unwrap_or("")),
    );
    let loopback = r["scheme"] == "http" && (r["host"] == "127.0.0.1" || r["host"] == "[::1]");
    loopback && r["scheme"] == l["scheme"] && r["host"] == l["host"] && r["path"] == l["path"]
}

/// Grades an authorization against what the step expected.
pub fn judge(ctx: &mut CaseCtx<'_>, auth: &Authorization, j: &AuthorizeStep) -> StepResult {
    let (expect, errors) = (j.expect, j.error.as_deref());
    let (accepted, error_page) = (j.accepted, j.error_page);
    let sent = auth.redirect_uri.clone().unwrap_or_default();
    let registered = &auth.client.redirect_uris;
    let cb = auth.callback.clone().unwrap_or_default();
    let code = cb.get("code").is_some();
    let token_in_fragment = cb.fragment.iter().any(|(k, _)| k == "access_token");
    let error = cb.get("error").map(str::to_string);
    let what = auth.describe();
    // A login script that could not go on from the AS's answer to the authorization request:
    // that answer is a refusal for a step expecting one, and tells nothing to a step expecting
    // a code or an error redirect (the script may not fit the AS).
    if let Some(why) = &auth.journey.stuck {
        if matches!(expect, AuthzExpect::Code | AuthzExpect::ErrorRedirect) {
            return Err(Stop::Error(format!("login could not complete: {why}")));
        }
        ctx.note(why.clone());
    }
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

/// The `authorize` step: the request, driven to its end, saved, then graded against what the
/// step expects.
pub async fn run(ctx: &mut CaseCtx<'_>, s: &AuthorizeStep) -> StepResult {
    let t0 = std::time::Instant::now();
    let a = authorize(ctx, s).await;
    let took = t0.elapsed();
    if let Some(max) = s.max_secs
        && took.as_secs() >= max
    {
        return Err(ctx.failed(format!(
            "the AS took {} s to answer the authorization request, more than {max} s{}",
            took.as_secs(),
            match &a {
                Err(Stop::Error(m)) => format!(" ({m})"),
                _ => String::new(),
            }
        )));
    }
    let a = a?;
    ctx.saved
        .insert(s.save.clone(), Saved::Authorization(Box::new(a.clone())));
    if s.no_5xx
        && let Outcome::Page { status, url, .. } = &a.journey.outcome
        && *status >= 500
    {
        return Err(ctx.failed(format!(
            "the AS answered {status} at {url}: a server error, not a controlled refusal"
        )));
    }
    judge(ctx, &a, s)
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
        let s = super::super::params::encode_pairs(&[(
            "redirect_uri".into(),
            "https://c.test/cb/../x%2F y".into(),
        )]);
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
