//! Authorization code handling (O21 4.1.2, 4.1.3, 7.5.3, 7.10, 7.12.2; RFC 9207; RFC 9700):
//! what the callback carries, what the login and consent pages send, and how codes behave
//! when redeemed twice, late, or by the wrong party.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::case::model::TokenStep;
use crate::login::{Outcome, PageSeen};
use crate::step::authorize::Authorization;
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{authorize, expect, token};

fn auth(ctx: &CaseCtx<'_>, on: &str) -> Result<Authorization, Stop> {
    authorize::authorization(ctx, on).cloned()
}

fn callback(a: &Authorization) -> Result<authorize::Callback, Stop> {
    a.callback.clone().ok_or_else(|| {
        Stop::Error(format!(
            "no authorization response to inspect: the AS {}",
            a.describe()
        ))
    })
}

/// `code-state-echo`: the state comes back exactly (or the AS refuses a state it will not keep).
pub fn state_echo(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let sent = a.param("state").unwrap_or("").to_string();
    let cb = callback(&a)?;
    if cb.get("code").is_none() && cb.get("error") == Some("invalid_request") {
        ctx.pass(format!(
            "the AS refused the {}-byte state with invalid_request (allowed)",
            sent.len()
        ));
        return Ok(());
    }
    match cb.get("state") {
        Some(s) if s == sent => {
            ctx.pass(format!("the {}-byte state came back byte for byte", sent.len()));
            Ok(())
        }
        Some(s) => ctx.fail(format!(
            "the state came back changed: sent {} bytes, got {} bytes (first difference at byte {})",
            sent.len(),
            s.len(),
            sent.bytes()
                .zip(s.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(sent.len().min(s.len()))
        )),
        None => ctx.fail("the callback carries no state"),
    }
}

/// `code-state-on-error` / `code-access-denied`: an error redirect carries the original state.
pub fn state_on_error(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let sent = a.param("state").unwrap_or("").to_string();
    let cb = callback(&a)?;
    if cb.get("error").is_none() {
        return Err(Stop::Error(format!(
            "no error redirect to inspect: the AS {}",
            a.describe()
        )));
    }
    match cb.get("state") {
        Some(s) if s == sent => {
            ctx.pass("the error redirect carries the original state");
            Ok(())
        }
        Some(_) => ctx.fail("the error redirect carries a different state"),
        None => ctx.fail("the error redirect carries no state"),
    }
}

/// `code-state-optional`: without `state` the flow works (the `authorize` step judges that);
/// a state the client never sent is reported as a tolerated deviation: O21 4.1.2 defines the
/// response's `state` only for a request that carried one, and no keyword forbids the rest.
pub fn state_absent(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let cb = callback(&a)?;
    match cb.get("state") {
        None => {
            ctx.pass("no state sent, none returned");
            Ok(())
        }
        Some(s) => {
            ctx.warn(format!(
                "no state was sent, but the callback has state={s:?} (O21 4.1.2 defines the response's state as \"the exact value received from the client\"; no keyword forbids inventing one)"
            ));
            Ok(())
        }
    }
}

/// What an authorization came to, as a comparable class: `code`, `error=X` or `page N`.
fn outcome_class(a: &Authorization) -> String {
    match (&a.journey.outcome, a.callback.as_ref()) {
        (Outcome::Redirected { .. }, Some(cb)) => match (cb.get("code"), cb.get("error")) {
            (Some(_), None) => "a code".into(),
            (_, Some(e)) => format!("error={e}"),
            _ => "a redirect without code or error".into(),
        },
        (Outcome::Page { status, .. }, _) => format!("a page (status {status})"),
        (Outcome::Redirected { .. }, None) => "a redirect".into(),
    }
}

/// `code-empty-param` (O21 3.1): a parameter sent empty is treated as omitted, so the two
/// requests saved as `omitted` and `empty` must end the same way (and not in a server error).
pub fn empty_like_omitted(ctx: &mut CaseCtx<'_>) -> StepResult {
    let omitted = auth(ctx, "omitted")?;
    let empty = auth(ctx, "empty")?;
    if let Outcome::Page { status, .. } = &empty.journey.outcome
        && *status >= 500
    {
        return ctx.fail(format!(
            "the empty parameter caused a server error ({status})"
        ));
    }
    let (o, e) = (outcome_class(&omitted), outcome_class(&empty));
    if o == e {
        ctx.pass(format!("omitted and empty both led to {o}"));
        Ok(())
    } else {
        ctx.fail(format!(
            "the empty parameter was not treated as omitted: omitted led to {o}, empty to {e}"
        ))
    }
}

/// The callback's `iss`, the metadata issuer and whether the metadata sets
/// `authorization_response_iss_parameter_supported`.
fn iss_facts(ctx: &CaseCtx<'_>, on: &str) -> Result<(Option<String>, String, bool), Stop> {
    let a = auth(ctx, on)?;
    let cb = callback(&a)?;
    let doc = ctx.discovery("asm").ok().and_then(|d| d.doc());
    let issuer = doc
        .as_ref()
        .and_then(|d| d.get("issuer"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Stop::Error("no issuer in the AS metadata to compare with".into()))?;
    let flag = doc
        .as_ref()
        .and_then(|d| d.get("authorization_response_iss_parameter_supported"))
        == Some(&Value::Bool(true));
    Ok((cb.get("iss").map(str::to_string), issuer, flag))
}

/// `code-iss-param` (MCP 2026-07-28: the AS SHOULD return `iss`): the callback carries one.
/// Its value, and the RFC 9207 MUSTs of an AS that supports that RFC, are
/// `code-iss-param.rfc9207`'s.
pub fn iss(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (iss, issuer, _) = iss_facts(ctx, on)?;
    match iss {
        Some(i) if i == issuer => {
            ctx.pass(format!("iss={i:?} equals the metadata issuer"));
            Ok(())
        }
        Some(i) => {
            ctx.pass(format!(
                "the callback carries iss={i:?} (that it differs from the issuer {issuer:?} is code-iss-param.rfc9207's finding)"
            ));
            Ok(())
        }
        None => ctx.fail(
            "the callback has no iss (MCP 2026-07-28: authorization servers SHOULD return it)",
        ),
    }
}

/// `code-iss-param.rfc9207` (RFC 9207 §2): an AS that supports RFC 9207 (it advertises
/// `authorization_response_iss_parameter_supported` or sends `iss`) MUST include `iss`, and its
/// value is the issuer identifier, which clients compare exactly (§2.4). An AS that does
/// neither is not bound by the RFC: skipped.
pub fn iss_rfc9207(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (iss, issuer, flag) = iss_facts(ctx, on)?;
    match iss {
        Some(i) if i == issuer => {
            ctx.pass(format!("iss={i:?} equals the metadata issuer"));
            Ok(())
        }
        Some(i) => ctx.fail(format!(
            "iss={i:?} differs from the metadata issuer {issuer:?} (RFC 9207 §2.4: clients compare it exactly, so they reject this response)"
        )),
        None if flag => ctx.fail(
            "the metadata sets authorization_response_iss_parameter_supported, but the callback has no iss (RFC 9207 §2: MUST)",
        ),
        None => Err(Stop::Skip(
            "the AS neither advertises authorization_response_iss_parameter_supported nor sends iss: RFC 9207's MUSTs bind only an AS that supports it".into(),
        )),
    }
}

/// `code-response-param-unique`: code, state and iss appear at most once.
pub fn params_unique(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let cb = callback(&a)?;
    for k in ["code", "state", "iss"] {
        if cb.count(k) > 1 {
            return ctx.fail(format!("the callback carries {k} {} times", cb.count(k)));
        }
    }
    ctx.pass("code, state and iss each appear at most once in the callback");
    Ok(())
}

fn error_chars_ok(s: &str) -> bool {
    // O21 4.1.2.1: %x20-21 / %x23-5B / %x5D-7E (no `"` and no `\`).
    s.bytes().all(|b| {
        (0x20..=0x21).contains(&b) || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
    })
}

/// O21 4.1.2.1: `error_uri` "MUST conform to the URI-reference syntax and thus MUST NOT include
/// characters outside the set %x21 / %x23-5B / %x5D-7E". A URI-reference may be relative
/// (RFC 3986 §4.1), so `/errors/x` is as good as an absolute URI; what it may not hold is a
/// character no URI has, a broken percent-encoding, a second `#`, or a first segment with a
/// colon that is not a scheme.
fn error_uri_ok(u: &str) -> bool {
    let b = u.as_bytes();
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&c);
    if !b.iter().all(|&c| allowed(c)) || u.matches('#').count() > 1 {
        return false;
    }
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    if (0..b.len()).any(|i| b[i] == b'%' && !(hex(i + 1) && hex(i + 2))) {
        return false;
    }
    let first = u.split(['/', '?', '#']).next().unwrap_or("");
    match first.split_once(':') {
        // A scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
        Some((scheme, _)) => {
            scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => true,
    }
}

const AUTHZ_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    // OIDC Core §3.1.2.6, RFC 8707, RFC 9470: registered extensions.
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "invalid_target",
];

/// `code-error-response-format`: a well-formed error redirect.
pub fn error_format(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let cb = callback(&a)?;
    let Some(e) = cb.get("error") else {
        return Err(Stop::Error(format!(
            "no error redirect to inspect: the AS {}",
            a.describe()
        )));
    };
    if cb.get("code").is_some() {
        return ctx.fail("the error redirect also carries a code");
    }
    if !AUTHZ_ERRORS.contains(&e) {
        return ctx.fail(format!(
            "error={e:?} is not a defined authorization error code"
        ));
    }
    if let Some(d) = cb.get("error_description")
        && !error_chars_ok(d)
    {
        return ctx.fail(format!(
            "error_description has characters outside %x20-21/%x23-5B/%x5D-7E: {d:?}"
        ));
    }
    if let Some(u) = cb.get("error_uri")
        && !error_uri_ok(u)
    {
        return ctx.fail(format!(
            "error_uri {u:?} is not a URI-reference of the allowed characters (%x21 / %x23-5B / %x5D-7E)"
        ));
    }
    ctx.pass(format!("error={e} is well-formed, with no code beside it"));
    Ok(())
}

/// The answers OIDC Core §3.1.2.6 prescribes for `prompt=none` when the user would have to
/// interact: the silent-authentication case O21 7.12.2 excepts from "authenticate the user
/// first".
const SILENT_AUTH_ERRORS: &[&str] = &[
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
];

/// `code-open-redirector` (O21 7.12.2): before any user authenticated, no redirect to a client
/// nobody has approved. Only a redirect to that client's redirect URI counts: a hop to another
/// host (an upstream identity provider the AS delegates login to) sends the user to log in,
/// not to the client; and OIDC's `login_required` (and kin) for `prompt=none` is the silent
/// authentication answer the text excepts.
pub fn no_redirect_before_login(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let location = match &a.journey.outcome {
        Outcome::Page { status, .. } => {
            ctx.pass(format!(
                "the AS showed a page (status {status}) and did not redirect to the new client before any login"
            ));
            return Ok(());
        }
        Outcome::Redirected { location, .. } => location.clone(),
    };
    let target = |u: &str| u.split(['?', '#']).next().unwrap_or(u).to_string();
    // The requested redirect URI or any the client registered: either is the client.
    let to_client = a
        .redirect_uri
        .iter()
        .chain(a.client.redirect_uris.iter())
        .any(|r| target(r) == target(&location));
    if !to_client {
        ctx.pass(format!(
            "the AS sent the browser to {} (not the client's redirect URI): a login elsewhere, such as an upstream identity provider, is no redirect to the client",
            target(&location)
        ));
        return Ok(());
    }
    let cb = a.callback.clone().unwrap_or_default();
    match (cb.get("code"), cb.get("error")) {
        (None, Some(e)) if SILENT_AUTH_ERRORS.contains(&e) => {
            ctx.pass(format!(
                "for prompt=none without a session the AS answered error={e} at the client: OIDC Core §3.1.2.6's silent-authentication answer, which O21 7.12.2 excepts"
            ));
            Ok(())
        }
        _ => ctx.fail(format!(
            "before any user authenticated, the AS {} (a silent redirect to a URI an attacker registered)",
            a.describe()
        )),
    }
}

/// The login and consent pages an authorization went through; none means the AS approves
/// without a user, and a check on those pages cannot run.
pub fn interaction_pages(a: &Authorization) -> Result<Vec<&PageSeen>, Stop> {
    let pages: Vec<&PageSeen> = a
        .journey
        .pages
        .iter()
        .filter(|p| p.kind == "login" || p.kind == "consent")
        .collect();
    if pages.is_empty() {
        return Err(Stop::Skip(
            "the AS showed no login or consent page (it approves without a user)".into(),
        ));
    }
    Ok(pages)
}

/// `code-consent-clickjacking`: login and consent pages refuse framing.
pub fn frame_protection(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    for p in interaction_pages(&a)? {
        let h = |n: &str| {
            p.headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let xfo = h("x-frame-options")
            .iter()
            .any(|v| v.trim() == "deny" || v.trim() == "sameorigin");
        let csp = h("content-security-policy")
            .iter()
            .any(|v| v.contains("frame-ancestors"));
        if !xfo && !csp {
            return ctx.fail(format!(
                "the {} page at {} can be framed: no X-Frame-Options DENY/SAMEORIGIN and no CSP frame-ancestors",
                p.kind, p.url
            ));
        }
        ctx.pass(format!("the {} page refuses framing", p.kind));
    }
    Ok(())
}

/// `code-referrer-policy`: pages that lead to the redirect drop path and query from `Referer`.
pub fn referrer_policy(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    const SAFE: &[&str] = &[
        "no-referrer",
        "same-origin",
        "origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    ];
    let a = auth(ctx, on)?;
    for p in interaction_pages(&a)? {
        let header = p
            .headers
            .iter()
            .filter(|(k, _)| k == "referrer-policy")
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .rfind(|t| !t.is_empty());
        let policy = header.or_else(|| p.meta_referrer.clone().map(|m| m.to_ascii_lowercase()));
        match policy {
            Some(pol) if SAFE.contains(&pol.as_str()) => {
                ctx.pass(format!("the {} page sets Referrer-Policy {pol}", p.kind))
            }
            Some(pol) => {
                return ctx.fail(format!(
                    "the {} page sets referrer policy {pol:?}, which leaks path and query",
                    p.kind
                ));
            }
            None => {
                return ctx.fail(format!(
                    "the {} page at {} sets no referrer policy",
                    p.kind, p.url
                ));
            }
        }
    }
    Ok(())
}

/// `code-redirect-fragment-fix`: the callback `Location` ends with a fragment.
pub fn redirect_fragment(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    match &a.journey.outcome {
        Outcome::Redirected { raw, .. } if raw.contains('#') => {
            ctx.pass("the callback Location carries a fragment");
            Ok(())
        }
        Outcome::Redirected { .. } => {
            ctx.fail("the callback Location has no fragment (RFC 9700 fragment mitigation, MAY)")
        }
        Outcome::Page { .. } => Err(Stop::Error(format!("no callback: the AS {}", a.describe()))),
    }
}

/// `code-public-client-consent`: a new public client gets a consent step, even for a user who
/// is logged in already.
pub fn consent_required(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    if a.code().is_none() {
        return Err(Stop::Error(format!("no code: the AS {}", a.describe())));
    }
    if a.journey
        .interactions
        .iter()
        .any(|i| *i == "consent" || *i == "deny")
    {
        ctx.pass("the AS asked the logged-in user to consent before the first code for a new public client");
        Ok(())
    } else if let Some(p) = a.journey.pages.iter().find(|p| p.kind == "consent") {
        // A login script (or a form driver that met a consent page it did not submit) saw it.
        ctx.pass(format!(
            "the AS showed a consent page ({}) before the first code for a new public client",
            p.url
        ));
        Ok(())
    } else if a.journey.interactions.contains(&"script") {
        // A script submits whatever its author wrote: without a page recognised as consent
        // (a form without a password field), whether the AS asked cannot be told.
        Err(Stop::Error(format!(
            "the login script's {} request(s) went through no page recognised as a consent page: a script login cannot show whether the AS asked",
            a.journey.interactions.len()
        )))
    } else {
        ctx.fail(format!(
            "the AS issued a code to a never-seen public client without any user interaction ({} requests, interactions: {:?})",
            a.journey.pages.len(),
            a.journey.interactions
        ))
    }
}

/// `code-entropy`: codes are unpredictable: distinct, long, without shared structure.
pub async fn entropy(ctx: &mut CaseCtx<'_>, args: &BTreeMap<String, toml::Value>) -> StepResult {
    let n = super::arg_samples(args, 20, 100);
    let empty = BTreeMap::new();
    let mut codes = Vec::new();
    for _ in 0..n {
        let a = super::tokens::user_authorization(ctx, &empty, &[], Some("entropy")).await?;
        match a.code() {
            Some(c) => codes.push(c.to_string()),
            None => {
                return Err(Stop::Error(format!(
                    "no code to sample: the AS {}",
                    a.describe()
                )));
            }
        }
    }
    unpredictable(ctx, "codes", &codes)
}

/// Values that must be unguessable (codes, client secrets): all distinct, at least the 22
/// base64url characters 128 bits need beyond any shared prefix, and not numbers.
pub fn unpredictable(ctx: &mut CaseCtx<'_>, what: &str, values: &[String]) -> StepResult {
    let n = values.len();
    let distinct: std::collections::BTreeSet<&String> = values.iter().collect();
    if distinct.len() != n {
        return ctx.fail(format!("{} of {n} {what} repeat", n - distinct.len()));
    }
    let shortest = values.iter().map(String::len).min().unwrap_or(0);
    // Longest prefix shared by all values: fixed prefixes are fine, the rest must vary.
    let prefix = (0..shortest)
        .take_while(|&i| {
            values
                .iter()
                .all(|c| c.as_bytes()[i] == values[0].as_bytes()[i])
        })
        .count();
    let varying = shortest - prefix;
    if varying < 22 {
        return ctx.fail(format!(
            "{what} vary in only {varying} characters after a {prefix}-character shared prefix: fewer than the 22 base64url characters 128 bits need"
        ));
    }
    let numeric = values
        .iter()
        .filter(|c| c.is_char_boundary(prefix) && c[prefix..].parse::<u128>().is_ok())
        .count();
    if numeric == n {
        return ctx.fail(format!(
            "the {what} are numbers: counter-based values are guessable"
        ));
    }
    ctx.pass(format!(
        "{n} {what}, all distinct, {varying}+ varying characters each"
    ));
    Ok(())
}

/// `code-lifetime`: a code redeemed after its lifetime is refused.
pub async fn lifetime(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let life = ctx.env.profile.timing.code_lifetime_secs.unwrap_or(600);
    let wait = Duration::from_secs(life + 1);
    if wait > ctx.env.max_wait() {
        return Err(Stop::Skip(format!(
            "needs a wait of {} s (code lifetime {life} s + 1); allow it with --max-wait {} (or timing.max_wait_secs)",
            wait.as_secs(),
            wait.as_secs()
        )));
    }
    let a = auth(ctx, on)?;
    if a.code().is_none() {
        return Err(Stop::Error(format!("no code: the AS {}", a.describe())));
    }
    ctx.note(format!(
        "waiting {} s before redeeming the code",
        wait.as_secs()
    ));
    ctx.idle(wait, "for the code to expire").await;
    let params = BTreeMap::new();
    let saved = token::token(ctx, &token::redeeming(on, params)).await?;
    let r = saved
        .response()
        .map(|(_, r)| r.clone())
        .ok_or_else(|| Stop::Error("no token response".into()))?;
    let err = r
        .json()
        .and_then(|d| d.get("error").and_then(Value::as_str).map(str::to_string));
    if let Some(shape) = expect::token_refused(&r, &["invalid_grant"]) {
        expect::note_shape(ctx, shape);
        ctx.pass(format!(
            "a code redeemed {} s after issue was refused",
            wait.as_secs()
        ));
        return Ok(());
    }
    match (r.status, err.as_deref()) {
        (200, _) => ctx.fail(format!(
            "a code redeemed {} s after issue still bought tokens",
            wait.as_secs()
        )),
        (s, e) => ctx.fail(format!(
            "the late redemption answered {s} error={e:?}, expected 400 invalid_grant"
        )),
    }
}

/// Tokens from a saved token response: do they still work? Uses the refresh token if there is
/// one, else the MCP endpoint with the access token.
async fn tokens_work(ctx: &mut CaseCtx<'_>, on: &str) -> Result<(bool, String), Stop> {
    let doc = match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) if response.status == 200 => response.json(),
        _ => None,
    }
    .ok_or_else(|| Stop::Error(format!("`{on}` holds no successful token response")))?;
    if let Some(rt) = doc.get("refresh_token").and_then(Value::as_str) {
        let params: BTreeMap<String, String> = [("refresh_token".to_string(), rt.to_string())]
            .into_iter()
            .collect();
        let opts = TokenStep {
            grant_type: "refresh_token".into(),
            params,
            ..Default::default()
        };
        let saved = token::token(ctx, &opts).await?;
        let r = saved.response().map(|(_, r)| r.clone());
        let s = r.as_ref().map(|r| r.status).unwrap_or(0);
        return Ok((
            s == 200,
            format!("refreshing with the first refresh token answered {s}"),
        ));
    }
    let (Some(at), Some(resource)) = (
        doc.get("access_token").and_then(Value::as_str),
        ctx.env.target.resource.clone(),
    ) else {
        return Err(Stop::Skip(
            "no refresh token was issued and no MCP endpoint is known to try the access token at"
                .into(),
        ));
    };
    let at = at.to_string();
    let r = crate::step::request::mcp_with_token(
        ctx,
        &resource,
        &at,
        "use the first access token at the MCP endpoint",
    )
    .await?;
    Ok((
        r.status < 300,
        format!(
            "the MCP endpoint answered {} to the first access token",
            r.status
        ),
    ))
}

/// `code-replay-revokes`: after a replayed code, the tokens of the first redemption are dead.
pub async fn tokens_revoked(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (works, what) = tokens_work(ctx, on).await?;
    if works {
        ctx.fail(format!(
            "after the code was replayed, the first tokens still work: {what}"
        ))
    } else {
        ctx.pass(format!(
            "the first tokens were revoked after the replay: {what}"
        ));
        Ok(())
    }
}

/// `code-replay-invalid-no-revoke`: an invalid replay must not revoke the legitimate tokens.
pub async fn tokens_still_valid(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let (works, what) = tokens_work(ctx, on).await?;
    if works {
        ctx.pass(format!(
            "the first tokens survived an invalid replay: {what}"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "an invalid replay (wrong verifier) revoked the legitimate tokens: {what}"
        ))
    }
}

/// `code-resource-binding`: a token request naming another resource gets `invalid_target`, or
/// a token that still works only at the MCP endpoint.
pub async fn resource_binding(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let r = match ctx.saved.get(on) {
        Some(Saved::Response { response, .. }) => response.clone(),
        _ => return Err(Stop::Error(format!("`{on}` holds no token response"))),
    };
    if r.status != 200 {
        let e = r
            .json()
            .and_then(|d| d.get("error").and_then(Value::as_str).map(str::to_string));
        if r.status >= 400 && r.status < 500 && e.is_some() {
            ctx.pass(format!(
                "the AS refused the other resource: {} error={}",
                r.status,
                e.unwrap_or_default()
            ));
            return Ok(());
        }
        return ctx.fail(format!(
            "the token request answered {} without an OAuth error",
            r.status
        ));
    }
    let (works, what) = tokens_work_at_resource(ctx, &r).await?;
    if works {
        ctx.pass(format!(
            "the token was still bound to the MCP endpoint: {what}"
        ));
        Ok(())
    } else {
        ctx.fail(format!(
            "tokens were issued for a resource other than the one authorized, and they do not work at the authorized MCP endpoint: {what}"
        ))
    }
}

async fn tokens_work_at_resource(
    ctx: &mut CaseCtx<'_>,
    r: &crate::http::Response,
) -> Result<(bool, String), Stop> {
    let doc = r.json().unwrap_or(Value::Null);
    if let Some(p) = doc
        .get("access_token")
        .and_then(Value::as_str)
        .and_then(super::tokens::jwt_payload)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        let aud = p.get("aud").cloned().unwrap_or(Value::Null);
        let resource = ctx.env.target.resource.clone().unwrap_or_default();
        let ok = aud == Value::String(resource.clone())
            || aud
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x == &Value::String(resource.clone())));
        return Ok((ok, format!("the access token's aud is {aud}")));
    }
    // An opaque token: try it at the MCP endpoint (without its refresh token, so the probe
    // uses the access token itself).
    let doc_no_rt = {
        let mut d = doc.clone();
        if let Some(o) = d.as_object_mut() {
            o.remove("refresh_token");
        }
        d
    };
    let mut probe = r.clone();
    probe.body = doc_no_rt.to_string().into_bytes();
    ctx.saved.insert(
        "resource_probe".into(),
        Saved::Response {
            url: String::new(),
            response: probe,
        },
    );
    tokens_work(ctx, "resource_probe").await
}

/// `redir-registered-query-positive`: the callback keeps the registered query and appends.
pub fn registered_query_kept(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let a = auth(ctx, on)?;
    let sent = a.redirect_uri.clone().unwrap_or_default();
    let Some(loc) = a.location() else {
        return Err(Stop::Error(format!("no callback: the AS {}", a.describe())));
    };
    if loc.starts_with(&format!("{sent}&")) {
        ctx.pass(format!("the callback keeps the registered query: {}", sent));
        Ok(())
    } else {
        ctx.fail(format!(
            "the callback does not start with the registered URI and its query ({sent:?}&...)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::error_uri_ok;

    #[test]
    fn error_uri_is_a_uri_reference() {
        for ok in [
            "https://as.example/errors/invalid_scope",
            "/errors/invalid_scope",
            "errors/x?lang=en#top",
            "urn:example:error",
            "%7Eexplain",
        ] {
            assert!(error_uri_ok(ok), "{ok}");
        }
        for bad in [
            "https://as.example/a b",
            "https://as.example/\"x\"",
            "https://as.example/%zz",
            "https://as.example/%4",
            "a#b#c",
            "1bad:scheme",
            "https://as.example/<script>",
        ] {
            assert!(!error_uri_ok(bad), "{bad}");
        }
    }
}
