//! The case-file data model. One TOML file per check, `cases/<area>/<id>.toml`; the structure here
//! and `schemas/case.schema.json` describe the same format (the loader enforces both: serde with
//! `deny_unknown_fields` for shape and typos, the JSON Schema for value rules).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::Level;

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
    pub steps: Vec<Step>,
}

/// One step: an action that talks to the target and saves what it observed, or an expectation
/// over what earlier steps saved.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// A request to the MCP endpoint (the target resource).
    McpRequest {
        #[serde(default = "default_post")]
        method: String,
        /// JSON-RPC method for POST: `initialize`, `tools/list`, or `auto` (the form the graded
        /// revision uses: `server/discover` with its headers for 2026-07-28, else `initialize`).
        #[serde(default = "default_rpc")]
        rpc: String,
        /// Raw `Authorization` header values, sent as given (several = several header fields).
        #[serde(default)]
        authorization: Vec<String>,
        /// `Authorization` value of `size` bytes: `Bearer ` followed by `a`s (oversized probes).
        #[serde(default)]
        authorization_size: Option<usize>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        save: Option<String>,
        #[serde(default)]
        expect: Option<Expect>,
    },
    /// A raw HTTP request; `url` is a template (`${prm.url}`) sent without normalisation.
    Http {
        #[serde(default = "default_get")]
        method: String,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        note: Option<String>,
        /// When the URL template references something absent, skip the case with this reason
        /// (a feature the target does not offer) instead of erroring.
        #[serde(default)]
        skip_if_unresolved: Option<String>,
        #[serde(default)]
        save: Option<String>,
        #[serde(default)]
        expect: Option<Expect>,
    },
    /// RFC 9728 / MCP 4.2 discovery of the Protected Resource Metadata.
    DiscoverPrm {
        /// `auto` (header URL, else path-inserted, else root: the client order), `header`,
        /// `well_known` (path-inserted then root), `all` (every source; consistency checks).
        #[serde(default = "default_auto")]
        via: String,
        #[serde(default = "default_prm")]
        save: String,
        #[serde(default)]
        expect: Option<Expect>,
    },
    /// RFC 8414 / OIDC discovery of the authorization server metadata (MCP 4.3 order).
    DiscoverAs {
        /// Issuer template; default: the target issuer, else the PRM's first authorization server.
        #[serde(default)]
        issuer: Option<String>,
        /// `auto` (first that answers in the MCP order), `oauth`, `oidc`, `all`.
        #[serde(default = "default_auto")]
        via: String,
        #[serde(default = "default_asm")]
        save: String,
        #[serde(default)]
        expect: Option<Expect>,
    },
    /// Expectations over a saved response.
    Expect { on: String, expect: Expect },
    /// A named check implemented in Rust (`src/checks/`), for rules a declarative expectation
    /// cannot state (exact URL identity, discovery order, per-source comparison).
    Check {
        name: String,
        #[serde(default)]
        on: Option<String>,
        #[serde(default)]
        args: BTreeMap<String, toml::Value>,
    },
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
    /// The OAuth `error` code of a JSON error body must be one of these.
    #[serde(default)]
    pub error: Option<Vec<String>>,
    /// Assertions on the Bearer challenge in `WWW-Authenticate`.
    #[serde(default)]
    pub challenge: Option<ChallengeExpect>,
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
}
