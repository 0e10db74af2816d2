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

use crate::record::Exchange;
use crate::redact::Redactor;

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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            excerpt: 16 << 10,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            extra_roots_pem: Vec::new(),
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
        }
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
}

/// The client. Cheap to clone; one per run.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    cfg: HttpConfig,
    redactor: Redactor,
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
            .http1_only();
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
        })
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
        let result = self.send_inner(&req, &mut note).await;
        if let Ok(r) = &result {
            for loc in r.header_all("location") {
                self.redactor.learn_from_url(loc);
            }
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let ex = self.record(&req, note, &result, duration_ms);
        (result, ex)
    }

    async fn send_inner(&self, req: &Request, note: &mut String) -> Result<Response, HttpError> {
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
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if !append_capped(&mut body, &chunk, self.cfg.max_body) {
                            truncated = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        // A body that breaks off (or times out) mid-way is still evidence.
                        truncated = true;
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
        let excerpt = |bytes: &[u8]| -> String {
            let cut = &bytes[..bytes.len().min(self.cfg.excerpt)];
            r.body(&String::from_utf8_lossy(cut))
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
            request_body: req.body.as_ref().map(|b| excerpt(b)),
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
                ex.response_headers = resp
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), r.header(n, v, false)))
                    .collect();
                if !resp.body.is_empty() {
                    ex.response_body = Some(excerpt(&resp.body));
                }
                ex.body_truncated = resp.truncated || resp.body.len() > self.cfg.excerpt;
            }
            Err(e) => ex.error = Some(r.text(&e.to_string())),
        }
        ex
    }
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
}

impl Recorder<'_> {
    /// Sends a request and records the exchange, whatever the outcome.
    pub async fn send(&mut self, req: Request) -> Result<Response, HttpError> {
        let (res, ex) = self.http.send(req).await;
        self.exchanges.push(ex);
        res
    }
}
