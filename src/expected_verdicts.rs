//! Expected verdicts (`--expect FILE`): how CI gates a server with known, accepted failures.
//! The file maps case ids to statuses; a run passes only when every verdict matches, and any
//! case the file does not mention is a mismatch too (unless it was skipped: a skip judges
//! nothing about the server), so a new verdict or a changed one on a real server is always a
//! reviewed diff (`--write-expect` writes the file from a run).
//!
//! An entry is a status (`"id" = "failed"`) or a table that also says why the verdict is
//! accepted and until when (`"id" = { status = "failed", reason = "...", until = 2027-01-31 }`).
//! An accepted failure should not stay accepted forever: past its `until` date (compared with
//! today's UTC date) the entry no longer excuses anything. The case then gates as if the file
//! did not name it, except that a case that now passes (or is skipped) is not a difference: the
//! entry is only reported as expired, for someone to remove or renew.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, IntoDeserializer};
use time::Date;

use crate::case::{FileError, read_text, toml_error};
use crate::record::{CaseResult, Status};

/// `YYYY-MM-DD`.
const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// The environment variable that replaces today's date (`YYYY-MM-DD`), for tests of expiry.
pub const TODAY_VAR: &str = "AUTHCONFORM_TODAY";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    verdicts: BTreeMap<String, RawEntry>,
}

/// An entry as written: a bare status, or a table.
#[derive(Debug)]
struct RawEntry {
    status: Status,
    reason: Option<String>,
    /// A TOML date (`until = 2027-01-31`) or a string; checked after parsing so that a bad
    /// one can be named with its line.
    until: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEntry {
    status: Status,
    reason: Option<String>,
    until: Option<toml::Value>,
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RawEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a status (\"passed\", \"failed\", \"skipped\" or \"errored\") or a table \
                     { status = \"...\", reason = \"...\", until = YYYY-MM-DD }",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawEntry, E> {
                let status = Status::deserialize(s.into_deserializer())?;
                Ok(RawEntry {
                    status,
                    reason: None,
                    until: None,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<RawEntry, A::Error> {
                let t = TableEntry::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(RawEntry {
                    status: t.status,
                    reason: t.reason,
                    until: t.until,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One expected verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub status: Status,
    /// Why this verdict is accepted.
    pub reason: Option<String>,
    /// The last day the entry holds.
    pub until: Option<Date>,
}

impl Entry {
    /// Is the entry past its date on `today`? (It holds through its `until` day.)
    pub fn expired(&self, today: Date) -> bool {
        self.until.is_some_and(|u| u < today)
    }
}

#[derive(Debug, Clone)]
pub struct Expectations {
    pub path: String,
    pub verdicts: BTreeMap<String, Entry>,
    /// The date entries expire against: today (UTC), or `AUTHCONFORM_TODAY`.
    pub today: Date,
}

/// Today's UTC date, or the one `AUTHCONFORM_TODAY` gives (for tests).
pub fn today() -> Result<Date, String> {
    match std::env::var(TODAY_VAR) {
        Ok(v) => Date::parse(v.trim(), DATE)
            .map_err(|e| format!("{TODAY_VAR}={v:?} is not a date (YYYY-MM-DD): {e}")),
        Err(_) => Ok(time::OffsetDateTime::now_utc().date()),
    }
}

/// A date as the file writes it.
pub fn format_date(d: Date) -> String {
    d.format(DATE).unwrap_or_default()
}

/// Loads the file; entries expire against [`today`].
pub fn load(path: &Path) -> Result<Expectations, FileError> {
    let today = today().map_err(|message| FileError {
        file: TODAY_VAR.into(),
        line: 1,
        column: 1,
        field: None,
        message,
    })?;
    load_at(path, today)
}

/// Loads the file; entries expire against `today`.
pub fn load_at(path: &Path, today: Date) -> Result<Expectations, FileError> {
    let (display, text) = read_text(path)?;
    let f: File = toml::from_str(&text).map_err(|e| toml_error(&display, &text, &e))?;
    let located = |keys: &[&str], message: String| {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        FileError::at(&display, &text, &[&keys], keys.join("."), message)
    };
    let mut verdicts = BTreeMap::new();
    for (id, raw) in f.verdicts {
        if !crate::case::is_requirement_id(&id) {
            return Err(located(
                &["verdicts", &id],
                format!("{id:?} is not a requirement id of the catalogue"),
            ));
        }
        let until = match &raw.until {
            None => None,
            Some(v) => Some(parse_until(v).map_err(|m| located(&["verdicts", &id, "until"], m))?),
        };
        verdicts.insert(
            id,
            Entry {
                status: raw.status,
                reason: raw.reason,
                until,
            },
        );
    }
    Ok(Expectations {
        path: display,
        verdicts,
        today,
    })
}

/// `until`: a TOML local date (`2027-01-31`) or the same as a string.
fn parse_until(v: &toml::Value) -> Result<Date, String> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
        other => {
            return Err(format!(
                "{other} is not a date: `until` is a day, YYYY-MM-DD (e.g. 2027-01-31)"
            ));
        }
    };
    Date::parse(text.trim(), DATE).map_err(|e| {
        format!("{text:?} is not a date: `until` is a day, YYYY-MM-DD (e.g. 2027-01-31): {e}")
    })
}

/// An entry past its date, and the verdict the case got.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired {
    pub id: String,
    pub entry: Entry,
    pub observed: Status,
}

impl Expired {
    /// With its excuse gone, does the case's own verdict gate? A failure or an errored case
    /// does; a pass or a skip does not.
    pub fn gates(&self) -> bool {
        matches!(self.observed, Status::Failed | Status::Errored)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Comparison {
    /// (id, expected, observed)
    pub mismatches: Vec<(String, Status, Status)>,
    /// Cases that ran but are not in the file.
    pub unlisted: Vec<(String, Status)>,
    /// Entries naming no case that exists any more.
    pub stale: Vec<String>,
    /// Entries past their date, for cases that ran.
    pub expired: Vec<Expired>,
    pub matched: usize,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.differences().next().is_none()
    }

    /// The verdicts that make the gate fail: changed, unlisted, and those an expired entry no
    /// longer excuses.
    pub fn differences(&self) -> impl Iterator<Item = (&str, Status)> {
        (self.mismatches.iter().map(|m| (m.0.as_str(), m.2)))
            .chain(self.unlisted.iter().map(|u| (u.0.as_str(), u.1)))
            .chain(
                (self.expired.iter())
                    .filter(|e| e.gates())
                    .map(|e| (e.id.as_str(), e.observed)),
            )
    }
}

/// Compares a run with the file. `known_ids` are all loaded cases (selected or not): an entry
/// for a case that was merely filtered out by `--only` is not stale.
pub fn compare(exp: &Expectations, results: &[CaseResult], known_ids: &[String]) -> Comparison {
    let mut c = Comparison::default();
    for r in results {
        match exp.verdicts.get(&r.id) {
            Some(e) if e.expired(exp.today) => c.expired.push(Expired {
                id: r.id.clone(),
                entry: e.clone(),
                observed: r.status,
            }),
            Some(e) if e.status == r.status => c.matched += 1,
            Some(e) => c.mismatches.push((r.id.clone(), e.status, r.status)),
            // A case the file does not name that was skipped judged nothing about the server
            // (a mechanism it does not offer, a setup it lacks): no entry is needed for it.
            None if r.status == Status::Skipped => {}
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

/// Renders an expectations file from a run (`--write-expect`). `previous` is the file being
/// replaced, when there was one: an entry whose verdict stays the same keeps its `reason` and
/// `until`; one whose verdict changed is a new decision, written plain, with the old reason as
/// a comment for whoever reviews the diff.
pub fn render(results: &[CaseResult], header: &str, previous: Option<&Expectations>) -> String {
    let mut s = String::new();
    for line in header.lines() {
        s.push_str(&format!("# {line}\n"));
    }
    s.push_str("\n[verdicts]\n");
    for r in results {
        let kept = previous.and_then(|p| p.verdicts.get(&r.id));
        let note = match kept {
            Some(e) if e.status != r.status && e.reason.is_some() => format!(
                "  # was {}: {}",
                e.status.as_str(),
                comment(e.reason.as_deref().unwrap_or(""))
            ),
            _ if r.status == Status::Passed => String::new(),
            _ => format!("  # {}", comment(&r.message)),
        };
        let value = match kept {
            Some(e) if e.status == r.status && (e.reason.is_some() || e.until.is_some()) => {
                let mut t = format!("{{ status = \"{}\"", r.status.as_str());
                if let Some(reason) = &e.reason {
                    t.push_str(&format!(", reason = {}", toml_string(reason)));
                }
                if let Some(u) = e.until {
                    t.push_str(&format!(", until = {}", format_date(u)));
                }
                t.push_str(" }");
                t
            }
            _ => format!("\"{}\"", r.status.as_str()),
        };
        s.push_str(&format!("\"{}\" = {value}{note}\n", r.id));
    }
    s
}

/// A TOML basic string: one line whatever the text holds.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a one-line TOML comment: no control characters, cut.
fn comment(m: &str) -> String {
    m.chars().filter(|c| !c.is_control()).take(110).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    fn result(id: &str, status: Status) -> CaseResult {
        CaseResult {
            id: id.into(),
            area: "as_metadata".into(),
            level: Level::Must,
            role: "AS".into(),
            title: String::new(),
            refs: Vec::new(),
            status,
            warning: false,
            message: "why".into(),
            details: Vec::new(),
            spec: "2025-11-25".into(),
            duration_ms: 0,
            exchanges: Vec::new(),
            incident: None,
            blocked_by: None,
            quote: None,
            test_users: Vec::new(),
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("expected.toml");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    fn day(s: &str) -> Date {
        Date::parse(s, DATE).unwrap()
    }

    const FILE: &str = r#"[verdicts]
"asm-issuer-match" = "failed"
"asm-available" = { status = "failed", reason = "the AS publishes no metadata yet", until = 2026-03-31 }
"asm-pkce-advertised" = { status = "errored", until = "2026-01-15" }
"#;

    #[test]
    fn both_forms_load() {
        let (_d, p) = write(FILE);
        let e = load_at(&p, day("2026-01-01")).unwrap();
        assert_eq!(e.verdicts["asm-issuer-match"].status, Status::Failed);
        assert_eq!(e.verdicts["asm-issuer-match"].until, None);
        let a = &e.verdicts["asm-available"];
        assert_eq!(
            a.reason.as_deref(),
            Some("the AS publishes no metadata yet")
        );
        assert_eq!(a.until, Some(day("2026-03-31")));
        assert_eq!(
            e.verdicts["asm-pkce-advertised"].until,
            Some(day("2026-01-15"))
        );
    }

    #[test]
    fn an_entry_holds_through_its_day() {
        let e = Entry {
            status: Status::Failed,
            reason: None,
            until: Some(day("2026-03-31")),
        };
        assert!(!e.expired(day("2026-03-31")));
        assert!(e.expired(day("2026-04-01")));
    }

    #[test]
    fn a_bad_date_names_the_line_and_field() {
        let (_d, p) = write(
            "[verdicts]\n\"asm-issuer-match\" = \"failed\"\n\"asm-available\" = { status = \"failed\", until = \"31/03/2026\" }\n",
        );
        let err = load_at(&p, day("2026-01-01")).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert_eq!(err.field.as_deref(), Some("verdicts.asm-available.until"));
        assert!(
            err.message.contains("\"31/03/2026\" is not a date"),
            "{err}"
        );
        assert!(err.to_string().starts_with(&p.display().to_string()));
        // An unknown key in a table entry is refused, located.
        let (_d, p) =
            write("[verdicts]\n\"asm-available\" = { status = \"failed\", untill = 2026-01-01 }\n");
        let err = load_at(&p, day("2026-01-01")).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("untill"), "{err}");
        // So is a bad status, in either form.
        let (_d, p) = write("[verdicts]\n\"asm-available\" = \"faled\"\n");
        let err = load_at(&p, day("2026-01-01")).unwrap_err();
        assert!(err.message.contains("faled"), "{err}");
    }

    #[test]
    fn expired_entries_gate_only_bad_verdicts() {
        let (_d, p) = write(FILE);
        let e = load_at(&p, day("2026-04-01")).unwrap();
        let results = [
            result("asm-issuer-match", Status::Failed),
            result("asm-available", Status::Failed),
            result("asm-pkce-advertised", Status::Passed),
        ];
        let known: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let c = compare(&e, &results, &known);
        assert_eq!(c.matched, 1);
        assert_eq!(c.expired.len(), 2);
        let diffs: Vec<_> = c.differences().collect();
        assert_eq!(diffs, [("asm-available", Status::Failed)]);
        assert!(!c.ok());
        // Before the dates, the same run matches.
        let e = load_at(&p, day("2026-01-15")).unwrap();
        let results = [
            result("asm-issuer-match", Status::Failed),
            result("asm-available", Status::Failed),
            result("asm-pkce-advertised", Status::Errored),
        ];
        let c = compare(&e, &results, &known);
        assert!(c.ok() && c.expired.is_empty() && c.matched == 3, "{c:?}");
    }

    #[test]
    fn an_unlisted_skip_is_no_difference() {
        let (_d, p) = write(FILE);
        let e = load_at(&p, day("2026-01-15")).unwrap();
        let results = [
            result("asm-issuer-match", Status::Failed),
            result("par-201", Status::Skipped),
            result("par-expiry", Status::Passed),
        ];
        let known: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let c = compare(&e, &results, &known);
        assert_eq!(c.unlisted, [("par-expiry".to_string(), Status::Passed)]);
        assert_eq!(c.matched, 1);
    }

    #[test]
    fn rewriting_keeps_reasons_of_unchanged_verdicts() {
        let (_d, p) = write(FILE);
        let prev = load_at(&p, day("2026-01-01")).unwrap();
        let results = [
            result("asm-issuer-match", Status::Failed),
            result("asm-available", Status::Failed),
            result("asm-pkce-advertised", Status::Passed),
        ];
        let text = render(&results, "header", Some(&prev));
        assert!(
            text.contains("\"asm-available\" = { status = \"failed\", reason = \"the AS publishes no metadata yet\", until = 2026-03-31 }"),
            "{text}"
        );
        assert!(
            text.contains("\"asm-issuer-match\" = \"failed\"  # why"),
            "{text}"
        );
        assert!(
            text.contains("\"asm-pkce-advertised\" = \"passed\"\n"),
            "{text}"
        );
        // The written file loads again, with the same entries.
        let (_d2, p2) = write(&text);
        let again = load_at(&p2, day("2026-01-01")).unwrap();
        assert_eq!(
            again.verdicts["asm-available"],
            prev.verdicts["asm-available"]
        );
        // A reason with quotes and newlines survives as a TOML string.
        let mut odd = prev.clone();
        odd.verdicts.get_mut("asm-available").unwrap().reason =
            Some("say \"no\"\nand \\ go".into());
        let text = render(&results, "header", Some(&odd));
        let (_d3, p3) = write(&text);
        let again = load_at(&p3, day("2026-01-01")).unwrap();
        assert_eq!(
            again.verdicts["asm-available"].reason.as_deref(),
            Some("say \"no\"\nand \\ go")
        );
    }
}
