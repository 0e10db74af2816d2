//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25
//! §5.1): the client's `client_id` is an https URL and the authorization server fetches the
//! client's metadata from it. To test what an AS does with such documents, authconform must be
//! the client's web host: [`host`] serves the documents, shaped per case, and logs every fetch;
//! [`steps`] are the case steps that publish documents and judge the fetches.
//!
//! A refusal only means something once the AS has been seen to fetch and accept a valid
//! document: otherwise "rejected, no fetch" is also what an AS that cannot reach the host (a
//! firewall, SSRF protection refusing loopback, an untrusted CA) does. So every run makes one
//! *control* authorization with a valid document first, and the cases depend on it.

pub mod host;
pub mod steps;

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::runner::context::{CaseCtx, Saved, Stop};
use host::{Delivery, DocumentHost, Listener};

/// The document host of a run, and the run's control.
pub struct Documents {
    pub host: DocumentHost,
    /// Every path of this run starts with it: an AS may cache documents for a day, and a
    /// second run must not be answered from the first one's cache.
    pub run_prefix: String,
    /// The CA file an AS must trust (persistent CA), for messages.
    pub ca_path: Option<PathBuf>,
    control: tokio::sync::OnceCell<Control>,
}

/// What the control authorization showed.
#[derive(Debug, Clone)]
pub struct Control {
    /// The AS metadata's `client_id_metadata_document_supported` (None: absent).
    pub advertised: Option<bool>,
    /// The AS requested the control document.
    pub fetched: bool,
    /// ... and issued a code for it.
    pub accepted: bool,
    /// TLS handshakes that failed, or connections dropped before any request, while the
    /// control ran.
    pub dropped: Vec<String>,
    /// One line: what happened.
    pub summary: String,
    /// The control could not run at all (discovery failed, login broke).
    pub error: Option<String>,
}

impl Documents {
    pub async fn start(
        port: u16,
        public_base_url: Option<String>,
        ca: crate::local_ca::LocalCa,
        ca_path: Option<PathBuf>,
    ) -> Result<Self, String> {
        let host = DocumentHost::start(port, public_base_url, ca).await?;
        let nonce: [u8; 4] = rand::random();
        Ok(Self {
            host,
            run_prefix: format!(
                "/ac-{}",
                nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            ca_path,
            control: Default::default(),
        })
    }

    /// `127.0.0.1:PORT` of the https and plain-http listeners (not the canary): what a
    /// reference in development mode may fetch from although they are loopback addresses.
    pub fn dev_origins(&self) -> Vec<String> {
        let plain_port = self
            .host
            .plain_url
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        vec![
            format!("127.0.0.1:{}", self.host.addr.port()),
            format!("127.0.0.1:{plain_port}"),
        ]
    }

    pub fn base(&self, l: Listener) -> &str {
        match l {
            Listener::Https => &self.host.base_url,
            Listener::Http => &self.host.plain_url,
            Listener::Canary => &self.host.canary_url,
        }
    }
}

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
    let host = crate::client::redirect_parts(u)["host"]
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
        return Err(Stop::Error(format!(
            "the CIMD control authorization could not be made: {e}"
        )));
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
    Err(Stop::Error(format!(
        "the AS did not accept a valid client metadata document, so a refusal here would prove \
         nothing: {}",
        control.summary
    )))
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
    match crate::runner::flow::shared_as_metadata(ctx).await {
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
        Saved::Client(crate::client::Client {
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
    let params = Default::default();
    let auth = crate::runner::flow::authorize(
        ctx,
        crate::runner::flow::Authorize {
            client: "cimd-control",
            redirect_uri: None,
            params: &params,
            omit: &[],
            extra: None,
            verifier: None,
            session: None,
            login: true,
            consent: crate::case::model::Consent::Approve,
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
