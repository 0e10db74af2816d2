//! The command line as users and CI scripts meet it: exit codes, located errors for bad files,
//! reports written in every outcome, and the expectations gate.

mod common;

use common::{bin, text};

use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn authconform")
}

fn results(dir: &Path) -> serde_json::Value {
    let s = std::fs::read_to_string(dir.join("results.json")).expect("results.json written");
    serde_json::from_str(&s).expect("results.json is JSON")
}

fn validate_results(v: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/results.schema.json").unwrap())
            .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "results.json violates its schema: {errors:?}"
    );
}

/// A case file in a scratch cases dir, `<dir>/<area>/<name>.toml`.
fn case_dir(area: &str, name: &str, body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join(area)).unwrap();
    std::fs::write(d.path().join(area).join(format!("{name}.toml")), body).unwrap();
    d
}

const GOOD: &str = r#"id = "rs-401-no-token"
title = "An unauthenticated request gets 401"
area = "challenge"
role = "rs"
level = "MUST"
refs = ["MCP 2025-11-25 §9.2"]
specs = ["2025-11-25"]
requires = ["resource"]
fault = "The endpoint answers 200."

[[steps]]
do = "mcp_request"

[steps.expect]
status = [401]
"#;

#[test]
fn default_run_passes_against_the_reference_and_writes_three_reports() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&["run", "--report-dir", out.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(out.path());
    validate_results(&v);
    assert_eq!(v["summary"]["failed"], 0, "{}", text(&o));
    assert_eq!(v["summary"]["errored"], 0, "{}", text(&o));
    // The one case the reference cannot run: it is not an MCP proxy.
    let skipped: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "skipped")
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["code-proxy-consent"], "{}", text(&o));
    assert_eq!(v["target"]["kind"], "reference");
    assert!(out.path().join("junit.xml").exists());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    // Self-contained: nothing is loaded from elsewhere.
    common::assert_self_contained_html(&html);
    assert!(!html.contains("url("), "CSS loads a resource");
}

/// `--spec auto` against the reference in each revision it speaks: the token-less probes get
/// 401, so the revision is learnt with a token from the profile's login, and every result is
/// graded at it.
#[test]
fn auto_detection_logs_in_and_grades_the_reference_at_the_revision_it_speaks() {
    for (flag, revision, rpc) in [
        (None, "2025-11-25", "initialize"),
        (Some("2026-07-28"), "2026-07-28", "server/discover"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec![
            "run",
            "--only",
            "rs-401-no-token",
            "--only",
            "rs-stale-session-4xx",
        ];
        if let Some(f) = flag {
            args.extend(["--reference-revision", f]);
        }
        args.extend(["--report-dir", out.path().to_str().unwrap()]);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v = results(out.path());
        validate_results(&v);
        assert_eq!(v["spec"]["graded"], revision, "{}", v["spec"]);
        assert_eq!(v["spec"]["source"], "auto");
        let detection = v["spec"]["detection"].as_str().unwrap();
        assert!(
            detection.starts_with(&format!(
                "{rpc} with a token from the profile's login answered"
            )),
            "{detection}"
        );
        assert!(
            detection.contains("without a token server/discover: 401, initialize: 401"),
            "{detection}"
        );
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["spec"], revision, "{r}");
            assert_eq!(r["status"], "passed", "{r}");
        }
    }
}

#[test]
fn reference_revision_is_one_the_reference_speaks_and_only_for_the_reference() {
    let o = run(&["run", "--reference-revision", "2025-06-18"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("2025-11-25 or 2026-07-28"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "run",
        "--reference-revision",
        "2026-07-28",
        "--resource",
        "https://127.0.0.1:9/mcp",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_fault_makes_its_case_fail_with_exit_1() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "--reference-fault",
        "prm-resource-match",
        "--only",
        "prm-resource-match",
        "--report-dir",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = results(out.path());
    assert_eq!(v["results"][0]["status"], "failed");
    assert!(!v["results"][0]["exchanges"].as_array().unwrap().is_empty());
    assert_eq!(v["target"]["faults"][0], "prm-resource-match");
}

#[test]
fn unknown_field_in_a_case_file_exits_2_naming_file_line_and_field() {
    let body = GOOD.replace("role = \"rs\"", "role = \"rs\"\nrequirez = [\"resource\"]");
    let d = case_dir("challenge", "rs-401-no-token", &body);
    let o = run(&["list", "--cases", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("rs-401-no-token.toml:5:1"), "{t}");
    assert!(t.contains("requirez"), "{t}");
}

#[test]
fn bad_value_inside_a_step_is_located() {
    let body = GOOD.replace("status = [401]", "status = [401]\ncontent_type = 42");
    let d = case_dir("challenge", "rs-401-no-token", &body);
    let o = run(&["run", "--cases", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("rs-401-no-token.toml:16:1: field `steps[0].expect.content_type`"),
        "{t}"
    );
}

#[test]
fn level_and_id_errors_are_located() {
    let body = GOOD.replace("level = \"MUST\"", "level = \"MUSTN'T\"");
    let d = case_dir("challenge", "rs-401-no-token", &body);
    let t = text(&run(&["list", "--cases", d.path().to_str().unwrap()]));
    assert!(t.contains(":5:1: field `level`"), "{t}");

    let body = GOOD.replace("id = \"rs-401-no-token\"", "id = \"rs-401-no-such-thing\"");
    let d = case_dir("challenge", "rs-401-no-such-thing", &body);
    let o = run(&["list", "--cases", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains(":1:1: field `id`: \"rs-401-no-such-thing\" is not a requirement id"),
        "{}",
        text(&o)
    );

    let d = case_dir("prm", "rs-401-no-token", GOOD);
    let t = text(&run(&["list", "--cases", d.path().to_str().unwrap()]));
    assert!(t.contains("field `area`"), "{t}");

    let d = case_dir(
        "challenge",
        "rs-401-no-token",
        "id = \"rs-401-no-token\"\ntitle = \"broken\n",
    );
    let o = run(&["list", "--cases", d.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("rs-401-no-token.toml:2:"), "{}", text(&o));
}

#[test]
fn bad_config_exits_2_naming_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("target.toml");
    std::fs::write(
        &p,
        "[target]\nresource = \"http://127.0.0.1:9/mcp\"\n\n[http]\ntimeout_sec = 3\n",
    )
    .unwrap();
    let o = run(&["run", "--config", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("target.toml:5:1") && t.contains("timeout_sec"),
        "{t}"
    );

    std::fs::write(&p, "[target]\nresource = \"ftp://example.test/mcp\"\n").unwrap();
    let o = run(&["run", "--config", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("target.toml:2:1: field `target.resource`"),
        "{}",
        text(&o)
    );
}

#[test]
fn run_and_fuzz_take_the_same_report_flags_with_their_own_default_folders() {
    // Help is wrapped to the terminal's width: compare with whitespace runs collapsed.
    let help = |cmd: &str| {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        text(&o).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    for cmd in ["run", "fuzz"] {
        let h = help(cmd);
        for flag in [
            "--report-dir <DIR>",
            "--junit <FILE>",
            "--html <FILE>",
            "--json <FILE>",
            "--sarif <FILE> Also write a SARIF 2.1.0 log",
        ] {
            assert!(h.contains(flag), "{cmd} --help lacks {flag}: {h}");
        }
    }
    let h = help("run");
    assert!(h.contains("results.json [default: reports]"), "{h}");
    let h = help("fuzz");
    assert!(
        h.contains("(default reports/fuzz, or reports/fuzz-replay with --replay)"),
        "{h}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(&["run", "--reference-fault", "no-such-case"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["run", "--only", "zzz-nothing"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["run", "--spec", "2024-01-01"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&[
            "run",
            "--resource",
            "http://127.0.0.1:9/mcp",
            "--reference-fault",
            "rs-401-no-token"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn unreachable_target_gives_errored_cases_and_reports() {
    // Port 9 (discard) is closed on loopback: connection refused, quickly.
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "--resource",
        "http://127.0.0.1:9/mcp",
        "--timeout",
        "2",
        "--report-dir",
        out.path().to_str().unwrap(),
    ]);
    // 3: the run could not judge the target (connection refused three times in a row).
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v = results(out.path());
    validate_results(&v);
    assert_eq!(v["incidents"][0]["kind"], "target-down");
    assert!(
        v["incidents"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("refused the connection"),
        "{}",
        v["incidents"][0]
    );
    let statuses: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == "errored" || *s == "skipped"),
        "{statuses:?}"
    );
    assert!(statuses.contains(&"errored"));
    assert!(
        v["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9")
    );
}

#[test]
fn expectations_gate_the_run() {
    let d = tempfile::tempdir().unwrap();
    let exp = d.path().join("expected.toml");
    let rd = d.path().join("r");
    let rd = rd.to_str().unwrap();
    let o = run(&[
        "run",
        "--reference-fault",
        "asm-issuer-match",
        "--only",
        "as_metadata",
        "--report-dir",
        rd,
        "--write-expect",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let written = std::fs::read_to_string(&exp).unwrap();
    assert!(
        written.contains("\"asm-issuer-match\" = \"failed\""),
        "{written}"
    );

    // The same run with the written expectations passes.
    let o = run(&[
        "run",
        "--reference-fault",
        "asm-issuer-match",
        "--only",
        "as_metadata",
        "--report-dir",
        rd,
        "--expect",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Without the fault the verdict changes: the gate fails and says which case.
    let o = run(&[
        "run",
        "--only",
        "as_metadata",
        "--report-dir",
        rd,
        "--expect",
        exp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("verdict changed: asm-issuer-match: expected failed, got passed"),
        "{}",
        text(&o)
    );

    // A stale entry (a variant no case has any more) is reported.
    std::fs::write(
        &exp,
        format!("{written}\"par-201.retired-variant\" = \"passed\"\n"),
    )
    .unwrap();
    let o = run(&[
        "run",
        "--reference-fault",
        "asm-issuer-match",
        "--only",
        "as_metadata",
        "--report-dir",
        rd,
        "--expect",
        exp.to_str().unwrap(),
    ]);
    assert!(text(&o).contains("stale entry"), "{}", text(&o));
}

/// Issue 17: an accepted failure with a date stops being accepted after it. The entry is
/// named on the console and in `outcome.expect.expired`, the run exits 1, and a refresh with
/// `--write-expect` keeps the reason and the date of an unchanged verdict.
#[test]
fn an_expired_expectation_gates_again() {
    let d = tempfile::tempdir().unwrap();
    let exp = d.path().join("expected.toml");
    let rd = d.path().join("r");
    let rd = rd.to_str().unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "run",
            "--reference-fault",
            "asm-issuer-match",
            "--only",
            "asm-issuer-match",
            "--only",
            "asm-available",
            "--report-dir",
        ];
        a.push(rd);
        a.extend_from_slice(extra);
        a
    };
    std::fs::write(
        &exp,
        r#"[verdicts]
"asm-available" = "passed"
"asm-issuer-match" = { status = "failed", reason = "fix in ticket 42", until = 2026-03-31 }
"#,
    )
    .unwrap();
    let e = exp.to_str().unwrap();
    let on = |day: &str, extra: &[&'static str]| {
        bin()
            .env("AUTHCONFORM_TODAY", day)
            .args(args(&["--expect"]))
            .arg(e)
            .args(extra)
            .output()
            .unwrap()
    };
    // On its last day the entry still holds.
    let o = on("2026-03-31", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("result: passed (exit 0)"), "{}", text(&o));
    // The day after, the failure gates again, and the entry is named.
    let o = on("2026-04-01", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("expired entry in ")
            && t.contains("asm-issuer-match = failed until 2026-03-31 (fix in ticket 42); got failed: gates again"),
        "{t}"
    );
    assert!(
        t.contains("result: failed (exit 1): 1 verdict differs from ")
            && t.contains("(1 expired entry gating again: asm-issuer-match (until 2026-03-31))"),
        "{t}"
    );
    let v = results(Path::new(rd));
    validate_results(&v);
    let expired = &v["outcome"]["expect"]["expired"][0];
    assert_eq!(expired["id"], "asm-issuer-match");
    assert_eq!(expired["until"], "2026-03-31");
    assert_eq!(expired["reason"], "fix in ticket 42");
    assert_eq!(expired["observed"], "failed");
    // JUnit counts it as the one failure.
    let junit = std::fs::read_to_string(Path::new(rd).join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(
        doc.root_element().attribute("failures"),
        Some("1"),
        "{junit}"
    );

    // A refresh keeps the reason and the date of the verdict that did not change.
    let o = bin()
        .env("AUTHCONFORM_TODAY", "2026-03-01")
        .args(args(&["--write-expect"]))
        .arg(e)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let written = std::fs::read_to_string(&exp).unwrap();
    assert!(
        written.contains("\"asm-issuer-match\" = { status = \"failed\", reason = \"fix in ticket 42\", until = 2026-03-31 }"),
        "{written}"
    );
    assert!(
        written.contains("\"asm-available\" = \"passed\"\n"),
        "{written}"
    );

    // A date that is not one names the file, the line and the field, and exits 2.
    std::fs::write(
        &exp,
        r#"[verdicts]
"asm-issuer-match" = { status = "failed", until = "next spring" }
"#,
    )
    .unwrap();
    let o = on("2026-03-01", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{e}:2:"))
            && text(&o).contains(
                ": field `verdicts.asm-issuer-match.until`: \"next spring\" is not a date"
            ),
        "{}",
        text(&o)
    );
}

#[test]
fn list_names_every_case() {
    let o = run(&["list", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.len() >= 47);
    assert!(ids.contains(&"rs-401-no-token") && ids.contains(&"asm-jwks-uri"));
    for c in v.as_array().unwrap() {
        for k in ["id", "area", "level", "role", "title", "refs"] {
            assert!(c.get(k).is_some(), "{k} missing in {c}");
        }
    }
}

/// A running `authconform reference` and what its first line says.
struct RefProcess {
    child: std::process::Child,
    info: serde_json::Value,
}

impl Drop for RefProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_reference() -> RefProcess {
    start_reference_with(&[])
}

fn start_reference_with(extra: &[&str]) -> RefProcess {
    use std::io::BufRead;
    let mut child = bin()
        .args(["reference", "--port", "0"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn reference");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("first line");
    let info = serde_json::from_str(&line).expect("JSON first line");
    RefProcess { child, info }
}

/// A profile for the running reference with the given `[login]` table.
fn reference_profile(r: &RefProcess, login: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "[target]\nresource = {resource}\n\n[http]\nca_file = {ca}\n\n[[clients]]\nclient_id = \"ref-public\"\nredirect_uris = [\"https://client.test/cb\"]\n\n[authorization]\nscope = \"mcp:tools\"\n\n{login}\n",
        resource = r.info["resource"],
        ca = r.info["ca"],
    );
    std::fs::write(d.path().join("profile.toml"), text).unwrap();
    d
}

#[test]
fn a_refused_login_errors_the_cases_exits_3_and_still_writes_reports() {
    let r = start_reference();
    let p = reference_profile(
        &r,
        "[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"",
    );
    let reports = tempfile::tempdir().unwrap();
    let o = bin()
        .env("AUTHCONFORM_TEST_PASSWORD", "wrong-password")
        .args(["run", "--config"])
        .arg(p.path().join("profile.toml"))
        .args(["--only", "pkce-positive", "--report-dir"])
        .arg(reports.path())
        .output()
        .unwrap();
    // Nothing failed, the cases could not be judged: incomplete (3), not failed.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v0 = results(reports.path());
    assert_eq!(v0["outcome"]["state"], "incomplete", "{}", v0["outcome"]);
    assert_eq!(v0["outcome"]["exit_code"], 3);
    let v = results(reports.path());
    validate_results(&v);
    let case = &v["results"][0];
    assert_eq!(case["status"], "errored", "{case}");
    let msg = case["message"].as_str().unwrap();
    assert!(msg.contains("refused them"), "{msg}");
    // Revision detection could not log in either: the fallback, saying why.
    assert_eq!(v["spec"]["graded"], "2025-11-25", "{}", v["spec"]);
    let detection = v["spec"]["detection"].as_str().unwrap();
    assert!(
        detection.contains("no token could be had") && detection.contains("login failed"),
        "{detection}"
    );
    // The password never reaches a report.
    for f in ["results.json", "junit.xml", "report.html"] {
        let body = std::fs::read_to_string(reports.path().join(f)).unwrap();
        assert!(!body.contains("wrong-password"), "{f} leaks the password");
    }
}

#[test]
fn the_script_driver_logs_in_through_declared_requests() {
    let r = start_reference();
    let login = r#"[login]
driver = "script"
username = "alice"
password_env = "AUTHCONFORM_TEST_PASSWORD"

[[login.steps]]
url = "${authorize_url}"
capture = { txn = 'regex:name="txn" value="([^"]+)"' }

[[login.steps]]
method = "POST"
url = "${origin}/as/login"
form = { txn = "${txn}", username = "${username}", password = "${password}" }

[[login.steps]]
method = "POST"
url = "${origin}/as/consent"
form = { txn = "${txn}", decision = "approve" }"#;
    let p = reference_profile(&r, login);
    let reports = tempfile::tempdir().unwrap();
    let password = r.info["login"]["password"].as_str().unwrap().to_string();
    let o = bin()
        .env("AUTHCONFORM_TEST_PASSWORD", &password)
        .args(["run", "--config"])
        .arg(p.path().join("profile.toml"))
        .args([
            "--only",
            "pkce-positive",
            "--only",
            "code-state-echo",
            // Page cases: the script's pages are recorded (its first request shows the login
            // page, its second the consent page) and judged like the form driver's.
            "--only",
            "code-consent-clickjacking",
            "--only",
            "code-public-client-consent",
            "--report-dir",
        ])
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(reports.path());
    let statuses: Vec<(&str, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    for (id, status) in &statuses {
        assert_eq!(*status, "passed", "{id}: {}", text(&o));
    }
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    let body = std::fs::read_to_string(reports.path().join("results.json")).unwrap();
    assert!(
        !body.contains(&password),
        "the password leaks into results.json"
    );
}

#[test]
fn a_profile_client_without_its_secret_variable_exits_2_located() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("p.toml");
    std::fs::write(
        &f,
        "[target]\nissuer = \"https://as.example.test\"\n\n[[clients]]\nclient_id = \"c\"\nauth_method = \"client_secret_basic\"\nsecret_env = \"AUTHCONFORM_TEST_UNSET_SECRET\"\nredirect_uris = [\"https://client.test/cb\"]\n",
    )
    .unwrap();
    let o = bin()
        .env_remove("AUTHCONFORM_TEST_UNSET_SECRET")
        .args(["run", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("p.toml:7:1"), "{t}");
    assert!(t.contains("clients[0].secret_env"), "{t}");
    assert!(
        t.contains("AUTHCONFORM_TEST_UNSET_SECRET is not set"),
        "{t}"
    );
}

#[test]
fn ca_makes_one_ca_and_prints_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let first = run(&["ca", "--ca-dir", ca_dir.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let path = String::from_utf8_lossy(&first.stdout).trim().to_string();
    let pem = std::fs::read_to_string(&path).expect("the printed path is the CA file");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(text(&first).contains("NODE_EXTRA_CA_CERTS"));
    let second = run(&["ca", "--ca-dir", ca_dir.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), path);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        pem,
        "made once, then reused"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca_dir.join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key is readable by its owner only");
    }
}

#[test]
fn a_cimd_case_report_shows_the_documents_served_and_the_requests_the_as_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "--only",
        "cimd-fetch",
        "--only",
        "cimd-url-fragment",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = results(dir.path());
    validate_results(&v);
    let case = |id: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} in results"))
            .clone()
    };
    // The control: the AS's request for the document, and what was served to it.
    let fetch = case("cimd-fetch");
    let inbound: Vec<&serde_json::Value> = fetch["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["note"].as_str().unwrap_or("").starts_with("inbound:"))
        .collect();
    assert_eq!(inbound.len(), 1, "{fetch:#}");
    assert_eq!(inbound[0]["method"], "GET");
    assert_eq!(inbound[0]["status"], 200);
    assert!(
        inbound[0]["response_body"]
            .as_str()
            .unwrap()
            .contains("\"client_id\"")
    );
    // A refused URL: the document published, and no request for it.
    let fragment = case("cimd-url-fragment");
    let details = fragment["details"].to_string();
    assert!(
        details.contains("published at https://127.0.0.1:"),
        "{details}"
    );
    assert!(details.contains("received no request"), "{details}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("inbound: the AS fetched"));
}

/// The vendored OASIS SARIF 2.1.0 schema (draft-07), formats checked too.
fn validate_sarif(v: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/sarif-2.1.0.json").unwrap())
            .unwrap();
    let validator = jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF log violates its schema: {errors:#?}"
    );
}

#[test]
fn sarif_of_a_faulty_reference_run_validates() {
    let out = tempfile::tempdir().unwrap();
    let sarif = out.path().join("sub/authconform.sarif");
    let o = run(&[
        "run",
        "--reference-fault",
        "prm-resource-match",
        "--reference-fault",
        "asm-issuer-match",
        "--only",
        "prm",
        "--only",
        "as_metadata",
        "--report-dir",
        out.path().to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("authconform.sarif"), "{}", text(&o));
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).expect("SARIF written")).unwrap();
    validate_sarif(&log);

    let v = results(out.path());
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let cases = v["results"].as_array().unwrap();
    // One rule per requirement id of the run; every case's requirement has one.
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let req = id.split('.').next().unwrap();
        assert_eq!(rules.iter().filter(|r| r["id"] == req).count(), 1, "{req}");
    }
    // One `fail` result per failed case, pointing at its case file.
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"prm-resource-match"), "{failed:?}");
    assert!(failed.contains(&"asm-issuer-match"), "{failed:?}");
    let results = run["results"].as_array().unwrap();
    let fails: Vec<&serde_json::Value> = results.iter().filter(|r| r["kind"] == "fail").collect();
    assert_eq!(fails.len(), failed.len());
    let prm = fails
        .iter()
        .find(|r| r["ruleId"] == "prm-resource-match")
        .unwrap();
    assert_eq!(prm["level"], "error");
    assert_eq!(
        prm["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "cases/prm/prm-resource-match.toml"
    );
    assert!(Path::new("cases/prm/prm-resource-match.toml").exists());
    assert!(
        prm["locations"][0]["logicalLocations"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    assert_eq!(run["properties"]["target"]["kind"], "reference");
    assert_eq!(
        run["properties"]["target"]["faults"],
        serde_json::json!(["prm-resource-match", "asm-issuer-match"])
    );
}

/// The acceptance loop of `authconform fuzz`: against the reference with the fault that makes
/// its token endpoint answer 500 to a body that is not UTF-8, a bounded campaign finds it,
/// shrinks it, writes it into every report, and `--replay` confirms it; the same replay against
/// the compliant reference does not reproduce it.
#[test]
fn fuzz_finds_shrinks_reports_and_replays_the_token_500() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("fuzz");
    let sarif = out.path().join("fuzz.sarif");
    let o = run(&[
        "fuzz",
        "--endpoint",
        "token",
        "--cases",
        "1500",
        "--seed",
        "42",
        "--reference-fault",
        "tok-fuzz",
        "--report-dir",
        dir.to_str().unwrap(),
        "--sarif",
        sarif.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = results(&dir);
    validate_results(&v);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    validate_sarif(&log);
    // The finding's location is its requirement's case file.
    let fail = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "tok-fuzz")
        .expect("a SARIF result for tok-fuzz");
    assert_eq!(
        fail["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "cases/token_endpoint/tok-fuzz.toml"
    );
    let findings = v["fuzz"]["findings"].as_array().expect("findings");
    let f = findings
        .iter()
        .find(|f| f["result_id"] == "tok-fuzz.no-5xx")
        .unwrap_or_else(|| panic!("no 500 finding: {}", text(&o)));
    assert_eq!(f["seed"], 42);
    // Shrunk: the body that breaks the endpoint is a few bytes, and is not UTF-8.
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD
        .decode(f["request"]["body_base64"].as_str().unwrap())
        .unwrap();
    assert!(std::str::from_utf8(&body).is_err(), "{body:?}");
    assert!(body.len() <= 32, "not shrunk: {} bytes", body.len());
    assert!(f["curl"].as_str().unwrap().starts_with("curl "), "{f}");
    let r = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "tok-fuzz.no-5xx")
        .unwrap();
    assert_eq!(r["status"], "failed");
    let details = r["details"].to_string();
    assert!(details.contains("seed 42, case "), "{details}");
    assert!(details.contains("reproduce: curl "), "{details}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("reproduce: curl ") && junit.contains("seed 42"));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("reproduce: curl ") && html.contains("seed 42"));
    // Rules the fault does not touch held.
    for id in ["tok-fuzz.nothing-issued", "tok-error-format.error-shape"] {
        let r = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap();
        assert_eq!(r["status"], "passed", "{id}: {}", r["message"]);
    }

    let json = dir.join("results.json");
    let replay_dir = out.path().join("replay");
    let o = run(&[
        "fuzz",
        "--replay",
        json.to_str().unwrap(),
        "--reference-fault",
        "tok-fuzz",
        "--report-dir",
        replay_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("confirmed: answered 500"), "{}", text(&o));
    validate_results(&results(&replay_dir));
    let o = run(&[
        "fuzz",
        "--replay",
        json.to_str().unwrap(),
        "--report-dir",
        replay_dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("not reproduced: answered 400"),
        "{}",
        text(&o)
    );
}

#[test]
fn fuzz_against_the_compliant_reference_finds_nothing() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "fuzz",
        "--cases",
        "400",
        "--seed",
        "7",
        "--report-dir",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(out.path());
    validate_results(&v);
    assert!(v["fuzz"].get("findings").is_none(), "{}", v["fuzz"]);
    let campaigns = v["fuzz"]["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 5);
    for c in campaigns {
        assert_eq!(
            c["requests"].as_u64().unwrap() + c["unsendable"].as_u64().unwrap(),
            400,
            "{c}"
        );
    }
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "passed")
    );
}

#[test]
fn fuzz_usage_errors_exit_2() {
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "{\"tool\": 1}").unwrap();
    for args in [
        vec!["fuzz", "--endpoint", "nope"],
        vec!["fuzz", "--seconds", "0"],
        vec!["fuzz", "--cases", "0"],
        vec!["fuzz", "--replay", bad.path().to_str().unwrap()],
        vec!["fuzz", "--replay", "/nonexistent/results.json"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
}

#[test]
fn a_deadline_ends_the_run_with_reports_and_exit_3() {
    // rt-inactivity-expiry waits about 7 s on the reference; a 2 s deadline cuts it off, while
    // the quick PRM cases finish first and keep their verdicts.
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "--only",
        "rt-inactivity-expiry",
        "--only",
        "prm-*",
        "--deadline",
        "2s",
        "--report-dir",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v = results(out.path());
    validate_results(&v);
    let results = v["results"].as_array().unwrap();
    let cut = results
        .iter()
        .find(|r| r["id"] == "rt-inactivity-expiry")
        .expect("the cut-off case is reported");
    assert_eq!(cut["status"], "errored");
    assert_eq!(cut["incident"], "deadline");
    assert!(cut["message"].as_str().unwrap().contains("deadline"));
    assert!(
        results
            .iter()
            .any(|r| r["id"].as_str().unwrap().starts_with("prm-") && r["status"] == "passed"),
        "the cases that finished in time keep their verdicts"
    );
    let incidents = v["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["kind"], "deadline");
    assert_eq!(
        incidents[0]["cases"],
        serde_json::json!(["rt-inactivity-expiry"])
    );
    // The console names the cause once.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("1 case: incident: not run: ")
            && stdout.contains(" (deadline)  [rt-inactivity-expiry]"),
        "{stdout}"
    );
}

#[test]
fn deadline_and_allow_host_values_are_checked() {
    for (args, needle) in [
        (&["run", "--deadline", "0"][..], "more than zero"),
        (&["run", "--deadline", "5 parsecs"][..], "unit"),
        (&["run", "--allow-host", "http://x/"][..], "--allow-host"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
}

/// With `--issuer` alone (no MCP endpoint), every case either runs or skips with its reason:
/// none may be `errored` for a template value the run could not fill.
#[test]
fn an_issuer_only_run_leaves_no_template_unfilled() {
    let r = start_reference();
    let d = tempfile::tempdir().unwrap();
    let secret = r.info["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "ref-confidential")
        .and_then(|c| c["client_secret"].as_str())
        .unwrap()
        .to_string();
    let profile = format!(
        "[target]\nissuer = {issuer}\n\n[http]\nca_file = {ca}\n\n[[clients]]\nclient_id = \"ref-public\"\nredirect_uris = [\"https://client.test/cb\"]\n[[clients]]\nclient_id = \"ref-confidential\"\nauth_method = \"client_secret_basic\"\nsecret_env = \"AUTHCONFORM_TEST_SECRET\"\nredirect_uris = [\"https://client.test/cb\"]\n\n[authorization]\nscope = \"mcp:tools\"\n\n[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"\n",
        ca = r.info["ca"],
        issuer = r.info["issuer"],
    );
    std::fs::write(d.path().join("profile.toml"), profile).unwrap();
    let reports = tempfile::tempdir().unwrap();
    let o = bin()
        .env(
            "AUTHCONFORM_TEST_PASSWORD",
            r.info["login"]["password"].as_str().unwrap(),
        )
        .env("AUTHCONFORM_TEST_SECRET", secret)
        .args(["run", "--config"])
        .arg(d.path().join("profile.toml"))
        .args(["--skip", "cimd", "--report-dir"])
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(reports.path());
    validate_results(&v);
    let unfilled: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "errored" && c.to_string().contains("has no value"))
        .map(|c| format!("{}: {}", c["id"], c["message"]))
        .collect();
    assert!(unfilled.is_empty(), "{unfilled:#?}\n{}", text(&o));
    assert!(
        v["summary"]["passed"].as_u64().unwrap() > 100,
        "{}",
        v["summary"]
    );
}

/// `authconform login` against the built-in reference: each exchange, the pages, the
/// interactions and the outcome are shown, the code redacted; exit 0. `--json` says the same.
#[test]
fn login_shows_each_step_of_one_login_against_the_reference() {
    let o = run(&["login", "--no-color"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for want in [
        "login as alice (first) with the form driver",
        "GET https://127.0.0.1:",
        "/as/authorize?response_type=code&client_id=ref-public",
        "POST https://127.0.0.1:",
        "/as/login -> 303",
        "Location: /as/consent?txn=",
        "pages:\n  login    200",
        "  consent  200",
        "interactions: login, consent",
        "outcome: redirected to https://client.test/cb?code=[redacted",
        "/as/token -> 200",
        "login ok in",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // The access token and the refresh token never reach the output.
    assert!(out.contains("\"access_token\": \"[redacted"), "{out}");
    let o = run(&["login", "--json", "--user", "second"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON trace");
    assert_eq!(
        v["user"],
        serde_json::json!({"label": "second", "username": "bob"}),
        "{v}"
    );
    assert!(v["failed"].is_null(), "{v}");
    assert_eq!(v["interactions"], serde_json::json!(["login", "consent"]));
    assert_eq!(v["steps"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["exchanges"].as_array().unwrap().len() >= 5, "{v}");
    let o = run(&["login", "--user", "nobody"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("first (alice), second (bob)"),
        "{}",
        text(&o)
    );
}

/// A wrong password: exit 1, naming the step that failed and why; the password is not shown.
#[test]
fn login_with_a_wrong_password_exits_1_naming_the_failed_step() {
    let r = start_reference();
    let p = reference_profile(
        &r,
        "[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"",
    );
    let o = bin()
        .env("AUTHCONFORM_TEST_PASSWORD", "wrong-password")
        .args(["login", "--no-color", "--config"])
        .arg(p.path().join("profile.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("login FAILED at the authorize step"), "{out}");
    assert!(
        out.contains("the login form came back after the credentials for \"alice\" were submitted"),
        "{out}"
    );
    assert!(out.contains("the AS refused them"), "{out}");
    assert!(out.contains("/as/login -> 200"), "{out}");
    assert!(
        !out.contains("wrong-password"),
        "the password is shown:\n{out}"
    );
}

/// A pool of three users: two cases that hold their users for seconds (each waits for its
/// access token to expire) run at the same time, so each must have leased its own; each result
/// says which user it logged in as (`test_users`). Cases that finish in milliseconds may run
/// one after another and reuse a user: only the overlap of the waiting ones is certain.
#[test]
fn cases_running_at_once_log_in_as_distinct_users_of_the_pool() {
    let r = start_reference();
    let p = reference_profile(
        &r,
        "[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AC_PW1\"\nsecond_username = \"bob\"\nsecond_password_env = \"AC_PW2\"\n\n[[login.users]]\nname = \"third\"\nusername = \"carol\"\npassword_env = \"AC_PW3\"",
    );
    let reports = tempfile::tempdir().unwrap();
    let o = bin()
        .env("AC_PW1", r.info["login"]["password"].as_str().unwrap())
        .env(
            "AC_PW2",
            r.info["second_login"]["password"].as_str().unwrap(),
        )
        .env("AC_PW3", r.info["users"][0]["password"].as_str().unwrap())
        .args(["run", "--config"])
        .arg(p.path().join("profile.toml"))
        .args([
            "--only",
            "at-expired-rs",
            "--only",
            "rs-401-expired-token",
            "--only",
            "pkce-positive",
            "--concurrency",
            "3",
            "--report-dir",
        ])
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(reports.path());
    validate_results(&v);
    let user_of = |id: &str| -> String {
        let c = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(c["status"], "passed", "{c}");
        let u = c["test_users"].as_array().expect("test_users recorded");
        assert_eq!(u.len(), 1, "{c}");
        u[0].as_str().unwrap().to_string()
    };
    let (a, b, c) = (
        user_of("at-expired-rs"),
        user_of("rs-401-expired-token"),
        user_of("pkce-positive"),
    );
    assert_ne!(a, b, "two cases at once logged in as the same user");
    for u in [&a, &b, &c] {
        assert!(["alice", "bob", "carol"].contains(&u.as_str()), "{u}");
    }
}

#[test]
fn a_pool_user_without_its_password_variable_exits_2_located() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("p.toml");
    std::fs::write(
        &f,
        "[target]\nissuer = \"https://as.example.test\"\n\n[login]\nusername = \"a\"\n\n[[login.users]]\nusername = \"c\"\npassword_env = \"AUTHCONFORM_TEST_UNSET_PW\"\n",
    )
    .unwrap();
    let o = bin()
        .env_remove("AUTHCONFORM_TEST_UNSET_PW")
        .args(["login", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("p.toml:"), "{t}");
    assert!(t.contains("login.users"), "{t}");
    assert!(
        t.contains(
            "users[0].password_env: environment variable AUTHCONFORM_TEST_UNSET_PW is not set"
        ),
        "{t}"
    );
}

/// `[login] provision` runs once before anything is sent, in the profile's folder, and its
/// output (redacted) is in results.json; a failing one stops the run with exit 2.
#[test]
fn the_provisioning_command_runs_first_and_a_failing_one_stops_the_run() {
    use std::os::unix::fs::PermissionsExt;
    let r = start_reference();
    let password = r.info["login"]["password"].as_str().unwrap().to_string();
    let make = |code: u8| {
        let p = reference_profile(
            &r,
            "[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"\nprovision = [\"./make-users.sh\", \"hello\"]\nprovision_timeout_secs = 10",
        );
        let script = p.path().join("make-users.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"made $1 for $AUTHCONFORM_USERNAMES with $AUTHCONFORM_TEST_PASSWORD in $(basename \"$PWD\")\"\necho oops >&2\nexit {code}\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let p = make(0);
    let reports = tempfile::tempdir().unwrap();
    let o = bin()
        .env("AUTHCONFORM_TEST_PASSWORD", &password)
        // Not from the profile's folder: the relative path resolves against it anyway.
        .current_dir(reports.path())
        .args(["run", "--only", "pkce-positive", "--config"])
        .arg(p.path().join("profile.toml"))
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("test users provisioned: `"),
        "{}",
        text(&o)
    );
    let v = results(reports.path());
    validate_results(&v);
    let prov = &v["provision"];
    assert_eq!(prov["exit_code"], 0, "{prov}");
    let out = prov["output"].as_str().unwrap();
    let folder = p.path().file_name().unwrap().to_str().unwrap();
    assert!(
        out.starts_with(&format!(
            "made hello for alice with [redacted {} bytes] in {folder}",
            password.len()
        )),
        "{out}"
    );
    assert!(out.contains("oops"), "{out}");
    let html = std::fs::read_to_string(reports.path().join("report.html")).unwrap();
    assert!(
        html.contains("test users provisioned"),
        "not in the HTML report"
    );
    assert!(!html.contains(&password) && !out.contains(&password));

    let p = make(3);
    let o = bin()
        .env("AUTHCONFORM_TEST_PASSWORD", &password)
        .args(["run", "--only", "pkce-positive", "--config"])
        .arg(p.path().join("profile.toml"))
        .arg("--report-dir")
        .arg(reports.path().join("failing"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("[login] provision `"), "{t}");
    assert!(
        t.contains("exited 3; the run stops before sending anything"),
        "{t}"
    );
    assert!(t.contains("oops"), "{t}");
    assert!(!t.contains(&password), "{t}");
}

/// Against an AS with open registration and no DCR (the reference's open mode), cases that
/// need fresh public clients make them up instead of skipping, and pass; a case about
/// registration itself still skips.
#[test]
fn open_registration_lets_fresh_client_cases_mint_their_clients() {
    let r = start_reference_with(&["--open-registration"]);
    let p = reference_profile(
        &r,
        "[registration]\nopen = true\n\n[login]\ndriver = \"form\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"",
    );
    let reports = tempfile::tempdir().unwrap();
    let o = bin()
        .env(
            "AUTHCONFORM_TEST_PASSWORD",
            r.info["login"]["password"].as_str().unwrap(),
        )
        .args(["run", "--config"])
        .arg(p.path().join("profile.toml"))
        .args([
            "--only",
            "code-client-binding",
            "--only",
            "rt-client-binding",
            "--only",
            "code-access-denied",
            "--only",
            "dcr-public-no-secret",
            "--report-dir",
        ])
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(reports.path());
    validate_results(&v);
    for c in v["results"].as_array().unwrap() {
        if c["id"] == "dcr-public-no-secret" {
            assert_eq!(c["status"], "skipped", "{c}");
            assert!(
                c["message"]
                    .as_str()
                    .unwrap()
                    .contains("[registration] open does not stand in"),
                "{c}"
            );
        } else {
            assert_eq!(c["status"], "passed", "{c}");
            let details = c["details"].to_string();
            assert!(details.contains("minted, not registered"), "{c}");
        }
    }
}

/// Runs `ids` against a profile for `r` with the given `[login]` table and password; returns
/// the output and each case's (status, message).
fn run_login_cases(
    r: &RefProcess,
    login: &str,
    password: &str,
    ids: &[&str],
) -> (Output, Vec<(String, String, String)>) {
    let p = reference_profile(r, login);
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.env("AUTHCONFORM_TEST_PASSWORD", password)
        .args(["run", "--config"])
        .arg(p.path().join("profile.toml"));
    for id in ids {
        cmd.args(["--only", id]);
    }
    let o = cmd
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .unwrap();
    let v = results(reports.path());
    validate_results(&v);
    let got = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (o, got)
}

#[test]
fn a_json_login_script_tells_the_as_refusing_from_the_script_failing() {
    let r = start_reference_with(&["--login", "json"]);
    let password = r.info["login"]["password"].as_str().unwrap().to_string();
    let script = |steps: &str| {
        format!(
            "[login]\ndriver = \"script\"\nusername = \"alice\"\npassword_env = \"AUTHCONFORM_TEST_PASSWORD\"\n{steps}"
        )
    };
    let ids = ["pkce-positive", "redir-added-query", "code-access-denied"];

    // The script as README gives it: a code where the request is valid, the AS's error page
    // judged where it is not, and the deny decision's redirect.
    let (o, got) = run_login_cases(
        &r,
        &script(authconform::session::JSON_LOGIN_SCRIPT),
        &password,
        &ids,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(got.len(), 3, "{got:?}");
    for (id, status, msg) in &got {
        assert_eq!(status, "passed", "{id}: {msg}");
    }

    // Wrong password: the end rule names it; the refusal at the first step is still judged
    // (no login happens before it).
    let (o, got) = run_login_cases(
        &r,
        &script(authconform::session::JSON_LOGIN_SCRIPT),
        "wrong-password",
        &ids,
    );
    // The login failed, nothing failed on its own evidence: incomplete.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let by_id = |id: &str| got.iter().find(|g| g.0 == id).unwrap().clone();
    let (_, status, msg) = by_id("pkce-positive");
    assert_eq!(status, "errored", "{msg}");
    assert!(msg.contains("the AS refused the credentials"), "{msg}");
    assert_eq!(by_id("redir-added-query").1, "passed");

    // A first step whose capture finds nothing in the AS's answer: the valid request's login
    // could not complete (errored, never "the AS refused a valid request"), and the refused
    // request is still judged.
    let broken =
        authconform::session::JSON_LOGIN_SCRIPT.replace("location:query.txn", "json:/transaction");
    let (_, got) = run_login_cases(&r, &script(&broken), &password, &ids);
    let by_id = |id: &str| got.iter().find(|g| g.0 == id).unwrap().clone();
    let (_, status, msg) = by_id("pkce-positive");
    assert_eq!(status, "errored", "{msg}");
    assert!(
        msg.contains("could not go on from the AS's answer"),
        "{msg}"
    );
    assert_eq!(by_id("redir-added-query").1, "passed");
}

/// `--reference-offer none`: the reference neither advertises nor serves PAR, DPoP, token
/// exchange or ID-JAG, as a server that never implemented them, so every case of those areas is
/// skipped with its mechanism's reason and nothing fails: the run exits 0.
#[test]
fn the_optional_mechanisms_skip_when_the_reference_does_not_offer_them() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "run",
        "--only",
        "par",
        "--only",
        "dpop",
        "--only",
        "token_exchange",
        "--only",
        "id_jag",
        "--reference-offer",
        "none",
        "--report-dir",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = results(out.path());
    let rs = v["results"].as_array().unwrap();
    // Every case of the four areas ran (12 + 24 + 12 + 12 today) and each was skipped.
    let mut per_area = std::collections::BTreeMap::<String, usize>::new();
    for r in rs {
        assert_eq!(r["status"], "skipped", "{r}");
        let area = r["area"].as_str().unwrap_or_default().to_string();
        let why = r["message"].as_str().unwrap_or_default().to_lowercase();
        let named = match area.as_str() {
            "par" => why.contains("par") || why.contains("pushed"),
            "dpop" => why.contains("dpop"),
            "token_exchange" => why.contains("token exchange"),
            "id_jag" => why.contains("enterprise") || why.contains("id-jag"),
            other => panic!("a case of area {other} ran: {r}"),
        };
        assert!(
            named,
            "{} is skipped without naming its mechanism: {why}",
            r["id"]
        );
        *per_area.entry(area).or_default() += 1;
    }
    assert_eq!(per_area.len(), 4, "{per_area:?}");
    assert!(per_area.values().all(|&n| n >= 12), "{per_area:?}");
}
