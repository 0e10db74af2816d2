//! Programs the profile names (a provisioning script, an operator's key rotation, a grant
//! revocation), run without a shell, with a deadline, and with their output kept bounded: a
//! chatty or hung program must cost neither memory nor the run's time.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a program ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    /// The start of stdout, then of stderr (lossy UTF-8), `keep` bytes at most in all.
    pub output: String,
    /// The program wrote more than was kept.
    pub truncated: bool,
}

/// Runs `argv` (no shell) with `envs` added, in `cwd` when given. `Err` when it cannot start or
/// does not end within `timeout` (it is killed then).
pub fn run(
    argv: &[String],
    envs: &[(String, String)],
    cwd: Option<&Path>,
    timeout: Duration,
    keep: usize,
) -> Result<Ran, String> {
    let Some(program) = argv.first() else {
        return Err("no program given".into());
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(&argv[1..])
        .envs(envs.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    // Both pipes are drained (keeping the start) so a chatty program cannot block on them.
    // What was read is shared, not returned: a program that leaves a child holding its output
    // open (a server started in the background) must not keep the run waiting for an EOF.
    type Kept = std::sync::Arc<std::sync::Mutex<(Vec<u8>, bool)>>;
    let drain = |p: Option<Box<dyn Read + Send>>, kept: Kept| {
        std::thread::spawn(move || {
            if let Some(mut p) = p {
                let mut buf = [0u8; 4096];
                while let Ok(n) = p.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    let room = keep.saturating_sub(k.0.len());
                    k.1 |= n > room;
                    k.0.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        })
    };
    let (out_kept, err_kept): (Kept, Kept) = Default::default();
    let threads = [
        drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            out_kept.clone(),
        ),
        drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            err_kept.clone(),
        ),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    };
    // The rest of the output, for a moment at most.
    let settle = Instant::now() + Duration::from_secs(2);
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    let take = |k: &Kept| std::mem::take(&mut *k.lock().unwrap_or_else(|e| e.into_inner()));
    let ((mut text, mut truncated), (e, more)) = (take(&out_kept), take(&err_kept));
    truncated |= more || text.len() + e.len() > keep;
    text.extend(e);
    text.truncate(keep);
    Ok(Ran {
        code: status.code().unwrap_or(-1),
        output: String::from_utf8_lossy(&text).into_owned(),
        truncated,
    })
}
