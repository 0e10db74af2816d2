//! The curl line of a failed exchange reproduces it: run cases against the built-in reference
//! started with their faults, then, while that server still runs, send each sampled exchange's
//! curl line (from `authconform::report::curl`, the one report.html shows) with the system
//! `curl` through `bash`, and compare the status with the recorded one.
//!
//! Sampled: the exchanges of failed cases that got a response and hold no redacted secret
//! (`needs_secret`: a code, a token or a password is a `[redacted …]` marker in the record, so
//! the line cannot be replayed verbatim) and whose body the line carries exactly. At most
//! [`SAMPLE`] of them; the sample must not be empty. Skipped, saying why, without bash or curl.

use std::process::Command;

use authconform::case::{self, Feature};
use authconform::record::{CaseResult, Status};
use authconform::report::curl;
use authconform::runner;
use authconform::session::{self, SetupOptions, TargetOptions};
use authconform::spec::{Revision, SpecChoice};

/// Cases whose reference fault makes them fail with plain, replayable requests (discovery,
/// metadata, a token request whose code is redacted and so is left out of the sample).
const CASES: &[&str] = &["asm-cimd-flag", "prm-resource-match", "code-single-use"];
const SAMPLE: usize = 24;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn failed_exchanges_replay_with_their_curl_line() {
    if !have("curl") || !have("bash") {
        eprintln!("SKIPPED: needs curl and bash on PATH");
        return;
    }
    let all = case::load_builtin(authconform::checks::NAMES).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = SetupOptions {
            target: TargetOptions {
                reference_faults: CASES.iter().map(|s| s.to_string()).collect(),
                ..TargetOptions::default()
            },
            documents: None,
            spec: SpecChoice::Fixed(Revision::V2025_11_25),
            max_wait: None,
        };
        let prepared = session::prepare(&opts, &|_| {}).await.unwrap();
        let mut results: Vec<CaseResult> = Vec::new();
        for id in CASES {
            let c = all.iter().find(|c| c.id() == *id).unwrap();
            assert!(!c.file.requires.contains(&Feature::Proxy));
            results.push(runner::run_case(&prepared.env, c).await);
        }
        for r in &results {
            assert_eq!(r.status, Status::Failed, "{}: {}", r.id, r.message);
        }

        let mut sampled = 0;
        let mut secret = 0;
        let mut mismatches = Vec::new();
        for r in &results {
            for ex in &r.exchanges {
                let Some(want) = ex.status else { continue };
                let line = curl::curl(ex, "authconform/test", curl::insecure_for(&ex.url));
                if line.needs_secret || !line.exact {
                    secret += 1;
                    continue;
                }
                if sampled == SAMPLE {
                    break;
                }
                sampled += 1;
                // The line as shown, then only how curl reports: the status code, no body.
                let cmd = format!(
                    "{} --noproxy '*' --max-time 10 -s -o /dev/null -w '%{{http_code}}'",
                    line.line
                );
                let out = tokio::task::spawn_blocking(move || {
                    Command::new("bash").arg("-c").arg(&cmd).output().unwrap()
                })
                .await
                .unwrap();
                let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if got != want.to_string() {
                    mismatches.push(format!(
                        "{}: {} {} recorded {want}, curl got {got:?} ({})\n  {}",
                        r.id,
                        ex.method,
                        ex.url,
                        String::from_utf8_lossy(&out.stderr).trim(),
                        line.line
                    ));
                }
            }
        }
        prepared.shutdown();
        eprintln!("replayed {sampled} exchanges; {secret} left out (a redacted secret in them)");
        assert!(
            sampled > 0,
            "no exchange could be replayed: the sample is empty"
        );
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    });
}
