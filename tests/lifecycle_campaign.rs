//! `authconform fuzz --lifecycle` against the reference: the compliant reference gives no
//! finding; each lifecycle fault (which no case and no single-request campaign catches, see
//! tests/lifecycle_faults.rs) is found within the default budget, shrunk to a short sequence
//! that breaks the invariant on its own, and `--replay` confirms it (and finds nothing against
//! the compliant reference).

mod common;

use common::{bin, results, text};

use std::sync::Mutex;

use serde_json::Value;

/// Campaigns are timed by the budget, and the machine is small: one at a time.
static CAMPAIGNS: Mutex<()> = Mutex::new(());

fn campaign(args: &[&str], dir: &std::path::Path) -> (Option<i32>, Value, String) {
    let _one = CAMPAIGNS.lock().unwrap_or_else(|e| e.into_inner());
    let o = bin()
        .args(["fuzz", "--lifecycle", "--report-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), results(dir), text(&o))
}

fn findings(r: &Value) -> Vec<Value> {
    r["fuzz"]["lifecycle"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_compliant_reference_breaks_no_invariant_and_the_record_says_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let (code, r, out) = campaign(&["--seed", "11", "--seconds", "20"], dir.path());
    assert_eq!(code, Some(0), "{out}");
    let l = &r["fuzz"]["lifecycle"];
    assert!(findings(&r).is_empty(), "{out}");
    assert!(l["sequences"].as_u64().unwrap() > 10, "{l}");
    assert!(l["transitions"].as_u64().unwrap() > l["sequences"].as_u64().unwrap());
    assert!(l["transitions_per_sec"].as_f64().unwrap() > 0.0);
    let share = l["login_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{share}");
    assert!(l["logins"].as_u64().unwrap() > 0);
    // One result per invariant, each named `<requirement>.lifecycle`; most are exercised.
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 18, "{out}");
    let passed = res.iter().filter(|x| x["status"] == "passed").count();
    assert!(passed >= 10, "only {passed} invariants checked:\n{out}");
    assert!(res.iter().all(|x| x["status"] != "failed"));
    assert!(
        out.contains("lifecycle:") && out.contains("operations"),
        "{out}"
    );
}

/// The fault is found in the default budget (60 s), shrunk to at most `max_len` steps that
/// break one of `invariants` on their own, and the replay confirms it against the faulty
/// reference and not against the compliant one.
fn found(fault: &str, invariants: &[&str], max_len: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (code, r, out) = campaign(&["--seed", "5", "--reference-fault", fault], dir.path());
    assert_eq!(code, Some(1), "{fault}: {out}");
    let all = findings(&r);
    let f = all
        .iter()
        .find(|f| invariants.contains(&f["invariant"].as_str().unwrap_or_default()))
        .unwrap_or_else(|| panic!("{fault}: none of {invariants:?} found:\n{out}"));
    assert_eq!(f["reproduced"], true, "{f}");
    let len = f["shrunk_steps"].as_u64().unwrap();
    assert!(len <= max_len, "{fault}: shrunk to {len} steps: {f}");
    assert!(len <= f["original_steps"].as_u64().unwrap());
    assert_eq!(f["steps"].as_array().unwrap().len() as u64, len);
    // Its result is failed, with the steps and their exchanges as evidence.
    let id = f["result_id"].as_str().unwrap();
    let res = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap();
    assert_eq!(res["status"], "failed");
    assert!(!res["exchanges"].as_array().unwrap().is_empty());
    assert!(
        res["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("step 1: authorize"))
    );
    eprintln!(
        "{fault}: {id} shrunk from {} to {len} steps",
        f["original_steps"]
    );

    // Replayed against the faulty reference: reproduced, exit 1.
    let replay_dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let (code, rr, out) = campaign(
        &[
            "--replay",
            json.to_str().unwrap(),
            "--reference-fault",
            fault,
        ],
        replay_dir.path(),
    );
    assert_eq!(code, Some(1), "replay of {fault}: {out}");
    let again = rr["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap();
    assert_eq!(again["status"], "failed", "{again}");
    assert!(again["message"].as_str().unwrap().starts_with("reproduced"));
    // Against the compliant reference the same sequence breaks nothing.
    let clean_dir = tempfile::tempdir().unwrap();
    let (code, rc, out) = campaign(&["--replay", json.to_str().unwrap()], clean_dir.path());
    assert_eq!(code, Some(0), "replay of {fault} without it: {out}");
    let clean = rc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap();
    assert_eq!(clean["status"], "passed", "{clean}");
}

#[test]
fn a_code_replayed_after_a_refresh_is_found() {
    found("lifecycle.code-replay-after-refresh", &["code-once"], 8);
}

#[test]
fn a_later_generation_refresh_token_that_survives_revocation_is_found() {
    found(
        "lifecycle.rt-revocation-later-generation",
        &[
            "revoked-refresh",
            "wrong-hint-revocation",
            "refresh-revocation-cascade",
        ],
        10,
    );
}

#[test]
fn a_revoked_later_generation_access_token_accepted_by_the_mcp_endpoint_is_found() {
    found(
        "lifecycle.rs-revocation-later-generation",
        &[
            "resource-revocation",
            "refresh-revocation-cascade",
            "code-replay-revokes",
            "reuse-revokes-family",
        ],
        12,
    );
}

#[test]
fn a_grant_regrowing_its_scope_is_found() {
    found("lifecycle.refresh-scope-regrowth", &["scope-ceiling"], 8);
}

#[test]
fn a_later_generation_refresh_race_is_found() {
    found(
        "lifecycle.refresh-race-later-generation",
        &["refresh-concurrent", "rotated-refresh"],
        8,
    );
}
