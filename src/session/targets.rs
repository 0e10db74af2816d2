//! `authconform run --targets FILE`: the suite against many targets listed in one TOML file,
//! a few at a time, each with a report folder of its own (`<report-dir>/<name>/`) and the
//! index page listing them (`<report-dir>/index.html`).
//!
//! ```toml
//! [[target]]
//! name = "staging"                          # its report folder: letters, digits, . _ -
//! resource = "https://staging.example/mcp"  # or issuer = "...", or config = "profile.toml",
//!                                           # or reference = true (the built-in reference)
//! faults = ["pkce-plain-rejected"]          # reference only: its faults
//! expect = "expected/staging.toml"          # this target's --expect
//! cacert = "staging-ca.pem"                 # this target's extra trusted CA
//! ```
//!
//! Paths are relative to the file. The whole file is checked (every profile it names loaded)
//! before anything is sent: a mistake names the file, line and field, and nothing runs.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::Deserialize;

use super::merge::{MergedTarget, exit_of, worst_exit};
use super::{Error, Event, Exit, ReportOptions, RunOptions, StopSignal, TargetOptions};
use crate::case::{FileError, read_text, toml_error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    #[serde(default)]
    target: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    resource: Option<String>,
    issuer: Option<String>,
    config: Option<PathBuf>,
    #[serde(default)]
    reference: bool,
    #[serde(default)]
    faults: Vec<String>,
    expect: Option<PathBuf>,
    cacert: Option<PathBuf>,
}

/// One target of the file, checked: its name, what to run against, its expectations.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub target: TargetOptions,
    pub expect: Option<PathBuf>,
}

/// The longest target name (it is a folder name and a column of the index).
const MAX_NAME: usize = 64;

/// Reads and checks a targets file.
pub fn load(path: &Path) -> Result<Vec<Target>, FileError> {
    let (display, text) = read_text(path)?;
    let file: TargetsFile = toml::from_str(&text).map_err(|e| toml_error(&display, &text, &e))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let at = |i: usize, field: &str, message: String| {
        let p = ["target".to_string(), i.to_string(), field.to_string()];
        // The field, else its entry (a missing field has no span of its own).
        let (field_path, entry) = (&p[..], &p[..2]);
        FileError::at(
            &display,
            &text,
            &[field_path, entry],
            format!("target[{i}].{field}"),
            message,
        )
    };
    if file.target.is_empty() {
        return Err(FileError {
            file: display.clone(),
            line: 1,
            column: 1,
            field: Some("target".into()),
            message: "no [[target]] entries".into(),
        });
    }
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, e) in file.target.into_iter().enumerate() {
        let n = &e.name;
        if n.is_empty()
            || n.len() > MAX_NAME
            || n.starts_with('.')
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(at(
                i,
                "name",
                format!(
                    "{n:?}: a name is its report folder: 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`, not starting with `.`"
                ),
            ));
        }
        // Folders that differ only in case are one folder on some file systems.
        if names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(at(i, "name", format!("{n:?} names two targets")));
        }
        names.push(n.clone());
        let kinds = [
            e.reference,
            e.config.is_some(),
            e.resource.is_some() || e.issuer.is_some(),
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            let field = if e.config.is_some() {
                "config"
            } else if e.reference {
                "reference"
            } else if e.resource.is_some() {
                "resource"
            } else {
                "name"
            };
            return Err(at(
                i,
                field,
                "a target is one of: `resource` and/or `issuer` (URLs), `config` (a profile), or `reference = true`".into(),
            ));
        }
        for (field, v) in [("resource", &e.resource), ("issuer", &e.issuer)] {
            if let Some(u) = v {
                crate::target::check_url(u).map_err(|m| at(i, field, m))?;
            }
        }
        if !e.faults.is_empty() && !e.reference {
            return Err(at(
                i,
                "faults",
                "faults are injected into the built-in reference: only with `reference = true`"
                    .into(),
            ));
        }
        for f in &e.faults {
            if !crate::reference::is_fault(f) {
                return Err(at(
                    i,
                    "faults",
                    format!(
                        "the reference server has no fault {f:?} (faults are case ids, see \
                         `authconform list`, or lifecycle fault ids: {})",
                        crate::reference::lifecycle_ids()
                    ),
                ));
            }
        }
        let resolve = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));
        let config = resolve(&e.config);
        if let Some(c) = &config {
            // Loaded now so a broken profile stops the run before any target is touched; it
            // names its own file, line and field.
            crate::target::load_profile(c).map_err(|mut err| {
                err.message = format!("{} (the profile of target {n:?} in {display})", err.message);
                err
            })?;
        }
        for (field, p) in [
            ("expect", resolve(&e.expect)),
            ("cacert", resolve(&e.cacert)),
        ] {
            if let Some(p) = p
                && !p.is_file()
            {
                return Err(at(i, field, format!("{}: no such file", p.display())));
            }
        }
        out.push(Target {
            name: e.name.clone(),
            target: TargetOptions {
                resource: e.resource,
                issuer: e.issuer,
                config,
                reference_faults: e.faults,
                cacert: resolve(&e.cacert),
                name: Some(e.name),
                ..TargetOptions::default()
            },
            expect: resolve(&e.expect),
        });
    }
    Ok(out)
}

/// What `run --targets` does: `run` is the template of every target's run (its target, its
/// expectations and its report files are each target's own).
pub struct TargetsOptions {
    pub file: PathBuf,
    /// Targets run at once.
    pub parallel: usize,
    pub run: RunOptions,
}

/// Every target's report (with its verdict), the index page and the worst exit.
pub struct TargetsFinished {
    pub targets: Vec<MergedTarget>,
    /// Targets whose run could not start or finish (a failed provisioning command, a report
    /// that could not be written): each makes the exit 2.
    pub errors: Vec<(String, Error)>,
    pub index: PathBuf,
    pub exit: Exit,
}

/// Where each event of a target's run goes: with the target's name.
pub type TargetEvents<'a> = &'a (dyn Fn(&str, Event<'_>) + Send + Sync);

/// Loads the file, runs each target (`parallel` at once, until `stop`), writes the index.
pub async fn run_targets(
    opts: TargetsOptions,
    stop: &StopSignal,
    events: TargetEvents<'_>,
) -> Result<TargetsFinished, Error> {
    let targets = load(&opts.file).map_err(Error::new)?;
    if opts.parallel == 0 {
        return Err(Error::new("--parallel-targets must be at least 1"));
    }
    let root = opts
        .run
        .reports
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports"));
    let template = &opts.run;
    let runs = futures_util::stream::iter(targets.into_iter().enumerate())
        .map(|(i, t)| {
            let root = root.clone();
            async move {
                let mut run = template.clone();
                let flags = &template.setup.target;
                run.setup.target = TargetOptions {
                    cacert: t.target.cacert.clone().or(flags.cacert.clone()),
                    max_body: flags.max_body,
                    timeout: flags.timeout,
                    allow_hosts: flags.allow_hosts.clone(),
                    reference_login: flags.reference_login,
                    reference_offer: flags.reference_offer,
                    reference_revision: flags.reference_revision,
                    ..t.target.clone()
                };
                run.expect = t.expect.clone();
                run.write_expect = None;
                run.reports = ReportOptions {
                    dir: Some(root.join(&t.name)),
                    sarif: Some(root.join(&t.name).join("results.sarif")),
                    ..ReportOptions::default()
                };
                let name = t.name.clone();
                let ev = |e: Event<'_>| events(&name, e);
                let finished = super::run(run, stop, &ev).await;
                (i, t.name, finished)
            }
        })
        .buffer_unordered(opts.parallel);
    let mut done: Vec<_> = runs.collect().await;
    done.sort_by_key(|(i, ..)| *i);
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for (_, name, f) in done {
        match f {
            Ok(f) => targets.push(MergedTarget {
                folder: Some(name),
                report: f.report,
            }),
            Err(e) => errors.push((name, e)),
        }
    }
    let entries: Vec<crate::report::index::Entry<'_>> = targets
        .iter()
        .map(|t| crate::report::index::Entry {
            folder: t.folder.as_deref().unwrap_or(""),
            report: &t.report,
        })
        .collect();
    let index =
        crate::report::write_index(&root.join("index.html"), &entries).map_err(Error::new)?;
    let mut exit = worst_exit(targets.iter().map(|t| exit_of(&t.report)));
    if !errors.is_empty() {
        exit = Exit::Usage;
    }
    Ok(TargetsFinished {
        targets,
        errors,
        index,
        exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_in(d: &Path, text: &str) -> Result<Vec<Target>, FileError> {
        let p = d.join("targets.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::write(d.join("exp.toml"), "[verdicts]\n").unwrap();
        load(&p)
    }

    fn load_text(text: &str) -> Result<Vec<Target>, FileError> {
        load_in(tempfile::tempdir().unwrap().path(), text)
    }

    #[test]
    fn a_good_file_resolves_paths_against_itself() {
        let d = tempfile::tempdir().unwrap();
        let t = load_in(
            d.path(),
            "[[target]]\nname = \"ref\"\nreference = true\nfaults = [\"rs-401-no-token\"]\nexpect = \"exp.toml\"\n\n[[target]]\nname = \"live\"\nresource = \"https://mcp.example/mcp\"\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].target.reference_faults, ["rs-401-no-token"]);
        assert!(t[0].expect.as_ref().unwrap().ends_with("exp.toml"));
        assert!(t[0].expect.as_ref().unwrap().is_file());
        assert_eq!(
            t[1].target.resource.as_deref(),
            Some("https://mcp.example/mcp")
        );
        assert_eq!(t[1].target.name.as_deref(), Some("live"));
    }

    #[test]
    fn mistakes_name_the_line_and_field() {
        for (text, line, field, says) in [
            (
                "[[target]]\nname = \"a\"\nreference = true\n\n[[target]]\nname = \"A\"\nreference = true\n",
                6,
                "target[1].name",
                "names two targets",
            ),
            (
                "[[target]]\nname = \"../x\"\nreference = true\n",
                2,
                "target[0].name",
                "report folder",
            ),
            (
                "[[target]]\nname = \"a\"\nreference = true\nresource = \"https://x.example/mcp\"\n",
                3,
                "target[0].reference",
                "a target is one of",
            ),
            (
                "[[target]]\nname = \"a\"\nresource = \"https://x.example/mcp\"\nfaults = [\"rs-401-no-token\"]\n",
                4,
                "target[0].faults",
                "only with `reference = true`",
            ),
            (
                "[[target]]\nname = \"a\"\nreference = true\nfaults = [\"nope\"]\n",
                4,
                "target[0].faults",
                "no fault \"nope\"",
            ),
            (
                "[[target]]\nname = \"a\"\nreference = true\nexpect = \"missing.toml\"\n",
                4,
                "target[0].expect",
                "no such file",
            ),
            (
                "[[target]]\nname = \"a\"\nresource = \"ftp://x\"\n",
                3,
                "target[0].resource",
                "",
            ),
            (
                "[[target]]\nname = \"a\"\nurl = \"x\"\n",
                3,
                "url",
                "unknown field",
            ),
            ("", 1, "target", "no [[target]] entries"),
        ] {
            let e = load_text(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }
}
