//! The suite against a matrix of hostile servers, one misbehaviour each.
//!
//! `tests/hostile.rs` puts many hostile behaviours behind one server and checks that the reports
//! stay inert. This test isolates the behaviours that threaten the run itself — a target that
//! hangs, dribbles, never ends, is enormous, loops, or points the suite at addresses it must never
//! contact — and runs the real binary against each, in parallel (one thread, one server and one
//! scratch dir per mode), with default timeouts:
//!
//! ```text
//! authconform run --resource http://127.0.0.1:PORT/mcp --report-dir DIR
//!                 --sarif DIR/results.sarif --no-color
//! ```
//!
//! | mode                | server (on 127.0.0.1)                                          | bound |
//! |---------------------|----------------------------------------------------------------|-------|
//! | `silent`            | accepts TCP, reads and discards, never answers                 | 45 s  |
//! | `trickle-headers`   | status line and headers one byte per second, never finished    | 45 s  |
//! | `endless-slow-body` | 200 JSON, chunked body of one byte every 200 ms, for ever      | 45 s  |
//! | `endless-fast-body` | `/mcp` 401 + valid challenge; the rest 200 JSON streamed flat out | 150 s |
//! | `huge-body`         | every answer `Content-Length: 2147483648`, zeros flat out      | 150 s |
//! | `redirect-loop`     | every path `302` to itself; PRM path to itself with a new query | 150 s |
//! | `ssrf`              | challenge, `Link`, AS metadata all point at refused addresses  | 150 s |
//! | `ssrf-prm`          | as `ssrf`, and the PRM's `authorization_servers` are refused   | 150 s |
//! | `ssrf-allowed`      | as `ssrf`, run with `--allow-host 0.0.0.0:C4` (canary control) | 150 s |
//!
//! Every mode is measured — one `eprintln!` line with wall time, peak RSS (`VmHWM` polled every
//! 20 ms) and exit code — and must satisfy:
//!
//! * it ends within its bound (killed and failed past it): a hostile target must not be able to
//!   hold a CI job for ever;
//! * exit code neither 0 (nothing was judged, so nothing passed) nor 2 (that means bad usage) nor
//!   a signal (a crash); `silent`, `trickle-headers` and `endless-slow-body` exit exactly **3**:
//!   "the run could not judge the target", so CI can tell an outage from a non-conformant server;
//! * no panic, and stdout/stderr inert (no terminal controls: the server's bytes are hostile);
//! * complete reports — `results.json` (schema-valid, exactly one result per case id of
//!   `authconform list --json`), `junit.xml`, `report.html` (self-contained and inert) and
//!   `results.sarif` — because a run cut short by a hostile target is exactly when the reader
//!   needs them;
//! * peak RSS under 128 MiB: bodies that never end or declare 2 GiB must be read only up to the
//!   cap.
//!
//! Extra, per mode (these are the contract the runner implements):
//!
//! * **target down** (`silent`, `trickle-headers`, `endless-slow-body`): every result is
//!   `errored`, all with the same `message`, containing "stopped answering"; `results.json` has a
//!   top-level array `incidents` with exactly one object of `kind: "target-down"`, with string
//!   fields `id`, `origin`, `at`, `reason` (= the results' message) and `cases` (every case id);
//!   every result carries `"incident": <that id>`. The console names the reason once (at most 3
//!   times, to allow a summary line), not once per case. Why: one dead target is one finding, not
//!   N identical failures, and the suite must stop waiting on it rather than time out N times.
//! * **SSRF** (`ssrf`, `ssrf-prm`): canary listeners on `0.0.0.0:C4` and `[::]:C6` accept no
//!   connection; a watcher reading `/proc/<pid>/net/tcp{,6}` every 10 ms sees no socket of the
//!   suite's to 169.254.0.0/16, 100.100.100.200, fd00:ec2::254 (plus their IPv4-mapped forms),
//!   the unspecified addresses, or the canary ports; some exchange's `error` says
//!   "refused to follow <url>: <reason>" with "link-local" or "metadata" in it; and no exchange
//!   to a refused URL has a `status` (no body was ever fetched from one). Why: every URL in a
//!   target's metadata is attacker-controlled; following it from a CI runner reaches the cloud
//!   metadata service or internal hosts.
//! * **SSRF positive control** (`ssrf-allowed`, `--allow-host HOST[:PORT]`): the C4 canary
//!   accepts at least one connection, which proves the canaries can see a connection at all
//!   (otherwise the zero counts above would prove nothing); the other addresses stay untouched.
//! * **redirect loop**: redirects are evidence, never followed: no request for a URL that only a
//!   `Location` named (`?hop=N`), no path requested more often than the suite recorded exchanges
//!   for it (plus a few detection probes), and none more than max(50, one per listed case) times (`/mcp` is legitimately probed
//!   by many cases; a loop is unbounded); and some result mentions the 302.
//!
//! Traffic: the servers listen on 127.0.0.1 and the canaries on the unspecified addresses; the
//! test itself connects to nothing else. The refused addresses are never contacted by a suite
//! that is correct; a regressed suite *would* contact them, so run this test against an unknown
//! binary inside a network namespace with only loopback (`unshare -rn sh -c 'ip link set lo up;
//! …'`). Every server loop and task is bounded (by count and by time).
//!
//! `AUTHCONFORM_HOSTILE_BIN` runs another binary (e.g. an older build) under the same test;
//! `AUTHCONFORM_HOSTILE_MODES=silent,ssrf` runs only the modes named;
//! `AUTHCONFORM_HOSTILE_KEEP=1` keeps each mode's scratch dir (reports, stdout, stderr).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fs::File;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound for the modes where the target stops answering: the suite must notice and give up.
const SHORT_BOUND: Duration = Duration::from_secs(45);
/// Bound for the other modes: every case runs, each exchange cut by its caps.
const LONG_BOUND: Duration = Duration::from_secs(150);
/// Peak resident set allowed to the suite.
const RSS_LIMIT_KIB: u64 = 128 * 1024;
/// Most requests one path may get in the redirect loop, per listed case: a generous absolute
/// bound (one probe per case at most, on average, for every path) that only a loop breaks.
const REDIRECT_LIMIT_PER_CASE: usize = 1;
/// Never less than this, however few cases are listed.
const REDIRECT_LIMIT_MIN: usize = 50;
/// Requests to one path the results may not show as exchanges: the spec-revision detection
/// probes `/mcp` (`server/discover`, `initialize`) and records them only in `spec.detection`.
/// A followed redirect would add at least one unrecorded request per recorded exchange.
const UNRECORDED_SLACK: usize = 5;
/// Every server task (connection, stream) gives up after this, whatever the client does.
const SERVE_LIMIT: Duration = Duration::from_secs(200);
/// Connections a raw server accepts at most.
const MAX_CONNECTIONS: usize = 100_000;
/// Size the `huge-body` server declares.
const HUGE_LEN: u64 = 2 << 30;
/// Chunks of 64 KiB the `endless-fast-body` stream yields at most (64 GiB: endless to a client).
const FAST_CHUNKS: usize = 1 << 20;

fn bin() -> String {
    std::env::var("AUTHCONFORM_HOSTILE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_authconform").to_string())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Silent,
    TrickleHeaders,
    EndlessSlowBody,
    EndlessFastBody,
    HugeBody,
    RedirectLoop,
    Ssrf,
    SsrfPrm,
    SsrfAllowed,
}

impl Mode {
    const ALL: [Mode; 9] = [
        Mode::Silent,
        Mode::TrickleHeaders,
        Mode::EndlessSlowBody,
        Mode::EndlessFastBody,
        Mode::HugeBody,
        Mode::RedirectLoop,
        Mode::Ssrf,
        Mode::SsrfPrm,
        Mode::SsrfAllowed,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Silent => "silent",
            Mode::TrickleHeaders => "trickle-headers",
            Mode::EndlessSlowBody => "endless-slow-body",
            Mode::EndlessFastBody => "endless-fast-body",
            Mode::HugeBody => "huge-body",
            Mode::RedirectLoop => "redirect-loop",
            Mode::Ssrf => "ssrf",
            Mode::SsrfPrm => "ssrf-prm",
            Mode::SsrfAllowed => "ssrf-allowed",
        }
    }

    /// The target stops answering: one `target-down` incident, exit 3.
    fn target_down(self) -> bool {
        matches!(
            self,
            Mode::Silent | Mode::TrickleHeaders | Mode::EndlessSlowBody
        )
    }

    fn ssrf(self) -> bool {
        matches!(self, Mode::Ssrf | Mode::SsrfPrm | Mode::SsrfAllowed)
    }

    fn bound(self) -> Duration {
        if self.target_down() {
            SHORT_BOUND
        } else {
            LONG_BOUND
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// What a server saw: connections, and requests by path (query left off).
#[derive(Default)]
struct Hits {
    connections: AtomicUsize,
    /// `redirect-loop`: requests that could only come from following a `Location` (the PRM
    /// path with `?hop=N`, N >= 1, which only the server's own redirects hand out).
    followed: AtomicUsize,
    paths: Mutex<BTreeMap<String, usize>>,
}

impl Hits {
    fn request(&self, path: &str) {
        *self
            .paths
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
    }

    fn count(&self, path: &str) -> usize {
        self.paths.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.paths.lock().unwrap().values().sum()
    }
}

/// Ports of the SSRF canaries (C6 absent when IPv6 cannot be bound).
#[derive(Clone, Copy)]
struct CanaryPorts {
    c4: u16,
    c6: Option<u16>,
}

/// A std listener on 127.0.0.1:0, made ready for tokio.
fn local_listener(rt: &tokio::runtime::Runtime) -> (tokio::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let _guard = rt.enter();
    (tokio::net::TcpListener::from_std(l).unwrap(), port)
}

/// Starts the mode's server in `rt`; returns its port and what it sees.
fn start_server(
    rt: &tokio::runtime::Runtime,
    mode: Mode,
    canaries: CanaryPorts,
) -> (u16, Arc<Hits>) {
    let (listener, port) = local_listener(rt);
    let hits = Arc::new(Hits::default());
    let origin = format!("http://127.0.0.1:{port}");
    match mode {
        Mode::Silent | Mode::TrickleHeaders | Mode::EndlessSlowBody | Mode::HugeBody => {
            let hits = hits.clone();
            rt.spawn(async move {
                for _ in 0..MAX_CONNECTIONS {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    hits.connections.fetch_add(1, Ordering::Relaxed);
                    let (hits, origin) = (hits.clone(), origin.clone());
                    tokio::spawn(tokio::time::timeout(
                        SERVE_LIMIT,
                        serve_raw(mode, stream, hits, origin),
                    ));
                }
            });
        }
        Mode::EndlessFastBody
        | Mode::RedirectLoop
        | Mode::Ssrf
        | Mode::SsrfPrm
        | Mode::SsrfAllowed => {
            let state = Arc::new(Axum {
                mode,
                origin,
                canaries,
                hits: hits.clone(),
            });
            let app = Router::new().fallback(axum_handler).with_state(state);
            rt.spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
    }
    (port, hits)
}

/// Reads one request head (bounded); returns its path without the query.
async fn read_head(s: &mut TcpStream, hits: &Hits) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < 64 << 10 {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    hits.request(&path);
    Some(path)
}

/// One connection of a byte-level server. Each ends when the client goes away, or (wrapped by
/// the caller) after [`SERVE_LIMIT`].
async fn serve_raw(mode: Mode, mut s: TcpStream, hits: Arc<Hits>, origin: String) {
    match mode {
        Mode::Silent => {
            // Hold the socket open, read and discard, never answer.
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
            }
        }
        Mode::TrickleHeaders => {
            if read_head(&mut s, &hits).await.is_none() {
                return;
            }
            let start = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Trickle: ";
            let bytes = start.iter().copied().chain(std::iter::repeat(b'a'));
            for b in bytes.take(SERVE_LIMIT.as_secs() as usize + start.len()) {
                if s.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Mode::EndlessSlowBody => {
            if read_head(&mut s, &hits).await.is_none() {
                return;
            }
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Transfer-Encoding: chunked\r\n\r\n";
            if s.write_all(head).await.is_err() {
                return;
            }
            let ticks = (SERVE_LIMIT.as_millis() / 200) as usize;
            let body = b"{\"a\":\"".iter().copied().chain(std::iter::repeat(b'x'));
            for b in body.take(ticks) {
                // One chunk of one byte.
                let chunk = [b'1', b'\r', b'\n', b, b'\r', b'\n'];
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Mode::HugeBody => {
            let Some(path) = read_head(&mut s, &hits).await else {
                return;
            };
            // `/mcp` still challenges, so discovery goes on to more huge answers.
            let status = if path == "/mcp" {
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer resource_metadata=\
                     \"{origin}/.well-known/oauth-protected-resource/mcp\"\r\n"
                )
            } else {
                "HTTP/1.1 200 OK\r\n".to_string()
            };
            let head = format!(
                "{status}Content-Type: application/json\r\nContent-Length: {HUGE_LEN}\r\n\r\n"
            );
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let zeros = vec![0u8; 64 << 10];
            for _ in 0..HUGE_LEN / zeros.len() as u64 {
                if s.write_all(&zeros).await.is_err() {
                    return;
                }
            }
        }
        _ => unreachable!("{mode:?} is served by axum"),
    }
}

struct Axum {
    mode: Mode,
    origin: String,
    canaries: CanaryPorts,
    hits: Arc<Hits>,
}

fn response(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    response(
        status,
        Body::from(serde_json::to_vec(v).expect("JSON serializes")),
    )
}

fn set_header(r: &mut Response, name: header::HeaderName, value: &str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("a header value"));
}

/// A JSON-looking body that never ends, as fast as the socket takes it.
fn fast_endless_body() -> Body {
    let head = Bytes::from_static(b"{\"a\":\"");
    let chunk = Bytes::from(vec![b'x'; 64 << 10]);
    let parts = std::iter::once(head)
        .chain(std::iter::repeat_n(chunk, FAST_CHUNKS))
        .map(Ok::<_, Infallible>);
    Body::from_stream(futures_util::stream::iter(parts))
}

async fn axum_handler(State(s): State<Arc<Axum>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    s.hits.request(&path);
    let o = &s.origin;
    let prm_mcp = "/.well-known/oauth-protected-resource/mcp";
    match s.mode {
        Mode::EndlessFastBody => {
            if path == "/mcp" {
                let mut r =
                    json_response(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"}));
                set_header(
                    &mut r,
                    header::WWW_AUTHENTICATE,
                    &format!("Bearer resource_metadata=\"{o}{prm_mcp}\""),
                );
                r
            } else {
                response(StatusCode::OK, fast_endless_body())
            }
        }
        Mode::RedirectLoop => {
            // Every path to itself; the PRM path to itself with a new query each time, so a
            // client that remembers visited URLs still would not notice the loop.
            let location = if path == prm_mcp {
                let hop: u64 = query
                    .as_deref()
                    .and_then(|q| q.strip_prefix("hop="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if hop > 0 {
                    s.hits.followed.fetch_add(1, Ordering::Relaxed);
                }
                format!("{path}?hop={}", hop + 1)
            } else {
                match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                }
            };
            let mut r = response(StatusCode::FOUND, Body::empty());
            set_header(&mut r, header::LOCATION, &location);
            r
        }
        Mode::Ssrf | Mode::SsrfPrm | Mode::SsrfAllowed => ssrf_answer(&s, &path),
        _ => unreachable!("{:?} is served raw", s.mode),
    }
}

/// The SSRF server: discovery works on 127.0.0.1, and every pointer it hands out leads to an
/// address the suite must refuse.
fn ssrf_answer(s: &Axum, path: &str) -> Response {
    let o = &s.origin;
    let c4 = s.canaries.c4;
    // Without an IPv6 canary the port is still one nobody listens on.
    let c6 = s.canaries.c6.unwrap_or(9);
    match path {
        "/mcp" => {
            let mut r = json_response(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"}));
            set_header(
                &mut r,
                header::WWW_AUTHENTICATE,
                "Bearer resource_metadata=\"http://169.254.169.254/latest/meta-data/\"",
            );
            set_header(
                &mut r,
                header::LINK,
                &format!("<http://0.0.0.0:{c4}/link>; rel=\"resource_metadata\""),
            );
            r
        }
        "/.well-known/oauth-protected-resource/mcp" | "/.well-known/oauth-protected-resource" => {
            let servers = if s.mode == Mode::SsrfPrm {
                json!([
                    "http://169.254.169.254/latest/meta-data/",
                    "http://100.100.100.200/"
                ])
            } else {
                json!([format!("{o}/as")])
            };
            json_response(
                StatusCode::OK,
                &json!({ "resource": format!("{o}/mcp"), "authorization_servers": servers }),
            )
        }
        "/.well-known/oauth-authorization-server/as"
        | "/.well-known/openid-configuration/as"
        | "/as/.well-known/openid-configuration" => json_response(
            StatusCode::OK,
            &json!({
                "issuer": format!("{o}/as"),
                "jwks_uri": "http://[fd00:ec2::254]/jwks",
                "registration_endpoint": format!("http://0.0.0.0:{c4}/register"),
                "token_endpoint": format!("http://[::]:{c6}/token"),
                // 169.254.169.254 in decimal and in hex, and IPv4-mapped.
                "authorization_endpoint": "http://2852039166/authorize",
                "revocation_endpoint": "http://0xa9fea9fe/revoke",
                "introspection_endpoint": "http://[::ffff:169.254.169.254]/introspect",
                "userinfo_endpoint": format!("gopher://127.0.0.1:{c4}/_x"),
                "pushed_authorization_request_endpoint": "file:///etc/passwd",
                "client_id_metadata_document_supported": true,
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"],
                "token_endpoint_auth_methods_supported": ["none"]
            }),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

// ---------------------------------------------------------------------------------------------
// SSRF canaries and the socket watcher
// ---------------------------------------------------------------------------------------------

/// A listener that only counts the connections it accepts.
struct Canary {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Canary {
    fn bind(addr: &str) -> std::io::Result<Canary> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        let port = l.local_addr()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, st) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_millis(5);
            for _ in 0..SERVE_LIMIT.as_millis() / tick.as_millis() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                match l.accept() {
                    Ok(_) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(tick),
                    Err(_) => std::thread::sleep(tick),
                }
            }
        });
        Ok(Canary {
            port,
            accepted,
            stop,
            thread,
        })
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.accepted.load(Ordering::Relaxed)
    }
}

/// Why an address must never be contacted by the suite (`None`: it may be).
fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_link_local() {
        Some("link-local")
    } else if ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("metadata")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    if ip == "fd00:ec2::254".parse::<Ipv6Addr>().unwrap() {
        Some("metadata")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else {
        None
    }
}

fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

/// One suspicious socket seen in `/proc/<pid>/net/tcp{,6}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Sighting {
    remote: SocketAddr,
    why: String,
    inode: u64,
}

/// `/proc/net/tcp` prints each 32-bit word of an address as the `%08X` of its in-memory value.
fn proc_addr(hex: &str) -> Option<SocketAddr> {
    let (addr, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Reads the child's network namespace's TCP tables every 10 ms and keeps every socket whose
/// remote end is refused or a canary port; separately, every socket inode the child holds, so
/// that only the child's own sockets count (the tables are namespace-wide).
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(BTreeSet<Sighting>, BTreeSet<u64>)>,
}

impl Watcher {
    fn start(pid: u32, canary_ports: Vec<u16>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            let mut owned = BTreeSet::new();
            let tick = Duration::from_millis(10);
            for _ in 0..SERVE_LIMIT.as_millis() / tick.as_millis() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                for table in ["tcp", "tcp6"] {
                    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
                    else {
                        continue;
                    };
                    for line in text.lines().skip(1) {
                        let f: Vec<&str> = line.split_whitespace().collect();
                        let (Some(remote), Some(inode)) = (
                            f.get(2).and_then(|h| proc_addr(h)),
                            f.get(9).and_then(|i| i.parse::<u64>().ok()),
                        ) else {
                            continue;
                        };
                        if remote.port() == 0 {
                            continue; // a listener: no remote end
                        }
                        let why = refused_ip(remote.ip()).map(str::to_string).or_else(|| {
                            canary_ports
                                .contains(&remote.port())
                                .then(|| format!("canary port {}", remote.port()))
                        });
                        if let Some(why) = why {
                            seen.insert(Sighting { remote, why, inode });
                        }
                    }
                }
                if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                    for e in dir.flatten() {
                        if let Ok(link) = std::fs::read_link(e.path()) {
                            let link = link.to_string_lossy();
                            if let Some(n) = link
                                .strip_prefix("socket:[")
                                .and_then(|r| r.strip_suffix(']'))
                                .and_then(|n| n.parse().ok())
                            {
                                owned.insert(n);
                            }
                        }
                    }
                }
                std::thread::sleep(tick);
            }
            (seen, owned)
        });
        Watcher { stop, thread }
    }

    /// The sightings of the child's own sockets, and the count of sightings that could not be
    /// attributed to it (other processes, or sockets already closed).
    fn finish(self) -> (Vec<Sighting>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (seen, owned) = self.thread.join().expect("watcher thread");
        let (mine, other): (Vec<_>, Vec<_>) = seen
            .into_iter()
            .partition(|s| s.inode != 0 && owned.contains(&s.inode));
        (mine, other.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

struct Run {
    status: Option<ExitStatus>,
    killed: bool,
    elapsed: Duration,
    peak_rss_kib: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Run {
    fn exit_text(&self) -> String {
        match (self.killed, self.status.and_then(|s| s.code())) {
            (true, _) => "killed at bound".to_string(),
            (false, Some(c)) => c.to_string(),
            (false, None) => format!("signal ({:?})", self.status),
        }
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary, polling its peak RSS every 20 ms and killing it past `bound`. Output goes to
/// files, so a chatty run never blocks on a pipe. `spawned` gets the child's pid.
fn run_measured(
    args: &[String],
    scratch: &Path,
    bound: Duration,
    spawned: impl FnOnce(u32),
) -> Run {
    let out_path = scratch.join("run.stdout");
    let err_path = scratch.join("run.stderr");
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("start authconform");
    spawned(child.id());
    let mut peak = 0;
    let mut killed = false;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(st) = child.try_wait().expect("wait for authconform") {
            break Some(st);
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        killed,
        elapsed: started.elapsed(),
        peak_rss_kib: peak,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Failures of one mode, collected rather than panicking on the first, so that a run against an
/// unfinished binary shows everything it lacks.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }
}

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(300).collect();
    if e.len() < s.len() {
        e.push('…');
    }
    e
}

/// Every exchange of every result.
fn exchanges(results: &Value) -> impl Iterator<Item = &Value> {
    results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["exchanges"].as_array().into_iter().flatten())
}

/// Runs `f`, turning a panic into a failure (the shared HTML checks assert).
fn catch(f: &mut Failures, what: &str, check: impl FnOnce() + std::panic::UnwindSafe) {
    if let Err(p) = std::panic::catch_unwind(check) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        f.0.push(format!("{what}: {msg}"));
    }
}

/// The checks every mode shares; returns results.json when it could be read.
fn check_common(
    f: &mut Failures,
    mode: Mode,
    run: &Run,
    dir: &Path,
    listed: &BTreeSet<String>,
) -> Option<Value> {
    f.check(!run.killed, || {
        format!(
            "still running after its bound of {:?}: killed",
            mode.bound()
        )
    });
    if !run.killed {
        match run.status.and_then(|s| s.code()) {
            None => f.0.push(format!("ended by a signal: {:?}", run.status)),
            Some(c @ (0 | 2)) => f.0.push(format!(
                "exit {c} (0 = all passed, 2 = usage error; neither fits a hostile target)"
            )),
            Some(c) if mode.target_down() && c != 3 => f.0.push(format!(
                "exit {c}, want 3 (the run could not judge the target)"
            )),
            Some(_) => {}
        }
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    f.check(!stderr.contains("panicked"), || {
        format!("panic on stderr: {}", excerpt(&stderr))
    });
    for (what, bytes) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        if let Err(e) = common::find_active_text(what, bytes) {
            f.0.push(e);
        }
    }
    f.check(run.peak_rss_kib < RSS_LIMIT_KIB, || {
        format!(
            "peak RSS {} KiB, limit {RSS_LIMIT_KIB} KiB",
            run.peak_rss_kib
        )
    });

    let files = ["results.json", "junit.xml", "report.html", "results.sarif"];
    let missing: Vec<_> = files.iter().filter(|n| !dir.join(n).is_file()).collect();
    f.check(missing.is_empty(), || {
        format!(
            "reports missing: {missing:?} (stdout: {})",
            excerpt(stdout.trim())
        )
    });

    if let Ok(bytes) = std::fs::read(dir.join("junit.xml")) {
        match common::find_active_text("junit.xml", &bytes) {
            Err(e) => f.0.push(e),
            Ok(text) => {
                if let Err(e) = roxmltree::Document::parse(&text) {
                    f.0.push(format!("junit.xml is not well-formed XML: {e}"));
                }
            }
        }
    }
    if let Ok(bytes) = std::fs::read(dir.join("results.sarif")) {
        f.check(serde_json::from_slice::<Value>(&bytes).is_ok(), || {
            "results.sarif is not JSON".to_string()
        });
    }
    if let Ok(bytes) = std::fs::read(dir.join("report.html")) {
        match common::find_active_text("report.html", &bytes) {
            Err(e) => f.0.push(e),
            Ok(raw) => catch(f, "report.html", move || common::assert_inert_html(&raw)),
        }
    }

    let text = std::fs::read_to_string(dir.join("results.json")).ok()?;
    let results: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            f.0.push(format!("results.json does not parse: {e}"));
            return None;
        }
    };
    let errors = common::results_schema_errors(&results);
    f.check(errors.is_empty(), || {
        format!("results.json violates its schema: {errors:?}")
    });
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for r in results["results"].as_array().into_iter().flatten() {
        *got.entry(r["id"].as_str().unwrap_or("<no id>").to_string())
            .or_default() += 1;
    }
    let absent: Vec<_> = listed.iter().filter(|id| !got.contains_key(*id)).collect();
    let twice: Vec<_> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let unknown: Vec<_> = got.keys().filter(|id| !listed.contains(*id)).collect();
    f.check(
        absent.is_empty() && twice.is_empty() && unknown.is_empty(),
        || {
            format!(
                "results are not one per listed case: {} without a result {absent:?}, \
             more than one {twice:?}, not listed {unknown:?}",
                absent.len()
            )
        },
    );
    Some(results)
}

/// `silent`, `trickle-headers`, `endless-slow-body`: one incident, shared by every result.
fn check_target_down(f: &mut Failures, results: &Value, stdout: &str, listed: &BTreeSet<String>) {
    let rs: Vec<&Value> = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let not_errored: Vec<String> = rs
        .iter()
        .filter(|r| r["status"] != "errored")
        .map(|r| format!("{}={}", r["id"], r["status"]))
        .collect();
    f.check(not_errored.is_empty(), || {
        format!(
            "{} results not errored, e.g. {:?}",
            not_errored.len(),
            &not_errored[..not_errored.len().min(5)]
        )
    });
    let messages: BTreeSet<&str> = rs
        .iter()
        .map(|r| r["message"].as_str().unwrap_or(""))
        .collect();
    f.check(messages.len() == 1, || {
        format!(
            "{} distinct result messages, want 1; e.g. {:?}",
            messages.len(),
            messages
                .iter()
                .take(3)
                .map(|m| excerpt(m))
                .collect::<Vec<_>>()
        )
    });
    let message = messages.iter().next().copied().unwrap_or("");
    f.check(message.contains("stopped answering"), || {
        format!("the results' message does not say \"stopped answering\": {message:?}")
    });

    let Some(incidents) = results.get("incidents").and_then(Value::as_array) else {
        f.0.push("results.json has no top-level array `incidents`".to_string());
        return;
    };
    let down: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["kind"] == "target-down")
        .collect();
    f.check(down.len() == 1, || {
        format!(
            "{} incidents of kind target-down, want 1: {incidents:?}",
            down.len()
        )
    });
    let Some(inc) = down.first() else { return };
    for field in ["id", "origin", "at", "reason"] {
        f.check(inc[field].is_string(), || {
            format!("incident field `{field}` is not a string: {inc}")
        });
    }
    f.check(inc["reason"].as_str() == Some(message), || {
        format!(
            "incident reason {:?} is not the results' message {message:?}",
            inc["reason"]
        )
    });
    let cases: BTreeSet<String> = inc["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    f.check(inc["cases"].is_array() && &cases == listed, || {
        let absent: Vec<_> = listed.difference(&cases).collect();
        format!(
            "incident `cases` is not every case id: {} absent, e.g. {:?}",
            absent.len(),
            &absent[..absent.len().min(5)]
        )
    });
    let id = &inc["id"];
    let unlinked = rs.iter().filter(|r| &r["incident"] != id).count();
    f.check(unlinked == 0, || {
        format!("{unlinked} results without \"incident\": {id}")
    });
    let said = if message.is_empty() {
        0
    } else {
        stdout.matches(message).count()
    };
    f.check((1..=3).contains(&said), || {
        format!("the console names the reason {said} times, want 1 to 3 (not once per case)")
    });
}

/// `ssrf`, `ssrf-prm`, `ssrf-allowed`.
fn check_ssrf(
    f: &mut Failures,
    mode: Mode,
    results: Option<&Value>,
    canaries: (usize, Option<usize>),
    sightings: &[Sighting],
    c4: u16,
) {
    let allowed = |a: &SocketAddr| {
        mode == Mode::SsrfAllowed
            && a.port() == c4
            && (a.ip().is_unspecified() || a.ip().is_loopback())
    };
    if mode == Mode::SsrfAllowed {
        f.check(canaries.0 > 0, || {
            "--allow-host 0.0.0.0:C4 made no connection to the C4 canary: the control failed"
                .to_string()
        });
    } else {
        f.check(canaries.0 == 0, || {
            format!("the 0.0.0.0 canary accepted {} connections", canaries.0)
        });
    }
    if let Some(n) = canaries.1 {
        f.check(n == 0, || {
            format!("the [::] canary accepted {n} connections")
        });
    }
    let bad: Vec<_> = sightings.iter().filter(|s| !allowed(&s.remote)).collect();
    f.check(bad.is_empty(), || {
        format!("the suite held sockets to refused addresses: {bad:?}")
    });

    let Some(results) = results else { return };
    f.check(
        exchanges(results).any(|e| {
            e["error"].as_str().is_some_and(|m| {
                m.contains("refused to follow") && (m.contains("link-local") || m.contains("metadata"))
            })
        }),
        || "no exchange error says \"refused to follow <url>: <reason>\" with link-local or metadata".to_string(),
    );
    let fetched: Vec<String> = exchanges(results)
        .filter(|e| e.get("status").is_some())
        .filter_map(|e| {
            let raw = e["url"].as_str()?;
            let u = url::Url::parse(raw).ok()?;
            if !matches!(u.scheme(), "http" | "https") {
                return Some(format!("{raw} (scheme {})", u.scheme()));
            }
            let ip: IpAddr = match u.host()? {
                url::Host::Ipv4(ip) => ip.into(),
                url::Host::Ipv6(ip) => ip.into(),
                url::Host::Domain(_) => return None,
            };
            let addr = SocketAddr::new(ip, u.port_or_known_default().unwrap_or(0));
            let why = refused_ip(ip)?;
            (!allowed(&addr)).then(|| format!("{raw} ({why})"))
        })
        .collect();
    f.check(fetched.is_empty(), || {
        format!("exchanges with a status from refused URLs: {fetched:?}")
    });
}

fn check_redirects(
    f: &mut Failures,
    results: Option<&Value>,
    hits: &Hits,
    listed: &BTreeSet<String>,
) {
    let limit = REDIRECT_LIMIT_MIN.max(REDIRECT_LIMIT_PER_CASE * listed.len());
    let paths = hits.paths.lock().unwrap().clone();
    let (max_path, max) = paths
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(p, n)| (p.clone(), *n))
        .unwrap_or_default();
    let followed = hits.followed.load(Ordering::Relaxed);
    eprintln!(
        "[hostile-modes] redirect-loop: most requests to one path: {max} ({max_path}), \
         limit {limit}; requests that followed a Location: {followed}"
    );
    f.check(max <= limit, || {
        format!("{max_path} was requested {max} times (limit {limit}): a redirect loop followed?")
    });
    f.check(followed == 0, || {
        format!("{followed} requests for a `?hop=N` URL that only a followed Location names")
    });
    let Some(results) = results else { return };
    // Every request the server got is one the suite recorded: a redirect followed inside the
    // HTTP client would be an extra request with no exchange of its own.
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for e in exchanges(results) {
        if let Some(u) = e["url"].as_str().and_then(|u| url::Url::parse(u).ok()) {
            *recorded.entry(u.path().to_string()).or_default() += 1;
        }
    }
    let unrecorded: Vec<String> = paths
        .iter()
        .filter(|(p, n)| recorded.get(*p).copied().unwrap_or(0) + UNRECORDED_SLACK < **n)
        .map(|(p, n)| {
            format!(
                "{p}: {n} requests, {} exchanges",
                recorded.get(p).copied().unwrap_or(0)
            )
        })
        .collect();
    f.check(unrecorded.is_empty(), || {
        format!("requests the suite did not record (followed redirects?): {unrecorded:?}")
    });
    let mentions = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            r["message"].as_str().is_some_and(|m| m.contains("302"))
                || r["details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d.as_str().is_some_and(|d| d.contains("302")))
        });
    f.check(mentions, || {
        "no result's message or details mentions the 302".to_string()
    });
}

/// The run met the mode's server at all: otherwise every other check would be vacuous.
fn check_met(f: &mut Failures, mode: Mode, hits: &Hits) {
    let met = match mode {
        Mode::Silent => hits.connections.load(Ordering::Relaxed) > 0,
        Mode::TrickleHeaders | Mode::EndlessSlowBody | Mode::HugeBody | Mode::RedirectLoop => {
            hits.total() > 0
        }
        Mode::EndlessFastBody => hits.total() > hits.count("/mcp"),
        Mode::Ssrf | Mode::SsrfAllowed => {
            hits.count("/mcp") > 0
                && [
                    "/.well-known/oauth-authorization-server/as",
                    "/.well-known/openid-configuration/as",
                    "/as/.well-known/openid-configuration",
                ]
                .iter()
                .any(|p| hits.count(p) > 0)
        }
        Mode::SsrfPrm => {
            hits.count("/.well-known/oauth-protected-resource/mcp")
                + hits.count("/.well-known/oauth-protected-resource")
                > 0
        }
    };
    f.check(met, || {
        format!(
            "the run never met this server's behaviour (requests: {:?})",
            hits.paths.lock().unwrap()
        )
    });
}

/// One mode, start to end; returns its failures.
fn run_mode(mode: Mode, rt: &tokio::runtime::Runtime, listed: &BTreeSet<String>) -> Vec<String> {
    let mut f = Failures::default();
    let (canary4, canary6) = if mode.ssrf() {
        let c4 = Canary::bind("0.0.0.0:0").expect("bind the 0.0.0.0 canary");
        let c6 = match Canary::bind("[::]:0") {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!(
                    "[hostile-modes] {}: no IPv6 canary ({e}); skipped",
                    mode.name()
                );
                None
            }
        };
        (Some(c4), c6)
    } else {
        (None, None)
    };
    let ports = CanaryPorts {
        c4: canary4.as_ref().map_or(9, |c| c.port),
        c6: canary6.as_ref().map(|c| c.port),
    };
    let (port, hits) = start_server(rt, mode, ports);

    let scratch = tempfile::tempdir().unwrap();
    let dir: PathBuf = scratch.path().join("reports");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--resource".into(),
        format!("http://127.0.0.1:{port}/mcp"),
        "--report-dir".into(),
        dir.display().to_string(),
        "--sarif".into(),
        dir.join("results.sarif").display().to_string(),
        "--no-color".into(),
    ];
    if mode == Mode::SsrfAllowed {
        args.push("--allow-host".into());
        args.push(format!("0.0.0.0:{}", ports.c4));
    }
    let mut watcher = None;
    let watched: Vec<u16> = [Some(ports.c4), ports.c6].into_iter().flatten().collect();
    let run = run_measured(&args, scratch.path(), mode.bound(), |pid| {
        if mode.ssrf() {
            watcher = Some(Watcher::start(pid, watched));
        }
    });
    eprintln!(
        "[hostile-modes] mode={:<17} wall={:>6.1}s peak_rss={:>6.1}MiB exit={}",
        mode.name(),
        run.elapsed.as_secs_f64(),
        run.peak_rss_kib as f64 / 1024.0,
        run.exit_text()
    );

    let results = check_common(&mut f, mode, &run, &dir, listed);
    check_met(&mut f, mode, &hits);
    if let Some(r) = results.as_ref().filter(|_| mode.target_down()) {
        check_target_down(&mut f, r, &String::from_utf8_lossy(&run.stdout), listed);
    }
    if mode == Mode::RedirectLoop {
        check_redirects(&mut f, results.as_ref(), &hits, listed);
    }
    if mode.ssrf() {
        let (sightings, unattributed) = watcher.map(Watcher::finish).unwrap_or_default();
        if unattributed > 0 {
            eprintln!(
                "[hostile-modes] {}: {unattributed} matching sockets not held by the suite \
                 (other processes, or closed before seen): not counted",
                mode.name()
            );
        }
        let c4 = canary4.map_or(0, Canary::finish);
        let c6 = canary6.map(Canary::finish);
        eprintln!(
            "[hostile-modes] {}: canary 0.0.0.0:{} accepted {c4}, canary [::]:{} accepted {}",
            mode.name(),
            ports.c4,
            ports.c6.map_or("-".to_string(), |p| p.to_string()),
            c6.map_or("-".to_string(), |n| n.to_string())
        );
        check_ssrf(
            &mut f,
            mode,
            results.as_ref(),
            (c4, c6),
            &sightings,
            ports.c4,
        );
    }
    if std::env::var_os("AUTHCONFORM_HOSTILE_KEEP").is_some() {
        eprintln!(
            "[hostile-modes] {}: kept {}",
            mode.name(),
            scratch.keep().display()
        );
    }
    f.0
}

fn list_case_ids() -> BTreeSet<String> {
    let out = Command::new(bin())
        .args(["list", "--json"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run authconform list --json");
    assert!(out.status.success(), "list --json failed: {:?}", out.status);
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("list --json parses");
    let ids: BTreeSet<String> = listed
        .iter()
        .map(|c| c["id"].as_str().expect("case id").to_string())
        .collect();
    assert!(!ids.is_empty(), "list --json lists no case");
    ids
}

#[test]
fn hostile_modes_end_in_bounds_with_complete_inert_reports() {
    let chosen: Vec<Mode> = match std::env::var("AUTHCONFORM_HOSTILE_MODES") {
        Ok(names) => names
            .split(',')
            .map(|n| {
                *Mode::ALL
                    .iter()
                    .find(|m| m.name() == n.trim())
                    .unwrap_or_else(|| panic!("unknown mode {n:?}"))
            })
            .collect(),
        Err(_) => Mode::ALL.to_vec(),
    };
    let listed = Arc::new(list_case_ids());
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );

    let threads: Vec<(Mode, JoinHandle<Vec<String>>)> = chosen
        .into_iter()
        .map(|mode| {
            let (rt, listed) = (rt.clone(), listed.clone());
            let t = std::thread::Builder::new()
                .name(mode.name().to_string())
                .spawn(move || run_mode(mode, &rt, &listed))
                .expect("spawn a mode thread");
            (mode, t)
        })
        .collect();
    let mut report = Vec::new();
    for (mode, t) in threads {
        let failures = t
            .join()
            .unwrap_or_else(|_| vec!["the mode's thread panicked (see above)".to_string()]);
        for msg in failures {
            report.push(format!("[{}] {msg}", mode.name()));
        }
    }
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    assert!(
        report.is_empty(),
        "{} failures:\n{}",
        report.len(),
        report.join("\n")
    );
}
