//! Login drivers: how the suite gets a test user through an authorization server's login and
//! consent without a person, up to the moment the AS sends the browser back to the client.
//!
//! The browser here follows redirects itself (bounded, relative `Location` resolved against the
//! current URL, cookies kept with `cookie_store`, which honours `Path` and `Domain`), and only
//! while they stay on the AS (its origins plus `login.hosts`). The redirect that leaves the AS is
//! the authorization response: it is recorded, never followed, so an attack redirect URI is never
//! contacted.
//!
//! A driver that cannot finish (credentials refused, a page it cannot read) reports why; the
//! case then ends `errored`, never `failed`: the server did nothing wrong that was observed.

pub mod browser;
// Public for tests/report_in_browser.rs (the report opened in a real browser), which drives
// Chromium the way the browser driver does rather than through another crate.
pub mod devtools;
pub mod form;
pub mod script;
pub mod users;

use std::collections::BTreeMap;
use std::time::Duration;

use cookie_store::CookieStore;
use serde::Deserialize;

use crate::case::model::{Consent, TestUser};
use crate::http::{Recorder, Request, Response};

/// `[login]` in the target profile.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    #[serde(default)]
    pub driver: Driver,
    /// The test user (form and script drivers).
    pub username: Option<String>,
    /// Environment variable holding the test user's password.
    pub password_env: Option<String>,
    /// Read from `password_env` when the profile loads.
    #[serde(skip)]
    pub password: Option<String>,
    /// A second test user, for the cases where one user must not reach another's session or
    /// state (`authorize` steps with `user = "second"`; skipped without it). Same driver and
    /// fields as the first.
    pub second_username: Option<String>,
    /// Environment variable holding the second user's password.
    pub second_password_env: Option<String>,
    /// Read from `second_password_env` when the profile loads.
    #[serde(skip)]
    pub second_password: Option<String>,
    /// Name of the username input (default: `login`, `username`, `email`... or the first text input).
    pub username_field: Option<String>,
    /// Name of the password input (default: the form's password input).
    pub password_field: Option<String>,
    /// Extra fields posted with the login form.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Origins besides the AS the browser may follow (an upstream identity provider).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The `script` driver's HTTP steps (see [`script`]).
    #[serde(default)]
    pub steps: Vec<script::ScriptStep>,
    /// The `browser` driver's settings (`[login.browser]`).
    #[serde(default)]
    pub browser: browser::BrowserConfig,
    /// More test users (`[[login.users]]`): with the first and second user they make the pool
    /// cases lease from, so cases running at once log in as different users.
    #[serde(default)]
    pub users: Vec<users::UserConfig>,
    /// A program and its arguments (no shell) run once before the suite sends anything, to
    /// create or reset the test users; relative paths resolve against the profile's folder.
    #[serde(default)]
    pub provision: Vec<String>,
    /// How long `provision` may take (default 60 s).
    pub provision_timeout_secs: Option<u64>,
    /// Requests one login may take at most (default 20).
    pub max_requests: Option<usize>,
    /// How long `manual` waits for the person (default 300 s).
    pub manual_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Fill HTML login and consent forms.
    #[default]
    Form,
    /// A declared sequence of HTTP steps.
    Script,
    /// The AS approves without a user: follow redirects only.
    Auto,
    /// A person logs in with a browser; the callback listener or a pasted URL brings the response.
    Manual,
    /// A real headless Chromium, driven over the DevTools protocol (single-page logins).
    Browser,
}

/// Why a login did not reach the redirect back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// It could not complete (credentials refused, a page the driver cannot read, a broken
    /// script): the case is `errored`.
    Failed(String),
    /// The driver cannot run here (no Chromium): the case is `skipped`.
    Unavailable(String),
}

impl From<String> for LoginError {
    fn from(m: String) -> Self {
        LoginError::Failed(m)
    }
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Failed(m) | LoginError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl LoginConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.driver == Driver::Script && self.steps.is_empty() {
            return Err(("steps", "the script driver needs [[login.steps]]".into()));
        }
        if self.driver == Driver::Form && self.password_env.is_some() && self.username.is_none() {
            return Err(("username", "password_env is set but username is not".into()));
        }
        if self.second_password_env.is_some() && self.second_username.is_none() {
            return Err((
                "second_username",
                "second_password_env is set but second_username is not".into(),
            ));
        }
        for (i, s) in self.steps.iter().enumerate() {
            s.validate()
                .map_err(|m| ("steps", format!("steps[{i}]: {m}")))?;
        }
        if !self.users.is_empty() && self.username.is_none() {
            return Err((
                "users",
                "[[login.users]] adds to the first user: set [login] username too".into(),
            ));
        }
        let mut labels: Vec<String> = Vec::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.username.is_empty() {
                return Err(("users", format!("users[{i}].username must not be empty")));
            }
            let label = u.name.clone().unwrap_or_else(|| u.username.clone());
            if ["first", "second"].contains(&label.as_str()) || labels.contains(&label) {
                return Err((
                    "users",
                    format!(
                        "users[{i}]: the name {label:?} is taken (first, second and each user's name must differ)"
                    ),
                ));
            }
            labels.push(label);
        }
        if self.provision.first().is_some_and(String::is_empty) {
            return Err(("provision", "the program must not be empty".into()));
        }
        Ok(())
    }

    pub fn load_password(&mut self) -> Result<(), (&'static str, String)> {
        if let Some(var) = &self.password_env {
            match std::env::var(var) {
                Ok(v) => self.password = Some(v),
                Err(_) => {
                    return Err((
                        "password_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        if let Some(var) = &self.second_password_env {
            match std::env::var(var) {
                Ok(v) => self.second_password = Some(v),
                Err(_) => {
                    return Err((
                        "second_password_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        for (i, u) in self.users.iter_mut().enumerate() {
            if let Some(var) = &u.password_env {
                match std::env::var(var) {
                    Ok(v) => u.password = Some(v),
                    Err(_) => {
                        return Err((
                            "users",
                            format!(
                                "users[{i}].password_env: environment variable {var} is not set"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The test users in lease order: the first user, the second, then `[[login.users]]`.
    pub fn pool(&self) -> Vec<users::PoolUser> {
        let mut v = Vec::new();
        if let Some(u) = &self.username {
            v.push(users::PoolUser {
                label: "first".into(),
                username: u.clone(),
                password: self.password.clone(),
            });
            if let Some(s) = &self.second_username {
                v.push(users::PoolUser {
                    label: "second".into(),
                    username: s.clone(),
                    password: self.second_password.clone(),
                });
            }
            v.extend(self.users.iter().map(|u| users::PoolUser {
                label: u.name.clone().unwrap_or_else(|| u.username.clone()),
                username: u.username.clone(),
                password: u.password.clone(),
            }));
        }
        v
    }

    /// Every password of the pool, for the redactor.
    pub fn passwords(&self) -> Vec<String> {
        [&self.password, &self.second_password]
            .into_iter()
            .flatten()
            .cloned()
            .chain(self.users.iter().filter_map(|u| u.password.clone()))
            .collect()
    }

    /// The configuration a login as `user` runs with: that user's name and password in place
    /// of the first user's.
    pub fn as_user(&self, user: &users::PoolUser) -> LoginConfig {
        let mut c = self.clone();
        c.username = Some(user.username.clone());
        c.password = user.password.clone();
        c
    }
}

/// A page the browser saw on the AS (login, consent or other), for header checks.
#[derive(Debug, Clone)]
pub struct PageSeen {
    pub url: String,
    pub status: u16,
    /// `login`, `consent` or `page`.
    pub kind: &'static str,
    pub headers: Vec<(String, String)>,
    pub meta_referrer: Option<String>,
    /// The start of the page (64 KiB at most), for checks on what it displays.
    pub body: String,
}

/// The record of one page: what the page checks (framing, referrer, what it displays) read.
fn page_seen(
    url: &str,
    r: &crate::http::Response,
    html: Option<&form::Page>,
    kind: &'static str,
) -> PageSeen {
    PageSeen {
        url: url.to_string(),
        status: r.status,
        kind,
        headers: r.headers.clone(),
        meta_referrer: html.and_then(|p| p.meta_referrer.clone()),
        body: String::from_utf8_lossy(&r.body[..r.body.len().min(64 << 10)]).into_owned(),
    }
}

/// A page a login script went through, when it is an HTML page: classified as the form
/// driver would (a password form: `login`; another form: `consent`; none: `page`), so the
/// page checks see script-driven logins too.
pub(crate) fn script_page(url: &str, r: &crate::http::Response) -> Option<PageSeen> {
    if (300..400).contains(&r.status) || !is_html(r) {
        return None;
    }
    let p = form::parse(&r.text());
    let kind = if p.forms.iter().any(|f| f.password.is_some()) {
        "login"
    } else if p.forms.is_empty() {
        "page"
    } else {
        "consent"
    };
    Some(page_seen(url, r, Some(&p), kind))
}

/// Where the authorization request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The AS sent the browser away from itself: the `Location`, absolute, as the AS wrote it
    /// (relative ones resolved), plus the raw header value.
    Redirected { location: String, raw: String },
    /// The AS showed a page the driver does not go past (an error page, or any page when
    /// the driver does not log in).
    Page {
        url: String,
        status: u16,
        excerpt: String,
    },
}

/// Everything one authorization request went through.
#[derive(Debug, Clone)]
pub struct Journey {
    pub outcome: Outcome,
    pub pages: Vec<PageSeen>,
    /// Forms submitted (login, consent): the user interactions the AS asked for.
    pub interactions: Vec<&'static str>,
    /// What the driver did, step by step, in words (captures, rules that ended the login):
    /// what `authconform login` prints and a failed login's evidence.
    pub trace: Vec<String>,
    /// Set when the driver stopped at the AS's answer to the authorization request because it
    /// could not go on from it (a login script whose captures found nothing there), not because
    /// the AS said no in a way the driver recognises: a refusal for the cases that expect one,
    /// a login that could not complete for the cases that expect a code.
    pub stuck: Option<String>,
}

impl Journey {
    /// A journey not begun: no page yet (status 0 at `url`), nothing seen or done.
    pub fn start(url: String) -> Self {
        Journey {
            outcome: Outcome::Page {
                url,
                status: 0,
                excerpt: String::new(),
            },
            pages: Vec::new(),
            interactions: Vec::new(),
            trace: Vec::new(),
            stuck: None,
        }
    }
}

/// A browser: a cookie jar, the origins it may follow redirects to, and the test user who logs
/// in with it.
pub struct Browser {
    jar: CookieStore,
    allowed: Vec<String>,
    pub user: TestUser,
    /// The `browser` driver's browser context for this cookie jar's identity (made on its first
    /// login, disposed with the `Browser`).
    pub(crate) chromium: Option<browser::Context>,
}

impl Browser {
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            jar: CookieStore::default(),
            allowed,
            user: TestUser::First,
            chromium: None,
        }
    }

    fn allows(&self, absolute: &str) -> bool {
        match url::Url::parse(absolute) {
            Ok(u) => {
                let o = u.origin().ascii_serialization();
                self.allowed.contains(&o)
            }
            Err(_) => false,
        }
    }

    /// One request with the jar's cookies; stores what the response sets.
    pub async fn send(
        &mut self,
        wire: &mut Recorder<'_>,
        mut req: Request,
    ) -> Result<Response, String> {
        let parsed = url::Url::parse(&req.url).ok();
        if let Some(u) = &parsed {
            let cookies: Vec<String> = self
                .jar
                .get_request_values(u)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            if !cookies.is_empty() {
                req = req.header("Cookie", cookies.join("; "));
            }
        }
        let url = req.url.clone();
        let resp = wire.send(req).await.map_err(|e| format!("{url}: {e}"))?;
        if let Some(u) = &parsed {
            for sc in resp.header_all("set-cookie") {
                let _ = self.jar.parse(sc, u);
            }
        }
        Ok(resp)
    }
}

/// Where a redirect from `from` to `location` goes: `Ok` when it leaves the AS (to the
/// requested redirect URI, or to any origin the browser may not follow), with the outcome to
/// record; `Err` with the absolute URL to follow otherwise.
pub fn leaves(
    browser: &Browser,
    d: &Drive<'_>,
    from: &str,
    location: &str,
) -> Result<Outcome, String> {
    let abs = resolve(from, location).unwrap_or_else(|| location.to_string());
    let to_client = d
        .redirect_uri
        .is_some_and(|ru| !ru.is_empty() && location.starts_with(ru));
    if to_client || !browser.allows(&abs) {
        Ok(Outcome::Redirected {
            // An absolute Location is kept as written: the checks compare raw text.
            location: if url::Url::parse(location).is_ok() {
                location.to_string()
            } else {
                abs
            },
            raw: location.to_string(),
        })
    } else {
        Err(abs)
    }
}

/// Resolves a `Location` against the URL it came from.
pub fn resolve(base: &str, location: &str) -> Option<String> {
    authconform_core::login_form::resolve(base, location)
}

fn origin_of(u: &str) -> Option<String> {
    url::Url::parse(u)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

fn is_html(r: &Response) -> bool {
    r.media_type().is_some_and(|m| m.contains("html"))
        || r.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

fn excerpt(r: &Response) -> String {
    let t = r.text();
    let t: String = t.chars().take(300).collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a driver works with: an HTTP handle that records every exchange as the case's evidence,
/// the profile's login settings and the redirect-capture listener. Drivers see nothing else of
/// the case, so the step layer above can call them without the drivers knowing it.
pub struct Agent<'a> {
    pub wire: Recorder<'a>,
    pub config: &'a LoginConfig,
    pub callback: Option<crate::callback::Listener>,
}

/// What a driver is asked to do.
pub struct Drive<'a> {
    pub url: String,
    /// The redirect URI sent (raw): a redirect starting with it leaves the AS even on an
    /// allowed origin.
    pub redirect_uri: Option<&'a str>,
    pub consent: Consent,
    /// Log in and consent (false: report the first page).
    pub login: bool,
}

/// Runs the profile's driver as the user `agent.config` names (the caller chose which user of
/// the pool). `Err` is a login that could not complete (the case errors).
pub async fn drive(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    d: Drive<'_>,
) -> Result<Journey, LoginError> {
    let cfg = agent.config.clone();
    if browser.user == TestUser::Second && cfg.driver == Driver::Auto {
        return Err(LoginError::Failed(
            "the auto login driver cannot choose which user logs in".into(),
        ));
    }
    Ok(match cfg.driver {
        Driver::Manual => manual(agent, &cfg, &d).await?,
        Driver::Browser => browser::run(agent, browser, &cfg, &d).await?,
        Driver::Script if d.login => script::run(agent, browser, &cfg, &d).await?,
        Driver::Form | Driver::Auto | Driver::Script => {
            let forms = cfg.driver == Driver::Form && d.login;
            browse(agent, browser, &cfg, &d, forms).await?
        }
    })
}

/// Follows the AS's redirects and fills its forms until the AS sends the browser away.
async fn browse(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    cfg: &LoginConfig,
    d: &Drive<'_>,
    fill_forms: bool,
) -> Result<Journey, String> {
    let mut journey = Journey::start(String::new());
    let mut url = d.url.clone();
    let mut method = "GET".to_string();
    let mut body: Option<String> = None;
    let max = cfg.max_requests.unwrap_or(20);
    for _ in 0..max {
        let mut req = Request::new(&method, url.clone(), "authorization: browser step");
        if let Some(b) = body.take() {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(b);
        }
        req = req.header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        let r = browser.send(&mut agent.wire, req).await?;
        if let Some(limit) = r.rate_limited() {
            return Err(format!(
                "the AS rate-limited the request ({limit}): run fewer cases against a fresh server"
            ));
        }
        let redirect_status = (300..400).contains(&r.status);
        let html = (!redirect_status && is_html(&r)).then(|| form::parse(&r.text()));
        // Where the AS sends the browser next: a `Location`, or an HTML meta refresh on a 2xx
        // page (followed like a 302).
        let next = if redirect_status {
            let Some(loc) = r.header("location").map(str::to_string) else {
                journey.outcome = Outcome::Page {
                    url,
                    status: r.status,
                    excerpt: "a redirect status without Location".into(),
                };
                return Ok(journey);
            };
            Some(loc)
        } else if (200..300).contains(&r.status) {
            html.as_ref().and_then(|p| p.refresh.clone())
        } else {
            None
        };
        if let Some(target) = next {
            match leaves(browser, d, &url, &target) {
                Ok(out) => {
                    journey.outcome = out;
                    return Ok(journey);
                }
                Err(abs) => {
                    url = abs;
                    method = "GET".into();
                    continue;
                }
            }
        }
        let page = |kind| page_seen(&url, &r, html.as_ref(), kind);
        let Some(p) = html.as_ref().filter(|p| !p.forms.is_empty() && fill_forms) else {
            journey.pages.push(page("page"));
            journey.outcome = Outcome::Page {
                url,
                status: r.status,
                excerpt: excerpt(&r),
            };
            return Ok(journey);
        };
        if r.status >= 400 {
            journey.pages.push(page("page"));
            journey.outcome = Outcome::Page {
                url,
                status: r.status,
                excerpt: excerpt(&r),
            };
            return Ok(journey);
        }
        if let Some(f) = p.forms.iter().find(|f| f.password.is_some()) {
            journey.pages.push(page("login"));
            if journey.interactions.contains(&"login") {
                return Err(format!(
                    "the login form came back after the credentials for {:?} were submitted \
                     ({url}): the AS refused them. Check [login] username / password_env",
                    cfg.username.as_deref().unwrap_or("")
                ));
            }
            let fields = login_fields(cfg, f)?;
            journey.interactions.push("login");
            (method, url, body) = submit(&url, f, fields, None)?;
            continue;
        }
        journey.pages.push(page("consent"));
        match d.consent {
            Consent::Approve => {
                let Some((f, b)) = p.forms.iter().find_map(|f| {
                    f.buttons
                        .iter()
                        .find(|b| b.approves())
                        .map(|b| (f, Some(b)))
                        .or_else(|| f.buttons.is_empty().then_some((f, None)))
                }) else {
                    return Err(format!(
                        "the page at {url} has a form but no button that approves"
                    ));
                };
                journey.interactions.push("consent");
                (method, url, body) = submit(&url, f, f.fields.clone(), b)?;
            }
            Consent::Deny => {
                journey.interactions.push("deny");
                if let Some((f, b)) = p
                    .forms
                    .iter()
                    .find_map(|f| f.buttons.iter().find(|b| b.denies()).map(|b| (f, b)))
                {
                    (method, url, body) = submit(&url, f, f.fields.clone(), Some(b))?;
                } else if let Some(l) = p.links.iter().find(|l| l.denies()) {
                    url = resolve(&url, &l.href)
                        .ok_or_else(|| format!("bad cancel link {:?}", l.href))?;
                    method = "GET".into();
                } else {
                    return Err(format!(
                        "the consent page at {url} offers no button or link that denies"
                    ));
                }
            }
        }
    }
    Err(format!(
        "no redirect back to the client after {max} requests (raise [login] max_requests?)"
    ))
}

fn login_fields(cfg: &LoginConfig, f: &form::Form) -> Result<Vec<(String, String)>, String> {
    let user = cfg.username.clone().unwrap_or_else(|| "authconform".into());
    let password = cfg.password.clone().unwrap_or_default();
    let pw_field = cfg
        .password_field
        .clone()
        .or_else(|| f.password.clone())
        .unwrap_or_else(|| "password".into());
    let user_field = cfg
        .username_field
        .clone()
        .or_else(|| {
            ["login", "username", "user", "email", "identifier", "name"]
                .iter()
                .find(|n| f.text_inputs.iter().any(|t| t == *n))
                .map(|n| n.to_string())
        })
        .or_else(|| f.text_inputs.first().cloned())
        .ok_or_else(|| "the login form has no field for the username".to_string())?;
    let mut fields: Vec<(String, String)> = f
        .fields
        .iter()
        .filter(|(n, _)| *n != pw_field && *n != user_field && !cfg.fields.contains_key(n))
        .cloned()
        .collect();
    fields.push((user_field, user));
    fields.push((pw_field, password));
    fields.extend(cfg.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(fields)
}

type Next = (String, String, Option<String>);

fn submit(
    page_url: &str,
    f: &form::Form,
    mut fields: Vec<(String, String)>,
    button: Option<&form::Button>,
) -> Result<Next, String> {
    if let Some((n, v)) = button.and_then(|b| b.pair.clone()) {
        fields.push((n, v));
    }
    let action = if f.action.is_empty() {
        page_url.to_string()
    } else {
        resolve(page_url, &f.action).ok_or_else(|| format!("bad form action {:?}", f.action))?
    };
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    if f.method == "GET" {
        let sep = if action.contains('?') { '&' } else { '?' };
        Ok(("GET".into(), format!("{action}{sep}{encoded}"), None))
    } else {
        Ok(("POST".into(), action, Some(encoded)))
    }
}

/// A person logs in: the URL is printed, the authorization response arrives at the callback
/// listener or is pasted on standard input.
async fn manual(
    agent: &mut Agent<'_>,
    cfg: &LoginConfig,
    d: &Drive<'_>,
) -> Result<Journey, String> {
    let wait = Duration::from_secs(cfg.manual_timeout_secs.unwrap_or(300));
    let listener = agent.callback.clone();
    eprintln!(
        "\nmanual login: open this URL in a browser, log in{} and approve (or deny, as asked: {:?}).\n  {}\n\
         Then paste the URL the browser ends on here{}:",
        cfg.username
            .as_deref()
            .map(|u| format!(" as {}", crate::terminal::sanitize_terminal(u)))
            .unwrap_or_default(),
        d.consent,
        crate::terminal::sanitize_terminal(&d.url),
        if listener.is_some() {
            " (or let it reach the callback listener)"
        } else {
            ""
        }
    );
    let from_stdin = async {
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map(|_| line.trim().to_string())
        })
        .await
        .ok()
        .and_then(Result::ok)
        .filter(|l| !l.is_empty())
    };
    let from_listener = async {
        match &listener {
            Some(l) => l.next(wait).await,
            None => std::future::pending().await,
        }
    };
    let got = tokio::time::timeout(wait, async {
        tokio::select! {
            l = from_stdin => l,
            l = from_listener => l,
        }
    })
    .await
    .ok()
    .flatten();
    match got {
        Some(location) => Ok(Journey {
            outcome: Outcome::Redirected {
                raw: location.clone(),
                location,
            },
            pages: Vec::new(),
            trace: Vec::new(),
            stuck: None,
            // The person was asked to approve or deny; what they did shows in the response.
            interactions: vec![match d.consent {
                Consent::Approve => "consent",
                Consent::Deny => "deny",
            }],
        }),
        None => Err(format!(
            "manual login: no authorization response within {} s",
            wait.as_secs()
        )),
    }
}

/// Origins a browser driving this AS may follow redirects to.
pub fn allowed_origins(config: &LoginConfig, endpoints: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = endpoints.iter().filter_map(|e| origin_of(e)).collect();
    for h in &config.hosts {
        if let Some(o) = origin_of(h) {
            v.push(o);
        }
    }
    v
}
