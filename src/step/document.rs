//! The CIMD case steps: `document` publishes a client metadata document (shaped by the case)
//! and saves a client whose `client_id` is its URL; `fetches` judges what the AS requested.

use std::time::Duration;

use serde_json::{Value, json};

use super::context::{CaseCtx, Saved, StepResult, Stop};
use crate::case::model::{
    AuthorizeStep, ClientKind, ControlNeed, DocumentStep, FetchesStep, Number,
};
use crate::cimd::host::{self, Delivery, Listener};
use crate::cimd::{Control, Documents};
use crate::client_key::ClientKey;
use crate::step::client::Client;

pub fn documents<'a>(ctx: &CaseCtx<'a>) -> Result<&'a std::sync::Arc<Documents>, Stop> {
    ctx.env
        .documents
        .as_ref()
        .ok_or_else(|| Stop::Error("this run has no document host".into()))
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The case's folder on the document host (its variants' folders are inside).
pub fn case_root(ctx: &CaseCtx<'_>, docs: &Documents) -> String {
    format!("{}/{}", docs.run_prefix, clean(&ctx.case_id))
}

/// The current variant's folder on the document host.
pub fn case_dir(ctx: &CaseCtx<'_>, docs: &Documents) -> String {
    format!(
        "{}/{}",
        case_root(ctx, docs),
        clean(ctx.variant_label.as_deref().unwrap_or("case"))
    )
}

/// The valid document every control and case starts from.
pub fn base_document(ctx: &CaseCtx<'_>, client_id: &str) -> serde_json::Map<String, Value> {
    let mut d = serde_json::Map::new();
    d.insert("client_id".into(), json!(client_id));
    d.insert("client_name".into(), json!("authconform CIMD client"));
    d.insert("client_uri".into(), json!("https://client.test/"));
    d.insert("redirect_uris".into(), json!(["https://client.test/cb"]));
    d.insert("token_endpoint_auth_method".into(), json!("none"));
    d.insert("grant_types".into(), json!(["authorization_code"]));
    d.insert("response_types".into(), json!(["code"]));
    if let Some(s) = &ctx.env.profile.authorization.scope {
        d.insert("scope".into(), json!(s));
    }
    d
}

/// Is the AS on this machine? (Only then can it reach a loopback document host.)
fn target_is_local(ctx: &CaseCtx<'_>) -> bool {
    let t = &ctx.env.target;
    let Some(u) = t.issuer.as_ref().or(t.resource.as_ref()) else {
        return false;
    };
    let host = crate::step::client::redirect_parts(u)["host"]
        .as_str()
        .unwrap_or("")
        .to_ascii_lowercase();
    host == "127.0.0.1" || host == "[::1]" || host == "localhost"
}

/// Runs the control once per run (in the first case that needs it: its exchanges are that
/// case's evidence) and turns it into this case's go-ahead.
pub async fn ready(ctx: &mut CaseCtx<'_>) -> Result<Control, Stop> {
    let docs = documents(ctx)?.clone();
    if docs.host.base_url.starts_with("https://127.0.0.1:") && !target_is_local(ctx) {
        return Err(Stop::Skip(
            "the document host listens on loopback, which a remote authorization server cannot \
             reach: give --public-base-url (a tunnel to the host)"
                .into(),
        ));
    }
    let control = match docs.control.get() {
        Some(c) => c.clone(),
        None => {
            // The first case to get here runs it; concurrent ones wait for its result.
            docs.control
                .get_or_init(|| run_control(ctx, &docs))
                .await
                .clone()
        }
    };
    ctx.note(format!("CIMD control (once per run): {}", control.summary));
    if let Some(e) = &control.error {
        let e = Stop::Error(format!(
            "the CIMD control authorization could not be made: {e}"
        ));
        // No AS metadata at all: asm-available's finding, not this case's.
        if let Ok(Saved::Discovery(d)) = super::discovery::shared_as_metadata(ctx).await
            && d.doc().is_none()
        {
            return Err(super::discovery::without_doc(ctx, e, "asm-available"));
        }
        return Err(e);
    }
    if control.accepted {
        return Ok(control);
    }
    if !control.fetched && control.advertised != Some(true) && control.dropped.is_empty() {
        return Err(Stop::Skip(
            "the AS does not support Client ID Metadata Documents: its metadata does not \
             advertise client_id_metadata_document_supported and it did not fetch a valid document"
                .into(),
        ));
    }
    let reason = format!(
        "the AS did not accept a valid client metadata document, so a refusal here would prove \
         nothing: {}",
        control.summary
    );
    // One cause for every CIMD case: reports name it once, judged by the case whose
    // requirement is that a valid document works.
    ctx.block(
        "cimd-valid-document-refused",
        Some("cimd-fetch"),
        &format!(
            "the AS did not accept a valid client metadata document: {}",
            control.summary
        ),
    );
    Err(Stop::Error(reason))
}

/// The run's control, if it has run.
pub fn control_result(ctx: &CaseCtx<'_>) -> Option<Control> {
    ctx.env.documents.as_ref()?.control.get().cloned()
}

async fn run_control(ctx: &mut CaseCtx<'_>, docs: &Documents) -> Control {
    let mut c = Control {
        advertised: None,
        fetched: false,
        accepted: false,
        dropped: Vec::new(),
        summary: String::new(),
        error: None,
    };
    match super::discovery::shared_as_metadata(ctx).await {
        Ok(saved) => {
            if let Saved::Discovery(d) = &saved {
                c.advertised = d
                    .doc()
                    .and_then(|m| m.get("client_id_metadata_document_supported").cloned())
                    .and_then(|v| v.as_bool());
            }
        }
        Err(Stop::Error(m) | Stop::Skip(m) | Stop::Fail(m) | Stop::Pass(m)) => {
            c.error = Some(format!("AS metadata: {m}"));
            c.summary = c.error.clone().unwrap_or_default();
            return c;
        }
    }
    let path = control_path(docs);
    let url = format!("{}{path}", docs.host.base_url);
    let doc = Value::Object(base_document(ctx, &url));
    docs.host.publish(&path, Delivery::json(&doc));
    ctx.saved.insert(
        "cimd-control".into(),
        Saved::Client(crate::step::client::Client {
            client_id: url.clone(),
            secret: None,
            auth_method: "none".into(),
            redirect_uris: vec!["https://client.test/cb".into()],
            kind: crate::case::model::ClientKind::Public,
            source: "document",
            key: None,
        }),
    );
    let mark = docs.host.connection_mark();
    let auth = super::authorize::authorize(
        ctx,
        &AuthorizeStep {
            client: "cimd-control".into(),
            ..Default::default()
        },
    )
    .await;
    ctx.saved.remove("cimd-control");
    let fetches = docs.host.fetches(&path);
    c.fetched = !fetches.is_empty();
    // A connection is logged when its TLS handshake ends, in the host's own task: an AS that
    // connected and dropped the connection may answer our request before that task has run.
    // Without a fetch, give the log a bounded moment to catch up before reading it.
    if !c.fetched {
        for _ in 0..20 {
            if !docs.host.connections_since(mark).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    c.dropped = docs
        .host
        .connections_since(mark)
        .into_iter()
        .filter_map(|k| {
            k.tls_error
                .map(|e| format!("{} from {}: {e}", k.listener.as_str(), k.peer))
        })
        .collect();
    let advertised = match c.advertised {
        Some(true) => "advertises client_id_metadata_document_supported",
        Some(false) => "says client_id_metadata_document_supported: false",
        None => "does not advertise client_id_metadata_document_supported",
    };
    match auth {
        Err(Stop::Error(m) | Stop::Skip(m) | Stop::Fail(m) | Stop::Pass(m)) => {
            c.error = Some(m);
        }
        Ok(a) => {
            c.accepted = c.fetched
                && a.code().is_some()
                && a.callback.iter().all(|cb| cb.get("error").is_none());
            let how = if c.fetched {
                format!(
                    "fetched {url} ({} request(s)) and {}",
                    fetches.len(),
                    a.describe()
                )
            } else if !c.dropped.is_empty() {
                format!(
                    "connected to the document host but made no request ({}): it refuses this \
                     address (SSRF protection against special-use addresses such as loopback) \
                     or does not trust authconform's CA{}; then it {}",
                    c.dropped.join("; "),
                    docs.ca_path
                        .as_ref()
                        .map(|p| format!(" ({})", p.display()))
                        .unwrap_or_default(),
                    a.describe()
                )
            } else {
                format!("never requested {url}; it {}", a.describe())
            };
            c.summary = format!("the AS {advertised}; it {how}");
        }
    }
    if let Some(e) = &c.error {
        c.summary = format!("the AS {advertised}; the control authorization failed: {e}");
    }
    c
}

/// Adds to a finished case what the document host saw for it: every request the AS made for
/// the case's documents (as inbound exchanges, with what was served), or that it made none.
pub fn attach_evidence(ctx: &mut CaseCtx<'_>) {
    let Some(docs) = ctx.env.documents.clone() else {
        return;
    };
    if !ctx.doc_vars.contains_key("dir_path") {
        return;
    }
    let prefix = format!("{}/", case_root(ctx, &docs));
    let mut fetches = docs.host.fetches_under(&prefix);
    // The one case that publishes at the host's root (a client_id without a path).
    if ctx.doc_vars.get("path").and_then(Value::as_str) == Some("/") {
        fetches.extend(docs.host.fetches("/"));
    }
    if fetches.is_empty() {
        ctx.note("the document host received no request for this case's documents");
    }
    push_inbound(ctx, &docs, fetches);
}

/// The control's requests, for the cases that judge the control itself.
pub fn attach_control_evidence(ctx: &mut CaseCtx<'_>) {
    let Some(docs) = ctx.env.documents.clone() else {
        return;
    };
    let fetches = docs.host.fetches(&control_path(&docs));
    push_inbound(ctx, &docs, fetches);
}

fn control_path(docs: &Documents) -> String {
    format!("{}/control/client.json", docs.run_prefix)
}

fn push_inbound(ctx: &mut CaseCtx<'_>, docs: &Documents, fetches: Vec<host::Fetch>) {
    let redactor = ctx.env.http.redactor();
    for f in fetches {
        let listener = f.listener;
        ctx.exchanges.push(crate::record::Exchange {
            note: format!(
                "inbound: the AS fetched from authconform's document host ({} listener) at {}",
                listener.as_str(),
                f.at
            ),
            method: f.method,
            url: format!("{}{}", docs.base(listener), f.target),
            request_headers: f
                .headers
                .into_iter()
                .map(|(n, v)| (n, redactor.text(&v)))
                .collect(),
            request_body: None,
            status: Some(f.status),
            response_headers: f.served_headers,
            body_truncated: f.served_len > f.served_excerpt.len(),
            response_body: Some(redactor.text(&f.served_excerpt)),
            error: None,
            duration_ms: 0,
        });
    }
}

fn listener(name: Option<&str>) -> Listener {
    match name {
        Some("http") => Listener::Http,
        Some("canary") => Listener::Canary,
        _ => Listener::Https,
    }
}

/// Expands every string of a TOML value as a template.
fn expand_value(ctx: &CaseCtx<'_>, v: &toml::Value) -> Result<Value, Stop> {
    Ok(match v {
        toml::Value::String(s) => Value::String(ctx.expand(s).map_err(Stop::Error)?),
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand_value(ctx, x))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, x)| Ok((k.clone(), expand_value(ctx, x)?)))
                .collect::<Result<_, Stop>>()?,
        ),
        other => crate::case::model::toml_to_json(other),
    })
}

fn number(ctx: &CaseCtx<'_>, n: &Number, what: &str) -> Result<u64, Stop> {
    match n {
        Number::Int(i) => Ok(*i),
        Number::Template(t) => {
            let v = ctx.expand(t).map_err(Stop::Error)?;
            v.trim()
                .parse()
                .map_err(|_| Stop::Error(format!("{what} {v:?} is not a number")))
        }
    }
}

/// The `document` step.
pub async fn document(ctx: &mut CaseCtx<'_>, d: &DocumentStep) -> StepResult {
    let status = match &d.status {
        Some(n) => u16::try_from(number(ctx, n, "status")?)
            .ok()
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| Stop::Error("status must be 100..599".into()))?,
        None => 200,
    };
    let size = d
        .size
        .as_ref()
        .map(|n| number(ctx, n, "size"))
        .transpose()?
        .map(|n| n.min(16 << 20) as usize);
    let docs = documents(ctx)?.clone();
    match d.control {
        ControlNeed::Accepted => {
            ready(ctx).await?;
        }
        ControlNeed::Supported => match ready(ctx).await {
            Ok(_) => {}
            // Refused or unreachable, but CIMD is there: a "no request" probe still says something.
            Err(Stop::Error(m)) => ctx.note(format!("going on: {m}")),
            Err(e) => return Err(e),
        },
        ControlNeed::None => {}
    }
    let dir_path = case_dir(ctx, &docs);
    let path = match d.file.as_deref().unwrap_or("client.json") {
        "/" => "/".to_string(),
        f => format!("{dir_path}/{}", f.trim_start_matches('/')),
    };
    let l = listener(d.listener.as_deref());
    let url = format!("{}{path}", docs.base(l));
    let port = docs.host.addr.port();
    ctx.doc_vars = serde_json::Map::from_iter([
        ("url".to_string(), json!(url)),
        (
            "dir".to_string(),
            json!(format!("{}{dir_path}", docs.base(l))),
        ),
        ("dir_path".to_string(), json!(dir_path)),
        ("path".to_string(), json!(path)),
        ("base".to_string(), json!(docs.host.base_url)),
        ("plain".to_string(), json!(docs.host.plain_url)),
        ("canary".to_string(), json!(docs.host.canary_url)),
        ("port".to_string(), json!(port.to_string())),
        (
            "canary_port".to_string(),
            json!(docs.host.canary_port.to_string()),
        ),
        // The name the rebinding DNS server answers for (cimd-ssrf-dns-rebind).
        (
            "rebind_host".to_string(),
            json!(crate::cimd::dns::REBIND_HOST),
        ),
    ]);
    let client_id = match &d.client_id {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => url.clone(),
    };
    ctx.doc_vars
        .insert("client_id".into(), Value::String(client_id.clone()));

    let mut doc = base_document(ctx, &client_id);
    let key = match d.auth_method.as_deref() {
        Some("private_key_jwt") => {
            let key = ClientKey::generate().map_err(Stop::Error)?;
            let jwks_path = format!("{path}.jwks");
            docs.host.publish(
                &jwks_path,
                Delivery::json(&json!({ "keys": [key.jwk.clone()] })),
            );
            doc.insert(
                "token_endpoint_auth_method".into(),
                json!("private_key_jwt"),
            );
            doc.insert(
                "jwks_uri".into(),
                json!(format!("{}{jwks_path}", docs.base(l))),
            );
            Some(std::sync::Arc::new(key))
        }
        Some(other) => {
            doc.insert("token_endpoint_auth_method".into(), json!(other));
            None
        }
        None => None,
    };
    // Keys and values are templates (a variant may name the member it changes); a value
    // that comes out as "" removes the member.
    for (k, v) in &d.document {
        let k = ctx.expand(k).map_err(Stop::Error)?;
        match expand_value(ctx, v)? {
            Value::String(s) if s.is_empty() => {
                doc.remove(&k);
            }
            v => {
                doc.insert(k, v);
            }
        }
    }
    let mut body = match &d.body {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?.into_bytes(),
        None => Value::Object(doc.clone()).to_string().into_bytes(),
    };
    if let Some(n) = size
        && d.body.is_none()
    {
        // A filler member, so the document stays valid JSON at any size.
        let room = n.saturating_sub(body.len() + r#","x_padding":"""#.len());
        doc.insert("x_padding".into(), json!("a".repeat(room)));
        body = Value::Object(doc.clone()).to_string().into_bytes();
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    if !d
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), "application/json".into()));
    }
    for (k, v) in &d.headers {
        if !v.is_empty() {
            headers.push((k.clone(), ctx.expand(v).map_err(Stop::Error)?));
        }
    }
    let len = body.len();
    let excerpt = String::from_utf8_lossy(&body[..len.min(600)]).into_owned();
    docs.host.publish(
        &path,
        Delivery {
            status,
            headers,
            body,
            delay: d.delay_ms.map(Duration::from_millis),
            trickle: d.trickle_ms.map(Duration::from_millis),
        },
    );
    ctx.note(format!(
        "published at {url} (status {}, {len} bytes{}): {excerpt}{}",
        status,
        match (d.delay_ms, d.trickle_ms) {
            (_, Some(t)) => format!(", one byte per {t} ms"),
            (Some(w), None) => format!(", after {w} ms"),
            _ => String::new(),
        },
        if len > 600 { "…" } else { "" }
    ));
    let redirect_uris = doc
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty() && !d.invalid)
        .unwrap_or_else(|| {
            if d.invalid {
                Vec::new()
            } else {
                vec!["https://client.test/cb".into()]
            }
        });
    let auth_method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string();
    ctx.saved.insert(
        d.save.clone(),
        Saved::Client(Client {
            client_id,
            secret: doc
                .get("client_secret")
                .and_then(Value::as_str)
                .map(str::to_string),
            kind: if auth_method == "none" {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            auth_method,
            redirect_uris,
            source: "document",
            key,
        }),
    );
    Ok(())
}

/// The `fetches` step.
pub fn fetches(ctx: &mut CaseCtx<'_>, f: &FetchesStep) -> StepResult {
    let docs = documents(ctx)?.clone();
    let dir_path = case_dir(ctx, &docs);
    let mut seen = docs.host.fetches_under(&format!("{dir_path}/"));
    if let Some(file) = f.file.as_deref() {
        let p = match file {
            "/" => "/".to_string(),
            f => format!("{dir_path}/{}", f.trim_start_matches('/')),
        };
        if p == "/" {
            seen = docs.host.fetches("/");
        }
        seen.retain(|x| x.target.split('?').next() == Some(p.as_str()));
    }
    if let Some(l) = f.listener.as_deref() {
        let l = listener(Some(l));
        seen.retain(|x| x.listener == l);
        if l == Listener::Canary {
            // A connection without a request is what an AS that checks the address after
            // connecting leaves behind: no request was made, but the port was touched.
            let dropped = docs
                .host
                .connections_since(0)
                .into_iter()
                .filter(|c| c.listener == Listener::Canary && c.tls_error.is_some())
                .count();
            if dropped > 0 {
                ctx.note(format!(
                    "the canary has had {dropped} TCP connection(s) in this run that ended before a request (the AS connected, then gave up)"
                ));
            }
        }
    }
    let what = format!(
        "{} request(s) to the document host{}{}",
        seen.len(),
        f.listener
            .as_ref()
            .map(|l| format!(" ({l} listener)"))
            .unwrap_or_default(),
        f.file
            .as_ref()
            .map(|x| format!(" for {x}"))
            .unwrap_or_default()
    );
    let list = seen
        .iter()
        .map(|x| format!("{} {} ({})", x.method, x.target, x.listener.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let because = f
        .because
        .as_ref()
        .map(|b| format!(": {b}"))
        .unwrap_or_default();
    if let Some(max) = f.max
        && seen.len() > max
    {
        return ctx.fail(format!(
            "the AS made {what}, at most {max} expected{because} [{list}]"
        ));
    }
    if let Some(min) = f.min
        && seen.len() < min
    {
        return ctx.fail(format!(
            "the AS made {what}, at least {min} expected{because}"
        ));
    }
    if let Some(t) = &f.target {
        let want = ctx.expand(t).map_err(Stop::Error)?;
        if let Some(x) = seen.iter().find(|x| x.target != want) {
            return ctx.fail(format!(
                "the AS requested {:?}, not the client_id's own path and query {want:?}{because}",
                x.target
            ));
        }
    }
    ctx.pass(format!("the AS made {what}{because}"));
    Ok(())
}
