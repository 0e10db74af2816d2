//! The document host: an https server inside authconform that serves client metadata
//! documents, one per path, each with the delivery a case asks for (status, headers, body,
//! a delay or a byte-by-byte trickle, a redirect), and records every request the authorization
//! server makes (time, method, path, headers). Nothing it serves is fetched by authconform
//! itself: the log is the evidence of what the AS fetched, or that it fetched nothing.
//!
//! It listens on loopback with a certificate from a throw-away CA ([`crate::local_ca`]); the
//! AS under test must trust that CA. Behind a tunnel, `public_base_url` names where the AS
//! reaches it instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use crate::local_ca::LocalCa;

/// How one path answers.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Send the body one byte per interval (a slow-loris document).
    pub trickle: Option<Duration>,
}

impl Delivery {
    /// A JSON document, 200, `application/json`.
    pub fn json(doc: &serde_json::Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: doc.to_string().into_bytes(),
            delay: None,
            trickle: None,
        }
    }
}

/// One request the host received.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// RFC 3339, UTC.
    pub at: String,
    pub method: String,
    /// Path and query, as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// Requests kept at most: a misbehaving AS must not grow the log without limit.
const LOG_CAP: usize = 10_000;

#[derive(Default)]
struct Shared {
    docs: HashMap<String, Delivery>,
    log: Vec<Fetch>,
}

/// A running document host.
pub struct DocumentHost {
    /// Where the AS reaches documents: the public base URL if given, else `https://127.0.0.1:PORT`.
    pub base_url: String,
    pub addr: SocketAddr,
    /// PEM of the CA the AS must trust.
    pub ca_pem: String,
    shared: Arc<Mutex<Shared>>,
    handle: axum_server::Handle<SocketAddr>,
}

impl DocumentHost {
    /// Starts the host on 127.0.0.1:`port` (0 = ephemeral).
    pub async fn start(
        port: u16,
        public_base_url: Option<String>,
        ca: LocalCa,
    ) -> Result<Self, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("document host on 127.0.0.1:{port}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("document host: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("document host: {e}"))?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            ca.chain_pem.clone().into_bytes(),
            ca.key_pem.clone().into_bytes(),
        )
        .await
        .map_err(|e| format!("document host TLS: {e}"))?;
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .map_err(|e| format!("document host: {e}"))?
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let base_url = public_base_url
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://127.0.0.1:{}", addr.port()));
        Ok(Self {
            base_url,
            addr,
            ca_pem: ca.ca_pem,
            shared,
            handle,
        })
    }

    /// Serves `delivery` at `path` (starting with `/`) and returns the public URL.
    pub fn publish(&self, path: &str, delivery: Delivery) -> String {
        self.lock().docs.insert(path.to_string(), delivery);
        format!("{}{path}", self.base_url)
    }

    /// Every request for `path` (query ignored), oldest first.
    pub fn fetches(&self, path: &str) -> Vec<Fetch> {
        self.lock()
            .log
            .iter()
            .filter(|f| f.target.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    pub fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(Duration::from_millis(200)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let delivery = {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.log.len() < LOG_CAP {
            s.log.push(Fetch {
                at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                method: method.to_string(),
                target: target.clone(),
                headers: headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            });
        }
        s.docs.get(uri.path()).cloned()
    };
    let Some(d) = delivery else {
        return Response::builder()
            .status(404)
            .body(Body::empty())
            .unwrap_or_default();
    };
    if let Some(wait) = d.delay {
        tokio::time::sleep(wait).await;
    }
    let mut b = Response::builder().status(d.status);
    for (n, v) in &d.headers {
        b = b.header(n, v);
    }
    let body = match d.trickle {
        None => Body::from(d.body),
        Some(every) => {
            // One byte per interval; the stream ends with the document, so it is bounded.
            let stream =
                futures_util::stream::unfold((d.body, 0usize), move |(bytes, i)| async move {
                    if i >= bytes.len() {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    let chunk = Bytes::copy_from_slice(&bytes[i..=i]);
                    Some((Ok::<_, std::io::Error>(chunk), (bytes, i + 1)))
                });
            Body::from_stream(stream)
        }
    };
    b.body(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Http, HttpConfig, Request};
    use crate::redact::Redactor;

    #[tokio::test]
    async fn serves_documents_and_logs_every_fetch() {
        let ca = crate::local_ca::generate_for("document host").expect("CA");
        let ca_pem = ca.ca_pem.clone();
        let host = DocumentHost::start(0, None, ca).await.expect("host");
        let doc = serde_json::json!({ "client_id": "x", "client_name": "t" });
        let url = host.publish("/c/one.json", Delivery::json(&doc));
        assert!(url.starts_with("https://127.0.0.1:"));
        let mut moved = Delivery::json(&doc);
        moved.status = 302;
        moved
            .headers
            .push(("location".into(), "https://127.0.0.1/other.json".into()));
        let moved_url = host.publish("/c/moved.json", moved);

        let http = Http::new(
            HttpConfig {
                extra_roots_pem: vec![ca_pem.into_bytes()],
                ..HttpConfig::default()
            },
            Redactor::new(),
        )
        .expect("client");
        let (r, _) = http
            .send(Request::new("GET", format!("{url}?v=1"), "fetch").header("X-Probe", "1"))
            .await;
        let r = r.expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), Some(doc));
        let (r, _) = http.send(Request::new("GET", moved_url, "fetch")).await;
        assert_eq!(r.expect("response").status, 302);
        let (r, _) = http
            .send(Request::new(
                "GET",
                format!("{}/c/none.json", host.base_url),
                "fetch",
            ))
            .await;
        assert_eq!(r.expect("response").status, 404);

        let log = host.fetches("/c/one.json");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].target, "/c/one.json?v=1");
        assert!(
            log[0]
                .headers
                .iter()
                .any(|(n, v)| n == "x-probe" && v == "1")
        );
        assert_eq!(host.fetches("/c/moved.json").len(), 1);
        assert_eq!(host.fetches("/c/none.json").len(), 1);
        host.shutdown();
    }
}
