//! Triage: what a reader of a finished run needs first, computed once from the records and
//! shared by the HTML report and the console summary. The verdict and why; the `--expect`
//! differences; a scorecard per area; and the failures grouped by root cause, so one broken
//! stage that kept 29 cases from their verdict reads as one cause with 29 cases under it, not
//! 29 near-identical lines.
//!
//! Nothing here escapes: the strings are raw record text (server-derived, hostile) and each
//! reporter escapes them for its medium.

use std::collections::HashMap;

use crate::record::{
    CaseResult, ExpectChange, ExpectRecord, Level, OutcomeState, Quote, RunReport, Status,
};

/// Everything a report shows before the case list.
pub struct Triage<'a> {
    pub verdict: Verdict,
    pub expect: Option<ExpectDiff<'a>>,
    /// Areas in first-seen order.
    pub areas: Vec<AreaScore>,
    pub totals: AreaScore,
    /// Failed and errored cases, one entry per root cause; gating causes first, biggest first.
    pub causes: Vec<Cause>,
    /// Skipped cases by reason (the same "feature absent" usually explains dozens), biggest first.
    pub skips: Vec<Cause>,
}

/// The run's verdict as the banner states it.
pub struct Verdict {
    pub state: OutcomeState,
    /// `None` when the report predates `outcome` and the verdict was derived here.
    pub exit_code: Option<i32>,
    /// One line: why.
    pub reason: String,
}

/// How the verdicts compared with `--expect`, split by what a reader does about each.
pub struct ExpectDiff<'a> {
    pub file: &'a str,
    pub matched: usize,
    /// Failed or errored where the file expects something else: regressions.
    pub new_failures: Vec<&'a ExpectChange>,
    /// Passed where the file expects a failure: the file can be updated.
    pub fixed: Vec<&'a ExpectChange>,
    /// Any other change (e.g. now skipped).
    pub other: Vec<&'a ExpectChange>,
    pub unlisted: &'a [ExpectChange],
    pub stale: &'a [String],
    pub expired: &'a [crate::record::ExpiredEntry],
}

/// One area's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AreaScore {
    pub area: String,
    pub total: usize,
    pub passed: usize,
    /// Failures, warnings not included.
    pub failed: usize,
    /// Tolerated failures (`CaseResult::warning`).
    pub warnings: usize,
    pub skipped: usize,
    pub errored: usize,
    /// MUST cases failed (not warnings) or errored: the ones that gate.
    pub must_failed: usize,
}

impl AreaScore {
    fn add(&mut self, r: &CaseResult) {
        self.total += 1;
        match r.status {
            Status::Passed => self.passed += 1,
            Status::Failed if r.warning => self.warnings += 1,
            Status::Failed => self.failed += 1,
            Status::Skipped => self.skipped += 1,
            Status::Errored => self.errored += 1,
        }
        if r.gates() {
            self.must_failed += 1;
        }
    }
}

/// What kind of root cause a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    /// The target stopped answering, or the run's deadline passed (`RunReport::incidents`).
    Incident,
    /// A request that only set the stage failed (`CaseResult::blocked_by`).
    Blocked,
    /// The server broke a requirement (one diagnosis, or the variants of one requirement).
    Failure,
    /// The suite could not judge, for a reason of the case's own.
    Error,
    /// A tolerated deviation (reported, never gating).
    Warning,
    /// The feature is absent or not configured.
    Skip,
}

impl CauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Incident => "incident",
            CauseKind::Blocked => "not judged",
            CauseKind::Failure => "failed",
            CauseKind::Error => "errored",
            CauseKind::Warning => "warning",
            CauseKind::Skip => "skipped",
        }
    }
}

/// One root cause and the cases it explains.
#[derive(Debug, Clone)]
pub struct Cause {
    pub kind: CauseKind,
    /// The cause in one line (raw record text).
    pub title: String,
    /// More about it: an incident's or a blocked stage's reason.
    pub reason: Option<String>,
    /// The case whose own requirement a blocked stage breaks.
    pub judged_by: Option<String>,
    /// Indices into `RunReport::results`, in report order.
    pub cases: Vec<usize>,
    /// How many of them gate (MUST, not a warning).
    pub gating: usize,
    /// How to go about fixing it, derived from the records (never per-case prose).
    pub hint: String,
}

/// Why a failure matters and how to fix it, for one case: every part derived from its record.
pub struct Explanation<'a> {
    /// What the requirement asks (the case's title states it).
    pub expected: &'a str,
    /// What the server did: the verdict's message and the last answer seen.
    pub observed: String,
    /// The level, whether it gates, and how the level follows from the sentence.
    pub why: String,
    pub quote: Option<&'a Quote>,
    pub refs: &'a [String],
}

/// The triage of a run.
pub fn triage(report: &RunReport) -> Triage<'_> {
    let mut totals = AreaScore {
        area: "all areas".into(),
        ..AreaScore::default()
    };
    let mut areas: Vec<AreaScore> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for r in &report.results {
        totals.add(r);
        let i = *index.entry(&r.area).or_insert_with(|| {
            areas.push(AreaScore {
                area: r.area.clone(),
                ..AreaScore::default()
            });
            areas.len() - 1
        });
        areas[i].add(r);
    }
    let (causes, skips) = causes(report);
    Triage {
        verdict: verdict(report),
        expect: report
            .outcome
            .as_ref()
            .and_then(|o| o.expect.as_ref())
            .map(expect_diff),
        areas,
        totals,
        causes,
        skips,
    }
}

fn verdict(report: &RunReport) -> Verdict {
    if let Some(o) = &report.outcome {
        return Verdict {
            state: o.state,
            exit_code: Some(o.exit_code),
            reason: o.reason.clone(),
        };
    }
    // A report written before `outcome` existed (or a fuzz report): the same rule, derived.
    let failed = (report.results.iter())
        .filter(|r| r.gates() && r.status == Status::Failed)
        .count();
    let errored = (report.results.iter())
        .filter(|r| r.gates() && r.status == Status::Errored)
        .count();
    let (state, reason) = if report.interrupted {
        (
            OutcomeState::Interrupted,
            "interrupted before every case had a verdict".to_owned(),
        )
    } else if failed > 0 {
        (
            OutcomeState::Failed,
            format!(
                "{} failed",
                plural(failed, "MUST requirement", "MUST requirements")
            ),
        )
    } else if errored > 0 {
        (
            OutcomeState::Incomplete,
            format!(
                "{} could not be judged",
                plural(errored, "MUST case", "MUST cases")
            ),
        )
    } else {
        (
            OutcomeState::Passed,
            "no MUST requirement failed".to_owned(),
        )
    };
    Verdict {
        state,
        exit_code: None,
        reason,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn expect_diff(e: &ExpectRecord) -> ExpectDiff<'_> {
    let mut d = ExpectDiff {
        file: &e.file,
        matched: e.matched,
        new_failures: Vec::new(),
        fixed: Vec::new(),
        other: Vec::new(),
        unlisted: &e.unlisted,
        stale: &e.stale,
        expired: &e.expired,
    };
    for c in &e.changed {
        match c.observed {
            Status::Failed | Status::Errored => d.new_failures.push(c),
            Status::Passed => d.fixed.push(c),
            Status::Skipped => d.other.push(c),
        }
    }
    d
}

/// The requirement a case id belongs to: variants `<id>.<variant>` share one.
pub fn requirement(id: &str) -> &str {
    id.split_once('.').map_or(id, |(base, _)| base)
}

/// A message reduced to its diagnosis, so the same finding on different URLs, ports, counts or
/// variants compares equal: the first variant's part (`[label] x; [label2] y` keeps `x`), URLs
/// as `<url>`, digit runs as `#`, quoted strings kept (they are usually the finding itself).
pub fn diagnosis(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let first = strip_variant_label(first);
    // A multi-variant message joins the variants' messages with "; [label] ".
    let first = first.split("; [").next().unwrap_or(first);
    let mut out = String::with_capacity(first.len());
    let mut rest = first;
    while !rest.is_empty() {
        if let Some(after) = ["https://", "http://"]
            .iter()
            .find_map(|s| rest.strip_prefix(s))
        {
            out.push_str("<url>");
            let end = after
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')' | ';'))
                .unwrap_or(after.len());
            rest = &after[end..];
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        if c.is_ascii_digit() {
            out.push('#');
            rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    // Truncation marks differ with the length cut; they say nothing about the cause.
    out.trim_end_matches('…').trim().to_owned()
}

fn strip_variant_label(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((label, after)) = rest.split_once("] ")
        && !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return after;
    }
    s
}

/// Groups the failed, errored and skipped cases by root cause.
fn causes(report: &RunReport) -> (Vec<Cause>, Vec<Cause>) {
    let results = &report.results;
    let mut out: Vec<Cause> = Vec::new();

    // Incidents: named once by the run, with the cases they kept from a verdict.
    for inc in &report.incidents {
        let cases: Vec<usize> = (results.iter().enumerate())
            .filter(|(_, r)| r.incident.as_deref() == Some(inc.id.as_str()))
            .map(|(i, _)| i)
            .collect();
        if cases.is_empty() {
            continue;
        }
        let hint = match inc.kind.as_str() {
            "deadline" => "The run's --deadline passed before these cases finished: raise it, or \
                           run fewer cases at once with --only."
                .to_owned(),
            _ => format!(
                "{} stopped answering at {}: look at its logs and health around that time, then \
                 run again (these cases say nothing about conformance).",
                inc.origin.as_deref().unwrap_or("The server"),
                inc.at
            ),
        };
        out.push(Cause {
            kind: CauseKind::Incident,
            title: inc.reason.clone(),
            reason: Some(if inc.id == inc.kind {
                inc.kind.clone()
            } else {
                format!("{} {}", inc.kind, inc.id)
            }),
            judged_by: None,
            gating: cases.iter().filter(|&&i| results[i].gates()).count(),
            cases,
            hint,
        });
    }

    // Blocked stages: one condition, judged by the case it names.
    for (b, cases) in super::blocked_groups(results) {
        let cases: Vec<usize> = cases
            .into_iter()
            .filter(|&i| results[i].incident.is_none())
            .collect();
        if cases.is_empty() {
            continue;
        }
        let hint = match &b.case {
            Some(c) => format!(
                "Fix what {c} reports first: a request that only set the stage for these cases \
                 failed the same way, so their own requirements could not be judged."
            ),
            None => "A request that only set the stage failed: make it succeed (replay it with \
                     the curl line of the last exchange) and these cases get their own verdict."
                .to_owned(),
        };
        out.push(Cause {
            kind: CauseKind::Blocked,
            title: super::blocked_heading(b),
            reason: Some(b.reason.clone()),
            judged_by: b.case.clone(),
            gating: cases.iter().filter(|&&i| results[i].gates()).count(),
            cases,
            hint,
        });
    }

    // Plain failures and errors: one group per diagnosis, the variants of one requirement
    // folded together.
    let mut groups: Vec<(CauseKind, Vec<usize>)> = Vec::new();
    let mut by_key: HashMap<(u8, String), usize> = HashMap::new();
    let mut by_req: HashMap<(u8, &str), usize> = HashMap::new();
    let mut skips: Vec<(String, Vec<usize>)> = Vec::new();
    let mut skip_key: HashMap<String, usize> = HashMap::new();
    for (i, r) in results.iter().enumerate() {
        if r.incident.is_some() || r.blocked_by.is_some() {
            continue;
        }
        let kind = match r.status {
            Status::Passed => continue,
            Status::Skipped => {
                let key = diagnosis(&r.message);
                let g = *skip_key.entry(key).or_insert_with(|| {
                    skips.push((r.message.clone(), Vec::new()));
                    skips.len() - 1
                });
                skips[g].1.push(i);
                continue;
            }
            Status::Failed if r.warning => CauseKind::Warning,
            Status::Failed => CauseKind::Failure,
            Status::Errored => CauseKind::Error,
        };
        let k = kind as u8;
        let key = (k, diagnosis(&r.message));
        let g = match (by_key.get(&key), by_req.get(&(k, requirement(&r.id)))) {
            (Some(&g), _) | (None, Some(&g)) => g,
            (None, None) => {
                groups.push((kind, Vec::new()));
                groups.len() - 1
            }
        };
        groups[g].1.push(i);
        by_key.entry(key).or_insert(g);
        by_req.entry((k, requirement(&r.id))).or_insert(g);
    }
    for (kind, cases) in groups {
        // The case that speaks for the group: the first one that gates, else the first.
        let first = &results[lead(results, &cases)];
        let title = {
            let t = strip_variant_label(first.message.lines().next().unwrap_or_default());
            t.split("; [").next().unwrap_or(t).to_owned()
        };
        out.push(Cause {
            kind,
            hint: failure_hint(kind, first),
            title,
            reason: None,
            judged_by: None,
            gating: cases.iter().filter(|&&i| results[i].gates()).count(),
            cases,
        });
    }
    // Gating causes first, biggest first; ties keep report order.
    out.sort_by_key(|c| (c.gating == 0, std::cmp::Reverse(c.cases.len()), c.cases[0]));

    let mut skips: Vec<Cause> = skips
        .into_iter()
        .map(|(message, cases)| Cause {
            kind: CauseKind::Skip,
            title: strip_variant_label(message.lines().next().unwrap_or_default())
                .split("; [")
                .next()
                .unwrap_or_default()
                .to_owned(),
            reason: None,
            judged_by: None,
            gating: 0,
            hint: "Not judged: the feature is absent, or the profile does not describe it (the \
                   message says which); configure it to have these cases run."
                .to_owned(),
            cases,
        })
        .collect();
    skips.sort_by_key(|c| (std::cmp::Reverse(c.cases.len()), c.cases[0]));
    (out, skips)
}

/// The case that speaks for a group of cases: the first that gates, else the first.
pub fn lead(results: &[CaseResult], cases: &[usize]) -> usize {
    (cases.iter().copied())
        .find(|&i| results[i].gates())
        .unwrap_or(cases[0])
}

fn role_name(role: &str) -> &str {
    match role {
        "as" => "authorization server",
        "rs" => "MCP server",
        other => other,
    }
}

fn failure_hint(kind: CauseKind, r: &CaseResult) -> String {
    let source = r
        .quote
        .as_ref()
        .map(|q| q.source.as_str())
        .or(r.refs.first().map(String::as_str))
        .unwrap_or("the requirement");
    match kind {
        CauseKind::Error => format!(
            "The suite could not judge this: replay the last exchange with its curl line to see \
             what the {} answered, and check the profile if a stage (login, registration) failed.",
            role_name(&r.role)
        ),
        CauseKind::Warning => format!(
            "Tolerated here (reported, never gating), but not what {source} asks: fix it before \
             the server leaves loopback."
        ),
        _ => format!(
            "Change the {} so that: {} ({source}). Replay the failing exchange with its curl line \
             to watch the answer change.",
            role_name(&r.role),
            r.title
        ),
    }
}

/// Why one case's failure matters, derived from its record.
pub fn explain(r: &CaseResult) -> Explanation<'_> {
    let mut observed = r.message.clone();
    if let Some(ex) = r.exchanges.last() {
        let answer = match (ex.status, &ex.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(e)) => format!("no response ({e})"),
            (None, None) => "no response".to_owned(),
        };
        observed.push_str(&format!(
            "\nLast exchange: {} {} \u{2192} {answer}",
            ex.method, ex.url
        ));
    }
    let gates = if r.gates() {
        "gates the run"
    } else if r.warning {
        "a tolerated deviation, never gating"
    } else {
        "reported, does not gate"
    };
    let mut why = format!("{} requirement: {gates}", r.level.as_str());
    if r.level == Level::Info {
        why = format!("INFO (not a requirement of {}): {gates}", r.spec);
    }
    if let Some(n) = r.quote.as_ref().and_then(|q| q.note.as_deref()) {
        why.push_str(". ");
        why.push_str(n);
    }
    Explanation {
        expected: &r.title,
        observed,
        why,
        quote: r.quote.as_ref(),
        refs: &r.refs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BlockedBy, IncidentRecord, Outcome};
    use crate::report::testutil::hostile_report;

    fn case(id: &str, status: Status, level: Level, message: &str) -> CaseResult {
        let mut r = hostile_report().results[0].clone();
        r.id = id.into();
        r.area = id.split('-').next().unwrap().into();
        r.status = status;
        r.level = level;
        r.warning = false;
        r.message = message.into();
        r
    }

    fn report(results: Vec<CaseResult>) -> RunReport {
        let mut r = hostile_report();
        r.interrupted = false;
        r.summary = RunReport::summarize(&results);
        r.results = results;
        r
    }

    #[test]
    fn diagnosis_ignores_urls_numbers_and_variant_labels() {
        assert_eq!(
            diagnosis("https://127.0.0.1:45121/as/token answered 200 with /access_token present"),
            diagnosis("https://127.0.0.1:999/token answered 200 with /access_token present")
        );
        assert_eq!(
            diagnosis("[trailing-slash] the AS refused it; [port] the AS refused it"),
            "the AS refused it"
        );
        assert_eq!(diagnosis("10 of 10 got tokens"), "# of # got tokens");
        assert_ne!(diagnosis("is a JSON string"), diagnosis("is a JSON number"));
    }

    #[test]
    fn failures_group_by_diagnosis_and_requirement() {
        let r = report(vec![
            case(
                "code-a",
                Status::Failed,
                Level::Should,
                "https://x/token answered 200",
            ),
            case(
                "code-b",
                Status::Failed,
                Level::Must,
                "https://y:1/token answered 200",
            ),
            case("asm-x.one", Status::Failed, Level::Must, "first diagnosis"),
            case(
                "asm-x.two",
                Status::Failed,
                Level::Must,
                "another diagnosis",
            ),
            case("asm-y", Status::Failed, Level::Should, "lonely"),
            case("prm-ok", Status::Passed, Level::Must, "fine"),
            case(
                "dcr-e",
                Status::Errored,
                Level::Must,
                "https://x answered 200",
            ),
        ]);
        let t = triage(&r);
        let groups: Vec<(CauseKind, Vec<usize>, usize)> = t
            .causes
            .iter()
            .map(|c| (c.kind, c.cases.clone(), c.gating))
            .collect();
        assert_eq!(
            groups,
            vec![
                (CauseKind::Failure, vec![0, 1], 1),
                (CauseKind::Failure, vec![2, 3], 2),
                // Same words as code-a's, but an error is not a failure.
                (CauseKind::Error, vec![6], 1),
                (CauseKind::Failure, vec![4], 0),
            ]
        );
        assert_eq!(t.totals.must_failed, 4);
        let asm = t.areas.iter().find(|a| a.area == "asm").unwrap();
        assert_eq!((asm.failed, asm.must_failed, asm.total), (3, 2, 3));
        // Derived verdict: no outcome in this report.
        assert_eq!(t.verdict.state, OutcomeState::Failed);
        assert_eq!(t.verdict.exit_code, None);
        assert!(
            t.causes[0]
                .hint
                .starts_with("Change the resource so that: title of prm-ok")
        );
    }

    #[test]
    fn incidents_and_blocked_stages_are_one_cause_each() {
        let mut results: Vec<CaseResult> = (0..5)
            .map(|i| {
                case(
                    &format!("cimd-{i}"),
                    Status::Errored,
                    Level::Must,
                    &format!("not judged {i}"),
                )
            })
            .collect();
        for r in &mut results[..3] {
            r.blocked_by = Some(BlockedBy {
                condition: "valid-request-refused".into(),
                case: Some("cimd-fetch".into()),
                reason: "the AS refused a valid document".into(),
            });
        }
        for r in &mut results[3..] {
            r.incident = Some("target-down-1".into());
        }
        results.push(case(
            "prm-x",
            Status::Skipped,
            Level::Must,
            "[a] absent; [b] absent",
        ));
        results.push(case("prm-y", Status::Skipped, Level::Must, "absent"));
        let mut r = report(results);
        r.incidents.push(IncidentRecord {
            id: "target-down-1".into(),
            kind: "target-down".into(),
            origin: Some("https://as.test".into()),
            at: "2025-01-01T00:00:00Z".into(),
            reason: "the AS stopped answering".into(),
            cases: vec!["cimd-3".into(), "cimd-4".into()],
        });
        r.outcome = Some(Outcome {
            state: OutcomeState::Incomplete,
            exit_code: 3,
            reason: "5 MUST cases could not be judged".into(),
            expect: None,
        });
        let t = triage(&r);
        assert_eq!(t.causes.len(), 2);
        assert_eq!(t.causes[0].kind, CauseKind::Blocked);
        assert_eq!(t.causes[0].cases, vec![0, 1, 2]);
        assert_eq!(t.causes[0].judged_by.as_deref(), Some("cimd-fetch"));
        assert_eq!(t.causes[1].kind, CauseKind::Incident);
        assert_eq!(t.causes[1].cases, vec![3, 4]);
        assert_eq!(t.skips.len(), 1);
        assert_eq!(t.skips[0].cases, vec![5, 6]);
        assert_eq!(t.verdict.exit_code, Some(3));
    }

    #[test]
    fn expect_changes_split_by_direction() {
        let mut r = report(vec![case("a", Status::Passed, Level::Must, "ok")]);
        let ch = |id: &str, e: Status, o: Status| ExpectChange {
            id: id.into(),
            expected: Some(e),
            observed: o,
        };
        r.outcome = Some(Outcome {
            state: OutcomeState::Failed,
            exit_code: 1,
            reason: "x".into(),
            expect: Some(ExpectRecord {
                file: "expect.toml".into(),
                matched: 3,
                changed: vec![
                    ch("a", Status::Passed, Status::Failed),
                    ch("b", Status::Failed, Status::Passed),
                    ch("c", Status::Passed, Status::Skipped),
                    ch("d", Status::Passed, Status::Errored),
                ],
                ..ExpectRecord::default()
            }),
        });
        let t = triage(&r);
        let d = t.expect.unwrap();
        let ids = |v: &[&ExpectChange]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.new_failures), ["a", "d"]);
        assert_eq!(ids(&d.fixed), ["b"]);
        assert_eq!(ids(&d.other), ["c"]);
    }

    #[test]
    fn explanation_names_level_gate_and_last_answer() {
        let r = hostile_report();
        let e = explain(&r.results[1]);
        assert!(
            e.why
                .starts_with("MUST requirement: gates the run. graded as SHOULD")
        );
        assert!(
            e.observed
                .contains("Last exchange: GET https://example.test/mcp?x=")
        );
        assert!(e.observed.ends_with("\u{2192} 401"));
        assert!(e.expected.starts_with("title of token-fail"));
    }
}
