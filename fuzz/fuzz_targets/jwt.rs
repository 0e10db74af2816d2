//! What a JWT says of itself (RFC 7515 §7.1, RFC 7519): `tokens::jwt_parts`, `jwt_payload`,
//! `jwt_object`, `jwt_claims` and `aud_names`, which read access tokens (and ID tokens) the
//! server issued, before anything is verified.
//!
//! Input: either a token as the server sent it, or, when it starts with `{`, a JOSE header and
//! a claims set as JSON text separated by a newline, encoded here into an unsigned token (so the
//! fuzzer reaches the JSON readers without having to mutate through base64).
//!
//! Properties, besides nothing panicking:
//! - `jwt_parts` splits exactly the strings with three dot-separated parts, and the parts join
//!   back into the token;
//! - a decoded part re-encodes (base64url, no padding) to the part as sent, padding aside;
//! - `jwt_claims` yields claims only when the header is an object naming a string `alg`, and
//!   they are the payload's object; for an encoded header and claims, exactly those claims;
//! - `aud_names` is true for a string `aud` and for every string of an array `aud`.
#![no_main]

use authconform_core::tokens::{aud_names, jwt_claims, jwt_object, jwt_parts, jwt_payload};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_token(token: &str) {
    let parts = jwt_parts(token);
    assert_eq!(parts.is_some(), token.split('.').count() == 3);
    let Some([h, p, s]) = parts else {
        assert!(jwt_payload(token).is_none() && jwt_claims(token).is_none());
        return;
    };
    assert_eq!(format!("{h}.{p}.{s}"), token);
    if let Some(bytes) = jwt_payload(token) {
        assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), p.trim_end_matches('='));
    }
    let header = jwt_object(h);
    let payload = jwt_object(p);
    if payload.is_some() {
        assert!(jwt_payload(token).is_some());
    }
    match jwt_claims(token) {
        Some(c) => {
            assert!(
                header
                    .as_ref()
                    .is_some_and(|m| m.get("alg").is_some_and(Value::is_string))
            );
            assert_eq!(Some(&c), payload.as_ref());
            match c.get("aud") {
                Some(Value::String(a)) => assert!(aud_names(&Value::String(a.clone()), a)),
                Some(aud @ Value::Array(xs)) => {
                    for a in xs.iter().filter_map(Value::as_str) {
                        assert!(aud_names(aud, a));
                    }
                }
                Some(other) => assert!(!aud_names(other, "https://mcp.example.com/mcp")),
                None => {}
            }
        }
        None => assert!(
            header.is_none_or(|m| !m.get("alg").is_some_and(Value::is_string)) || payload.is_none()
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if text.starts_with('{')
        && let Some((h, p)) = text.split_once('\n')
    {
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(h.as_bytes()),
            URL_SAFE_NO_PAD.encode(p.as_bytes())
        );
        check_token(&token);
        let header: Option<Value> = serde_json::from_str(h).ok();
        let claims: Option<Value> = serde_json::from_str(p).ok();
        let named_alg = header
            .as_ref()
            .is_some_and(|v| v.get("alg").is_some_and(Value::is_string) && v.is_object());
        match (named_alg, claims) {
            (true, Some(Value::Object(c))) => assert_eq!(jwt_claims(&token), Some(c)),
            _ => assert_eq!(jwt_claims(&token), None),
        }
    } else {
        check_token(&text);
    }
});
