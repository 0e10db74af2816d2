//! A bad field in a case file is reported at its file, line, column and field, for every step
//! kind: one case per kind, valid but for one field (a wrong type or an unknown key), each checked
//! against where that field stands in the text.

use std::path::Path;

const HEAD: &str = r#"id = "prm-200-json"
title = "t"
area = "prm"
role = "rs"
level = "MUST"
refs = ["RFC 9728 §3.2"]
specs = ["2025-11-25"]
no_fault = "test"

[[steps]]
"#;

/// One step per kind, with the bad line last (so its line number is known) and the field name
/// the error must carry.
const KINDS: &[(&str, &str, &str)] = &[
    (
        "mcp_request",
        "authorization_size = \"big\"",
        "authorization_size",
    ),
    ("http", "url = 7", "url"),
    ("discover_prm", "vai = \"auto\"", "vai"),
    ("discover_as", "cached = \"yes\"", "cached"),
    ("client", "kind = \"secret\"", "kind"),
    ("authorize", "max_secs = -1", "max_secs"),
    ("document", "delay_ms = \"slow\"", "delay_ms"),
    ("fetches", "min = \"one\"", "min"),
    ("wait", "secs = \"ten\"", "secs"),
    ("token", "parallel = true", "parallel"),
    ("expect", "on = 3", "on"),
    ("check", "name = 42", "name"),
];

#[test]
fn one_bad_field_per_step_kind_is_located() {
    for (kind, bad, field) in KINDS {
        let text = format!("{HEAD}do = \"{kind}\"\n{bad}\n");
        let line = text.lines().count();
        let rel = Path::new("prm/prm-200-json.toml");
        let errs = match authconform::case::parse_case(
            "prm-200-json.toml",
            rel,
            &text,
            authconform::checks::NAMES,
        ) {
            Ok(_) => panic!("{kind}: `{bad}` was accepted"),
            Err(e) => e,
        };
        let e = errs
            .iter()
            .find(|e| e.field.as_deref().is_some_and(|f| f.ends_with(field)))
            .unwrap_or_else(|| panic!("{kind}: no error names the field {field}: {errs:?}"));
        assert_eq!(e.file, "prm-200-json.toml", "{kind}");
        assert_eq!((e.line, e.column), (line, 1), "{kind}: {e}");
        assert!(
            e.field.as_deref() == Some(&format!("steps[0].{field}")),
            "{kind}: field {:?}",
            e.field
        );
    }
}
