//! The `script` login driver: a declared sequence of HTTP requests with captures, for logins
//! that are JSON APIs behind a JavaScript page (no HTML form to fill). README's "The script
//! driver" documents every field with a working profile; this is the reference's json login:
//!
//! ```toml
//! [[login.steps]]                      # the authorization request itself
//! url = "${authorize_url}"
//! capture = { txn = "location:query.txn" }
//!
//! [[login.steps]]                      # sign in; the answer names where to go next
//! method = "POST"
//! url = "${origin}/as/api/login"
//! json = { txn = "${txn}", username = "${username}", password = "${password}" }
//! does = "login"
//! follow = "json:/redirect_to"         # present when no consent is due: the login ends there
//! capture = { next = { from = "json:/next", default = "" } }
//! end = [{ status = 401, outcome = "failed", why = "the credentials were refused" }]
//!
//! [[login.steps]]
//! method = "POST"
//! url = "${origin}/as/api/consent"
//! json = { txn = "${txn}", decision = "${consent}" }
//! does = "consent"
//! follow = "json:/redirect_to"
//! end = [{ status = "4xx", outcome = "refused" }]
//! ```
//!
//! How a login ends: a `Location` (or a `follow` URL) that leaves the AS is the authorization
//! response; an `end` rule that holds ends it with its outcome (`refused`: the AS's answer, a
//! page, judged by the case; `failed`: the login could not complete, the case is errored). The
//! authorization request is the AS's answer whatever the script expected of it: a 4xx or 5xx
//! there is a refusal, and a page the script cannot go on from is judged as one by the cases
//! that expect a refusal (and errors the cases that expect a code). Anywhere else a missing
//! capture is a login that could not complete.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Agent, Browser, Drive, Journey, LoginConfig, Outcome, resolve};
use crate::case::model::Consent;
use crate::http::{Request, Response};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Form fields (`application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// A JSON object body (string values are templates).
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// Values read from the response, usable as `${name}` in the steps after.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    /// Rules checked on the response, in order, before anything else: the first that holds
    /// ends the login.
    #[serde(default)]
    pub end: Vec<EndRule>,
    /// A capture source naming a URL the AS returned (`json:/redirect_to`): gone to as if the AS
    /// had redirected there. Absent from the response: the script goes on.
    pub follow: Option<String>,
    /// Follow this step's redirects while they stay on the AS (each one recorded); captures
    /// read the last response.
    #[serde(default)]
    pub follow_redirects: bool,
    /// The user interaction this step performs, for the cases about what the AS asked of the
    /// user: `login`, or `consent` (recorded as `deny` when the case asked to deny).
    pub does: Option<Interaction>,
    /// What the page this step fetched shows (default: told from its HTML: a password form is
    /// a login page, another form a consent page).
    pub page: Option<PageKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interaction {
    Login,
    Consent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    Login,
    Consent,
    Page,
}

impl PageKind {
    fn as_str(self) -> &'static str {
        match self {
            PageKind::Login => "login",
            PageKind::Consent => "consent",
            PageKind::Page => "page",
        }
    }
}

/// A capture: a source, or a source with a default used when the response lacks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Capture {
    Source(String),
    WithDefault { from: String, default: String },
}

impl Capture {
    fn source(&self) -> &str {
        match self {
            Capture::Source(s) | Capture::WithDefault { from: s, .. } => s,
        }
    }
    fn default(&self) -> Option<&str> {
        match self {
            Capture::Source(_) => None,
            Capture::WithDefault { default, .. } => Some(default),
        }
    }
}

/// `end = [{ status = "4xx", no_location = true, body = "regex", outcome = "refused" }]`: every
/// condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndRule {
    /// A status (`401`), a class (`"4xx"`) or a list of them.
    pub status: Option<toml::Value>,
    /// The response has no `Location`.
    #[serde(default)]
    pub no_location: bool,
    /// A pattern the body matches.
    pub body: Option<String>,
    /// A pattern the `Location` header (as written) matches, e.g. the AS's error page path.
    pub location: Option<String>,
    #[serde(default)]
    pub outcome: EndOutcome,
    /// Said when the login fails by this rule.
    pub why: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndOutcome {
    /// The AS refused: the login ends on this page, which the case judges.
    #[default]
    Refused,
    /// The login could not complete (credentials refused, a state the script cannot handle).
    Failed,
}

fn get() -> String {
    "GET".into()
}

/// Capture sources: `json:<pointer>`, `header:<name>`, `regex:<pattern with one group>` (over
/// the body), `status`, `location` (absolute), `location:query.<name>`,
/// `location:fragment.<name>`, `location:query` (raw), `location:path`, `location:origin`.
fn check_source(s: &str) -> Result<(), String> {
    if let Some(p) = s.strip_prefix("regex:") {
        return regex_lite::Regex::new(p)
            .map(|_| ())
            .map_err(|e| format!("bad pattern: {e}"));
    }
    if let Some(p) = s.strip_prefix("json:") {
        return if p.is_empty() || p.starts_with('/') {
            Ok(())
        } else {
            Err(format!("{s:?}: a JSON pointer starts with /"))
        };
    }
    if let Some(part) = s.strip_prefix("location:") {
        let ok = ["query", "path", "origin", "fragment"].contains(&part)
            || part.strip_prefix("query.").is_some_and(|n| !n.is_empty())
            || part
                .strip_prefix("fragment.")
                .is_some_and(|n| !n.is_empty());
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "{s:?}: location parts are query, query.<name>, fragment, fragment.<name>, path, origin"
            ))
        };
    }
    if s.strip_prefix("header:").is_some_and(|h| !h.is_empty()) || s == "status" || s == "location"
    {
        return Ok(());
    }
    Err(format!(
        "{s:?} is not json:<pointer>, header:<name>, regex:<pattern>, status, location or location:<part>"
    ))
}

/// Status patterns: a number or `"4xx"`-style class, one or a list.
fn status_patterns(v: &toml::Value) -> Result<Vec<String>, String> {
    let one = |v: &toml::Value| -> Result<String, String> {
        let s = match v {
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::String(s) => s.to_ascii_lowercase(),
            other => {
                return Err(format!(
                    "status {other} is not a number or a class like \"4xx\""
                ));
            }
        };
        let ok = s.len() == 3
            && s.chars().next().is_some_and(|c| ('1'..='5').contains(&c))
            && s[1..].chars().all(|c| c.is_ascii_digit() || c == 'x');
        if ok {
            Ok(s)
        } else {
            Err(format!(
                "status {s:?} is not a number or a class like \"4xx\""
            ))
        }
    };
    match v {
        toml::Value::Array(a) => a.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn status_matches(patterns: &[String], status: u16) -> bool {
    let s = status.to_string();
    patterns
        .iter()
        .any(|p| p.chars().zip(s.chars()).all(|(a, b)| a == 'x' || a == b))
}

impl ScriptStep {
    pub fn validate(&self) -> Result<(), String> {
        if !self.form.is_empty() && self.json.is_some() {
            return Err("a step sends `form` or `json`, not both".into());
        }
        for (name, c) in &self.capture {
            check_source(c.source()).map_err(|e| format!("capture {name}: {e}"))?;
        }
        if let Some(f) = &self.follow {
            check_source(f).map_err(|e| format!("follow: {e}"))?;
        }
        for (i, r) in self.end.iter().enumerate() {
            if let Some(st) = &r.status {
                status_patterns(st).map_err(|e| format!("end[{i}]: {e}"))?;
            }
            for (what, p) in [("body", &r.body), ("location", &r.location)] {
                if let Some(p) = p {
                    regex_lite::Regex::new(p)
                        .map_err(|e| format!("end[{i}].{what}: bad pattern: {e}"))?;
                }
            }
            if r.status.is_none() && !r.no_location && r.body.is_none() && r.location.is_none() {
                return Err(format!(
                    "end[{i}] has no condition (status, no_location, body or location)"
                ));
            }
        }
        Ok(())
    }
}

impl EndRule {
    fn holds(&self, r: &Response) -> bool {
        if let Some(st) = &self.status
            && !status_patterns(st).is_ok_and(|p| status_matches(&p, r.status))
        {
            return false;
        }
        if self.no_location && r.header("location").is_some() {
            return false;
        }
        if let Some(b) = &self.body
            && !regex_lite::Regex::new(b).is_ok_and(|re| re.is_match(&r.text()))
        {
            return false;
        }
        if let Some(p) = &self.location
            && !r
                .header("location")
                .is_some_and(|l| regex_lite::Regex::new(p).is_ok_and(|re| re.is_match(l)))
        {
            return false;
        }
        true
    }
}

fn fill(t: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {t:?}"))?;
        let name = &after[..end];
        out.push_str(
            vars.get(name)
                .ok_or_else(|| format!("`${{{name}}}` has no value in the login script"))?,
        );
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn fill_json(
    v: &toml::Value,
    vars: &BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    Ok(match v {
        // `"${json:name}"` alone: the value as a JSON literal (`${json:approved}` is a boolean).
        toml::Value::String(s)
            if s.starts_with("${json:") && s.ends_with('}') && s.matches("${").count() == 1 =>
        {
            let name = &s[7..s.len() - 1];
            let raw = vars
                .get(name)
                .ok_or_else(|| format!("`${{{name}}}` has no value in the login script"))?;
            serde_json::from_str(raw)
                .map_err(|_| format!("`${{json:{name}}}`: {raw:?} is not a JSON value"))?
        }
        toml::Value::String(s) => serde_json::Value::String(fill(s, vars)?),
        toml::Value::Table(t) => {
            let mut m = serde_json::Map::new();
            for (k, v) in t {
                m.insert(k.clone(), fill_json(v, vars)?);
            }
            serde_json::Value::Object(m)
        }
        toml::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| fill_json(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        other => crate::case::model::toml_to_json(other),
    })
}

/// Where the AS last sent the browser within itself: `location`, `query.<param>` for each of
/// its query parameters and `raw_query` (its query as written).
fn remember_location(vars: &mut BTreeMap<String, String>, url: &str) {
    vars.insert("location".into(), url.to_string());
    for (k, v) in url::form_urlencoded::parse(raw_query(url).as_bytes()) {
        vars.insert(format!("query.{k}"), v.into_owned());
    }
    vars.insert("raw_query".into(), raw_query(url).to_string());
}

/// The raw query of a URL (before any fragment), as written.
fn raw_query(url: &str) -> &str {
    url.split('#')
        .next()
        .unwrap_or(url)
        .split_once('?')
        .map_or("", |(_, q)| q)
}

/// One part of a URL, for `location:<part>` captures.
fn url_part(url: &str, part: &str) -> Option<String> {
    let (before_frag, frag) = url.split_once('#').unwrap_or((url, ""));
    let param = |raw: &str, name: &str| {
        url::form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    match part {
        "query" => Some(raw_query(url).to_string()),
        "fragment" => Some(frag.to_string()),
        "path" => url::Url::parse(url).ok().map(|u| u.path().to_string()),
        "origin" => url::Url::parse(url)
            .ok()
            .map(|u| u.origin().ascii_serialization()),
        _ => {
            if let Some(n) = part.strip_prefix("query.") {
                param(raw_query(before_frag), n)
            } else if let Some(n) = part.strip_prefix("fragment.") {
                param(frag, n)
            } else {
                None
            }
        }
    }
}

/// What a capture source reads from a response (fetched from `url`).
fn read(source: &str, url: &str, r: &Response) -> Option<String> {
    let location = || {
        r.header("location")
            .map(|l| resolve(url, l).unwrap_or_else(|| l.to_string()))
    };
    if let Some(p) = source.strip_prefix("json:") {
        r.json().and_then(|j| {
            j.pointer(p).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
        })
    } else if let Some(h) = source.strip_prefix("header:") {
        r.header(h).map(str::to_string)
    } else if let Some(p) = source.strip_prefix("regex:") {
        regex_lite::Regex::new(p).ok().and_then(|re| {
            re.captures(&r.text())
                .and_then(|m| m.get(1).map(|g| g.as_str().to_string()))
        })
    } else if source == "status" {
        Some(r.status.to_string())
    } else if source == "location" {
        location()
    } else if let Some(part) = source.strip_prefix("location:") {
        location().and_then(|l| url_part(&l, part))
    } else {
        None
    }
}

/// A short, one-line excerpt of a body for the trace and the outcome.
fn excerpt(r: &Response) -> String {
    let t: String = r.text().chars().take(200).collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn page_outcome(url: &str, r: &Response) -> Outcome {
    Outcome::Page {
        url: url.to_string(),
        status: r.status,
        excerpt: excerpt(r),
    }
}

/// Where the login goes after a step: on, or ended with this journey outcome.
enum Next {
    On,
    Ended(Outcome),
}

pub async fn run(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    cfg: &LoginConfig,
    d: &Drive<'_>,
) -> Result<Journey, String> {
    let mut vars = BTreeMap::new();
    vars.insert("authorize_url".into(), d.url.clone());
    // `authorize.<param>`: the request's own parameters (its client_id, its state...).
    for (k, v) in url::form_urlencoded::parse(raw_query(&d.url).as_bytes()) {
        vars.insert(format!("authorize.{k}"), v.into_owned());
    }
    vars.insert("authorize_query".into(), raw_query(&d.url).to_string());
    if let Ok(u) = url::Url::parse(&d.url) {
        vars.insert("origin".into(), u.origin().ascii_serialization());
    }
    vars.insert("username".into(), cfg.username.clone().unwrap_or_default());
    vars.insert("password".into(), cfg.password.clone().unwrap_or_default());
    vars.insert(
        "consent".into(),
        match d.consent {
            Consent::Approve => "approve",
            Consent::Deny => "deny",
        }
        .into(),
    );
    vars.insert(
        "approved".into(),
        (d.consent == Consent::Approve).to_string(),
    );
    let mut journey = Journey::start(d.url.clone());
    let max = cfg.max_requests.unwrap_or(20);
    let mut sent = 0usize;
    // Where the AS last sent the browser within itself, when the last step did: the script
    // ending there goes on like a browser (an older one is stale and never gone back to).
    let mut fresh: Option<String> = None;
    let last = cfg.steps.len().saturating_sub(1);
    for (i, step) in cfg.steps.iter().enumerate() {
        fresh = None;
        let mut url = fill(&step.url, &vars).map_err(|e| format!("login script step {i}: {e}"))?;
        // The authorization request itself: its answer is the AS's, whatever the script
        // expected of it.
        let at_request = url == d.url;
        let mut req = Request::new(&step.method, url.clone(), format!("login script step {i}"));
        for (k, v) in &step.headers {
            req = req.header(
                k,
                fill(v, &vars).map_err(|e| format!("login script step {i}: {e}"))?,
            );
        }
        if !step.form.is_empty() {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &step.form {
                ser.append_pair(
                    k,
                    &fill(v, &vars).map_err(|e| format!("login script step {i}: {e}"))?,
                );
            }
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(ser.finish());
        } else if let Some(j) = &step.json {
            req = req
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(
                    fill_json(j, &vars)
                        .map_err(|e| format!("login script step {i}: {e}"))?
                        .to_string(),
                );
        }
        let mut r = send_counted(agent, browser, req, &mut sent, max).await?;
        let mut line = format!("step {i}: {} {url} -> {}", step.method, r.status);
        // Redirects on the AS, followed when the step asks (each one recorded).
        while let Some(l) = r.header("location").map(str::to_string) {
            line.push_str(&format!(" (Location {l})"));
            if let Ok(out) = super::leaves(browser, d, &url, &l) {
                journey.trace.push(line);
                journey.trace.push(
                    "the AS redirected away from itself: that is the authorization response".into(),
                );
                journey.outcome = out;
                return Ok(journey);
            }
            let abs = resolve(&url, &l).unwrap_or(l);
            remember_location(&mut vars, &abs);
            if !step.follow_redirects {
                fresh = Some(abs);
                break;
            }
            journey.trace.push(line);
            url = abs;
            let req = Request::new(
                "GET",
                url.clone(),
                format!("login script step {i}: redirect"),
            );
            r = send_counted(agent, browser, req, &mut sent, max).await?;
            line = format!("step {i}: GET {url} -> {}", r.status);
        }
        journey.trace.push(line);
        if let Some(mut p) = super::script_page(&url, &r) {
            if let Some(k) = step.page {
                p.kind = k.as_str();
            }
            journey.pages.push(p);
        }
        if let Some(does) = step.does {
            journey.interactions.push(match (does, d.consent) {
                (Interaction::Login, _) => "login",
                (Interaction::Consent, Consent::Approve) => "consent",
                (Interaction::Consent, Consent::Deny) => "deny",
            });
        } else {
            journey.interactions.push("script");
        }
        journey.outcome = page_outcome(&url, &r);
        match step_end(step, i, &url, &r, at_request, &mut journey)? {
            Next::Ended(out) => {
                journey.outcome = out;
                return Ok(journey);
            }
            Next::On => {}
        }
        if let Some(f) = &step.follow {
            match read(f, &url, &r) {
                Some(target) => {
                    journey
                        .trace
                        .push(format!("step {i}: follow {f} = {target}"));
                    if let Ok(out) = super::leaves(browser, d, &url, &target) {
                        journey.outcome = out;
                        return Ok(journey);
                    }
                    let abs = resolve(&url, &target).unwrap_or(target);
                    remember_location(&mut vars, &abs);
                    fresh = Some(abs);
                }
                None if i == last => {
                    if at_request {
                        return Ok(stuck(journey, i, &r, format!("follow {f} found no URL")));
                    }
                    return Err(format!(
                        "login script step {i}: follow {f} found no URL in the {} response ({})",
                        r.status,
                        excerpt(&r)
                    ));
                }
                None => journey
                    .trace
                    .push(format!("step {i}: follow {f}: absent, going on")),
            }
        }
        for (name, c) in &step.capture {
            let v = match (read(c.source(), &url, &r), c.default()) {
                (Some(v), _) => v,
                (None, Some(dflt)) => dflt.to_string(),
                (None, None) if at_request => {
                    return Ok(stuck(
                        journey,
                        i,
                        &r,
                        format!("capture {name} ({}) found nothing", c.source()),
                    ));
                }
                (None, None) => {
                    return Err(format!(
                        "login script step {i}: capture {name} ({}) found nothing in the {} response ({})",
                        c.source(),
                        r.status,
                        excerpt(&r)
                    ));
                }
            };
            // Captured values are secrets as far as the reports go only when they are the
            // password; others (transaction ids) are shown, which is what makes a trace useful.
            journey.trace.push(format!("step {i}: {name} = {v}"));
            vars.insert(name.clone(), v);
        }
    }
    // The script ended on the AS; a redirect its last step was given is followed like a
    // browser would.
    if let Some(next) = fresh
        && browser.allows(&next)
    {
        journey
            .trace
            .push(format!("the script ended; following {next}"));
        let mut rest = super::browse(
            agent,
            browser,
            cfg,
            &Drive {
                url: next,
                redirect_uri: d.redirect_uri,
                consent: d.consent,
                login: false,
            },
            false,
        )
        .await?;
        journey.trace.append(&mut rest.trace);
        journey.pages.append(&mut rest.pages);
        journey.interactions.append(&mut rest.interactions);
        journey.outcome = rest.outcome;
        journey.stuck = rest.stuck;
        return Ok(journey);
    }
    Err(match &journey.outcome {
        Outcome::Page {
            url,
            status,
            excerpt,
        } => format!(
            "the login script ended without a redirect back to the client: its last response was {status} from {url} ({excerpt})"
        ),
        Outcome::Redirected { .. } => {
            "the login script ended without a redirect back to the client".into()
        }
    })
}

/// One request of the script, counted against `[login] max_requests`.
async fn send_counted(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    req: Request,
    sent: &mut usize,
    max: usize,
) -> Result<Response, String> {
    if *sent >= max {
        return Err(format!(
            "the login script sent {max} requests without a redirect back to the client (raise [login] max_requests?)"
        ));
    }
    *sent += 1;
    let r = browser.send(&mut agent.wire, req).await?;
    if let Some(limit) = r.rate_limited() {
        return Err(format!(
            "the AS rate-limited the request ({limit}): run fewer cases against a fresh server"
        ));
    }
    Ok(r)
}

/// The step's `end` rules, then (at the authorization request) the AS's refusal.
fn step_end(
    step: &ScriptStep,
    i: usize,
    url: &str,
    r: &Response,
    at_request: bool,
    journey: &mut Journey,
) -> Result<Next, String> {
    for (n, rule) in step.end.iter().enumerate() {
        if !rule.holds(r) {
            continue;
        }
        return match rule.outcome {
            EndOutcome::Refused => {
                journey
                    .trace
                    .push(format!("step {i}: end rule {n} holds: the AS refused"));
                Ok(Next::Ended(page_outcome(url, r)))
            }
            EndOutcome::Failed => Err(format!(
                "login script step {i}: {} (end rule {n}; the AS answered {}: {})",
                rule.why.as_deref().unwrap_or("the login failed"),
                r.status,
                excerpt(r)
            )),
        };
    }
    if at_request && r.status >= 400 && r.header("location").is_none() {
        journey.trace.push(format!(
            "step {i}: the AS answered the authorization request with {} and no redirect: its refusal",
            r.status
        ));
        return Ok(Next::Ended(page_outcome(url, r)));
    }
    Ok(Next::On)
}

/// The login ends at the authorization request's answer, which the script could not go on
/// from: the AS's answer for a case expecting a refusal, an unfinished login for one expecting
/// a code.
fn stuck(mut journey: Journey, i: usize, r: &Response, why: String) -> Journey {
    let m = format!(
        "the login script could not go on from the AS's answer to the authorization request ({}: {}): step {i}: {why}",
        r.status,
        excerpt(r)
    );
    journey.trace.push(m.clone());
    journey.stuck = Some(m);
    journey
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn captures_read_json_headers_location_parts_and_status() {
        let r = resp(
            302,
            &[
                ("Location", "/as/signin?txn=T1&x=a%20b#frag=1"),
                ("X-Tx", "h"),
            ],
            r#"{"next":"/n","n":3,"nil":null}"#,
        );
        let u = "https://as.test/as/authorize?client_id=c";
        assert_eq!(read("json:/next", u, &r).as_deref(), Some("/n"));
        assert_eq!(read("json:/n", u, &r).as_deref(), Some("3"));
        assert_eq!(read("json:/nil", u, &r), None, "null is no value");
        assert_eq!(read("header:x-tx", u, &r).as_deref(), Some("h"));
        assert_eq!(read("status", u, &r).as_deref(), Some("302"));
        assert_eq!(
            read("location", u, &r).as_deref(),
            Some("https://as.test/as/signin?txn=T1&x=a%20b#frag=1")
        );
        assert_eq!(read("location:query.txn", u, &r).as_deref(), Some("T1"));
        assert_eq!(read("location:query.x", u, &r).as_deref(), Some("a b"));
        assert_eq!(
            read("location:query", u, &r).as_deref(),
            Some("txn=T1&x=a%20b")
        );
        assert_eq!(read("location:fragment.frag", u, &r).as_deref(), Some("1"));
        assert_eq!(read("location:path", u, &r).as_deref(), Some("/as/signin"));
        assert_eq!(
            read("location:origin", u, &r).as_deref(),
            Some("https://as.test")
        );
        assert_eq!(read("location:query.none", u, &r), None);
    }

    #[test]
    fn end_rules_need_every_condition() {
        let rule = |t: &str| -> EndRule { toml::from_str(t).unwrap() };
        let refused = resp(400, &[], "<h1>invalid redirect_uri</h1>");
        let moved = resp(302, &[("Location", "/x")], "");
        assert!(rule(r#"status = "4xx""#).holds(&refused));
        assert!(rule("status = [401, 400]").holds(&refused));
        assert!(!rule("status = 401").holds(&refused));
        assert!(rule("no_location = true").holds(&refused));
        assert!(!rule("no_location = true").holds(&moved));
        assert!(
            rule(
                r#"status = "4xx"
body = "redirect_uri""#
            )
            .holds(&refused)
        );
        assert!(
            !rule(
                r#"status = "4xx"
body = "client_id""#
            )
            .holds(&refused)
        );
        let to_error = resp(302, &[("Location", "/api/auth/error?error=x")], "");
        assert!(rule(r#"location = "^/api/auth/error""#).holds(&to_error));
        assert!(!rule(r#"location = "^/api/auth/error""#).holds(&moved));
        assert!(!rule(r#"location = "^/api/auth/error""#).holds(&refused));
    }

    #[test]
    fn validation_names_the_bad_part() {
        let step = |t: &str| -> ScriptStep { toml::from_str(t).unwrap() };
        assert!(step("url = \"x\"\ncapture = { a = \"json:/a\", b = { from = \"location:query.b\", default = \"\" } }")
            .validate()
            .is_ok());
        let e = step("url = \"x\"\ncapture = { a = \"body:/a\" }")
            .validate()
            .unwrap_err();
        assert!(e.contains("capture a"), "{e}");
        let e = step("url = \"x\"\ncapture = { a = \"location:host\" }")
            .validate()
            .unwrap_err();
        assert!(e.contains("location parts"), "{e}");
        let e = step("url = \"x\"\nend = [{ status = \"4x\" }]")
            .validate()
            .unwrap_err();
        assert!(e.contains("end[0]"), "{e}");
        let e = step("url = \"x\"\nend = [{ outcome = \"failed\" }]")
            .validate()
            .unwrap_err();
        assert!(e.contains("no condition"), "{e}");
        let e = step("url = \"x\"\nfollow = \"json:redirect\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("follow"), "{e}");
    }

    #[test]
    fn a_json_template_alone_is_a_json_literal() {
        let mut vars = BTreeMap::new();
        vars.insert("approved".to_string(), "false".to_string());
        vars.insert("txn".to_string(), "T".to_string());
        let t: toml::Value = toml::from_str(
            r#"accept = "${json:approved}"
txn = "${txn}""#,
        )
        .unwrap();
        let j = fill_json(&t, &vars).unwrap();
        assert_eq!(j["accept"], serde_json::json!(false));
        assert_eq!(j["txn"], "T");
        vars.insert("approved".to_string(), "yes".to_string());
        assert!(
            fill_json(&t, &vars)
                .unwrap_err()
                .contains("not a JSON value")
        );
    }

    #[test]
    fn templates_fill_from_variables_and_name_a_missing_one() {
        let mut vars = BTreeMap::new();
        remember_location(&mut vars, "https://as.test/l?txn=T&sig=a%2Bb#f");
        assert_eq!(fill("${query.txn}", &vars).unwrap(), "T");
        assert_eq!(fill("${query.sig}", &vars).unwrap(), "a+b");
        assert_eq!(fill("${raw_query}", &vars).unwrap(), "txn=T&sig=a%2Bb");
        let e = fill("${nope}", &vars).unwrap_err();
        assert!(e.contains("${nope}"), "{e}");
    }
}
