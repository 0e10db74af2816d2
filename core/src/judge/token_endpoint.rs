//! Token endpoint response judgements (OAuth 2.1 §3.2.3, §3.2.4; RFC 6749 A.12, A.17, §5.1;
//! RFC 7523): the `tok-*` checks that read a saved token response.
//! `authconform::checks::token_endpoint` wraps each one.

use serde_json::Value;

use crate::response::Response;
use crate::verdict::{Findings, StepResult, Stop};

/// The saved token response, when it is a success (the judgements below need one).
pub fn ok_response(r: &Response) -> Result<&Response, Stop> {
    if r.status == 200 {
        Ok(r)
    } else {
        Err(Stop::Error(format!(
            "the token request answered {}, so there is no successful response to inspect",
            r.status
        )))
    }
}

/// `tok-response-shape`: access_token and token_type Bearer; expires_in a number; scope a string.
pub fn response_shape(f: &mut Findings, r: &Response) -> StepResult {
    let r = ok_response(r)?;
    let Some(doc) = r.json() else {
        return f.fail("the token response is not JSON");
    };
    match doc.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => f.pass("access_token is a non-empty string"),
        other => return f.fail(format!("access_token is {other:?}, not a non-empty string")),
    }
    match doc.get("token_type") {
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop") =>
        {
            f.pass(format!("token_type {t}"))
        }
        other => return f.fail(format!("token_type is {other:?}, expected \"Bearer\"")),
    }
    match doc.get("expires_in") {
        None => f.note("no expires_in (RECOMMENDED)"),
        Some(Value::Number(n)) if n.as_u64().is_some() => f.pass(format!("expires_in {n}")),
        Some(other) => {
            return f.fail(format!("expires_in is {other}, not a non-negative integer"));
        }
    }
    if let Some(s) = doc.get("scope")
        && !s.is_string()
    {
        return f.fail(format!("scope is {s}, not a space-separated string"));
    }
    Ok(())
}

/// `tok-jwt-assertion-aud-issuer`: a request the AS should accept. Any refusal (a 4xx other
/// than 429 that issues nothing) is a tolerated deviation: RFC 7523 §3 leaves the audience
/// strings to agreement; a refusal's shape other than 400/401 `invalid_client` is noted as
/// tok-error-format's. A 5xx, or a 2xx without a token, fails; a 429 cannot be judged.
pub fn accepted_or_warn(f: &mut Findings, r: &Response) -> StepResult {
    let doc = r.json();
    let err = doc
        .as_ref()
        .and_then(|d| d.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let issued = doc
        .as_ref()
        .is_some_and(|d| d.get("access_token").is_some());
    if r.status == 429 {
        return Err(Stop::Error(
            "the token endpoint rate-limited the request (429)".into(),
        ));
    }
    if r.status == 200 && issued {
        f.pass("the AS accepted the assertion");
        Ok(())
    } else if (400..500).contains(&r.status) && !issued {
        if !(matches!(r.status, 400 | 401) && err.as_deref() == Some("invalid_client")) {
            f.note(format!(
                "refused with {} error={err:?}, not 400/401 invalid_client: the shape of the error is tok-error-format's requirement, judged there",
                r.status
            ));
        }
        f.warn("the AS refused an assertion whose aud is its issuer (RFC 7523 §3 leaves the audience strings to agreement; the issuer identifies the AS, so it should be accepted)");
        Ok(())
    } else {
        f.fail(format!("the AS answered {} error={err:?}", r.status))
    }
}

/// `tok-token-charset`: tokens use only visible ASCII (RFC 6749 A.12, A.17).
pub fn token_charset(f: &mut Findings, r: &Response) -> StepResult {
    let r = ok_response(r)?;
    let doc = r.json().unwrap_or(Value::Null);
    for k in ["access_token", "refresh_token"] {
        if let Some(t) = doc.get(k).and_then(Value::as_str) {
            if let Some(c) = t.chars().find(|c| !(' '..='~').contains(c)) {
                return f.fail(format!(
                    "{k} contains {:?} (U+{:04X}), outside %x20-7E",
                    c, c as u32
                ));
            }
            f.pass(format!("{k} uses visible ASCII only"));
        }
    }
    Ok(())
}
