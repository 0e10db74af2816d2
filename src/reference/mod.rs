//! The built-in reference server: a compliant authorization server and MCP resource server,
//! in-process, served over https with a throw-away CA.
//!
//! It is the suite's default target and its negative-control bench: started with a fault named
//! after a case id, it violates exactly that case's requirement, and that case must then fail.
//!
//! It is an *independent* implementation. It shares no parsing, matching or validation code with
//! the checks (`src/checks`, `src/runner`, `src/discovery.rs`, `src/www_authenticate.rs`): a bug
//! in shared code would make the check and the server agree on the same mistake, and the check
//! would pass where it should not. Everything here is written against the RFC text directly.

mod authorization;
mod resource;
mod tls;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

pub use tls::LocalCa;

/// Every fault the reference can inject, by case id. A test checks that each shipped case has
/// one (or declares `no_fault`), and that each fault names a shipped case.
pub const FAULTS: &[&str] = &[
    // 401 / WWW-Authenticate
    "rs-401-no-token",
    "rs-401-bearer-scheme",
    "rs-401-discovery-mechanism",
    "rs-401-resource-metadata-url",
    "rs-401-scope-hint",
    "rs-401-no-error-without-creds",
    "rs-401-invalid-token",
    "rs-401-invalid-token.error-code",
    "rs-401-invalid-token.fake-jwt",
    "rs-400-malformed-auth.empty",
    "rs-400-malformed-auth.double-header",
    "rs-400-malformed-auth.long-token",
    "rs-400-malformed-auth.non-ascii",
    "rs-401-all-methods.get",
    "rs-401-all-methods.delete",
    // Protected Resource Metadata
    "prm-wellknown-path",
    "prm-200-json",
    "prm-unauthenticated",
    "prm-resource-match",
    "prm-resource-form",
    "prm-authorization-servers",
    "prm-as-reachable",
    "prm-scopes-supported",
    "prm-no-empty-values",
    "prm-trailing-slash-insertion",
    "prm-bearer-methods",
    "prm-consistent-sources",
    "prm-https",
    "prm-fuzz-paths",
    // Authorization server metadata
    "asm-available",
    "asm-issuer-match",
    "asm-issuer-form",
    "asm-required-fields",
    "asm-pkce-advertised",
    "asm-no-implicit-ropc",
    "asm-grant-types",
    "asm-auth-methods",
    "asm-endpoints-https",
    "asm-content-type",
    "asm-cimd-flag",
    "asm-registration-endpoint",
    "asm-revocation-introspection",
    "asm-oidc-consistency",
    "asm-protected-resources",
    "asm-fuzz",
    "asm-jwks-uri",
    "asm-value-types",
];

/// How to start the reference.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// 0 = an ephemeral port.
    pub port: u16,
    pub faults: Vec<String>,
}

/// Shared state of a running reference.
pub(crate) struct Ref {
    pub origin: String,
    pub issuer: String,
    pub resource: String,
    /// Origin of the plain-http side listener (only with the `prm-https` fault).
    pub plain_origin: Option<String>,
    pub faults: BTreeSet<String>,
    pub jwk: serde_json::Value,
    pub clients: std::sync::Mutex<Vec<serde_json::Value>>,
}

impl Ref {
    pub fn fault(&self, id: &str) -> bool {
        self.faults.contains(id)
    }
}

/// A running reference server; dropping it does not stop it, [`Reference::shutdown`] does.
pub struct Reference {
    pub issuer: String,
    pub resource: String,
    pub addr: SocketAddr,
    pub ca: Arc<LocalCa>,
    handle: axum_server::Handle<SocketAddr>,
    plain: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown reference fault {0:?} (see `authconform list`: faults are case ids)")]
    UnknownFault(String),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("TLS setup: {0}")]
    Tls(String),
}

pub async fn start(opts: Options) -> Result<Reference, StartError> {
    for f in &opts.faults {
        if !FAULTS.contains(&f.as_str()) {
            return Err(StartError::UnknownFault(f.clone()));
        }
    }
    // rustls wants one process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = tls::generate().map_err(|e| StartError::Tls(e.to_string()))?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port)).map_err(|source| {
        StartError::Bind {
            port: opts.port,
            source,
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Bind {
            port: opts.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        port: opts.port,
        source,
    })?;
    let origin = format!("https://127.0.0.1:{}", addr.port());
    let faults: BTreeSet<String> = opts.faults.iter().cloned().collect();

    // The prm-https fault needs somewhere that serves PRM over plain http.
    let mut plain_origin = None;
    let mut plain_listener = None;
    if faults.contains("prm-https") {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| StartError::Bind { port: 0, source })?;
        let p = l
            .local_addr()
            .map_err(|source| StartError::Bind { port: 0, source })?;
        plain_origin = Some(format!("http://127.0.0.1:{}", p.port()));
        plain_listener = Some(l);
    }

    let state = Arc::new(Ref {
        issuer: format!("{origin}/as"),
        resource: format!("{origin}/mcp"),
        origin: origin.clone(),
        plain_origin,
        faults,
        jwk: authorization::public_jwk(),
        clients: std::sync::Mutex::new(Vec::new()),
    });
    let app = Router::new().fallback(dispatch).with_state(state.clone());

    let plain = plain_listener.map(|l| {
        let app = app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        })
    });

    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        ca.chain_pem.clone().into_bytes(),
        ca.key_pem.clone().into_bytes(),
    )
    .await
    .map_err(|e| StartError::Tls(e.to_string()))?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|source| StartError::Bind {
            port: opts.port,
            source,
        })?
        .handle(handle.clone());
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    Ok(Reference {
        issuer: state.issuer.clone(),
        resource: state.resource.clone(),
        addr,
        ca: Arc::new(ca),
        handle,
        plain,
    })
}

impl Reference {
    pub fn shutdown(self) {
        self.handle
            .graceful_shutdown(Some(Duration::from_millis(200)));
        if let Some(p) = self.plain {
            p.abort();
        }
    }
}

/// One handler for every path: routing is done on the raw path string, so odd paths (double
/// slashes, `%00`, dot segments) reach the server exactly as a client sent them.
async fn dispatch(
    State(s): State<Arc<Ref>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path == "/mcp" {
        return resource::mcp(&s, &method, &headers, &body);
    }
    if let Some(r) = resource::metadata(&s, &method, path, &headers) {
        return r;
    }
    if let Some(r) = authorization::handle(&s, &method, path, &headers, &body) {
        return r;
    }
    json(404, serde_json::json!({ "error": "not_found" }))
}

pub(crate) fn json(status: u16, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(axum::body::Body::from(v.to_string()))
        .unwrap_or_default()
}
