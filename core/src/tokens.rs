//! Reading what a token endpoint returned (RFC 6749 §5.1) and what a JWT says of itself (RFC
//! 7515 §7.1, RFC 7519 §4.1.3 `aud`): nothing is verified and nothing judged. The checks'
//! `tokens` module (which also gets tokens from the AS) re-exports these.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::response::Response;
use crate::verdict::Stop;

/// The JSON of a successful token response.
pub fn token_doc_of(r: &Response) -> Result<Value, Stop> {
    if r.status != 200 {
        return Err(Stop::Error(format!(
            "the token request answered {}: no tokens to work with",
            r.status
        )));
    }
    r.json()
        .ok_or_else(|| Stop::Error("the token response is not JSON".into()))
}

/// The `access_token` of a successful token response's JSON (saved as `on`, for the message).
pub fn access_token_of(doc: &Value, on: &str) -> Result<String, Stop> {
    str_member(doc, "access_token")
        .ok_or_else(|| Stop::Error(format!("`{on}` holds no access token")))
}

/// The `refresh_token` of a successful token response's JSON; without one the case is skipped
/// (an AS need not issue refresh tokens, RFC 6749 §5.1).
pub fn refresh_token_of(doc: &Value) -> Result<String, Stop> {
    str_member(doc, "refresh_token").ok_or_else(|| Stop::Skip("no refresh token was issued".into()))
}

pub fn str_member(doc: &Value, k: &str) -> Option<String> {
    doc.get(k).and_then(Value::as_str).map(str::to_string)
}

pub fn oauth_error(r: &Response) -> Option<String> {
    r.json().and_then(|d| str_member(&d, "error"))
}

/// The three parts of a JWS compact serialization (RFC 7515 §7.1), when the string has three.
pub fn jwt_parts(token: &str) -> Option<[&str; 3]> {
    token.split('.').collect::<Vec<_>>().try_into().ok()
}

/// One base64url part of a JWT, decoded (trailing `=` padding tolerated).
fn b64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// The decoded payload of a three-part token, whatever it holds.
pub fn jwt_payload(token: &str) -> Option<Vec<u8>> {
    let [_, payload, _] = jwt_parts(token)?;
    b64url(payload)
}

/// One part of a JWT (header or payload) as the JSON object it encodes.
pub fn jwt_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64url(part)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The claims of a JWT (a JSON header naming an `alg`, and a JSON payload), or `None` for an
/// opaque token. Nothing is verified: only what the token says of itself is read, and reading
/// the audience needs no trust.
pub fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let [header, payload, _] = jwt_parts(token)?;
    jwt_object(header)?.get("alg")?.as_str()?;
    jwt_object(payload)
}

/// Does `aud` (a string or an array, RFC 7519 §4.1.3) name the resource?
pub fn aud_names(aud: &Value, resource: &str) -> bool {
    match aud {
        Value::String(a) => a == resource,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(resource)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aud_from_a_jws_payload_only() {
        let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"ES256"}"#),
            enc(r#"{"aud":["https://a.test/mcp","x"]}"#)
        );
        let claims = jwt_claims(&jwt).expect("a JWT");
        assert!(aud_names(&claims["aud"], "https://a.test/mcp"));
        assert!(!aud_names(&claims["aud"], "https://a.test/"));
        assert!(aud_names(&Value::String("r".into()), "r"));
        // Opaque tokens, and three parts that are not a JWS, are not JWTs.
        assert!(jwt_claims("abc_DEF-123").is_none());
        assert!(jwt_claims("a.b.c").is_none());
        assert!(jwt_claims(&format!("{}.{}.s", enc("{}"), enc("{}"))).is_none());
    }
}
