//! The case-file data model. One TOML file per check, `cases/<area>/<id>.toml`; the structure here
//! and `schemas/case.schema.json` describe the same format (the loader enforces both: serde with
//! `deny_unknown_fields` for shape and typos, the JSON Schema for value rules).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::{Level, Quote};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The authorization server.
    As,
    /// The MCP server (resource server).
    Rs,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::As => "as",
            Role::Rs => "rs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LevelKw {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "SHOULD")]
    Should,
    #[serde(rename = "MAY")]
    May,
}

impl From<LevelKw> for Level {
    fn from(l: LevelKw) -> Level {
        match l {
            LevelKw::Must => Level::Must,
            LevelKw::Should => Level::Should,
            LevelKw::May => Level::May,
        }
    }
}

/// What a target must offer for a case to run; otherwise the case is `skipped` with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// An MCP endpoint URL (`--resource`): RS cases.
    Resource,
    /// An authorization server, given (`--issuer`) or discovered from the resource's PRM.
    Issuer,
    /// The AS is an MCP proxy in front of an upstream AS (profile `target.proxy = true`).
    Proxy,
    /// The MCP server has a tool that needs more than the baseline scope (profile
    /// `[scopes] elevated_tool` and `[authorization] scope`): the 403 and step-up cases.
    ScopeTiers,
    /// A declared scope hierarchy (profile `[scopes] broad_scope` and `narrow_tool`).
    ScopeHierarchy,
    /// A second test user (profile `[login] second_username`): the cases where one user must
    /// not reach another's session or state.
    SecondUser,
    /// A tool that mints a state handle and one that takes it back (profile `[state_handles]`).
    StateHandles,
    /// A way for the test user to revoke a client's access in the AS's account UI (profile
    /// `[grant_revocation]`).
    GrantRevocation,
}

/// One case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// Requirement id from the catalogue, optionally `<id>.<variant>`.
    pub id: String,
    pub title: String,
    /// Directory under `cases/` (a spec concept: `challenge`, `prm`, `as_metadata`, ...).
    pub area: String,
    pub role: Role,
    /// Level in the default revision (2025-11-25).
    pub level: LevelKw,
    /// Spec sections, as `MCP 2025-11-25 §4.2` / `RFC 9728 §3.3`.
    pub refs: Vec<String>,
    /// Revisions the requirement exists in; in any other revision it is graded INFO.
    pub specs: Vec<String>,
    /// Level overrides for revisions whose keyword differs from `level`.
    #[serde(default)]
    pub levels: BTreeMap<String, LevelKw>,
    /// The normative sentence the case enforces (its level's reason), carried into results.
    #[serde(default)]
    pub quote: Option<Quote>,
    #[serde(default)]
    pub requires: Vec<Feature>,
    /// What is checked and why, for reports.
    #[serde(default)]
    pub description: Option<String>,
    /// How the reference server's fault of the same id violates the requirement.
    #[serde(default)]
    pub fault: Option<String>,
    /// Why this case can have no reference fault (the list of such cases stays short).
    #[serde(default)]
    pub no_fault: Option<String>,
    /// Whose requirement the shape of an error answer is. `others` (the default): a refusal
    /// this case asks for may come with another status or error code than its expectation
    /// names; the case still passes (its requirement, a refusal, held) and notes the
    /// deviation for the error-format case that owns it (`tok-error-format`,
    /// `rs-401-invalid-token`). `own`: the status and error code are this case's requirement.
    #[serde(default)]
    pub error_shape: ErrorShape,
    /// Run after every other case of the run: the case compares the metadata with what the
    /// others observed (run facts).
    #[serde(default)]
    pub after_others: bool,
    /// Run alone, with no other case at the same time: the case changes state the others
    /// depend on (a replayed code or refresh token may make an AS revoke the test user's
    /// other grants; a withdrawn grant ends every token of its client).
    #[serde(default)]
    pub exclusive: bool,
    /// Variants: the steps run once per variant (each a fresh start), `${v.<name>}` naming the
    /// variant's values. The case fails if any variant fails.
    #[serde(default)]
    pub variants: Vec<Variant>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorShape {
    #[default]
    Others,
    Own,
}

/// One variant of a case: a label for reports and the values its steps refer to as `${v.name}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    pub label: String,
    /// The values, as templates (they may refer to what earlier steps saved).
    #[serde(flatten)]
    pub vars: BTreeMap<String, String>,
}

/// Public (no secret, `token_endpoint_auth_method=none`) or confidential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    #[default]
    Public,
    Confidential,
}

/// The kind of registered redirect URI a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedirectKind {
    /// Whatever the client has.
    #[default]
    Any,
    /// An `https` URI on a non-loopback host (most redirect-matching probes transform its host).
    Https,
    /// An `http` loopback IP literal (RFC 8252 §7.3 rules).
    Loopback,
}

/// What a case makes of an outcome the step did not ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Judge {
    /// The requirement is violated.
    #[default]
    Fail,
    /// A tolerated deviation: the case fails as a warning.
    Warn,
    /// The requirement holds; the case ends here, passed.
    Pass,
    /// The case cannot run against this target (feature absent): skipped.
    Skip,
    /// The suite could not tell.
    Error,
}

/// What an authorization request must lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthzExpect {
    /// A redirect to the requested redirect URI carrying a `code` (and no `error`).
    #[default]
    Code,
    /// No code: an error redirect to a registered URI or an error page (O21 4.1.2.1).
    Rejected,
    /// The AS must not redirect to the supplied (untrusted) URI at all: an error page.
    NoRedirect,
    /// An error redirect to the registered URI with `error=` (the URI is trusted).
    ErrorRedirect,
    /// Record whatever happens; later steps judge.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    #[default]
    Approve,
    Deny,
}

/// Which test user a login uses: the profile's `[login] username`, or its `second_username`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TestUser {
    #[default]
    First,
    Second,
}

/// One step: an action that talks to the target and saves what it observed, or an expectation
/// over what earlier steps saved.
///
/// Each kind is one struct, deserialised once and executed as is by the step layer
/// (`crate::step`); its defaults are the struct's `Default`, which checks also start from when
/// they make a request of the same kind. Unknown keys are refused by each struct.
// Steps are parsed once and kept in a short Vec per case: the variants' size difference costs
// nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Step {
    McpRequest(McpRequestStep),
    Http(HttpStep),
    DiscoverPrm(DiscoverPrmStep),
    DiscoverAs(DiscoverAsStep),
    Client(ClientStep),
    Authorize(AuthorizeStep),
    Document(DocumentStep),
    Fetches(FetchesStep),
    Wait(WaitStep),
    Token(TokenStep),
    Expect(ExpectStep),
    Check(CheckStep),
}

/// A request to the MCP endpoint (the target resource).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpRequestStep {
    pub method: String,
    /// JSON-RPC method for POST: `initialize`, `tools/list`, or `auto` (the form the graded
    /// revision uses: `server/discover` with its headers for 2026-07-28, else `initialize`).
    pub rpc: String,
    /// Call this tool instead (`tools/call`, no arguments); `elevated` is the profile's
    /// `[scopes] elevated_tool`, and the case is skipped when none is configured.
    pub tool: Option<String>,
    /// `Authorization` header values (templates; `\xNN` escapes send raw bytes; several =
    /// several header fields).
    pub authorization: Vec<String>,
    /// `Authorization` value of `size` bytes: `Bearer ` followed by `a`s (oversized probes).
    pub authorization_size: Option<usize>,
    pub headers: BTreeMap<String, String>,
    /// A DPoP proof (RFC 9449 §7) sent with the request; its `ath` is the hash of the token
    /// the `authorization` value carries.
    pub dpop: Option<DpopSpec>,
    pub note: Option<String>,
    /// This request sets the stage (a request that must succeed): if its expectation fails,
    /// the case cannot be judged and errors instead of failing. Unset, the loader infers it
    /// (see [`super::infer_preconditions`]).
    pub precondition: Option<bool>,
    pub save: Option<String>,
    pub expect: Option<Expect>,
}

impl Default for McpRequestStep {
    fn default() -> Self {
        Self {
            method: default_post(),
            rpc: default_rpc(),
            tool: Default::default(),
            authorization: Default::default(),
            authorization_size: Default::default(),
            headers: Default::default(),
            dpop: Default::default(),
            note: Default::default(),
            precondition: Default::default(),
            save: Default::default(),
            expect: Default::default(),
        }
    }
}

/// A raw HTTP request; `url` is a template (`${prm.url}`) sent without normalisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default = "default_get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// When the URL template references something absent, skip the case with this reason
    /// (a feature the target does not offer) instead of erroring.
    #[serde(default)]
    pub skip_if_unresolved: Option<String>,
    /// This request sets the stage (a request that must succeed): if its expectation fails,
    /// the case cannot be judged and errors instead of failing.
    #[serde(default)]
    pub precondition: bool,
    #[serde(default)]
    pub save: Option<String>,
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// RFC 9728 / MCP 4.2 discovery of the Protected Resource Metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverPrmStep {
    /// `auto` (header URL, else path-inserted, else root: the client order), `header`,
    /// `well_known` (path-inserted then root), `all` (every source; consistency checks).
    pub via: String,
    pub save: String,
    pub expect: Option<Expect>,
}

impl Default for DiscoverPrmStep {
    fn default() -> Self {
        Self {
            via: default_auto(),
            save: default_prm(),
            expect: Default::default(),
        }
    }
}

/// RFC 8414 / OIDC discovery of the authorization server metadata (MCP 4.3 order).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverAsStep {
    /// Issuer template; default: the target issuer, else the PRM's first authorization server.
    pub issuer: Option<String>,
    /// `auto` (first that answers in the MCP order), `oauth`, `oidc`, `all`.
    pub via: String,
    pub save: String,
    /// Use the run's shared discovery (made once, by the first case that needs it) instead
    /// of discovering again: for cases that only need an endpoint from the metadata.
    pub cached: bool,
    pub expect: Option<Expect>,
}

impl Default for DiscoverAsStep {
    fn default() -> Self {
        Self {
            issuer: Default::default(),
            via: default_auto(),
            save: default_asm(),
            cached: Default::default(),
            expect: Default::default(),
        }
    }
}

/// Provides an OAuth client: one from the target profile, or a fresh one by Dynamic Client
/// Registration (RFC 7591).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientStep {
    pub save: String,
    pub kind: ClientKind,
    /// Always register a new client (no state shared with other cases).
    pub fresh: bool,
    pub redirect: RedirectKind,
    /// Redirect URIs to register (templates, sent as given); implies `fresh`.
    pub redirect_uris: Vec<String>,
    /// Extra registration metadata.
    pub metadata: BTreeMap<String, toml::Value>,
    /// `token_endpoint_auth_method` to register a confidential client with
    /// (`client_secret_basic` by default; `private_key_jwt` registers a fresh key).
    pub auth_method: Option<String>,
    /// What a refused registration means (default: the suite could not provision: errored).
    pub refused: Judge,
    /// What an accepted registration means (default: carry on).
    pub accepted: Option<Judge>,
}

impl Default for ClientStep {
    fn default() -> Self {
        Self {
            save: default_client(),
            kind: Default::default(),
            fresh: Default::default(),
            redirect: Default::default(),
            redirect_uris: Default::default(),
            metadata: Default::default(),
            auth_method: Default::default(),
            refused: default_error(),
            accepted: Default::default(),
        }
    }
}

/// An authorization request (O21 4.1.1) driven through the login and consent of the
/// profile's login driver, up to the redirect back to the client, which is recorded and
/// never followed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizeStep {
    pub client: String,
    pub save: String,
    /// The `redirect_uri` value, sent exactly as given (default: the client's first).
    pub redirect_uri: Option<String>,
    /// Parameters added or replaced (templates; `""` sends an empty value).
    pub params: BTreeMap<String, String>,
    /// Default parameters not to send (`code_challenge`, `state`, `redirect_uri`...).
    pub omit: Vec<String>,
    /// Raw text appended to the query (duplicate parameters), already encoded.
    pub extra: Option<String>,
    /// The PKCE verifier (template); the S256 challenge is computed from it.
    pub verifier: Option<String>,
    /// Name of a browser session (cookies) to reuse across authorizations of this case.
    pub session: Option<String>,
    /// Drive the login and consent (false: stop at the first page the AS shows).
    pub login: bool,
    pub consent: Consent,
    /// The test user who logs in: `first` (default) or `second` (`[login] second_username`;
    /// the case is skipped without one). Give it its own `session`: a browser session
    /// already logged in stays logged in as whoever it was.
    pub user: TestUser,
    pub expect: AuthzExpect,
    /// Allowed `error` codes of an error redirect.
    pub error: Option<Vec<String>>,
    /// What a code means where the step expected none (default: fail).
    pub accepted: Judge,
    /// What an error page means where an error redirect was expected (default: fail).
    pub error_page: Judge,
    /// What a refusal means where a code was expected (default: fail; `skip` for a
    /// request the AS may refuse by policy, which leaves nothing to probe).
    pub refused: Judge,
    /// The AS must have answered within this many seconds (a hung fetch behind it fails).
    pub max_secs: Option<u64>,
    /// A refusal must not be a 5xx page (a crash is not a controlled rejection).
    pub no_5xx: bool,
    /// Binds the code to this DPoP key of the case (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// Push the request to the PAR endpoint first (RFC 9126 §2, with the client's token
    /// endpoint authentication), save that answer as `<save>_par`, then open the authorization
    /// endpoint with only `client_id` and the `request_uri` it returned (RFC 9126 §4).
    pub push: bool,
    /// Open the authorization endpoint with only the client's `client_id` and this
    /// `request_uri` (template: one pushed earlier), nothing pushed now.
    pub request_uri: Option<String>,
}

impl Default for AuthorizeStep {
    fn default() -> Self {
        Self {
            client: default_client(),
            save: default_auth(),
            redirect_uri: Default::default(),
            params: Default::default(),
            omit: Default::default(),
            extra: Default::default(),
            verifier: Default::default(),
            session: Default::default(),
            login: default_true(),
            consent: Default::default(),
            user: Default::default(),
            expect: Default::default(),
            error: Default::default(),
            accepted: Default::default(),
            error_page: Default::default(),
            refused: Default::default(),
            max_secs: Default::default(),
            no_5xx: Default::default(),
            dpop_jkt: Default::default(),
            push: Default::default(),
            request_uri: Default::default(),
        }
    }
}

/// Publishes a Client ID Metadata Document on authconform's document host, in this case's
/// own folder, and saves a client whose `client_id` is its URL (CIMD, MCP 2025-11-25 §5.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentStep {
    pub save: String,
    /// File in the case's folder (default `client.json`; `/` is the host's root). Publishing
    /// the same file again replaces what is served there.
    pub file: Option<String>,
    /// The listener the default client_id names: `https` (default), `http`, `canary`.
    pub listener: Option<String>,
    /// The client_id to use, when it is not the document's URL (template; `${doc.url}` is
    /// the URL, `${doc.dir}` the case folder's).
    pub client_id: Option<String>,
    /// Members added or replaced (strings are templates); `""` removes a default member.
    pub document: BTreeMap<String, toml::Value>,
    /// A raw body instead of the JSON document (template).
    pub body: Option<String>,
    /// Pad the JSON document with a filler member up to this many bytes.
    pub size: Option<Number>,
    pub status: Option<Number>,
    /// Response headers (the default `content-type` is `application/json`; `""` drops it).
    pub headers: BTreeMap<String, String>,
    pub delay_ms: Option<u64>,
    /// Send the body one byte per this many milliseconds.
    pub trickle_ms: Option<u64>,
    /// `private_key_jwt`: a fresh key whose JWKS is served beside the document (`jwks_uri`).
    pub auth_method: Option<String>,
    /// The document is invalid on purpose: none of its redirect URIs is trusted (an error
    /// may only be redirected to a URI of a valid document, MCP §5.1.3).
    pub invalid: bool,
    /// What the run's control must have shown first: `accepted` (default: the AS fetched and
    /// accepted a valid document; without it a refusal proves nothing, the AS may not reach
    /// the host at all), `supported` (the AS supports CIMD, even if it refused the host:
    /// for probes whose conforming outcome is "no request"), `none`.
    pub control: ControlNeed,
}

impl Default for DocumentStep {
    fn default() -> Self {
        Self {
            save: default_client(),
            file: Default::default(),
            listener: Default::default(),
            client_id: Default::default(),
            document: Default::default(),
            body: Default::default(),
            size: Default::default(),
            status: Default::default(),
            headers: Default::default(),
            delay_ms: Default::default(),
            trickle_ms: Default::default(),
            auth_method: Default::default(),
            invalid: Default::default(),
            control: Default::default(),
        }
    }
}

/// Judges what the AS fetched from the document host for this case (its folder).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchesStep {
    /// Only requests for this file of the case folder.
    pub file: Option<String>,
    /// Only requests to this listener: `https`, `http`, `canary`.
    pub listener: Option<String>,
    pub min: Option<usize>,
    pub max: Option<usize>,
    /// Every request's path and query must be exactly this (template).
    pub target: Option<String>,
    /// Why the count matters, for the report.
    pub because: Option<String>,
}

/// Waits (bounded by the profile's `max_wait_secs`; a longer wait skips the case). The case
/// gives up its running place meanwhile, so waits overlap.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaitStep {
    pub secs: u64,
    /// Wait until the access token of this saved token response has expired
    /// (`expires_in` + 1 s); a response without `expires_in` skips the case.
    pub until_expiry: Option<String>,
    /// Wait the profile's `[cimd] cache_secs` instead, when it is set (an AS's minimum
    /// document cache time).
    pub cimd_cache: bool,
}

/// A token request (O21 3.2) with the client's authentication, usually redeeming a saved
/// authorization's code.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenStep {
    pub client: String,
    /// The saved authorization whose code, verifier and redirect URI are used.
    pub from: Option<String>,
    /// `grant_type` (`""` omits it).
    pub grant_type: String,
    pub params: BTreeMap<String, String>,
    pub omit: Vec<String>,
    /// Raw text appended to the body, already encoded.
    pub extra: Option<String>,
    /// Client authentication: the client's method by default; `none` (only `client_id`),
    /// `basic`, `post`, `both` (Basic and body), `query` (in the URL), `omit` (nothing).
    pub auth: Option<String>,
    /// A secret to present instead of the client's (template).
    pub secret: Option<String>,
    pub method: String,
    /// Send the parameters as a JSON object instead of a form.
    pub json_body: bool,
    /// When `from` holds no code: `pass` (nothing to redeem is the conforming outcome),
    /// `skip`, or `error` (default).
    pub if_no_code: Judge,
    /// The `private_key_jwt` client assertion (RFC 7523 §3) to send, claim by claim.
    pub assertion: Option<Assertion>,
    /// This request sets the stage (a valid request that must succeed): if its expectation
    /// fails, the case cannot be judged and errors instead of failing. Unset, the loader infers
    /// it (see [`super::infer_preconditions`]).
    pub precondition: Option<bool>,
    /// Send `n` identical requests at once (race probes); all are recorded, the first saved.
    pub parallel: Option<usize>,
    /// The endpoint, with the same client authentication: `token` (default), `revocation`
    /// (RFC 7009), `introspection` (RFC 7662), or `par` (RFC 9126 §2: the body is then an
    /// authorization request, `grant_type` is not sent), from the AS metadata.
    pub endpoint: Option<String>,
    /// A DPoP proof (RFC 9449 §5) sent with the request.
    pub dpop: Option<DpopSpec>,
    pub save: String,
    pub expect: Option<Expect>,
}

/// A DPoP proof (RFC 9449 §4) made with one of the case's own keys, valid unless `attack`
/// breaks one property of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpopSpec {
    /// The key's name within the case (`k1`): made on first use, the same key after.
    pub key: String,
    /// `ES256` or `EdDSA`; by default the first of them the server advertises.
    pub alg: Option<String>,
    /// One property broken on purpose (RFC 9449 §4.3): `htm`, `htu`, `iat-stale`,
    /// `iat-future`, `iat-past-10`, `iat-future-10`, `alg-none`, `hs256`, `private-jwk`,
    /// `typ`, `no-jwk`, `no-ath`, `two-headers`, `replay`, `no-nonce`, `htu-query-fragment`,
    /// `htu-case-port`.
    pub attack: Option<String>,
    /// On `use_dpop_nonce` with a `DPoP-Nonce` header, retry once with the nonce.
    pub nonce_retry: bool,
}

impl Default for DpopSpec {
    fn default() -> Self {
        Self {
            key: "k1".into(),
            alg: None,
            attack: None,
            nonce_retry: true,
        }
    }
}

impl Default for TokenStep {
    fn default() -> Self {
        Self {
            client: default_client(),
            from: Default::default(),
            grant_type: default_grant(),
            params: Default::default(),
            omit: Default::default(),
            extra: Default::default(),
            auth: Default::default(),
            secret: Default::default(),
            method: default_post(),
            json_body: Default::default(),
            if_no_code: default_error(),
            assertion: Default::default(),
            precondition: Default::default(),
            parallel: Default::default(),
            endpoint: Default::default(),
            dpop: Default::default(),
            save: default_token(),
            expect: Default::default(),
        }
    }
}

/// Expectations over a saved response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    pub on: String,
    pub expect: Expect,
}

/// A named check implemented in Rust (`src/checks/`), for rules a declarative expectation
/// cannot state (exact URL identity, discovery order, per-source comparison).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckStep {
    pub name: String,
    #[serde(default)]
    pub on: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, toml::Value>,
}

impl Step {
    /// The declarative expectations the step carries, if its kind has any.
    pub fn expect(&self) -> Option<&Expect> {
        match self {
            Step::McpRequest(s) => s.expect.as_ref(),
            Step::Http(s) => s.expect.as_ref(),
            Step::DiscoverPrm(s) => s.expect.as_ref(),
            Step::DiscoverAs(s) => s.expect.as_ref(),
            Step::Token(s) => s.expect.as_ref(),
            Step::Expect(s) => Some(&s.expect),
            Step::Client(_)
            | Step::Authorize(_)
            | Step::Document(_)
            | Step::Fetches(_)
            | Step::Wait(_)
            | Step::Check(_) => None,
        }
    }
}

fn default_client() -> String {
    "client".into()
}
fn default_auth() -> String {
    "auth".into()
}
fn default_token() -> String {
    "token".into()
}
fn default_grant() -> String {
    "authorization_code".into()
}
fn default_true() -> bool {
    true
}
fn default_error() -> Judge {
    Judge::Error
}
fn default_post() -> String {
    "POST".into()
}
fn default_get() -> String {
    "GET".into()
}
fn default_rpc() -> String {
    "initialize".into()
}
fn default_auto() -> String {
    "auto".into()
}
fn default_prm() -> String {
    "prm".into()
}
fn default_asm() -> String {
    "asm".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ControlNeed {
    #[default]
    Accepted,
    Supported,
    None,
}

/// A number, or a template that expands to one (`"${v.status}"`: variants hold strings).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(u64),
    Template(String),
}

/// A client assertion, claim by claim; every value is a template. Absent fields take the
/// valid default (`aud` the token endpoint, `iss` and `sub` the client id, `exp` 60 s ahead, a
/// random `jti`, ES256 with the client's key); `""` leaves the claim out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    /// Seconds from now (negative: already expired).
    pub exp: Option<String>,
    /// Seconds from now.
    pub nbf: Option<String>,
    pub jti: Option<String>,
    /// `ES256` (the client's key), `ES256-other-key` (a key the AS was never given), `none`
    /// (unsigned) or `HS256-public-key` (HMAC keyed with the public key: the
    /// algorithm-confusion attack).
    pub alg: Option<String>,
    /// Send the assertion as the authorization grant itself (RFC 7523 §2.1: an `assertion`
    /// parameter beside `grant_type`), not as client authentication; the request then carries
    /// no other client authentication unless the step's `auth` names one.
    #[serde(default)]
    pub grant: bool,
}

/// Declarative expectations over one response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Allowed status codes.
    #[serde(default)]
    pub status: Option<Vec<u16>>,
    /// Any status below 500 (robustness probes).
    #[serde(default)]
    pub no_5xx: bool,
    /// Header names that must be present.
    #[serde(default)]
    pub headers_present: Vec<String>,
    /// Media type, compared without parameters and case-insensitively.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The body must be a JSON object.
    #[serde(default)]
    pub json_object: bool,
    /// A schema file under `schemas/` the JSON body must satisfy.
    #[serde(default)]
    pub schema: Option<String>,
    /// JSON pointer assertions on the body.
    #[serde(default)]
    pub json: Vec<JsonExpect>,
    /// Header names that must be absent.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    /// Each header must be present and contain the value as a comma-separated directive,
    /// compared case-insensitively (`cache-control = "no-store"`).
    #[serde(default)]
    pub header_directives: BTreeMap<String, String>,
    /// JSON pointers that must be absent (no `access_token` in a refusal).
    #[serde(default)]
    pub json_absent: Vec<String>,
    /// The OAuth `error` code of a JSON error body must be one of these.
    #[serde(default)]
    pub error: Option<Vec<String>>,
    /// Assertions on the Bearer challenge in `WWW-Authenticate`.
    #[serde(default)]
    pub challenge: Option<ChallengeExpect>,
}

impl Expect {
    /// Every allowed status is a 2xx: the request must succeed.
    pub fn demands_success(&self) -> bool {
        self.status_all(200..300)
    }

    /// Every allowed status is a 4xx: the request must be refused.
    pub fn asks_refusal(&self) -> bool {
        self.status_all(400..500)
    }

    fn status_all(&self, range: std::ops::Range<u16>) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|c| range.contains(c)))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeExpect {
    /// The auth-scheme (compared case-insensitively, per RFC 9110 §11.1).
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub params_present: Vec<String>,
    #[serde(default)]
    pub params_absent: Vec<String>,
    /// Exact parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// What a pointer assertion does when the member is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Absent {
    /// The member is required: absence fails.
    #[default]
    Fail,
    /// Absence satisfies the assertion (the rule is "if present, then ...").
    Pass,
    /// Absence means the feature is not offered: the case is skipped.
    Skip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    pub pointer: String,
    #[serde(default)]
    pub absent: Absent,
    /// JSON type: `string`, `array`, `object`, `boolean`, `number`, `null`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Exact value (strings may be templates).
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// The array contains this value.
    #[serde(default)]
    pub contains: Option<toml::Value>,
    /// The array contains none of these values.
    #[serde(default)]
    pub contains_none: Option<Vec<toml::Value>>,
    /// Non-empty array or string.
    #[serde(default)]
    pub non_empty: bool,
    /// The value differs from this one (strings may be templates): a rotated token.
    #[serde(default)]
    pub not_equals: Option<toml::Value>,
}

/// A TOML value of a case file or profile (client metadata, document members, tool arguments)
/// as the JSON it stands for.
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
