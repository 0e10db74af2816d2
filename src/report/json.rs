//! The machine-readable results file. Its shape is the contract in `schemas/results.schema.json`;
//! strings keep exactly the recorded evidence. Characters a terminal would act on but JSON does
//! not have to escape (DEL, C1 controls, bidi overrides) are written as `\uXXXX` escapes, so
//! `cat results.json` is inert while a JSON parser reads back the same strings.

use crate::record::RunReport;

pub fn to_string(report: &RunReport) -> String {
    let mut s = serde_json::to_string_pretty(report)
        // The records are plain structs of strings, numbers and enums: serialization has no
        // failure path (no maps with non-string keys, no custom serializers).
        .expect("RunReport serializes to JSON");
    s.push('\n');
    escape_terminal_active(&s)
}

/// In serialized JSON such characters can only occur inside strings (everything outside is
/// ASCII), so escaping them in the text is the same as escaping them in every string.
pub(crate) fn escape_terminal_active(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let cp = c as u32;
        if (0x7f..=0x9f).contains(&cp)
            || (0x202a..=0x202e).contains(&cp)
            || (0x2066..=0x2069).contains(&cp)
        {
            out.push_str(&format!("\\u{cp:04x}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testutil::hostile_report;
    use serde_json::Value;

    #[test]
    fn terminal_active_characters_are_escaped_but_round_trip() {
        let report = hostile_report();
        let text = to_string(&report);
        assert!(
            !text
                .chars()
                .any(|c| ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{202e}')
        );
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    fn validator() -> jsonschema::Validator {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/results.schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::draft202012::new(&schema).expect("schema compiles")
    }

    fn assert_valid(v: &jsonschema::Validator, instance: &Value) {
        let errors: Vec<String> = v
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "schema violations: {errors:#?}");
    }

    #[test]
    fn output_validates_against_schema_and_round_trips() {
        let v = validator();
        let report = hostile_report();
        let text = to_string(&report);
        let instance: Value = serde_json::from_str(&text).unwrap();
        assert_valid(&v, &instance);
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn minimal_report_validates() {
        let mut report = hostile_report();
        report.interrupted = false;
        report.target = Default::default();
        report.target.kind = "reference".into();
        report.results.truncate(0);
        report.summary = RunReport::summarize(&report.results);
        assert_valid(
            &validator(),
            &serde_json::from_str(&to_string(&report)).unwrap(),
        );
    }

    #[test]
    fn schema_rejects_what_serde_never_writes() {
        let v = validator();
        let good: Value = serde_json::from_str(&to_string(&hostile_report())).unwrap();
        type Mutation = Box<dyn Fn(&mut Value)>;
        let mutations: Vec<(&str, Mutation)> = vec![
            ("extra top-level field", Box::new(|v| v["extra"] = 1.into())),
            (
                "bad status",
                Box::new(|v| v["results"][0]["status"] = "pass".into()),
            ),
            (
                "bad level",
                Box::new(|v| v["results"][0]["level"] = "must".into()),
            ),
            (
                "header not a pair",
                Box::new(|v| {
                    v["results"][0]["exchanges"][0]["request_headers"][0] = serde_json::json!(["a"])
                }),
            ),
            (
                "missing message",
                Box::new(|v| {
                    v["results"][0].as_object_mut().unwrap().remove("message");
                }),
            ),
            (
                "extra exchange field",
                Box::new(|v| v["results"][0]["exchanges"][0]["x"] = 1.into()),
            ),
            (
                "negative duration",
                Box::new(|v| v["duration_ms"] = (-1).into()),
            ),
        ];
        for (what, mutate) in mutations {
            let mut bad = good.clone();
            mutate(&mut bad);
            assert!(!v.is_valid(&bad), "schema accepted: {what}");
        }
    }
}
