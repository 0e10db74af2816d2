//! Transport security (catalogue area 13).
//!
//! - OAuth 2.1 §1.5: every exchange with the authorization server and the resource server uses
//!   TLS (per BCP 195), and clients validate the server's certificate chain and host name.
//! - MCP 2025-11-25 §11.3: all authorization server endpoints are served over https.
//! - RFC 7568 §2 (SSL 3.0 MUST NOT be used), RFC 8996 §4-§5 (TLS 1.0 and 1.1 MUST NOT be
//!   negotiated), RFC 9325 (BCP 195) §4.1 (no NULL, RC4, export or < 112-bit suites; no
//!   anonymous key exchange) and §4.2 (AEAD suites recommended).
//!
//! Plain-http targets. An endpoint or MCP URL that is itself `http://` is judged by the same rule
//! as `asm-endpoints-https` ([`https_rule`]): a failure, reported as a tolerated warning only when
//! the host is loopback (local development). There is no certificate or handshake to judge then,
//! but skipping would hide the one finding that matters (no TLS at all), so these cases fail.
//!
//! The TLS version probe writes its own ClientHello (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2): rustls,
//! the harness's TLS stack, cannot offer SSL 3.0, TLS 1.0 or 1.1 at all. It reads only the first
//! record of the answer (a ServerHello or an alert), bounded in time and size, and never
//! completes a handshake: the start of a negotiation is what shows the version is accepted.

use std::time::Instant;

use serde_json::Value;

use super::https_rule;
use crate::http::{HttpError, Request, Response};
use crate::record::Exchange;
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::tls_hello::{Answer, OFFERS, PROBE_WAIT, Want, client_hello, send_hello, version_name};

/// The AS endpoints tls-as tries over plain http (MCP §11.3 names all of them).
const AS_ENDPOINTS: [&str; 5] = [
    "token_endpoint",
    "authorization_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
];

fn is_https(u: &str) -> bool {
    u.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn stop_text(s: &Stop) -> &str {
    match s {
        Stop::Pass(m) | Stop::Fail(m) | Stop::Skip(m) | Stop::Error(m) => m,
    }
}

/// The plain-http twins of an https URL: the same host, path and query with `http://`. With an
/// explicit port, that port; with the default port, both port 80 (where an http listener usually
/// lives) and port 443 (the https port itself, which must not speak plain HTTP).
fn plain_twins(u: &str) -> Vec<String> {
    if !is_https(u) {
        return Vec::new();
    }
    let rest = &u[8..];
    let rest = rest.split('#').next().unwrap_or(rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let port = authority
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some((host, p)) if p != "443" => vec![format!("http://{host}:{p}{tail}")],
        _ => {
            let host = port.map(|(h, _)| h).unwrap_or(authority);
            vec![
                format!("http://{host}{tail}"),
                format!("http://{host}:443{tail}"),
            ]
        }
    }
}

/// What one plain-http answer shows: `Ok` (refused, or redirected with nothing processed) or
/// `Err` (the request was processed over plain http).
fn judge_plain(result: &Result<Response, HttpError>, token_key: &str) -> Result<String, String> {
    let r = match result {
        Err(e) => return Ok(format!("refused over plain http ({e})")),
        Ok(r) => r,
    };
    let json = r.json();
    if let Some(t) = json.as_ref().and_then(|j| j.get(token_key)) {
        return Err(format!(
            "answered {} with {token_key} {} over plain http",
            r.status,
            if t.is_string() { "(a credential)" } else { "" }
        ));
    }
    if (300..400).contains(&r.status) {
        let loc = r.header("location").unwrap_or("");
        if is_https(loc) {
            return Ok(format!(
                "redirected ({}) to {loc}, with nothing processed",
                r.status
            ));
        }
        return Err(format!(
            "answered {} with Location {loc:?}: the request was processed over plain http",
            r.status
        ));
    }
    if r.status < 300 {
        return Err(format!(
            "answered {} over plain http: the request was processed",
            r.status
        ));
    }
    if let Some(err) = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_str)
    {
        let desc = json
            .as_ref()
            .and_then(|j| j.get("error_description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let d = desc.to_ascii_lowercase();
        if ["https", "ssl", "tls", "secure"]
            .iter()
            .any(|w| d.contains(w))
        {
            return Ok(format!(
                "refused with {} {err}: {desc:?} (an https-required answer)",
                r.status
            ));
        }
        return Err(format!(
            "answered {} with the OAuth error {err:?}: the request was processed over plain http",
            r.status
        ));
    }
    Ok(format!(
        "answered {} without an OAuth answer (not processed)",
        r.status
    ))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// tls-as (OAuth 2.1 §1.5, MCP 2025-11-25 §11.3): the AS endpoints over plain http are refused
/// or redirected to https, with nothing processed: no token, no OAuth answer, no login page.
pub async fn tls_as(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some(doc) = ctx.discovery(on)?.doc() else {
        let e = Stop::Error("no authorization server metadata (see asm-available)".into());
        return Err(crate::step::discovery::without_doc(ctx, e, "asm-available"));
    };
    // A client the AS knows, so that a processing AS shows its login page or a real grant
    // error rather than an unknown-client page; nothing is registered for this probe.
    let (client_id, redirect) = match ctx.saved.get("client") {
        Some(Saved::Client(c)) => (c.client_id.clone(), c.redirect_uris.first().cloned()),
        _ => match ctx.env.profile.clients.first() {
            Some(c) => (c.client_id.clone(), c.redirect_uris.first().cloned()),
            None => ("authconform-tls-probe".to_string(), None),
        },
    };
    let redirect = redirect.unwrap_or_else(|| "https://client.test/cb".into());
    let verifier = crate::step::authorize::new_verifier();
    let mut endpoints = Vec::new();
    for key in AS_ENDPOINTS {
        let Some(Value::String(u)) = doc.get(key) else {
            if key == "token_endpoint" {
                ctx.note("the metadata names no token_endpoint");
            }
            continue;
        };
        if !is_https(u) {
            // Advertised as plain http: the violation is in the metadata itself.
            https_rule(ctx, key, u)?;
            continue;
        }
        endpoints.push((key, u.clone()));
    }
    if endpoints.is_empty() {
        if ctx.warnings.is_empty() {
            return Err(Stop::Error(
                "the metadata names no AS endpoint to try over plain http".into(),
            ));
        }
        return Ok(());
    }
    let mut processed = Vec::new();
    let (n_endpoints, mut n_probes) = (endpoints.len(), 0);
    for (key, u) in endpoints {
        for plain in plain_twins(&u) {
            let req = match key {
                "authorization_endpoint" => {
                    let sep = if plain.contains('?') { '&' } else { '?' };
                    let q = format!(
                        "response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=authconform-tls-probe",
                        enc(&client_id),
                        enc(&redirect),
                        crate::step::authorize::s256(&verifier)
                    );
                    Request::new(
                        "GET",
                        format!("{plain}{sep}{q}"),
                        "authorization request over plain http",
                    )
                }
                "registration_endpoint" => Request::new(
                    "POST",
                    plain.clone(),
                    "an (empty) registration over plain http",
                )
                .header("Content-Type", "application/json")
                .body("{}"),
                "token_endpoint" => Request::new(
                    "POST",
                    plain.clone(),
                    "a token request (made-up code) over plain http",
                )
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=authorization_code&code=authconform-tls-probe&redirect_uri={}&code_verifier={verifier}&client_id={}",
                    enc(&redirect),
                    enc(&client_id)
                )),
                _ => Request::new("POST", plain.clone(), format!("{key} over plain http"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "token=authconform-tls-probe&client_id={}",
                        enc(&client_id)
                    )),
            };
            // Refusing plain http is the passing outcome: not a sign of a dead server.
            let result = ctx.send(req.expecting_failure()).await;
            n_probes += 1;
            let token_key = if key == "registration_endpoint" {
                "client_id"
            } else {
                "access_token"
            };
            match judge_plain(&result, token_key) {
                Ok(m) => ctx.pass(format!("{key} at {plain}: {m}")),
                Err(m) => {
                    let m = format!("{key} at {plain}: {m}");
                    ctx.note(format!("FAILED: {m}"));
                    processed.push(m);
                }
            }
        }
    }
    if let Some(first) = processed.first() {
        return Err(Stop::Fail(if processed.len() > 1 {
            format!("{first} (and {} more)", processed.len() - 1)
        } else {
            first.clone()
        }));
    }
    ctx.pass(format!(
        "{n_probes} plain-http request(s) to {n_endpoints} AS endpoint(s): none was processed (refused, or redirected to https)"
    ));
    Ok(())
}

/// tls-rs (OAuth 2.1 §1.5): the MCP endpoint over plain http does not accept a valid token.
pub async fn tls_rs(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    if !is_https(&resource) {
        return https_rule(ctx, "the MCP endpoint", &resource);
    }
    let at = match ctx.saved.get(on).and_then(|s| s.response()) {
        Some((_, r)) => r.json().and_then(|j| {
            j.get("access_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        None => return Err(Stop::Error(format!("nothing saved as `{on}`"))),
    };
    let Some(at) = at else {
        return Err(Stop::Error(format!("`{on}` holds no access token")));
    };
    let mut accepted = Vec::new();
    for plain in plain_twins(&resource) {
        let (body, headers) = crate::step::request::mcp_body("initialize", ctx.env.revision);
        let mut req = Request::new(
            "POST",
            plain.clone(),
            "the valid access token to the MCP endpoint over plain http",
        )
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("Authorization", format!("Bearer {at}"))
        .body(body)
        .expecting_failure();
        for (n, v) in headers {
            req = req.header(n, v);
        }
        match ctx.send(req).await {
            Err(e) => ctx.pass(format!("{plain}: refused over plain http ({e})")),
            Ok(r) if r.status < 300 => {
                let m = format!("{plain} accepted the token over plain http ({})", r.status);
                ctx.note(format!("FAILED: {m}"));
                accepted.push(m);
            }
            Ok(r) if (300..400).contains(&r.status) => ctx.pass(format!(
                "{plain}: redirected ({}) to {:?}; the token was not accepted",
                r.status,
                r.header("location").unwrap_or("")
            )),
            Ok(r) => ctx.pass(format!(
                "{plain}: answered {}; the token was not accepted",
                r.status
            )),
        }
    }
    match accepted.first() {
        Some(m) => Err(Stop::Fail(m.clone())),
        None => {
            ctx.pass("the valid token was not accepted at the MCP URL over plain http");
            Ok(())
        }
    }
}

/// The metadata members naming URLs a client of this AS talks to (RFC 8414 §2, RFC 7009,
/// RFC 7662, RFC 9126, RFC 8628, OIDC Discovery §3).
const METADATA_URLS: [&str; 10] = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "jwks_uri",
    "pushed_authorization_request_endpoint",
    "device_authorization_endpoint",
    "userinfo_endpoint",
];

/// Origins probed at most (a metadata document may name any number of hosts).
const MAX_ORIGINS: usize = 8;

/// One origin the TLS cases look at: `scheme://host[:port]`, the first URL seen there, and what
/// it is (the MCP endpoint, an AS endpoint...).
struct Origin {
    origin: String,
    url: String,
    what: Vec<String>,
}

fn origin_of(u: &str) -> Option<String> {
    let p = url::Url::parse(u).ok()?;
    Some(crate::discovery::origin(&p).to_ascii_lowercase())
}

/// The MCP endpoint's and the AS's origins. AS discovery failing (it will, when TLS to the
/// resource fails) is noted: the origins known so far are still judged.
async fn origins(ctx: &mut CaseCtx<'_>) -> Vec<Origin> {
    let mut urls: Vec<(String, String)> = Vec::new();
    if let Some(r) = &ctx.env.target.resource {
        urls.push(("the MCP endpoint".into(), r.clone()));
    }
    if let Some(i) = &ctx.env.target.issuer {
        urls.push(("the issuer".into(), i.clone()));
    }
    match crate::step::discovery::shared_as_metadata(ctx).await {
        Ok(Saved::Discovery(d)) => {
            if let Some(a) = d.chosen() {
                urls.push(("the AS metadata".into(), a.url.clone()));
            }
            if let Some(doc) = d.doc() {
                for k in METADATA_URLS {
                    if let Some(Value::String(u)) = doc.get(k) {
                        urls.push((k.to_string(), u.clone()));
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => ctx.note(format!(
            "the AS metadata could not be read ({}); only the origins known without it are checked",
            stop_text(&e)
        )),
    }
    let mut out: Vec<Origin> = Vec::new();
    for (what, u) in urls {
        if out.len() >= MAX_ORIGINS
            && origin_of(&u).is_some_and(|o| out.iter().all(|x| x.origin != o))
        {
            ctx.note(format!(
                "{what} {u:?}: more than {MAX_ORIGINS} origins; not checked"
            ));
            continue;
        }
        let Some(o) = origin_of(&u) else {
            ctx.note(format!("{what} {u:?} is not an absolute URL; not checked"));
            continue;
        };
        match out.iter_mut().find(|x| x.origin == o) {
            Some(x) => {
                if !x.what.contains(&what) {
                    x.what.push(what);
                }
            }
            None => out.push(Origin {
                origin: o,
                url: u,
                what: vec![what],
            }),
        }
    }
    out
}

fn is_cert_error(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "notvalidforname",
        "expired",
        "badsignature",
        "self signed",
        "self-signed",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// tls-cert (OAuth 2.1 §1.5; RFC 9110 §4.3.4 https authority; RFC 5280 §6 path validation):
/// the harness connects to every https origin of the AS and the MCP endpoint with full
/// validation (chain to a trusted root, validity period, host name). Any HTTP answer means the
/// certificate validated; a certificate error is the failure, with the TLS error as evidence.
pub async fn tls_cert(ctx: &mut CaseCtx<'_>) -> StepResult {
    let list = origins(ctx).await;
    if list.is_empty() {
        return Err(Stop::Skip(
            "no MCP endpoint or authorization server to check".into(),
        ));
    }
    let (mut bad, mut unknown, mut good) = (Vec::new(), Vec::new(), 0);
    for o in list {
        let what = o.what.join(", ");
        if !o.origin.starts_with("https://") {
            plain_origin(ctx, &what, &o.url).await?;
            continue;
        }
        let req = Request::new(
            "GET",
            o.url.clone(),
            format!(
                "TLS to {} ({what}); the harness validates the chain and the host name",
                o.origin
            ),
        );
        match ctx.send(req).await {
            Ok(r) => {
                good += 1;
                ctx.pass(format!(
                    "{} ({what}): the certificate chain and host name validated (HTTP {})",
                    o.origin, r.status
                ));
            }
            Err(HttpError::Transport(e)) if is_cert_error(&e) => {
                let m = format!(
                    "{} ({what}): the certificate does not validate: {e}",
                    o.origin
                );
                ctx.note(format!("FAILED: {m}"));
                bad.push(m);
            }
            Err(e) => {
                let m = format!("{} ({what}): no TLS connection: {e}", o.origin);
                ctx.note(m.clone());
                unknown.push(m);
            }
        }
    }
    if let Some(m) = bad.first() {
        return Err(Stop::Fail(m.clone()));
    }
    if good == 0
        && let Some(m) = unknown.first()
    {
        return Err(Stop::Error(m.clone()));
    }
    if good > 0 {
        ctx.pass(format!(
            "{good} https origin(s): the certificate chain and host name validated"
        ));
    }
    Ok(())
}

/// A plain-http origin breaks the https rule, but only a server that answers can be judged: an
/// unreachable one leaves the case errored, like every other case of a run against nothing.
async fn plain_origin(ctx: &mut CaseCtx<'_>, what: &str, url: &str) -> StepResult {
    let req = Request::new("GET", url, format!("is {url} ({what}) there at all?"));
    if let Err(e) = ctx.send(req).await {
        return Err(Stop::Error(format!("{url} ({what}): no answer: {e}")));
    }
    https_rule(ctx, what, url)
}

/// tls-modern-config (OAuth 2.1 §1.5 → BCP 195; RFC 7568, RFC 8996, RFC 9325): on every https
/// origin of the AS and the MCP endpoint, ClientHellos offering only SSL 3.0, TLS 1.0, TLS 1.1 or
/// weak TLS 1.2 suites are refused, and TLS 1.2 (AEAD) or 1.3 starts a negotiation.
pub async fn tls_modern_config(ctx: &mut CaseCtx<'_>) -> StepResult {
    let list = origins(ctx).await;
    if list.is_empty() {
        return Err(Stop::Skip(
            "no MCP endpoint or authorization server to check".into(),
        ));
    }
    let mut fails = Vec::new();
    let mut judged = Vec::new();
    let cfg = ctx.env.http.config();
    let waits = (
        cfg.connect_timeout.min(PROBE_WAIT),
        cfg.timeout.min(PROBE_WAIT),
    );
    for o in list {
        let what = o.what.join(", ");
        if !o.origin.starts_with("https://") {
            plain_origin(ctx, &what, &o.url).await?;
            continue;
        }
        let Ok(u) = url::Url::parse(&o.origin) else {
            continue;
        };
        let sni = match u.host() {
            Some(url::Host::Domain(d)) => Some(d.to_string()),
            Some(_) => None,
            None => continue,
        };
        // Origins come from the server's metadata: the egress policy checks them like any URL.
        let addrs = match &cfg.egress {
            Some(p) => match crate::egress::resolve_checked(p, &o.origin).await {
                Ok(a) => a,
                Err(e) => {
                    ctx.note(format!("{} ({what}): not probed: {e}", o.origin));
                    continue;
                }
            },
            None => match tokio::net::lookup_host((
                u.host_str().unwrap_or_default().trim_matches(['[', ']']),
                u.port_or_known_default().unwrap_or(443),
            ))
            .await
            {
                Ok(a) => a.collect(),
                Err(e) => {
                    ctx.note(format!("{} ({what}): not probed: {e}", o.origin));
                    continue;
                }
            },
        };
        let mut modern = Vec::new();
        for offer in OFFERS {
            // The positive controls come first: without one, refusals prove nothing.
            if offer.want != Want::Accept && modern.is_empty() {
                return Err(Stop::Error(format!(
                    "{} ({what}): neither TLS 1.2 nor TLS 1.3 started a negotiation with the probe, so its refusals would prove nothing",
                    o.origin
                )));
            }
            let hello = client_hello(offer, sni.as_deref());
            let started = Instant::now();
            let answer = send_hello(&addrs, &hello, waits).await;
            ctx.exchanges.push(Exchange {
                note: format!("ClientHello offering {} ({what})", offer.label),
                method: "TLS".into(),
                url: format!("tls://{}", o.origin.trim_start_matches("https://")),
                request_headers: vec![
                    ("record-version".into(), version_name(offer.record)),
                    ("client-version".into(), version_name(offer.legacy)),
                    (
                        "cipher-suites".into(),
                        offer
                            .suites
                            .iter()
                            .map(|s| format!("0x{s:04x}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    ("server-name".into(), sni.clone().unwrap_or_default()),
                ],
                request_body: None,
                status: None,
                response_headers: Vec::new(),
                response_body: matches!(answer, Answer::Hello { .. }).then(|| answer.describe()),
                body_truncated: false,
                // No HTTP response by design: the probe stops after the first TLS record.
                error: Some(match answer {
                    Answer::Hello { .. } => {
                        format!(
                            "the probe stops after the first record: {}",
                            answer.describe()
                        )
                    }
                    _ => answer.describe(),
                }),
                duration_ms: started.elapsed().as_millis() as u64,
            });
            if let Answer::Unreachable(e) = &answer {
                return Err(Stop::Error(format!(
                    "{} ({what}): cannot probe TLS: {e}",
                    o.origin
                )));
            }
            let tag = format!("{} offering {}", o.origin, offer.label);
            match (offer.want, &answer) {
                (Want::Accept, Answer::Hello { version, .. }) if *version == offer.negotiates() => {
                    ctx.pass(format!("{tag}: {}", answer.describe()));
                    modern.push(offer.label);
                }
                (Want::Accept, a) => ctx.note(format!("{tag}: not negotiated ({})", a.describe())),
                (Want::Refuse(rule) | Want::Discourage(rule), Answer::Hello { version, .. })
                    if (offer.legacy < 0x0303 && *version < 0x0303)
                        || (offer.legacy == 0x0303 && *version == 0x0303) =>
                {
                    let m = format!("{tag}: accepted, {} ({rule})", answer.describe());
                    if matches!(offer.want, Want::Refuse(_)) {
                        ctx.note(format!("FAILED: {m}"));
                        fails.push(m);
                    } else {
                        ctx.warn(m);
                    }
                }
                (_, Answer::Hello { .. }) => ctx.pass(format!(
                    "{tag}: not negotiated: the server answered {}, which such a client aborts",
                    answer.describe()
                )),
                (_, a) => ctx.pass(format!("{tag}: refused ({})", a.describe())),
            }
        }
        judged.push(format!("{} ({})", o.origin, modern.join(", ")));
    }
    if let Some(first) = fails.first() {
        return Err(Stop::Fail(if fails.len() > 1 {
            format!("{first} (and {} more)", fails.len() - 1)
        } else {
            first.clone()
        }));
    }
    if !judged.is_empty() {
        ctx.pass(format!(
            "SSL 3.0, TLS 1.0, TLS 1.1 and weak TLS 1.2 suites refused; negotiated: {}",
            judged.join("; ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_twins_keep_host_path_and_port() {
        assert_eq!(
            plain_twins("https://127.0.0.1:8443/as/token?x=1#f"),
            vec!["http://127.0.0.1:8443/as/token?x=1"]
        );
        assert_eq!(
            plain_twins("https://as.example/token"),
            vec!["http://as.example/token", "http://as.example:443/token"]
        );
        assert_eq!(
            plain_twins("HTTPS://[::1]:443/t"),
            vec!["http://[::1]/t", "http://[::1]:443/t"]
        );
        assert_eq!(
            plain_twins("https://[::1]"),
            vec!["http://[::1]", "http://[::1]:443"]
        );
        assert!(plain_twins("http://as.example/token").is_empty());
    }
}
