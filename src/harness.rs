//! A libtest-compatible harness (over `libtest-mimic`): a Rust project that implements an MCP
//! server or an authorization server runs authconform from its own `cargo test`, every case a
//! test of its own.
//!
//! ```ignore
//! // tests/authconform.rs, with `[[test]] name = "authconform", harness = false` in Cargo.toml
//! fn main() {
//!     let rt = tokio::runtime::Runtime::new().unwrap();
//!     let url = rt.block_on(my_server::start_for_tests()); // serves on rt's threads
//!     authconform::harness::Harness::resource(url)
//!         .config("tests/authconform.toml")              // clients, login... (optional)
//!         .report_dir("target/authconform")
//!         .run()
//!         .exit();
//! }
//! ```
//!
//! How it runs: the trials are the selected cases, listed without touching the network (so
//! `--list` is instant); libtest's filters (`cargo test -- prm-`, `--exact ID`, `--skip`) pick
//! the trials, and the cases behind the picked ones run together in one session (one target
//! set-up, the usual ordering, isolation and reports) before libtest reports each trial from
//! its case's verdict: a gating failure fails the test (its message, details and the sentence
//! it broke as the failure text); a pass passes; a skipped case, or an errored one that does not
//! gate, is ignored with its reason; a failure that does not gate (a tolerated warning, a
//! failed SHOULD) passes, as in `junit.xml`. cargo-nextest, which runs every test in a process
//! of its own with `--exact`, works the same way, one case per session; its reports then go to
//! `<report dir>/nextest/<case id>/` so the processes do not overwrite each other's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Conclusion, Failed, Trial};

use crate::case::Selection;
use crate::record::{CaseResult, Level, RunReport, Status};
use crate::session::{
    self, DocumentOptions, ReportOptions, RunOptions, SetupOptions, TargetOptions,
};
use crate::spec::SpecChoice;

/// What to test and how; [`Harness::run`] turns it into libtest trials.
#[derive(Debug, Clone)]
pub struct Harness {
    target: TargetOptions,
    selection: Selection,
    cases_dir: Option<PathBuf>,
    concurrency: usize,
    report_dir: PathBuf,
    expect: Option<PathBuf>,
    spec: SpecChoice,
    max_wait: Option<u64>,
}

impl Harness {
    fn new(target: TargetOptions) -> Self {
        Harness {
            target,
            selection: Selection::default(),
            cases_dir: None,
            concurrency: 4,
            report_dir: PathBuf::from("target/authconform"),
            expect: None,
            spec: SpecChoice::Auto,
            max_wait: None,
        }
    }

    /// The built-in reference server, started in this process by the session (what
    /// `authconform run` does with no target).
    pub fn reference() -> Self {
        Self::new(TargetOptions::default())
    }

    /// An MCP endpoint (discovery starts from its 401).
    pub fn resource(url: impl Into<String>) -> Self {
        Self::new(TargetOptions {
            resource: Some(url.into()),
            ..TargetOptions::default()
        })
    }

    /// An authorization server tested alone.
    pub fn issuer(url: impl Into<String>) -> Self {
        Self::new(TargetOptions {
            issuer: Some(url.into()),
            ..TargetOptions::default()
        })
    }

    /// A target profile (TOML, as `--config`): its `[target]` names the server, and its
    /// clients and login let the flow cases run. With [`Harness::resource`] or
    /// [`Harness::issuer`] the URL given there wins over the profile's.
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.target.config = Some(path.into());
        self
    }

    /// Faults injected into the built-in reference (negative controls).
    pub fn reference_fault(mut self, case_id: impl Into<String>) -> Self {
        self.target.reference_faults.push(case_id.into());
        self
    }

    /// A CA certificate (PEM) to trust, e.g. the test server's own.
    pub fn cacert(mut self, path: impl Into<PathBuf>) -> Self {
        self.target.cacert = Some(path.into());
        self
    }

    /// Only the cases matching `pattern` become trials (as `--only`). Repeatable.
    pub fn only(mut self, pattern: impl Into<String>) -> Self {
        self.selection.only.push(pattern.into());
        self
    }

    /// Leave the cases matching `pattern` out (as `--skip`). Repeatable.
    pub fn skip(mut self, pattern: impl Into<String>) -> Self {
        self.selection.skip.push(pattern.into());
        self
    }

    /// Keep cases at this level or stricter (as `--level`).
    pub fn level(mut self, level: Level) -> Self {
        self.selection.level = Some(level);
        self
    }

    /// Case files of a folder instead of the shipped ones (as `--cases`).
    pub fn cases_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cases_dir = Some(dir.into());
        self
    }

    /// Cases run at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Where junit.xml, report.html and results.json go (default `target/authconform`).
    pub fn report_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.report_dir = dir.into();
        self
    }

    /// Expected verdicts (as `--expect`): a trial then fails when its case's verdict differs
    /// from the file's, and a failure the file accepts passes.
    pub fn expect(mut self, path: impl Into<PathBuf>) -> Self {
        self.expect = Some(path.into());
        self
    }

    /// The MCP revision to grade at (default: auto).
    pub fn spec(mut self, spec: SpecChoice) -> Self {
        self.spec = spec;
        self
    }

    /// Longest deliberate wait a case may take (as `--max-wait`).
    pub fn max_wait(mut self, secs: u64) -> Self {
        self.max_wait = Some(secs);
        self
    }

    /// Runs with the process's command line (`cargo test -- ARGS`). Call `.exit()` on the
    /// result. Must not be called from inside an async runtime: the session gets one of its own.
    pub fn run(self) -> Conclusion {
        self.run_with_args(Arguments::from_args())
    }

    /// Runs with the given libtest arguments.
    pub fn run_with_args(self, args: Arguments) -> Conclusion {
        let ids = match self.case_ids() {
            Ok(ids) => ids,
            // The cases could not be loaded or selected: one failing trial says why.
            Err(e) => {
                let msg = e.to_string();
                let t = Trial::test("authconform", move || Err(Failed::from(msg)));
                return libtest_mimic::run(&args, vec![t]);
            }
        };
        let probe: Vec<Trial> = ids.iter().map(|id| Trial::test(id, || Ok(()))).collect();
        if args.list {
            return libtest_mimic::run(&args, probe);
        }
        let picked: Vec<String> = probe
            .iter()
            .filter(|t| !args.is_filtered_out(t) && !args.is_ignored(t))
            .map(|t| t.name().to_string())
            .collect();
        let verdicts = Arc::new(if picked.is_empty() {
            Ok(Verdicts::default())
        } else {
            self.run_cases(&picked)
        });
        let trials = ids
            .into_iter()
            .map(|id| {
                let v = verdicts.clone();
                let name = id.clone();
                Trial::ignorable_test(name, move || match &*v {
                    Ok(v) => v.trial(&id),
                    Err(e) => Err(Failed::from(format!("the run could not start: {e}"))),
                })
            })
            .collect();
        libtest_mimic::run(&args, trials)
    }

    /// The ids of the selected cases, without touching the network.
    fn case_ids(&self) -> Result<Vec<String>, session::Error> {
        let cases = session::load_cases(self.cases_dir.as_deref())?;
        Ok(cases
            .iter()
            .filter(|c| self.selection.keeps(c))
            .map(|c| c.id().to_string())
            .collect())
    }

    /// One session for the picked cases: set-up, run, reports.
    fn run_cases(&self, picked: &[String]) -> Result<Verdicts, session::Error> {
        let mut dir = self.report_dir.clone();
        // nextest runs each test in a process of its own: each keeps its own reports.
        if std::env::var_os("NEXTEST_RUN_ID").is_some() && picked.len() == 1 {
            dir = dir.join("nextest").join(&picked[0]);
        }
        let opts = RunOptions {
            setup: SetupOptions {
                target: self.target.clone(),
                documents: Some(DocumentOptions::default()),
                spec: self.spec,
                max_wait: self.max_wait,
            },
            cases_dir: self.cases_dir.clone(),
            // Exactly the picked ids: a pattern that is an id also selects its variants (as a
            // requirement id), so each is written as a glob that matches that id alone (its
            // first character as a one-character class).
            selection: Selection {
                only: picked.iter().map(|id| exact_glob(id)).collect(),
                skip: Vec::new(),
                level: None,
            },
            concurrency: self.concurrency,
            reports: ReportOptions {
                dir: Some(dir),
                ..ReportOptions::default()
            },
            expect: self.expect.clone(),
            write_expect: None,
            shard: None,
            shard_timings: None,
            deadline: None,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| session::Error(format!("tokio runtime: {e}")))?;
        let stop = session::StopSignal::new();
        let finished = rt.block_on(session::run(opts, &stop, &|_| {}))?;
        Ok(Verdicts::of(finished.report))
    }
}

/// A glob that matches `id` and nothing else (ids hold no glob metacharacters; the class keeps
/// the pattern from equalling an id, a requirement id or an area).
fn exact_glob(id: &str) -> String {
    let mut chars = id.chars();
    match chars.next() {
        Some(c) => format!("[{c}]{}", chars.as_str()),
        None => String::new(),
    }
}

/// The verdicts of a finished run, by case id.
#[derive(Default)]
struct Verdicts {
    report: Option<RunReport>,
    by_id: HashMap<String, usize>,
}

impl Verdicts {
    fn of(report: RunReport) -> Self {
        let by_id = (report.results.iter().enumerate())
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Verdicts {
            report: Some(report),
            by_id,
        }
    }

    /// A trial's outcome: what the run's gate made of its case.
    fn trial(&self, id: &str) -> Result<Completion, Failed> {
        let Some(report) = &self.report else {
            return Err(Failed::from("the case was not run"));
        };
        let Some(r) = self.by_id.get(id).map(|&i| &report.results[i]) else {
            return Err(Failed::from(
                "no verdict: the run ended before this case (interrupted?)",
            ));
        };
        let gating = report.counts_against_gate(r);
        match (r.status, gating) {
            (_, true) => Err(Failed::from(failure_text(report, r))),
            (Status::Passed | Status::Failed, false) => Ok(Completion::Completed),
            (Status::Skipped, false) => Ok(Completion::ignored_with(one_line(&r.message))),
            (Status::Errored, false) => Ok(Completion::ignored_with(format!(
                "not judged ({}, does not gate): {}",
                r.level.as_str(),
                one_line(&r.message)
            ))),
        }
    }
}

/// What libtest prints for a failed trial: the verdict, the sentence broken, the details.
/// Server-derived text, escaped for the terminal.
fn failure_text(report: &RunReport, r: &CaseResult) -> String {
    let mut out = format!(
        "{} {}: {}",
        r.status.as_str(),
        r.level.as_str(),
        crate::terminal::sanitize_terminal(&r.message)
    );
    if let Some(expected) = report.expected_status(r)
        && expected != r.status
    {
        out.push_str(&format!("\n(expected {})", expected.as_str()));
    }
    if let Some(q) = &r.quote {
        out.push_str(&format!(
            "\n\u{201c}{}\u{201d} ({})",
            crate::terminal::sanitize_terminal(&q.text),
            crate::terminal::sanitize_terminal(&q.source)
        ));
    }
    for d in &r.details {
        out.push_str("\n  ");
        out.push_str(&crate::terminal::sanitize_terminal(d));
    }
    out
}

fn one_line(s: &str) -> String {
    crate::report::one_line(s, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_glob_matches_its_id_alone() {
        let cases = session::load_cases(None).unwrap();
        let base = cases
            .iter()
            .find(|c| c.id() == "rs-400-malformed-auth.empty")
            .unwrap();
        let g = exact_glob("rs-400-malformed-auth.empty");
        assert!(Selection::matches(&g, base));
        // The requirement id as a pattern takes every variant; its exact glob takes none.
        let g = exact_glob("rs-400-malformed-auth");
        assert!(!Selection::matches(&g, base));
        assert!(Selection::matches("rs-400-malformed-auth", base));
    }
}
