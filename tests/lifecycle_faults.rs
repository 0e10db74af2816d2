//! The reference's lifecycle faults (`reference::LIFECYCLE_FAULTS`, for `authconform fuzz
//! --lifecycle`): each one hides from every single-request case and from the single-request fuzz
//! campaigns, and each one really misbehaves once a sequence of operations reaches it.
//!
//! The sequences drive the in-process reference over HTTPS (127.0.0.1) as a client would: the
//! form login and consent, the token endpoint, revocation, introspection and `/mcp`. Each
//! fault's test runs the same sequence against the compliant reference too.

mod common;

use common::{bin, results, text};

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use authconform::reference::{self, Options, Reference};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

const CODE_REPLAY: &str = "lifecycle.code-replay-after-refresh";
const RT_REVOCATION: &str = "lifecycle.rt-revocation-later-generation";
const RS_REVOCATION: &str = "lifecycle.rs-revocation-later-generation";
const SCOPE_REGROWTH: &str = "lifecycle.refresh-scope-regrowth";
const RACE: &str = "lifecycle.refresh-race-later-generation";

// ---------------------------------------------------------------------------------------------
// The command line: no case and no single-request campaign catches a lifecycle fault.

/// Whole runs are internally parallel and the machine is small: one at a time.
static WHOLE_RUNS: Mutex<()> = Mutex::new(());

/// `authconform run` against the reference with `faults`: exit code, every result's id and
/// status, and the output.
fn whole_run(faults: &[&str]) -> (Option<i32>, Vec<(String, String)>, String) {
    let out = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.arg("run").arg("--report-dir").arg(out.path());
    for f in faults {
        c.args(["--reference-fault", f]);
    }
    let o = c.output().expect("spawn authconform");
    let v = results(out.path());
    let statuses = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (o.status.code(), statuses, text(&o))
}

/// The cases an unfaulted run skips (the reference cannot run them), once.
fn skipped_without_fault() -> &'static BTreeSet<String> {
    static SKIPPED: OnceLock<BTreeSet<String>> = OnceLock::new();
    SKIPPED.get_or_init(|| {
        let (code, statuses, out) = whole_run(&[]);
        assert_eq!(code, Some(0), "the unfaulted run: {out}");
        statuses
            .into_iter()
            .filter(|(_, s)| s == "skipped")
            .map(|(id, _)| id)
            .collect()
    })
}

/// A whole run with the fault exits 0, every case passed or skipped, and it skips exactly what
/// the unfaulted run skips: no case catches the fault.
fn no_case_catches(fault: &str) {
    let _one = WHOLE_RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let baseline = skipped_without_fault();
    let (code, statuses, out) = whole_run(&[fault]);
    let caught: Vec<&(String, String)> = statuses
        .iter()
        .filter(|(_, s)| s != "passed" && s != "skipped")
        .collect();
    assert!(caught.is_empty(), "{fault} caught by {caught:?}\n{out}");
    let skipped: BTreeSet<String> = statuses
        .iter()
        .filter(|(_, s)| s == "skipped")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(&skipped, baseline, "{fault}: another skipped set\n{out}");
    assert!(statuses.len() > 300, "{fault}: {} results", statuses.len());
    assert_eq!(code, Some(0), "{fault}: {out}");
}

/// `authconform fuzz --seed 7 --cases 150` (every endpoint) with the fault: no finding.
fn no_campaign_finds(fault: &str) {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "fuzz",
            "--reference-fault",
            fault,
            "--seed",
            "7",
            "--cases",
            "150",
            "--report-dir",
        ])
        .arg(out.path())
        .output()
        .expect("spawn authconform");
    assert_eq!(o.status.code(), Some(0), "{fault}: {}", text(&o));
    let v = results(out.path());
    assert!(
        v["fuzz"].get("findings").is_none(),
        "{fault}: {}",
        v["fuzz"]["findings"]
    );
    let campaigns = v["fuzz"]["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 5, "{fault}: every endpoint");
    for c in campaigns {
        assert!(c["requests"].as_u64().unwrap() > 0, "{fault}: {c}");
    }
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(
        results.iter().all(|r| r["status"] == "passed"),
        "{fault}: {}",
        text(&o)
    );
}

#[test]
fn code_replay_after_refresh_passes_every_case() {
    no_case_catches(CODE_REPLAY);
}
#[test]
fn rt_revocation_later_generation_passes_every_case() {
    no_case_catches(RT_REVOCATION);
}
#[test]
fn rs_revocation_later_generation_passes_every_case() {
    no_case_catches(RS_REVOCATION);
}
#[test]
fn refresh_scope_regrowth_passes_every_case() {
    no_case_catches(SCOPE_REGROWTH);
}
#[test]
fn refresh_race_later_generation_passes_every_case() {
    no_case_catches(RACE);
}

#[test]
fn code_replay_after_refresh_is_silent_in_the_fuzz_campaigns() {
    no_campaign_finds(CODE_REPLAY);
}
#[test]
fn rt_revocation_later_generation_is_silent_in_the_fuzz_campaigns() {
    no_campaign_finds(RT_REVOCATION);
}
#[test]
fn rs_revocation_later_generation_is_silent_in_the_fuzz_campaigns() {
    no_campaign_finds(RS_REVOCATION);
}
#[test]
fn refresh_scope_regrowth_is_silent_in_the_fuzz_campaigns() {
    no_campaign_finds(SCOPE_REGROWTH);
}
#[test]
fn refresh_race_later_generation_is_silent_in_the_fuzz_campaigns() {
    no_campaign_finds(RACE);
}

#[test]
fn an_unknown_lifecycle_fault_exits_2_naming_it() {
    for cmd in [
        vec!["run", "--reference-fault", "lifecycle.nope"],
        vec![
            "fuzz",
            "--reference-fault",
            "lifecycle.nope",
            "--cases",
            "1",
        ],
        vec!["reference", "--port", "0", "--fault", "lifecycle.nope"],
    ] {
        let o = bin().args(&cmd).output().expect("spawn authconform");
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains("\"lifecycle.nope\""), "{cmd:?}: {t}");
        assert!(
            t.contains("lifecycle fault ids") && t.contains(CODE_REPLAY),
            "{cmd:?}: the message names the lifecycle faults: {t}"
        );
    }
}

#[test]
fn the_reference_command_takes_a_lifecycle_fault() {
    use std::io::BufRead;
    let mut child = bin()
        .args(["reference", "--port", "0", "--fault", CODE_REPLAY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn reference");
    let mut line = String::new();
    let read = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("first line");
    let info: Value = serde_json::from_str(&line).expect("the reference's JSON first line");
    assert_eq!(info["faults"], serde_json::json!([CODE_REPLAY]), "{info}");
}

#[test]
fn lifecycle_fault_ids_are_their_own_and_check_faults_takes_them() {
    let cases = authconform::session::load_cases(None).unwrap();
    let ids: BTreeSet<&str> = reference::LIFECYCLE_FAULTS
        .iter()
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            CODE_REPLAY,
            RT_REVOCATION,
            RS_REVOCATION,
            SCOPE_REGROWTH,
            RACE
        ])
    );
    for (f, what) in reference::LIFECYCLE_FAULTS {
        assert!(f.starts_with("lifecycle."), "{f}");
        assert!(!what.is_empty(), "{f} says what it breaks");
        assert!(!reference::FAULTS.contains(f), "{f} is a case fault too");
        assert!(!cases.iter().any(|c| c.id() == *f), "{f} is a case id");
        assert!(reference::is_fault(f));
    }
    let all: Vec<String> = ids.iter().map(|f| f.to_string()).collect();
    authconform::session::check_faults(&all, &cases).expect("lifecycle ids are faults");
    // With a case fault too.
    authconform::session::check_faults(
        &[CODE_REPLAY.to_string(), "rt-concurrent".to_string()],
        &cases,
    )
    .expect("mixed with a case id");
    let e = authconform::session::check_faults(&["lifecycle.nope".to_string()], &cases)
        .expect_err("an unknown id");
    assert!(e.0.contains("\"lifecycle.nope\""), "{}", e.0);
}

// ---------------------------------------------------------------------------------------------
// Each fault at work: a sequence over HTTP, against the faulty and the compliant reference.

/// A running in-process reference and a client of it (the confidential pre-registered client,
/// so it may revoke and introspect).
struct Lab {
    r: Reference,
    http: reqwest::Client,
    origin: String,
    secret: String,
}

/// A token response's status and body.
struct Tokens {
    status: u16,
    doc: Value,
}

impl Tokens {
    fn at(&self) -> &str {
        self.doc["access_token"].as_str().unwrap_or_else(|| {
            panic!("no access token: {} {}", self.status, self.doc);
        })
    }
    fn rt(&self) -> &str {
        self.doc["refresh_token"].as_str().unwrap_or_else(|| {
            panic!("no refresh token: {} {}", self.status, self.doc);
        })
    }
    fn ok(self) -> Self {
        assert_eq!(self.status, 200, "{}", self.doc);
        self
    }
    fn error(&self) -> &str {
        self.doc["error"].as_str().unwrap_or("")
    }
}

const CLIENT: &str = "ref-confidential";
const REDIRECT: &str = "https://client.test/cb";

/// The value of `name="txn" value="..."` in the login page.
fn txn_of(html: &str) -> String {
    let at = html
        .find("name=\"txn\" value=\"")
        .expect("the login form's txn")
        + 18;
    html[at..].split('"').next().unwrap_or("").to_string()
}

/// A query parameter of a URL.
fn query_param(u: &str, k: &str) -> Option<String> {
    url::Url::parse(u)
        .ok()?
        .query_pairs()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.into_owned())
}

impl Lab {
    async fn start(faults: &[&str]) -> Lab {
        let r = reference::start(Options {
            faults: faults.iter().map(|f| f.to_string()).collect(),
            ..Options::default()
        })
        .await
        .expect("the reference starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(r.ca.ca_pem.as_bytes()).unwrap())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let secret = r
            .clients
            .iter()
            .find(|c| c.client_id == CLIENT)
            .and_then(|c| c.secret.clone())
            .expect("the confidential client's secret");
        Lab {
            origin: format!("https://127.0.0.1:{}", r.addr.port()),
            r,
            http,
            secret,
        }
    }

    fn stop(self) {
        self.r.shutdown();
    }

    /// A code for `scope`: authorize, the login form, consent. Returns it with its verifier.
    async fn authorize(&self, scope: &str) -> (String, String) {
        let verifier = format!("v{}", "x".repeat(50)) + &rand_suffix();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let page = self
            .http
            .get(format!("{}/as/authorize", self.origin))
            .query(&[
                ("response_type", "code"),
                ("client_id", CLIENT),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
                ("state", "s1"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", &self.r.resource),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200, "the login page");
        let txn = txn_of(&page.text().await.unwrap());
        let login = self
            .http
            .post(format!("{}/as/login", self.origin))
            .form(&[
                ("txn", txn.as_str()),
                ("username", &self.r.username),
                ("password", &self.r.password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status().as_u16(), 303, "signed in");
        let cookie = login
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("the session cookie")
            .to_string();
        let decided = self
            .http
            .post(format!("{}/as/consent", self.origin))
            .header("cookie", cookie)
            .form(&[("txn", txn.as_str()), ("decision", "approve")])
            .send()
            .await
            .unwrap();
        let location = decided
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("the authorization response")
            .to_string();
        let code = query_param(&location, "code").expect("a code");
        (code, verifier)
    }

    async fn token(&self, form: &[(&str, &str)]) -> Tokens {
        let r = self
            .http
            .post(format!("{}/as/token", self.origin))
            .basic_auth(CLIENT, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let doc = r.json().await.unwrap_or(Value::Null);
        Tokens { status, doc }
    }

    async fn redeem(&self, code: &(String, String)) -> Tokens {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", &code.0),
            ("code_verifier", &code.1),
            ("redirect_uri", REDIRECT),
        ])
        .await
    }

    async fn refresh(&self, rt: &str, scope: Option<&str>) -> Tokens {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token(&form).await
    }

    /// Tokens from a new authorization, then refreshed `n` times (each rotation's result).
    async fn family(&self, scope: &str, n: usize) -> Vec<Tokens> {
        let code = self.authorize(scope).await;
        let mut out = vec![self.redeem(&code).await.ok()];
        for _ in 0..n {
            let next = self.refresh(out.last().unwrap().rt(), None).await.ok();
            out.push(next);
        }
        out
    }

    async fn revoke(&self, token: &str, hint: &str) -> u16 {
        self.http
            .post(format!("{}/as/revoke", self.origin))
            .basic_auth(CLIENT, Some(&self.secret))
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/as/introspect", self.origin))
            .basic_auth(CLIENT, Some(&self.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn active(&self, token: &str) -> bool {
        self.introspect(token).await["active"] == true
    }

    /// `/mcp` with the access token: `initialize`, or a call of `tool`. The status.
    async fn mcp(&self, at: &str, tool: Option<&str>) -> u16 {
        let body = match tool {
            Some(t) => serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                           "params": { "name": t, "arguments": {} } }),
            None => serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                            "clientInfo": { "name": "t", "version": "0" } } }),
        };
        self.http
            .post(&self.r.resource)
            .bearer_auth(at)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn rand_suffix() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

/// Runs a sequence whose verdict depends on a short window of the reference (access tokens
/// live 3 s, the race fault's grace 2 s): one that took longer than `budget` (a loaded machine)
/// proves nothing and runs again, at most three times; one within it is judged.
async fn within<F, Fut>(budget: Duration, attempt: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    for _ in 0..3 {
        let started = Instant::now();
        let r = attempt().await;
        match r {
            Ok(()) => return,
            Err(e) if started.elapsed() < budget => panic!("{e}"),
            Err(_) => {}
        }
    }
    panic!("three attempts each took longer than {budget:?}: the machine is too slow to judge");
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_replay_after_refresh_redeems_the_code_again() {
    for faulty in [true, false] {
        let lab = Lab::start(if faulty { &[CODE_REPLAY] } else { &[] }).await;
        // Before any refresh the code is single-use under the fault too.
        let code = lab.authorize("mcp:tools").await;
        lab.redeem(&code).await.ok();
        let early = lab.redeem(&code).await;
        assert_eq!((early.status, early.error()), (400, "invalid_grant"));

        let label = if faulty { "faulty" } else { "compliant" };
        {
            let lab = &lab;
            within(Duration::from_millis(2500), move || async move {
                let code = lab.authorize("mcp:tools").await;
                let t0 = lab.redeem(&code).await.ok();
                let t1 = lab.refresh(t0.rt(), None).await.ok();
                let replay = lab.redeem(&code).await;
                if faulty {
                    check(replay.status == 200, || {
                        format!("{label}: the replay after a refresh: {}", replay.doc)
                    })?;
                    check(replay.at() != t1.at() && replay.at() != t0.at(), || {
                        "fresh tokens".into()
                    })?;
                    // No family revocation: the refreshed tokens still work.
                    check(
                        lab.active(t1.at()).await && lab.active(t1.rt()).await,
                        || format!("{label}: the family survives the replay"),
                    )?;
                } else {
                    check(
                        replay.status == 400 && replay.error() == "invalid_grant",
                        || format!("{label}: the replay: {} {}", replay.status, replay.doc),
                    )?;
                }
                Ok(())
            })
            .await;
        }
        lab.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt_revocation_later_generation_leaves_the_token_working() {
    for faulty in [true, false] {
        let lab = Lab::start(if faulty { &[RT_REVOCATION] } else { &[] }).await;
        // Generation 1 is revoked under the fault too (rt-after-revocation checks it).
        let g1 = lab.family("mcp:tools", 1).await;
        assert_eq!(lab.revoke(g1[1].rt(), "refresh_token").await, 200);
        let after = lab.refresh(g1[1].rt(), None).await;
        assert_eq!((after.status, after.error()), (400, "invalid_grant"));

        // Generation 2.
        let g2 = lab.family("mcp:tools", 2).await;
        let rt = g2[2].rt();
        assert_eq!(lab.revoke(rt, "refresh_token").await, 200);
        let after = lab.refresh(rt, None).await;
        if faulty {
            assert_eq!(
                after.status, 200,
                "the revoked token refreshes: {}",
                after.doc
            );
        } else {
            assert_eq!((after.status, after.error()), (400, "invalid_grant"));
            assert!(!lab.active(rt).await);
        }
        lab.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_revocation_later_generation_is_still_accepted_at_the_mcp_endpoint() {
    for faulty in [true, false] {
        let lab = Lab::start(if faulty { &[RS_REVOCATION] } else { &[] }).await;
        let label = if faulty { "faulty" } else { "compliant" };
        {
            let lab = &lab;
            within(Duration::from_millis(2500), move || async move {
                // Generation 1, revoked directly: refused under the fault too.
                let g1 = lab.family("mcp:tools", 1).await;
                let at1 = g1[1].at();
                check(lab.mcp(at1, None).await == 200, || "the live token".into())?;
                check(lab.revoke(at1, "access_token").await == 200, || {
                    "revoked".into()
                })?;
                let refused = lab.mcp(at1, None).await;
                check(refused == 401, || {
                    format!("{label}: generation 1 after revocation: {refused}")
                })?;

                // Generation 2, revoked directly.
                let g2 = lab.family("mcp:tools", 2).await;
                let at2 = g2[2].at();
                check(lab.revoke(at2, "access_token").await == 200, || {
                    "revoked".into()
                })?;
                check(!lab.active(at2).await, || {
                    format!("{label}: introspection says inactive")
                })?;
                let status = lab.mcp(at2, None).await;
                let expected = if faulty { 200 } else { 401 };
                check(status == expected, || {
                    format!("{label}: generation 2 after revocation: {status}, not {expected}")
                })?;

                // Generation 2, revoked by the cascade of its refresh token's revocation.
                let g2 = lab.family("mcp:tools", 2).await;
                check(lab.revoke(g2[2].rt(), "refresh_token").await == 200, || {
                    "revoked".into()
                })?;
                check(!lab.active(g2[2].at()).await, || "cascaded".into())?;
                let status = lab.mcp(g2[2].at(), None).await;
                check(status == expected, || {
                    format!("{label}: generation 2 after the cascade: {status}, not {expected}")
                })
            })
            .await;
        }
        lab.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_scope_regrowth_regrows_a_narrow_grant() {
    const FULL: &str = "mcp:tools mcp:admin";
    for faulty in [true, false] {
        let lab = Lab::start(if faulty { &[SCOPE_REGROWTH] } else { &[] }).await;
        // Generation 0 is checked against the grant under the fault too (rt-scope-escalation).
        let g0 = lab.family("mcp:tools", 0).await;
        let up = lab.refresh(g0[0].rt(), Some(FULL)).await;
        assert_eq!((up.status, up.error()), (400, "invalid_scope"));

        // Generation 1.
        let g1 = lab.family("mcp:tools", 1).await;
        let up = lab.refresh(g1[1].rt(), Some(FULL)).await;
        if faulty {
            assert_eq!(up.status, 200, "{}", up.doc);
            assert_eq!(up.doc["scope"], FULL, "the access token's scope");
            // The refresh token regrew too.
            assert_eq!(lab.introspect(up.rt()).await["scope"], FULL);
            // The regrown token reaches what only mcp:admin may; the narrow one does not.
            assert_eq!(lab.mcp(g1[1].at(), Some("admin_reset")).await, 403);
            assert_eq!(lab.mcp(up.at(), Some("admin_reset")).await, 200);
        } else {
            assert_eq!((up.status, up.error()), (400, "invalid_scope"));
            // The family keeps its scope.
            assert_eq!(lab.introspect(g1[1].rt()).await["scope"], "mcp:tools");
        }
        lab.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_race_later_generation_forks_the_family() {
    for faulty in [true, false] {
        let lab = Lab::start(if faulty { &[RACE] } else { &[] }).await;
        // Generation 0: reuse is detected under the fault too.
        let g0 = lab.family("mcp:tools", 1).await;
        let reuse = lab.refresh(g0[0].rt(), None).await;
        assert_eq!((reuse.status, reuse.error()), (400, "invalid_grant"));
        assert!(!lab.active(g0[1].rt()).await, "the family is revoked");

        let label = if faulty { "faulty" } else { "compliant" };
        {
            let lab = &lab;
            within(Duration::from_millis(1500), move || async move {
                // Generation 1, spent by a refresh, used again at once.
                let g = lab.family("mcp:tools", 2).await;
                let spent = g[1].rt();
                let again = lab.refresh(spent, None).await;
                if faulty {
                    check(again.status == 200, || {
                        format!("{label}: the spent token: {} {}", again.status, again.doc)
                    })?;
                    // Two live branches of one family.
                    check(again.rt() != g[2].rt(), || "a new branch".into())?;
                    check(
                        lab.active(again.rt()).await && lab.active(g[2].rt()).await,
                        || format!("{label}: both branches live"),
                    )
                } else {
                    check(
                        again.status == 400 && again.error() == "invalid_grant",
                        || format!("{label}: the spent token: {} {}", again.status, again.doc),
                    )?;
                    check(!lab.active(g[2].rt()).await, || {
                        format!("{label}: reuse revokes the family")
                    })
                }
            })
            .await;
        }
        lab.stop();
    }
}
