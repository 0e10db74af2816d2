//! The target under test and the TOML target profile (`--config FILE`).
//!
//! A profile grows with the suite (clients, login, features); unknown keys are errors so a typo
//! never silently disables a setting.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::case::model::ClientKind;
use crate::case::{FileError, line_col, read_text, toml_error};
use crate::client_key::ClientKey;
use crate::http::HttpConfig;

/// What the run points at. Either may be absent: no resource → RS cases are skipped.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The MCP endpoint URL.
    pub resource: Option<String>,
    /// The authorization server's issuer identifier (else discovered from the PRM).
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default)]
    pub target: ProfileTarget,
    #[serde(default)]
    pub http: ProfileHttp,
    /// Pre-registered clients (else Dynamic Client Registration provides them).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Defaults of every authorization request.
    #[serde(default)]
    pub authorization: AuthorizationConfig,
    /// Dynamic Client Registration defaults.
    #[serde(default)]
    pub registration: RegistrationConfig,
    /// How a test user logs in and consents.
    #[serde(default)]
    pub login: crate::login::LoginConfig,
    /// The loopback listener that receives authorization responses in a browser (`manual`).
    #[serde(default)]
    pub callback: crate::callback::CallbackConfig,
    #[serde(default)]
    pub timing: TimingConfig,
    /// Client ID Metadata Document testing.
    #[serde(default)]
    pub cimd: CimdConfig,
    /// Scope enforcement at the MCP server (403 `insufficient_scope`, step-up).
    #[serde(default)]
    pub scopes: ScopesConfig,
    /// Tools that mint and take back a state handle (MCP 2026-07-28 "State Handle Hijacking").
    #[serde(default)]
    pub state_handles: StateHandlesConfig,
    /// How the test user revokes a client's access in the AS's account UI.
    #[serde(default)]
    pub grant_revocation: GrantRevocationConfig,
    /// Tokens from other authorization servers the MCP server must refuse (MCP 2025-11-25 §9.2).
    #[serde(default)]
    pub tokens: TokensConfig,
    /// A tool that calls an upstream URL, for the token passthrough case (MCP 2025-11-25 §11.8).
    #[serde(default)]
    pub passthrough: PassthroughConfig,
    /// Where the suite may connect beyond the egress policy's defaults.
    #[serde(default)]
    pub network: NetworkConfig,
    /// What the target's operator does on the suite's request (rotating signing keys).
    #[serde(default)]
    pub operator: OperatorConfig,
    /// OAuth 2.0 Token Exchange (RFC 8693), when the AS offers it.
    #[serde(default)]
    pub token_exchange: TokenExchangeConfig,
    /// DPoP (RFC 9449) at the MCP server, when neither its PRM nor its challenge says so.
    #[serde(default)]
    pub dpop: DpopConfig,
    /// Enterprise-managed authorization (ID-JAG): the AS trusts the suite's IdP.
    #[serde(default)]
    pub enterprise: Option<EnterpriseConfig>,
    /// Pushed Authorization Requests (RFC 9126), when the metadata does not say.
    #[serde(default)]
    pub par: ParConfig,
}

/// `[par]`: the PAR endpoint of an AS that serves one without naming it in its metadata (RFC
/// 9126 §2 only says it SHOULD). Unset, the par-* cases run only when the metadata names one.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ParConfig {
    pub endpoint: Option<String>,
}

/// `[token_exchange]`: whether the AS offers token exchange (RFC 8693) and which client may
/// use it. Without it the `tx-*` cases run only when the AS metadata lists the grant type.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeConfig {
    /// The AS offers the token-exchange grant even though its metadata may not list it (RFC
    /// 8693 defines no metadata of its own; `grant_types_supported` is optional).
    #[serde(default)]
    pub offered: bool,
    /// A confidential `[[clients]]` entry allowed to exchange tokens (and to get a
    /// client_credentials token, the actor token of the delegation cases). Without it a client
    /// is registered for the grant by Dynamic Client Registration.
    pub client: Option<String>,
}

/// `[dpop]`: what the metadata may not say about DPoP.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DpopConfig {
    /// The MCP server accepts DPoP-bound access tokens (`Authorization: DPoP`, RFC 9449 §7):
    /// the RS-side `dpop-*` cases run.
    pub resource: Option<bool>,
}

/// `[enterprise]`: the AS under test trusts the enterprise IdP the suite plays (MCP's
/// enterprise-managed authorization, draft-ietf-oauth-identity-assertion-authz-grant). The IdP
/// is served by the document host (`[cimd] port`, `public_base_url`): its issuer is the host's
/// base URL plus `issuer_path`, its JWK Set `<issuer>/jwks.json`. Without this section the
/// ID-JAG cases are skipped: nothing can be redeemed at an AS that does not trust that IdP.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseConfig {
    /// The `client_id` of the `[[clients]]` entry (confidential) that redeems ID-JAGs.
    pub client: String,
    /// The IdP issuer's path on the document host (default `/idp`).
    #[serde(default)]
    pub issuer_path: Option<String>,
    /// The IdP's signing key (PKCS#8 PEM, P-256), when the AS was given the key rather than
    /// the JWK Set URL; default: a key made for the run.
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    /// The key, read from `key_file` when the profile loads.
    #[serde(skip)]
    pub key: Option<std::sync::Arc<ClientKey>>,
}

impl EnterpriseConfig {
    /// The IdP issuer's path: `/`-led, no trailing `/`, and not `/idp-untrusted` (the second
    /// IdP's).
    pub fn path(&self) -> String {
        let p = self.issuer_path.as_deref().unwrap_or("/idp");
        format!("/{}", p.trim_matches('/'))
    }

    fn load(
        &mut self,
        profile_clients: &[ClientConfig],
        base: &Path,
    ) -> Result<(), (&'static str, String)> {
        match profile_clients.iter().find(|c| c.client_id == self.client) {
            Some(c) if c.kind() == ClientKind::Confidential => {}
            Some(_) => {
                return Err((
                    "client",
                    format!(
                        "{:?} is a public client: ID-JAGs are redeemed by confidential clients (draft-ietf-oauth-identity-assertion-authz-grant §8.1)",
                        self.client
                    ),
                ));
            }
            None => {
                return Err((
                    "client",
                    format!(
                        "{:?} is not the client_id of a [[clients]] entry",
                        self.client
                    ),
                ));
            }
        }
        if self.path().len() < 2 || self.path().contains(['?', '#', ' ']) {
            return Err(("issuer_path", "a path such as \"/idp\"".into()));
        }
        if let Some(f) = &self.key_file {
            let path = base.join(f);
            let pem = std::fs::read_to_string(&path)
                .map_err(|e| ("key_file", format!("{}: {e}", path.display())))?;
            let key = ClientKey::from_pem(&pem, self.key_id.clone())
                .map_err(|e| ("key_file", format!("{}: {e}", path.display())))?;
            self.key = Some(std::sync::Arc::new(key));
        }
        Ok(())
    }
}

/// `[operator]`: actions only the target's operator can take, for the cases that need them
/// (else those cases are skipped, saying what is missing).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// A program and its arguments (no shell) that rotates the AS's signing keys: a new key
    /// signs from then on. It must exit 0 within `timeout_secs` (default 60). For
    /// asm-jwks-rotation.
    #[serde(default)]
    pub rotate_keys: Vec<String>,
    /// Instead of `rotate_keys`: a URL the suite POSTs to (empty body) to rotate the keys, such
    /// as an admin hook; any 2xx answer means done.
    pub rotate_keys_url: Option<String>,
    pub timeout_secs: Option<u64>,
}

impl OperatorConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.rotate_keys_url.is_some() && !self.rotate_keys.is_empty() {
            return Err((
                "rotate_keys_url",
                "give `rotate_keys` or `rotate_keys_url`, not both".into(),
            ));
        }
        if let Some(u) = &self.rotate_keys_url {
            check_url(u).map_err(|m| ("rotate_keys_url", m))?;
        }
        Ok(())
    }
}

/// `[network]`: explicit exceptions to the egress policy ([`crate::egress`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// `HOST[:PORT]` entries the suite may connect to whatever their address class, like
    /// `--allow-host`.
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Environment variable holding a real access token issued by another authorization server,
    /// typically the one of the upstream API the MCP server calls (a GitHub token...):
    /// rs-upstream-token-rejected presents it. Without it that case can only show a failure.
    pub upstream_env: Option<String>,
    /// Read from `upstream_env` when the profile loads (the built-in profile sets it directly).
    #[serde(skip)]
    pub upstream: Option<String>,
}

impl TokensConfig {
    pub fn load(&mut self) -> Result<(), (&'static str, String)> {
        if let Some(var) = &self.upstream_env {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => self.upstream = Some(v.trim().to_string()),
                _ => {
                    return Err((
                        "upstream_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PassthroughConfig {
    /// A tool that makes an HTTP request to a URL it is given: rs-no-passthrough calls it
    /// (`tools/call`) with the URL of a canary on 127.0.0.1, so the MCP server must run on
    /// this machine. Without it that case is skipped.
    pub tool: Option<String>,
    /// The tool's argument that carries the URL (default `url`).
    pub argument: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScopesConfig {
    /// A tool that needs more than `[authorization] scope` grants: the 403 and step-up cases
    /// call it (`tools/call` with no arguments) and are skipped without it.
    pub elevated_tool: Option<String>,
    /// A tool that needs two or more scopes beyond the baseline (rs-403-single-challenge).
    pub multi_scope_tool: Option<String>,
    /// A tool the baseline scope covers, and a broader scope that implies the baseline
    /// (rs-scope-hierarchy: the broader scope alone must be enough).
    pub narrow_tool: Option<String>,
    pub broad_scope: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CimdConfig {
    /// Where the AS reaches authconform's document host (a tunnel to it), when the AS is not
    /// on this machine; `--public-base-url` overrides it.
    pub public_base_url: Option<String>,
    /// Port of the document host's https listener (0 or unset: any free port).
    pub port: Option<u16>,
    /// The AS's minimum document cache time, when it documents one: cases that wait for a
    /// cached document to expire wait this long.
    pub cache_secs: Option<u64>,
    /// The AS's trust policy for document hosts, in words (MCP 2025-11-25 §11.6.3: an allow-list,
    /// "any host", ...): cimd-trust-policy reports what the AS did against it, and is skipped
    /// without it, since a refusal could not be told from a failure.
    pub trust_policy: Option<String>,
    /// `HOST:PORT` (UDP) where authconform runs a DNS server for the run, which the AS under
    /// test uses as its resolver (for `cimd-ssrf-dns-rebind`: `rebind.authconform.test` first
    /// resolves to 127.0.0.1, then to ::1). It answers nothing else but `localhost` names and
    /// forwards nothing. Without it that case is skipped.
    pub resolver: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// `scope` of authorization requests (omitted when unset).
    pub scope: Option<String>,
    /// Send the RFC 8707 `resource` parameter (the MCP endpoint) in authorization and token
    /// requests, as MCP clients must. Default true when a resource is known.
    pub resource: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimingConfig {
    /// The longest a case may wait on purpose (code or token expiry); longer cases are skipped.
    pub max_wait_secs: Option<u64>,
    /// How long the AS says its authorization codes live; `code-lifetime` waits one second more.
    pub code_lifetime_secs: Option<u64>,
    /// How long the AS lets a refresh token lie unused before it expires, when it says;
    /// `rt-inactivity-expiry` waits one second more (and is skipped without it).
    pub refresh_idle_secs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileTarget {
    pub resource: Option<String>,
    pub issuer: Option<String>,
    /// Optional display name.
    pub name: Option<String>,
    /// The AS is an MCP proxy that redirects to an upstream AS (MCP 11.7 consent rules apply).
    pub proxy: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileHttp {
    /// Bytes of a response body read at most.
    pub max_body: Option<usize>,
    pub connect_timeout_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    /// PEM file of extra trusted CA certificates (a private CA or a test server's).
    pub ca_file: Option<String>,
}

impl ProfileHttp {
    pub fn apply(&self, base_dir: &Path, cfg: &mut HttpConfig) -> Result<(), String> {
        if let Some(n) = self.max_body {
            cfg.max_body = n;
        }
        if let Some(s) = self.connect_timeout_secs {
            cfg.connect_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.timeout_secs {
            cfg.timeout = Duration::from_secs(s);
        }
        if let Some(f) = &self.ca_file {
            let p = base_dir.join(f);
            let pem = std::fs::read(&p).map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            cfg.extra_roots_pem.push(pem);
        }
        Ok(())
    }
}

/// Reads and validates a profile; errors are located like case-file errors.
pub fn load_profile(path: &Path) -> Result<Profile, FileError> {
    let (display, text) = read_text(path)?;
    let mut profile: Profile =
        toml::from_str(&text).map_err(|e| toml_error(&display, &text, &e))?;
    let at = |path: &[&str], message: String| {
        let p: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        FileError::at(&display, &text, &[&p], path.join("."), message)
    };
    for (key, val) in [
        ("resource", &profile.target.resource),
        ("issuer", &profile.target.issuer),
    ] {
        if let Some(v) = val {
            check_url(v).map_err(|m| at(&["target", key], m))?;
        }
    }
    if let Some(v) = &profile.par.endpoint {
        check_url(v).map_err(|m| at(&["par", "endpoint"], m))?;
    }
    if profile.target.resource.is_none() && profile.target.issuer.is_none() {
        return Err(at(
            &["target"],
            "a profile names `target.resource` (an MCP endpoint) or `target.issuer` (an authorization server)".into(),
        ));
    }
    for (i, c) in profile.clients.iter_mut().enumerate() {
        let idx = format!("clients[{i}]");
        c.validate()
            .and_then(|()| c.load_credentials(path.parent().unwrap_or(Path::new("."))))
            .map_err(|(field, m)| at_index(&text, &display, "clients", i, field, &idx, m))?;
    }
    profile
        .login
        .validate()
        .and_then(|()| profile.login.load_password())
        .map_err(|(field, m)| at(&["login", field], m))?;
    profile
        .tokens
        .load()
        .map_err(|(field, m)| at(&["tokens", field], m))?;
    if profile.passthrough.argument.is_some() && profile.passthrough.tool.is_none() {
        return Err(at(
            &["passthrough", "argument"],
            "`argument` names an argument of `tool`, which is not set".into(),
        ));
    }
    profile
        .grant_revocation
        .validate()
        .map_err(|(field, m)| at(&["grant_revocation", field], m))?;
    profile
        .operator
        .validate()
        .map_err(|(field, m)| at(&["operator", field], m))?;
    if let Some(id) = &profile.token_exchange.client
        && !profile
            .clients
            .iter()
            .any(|c| &c.client_id == id && c.kind() == ClientKind::Confidential)
    {
        return Err(at(
            &["token_exchange", "client"],
            format!("{id:?} is not the client_id of a confidential [[clients]] entry"),
        ));
    }
    if let Some(e) = &mut profile.enterprise {
        e.load(&profile.clients, path.parent().unwrap_or(Path::new(".")))
            .map_err(|(field, m)| at(&["enterprise", field], m))?;
    }
    if profile.http.max_body == Some(0) {
        return Err(at(&["http", "max_body"], "must be at least 1 byte".into()));
    }
    Ok(profile)
}

/// A located error inside an array of tables (`[[clients]]`): the span of the table's field.
fn at_index(
    text: &str,
    display: &str,
    array: &str,
    index: usize,
    field: &'static str,
    label: &str,
    message: String,
) -> FileError {
    // serde_spanned does not index arrays of tables; find the n-th `[[array]]` header instead.
    let header = format!("[[{array}]]");
    let start = text
        .match_indices(&header)
        .nth(index)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let rel = text[start..]
        .find(&format!("\n{field}"))
        .map(|i| start + i + 1)
        .unwrap_or(start);
    let (line, column) = line_col(text, rel);
    FileError {
        file: display.to_string(),
        line,
        column,
        field: Some(format!("{label}.{field}")),
        message,
    }
}

/// A target URL must be absolute http(s) with a host.
pub fn check_url(v: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Ok(()),
        Ok(u) => Err(format!(
            "{v:?} is not an http(s) URL with a host (scheme {:?})",
            u.scheme()
        )),
        Err(e) => Err(format!("{v:?} is not a URL: {e}")),
    }
}

/// `[state_handles]`: a tool that mints a state handle (a cart or workflow id) and one that
/// takes it back as an argument; rs-state-handle-binding is skipped without them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateHandlesConfig {
    /// The tool whose result carries a new handle.
    pub create_tool: Option<String>,
    /// Arguments of `create_tool` (none by default).
    #[serde(default)]
    pub create_arguments: std::collections::BTreeMap<String, toml::Value>,
    /// The tool that takes the handle back.
    pub use_tool: Option<String>,
    /// The name of `use_tool`'s argument that carries the handle.
    pub argument: Option<String>,
    /// A JSON pointer into the `tools/call` result where the handle is
    /// (`/structuredContent/cart_id`); default: the whole text of the first text content.
    pub handle: Option<String>,
}

impl StateHandlesConfig {
    /// The three names a probe needs, when all are configured.
    pub fn tools(&self) -> Option<(&str, &str, &str)> {
        Some((
            self.create_tool.as_deref()?,
            self.use_tool.as_deref()?,
            self.argument.as_deref()?,
        ))
    }
}

/// `[grant_revocation]`: how the logged-in test user revokes a client's access at the AS (its
/// account UI), for grant-revocation-complete; one of `url` or `command`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GrantRevocationConfig {
    /// An endpoint of the AS's account UI, requested with the test user's browser session (its
    /// cookies). `${client_id}` and `${username}` are replaced.
    pub url: Option<String>,
    /// `POST` (default, a form of `fields`) or `GET`.
    pub method: Option<String>,
    /// Form fields (default `client_id = "${client_id}"`); the same replacements.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// A program and its arguments (no shell), run with the client id appended as its last
    /// argument and in `AUTHCONFORM_CLIENT_ID` (the user in `AUTHCONFORM_USERNAME`); it must
    /// exit 0 within `timeout_secs` (default 60).
    #[serde(default)]
    pub command: Vec<String>,
    pub timeout_secs: Option<u64>,
}

impl GrantRevocationConfig {
    pub fn configured(&self) -> bool {
        self.url.is_some() || !self.command.is_empty()
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.url.is_some() && !self.command.is_empty() {
            return Err(("command", "give `url` or `command`, not both".into()));
        }
        if let Some(u) = &self.url {
            check_url(&u.replace("${client_id}", "c").replace("${username}", "u"))
                .map_err(|m| ("url", m))?;
        }
        match self.method.as_deref() {
            None | Some("POST") | Some("GET") => Ok(()),
            Some(m) => Err(("method", format!("{m:?}: use POST or GET"))),
        }
    }
}

/// A pre-registered client in the target profile (`[[clients]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// `none` (public), `client_secret_basic` or `client_secret_post`.
    #[serde(default = "default_method")]
    pub auth_method: String,
    /// Environment variable holding the secret (secrets never live in profile files).
    #[serde(default)]
    pub secret_env: Option<String>,
    pub redirect_uris: Vec<String>,
    /// The secret, read from `secret_env` when the profile loads (or set by the built-in
    /// reference profile).
    #[serde(skip)]
    pub secret: Option<String>,
    /// For `private_key_jwt`: a PEM file (PKCS#8) with the client's P-256 key, relative to the
    /// profile.
    #[serde(default)]
    pub key_file: Option<String>,
    /// The `kid` the AS knows that key by.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The key, read from `key_file` when the profile loads.
    #[serde(skip)]
    pub key: Option<std::sync::Arc<ClientKey>>,
}

fn default_method() -> String {
    "none".into()
}

pub const AUTH_METHODS: &[&str] = &[
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

impl ClientConfig {
    /// Checks the entry and reads its secret; errors name the offending field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.client_id.is_empty() {
            return Err(("client_id", "must not be empty".into()));
        }
        if !AUTH_METHODS.contains(&self.auth_method.as_str()) {
            return Err((
                "auth_method",
                format!(
                    "{:?} is not one of {}",
                    self.auth_method,
                    AUTH_METHODS.join(", ")
                ),
            ));
        }
        if self.redirect_uris.is_empty() || self.redirect_uris.iter().any(String::is_empty) {
            return Err((
                "redirect_uris",
                "list at least one registered redirect URI".into(),
            ));
        }
        if self.auth_method == "private_key_jwt" {
            if self.key_file.is_none() && self.key.is_none() {
                return Err((
                    "key_file",
                    "a private_key_jwt client needs key_file (a PKCS#8 PEM P-256 key)".into(),
                ));
            }
        } else if self.auth_method != "none" && self.secret_env.is_none() && self.secret.is_none() {
            return Err((
                "secret_env",
                format!(
                    "a {} client needs secret_env (the environment variable holding its secret)",
                    self.auth_method
                ),
            ));
        }
        Ok(())
    }

    /// Reads the secret from the environment and the key from its file (relative to `base`).
    pub fn load_credentials(
        &mut self,
        base: &std::path::Path,
    ) -> Result<(), (&'static str, String)> {
        if let Some(f) = &self.key_file {
            let path = base.join(f);
            let pem = std::fs::read_to_string(&path)
                .map_err(|e| ("key_file", format!("{}: {e}", path.display())))?;
            let key = ClientKey::from_pem(&pem, self.key_id.clone())
                .map_err(|e| ("key_file", format!("{}: {e}", path.display())))?;
            self.key = Some(std::sync::Arc::new(key));
        }
        self.load_secret()
    }

    /// Reads the secret from the environment.
    pub fn load_secret(&mut self) -> Result<(), (&'static str, String)> {
        if let Some(var) = &self.secret_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => self.secret = Some(v),
                _ => {
                    return Err((
                        "secret_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn kind(&self) -> ClientKind {
        if self.auth_method == "none" {
            ClientKind::Public
        } else {
            ClientKind::Confidential
        }
    }
}

/// Registration defaults (`[registration]` in the profile).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Extra client metadata sent with every registration (`scope`, `application_type`...).
    #[serde(default)]
    pub metadata: BTreeMap<String, toml::Value>,
    /// `client_secret_basic` (default) or `client_secret_post` for confidential clients.
    #[serde(default)]
    pub confidential_method: Option<String>,
    /// The AS accepts any `client_id` with any redirect URI, no registration needed (as mock
    /// and development servers do): a case that needs a public client the profile does not
    /// have makes one up (`authconform-<random>`, with the redirect URIs it wants) when the AS
    /// offers no Dynamic Client Registration. Clients with metadata, confidential clients and
    /// the cases about registration itself (area `dcr`) cannot be made up: they still skip.
    #[serde(default)]
    pub open: bool,
}
