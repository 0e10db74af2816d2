//! Authorization server metadata judgements (RFC 8414 §2, §3; OIDC Discovery §3–§4; MCP
//! 2025-11-25 §4.3, §11.3; OAuth 2.1 §3.1): the `asm-*` checks that read a discovery or its
//! chosen document and send nothing. `authconform::checks::as_metadata` wraps each one.

use serde_json::Value;

use super::https_rule;
use crate::metadata::{Discovery, require_doc};
use crate::verdict::{Findings, StepResult, Stop};

/// A metadata document (a JSON object).
pub type Doc = serde_json::Map<String, Value>;

/// asm-issuer-match (RFC 8414 §3.3, OIDC Discovery §4.3): every document served for the issuer
/// states exactly that issuer.
pub fn issuer_match(f: &mut Findings, d: &Discovery) -> StepResult {
    require_doc(d, "authorization server metadata")?;
    for a in &d.attempts {
        let Some(doc) = a.doc() else { continue };
        match doc.get("issuer") {
            Some(Value::String(i)) if *i == d.identifier => {
                f.pass(format!("{} states issuer {i:?}", a.url));
            }
            Some(v) => {
                return f.fail(format!(
                    "{} states issuer {v}, but the document was fetched for {:?}; clients must reject it",
                    a.url, d.identifier
                ));
            }
            None => return f.fail(format!("{} has no issuer member", a.url)),
        }
    }
    Ok(())
}

/// asm-oidc-consistency (MCP 4.3): when both the RFC 8414 and the OIDC documents are served,
/// they agree on the endpoints. The issuer is not compared: each document's is judged against
/// the issuer it was fetched for by asm-issuer-match.
pub fn oidc_consistency(f: &mut Findings, d: &Discovery) -> StepResult {
    // The first document each family serves (OIDC may live only at the appended form).
    let first_doc = |fam: &str| {
        d.attempts
            .iter()
            .filter(|a| a.source.starts_with(fam))
            .find_map(|a| a.doc().map(|m| (a.url.clone(), m)))
    };
    let (oauth, oidc) = (first_doc("oauth"), first_doc("oidc"));
    if oauth.is_none() && oidc.is_none() {
        require_doc(d, "authorization server metadata")?;
    }
    let (Some((ua, a)), Some((ub, b))) = (oauth, oidc) else {
        return Err(Stop::Skip(
            "only one of the RFC 8414 and OIDC documents is served; nothing to compare".into(),
        ));
    };
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "code_challenge_methods_supported",
    ] {
        if a.get(key) != b.get(key) {
            return f.fail(format!(
                "{key} differs: {} at {ua}, {} at {ub}",
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    f.pass("the RFC 8414 and OIDC documents agree on endpoints and PKCE methods");
    Ok(())
}

/// as-auth-endpoint-get-fragment (OAuth 2.1 §3.1: "The endpoint URI MUST NOT include a
/// fragment component"): `authorization_endpoint` has no `#` in any document served.
pub fn auth_endpoint_no_fragment(f: &mut Findings, d: &Discovery) -> StepResult {
    require_doc(d, "authorization server metadata")?;
    let mut seen = 0;
    for a in &d.attempts {
        let Some(doc) = a.doc() else { continue };
        match doc.get("authorization_endpoint") {
            Some(Value::String(u)) => {
                seen += 1;
                if let Some((_, frag)) = u.split_once('#') {
                    return f.fail(format!(
                        "{} names authorization_endpoint {u:?}, with the fragment #{frag}",
                        a.url
                    ));
                }
                f.pass(format!(
                    "{} names authorization_endpoint {u:?}, without a fragment",
                    a.url
                ));
            }
            Some(v) => {
                return f.fail(format!(
                    "{} names authorization_endpoint {v}, not a URL string",
                    a.url
                ));
            }
            None => {}
        }
    }
    if seen == 0 {
        return Err(Stop::Skip(
            "no authorization_endpoint advertised (the AS offers no redirect-based grant)".into(),
        ));
    }
    Ok(())
}

/// asm-issuer-form (RFC 8414 §2): https, no query, no fragment.
pub fn issuer_form(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "authorization server metadata")?;
    let Some(Value::String(i)) = doc.get("issuer") else {
        return f.fail("no string issuer");
    };
    let i = i.clone();
    if url::Url::parse(&i).is_err() {
        return f.fail(format!("issuer {i:?} is not an absolute URL"));
    }
    if i.contains('?') || i.contains('#') {
        return f.fail(format!("issuer {i:?} has a query or fragment"));
    }
    f.pass(format!("issuer {i:?} has no query or fragment"));
    https_rule(f, "issuer", &i)
}

pub fn strings(doc: &Doc, key: &str) -> Option<Vec<String>> {
    doc.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

/// asm-auth-methods (RFC 8414 §2): an omitted `token_endpoint_auth_methods_supported` means
/// `client_secret_basic` only; an AS that takes public clients (CIMD, or DCR for native apps)
/// must list `none` so clients know.
pub fn auth_methods(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "authorization server metadata")?;
    let cimd = doc.get("client_id_metadata_document_supported") == Some(&Value::Bool(true));
    match strings(&doc, "token_endpoint_auth_methods_supported") {
        None => {
            if cimd {
                f.fail("token_endpoint_auth_methods_supported is omitted (so only client_secret_basic), yet the AS advertises CIMD, whose clients are public (`none`)")
            } else {
                f.fail("token_endpoint_auth_methods_supported is omitted: clients must assume client_secret_basic only, so public MCP clients look unsupported")
            }
        }
        Some(m) => {
            if cimd && !m.iter().any(|x| x == "none") && !m.iter().any(|x| x == "private_key_jwt") {
                return f.fail(format!(
                    "CIMD is advertised but the methods {m:?} include neither `none` nor `private_key_jwt`"
                ));
            }
            f.pass(format!("token_endpoint_auth_methods_supported = {m:?}"));
            Ok(())
        }
    }
}

/// asm-endpoints-https (MCP 11.3, OAuth 2.1 §1.5): every endpoint and URI member is https.
pub fn endpoints_https(f: &mut Findings, d: &Discovery) -> StepResult {
    let doc = require_doc(d, "authorization server metadata")?;
    let mut n = 0;
    for (k, v) in &doc {
        if !(k.ends_with("_endpoint") || k == "jwks_uri" || k == "issuer") {
            continue;
        }
        if let Value::String(u) = v {
            n += 1;
            https_rule(f, k, u)?;
        }
    }
    if n == 0 {
        return f.fail("the metadata names no endpoint at all");
    }
    Ok(())
}

/// The response types of the IANA "OAuth Authorization Endpoint Response Types" registry (RFC
/// 6749 §8.4 and OAuth 2.0 Multiple Response Type Encoding Practices), each as its set of
/// space-separated components: the order of the components carries no meaning (RFC 6749
/// §3.1.1), so `id_token code` is `code id_token`.
const REGISTERED_RESPONSE_TYPES: &[&[&str]] = &[
    &["code"],
    &["token"],
    &["id_token"],
    &["none"],
    &["code", "id_token"],
    &["code", "token"],
    &["id_token", "token"],
    &["code", "id_token", "token"],
];

/// Names that belong in `grant_types_supported`, not among response types.
const GRANT_TYPE_NAMES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "implicit",
    "client_credentials",
    "password",
];

/// asm-response-types-values (RFC 8414 §2, RFC 6749 §3.1.1): every entry of
/// `response_types_supported` is a registered response type and `code` is among them (MCP
/// clients use the authorization code flow only). A response type with a `token` component is
/// registered; that it returns an access token from the authorization endpoint (OAuth 2.1
/// §10.1) is asm-no-implicit-ropc's finding, not this case's.
pub fn response_types_values(f: &mut Findings, doc: &Doc) -> StepResult {
    let Some(v) = doc.get("response_types_supported") else {
        return Err(Stop::Skip(
            "no response_types_supported (its absence is asm-required-fields' finding)".into(),
        ));
    };
    let Some(values) = v.as_array() else {
        return f.fail(format!(
            "response_types_supported is not a JSON array of response types: {v}"
        ));
    };
    let mut bad = Vec::new();
    let mut has_code = false;
    for x in values {
        let Some(t) = x.as_str() else {
            bad.push(format!("{x} is not a string"));
            continue;
        };
        let mut parts: Vec<&str> = t.split(' ').collect();
        parts.sort_unstable();
        if GRANT_TYPE_NAMES.contains(&t) {
            bad.push(format!(
                "{t:?} is a grant type (grant_types_supported), not a response type"
            ));
        } else if !REGISTERED_RESPONSE_TYPES.contains(&parts.as_slice()) {
            bad.push(format!(
                "{t:?} is not a registered response type (components separated by single spaces: code, token, id_token, or none alone)"
            ));
        } else if parts == ["code"] {
            has_code = true;
        }
    }
    if !has_code {
        bad.push("\"code\" is not listed: MCP clients use the authorization code flow".into());
    }
    if !bad.is_empty() {
        return f.fail(format!("response_types_supported: {}", bad.join("; ")));
    }
    f.pass(format!(
        "response_types_supported lists response types only, code among them: {v}"
    ));
    Ok(())
}

#[cfg(test)]
mod response_types_tests {
    use super::*;
    use serde_json::json;

    fn judge(v: Value) -> Result<(), Stop> {
        let doc = json!({ "response_types_supported": v });
        response_types_values(&mut Findings::default(), doc.as_object().unwrap())
    }

    #[test]
    fn registered_types_pass_in_any_order() {
        assert!(judge(json!(["code", "id_token code", "none"])).is_ok());
    }

    #[test]
    fn grant_names_token_and_missing_code_fail() {
        assert!(matches!(
            judge(json!(["code", "authorization_code"])),
            Err(Stop::Fail(_))
        ));
        // `token` is registered: whether it may be offered is asm-no-implicit-ropc's.
        assert!(judge(json!(["code", "token"])).is_ok());
        assert!(matches!(judge(json!(["id_token"])), Err(Stop::Fail(_))));
        assert!(matches!(
            judge(json!(["code  id_token"])),
            Err(Stop::Fail(_))
        ));
        assert!(matches!(judge(json!("code")), Err(Stop::Fail(_))));
    }
}
