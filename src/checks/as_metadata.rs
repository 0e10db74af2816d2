//! Authorization server metadata: RFC 8414 §2 (members), §3 (retrieval and `issuer`
//! validation), OIDC Discovery §3–§4, MCP 2025-11-25 §4.3 and §11.3.

use authconform_core::judge;
use serde_json::Value;

use super::https_rule;
use crate::http::Request;
use crate::step::discovery::require_doc;
use crate::step::{CaseCtx, StepResult, Stop};

type Doc = serde_json::Map<String, Value>;

fn doc_of(ctx: &CaseCtx<'_>, on: &str) -> Result<Doc, Stop> {
    let d = ctx.discovery(on)?;
    require_doc(d, "authorization server metadata")
}

/// asm-issuer-match (RFC 8414 §3.3, OIDC Discovery §4.3): every document served for the issuer
/// states exactly that issuer.
pub fn issuer_match(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::issuer_match(f, &d))
}

/// asm-issuer-form (RFC 8414 §2): https, no query, no fragment.
pub fn issuer_form(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::issuer_form(f, &d))
}

/// asm-auth-methods (RFC 8414 §2): an omitted `token_endpoint_auth_methods_supported` means
/// `client_secret_basic` only; an AS that takes public clients (CIMD, or DCR for native apps)
/// must list `none` so clients know.
pub fn auth_methods(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::auth_methods(f, &d))
}

/// asm-endpoints-https (MCP 11.3, OAuth 2.1 §1.5): every endpoint and URI member is https.
pub fn endpoints_https(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::endpoints_https(f, &d))
}

/// asm-registration-endpoint (RFC 7591 §3): an advertised registration endpoint works: a
/// minimal registration gets a client (201/200) or an RFC 7591 error, never 404/405/5xx.
pub async fn registration_works(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let Some(Value::String(ep)) = doc.get("registration_endpoint") else {
        return Err(Stop::Skip(
            "no registration_endpoint advertised (DCR is optional: MAY)".into(),
        ));
    };
    let body = serde_json::json!({
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "authconform registration probe"
    });
    let req = Request::new("POST", ep.clone(), "minimal Dynamic Client Registration")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string());
    let r = ctx
        .send(req)
        .await
        .map_err(|e| Stop::Error(format!("no answer from {ep}: {e}")))?;
    let json = r.json();
    if let Some(Value::String(s)) = json.as_ref().and_then(|j| j.get("client_secret")) {
        ctx.env.http.redactor().add_secret(s);
    }
    match r.status {
        200 | 201 if json.as_ref().and_then(|j| j.get("client_id")).is_some() => {
            ctx.pass(format!(
                "registration answered {} with a client_id",
                r.status
            ));
            Ok(())
        }
        400 if json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .is_some_and(|e| e.starts_with("invalid_")) =>
        {
            ctx.pass("registration is alive: it refused this client with an RFC 7591 error");
            Ok(())
        }
        401 | 403 => {
            ctx.pass(format!(
                "registration answered {}: it requires an initial access token (RFC 7591 §3)",
                r.status
            ));
            Ok(())
        }
        s => ctx.fail(format!(
            "registration_endpoint {ep} is advertised but answered {s} to a minimal registration"
        )),
    }
}

/// asm-revocation-introspection (RFC 7009, RFC 7662): listed endpoints answer a POST (an
/// unknown token gets 200 or a client-authentication error), not 404/405/5xx.
pub async fn listed_endpoints_work(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let mut seen = 0;
    for key in ["revocation_endpoint", "introspection_endpoint"] {
        let Some(Value::String(ep)) = doc.get(key) else {
            continue;
        };
        seen += 1;
        let req = Request::new("POST", ep.clone(), format!("{key} with an unknown token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=authconform-unknown-token");
        let r = ctx
            .send(req)
            .await
            .map_err(|e| Stop::Error(format!("no answer from {ep}: {e}")))?;
        match r.status {
            200 | 400 | 401 => ctx.pass(format!("{key} answered {}", r.status)),
            s => return ctx.fail(format!("{key} {ep} is listed but answered {s}")),
        }
    }
    if seen == 0 {
        return Err(Stop::Skip(
            "neither revocation_endpoint nor introspection_endpoint is listed".into(),
        ));
    }
    Ok(())
}

/// asm-oidc-consistency (MCP 4.3): when both the RFC 8414 and the OIDC documents are served,
/// they agree on the issuer and the endpoints.
pub fn oidc_consistency(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::oidc_consistency(f, &d))
}

/// asm-fuzz: odd variants of the metadata request get 404/405/valid JSON, never a 5xx.
pub async fn fuzz(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    require_doc(&d, "authorization server metadata")?;
    let u = d.chosen().map(|a| a.url.clone()).unwrap_or_default();
    type Probe<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let probes: Vec<Probe<'_>> = vec![
        ("GET", format!("{u}x"), vec![]),
        ("GET", format!("{u}/"), vec![]),
        ("GET", format!("{u}/%2e%2e/%2e%2e/etc/passwd"), vec![]),
        ("GET", format!("{u}%00"), vec![]),
        ("GET", format!("{u}/{}", "a".repeat(8192)), vec![]),
        ("GET", u.clone(), vec![("Accept", "application/xml")]),
        ("HEAD", u.clone(), vec![]),
        (
            "POST",
            u.clone(),
            vec![("Content-Type", "application/json")],
        ),
    ];
    for (method, url, headers) in probes {
        let mut req = Request::new(method, url.clone(), "metadata request variant");
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let label = if url.len() > 100 {
            format!(
                "{}… ({} bytes)",
                url.chars().take(90).collect::<String>(),
                url.len()
            )
        } else {
            url.clone()
        };
        match ctx.send(req).await {
            Ok(r) if r.status >= 500 => {
                return ctx.fail(format!("{method} {label} answered {}", r.status));
            }
            Ok(r) if r.text().contains("root:x:0:0") => {
                return ctx.fail(format!("{method} {label} returned a system file"));
            }
            Ok(r) => ctx.pass(format!("{method} {label} -> {}", r.status)),
            Err(e) => return Err(Stop::Error(format!("{method} {label}: {e}"))),
        }
    }
    Ok(())
}

/// asm-jwks-uri (RFC 8414 §2, RFC 7517 §4.5, §5): the key set is https, 200 JSON, holds only
/// public keys, and every key has a distinct `kid`.
pub async fn jwks(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let Some(Value::String(u)) = doc.get("jwks_uri") else {
        return Err(Stop::Skip(
            "no jwks_uri advertised (required only if the AS signs JWTs; checked against issued tokens by the token cases)".into(),
        ));
    };
    let u = u.clone();
    https_rule(ctx, "jwks_uri", &u)?;
    let r = ctx
        .send(
            Request::new("GET", u.clone(), "the AS's JWK Set").header("Accept", "application/json"),
        )
        .await
        .map_err(|e| Stop::Error(format!("no answer from {u}: {e}")))?;
    if r.status != 200 {
        return ctx.fail(format!("jwks_uri answered {}", r.status));
    }
    let Some(keys) = r
        .json()
        .and_then(|j| j.get("keys").and_then(Value::as_array).cloned())
    else {
        return ctx.fail("jwks_uri did not return a JSON object with a `keys` array");
    };
    let mut kids = std::collections::BTreeSet::new();
    for (i, k) in keys.iter().enumerate() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            if k.get(private).is_some() {
                return ctx.fail(format!("key #{i} publishes the private member {private:?}"));
            }
        }
        if k.get("kty").and_then(Value::as_str) == Some("oct") || k.get("k").is_some() {
            return ctx.fail(format!(
                "key #{i} is a symmetric key (`oct`/`k`) published to everyone"
            ));
        }
        match k.get("kid").and_then(Value::as_str) {
            None => return ctx.fail(format!("key #{i} has no kid")),
            Some(kid) if !kids.insert(kid.to_string()) => {
                return ctx.fail(format!("kid {kid:?} is used by more than one key"));
            }
            Some(_) => {}
        }
    }
    if keys.is_empty() {
        return ctx.fail("the key set is empty");
    }
    ctx.pass(format!(
        "{} public key(s), each with a distinct kid",
        keys.len()
    ));
    Ok(())
}

/// as-auth-endpoint-get-fragment (OAuth 2.1 §3.1: "The endpoint URI MUST NOT include a
/// fragment component"): `authorization_endpoint` has no `#` in any document served.
pub fn auth_endpoint_no_fragment(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::as_metadata::auth_endpoint_no_fragment(f, &d))
}

/// A gate, not a judgement: the case goes on only when the AS metadata lists `args.value` in
/// the array `args.member` (`token_endpoint_auth_methods_supported`: `private_key_jwt`). A
/// requirement on a feature binds only an AS that offers it, so an absent feature skips the
/// case with the reason; an absent member means the RFC 8414 default, which `args.default`
/// (a list) gives.
pub fn offers(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &std::collections::BTreeMap<String, toml::Value>,
) -> StepResult {
    let member = super::arg_str(args, "member", "token_endpoint_auth_methods_supported");
    let value = super::arg_str(args, "value", "");
    let doc = doc_of(ctx, on)?;
    let listed: Vec<String> = match doc.get(member) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(Stop::Error(format!(
                "the AS metadata's {member} is not an array: cannot tell whether it offers {value}"
            )));
        }
        None => super::arg_strings(args, "default").unwrap_or_default(),
    };
    if listed.iter().any(|v| v == value) {
        ctx.note(format!("the AS metadata lists {value} in {member}"));
        Ok(())
    } else {
        Err(Stop::Skip(format!(
            "the AS does not offer {value}: its metadata's {member} is {listed:?}{}",
            if doc.contains_key(member) {
                ""
            } else {
                " (absent: the RFC 8414 default)"
            }
        )))
    }
}
