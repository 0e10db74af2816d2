//! The suite against a hostile server.
//!
//! A target under test is untrusted input: it can put markup and terminal escapes in every field
//! and header, send bodies that are huge, never end or are not UTF-8, and redirect to itself. This
//! test serves all of that from a local plain-HTTP server, runs the real binary against it, and
//! checks that the run completes (every case gets a verdict, nothing hangs or panics) and that
//! every report stays inert: no markup or terminal control that the server sent survives as
//! something a browser, a CI dashboard or a terminal would act on.
//!
//! Hostile layout (issuer `http://127.0.0.1:PORT/as`, named by the PRM):
//!
//! | path                                            | behaviour                                  |
//! |-------------------------------------------------|--------------------------------------------|
//! | `/mcp`                                          | 401, hostile challenge and JSON body       |
//! | `/.well-known/oauth-protected-resource/mcp`     | PRM whose fields are all attack strings    |
//! | `/.well-known/oauth-protected-resource`         | 302 to itself (redirect loop)              |
//! | `/.well-known/oauth-authorization-server/as`    | 5 MiB streamed JSON (complete, but huge)   |
//! | `/.well-known/openid-configuration/as`          | invalid UTF-8 labelled `application/json`  |
//! | `/as/.well-known/openid-configuration`          | a body that never ends                     |
//! | anything else                                   | 404 HTML with scripts and raw escapes      |

mod common;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_authconform");

/// The `--timeout` given to the suite, in seconds: the never-ending body must be cut at this.
const SUITE_TIMEOUT_SECS: u64 = 3;
/// The `--max-body` given to the suite: far below the huge body.
const SUITE_MAX_BODY: usize = 64 * 1024;
/// Wall-clock bound on the whole run: past this the suite is hung, whatever it is doing.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Size of the huge body. Many times the cap, so a client that does not stop reading would
/// show up as a slow run, and (being complete, valid JSON) as a usable document.
const HUGE_BYTES: usize = 5 << 20;

/// Attack strings as they end up once a JSON parser has decoded them: markup, attribute
/// breakout, ANSI CSI/OSC with BEL, a C1 CSI, a bidi override, a `javascript:` link, a NUL.
const NASTY: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>\
    \x1b[2J\x1b]0;pwned\x07\x1b[31mRED \u{9b}31m \u{202E}txt.exe \
    <iframe src=javascript:alert(1)></iframe><a href=\"https://evil.example/\">x</a> nul:\0";

/// Bytes for header values. The `http` crate refuses C0 controls in values, but obs-text
/// (0x80..=0xFF) is legal on the wire: `C2 9B` decodes to the C1 CSI U+009B, a lone `9B` is
/// invalid UTF-8, and `E2 80 AE` is U+202E RIGHT-TO-LEFT OVERRIDE.
const NASTY_HEADER: &[u8] =
    b"<script>alert(1)</script>\"><img src=x onerror=alert(1)> \xc2\x9b31m \x9b2J \xe2\x80\xaetxt.exe";

/// Raw bytes for bodies that are not JSON: real ESC, BEL, NUL and CR bytes, plus the HTML a
/// browser would run if a report ever echoed it unescaped.
const NASTY_HTML: &[u8] = b"<!doctype html><html><head>\
    <meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">\
    <script>alert(document.cookie)</script><SCRIPT SRC=//evil.example/x.js></SCRIPT>\
    <base href=\"https://evil.example/\"><link rel=stylesheet href=\"https://evil.example/x.css\">\
    </head><body onload=alert(1)><img src=x onerror=alert(1)>\
    <iframe src=\"https://evil.example/\"></iframe><svg onload=alert(1)></svg>\
    \x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mRED\x1b[0m \xc2\x9b31m \xe2\x80\xaetxt.exe nul:\x00 cr:\rOVERWRITE\
    </body></html>";

/// How often each hostile behaviour was served: proves the run actually met each one.
#[derive(Default)]
struct Hits {
    mcp: AtomicUsize,
    prm: AtomicUsize,
    redirect: AtomicUsize,
    huge: AtomicUsize,
    invalid_utf8: AtomicUsize,
    endless: AtomicUsize,
    other: AtomicUsize,
}

struct Server {
    origin: String,
    hits: Hits,
}

impl Server {
    fn issuer(&self) -> String {
        format!("{}/as", self.origin)
    }
}

/// Every response carries hostile headers too: they are recorded and rendered like the body.
fn hostile_response(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "x-hostile",
        HeaderValue::from_bytes(NASTY_HEADER).expect("obs-text is a legal header value"),
    );
    h.insert(
        header::LINK,
        HeaderValue::from_static("<javascript:alert(1)>; rel=\"stylesheet\""),
    );
    h.insert(
        "refresh",
        HeaderValue::from_static("0; url=javascript:alert(1)"),
    );
    r
}

fn json_body(v: &Value) -> Body {
    Body::from(serde_json::to_vec(v).expect("JSON serializes"))
}

async fn hostile(State(s): State<Arc<Server>>, req: Request) -> Response {
    let o = &s.origin;
    let path = req.uri().path();
    match path {
        "/mcp" => {
            s.hits.mcp.fetch_add(1, Ordering::Relaxed);
            // A challenge that still parses (so discovery goes on to the hostile PRM), with the
            // attack in its other parameters.
            let mut challenge = format!(
                "Bearer resource_metadata=\"{o}/.well-known/oauth-protected-resource/mcp\", \
                 error_description=\"\\\"><img src=x onerror=alert(1)>\", scope=\""
            )
            .into_bytes();
            // Quote-escaped (RFC 9110 quoted-pair) so the value stays one quoted-string.
            for &b in NASTY_HEADER {
                if matches!(b, b'"' | b'\\') {
                    challenge.push(b'\\');
                }
                challenge.push(b);
            }
            challenge.push(b'"');
            let mut r = hostile_response(
                StatusCode::UNAUTHORIZED,
                "application/json",
                json_body(&json!({
                    "jsonrpc": "2.0", "id": 1,
                    "error": { "code": -32001, "message": NASTY, "data": { NASTY: NASTY } }
                })),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_bytes(&challenge).expect("obs-text is a legal header value"),
            );
            r
        }
        "/.well-known/oauth-protected-resource/mcp" => {
            s.hits.prm.fetch_add(1, Ordering::Relaxed);
            // `resource` and `authorization_servers` are right, so the AS cases go on to the
            // hostile AS URLs; everything else is an attack string.
            hostile_response(
                StatusCode::OK,
                "application/json",
                json_body(&json!({
                    "resource": format!("{o}/mcp"),
                    "authorization_servers": [s.issuer()],
                    "scopes_supported": [
                        "<script>alert(1)</script>",
                        "\"><img src=x onerror=alert(1)>",
                        "\x1b[2J\x1b]0;pwned\x07",
                        "\u{202E}txt.exe",
                        NASTY
                    ],
                    "bearer_methods_supported": ["header", NASTY],
                    "resource_name": NASTY,
                    "resource_documentation": "javascript:alert(1)",
                    "jwks_uri": "data:text/html,<script>alert(1)</script>",
                    NASTY: NASTY
                })),
            )
        }
        "/.well-known/oauth-protected-resource" => {
            s.hits.redirect.fetch_add(1, Ordering::Relaxed);
            // A redirect loop: a client that followed redirects would never get anywhere.
            let mut r = hostile_response(StatusCode::FOUND, "text/html", Body::from(NASTY_HTML));
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("{o}{path}")).expect("URL is a header value"),
            );
            r
        }
        "/.well-known/oauth-authorization-server/as" => {
            s.hits.huge.fetch_add(1, Ordering::Relaxed);
            hostile_response(StatusCode::OK, "application/json", huge_body(&s.issuer()))
        }
        "/.well-known/openid-configuration/as" => {
            s.hits.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            // JSON-shaped, labelled JSON, but not UTF-8: lone continuation bytes, an overlong
            // `/`, an encoded surrogate, raw ESC and C1 bytes inside a string.
            let mut b =
                format!("{{\"issuer\":\"{}\",\"token_endpoint\":\"", s.issuer()).into_bytes();
            b.extend_from_slice(
                b"\xff\xfe\xc0\xaf\xed\xa0\x80<script>alert(1)</script>\x1b[31m\x9b2J\xc2\x9b",
            );
            b.extend_from_slice(b"\"}");
            hostile_response(StatusCode::OK, "application/json", Body::from(b))
        }
        "/as/.well-known/openid-configuration" => {
            s.hits.endless.fetch_add(1, Ordering::Relaxed);
            hostile_response(
                StatusCode::OK,
                "application/json",
                endless_body(&s.issuer()),
            )
        }
        _ => {
            s.hits.other.fetch_add(1, Ordering::Relaxed);
            hostile_response(StatusCode::NOT_FOUND, "text/html", Body::from(NASTY_HTML))
        }
    }
}

/// One repetition of the padding inside a JSON string: JSON-escaped ESC, raw bidi override.
const PAD: &str = "<script>alert(1)</script>\\u001b[2J\u{202E}";

/// A complete, valid JSON metadata document of [`HUGE_BYTES`], streamed in chunks (chunked
/// encoding, no Content-Length): only the client's own cap can stop it being read whole.
fn huge_body(issuer: &str) -> Body {
    let head = Bytes::from(format!("{{\"issuer\":\"{issuer}\",\"padding\":\""));
    let chunk = Bytes::from(PAD.repeat((64 << 10) / PAD.len()));
    let n = HUGE_BYTES / chunk.len() + 1;
    let parts = std::iter::once(head)
        .chain(std::iter::repeat_n(chunk, n))
        .chain(std::iter::once(Bytes::from_static(b"\"}")))
        .map(Ok::<_, Infallible>);
    Body::from_stream(futures_util::stream::iter(parts))
}

/// A 200 whose body keeps coming: small chunks, small sleeps, so it stays under `--max-body` and
/// only the suite's `--timeout` can end the exchange. It gives up after [`RUN_LIMIT`] only so a
/// broken suite cannot keep this test's server busy for ever; to the suite it never ends.
fn endless_body(issuer: &str) -> Body {
    const TICK: Duration = Duration::from_millis(50);
    let head = Bytes::from(format!("{{\"issuer\":\"{issuer}\",\"padding\":\""));
    let chunk = Bytes::from(PAD.repeat(8));
    let ticks = (RUN_LIMIT.as_millis() / TICK.as_millis()) as usize;
    let s = futures_util::stream::unfold(0usize, move |i| {
        let (head, chunk) = (head.clone(), chunk.clone());
        async move {
            if i == 0 {
                return Some((Ok::<_, Infallible>(head), 1));
            }
            if i > ticks {
                return None;
            }
            tokio::time::sleep(TICK).await;
            Some((Ok(chunk), i + 1))
        }
    });
    Body::from_stream(s)
}

/// Starts the hostile server on 127.0.0.1 in `rt`; returns its shared state.
fn start_server(rt: &tokio::runtime::Runtime) -> Arc<Server> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let state = Arc::new(Server {
        origin: format!("http://127.0.0.1:{port}"),
        hits: Hits::default(),
    });
    let app = Router::new().fallback(hostile).with_state(state.clone());
    let _guard = rt.enter();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    rt.spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("hostile server runs");
    });
    state
}

/// Output of one run of the binary.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    elapsed: Duration,
}

/// Runs the binary with `args`, killing it (and failing the test) after [`RUN_LIMIT`]. Output
/// goes to files rather than pipes, so a chatty run can never block on a full pipe.
fn run_bin(args: &[&str], scratch: &Path, name: &str) -> Run {
    let out_path = scratch.join(format!("{name}.stdout"));
    let err_path = scratch.join(format!("{name}.stderr"));
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("start authconform");
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for authconform") {
            break st;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`authconform {}` still running after {RUN_LIMIT:?}: killed\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
        elapsed: started.elapsed(),
    }
}

/// Every exchange of every result, with the id of its case.
fn exchanges(results: &Value) -> Vec<(&str, &Value)> {
    results["results"]
        .as_array()
        .expect("results array")
        .iter()
        .flat_map(|r| {
            let id = r["id"].as_str().unwrap_or("");
            r["exchanges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |e| (id, e))
        })
        .collect()
}

fn any_string(v: &Value, pred: &dyn Fn(&str) -> bool) -> bool {
    match v {
        Value::String(s) => pred(s),
        Value::Array(a) => a.iter().any(|x| any_string(x, pred)),
        Value::Object(m) => m.iter().any(|(k, x)| pred(k) || any_string(x, pred)),
        _ => false,
    }
}

fn check_results_json(path: &Path, server: &Server, listed: &BTreeSet<String>) -> Value {
    let text = std::fs::read_to_string(path).expect("results.json written");
    let results: Value = serde_json::from_str(&text).expect("results.json parses");

    let errors = common::results_schema_errors(&results);
    assert!(
        errors.is_empty(),
        "results.json violates its schema: {errors:#?}"
    );
    // The library's own type must read it back too: the file is a contract in both directions.
    serde_json::from_str::<authconform::record::RunReport>(&text)
        .expect("results.json reads back as a RunReport");

    // The run completed: not cut short, and every case in the catalogue got a verdict.
    assert!(
        results.get("interrupted").is_none(),
        "run reported as interrupted"
    );
    let got: BTreeSet<String> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<_> = listed.difference(&got).collect();
    assert!(missing.is_empty(), "cases without a verdict: {missing:?}");
    assert_eq!(
        results["summary"]["total"].as_u64(),
        Some(listed.len() as u64)
    );

    // The JSON keeps the raw evidence (only JSON-escaped): proves the hostile strings did flow
    // through the run, so the inertness checks on the other reports are not vacuous.
    assert!(any_string(&results, &|s| s.contains("<script>alert(1)</script>")));
    assert!(
        any_string(&results, &|s| s.contains('\x1b')),
        "no ESC reached the records"
    );
    assert!(
        any_string(&results, &|s| s.contains('\u{202E}')),
        "no bidi override reached the records"
    );

    let all = exchanges(&results);
    let url_is =
        |e: &Value, path: &str| e["url"].as_str() == Some(&format!("{}{path}", server.origin));

    // The huge body was cut at the cap, and said so.
    let huge: Vec<_> = all
        .iter()
        .filter(|(_, e)| url_is(e, "/.well-known/oauth-authorization-server/as"))
        .collect();
    assert!(!huge.is_empty(), "no exchange with the huge-body URL");
    for (id, e) in &huge {
        assert_eq!(e["status"], 200, "{id}: {e}");
        assert_eq!(
            e["body_truncated"], true,
            "{id}: huge body not marked truncated: {e}"
        );
    }

    // The endless body was ended by the suite's timeout, within the timeout (plus scheduling
    // slack), and recorded as cut short.
    let limit_ms = (SUITE_TIMEOUT_SECS * 1000 + 2500) as i64;
    let endless: Vec<_> = all
        .iter()
        .filter(|(_, e)| url_is(e, "/as/.well-known/openid-configuration"))
        .collect();
    assert!(!endless.is_empty(), "no exchange with the endless-body URL");
    for (id, e) in &endless {
        assert!(
            e["body_truncated"] == true || e.get("error").is_some(),
            "{id}: endless body recorded as complete: {e}"
        );
        let ms = e["duration_ms"].as_i64().unwrap();
        assert!(
            ms <= limit_ms,
            "{id}: endless exchange took {ms} ms (limit {limit_ms})"
        );
    }
    // ...and the cases that met it reached a verdict that says the AS metadata is unusable.
    let status_of = |id: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let endless_cases: BTreeSet<&str> = endless.iter().map(|(id, _)| *id).collect();
    assert!(
        endless_cases
            .iter()
            .any(|id| matches!(status_of(id).as_str(), "errored" | "failed")),
        "no case that met the endless body errored or failed: {endless_cases:?}"
    );
    assert!(endless_cases.contains("asm-available"), "{endless_cases:?}");
    let st = status_of("asm-available");
    assert!(
        matches!(st.as_str(), "errored" | "failed"),
        "asm-available: {st}"
    );

    // The hostile challenge still parsed (its resource_metadata URL was followed), so the
    // attack strings in its other parameters reached the checks rather than a parse error.
    assert!(
        all.iter()
            .any(|(_, e)| e["note"].as_str().is_some_and(|n| n.ends_with("(header)"))),
        "the 401 challenge's resource_metadata was never fetched"
    );

    // The redirect was recorded, not followed.
    let redirects: Vec<_> = all
        .iter()
        .filter(|(_, e)| url_is(e, "/.well-known/oauth-protected-resource"))
        .collect();
    assert!(
        !redirects.is_empty(),
        "no exchange with the redirect-loop URL"
    );
    for (id, e) in &redirects {
        assert_eq!(e["status"], 302, "{id}: {e}");
    }
    results
}

fn check_junit(path: &Path, results: &Value) {
    let bytes = std::fs::read(path).expect("junit.xml written");
    let text = common::assert_inert_text("junit.xml", &bytes);
    let doc = roxmltree::Document::parse(&text).expect("junit.xml is well-formed XML");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(cases, results["results"].as_array().unwrap().len());
    // Markup from the server is text in the XML, never an element.
    for n in doc.descendants().filter(|n| n.is_element()) {
        let tag = n.tag_name().name();
        assert!(
            !matches!(tag, "script" | "img" | "iframe" | "html" | "svg"),
            "element <{tag}> in junit.xml"
        );
    }
    assert!(
        doc.descendants()
            .filter_map(|n| n.text())
            .any(|t| t.contains("<script>alert(1)</script>")),
        "the hostile text should survive in junit.xml as text"
    );
}

fn check_html(path: &Path) {
    let bytes = std::fs::read(path).expect("report.html written");
    let raw = common::assert_inert_text("report.html", &bytes);
    common::assert_inert_html(&raw);
    let doc = scraper::Html::parse_document(&raw);
    // Escaped, not dropped: the reader can still see what the server sent.
    let text: String = doc.root_element().text().collect();
    assert!(
        text.contains("<script>alert(1)</script>"),
        "hostile text missing from report.html"
    );
    assert!(
        text.contains("\\x1b[2J"),
        "ESC should be shown as a visible escape"
    );
}

#[test]
fn hostile_server_run_completes_and_reports_stay_inert() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = start_server(&rt);
    let scratch = tempfile::tempdir().unwrap();
    let report_dir = scratch.path().join("reports");

    // The catalogue, to know what "the run completed" means.
    let list = run_bin(&["list", "--json"], scratch.path(), "list");
    assert_eq!(list.status.code(), Some(0), "list --json failed");
    let listed: Vec<Value> = serde_json::from_slice(&list.stdout).expect("list --json parses");
    let listed: BTreeSet<String> = listed
        .iter()
        .map(|c| c["id"].as_str().expect("case id").to_string())
        .collect();
    assert!(!listed.is_empty());

    let resource = format!("{}/mcp", server.origin);
    let timeout = SUITE_TIMEOUT_SECS.to_string();
    let max_body = SUITE_MAX_BODY.to_string();
    let run = run_bin(
        &[
            "run",
            "--resource",
            &resource,
            "--timeout",
            &timeout,
            "--max-body",
            &max_body,
            "--report-dir",
            report_dir.to_str().unwrap(),
            "--no-color",
            // Verbose puts every failure's details and exchange URLs on the console too: more
            // server-derived text through the terminal path.
            "--verbose",
        ],
        scratch.path(),
        "run",
    );
    eprintln!("hostile run took {:?}, exit {:?}", run.elapsed, run.status);

    // Terminal output first: it is what a human sees even when the assertions below fail.
    let stdout = common::assert_inert_text("stdout", &run.stdout);
    let stderr = common::assert_inert_text("stderr", &run.stderr);
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "exit {:?} (2 = usage error, none = killed by a signal)\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );
    assert!(!stderr.contains("panicked"), "panic in the run:\n{stderr}");

    // Each hostile behaviour was met at least once.
    let h = &server.hits;
    for (what, n) in [
        ("/mcp", &h.mcp),
        ("PRM", &h.prm),
        ("redirect loop", &h.redirect),
        ("huge body", &h.huge),
        ("invalid UTF-8", &h.invalid_utf8),
        ("endless body", &h.endless),
        ("404 page", &h.other),
    ] {
        assert!(
            n.load(Ordering::Relaxed) > 0,
            "the run never requested the {what}"
        );
    }

    let results = check_results_json(&report_dir.join("results.json"), &server, &listed);
    check_junit(&report_dir.join("junit.xml"), &results);
    check_html(&report_dir.join("report.html"));

    // Atomic writes leave nothing but the three reports behind.
    let mut names: Vec<String> = std::fs::read_dir(&report_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["junit.xml", "report.html", "results.json"]);

    // Dropping the runtime stops the server, including any endless stream still open.
    rt.shutdown_timeout(Duration::from_secs(1));
}
