//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25
//! §5.1): the client's `client_id` is an https URL and the authorization server fetches the
//! client's metadata from it. To test what an AS does with such documents, authconform must be
//! the client's web host: [`host`] serves the documents, shaped per case, and logs every fetch;
//! the `document` and `fetches` steps (`crate::step::document`) publish documents and judge the
//! fetches.
//!
//! A refusal only means something once the AS has been seen to fetch and accept a valid
//! document: otherwise "rejected, no fetch" is also what an AS that cannot reach the host (a
//! firewall, SSRF protection refusing loopback, an untrusted CA) does. So every run makes one
//! *control* authorization with a valid document first, and the cases depend on it.

pub mod dns;
pub mod host;

use std::path::PathBuf;

use host::{DocumentHost, Listener};

/// The document host of a run, and the run's control.
pub struct Documents {
    pub host: DocumentHost,
    /// Every path of this run starts with it: an AS may cache documents for a day, and a
    /// second run must not be answered from the first one's cache.
    pub run_prefix: String,
    /// The CA file an AS must trust (persistent CA), for messages.
    pub ca_path: Option<PathBuf>,
    /// The run's control, made once by the first case that needs it.
    pub control: tokio::sync::OnceCell<Control>,
    /// The rebinding DNS server the AS resolves through (`[cimd] resolver`), or why none runs.
    pub dns: Result<dns::RebindDns, String>,
    /// The enterprise IdP of the ID-JAG cases, served by this host (`crate::idp`), when the
    /// run has one.
    pub idp: Option<std::sync::Arc<crate::idp::Idp>>,
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
        resolver: Option<std::net::SocketAddr>,
    ) -> Result<Self, String> {
        let host = DocumentHost::start(port, public_base_url, ca).await?;
        let dns = match resolver {
            Some(a) => dns::RebindDns::start(a).await?,
            None => {
                return Ok(Self::with(host, Err("no [cimd] resolver in the profile: the AS does not resolve names through a DNS server of this run".into()), ca_path));
            }
        };
        Ok(Self::with(host, Ok(dns), ca_path))
    }

    fn with(
        host: DocumentHost,
        dns: Result<dns::RebindDns, String>,
        ca_path: Option<PathBuf>,
    ) -> Self {
        let nonce: [u8; 4] = rand::random();
        Self {
            host,
            dns,
            run_prefix: format!(
                "/ac-{}",
                nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            ca_path,
            control: Default::default(),
            idp: None,
        }
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
            Listener::Rebound => self.host.rebound.as_deref().unwrap_or(""),
        }
    }
}
