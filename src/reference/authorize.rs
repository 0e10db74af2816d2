//! The reference authorization endpoint (O21 4.1.1, 4.1.2) with its login and consent pages.
//!
//! Order of validation matters and is the point of several cases: the client and its redirect
//! URI are checked first, and until both are trusted every error is a page, never a redirect
//! (O21 4.1.2.1). Only then do errors go back to the client as `error=` redirects.
//!
//! Redirect URIs are compared as strings (RFC 3986 §6.2.1 simple comparison); the one exception
//! is the port of a loopback IP literal (RFC 8252 §7.3). Each `redir-*` fault swaps in the
//! broken matcher a real server has been seen to use.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::Ref;
use super::store::{Pending, random_id};

/// Parameters in order, duplicates kept.
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Every client_id a request names: the parameter, a Basic user name, a client assertion's
/// issuer. (Which one counts is the endpoint's business; each URL among them is resolved.)
pub fn client_ids(method: &Method, query: &str, headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    let mut ids: Vec<String> = pairs(query)
        .into_iter()
        .chain(if *method == Method::POST {
            pairs(&String::from_utf8_lossy(body))
        } else {
            Vec::new()
        })
        .filter_map(|(k, v)| match k.as_str() {
            "client_id" => Some(v),
            "client_assertion" => jsonwebtoken::dangerous::insecure_decode::<Value>(&v)
                .ok()
                .and_then(|d| {
                    d.claims
                        .get("iss")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }),
            _ => None,
        })
        .collect();
    if let Some((user, _)) = super::token::basic_credentials(headers) {
        ids.push(user);
    }
    ids.dedup();
    ids
}

/// A metadata document could not be used: an error page, since no redirect URI of this client
/// can be trusted (MCP §5.1.3). The faulty server redirects to whatever it was given.
pub fn cimd_refused(s: &Ref, method: &Method, query: &str, body: &[u8]) -> Response {
    if s.fault("cimd-error-shape")
        && let Some((_, r)) = request_params(method, query, body)
            .into_iter()
            .find(|(k, _)| k == "redirect_uri")
    {
        return redirect(&format!("{r}?error=invalid_client"));
    }
    // The reason may quote what the document host sent; the page states only the error code.
    page(
        400,
        "Authorization error",
        "<p>invalid_client: the client metadata document cannot be used.</p>",
        s,
    )
}

/// The parameters of a GET (query) or POST (form body) request, in order, duplicates kept.
fn request_params(method: &Method, query: &str, body: &[u8]) -> Vec<(String, String)> {
    if *method == Method::POST {
        pairs(&String::from_utf8_lossy(body))
    } else {
        pairs(query)
    }
}

pub(super) fn page(status: u16, title: &str, body_html: &str, s: &Ref) -> Response {
    // Only fixed text and identifiers this server generated reach these pages: nothing a client
    // sent is echoed, so there is nothing to escape. (The consent page, which shows client
    // metadata, is an askama template.)
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1>{body_html}</body></html>"
    );
    html_response(status, html, s)
}

pub(super) fn html_response(status: u16, html: String, s: &Ref) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store");
    if !s.fault("code-consent-clickjacking") {
        b = b
            .header("x-frame-options", "DENY")
            .header("content-security-policy", "frame-ancestors 'none'");
    }
    if !s.fault("code-referrer-policy") {
        b = b.header("referrer-policy", "no-referrer");
    }
    b.body(Body::from(html)).unwrap_or_default()
}

pub(super) fn error_page(s: &Ref, why: &str) -> Response {
    page(400, "Authorization error", &format!("<p>{why}</p>"), s)
}

fn redirect(location: &str) -> Response {
    Response::builder()
        .status(302)
        .header("location", location)
        .header("cache-control", "no-store")
        .body(Body::empty())
        .unwrap_or_default()
}

/// The authorization response: the registered URI (its query kept), `&`-joined parameters.
fn respond(s: &Ref, p: &Pending, mut params: Vec<(&str, String)>) -> Response {
    if let Some(st) = &p.state
        && !(params.iter().any(|(k, _)| *k == "error") && s.fault("code-state-on-error"))
    {
        let st = if s.fault("code-state-echo") {
            st.chars().take(64).collect()
        } else {
            st.clone()
        };
        params.push(("state", st));
    }
    let iss = if s.fault("code-iss-param.rfc9207") {
        format!("{}/", s.issuer)
    } else {
        s.issuer.clone()
    };
    // RFC 9207 §2: error responses carry iss too; the faulty server adds it to codes only,
    // while its metadata still says authorization_response_iss_parameter_supported. Under
    // code-iss-param the server does not implement RFC 9207 at all (no iss, no flag).
    let is_error = params.iter().any(|(k, _)| *k == "error");
    let omit = s.fault("code-iss-param") || (is_error && s.fault("asm-iss-flag"));
    if !omit {
        params.push(("iss", iss));
    }
    let base = if s.fault("redir-registered-query-positive") {
        p.redirect_uri.split('?').next().unwrap_or("").to_string()
    } else {
        p.redirect_uri.clone()
    };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    // A fragment on the redirect stops a browser from carrying an earlier fragment over
    // (RFC 9700 §4.1.3).
    let frag = if s.fault("code-redirect-fragment-fix") {
        ""
    } else {
        "#_=_"
    };
    redirect(&format!("{base}{sep}{q}{frag}"))
}

fn error_redirect(s: &Ref, p: &Pending, error: &str, description: &str) -> Response {
    let mut params = vec![
        ("error", error.to_string()),
        ("error_description", description.to_string()),
    ];
    if s.fault("code-error-response-format") {
        params.push(("code", random_id(16)));
        params[1].1 = format!("{description}\r\nat Authorize.validate (authorize.rs:120)");
    }
    respond(s, p, params)
}

fn is_loopback_literal(host: &str) -> bool {
    host == "127.0.0.1" || host == "[::1]"
}

/// Splits `http://host:port/rest` into (scheme, host, port, rest) without a URL type.
fn split(u: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = u.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    let (host, port) = if auth.starts_with('[') {
        match auth.find(']') {
            Some(i) => (&auth[..=i], auth[i + 1..].strip_prefix(':').unwrap_or("")),
            None => (auth, ""),
        }
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (auth, ""),
        }
    };
    Some((scheme, host, port, tail))
}

fn strip_port(u: &str) -> String {
    match split(u) {
        Some((sc, h, _, t)) => format!("{sc}://{h}{t}"),
        None => u.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Does the requested redirect URI match this registered one?
pub(super) fn redirect_matches(s: &Ref, registered: &str, given: &str) -> bool {
    let f = |id: &str| s.fault(id);
    let mut reg = registered.to_string();
    let mut giv = given.to_string();
    if f("redir-exact-positive") {
        reg.push('/');
    }
    if f("redir-trailing-slash") {
        giv = giv.trim_end_matches('/').to_string();
    }
    if f("redir-fragment") {
        giv = giv.split('#').next().unwrap_or("").to_string();
    }
    if f("redir-added-query") && !reg.contains('?') {
        giv = giv.split('?').next().unwrap_or("").to_string();
    }
    if f("redir-registered-query-mismatch") && reg.contains('?') {
        giv = giv.split('?').next().unwrap_or("").to_string();
        reg = reg.split('?').next().unwrap_or("").to_string();
    }
    if f("redir-percent-encoding") {
        giv = percent_decode(&giv);
    }
    if f("redir-userinfo")
        && let Some((sc, rest)) = giv.split_once("://")
        && let Some((_, after)) = rest.split_once('@')
    {
        giv = format!("{sc}://{after}");
    }
    if f("redir-default-port.443") {
        giv = giv.replacen(":443/", "/", 1);
    }
    if f("redir-default-port.other") && !giv.contains("127.0.0.1") {
        giv = strip_port(&giv);
    }
    if f("redir-http-vs-https") {
        giv = giv.replacen("http://", "https://", 1);
    }
    if f("redir-scheme-case") || f("redir-host-case") {
        if let (Some((gs, gh, gp, gt)), true) = (split(&giv), true) {
            let gs = if f("redir-scheme-case") {
                gs.to_ascii_lowercase()
            } else {
                gs.to_string()
            };
            let gh = if f("redir-host-case") {
                gh.to_ascii_lowercase()
            } else {
                gh.to_string()
            };
            let port = if gp.is_empty() {
                String::new()
            } else {
                format!(":{gp}")
            };
            giv = format!("{gs}://{gh}{port}{gt}");
        }
    }
    if f("redir-path-case") {
        return reg.eq_ignore_ascii_case(&giv);
    }
    if f("redir-extra-path") && giv.starts_with(&reg) {
        return true;
    }
    if f("redir-host-variants")
        && let (Some((rs, rh, rp, rt)), Some((gs, gh, gp, gt))) = (split(&reg), split(&giv))
    {
        let gh = gh.trim_end_matches('.');
        if rs == gs
            && rp == gp
            && rt == gt
            && (gh == rh || gh.ends_with(&format!(".{rh}")) || gh.starts_with(&format!("{rh}.")))
        {
            return true;
        }
    }
    if f("redir-wildcard") && reg.contains('*') {
        let (pre, post) = reg.split_once('*').unwrap_or((&reg, ""));
        return giv.starts_with(pre) && giv.ends_with(post) && giv.len() >= pre.len() + post.len();
    }
    // RFC 8252 §7.3: for a loopback IP literal, only the port may differ.
    if let (Some((rs, rh, _, rt)), Some((gs, gh, _, gt))) = (split(&reg), split(&giv))
        && rs == "http"
        && is_loopback_literal(rh)
    {
        let scheme_ok = gs == "http" || f("redir-loopback-https") && gs == "https";
        let host_ok = gh == rh
            || f("redir-loopback-ipv6.cross") && is_loopback_literal(gh)
            || f("redir-localhost-vs-127") && gh == "localhost"
            || f("redir-loopback-lookalikes")
                && (gh.starts_with("127.")
                    || gh.starts_with("localhost")
                    || gh == "0.0.0.0"
                    || gh.contains("127.0.0.1")
                    || gh.chars().all(|c| c.is_ascii_digit()));
        let path_ok = gt == rt || f("redir-loopback-path");
        let exact_port =
            f("redir-loopback-port-any") || f("redir-loopback-ipv6.accept") && rh == "[::1]";
        let port_ok = !exact_port || split(&reg).map(|x| x.2) == split(&giv).map(|x| x.2);
        return scheme_ok && host_ok && path_ok && port_ok;
    }
    if f("redir-localhost-vs-127")
        && let (Some((_, rh, rp, rt)), Some((_, gh, gp, gt))) = (split(&reg), split(&giv))
        && rh == "localhost"
        && gh == "127.0.0.1"
    {
        return rp == gp && rt == gt;
    }
    reg == giv
}

fn client_uris(c: &Value) -> Vec<String> {
    c.get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("ref_sid=").map(str::to_string))
}

/// MCP 2025-11-25 §8.1: the resource with its scheme and host lowercased (they compare
/// case-insensitively); anything that does not parse is left as it is.
pub(super) fn canonical_resource(r: &str) -> String {
    let Some((scheme, rest)) = r.split_once("://") else {
        return r.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        rest[..end].to_ascii_lowercase(),
        &rest[end..]
    )
}

/// The resources this AS issues tokens for: its MCP endpoint and a second resource server
/// registered with it (the one rs-aud-wrong and as-resource-token-mismatch name). Under the
/// as-resource-case fault the comparison is exact.
pub(super) fn known_resource(s: &Ref, r: &str) -> bool {
    const OTHER: &str = "https://other.authconform.test/mcp";
    if s.fault("as-resource-case") {
        return r == s.resource || r == OTHER;
    }
    let c = canonical_resource(r);
    c == canonical_resource(&s.resource) || c == OTHER
}

/// The scope faults: a server error where a controlled answer is due.
fn scope_fault(s: &Ref, scope: Option<&str>) -> Option<Response> {
    let crash = || {
        Some(super::json(
            500,
            serde_json::json!({ "error": "server_error" }),
        ))
    };
    match scope {
        None if s.fault("as-scope-omitted") => crash(),
        Some(sc)
            if s.fault("as-scope-syntax")
                && (sc.len() > 4096 || sc.contains(['"', '\\', '\t'])) =>
        {
            crash()
        }
        Some(sc)
            if s.fault("as-scope-invalid")
                && sc
                    .split(' ')
                    .any(|t| !super::scopes::CATALOGUE.contains(&t)) =>
        {
            crash()
        }
        _ => None,
    }
}

fn valid_challenge(c: &str) -> bool {
    // S256: BASE64URL(SHA256) without padding is always 43 characters (RFC 7636 §4.2).
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// GET (and POST) `/as/authorize`.
pub fn authorize(
    s: &Ref,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if *method == Method::GET && s.fault("code-get-support") {
        return error_page(s, "use POST");
    }
    let mut all = request_params(method, query, body);
    // RFC 9126 §4: a request_uri from the PAR endpoint stands for the pushed request, whose
    // parameters alone count; it is validated below like any other request.
    let pushed = s.offer.par && all.iter().any(|(k, _)| k == "request_uri");
    if pushed {
        match super::par::resolve(s, &all) {
            Ok(p) => all = p,
            Err(why) => return error_page(s, why),
        }
    }
    let count = |k: &str| all.iter().filter(|(n, _)| n == k).count();
    // O21 3.1: parameters sent without a value are treated as omitted.
    let get = |k: &str| -> Option<String> {
        let v: Vec<&String> = all.iter().filter(|(n, _)| n == k).map(|(_, v)| v).collect();
        let pick = if k == "code_challenge" && s.fault("pkce-duplicate-param") {
            v.last()
        } else {
            v.first()
        };
        pick.map(|x| x.to_string())
            .filter(|x| !x.is_empty() || (k == "scope" && s.fault("code-empty-param")))
    };
    // 1. The client.
    let Some(client_id) = get("client_id") else {
        return error_page(s, "client_id is missing");
    };
    let client = s.client(&client_id);
    let Some(client) = client else {
        if s.fault("redir-invalid-client-no-redirect")
            && let Some(r) = get("redirect_uri")
        {
            return redirect(&format!("{r}?error=invalid_client"));
        }
        return error_page(s, "unknown client");
    };
    let registered = client_uris(&client);
    let public = client
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        == Some("none");

    // Under this fault, request errors are found (and redirected) before the redirect URI
    // has been validated: the bug O21 4.1.2.1 warns about.
    if s.fault("redir-error-after-validation-only.invalid-uri")
        && get("response_type").as_deref() != Some("code")
        && let Some(r) = get("redirect_uri")
    {
        return redirect(&format!("{r}?error=unsupported_response_type"));
    }

    // 2. The redirect URI.
    if count("redirect_uri") > 1 && !s.fault("redir-duplicate-param") {
        return error_page(s, "redirect_uri given more than once");
    }
    let redirect_sent = get("redirect_uri").is_some();
    let redirect_uri = match get("redirect_uri") {
        Some(r) => {
            let unenforced = (s.fault("dcr-redirect-enforced")
                && client.get("client_id_issued_at").is_some())
                || client.get("x_any_redirect") == Some(&Value::Bool(true));
            if unenforced || registered.iter().any(|reg| redirect_matches(s, reg, &r)) {
                // The faulty server validated the first value and redirects to the last.
                if s.fault("redir-duplicate-param") {
                    all.iter()
                        .rfind(|(n, _)| n == "redirect_uri")
                        .map(|(_, v)| v.clone())
                        .unwrap_or(r)
                } else {
                    r
                }
            } else {
                if s.fault("redir-localhost-port") && r.starts_with("http://localhost:") {
                    return redirect(&format!("{r}?error=invalid_request"));
                }
                return error_page(s, "the redirect URI is not registered for this client");
            }
        }
        None if registered.len() == 1 || s.fault("redir-missing-multi") => {
            registered.first().cloned().unwrap_or_default()
        }
        None => return error_page(s, "redirect_uri is required: the client has several"),
    };

    let mut p = Pending {
        client_id: client_id.clone(),
        public,
        redirect_uri,
        redirect_sent,
        state: get("state"),
        challenge: None,
        method: "S256".into(),
        resource: get("resource"),
        scope: get("scope"),
        nonce: get("nonce"),
        created: Instant::now(),
        user: None,
        dpop_jkt: super::dpop::authorization_jkt(s, get("dpop_jkt")),
    };
    // RFC 9126 §4, §6: a client registered to push its requests may not send them here.
    if !pushed && super::par::required_for(s, &client) {
        return error_redirect(
            s,
            &p,
            "invalid_request",
            "this client must push its authorization requests (RFC 9126)",
        );
    }
    if s.fault("code-state-optional") && p.state.is_none() {
        return error_redirect(s, &p, "invalid_request", "state is required");
    }

    // 3. From here on the redirect URI is trusted: errors go back to the client.
    if s.fault("code-unknown-param-ignored") {
        const KNOWN: &[&str] = &[
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "resource",
            "prompt",
            "nonce",
        ];
        if all.iter().any(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return error_redirect(s, &p, "invalid_request", "unknown parameter");
        }
    }
    if all.iter().any(|(k, _)| count(k) > 1)
        && !(s.fault("pkce-duplicate-param") && count("code_challenge") > 1)
    {
        return error_redirect(
            s,
            &p,
            "invalid_request",
            "a parameter was sent more than once",
        );
    }
    match get("response_type").as_deref() {
        Some("code") => {}
        // code-response-type: a response type the server does not understand is taken for code.
        Some(rt) if rt != "token" && s.fault("code-response-type") => {}
        Some("token") if s.fault("code-response-type.removed") => {
            let at = random_id(32);
            let loc = format!("{}#access_token={at}&token_type=Bearer", p.redirect_uri);
            return redirect(&loc);
        }
        None => return error_redirect(s, &p, "invalid_request", "response_type is required"),
        Some(_) => {
            if s.fault("redir-error-after-validation-only.valid-uri") {
                return error_page(s, "unsupported response_type");
            }
            return error_redirect(s, &p, "unsupported_response_type", "only code is supported");
        }
    }
    // An empty scope only gets here under code-empty-param (otherwise it counts as omitted),
    // and is then refused like an unknown one.
    // RFC 8707 §2: a resource is an absolute URI without a fragment.
    if let Some(r) = &p.resource
        && !s.fault("as-resource-invalid")
    {
        let absolute = url::Url::parse(r).is_ok_and(|u| u.has_host());
        if !absolute || r.contains('#') {
            return error_redirect(
                s,
                &p,
                "invalid_target",
                "resource must be an absolute URI without a fragment",
            );
        }
        // RFC 8707 §2: the AS issues tokens only for resources it knows.
        if !known_resource(s, r) && !s.fault("as-resource-unknown") {
            return error_redirect(s, &p, "invalid_target", "unknown resource");
        }
        p.resource = Some(canonical_resource(r));
    }
    if let Some(r) = scope_fault(s, p.scope.as_deref()) {
        return r;
    }
    // Known scopes: the catalogue, and `openid` (this AS is also an OpenID Provider: an ID
    // token comes with the code's tokens, OIDC Core 1.0 §3.1.2.1).
    if let Some(sc) = &p.scope
        && (sc.is_empty()
            || !sc
                .split(' ')
                .all(|t| super::scopes::CATALOGUE.contains(&t) || t == super::oidc::OPENID))
    {
        return error_redirect(s, &p, "invalid_scope", "unknown scope");
    }
    // RFC 6749 §3.3: scope order carries no meaning (the faulty server wants the catalogue's).
    if let Some(sc) = &p.scope
        && s.fault("as-scope-order-independent")
        && sc.starts_with("mcp:admin")
        && sc.contains("mcp:tools")
    {
        return error_redirect(s, &p, "invalid_scope", "scopes out of order");
    }
    // 4. PKCE (O21 4.1.1): required for every client, S256 only.
    let method = get("code_challenge_method");
    match get("code_challenge") {
        None => {
            let cimd = client.get("x_cimd") == Some(&Value::Bool(true));
            let exempt = if public {
                s.fault("pkce-required-public") || (cimd && s.fault("cimd-none-public-pkce"))
            } else {
                s.fault("pkce-required-confidential")
                    || s.fault("pkce-no-challenge-token-reject")
                    || s.fault("pkce-downgrade")
            };
            if !exempt {
                return error_redirect(s, &p, "invalid_request", "code_challenge is required");
            }
        }
        Some(c) => {
            let m = match method.as_deref() {
                Some("S256") => "S256",
                None if s.fault("pkce-method-default-plain") => "S256",
                Some("plain") if s.fault("pkce-plain-rejected") => "plain",
                Some(_) if s.fault("pkce-unknown-method") => "S256",
                _ => {
                    return error_redirect(
                        s,
                        &p,
                        "invalid_request",
                        "code_challenge_method must be S256",
                    );
                }
            };
            if m == "S256" && !valid_challenge(&c) && !s.fault("pkce-challenge-syntax") {
                return error_redirect(s, &p, "invalid_request", "malformed code_challenge");
            }
            p.challenge = Some(c);
            p.method = m.into();
        }
    }
    let prompt_none = get("prompt").as_deref() == Some("none");

    // 5. Login, then consent.
    let sid = session_id(headers);
    let (logged_in, consented) = {
        let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        match sid.as_ref().and_then(|id| st.sessions.get(id)) {
            Some(sess) => (sess.user.is_some(), sess.consented.contains(&client_id)),
            None => (false, false),
        }
    };
    let skip_consent = consented || (logged_in && public && s.fault("code-public-client-consent"));
    // The code will be for whoever the browser is signed in as (login() sets it otherwise).
    p.user = sid.as_ref().and_then(|id| {
        s.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sessions
            .get(id)
            .and_then(|x| x.user.clone())
    });
    let txn = s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .add_pending(p.clone());
    // The fault: prompt=none taken as "approve silently", so a client nobody approved gets a
    // code before any user authenticated. (OIDC's login_required answer to prompt=none is the
    // silent-authentication case O21 7.12.2 excepts, so it would not violate the requirement.)
    if !logged_in && prompt_none && s.fault("code-open-redirector") {
        return issue(s, &txn);
    }
    if skip_consent && logged_in {
        return issue(s, &txn);
    }
    // The JSON login styles: one page (the shell, then the consent view) and JSON endpoints.
    if s.login != super::LoginStyle::Form {
        return redirect(&format!("/as/signin?txn={txn}"));
    }
    if !logged_in {
        return login_page(s, &txn, false);
    }
    consent_page(s, &txn, &p)
}

fn login_page(s: &Ref, txn: &str, failed: bool) -> Response {
    let msg = if failed {
        "<p role=\"alert\">Wrong username or password.</p>"
    } else {
        ""
    };
    page(
        200,
        "Sign in",
        &format!(
            "{msg}<form method=\"post\" action=\"/as/login\"><input type=\"hidden\" name=\"txn\" value=\"{txn}\">\
             <label>User <input type=\"text\" name=\"username\"></label>\
             <label>Password <input type=\"password\" name=\"password\"></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
        s,
    )
}

/// The consent page shows what the client says about itself (RFC 7591 §2 display metadata),
/// escaped by askama, and where the browser goes next.
#[derive(askama::Template)]
#[template(path = "reference-consent.html")]
pub(super) struct ConsentPage<'a> {
    txn: &'a str,
    /// The json login style: the decision goes to `/as/api/consent` from a script, so the
    /// buttons sit in no form.
    api: bool,
    pub client_name: String,
    /// Only under the dcr-display-escaping fault: the name is inserted unescaped.
    pub raw_name: bool,
    pub redirect_host: Option<String>,
    /// A client named by a metadata document: the host its client_id URL names (MCP §11.6.2:
    /// the attacker picks `client_name`, not the host).
    pub client_host: Option<String>,
    /// The client only redirects to this device (MCP §11.6.2: warn; any local program can
    /// claim such a client).
    pub loopback_warning: bool,
    pub logo_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
}

/// The host (and port) of a URI, cut from the raw string.
fn host_of(uri: &str) -> String {
    uri.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .map(|a| a.rsplit('@').next().unwrap_or(a))
        .unwrap_or("")
        .to_string()
}

fn consent_page(s: &Ref, txn: &str, p: &Pending) -> Response {
    match askama::Template::render(&consent_view(s, txn, p, false)) {
        Ok(html) => html_response(200, html, s),
        Err(_) => error_page(s, "cannot render the consent page"),
    }
}

/// The consent page of the json login style: the same view, decided through the JSON endpoint.
pub(super) fn consent_page_api(s: &Ref, txn: &str, p: &Pending) -> Response {
    match askama::Template::render(&consent_view(s, txn, p, true)) {
        Ok(html) => html_response(200, html, s),
        Err(_) => error_page(s, "cannot render the consent page"),
    }
}

/// What the consent page shows for this request (the same under every login style).
pub(super) fn consent_view<'a>(s: &Ref, txn: &'a str, p: &Pending, api: bool) -> ConsentPage<'a> {
    let client = s.client(&p.client_id).unwrap_or(Value::Null);
    let text = |k: &str| {
        (!s.fault("consent-shows-client-metadata"))
            .then(|| client.get(k).and_then(Value::as_str).map(str::to_string))
            .flatten()
    };
    let cimd = client.get("x_cimd") == Some(&Value::Bool(true));
    let hide = cimd && s.fault("cimd-display-hostname");
    let redirect_host = (!hide).then(|| host_of(&p.redirect_uri));
    let client_host = (cimd && !hide).then(|| host_of(&p.client_id));
    let loopback_warning = cimd
        && !s.fault("cimd-localhost-warning")
        && client_uris(&client).iter().all(|u| {
            let h = host_of(u);
            let h = h.rsplit_once(':').map(|(a, _)| a).unwrap_or(&h);
            u.starts_with("http://") && ["localhost", "127.0.0.1", "[::1]"].contains(&h)
        });
    ConsentPage {
        txn,
        api,
        client_name: client
            .get("client_name")
            .and_then(Value::as_str)
            .unwrap_or("An unnamed client")
            .to_string(),
        raw_name: s.fault("dcr-display-escaping"),
        redirect_host,
        client_host,
        loopback_warning,
        logo_uri: text("logo_uri"),
        policy_uri: text("policy_uri"),
        tos_uri: text("tos_uri"),
    }
}

/// POST `/as/login`.
pub fn login(s: &Ref, headers: &HeaderMap, body: &[u8]) -> Response {
    let f = pairs(&String::from_utf8_lossy(body));
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(txn) = get("txn") else {
        return error_page(s, "missing transaction");
    };
    match sign_in(
        s,
        headers,
        &txn,
        get("username").as_deref(),
        get("password").as_deref(),
    ) {
        SignIn::Unknown => error_page(s, "unknown or expired transaction"),
        SignIn::Refused => login_page(s, &txn, true),
        SignIn::Done(sid) => Response::builder()
            .status(303)
            .header("location", format!("/as/consent?txn={txn}"))
            .header("set-cookie", session_cookie(&sid))
            .body(Body::empty())
            .unwrap_or_default(),
    }
}

/// What a sign-in attempt came to.
pub(super) enum SignIn {
    /// No such transaction (or it expired).
    Unknown,
    /// Wrong username or password.
    Refused,
    /// Signed in: the browser session id (new, or the one the browser had).
    Done(String),
}

pub(super) fn session_cookie(sid: &str) -> String {
    format!("ref_sid={sid}; Path=/as; Secure; HttpOnly; SameSite=Lax")
}

/// Checks the credentials for transaction `txn` and signs the browser's session in.
pub(super) fn sign_in(
    s: &Ref,
    headers: &HeaderMap,
    txn: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> SignIn {
    if !s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending
        .contains_key(txn)
    {
        return SignIn::Unknown;
    }
    // Two test users, for the suite's cases about one user reaching another's session, state
    // or grants, and a few more, so cases running at once can each log in as their own.
    let user = [
        (&s.username, &s.password),
        (&s.second_username, &s.second_password),
    ]
    .into_iter()
    .chain(s.more_users.iter().map(|(u, p)| (u, p)))
    .find(|(u, p)| username == Some(u.as_str()) && password == Some(p.as_str()))
    .map(|(u, _)| u.clone());
    let Some(user) = user else {
        return SignIn::Refused;
    };
    let sid = {
        let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
        let sid = session_id(headers)
            .filter(|id| st.sessions.contains_key(id))
            .unwrap_or_else(|| st.new_session());
        if let Some(sess) = st.sessions.get_mut(&sid) {
            sess.user = Some(user.clone());
        }
        if let Some(p) = st.pending.get_mut(txn) {
            p.user = Some(user);
        }
        sid
    };
    SignIn::Done(sid)
}

/// GET (show) and POST (decide) `/as/consent`.
pub fn consent(
    s: &Ref,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let f = request_params(method, query, body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(txn) = get("txn") else {
        return error_page(s, "missing transaction");
    };
    let Some(t) = transaction(s, headers, &txn) else {
        return error_page(s, "unknown or expired transaction");
    };
    if !t.logged_in {
        return login_page(s, &txn, false);
    }
    if *method != Method::POST {
        if t.consent_given(s) {
            return issue(s, &txn);
        }
        return consent_page(s, &txn, &t.p);
    }
    decide(
        s,
        headers,
        &txn,
        &t.p,
        get("decision").as_deref() == Some("approve"),
    )
}

/// A pending authorization as the browser asking about it sees it.
pub(super) struct Transaction {
    pub p: Pending,
    pub logged_in: bool,
    /// The signed-in user already consented to this client.
    pub consented: bool,
}

impl Transaction {
    /// No consent page is due: given before, or (the fault) skipped for a public client.
    pub fn consent_given(&self, s: &Ref) -> bool {
        self.consented || (self.p.public && s.fault("code-public-client-consent"))
    }
}

/// Transaction `txn` with the browser's session; `None` when unknown or older than 10 minutes.
pub(super) fn transaction(s: &Ref, headers: &HeaderMap, txn: &str) -> Option<Transaction> {
    let sid = session_id(headers);
    let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let sess = sid.as_ref().and_then(|id| st.sessions.get(id));
    let p = st
        .pending
        .get(txn)
        .cloned()
        .filter(|p| p.created.elapsed().as_secs() < 600)?;
    Some(Transaction {
        consented: sess.is_some_and(|se| se.consented.contains(&p.client_id)),
        logged_in: sess.is_some_and(|x| x.user.is_some()),
        p,
    })
}

/// The user's decision on transaction `txn`: the authorization response (or, under the
/// code-access-denied fault, a dead end).
pub(super) fn decide(
    s: &Ref,
    headers: &HeaderMap,
    txn: &str,
    p: &Pending,
    approve: bool,
) -> Response {
    if approve {
        if let Some(id) = session_id(headers)
            && let Some(sess) = s
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .sessions
                .get_mut(&id)
        {
            sess.consented.insert(p.client_id.clone());
        }
        return issue(s, txn);
    }
    s.store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending
        .remove(txn);
    if s.fault("code-access-denied") {
        return error_page(s, "access denied");
    }
    error_redirect(s, p, "access_denied", "the user denied the request")
}

/// Issues the code for a consented transaction and redirects back to the client.
pub(super) fn issue(s: &Ref, txn: &str) -> Response {
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = st.pending.remove(txn) else {
        drop(st);
        return error_page(s, "unknown or expired transaction");
    };
    let code = if s.fault("code-entropy") {
        st.seq += 1;
        format!("code{:06}", st.seq)
    } else if s.fault("pkce-challenge-not-leaked") {
        // An unencrypted JWT-shaped code that carries the challenge.
        let claims = serde_json::json!({ "cid": p.client_id, "code_challenge": p.challenge, "n": random_id(8) });
        format!(
            "eyJhbGciOiJub25lIn0.{}.",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    } else {
        random_id(32)
    };
    st.add_code(code.clone(), p.clone());
    drop(st);
    let mut params = vec![("code", code)];
    if s.fault("code-response-param-unique") {
        params.push(("code", random_id(8)));
    }
    respond(s, &p, params)
}
