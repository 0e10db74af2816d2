//! The DevTools pipe: one headless Chromium per run, launched on first use, and the commands
//! and events exchanged with it. The protocol runs over `--remote-debugging-pipe` (NUL-separated
//! JSON on file descriptors 3 and 4), not a WebSocket: a DevTools port on loopback could be
//! driven by any local process, the server under test included, and Chromium exits by itself
//! when the pipe closes, so a killed or crashed run leaves no browser behind. A small `sh`
//! wrapper puts the pipes on those descriptors and removes the temporary profile directory once
//! Chromium has exited. The browser driver ([`super::browser`]) is its only user.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::LoginError;

/// Flags every launch uses. `--proxy-server` points at a port nothing listens on, with loopback
/// no longer bypassing it: any request the interception would miss (a preconnect, a WebSocket, a
/// service worker's fetch) fails there instead of reaching a server.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
];

/// Runs Chromium with our pipes on descriptors 3 (commands) and 4 (answers), then removes its
/// profile directory. `trap true INT` keeps the shell alive through a Ctrl-C so it still cleans
/// up (a trap with a command is reset in the child, so Chromium itself stops as usual).
const WRAPPER: &str =
    r#"trap true INT; dir=$1; shift; "$@" 3<&0 4>&1 0</dev/null 1>&2; rm -rf -- "$dir""#;

/// The longest a single DevTools command may take to be answered.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A message from Chromium larger than this ends the connection (a page cannot make the suite
/// buffer without end through a huge POST body).
const MAX_MESSAGE: usize = 32 << 20;

/// Finds the Chromium executable: the profile's path, else `$AUTHCONFORM_CHROMIUM`, else the
/// usual names on `PATH`.
pub fn locate(
    configured: Option<&Path>,
    env: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    let usable = |p: &Path| p.is_file();
    if let Some(p) = configured {
        return if usable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "[login.browser] chromium = {:?} is not a file",
                p.display()
            ))
        };
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        let p = PathBuf::from(&e);
        return if usable(&p) {
            Ok(p)
        } else {
            Err(format!(
                "AUTHCONFORM_CHROMIUM = {:?} is not a file",
                p.display()
            ))
        };
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(path.as_deref().unwrap_or_default()) {
            let p = dir.join(name);
            if usable(&p) {
                return Ok(p);
            }
        }
    }
    Err(
        "no Chromium found (chromium, chromium-browser or google-chrome on PATH): install \
         Debian's chromium package, or set [login.browser] chromium or $AUTHCONFORM_CHROMIUM"
            .into(),
    )
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>;
/// A DevTools event: its method and parameters.
pub type Event = (String, Value);

/// One Chromium process and its DevTools pipe.
pub struct Cdp {
    out: Mutex<std::sync::mpsc::Sender<Vec<u8>>>,
    next: AtomicU64,
    pub(super) pending: Arc<Pending>,
    /// Where each attached page's events go, by session id.
    pub(super) sessions: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>>,
    /// Set once the pipe is closed: why.
    dead: Arc<Mutex<Option<String>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding one of these maps leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cdp {
    pub fn launch(exe: &Path) -> Result<Arc<Cdp>, String> {
        let dir = std::env::temp_dir().join(format!(
            "authconform-chromium-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(&dir)
            .arg(exe)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!("cannot start {}: {e}", exe.display())
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("cannot set up Chromium's pipes".into());
        };
        // The last lines Chromium printed, for the message when it dies.
        let tail: Arc<Mutex<VecDeque<String>>> = Default::default();
        let t = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut q = lock(&t);
                if q.len() == 8 {
                    q.pop_front();
                }
                q.push_back(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for mut m in rx {
                m.push(0);
                if stdin.write_all(&m).and_then(|_| stdin.flush()).is_err() {
                    break;
                }
            }
        });
        let cdp = Arc::new(Cdp {
            out: Mutex::new(tx),
            next: AtomicU64::new(1),
            pending: Default::default(),
            sessions: Default::default(),
            dead: Default::default(),
        });
        let (pending, sessions, dead) =
            (cdp.pending.clone(), cdp.sessions.clone(), cdp.dead.clone());
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            let why = loop {
                buf.clear();
                match (&mut r).take(MAX_MESSAGE as u64).read_until(0, &mut buf) {
                    Ok(0) | Err(_) => break "Chromium exited".to_string(),
                    Ok(_) => {}
                }
                if buf.last() != Some(&0) {
                    break format!("Chromium sent a message over {MAX_MESSAGE} bytes");
                }
                buf.pop();
                let Ok(v) = serde_json::from_slice::<Value>(&buf) else {
                    continue;
                };
                dispatch(&pending, &sessions, v);
            };
            // Reap the wrapper once Chromium is gone (it removes the profile directory).
            drop(r);
            let _ = child.wait();
            let tail: Vec<String> = lock(&tail).iter().cloned().collect();
            let why = if tail.is_empty() {
                why
            } else {
                format!("{why}; it said: {}", tail.join(" | "))
            };
            *lock(&dead) = Some(why.clone());
            for (_, p) in lock(&pending).drain() {
                let _ = p.send(Err(why.clone()));
            }
            lock(&sessions).clear();
        });
        Ok(cdp)
    }

    pub(super) fn dead(&self) -> Option<String> {
        lock(&self.dead).clone()
    }

    /// The events of one attached page (`Target.attachToTarget` with `flatten`), from now on.
    pub fn events(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.sessions).insert(session.to_owned(), tx);
        rx
    }

    /// Sends a command; `answer` gets its answer (`None`: nobody waits for it). Returns its id.
    pub(super) fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        answer: Option<oneshot::Sender<Result<Value, String>>>,
    ) -> Result<u64, String> {
        if let Some(why) = self.dead() {
            return Err(why);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut m = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            m["sessionId"] = Value::String(s.into());
        }
        if let Some(a) = answer {
            lock(&self.pending).insert(id, a);
        }
        lock(&self.out)
            .send(m.to_string().into_bytes())
            .map_err(|_| "Chromium's pipe is closed".to_string())?;
        Ok(id)
    }

    /// Sends a command without waiting (cleanup, and navigations whose answer only comes once
    /// the page's requests are served).
    pub fn post(&self, session: Option<&str>, method: &str, params: Value) {
        let _ = self.send(session, method, params, None);
    }

    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.call_within(session, method, params, CALL_TIMEOUT)
            .await
    }

    pub(super) async fn call_within(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        wait: Duration,
    ) -> Result<Value, String> {
        let (tx, rx) = oneshot::channel();
        let id = self.send(session, method, params, Some(tx))?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(self.dead().unwrap_or_else(|| "Chromium went away".into())),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(format!(
                    "Chromium did not answer {method} within {} ms",
                    wait.as_millis()
                ))
            }
        }
    }
}

fn dispatch(
    pending: &Pending,
    sessions: &Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    v: Value,
) {
    if let Some(id) = v.get("id").and_then(Value::as_u64) {
        if let Some(p) = lock(pending).remove(&id) {
            let r = match v.get("error") {
                Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
                None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = p.send(r);
        }
        return;
    }
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        return;
    };
    let params = v.get("params").cloned().unwrap_or(Value::Null);
    // A page detached at the browser level is announced there, naming its session.
    let session = v
        .get("sessionId")
        .and_then(Value::as_str)
        .or_else(|| {
            (method == "Target.detachedFromTarget")
                .then(|| params["sessionId"].as_str())
                .flatten()
        })
        .map(str::to_string);
    if let Some(s) = session
        && let Some(tx) = lock(sessions).get(&s)
    {
        let _ = tx.send((method.to_string(), params));
    }
}

/// The process-wide Chromium: launched on first use, shared by every login of the run.
#[derive(Default)]
struct Shared {
    cdp: Option<Arc<Cdp>>,
    /// Why it cannot run: kept, so a missing Chromium is looked for (and said) once.
    refused: Option<String>,
    launches: u32,
}

fn shared() -> &'static tokio::sync::Mutex<Shared> {
    static S: OnceLock<tokio::sync::Mutex<Shared>> = OnceLock::new();
    S.get_or_init(Default::default)
}

pub(super) async fn chromium(configured: Option<&Path>) -> Result<Arc<Cdp>, LoginError> {
    let mut s = shared().lock().await;
    if let Some(why) = &s.refused {
        return Err(LoginError::Unavailable(why.clone()));
    }
    if let Some(c) = s.cdp.as_ref().filter(|c| c.dead().is_none()) {
        return Ok(c.clone());
    }
    // A Chromium that died mid-run is started again, a few times at most.
    if s.launches >= 3 {
        let why = format!(
            "Chromium exited {} times during this run ({})",
            s.launches,
            s.cdp.as_ref().and_then(|c| c.dead()).unwrap_or_default()
        );
        return Err(LoginError::Unavailable(why));
    }
    s.launches += 1;
    let started = async {
        let exe = locate(
            configured,
            std::env::var_os("AUTHCONFORM_CHROMIUM"),
            std::env::var_os("PATH"),
        )?;
        let cdp = Cdp::launch(&exe)?;
        // The first answer says it started; its first start can take a few seconds.
        let v = tokio::time::timeout(Duration::from_secs(30), async {
            cdp.call(None, "Browser.getVersion", json!({})).await
        })
        .await
        .map_err(|_| "Chromium did not start within 30 s".to_string())
        .and_then(|r| r)
        .map_err(|e| format!("{} did not start: {e}", exe.display()))?;
        let _ = v;
        Ok::<_, String>(cdp)
    };
    match started.await {
        Ok(c) => {
            s.cdp = Some(c.clone());
            Ok(c)
        }
        Err(why) => {
            if s.launches == 1 {
                eprintln!("authconform: the browser login driver cannot run: {why}");
                s.refused = Some(why.clone());
            }
            Err(LoginError::Unavailable(why))
        }
    }
}
