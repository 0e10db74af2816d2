//! The harness's HTTP client, built for talking to untrusted servers.
//!
//! Every wait is bounded (connect and whole-exchange timeouts), every body is capped (the harness
//! stops reading at the cap, so a never-ending response costs at most the cap and the timeout),
//! redirects are never followed (a `Location` is evidence to inspect, not an instruction), and every
//! exchange is recorded with secrets redacted as it is recorded.
//!
//! URLs are handed over as raw strings. The underlying client needs a parsed URL; when parsing
//! would change the string (normalising dot segments, case or encoding), the exchange says so,
//! because an attack URL that was normalised on the way out did not test what the case meant.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::health::{Admit, Failure, Health, Incident};
use crate::record::Exchange;
use crate::redact::Redactor;

/// A body whose last bytes came this recently when the deadline cut it was still arriving: the
/// server is alive (see [`crate::health`]).
const TRICKLE: Duration = Duration::from_secs(1);

/// How a response body ended, when not at its end or at the size cap.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyCut {
    No,
    /// An error, or a stall the deadline ended.
    BrokeOff,
    /// The deadline cut it while bytes were still arriving.
    StillSending,
}

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bytes of a response body read at most (1 MiB by default).
    pub max_body: usize,
    /// Bytes of a body kept in a recorded exchange.
    pub excerpt: usize,
    pub connect_timeout: Duration,
    /// Whole exchange, body included.
    pub timeout: Duration,
    /// Extra trusted roots (PEM), e.g. the built-in reference server's CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Where the client may connect (see [`crate::egress`]). `None` only for the suite's own
    /// tests of this module; every session sets one.
    pub egress: Option<std::sync::Arc<crate::egress::Policy>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            excerpt: 16 << 10,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            extra_roots_pem: Vec::new(),
            egress: None,
        }
    }
}

/// A request exactly as the case wants it sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// Header values as bytes: probes send non-ASCII and duplicated headers on purpose.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    /// Why this request is sent; shown in reports.
    pub note: String,
    /// The `Authorization` credential is a harness-made probe value, safe to show.
    pub reveal_auth: bool,
    /// A probe that expects the transport to fail (plain http to an https port): its failure
    /// says nothing about the server's health.
    pub expect_failure: bool,
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>, note: impl Into<String>) -> Self {
        Self {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            note: note.into(),
            reveal_auth: false,
            expect_failure: false,
        }
    }
    /// Marks a probe whose transport failure is an expected outcome (see the field).
    pub fn expecting_failure(mut self) -> Self {
        self.expect_failure = true;
        self
    }
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

// The recorded response (a plain struct the judgements read) lives in the member crate.
pub use authconform_core::response::{Response, is_loopback_url};

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("timed out after {0:?} waiting for the response")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    /// Not sent: the egress policy refuses the destination ("refused to follow <url>: …").
    #[error("{0}")]
    Refused(String),
    /// Not sent: the server stopped answering earlier in the run (see [`crate::health`]).
    #[error("not sent: {}", .0.reason)]
    TargetDown(Incident),
}

impl HttpError {
    /// How the breaker counts this error: a transport failure, or nothing (the request was
    /// never sent, or was malformed on our side).
    fn failure_kind(&self) -> Option<String> {
        match self {
            HttpError::Timeout(_) => Some("timed out".into()),
            HttpError::Transport(m) => Some(
                if m.contains("Connection refused") || m.contains("connection refused") {
                    "refused the connection".into()
                } else if m.contains("reset") || m.contains("closed") {
                    "closed the connection".into()
                } else {
                    "failed at the transport".into()
                },
            ),
            HttpError::BadUrl { .. }
            | HttpError::BadRequest(_)
            | HttpError::Refused(_)
            | HttpError::TargetDown(_) => None,
        }
    }
}

/// The client. Cheap to clone; one per run.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    cfg: HttpConfig,
    redactor: Redactor,
    health: std::sync::Arc<Health>,
}

impl Http {
    pub fn new(cfg: HttpConfig, redactor: Redactor) -> Result<Self, HttpError> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            // No cookie jar: cookies are state a case must manage explicitly.
            .user_agent(concat!("authconform/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .http1_only()
            // An idle connection is reused only briefly: servers close idle keep-alive connections
            // on their own clock (node 5 s, gunicorn 2 s), and a request written as the server
            // closes is reset (ECONNRESET), which a case would have to report as errored.
            .pool_idle_timeout(Duration::from_secs(1));
        // Names are resolved by the egress policy's resolver: it drops the addresses the policy
        // refuses, and the connector connects to exactly the addresses it checked.
        if let Some(p) = &cfg.egress {
            b = b.dns_resolver(std::sync::Arc::new(crate::egress::Resolver::new(p.clone())));
        }
        for pem in &cfg.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| HttpError::Transport(format!("bad CA certificate: {e}")))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| HttpError::Transport(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            cfg,
            redactor,
            health: Default::default(),
        })
    }

    /// The run's per-server breakers (shared by every clone of this client).
    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Sends one request; always returns the recorded exchange, with the response or the error.
    pub async fn send(&self, req: Request) -> (Result<Response, HttpError>, Exchange) {
        let started = Instant::now();
        let mut note = req.note.clone();
        // The policy first: a refused destination is evidence, and nothing is sent.
        if let Some(p) = &self.cfg.egress
            && let Err(refusal) = p.check_url(&req.url)
        {
            let result = Err(HttpError::Refused(refusal.to_string()));
            let ex = self.record(&req, note, &result, 0);
            return (result, ex);
        }
        let admit = self.health.admit(&req.url);
        if let Admit::Down(inc) = admit {
            let result = Err(HttpError::TargetDown(inc));
            let ex = self.record(&req, note, &result, 0);
            return (result, ex);
        }
        if matches!(admit, Admit::Probe) {
            note.push_str(" [sent as a probe: is the server answering again?]");
        }
        let (result, cut) = self.send_inner(&req, &mut note).await;
        let (failure, still_sending) = match (&result, cut) {
            (Ok(_), BodyCut::BrokeOff) => (Some("broke off mid-body".to_string()), false),
            (Ok(_), BodyCut::StillSending) => (
                Some("kept a body trickling past the timeout".to_string()),
                true,
            ),
            (Ok(_), BodyCut::No) => (None, false),
            (Err(e), _) => (e.failure_kind(), false),
        };
        match failure {
            None if result.is_ok() => self.health.answered(&req.url),
            Some(kind) if !req.expect_failure => {
                self.health.failed(
                    &req.url,
                    Failure {
                        kind,
                        still_sending,
                        exchange: format!("{} {}", req.method, self.redactor.url(&req.url)),
                    },
                );
            }
            // Nothing the server did (or a failure the probe expected): a probe decided nothing.
            _ if matches!(admit, Admit::Probe) => self.health.probe_undecided(&req.url),
            _ => {}
        }
        if let Ok(r) = &result {
            for loc in r.header_all("location") {
                self.redactor.learn_from_url(loc);
            }
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let ex = self.record(&req, note, &result, duration_ms);
        (result, ex)
    }

    /// Sends and reads the answer; the flag says the body broke off (an error or the deadline
    /// mid-body) rather than ending or reaching the cap.
    async fn send_inner(
        &self,
        req: &Request,
        note: &mut String,
    ) -> (Result<Response, HttpError>, BodyCut) {
        let mut cut = BodyCut::No;
        let r = self.send_body(req, note, &mut cut).await;
        (r, cut)
    }

    async fn send_body(
        &self,
        req: &Request,
        note: &mut String,
        cut: &mut BodyCut,
    ) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&req.url).map_err(|e| HttpError::BadUrl {
            url: req.url.clone(),
            reason: e.to_string(),
        })?;
        if url.as_str() != req.url && url.as_str() != format!("{}/", req.url) {
            note.push_str(&format!(
                " [sent as {:?}: the URL parser normalised it]",
                url.as_str()
            ));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| HttpError::BadRequest(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (n, v) in &req.headers {
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|e| HttpError::BadRequest(format!("header name {n:?}: {e}")))?;
            let value = HeaderValue::from_bytes(v)
                .map_err(|e| HttpError::BadRequest(format!("header {n} value: {e}")))?;
            // append, not insert: duplicated headers are a deliberate probe.
            headers.append(name, value);
        }
        let mut rb = self.client.request(method, url).headers(headers);
        if let Some(b) = &req.body {
            rb = rb.body(b.clone());
        }
        let deadline = self.cfg.timeout;
        let fut = async {
            let mut resp = rb.send().await.map_err(|e| transport_error(e, deadline))?;
            let status = resp.status().as_u16();
            let headers = header_pairs(resp.headers());
            let mut body = Vec::new();
            let mut truncated = false;
            let mut last_bytes = Instant::now();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        last_bytes = Instant::now();
                        if !append_capped(&mut body, &chunk, self.cfg.max_body) {
                            truncated = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // A body that breaks off (or stalls) mid-way is still evidence, and a
                        // sign of a server in trouble. One still trickling in when the
                        // suite's deadline cut it is told apart: the breaker counts it once
                        // per URL (see `crate::health`).
                        truncated = true;
                        *cut = if e.is_timeout() && last_bytes.elapsed() < TRICKLE {
                            note.push_str(" [body still arriving when the suite's timeout cut it]");
                            BodyCut::StillSending
                        } else {
                            BodyCut::BrokeOff
                        };
                        break;
                    }
                }
            }
            Ok(Response {
                status,
                headers,
                body,
                truncated,
            })
        };
        // The client timeout covers the body too; this outer bound is a second line of defence.
        match tokio::time::timeout(deadline + Duration::from_secs(1), fut).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(deadline)),
        }
    }

    /// Records an exchange another sender made (the fuzz campaigns' raw connections), with the
    /// same redaction as [`Http::send`]: reports only ever hold exchanges recorded here.
    pub fn record_sent(
        &self,
        req: &Request,
        result: &Result<Response, HttpError>,
        duration_ms: u64,
    ) -> Exchange {
        if let Ok(r) = result {
            for loc in r.header_all("location") {
                self.redactor.learn_from_url(loc);
            }
        }
        self.record(req, req.note.clone(), result, duration_ms)
    }

    fn record(
        &self,
        req: &Request,
        note: String,
        result: &Result<Response, HttpError>,
        duration_ms: u64,
    ) -> Exchange {
        let r = &self.redactor;
        // The excerpt, and whether it is shorter than the body.
        let excerpt = |bytes: &[u8]| -> (String, bool) {
            let cut = &bytes[..bytes.len().min(self.cfg.excerpt)];
            let text = String::from_utf8_lossy(cut);
            let kept = within_report_budget(&text, self.cfg.excerpt);
            (
                r.body(kept),
                kept.len() < text.len() || cut.len() < bytes.len(),
            )
        };
        let request_headers = req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    r.header(n, &String::from_utf8_lossy(v), req.reveal_auth),
                )
            })
            .collect();
        let mut ex = Exchange {
            note,
            method: req.method.clone(),
            url: r.url(&req.url),
            request_headers,
            request_body: req.body.as_ref().map(|b| excerpt(b).0),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            body_truncated: false,
            error: None,
            duration_ms,
        };
        match result {
            Ok(resp) => {
                ex.status = Some(resp.status);
                // Headers share the excerpt's budget: a server may send a hundred 4 KB headers
                // (as much as the HTTP parser takes), and a record of every exchange must stay
                // small whatever it sends.
                let mut used = 0;
                for (i, (n, v)) in resp.headers.iter().enumerate() {
                    used += n.len() + v.len();
                    if used > self.cfg.excerpt {
                        ex.response_headers.push((
                            "x-authconform-omitted".into(),
                            format!(
                                "{} more header(s) not recorded: the record keeps {} bytes of headers",
                                resp.headers.len() - i,
                                self.cfg.excerpt
                            ),
                        ));
                        break;
                    }
                    ex.response_headers.push((n.clone(), r.header(n, v, false)));
                }
                let mut cut = false;
                if !resp.body.is_empty() {
                    let (text, shorter) = excerpt(&resp.body);
                    ex.response_body = Some(text);
                    cut = shorter;
                }
                ex.body_truncated = resp.truncated || cut;
            }
            Err(e) => ex.error = Some(r.text(&e.to_string())),
        }
        ex
    }
}

/// The longest prefix of `text` whose size in a report stays within `budget` bytes. A control
/// character (a NUL, say) costs six bytes there (`\u0000` in JSON, a visible escape in HTML and
/// on a terminal), so a server streaming binary zeros cannot make each recorded exchange six
/// times larger than the excerpt allows.
fn within_report_budget(text: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            6
        } else {
            c.len_utf8()
        };
        if used > budget {
            return &text[..i];
        }
    }
    text
}

/// Response headers as records keep them: names lowercased, values lossily decoded.
pub(crate) fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Appends `chunk` to a body read up to `max` bytes. False when the cap was reached: what did
/// not fit is dropped and reading must stop.
pub(crate) fn append_capped(body: &mut Vec<u8>, chunk: &[u8], max: usize) -> bool {
    let room = max.saturating_sub(body.len());
    if chunk.len() > room {
        body.extend_from_slice(&chunk[..room]);
        return false;
    }
    body.extend_from_slice(chunk);
    true
}

fn transport_error(e: reqwest::Error, deadline: Duration) -> HttpError {
    if e.is_timeout() {
        return HttpError::Timeout(deadline);
    }
    // The resolver refused every address of the name: nothing was sent.
    if let Some(r) = crate::egress::find_refusal(&e) {
        return HttpError::Refused(r.to_string());
    }
    // The client could not build the request (a URL too long for it, say): nothing was sent.
    if e.is_builder() {
        return HttpError::BadRequest(e.to_string());
    }
    // Walk the source chain: the top-level reqwest message alone ("error sending request") hides
    // the cause a user needs (connection refused, certificate unknown...).
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    HttpError::Transport(msg)
}

/// An HTTP handle that keeps every exchange as evidence: what the layers under the step layer
/// (the login drivers) get instead of a case context.
pub struct Recorder<'a> {
    pub http: &'a Http,
    pub exchanges: &'a mut Vec<Exchange>,
    /// Set when an exchange met a server that stopped answering: the case cannot be judged.
    pub blocked: &'a mut Option<Incident>,
}

impl Recorder<'_> {
    /// Sends a request and records the exchange, whatever the outcome.
    pub async fn send(&mut self, req: Request) -> Result<Response, HttpError> {
        let url = req.url.clone();
        let (res, ex) = self.http.send(req).await;
        self.exchanges.push(ex);
        self.note_blocked(&url, &res);
        res
    }

    /// Ties the case to an incident when `res` met a server that is down: refused at once, or
    /// one of the failures that marked it down.
    pub fn note_blocked(&mut self, url: &str, res: &Result<Response, HttpError>) {
        if self.blocked.is_some() {
            return;
        }
        match res {
            Err(HttpError::TargetDown(inc)) => *self.blocked = Some(inc.clone()),
            Err(e) if e.failure_kind().is_some() => *self.blocked = self.http.health.down(url),
            Ok(r) if r.truncated => *self.blocked = self.http.health.down(url),
            _ => {}
        }
    }
}
