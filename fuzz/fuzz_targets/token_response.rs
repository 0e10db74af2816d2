//! Token endpoint responses (RFC 6749 §5.1, §5.2) as the flow saves them and the readers and
//! checks read them: `tokens::token_doc_of`, `access_token_of`, `refresh_token_of`,
//! `oauth_error` (under the suite's `token_doc`, `saved_access_token`, `saved_refresh_token`),
//! and the judgements of the `tok-*` checks that judge a saved response.
//!
//! Input: the response body. Each input is judged as a 200, a 400 and a 401.
//!
//! Properties, besides nothing panicking:
//! - only a 200 yields a token document, and it is the body's JSON;
//! - `access_token_of` / `refresh_token_of` return exactly the string members (a missing refresh
//!   token skips, a missing access token errors); `oauth_error` the string `error` member;
//! - every check records each failure it returns, and never passes with a failure recorded;
//! - `tok-response-shape` passes only for a non-empty string `access_token`, a Bearer/DPoP
//!   `token_type`, an integer `expires_in` (if any) and a string `scope` (if any);
//! - `tok-token-charset` passes only when both tokens are visible ASCII;
//! - `tok-jwt-assertion-aud-issuer` passes (no warning) only for a 200 with an `access_token`.
#![no_main]

mod common;

use authconform_core::judge::token_endpoint;
use authconform_core::tokens::{
    access_token_of, oauth_error, refresh_token_of, str_member, token_doc_of,
};
use authconform_core::verdict::Stop;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let json: Option<Value> = serde_json::from_slice(data).ok();
    for status in [200u16, 400, 401] {
        let r = common::response(
            status,
            &[
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
            ],
            data,
        );

        assert_eq!(
            oauth_error(&r),
            json.as_ref().and_then(|d| str_member(d, "error"))
        );
        match token_doc_of(&r) {
            Ok(doc) => {
                assert_eq!(status, 200);
                assert_eq!(Some(&doc), json.as_ref());
                match access_token_of(&doc, "token") {
                    Ok(at) => assert_eq!(Some(at), str_member(&doc, "access_token")),
                    Err(Stop::Error(_)) => assert_eq!(str_member(&doc, "access_token"), None),
                    Err(other) => panic!("access_token_of: {other:?}"),
                }
                match refresh_token_of(&doc) {
                    Ok(rt) => assert_eq!(Some(rt), str_member(&doc, "refresh_token")),
                    Err(Stop::Skip(_)) => assert_eq!(str_member(&doc, "refresh_token"), None),
                    Err(other) => panic!("refresh_token_of: {other:?}"),
                }
            }
            Err(Stop::Error(_)) => assert!(status != 200 || json.is_none()),
            Err(other) => panic!("token_doc_of: {other:?}"),
        }

        let (_, shape) =
            common::run_check("response_shape", |f| token_endpoint::response_shape(f, &r));
        if shape.is_ok() {
            assert_eq!(status, 200);
            let d = json.as_ref().expect("a shape passed without JSON");
            assert!(matches!(d.get("access_token"), Some(Value::String(s)) if !s.is_empty()));
            let tt = d.get("token_type").and_then(Value::as_str).unwrap_or("");
            assert!(tt.eq_ignore_ascii_case("bearer") || tt.eq_ignore_ascii_case("dpop"));
            assert!(d.get("expires_in").is_none_or(|e| e.as_u64().is_some()));
            assert!(d.get("scope").is_none_or(Value::is_string));
        }
        let (_, charset) =
            common::run_check("token_charset", |f| token_endpoint::token_charset(f, &r));
        if charset.is_ok() {
            for k in ["access_token", "refresh_token"] {
                if let Some(t) = json.as_ref().and_then(|d| str_member(d, k)) {
                    assert!(t.chars().all(|c| (' '..='~').contains(&c)), "{k} {t:?}");
                }
            }
        }
        let (f, accepted) = common::run_check("accepted_or_warn", |f| {
            token_endpoint::accepted_or_warn(f, &r)
        });
        if accepted.is_ok() && f.warnings().next().is_none() {
            assert_eq!(status, 200);
            assert!(
                json.as_ref()
                    .is_some_and(|d| d.get("access_token").is_some())
            );
        }
    }
});
