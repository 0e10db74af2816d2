//! The CIMD case steps: `document` publishes a client metadata document (shaped by the case)
//! and saves a client whose `client_id` is its URL; `fetches` judges what the AS requested.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::host::{Delivery, Listener};
use crate::case::model::{ClientKind, ControlNeed, Number};
use crate::client::{Client, ClientKey};
use crate::runner::context::{CaseCtx, Saved, StepResult, Stop};

pub struct DocumentStep<'a> {
    pub save: &'a str,
    pub file: Option<&'a str>,
    pub listener: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub document: &'a BTreeMap<String, toml::Value>,
    pub body: Option<&'a str>,
    pub size: Option<&'a Number>,
    pub status: Option<&'a Number>,
    pub headers: &'a BTreeMap<String, String>,
    pub delay_ms: Option<u64>,
    pub trickle_ms: Option<u64>,
    pub auth_method: Option<&'a str>,
    pub invalid: bool,
    pub control: ControlNeed,
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
        other => crate::client::toml_to_json(other),
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

pub async fn document(ctx: &mut CaseCtx<'_>, d: DocumentStep<'_>) -> StepResult {
    let status = match d.status {
        Some(n) => u16::try_from(number(ctx, n, "status")?)
            .ok()
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| Stop::Error("status must be 100..599".into()))?,
        None => 200,
    };
    let size = d
        .size
        .map(|n| number(ctx, n, "size"))
        .transpose()?
        .map(|n| n.min(16 << 20) as usize);
    let docs = super::documents(ctx)?.clone();
    match d.control {
        ControlNeed::Accepted => {
            super::ready(ctx).await?;
        }
        ControlNeed::Supported => match super::ready(ctx).await {
            Ok(_) => {}
            // Refused or unreachable, but CIMD is there: a "no request" probe still says something.
            Err(Stop::Error(m)) => ctx.note(format!("going on: {m}")),
            Err(e) => return Err(e),
        },
        ControlNeed::None => {}
    }
    let dir_path = super::case_dir(ctx, &docs);
    let path = match d.file.unwrap_or("client.json") {
        "/" => "/".to_string(),
        f => format!("{dir_path}/{}", f.trim_start_matches('/')),
    };
    let l = listener(d.listener);
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
    ]);
    let client_id = match d.client_id {
        Some(t) => ctx.expand(t).map_err(Stop::Error)?,
        None => url.clone(),
    };
    ctx.doc_vars
        .insert("client_id".into(), Value::String(client_id.clone()));

    let mut doc = super::base_document(ctx, &client_id);
    let key = match d.auth_method {
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
    for (k, v) in d.document {
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
    let mut body = match d.body {
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
    for (k, v) in d.headers {
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
        d.save.to_string(),
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

pub struct FetchesStep<'a> {
    pub file: Option<&'a str>,
    pub listener: Option<&'a str>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub target: Option<&'a str>,
    pub because: Option<&'a str>,
}

pub fn fetches(ctx: &mut CaseCtx<'_>, f: FetchesStep<'_>) -> StepResult {
    let docs = super::documents(ctx)?.clone();
    let dir_path = super::case_dir(ctx, &docs);
    let mut seen = docs.host.fetches_under(&format!("{dir_path}/"));
    if let Some(file) = f.file {
        let p = match file {
            "/" => "/".to_string(),
            f => format!("{dir_path}/{}", f.trim_start_matches('/')),
        };
        if p == "/" {
            seen = docs.host.fetches("/");
        }
        seen.retain(|x| x.target.split('?').next() == Some(p.as_str()));
    }
    if let Some(l) = f.listener {
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
            .map(|l| format!(" ({l} listener)"))
            .unwrap_or_default(),
        f.file.map(|x| format!(" for {x}")).unwrap_or_default()
    );
    let list = seen
        .iter()
        .map(|x| format!("{} {} ({})", x.method, x.target, x.listener.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let because = f.because.map(|b| format!(": {b}")).unwrap_or_default();
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
    if let Some(t) = f.target {
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
