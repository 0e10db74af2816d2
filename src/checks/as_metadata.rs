//! Authorization server metadata: RFC 8414 §2 (members), §3 (retrieval and `issuer`
//! validation), OIDC Discovery §3–§4, MCP 2025-11-25 §4.3 and §11.3.

use authconform_core::judge;
use serde_json::Value;

use super::https_rule;
use crate::http::Request;
use crate::step::discovery::require_doc;
use crate::step::{CaseCtx, StepResult, Stop};

type Doc = serde_json::Map<String, Value>;

/// A judgement of the AS metadata discovery saved as `on`. Without a document there is nothing
/// to judge: the case is blocked by asm-available (see [`doc_of`]).
fn judged_doc(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    judge: fn(
        &mut authconform_core::verdict::Findings,
        &authconform_core::metadata::Discovery,
    ) -> StepResult,
) -> StepResult {
    doc_of(ctx, on)?;
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge(f, &d))
}

fn doc_of(ctx: &mut CaseCtx<'_>, on: &str) -> Result<Doc, Stop> {
    let d = ctx.discovery(on)?.clone();
    require_doc(&d, "authorization server metadata")
        .map_err(|e| crate::step::discovery::without_doc(ctx, e, "asm-available"))
}

/// asm-issuer-match (RFC 8414 §3.3, OIDC Discovery §4.3): every document served for the issuer
/// states exactly that issuer.
pub fn issuer_match(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::issuer_match)
}

/// asm-issuer-form (RFC 8414 §2): https, no query, no fragment.
pub fn issuer_form(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::issuer_form)
}

/// asm-auth-methods (RFC 8414 §2): an omitted `token_endpoint_auth_methods_supported` means
/// `client_secret_basic` only; an AS that takes public clients (CIMD, or DCR for native apps)
/// must list `none` so clients know.
pub fn auth_methods(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::auth_methods)
}

/// asm-endpoints-https (MCP 11.3, OAuth 2.1 §1.5): every endpoint and URI member is https.
pub fn endpoints_https(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::endpoints_https)
}

/// What the run's other cases saw at an endpoint the metadata names (run facts): the cases a
/// correct request worked for, and those whose correct request got 404, 405 or 5xx there.
fn endpoint_facts(ctx: &CaseCtx<'_>, member: &str) -> (Vec<String>, Vec<String>) {
    use crate::step::facts::FactKind;
    let (mut worked, mut dead) = (Vec::new(), Vec::new());
    for f in ctx.env.facts.all() {
        if let FactKind::Endpoint {
            member: m,
            status,
            worked: w,
            correct,
        } = f.kind
            && m == member
            && f.case != ctx.case_id
        {
            if w {
                worked.push(f.case);
            } else if correct && FactKind::dead_status(status) {
                dead.push(format!("{} ({status})", f.case));
            }
        }
    }
    (worked, dead)
}

/// The probe's verdict, with the run's facts as evidence: the cases a listed endpoint did its
/// job for, and those it did not. Only the probe judges: a 404 or a 500 to one kind of token is
/// the finding of the case that asked (rev-at, intro-inactive...), not proof that the endpoint
/// is dead.
fn with_facts(ctx: &mut CaseCtx<'_>, on: &str, member: &str, probe: StepResult) -> StepResult {
    if !matches!(doc_of(ctx, on)?.get(member), Some(Value::String(_))) {
        return probe;
    }
    let (worked, dead) = endpoint_facts(ctx, member);
    if !worked.is_empty() {
        ctx.note(format!(
            "{member} did its job for the correct requests of {}",
            super::advertised::named(&worked)
        ));
    }
    if !dead.is_empty() {
        ctx.note(format!(
            "{member} answered correct requests of {} with a missing-or-broken status: judged by those cases",
            super::advertised::named(&dead)
        ));
    }
    probe
}

/// asm-registration-endpoint (RFC 7591 §3): an advertised registration endpoint works: a
/// minimal registration gets a client (201/200) or an RFC 7591 error, never 404/405/5xx; the
/// run's registrations (DCR cases, fresh clients) count too (it runs after the others).
pub async fn registration_works(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = registration_probe(ctx, on).await;
    with_facts(ctx, on, "registration_endpoint", r)
}

async fn registration_probe(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
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
        // Any RFC 7591 §3.2.2 error (invalid_*, unapproved_software_statement, ...): the
        // endpoint took the POST and decided; the error's shape is the dcr-* cases'.
        400 if json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty()) =>
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
/// unknown token gets 200 or a client-authentication error), not 404/405/5xx; what the run's
/// revocation and introspection cases saw there counts too (it runs after the others).
pub async fn listed_endpoints_work(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = listed_probe(ctx, on).await;
    let r = with_facts(ctx, on, "revocation_endpoint", r);
    with_facts(ctx, on, "introspection_endpoint", r)
}

async fn listed_probe(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
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

/// asm-protected-resources (RFC 9728 §4): `protected_resources`, when present, is an array of
/// resource identifiers. Leaving the MCP server out is allowed ("Authorization servers MAY
/// choose not to advertise some supported protected resources"): a warning, never a failure.
pub fn protected_resources(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let Some(v) = doc.get("protected_resources") else {
        return Err(Stop::Skip(
            "no protected_resources (OPTIONAL, RFC 9728 §4): nothing to compare".into(),
        ));
    };
    let Some(list) = v
        .as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>())
    else {
        return ctx.fail(format!(
            "protected_resources is not a JSON array of resource identifiers: {v}"
        ));
    };
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    if list.iter().any(|r| *r == resource) {
        ctx.pass(format!(
            "protected_resources lists the MCP server {resource}"
        ));
    } else {
        ctx.warn(format!(
            "protected_resources {list:?} leaves out the MCP server {resource}: allowed (RFC 9728 §4), but a client that cross-checks the lists (§7.6) would not pair them"
        ));
    }
    Ok(())
}

/// asm-oidc-consistency (MCP 4.3): when both the RFC 8414 and the OIDC documents are served,
/// they agree on the endpoints.
pub fn oidc_consistency(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::oidc_consistency)
}

/// asm-fuzz: odd variants of the metadata request get 404/405/valid JSON, never a 5xx.
pub async fn fuzz(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    require_doc(&d, "authorization server metadata")
        .map_err(|e| crate::step::discovery::without_doc(ctx, e, "asm-available"))?;
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

/// asm-jwks-uri (RFC 8414 §2, OIDC Discovery §3, RFC 7517 §4.5): the key set is https, 200
/// JSON, holds only public keys. A key without `kid` (OPTIONAL) or a `kid` shared by two keys
/// (distinct kids are a SHOULD, RFC 7517 §4.5) is a warning, not a failure of this MUST.
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
    let mut kid_findings = Vec::new();
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
            None => kid_findings.push(format!(
                "key #{i} has no kid (OPTIONAL, RFC 7517 §4.5; a verifier must then try keys to find the signer)"
            )),
            Some(kid) if !kids.insert(kid.to_string()) => kid_findings.push(format!(
                "kid {kid:?} is used by more than one key (RFC 7517 §4.5: different keys SHOULD use distinct kids)"
            )),
            Some(_) => {}
        }
    }
    if keys.is_empty() {
        return ctx.fail("the key set is empty");
    }
    ctx.pass(format!(
        "{} public key(s), no private or symmetric key material",
        keys.len()
    ));
    for w in kid_findings {
        ctx.warn(w);
    }
    Ok(())
}

/// as-auth-endpoint-get-fragment (OAuth 2.1 §3.1: "The endpoint URI MUST NOT include a
/// fragment component"): `authorization_endpoint` has no `#` in any document served.
pub fn auth_endpoint_no_fragment(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    judged_doc(ctx, on, judge::as_metadata::auth_endpoint_no_fragment)
}

/// asm-response-types-values (RFC 8414 §2, RFC 6749 §3.1.1): `response_types_supported` holds
/// registered response types only, `code` among them.
pub fn response_types_values(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let doc = doc_of(ctx, on)?;
    ctx.judged(|f| judge::as_metadata::response_types_values(f, &doc))
}

/// The verdict of asm-iss-flag: the metadata flag against whether the approved (`success`) and
/// the denied (`error`, when the AS redirected it) authorization responses carried `iss`. `Ok`
/// is what held; `Err` what broke it.
fn iss_flag_verdict(
    flag: Option<&Value>,
    success: bool,
    error: Option<bool>,
) -> Result<String, String> {
    let seen = |b: bool| if b { "carries iss" } else { "has no iss" };
    let error_said = match error {
        Some(e) => format!("the error response {}", seen(e)),
        None => "no error response came back to the client".into(),
    };
    let advertised = match flag {
        Some(Value::Bool(b)) => *b,
        None => false,
        Some(v) => {
            return Err(format!(
                "authorization_response_iss_parameter_supported is {v}, not a JSON boolean: a client cannot tell whether to expect iss"
            ));
        }
    };
    let flag_said = match flag {
        Some(_) => format!("authorization_response_iss_parameter_supported is {advertised}"),
        None => "authorization_response_iss_parameter_supported is absent (false, RFC 9207 §3)"
            .to_string(),
    };
    let both = format!("the success response {}, {error_said}", seen(success));
    if advertised {
        if !success || error == Some(false) {
            return Err(format!(
                "{flag_said}, but {both}: RFC 9207 §2 puts iss in every authorization response, errors included, and a client that trusts the flag rejects the response"
            ));
        }
    } else if success || error == Some(true) {
        return Err(format!(
            "{flag_said}, but {both}: RFC 9207 §2.3 requires a server that sends iss to set the flag to true, or clients cannot rely on it against mix-up"
        ));
    }
    Ok(format!("{flag_said}, and {both}"))
}

/// asm-iss-flag (RFC 9207 §2, §2.3, §3): the metadata says `iss` comes back exactly when it
/// does. `on` is the metadata; `args.success` the approved authorization (default `auth`) and
/// `args.error` one the user denied (default `denied`).
pub fn iss_flag(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &std::collections::BTreeMap<String, toml::Value>,
) -> StepResult {
    let doc = doc_of(ctx, on)?;
    let success = super::arg_str(args, "success", "auth");
    let error = super::arg_str(args, "error", "denied");
    let ok = crate::step::authorize::authorization(ctx, success)?.clone();
    let Some(cb) = ok.callback.as_ref().filter(|c| c.get("code").is_some()) else {
        return Err(Stop::Error(format!(
            "the approved authorization did not come back with a code ({})",
            ok.describe()
        )));
    };
    let success_iss = cb.get("iss").is_some();
    let denied = crate::step::authorize::authorization(ctx, error)
        .ok()
        .cloned();
    let error_iss = match denied.as_ref().and_then(|a| a.callback.clone()) {
        Some(c) if c.get("error").is_some() => Some(c.get("iss").is_some()),
        _ => {
            ctx.note(format!(
                "the denied authorization did not redirect back with an error ({}): only the success response is compared",
                denied
                    .as_ref()
                    .map(|a| a.describe())
                    .unwrap_or_else(|| "not made".into())
            ));
            None
        }
    };
    match iss_flag_verdict(
        doc.get("authorization_response_iss_parameter_supported"),
        success_iss,
        error_iss,
    ) {
        Ok(m) => {
            ctx.pass(m);
            Ok(())
        }
        Err(m) => ctx.fail(m),
    }
}

/// A JWK Set's keys by identity: the `kid`, or for a key without one its key material.
fn jwks_keys(set: &Value) -> Vec<(String, Value)> {
    set.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    let id = k
                        .get("kid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| key_material(k).to_string());
                    (id, key_material(k))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The members that are the key itself (RFC 7518 §6): what "the same key" means.
fn key_material(k: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for f in ["kty", "crv", "x", "y", "n", "e", "k"] {
        if let Some(v) = k.get(f) {
            m.insert(f.into(), v.clone());
        }
    }
    Value::Object(m)
}

async fn fetch_jwks(ctx: &mut CaseCtx<'_>, uri: &str, note: &str) -> Result<Value, Stop> {
    let r = ctx
        .send(Request::new("GET", uri.to_string(), note))
        .await
        .map_err(|e| Stop::Error(format!("jwks_uri {uri}: {e}")))?;
    match r.json() {
        Some(v) if r.status == 200 && v.get("keys").is_some_and(Value::is_array) => Ok(v),
        _ => Err(Stop::Error(format!(
            "jwks_uri {uri} answered {} without a JWK Set (asm-jwks-uri judges that)",
            r.status
        ))),
    }
}

/// Asks the operator to rotate the signing keys: the profile's command (no shell, bounded) or
/// a POST to its hook URL.
async fn operator_rotate_keys(ctx: &mut CaseCtx<'_>) -> Result<(), Stop> {
    let op = ctx.env.profile.operator.clone();
    let timeout = std::time::Duration::from_secs(op.timeout_secs.unwrap_or(60).clamp(1, 600));
    if let Some(url) = op.rotate_keys_url {
        let r = ctx
            .send(Request::new(
                "POST",
                url.clone(),
                "the operator's key-rotation hook ([operator] rotate_keys_url)",
            ))
            .await
            .map_err(|e| Stop::Error(format!("the key-rotation hook {url}: {e}")))?;
        if !(200..300).contains(&r.status) {
            return Err(Stop::Error(format!(
                "the key-rotation hook answered {}: the keys were not rotated",
                r.status
            )));
        }
        ctx.note(format!(
            "the operator's hook rotated the keys ({})",
            r.status
        ));
        return Ok(());
    }
    let argv = op.rotate_keys;
    if argv.is_empty() {
        return Err(Stop::Skip(
            "no [operator] rotate_keys command or rotate_keys_url: the AS's signing keys cannot be rotated on the suite's request".into(),
        ));
    }
    let shown = argv.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        super::grant_revocation::run_bounded(&argv, &[], timeout)
    })
    .await
    .map_err(|e| Stop::Error(format!("the key-rotation command: {e}")))?;
    match out {
        Ok((0, text)) => {
            ctx.note(format!("the key-rotation command `{shown}` ran: {text}"));
            Ok(())
        }
        Ok((code, text)) => Err(Stop::Error(format!(
            "the key-rotation command `{shown}` exited {code}: {text}"
        ))),
        Err(e) => Err(Stop::Error(format!(
            "the key-rotation command `{shown}`: {e}"
        ))),
    }
}

/// The `kid` in a JWT's header.
fn jwt_kid(token: &str) -> Option<String> {
    let [h, _, _] = super::tokens::jwt_parts(token)?;
    super::tokens::jwt_object(h)?
        .get("kid")?
        .as_str()
        .map(str::to_string)
}

/// asm-jwks-rotation (OIDC Core 1.0 §10.1.1; RFC 7517 §4.5): around an operator's key rotation,
/// the JWK Set gains the new key, keeps the one that signed a token still valid (and the MCP
/// server keeps accepting that token), and never gives a `kid` new key material. `on` is a token
/// response obtained before the rotation. The catalogue grades this INFO (derived): what breaks
/// it is a warning, never a gating failure.
pub async fn jwks_rotation(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let op = &ctx.env.profile.operator;
    if op.rotate_keys.is_empty() && op.rotate_keys_url.is_none() {
        return Err(Stop::Skip(
            "no [operator] rotate_keys command or rotate_keys_url: the AS's signing keys cannot be rotated on the suite's request".into(),
        ));
    }
    let uri = crate::step::discovery::as_endpoint(ctx, "jwks_uri").await?;
    let t1 = super::tokens::saved_access_token(ctx, on)?;
    let t1_kid = jwt_kid(&t1);
    let before = jwks_keys(&fetch_jwks(ctx, &uri, "the JWK Set before the rotation").await?);
    operator_rotate_keys(ctx).await?;
    // The old token first: it lives only as long as the AS lets it.
    let resource = ctx.env.target.resource.clone();
    let mut old_at_rs = None;
    if let Some(res) = &resource {
        let still_valid = super::tokens::jwt_claims(&t1)
            .and_then(|c| c.get("exp").and_then(Value::as_i64))
            .is_none_or(|exp| exp > super::audience::now());
        let r = crate::step::request::mcp_with_token(
            ctx,
            res,
            &t1,
            "the access token issued before the rotation",
        )
        .await?;
        old_at_rs = Some((r.status, still_valid));
    }
    let after = jwks_keys(&fetch_jwks(ctx, &uri, "the JWK Set after the rotation").await?);
    let scope = ctx.env.profile.authorization.scope.clone();
    let t2_kid = match super::tokens::scoped_grant(ctx, scope.as_deref(), &[]).await {
        Ok((_, Some(r))) => r
            .json()
            .and_then(|d| {
                d.get("access_token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .and_then(|t| jwt_kid(&t)),
        _ => None,
    };
    let ids =
        |set: &[(String, Value)]| -> Vec<String> { set.iter().map(|(i, _)| i.clone()).collect() };
    ctx.note(format!(
        "kids before: {:?}; after: {:?}; the old token's kid: {t1_kid:?}; a new token's kid: {t2_kid:?}",
        ids(&before),
        ids(&after)
    ));
    let added: Vec<&String> = after
        .iter()
        .filter(|(i, _)| !before.iter().any(|(j, _)| j == i))
        .map(|(i, _)| i)
        .collect();
    let removed: Vec<&String> = before
        .iter()
        .filter(|(i, _)| !after.iter().any(|(j, _)| j == i))
        .map(|(i, _)| i)
        .collect();
    let replaced: Vec<&String> = before
        .iter()
        .filter(|(i, m)| after.iter().any(|(j, n)| j == i && n != m))
        .map(|(i, _)| i)
        .collect();
    let new_signer = t2_kid.is_some() && t2_kid != t1_kid;
    if added.is_empty() && replaced.is_empty() && !new_signer {
        return Err(Stop::Error(
            "the rotation changed nothing observable (the same keys are published and new tokens carry the same kid): did the operator's action rotate the signing keys?".into(),
        ));
    }
    if !replaced.is_empty() {
        ctx.warn(format!(
            "the key under kid {replaced:?} was replaced by different key material: a verifier that cached the kid checks new tokens with the old key (RFC 7517 §4.5: a kid names one key)"
        ));
    }
    match (&t1_kid, removed.is_empty()) {
        (Some(k), _) if removed.contains(&k) => ctx.warn(format!(
            "the key {k} that signed a token still valid was removed at once: tokens it signed can no longer be verified (OpenID Connect Core 1.0 §10.1.1: keep recently decommissioned keys for a while)"
        )),
        (_, false) => ctx.note(format!(
            "keys {removed:?} left the set; no token the suite holds was signed with them"
        )),
        _ => ctx.pass("every key published before the rotation is still published"),
    }
    if !added.is_empty() {
        ctx.pass(format!("the new key is published (kid {added:?})"));
    } else if new_signer {
        ctx.pass(format!(
            "new tokens are signed under kid {t2_kid:?}, already published before the rotation"
        ));
    }
    match old_at_rs {
        Some((s, _)) if (200..300).contains(&s) => {
            ctx.pass(format!(
                "the MCP server still accepts the token issued before the rotation ({s})"
            ));
        }
        Some((s, true)) if (400..500).contains(&s) => ctx.warn(format!(
            "the MCP server refused ({s}) a token issued before the rotation that had not expired"
        )),
        Some((s, _)) => ctx.note(format!(
            "the token issued before the rotation got {s} at the MCP server (it may have expired meanwhile)"
        )),
        None => ctx.note("no MCP endpoint: the old token was not presented again"),
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iss_flag_both_directions() {
        let t = json!(true);
        let f = json!(false);
        assert!(iss_flag_verdict(Some(&t), true, Some(true)).is_ok());
        assert!(iss_flag_verdict(Some(&t), true, None).is_ok());
        assert!(iss_flag_verdict(None, false, Some(false)).is_ok());
        // Flag without iss, on success or on error.
        assert!(iss_flag_verdict(Some(&t), false, Some(true)).is_err());
        assert!(iss_flag_verdict(Some(&t), true, Some(false)).is_err());
        // iss without the flag.
        assert!(iss_flag_verdict(None, true, Some(true)).is_err());
        assert!(iss_flag_verdict(Some(&f), false, Some(true)).is_err());
        assert!(iss_flag_verdict(Some(&json!("true")), true, Some(true)).is_err());
    }

    #[test]
    fn key_identity_and_material() {
        let set = json!({ "keys": [
            { "kid": "a", "kty": "EC", "crv": "P-256", "x": "1", "y": "2", "use": "sig" },
            { "kty": "EC", "crv": "P-256", "x": "3", "y": "4" },
        ] });
        let keys = jwks_keys(&set);
        assert_eq!(keys[0].0, "a");
        assert_eq!(
            keys[0].1,
            json!({ "kty": "EC", "crv": "P-256", "x": "1", "y": "2" })
        );
        assert_ne!(keys[1].0, "");
    }
}
