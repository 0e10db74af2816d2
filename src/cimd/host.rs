//! The document host: an https server inside authconform that serves client metadata
//! documents, one per path, each with the delivery a case asks for (status, headers, body,
//! a delay or a byte-by-byte trickle, a redirect), and records every request the authorization
//! server makes (time, method, path, headers). Nothing it serves is fetched by authconform
//! itself: the log is the evidence of what the AS fetched, or that it fetched nothing.
//!
//! It listens on loopback with a certificate from authconform's CA ([`crate::local_ca`]); the
//! AS under test must trust that CA. Behind a tunnel, `public_base_url` names where the AS
//! reaches it instead. Beside the https listener it runs a plain-http one (is an `http://`
//! client_id fetched?) and a *canary*: a second https listener at an address the AS must refuse
//! to fetch from (special-use addresses, nested URLs). Every TCP connection is logged too, with
//! the TLS handshake's failure if any: an AS that connects and drops the connection before a
//! request (SSRF protection, or an untrusted CA) is told apart from one that never tried.

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

/// Which listener a request or connection reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Https,
    Http,
    Canary,
    /// `[::1]` on the https listener's port: where the rebinding DNS server sends an AS's
    /// second lookup of [`super::dns::REBIND_HOST`]; reaching it is the failure.
    Rebound,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Https => "https",
            Listener::Http => "http",
            Listener::Canary => "canary",
            Listener::Rebound => "rebound",
        }
    }
}

/// One TCP connection to an https listener, and how its TLS handshake ended.
#[derive(Debug, Clone)]
pub struct Connection {
    pub at: String,
    pub listener: Listener,
    pub peer: String,
    /// `None`: the handshake completed.
    pub tls_error: Option<String>,
}

/// One request the host received.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub listener: Listener,
    /// RFC 3339, UTC.
    pub at: String,
    pub method: String,
    /// Path and query, as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// What was served: the status (404 where nothing is published), its headers and the
    /// body's first bytes, as they were at the time (a case may republish a path).
    pub status: u16,
    pub served_headers: Vec<(String, String)>,
    pub served_excerpt: String,
    pub served_len: usize,
}

/// Bytes of a served body kept in the log.
const EXCERPT: usize = 2048;

/// Requests kept at most: a misbehaving AS must not grow the log without limit.
const LOG_CAP: usize = 10_000;

#[derive(Default)]
struct Shared {
    docs: HashMap<String, Delivery>,
    log: Vec<Fetch>,
    connections: Vec<Connection>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A running document host.
pub struct DocumentHost {
    /// Where the AS reaches documents: the public base URL if given, else `https://127.0.0.1:PORT`.
    pub base_url: String,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`: the same documents over plain http.
    pub plain_url: String,
    /// `https://127.0.0.1:PORT` of the canary listener (same documents, its own log).
    pub canary_url: String,
    pub canary_port: u16,
    /// `https://[::1]:PORT` on the https listener's port ([`Listener::Rebound`]), or why there
    /// is none (IPv6 loopback unavailable, the port taken there, or a stored CA that cannot
    /// vouch for the rebinding name).
    pub rebound: Result<String, String>,
    /// PEM of the CA the AS must trust.
    pub ca_pem: String,
    shared: Arc<Mutex<Shared>>,
    handles: Vec<axum_server::Handle<SocketAddr>>,
    plain: tokio::task::JoinHandle<()>,
}

fn bind(ip: std::net::IpAddr, port: u16) -> Result<(std::net::TcpListener, SocketAddr), String> {
    let listener = std::net::TcpListener::bind((ip, port))
        .map_err(|e| format!("document host on {}: {e}", SocketAddr::new(ip, port)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("document host: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("document host: {e}"))?;
    Ok((listener, addr))
}

/// Logs every TCP connection and the TLS handshake's outcome, then hands the stream on.
#[derive(Clone)]
struct Logged {
    inner: axum_server::tls_rustls::RustlsAcceptor,
    listener: Listener,
    shared: Arc<Mutex<Shared>>,
}

type Accepted<S> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::io::Result<(
                    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
                    S,
                )>,
            > + Send,
    >,
>;

impl<S: Send + 'static> axum_server::accept::Accept<tokio::net::TcpStream, S> for Logged {
    type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Service = S;
    type Future = Accepted<S>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let fut = self.inner.accept(stream, service);
        let (shared, listener) = (self.shared.clone(), self.listener);
        Box::pin(async move {
            let r = fut.await;
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            if s.connections.len() < LOG_CAP {
                s.connections.push(Connection {
                    at: now(),
                    listener,
                    peer,
                    tls_error: r.as_ref().err().map(|e| e.to_string()),
                });
            }
            r
        })
    }
}

impl DocumentHost {
    /// Starts the host on 127.0.0.1:`port` (0 = ephemeral), with its plain-http and canary
    /// listeners on ephemeral ports.
    pub async fn start(
        port: u16,
        public_base_url: Option<String>,
        ca: LocalCa,
    ) -> Result<Self, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            ca.chain_pem.clone().into_bytes(),
            ca.key_pem.clone().into_bytes(),
        )
        .await
        .map_err(|e| format!("document host TLS: {e}"))?;
        let mut handles = Vec::new();
        let mut addrs = Vec::new();
        let v4 = std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST);
        let mut binds = vec![
            (Listener::Https, bind(v4, port)?),
            (Listener::Canary, bind(v4, 0)?),
        ];
        // The rebound listener shares the https listener's port: a rebinding changes the
        // address a name leads to, never the port in the URL.
        let rebound = if !ca.names_rebind_host {
            Err("authconform's stored CA predates the rebinding name (rebind.authconform.test): remove it (`authconform ca` makes a new one) and have the AS trust the new ca.pem".to_string())
        } else {
            let v6 = std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
            match bind(v6, binds[0].1.1.port()) {
                Ok(b) => {
                    binds.push((Listener::Rebound, b));
                    Ok(format!("https://[::1]:{}", binds[0].1.1.port()))
                }
                Err(e) => Err(e),
            }
        };
        for (listener, (tcp, addr)) in binds {
            let app = Router::new()
                .fallback(serve)
                .with_state((shared.clone(), listener));
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp(tcp)
                .map_err(|e| format!("document host: {e}"))?
                .acceptor(Logged {
                    inner: axum_server::tls_rustls::RustlsAcceptor::new(config.clone()),
                    listener,
                    shared: shared.clone(),
                })
                .handle(handle.clone());
            tokio::spawn(async move {
                let _ = server.serve(app.into_make_service()).await;
            });
            handles.push(handle);
            addrs.push(addr);
        }
        let plain_tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("document host (http): {e}"))?;
        let plain_addr = plain_tcp
            .local_addr()
            .map_err(|e| format!("document host (http): {e}"))?;
        let plain_app = Router::new()
            .fallback(serve)
            .with_state((shared.clone(), Listener::Http));
        let plain = tokio::spawn(async move {
            let _ = axum::serve(plain_tcp, plain_app).await;
        });
        let base_url = public_base_url
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://127.0.0.1:{}", addrs[0].port()));
        Ok(Self {
            base_url,
            addr: addrs[0],
            plain_url: format!("http://127.0.0.1:{}", plain_addr.port()),
            canary_url: format!("https://127.0.0.1:{}", addrs[1].port()),
            canary_port: addrs[1].port(),
            rebound,
            ca_pem: ca.ca_pem,
            shared,
            handles,
            plain,
        })
    }

    /// Serves `delivery` at `path` (starting with `/`) and returns the public URL.
    pub fn publish(&self, path: &str, delivery: Delivery) -> String {
        self.lock().docs.insert(path.to_string(), delivery);
        format!("{}{path}", self.base_url)
    }

    /// Every request for `path` (query ignored), oldest first.
    pub fn fetches(&self, path: &str) -> Vec<Fetch> {
        self.fetches_where(|t| t == path)
    }

    /// Every request whose path starts with `prefix` (a case's folder), oldest first.
    pub fn fetches_under(&self, prefix: &str) -> Vec<Fetch> {
        self.fetches_where(|t| t.starts_with(prefix))
    }

    fn fetches_where(&self, keep: impl Fn(&str) -> bool) -> Vec<Fetch> {
        self.lock()
            .log
            .iter()
            .filter(|f| keep(f.target.split('?').next().unwrap_or("")))
            .cloned()
            .collect()
    }

    /// How many requests were logged so far: a mark to look for later connections by.
    pub fn connections_since(&self, mark: usize) -> Vec<Connection> {
        self.lock().connections.iter().skip(mark).cloned().collect()
    }

    pub fn connection_mark(&self) -> usize {
        self.lock().connections.len()
    }

    pub fn shutdown(self) {
        for h in &self.handles {
            h.graceful_shutdown(Some(Duration::from_millis(200)));
        }
        self.plain.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(
    State((shared, listener)): State<(Arc<Mutex<Shared>>, Listener)>,
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
        let d = s.docs.get(uri.path()).cloned();
        if s.log.len() < LOG_CAP {
            let (status, served_headers, body): (u16, Vec<(String, String)>, &[u8]) = match &d {
                Some(d) => (d.status, d.headers.clone(), &d.body),
                None => (404, Vec::new(), &[]),
            };
            s.log.push(Fetch {
                listener,
                at: now(),
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
                status,
                served_headers,
                served_excerpt: String::from_utf8_lossy(&body[..body.len().min(EXCERPT)])
                    .into_owned(),
                served_len: body.len(),
            });
        }
        d
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
