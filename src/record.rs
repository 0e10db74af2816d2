//! The records a run produces. The runner fills them; every reporter (console, JUnit, HTML, JSON)
//! reads them after the fact. Nothing in here formats a report, and nothing in a reporter runs a
//! check: that separation is what lets a new output format be added without touching execution.
//!
//! Every string in these records that came from the server under test is untrusted: reporters must
//! escape it for their medium (HTML, XML, terminal). Secrets are redacted before a record is built
//! (see [`crate::redact`]), so a reporter never sees a token.

use serde::{Deserialize, Serialize};

/// The four verdicts of the results contract (`schemas/results.schema.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The behaviour the requirement asks for was observed.
    Passed,
    /// The server violated the requirement; the exchanges prove it.
    Failed,
    /// The feature is absent or not configured; `message` says why.
    Skipped,
    /// The suite could not tell (network error, login failed, bad response to a prerequisite).
    Errored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Errored => "errored",
        }
    }
}

// Levels are read by the case loader, in the member crate.
pub use authconform_core::record::{Level, Quote};

/// One HTTP request/response pair, as sent and received, with secrets already redacted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    /// Why the harness sent this request (e.g. "unauthenticated MCP request").
    pub note: String,
    pub method: String,
    /// The URL exactly as sent (raw string; never normalised for display).
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// `None` when no response arrived (see `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// Up to the excerpt limit, lossily decoded as UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// The body was cut at the configured cap (the server sent more, or never finished).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_truncated: bool,
    /// Transport error (connect refused, timeout, TLS...), when there is no full response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The verdict of one case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseResult {
    pub id: String,
    pub area: String,
    /// Level at the graded revision (`INFO` when the requirement is not part of it).
    pub level: Level,
    pub role: String,
    pub title: String,
    pub refs: Vec<String>,
    pub status: Status,
    /// A failure that is a tolerated deviation (e.g. plain http on a loopback target): reported,
    /// never counted as a requirement failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    /// One-line verdict reason.
    pub message: String,
    /// Longer explanation: what was checked, each observation (pass or fail).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The spec revision this verdict was graded at.
    pub spec: String,
    pub duration_ms: u64,
    pub exchanges: Vec<Exchange>,
    /// The run's incident that kept this case from being judged (see [`IncidentRecord`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Why an `errored` case could not be judged when the cause is the server's answer to a
    /// request that only set the stage (a valid redemption refused, a server error): the cause
    /// reports group such cases under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<BlockedBy>,
    /// The normative sentence the case enforces, from its case file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
    /// The usernames of the test users the case logged in as (first role first): cases that
    /// ran at once hold different ones when the profile's pool has enough users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_users: Vec<String>,
}

/// The cause that kept a case from its own judgement: a condition (`server-error`,
/// `valid-request-refused`...) and, where one exists, the case whose requirement that
/// condition breaks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockedBy {
    /// The condition, stable across runs: what reports group by.
    pub condition: String,
    /// The case whose own requirement the condition breaks (judged there, not here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// What was seen, in one line.
    pub reason: String,
}

/// The server answered differently under parallel clients than to one: the verdicts of
/// `cases` are the ones they got alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnstableRecord {
    /// How many cases ran at once when the server answered 5xx or 429.
    pub concurrency: usize,
    pub cases: Vec<String>,
}

/// A cause that kept cases from being judged: the target stopped answering, or the run's
/// deadline passed. Reports name it once, with the cases it affected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IncidentRecord {
    /// What results link to (`target-down-1`, `deadline`).
    pub id: String,
    /// `target-down` or `deadline`.
    pub kind: String,
    /// The server that stopped answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When it happened, RFC 3339 UTC.
    pub at: String,
    pub reason: String,
    /// The ids of the cases it affected.
    pub cases: Vec<String>,
}

impl CaseResult {
    /// Does this result make the run fail (exit 1) when no expectations file is given?
    pub fn gates(&self) -> bool {
        self.level == Level::Must
            && (self.status == Status::Errored || (self.status == Status::Failed && !self.warning))
    }
}

/// The provisioning command of a run (`[login] provision`) and how it ended. Only a command
/// that exited 0 lets a run go on, so a report that holds one shows a success.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProvisionRecord {
    /// The program and its arguments, as run (the program's path resolved).
    pub command: Vec<String>,
    pub exit_code: i32,
    pub duration_ms: u64,
    /// Its stdout then stderr, redacted, at most [`ProvisionRecord::KEEP`] bytes.
    pub output: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl ProvisionRecord {
    /// The output kept of a provisioning command.
    pub const KEEP: usize = 64 << 10;
}

/// What the run was pointed at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TargetInfo {
    /// `reference` (built-in), `resource`, `issuer` or `config`.
    pub kind: String,
    /// The target's name in a `--targets` file: its report folder, and what `merge` groups by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Faults injected into the built-in reference server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errored: usize,
    /// Failed results flagged as warnings (included in `failed`).
    pub warnings: usize,
}

/// How the graded revision was chosen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SpecInfo {
    /// The revision every result was graded at.
    pub graded: String,
    /// `flag` (from --spec), `auto`, or `fuzz` (a campaign's report: not graded by revision).
    pub source: String,
    /// What detection observed (or why it was inconclusive).
    pub detection: String,
}

/// A whole run: everything every reporter needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    pub tool: String,
    pub version: String,
    pub target: TargetInfo,
    pub spec: SpecInfo,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: u64,
    /// The run was cut short (Ctrl-C, or the target stopped answering): results are partial.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    pub summary: Summary,
    /// Causes that kept cases from being judged, each named once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<IncidentRecord>,
    /// Cases whose verdict changed when re-run alone after the server answered 5xx or 429
    /// under concurrency: one finding about the server, not one per requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstable: Option<UnstableRecord>,
    /// The profile's `[login] provision` command, run once before anything was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<ProvisionRecord>,
    pub results: Vec<CaseResult>,
    /// Present for `authconform fuzz` reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuzz: Option<FuzzRecord>,
    /// The run's verdict as its exit code gives it, so every report says what the pipeline
    /// saw. Absent only in reports of versions before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The share of the cases this run took (`--shard K/N`); absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// The reports `authconform merge` combined into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeRecord>,
}

/// One share of a run split across machines.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardRecord {
    /// 1-based: the K of `--shard K/N`.
    pub index: usize,
    /// The N of `--shard K/N`.
    pub count: usize,
    /// Cases (or, for a campaign, endpoints) of the whole run before it was split: a merge
    /// checks the shards add up to it.
    pub total: usize,
}

/// What a merged report was made from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MergeRecord {
    /// Each input, in the order merged.
    pub inputs: Vec<MergeInput>,
    /// Shards of the run that no input held (1-based): their cases are missing, and the
    /// merged verdict cannot be `passed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<usize>,
}

/// One report a merge read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MergeInput {
    /// The file, as found.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// Its results.
    pub results: usize,
}

/// The verdict of a whole run: one of four states, the exit code that goes with it, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub state: OutcomeState,
    /// The process's exit code for this state (0, 1 or 3).
    pub exit_code: i32,
    /// Why, in one line ("3 MUST requirements failed", "2 MUST cases could not be judged").
    pub reason: String,
    /// How the verdicts compared with `--expect`, when a file was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectRecord>,
}

/// The four states of a run, as pipelines branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeState {
    /// The gate passed (exit 0).
    Passed,
    /// The server broke a gating requirement, or a verdict differed from `--expect` (exit 1).
    Failed,
    /// Nothing gating failed, but gating cases could not be judged: a broken run or an
    /// unreachable server, not a non-conformant one (exit 3).
    Incomplete,
    /// Stopped before every case ran (Ctrl-C) (exit 1).
    Interrupted,
}

impl OutcomeState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeState::Passed => "passed",
            OutcomeState::Failed => "failed",
            OutcomeState::Incomplete => "incomplete",
            OutcomeState::Interrupted => "interrupted",
        }
    }
}

/// The comparison of a run with its expectations file (`--expect`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ExpectRecord {
    /// The file, as given.
    pub file: String,
    /// Verdicts as the file expected them.
    pub matched: usize,
    /// Verdicts that differ from the file's: `failed` or `errored` where the file expects
    /// something else are new failures; `passed` where it expects a failure are fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ExpectChange>,
    /// Cases that ran but that the file does not name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted: Vec<ExpectChange>,
    /// Entries naming no case that exists any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
    /// Entries past their `until` date: they gate again, as if absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<ExpiredEntry>,
}

/// One case whose verdict the expectations file did not foresee.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpectChange {
    pub id: String,
    /// What the file says (absent for an unlisted case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Status>,
    pub observed: Status,
}

/// An expectations entry whose date has passed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpiredEntry {
    pub id: String,
    /// The entry's `until` date (`YYYY-MM-DD`).
    pub until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub expected: Status,
    pub observed: Status,
}

impl RunReport {
    /// Does this result count against the run's gate, as [`RunReport::outcome`] judged it?
    /// With an `--expect` comparison, the verdicts that differ from the file (changed,
    /// unlisted, or failed / errored under an expired entry); in a fuzz report (`spec.source`
    /// `fuzz`), every broken or unjudged rule; otherwise [`CaseResult::gates`]. What a reporter
    /// marks red is what made the exit code, and nothing else.
    pub fn counts_against_gate(&self, r: &CaseResult) -> bool {
        if self.fuzz.is_some() || self.spec.source == "fuzz" {
            return matches!(r.status, Status::Failed | Status::Errored);
        }
        match self.outcome.as_ref().and_then(|o| o.expect.as_ref()) {
            Some(e) => {
                (e.changed.iter().chain(&e.unlisted)).any(|c| c.id == r.id)
                    || (e.expired.iter()).any(|x| {
                        x.id == r.id && matches!(x.observed, Status::Failed | Status::Errored)
                    })
            }
            None => r.gates(),
        }
    }

    /// What `--expect` said of this case, when the run was compared with a file and the
    /// file's entry for it still held (matched or changed).
    pub fn expected_status(&self, r: &CaseResult) -> Option<Status> {
        let e = self.outcome.as_ref()?.expect.as_ref()?;
        if let Some(c) = e.changed.iter().find(|c| c.id == r.id) {
            return c.expected;
        }
        let listed =
            (e.unlisted.iter().any(|c| c.id == r.id)) || (e.expired.iter().any(|x| x.id == r.id));
        (!listed).then_some(r.status)
    }

    pub fn summarize(results: &[CaseResult]) -> Summary {
        let mut s = Summary {
            total: results.len(),
            ..Summary::default()
        };
        for r in results {
            match r.status {
                Status::Passed => s.passed += 1,
                Status::Failed => {
                    s.failed += 1;
                    if r.warning {
                        s.warnings += 1;
                    }
                }
                Status::Skipped => s.skipped += 1,
                Status::Errored => s.errored += 1,
            }
        }
        s
    }
}

/// What an `authconform fuzz` campaign adds to its report: the seed, per-endpoint counts and
/// each finding as a request that `authconform fuzz --replay` can send again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct FuzzRecord {
    /// The campaign seed: with the same seed, case N of an endpoint is the same request.
    pub seed: u64,
    pub campaigns: Vec<CampaignStats>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The lifecycle campaign (`fuzz --lifecycle`), when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleRecord>,
}

/// A lifecycle campaign: sequences of operations judged by invariants between them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LifecycleRecord {
    /// Sequences run (shrinking and replays not included).
    pub sequences: u64,
    /// Operations performed in them.
    pub transitions: u64,
    pub duration_ms: u64,
    pub transitions_per_sec: f64,
    /// Logins (authorization requests driven through the profile's login) and their time.
    pub logins: u64,
    pub login_ms: u64,
    /// Share of the campaign's time spent logging in, 0 to 1.
    pub login_share: f64,
    /// Operations whose answer said nothing (5xx, 429, no answer).
    pub unjudged: u64,
    /// What the server chose where the specifications leave a choice, and which sequence
    /// showed it first.
    pub choices: Vec<LearnedChoice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<LifecycleFinding>,
    /// Why the campaign stopped before its bound (the target stopped answering), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
}

/// A server's choice, as a lifecycle campaign learned it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LearnedChoice {
    pub choice: String,
    /// `access` or `refresh`: the kind of token it was shown on.
    pub tokens: String,
    pub behaviour: String,
    pub sequence: u64,
    /// 1-based.
    pub step: usize,
}

/// A broken lifecycle invariant, shrunk to a short sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LifecycleFinding {
    /// The result (`<requirement id>.lifecycle`) it belongs to.
    pub result_id: String,
    pub invariant: String,
    pub seed: u64,
    /// The sequence of the campaign that broke it first.
    pub sequence: u64,
    pub message: String,
    /// Operations in the sequence that broke it (with the sequence that taught the choice it
    /// relies on, when another one did) and in the shrunk one.
    pub original_steps: usize,
    pub shrunk_steps: usize,
    pub shrink_tries: u32,
    /// The shrunk sequence broke the invariant again when it was run on its own.
    pub reproduced: bool,
    /// Each operation of the shrunk sequence, what came of it, and its exchanges (indices into
    /// the result's `exchanges`).
    pub steps: Vec<LifecycleStep>,
    /// The operations as `authconform fuzz --replay` runs them again.
    pub ops: serde_json::Value,
    /// The server's choice the finding holds it to, as another sequence showed it (the
    /// shrunk sequence and its replay start knowing it): `choice` and its `behaviour`,
    /// `kills` (the event revoked the token there), and that sequence's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumes: Option<AssumedChoice>,
}

/// A choice a lifecycle finding relies on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssumedChoice {
    pub choice: String,
    pub kills: bool,
    /// `access` or `refresh`: the kind of token it was shown on.
    pub tokens: String,
    pub behaviour: String,
    pub sequence: u64,
    /// 1-based.
    pub step: usize,
}

/// One operation of a lifecycle finding.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LifecycleStep {
    pub op: String,
    pub outcome: String,
    pub exchanges: Vec<usize>,
}

/// One endpoint's campaign.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CampaignStats {
    /// `token`, `register`, `authorize`, `metadata` or `resource`.
    pub endpoint: String,
    /// The URLs the campaign sent to.
    pub urls: Vec<String>,
    /// Generated requests sent (shrinking and liveness probes not included).
    pub requests: u64,
    pub duration_ms: u64,
    pub requests_per_sec: f64,
    /// Responses by status code (`"400"`), plus `"transport-error"` for no response.
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// Requests the HTTP client refused to build (not sent, not counted in `requests`).
    #[serde(default)]
    pub unsendable: u64,
    /// Requests that violated some rule (before de-duplication into findings).
    pub violations: u64,
    /// Why the campaign stopped before its bound (the target stopped answering), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
}

/// A rule violation, shrunk to a minimal request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// The result (`<requirement id>.<rule>`) it belongs to.
    pub result_id: String,
    /// The oracle rule (`no-5xx`, `error-shape`, `nothing-issued`, `no-reflection`, `latency`,
    /// `still-answers`).
    pub rule: String,
    pub endpoint: String,
    pub seed: u64,
    /// Index of the generated case within its endpoint's campaign.
    pub case: u64,
    /// Simplifications that kept the violation / candidates tried while shrinking.
    pub shrink_steps: u32,
    pub shrink_tries: u32,
    /// What the minimal request provoked.
    pub message: String,
    pub request: ReplayRequest,
    /// A shell command that sends the minimal request.
    pub curl: String,
}

/// A request exactly as sent, re-targetable: `suffix` is appended to whatever URL the `base`
/// endpoint has on the replay target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplayRequest {
    /// `token`, `register`, `authorize`, `as-metadata`, `prm` or `resource`.
    pub base: String,
    pub method: String,
    /// The full URL as sent in the campaign.
    pub url: String,
    pub suffix: String,
    pub headers: Vec<ReplayHeader>,
    /// The body, base64 (standard alphabet), exactly as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Why the generator knew the request is invalid (nothing may be issued for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// Target-specific values in the request (the test client's id and redirect URI), replaced
    /// by the replay target's own: `[name, value as sent]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitutions: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplayHeader {
    pub name: String,
    /// Lossy text of the value.
    pub value: String,
    /// The exact bytes, when the value is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}
