//! SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format) for code-scanning consumers
//! such as GitHub code scanning. The log is built as `serde_json` values from a finished
//! [`RunReport`], so any command that produces one (`run`, later `fuzz`) can reuse [`build`].
//!
//! Shape:
//! - `tool.driver.rules`: one rule per requirement id present in the run (the case id without its
//!   `.variant`), with the title, the spec references and a default level derived from the
//!   requirement level (MUST → `error`, SHOULD → `warning`, MAY/INFO → `note`).
//! - `results`: failed cases (`kind: "fail"`) and errored cases (`kind: "open"`, see
//!   [`result`]). Passed and skipped cases are left out: code-scanning consumers only act on
//!   problems, and ~300 `pass` results per run would make the file large for no reader. Their
//!   counts are in `run.properties.summary`; the JSON report has every verdict.
//! - Locations: a finding is about an HTTP endpoint, not a file. The physical location (which
//!   GitHub requires) is the case file `cases/<area>/<id>.toml` relative to the `AUTHCONFORM`
//!   base (the authconform source tree); the endpoint is a logical location (`kind:
//!   "resource"`), and the evidence exchange (see [`evidence`]) is attached as
//!   `webRequest`/`webResponse`.
//!
//! Every string comes from the records, which are already redacted (see [`crate::redact`]); no
//! string is interpolated into markup (only `text` messages, never `markdown`), and characters a
//! terminal would act on are written as JSON escapes, as in the JSON report.

use serde_json::{Map, Value, json};

use crate::record::{CaseResult, Exchange, Level, OutcomeState, RunReport, Status};

/// The `$schema` written into the log: the OASIS SARIF 2.1.0 schema (a copy of which is vendored
/// as `schemas/sarif-2.1.0.json` and used by the tests).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json";

/// The `uriBaseId` of case-file locations: the authconform source tree (`cases/` is in it).
pub const CASES_BASE_ID: &str = "AUTHCONFORM";

/// How much of a response or request body goes into `webRequest`/`webResponse`. The full excerpt
/// is in the JSON and HTML reports; SARIF viewers show these inline.
const BODY_EXCERPT_CHARS: usize = 2048;

/// The SARIF log of a run, pretty-printed, with terminal-active characters escaped.
pub fn to_string(report: &RunReport) -> String {
    let mut s = serde_json::to_string_pretty(&build(report))
        // A tree of `Value`s built here: maps have string keys, numbers are integers.
        .expect("SARIF log serializes to JSON");
    s.push('\n');
    super::json::escape_terminal_active(&s)
}

/// The SARIF log of a run as a JSON value (one `run`).
pub fn build(report: &RunReport) -> Value {
    let rules = rules(report);
    let results: Vec<Value> = report
        .results
        .iter()
        .filter_map(|r| {
            let index = rules
                .iter()
                .position(|rule| rule.id == requirement(&r.id))?;
            result(r, index, report.fuzz.is_some())
        })
        .collect();

    let mut driver = Map::new();
    driver.insert("name".into(), report.tool.clone().into());
    driver.insert("version".into(), report.version.clone().into());
    if let Some(uri) = information_uri() {
        driver.insert("informationUri".into(), uri.into());
    }
    driver.insert(
        "rules".into(),
        rules.iter().map(Rule::to_value).collect::<Vec<_>>().into(),
    );

    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "invocations": [invocation(report)],
            "originalUriBaseIds": {
                CASES_BASE_ID: {
                    "description": {
                        "text": "The authconform source tree; case files are under its cases/ folder."
                    }
                }
            },
            "results": results,
            "columnKind": "unicodeCodePoints",
            "properties": run_properties(report),
        }]
    })
}

/// The project's web page, when Cargo.toml names one (`homepage`, else `repository`).
fn information_uri() -> Option<&'static str> {
    [env!("CARGO_PKG_HOMEPAGE"), env!("CARGO_PKG_REPOSITORY")]
        .into_iter()
        .find(|u| !u.is_empty())
}

/// The requirement id of a case id (`<id>` or `<id>.<variant>`).
fn requirement(case_id: &str) -> &str {
    case_id.split('.').next().unwrap_or(case_id)
}

fn sarif_level(level: Level) -> &'static str {
    match level {
        Level::Must => "error",
        Level::Should => "warning",
        Level::May | Level::Info => "note",
    }
}

/// One requirement, aggregated over the cases (variants) of the run that test it.
struct Rule<'a> {
    id: &'a str,
    title: &'a str,
    area: &'a str,
    /// The strictest level among its cases.
    level: Level,
    refs: Vec<&'a str>,
    cases: Vec<&'a str>,
}

impl Rule<'_> {
    fn to_value(&self) -> Value {
        let refs = self.refs.join("; ");
        let full = if refs.is_empty() {
            self.title.to_string()
        } else {
            format!("{} ({refs})", self.title)
        };
        let mut help = format!(
            "Requirement {} ({}, area {}): {}",
            self.id,
            self.level.as_str(),
            self.area,
            self.title
        );
        if !refs.is_empty() {
            help.push_str(&format!("\nReferences: {refs}"));
        }
        help.push_str(&format!("\nCases: {}", self.cases.join(", ")));
        let mut tags: Vec<&str> = vec!["conformance", self.area, self.level.as_str()];
        dedup_keep_order(&mut tags);
        let mut refs_unique = self.refs.clone();
        dedup_keep_order(&mut refs_unique);
        json!({
            "id": self.id,
            "name": self.title,
            "shortDescription": { "text": self.title },
            "fullDescription": { "text": full },
            "help": { "text": help },
            "defaultConfiguration": { "level": sarif_level(self.level) },
            "properties": {
                "level": self.level.as_str(),
                "area": self.area,
                "refs": refs_unique,
                "tags": tags,
            }
        })
    }
}

fn dedup_keep_order(v: &mut Vec<&str>) {
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|s| {
        if seen.contains(s) {
            false
        } else {
            seen.push(*s);
            true
        }
    });
}

/// Rules in first-seen order, one per requirement id.
fn rules(report: &RunReport) -> Vec<Rule<'_>> {
    let mut rules: Vec<Rule> = Vec::new();
    for r in &report.results {
        let id = requirement(&r.id);
        match rules.iter_mut().find(|rule| rule.id == id) {
            Some(rule) => {
                rule.level = rule.level.min(r.level);
                for re in &r.refs {
                    if !rule.refs.contains(&re.as_str()) {
                        rule.refs.push(re);
                    }
                }
                rule.cases.push(&r.id);
            }
            None => rules.push(Rule {
                id,
                title: &r.title,
                area: &r.area,
                level: r.level,
                refs: r.refs.iter().map(String::as_str).collect(),
                cases: vec![&r.id],
            }),
        }
    }
    rules
}

/// The SARIF result of one case, or `None` for a case that is not reported (passed, skipped).
///
/// Kinds (SARIF 2.1.0 §3.27.9): a `failed` case is `fail`: the server violated the requirement.
/// An `errored` case is `open`: the rule was evaluated but the suite could not tell whether the
/// server meets it (network error, failed login, a prerequisite answered wrongly). That is not
/// `review` (which asks a human to judge evidence the tool did gather) nor `fail` (no violation
/// was observed). §3.27.10 requires `level: "none"` for every kind but `fail`. Consumers that
/// only act on `fail` (GitHub code scanning) therefore skip errored cases; the exit code,
/// console, JUnit and JSON reports still count them.
///
/// Levels of `fail` results: the case's level at the graded revision (MUST → `error`, SHOULD →
/// `warning`, MAY/INFO → `note`); a tolerated failure (`warning` flag) is one step lower: MUST →
/// `warning`, anything else → `note`.
/// In a fuzz report a result id is `<requirement>.<rule>`: its location is the requirement's
/// case file.
fn result(r: &CaseResult, rule_index: usize, fuzz: bool) -> Option<Value> {
    let (kind, level) = match r.status {
        Status::Failed if r.warning => (
            "fail",
            if r.level == Level::Must {
                "warning"
            } else {
                "note"
            },
        ),
        Status::Failed => ("fail", sarif_level(r.level)),
        Status::Errored => ("open", "none"),
        Status::Passed | Status::Skipped => return None,
    };
    let mut out = Map::new();
    out.insert("ruleId".into(), requirement(&r.id).into());
    out.insert("ruleIndex".into(), rule_index.into());
    out.insert("kind".into(), kind.into());
    out.insert("level".into(), level.into());
    out.insert("message".into(), json!({ "text": message_text(r) }));
    let file_id = if fuzz {
        requirement(&r.id)
    } else {
        r.id.as_str()
    };
    out.insert("locations".into(), json!([location(r, file_id)]));
    out.insert(
        "partialFingerprints".into(),
        json!({ "authconformCase/v1": r.id }),
    );
    if let Some(x) = evidence(r) {
        out.insert("webRequest".into(), web_request(x));
        out.insert("webResponse".into(), web_response(x));
    }
    let mut props = Map::new();
    props.insert("caseId".into(), r.id.clone().into());
    props.insert("status".into(), r.status.as_str().into());
    props.insert("level".into(), r.level.as_str().into());
    props.insert("area".into(), r.area.clone().into());
    props.insert("role".into(), r.role.clone().into());
    props.insert("spec".into(), r.spec.clone().into());
    props.insert("tolerated".into(), r.warning.into());
    props.insert("durationMs".into(), r.duration_ms.into());
    if !r.details.is_empty() {
        props.insert("details".into(), r.details.clone().into());
    }
    if !r.exchanges.is_empty() {
        let xs: Vec<Value> = r
            .exchanges
            .iter()
            .map(|x| {
                json!({
                    "note": x.note,
                    "method": x.method,
                    "url": x.url,
                    "status": x.status,
                    "error": x.error,
                })
            })
            .collect();
        props.insert("exchanges".into(), xs.into());
    }
    out.insert("properties".into(), props.into());
    Some(out.into())
}

/// The case message; a tolerated failure says so, so a reader of the alert alone knows.
fn message_text(r: &CaseResult) -> String {
    let mut text = if r.message.is_empty() {
        format!("{} {}", r.id, r.status.as_str())
    } else {
        r.message.clone()
    };
    if r.warning {
        text.push_str(" (tolerated deviation: reported, not gating)");
    }
    text
}

/// The exchange a finding points at. Records do not mark which exchange failed, so: the last one
/// whose URL the message names (messages name the URL they fault), else the last one.
fn evidence(r: &CaseResult) -> Option<&Exchange> {
    r.exchanges
        .iter()
        .rev()
        .find(|x| !x.url.is_empty() && r.message.contains(x.url.as_str()))
        .or(r.exchanges.last())
}

/// Case file as the physical location, the endpoint of the evidence as the logical one.
fn location(r: &CaseResult, file_id: &str) -> Value {
    let mut loc = Map::new();
    loc.insert(
        "physicalLocation".into(),
        json!({
            "artifactLocation": {
                "uri": case_file_uri(&r.area, file_id),
                "uriBaseId": CASES_BASE_ID,
            },
            "region": { "startLine": 1 },
        }),
    );
    if let Some(x) = evidence(r) {
        loc.insert(
            "logicalLocations".into(),
            json!([{
                "name": x.url,
                "fullyQualifiedName": format!("{} {}", x.method, x.url),
                "kind": "resource",
            }]),
        );
    }
    loc.insert("message".into(), json!({ "text": r.title }));
    loc.into()
}

/// `cases/<area>/<id>.toml`, each segment percent-encoded so that any id or area (the records
/// may hold anything) makes a valid relative URI reference.
fn case_file_uri(area: &str, id: &str) -> String {
    format!(
        "cases/{}/{}.toml",
        percent_encode_segment(area),
        percent_encode_segment(id)
    )
}

fn percent_encode_segment(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn excerpt(s: &str) -> String {
    match s.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Headers as a SARIF object: repeated names are joined with ", " (as HTTP allows).
fn headers(hs: &[(String, String)]) -> Value {
    let mut m = Map::new();
    for (k, v) in hs {
        match m.get_mut(k) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(v);
            }
            _ => {
                m.insert(k.clone(), v.clone().into());
            }
        }
    }
    m.into()
}

fn web_request(x: &Exchange) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), x.method.clone().into());
    m.insert("target".into(), x.url.clone().into());
    m.insert("headers".into(), headers(&x.request_headers));
    if let Some(b) = &x.request_body {
        m.insert("body".into(), json!({ "text": excerpt(b) }));
    }
    m.into()
}

fn web_response(x: &Exchange) -> Value {
    let mut m = Map::new();
    match x.status {
        Some(code) => {
            m.insert("statusCode".into(), code.into());
            m.insert("headers".into(), headers(&x.response_headers));
            if let Some(b) = &x.response_body {
                m.insert("body".into(), json!({ "text": excerpt(b) }));
            }
        }
        None => {
            m.insert("noResponseReceived".into(), true.into());
        }
    }
    let mut props = Map::new();
    if x.body_truncated {
        props.insert("bodyTruncated".into(), true.into());
    }
    if let Some(e) = &x.error {
        props.insert("error".into(), e.clone().into());
    }
    props.insert("durationMs".into(), x.duration_ms.into());
    m.insert("properties".into(), props.into());
    m.into()
}

/// The invocation: the run's verdict as its exit code gave it (`exitCode`, the state as
/// `exitCodeDescription` and in `properties.outcome`), and times when `started_at` is a valid
/// RFC 3339 timestamp (the schema requires `date-time`).
///
/// `executionSuccessful` is SARIF's "the tool did its job": true for a run that judged its
/// cases, whether the server passed or failed them; false for an incomplete run (gating cases
/// could not be judged) or an interrupted one, with the reason as a notification.
fn invocation(report: &RunReport) -> Value {
    use time::format_description::well_known::Rfc3339;
    let mut m = Map::new();
    let state = report.outcome.as_ref().map(|o| o.state);
    let successful = match state {
        Some(s) => matches!(s, OutcomeState::Passed | OutcomeState::Failed),
        None => !report.interrupted,
    };
    m.insert("executionSuccessful".into(), successful.into());
    if let Some(o) = &report.outcome {
        m.insert("exitCode".into(), o.exit_code.into());
        m.insert("exitCodeDescription".into(), o.state.as_str().into());
        m.insert(
            "properties".into(),
            json!({ "outcome": { "state": o.state.as_str(), "exitCode": o.exit_code, "reason": o.reason } }),
        );
    }
    if let Ok(start) = time::OffsetDateTime::parse(&report.started_at, &Rfc3339) {
        let start = start.to_offset(time::UtcOffset::UTC);
        let end = start + time::Duration::milliseconds(report.duration_ms as i64);
        if let (Ok(s), Ok(e)) = (start.format(&Rfc3339), end.format(&Rfc3339)) {
            m.insert("startTimeUtc".into(), s.into());
            m.insert("endTimeUtc".into(), e.into());
        }
    }
    if let Some(o) = report
        .outcome
        .as_ref()
        .filter(|o| o.state == OutcomeState::Incomplete)
    {
        m.insert(
            "toolExecutionNotifications".into(),
            json!([{
                "level": "error",
                "message": { "text": format!("The run is incomplete: {}", o.reason) }
            }]),
        );
    } else if report.interrupted || state == Some(OutcomeState::Interrupted) {
        m.insert(
            "toolExecutionNotifications".into(),
            json!([{
                "level": "error",
                "message": {
                    "text": "The run was interrupted (Ctrl-C, or the target stopped answering): results are partial."
                }
            }]),
        );
    }
    m.into()
}

fn run_properties(report: &RunReport) -> Value {
    let t = &report.target;
    let mut target = Map::new();
    target.insert("kind".into(), t.kind.clone().into());
    if let Some(r) = &t.resource {
        target.insert("resource".into(), r.clone().into());
    }
    if let Some(i) = &t.issuer {
        target.insert("issuer".into(), i.clone().into());
    }
    if !t.faults.is_empty() {
        target.insert("faults".into(), t.faults.clone().into());
    }
    json!({
        "target": target,
        "spec": {
            "graded": report.spec.graded,
            "source": report.spec.source,
            "detection": report.spec.detection,
        },
        "startedAt": report.started_at,
        "durationMs": report.duration_ms,
        "interrupted": report.interrupted,
        "outcome": report.outcome.as_ref().map(|o| json!({
            "state": o.state.as_str(),
            "exitCode": o.exit_code,
            "reason": o.reason,
        })),
        "summary": {
            "total": report.summary.total,
            "passed": report.summary.passed,
            "failed": report.summary.failed,
            "skipped": report.summary.skipped,
            "errored": report.summary.errored,
            "warnings": report.summary.warnings,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{NASTY, hostile_report};

    /// The vendored OASIS schema (draft-07), with `format` checked too (`uri`, `date-time`...).
    pub(crate) fn validator() -> jsonschema::Validator {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/sarif-2.1.0.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("SARIF schema compiles")
    }

    fn assert_valid(instance: &Value) {
        let v = validator();
        let errors: Vec<String> = v
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "SARIF schema violations: {errors:#?}");
    }

    fn parsed(report: &RunReport) -> Value {
        serde_json::from_str(&to_string(report)).expect("SARIF output is JSON")
    }

    #[test]
    fn hostile_report_validates_against_the_sarif_schema() {
        let log = parsed(&hostile_report());
        assert_valid(&log);
        // The written text equals the built value (escaping changes the text, not the strings).
        assert_eq!(log, build(&hostile_report()));
    }

    #[test]
    fn the_schema_rejects_a_broken_log() {
        // Guards against a validator that accepts anything (e.g. a schema that failed to load).
        let v = validator();
        let mut log = build(&hostile_report());
        assert!(v.is_valid(&log));
        log["runs"][0]["results"][0]["kind"] = "failed".into();
        assert!(!v.is_valid(&log));
        let mut log = build(&hostile_report());
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
            "cases/a b/\u{1b}.toml".into();
        assert!(!v.is_valid(&log), "format uri-reference not checked");
    }

    #[test]
    fn rules_results_kinds_and_levels() {
        let report = hostile_report();
        let log = build(&report);
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        // One rule per requirement id of the run.
        assert_eq!(rules.len(), report.results.len());
        let rule = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap();
        assert_eq!(rule("prm-ok")["defaultConfiguration"]["level"], "error");
        assert_eq!(rule("prm-warn")["defaultConfiguration"]["level"], "warning");
        assert_eq!(rule("prm-quiet")["defaultConfiguration"]["level"], "note");
        assert_eq!(rule("prm-ok")["properties"]["level"], "MUST");
        assert_eq!(rule("prm-ok")["properties"]["area"], "metadata");
        assert!(
            rule("prm-ok")["help"]["text"]
                .as_str()
                .unwrap()
                .contains("RFC9728 §3")
        );

        let results = run["results"].as_array().unwrap();
        let by_case = |id: &str| {
            results
                .iter()
                .find(|r| r["properties"]["caseId"] == id)
                .cloned()
        };
        // Passed and skipped cases are not results.
        assert!(by_case("prm-ok").is_none());
        assert!(by_case("prm-quiet").is_none());
        assert!(by_case("dcr-skip").is_none());
        let fail = by_case(&format!("token-fail{NASTY}")).unwrap();
        assert_eq!(fail["kind"], "fail");
        assert_eq!(fail["level"], "error");
        assert_eq!(
            rules[fail["ruleIndex"].as_u64().unwrap() as usize]["id"],
            fail["ruleId"]
        );
        let warn = by_case("prm-warn").unwrap();
        assert_eq!(
            (&warn["kind"], &warn["level"]),
            (&"fail".into(), &"note".into())
        );
        let info = by_case("info-fail").unwrap();
        assert_eq!(info["level"], "note");
        let errored = by_case("prm-err").unwrap();
        assert_eq!(
            (&errored["kind"], &errored["level"]),
            (&"open".into(), &"none".into())
        );
        assert_eq!(errored["webResponse"]["noResponseReceived"], true);
        assert_eq!(results.len(), 4);

        // The case file is the physical location; the evidence URL a logical one.
        let loc = &fail["locations"][0];
        let uri = loc["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(uri.starts_with("cases/token%3Cscript%3E"), "{uri}");
        assert!(uri.ends_with(".toml"));
        assert!(uri.chars().all(|c| c.is_ascii_graphic()), "{uri}");
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uriBaseId"],
            CASES_BASE_ID
        );
        assert_eq!(
            loc["logicalLocations"][0]["name"],
            report.results[1].exchanges[1].url.as_str()
        );
        assert_eq!(
            fail["message"]["text"],
            report.results[1].message.as_str(),
            "message kept verbatim"
        );
    }

    #[test]
    fn invocation_and_run_properties() {
        let report = hostile_report();
        let log = build(&report);
        let run = &log["runs"][0];
        let inv = &run["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false, "interrupted run");
        assert_eq!(inv["startTimeUtc"], "2025-07-01T12:00:00Z");
        assert_eq!(inv["endTimeUtc"], "2025-07-01T12:00:04.321Z");
        assert!(inv["toolExecutionNotifications"].is_array());
        assert_eq!(
            run["properties"]["target"]["resource"],
            report.target.resource.as_deref().unwrap()
        );
        assert_eq!(run["tool"]["driver"]["name"], "authconform");
        assert_eq!(run["tool"]["driver"]["version"], "0.1.0");

        // A start time that is not RFC 3339 is left out rather than written invalid.
        let mut odd = report.clone();
        odd.started_at = format!("yesterday {NASTY}");
        odd.interrupted = false;
        let log = parsed(&odd);
        assert_valid(&log);
        let inv = &log["runs"][0]["invocations"][0];
        assert_eq!(inv["executionSuccessful"], true);
        assert!(inv.get("startTimeUtc").is_none());
    }

    #[test]
    fn the_runs_state_is_the_exit_codes() {
        use crate::record::Outcome;
        let mut report = hostile_report();
        report.interrupted = false;
        for (state, code, successful) in [
            (OutcomeState::Passed, 0, true),
            (OutcomeState::Failed, 1, true),
            (OutcomeState::Incomplete, 3, false),
            (OutcomeState::Interrupted, 1, false),
        ] {
            report.outcome = Some(Outcome {
                state,
                exit_code: code,
                reason: format!("why {NASTY}"),
                expect: None,
            });
            let log = parsed(&report);
            assert_valid(&log);
            let inv = &log["runs"][0]["invocations"][0];
            assert_eq!(inv["executionSuccessful"], successful, "{state:?}");
            assert_eq!(inv["exitCode"], code);
            assert_eq!(inv["exitCodeDescription"], state.as_str());
            assert_eq!(inv["properties"]["outcome"]["state"], state.as_str());
            assert_eq!(log["runs"][0]["properties"]["outcome"]["exitCode"], code);
            let notes = inv["toolExecutionNotifications"].as_array();
            assert_eq!(notes.is_some(), !successful, "{state:?}");
        }
    }

    #[test]
    fn empty_run_validates() {
        let mut report = hostile_report();
        report.results.clear();
        report.summary = RunReport::summarize(&report.results);
        let log = parsed(&report);
        assert_valid(&log);
        assert_eq!(log["runs"][0]["results"], json!([]));
    }

    #[test]
    fn output_is_inert_in_a_terminal() {
        let text = to_string(&hostile_report());
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw control or bidi character in SARIF text"
        );
    }
}
