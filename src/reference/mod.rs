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

mod account;
mod authorize;
mod cimd;
mod client_credentials;
mod dpop;
mod handles;
mod id_jag;
mod jwt;
mod login_api;
mod metadata;
mod oidc;
mod par;
mod registration;
mod resource;
mod scopes;
mod session;
mod spa;
mod store;
mod tls;
mod token;
mod token_exchange;
mod upstream;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authconform_core::spec::Revision;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

pub use crate::local_ca::LocalCa;
pub use id_jag::IdJagIdp;

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
    // MCP sessions and the bearer scheme (src/reference/session.rs)
    "rs-auth-every-request",
    "rs-bearer-scheme-case-insensitive",
    "rs-stale-session-4xx",
    "rs-session-id-entropy",
    "rs-session-user-binding",
    // State handles minted by tools (src/reference/handles.rs).
    "rs-state-handle-binding",
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
    "asm-no-implicit-ropc.password",
    "asm-grant-types",
    "asm-grant-types.behaviour",
    "asm-auth-methods",
    "asm-auth-methods.advertised",
    "asm-auth-methods.accepted",
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
    "asm-response-types-values",
    "asm-iss-flag",
    // The operator rotates the signing keys (the hook in this file, `operator_rotate`).
    "asm-jwks-rotation",
    // Authorization code flow: PKCE, redirect URIs, codes, token endpoint
    "pkce-required-public",
    "pkce-required-confidential",
    "pkce-no-challenge-token-reject",
    "pkce-verifier-mismatch",
    "pkce-verifier-missing",
    "pkce-downgrade",
    "pkce-plain-rejected",
    "pkce-method-default-plain",
    "pkce-unknown-method",
    "pkce-verifier-syntax",
    "pkce-challenge-syntax",
    "pkce-positive",
    "pkce-challenge-not-leaked",
    "pkce-duplicate-param",
    "pkce-s256-challenge-as-verifier",
    "redir-exact-positive",
    "redir-trailing-slash",
    "redir-host-case",
    "redir-scheme-case",
    "redir-path-case",
    "redir-added-query",
    "redir-extra-path",
    "redir-fragment",
    "redir-userinfo",
    "redir-percent-encoding",
    "redir-http-vs-https",
    "redir-default-port.443",
    "redir-default-port.other",
    "redir-host-variants",
    "redir-wildcard",
    "redir-loopback-port-any",
    "redir-loopback-path",
    "redir-loopback-ipv6.accept",
    "redir-loopback-ipv6.cross",
    "redir-localhost-vs-127",
    "redir-localhost-port",
    "redir-loopback-lookalikes",
    "redir-loopback-https",
    "redir-http-nonloopback-registration",
    "redir-dangerous-scheme",
    "redir-private-scheme-no-dot",
    "redir-missing-multi",
    "redir-duplicate-param",
    "redir-invalid-client-no-redirect",
    "redir-error-after-validation-only.valid-uri",
    "redir-error-after-validation-only.invalid-uri",
    "redir-token-endpoint-consistency",
    "redir-registered-query-positive",
    "redir-registered-query-mismatch",
    "code-single-use",
    "code-replay-revokes",
    "code-replay-invalid-no-revoke",
    "code-concurrent-redeem",
    "code-lifetime",
    "code-client-binding",
    "code-client-missing",
    "code-redirect-binding",
    "code-resource-binding",
    "code-state-echo",
    "code-state-on-error",
    "code-iss-param",
    "code-iss-param.rfc9207",
    "code-response-type",
    "code-response-type.removed",
    "code-get-support",
    "code-unknown-param-ignored",
    "code-empty-param",
    "code-entropy",
    "code-open-redirector",
    "code-consent-clickjacking",
    "code-response-param-unique",
    "code-error-response-format",
    "code-access-denied",
    "code-state-optional",
    "code-referrer-policy",
    "code-redirect-fragment-fix",
    "code-public-client-consent",
    "tok-post-only",
    "tok-form-encoded",
    "tok-error-format",
    "tok-error-format.status",
    "tok-invalid-client-basic",
    "tok-invalid-client-unknown",
    "tok-confidential-needs-auth",
    "tok-multi-auth-methods",
    "tok-auth-method-mismatch",
    "tok-unsupported-grant",
    "tok-unauthorized-client",
    "tok-missing-param",
    "tok-duplicate-param",
    "tok-empty-as-omitted",
    "tok-unknown-param",
    "tok-no-store",
    "tok-response-shape",
    "tok-fuzz",
    "tok-client-creds-in-query",
    "tok-pragma-no-cache",
    "tok-token-charset",
    "tok-jwt-assertion",
    "tok-jwt-assertion.replay",
    "tok-jwt-assertion-aud-issuer",
    "at-short-lived",
    "at-expired-rs",
    "rt-rotation-public",
    "rt-reuse-detection",
    "rt-client-binding",
    "rt-confidential-auth",
    "rt-scope-escalation",
    "rt-no-store",
    "rt-concurrent",
    "rt-after-revocation",
    "rt-scope-downscope",
    "rt-new-rt-same-scope",
    "rt-resource-binding",
    "rt-entropy",
    "at-entropy",
    "rt-inactivity-expiry",
    // The user revokes a client's access in the account UI (src/reference/account.rs).
    "grant-revocation-complete",
    // Audience
    "rs-aud-wrong",
    "as-resource-invalid",
    "as-resource-unknown",
    "as-resource-case",
    "as-resource-token-mismatch",
    "as-resource-ignored",
    // Tokens that are not the resource's, token passthrough (src/reference/upstream.rs).
    "rs-id-token-as-at",
    "rs-upstream-token-rejected",
    "rs-no-passthrough",
    // Scopes at the AS
    "as-scope-invalid",
    "as-scope-omitted",
    "as-scope-order-independent",
    "as-scope-syntax",
    "as-scope-subset-reported",
    // Transport: where the resource server takes tokens from
    "rs-query-token-ignored",
    "rs-query-and-header",
    "rs-cookie-token",
    "rs-origin-check",
    "rs-body-token",
    "as-sensitive-no-store",
    "as-auth-endpoint-get-fragment",
    // Transport security (src/reference/tls.rs)
    "tls-as",
    "tls-rs",
    "tls-cert",
    "tls-modern-config",
    // Introspection
    "intro-auth-required",
    "intro-active",
    "intro-inactive",
    "intro-inactive.no-extra",
    "intro-hint-ignored",
    "intro-refresh-token",
    "intro-aud-present",
    // Revocation
    "rev-valid",
    "rev-rt-cascades",
    "rev-invalid-token-200",
    "rev-client-binding",
    "rev-post-form",
    "rev-confidential-auth",
    "rev-hint-wrong",
    "rev-at",
    "rev-at-cascades-rt",
    "rev-unsupported-type",
    // Dynamic Client Registration
    "dcr-basic",
    "dcr-secret-expiry",
    "dcr-public-no-secret",
    "dcr-invalid-redirect",
    "dcr-invalid-metadata",
    "dcr-grant-response-consistency",
    "dcr-unknown-ignored",
    "dcr-redirect-enforced",
    "dcr-https-only",
    "dcr-content-type",
    "dcr-size-fuzz",
    "dcr-display-escaping",
    "dcr-no-https-client-ids",
    "dcr-scope-restriction",
    "dcr-secret-entropy",
    "consent-shows-client-metadata",
    "dcr-application-type.native",
    "dcr-application-type.web",
    "dcr-loopback-no-application-type",
    // Client ID Metadata Documents
    "cimd-flag",
    "cimd-fetch",
    "cimd-url-https",
    "cimd-url-path",
    "cimd-url-dot-segments",
    "cimd-url-fragment",
    "cimd-url-userinfo",
    "cimd-url-query",
    "cimd-url-port",
    "cimd-client-id-mismatch",
    "cimd-no-normalisation",
    "cimd-redirect-in-doc",
    "cimd-required-fields",
    "cimd-invalid-json",
    "cimd-status-non-200",
    "cimd-no-redirect-follow",
    "cimd-content-type",
    "cimd-forbidden-auth-method",
    "cimd-no-client-secret",
    "cimd-private-key-jwt",
    "cimd-none-public-pkce",
    "cimd-size-limit",
    "cimd-fetch-timeout",
    "cimd-ssrf-special-ip",
    "cimd-ssrf-nested-urls",
    "cimd-ssrf-dns-rebind",
    "cimd-cache-headers",
    "cimd-no-cache-errors",
    "cimd-metadata-change",
    "cimd-display-hostname",
    "cimd-localhost-warning",
    "cimd-error-shape",
    "cimd-token-client-match",
    // client_credentials (src/reference/client_credentials.rs)
    "cc-auth-required",
    "cc-confidential-only",
    "cc-grant-registered",
    "cc-no-refresh-token",
    "cc-resource-aud",
    "cc-scope",
    "cc-scope.beyond-registration",
    "cc-ext-secret-basic",
    "cc-jwt-assertion",
    "cc-ext-jwt-bearer",
    // Forged tokens at the RS (src/reference/jwt.rs).
    "rs-jwt-attacks.alg-none",
    "rs-jwt-attacks.no-signature",
    "rs-jwt-attacks.flipped-signature",
    "rs-jwt-attacks.hs256-public-key",
    "rs-jwt-attacks.kid-traversal",
    "rs-jwt-attacks.jwk-embedded",
    "rs-jwt-attacks.jku",
    "rs-jwt-attacks.x5u",
    "rs-jwt-attacks.aud-tampered",
    "rs-jwt-attacks.iss-tampered",
    "rs-jwt-attacks.truncated",
    "rs-jwt-attacks.extended",
    "rs-jwt-attacks.case-flipped",
    "rs-jwt-attacks.forged-none",
    "rs-jwt-attacks.forged-unknown-key",
    "rs-scope-claim-tamper",
    "rs-foreign-issuer",
    "rs-time-claims.exp",
    "rs-time-claims.nbf",
    "rs-aud-missing",
    "rs-401-expired-token",
    "as-resource-bound",
    "cc-rs-403",
    "rs-403-single-challenge",
    "rs-scope-hierarchy",
    "rs-challenge-syntax",
    "prm-no-offline-access",
    "prm-scope-catalogue",
    // Scope enforcement at the RS (src/reference/scopes.rs).
    "rs-403-insufficient-scope",
    "rs-403-vs-401",
    "rs-403-scope-content",
    "rs-stepup-works",
    "rs-downscoped-accepted",
    "rs-initial-scope-sufficient",
    // Token exchange, RFC 8693 (src/reference/token_exchange.rs).
    "tx-advertised",
    "tx-required-params",
    "tx-actor-type-pairing",
    "tx-response",
    "tx-act-claim",
    "tx-may-act",
    "tx-invalid-subject",
    "tx-invalid-subject.expired",
    "tx-invalid-subject.revoked",
    "tx-target",
    "tx-no-escalation",
    "tx-mcp-rs-audience",
    // DPoP (RFC 9449): the token endpoint, /mcp and the metadata (reference/dpop.rs)
    "dpop-advertised",
    "dpop-token-type",
    "dpop-token-type.eddsa",
    "dpop-proof-validation.htm",
    "dpop-proof-validation.htu",
    "dpop-proof-validation.iat-stale",
    "dpop-proof-validation.iat-future",
    "dpop-proof-validation.replay",
    "dpop-proof-validation.alg-none",
    "dpop-proof-validation.hs256",
    "dpop-proof-validation.private-jwk",
    "dpop-proof-validation.typ",
    "dpop-proof-validation.no-jwk",
    "dpop-proof-validation.two-headers",
    "dpop-proof-validation.no-ath",
    "dpop-downgrade-bearer",
    "dpop-nonce",
    "dpop-nonce.downgrade",
    "dpop-rt-binding",
    "dpop-jkt-code-binding",
    "dpop-htu-normalisation.query-fragment",
    "dpop-htu-normalisation.case-port",
    "dpop-clock-skew.past",
    "dpop-clock-skew.future",
    // Enterprise-managed authorization, ID-JAG (src/reference/id_jag.rs).
    "idjag-advertised",
    "idjag-accepted",
    "idjag-typ",
    "idjag-signature",
    "idjag-issuer-trust",
    "idjag-audience",
    "idjag-client-binding",
    "idjag-time",
    "idjag-replay",
    "idjag-resource-binding",
    "idjag-scope",
    "idjag-not-a-bearer",
    // Pushed Authorization Requests, RFC 9126 (src/reference/par.rs).
    "par-advertised",
    "par-201",
    "par-no-request-uri-inside",
    "par-redirect-validated",
    "par-one-time",
    "par-expiry",
    "par-client-binding",
    "par-required",
    "par-post-only",
    "par-minimal-auth-request",
    "par-client-auth",
    "par-request-uri-entropy",
];

/// Faults that only a sequence of operations reveals (for `authconform fuzz --lifecycle`), with
/// what the faulty server does. Each acts on tokens of a later generation (issued by a refresh;
/// see `TokenGrant::generation`) or on a family that was refreshed, so every single-request case
/// still passes and the single-request fuzz campaigns stay silent; a lifecycle invariant breaks.
pub const LIFECYCLE_FAULTS: &[(&str, &str)] = &[
    (
        "lifecycle.code-replay-after-refresh",
        "once a token family has been refreshed, the code that started it can be redeemed again \
         (fresh tokens, no invalid_grant, no family revocation)",
    ),
    (
        "lifecycle.rt-revocation-later-generation",
        "revoking a refresh token of generation 2 or later (rotated in by a second refresh) \
         answers 200 and changes nothing",
    ),
    (
        "lifecycle.rs-revocation-later-generation",
        "a revoked access token of generation 2 or later (issued by a second refresh) is inactive \
         at introspection but the MCP endpoint accepts it until it expires",
    ),
    (
        "lifecycle.refresh-scope-regrowth",
        "refreshing a refresh token of generation 1 or later checks the requested scope against \
         every supported scope, and the new tokens carry it",
    ),
    (
        "lifecycle.refresh-race-later-generation",
        "a spent refresh token of generation 1 or later stays usable for 2 s after rotation \
         (concurrent refreshes fork the family)",
    ),
];

/// The lifecycle fault ids, comma-separated (for messages).
pub fn lifecycle_ids() -> String {
    LIFECYCLE_FAULTS
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lifecycle fault id (see [`LIFECYCLE_FAULTS`]).
pub fn is_lifecycle_fault(id: &str) -> bool {
    LIFECYCLE_FAULTS.iter().any(|(f, _)| *f == id)
}

/// A fault the reference implements: a case id of [`FAULTS`] or a lifecycle fault id.
pub fn is_fault(id: &str) -> bool {
    FAULTS.contains(&id) || is_lifecycle_fault(id)
}

/// How to start the reference.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// 0 = an ephemeral port.
    pub port: u16,
    pub faults: Vec<String>,
    /// Development mode for Client ID Metadata Documents: loopback `HOST:PORT`s the reference
    /// may fetch documents from (authconform's document host); every other special-use address
    /// is refused.
    pub cimd_dev_origins: Vec<String>,
    /// A CA to trust when fetching documents (the document host's).
    pub cimd_trust_pem: Option<String>,
    /// The DNS server (UDP) the reference resolves document hosts' names through, as an
    /// operator would configure a resolver; `None`: the system's.
    pub cimd_resolver: Option<std::net::SocketAddr>,
    /// A fragile server, for the suite's own tests of concurrency: every request takes a little
    /// while, and the token endpoint answers 503 while another request is in flight. Not a
    /// fault (no requirement is broken by it); set by `AUTHCONFORM_REFERENCE_FRAGILE=1`.
    pub fragile: bool,
    /// The MCP revision the `/mcp` endpoint speaks: 2025-11-25 (the default, `None`: the
    /// `initialize` handshake and `Mcp-Session-Id` sessions) or 2026-07-28 (stateless:
    /// `server/discover`, no sessions). The authorization server is the same for both.
    pub revision: Option<Revision>,
    /// How the login and consent are presented (the authorization endpoint is the same).
    pub login: LoginStyle,
    /// Open registration, as mock and development authorization servers have it: an unknown
    /// `client_id` is taken as a public client with any redirect URI, and the metadata names
    /// no registration endpoint. Not compliant (any redirect URI is an open redirector): it is
    /// what a profile's `[registration] open = true` is tested against.
    pub open_registration: bool,
    /// The optional mechanisms of catalogue areas 15 and 16 it offers (all by default).
    pub offer: Offer,
    /// The enterprise IdPs whose ID-JAGs it may see, with their JWK Sets (the suite's IdP,
    /// trusted, and a second one that is not); none: no ID-JAG is accepted.
    pub id_jag_idps: Vec<IdJagIdp>,
}

/// The optional mechanisms the reference offers: PAR (RFC 9126), DPoP (RFC 9449), token
/// exchange (RFC 8693) and enterprise-managed authorization (ID-JAG). Each one offered is
/// advertised in the metadata and served; one not offered is neither advertised nor served,
/// as on a server that never implemented it, and its cases skip (`--reference-offer none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub par: bool,
    pub dpop: bool,
    pub token_exchange: bool,
    pub id_jag: bool,
}

impl Offer {
    pub const ALL: Offer = Offer {
        par: true,
        dpop: true,
        token_exchange: true,
        id_jag: true,
    };
    pub const NONE: Offer = Offer {
        par: false,
        dpop: false,
        token_exchange: false,
        id_jag: false,
    };
    /// The names `--reference-offer` takes, in order.
    pub const NAMES: [&'static str; 4] = ["par", "dpop", "token-exchange", "id-jag"];

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        match name {
            "par" => Some(&mut self.par),
            "dpop" => Some(&mut self.dpop),
            "token-exchange" => Some(&mut self.token_exchange),
            "id-jag" => Some(&mut self.id_jag),
            _ => None,
        }
    }
}

impl Default for Offer {
    fn default() -> Self {
        Offer::ALL
    }
}

impl std::str::FromStr for Offer {
    type Err = String;
    /// `all`, `none`, or a comma-separated list of [`Offer::NAMES`].
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => return Ok(Offer::ALL),
            "none" | "" => return Ok(Offer::NONE),
            _ => {}
        }
        let mut o = Offer::NONE;
        for name in s.split(',').map(str::trim) {
            *o.flag(name).ok_or_else(|| {
                format!(
                    "the reference offers {}; `all` or `none`; not {name:?}",
                    Offer::NAMES.join(", ")
                )
            })? = true;
        }
        Ok(o)
    }
}

/// How the reference presents its login and consent: the suite's login drivers must get a test
/// user through each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginStyle {
    /// HTML forms, posted by the browser (the `form` driver).
    #[default]
    Form,
    /// A page with no form: the credentials and the decision go to JSON endpoints, whose
    /// answer names the URL to go to next (the `script` driver).
    Json,
    /// A single-page login: the same JSON endpoints, called by a script that renders the form
    /// in the page (the `browser` driver).
    Spa,
}

impl LoginStyle {
    pub const ALL: [LoginStyle; 3] = [LoginStyle::Form, LoginStyle::Json, LoginStyle::Spa];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginStyle::Form => "form",
            LoginStyle::Json => "json",
            LoginStyle::Spa => "spa",
        }
    }
}

impl std::str::FromStr for LoginStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                format!("the reference's login styles are form, json and spa, not {s:?}")
            })
    }
}

/// The revisions the reference's MCP endpoint can speak.
pub const REVISIONS: [Revision; 2] = [Revision::V2025_11_25, Revision::V2026_07_28];

/// Shared state of a running reference.
pub(crate) struct Ref {
    /// See [`Options::login`].
    pub login: LoginStyle,
    /// See [`Options::fragile`]; the count of requests being served.
    pub fragile: Option<std::sync::atomic::AtomicUsize>,
    pub origin: String,
    pub issuer: String,
    pub resource: String,
    /// Origin of the plain-http side listener (only with the `prm-https` and `dcr-https-only`
    /// faults).
    pub plain_origin: Option<String>,
    pub faults: BTreeSet<String>,
    /// The MCP revision `/mcp` speaks (one of [`REVISIONS`]).
    pub revision: Revision,
    /// The AS keys that sign JWT access tokens and ID tokens (published in `jwks.json`); an
    /// operator may rotate them ([`operator_rotate`]).
    pub keys: std::sync::Mutex<jwt::KeyRing>,
    /// The secret path segment of the operator's key-rotation hook.
    pub operator_secret: String,
    /// Registered clients (pre-registered and DCR), as their metadata documents.
    pub clients: std::sync::Mutex<Vec<serde_json::Value>>,
    pub username: String,
    pub password: String,
    /// A second test user (user-binding cases).
    pub second_username: String,
    pub second_password: String,
    /// More test users (name, password): a pool large enough that cases running at once each
    /// log in as their own user.
    pub more_users: Vec<(String, String)>,
    /// Open registration, as mock and development servers have it: any unknown `client_id` is
    /// a public client with any redirect URI, and no registration endpoint is offered.
    pub open_registration: bool,
    /// See [`Options::offer`].
    pub offer: Offer,
    pub store: std::sync::Mutex<store::Store>,
    /// State handles the `cart_*` tools minted (`handles.rs`).
    pub carts: std::sync::Mutex<handles::Carts>,
    /// Clients named by metadata documents, as last resolved.
    pub cimd_clients: std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>,
    pub cimd_cache: std::sync::Mutex<cimd::Cache>,
    /// Development mode: loopback `HOST:PORT`s documents may be fetched from.
    pub cimd_dev_origins: Vec<String>,
    pub cimd_trust_pem: Option<String>,
    pub cimd_resolver: Option<std::net::SocketAddr>,
    /// See [`Options::id_jag_idps`].
    pub id_jag_idps: Vec<IdJagIdp>,
    /// The `jti`s of redeemed ID-JAGs.
    pub id_jag_jtis: std::sync::Mutex<id_jag::SeenJtis>,
    /// Pushed authorization requests (`par.rs`).
    pub par: std::sync::Mutex<par::Store>,
}

impl Ref {
    pub fn fault(&self, id: &str) -> bool {
        self.faults.contains(id)
    }
    /// A 2026-07-28 endpoint: stateless, no `initialize`, no sessions.
    pub fn stateless(&self) -> bool {
        self.revision == Revision::V2026_07_28
    }
    /// The key that signs new tokens.
    pub fn signer(&self) -> Arc<jwt::Signer> {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current()
    }
    /// The keys the RS trusts and `jwks.json` publishes, the current one first.
    pub fn verification_keys(&self) -> Vec<Arc<jwt::Signer>> {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .published()
    }
    pub fn client(&self, id: &str) -> Option<serde_json::Value> {
        if cimd::is_url(id) {
            return self
                .cimd_clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned();
        }
        let known = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.get("client_id").and_then(|v| v.as_str()) == Some(id))
            .cloned();
        // Open registration: whatever id a client makes up is a public client, redirected
        // anywhere it asks.
        known.or_else(|| {
            (self.open_registration && !id.is_empty()).then(|| {
                serde_json::json!({ "client_id": id, "token_endpoint_auth_method": "none",
                                    "redirect_uris": [], "x_any_redirect": true })
            })
        })
    }
}

/// The pre-registered clients: public with an https and with a loopback redirect URI, and a
/// confidential one (`client_secret_basic`), the shapes the cases ask for.
fn preregistered(secret: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({ "client_id": "ref-public", "token_endpoint_auth_method": "none",
                "redirect_uris": ["https://client.test/cb"] }),
        json!({ "client_id": "ref-loopback", "token_endpoint_auth_method": "none",
                "redirect_uris": ["http://127.0.0.1/cb"] }),
        json!({ "client_id": "ref-confidential", "token_endpoint_auth_method": "client_secret_basic",
                "client_secret": secret, "redirect_uris": ["https://client.test/cb"] }),
    ]
}

/// A running reference server; dropping it does not stop it, [`Reference::shutdown`] does.
pub struct Reference {
    /// The test user's name and password (the login form accepts only these and the second
    /// user's).
    pub username: String,
    pub password: String,
    /// A second test user, for the cases where one user must not reach another's session,
    /// state or grants.
    pub second_username: String,
    pub second_password: String,
    /// More test users the login accepts (see [`Facts::more_users`]).
    pub more_users: Vec<TestUser>,
    /// Pre-registered clients.
    pub clients: Vec<PreregisteredClient>,
    pub issuer: String,
    pub resource: String,
    /// The MCP revision its endpoint speaks.
    pub revision: Revision,
    /// How the login and consent are presented.
    pub login: LoginStyle,
    /// The optional mechanisms it offers.
    pub offer: Offer,
    pub addr: SocketAddr,
    pub ca: Arc<LocalCa>,
    /// The secret path segment of the operator's key-rotation hook.
    operator_secret: String,
    handle: axum_server::Handle<SocketAddr>,
    plain: Option<tokio::task::JoinHandle<()>>,
}

/// A pre-registered client as the reference registered it. Plain values: the reference
/// builds none of the harness's types, so a harness change cannot bend the server it is
/// checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreregisteredClient {
    pub client_id: String,
    /// Its `token_endpoint_auth_method` (`none`, `client_secret_basic`).
    pub auth_method: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// A test user the login form accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    pub username: String,
    pub password: String,
}

/// The tools of the reference MCP server that mint a state handle and take it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateHandleTools {
    pub create_tool: &'static str,
    pub use_tool: &'static str,
    /// `use_tool`'s argument that carries the handle.
    pub argument: &'static str,
    /// A JSON pointer into `create_tool`'s result where the handle is.
    pub handle_pointer: String,
}

/// Everything a harness needs to know to drive a running reference, as plain facts (see
/// [`Reference::facts`]).
#[derive(Debug, Clone)]
pub struct Facts {
    pub issuer: String,
    pub resource: String,
    pub user: TestUser,
    /// For the cases where one user must not reach another's session, state or grants.
    pub second_user: TestUser,
    /// More users the login accepts, so cases running at once can each have their own.
    pub more_users: Vec<TestUser>,
    pub clients: Vec<PreregisteredClient>,
    /// The scope every authorization request asks for.
    pub baseline_scope: &'static str,
    /// A scope that covers `narrow_tool`'s narrower one.
    pub broad_scope: &'static str,
    /// A tool that needs more than the baseline scope.
    pub elevated_tool: &'static str,
    /// A tool that needs several scopes at once.
    pub multi_scope_tool: &'static str,
    /// A tool whose scope `broad_scope` covers.
    pub narrow_tool: &'static str,
    /// A token of the stand-in upstream AS, which the MCP server must refuse.
    pub upstream_token: Option<String>,
    /// The tool that calls an upstream URL, and its URL argument.
    pub fetch_tool: &'static str,
    pub fetch_argument: &'static str,
    pub state_handles: StateHandleTools,
    /// The account page where the signed-in user revokes a client's access.
    pub account_revoke_url: String,
    /// How long an authorization code lives, and how long a refresh token may sit unused.
    pub code_lifetime: Duration,
    pub refresh_idle: Duration,
    /// The operator's hook that rotates the AS signing keys: a POST here (its path holds a
    /// secret made at each start) makes a new current key.
    pub rotate_keys_url: String,
    /// What the reference trusts as a Client ID Metadata Document host, in words.
    pub cimd_trust_policy: &'static str,
    /// How the login and consent are presented.
    pub login_style: LoginStyle,
    /// The optional mechanisms it offers (PAR, DPoP, token exchange, ID-JAG).
    pub offer: Offer,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "unknown reference fault {0:?} (faults are case ids, see `authconform list`, or lifecycle \
         fault ids: {ids})",
        ids = lifecycle_ids()
    )]
    UnknownFault(String),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{0}")]
    Key(String),
    #[error("the reference speaks MCP 2025-11-25 or 2026-07-28, not {0}")]
    Revision(Revision),
}

pub async fn start(opts: Options) -> Result<Reference, StartError> {
    for f in &opts.faults {
        if !is_fault(f) {
            return Err(StartError::UnknownFault(f.clone()));
        }
    }
    let revision = opts.revision.unwrap_or(Revision::V2025_11_25);
    if !REVISIONS.contains(&revision) {
        return Err(StartError::Revision(revision));
    }
    // rustls wants one process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca = tls::local_ca(&opts.faults).map_err(|e| StartError::Tls(e.to_string()))?;
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

    // The prm-https and dcr-https-only faults need somewhere that serves over plain http.
    let mut plain_origin = None;
    let mut plain_listener = None;
    if faults.contains("prm-https") || faults.contains("dcr-https-only") {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| StartError::Bind { port: 0, source })?;
        let p = l
            .local_addr()
            .map_err(|source| StartError::Bind { port: 0, source })?;
        plain_origin = Some(format!("http://127.0.0.1:{}", p.port()));
        plain_listener = Some(l);
    }

    let password = store::random_id(12);
    let second_password = store::random_id(12);
    let more_users: Vec<(String, String)> = ["carol", "dave"]
        .into_iter()
        .map(|u| (u.to_string(), store::random_id(12)))
        .collect();
    let secret = store::random_id(24);
    let signer = jwt::Signer::generate().map_err(StartError::Key)?;
    let operator_secret = store::random_id(16);
    let clients = preregistered(&secret);
    let state = Arc::new(Ref {
        login: opts.login,
        fragile: opts.fragile.then(|| std::sync::atomic::AtomicUsize::new(0)),
        issuer: format!("{origin}/as"),
        resource: format!("{origin}/mcp"),
        origin: origin.clone(),
        plain_origin,
        faults,
        revision,
        keys: std::sync::Mutex::new(jwt::KeyRing::new(signer)),
        operator_secret: operator_secret.clone(),
        clients: std::sync::Mutex::new(clients.clone()),
        username: "alice".into(),
        password: password.clone(),
        second_username: "bob".into(),
        second_password: second_password.clone(),
        more_users: more_users.clone(),
        open_registration: opts.open_registration,
        offer: opts.offer,
        store: std::sync::Mutex::new(store::Store::default()),
        carts: Default::default(),
        cimd_clients: Default::default(),
        cimd_cache: Default::default(),
        cimd_dev_origins: opts.cimd_dev_origins.clone(),
        cimd_resolver: opts.cimd_resolver,
        cimd_trust_pem: opts.cimd_trust_pem.clone(),
        id_jag_idps: opts.id_jag_idps.clone(),
        id_jag_jtis: Default::default(),
        par: Default::default(),
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
    if tls::sniffs(&state) {
        // Transport faults (tls.rs) look at each connection before rustls does.
        tls::serve(listener, config, handle.clone(), app, state.clone()).map_err(|source| {
            StartError::Bind {
                port: opts.port,
                source,
            }
        })?;
    } else {
        let server = axum_server::from_tcp_rustls(listener, config)
            .map_err(|source| StartError::Bind {
                port: opts.port,
                source,
            })?
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
    }
    let client_facts = clients
        .iter()
        .map(|c| PreregisteredClient {
            client_id: c["client_id"].as_str().unwrap_or("").to_string(),
            auth_method: c["token_endpoint_auth_method"]
                .as_str()
                .unwrap_or("none")
                .to_string(),
            secret: c["client_secret"].as_str().map(str::to_string),
            redirect_uris: c["redirect_uris"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    Ok(Reference {
        username: "alice".into(),
        password,
        second_username: "bob".into(),
        second_password,
        more_users: more_users
            .into_iter()
            .map(|(username, password)| TestUser { username, password })
            .collect(),
        clients: client_facts,
        issuer: state.issuer.clone(),
        resource: state.resource.clone(),
        revision,
        offer: opts.offer,
        login: opts.login,
        addr,
        ca: Arc::new(ca),
        operator_secret,
        handle,
        plain,
    })
}

impl Reference {
    /// What a harness needs to drive this reference: its clients, its test users, its tools
    /// and its short lifetimes (so code-lifetime can be observed in a test run).
    pub fn facts(&self) -> Facts {
        Facts {
            issuer: self.issuer.clone(),
            resource: self.resource.clone(),
            user: TestUser {
                username: self.username.clone(),
                password: self.password.clone(),
            },
            second_user: TestUser {
                username: self.second_username.clone(),
                password: self.second_password.clone(),
            },
            more_users: self.more_users.clone(),
            clients: self.clients.clone(),
            baseline_scope: "mcp:tools",
            broad_scope: "mcp:admin",
            elevated_tool: scopes::ELEVATED_TOOL,
            multi_scope_tool: scopes::MULTI_SCOPE_TOOL,
            narrow_tool: scopes::NARROW_TOOL,
            upstream_token: upstream::token(),
            fetch_tool: upstream::FETCH_TOOL,
            fetch_argument: upstream::FETCH_ARGUMENT,
            state_handles: handles::tools(),
            account_revoke_url: format!("{}{}", self.issuer, account::REVOKE_PATH),
            code_lifetime: store::CODE_TTL,
            refresh_idle: store::REFRESH_IDLE,
            rotate_keys_url: format!(
                "{}/operator/{}/rotate-keys",
                self.issuer, self.operator_secret
            ),
            cimd_trust_policy: cimd::TRUST_POLICY,
            login_style: self.login,
            offer: self.offer,
        }
    }

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
    if let Some(in_flight) = &s.fragile {
        use std::sync::atomic::Ordering;
        let others = in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let busy = others > 0 || in_flight.load(Ordering::SeqCst) > 1;
        in_flight.fetch_sub(1, Ordering::SeqCst);
        if busy && path == "/as/token" {
            return json(
                503,
                serde_json::json!({"error": "temporarily_unavailable", "error_description": "busy"}),
            );
        }
    }
    let query = uri.query().unwrap_or("");
    // A URL client_id is resolved (fetched, or taken from the cache) before the synchronous
    // endpoint code looks the client up.
    if path == "/as/authorize" || path == "/as/token" || path == "/as/par" {
        for id in authorize::client_ids(&method, query, &headers, &body) {
            if !cimd::is_url(&id) {
                continue;
            }
            match cimd::resolve(&s, &id).await {
                Ok(doc) => {
                    s.cimd_clients
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, doc);
                }
                Err(why) => {
                    s.cimd_clients
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    return if path == "/as/token" || path == "/as/par" {
                        token::refused_client(&s, &why)
                    } else {
                        authorize::cimd_refused(&s, &method, query, &body)
                    };
                }
            }
        }
    }
    match path {
        "/as/authorize" => return authorize::authorize(&s, &method, query, &headers, &body),
        "/as/login" if method == Method::POST => return authorize::login(&s, &headers, &body),
        "/as/consent" => return authorize::consent(&s, &method, query, &headers, &body),
        // The spa style's shell and script; the JSON API below is the json style's too.
        "/as/signin" if s.login == LoginStyle::Spa => return spa::signin(&s, query, &headers),
        "/as/signin.js" if s.login == LoginStyle::Spa => return spa::script(),
        "/as/signin" if s.login != LoginStyle::Form => {
            return login_api::signin(&s, query, &headers);
        }
        "/as/api/login" if s.login != LoginStyle::Form && method == Method::POST => {
            return login_api::login(&s, &headers, &body);
        }
        "/as/api/consent" if s.login != LoginStyle::Form => {
            return login_api::consent(&s, &method, query, &headers, &body);
        }
        "/as/token" => return token::token(&s, &method, query, &headers, &body),
        "/as/par" if s.offer.par => return par::push(&s, &method, query, &headers, &body),
        "/as/revoke" if !s.fault("asm-revocation-introspection") => {
            return token::revoke(&s, &method, query, &headers, &body);
        }
        "/as/introspect" => return token::introspect(&s, &method, &headers, &body),
        "/as/account/revoke" => return account::revoke(&s, &method, &headers, &body),
        _ => {}
    }
    if path == format!("/as/operator/{}/rotate-keys", s.operator_secret) {
        return operator_rotate(&s, &method);
    }
    if path == "/mcp" {
        let r = resource::mcp(&s, &method, query, &headers, &body);
        // An authorized fetch_url call makes its upstream request here, where it can wait.
        return upstream::complete(&s, r, &headers).await;
    }
    if let Some(r) = resource::metadata(&s, &method, path, &headers) {
        return r;
    }
    if let Some(r) = metadata::handle(&s, &method, path, &headers, &body) {
        return r;
    }
    json(404, serde_json::json!({ "error": "not_found" }))
}

/// The operator's key rotation (what an AS admin does on a schedule): a new signing key under a
/// new `kid`; the old one stays published while tokens it signed may still be valid.
fn operator_rotate(s: &Ref, method: &Method) -> Response {
    if *method != Method::POST {
        return json(405, serde_json::json!({ "error": "method_not_allowed" }));
    }
    let drop_old = s.fault("asm-jwks-rotation");
    let rotated = s
        .keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .rotate(drop_old);
    match rotated {
        Ok(kid) => json(200, serde_json::json!({ "rotated": true, "kid": kid })),
        Err(e) => json(
            500,
            serde_json::json!({ "error": "server_error", "error_description": e }),
        ),
    }
}

/// The request's media type, lowercased, without parameters ("" when absent).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn json(status: u16, v: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(axum::body::Body::from(v.to_string()))
        .unwrap_or_default()
}
