//! Dynamic Client Registration (RFC 7591; MCP 2025-11-25 §5.3): what a registration response
//! must say, what must be refused, and what the consent page does with registered metadata.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::http::{Request, Response};
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{authorize, discovery};

fn response(ctx: &CaseCtx<'_>, on: &str) -> Result<Response, Stop> {
    match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => Ok(response.clone()),
        _ => Err(Stop::Error(format!("`{on}` holds no response"))),
    }
}

fn registered(r: &Response) -> Option<serde_json::Map<String, Value>> {
    match r.json() {
        Some(Value::Object(m)) if (200..300).contains(&r.status) && m.contains_key("client_id") => {
            Some(m)
        }
        _ => None,
    }
}

/// `dcr-secret-expiry`: a returned `client_secret` comes with `client_secret_expires_at`.
pub fn secret_expiry(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = response(ctx, on)?;
    let Some(m) = registered(&r) else {
        return Err(Stop::Error(format!(
            "the registration answered {} without a client: nothing to inspect",
            r.status
        )));
    };
    if !m.contains_key("client_secret") {
        return Err(Stop::Skip(
            "no client_secret was issued for the confidential client".into(),
        ));
    }
    match m.get("client_secret_expires_at") {
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            ctx.pass(format!("client_secret_expires_at = {n} (0 = never)"));
            Ok(())
        }
        Some(v) => ctx.fail(format!("client_secret_expires_at is {v}, not a number")),
        None => ctx.fail("a client_secret was issued without client_secret_expires_at"),
    }
}

/// `dcr-grant-response-consistency`: an inconsistent pair is refused or corrected.
pub fn consistent(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = response(ctx, on)?;
    let Some(m) = registered(&r) else {
        if (400..500).contains(&r.status) {
            ctx.pass(format!(
                "the inconsistent registration was refused ({})",
                r.status
            ));
            return Ok(());
        }
        return ctx.fail(format!("the registration answered {}", r.status));
    };
    let has = |k: &str, v: &str| {
        m.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == v))
    };
    if has("response_types", "token") && !has("grant_types", "implicit") {
        return ctx.fail(
            "the client was stored with response_types [token] but without the implicit grant: inconsistent metadata",
        );
    }
    ctx.pass("the stored metadata is consistent (corrected by the AS)");
    Ok(())
}

/// `dcr-invalid-metadata` (RFC 7591 §2, §3.2.1, §3.2.2): malformed metadata is refused with a
/// 400 carrying one of the codes the step names (`args.codes`, templates expanded), or
/// replaced: "The authorization server MAY reject any requested client metadata values by
/// replacing requested values with suitable default values ... or by returning an error
/// response" (§2). A registration that succeeds must not have kept the malformed value: the
/// response returns "all registered metadata" (§3.2.1, MUST), so it is judged there.
pub fn invalid_handled(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let r = response(ctx, on)?;
    let Some(m) = registered(&r) else {
        let codes: Vec<String> = super::arg_strings(args, "codes")
            .unwrap_or_default()
            .iter()
            .filter_map(|c| ctx.expand(c).ok())
            .collect();
        let e = super::tokens::oauth_error(&r);
        return match e {
            Some(e) if r.status == 400 && (codes.is_empty() || codes.contains(&e)) => {
                ctx.pass(format!("the malformed metadata was refused: 400 error={e}"));
                Ok(())
            }
            e => ctx.fail(format!(
                "the malformed metadata was answered with {} error={e:?}; RFC 7591 §3.2.2: a refusal is 400 with one of {codes:?}",
                r.status
            )),
        };
    };
    // What the response says was registered: each member of the right type, and never both
    // jwks and jwks_uri ("MUST NOT both be present in the same request or response", §2).
    let strings = |k: &str| {
        m.get(k)
            .is_none_or(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    };
    let bad = if !strings("redirect_uris") {
        Some("redirect_uris is not an array of strings")
    } else if !strings("grant_types") {
        Some("grant_types is not an array of strings")
    } else if m.get("client_name").is_some_and(|v| !v.is_string()) {
        Some("client_name is not a string")
    } else if m.contains_key("jwks") && m.contains_key("jwks_uri") {
        Some("both jwks and jwks_uri are registered")
    } else {
        None
    };
    match bad {
        Some(b) => ctx.fail(format!(
            "the AS registered the malformed metadata ({}): {b}",
            r.status
        )),
        None => {
            ctx.pass(format!(
                "the AS registered the client ({}) with the malformed value replaced or dropped (RFC 7591 §2: MAY replace with suitable defaults)",
                r.status
            ));
            Ok(())
        }
    }
}

/// `dcr-no-https-client-ids`: a registered client_id must not look like a CIMD URL.
pub fn no_https_client_id(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = response(ctx, on)?;
    let Some(m) = registered(&r) else {
        return Err(Stop::Error(format!(
            "the registration answered {}",
            r.status
        )));
    };
    let id = m.get("client_id").and_then(Value::as_str).unwrap_or("");
    if id.to_ascii_lowercase().starts_with("https://") {
        ctx.fail(format!(
            "the registered client_id {id:?} looks like a Client ID Metadata Document URL"
        ))
    } else {
        ctx.pass("the registered client_id is not an https URL");
        Ok(())
    }
}

/// `dcr-scope-restriction`: a registration asking for a scope gets the effective scope back.
pub fn scope_shown(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = response(ctx, on)?;
    let Some(m) = registered(&r) else {
        if (400..500).contains(&r.status) {
            ctx.pass(format!("the scope request was refused ({})", r.status));
            return Ok(());
        }
        return ctx.fail(format!("the registration answered {}", r.status));
    };
    match m.get("scope") {
        Some(Value::String(s)) => {
            ctx.pass(format!("the response shows the effective scope {s:?}"));
            Ok(())
        }
        Some(v) => ctx.fail(format!("scope is {v}, not a string")),
        None => ctx
            .fail("the client asked for a scope and the response does not say which scope it got"),
    }
}

/// `dcr-https-only`: registration is not served over plain http.
pub async fn https_only(ctx: &mut CaseCtx<'_>) -> StepResult {
    let endpoint = discovery::as_endpoint(ctx, "registration_endpoint").await?;
    if !endpoint.starts_with("https://") {
        return super::https_rule(ctx, "the registration endpoint", &endpoint);
    }
    let plain = format!("http://{}", &endpoint["https://".len()..]);
    let req = Request::new("POST", plain.clone(), "registration over plain http")
        .header("Content-Type", "application/json")
        .body(
            json!({ "redirect_uris": ["https://client.test/cb"], "token_endpoint_auth_method": "none",
                    "client_name": "authconform dcr-https-only" })
            .to_string(),
        );
    match ctx.send(req).await {
        Ok(r) if registered(&r).is_some() => {
            ctx.fail(format!("{plain} registered a client over plain http"))
        }
        Ok(r) => {
            ctx.pass(format!(
                "{plain} answered {} and registered nothing",
                r.status
            ));
            Ok(())
        }
        Err(e) => {
            ctx.pass(format!("nothing is served over plain http ({e})"));
            Ok(())
        }
    }
}

/// `dcr-size-fuzz`: oversized and absurd registrations are refused quickly and stored nowhere.
pub async fn fuzz(ctx: &mut CaseCtx<'_>, _args: &BTreeMap<String, toml::Value>) -> StepResult {
    let endpoint = discovery::as_endpoint(ctx, "registration_endpoint").await?;
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("https://client.test/cb{i}"))
        .collect();
    let deep = format!(
        "{{\"redirect_uris\":[\"https://client.test/cb\"],\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    // Registering the deep nesting (in an unknown member, which an AS may ignore: RFC 7591 §2)
    // is fine; storing the other two is not.
    let bodies = vec![
        super::Hostile {
            what: "1 MB client_name",
            body: json!({ "redirect_uris": ["https://client.test/cb"], "client_name": "A".repeat(1 << 20) })
                .to_string()
                .into_bytes(),
            acceptance_fails: true,
        },
        super::Hostile {
            what: "10,000 redirect_uris",
            body: json!({ "redirect_uris": many }).to_string().into_bytes(),
            acceptance_fails: true,
        },
        super::Hostile {
            what: "10,000-deep nesting in an unknown member",
            body: deep.into_bytes(),
            acceptance_fails: false,
        },
    ];
    let worst = super::hostile_bodies(ctx, &endpoint, "application/json", bodies, |r| {
        registered(r).is_some()
    })
    .await;
    match worst {
        Some(w) => ctx.fail(format!(
            "the registration endpoint mishandled an absurd request: {w}"
        )),
        None => Ok(()),
    }
}

/// `dcr-display-escaping`: registered markup never reaches a page unescaped.
pub fn escaped(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = authorize::authorization(ctx, on)?.clone();
    for p in super::authorization_code::interaction_pages(&a)? {
        let low = p.body.to_ascii_lowercase();
        if low.contains("<script>alert('authconform')") {
            return ctx.fail(format!(
                "the {} page at {} carries the registered client_name as live markup (<script>)",
                p.kind, p.url
            ));
        }
        if low.contains("href=\"javascript:") || low.contains("src=\"javascript:") {
            return ctx.fail(format!(
                "the {} page at {} links a javascript: URI from the registration",
                p.kind, p.url
            ));
        }
    }
    ctx.pass("the registered markup was escaped (or not shown) on the login and consent pages");
    Ok(())
}

/// `consent-shows-client-metadata`: the consent page shows the client's logo, policy and ToS.
pub fn shows_metadata(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = authorize::authorization(ctx, on)?.clone();
    let Some(p) = a.journey.pages.iter().find(|p| p.kind == "consent") else {
        return Err(Stop::Skip("the AS showed no consent page".into()));
    };
    let missing: Vec<&str> = [
        ("logo_uri", "https://client.test/logo.png"),
        ("policy_uri", "https://client.test/policy"),
        ("tos_uri", "https://client.test/tos"),
    ]
    .into_iter()
    .filter(|(_, u)| !p.body.contains(u))
    .map(|(k, _)| k)
    .collect();
    if missing.is_empty() {
        ctx.pass("the consent page shows the logo, the policy and the terms of service");
        Ok(())
    } else {
        ctx.fail(format!(
            "the consent page does not show {}",
            missing.join(", ")
        ))
    }
}

/// `dcr-secret-entropy`: client secrets are unpredictable.
pub async fn secret_entropy(
    ctx: &mut CaseCtx<'_>,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let n = super::arg_samples(args, 20, 50);
    let endpoint = discovery::as_endpoint(ctx, "registration_endpoint").await?;
    let mut secrets = Vec::new();
    for i in 0..n {
        let req = Request::new("POST", endpoint.clone(), format!("confidential client {i}"))
            .header("Content-Type", "application/json")
            .body(
                json!({ "redirect_uris": ["https://client.test/cb"],
                        "token_endpoint_auth_method": "client_secret_basic",
                        "grant_types": ["authorization_code"], "response_types": ["code"],
                        "client_name": "authconform dcr-secret-entropy" })
                .to_string(),
            );
        let r = ctx
            .send(req)
            .await
            .map_err(|e| Stop::Error(format!("registration: {e}")))?;
        match registered(&r).and_then(|m| {
            m.get("client_secret")
                .and_then(Value::as_str)
                .map(str::to_string)
        }) {
            Some(s) => {
                ctx.env.http.redactor().add_secret(&s);
                secrets.push(s);
            }
            None => {
                return Err(Stop::Skip(format!(
                    "registration {i} answered {} without a client_secret",
                    r.status
                )));
            }
        }
    }
    super::authorization_code::unpredictable(ctx, "client secrets", &secrets)
}
