//! JUnit XML for CI dashboards: one `<testsuite>` per area, one `<testcase>` per case. Only
//! what counts against the run's gate is a `<failure>` or an `<error>` (see [`test_case`]), so
//! the `failures` a dashboard shows are the gating failures, and a run that exits 0 is green.
//!
//! quick-junit escapes markup but silently drops control characters; we turn them into visible
//! escapes first (see `xml_text`) so the evidence of what the server sent survives, and so that
//! characters XML 1.0 forbids outright never reach the file.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::record::{CaseResult, Exchange, RunReport, Status};
use crate::report::{one_line, push_escape, sanitize_terminal};

/// How much of a response body goes into a failure description. CI UIs show these inline; the
/// full excerpt is in the JSON and HTML reports.
const BODY_EXCERPT_CHARS: usize = 2048;

/// The one-line `message` attribute; long enough for any harness message, short enough for CI.
const MESSAGE_CHARS: usize = 500;

pub fn to_string(report: &RunReport) -> String {
    let mut junit = Report::new("authconform");
    junit.set_time(Duration::from_millis(report.duration_ms));

    let mut suites: Vec<(&str, TestSuite)> = Vec::new();
    for r in &report.results {
        let idx = match suites.iter().position(|(area, _)| *area == r.area) {
            Some(i) => i,
            None => {
                suites.push((&r.area, new_suite(report, &r.area)));
                suites.len() - 1
            }
        };
        suites[idx].1.add_test_case(test_case(report, r));
    }
    for (_, mut suite) in suites {
        let ms: u64 = suite
            .test_cases
            .iter()
            .filter_map(|c| c.time)
            .map(|d| d.as_millis() as u64)
            .sum();
        suite.set_time(Duration::from_millis(ms));
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        // Serializing into memory only fails on I/O errors, and a Vec<u8> has none.
        .expect("JUnit report serializes")
}

fn new_suite(report: &RunReport, area: &str) -> TestSuite {
    let mut suite = TestSuite::new(xml_line(area));
    // quick-junit takes timestamps as chrono values only; the record already holds RFC 3339 text,
    // so pass it through as the attribute when it has the xs:dateTime shape CI parsers expect.
    if is_xs_datetime(&report.started_at) {
        suite
            .extra
            .insert("timestamp".into(), report.started_at.as_str().into());
    }
    suite.add_property(Property::new("tool", xml_line(&report.tool)));
    suite.add_property(Property::new("version", xml_line(&report.version)));
    suite.add_property(Property::new("spec.graded", xml_line(&report.spec.graded)));
    suite.add_property(Property::new("spec.source", xml_line(&report.spec.source)));
    suite.add_property(Property::new(
        "spec.detection",
        xml_line(&report.spec.detection),
    ));
    suite.add_property(Property::new("target.kind", xml_line(&report.target.kind)));
    if let Some(r) = &report.target.resource {
        suite.add_property(Property::new("target.resource", xml_line(r)));
    }
    if let Some(i) = &report.target.issuer {
        suite.add_property(Property::new("target.issuer", xml_line(i)));
    }
    for f in &report.target.faults {
        suite.add_property(Property::new("target.fault", xml_line(f)));
    }
    if report.interrupted {
        suite.add_property(Property::new("interrupted", "true"));
    }
    // The run's verdict, as its exit code gave it.
    if let Some(o) = &report.outcome {
        suite.add_property(Property::new("authconform.outcome", o.state.as_str()));
        suite.add_property(Property::new(
            "authconform.exit_code",
            o.exit_code.to_string(),
        ));
        suite.add_property(Property::new("authconform.reason", xml_line(&o.reason)));
    }
    suite
}

/// One case. A `<failure>` or an `<error>` is what counts against the run's gate and nothing
/// else ([`RunReport::counts_against_gate`]), so a dashboard's red is the exit code's:
///
/// - a gating failure is a `<failure>` (type: the level), a gating errored case an `<error>`;
/// - a failure that does not gate (a tolerated warning, a failed SHOULD / MAY / INFO case, a
///   failure `--expect` accepts) is a passing test case: its verdict, message, details and
///   exchanges in `<system-out>`, and properties `authconform.status = failed`,
///   `authconform.gating = false` (`authconform.warning = true` for a tolerated warning);
/// - an errored case that does not gate is `<skipped>` ("not judged"), with the same properties;
/// - under `--expect`, a pass or a skip the file did not foresee gates: a `<failure>` of type
///   `expect` that says what the file expected.
fn test_case(report: &RunReport, r: &CaseResult) -> TestCase {
    let gating = report.counts_against_gate(r);
    let expected = report.expected_status(r);
    let with_text = |mut s: TestCaseStatus, ty: &str, message: String| {
        s.set_type(ty);
        s.set_message(xml_line(&message));
        s.set_description(xml_text(&description(r)));
        s
    };
    let expectation = || match expected {
        Some(e) => format!("expected {}, got {}", e.as_str(), r.status.as_str()),
        None => format!(
            "got {}, and the expectations file does not name this case",
            r.status.as_str()
        ),
    };
    let status = match (r.status, gating) {
        (Status::Failed, true) => with_text(
            TestCaseStatus::non_success(NonSuccessKind::Failure),
            r.level.as_str(),
            r.message.clone(),
        ),
        (Status::Errored, true) => with_text(
            TestCaseStatus::non_success(NonSuccessKind::Error),
            r.level.as_str(),
            r.message.clone(),
        ),
        (Status::Passed | Status::Skipped, true) => with_text(
            TestCaseStatus::non_success(NonSuccessKind::Failure),
            "expect",
            format!("{}: {}", expectation(), r.message),
        ),
        (Status::Errored, false) => {
            let mut s = TestCaseStatus::skipped();
            s.set_type("not-judged");
            s.set_message(xml_line(&format!(
                "not judged ({}, does not gate): {}",
                r.level.as_str(),
                r.message
            )));
            s
        }
        (Status::Skipped, false) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(xml_line(&r.message));
            s
        }
        (Status::Passed | Status::Failed, false) => TestCaseStatus::success(),
    };
    let mut tc = TestCase::new(xml_line(&r.id), status);
    tc.set_classname(xml_line(&r.area));
    tc.set_time(Duration::from_millis(r.duration_ms));
    tc.add_property(Property::new("level", r.level.as_str()));
    tc.add_property(Property::new("role", xml_line(&r.role)));
    tc.add_property(Property::new("title", xml_line(&r.title)));
    for rf in &r.refs {
        tc.add_property(Property::new("ref", xml_line(rf)));
    }
    // The verdict itself, whatever element carries it: a consumer that reads properties sees
    // the failures that do not gate too.
    tc.add_property(Property::new("authconform.status", r.status.as_str()));
    tc.add_property(Property::new(
        "authconform.gating",
        if gating { "true" } else { "false" },
    ));
    if r.status == Status::Failed && r.warning {
        tc.add_property(Property::new("authconform.warning", "true"));
    }
    if let Some(e) = expected {
        tc.add_property(Property::new("authconform.expected", e.as_str()));
    }
    match (r.status, gating) {
        (Status::Passed, false) => {
            let mut out = String::new();
            out.push_str(&r.message);
            for d in &r.details {
                out.push('\n');
                out.push_str(d);
            }
            if !out.is_empty() {
                tc.set_system_out(xml_text(&out));
            }
        }
        (Status::Failed | Status::Errored, false) => {
            let why = if r.status == Status::Errored {
                format!("not judged ({}, does not gate)", r.level.as_str())
            } else if r.warning {
                "tolerated warning (does not gate)".to_string()
            } else if expected == Some(Status::Failed) {
                "failed, as the expectations file accepts (does not gate)".to_string()
            } else {
                format!("failed ({}, does not gate)", r.level.as_str())
            };
            let mut out = format!("{why}: {}\n", r.message);
            out.push_str(&description(r));
            tc.set_system_out(xml_text(&out));
        }
        _ => {}
    }
    tc
}

/// Details, then every exchange, as plain text for the body of `<failure>`/`<error>`.
fn description(r: &CaseResult) -> String {
    let mut out = String::new();
    for d in &r.details {
        out.push_str(d);
        out.push('\n');
    }
    for (i, ex) in r.exchanges.iter().enumerate() {
        if !out.is_empty() {
            out.push('\n');
        }
        render_exchange(&mut out, i + 1, ex);
    }
    out
}

fn render_exchange(out: &mut String, n: usize, ex: &Exchange) {
    // Each line is built from one_line() so a CR/LF in a header or URL cannot forge extra lines
    // that look like evidence the server never sent.
    let _ = writeln!(out, "--- exchange {n}: {}", one_line(&ex.note, 200));
    let _ = writeln!(
        out,
        "> {} {}",
        one_line(&ex.method, 32),
        one_line(&ex.url, 2000)
    );
    for (k, v) in &ex.request_headers {
        let _ = writeln!(out, "> {}: {}", one_line(k, 200), one_line(v, 1000));
    }
    if let Some(body) = &ex.request_body {
        let _ = writeln!(out, ">");
        push_body(out, "> ", body, false);
    }
    match ex.status {
        Some(status) => {
            let _ = writeln!(out, "< {status} ({} ms)", ex.duration_ms);
        }
        None => {
            let _ = writeln!(out, "< no response ({} ms)", ex.duration_ms);
        }
    }
    for (k, v) in &ex.response_headers {
        let _ = writeln!(out, "< {}: {}", one_line(k, 200), one_line(v, 1000));
    }
    if let Some(body) = &ex.response_body {
        let _ = writeln!(out, "<");
        push_body(out, "< ", body, ex.body_truncated);
    } else if ex.body_truncated {
        let _ = writeln!(out, "[body truncated]");
    }
    if let Some(err) = &ex.error {
        let _ = writeln!(out, "! error: {}", one_line(err, 1000));
    }
}

fn push_body(out: &mut String, prefix: &str, body: &str, truncated: bool) {
    let clean = sanitize_terminal(body);
    let mut cut = false;
    let excerpt: String = match clean.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((i, _)) => {
            cut = true;
            clean[..i].to_owned()
        }
        None => clean,
    };
    for line in excerpt.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    if cut || truncated {
        let _ = writeln!(out, "[body truncated]");
    }
}

/// Text safe for an XML 1.0 document with visible escapes: everything [`sanitize_terminal`]
/// escapes, plus CR (an XML parser would fold it into LF) and the noncharacters U+FFFE/U+FFFF,
/// which XML 1.0 does not allow at all.
fn xml_text(s: &str) -> String {
    let s = sanitize_terminal(s);
    if !s.contains(['\u{FFFE}', '\u{FFFF}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '\u{FFFE}' | '\u{FFFF}') {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// An attribute value: one line, since XML attribute normalisation turns newlines into spaces.
fn xml_line(s: &str) -> String {
    xml_text(&one_line(s, MESSAGE_CHARS))
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`: the RFC 3339 profile that is also a valid
/// `xs:dateTime`.
fn is_xs_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::{area_counts, hostile_report};

    #[test]
    fn one_suite_per_area_with_counts() {
        let report = hostile_report();
        let xml = to_string(&report);
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("name"), Some("authconform"));
        assert_eq!(
            root.attribute("tests"),
            Some(report.results.len().to_string().as_str())
        );

        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        // Failures and errors are the gating ones only: the tolerated warning and the failed
        // INFO case are passing test cases.
        let expected: Vec<(String, [usize; 4])> = area_counts(&report)
            .into_iter()
            .map(|(area, [t, _, _, s])| {
                let of_area = report.results.iter().filter(|r| r.area == area);
                let gating = |st| {
                    of_area
                        .clone()
                        .filter(|r| r.gates() && r.status == st)
                        .count()
                };
                (
                    area.clone(),
                    [t, gating(Status::Failed), gating(Status::Errored), s],
                )
            })
            .collect();
        assert_eq!(suites.len(), expected.len());
        for (suite, (area, [tests, failures, errors, skipped])) in suites.iter().zip(&expected) {
            assert_eq!(suite.attribute("name"), Some(xml_line(area).as_str()));
            assert_eq!(suite.attribute("timestamp"), Some("2025-07-01T12:00:00Z"));
            let num = |a| suite.attribute(a).unwrap().parse::<usize>().unwrap();
            assert_eq!(
                [num("tests"), num("failures"), num("errors"), num("skipped")],
                [*tests, *failures, *errors, *skipped],
                "counts for {area:?}"
            );
            let cases: Vec<_> = suite
                .children()
                .filter(|n| n.has_tag_name("testcase"))
                .collect();
            assert_eq!(cases.len(), *tests);
            for c in cases {
                assert_eq!(c.attribute("classname"), suite.attribute("name"));
                assert_eq!(c.attribute("time"), Some("1.234"));
            }
        }
    }

    #[test]
    fn verdict_elements() {
        let report = hostile_report();
        let xml = to_string(&report);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let case = |id: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(id))
                .unwrap_or_else(|| panic!("no testcase {id}"))
        };
        fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
            n.children().find(|c| c.has_tag_name(tag))
        }

        let prop = |n: roxmltree::Node, name: &str| {
            child(n, "properties").and_then(|p| {
                p.children()
                    .find(|c| c.attribute("name") == Some(name))
                    .and_then(|c| c.attribute("value").map(str::to_owned))
            })
        };
        // A tolerated warning passes, saying so in a property and in its output.
        let warn = case("prm-warn");
        assert!(child(warn, "failure").is_none() && child(warn, "error").is_none());
        assert_eq!(prop(warn, "authconform.warning").as_deref(), Some("true"));
        assert_eq!(prop(warn, "authconform.status").as_deref(), Some("failed"));
        assert_eq!(prop(warn, "authconform.gating").as_deref(), Some("false"));
        let out = child(warn, "system-out").unwrap().text().unwrap();
        assert!(
            out.starts_with("tolerated warning (does not gate): message"),
            "{out}"
        );
        assert!(out.contains("< 401 (12 ms)"), "the evidence is kept: {out}");
        // So does a failed INFO case, without the warning property.
        let info = case("info-fail");
        assert!(child(info, "failure").is_none());
        assert_eq!(prop(info, "authconform.warning"), None);
        assert!(
            (child(info, "system-out").unwrap().text().unwrap())
                .starts_with("failed (INFO, does not gate)")
        );

        let failed_id = report.results[1].id.clone();
        let failure = child(case(&xml_line(&failed_id)), "failure").unwrap();
        assert_eq!(failure.attribute("type"), Some("MUST"));
        assert_eq!(
            prop(case(&xml_line(&failed_id)), "authconform.gating").as_deref(),
            Some("true")
        );
        let msg = failure.attribute("message").unwrap();
        assert!(
            msg.starts_with("message <script>alert(1)</script>"),
            "{msg}"
        );
        assert!(
            msg.contains("\\x1b[31m") && msg.contains("\\nsecond line"),
            "{msg}"
        );
        let text = failure.text().unwrap();
        assert!(text.contains("detail one"));
        assert!(text.contains("> GET https://example.test/mcp?x="));
        assert!(text.contains("< 401 (12 ms)"));
        assert!(text.contains("< www-authenticate: Bearer resource_metadata="));
        assert!(text.contains("]]>"), "CDATA terminator kept as text");
        assert!(text.contains("[body truncated]"));
        // The CR/LF in a header value must not have produced a line of its own.
        assert!(!text.lines().any(|l| l.starts_with("Injected:")));

        let err = child(case("prm-err"), "error").unwrap();
        assert_eq!(err.attribute("type"), Some("MUST"));
        assert!(err.text().unwrap().contains("! error: connection refused"));
        assert!(err.text().unwrap().contains("< no response"));

        let skipped = child(case("dcr-skip"), "skipped").unwrap();
        assert!(skipped.attribute("message").unwrap().starts_with("message"));

        let ok = case("prm-ok");
        assert!(child(ok, "failure").is_none() && child(ok, "error").is_none());
        assert!(
            child(ok, "system-out")
                .unwrap()
                .text()
                .unwrap()
                .contains("detail two")
        );

        for n in doc.descendants() {
            for t in n
                .text()
                .into_iter()
                .chain(n.attributes().map(|a| a.value()))
            {
                assert!(
                    !t.chars().any(|c| (c.is_control() && c != '\n' && c != '\t')
                        || matches!(c, '\u{202E}' | '\u{FFFE}')),
                    "raw control char in {t:?}"
                );
            }
        }
    }

    fn root_counts(xml: &str) -> [usize; 3] {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let root = doc.root_element();
        let num = |a| root.attribute(a).unwrap().parse::<usize>().unwrap();
        [num("failures"), num("errors"), num("skipped")]
    }

    fn find<'a, 'i>(doc: &'a roxmltree::Document<'i>, id: &str) -> roxmltree::Node<'a, 'i> {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(id))
            .unwrap()
    }

    #[test]
    fn a_non_gating_errored_case_is_skipped_not_an_error() {
        let mut report = hostile_report();
        report.results[3].level = crate::record::Level::Should;
        let xml = to_string(&report);
        // One gating failure (token-fail); the SHOULD errored case is not an error.
        assert_eq!(root_counts(&xml), [1, 0, 2]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let skipped = find(&doc, "prm-err")
            .children()
            .find(|c| c.has_tag_name("skipped"))
            .unwrap();
        assert_eq!(skipped.attribute("type"), Some("not-judged"));
        assert!(
            (skipped.attribute("message").unwrap())
                .starts_with("not judged (SHOULD, does not gate)")
        );
        validate_with_xmllint(&xml);
    }

    #[test]
    fn under_expect_the_differences_are_the_failures() {
        use crate::record::{ExpectChange, ExpectRecord, ExpiredEntry, Outcome, OutcomeState};
        let mut report = hostile_report();
        let token_fail = report.results[1].id.clone();
        let change = |id: &str, expected, observed| ExpectChange {
            id: id.into(),
            expected,
            observed,
        };
        report.outcome = Some(Outcome {
            state: OutcomeState::Failed,
            exit_code: 1,
            reason: "3 verdicts differ from expected.toml".into(),
            expect: Some(ExpectRecord {
                file: "expected.toml".into(),
                matched: 4,
                changed: vec![change("prm-ok", Some(Status::Failed), Status::Passed)],
                unlisted: vec![change("dcr-skip", None, Status::Skipped)],
                stale: Vec::new(),
                expired: vec![ExpiredEntry {
                    id: "prm-err".into(),
                    until: "2025-01-31".into(),
                    reason: Some("the AS is down on Sundays".into()),
                    expected: Status::Errored,
                    observed: Status::Errored,
                }],
            }),
        });
        let xml = to_string(&report);
        // prm-ok and dcr-skip differ (failures), prm-err's entry expired (an error); the
        // failed MUST case the file accepts passes.
        assert_eq!(root_counts(&xml), [2, 1, 0]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let failure = |id: &str| {
            find(&doc, id)
                .children()
                .find(|c| c.has_tag_name("failure"))
                .unwrap()
        };
        assert_eq!(failure("prm-ok").attribute("type"), Some("expect"));
        assert!(
            (failure("prm-ok").attribute("message").unwrap())
                .starts_with("expected failed, got passed: message")
        );
        assert!(
            (failure("dcr-skip").attribute("message").unwrap())
                .starts_with("got skipped, and the expectations file does not name this case")
        );
        let accepted = find(&doc, &xml_line(&token_fail));
        assert!(accepted.children().all(|c| !c.has_tag_name("failure")));
        let out = accepted
            .children()
            .find(|c| c.has_tag_name("system-out"))
            .unwrap();
        assert!(
            (out.text().unwrap())
                .starts_with("failed, as the expectations file accepts (does not gate)")
        );
        assert!(xml.contains(r#"<property name="authconform.outcome" value="failed"/>"#));
        validate_with_xmllint(&xml);
    }

    #[test]
    fn empty_report_is_valid() {
        let mut report = hostile_report();
        report.results.clear();
        let xml = to_string(&report);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("tests"), Some("0"));
        validate_with_xmllint(&xml);
    }

    #[test]
    fn validates_against_xsd() {
        validate_with_xmllint(&to_string(&hostile_report()));
    }

    #[test]
    fn datetime_shape() {
        assert!(is_xs_datetime("2025-07-01T12:00:00Z"));
        assert!(is_xs_datetime("2025-07-01T12:00:00.123+02:00"));
        assert!(!is_xs_datetime("2025-07-01 12:00:00Z"));
        assert!(!is_xs_datetime("2025-07-01T12:00:00"));
        assert!(!is_xs_datetime("2025-07-01T12:00:00.Z"));
        assert!(!is_xs_datetime("now"));
    }

    /// xmllint is optional locally; CI runs it on its own as well.
    fn validate_with_xmllint(xml: &str) {
        use std::process::Command;
        if Command::new("xmllint").arg("--version").output().is_err() {
            eprintln!("note: xmllint not installed; skipping XSD validation of the JUnit report");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junit.xml");
        std::fs::write(&file, xml).unwrap();
        let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas/junit.xsd");
        let out = Command::new("xmllint")
            .args(["--noout", "--schema", xsd])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xmllint rejected the report:\n{}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
