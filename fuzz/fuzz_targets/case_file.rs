//! The case-file loader (`case::parse_case`): TOML parsing with located errors, the JSON-schema
//! validation of the case format, and the semantic rules (catalogue ids, file name and
//! directory, faults, check names, listeners, schemas, levels).
//!
//! Input: the file's text (the loader reads UTF-8; other bytes are skipped). The file is
//! presented as `<area>/<id>.toml` when the text names a string `area` and `id`, so valid cases
//! load, and as `x/y.toml` otherwise.
//!
//! Properties, besides nothing panicking:
//! - the loader returns a case or at least one error, never an empty error list;
//! - every error names the file, and a line and column inside the text (1-based; the line at
//!   most one past the last newline, the column at most one past that line's length);
//! - a loaded case has the id and area of its path, and the path as given.
//!
//! The known check names are those the shipped cases use (the full list lives with the checks,
//! in the main crate, which this target does not build): every seed loads, and a name outside
//! them exercises the unknown-check error.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use authconform_core::case::{Step, builtin_files, model::CaseFile, parse_case};
use libfuzzer_sys::fuzz_target;

const DISPLAY: &str = "cases/fuzz.toml";

fn known_checks() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = builtin_files()
            .filter_map(|(_, text)| toml::from_str::<CaseFile>(text).ok())
            .flat_map(|c| c.steps)
            .filter_map(|s| match s {
                Step::Check(c) => Some(&*c.name.leak()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(!names.is_empty(), "the shipped cases name no check");
        names
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let named = |k: &str| -> Option<String> {
        let t: toml::Table = toml::from_str(text).ok()?;
        let v = t.get(k)?.as_str()?;
        // A path segment, not a path: the loader is given `<dir>/<stem>.toml`.
        (!v.is_empty() && !v.contains(['/', '\\', '\0']) && v != "." && v != "..")
            .then(|| v.to_string())
    };
    let (area, id) = match (named("area"), named("id")) {
        (Some(a), Some(i)) => (a, i),
        _ => ("x".to_string(), "y".to_string()),
    };
    let rel = PathBuf::from(&area).join(format!("{id}.toml"));
    match parse_case(DISPLAY, &rel, text, known_checks()) {
        Ok(case) => {
            assert_eq!(case.id(), id);
            assert_eq!(case.file.area, area);
            assert_eq!(case.path, DISPLAY);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result with no error");
            let lines: Vec<&str> = text.split('\n').collect();
            for e in &errors {
                assert_eq!(e.file, DISPLAY);
                assert!(
                    e.line >= 1 && e.line <= lines.len(),
                    "{e} (of {} lines)",
                    lines.len()
                );
                let len = lines[e.line - 1].chars().count();
                assert!(
                    e.column >= 1 && e.column <= len + 1,
                    "{e} (line has {len} chars)"
                );
                assert!(!e.message.is_empty(), "{e:?}");
            }
        }
    }
});
