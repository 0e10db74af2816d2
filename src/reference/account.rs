//! The reference AS's account page: the signed-in user withdraws a client's access. Every token
//! the client holds for that user stops working, whichever redemption or refresh minted it
//! (RFC 7009 §2.1: revoking a grant invalidates its tokens; RFC 6749 §10.5: an AS that lets a
//! code be redeemed again revokes what it issued). It is what grant-revocation-complete drives
//! through the profile's `[grant_revocation] url`.

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::json;

use super::{Ref, json};

/// Where the page lives, under the issuer.
pub const REVOKE_PATH: &str = "/account/revoke";

fn page(status: u16, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-frame-options", "DENY")
        .body(Body::from(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Account</title></head><body><p>{text}</p></body></html>"
        )))
        .unwrap_or_default()
}

/// POST `/as/account/revoke` with the login session cookie and a form `client_id`: revokes
/// every access and refresh token of that client for the signed-in user.
pub fn revoke(s: &Ref, method: &Method, headers: &HeaderMap, body: &[u8]) -> Response {
    if *method != Method::POST {
        return json(405, json!({ "error": "method_not_allowed" }));
    }
    let form = super::authorize::pairs(&String::from_utf8_lossy(body));
    let Some(client_id) = form
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.clone())
    else {
        return page(400, "Which application? (client_id is missing)");
    };
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let user = super::authorize::session_id(headers)
        .and_then(|sid| st.sessions.get(&sid).and_then(|x| x.user.clone()));
    let Some(user) = user else {
        return page(401, "Sign in first.");
    };
    // The user's grant to the client: every token recorded for both. Under the
    // grant-revocation-complete fault the tokens of a racing second redemption were recorded
    // without the user (token.rs), so they are not found here and survive.
    let mut n = 0;
    let st = &mut *st;
    for g in st.access.values_mut().chain(st.refresh.values_mut()) {
        if g.client_id == client_id && g.user.as_deref() == Some(user.as_str()) && g.active {
            g.active = false;
            g.grace_until = None;
            n += 1;
        }
    }
    // The page states only a count: no client-supplied text is echoed.
    page(200, &format!("Access withdrawn: {n} token(s) revoked."))
}
