//! One requirement per verdict: a reference fault that breaks one requirement fails that
//! requirement's case and nothing else, across the whole suite. A deviation every refusal case
//! provokes (the shape of an error answer) is judged once, by the case that owns it; the other
//! cases pass on the refusal itself and say so.

use std::process::Command;

/// The whole suite against the reference with `fault`: (failed, errored) case ids, sorted.
fn verdicts_with(fault: &str) -> (Vec<String>, Vec<String>, serde_json::Value) {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_authconform"))
        .env("NO_COLOR", "1")
        .args(["run", "--reference-fault", fault, "--report-dir"])
        .arg(out.path())
        .output()
        .expect("spawn authconform");
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    let ids = |status: &str| {
        let mut ids: Vec<String> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == status && r["warning"] != true)
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    (ids("failed"), ids("errored"), v)
}

#[test]
fn invalid_grant_with_401_fails_the_error_format_case_and_nothing_else() {
    let (failed, errored, v) = verdicts_with("tok-error-format.status");
    // The 400 itself is tok-error-format.status's requirement (tok-error-format judges the
    // body of any 4xx error answer): that case fails, and only it.
    assert_eq!(failed, ["tok-error-format.status"], "failed: {failed:?}");
    assert!(errored.is_empty(), "errored: {errored:?}");
    // The refusal cases passed on the refusal and named the case that judges its shape.
    let single_use = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "code-single-use")
        .expect("code-single-use ran");
    assert_eq!(single_use["status"], "passed");
    let details = single_use["details"].to_string();
    assert!(
        details.contains("refused, but with status 401") && details.contains("tok-error-format"),
        "{details}"
    );
}

/// The client-authentication cross-checks compare the metadata with what works, each way: the
/// fault named after one fails it and leaves the other passing. Returns the errored cases.
fn only_its_cross_check_fails(fault: &str, other: &str) -> Vec<String> {
    let (failed, errored, _) = verdicts_with(fault);
    assert!(failed.iter().any(|f| f == fault), "failed: {failed:?}");
    assert!(!failed.iter().any(|f| f == other), "failed: {failed:?}");
    errored
}

#[test]
fn a_listed_method_refused_fails_only_the_advertised_cross_check() {
    let errored =
        only_its_cross_check_fails("asm-auth-methods.advertised", "asm-auth-methods.accepted");
    assert!(errored.is_empty(), "errored: {errored:?}");
}

#[test]
fn an_accepted_method_not_listed_fails_the_accepted_cross_check() {
    only_its_cross_check_fails("asm-auth-methods.accepted", "asm-auth-methods.advertised");
}

/// A server that answers 503 while another request is in flight: its overload lands on no
/// requirement. At concurrency 4 the affected cases are re-run alone, take the verdict they get
/// alone (the same as a run at concurrency 1), and the run reports the instability once.
#[test]
fn a_fragile_server_gets_the_same_verdicts_at_any_concurrency() {
    let run = |concurrency: &str| {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_authconform"))
            .env("NO_COLOR", "1")
            .env("AUTHCONFORM_REFERENCE_FRAGILE", "1")
            .args(["run", "--only", "pkce", "--concurrency", concurrency])
            .arg("--report-dir")
            .arg(out.path())
            .output()
            .expect("spawn authconform");
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("results.json")).unwrap(),
        )
        .unwrap();
        (o.status.code(), v)
    };
    let verdicts = |v: &serde_json::Value| {
        let mut all: Vec<(String, String)> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let status = r["status"].as_str().unwrap().to_string();
                (r["id"].as_str().unwrap().to_string(), status)
            })
            .collect();
        all.sort();
        all
    };
    let (code1, alone) = run("1");
    let (code4, parallel) = run("4");
    assert_eq!(code1, Some(0), "{alone}");
    assert_eq!(code4, Some(0), "{}", parallel["summary"]);
    assert_eq!(verdicts(&alone), verdicts(&parallel));
    assert!(alone.get("unstable").is_none());
    let unstable = parallel["unstable"]["cases"]
        .as_array()
        .expect("instability reported");
    assert!(!unstable.is_empty());
    assert_eq!(parallel["unstable"]["concurrency"], 4);
}

/// Every errored case of the run names `case` and `condition` as what blocked it.
fn assert_errored_blocked_by(v: &serde_json::Value, case: &str, condition: &str) {
    for r in v["results"].as_array().unwrap() {
        if r["status"] == "errored" {
            assert_eq!(r["blocked_by"]["case"], case, "{}", r["id"]);
            assert_eq!(r["blocked_by"]["condition"], condition, "{}", r["id"]);
        }
    }
}

/// An MCP endpoint that serves requests without a token breaks one requirement
/// (rs-401-no-token). The cases that judge a challenge, or what a token sent elsewhere, a
/// session id or a state handle adds, cannot be judged on it: they are errored, blocked by that
/// case, not failed.
#[test]
fn an_unprotected_endpoint_fails_rs_401_no_token_and_blocks_the_rest() {
    let (failed, errored, v) = verdicts_with("rs-401-no-token");
    assert_eq!(failed, ["rs-401-no-token"], "failed: {failed:?}");
    assert!(!errored.is_empty());
    assert_errored_blocked_by(&v, "rs-401-no-token", "no-401-challenge");
}

/// An AS that serves no metadata fails asm-available; every case that needs its metadata is
/// errored, blocked by asm-available, rather than failed. prm-as-reachable fails beside it: from
/// outside, an RS naming a wrong issuer and an AS serving nothing at the right one look alike.
#[test]
fn missing_as_metadata_fails_asm_available_and_blocks_the_rest() {
    let (failed, errored, v) = verdicts_with("asm-available");
    assert_eq!(
        failed,
        ["asm-available", "prm-as-reachable"],
        "failed: {failed:?}"
    );
    assert!(errored.len() > 100, "errored: {}", errored.len());
    assert_errored_blocked_by(&v, "asm-available", "no-metadata-document");
}
