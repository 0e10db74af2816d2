//! The reference's transport faults (catalogue area 13), kept out of the compliant path: without
//! one of these faults the reference serves TLS exactly as before (`from_tcp_rustls`).
//!
//! - `tls-cert`: the leaf certificate expired years ago (chain and names are otherwise right), so
//!   a client that validates certificates (RFC 5280 §6.1.3 (a)(2): the validity period) refuses
//!   every connection.
//! - `tls-as`, `tls-rs`: the https port also speaks plain HTTP/1.1 (OAuth 2.1 §1.5 and MCP §11.3
//!   forbid it). Each connection's first byte is sniffed: 0x16 is a TLS handshake record (RFC 8446
//!   §5.1 `ContentType.handshake`), anything else is taken as an HTTP request line. `tls-as`
//!   serves the AS paths (`/as/...`) that way, `tls-rs` the MCP endpoint (`/mcp`); any other plain
//!   request goes to rustls, which refuses it as the compliant reference does.
//! - `tls-modern-config`: a ClientHello whose `legacy_version` is below TLS 1.2 (SSL 3.0, TLS 1.0,
//!   TLS 1.1; RFC 8996 §2-§5 and RFC 7568 §2 forbid negotiating them) is answered with a
//!   ServerHello for that version, before rustls (which cannot speak them) sees the connection.
//!   Only the start of a negotiation: the connection is then closed.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair, SanType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Ref;
use crate::local_ca::LocalCa;

/// Faults that need each connection sniffed before TLS.
const SNIFFING: [&str; 3] = ["tls-as", "tls-rs", "tls-modern-config"];

/// Bytes read before deciding what a connection is (an HTTP request line is usually far shorter).
const HEAD_MAX: usize = 8 * 1024;
/// How long a connection may take to send its first bytes.
const HEAD_WAIT: Duration = Duration::from_secs(10);

/// The reference's certificates: the usual throw-away CA, or with the `tls-cert` fault a CA
/// whose leaf has expired.
pub(super) fn local_ca(faults: &[String]) -> Result<LocalCa, rcgen::Error> {
    if faults.iter().any(|f| f == "tls-cert") {
        expired()
    } else {
        crate::local_ca::generate()
    }
}

/// A CA like `local_ca`'s (limited to loopback names by its name constraints) and a leaf for
/// 127.0.0.1, ::1 and localhost that was valid only in 2020.
fn expired() -> Result<LocalCa, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let p = crate::local_ca::ca_params("throw-away reference server (tls-cert fault)")?;
    let ca_cert = p.self_signed(&ca_key)?;
    let issuer = Issuer::new(p, ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "authconform reference server (expired)");
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2020, 12, 31);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(LocalCa {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
        names_rebind_host: false,
    })
}

/// Does this reference need its connections sniffed before TLS?
pub(super) fn sniffs(s: &Ref) -> bool {
    SNIFFING.iter().any(|f| s.fault(f))
}

/// Serves `app` on `listener` through the sniffing acceptor (only with a [`SNIFFING`] fault).
pub(super) fn serve(
    listener: std::net::TcpListener,
    config: RustlsConfig,
    handle: axum_server::Handle<SocketAddr>,
    app: Router,
    state: Arc<Ref>,
) -> io::Result<()> {
    let faults = state.faults.clone();
    let acceptor = Sniffing {
        tls: RustlsAcceptor::new(config),
        faults: Arc::new(faults),
    };
    let server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle);
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    Ok(())
}

#[derive(Clone)]
struct Sniffing {
    tls: RustlsAcceptor,
    faults: Arc<BTreeSet<String>>,
}

/// The first bytes of a connection: until a TLS record header and the ClientHello's version are
/// in (11 bytes), or an HTTP request line, EOF, [`HEAD_MAX`] bytes or [`HEAD_WAIT`].
async fn read_head(tcp: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let _ = tokio::time::timeout(HEAD_WAIT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            head.extend_from_slice(&chunk[..n]);
            let enough = if head[0] == 0x16 {
                head.len() >= 11
            } else {
                head.windows(2).any(|w| w == b"\r\n")
            };
            if enough || head.len() >= HEAD_MAX {
                return;
            }
        }
    })
    .await;
    head
}

/// The request target of an HTTP/1.1 request line (`POST /as/token HTTP/1.1`).
fn request_target(head: &[u8]) -> &str {
    let line = head.split(|b| *b == b'\r').next().unwrap_or(&[]);
    std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
}

/// A ServerHello (RFC 5246 §7.4.1.3 layout, which SSL 3.0 and TLS 1.0/1.1 share) for `version`,
/// choosing TLS_RSA_WITH_AES_128_CBC_SHA (0x002f), in one handshake record.
fn legacy_server_hello(version: [u8; 2]) -> Vec<u8> {
    let random: [u8; 32] = rand::random();
    let mut body = vec![version[0], version[1]];
    body.extend_from_slice(&random);
    body.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00]); // no session id, the suite, no compression
    let mut hs = vec![0x02, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, version[0], version[1], 0x00, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

impl<S: Send + 'static> Accept<TcpStream, S> for Sniffing {
    type Stream = Conn;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Conn, S)>> + Send>>;

    fn accept(&self, mut tcp: TcpStream, service: S) -> Self::Future {
        let tls = self.tls.clone();
        let faults = self.faults.clone();
        Box::pin(async move {
            let head = read_head(&mut tcp).await;
            let fault = |f: &str| faults.contains(f);
            // ClientHello: record type 0x16, handshake type 1 at offset 5, legacy_version at 9..11.
            if fault("tls-modern-config")
                && head.len() >= 11
                && head[0] == 0x16
                && head[5] == 0x01
                && [head[9], head[10]] < [0x03, 0x03]
            {
                let _ = tcp
                    .write_all(&legacy_server_hello([head[9], head[10]]))
                    .await;
                let _ = tcp.shutdown().await;
                return Err(io::Error::other("legacy ClientHello answered (fault)"));
            }
            if head.first().is_some_and(|b| *b != 0x16) {
                let target = request_target(&head);
                let plain = (fault("tls-as") && target.starts_with("/as/"))
                    || (fault("tls-rs") && (target == "/mcp" || target.starts_with("/mcp?")));
                if plain {
                    return Ok((Conn::Plain(Prefixed::new(head, tcp)), service));
                }
            }
            let (stream, service) = tls.accept(Prefixed::new(head, tcp), service).await?;
            Ok((Conn::Tls(Box::new(stream)), service))
        })
    }
}

/// A stream that first yields bytes already read from it.
pub(super) struct Prefixed {
    head: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Prefixed {
    fn new(head: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.head.len() {
            let n = (self.head.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.head[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A sniffed connection: TLS as usual, or plain HTTP (a fault).
pub(super) enum Conn {
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
    Plain(Prefixed),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_and_hellos() {
        assert_eq!(
            request_target(b"POST /as/token HTTP/1.1\r\nHost: x"),
            "/as/token"
        );
        assert_eq!(request_target(b"\x16\x03\x01"), "");
        let h = legacy_server_hello([3, 1]);
        assert_eq!(&h[..3], &[0x16, 3, 1]);
        assert_eq!(h[4] as usize, h.len() - 5);
        assert_eq!((h[5], h[9], h[10]), (0x02, 3, 1));
    }
}
