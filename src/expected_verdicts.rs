//! Expected verdicts (`--expect FILE`): how CI gates a server with known, accepted failures.
//! The file maps case ids to statuses; a run passes only when every verdict matches, and any
//! case the file does not mention is a mismatch too, so a new case or a changed verdict on a
//! real server is always a reviewed diff (`--write-expect` writes the file from a run).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::case::{FileError, line_col, read_text, span_of, toml_error};
use crate::record::{CaseResult, Status};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    verdicts: BTreeMap<String, Status>,
}

#[derive(Debug, Clone)]
pub struct Expectations {
    pub path: String,
    pub verdicts: BTreeMap<String, Status>,
}

pub fn load(path: &Path) -> Result<Expectations, FileError> {
    let (display, text) = read_text(path)?;
    let f: File = toml::from_str(&text).map_err(|e| toml_error(&display, &text, &e))?;
    for id in f.verdicts.keys() {
        if !crate::case::is_requirement_id(id) {
            let (line, column) = span_of(&text, &["verdicts".into(), id.clone()])
                .map(|s| line_col(&text, s.start))
                .unwrap_or((1, 1));
            return Err(FileError {
                file: display,
                line,
                column,
                field: Some(format!("verdicts.{id}")),
                message: format!("{id:?} is not a requirement id of the catalogue"),
            });
        }
    }
    Ok(Expectations {
        path: display,
        verdicts: f.verdicts,
    })
}

#[derive(Debug, Default, Clone)]
pub struct Comparison {
    /// (id, expected, observed)
    pub mismatches: Vec<(String, Status, Status)>,
    /// Cases that ran but are not in the file.
    pub unlisted: Vec<(String, Status)>,
    /// Entries naming no case that exists any more.
    pub stale: Vec<String>,
    pub matched: usize,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty() && self.unlisted.is_empty()
    }
}

/// Compares a run with the file. `known_ids` are all loaded cases (selected or not): an entry
/// for a case that was merely filtered out by `--only` is not stale.
pub fn compare(exp: &Expectations, results: &[CaseResult], known_ids: &[String]) -> Comparison {
    let mut c = Comparison::default();
    for r in results {
        match exp.verdicts.get(&r.id) {
            Some(s) if *s == r.status => c.matched += 1,
            Some(s) => c.mismatches.push((r.id.clone(), *s, r.status)),
            None => c.unlisted.push((r.id.clone(), r.status)),
        }
    }
    for id in exp.verdicts.keys() {
        if !known_ids.iter().any(|k| k == id) {
            c.stale.push(id.clone());
        }
    }
    c
}

/// Renders an expectations file from a run (`--write-expect`).
pub fn render(results: &[CaseResult], header: &str) -> String {
    let mut s = String::new();
    for line in header.lines() {
        s.push_str(&format!("# {line}\n"));
    }
    s.push_str("\n[verdicts]\n");
    for r in results {
        let note = if r.status == Status::Passed {
            String::new()
        } else {
            let m: String = r
                .message
                .chars()
                .filter(|c| !c.is_control())
                .take(110)
                .collect();
            format!("  # {m}")
        };
        s.push_str(&format!("\"{}\" = \"{}\"{note}\n", r.id, r.status.as_str()));
    }
    s
}
