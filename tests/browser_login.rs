//! The `browser` login driver against the reference's single-page login (`--reference-login
//! spa`): a real headless Chromium renders the page's script, logs the test user in, approves or
//! denies, and every request goes through the suite's client. Without Chromium the cases that
//! need the login are skipped, saying why: never a silent pass.

use std::path::Path;
use std::process::{Command, Output};

/// A few flow cases: a code and its redemption, a denial, a rejected redirect URI (an error page
/// at once), and what the consent view shows.
const CASES: [&str; 4] = [
    "pkce-positive",
    "code-access-denied",
    "redir-extra-path",
    "dcr-display-escaping",
];

fn only() -> Vec<&'static str> {
    CASES.iter().flat_map(|c| ["--only", *c]).collect()
}

fn run(args: &[&str], chromium: Option<&str>) -> (Output, serde_json::Value) {
    let out = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_authconform"));
    c.env("NO_COLOR", "1")
        .args(["run", "--reference-login", "spa", "--report-dir"])
        .arg(out.path())
        .args(args);
    if let Some(p) = chromium {
        c.env("AUTHCONFORM_CHROMIUM", p);
    }
    let o = c.output().expect("spawn authconform");
    let v = results(out.path(), &o);
    (o, v)
}

fn results(dir: &Path, o: &Output) -> serde_json::Value {
    let s = std::fs::read_to_string(dir.join("results.json")).unwrap_or_else(|_| {
        panic!(
            "no results.json: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    serde_json::from_str(&s).expect("results.json is JSON")
}

fn by_id<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["results"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no result for {id}"))
}

fn chromium_here() -> bool {
    authconform::login::browser::locate(
        None,
        std::env::var_os("AUTHCONFORM_CHROMIUM"),
        std::env::var_os("PATH"),
    )
    .is_ok()
}

/// Every case that needs the login is skipped with the reason. dcr-display-escaping has a
/// variant judged before any login (the reference refuses its javascript: logo_uri at
/// registration): it passes on that one, and names the variant skipped and why.
fn assert_skipped_for(v: &serde_json::Value, why: &str) {
    for id in CASES {
        let c = by_id(v, id);
        let expected = if id == "dcr-display-escaping" {
            "passed"
        } else {
            "skipped"
        };
        assert_eq!(c["status"], expected, "{id}: {c}");
        let m = c["message"].as_str().unwrap_or("");
        assert!(
            m.contains("the login driver cannot run") && m.contains(why),
            "{id}: {m}"
        );
    }
}

#[test]
fn the_single_page_login_is_driven_through_chromium_or_the_cases_say_why_not() {
    let (o, v) = run(&only(), None);
    if !chromium_here() {
        assert_skipped_for(&v, "install Debian's chromium");
        return;
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for id in CASES {
        let c = by_id(&v, id);
        assert_eq!(c["status"], "passed", "{id}: {c}");
    }
    // Every request of the page went through the suite's client and is evidence: the shell,
    // its script and the JSON calls, and the redirect back to the client was never followed.
    let ex = by_id(&v, "pkce-positive")["exchanges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let urls: Vec<&str> = ex.iter().filter_map(|e| e["url"].as_str()).collect();
    for path in [
        "/as/signin?txn=",
        "/as/signin.js",
        "/as/api/login",
        "/as/api/consent",
    ] {
        assert!(urls.iter().any(|u| u.contains(path)), "{path}: {urls:?}");
    }
    assert!(
        !urls.iter().any(|u| u.starts_with("https://client.test")),
        "{urls:?}"
    );
}

#[test]
fn a_fault_in_what_the_consent_view_shows_still_fails_under_the_single_page_login() {
    if !chromium_here() {
        return;
    }
    // The script inserts client_name as HTML under this fault only: the rendered page the
    // checks read carries the live markup.
    let (o, v) = run(
        &[
            "--only",
            "dcr-display-escaping",
            "--reference-fault",
            "dcr-display-escaping",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let c = by_id(&v, "dcr-display-escaping");
    assert_eq!(c["status"], "failed", "{c}");
    assert!(
        c["message"].as_str().unwrap_or("").contains("live markup"),
        "{c}"
    );
}

#[test]
fn without_chromium_the_login_cases_are_skipped_with_the_reason() {
    let (o, v) = run(&only(), Some("/nonexistent/chromium"));
    assert_eq!(o.status.code(), Some(0));
    assert_skipped_for(&v, "AUTHCONFORM_CHROMIUM");
    // Said once on standard error, not once per case.
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.matches("authconform: the browser login driver cannot run")
            .count(),
        1,
        "{err}"
    );
}
