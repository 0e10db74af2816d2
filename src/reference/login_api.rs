//! The reference's JSON login: the `json` and `spa` login styles. Many real authorization
//! servers put their login behind a JavaScript page: the authorization endpoint sends the
//! browser to a page with no form, and the page's script posts the credentials and the decision
//! to JSON endpoints whose answers name the URL to go to next. The suite must get a test user
//! through such a login (the `script` driver for `json`, a real browser for `spa`), and judge
//! what the authorization endpoint answers exactly as under the HTML forms.
//!
//! - `GET /as/signin?txn=T`: the page. `json`: a page with no form while signed out, the
//!   consent view (buttons, no form) once signed in. `spa`: a shell its script renders.
//! - `POST /as/api/login` `{"txn","username","password"}`: `{"next": URL}` when consent is due,
//!   `{"redirect_to": URL}` when not; 401 `invalid_credentials`; 400 `unknown_transaction`.
//! - `GET /as/api/consent?txn=T`: what the consent view shows, as JSON (401 `login_required`).
//! - `POST /as/api/consent` `{"txn","decision"}`: `{"redirect_to": URL}`, the authorization
//!   response; a dead end (the code-access-denied fault) is a 400 without `redirect_to`.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};

use super::Ref;
use super::authorize::{self, SignIn};

fn field(body: &Value, k: &str) -> Option<String> {
    body.get(k).and_then(Value::as_str).map(str::to_string)
}

fn query_txn(query: &str) -> Option<String> {
    authorize::pairs(query)
        .into_iter()
        .find(|(k, _)| k == "txn")
        .map(|(_, v)| v)
}

/// A redirect the form style would answer becomes `{"redirect_to": Location}`; anything else
/// (an error page) a 400 without one: the script has nowhere to go.
fn as_json(r: Response) -> Response {
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match location {
        Some(l) if r.status().is_redirection() => super::json(200, json!({ "redirect_to": l })),
        _ => super::json(
            400,
            json!({ "error": "authorization_failed", "error_description": "the authorization cannot continue" }),
        ),
    }
}

/// `GET /as/signin?txn=T`.
pub fn signin(s: &Ref, query: &str, headers: &HeaderMap) -> Response {
    let Some(t) =
        query_txn(query).and_then(|txn| authorize::transaction(s, headers, &txn).map(|t| (txn, t)))
    else {
        return authorize::error_page(s, "unknown or expired transaction");
    };
    let (txn, t) = t;
    if t.logged_in {
        return authorize::consent_page_api(s, &txn, &t.p);
    }
    // No form: the credentials go to /as/api/login from a script.
    authorize::page(
        200,
        "Sign in",
        &format!(
            "<div id=\"signin\" data-txn=\"{txn}\" data-endpoint=\"/as/api/login\">\
             <p>Signing in needs JavaScript.</p></div>"
        ),
        s,
    )
}

/// `POST /as/api/login`.
pub fn login(s: &Ref, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(body) else {
        return super::json(400, json!({ "error": "invalid_request" }));
    };
    let Some(txn) = field(&b, "txn") else {
        return super::json(400, json!({ "error": "unknown_transaction" }));
    };
    let sid = match authorize::sign_in(
        s,
        headers,
        &txn,
        field(&b, "username").as_deref(),
        field(&b, "password").as_deref(),
    ) {
        SignIn::Unknown => return super::json(400, json!({ "error": "unknown_transaction" })),
        SignIn::Refused => return super::json(401, json!({ "error": "invalid_credentials" })),
        SignIn::Done(sid) => sid,
    };
    // The transaction as the browser will see it once the cookie is set.
    let mut with_cookie = headers.clone();
    if let Ok(v) = format!("ref_sid={sid}").parse() {
        with_cookie.insert("cookie", v);
    }
    let mut r = match authorize::transaction(s, &with_cookie, &txn) {
        Some(t) if t.consent_given(s) => as_json(authorize::issue(s, &txn)),
        Some(_) => super::json(200, json!({ "next": format!("/as/signin?txn={txn}") })),
        None => super::json(400, json!({ "error": "unknown_transaction" })),
    };
    if let Ok(v) = authorize::session_cookie(&sid).parse() {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

/// `GET` (what the consent view shows) and `POST` (the decision) `/as/api/consent`.
pub fn consent(
    s: &Ref,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let posted = (*method == Method::POST)
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten();
    let txn = match &posted {
        Some(b) => field(b, "txn"),
        None => query_txn(query),
    };
    let Some((txn, t)) = txn.and_then(|x| authorize::transaction(s, headers, &x).map(|t| (x, t)))
    else {
        return super::json(400, json!({ "error": "unknown_transaction" }));
    };
    if !t.logged_in {
        return super::json(401, json!({ "error": "login_required" }));
    }
    let Some(b) = posted else {
        if *method == Method::POST {
            return super::json(400, json!({ "error": "invalid_request" }));
        }
        let v = authorize::consent_view(s, &txn, &t.p, true);
        return super::json(
            200,
            json!({
                "client_name": v.client_name,
                "client_host": v.client_host,
                "redirect_host": v.redirect_host,
                "loopback_warning": v.loopback_warning,
                "logo_uri": v.logo_uri,
                "policy_uri": v.policy_uri,
                "tos_uri": v.tos_uri,
            }),
        );
    };
    let approve = field(&b, "decision").as_deref() == Some("approve");
    as_json(authorize::decide(s, headers, &txn, &t.p, approve))
}
