//! Live progress lines (one per finished case, and on a terminal the [`Progress`] line) and
//! the end-of-run summary on the terminal.
//!
//! Server-derived text reaches a terminal here, so every such string goes through
//! [`super::sanitize_terminal`] (via `one_line`): an ESC from the server must be shown, never
//! obeyed. The only escape sequences in the output are the colours this module adds itself.

use colored::{ColoredString, Colorize};

use crate::record::{CaseResult, RunReport, Status};
use crate::report::triage::{self, CauseKind};
use crate::report::{fmt_ms, one_line};

/// A progress line has to stay one terminal line; these keep a hostile message from flooding it.
const ID_CHARS: usize = 120;
const MESSAGE_CHARS: usize = 300;
const DETAIL_CHARS: usize = 1000;

pub struct Console {
    color: bool,
    verbose: bool,
}

impl Console {
    pub fn new(color: bool, verbose: bool) -> Self {
        Console { color, verbose }
    }

    /// Does this console colour its output?
    pub fn color(&self) -> bool {
        self.color
    }

    /// `colored` decides on its own (env vars, global override) whether to emit escapes; we only
    /// let it see the text when colour was asked for, so `color: false` is plain whatever the
    /// global state says.
    fn paint(&self, text: &str, style: fn(&str) -> ColoredString) -> String {
        if self.color {
            style(text).to_string()
        } else {
            text.to_owned()
        }
    }

    fn tag(&self, r: &CaseResult) -> String {
        let (text, style): (&str, fn(&str) -> ColoredString) = match r.status {
            Status::Passed => ("PASS", |s| s.green()),
            Status::Failed if r.warning => ("WARN", |s| s.yellow()),
            Status::Failed => ("FAIL", |s| s.red().bold()),
            Status::Skipped => ("SKIP", |s| s.cyan()),
            Status::Errored => ("ERR ", |s| s.magenta().bold()),
        };
        self.paint(text, style)
    }

    /// One line per finished case: `FAIL MUST   prm-01  message`. In verbose mode a failure or
    /// error is followed by its details and a compact trace of its exchanges, indented.
    pub fn case_line(&self, r: &CaseResult) -> String {
        // A shared cause is named once, in the summary; its cases point at it.
        let message = match &r.incident {
            Some(id) => format!("not judged: see incident {id} below"),
            None => one_line(&r.message, MESSAGE_CHARS),
        };
        let mut out = format!(
            "{} {:<6} {}  {}",
            self.tag(r),
            r.level.as_str(),
            one_line(&r.id, ID_CHARS),
            message
        );
        // A failure names the sentence it broke, so the reader can weigh the verdict without
        // looking the text up: its source on the one-line form, the sentence itself (and how
        // the level follows from it) in verbose mode.
        let quote = match (&r.quote, r.status, &r.incident) {
            (Some(q), Status::Failed, None) => Some(q),
            _ => None,
        };
        if let Some(q) = quote
            && !self.verbose
        {
            out.push_str(&format!("  [{}]", one_line(&q.source, ID_CHARS)));
        }
        if let Some(q) = quote
            && self.verbose
        {
            out.push_str(&format!(
                "\n      \u{201c}{}\u{201d} ({})",
                one_line(&q.text, DETAIL_CHARS),
                one_line(&q.source, ID_CHARS)
            ));
            if let Some(n) = &q.note {
                out.push_str("\n      level: ");
                out.push_str(&one_line(n, DETAIL_CHARS));
            }
        }
        if self.verbose
            && r.incident.is_none()
            && matches!(r.status, Status::Failed | Status::Errored)
        {
            for d in &r.details {
                out.push_str("\n      ");
                out.push_str(&one_line(d, DETAIL_CHARS));
            }
            for ex in &r.exchanges {
                let outcome = match (ex.status, &ex.error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(e)) => format!("error: {}", one_line(e, MESSAGE_CHARS)),
                    (None, None) => "no response".to_owned(),
                };
                out.push_str(&format!(
                    "\n      > {} {} -> {}",
                    one_line(&ex.method, 16),
                    one_line(&ex.url, DETAIL_CHARS),
                    outcome
                ));
            }
        }
        out
    }

    /// The end-of-run block: what was graded, the counts, timings, and every gating failure.
    pub fn summary(&self, report: &RunReport) -> String {
        let s = &report.summary;
        let mut lines = Vec::new();

        let mut target = one_line(&report.target.kind, ID_CHARS);
        for v in [&report.target.resource, &report.target.issuer]
            .into_iter()
            .flatten()
        {
            target.push(' ');
            target.push_str(&one_line(v, MESSAGE_CHARS));
        }
        lines.push(format!(
            "{} {} against {}",
            one_line(&report.tool, ID_CHARS),
            one_line(&report.version, ID_CHARS),
            target
        ));
        if !report.target.faults.is_empty() {
            let faults: Vec<String> = report
                .target
                .faults
                .iter()
                .map(|f| one_line(f, ID_CHARS))
                .collect();
            lines.push(format!("Injected faults: {}", faults.join(", ")));
        }
        lines.push(format!(
            "Graded against {} ({}: {})",
            self.paint(&one_line(&report.spec.graded, ID_CHARS), |t| t.bold()),
            one_line(&report.spec.source, ID_CHARS),
            one_line(&report.spec.detection, MESSAGE_CHARS)
        ));

        let count = |n: usize, word: &str, style: fn(&str) -> ColoredString| {
            let text = format!("{n} {word}");
            if n > 0 {
                self.paint(&text, style)
            } else {
                text
            }
        };
        let mut failed = count(s.failed, "failed", |t| t.red().bold());
        if s.warnings > 0 {
            failed.push_str(&format!(
                " ({} warning{})",
                s.warnings,
                if s.warnings == 1 { "" } else { "s" }
            ));
        }
        lines.push(format!(
            "{} case{}: {}, {}, {}, {}",
            s.total,
            if s.total == 1 { "" } else { "s" },
            count(s.passed, "passed", |t| t.green()),
            failed,
            count(s.skipped, "skipped", |t| t.cyan()),
            count(s.errored, "errored", |t| t.magenta().bold()),
        ));

        let mut timing = format!("Duration: {}", fmt_ms(report.duration_ms));
        if let Some(slow) = report.results.iter().rev().max_by_key(|r| r.duration_ms) {
            timing.push_str(&format!(
                " (slowest case: {} {})",
                one_line(&slow.id, ID_CHARS),
                fmt_ms(slow.duration_ms)
            ));
        }
        lines.push(timing);

        if report.interrupted {
            lines.push(self.paint("Run interrupted: results are partial.", |t| {
                t.yellow().bold()
            }));
        }

        if let Some(u) = &report.unstable {
            lines.push(self.paint(
                &format!(
                    "Unstable under {} parallel clients: the server answered 5xx or 429 while cases ran at once, and {} case{} got another verdict alone (reported as alone): {}",
                    u.concurrency,
                    u.cases.len(),
                    if u.cases.len() == 1 { "" } else { "s" },
                    u.cases
                        .iter()
                        .map(|c| one_line(c, ID_CHARS))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                |t| t.yellow().bold(),
            ));
        }

        let t = triage::triage(report);
        // The areas that have something to look at, on one line, in report order.
        let areas: Vec<String> = (t.areas.iter())
            .filter(|a| a.failed + a.errored + a.warnings > 0)
            .map(|a| {
                let mut s = format!("{} {}/{}", one_line(&a.area, ID_CHARS), a.passed, a.total);
                if a.must_failed > 0 {
                    s.push_str(&format!(" ({} MUST)", a.must_failed));
                }
                s
            })
            .collect();
        if !areas.is_empty() {
            lines.push(format!(
                "Areas with failures (passed/total): {}",
                areas.join(", ")
            ));
        }

        // One line per root cause, with its count and its first cases: a stage that failed
        // for 29 cases is one line, not 29.
        if !t.causes.is_empty() {
            let n: usize = t.causes.iter().map(|c| c.cases.len()).sum();
            lines.push(format!(
                "Failures by root cause ({} cause{}, {n} case{}):",
                t.causes.len(),
                if t.causes.len() == 1 { "" } else { "s" },
                if n == 1 { "" } else { "s" }
            ));
        }
        // Plain case lines even in verbose mode: the details were printed as cases ran.
        let plain = Console {
            color: self.color,
            verbose: false,
        };
        for c in &t.causes {
            lines.push(self.cause_line(report, c));
            if self.verbose {
                for &i in &c.cases {
                    lines.push(format!("      {}", plain.case_line(&report.results[i])));
                }
            }
        }
        if let Some(top) = t.skips.first() {
            lines.push(format!(
                "Skipped: {} case{} for {} reason{}; the commonest ({}): {}",
                s.skipped,
                if s.skipped == 1 { "" } else { "s" },
                t.skips.len(),
                if t.skips.len() == 1 { "" } else { "s" },
                top.cases.len(),
                one_line(&top.title, MESSAGE_CHARS)
            ));
        }
        if t.totals.must_failed == 0 {
            // Not "no failures" when MUST cases went unjudged: the run is incomplete, and the
            // last line says so with its exit code.
            let unjudged = report
                .results
                .iter()
                .filter(|r| r.status == Status::Errored && r.level == crate::record::Level::Must)
                .count();
            lines.push(match unjudged {
                0 => "No gating failures.".to_owned(),
                n => format!(
                    "No gating failures, but {n} MUST case{} could not be judged.",
                    if n == 1 { "" } else { "s" }
                ),
            });
        }
        // The run's state and exit code are the last line the CLI prints, after the
        // comparison with `--expect` (`result: …`): not repeated here.
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }
    /// One root cause on one line: its kind, how many cases (how many gate), the cause, and the
    /// first few case ids.
    fn cause_line(&self, report: &RunReport, c: &triage::Cause) -> String {
        const FIRST: usize = 4;
        let (tag, style): (&str, fn(&str) -> ColoredString) = match c.kind {
            CauseKind::Failure => ("FAIL", |s| s.red().bold()),
            CauseKind::Warning => ("WARN", |s| s.yellow()),
            CauseKind::Error | CauseKind::Blocked | CauseKind::Incident => {
                ("ERR ", |s| s.magenta().bold())
            }
            CauseKind::Skip => ("SKIP", |s| s.cyan()),
        };
        let what = match c.kind {
            CauseKind::Incident => format!(
                "incident: {} ({})",
                one_line(&c.title, MESSAGE_CHARS),
                one_line(c.reason.as_deref().unwrap_or_default(), ID_CHARS)
            ),
            CauseKind::Blocked => format!(
                "not judged, {}: {}",
                one_line(&c.title, MESSAGE_CHARS),
                one_line(c.reason.as_deref().unwrap_or_default(), MESSAGE_CHARS)
            ),
            _ => one_line(&c.title, MESSAGE_CHARS),
        };
        let mut ids: Vec<String> = (c.cases.iter().take(FIRST))
            .map(|&i| one_line(&report.results[i].id, ID_CHARS))
            .collect();
        if c.cases.len() > FIRST {
            ids.push(format!("+{} more", c.cases.len() - FIRST));
        }
        let gating = if c.gating > 0 && c.gating < c.cases.len() {
            format!(", {} gating", c.gating)
        } else if c.gating > 0 {
            ", gating".to_owned()
        } else {
            String::new()
        };
        format!(
            "  {} {} case{}{gating}: {what}  [{}]",
            self.paint(tag, style),
            c.cases.len(),
            if c.cases.len() == 1 { "" } else { "s" },
            ids.join(", ")
        )
    }
}

/// The live progress of a run on a terminal: done / total, the counts so far, and what the run
/// is waiting for when cases wait on purpose ("code-lifetime: waiting 61 s for the code to
/// expire, 42 s left"). The command line redraws [`Progress::line`] in place on stderr; in CI
/// or when stderr is not a terminal it draws nothing.
#[derive(Debug, Default)]
pub struct Progress {
    total: usize,
    /// The latest verdict of each case (a case re-run alone counts once).
    done: std::collections::HashMap<String, Status>,
    /// Cases waiting now: id, what for, when the wait ends, and how long it is.
    waits: Vec<(String, String, std::time::Instant, u64)>,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            ..Progress::default()
        }
    }

    pub fn result(&mut self, r: &CaseResult) {
        self.waits.retain(|w| w.0 != r.id);
        self.done.insert(r.id.clone(), r.status);
    }

    pub fn waiting(&mut self, case: &str, what: &str, secs: u64, now: std::time::Instant) {
        self.waits.retain(|w| w.0 != case);
        let end = now + std::time::Duration::from_secs(secs);
        self.waits
            .push((case.to_string(), what.to_string(), end, secs));
    }

    /// Is a wait under way (so a ticking countdown is worth redrawing)?
    pub fn has_waits(&self, now: std::time::Instant) -> bool {
        self.waits.iter().any(|w| w.2 > now)
    }

    /// `[ 42/319] code-lifetime: waiting 61 s for the code to expire (42 s left, +1 more) ·
    /// 38 passed, 2 failed`, cut to `width` characters: what the run waits for first, since
    /// that is what a reader looking at a still screen wants to know. Plain text, one line;
    /// case ids are escaped.
    pub fn line(&self, now: std::time::Instant, width: usize) -> String {
        let count = |st: Status| self.done.values().filter(|s| **s == st).count();
        let mut parts = vec![format!("{} passed", count(Status::Passed))];
        for (st, word) in [
            (Status::Failed, "failed"),
            (Status::Skipped, "skipped"),
            (Status::Errored, "errored"),
        ] {
            let n = count(st);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let digits = self.total.to_string().len();
        let mut out = format!("[{:>digits$}/{}] ", self.done.len(), self.total);
        // The wait that ends last is what the run is waiting for.
        let live: Vec<_> = self.waits.iter().filter(|w| w.2 > now).collect();
        if let Some(w) = live.iter().max_by_key(|w| w.2) {
            let left = w.2.saturating_duration_since(now).as_secs_f64().ceil() as u64;
            out.push_str(&format!(
                "{}: waiting {} s {} ({left} s left{}) · ",
                one_line(&w.0, ID_CHARS),
                w.3,
                one_line(&w.1, MESSAGE_CHARS),
                if live.len() > 1 {
                    format!(", +{} more", live.len() - 1)
                } else {
                    String::new()
                }
            ));
        }
        out.push_str(&parts.join(", "));
        one_line(&out, width.max(20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::hostile_report;

    #[test]
    fn progress_names_what_the_run_waits_for() {
        let report = hostile_report();
        let t0 = std::time::Instant::now();
        let mut p = Progress::new(report.results.len());
        for r in &report.results[..3] {
            p.result(r);
        }
        // A result again (a re-run alone) counts once.
        p.result(&report.results[0]);
        assert_eq!(p.line(t0, 79), "[3/7] 1 passed, 2 failed");
        p.waiting("code-lifetime", "for the code to expire", 61, t0);
        p.waiting(
            "rt-inactivity-expiry",
            "for the refresh token's idle time to pass",
            5,
            t0,
        );
        let soon = t0 + std::time::Duration::from_secs(2);
        assert!(p.has_waits(soon));
        assert_eq!(
            p.line(soon, 200),
            "[3/7] code-lifetime: waiting 61 s for the code to expire (59 s left, +1 more) · 1 passed, 2 failed"
        );
        let later = t0 + std::time::Duration::from_secs(19);
        // Cut to the terminal's width, the wait first.
        assert_eq!(
            p.line(later, 60),
            "[3/7] code-lifetime: waiting 61 s for the code to expire (42…"
        );
        // The wait ends with the case's result.
        let mut done = report.results[5].clone();
        done.id = "code-lifetime".into();
        p.result(&done);
        assert!(!p.has_waits(later));
        assert_eq!(p.line(later, 79), "[4/7] 2 passed, 2 failed");
        // A hostile case id cannot drive the terminal or break the line.
        p.waiting("evil\x1b[2J\nid", "for x", 10, later);
        let line = p.line(later, 79);
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line:?}");
        assert!(line.chars().count() <= 80);
    }

    /// Remove the SGR sequences (`ESC [ params m`) this module emits, and only those.
    fn strip_own_sgr(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("\x1b[") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .expect("unterminated escape");
            assert_eq!(&after[end..end + 1], "m", "non-SGR escape in {s:?}");
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn assert_clean(s: &str, allow_newlines: bool) {
        for c in s.chars() {
            let ok_ws = c == '\t' || (allow_newlines && c == '\n');
            assert!(
                (!c.is_control() || ok_ws)
                    && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'),
                "raw {c:?} in {s:?}"
            );
        }
    }

    #[test]
    fn plain_lines_have_no_escapes() {
        let report = hostile_report();
        for verbose in [false, true] {
            let con = Console::new(false, verbose);
            for r in &report.results {
                let line = con.case_line(r);
                assert!(!line.contains('\x1b'), "{line:?}");
                assert_clean(&line, verbose);
                if !verbose {
                    assert!(!line.contains('\n'), "{line:?}");
                }
            }
            let sum = con.summary(&report);
            assert!(!sum.contains('\x1b'), "{sum}");
            assert_clean(&sum, true);
        }
    }

    /// One test for everything that touches colored's process-global override, so parallel
    /// tests cannot flip it under each other.
    #[test]
    fn colour_override_handling() {
        colored::control::set_override(true);
        let report = hostile_report();
        let forced_plain = Console::new(false, true).case_line(&report.results[1]);
        let con = Console::new(true, true);
        let lines: Vec<String> = report.results.iter().map(|r| con.case_line(r)).collect();
        let sum = con.summary(&report);
        colored::control::unset_override();

        assert!(!forced_plain.contains('\x1b'), "{forced_plain:?}");
        assert!(lines[1].contains('\x1b'), "colour expected: {:?}", lines[1]);
        for l in lines.iter().chain([&sum]) {
            assert_clean(&strip_own_sgr(l), true);
        }
    }

    #[test]
    fn tags_and_fields() {
        let report = hostile_report();
        let con = Console::new(false, false);
        let tags: Vec<String> = report
            .results
            .iter()
            .map(|r| con.case_line(r)[..4].to_owned())
            .collect();
        assert_eq!(
            tags,
            ["PASS", "FAIL", "WARN", "ERR ", "SKIP", "PASS", "FAIL"]
        );
        let line = con.case_line(&report.results[0]);
        assert!(
            line.starts_with("PASS MUST   prm-ok  message <script>"),
            "{line}"
        );
        assert!(line.contains("\\x1b[31m") && line.contains("\\nsecond line"));
    }

    #[test]
    fn verbose_adds_details_for_problems_only() {
        let report = hostile_report();
        let con = Console::new(false, true);
        let failed = con.case_line(&report.results[1]);
        let mut lines = failed.lines();
        lines.next();
        // The sentence the case enforces, then how its level follows, then the details.
        let quote = lines.next().unwrap();
        assert!(
            quote.starts_with("      \u{201c}The AS MUST refuse it")
                && quote.contains("(RFC 0000 §1"),
            "{quote}"
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("      level: graded as SHOULD")
        );
        assert!(lines.next().unwrap().starts_with("      detail one"));
        assert!(failed.contains("      > GET https://example.test/mcp?x="));
        assert!(failed.contains("-> 401"));
        let errored = con.case_line(&report.results[3]);
        assert!(errored.contains("-> error: connection refused"));
        assert!(!con.case_line(&report.results[0]).contains('\n'));
        // Not verbose: one line, which still names the source of the sentence it broke.
        let plain = Console::new(false, false).case_line(&report.results[1]);
        assert!(
            !plain.contains('\n') && plain.contains("  [RFC 0000 §1"),
            "{plain}"
        );
    }

    #[test]
    fn summary_lists_gating_failures() {
        let report = hostile_report();
        let sum = Console::new(false, true).summary(&report);
        assert!(sum.contains("Graded against 2025-06-18 (auto: MCP-Protocol-Version header"));
        assert!(sum.contains("7 cases: 2 passed, 3 failed (1 warning), 1 skipped, 1 errored"));
        assert!(sum.contains("Duration: 4.321 s"));
        assert!(sum.contains("Run interrupted"));
        let causes: Vec<&str> = sum
            .lines()
            .skip_while(|l| !l.starts_with("Failures by root cause"))
            .take_while(|l| l.starts_with("Failures") || l.starts_with("  "))
            .filter(|l| !l.starts_with("      "))
            .collect();
        // token-fail and info-fail share a diagnosis, but only one gates; prm-err is an error;
        // prm-warn a tolerated failure.
        assert_eq!(causes[0], "Failures by root cause (3 causes, 4 cases):");
        assert!(
            causes[1].starts_with("  FAIL 2 cases, 1 gating: message <script>"),
            "{}",
            causes[1]
        );
        assert!(
            causes[1].contains("  [token-fail<script>") && causes[1].ends_with(", info-fail]"),
            "{}",
            causes[1]
        );
        assert!(
            causes[2].starts_with("  ERR  1 case, gating: message"),
            "{sum}"
        );
        assert!(causes[3].starts_with("  WARN 1 case: message"));
        // Verbose: each cause's cases under it.
        assert!(
            sum.lines()
                .any(|l| l.starts_with("      FAIL MUST   token-fail")),
            "{sum}"
        );
        assert!(sum.contains("Areas with failures (passed/total): "));
        assert!(sum.contains("Skipped: 1 case for 1 reason; the commonest (1): message"));
        let quiet = Console::new(false, false).summary(&report);
        assert!(!quiet.contains("      FAIL"), "{quiet}");
    }
}
