//! Campaign throughput against a plain load generator (`cargo bench --bench fuzz_throughput`).
//!
//! The built-in reference server runs as its own process (`authconform reference`) on
//! 127.0.0.1. In the same run, `wrk` sends one fixed token request (a made-up code: the endpoint
//! answers 400 invalid_grant) for `BENCH_SECS` with `BENCH_CONNECTIONS` connections, then the
//! campaign engine sends the same request with the same concurrency, generating, judging and
//! counting each one. The ratio campaign/wrk is the harness's own overhead (target: at least
//! 0.9). A last run with the real token strategy shows what a campaign of generated requests
//! reaches; its requests differ (some are 64 KB), so that figure is information, not the ratio.
//!
//! Needs `wrk` (Debian: `apt-get install wrk`). Traffic stays on loopback and every run is
//! bounded by its duration.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authconform::fuzz::{self, Base, Endpoint, Probe};
use authconform::session::{self, StopSignal, TargetOptions};
use proptest::strategy::{Just, Strategy};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful: run
    // only when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fuzz_throughput: run with `cargo bench --bench fuzz_throughput`");
        return;
    }
    let secs = env_u64("BENCH_SECS", 10);
    let conns = env_u64("BENCH_CONNECTIONS", 8) as usize;
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("fuzz_throughput: wrk is not installed (Debian: apt-get install wrk)");
        std::process::exit(1);
    }
    // Pinning: the server on CPU 0, the load generators (wrk, then this process) on CPU 1.
    // Unpinned on a small machine, a client's own CPU cost is taken from the server it
    // measures, so the ratio would compare client weights rather than ask whether the harness
    // keeps the server as busy as a load generator does. BENCH_PIN=0 measures unpinned.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned_already = std::env::var_os("AUTHCONFORM_BENCH_PINNED").is_some();
    let pin = pinned_already
        || (std::env::var("BENCH_PIN").map_or(true, |v| v != "0")
            && cpus >= 2
            && Command::new("taskset").arg("-V").output().is_ok());
    if pin && !pinned_already {
        let exe = std::env::current_exe().expect("own path");
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(exe)
            .args(std::env::args().skip(1))
            .env("AUTHCONFORM_BENCH_PINNED", "1")
            .status()
            .expect("re-run pinned");
        std::process::exit(status.code().unwrap_or(1));
    }

    // The reference in its own process, so that in both measurements the server's CPU is
    // outside the measuring process.
    let mut reference = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", env!("CARGO_BIN_EXE_authconform")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_authconform"))
    };
    let reference = reference
        .args(["reference", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authconform reference");
    // Killed however this function ends, a failed assertion included.
    let mut reference = KillOnDrop(reference);
    let mut line = String::new();
    BufReader::new(reference.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reference prints its settings");
    let info: serde_json::Value = serde_json::from_str(&line).expect("settings JSON");
    let resource = info["resource"].as_str().expect("resource").to_string();
    let ca = std::path::PathBuf::from(info["ca"].as_str().expect("ca path"));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (campaign_fixed, campaign_mix, wrk_rps) = rt.block_on(async move {
        // Set up as `authconform fuzz --resource URL --cacert FILE` sets up.
        let target = session::fuzz_target(
            &TargetOptions {
                resource: Some(resource),
                cacert: Some(ca),
                ..TargetOptions::default()
            },
            Duration::from_secs(5),
            &|_| {},
        )
        .await
        .expect("discovery");
        let setup = target.setup.clone();
        let token_url = setup.urls[&Base::Token].clone();
        let fixed: Probe = fuzz::known_good(&setup, Base::Token);
        let body = String::from_utf8(fixed.body.clone().unwrap_or_default()).expect("utf-8");

        // 1. wrk, the same request.
        let script = tempfile_path("authconform-bench.lua");
        let mut f = std::fs::File::create(&script).expect("lua script");
        writeln!(
            f,
            "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"",
            lua_string(&body)
        )
        .expect("write lua");
        let out = Command::new("wrk")
            .args([
                "-t",
                if pin { "1" } else { "2" },
                "-c",
                &conns.to_string(),
                "-d",
                &format!("{secs}s"),
                "-s",
                script.to_str().expect("path"),
                &token_url,
            ])
            .output()
            .expect("run wrk");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let wrk_rps: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
        if !text.contains("Non-2xx or 3xx responses") {
            eprintln!("note: wrk saw only 2xx/3xx answers; expected 400s:\n{text}");
        }

        let settings = fuzz::Settings {
            seed: 1,
            duration: Some(Duration::from_secs(secs)),
            cases: None,
            concurrency: conns,
            shrink_tries: 0,
            shrink_time: Duration::ZERO,
            insecure_curl: false,
            shard: None,
        };
        let run = |strategy| {
            let setup = setup.clone();
            let settings = settings.clone();
            async move {
                let o = fuzz::campaign_with(
                    setup,
                    Endpoint::Token,
                    strategy,
                    settings,
                    StopSignal::new(),
                    Arc::new(fuzz::Progress::default()),
                )
                .await;
                assert!(
                    o.findings.is_empty(),
                    "the compliant reference broke a rule: {:?}",
                    o.findings
                );
                o.stats.requests_per_sec
            }
        };
        // 2. The campaign engine, the same request.
        let fixed_rps = run(Just(fixed).sboxed()).await;
        // 3. The campaign engine, generated token requests.
        let mix_rps = run(Endpoint::Token.strategy(&setup.vocabulary)).await;
        (fixed_rps, mix_rps, wrk_rps)
    });
    drop(reference);

    println!(
        "token endpoint of the reference, {secs} s each, {conns} connections, {}:",
        if pin {
            "server pinned to CPU 0, load generators to CPU 1"
        } else {
            "unpinned"
        }
    );
    println!("  wrk, fixed request:              {wrk_rps:>10.1} requests/s");
    println!("  campaign engine, fixed request:  {campaign_fixed:>10.1} requests/s");
    println!("  campaign, generated requests:    {campaign_mix:>10.1} requests/s");
    let ratio = campaign_fixed / wrk_rps;
    println!(
        "throughput ratio (campaign / wrk, same request): {ratio:.3} (target >= 0.9: {})",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", std::process::id()))
}

/// A Lua string literal for `s` (printable ASCII only: the fixed request is form-encoded).
fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
