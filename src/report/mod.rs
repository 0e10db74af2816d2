//! Reporters: turn a finished [`RunReport`] into console lines, JSON, JUnit XML, HTML and SARIF.
//!
//! Reporters only read records. Every string that may have come from the server under test is
//! treated as hostile: it is escaped for the output medium, and control characters are made
//! visible rather than passed through, so a report can neither inject markup nor drive a terminal.

pub mod console;
pub mod curl;
pub mod html;
pub mod index;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod triage;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::RunReport;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create directory {} for report: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write report {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(crate) use crate::terminal::push_escape;
pub use crate::terminal::sanitize_terminal;

/// [`sanitize_terminal`], then fold the result onto one line (newlines shown as `\n`, tabs as a
/// space), cut at `max` characters. For places where one record must stay one line of output.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 4);
    for (count, c) in sanitize_terminal(s).chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A duration for humans: `42 ms` below a second, `12.300 s` above.
pub(crate) fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}.{:03} s", ms / 1000, ms % 1000)
    }
}

/// Write each requested report. Returns the paths written, in the order json, junit, html, sarif.
///
/// Each file is written to a temporary sibling and renamed into place, so an interrupted run or a
/// full disk never leaves a truncated report where CI expects a complete one.
pub fn write_all(
    report: &RunReport,
    json: Option<&Path>,
    junit: Option<&Path>,
    html: Option<&Path>,
    sarif: Option<&Path>,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    if let Some(path) = json {
        write_atomic(path, self::json::to_string(report).as_bytes())?;
        written.push(path.to_path_buf());
    }
    if let Some(path) = junit {
        write_atomic(path, self::junit::to_string(report).as_bytes())?;
        written.push(path.to_path_buf());
    }
    if let Some(path) = html {
        write_atomic(path, self::html::to_string(report).as_bytes())?;
        written.push(path.to_path_buf());
    }
    if let Some(path) = sarif {
        write_atomic(path, self::sarif::to_string(report).as_bytes())?;
        written.push(path.to_path_buf());
    }
    Ok(written)
}

/// Writes the multi-target index page ([`index`]) to `path`, like the other reports.
pub fn write_index(path: &Path, entries: &[index::Entry<'_>]) -> Result<PathBuf, ReportError> {
    write_atomic(path, index::to_string(entries).as_bytes())?;
    Ok(path.to_path_buf())
}

fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    let write_err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let file_name = path.file_name().ok_or_else(|| {
        write_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;

    // Same directory as the target so the rename stays on one filesystem (and is atomic there).
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let (tmp, mut file) = loop {
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            // A leftover from a crashed run with a recycled pid: pick the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(write_err(e)),
        }
    };
    let result = fill(&mut file, contents)
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        })
        .map_err(write_err);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn fill(file: &mut File, contents: &[u8]) -> io::Result<()> {
    file.write_all(contents)?;
    // Without this, a power loss after the rename can leave an empty file under the final name.
    file.sync_all()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A run report full of hostile server-derived strings, shared by every reporter's tests.

    use crate::record::{
        CaseResult, Exchange, Level, RunReport, SpecInfo, Status, Summary, TargetInfo,
    };

    pub const NASTY: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>\
        \x1b[31mred\x1b[0m\x1b]0;title\x07 nul:\0 repl:\u{FFFD}\u{FFFD} cdata:]]> cr:\r del:\x7f \
        c1:\u{9b}31m bidi:\u{202E}txt.exe\u{2066} amp:&amp; quote:' nonchar:\u{FFFE}";

    fn exchange(i: usize) -> Exchange {
        Exchange {
            note: format!("probe {i} {NASTY}"),
            method: "GET".into(),
            url: format!("https://example.test/mcp?x={NASTY}"),
            request_headers: vec![
                ("accept".into(), "application/json".into()),
                (format!("x-evil{NASTY}"), format!("v\r\nInjected: 1{NASTY}")),
            ],
            request_body: Some(format!("{{\"a\":\"{NASTY}\"}}")),
            status: Some(401),
            response_headers: vec![(
                "www-authenticate".into(),
                format!("Bearer resource_metadata=\"{NASTY}\""),
            )],
            response_body: Some(format!("<html>{NASTY}</html>")),
            body_truncated: i % 2 == 0,
            error: None,
            duration_ms: 12,
        }
    }

    fn case(id: &str, area: &str, status: Status, level: Level, warning: bool) -> CaseResult {
        CaseResult {
            id: id.into(),
            area: area.into(),
            level,
            role: "resource".into(),
            title: format!("title of {id} {NASTY}"),
            refs: vec![format!("RFC9728 §3 {NASTY}")],
            status,
            warning,
            message: format!("message {NASTY}\nsecond line"),
            details: vec![format!("detail one {NASTY}"), "detail two".into()],
            spec: "2025-06-18".into(),
            duration_ms: 1234,
            incident: None,
            blocked_by: None,
            exchanges: vec![exchange(0), exchange(1)],
            quote: Some(crate::record::Quote {
                text: format!("The AS MUST refuse it {NASTY}"),
                source: format!("RFC 0000 §1 {NASTY}"),
                note: Some(format!("graded as SHOULD {NASTY}")),
            }),
            test_users: vec![format!("user {NASTY}")],
        }
    }

    pub fn hostile_report() -> RunReport {
        let mut no_response = case("prm-err", "metadata", Status::Errored, Level::Must, false);
        no_response.exchanges[1].status = None;
        no_response.exchanges[1].response_headers.clear();
        no_response.exchanges[1].response_body = None;
        no_response.exchanges[1].error = Some(format!("connection refused {NASTY}"));
        let mut quiet = case("prm-quiet", "metadata", Status::Passed, Level::May, false);
        quiet.details.clear();
        quiet.exchanges.clear();
        let results = vec![
            case("prm-ok", "metadata", Status::Passed, Level::Must, false),
            case(
                &format!("token-fail{NASTY}"),
                &format!("token{NASTY}"),
                Status::Failed,
                Level::Must,
                false,
            ),
            case("prm-warn", "metadata", Status::Failed, Level::Should, true),
            no_response,
            case(
                "dcr-skip",
                &format!("token{NASTY}"),
                Status::Skipped,
                Level::Should,
                false,
            ),
            quiet,
            case("info-fail", "discovery", Status::Failed, Level::Info, false),
        ];
        let summary: Summary = RunReport::summarize(&results);
        RunReport {
            tool: "authconform".into(),
            version: "0.1.0".into(),
            target: TargetInfo {
                kind: "resource".into(),
                resource: Some(format!("https://example.test/mcp{NASTY}")),
                issuer: Some(format!("javascript:alert(1)//{NASTY}")),
                faults: vec![format!("fault{NASTY}")],
                name: None,
            },
            spec: SpecInfo {
                graded: "2025-06-18".into(),
                source: "auto".into(),
                detection: format!("MCP-Protocol-Version header {NASTY}"),
            },
            started_at: "2025-07-01T12:00:00Z".into(),
            incidents: Vec::new(),
            unstable: None,
            duration_ms: 4321,
            interrupted: true,
            summary,
            provision: Some(crate::record::ProvisionRecord {
                command: vec![format!("scripts/make-users.sh{NASTY}")],
                exit_code: 0,
                duration_ms: 12,
                output: format!("made users {NASTY}"),
                truncated: true,
            }),
            results,
            fuzz: None,
            outcome: None,
            shard: None,
            merged: None,
        }
    }

    /// Areas in first-seen order with (tests, failures, errors, skipped).
    pub fn area_counts(report: &RunReport) -> Vec<(String, [usize; 4])> {
        let mut out: Vec<(String, [usize; 4])> = Vec::new();
        for r in &report.results {
            let i = match out.iter().position(|(a, _)| *a == r.area) {
                Some(i) => i,
                None => {
                    out.push((r.area.clone(), [0; 4]));
                    out.len() - 1
                }
            };
            let c = &mut out[i].1;
            c[0] += 1;
            match r.status {
                Status::Failed => c[1] += 1,
                Status::Errored => c[2] += 1,
                Status::Skipped => c[3] += 1,
                Status::Passed => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_controls_and_bidi() {
        let s = sanitize_terminal("a\x1b[31mb\rc\0d\x7fe\u{85}f\u{9f}g\u{202e}h\u{2069}i\n\tj");
        assert_eq!(
            s,
            "a\\x1b[31mb\\x0dc\\x00d\\x7fe\\u{85}f\\u{9f}g\\u{202e}h\\u{2069}i\n\tj"
        );
        assert_eq!(sanitize_terminal("plain é ✓"), "plain é ✓");
    }

    #[test]
    fn sanitize_leaves_no_raw_controls() {
        let s = sanitize_terminal(testutil::NASTY);
        assert!(!s.chars().any(crate::terminal::is_unsafe_char), "{s:?}");
        assert!(s.chars().all(|c| c >= ' ' || c == '\n' || c == '\t'));
    }

    #[test]
    fn one_line_folds_and_cuts() {
        assert_eq!(one_line("a\nb\tc\x1b", 100), "a\\nb c\\x1b");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
    }

    #[test]
    fn write_all_creates_dirs_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let report = testutil::hostile_report();
        let json = dir.path().join("a/b/results.json");
        let junit = dir.path().join("junit.xml");
        let html = dir.path().join("c/report.html");
        // Pre-existing content must be replaced, not appended to.
        fs::create_dir_all(html.parent().unwrap()).unwrap();
        fs::write(&html, "old").unwrap();
        let sarif = dir.path().join("d/results.sarif");
        let written = write_all(
            &report,
            Some(&json),
            Some(&junit),
            Some(&html),
            Some(&sarif),
        )
        .unwrap();
        assert_eq!(
            written,
            vec![json.clone(), junit.clone(), html.clone(), sarif.clone()]
        );
        let parsed: RunReport = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(parsed, report);
        assert!(fs::read_to_string(&junit).unwrap().starts_with("<?xml"));
        assert!(
            fs::read_to_string(&html)
                .unwrap()
                .starts_with("<!DOCTYPE html>")
        );
        let log: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&sarif).unwrap()).unwrap();
        assert_eq!(log["version"], "2.1.0");
        for d in [
            dir.path(),
            json.parent().unwrap(),
            html.parent().unwrap(),
            sarif.parent().unwrap(),
        ] {
            for e in fs::read_dir(d).unwrap() {
                let name = e.unwrap().file_name();
                assert!(
                    !name.to_string_lossy().ends_with(".tmp"),
                    "{name:?} left behind"
                );
            }
        }
        assert!(
            write_all(&report, None, None, None, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn write_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where a directory is needed.
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let target = blocker.join("out.json");
        let err =
            write_all(&testutil::hostile_report(), Some(&target), None, None, None).unwrap_err();
        assert!(
            err.to_string().contains(&blocker.display().to_string()),
            "{err}"
        );
    }
}

/// Errored cases whose stage-setting request failed, grouped by cause (condition, and the case
/// whose requirement it breaks), in order of first appearance: each group's indices into
/// `results`. Reports show each cause once, with its cases under it.
pub fn blocked_groups(
    results: &[crate::record::CaseResult],
) -> Vec<(&crate::record::BlockedBy, Vec<usize>)> {
    let mut groups: Vec<(&crate::record::BlockedBy, Vec<usize>)> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let Some(b) = &r.blocked_by else { continue };
        match groups
            .iter_mut()
            .find(|(g, _)| g.condition == b.condition && g.case == b.case)
        {
            Some((_, ids)) => ids.push(i),
            None => groups.push((b, vec![i])),
        }
    }
    groups
}

/// A cause's heading: the condition, and the case that judges it.
pub fn blocked_heading(b: &crate::record::BlockedBy) -> String {
    match &b.case {
        Some(c) => format!("{} (judged by {c})", b.condition),
        None => b.condition.clone(),
    }
}
