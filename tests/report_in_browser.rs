//! report.html opened in a real browser (headless Chromium over the DevTools pipe, as the
//! browser login driver drives it): a passing report, a failing one (the reference with a
//! fault) and one full of attack strings. Each must load without a console error, a JS
//! exception or a CSP violation; its one script must be the page's own and must run (the filter
//! bar appears only then); nothing from the evidence may be live markup; and the filters must
//! filter. A screenshot of each is saved under `<target>/report-screenshots/` with its HTML.
//!
//! Skipped, saying why, when no Chromium is found (CI installs Debian's `chromium`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authconform::login::devtools::{self, Cdp, Event};
use authconform::record::{
    CaseResult, Exchange, IncidentRecord, Level, Outcome, OutcomeState, RunReport, SpecInfo,
    Status, TargetInfo,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium() -> Option<PathBuf> {
    match devtools::locate(
        None,
        std::env::var_os("AUTHCONFORM_CHROMIUM"),
        std::env::var_os("PATH"),
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("SKIPPED: report_in_browser needs Chromium: {e}");
            None
        }
    }
}

/// What loading a page produced.
struct Loaded {
    session: String,
    target: String,
    load_ms: u128,
    problems: Vec<String>,
}

/// Events that mean something went wrong on the page: exceptions, console errors, CSP
/// violations (Chromium logs those as errors, and reports them as issues).
fn problem(e: &Event) -> Option<String> {
    let (method, p) = e;
    match method.as_str() {
        "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
        "Runtime.consoleAPICalled"
            if matches!(p["type"].as_str(), Some("error" | "warning" | "assert")) =>
        {
            Some(format!("console.{}: {}", p["type"], p["args"]))
        }
        "Log.entryAdded" if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) => {
            Some(format!("log: {}", p["entry"]["text"]))
        }
        "Audits.issueAdded" => Some(format!("issue: {}", p["issue"]["code"])),
        _ => None,
    }
}

async fn open(cdp: &Arc<Cdp>, file: &Path) -> Loaded {
    let t = cdp
        .call(None, "Target.createTarget", json!({"url": "about:blank"}))
        .await
        .unwrap();
    let target = t["targetId"].as_str().unwrap().to_owned();
    let a = cdp
        .call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )
        .await
        .unwrap();
    let session = a["sessionId"].as_str().unwrap().to_owned();
    let mut events: UnboundedReceiver<Event> = cdp.events(&session);
    let s = Some(session.as_str());
    for domain in ["Page", "Runtime", "Log", "Audits"] {
        cdp.call(s, &format!("{domain}.enable"), json!({}))
            .await
            .unwrap();
    }
    // A phone-sized viewport is what the screenshot shows last; first a desktop one.
    cdp.call(
        s,
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1200, "height": 1600, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await
    .unwrap();
    let url = format!("file://{}", file.display());
    let t0 = Instant::now();
    cdp.call(s, "Page.navigate", json!({"url": url}))
        .await
        .unwrap();
    let mut problems = Vec::new();
    let mut load_ms = None;
    // Bounded: the load event, then a short while for late errors.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wait = match load_ms {
            Some(_) => Duration::from_millis(300),
            None => deadline.saturating_duration_since(tokio::time::Instant::now()),
        };
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(e)) => {
                if e.0 == "Page.loadEventFired" && load_ms.is_none() {
                    load_ms = Some(t0.elapsed().as_millis());
                }
                problems.extend(problem(&e));
            }
            Ok(None) => panic!("Chromium went away"),
            Err(_) => break,
        }
    }
    Loaded {
        session,
        target,
        load_ms: load_ms.expect("the page fired its load event within 30 s"),
        problems,
    }
}

async fn eval(cdp: &Cdp, session: &str, js: &str) -> Value {
    let r = cdp
        .call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true}),
        )
        .await
        .unwrap();
    assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
    r["result"]["value"].clone()
}

async fn screenshot(cdp: &Cdp, session: &str, name: &str) -> PathBuf {
    use base64::Engine;
    let r = cdp
        .call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        )
        .await
        .unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(r["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = out_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

/// Loads `html` (saved as `<name>.html`) and runs the checks every report must pass; returns
/// the page's session for more.
async fn check(cdp: &Arc<Cdp>, name: &str, html: &str) -> (Loaded, Value) {
    common::assert_inert_html(html);
    let file = out_dir().join(format!("{name}.html"));
    std::fs::write(&file, html).unwrap();
    let page = open(cdp, &file).await;
    assert!(
        page.problems.is_empty(),
        "{name}: the page reported problems: {:#?}",
        page.problems
    );
    let s = page.session.as_str();
    // What the live DOM holds, whatever the parser made of the source.
    let dom = eval(
        cdp,
        s,
        r#"(() => {
            const all = Array.from(document.querySelectorAll('*'));
            return {
                scripts: document.scripts.length,
                handlers: all.filter(e => Array.from(e.attributes).some(a => /^on/i.test(a.name))).length,
                embeds: document.querySelectorAll('iframe,img,object,embed,frame,video,audio,link,base,form,foreignObject,image,use').length,
                outside: all.filter(e => ['href','src','action','formaction','xlink:href'].some(n => { const v = e.getAttribute(n); return v !== null && !v.startsWith('#'); })).length,
                pwned: typeof window.__pwned,
                filters: !document.getElementById('filters').hidden,
                cases: document.querySelectorAll('details.case').length,
                shown: Array.from(document.querySelectorAll('details.case')).filter(c => !c.hidden).length,
                count: document.getElementById('f-count').textContent,
            };
        })()"#,
    )
    .await;
    assert_eq!(dom["scripts"], 1, "{name}: {dom}");
    assert_eq!(dom["handlers"], 0, "{name}: {dom}");
    assert_eq!(dom["embeds"], 0, "{name}: {dom}");
    assert_eq!(dom["outside"], 0, "{name}: {dom}");
    assert_eq!(dom["pwned"], "undefined", "{name}: {dom}");
    // The filter bar shows only once the page's script ran: its hash matched the CSP.
    assert_eq!(
        dom["filters"], true,
        "{name}: the script did not run: {dom}"
    );
    assert_eq!(dom["cases"], dom["shown"], "{name}: {dom}");
    (page, dom)
}

/// Sets the filters (status, level, area, text) and returns how many cases are shown.
async fn filter(cdp: &Cdp, s: &str, status: &str, level: &str, area: &str, text: &str) -> u64 {
    let js = format!(
        r#"(() => {{
            const set = (id, v, ev) => {{ const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event(ev)); }};
            set('f-status', {status:?}, 'change'); set('f-level', {level:?}, 'change');
            set('f-area', {area:?}, 'change'); set('f-text', {text:?}, 'input');
            return Array.from(document.querySelectorAll('details.case')).filter(c => !c.hidden).length;
        }})()"#
    );
    eval(cdp, s, &js).await.as_u64().unwrap()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_authconform"))
}

/// A run against the built-in reference, its report.html read back.
fn reference_report(dir: &Path, args: &[&str]) -> (String, RunReport) {
    let o = bin()
        .args(["run", "--no-color", "--report-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let json: RunReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    (html, json)
}

const ATTACKS: &[&str] = &[
    "<script>window.__pwned=1</script>",
    "\"><img src=x onerror=\"window.__pwned=2\">",
    "'><svg onload=window.__pwned=3>",
    "</style><script>window.__pwned=4</script>",
    "</script><script>window.__pwned=5</script>",
    "<iframe src=javascript:window.__pwned=6>",
    "<a href=\"javascript:window.__pwned=7\">x</a>",
    "<meta http-equiv=refresh content=\"0;url=https://evil.test\">",
    "<base href=\"https://evil.test/\">",
    "<svg><foreignObject><img src=x onerror=window.__pwned=8></foreignObject></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=9>",
    "\u{1b}[2J\u{202e}txt.exe <!-- ]]> &amp; {{ x }} ${x} `id`",
];

/// A report in which every string a server could influence is an attack.
fn hostile_report() -> RunReport {
    let all = ATTACKS.concat();
    let exchange = |i: usize| Exchange {
        note: format!("{i} {all}"),
        method: format!("GET{}", ATTACKS[i % ATTACKS.len()]),
        url: format!("https://127.0.0.1:1/{}", ATTACKS[i % ATTACKS.len()]),
        request_headers: vec![(format!("x-{}", ATTACKS[1]), all.clone())],
        request_body: Some(all.clone()),
        status: Some(400 + i as u16),
        response_headers: vec![("content-type".into(), ATTACKS[i % ATTACKS.len()].into())],
        response_body: Some(format!("{i}{all}")),
        body_truncated: false,
        error: (i % 3 == 0).then(|| all.clone()),
        duration_ms: 3,
    };
    let results: Vec<CaseResult> = (0..ATTACKS.len())
        .map(|i| CaseResult {
            id: format!("case-{i}{}", ATTACKS[i]),
            area: ATTACKS[(i + 1) % ATTACKS.len()].into(),
            level: [Level::Must, Level::Should, Level::May, Level::Info][i % 4],
            role: ATTACKS[i].into(),
            title: format!("title {}", ATTACKS[i]),
            refs: vec![ATTACKS[i].into()],
            status: [
                Status::Failed,
                Status::Errored,
                Status::Passed,
                Status::Skipped,
            ][i % 4],
            warning: false,
            message: format!("{} {}", ATTACKS[i], ATTACKS[(i + 2) % ATTACKS.len()]),
            details: ATTACKS.iter().map(|s| s.to_string()).collect(),
            spec: "2025-11-25".into(),
            duration_ms: 1,
            exchanges: (0..3).map(|k| exchange(i + k)).collect(),
            incident: (i == 5).then(|| "down-1".to_owned()),
            blocked_by: None,
            quote: Some(authconform::record::Quote {
                text: all.clone(),
                source: ATTACKS[i].into(),
                note: Some(ATTACKS[i].into()),
            }),
            test_users: vec![],
        })
        .collect();
    RunReport {
        tool: "authconform".into(),
        version: "0.1.0".into(),
        target: TargetInfo {
            kind: "resource".into(),
            resource: Some(format!("https://127.0.0.1:1/{}", ATTACKS[0])),
            issuer: Some(format!("javascript:window.__pwned=10//{}", ATTACKS[1])),
            faults: ATTACKS.iter().map(|s| s.to_string()).collect(),
            name: Some(ATTACKS[2].into()),
        },
        spec: SpecInfo {
            graded: ATTACKS[3].into(),
            source: "auto".into(),
            detection: all.clone(),
        },
        started_at: ATTACKS[4].into(),
        duration_ms: 1,
        interrupted: false,
        summary: RunReport::summarize(&results),
        incidents: vec![IncidentRecord {
            id: "down-1".into(),
            kind: ATTACKS[2].into(),
            origin: Some(ATTACKS[0].into()),
            at: ATTACKS[1].into(),
            reason: all.clone(),
            cases: vec![results[5].id.clone()],
        }],
        unstable: None,
        provision: None,
        shard: None,
        merged: None,
        outcome: Some(Outcome {
            state: OutcomeState::Failed,
            exit_code: 1,
            reason: all,
            expect: None,
        }),
        results,
        fuzz: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_load_clean_and_filter_in_chromium() {
    let Some(exe) = chromium() else { return };
    let cdp = Cdp::launch(&exe).unwrap();
    // The first answer says it started; a cold start can take a few seconds.
    tokio::time::timeout(
        Duration::from_secs(60),
        cdp.call(None, "Browser.getVersion", json!({})),
    )
    .await
    .expect("Chromium started")
    .unwrap();

    // The detector is not blind: a page whose inline script is not in its CSP is reported.
    let control = out_dir().join("csp-control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">\
         <script>window.__pwned=1</script><p>control</p>",
    )
    .unwrap();
    let c = open(&cdp, &control).await;
    assert!(
        !c.problems.is_empty(),
        "a CSP violation went unnoticed: the checks below would prove nothing"
    );
    assert_eq!(
        eval(&cdp, &c.session, "typeof window.__pwned").await,
        "undefined"
    );

    let work = tempfile::tempdir().unwrap();
    let mut shots = Vec::new();

    // Passing: a few areas of the reference.
    let (html, _) = reference_report(
        &work.path().join("pass"),
        &["--only", "prm-*", "--only", "asm-*"],
    );
    let (page, dom) = check(&cdp, "passing", &html).await;
    let s = page.session.as_str();
    let all = dom["cases"].as_u64().unwrap();
    assert!(all > 10, "{dom}");
    assert_eq!(filter(&cdp, s, "failed", "", "", "").await, 0);
    assert_eq!(
        filter(&cdp, s, "", "MUST", "prm", "").await,
        eval(
            &cdp,
            s,
            "document.querySelectorAll('details.case[data-level=MUST][data-area=prm]').length"
        )
        .await
        .as_u64()
        .unwrap()
    );
    assert_eq!(filter(&cdp, s, "", "", "", "prm-https").await, 1);
    assert_eq!(filter(&cdp, s, "", "", "", "").await, all);
    let v = eval(&cdp, s, "document.querySelector('.verdict').className").await;
    assert_eq!(v, "verdict o-passed");
    shots.push(screenshot(&cdp, s, "passing").await);
    eprintln!("passing report: loaded in {} ms", page.load_ms);

    // Failing: the reference with faults, causes first.
    let (html, json) = reference_report(
        &work.path().join("fail"),
        &[
            "--only",
            "prm-*",
            "--only",
            "asm-*",
            "--only",
            "code-*",
            "--reference-fault",
            "asm-cimd-flag",
            "--reference-fault",
            "code-single-use",
        ],
    );
    let (page, _) = check(&cdp, "failing", &html).await;
    let s = page.session.as_str();
    let failed = json
        .results
        .iter()
        .filter(|r| r.status == Status::Failed && !r.warning)
        .count() as u64;
    assert!(failed >= 2, "the faults made cases fail");
    assert_eq!(filter(&cdp, s, "failed", "", "", "").await, failed);
    assert_eq!(filter(&cdp, s, "failed", "", "", "asm-cimd-flag").await, 1);
    filter(&cdp, s, "", "", "", "").await;
    let v = eval(&cdp, s, "[document.querySelector('.verdict').className, document.querySelectorAll('section.cause').length, document.querySelector('main > *').className]").await;
    assert_eq!(v[0], "verdict o-failed", "{v}");
    assert!(v[1].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v[2], "verdict o-failed", "the verdict comes first: {v}");
    shots.push(screenshot(&cdp, s, "failing").await);
    // On a phone: nothing wider than the screen but the scrollable blocks.
    cdp.call(
        Some(s),
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await
    .unwrap();
    let wide = eval(&cdp, s, "document.documentElement.scrollWidth").await;
    assert!(
        wide.as_u64().unwrap() <= 390 + 2,
        "page wider than a phone: {wide}"
    );
    shots.push(screenshot(&cdp, s, "failing-phone").await);

    // Hostile: nothing live, everything visible as text.
    let report = hostile_report();
    let html = authconform::report::html::to_string(&report);
    let (page, dom) = check(&cdp, "hostile", &html).await;
    let s = page.session.as_str();
    assert_eq!(dom["cases"], ATTACKS.len());
    let text = eval(&cdp, s, "document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("<script>window.__pwned=1</script>")
    );
    // Every exchange's curl line is one line of printable ASCII.
    let curls = eval(
        &cdp,
        s,
        "Array.from(document.querySelectorAll('pre.curl')).map(p => p.textContent)",
    )
    .await;
    for c in curls.as_array().unwrap() {
        let c = c.as_str().unwrap();
        assert!(c.bytes().all(|b| (0x20..0x7f).contains(&b)), "{c:?}");
    }
    // Typing an attack string into the text filter is only a search.
    filter(&cdp, s, "", "", "", ATTACKS[0]).await;
    assert_eq!(eval(&cdp, s, "typeof window.__pwned").await, "undefined");
    shots.push(screenshot(&cdp, s, "hostile").await);

    // An optional big report (the full reference run), for the load time.
    if let Some(p) = std::env::var_os("AUTHCONFORM_REPORT_HTML") {
        let html = std::fs::read_to_string(&p).unwrap();
        let (page, dom) = check(&cdp, "given", &html).await;
        eprintln!(
            "{}: {} bytes, {} cases, loaded in {} ms",
            Path::new(&p).display(),
            html.len(),
            dom["cases"],
            page.load_ms
        );
        shots.push(screenshot(&cdp, &page.session, "given").await);
    }
    for p in &shots {
        eprintln!("screenshot: {}", p.display());
    }
    for t in [&c.target, &page.target] {
        cdp.post(None, "Target.closeTarget", json!({"targetId": t}));
    }
}
