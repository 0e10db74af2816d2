//! The campaign's fast path: each worker owns one HTTP/1.1 keep-alive connection, as a load
//! generator's connection is, driven by hyper's connection API. The pooled client of
//! [`crate::http::Http`] (reqwest) costs about twice the CPU per request; on a small machine
//! that cost is taken from the server being measured. Findings are still re-sent and recorded
//! through [`crate::http::Http`], so every reported exchange comes from the one audited client.
//!
//! Same rules as the audited client: bounded connect, exchange and body; no redirect is
//! followed; the request target is sent as the raw string (hyper's URI type keeps it verbatim,
//! where a URL parser would normalise it).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use crate::http::{HttpConfig, HttpError, Request, Response, append_capped, header_pairs};

/// How long a kept connection may take to be ready for the next request.
const READY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Connection settings shared by the workers.
pub struct Wire {
    tls: tokio_rustls::TlsConnector,
    cfg: HttpConfig,
}

/// A worker's connection, kept open between requests to the same origin.
#[derive(Default)]
pub struct Conn {
    open: Option<(String, SendRequest<Full<Bytes>>)>,
}

/// Scheme, host (for TLS and connecting), port, `Host` header and request target of a raw URL.
struct Target<'a> {
    tls: bool,
    host: url::Host<String>,
    port: u16,
    authority: &'a str,
    /// Path and query exactly as the raw string has them.
    path: String,
}

fn split(raw: &str) -> Result<Target<'_>, HttpError> {
    let bad = |reason: &str| HttpError::BadUrl {
        url: raw.chars().take(200).collect(),
        reason: reason.into(),
    };
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("not http(s)")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let mut path = rest[end..].split('#').next().unwrap_or("").to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // The parser only reads the authority: host and port.
    let u =
        url::Url::parse(&format!("{scheme}://{authority}/")).map_err(|e| bad(&e.to_string()))?;
    let host = u.host().ok_or_else(|| bad("no host"))?.to_owned();
    let port = u.port_or_known_default().ok_or_else(|| bad("no port"))?;
    Ok(Target {
        tls,
        host,
        port,
        authority,
        path,
    })
}

impl Wire {
    /// The platform's trusted roots plus the configured extra ones (the reference's CA).
    pub fn new(cfg: &HttpConfig) -> Result<Self, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for pem in &cfg.extra_roots_pem {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| format!("bad CA certificate: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("bad CA certificate: {e}"))?;
            }
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            cfg: cfg.clone(),
        })
    }

    async fn connect(&self, t: &Target<'_>) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let transport = |e: String| HttpError::Transport(e);
        let addr = match &t.host {
            url::Host::Domain(d) => format!("{d}:{}", t.port),
            url::Host::Ipv4(a) => format!("{a}:{}", t.port),
            url::Host::Ipv6(a) => format!("[{a}]:{}", t.port),
        };
        // The egress policy decides where to connect, after DNS: the campaign connects to the
        // addresses it checked (an endpoint named by the server's metadata is server input).
        let addrs: Vec<std::net::SocketAddr> = match &self.cfg.egress {
            Some(p) => {
                let scheme = if t.tls { "https" } else { "http" };
                crate::egress::resolve_checked(p, &format!("{scheme}://{}/", t.authority))
                    .await
                    .map_err(|e| match e {
                        crate::egress::ResolveError::Refused(r) => {
                            HttpError::Refused(r.to_string())
                        }
                        crate::egress::ResolveError::Dns(m) => transport(m),
                    })?
            }
            None => tokio::net::lookup_host(&addr)
                .await
                .map_err(|e| transport(format!("resolve {addr}: {e}")))?
                .collect(),
        };
        let tcp = tokio::time::timeout(
            self.cfg.connect_timeout,
            tokio::net::TcpStream::connect(&addrs[..]),
        )
        .await
        .map_err(|_| transport(format!("connect to {addr}: timed out")))?
        .map_err(|e| transport(format!("connect to {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if t.tls {
            let name = match &t.host {
                url::Host::Domain(d) => ServerName::try_from(d.clone()),
                url::Host::Ipv4(a) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(*a).into())),
                url::Host::Ipv6(a) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(*a).into())),
            }
            .map_err(|e| transport(format!("server name: {e}")))?;
            let stream =
                tokio::time::timeout(self.cfg.connect_timeout, self.tls.connect(name, tcp))
                    .await
                    .map_err(|_| transport("TLS handshake timed out".into()))?
                    .map_err(|e| transport(format!("TLS: {e}")))?;
            handshake(TokioIo::new(stream)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }

    /// Sends one request on `conn` (opening or re-opening it as needed).
    pub async fn send(&self, conn: &mut Conn, req: &Request) -> Result<Response, HttpError> {
        let t = split(&req.url)?;
        // Built afresh for a retry (a request is consumed by sending it).
        let make = || -> Result<hyper::Request<Full<Bytes>>, HttpError> {
            let mut b = hyper::Request::builder()
                .method(
                    hyper::Method::from_bytes(req.method.as_bytes())
                        .map_err(|e| HttpError::BadRequest(e.to_string()))?,
                )
                .uri(
                    hyper::Uri::try_from(t.path.as_str())
                        .map_err(|e| HttpError::BadRequest(format!("request target: {e}")))?,
                )
                .header("host", t.authority)
                .header(
                    "user-agent",
                    concat!("authconform/", env!("CARGO_PKG_VERSION")),
                );
            if !req
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
            {
                b = b.header("accept", "*/*");
            }
            for (n, v) in &req.headers {
                let name = hyper::header::HeaderName::from_bytes(n.as_bytes())
                    .map_err(|e| HttpError::BadRequest(format!("header name {n:?}: {e}")))?;
                let value = hyper::header::HeaderValue::from_bytes(v)
                    .map_err(|e| HttpError::BadRequest(format!("header {n} value: {e}")))?;
                b = b.header(name, value);
            }
            b.body(Full::new(Bytes::from(req.body.clone().unwrap_or_default())))
                .map_err(|e| HttpError::BadRequest(e.to_string()))
        };
        // An unsendable request fails here, before any connection is opened.
        let first = make()?;
        let origin = format!("{}://{}", if t.tls { "https" } else { "http" }, t.authority);
        let deadline = self.cfg.timeout;
        let exchange = async {
            // A kept connection is used only if it is ready within a moment; a wedged one is
            // replaced instead of being charged to the request as latency.
            let reused = match conn.open.take() {
                Some((o, mut s)) if o == origin => matches!(
                    tokio::time::timeout(READY_WAIT, s.ready()).await,
                    Ok(Ok(()))
                )
                .then_some(s),
                _ => None,
            };
            let was_reused = reused.is_some();
            let mut sender = match reused {
                Some(s) => s,
                None => self.connect(&t).await?,
            };
            let resp = match sender.send_request(first).await {
                Ok(r) => r,
                // Any failure before an answer on a kept connection (closed, reset, a broken
                // pipe when the server's idle close raced our write) gets one fresh try.
                Err(_) if was_reused => {
                    sender = self.connect(&t).await?;
                    sender
                        .send_request(make()?)
                        .await
                        .map_err(|e| HttpError::Transport(chain(&e)))?
                }
                Err(e) => return Err(HttpError::Transport(chain(&e))),
            };
            let status = resp.status().as_u16();
            let headers = header_pairs(resp.headers());
            let mut body = resp.into_body();
            let mut out = Vec::new();
            let mut truncated = false;
            loop {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(chunk) = f.into_data()
                            && !append_capped(&mut out, &chunk, self.cfg.max_body)
                        {
                            truncated = true;
                            break;
                        }
                    }
                    Some(Err(_)) => {
                        truncated = true;
                        break;
                    }
                    None => break,
                }
            }
            // Only a connection whose answer was read to the end can carry the next request.
            if !truncated {
                conn.open = Some((origin.clone(), sender));
            }
            Ok(Response {
                status,
                headers,
                body: out,
                truncated,
            })
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(deadline)),
        }
    }
}

async fn handshake<S>(io: TokioIo<S>) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| HttpError::Transport(chain(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_target_is_the_raw_string() {
        let t = split("https://127.0.0.1:8443/a/..%2f/b?x=%zz&y=<z>#frag").unwrap();
        assert_eq!(t.path, "/a/..%2f/b?x=%zz&y=<z>");
        assert_eq!(t.authority, "127.0.0.1:8443");
        assert!(t.tls);
        let t = split("http://[::1]?q=1").unwrap();
        assert_eq!(t.path, "/?q=1");
        assert_eq!(t.port, 80);
        assert!(split("ftp://x/").is_err());
    }
}
