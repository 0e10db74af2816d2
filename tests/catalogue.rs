//! The requirement ids a case may use are shipped in `schemas/requirements.json`, so an installed
//! binary needs no checkout. This keeps that list equal to the catalogue in
//! `../shared/requirements.md` whenever the catalogue is beside the repository (CI, developers).

use std::collections::BTreeSet;

#[test]
fn shipped_ids_match_the_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/requirements.md");
    let Ok(md) = std::fs::read_to_string(path) else {
        // Outside the project workspace (a packaged crate) there is nothing to compare with.
        eprintln!("note: {path} not found; catalogue comparison not run");
        return;
    };
    let from_md: BTreeSet<String> = md
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .filter(|id| {
            !id.is_empty()
                && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && id.contains('-')
        })
        .map(str::to_string)
        .collect();
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/requirements.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let shipped: BTreeSet<String> = shipped["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shipped.len(), 327);
    let missing: Vec<_> = from_md.difference(&shipped).collect();
    let extra: Vec<_> = shipped.difference(&from_md).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
}

#[test]
fn every_case_id_is_a_catalogue_requirement() {
    let cases = authconform::case::load_builtin(authconform::checks::NAMES)
        .unwrap_or_else(|e| panic!("{e}"));
    for c in &cases {
        assert!(authconform::case::is_requirement_id(c.id()), "{}", c.id());
    }
}

/// Every level cites its sentence (issue 15): each shipped case quotes the normative text it
/// enforces, with the section it comes from, so a report can show why the level is what it is.
#[test]
fn every_case_quotes_its_sentence() {
    let cases = authconform::case::load_builtin(authconform::checks::NAMES)
        .unwrap_or_else(|e| panic!("{e}"));
    let missing: Vec<&str> = cases
        .iter()
        .filter(|c| {
            c.file
                .quote
                .as_ref()
                .is_none_or(|q| q.text.trim().is_empty() || q.source.trim().is_empty())
        })
        .map(|c| c.id())
        .collect();
    assert!(missing.is_empty(), "no quote: {missing:?}");
}
