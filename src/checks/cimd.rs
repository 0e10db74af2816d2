//! Client ID Metadata Document checks a declarative step cannot state: the support flag
//! against what the AS was seen to do, the control fetch itself, and what the consent page
//! tells the user about a client named by a URL.

use crate::cimd;
use crate::step::authorize;
use crate::step::document;
use crate::step::{CaseCtx, StepResult, Stop};

/// `cimd-flag`: an AS that accepts metadata documents says so in its metadata.
pub async fn flag(ctx: &mut CaseCtx<'_>) -> StepResult {
    let c = control(ctx).await?;
    match (c.accepted, c.advertised) {
        (true, Some(true)) => {
            ctx.pass("the AS accepts metadata documents and advertises client_id_metadata_document_supported: true");
            Ok(())
        }
        (true, other) => ctx.fail(format!(
            "the AS fetched and accepted a client metadata document but its metadata {}",
            match other {
                Some(_) => "says client_id_metadata_document_supported: false",
                None => "does not list client_id_metadata_document_supported",
            }
        )),
        (false, Some(true)) => {
            ctx.pass("the AS advertises client_id_metadata_document_supported: true (whether it honours it is cimd-fetch's question)");
            Ok(())
        }
        (false, _) => Err(Stop::Skip(format!(
            "the AS neither advertises nor accepts metadata documents: {}",
            c.summary
        ))),
    }
}

/// `cimd-fetch`: given a valid document's URL as client_id, the AS fetches it and lets the
/// client through.
pub async fn fetch(ctx: &mut CaseCtx<'_>) -> StepResult {
    let c = control(ctx).await?;
    if c.accepted {
        ctx.pass(format!("control: {}", c.summary));
        return Ok(());
    }
    if !c.fetched && !c.dropped.is_empty() {
        return Err(Stop::Error(format!(
            "the AS could not be seen to fetch: {}",
            c.summary
        )));
    }
    match (c.fetched, c.advertised) {
        (false, Some(true)) => ctx.fail(format!(
            "the AS advertises client_id_metadata_document_supported but never fetched a valid document: {}",
            c.summary
        )),
        (false, _) => Err(Stop::Skip(format!(
            "the AS does not support Client ID Metadata Documents: {}",
            c.summary
        ))),
        (true, _) => ctx.fail(format!(
            "the AS fetched a valid document but refused the client: {}",
            c.summary
        )),
    }
}

/// `cimd-url-port`: the control's document is on a non-default port; the AS must connect to
/// that port (an AS that drops the port never reaches the host).
pub async fn port(ctx: &mut CaseCtx<'_>) -> StepResult {
    let docs = document::documents(ctx)?.clone();
    let base = docs.host.base_url.clone();
    let port = crate::step::client::redirect_parts(&base)["port"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches(':')
        .to_string();
    if port.is_empty() || port == "443" {
        return Err(Stop::Skip(format!(
            "the document host is reached at {base}, on the default port"
        )));
    }
    let c = control(ctx).await?;
    if c.fetched || !c.dropped.is_empty() {
        ctx.pass(format!(
            "the AS connected to the document host on port {port}: {}",
            c.summary
        ));
        return Ok(());
    }
    match c.advertised {
        Some(true) => ctx.fail(format!(
            "the AS advertises client_id_metadata_document_supported but never connected to port {port} of the control's client_id: {}",
            c.summary
        )),
        _ => Err(Stop::Skip(format!(
            "the AS does not support Client ID Metadata Documents: {}",
            c.summary
        ))),
    }
}

async fn control(ctx: &mut CaseCtx<'_>) -> Result<cimd::Control, Stop> {
    let c = control_inner(ctx).await;
    document::attach_control_evidence(ctx);
    c
}

async fn control_inner(ctx: &mut CaseCtx<'_>) -> Result<cimd::Control, Stop> {
    // `ready` turns a refused control into skip/error for the other cases; these two judge
    // the control itself, so they take it whatever it says.
    match document::ready(ctx).await {
        Ok(c) => Ok(c),
        Err(Stop::Skip(m)) if m.contains("--public-base-url") => Err(Stop::Skip(m)),
        Err(_) => document::control_result(ctx)
            .ok_or_else(|| Stop::Error("the CIMD control did not run".into())),
    }
}

/// The visible text of a page (what a user reads; attribute values such as form actions
/// do not count).
fn visible_text(html: &str) -> String {
    const HIDDEN: &[&str] = &["style", "script", "noscript", "template", "head"];
    let doc = scraper::Html::parse_document(html);
    let mut out = String::new();
    for node in doc.tree.nodes() {
        if let scraper::Node::Text(t) = node.value() {
            let hidden = node.ancestors().any(
                |a| matches!(a.value(), scraper::Node::Element(e) if HIDDEN.contains(&e.name())),
            );
            if !hidden {
                out.push_str(t);
                out.push(' ');
            }
        }
    }
    out
}

fn consent_text(ctx: &CaseCtx<'_>, on: &str) -> Result<String, Stop> {
    let a = authorize::authorization(ctx, on)?;
    a.journey
        .pages
        .iter()
        .find(|p| p.kind == "consent")
        .map(|p| visible_text(&p.body))
        .ok_or_else(|| Stop::Skip("the AS showed no consent page".into()))
}

/// `cimd-display-hostname`: the consent page shows the redirect URI's host (MUST) and the
/// client_id URL's host (SHOULD), not only the client_name the document's author chose.
pub fn shows_hosts(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let text = consent_text(ctx, on)?;
    let a = authorize::authorization(ctx, on)?.clone();
    let host = |u: &str| {
        crate::step::client::redirect_parts(u)["host"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let redirect_host = host(a.redirect_uri.as_deref().unwrap_or(""));
    let client_host = host(&a.client.client_id);
    if redirect_host.is_empty() || !text.contains(&redirect_host) {
        return ctx.fail(format!(
            "the consent page does not show the redirect URI's host {redirect_host:?}"
        ));
    }
    if !text.contains(&client_host) {
        ctx.warn(format!(
            "the consent page shows the redirect host {redirect_host:?} but not the client_id's host {client_host:?} (SHOULD)"
        ));
        return Ok(());
    }
    ctx.pass(format!(
        "the consent page shows the redirect host {redirect_host:?} and the client_id host {client_host:?}"
    ));
    Ok(())
}

/// `cimd-localhost-warning`: a client whose only redirect URIs are on loopback gets a warning
/// on the consent page (any local program can claim such a client). A differential heuristic:
/// a warning word must appear on that client's consent page and not on the `baseline` page of
/// a client with an https redirect URI (so a page that always says "warning" proves nothing).
pub fn localhost_warning(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &std::collections::BTreeMap<String, toml::Value>,
) -> StepResult {
    let baseline_name = super::arg_str(args, "baseline", "baseline");
    let baseline = consent_text(ctx, baseline_name)?.to_lowercase();
    let text = consent_text(ctx, on)?.to_lowercase();
    const WORDS: &[&str] = &[
        "warning",
        "caution",
        "localhost",
        "this device",
        "this computer",
        "loopback",
        "local application",
        "local program",
    ];
    match WORDS
        .iter()
        .find(|w| text.contains(*w) && !baseline.contains(*w))
    {
        Some(w) => {
            ctx.pass(format!(
                "the consent page warns ({w:?}, absent from the page of a client with an https redirect URI)"
            ));
            Ok(())
        }
        None => {
            ctx.warn(format!(
                "the consent page for a client that only redirects to loopback shows no warning the page of an https client lacks (looked for {})",
                WORDS.join(", ")
            ));
            Ok(())
        }
    }
}

/// `cimd-trust-policy` (MCP 2025-11-25 §11.6.3, CIMD-00 §6.8): an AS may trust any document
/// host or only some; both are conforming. What it did with a valid document is reported
/// against the trust policy the profile describes; without that description a refusal could
/// not be told from a failure, so the case is skipped. Only a server error is held against it.
pub fn trust_policy(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let Some(policy) = ctx.env.profile.cimd.trust_policy.clone() else {
        return Err(Stop::Skip(
            "no [cimd] trust_policy in the profile: what the AS's policy trusts is unknown, so a refusal could not be told from a failure".into(),
        ));
    };
    let a = authorize::authorization(ctx, on)?.clone();
    if a.code().is_some() {
        ctx.pass(format!(
            "the AS accepted a client whose document it had no prior relation with ({}); documented policy: {policy}",
            a.describe()
        ));
        return Ok(());
    }
    if let crate::login::Outcome::Page { status, .. } = &a.journey.outcome
        && *status >= 500
    {
        return ctx.fail(format!(
            "the AS failed with {status} on a valid document instead of accepting it or refusing it by policy"
        ));
    }
    ctx.pass(format!(
        "the AS refused the client ({}), which its documented policy allows: {policy}",
        a.describe()
    ));
    Ok(())
}

/// `cimd-refetch-on-token` (CIMD-00 §4.4, policy): at the token endpoint the AS may fetch the
/// document again or use its cached copy. The code of the authorization saved as `on` is
/// redeemed, and the document host's log says which the AS chose; either passes.
pub async fn refetch_on_token(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    if authorize::authorization(ctx, on)?.code().is_none() {
        return Err(Stop::Error(
            "the authorization brought no code to redeem".into(),
        ));
    }
    let docs = document::documents(ctx)?.clone();
    let dir = format!("{}/", document::case_dir(ctx, &docs));
    let before = docs.host.fetches_under(&dir).len();
    let saved =
        crate::step::token::token(ctx, &crate::step::token::redeeming(on, Default::default()))
            .await?;
    let status = saved.response().map(|(_, r)| r.status).unwrap_or(0);
    document::attach_evidence(ctx);
    if status != 200 {
        return Err(Stop::Error(format!(
            "the code was not redeemed ({status}): the token endpoint's use of the document cannot be seen"
        )));
    }
    let after = docs.host.fetches_under(&dir).len();
    if after > before {
        ctx.pass(format!(
            "the AS fetched the document again at the token endpoint ({} request(s); {before} during the authorization): its policy is to re-check the client",
            after - before
        ));
    } else {
        ctx.pass(format!(
            "the AS used its cached copy at the token endpoint (no request; {before} during the authorization)"
        ));
    }
    Ok(())
}

/// The rebinding DNS server and the rebound listener, or why the rebinding cannot be staged
/// (skipped: the AS does not resolve through authconform, or [::1] is unavailable).
fn rebinding(docs: &cimd::Documents) -> Result<(&cimd::dns::RebindDns, String), Stop> {
    let dns = docs.dns.as_ref().map_err(|why| Stop::Skip(why.clone()))?;
    let rebound = docs
        .host
        .rebound
        .clone()
        .map_err(|why| Stop::Skip(format!("no rebound listener: {why}")))?;
    Ok((dns, rebound))
}

/// `cimd-ssrf-dns-rebind`'s first step: skipped before any document or control request when
/// the rebinding cannot be staged.
pub fn rebind_ready(ctx: &mut CaseCtx<'_>) -> StepResult {
    let docs = document::documents(ctx)?.clone();
    let (dns, rebound) = rebinding(&docs)?;
    ctx.note(format!(
        "the AS resolves through authconform's DNS server at {}; the rebound listener is {rebound}",
        dns.addr
    ));
    Ok(())
}

/// `cimd-ssrf-dns-rebind` (MCP security best practices, SSRF: DNS resolution; CIMD-01 §6): the
/// client_id names [`cimd::dns::REBIND_HOST`], which the run's DNS server first resolves to
/// 127.0.0.1 (the document host) and, from the next lookup on, to ::1 (the rebound listener on
/// the same port). An AS that checks the address it resolved and then connects to that same
/// address (pinning), or checks again at connect time, never reaches ::1. One that checks by
/// name and lets its HTTP client resolve again does.
pub async fn dns_rebind(ctx: &mut CaseCtx<'_>) -> StepResult {
    let docs = document::documents(ctx)?.clone();
    let (dns, rebound) = rebinding(&docs)?;
    let client_id = ctx
        .doc_vars
        .get("client_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if !client_id.contains(cimd::dns::REBIND_HOST) {
        return Err(Stop::Error(format!(
            "the case's client_id {client_id} does not name {}",
            cimd::dns::REBIND_HOST
        )));
    }
    let mark = dns.arm();
    let connections = docs.host.connection_mark();
    let auth = authorize::authorize(
        ctx,
        &crate::case::model::AuthorizeStep {
            expect: crate::case::model::AuthzExpect::Any,
            ..Default::default()
        },
    )
    .await?;
    document::attach_evidence(ctx);
    let queries = dns.queries_since(mark);
    let ours: Vec<_> = queries
        .iter()
        .filter(|q| q.name == cimd::dns::REBIND_HOST)
        .collect();
    let log = ours
        .iter()
        .map(|q| format!("{} {} {} → {}", q.at, q.qtype, q.name, q.answer))
        .collect::<Vec<_>>()
        .join("; ");
    if !log.is_empty() {
        ctx.note(format!("DNS questions for the rebinding name: {log}"));
    }
    let dir = format!("{}/", document::case_dir(ctx, &docs));
    let fetched = |l: cimd::host::Listener| {
        docs.host
            .fetches_under(&dir)
            .iter()
            .filter(|f| f.listener == l)
            .count()
    };
    let reached: Vec<_> = docs
        .host
        .connections_since(connections)
        .into_iter()
        .filter(|c| c.listener == cimd::host::Listener::Rebound)
        .collect();
    let (pinned, rebound_fetches) = (
        fetched(cimd::host::Listener::Https),
        fetched(cimd::host::Listener::Rebound),
    );
    if rebound_fetches > 0 || !reached.is_empty() {
        return ctx.fail(format!(
            "the AS connected to {rebound}, the address {} resolved to only on its second lookup: the address it checked was not the one it connected to ({} connection(s), {rebound_fetches} request(s) there)",
            cimd::dns::REBIND_HOST,
            reached.len()
        ));
    }
    if pinned > 0 {
        ctx.pass(format!(
            "the AS fetched the document from 127.0.0.1, the address {} first resolved to ({} DNS question(s)), and never from {rebound}: no later lookup steered the connection (whether the address is checked at all is cimd-ssrf-special-ip's question)",
            cimd::dns::REBIND_HOST,
            ours.len()
        ));
        return Ok(());
    }
    if ours.is_empty() {
        return Err(Stop::Skip(format!(
            "the AS asked authconform's DNS server ({}) nothing about {}: it does not resolve through it, or refused the name itself ({})",
            dns.addr,
            cimd::dns::REBIND_HOST,
            auth.describe()
        )));
    }
    if ours.iter().any(|q| q.rebound && q.qtype == "AAAA") {
        ctx.pass(format!(
            "the AS looked {} up again, was told ::1, and connected nowhere: it checks the address at connect time",
            cimd::dns::REBIND_HOST
        ));
        return Ok(());
    }
    if ours.iter().any(|q| q.rebound) {
        return Err(Stop::Skip(format!(
            "the AS looked {} up again but asked for IPv4 addresses only, and the rebound address is IPv6 loopback: the rebinding was not exercised",
            cimd::dns::REBIND_HOST
        )));
    }
    Err(Stop::Skip(format!(
        "the AS resolved {} once and fetched nothing ({}): it refused the client before any connection, so the rebinding was not exercised",
        cimd::dns::REBIND_HOST,
        auth.describe()
    )))
}

/// `cimd-no-normalisation` (CIMD-00 §4.1: the document's `client_id` matches its URL "using
/// simple string comparison"): the authorization saved as `on` names a client_id that differs
/// only in encoding from one the AS has cached. The AS may refuse that client_id (no text
/// makes it accept a given URL); what fails is a code issued without fetching its own
/// document (`args.file`), i.e. answered from the other URL's document, whose client_id does
/// not match it as a string.
pub fn own_document(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &std::collections::BTreeMap<String, toml::Value>,
) -> StepResult {
    let file = super::arg_str(args, "file", "client.json").to_string();
    let a = authorize::authorization(ctx, on)?.clone();
    let docs = document::documents(ctx)?.clone();
    let path = format!("{}/{file}", document::case_dir(ctx, &docs));
    let fetched = docs
        .host
        .fetches_under(&path)
        .iter()
        .filter(|f| f.target.split('?').next() == Some(path.as_str()))
        .count();
    document::attach_evidence(ctx);
    match (a.code().is_some(), fetched) {
        (false, _) => {
            ctx.pass(format!(
                "the AS refused the client …/{file} ({}), which it may: it did not answer it from another client_id's document",
                a.describe()
            ));
            Ok(())
        }
        (true, n) if n > 0 => {
            ctx.pass(format!(
                "the AS fetched …/{file} itself ({n} request(s)) before issuing a code: two client_ids, two documents"
            ));
            Ok(())
        }
        (true, _) => ctx.fail(format!(
            "the AS issued a code to …/{file} without fetching that document: it used the document of a client_id that differs as a string (CIMD-00 §4.1: simple string comparison)"
        )),
    }
}
