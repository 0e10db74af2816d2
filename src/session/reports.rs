//! A session's report: assembled in one place for runs and campaigns, written as JSON, JUnit
//! and HTML (each to its flag's file, else into the report folder) and SARIF when asked for.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Error, Event, Events};
use crate::record::{CaseResult, FuzzRecord, RunReport, SpecInfo, TargetInfo};

/// Where the reports go (`--report-dir`, `--json`, `--junit`, `--html`, `--sarif`).
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The folder of the reports without a file of their own (else the session's default).
    pub dir: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// Written only when given.
    pub sarif: Option<PathBuf>,
}

impl ReportOptions {
    fn dir<'a>(&'a self, default: &'a str) -> &'a Path {
        self.dir.as_deref().unwrap_or(Path::new(default))
    }

    /// Where the JSON report goes.
    pub(super) fn json_path(&self, default_dir: &str) -> PathBuf {
        self.json
            .clone()
            .unwrap_or_else(|| self.dir(default_dir).join("results.json"))
    }

    /// Writes the reports (`default_dir` when no folder was given) and says where.
    pub(super) fn write(
        &self,
        report: &RunReport,
        default_dir: &str,
        events: Events<'_>,
    ) -> Result<(), Error> {
        let dir = self.dir(default_dir);
        let json = self.json_path(default_dir);
        let junit = self.junit.clone().unwrap_or_else(|| dir.join("junit.xml"));
        let html = self.html.clone().unwrap_or_else(|| dir.join("report.html"));
        let paths = crate::report::write_all(
            report,
            Some(&json),
            Some(&junit),
            Some(&html),
            self.sarif.as_deref(),
        )
        .map_err(Error::new)?;
        events(Event::ReportsWritten(&paths));
        Ok(())
    }
}

/// When a session started: the report's start time and duration.
pub(super) struct Clock {
    started_at: String,
    t0: Instant,
}

impl Clock {
    pub(super) fn start() -> Self {
        Clock {
            started_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            t0: Instant::now(),
        }
    }

    /// The report of a session that started at this clock's start.
    pub(super) fn report(
        self,
        target: TargetInfo,
        spec: SpecInfo,
        interrupted: bool,
        results: Vec<CaseResult>,
        fuzz: Option<FuzzRecord>,
    ) -> RunReport {
        RunReport {
            tool: "authconform".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            target,
            spec,
            started_at: self.started_at,
            duration_ms: self.t0.elapsed().as_millis() as u64,
            interrupted,
            summary: RunReport::summarize(&results),
            incidents: Vec::new(),
            unstable: None,
            provision: None,
            results,
            fuzz,
            outcome: None,
            shard: None,
            merged: None,
        }
    }
}
