//! The `browser` login driver: a real headless Chromium driven over the DevTools protocol, for
//! logins whose form is rendered by JavaScript (single-page logins).
//!
//! Chromium never touches the network. Every request the page makes is paused (the `Fetch`
//! domain) and the suite performs it itself through [`Browser::send`], the same audited path as
//! the other drivers (the cookie jar, the egress policy, body caps, the trusted CAs, redaction,
//! and a recorded exchange as the case's evidence), then hands Chromium the answer. So Chromium
//! sees no TLS certificate, opens no connection (a dead proxy catches anything the interception
//! would miss), and every exchange is in the report. A navigation that leaves the AS, or goes to
//! the redirect URI, is the authorization response: recorded, never performed.
//!
//! Chromium runs behind the DevTools pipe of [`super::devtools`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

pub use super::devtools::locate;
use super::devtools::{Cdp, Event, chromium, lock};
use super::{
    Agent, Browser, Drive, Journey, LoginConfig, LoginError, Outcome, PageSeen, excerpt, form,
    leaves,
};
use crate::case::model::Consent;
use crate::http::{Request, Response};

/// `[login.browser]` in the target profile.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// The Chromium executable (default: `$AUTHCONFORM_CHROMIUM`, else `chromium`,
    /// `chromium-browser` or `google-chrome` on `PATH`).
    pub chromium: Option<PathBuf>,
    /// How long one page may take to load and settle, or to react to a click (default 15 s).
    /// The whole login is bounded by four times this.
    pub page_timeout_secs: Option<u64>,
    /// CSS selector of the username input (default: guessed like the form driver does).
    pub username_selector: Option<String>,
    /// CSS selector of the password input (default: the page's password input).
    pub password_selector: Option<String>,
    /// CSS selector of the login's submit button (default: the password form's submit button).
    pub submit_selector: Option<String>,
    /// CSS selector of the consent's approving button (default: by its text, as the form driver).
    pub approve_selector: Option<String>,
    /// CSS selector of the consent's denying button or link (default: by its text).
    pub deny_selector: Option<String>,
}

/// The longest a script evaluated in the page may take (they only read or click).
const EVAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the DOM of a page whose scripts may still render it is polled for a form.
const JS_GRACE: Duration = Duration::from_secs(2);
/// No request for this long (and an unchanged DOM for `STABLE`) and a page whose scripts may
/// still change it is settled. A loaded page without scripts is settled at once: only a
/// navigation can change it, and navigations are seen.
const QUIET: Duration = Duration::from_millis(150);
const STABLE: Duration = Duration::from_millis(150);
/// How long a page that may be a script's passing state must stay unchanged (and the network
/// quiet) before the driver takes it as the page's answer.
const CONFIRM: Duration = Duration::from_millis(1000);
/// Bytes of the rendered DOM kept as a page's body (as the other drivers keep of a response).
const BODY_CAP: usize = 64 << 10;

/// A `Browser`'s own browser context (an incognito-like profile), disposed with the `Browser`.
pub struct Context {
    id: String,
    cdp: Arc<Cdp>,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.cdp.post(
            None,
            "Target.disposeBrowserContext",
            json!({"browserContextId": self.id}),
        );
    }
}

/// One page (tab) of a login, closed when the login ends however it ends.
struct Tab {
    cdp: Arc<Cdp>,
    target: String,
    session: String,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Tab {
    async fn open(cdp: &Arc<Cdp>, context: &str) -> Result<Tab, String> {
        let t = cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .await?;
        let target = t["targetId"].as_str().unwrap_or_default().to_string();
        let a = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        let session = match a {
            Ok(a) => a["sessionId"].as_str().unwrap_or_default().to_string(),
            Err(e) => {
                cdp.post(None, "Target.closeTarget", json!({"targetId": target}));
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&cdp.sessions).insert(session.clone(), tx);
        let tab = Tab {
            cdp: cdp.clone(),
            target,
            session,
            events: rx,
        };
        let s = Some(tab.session.as_str());
        cdp.call(
            s,
            "Fetch.enable",
            json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        )
        .await?;
        cdp.call(s, "Page.enable", json!({})).await?;
        Ok(tab)
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    fn post(&self, method: &str, params: Value) {
        self.cdp.post(Some(&self.session), method, params);
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        lock(&self.cdp.sessions).remove(&self.session);
        self.cdp
            .post(None, "Target.closeTarget", json!({"targetId": self.target}));
    }
}

/// What the driver does with a request the page makes.
#[derive(Debug)]
enum Route {
    /// On the AS: perform it and hand the answer to the page.
    Perform,
    /// A navigation off the AS (or to the redirect URI): the authorization response.
    Leave(Outcome),
    /// A subresource off the AS: never fetched.
    Block,
}

fn route(browser: &Browser, d: &Drive<'_>, url: &str, document: bool) -> Route {
    match leaves(browser, d, url, url) {
        Err(_) => Route::Perform,
        Ok(out) if document => Route::Leave(out),
        Ok(_) => Route::Block,
    }
}

/// Request headers the suite's client sets itself (or must not pass on): the jar's cookies are
/// the only cookies, and the client reads no compressed bodies.
fn forwarded_header(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "cookie"
            | "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "accept-encoding"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
    )
}

/// Response headers passed to the page: the body handed over is already whole and decoded.
fn fulfilled_header(name: &str) -> bool {
    !matches!(
        name,
        "content-length" | "content-encoding" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

/// The page as the driver reads it (from [`INSPECT`]).
#[derive(Debug, Clone, Deserialize)]
struct Snapshot {
    password: bool,
    forms: usize,
    scripts: usize,
    buttons: Vec<Btn>,
    links: Vec<Lnk>,
    html: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Btn {
    i: usize,
    label: String,
    name: String,
    value: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Lnk {
    i: usize,
    href: String,
    label: String,
}

impl Btn {
    /// The form driver's reading of a button, so both drivers approve and deny alike.
    fn as_form_button(&self) -> form::Button {
        form::Button {
            pair: (!self.name.is_empty()).then(|| (self.name.clone(), self.value.clone())),
            label: self.label.clone(),
        }
    }
}

impl Snapshot {
    /// `login` (a password input), `consent` (a form, or buttons that approve or deny) or `page`.
    fn kind(&self) -> &'static str {
        if self.password {
            "login"
        } else if self.forms > 0
            || self.buttons.iter().any(|b| {
                let b = b.as_form_button();
                b.approves() || b.denies()
            })
        {
            "consent"
        } else {
            "page"
        }
    }
    /// Something to act on, or nothing a script could still render.
    fn final_enough(&self) -> bool {
        self.password || self.forms > 0 || !self.buttons.is_empty() || self.scripts == 0
    }
}

const BUTTONS: &str =
    "button, input[type=submit], input[type=button], input[type=image], [role=button]";

/// Reads the rendered page: what it shows and what can be clicked (visible controls only).
fn inspect_script() -> String {
    format!(
        r#"(() => {{
  const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const buttons = [...document.querySelectorAll({sel})].map((b, i) => ({{
    i, b,
    label: norm(b.tagName === 'INPUT' ? b.value : (b.textContent || b.value)),
    name: b.getAttribute('name') || '',
    value: b.tagName === 'INPUT' || b.tagName === 'BUTTON' ? (b.value || '') : '',
  }})).filter(x => vis(x.b)).map(({{b, ...x}}) => x);
  const links = [...document.querySelectorAll('a[href]')].map((a, i) => ({{
    i, a, href: a.getAttribute('href') || '', label: norm(a.textContent),
  }})).filter(x => vis(x.a)).map(({{a, ...x}}) => x);
  const html = document.documentElement ? document.documentElement.outerHTML : '';
  return {{
    password: [...document.querySelectorAll('input[type=password]')].some(vis),
    forms: [...document.forms].filter(vis).length,
    scripts: document.scripts.length,
    buttons, links,
    html: html.slice(0, {cap}),
  }};
}})()"#,
        sel = serde_json::to_string(BUTTONS).unwrap_or_default(),
        cap = BODY_CAP,
    )
}

/// Fills the login and submits it. The value setter of the element's prototype plus `input`
/// and `change` events is what frameworks that keep their own copy of a field listen to.
const FILL: &str = r#"((c) => {
  const q = s => { try { return document.querySelector(s); } catch (e) { return null; } };
  const vis = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const set = (el, v) => {
    const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype
      : el instanceof HTMLSelectElement ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, v);
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
  };
  const byName = n => q('[name="' + CSS.escape(n) + '"]');
  let pw = c.password_selector ? q(c.password_selector)
    : c.password_field ? byName(c.password_field)
    : [...document.querySelectorAll('input[type=password]')].find(vis);
  if (!pw) return {error: 'no password input' + (c.password_selector ? ' matches ' + c.password_selector : '')};
  const scope = pw.form || document;
  let user = null;
  if (c.username_selector) user = q(c.username_selector);
  else if (c.username_field) user = byName(c.username_field);
  else {
    const texts = [...scope.querySelectorAll('input')].filter(i =>
      ['text', 'email', 'tel', ''].includes((i.getAttribute('type') || '').toLowerCase()) && vis(i));
    user = c.names.map(n => texts.find(t => t.name === n || t.id === n)).find(Boolean) || texts[0];
  }
  if (!user) return {error: 'no field for the username' + (c.username_selector ? ' matches ' + c.username_selector : '')};
  set(user, c.username);
  set(pw, c.password);
  for (const [k, v] of Object.entries(c.fields)) { const e = byName(k); if (e) set(e, v); }
  let submit = c.submit_selector ? q(c.submit_selector) : null;
  if (c.submit_selector && !submit) return {error: 'no element matches ' + c.submit_selector};
  if (!submit) submit = [...scope.querySelectorAll('button, input[type=submit], input[type=image]')]
    .find(b => vis(b) && (b.tagName !== 'BUTTON' || (b.getAttribute('type') || 'submit').toLowerCase() === 'submit'));
  const what = {user: user.name || user.id || 'input', password: pw.name || pw.id || 'input'};
  if (submit) { submit.click(); what.submit = 'clicked ' + (submit.textContent || submit.value || 'the submit button').trim().slice(0, 40); }
  else if (pw.form) { pw.form.requestSubmit(); what.submit = 'submitted the form'; }
  else return {error: 'no submit button'};
  return what;
})"#;

/// Clicks the `i`th visible-or-not element of `sel` (indexes as in [`inspect_script`]), or the
/// first element matching a configured selector.
fn click_script(sel: &str, i: Option<usize>) -> String {
    let sel = serde_json::to_string(sel).unwrap_or_default();
    match i {
        Some(i) => format!(
            "(() => {{ const e = document.querySelectorAll({sel})[{i}]; if (!e) return false; e.click(); return true; }})()"
        ),
        None => format!(
            "(() => {{ let e = null; try {{ e = document.querySelector({sel}); }} catch (x) {{}} if (!e) return false; e.click(); return true; }})()"
        ),
    }
}

/// One login in one tab.
struct Run<'a, 'w, 'd> {
    agent: &'a mut Agent<'w>,
    browser: &'a mut Browser,
    cfg: &'a LoginConfig,
    d: &'a Drive<'d>,
    tab: Tab,
    journey: Journey,
    /// The last document the page loaded: its URL and the response it was given.
    doc: Option<(String, Response)>,
    outcome: Option<Outcome>,
    loads: u64,
    /// The main frame is loading a document.
    loading: bool,
    documents: usize,
    requests: usize,
    last_net: Instant,
    page_timeout: Duration,
}

impl Run<'_, '_, '_> {
    fn max_documents(&self) -> usize {
        self.cfg.max_requests.unwrap_or(20)
    }

    fn trace(&mut self, line: String) {
        self.journey.trace.push(line);
    }

    fn shown(&self, url: &str) -> String {
        self.agent.wire.http.redactor().url(url)
    }

    /// Serves the page's events until `until`, or until the authorization response is seen.
    async fn pump(&mut self, until: Instant) -> Result<(), LoginError> {
        while self.outcome.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.tab.events.recv()).await {
                Err(_) => break,
                Ok(ev) => self.handle(ev).await?,
            }
        }
        Ok(())
    }

    async fn handle(&mut self, ev: Option<Event>) -> Result<(), LoginError> {
        let Some((method, params)) = ev else {
            return Err(LoginError::Failed(format!(
                "Chromium went away: {}",
                self.tab.cdp.dead().unwrap_or_default()
            )));
        };
        match method.as_str() {
            "Fetch.requestPaused" => self.paused(&params).await?,
            "Page.loadEventFired" => self.loads += 1,
            // The main frame's id is its target's: a document is being replaced while it loads.
            "Page.frameStartedLoading" if params["frameId"] == self.tab.target.as_str() => {
                self.loading = true
            }
            "Page.frameStoppedLoading" if params["frameId"] == self.tab.target.as_str() => {
                self.loading = false
            }
            "Page.javascriptDialogOpening" => {
                self.trace(format!(
                    "dismissed a {} dialog: {:?}",
                    params["type"].as_str().unwrap_or("JavaScript"),
                    params["message"].as_str().unwrap_or("")
                ));
                self.tab
                    .post("Page.handleJavaScriptDialog", json!({"accept": true}));
            }
            "Inspector.targetCrashed" => {
                return Err(LoginError::Failed("the page crashed in Chromium".into()));
            }
            "Target.detachedFromTarget" | "Inspector.detached" => {
                return Err(LoginError::Failed("Chromium closed the page".into()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Evaluates a script in the page while serving its events: a script that starts a
    /// navigation is answered only once the navigation's request is served, or never (the
    /// document it ran in is gone). `Ok(None)` when the authorization response came meanwhile.
    async fn eval(&mut self, script: &str) -> Result<Result<Option<Value>, String>, LoginError> {
        let (tx, mut rx) = oneshot::channel();
        let cdp = self.tab.cdp.clone();
        let id = cdp
            .send(
                Some(&self.tab.session),
                "Runtime.evaluate",
                json!({"expression": script, "returnByValue": true, "userGesture": true}),
                Some(tx),
            )
            .map_err(LoginError::Failed)?;
        let forget = |cdp: &Cdp| {
            lock(&cdp.pending).remove(&id);
        };
        let deadline = tokio::time::Instant::now() + EVAL_TIMEOUT;
        loop {
            tokio::select! {
                r = &mut rx => {
                    let r = match r {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => return Ok(Err(e)),
                        Err(_) => return Err(LoginError::Failed(
                            cdp.dead().unwrap_or_else(|| "Chromium went away".into()))),
                    };
                    if let Some(e) = r.get("exceptionDetails") {
                        let m = e["exception"]["description"].as_str().or(e["text"].as_str());
                        return Ok(Err(m.unwrap_or("exception").to_string()));
                    }
                    return Ok(Ok(Some(r["result"]["value"].clone())));
                }
                ev = self.tab.events.recv() => {
                    let handled = self.handle(ev).await;
                    if handled.is_err() || self.outcome.is_some() {
                        forget(&cdp);
                        return handled.map(|_| Ok(None));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    forget(&cdp);
                    return Ok(Err(format!(
                        "Chromium did not run a script in the page within {} s",
                        EVAL_TIMEOUT.as_secs()
                    )));
                }
            }
        }
    }

    fn fail_request(&self, id: &str) {
        self.tab.post(
            "Fetch.failRequest",
            json!({"requestId": id, "errorReason": "BlockedByClient"}),
        );
    }

    /// A request of the page, paused: performed by the suite, or the end of the login.
    async fn paused(&mut self, p: &Value) -> Result<(), LoginError> {
        let id = p["requestId"].as_str().unwrap_or_default().to_string();
        let req = &p["request"];
        let url = req["url"].as_str().unwrap_or_default().to_string();
        let method = req["method"].as_str().unwrap_or("GET").to_string();
        let kind = p["resourceType"].as_str().unwrap_or("Other").to_string();
        let document = kind == "Document";
        self.requests += 1;
        if document {
            self.documents += 1;
        }
        let max = self.max_documents();
        if self.documents > max || self.requests > 4 * max {
            self.fail_request(&id);
            return Err(LoginError::Failed(format!(
                "no redirect back to the client after {} page loads and {} requests in all \
                 (raise [login] max_requests?)",
                self.documents, self.requests
            )));
        }
        // Chromium asks for a URL without its fragment and reports the fragment apart: a
        // navigation to the client must keep it (an AS may end the redirect with `#`).
        let whole = format!("{url}{}", req["urlFragment"].as_str().unwrap_or(""));
        match route(self.browser, self.d, &whole, document) {
            Route::Leave(out) => {
                self.trace(format!(
                    "the page navigated to {}: the authorization response (not followed)",
                    self.shown(&whole)
                ));
                self.fail_request(&id);
                self.outcome = Some(out);
                return Ok(());
            }
            Route::Block => {
                self.trace(format!(
                    "blocked a {kind} request to {}: not on the AS",
                    self.shown(&url)
                ));
                self.fail_request(&id);
                return Ok(());
            }
            Route::Perform => {}
        }
        let mut r = Request::new(
            &method,
            url.clone(),
            format!("authorization: browser {kind}"),
        );
        if let Some(h) = req["headers"].as_object() {
            for (n, v) in h {
                if forwarded_header(n)
                    && let Some(v) = v.as_str()
                {
                    r = r.header(n, v);
                }
            }
        }
        if let Some(entries) = req["postDataEntries"].as_array() {
            let mut body = Vec::new();
            for e in entries {
                if let Some(b) = e["bytes"].as_str().and_then(|b| B64.decode(b).ok()) {
                    body.extend(b);
                }
            }
            r = r.body(body);
        } else if let Some(b) = req["postData"].as_str() {
            r = r.body(b.as_bytes().to_vec());
        }
        let resp = match self.browser.send(&mut self.agent.wire, r).await {
            Ok(x) => x,
            Err(e) => {
                self.fail_request(&id);
                if document {
                    return Err(LoginError::Failed(e));
                }
                self.trace(format!("a {kind} request failed: {e}"));
                return Ok(());
            }
        };
        self.last_net = Instant::now();
        self.trace(format!(
            "{method} {} ({kind}) → {}",
            self.shown(&url),
            resp.status
        ));
        if let Some(limit) = resp.rate_limited() {
            self.fail_request(&id);
            return Err(LoginError::Failed(format!(
                "the AS rate-limited the request ({limit}): run fewer cases against a fresh server"
            )));
        }
        if document && (300..400).contains(&resp.status) {
            // Decided on the AS's own `Location`, as written: the checks compare raw text, and
            // Chromium would normalise it before asking for it.
            let Some(loc) = resp.header("location").map(str::to_string) else {
                self.fail_request(&id);
                self.outcome = Some(Outcome::Page {
                    url,
                    status: resp.status,
                    excerpt: "a redirect status without Location".into(),
                });
                return Ok(());
            };
            if let Ok(out) = leaves(self.browser, self.d, &url, &loc) {
                self.trace(format!(
                    "the AS redirected to {}: the authorization response (not followed)",
                    self.shown(&loc)
                ));
                self.fail_request(&id);
                self.outcome = Some(out);
                return Ok(());
            }
        } else if document {
            self.doc = Some((url.clone(), resp.clone()));
        }
        let headers: Vec<Value> = resp
            .headers
            .iter()
            .filter(|(n, _)| fulfilled_header(n))
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect();
        let fulfilled = self
            .tab
            .call(
                "Fetch.fulfillRequest",
                json!({
                    "requestId": id,
                    "responseCode": resp.status,
                    "responseHeaders": headers,
                    "body": B64.encode(&resp.body),
                }),
            )
            .await;
        if let Err(e) = fulfilled {
            self.fail_request(&id);
            let m = format!("Chromium refused the answer to {}: {e}", self.shown(&url));
            if document {
                return Err(LoginError::Failed(m));
            }
            self.trace(m);
        }
        Ok(())
    }

    /// The page as it is now; `Ok(None)` while it cannot be read (a navigation replacing the
    /// document: the caller looks again) or once the authorization response came.
    async fn inspect(&mut self) -> Result<Option<Snapshot>, LoginError> {
        Ok(match self.eval(&inspect_script()).await? {
            Ok(v) => v.and_then(|v| serde_json::from_value(v).ok()),
            Err(_) => None,
        })
    }

    /// Waits for the page to settle: a document loaded (when `need_load`, or when the page
    /// navigated), no request for a moment, a DOM that no longer changes and differs from
    /// `before` (the page the driver last acted on), and either something to act on or no
    /// script left that could render it. A page that looks like `before` again (the login form
    /// after the credentials), or one that changed without asking the server anything, must stay
    /// so for [`CONFIRM`]: a script between two requests must not pass for a refusal. `None`
    /// when the authorization response came instead.
    async fn settle(
        &mut self,
        before: Option<&Snapshot>,
        need_load: bool,
    ) -> Result<Option<Snapshot>, LoginError> {
        let (loads0, docs0, requests0) = (self.loads, self.documents, self.requests);
        let until = Instant::now() + self.page_timeout;
        let mut seen: Option<(Snapshot, Instant)> = None;
        let mut first_look: Option<Instant> = None;
        loop {
            let step = (Instant::now() + Duration::from_millis(25)).min(until);
            self.pump(step).await?;
            if self.outcome.is_some() {
                return Ok(None);
            }
            if Instant::now() >= until {
                break;
            }
            let navigated = self.documents > docs0;
            if self.loading || ((need_load || navigated) && self.loads == loads0) {
                continue;
            }
            let Some(snap) = self.inspect().await? else {
                if self.outcome.is_some() {
                    return Ok(None);
                }
                continue;
            };
            let now = Instant::now();
            let loaded = self.loads > loads0;
            if before.is_some_and(|b| b.html == snap.html) && !loaded {
                continue;
            }
            if snap.scripts == 0 && loaded {
                return Ok(Some(snap));
            }
            let doubtful = before.is_some_and(|b| b.kind() == snap.kind())
                || (before.is_some() && self.requests == requests0);
            let (quiet, stable) = if doubtful {
                (CONFIRM, CONFIRM)
            } else {
                (QUIET, STABLE)
            };
            if now.duration_since(self.last_net) < quiet {
                continue;
            }
            let first = *first_look.get_or_insert(now);
            match &seen {
                Some((s, since)) if s.html == snap.html => {
                    if now.duration_since(*since) >= stable
                        && (snap.final_enough() || now.duration_since(first) >= JS_GRACE)
                    {
                        return Ok(Some(snap));
                    }
                }
                _ => seen = Some((snap, now)),
            }
        }
        let secs = self.page_timeout.as_secs();
        Err(LoginError::Failed(match (before, self.loads > loads0) {
            (_, false) if need_load || self.documents > docs0 => {
                format!("the page did not finish loading within {secs} s")
            }
            (Some(_), _) => format!(
                "the page did not change within {secs} s of the driver's last action \
                 (raise [login.browser] page_timeout_secs, or set the selectors?)"
            ),
            (None, _) => format!("the page did not settle within {secs} s"),
        }))
    }

    fn page_seen(&self, snap: &Snapshot, kind: &'static str) -> PageSeen {
        let parsed = form::parse(&snap.html);
        let (url, status, headers) = match &self.doc {
            Some((u, r)) => (u.clone(), r.status, r.headers.clone()),
            None => (String::new(), 0, Vec::new()),
        };
        PageSeen {
            url,
            status,
            kind,
            headers,
            meta_referrer: parsed.meta_referrer,
            body: snap.html.clone(),
        }
    }

    /// Ends at this page: the AS's answer, for the checks to judge.
    fn stop_at(&mut self, snap: &Snapshot) {
        self.journey.pages.push(self.page_seen(snap, "page"));
        let (url, status, text) = match &self.doc {
            Some((u, r)) => (u.clone(), r.status, excerpt(r)),
            None => (String::new(), 0, String::new()),
        };
        self.outcome = Some(Outcome::Page {
            url,
            status,
            excerpt: text,
        });
    }

    async fn act(&mut self, script: String, what: &str) -> Result<(), LoginError> {
        match self.eval(&script).await? {
            Ok(Some(Value::Bool(true)) | None) => Ok(()),
            Ok(_) => Err(LoginError::Failed(format!(
                "could not {what}: no such element"
            ))),
            Err(e) => Err(LoginError::Failed(format!("could not {what}: {e}"))),
        }
    }

    async fn log_in(&mut self) -> Result<(), LoginError> {
        let b = &self.cfg.browser;
        let c = json!({
            "username": self.cfg.username.clone().unwrap_or_else(|| "authconform".into()),
            "password": self.cfg.password.clone().unwrap_or_default(),
            "username_selector": b.username_selector,
            "password_selector": b.password_selector,
            "submit_selector": b.submit_selector,
            "username_field": self.cfg.username_field,
            "password_field": self.cfg.password_field,
            "names": ["login", "username", "user", "email", "identifier", "name"],
            "fields": self.cfg.fields,
        });
        let Some(r) = self
            .eval(&format!("{FILL}({c})"))
            .await?
            .map_err(|e| LoginError::Failed(format!("could not fill the login form: {e}")))?
        else {
            return Ok(());
        };
        if let Some(e) = r["error"].as_str() {
            return Err(LoginError::Failed(format!(
                "could not fill the login form: {e} (set [login.browser] username_selector / \
                 password_selector / submit_selector?)"
            )));
        }
        self.trace(format!(
            "filled {} and {}, then {}",
            r["user"].as_str().unwrap_or("?"),
            r["password"].as_str().unwrap_or("?"),
            r["submit"].as_str().unwrap_or("submitted")
        ));
        Ok(())
    }

    async fn consent(&mut self, snap: &Snapshot) -> Result<(), LoginError> {
        let b = self.cfg.browser.clone();
        let approve = self.d.consent == Consent::Approve;
        let configured = if approve {
            b.approve_selector
        } else {
            b.deny_selector
        };
        let what = if approve { "approve" } else { "deny" };
        if let Some(sel) = configured {
            self.act(click_script(&sel, None), &format!("{what} ({sel})"))
                .await?;
            self.trace(format!("clicked {sel} to {what}"));
            return Ok(());
        }
        let pick = snap.buttons.iter().find(|x| {
            let fb = x.as_form_button();
            if approve { fb.approves() } else { fb.denies() }
        });
        if let Some(x) = pick {
            self.act(click_script(BUTTONS, Some(x.i)), what).await?;
            self.trace(format!("clicked {:?} to {what}", x.label));
            return Ok(());
        }
        if !approve
            && let Some(l) = snap.links.iter().find(|l| {
                form::Link {
                    href: l.href.clone(),
                    label: l.label.clone(),
                }
                .denies()
            })
        {
            self.act(click_script("a[href]", Some(l.i)), what).await?;
            self.trace(format!("followed the link {:?} to deny", l.label));
            return Ok(());
        }
        let url = self.doc.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        Err(LoginError::Failed(if approve {
            format!("the page at {url} has a form but no button that approves")
        } else {
            format!("the consent page at {url} offers no button or link that denies")
        }))
    }

    async fn go(&mut self) -> Result<(), LoginError> {
        self.trace(format!("opened {} in Chromium", self.shown(&self.d.url)));
        self.tab.post("Page.navigate", json!({"url": self.d.url}));
        let mut before: Option<Snapshot> = None;
        for _ in 0..self.max_documents() {
            let Some(snap) = self.settle(before.as_ref(), before.is_none()).await? else {
                return Ok(());
            };
            let status = self.doc.as_ref().map(|d| d.1.status).unwrap_or(0);
            let kind = snap.kind();
            if !self.d.login || kind == "page" || status >= 400 {
                self.stop_at(&snap);
                return Ok(());
            }
            self.journey.pages.push(self.page_seen(&snap, kind));
            if kind == "login" {
                if self.journey.interactions.contains(&"login") {
                    let url = self.doc.as_ref().map(|d| d.0.clone()).unwrap_or_default();
                    return Err(LoginError::Failed(format!(
                        "the login form came back after the credentials for {:?} were submitted \
                         ({url}): the AS refused them. Check [login] username / password_env",
                        self.cfg.username.as_deref().unwrap_or("")
                    )));
                }
                self.log_in().await?;
                self.journey.interactions.push("login");
            } else {
                self.consent(&snap).await?;
                self.journey.interactions.push(match self.d.consent {
                    Consent::Approve => "consent",
                    Consent::Deny => "deny",
                });
            }
            before = Some(snap);
        }
        Err(LoginError::Failed(format!(
            "no redirect back to the client after {} pages",
            self.max_documents()
        )))
    }
}

/// Runs one login in Chromium, in the `Browser`'s own browser context.
pub async fn run(
    agent: &mut Agent<'_>,
    browser: &mut Browser,
    cfg: &LoginConfig,
    d: &Drive<'_>,
) -> Result<Journey, LoginError> {
    let cdp = chromium(cfg.browser.chromium.as_deref()).await?;
    let failed = |e: String| LoginError::Failed(format!("Chromium: {e}"));
    // A context made by a Chromium that has since been restarted is gone with it.
    if browser
        .chromium
        .as_ref()
        .is_none_or(|c| !Arc::ptr_eq(&c.cdp, &cdp))
    {
        let c = cdp
            .call(None, "Target.createBrowserContext", json!({}))
            .await
            .map_err(failed)?;
        browser.chromium = Some(Context {
            id: c["browserContextId"].as_str().unwrap_or_default().into(),
            cdp: cdp.clone(),
        });
    }
    let context = browser
        .chromium
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let tab = Tab::open(&cdp, &context).await.map_err(failed)?;
    let page_timeout = Duration::from_secs(cfg.browser.page_timeout_secs.unwrap_or(15).max(1));
    let mut run = Run {
        agent,
        browser,
        cfg,
        d,
        tab,
        journey: Journey::start(String::new()),
        doc: None,
        outcome: None,
        loads: 0,
        loading: false,
        documents: 0,
        requests: 0,
        last_net: Instant::now(),
        page_timeout,
    };
    let whole = page_timeout * 4;
    let r = match tokio::time::timeout(whole, run.go()).await {
        Ok(r) => r,
        Err(_) => Err(LoginError::Failed(format!(
            "the browser login did not finish within {} s",
            whole.as_secs()
        ))),
    };
    r?;
    let mut journey = run.journey;
    if let Some(o) = run.outcome {
        journey.outcome = o;
    }
    Ok(journey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(redirect_uri: Option<&str>) -> Drive<'_> {
        Drive {
            url: "https://as.test/authorize".into(),
            redirect_uri,
            consent: Consent::Approve,
            login: true,
        }
    }

    #[test]
    fn requests_on_the_as_are_performed_and_others_end_or_are_blocked() {
        let b = Browser::new(vec!["https://as.test".into()]);
        let d = drive(Some("https://as.test/cb"));
        assert!(matches!(
            route(&b, &d, "https://as.test/signin.js", false),
            Route::Perform
        ));
        assert!(matches!(
            route(&b, &d, "https://as.test/login", true),
            Route::Perform
        ));
        // The redirect URI on the AS's own origin is still the response, never performed.
        match route(&b, &d, "https://as.test/cb?code=x", true) {
            Route::Leave(Outcome::Redirected { location, raw }) => {
                assert_eq!(location, "https://as.test/cb?code=x");
                assert_eq!(raw, location);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route(&b, &d, "https://evil.test/x", true),
            Route::Leave(_)
        ));
        assert!(matches!(
            route(&b, &d, "https://cdn.test/x.js", false),
            Route::Block
        ));
        assert!(matches!(
            route(&b, &d, "https://as.test/cb", false),
            Route::Block
        ));
    }

    #[test]
    fn the_suite_keeps_cookies_and_encodings_to_itself() {
        assert!(!forwarded_header("Cookie"));
        assert!(!forwarded_header("Accept-Encoding"));
        assert!(forwarded_header("Content-Type"));
        assert!(forwarded_header("Origin"));
        assert!(!fulfilled_header("content-encoding"));
        assert!(fulfilled_header("set-cookie"));
        assert!(fulfilled_header("content-security-policy"));
    }

    #[test]
    fn chromium_is_looked_for_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::create_dir(&a).expect("mkdir");
        let exe = a.join("chromium-browser");
        std::fs::write(&exe, "").expect("write");
        let other = dir.path().join("google-chrome");
        std::fs::write(&other, "").expect("write");
        let path = std::env::join_paths([dir.path(), a.as_path()]).expect("join");
        // PATH: the first name found in any directory of PATH, chromium before chromium-browser.
        assert_eq!(
            locate(None, None, Some(path.clone())).as_deref(),
            Ok(exe.as_path())
        );
        // The environment variable goes before PATH, the profile before both.
        assert_eq!(
            locate(None, Some(other.clone().into()), Some(path.clone())).as_deref(),
            Ok(other.as_path())
        );
        assert_eq!(
            locate(Some(&exe), Some(other.clone().into()), Some(path.clone())).as_deref(),
            Ok(exe.as_path())
        );
        // A configured path that is not there is an error, not a fallback.
        let missing = dir.path().join("nope");
        let e = locate(Some(&missing), None, Some(path)).expect_err("missing");
        assert!(e.contains("[login.browser] chromium"), "{e}");
        let e = locate(None, None, Some(std::ffi::OsString::new())).expect_err("none");
        assert!(e.contains("install Debian's chromium"), "{e}");
    }

    #[test]
    fn pages_are_classified_like_the_form_driver_does() {
        let snap = |password, forms, labels: &[&str]| Snapshot {
            password,
            forms,
            scripts: 1,
            buttons: labels
                .iter()
                .enumerate()
                .map(|(i, l)| Btn {
                    i,
                    label: l.to_string(),
                    name: String::new(),
                    value: String::new(),
                })
                .collect(),
            links: Vec::new(),
            html: String::new(),
        };
        assert_eq!(snap(true, 1, &["sign in"]).kind(), "login");
        assert_eq!(snap(false, 0, &["allow", "deny"]).kind(), "consent");
        assert_eq!(snap(false, 0, &["more"]).kind(), "page");
        assert_eq!(snap(false, 0, &[]).kind(), "page");
        assert!(!snap(false, 0, &[]).final_enough());
    }
}
