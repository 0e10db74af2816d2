//! The reference's single-page login (the `spa` login style): `/as/signin` is a shell whose
//! script (`/as/signin.js`) renders the login form, then the consent view, with DOM APIs, and
//! talks to the JSON login API (`login_api`). No HTML form is ever posted: only a real browser
//! (the `browser` driver) gets through it.
//!
//! The consent view shows what the HTML consent page (`templates/reference-consent.html`)
//! shows, in the same words, from `GET /as/api/consent`, which applies the same faults; the
//! client's name goes in as text, except under `dcr-display-escaping`, where the shell tells
//! the script to insert it as HTML, so that case still fails under this style.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;

use super::Ref;
use super::authorize;

/// The pages that run the script may load it from their own origin, and nothing else runs:
/// no inline script, no plugin, no `<base>` moving relative URLs.
const SCRIPT_POLICY: &str = "script-src 'self'; object-src 'none'; base-uri 'none'";

/// `GET /as/signin?txn=T`: the shell. Which view the script starts with (the login form, or
/// the consent view once signed in) is decided here, as the json style's page decides it.
pub fn signin(s: &Ref, query: &str, headers: &HeaderMap) -> Response {
    let txn = authorize::pairs(query)
        .into_iter()
        .find(|(k, _)| k == "txn")
        .map(|(_, v)| v);
    let Some((txn, t)) = txn.and_then(|x| authorize::transaction(s, headers, &x).map(|t| (x, t)))
    else {
        return authorize::error_page(s, "unknown or expired transaction");
    };
    let view = if t.logged_in { "consent" } else { "login" };
    let raw = if s.fault("dcr-display-escaping") {
        " data-name-as-html"
    } else {
        ""
    };
    // The transaction id is the store's own random URL-safe id: nothing to escape, but it is
    // escaped all the same, as everything put in an attribute.
    let html = format!(
        "<!doctype html>\n<html>\n<head><meta charset=\"utf-8\"><title>Sign in</title>\
         <script src=\"/as/signin.js\" defer></script></head>\n<body>\
         <div id=\"app\" data-txn=\"{}\" data-view=\"{view}\"{raw}><p>Loading…</p></div>\
         <noscript><p>Signing in needs JavaScript.</p></noscript>\n</body>\n</html>\n",
        escape_attr(&txn)
    );
    let mut r = authorize::html_response(200, html, s);
    if let Ok(v) = SCRIPT_POLICY.parse() {
        r.headers_mut().append("content-security-policy", v);
    }
    r
}

/// `GET /as/signin.js`.
pub fn script() -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "text/javascript; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Body::from(SCRIPT))
        .unwrap_or_default()
}

fn escape_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const SCRIPT: &str = r#""use strict";
// The reference's single-page login: renders the sign-in form and the consent view in #app,
// and talks to /as/api/login and /as/api/consent. Every text from the server goes in as text.
(() => {
  const app = document.getElementById("app");
  if (!app) return;
  const txn = app.dataset.txn;
  const nameAsHtml = app.hasAttribute("data-name-as-html");
  const el = (tag, text, attrs) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const show = (...kids) => app.replaceChildren(...kids);
  const fail = (msg) => show(el("h1", "Authorization error"), el("p", msg));
  const api = async (method, path, body) => {
    const r = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = {};
    try { data = await r.json(); } catch (e) { /* not JSON: no redirect_to */ }
    return { status: r.status, data };
  };

  function login(message) {
    const user = el("input", null, { type: "text", name: "username", autocomplete: "username" });
    const pass = el("input", null, { type: "password", name: "password", autocomplete: "current-password" });
    const submit = el("button", "Sign in", { type: "submit" });
    const userLabel = el("label", "User ");
    userLabel.append(user);
    const passLabel = el("label", "Password ");
    passLabel.append(pass);
    const form = el("form");
    form.append(userLabel, " ", passLabel, " ", submit);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      const r = await api("POST", "/as/api/login", { txn, username: user.value, password: pass.value });
      if (r.data.redirect_to) { location.href = r.data.redirect_to; return; }
      if (r.data.next) { history.replaceState(null, "", r.data.next); consent(); return; }
      if (r.status === 401) { login("Wrong username or password."); return; }
      fail("The sign-in cannot continue (" + (r.data.error || r.status) + ").");
    });
    const kids = [el("h1", "Sign in")];
    if (message) kids.push(el("p", message, { role: "alert" }));
    kids.push(form);
    show(...kids);
  }

  // Mirrors templates/reference-consent.html.
  async function consent() {
    const r = await api("GET", "/as/api/consent?txn=" + encodeURIComponent(txn));
    if (r.status === 401) { login(); return; }
    if (r.status !== 200) { fail("The authorization cannot continue (" + (r.data.error || r.status) + ")."); return; }
    const v = r.data;
    const kids = [el("h1", "Allow access?")];
    const who = el("p");
    const name = el("span");
    if (nameAsHtml) name.innerHTML = v.client_name; else name.textContent = v.client_name;
    who.append(name, " asks for access to the reference MCP server.");
    kids.push(who);
    if (v.client_host) kids.push(el("p", "This client is identified by its web site " + v.client_host + "."));
    if (v.redirect_host) kids.push(el("p", "After you decide, you are sent to " + v.redirect_host + "."));
    if (v.loopback_warning) {
      const p = el("p");
      p.append(el("strong", "Warning:"), " this client only returns to a program on this device (localhost). Allow it only if you started it yourself.");
      kids.push(p);
    }
    const wrap = (child) => { const p = el("p"); p.append(child); return p; };
    if (v.logo_uri) kids.push(wrap(el("img", null, { src: v.logo_uri, alt: "client logo" })));
    if (v.policy_uri) kids.push(wrap(el("a", "Privacy policy", { href: v.policy_uri })));
    if (v.tos_uri) kids.push(wrap(el("a", "Terms of service", { href: v.tos_uri })));
    const deny = el("button", "Deny", { type: "button" });
    const allow = el("button", "Allow", { type: "button" });
    const decide = async (decision) => {
      deny.disabled = allow.disabled = true;
      const d = await api("POST", "/as/api/consent", { txn, decision });
      if (d.data.redirect_to) { location.href = d.data.redirect_to; return; }
      fail("The authorization cannot continue (" + (d.data.error || d.status) + ").");
    };
    deny.addEventListener("click", () => decide("deny"));
    allow.addEventListener("click", () => decide("approve"));
    const buttons = el("div");
    buttons.append(deny, " ", allow);
    kids.push(buttons);
    show(...kids);
  }

  const start = app.dataset.view === "consent" ? consent() : Promise.resolve(login());
  start.catch((e) => fail(String(e)));
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape_attr("a\"<b>&"), "a&quot;&lt;b&gt;&amp;");
    }

    #[test]
    fn the_script_renders_server_text_as_text_unless_told_otherwise() {
        // The one innerHTML is the dcr-display-escaping fault's, behind the shell's flag.
        assert_eq!(SCRIPT.matches("innerHTML").count(), 1);
        assert!(SCRIPT.contains("if (nameAsHtml) name.innerHTML"));
    }
}
