//! The command line: argument definitions and the glue from arguments to library calls. The
//! binary (`src/main.rs`) only calls [`main`] and exits with its code.
//!
//! Exit codes: 0 = no MUST case failed or errored (or every verdict matched `--expect`);
//! 1 = otherwise; 2 = bad usage, bad configuration, bad case file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::case::{self, Case, Selection};
use crate::expectations;
use crate::http::{Http, HttpConfig};
use crate::record::{CaseResult, Level, RunReport, TargetInfo};
use crate::redact::Redactor;
use crate::reference;
use crate::report::{self, console::Console, sanitize_terminal};
use crate::runner;
use crate::spec::{Revision, SpecChoice};
use crate::step::RunEnv;
use crate::target::{self, Target};

#[derive(Parser, Debug)]
#[command(
    name = "authconform",
    version,
    about = "Conformance suite for MCP authorization: OAuth 2.1 as the Model Context Protocol profiles it",
    long_about = None,
    after_help = "Exit codes: 0 = no MUST case failed or errored (or all verdicts match --expect); 1 = otherwise; 2 = bad usage, config or case file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the cases against a target (with no target: the built-in reference server).
    Run(Box<RunArgs>),
    /// List the cases: id, area, level, role, title, references.
    List(ListArgs),
    /// Serve the built-in reference server in the foreground.
    Reference(ReferenceArgs),
    /// Attack campaigns: proptest-generated requests against the token, registration,
    /// authorization, metadata and MCP endpoints, judged by named rules; findings are shrunk to
    /// a minimal request with a curl reproducer (`--replay` sends them again).
    Fuzz(Box<FuzzArgs>),
    /// Make (once) and show authconform's local CA: the certificate an authorization server
    /// must trust to fetch Client ID Metadata Documents from authconform's document host.
    Ca(CaArgs),
}

#[derive(Args, Debug)]
pub struct CaArgs {
    /// Directory of the CA (default: $AUTHCONFORM_CA_DIR, else ~/.cache/authconform/ca).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
}

/// What to attack or test, shared by `run` and `fuzz`.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The MCP endpoint to test (discovery starts from an unauthenticated request).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub resource: Option<String>,
    /// An authorization server to test alone (RS cases are skipped).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub issuer: Option<String>,
    /// A TOML target profile.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run against the built-in reference server with this fault (a case id). Repeatable.
    #[arg(long = "reference-fault", value_name = "ID", conflicts_with_all = ["resource", "issuer", "config"])]
    pub reference_faults: Vec<String>,
    /// Extra trusted CA certificates (PEM), e.g. a test server's.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Bytes of a response body read at most.
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Seconds one exchange may take, body included.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run the case files of DIR (`DIR/<area>/<id>.toml`) instead of the shipped ones.
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
    /// Only cases matching PATTERN (id, requirement id, area, or glob like `prm-*`). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub only: Vec<String>,
    /// Skip cases matching PATTERN. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Keep cases at this level or stricter (must = MUST only).
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
    /// MCP revision to grade at: 2025-06-18, 2025-11-25, 2026-07-28 or auto.
    #[arg(long, default_value = "auto", value_parser = parse_spec)]
    pub spec: SpecChoice,
    /// Folder for junit.xml, report.html and results.json.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 log (for code scanning) to FILE.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Expected verdicts (TOML `[verdicts]` id = status): the run passes only if all match.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Write the run's verdicts as an expectations file.
    #[arg(long, value_name = "FILE")]
    pub write_expect: Option<PathBuf>,
    /// Longest a case may wait on purpose (code and token expiry probes); cases that need
    /// longer are skipped, saying how long they need. Overrides the profile's
    /// `timing.max_wait_secs`.
    #[arg(long, value_name = "SECS")]
    pub max_wait: Option<u64>,
    /// Where the authorization server reaches authconform's Client ID Metadata Document host
    /// (a tunnel to it), when the AS is not on this machine.
    #[arg(long, value_name = "URL")]
    pub public_base_url: Option<String>,
    /// Port of the document host's https listener on 127.0.0.1 (default: any free port).
    #[arg(long, value_name = "PORT")]
    pub document_port: Option<u16>,
    /// Directory of authconform's persistent CA (see `authconform ca`).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print each failure's details and exchanges.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Args, Debug)]
pub struct FuzzArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The endpoint to attack (`all`: each in turn, every one for the full budget).
    #[arg(long, value_enum, default_value = "all")]
    pub endpoint: EndpointArg,
    /// Seconds per endpoint (default 20 when --cases is not given either).
    #[arg(long, value_name = "SECS")]
    pub seconds: Option<f64>,
    /// Generated requests per endpoint, at most (with --seconds: whichever ends first).
    #[arg(long, value_name = "N")]
    pub cases: Option<u64>,
    /// Campaign seed (default: random, printed): case N of an endpoint is the same request
    /// for the same seed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The latency rule's bound, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub slow_ms: u64,
    /// Re-send the findings of a fuzz report (its results.json) to the target and say which
    /// still break their rule.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Folder for junit.xml, report.html and results.json (default reports/fuzz, or
    /// reports/fuzz-replay with --replay).
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 log to FILE.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Print each finding's details and exchanges.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, ValueEnum)]
pub enum EndpointArg {
    Token,
    Register,
    Authorize,
    Metadata,
    Resource,
    All,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LevelArg {
    Must,
    Should,
    May,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "DIR")]
    pub cases: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReferenceArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Inject this fault (a case id). Repeatable.
    #[arg(long = "fault", value_name = "ID")]
    pub faults: Vec<String>,
    /// Development mode for Client ID Metadata Documents: also fetch documents from this
    /// loopback `HOST:PORT` (an authconform document host; other special-use addresses stay
    /// refused). The document host's CA (`authconform ca`) is trusted. Repeatable.
    #[arg(long = "cimd-dev-origin", value_name = "HOST:PORT")]
    pub cimd_dev_origins: Vec<String>,
}

fn parse_spec(s: &str) -> Result<SpecChoice, String> {
    s.parse()
}

/// Entry point of the binary: parses arguments, runs, returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(*a).await,
            Command::List(a) => list(a),
            Command::Reference(a) => serve_reference(a).await,
            Command::Ca(a) => show_ca(a),
            Command::Fuzz(a) => fuzz(*a).await,
        }
    })
}

fn load_cases(dir: Option<&Path>) -> Result<Vec<Case>, i32> {
    let r = match dir {
        Some(d) => case::load_dir(d, crate::checks::NAMES),
        None => case::load_builtin(crate::checks::NAMES),
    };
    r.map_err(|e| {
        eprintln!(
            "error: invalid case files:\n{}",
            sanitize_terminal(&e.to_string())
        );
        2
    })
}

fn list(a: ListArgs) -> i32 {
    let cases = match load_cases(a.cases.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let v: Vec<_> = cases
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id(), "area": c.file.area, "level": Level::from(c.file.level).as_str(),
                    "role": c.file.role.as_str(), "title": c.file.title, "refs": c.file.refs,
                    "specs": c.file.specs,
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        );
    } else {
        for c in &cases {
            let _ = writeln!(
                out,
                "{:<40} {:<12} {:<6} {:<2} {}  [{}]",
                c.id(),
                c.file.area,
                Level::from(c.file.level).as_str(),
                c.file.role.as_str(),
                c.file.title,
                c.file.refs.join("; ")
            );
        }
    }
    0
}

fn show_ca(a: CaArgs) -> i32 {
    let dir = a.ca_dir.unwrap_or_else(crate::local_ca::default_dir);
    match crate::local_ca::persistent(&dir) {
        Ok((_, path)) => {
            println!("{}", path.display());
            eprintln!(
                "authconform's CA: {} (it can only vouch for 127.0.0.0/8, ::1 and localhost).\n\
                 An authorization server on this machine must trust it to fetch Client ID \
                 Metadata Documents from authconform's document host; for node servers start \
                 them with NODE_EXTRA_CA_CERTS={}",
                path.display(),
                path.display()
            );
            0
        }
        Err(e) => usage_error(format!("CA in {}: {e}", dir.display())),
    }
}

async fn serve_reference(a: ReferenceArgs) -> i32 {
    let cases = match load_cases(None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = check_faults(&a.faults, &cases) {
        return code;
    }
    let cimd_trust = if a.cimd_dev_origins.is_empty() {
        None
    } else {
        match crate::local_ca::persistent(&crate::local_ca::default_dir()) {
            Ok((ca, _)) => Some(ca.ca_pem),
            Err(e) => return usage_error(format!("authconform's CA: {e}")),
        }
    };
    let r = match reference::start(reference::Options {
        port: a.port,
        faults: a.faults.clone(),
        cimd_dev_origins: a.cimd_dev_origins.clone(),
        cimd_trust_pem: cimd_trust,
    })
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // The CA goes to a file so other clients (curl, an MCP client) can trust the reference.
    let ca_path =
        std::env::temp_dir().join(format!("authconform-reference-ca-{}.pem", r.addr.port()));
    if let Err(e) = std::fs::write(&ca_path, &r.ca.ca_pem) {
        eprintln!("error: cannot write {}: {e}", ca_path.display());
        return 2;
    }
    println!(
        "{}",
        serde_json::json!({
            "issuer": r.issuer,
            "resource": r.resource,
            "ca": ca_path,
            "faults": a.faults,
            // What a profile needs to drive the reference's login (a throw-away test user).
            "login": { "username": r.username, "password": r.password },
            "second_login": { "username": r.second_username, "password": r.second_password },
            "clients": r.clients.iter().map(|c| serde_json::json!({
                "client_id": c.client_id,
                "auth_method": c.auth_method,
                "client_secret": c.secret,
                "redirect_uris": c.redirect_uris,
            })).collect::<Vec<_>>(),
        })
    );
    let _ = std::io::stdout().flush();
    eprintln!("reference server on https://{} (Ctrl-C to stop)", r.addr);
    let _ = tokio::signal::ctrl_c().await;
    r.shutdown();
    0
}

fn check_faults(faults: &[String], cases: &[Case]) -> Result<(), i32> {
    for f in faults {
        if !cases.iter().any(|c| c.id() == f) {
            eprintln!("error: --reference-fault {f:?} names no case (see `authconform list`)");
            return Err(2);
        }
        if !reference::FAULTS.contains(&f.as_str()) {
            eprintln!(
                "error: the reference server has no fault for {f:?} (its case declares no_fault)"
            );
            return Err(2);
        }
    }
    Ok(())
}

fn usage_error(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {}", sanitize_terminal(&msg.to_string()));
    2
}

/// The target options resolved: HTTP limits (defaults, then the profile, then flags), the
/// target URLs and the profile.
struct LoadedTarget {
    http_cfg: HttpConfig,
    target: Target,
    kind: &'static str,
    profile: target::Profile,
}

fn load_target(t: &TargetArgs) -> Result<LoadedTarget, i32> {
    // HTTP limits: defaults, then the profile, then flags.
    let mut http_cfg = HttpConfig::default();
    let mut target = Target {
        resource: t.resource.clone(),
        issuer: t.issuer.clone(),
    };
    let mut kind = if t.resource.is_some() {
        "resource"
    } else {
        "issuer"
    };
    let mut profile_used = target::Profile::default();
    if let Some(p) = &t.config {
        let profile = match target::load_profile(p) {
            Ok(pr) => pr,
            Err(e) => return Err(usage_error(e)),
        };
        let base = p.parent().unwrap_or(Path::new("."));
        if let Err(e) = profile.http.apply(base, &mut http_cfg) {
            return Err(usage_error(format!("{}: {e}", p.display())));
        }
        target.resource = profile.target.resource.clone();
        target.issuer = profile.target.issuer.clone();
        profile_used = profile;
        kind = "config";
    }
    for (flag, v) in [
        ("--resource", &target.resource),
        ("--issuer", &target.issuer),
    ] {
        if let Some(u) = v
            && let Err(e) = target::check_url(u)
        {
            return Err(usage_error(format!("{flag}: {e}")));
        }
    }
    if let Some(n) = t.max_body {
        if n == 0 {
            return Err(usage_error("--max-body must be at least 1"));
        }
        http_cfg.max_body = n;
    }
    if let Some(s) = t.timeout {
        http_cfg.timeout = Duration::from_secs(s.max(1));
    }
    if let Some(f) = &t.cacert {
        match std::fs::read(f) {
            Ok(pem) => http_cfg.extra_roots_pem.push(pem),
            Err(e) => return Err(usage_error(format!("--cacert {}: {e}", f.display()))),
        }
    }

    Ok(LoadedTarget {
        http_cfg,
        target,
        kind,
        profile: profile_used,
    })
}

impl LoadedTarget {
    /// Neither a resource nor an issuer: the built-in reference server is the target.
    fn names_no_target(&self) -> bool {
        self.target.resource.is_none() && self.target.issuer.is_none()
    }

    /// Starts the built-in reference (with `faults`, and trusting the document host's CA when
    /// CIMD cases run) and makes it the target: its URL, its CA, its profile.
    async fn start_reference(
        &mut self,
        faults: &[String],
        documents: Option<&crate::cimd::Documents>,
        doing: &str,
    ) -> Result<reference::Reference, i32> {
        let r = reference::start(reference::Options {
            port: 0,
            faults: faults.to_vec(),
            cimd_dev_origins: documents.iter().flat_map(|d| d.dev_origins()).collect(),
            cimd_trust_pem: documents.map(|d| d.host.ca_pem.clone()),
        })
        .await
        .map_err(usage_error)?;
        eprintln!(
            "no target given: {doing} the built-in reference server at https://{}{}",
            r.addr,
            if faults.is_empty() {
                String::new()
            } else {
                format!(" with fault(s) {}", faults.join(", "))
            }
        );
        self.http_cfg
            .extra_roots_pem
            .push(r.ca.ca_pem.clone().into_bytes());
        self.target.resource = Some(r.resource.clone());
        self.target.issuer = None;
        self.profile = r.profile();
        self.kind = "reference";
        Ok(r)
    }
}

/// The audited client of a run. The test users' passwords are masked wherever they appear,
/// whatever field carries them.
fn audited_http(cfg: HttpConfig, profile: &target::Profile) -> Result<Http, i32> {
    let redactor = Redactor::new();
    for p in [&profile.login.password, &profile.login.second_password]
        .into_iter()
        .flatten()
    {
        redactor.add_secret(p);
    }
    Http::new(cfg, redactor).map_err(usage_error)
}

/// Writes the JSON, JUnit and HTML reports (each to its flag's file, else into `dir`) and the
/// SARIF log when asked for, and says where.
fn write_reports(
    report: &RunReport,
    dir: &Path,
    json: &Option<PathBuf>,
    junit: &Option<PathBuf>,
    html: &Option<PathBuf>,
    sarif: Option<&Path>,
) -> Result<(), i32> {
    let json = json.clone().unwrap_or_else(|| dir.join("results.json"));
    let junit = junit.clone().unwrap_or_else(|| dir.join("junit.xml"));
    let html = html.clone().unwrap_or_else(|| dir.join("report.html"));
    match report::write_all(report, Some(&json), Some(&junit), Some(&html), sarif) {
        Ok(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!("reports: {}", names.join(", "));
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(2)
        }
    }
}

async fn run(a: RunArgs) -> i32 {
    let all_cases = match load_cases(a.cases.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let known_ids: Vec<String> = all_cases.iter().map(|c| c.id().to_string()).collect();
    let selection = Selection {
        only: a.only.clone(),
        skip: a.skip.clone(),
        level: a.level.map(|l| match l {
            LevelArg::Must => Level::Must,
            LevelArg::Should => Level::Should,
            LevelArg::May => Level::May,
        }),
    };
    for p in &a.only {
        if !all_cases.iter().any(|c| Selection::matches(p, c)) {
            return usage_error(format!(
                "--only {p:?} matches no case (see `authconform list`)"
            ));
        }
    }
    let cases: Vec<Case> = all_cases
        .into_iter()
        .filter(|c| selection.keeps(c))
        .collect();
    if let Err(code) = check_faults(&a.target.reference_faults, &cases) {
        return code;
    }
    let expect = match &a.expect {
        Some(p) => match expectations::load(p) {
            Ok(e) => Some(e),
            Err(e) => return usage_error(e),
        },
        None => None,
    };

    let mut loaded = match load_target(&a.target) {
        Ok(t) => t,
        Err(code) => return code,
    };

    // The Client ID Metadata Document host, when CIMD cases run. Against the built-in
    // reference it uses a throw-away CA the reference is handed; against a real AS, the
    // persistent CA the AS was told to trust (`authconform ca`).
    let reference_target = loaded.names_no_target();
    let mut documents = None;
    if cases.iter().any(|c| c.file.area == "cimd") {
        let public = a
            .public_base_url
            .clone()
            .or_else(|| loaded.profile.cimd.public_base_url.clone());
        if let Some(u) = &public
            && let Err(e) = target::check_url(u)
        {
            return usage_error(format!("--public-base-url: {e}"));
        }
        let (ca, ca_path) = if reference_target {
            match crate::local_ca::generate_for("document host") {
                Ok(ca) => (ca, None),
                Err(e) => return usage_error(format!("document host CA: {e}")),
            }
        } else {
            let dir = a
                .ca_dir
                .clone()
                .unwrap_or_else(crate::local_ca::default_dir);
            match crate::local_ca::persistent(&dir) {
                Ok((ca, p)) => (ca, Some(p)),
                Err(e) => return usage_error(format!("authconform's CA: {e}")),
            }
        };
        let port = a.document_port.or(loaded.profile.cimd.port).unwrap_or(0);
        match crate::cimd::Documents::start(port, public, ca, ca_path).await {
            Ok(d) => {
                if !reference_target {
                    eprintln!(
                        "CIMD document host: {}{}",
                        d.host.base_url,
                        d.ca_path
                            .as_ref()
                            .map(|p| format!(
                                " (the AS must trust {}; node: NODE_EXTRA_CA_CERTS)",
                                p.display()
                            ))
                            .unwrap_or_default()
                    );
                }
                documents = Some(Arc::new(d));
            }
            Err(e) => return usage_error(e),
        }
    }

    let mut reference_server = None;
    if reference_target {
        match loaded
            .start_reference(
                &a.target.reference_faults,
                documents.as_deref(),
                "running against",
            )
            .await
        {
            Ok(r) => reference_server = Some(r),
            Err(code) => return code,
        }
    }
    let LoadedTarget {
        http_cfg,
        target,
        kind,
        profile: mut profile_used,
    } = loaded;
    let http = match audited_http(http_cfg, &profile_used) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let spec = runner::choose_revision(&http, target.resource.as_deref(), a.spec).await;
    let revision: Revision = spec.graded.parse().unwrap_or(Revision::FALLBACK);
    let color =
        !a.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let console = Arc::new(Console::new(color, a.verbose));
    eprintln!(
        "grading at MCP {} ({}); {} case(s)",
        spec.graded,
        sanitize_terminal(&spec.detection),
        cases.len()
    );

    let target_info = TargetInfo {
        kind: kind.to_string(),
        resource: target.resource.clone(),
        issuer: target.issuer.clone(),
        faults: a.target.reference_faults.clone(),
    };
    if let Some(w) = a.max_wait {
        profile_used.timing.max_wait_secs = Some(w);
    }
    let callback = match crate::callback::Listener::start(&profile_used.callback).await {
        Ok(l) => l,
        Err(e) => {
            return usage_error(format!(
                "callback listener on 127.0.0.1:{}: {e}",
                profile_used.callback.port.unwrap_or(0)
            ));
        }
    };
    let env = Arc::new(RunEnv {
        http,
        target,
        revision,
        profile: profile_used,
        callback,
        registered: Default::default(),
        as_metadata: Default::default(),
        documents,
    });
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let t0 = Instant::now();
    let collected: Arc<Mutex<Vec<CaseResult>>> = Arc::new(Mutex::new(Vec::new()));
    let order: Vec<String> = cases.iter().map(|c| c.id().to_string()).collect();
    let sink = collected.clone();
    let con = console.clone();
    let run_fut = runner::run_all(env, cases, a.concurrency, move |r| {
        println!("{}", con.case_line(r));
        if let Ok(mut v) = sink.lock() {
            v.push(r.clone());
        }
    });
    // Ctrl-C stops the run, but the reports are still written from what finished.
    let interrupted = tokio::select! {
        _ = run_fut => false,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: writing reports for the cases that finished");
            true
        }
    };
    let mut results = collected.lock().map(|v| v.clone()).unwrap_or_default();
    results.sort_by_key(|r| order.iter().position(|o| *o == r.id).unwrap_or(usize::MAX));
    let report_data = RunReport {
        tool: "authconform".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        target: target_info,
        spec,
        started_at,
        duration_ms: t0.elapsed().as_millis() as u64,
        interrupted,
        summary: RunReport::summarize(&results),
        results,
        fuzz: None,
    };
    if let Some(r) = reference_server {
        r.shutdown();
    }

    if let Err(code) = write_reports(
        &report_data,
        &a.report_dir,
        &a.json,
        &a.junit,
        &a.html,
        a.sarif.as_deref(),
    ) {
        return code;
    }
    println!("{}", console.summary(&report_data));
    if let Some(p) = &a.write_expect {
        let header = format!(
            "Expected verdicts for `authconform run --expect`; written by --write-expect.\nTarget: {} {}",
            report_data.target.kind,
            report_data
                .target
                .resource
                .as_deref()
                .or(report_data.target.issuer.as_deref())
                .unwrap_or("")
        );
        if let Err(e) = std::fs::write(p, expectations::render(&report_data.results, &header)) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return 2;
        }
    }
    if interrupted {
        return 1;
    }
    match expect {
        Some(exp) => {
            let cmp = expectations::compare(&exp, &report_data.results, &known_ids);
            for (id, want, got) in &cmp.mismatches {
                println!(
                    "verdict changed: {id}: expected {}, got {}",
                    want.as_str(),
                    got.as_str()
                );
            }
            for (id, got) in &cmp.unlisted {
                println!("not in {}: {id} ({})", exp.path, got.as_str());
            }
            for id in &cmp.stale {
                println!("stale entry in {}: {id} (no such case)", exp.path);
            }
            println!(
                "expectations {}: {} matched, {} changed, {} unlisted, {} stale",
                exp.path,
                cmp.matched,
                cmp.mismatches.len(),
                cmp.unlisted.len(),
                cmp.stale.len()
            );
            if cmp.ok() { 0 } else { 1 }
        }
        None => {
            if report_data.results.iter().any(CaseResult::gates) {
                1
            } else {
                0
            }
        }
    }
}

async fn fuzz(a: FuzzArgs) -> i32 {
    use crate::fuzz::{self as fz, Endpoint};
    use std::sync::atomic::{AtomicBool, Ordering};

    let cases = match load_cases(None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = check_faults(&a.target.reference_faults, &cases) {
        return code;
    }
    if a.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        return usage_error("--seconds must be a positive number");
    }
    if a.cases == Some(0) {
        return usage_error("--cases must be at least 1");
    }
    if a.concurrency == 0 {
        return usage_error("--concurrency must be at least 1");
    }
    let replay = match &a.replay {
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<RunReport>(&t).map_err(|e| e.to_string()))
        {
            Ok(r) => match r.fuzz {
                Some(f) if !f.findings.is_empty() => Some(f),
                Some(_) => {
                    return usage_error(format!(
                        "{}: the report has no findings to replay",
                        p.display()
                    ));
                }
                None => {
                    return usage_error(format!(
                        "{}: not a fuzz report (no \"fuzz\" section)",
                        p.display()
                    ));
                }
            },
            Err(e) => return usage_error(format!("--replay {}: {e}", p.display())),
        },
        None => None,
    };
    let mut loaded = match load_target(&a.target) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut reference_server = None;
    if loaded.names_no_target() {
        match loaded
            .start_reference(&a.target.reference_faults, None, "attacking")
            .await
        {
            Ok(r) => reference_server = Some(r),
            Err(code) => return code,
        }
    }
    let LoadedTarget {
        http_cfg,
        target,
        kind,
        profile: profile_used,
    } = loaded;
    let http = match audited_http(http_cfg, &profile_used) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let slow = Duration::from_millis(a.slow_ms.max(1));
    let setup = match fz::discover(
        http,
        target.resource.as_deref(),
        target.issuer.as_deref(),
        &profile_used.clients,
        slow,
    )
    .await
    {
        Ok(s) => Arc::new(s),
        Err(e) => return usage_error(e),
    };
    let color =
        !a.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let console = Console::new(color, a.verbose);
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let t0 = Instant::now();
    let spec_str = Revision::FALLBACK.as_str();
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C: campaigns stop at their next request and the reports are written.
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: finishing the requests in flight, then writing reports");
                stop.store(true, Ordering::Relaxed);
            }
        });
    }

    let (results, fuzz_record, default_dir) = if let Some(rec) = replay {
        let results = replay_findings(&setup, &rec.findings, &cases, spec_str).await;
        (results, None, "reports/fuzz-replay")
    } else {
        let seed = a.seed.unwrap_or_else(rand::random);
        let duration = match (a.seconds, a.cases) {
            (Some(s), _) => Some(Duration::from_secs_f64(s)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(20)),
        };
        let endpoints: Vec<Endpoint> = match a.endpoint {
            EndpointArg::All => Endpoint::ALL.to_vec(),
            EndpointArg::Token => vec![Endpoint::Token],
            EndpointArg::Register => vec![Endpoint::Register],
            EndpointArg::Authorize => vec![Endpoint::Authorize],
            EndpointArg::Metadata => vec![Endpoint::Metadata],
            EndpointArg::Resource => vec![Endpoint::Resource],
        };
        eprintln!(
            "fuzz seed {seed} (rerun with --seed {seed}); {} endpoint(s), {} each, {} in flight",
            endpoints.len(),
            match (duration, a.cases) {
                (Some(d), Some(n)) => format!("{:.1} s or {n} requests", d.as_secs_f64()),
                (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
                (None, Some(n)) => format!("{n} requests"),
                (None, None) => unreachable!("a bound is always set"),
            },
            a.concurrency
        );
        let settings = fz::Settings {
            seed,
            duration,
            cases: a.cases,
            concurrency: a.concurrency,
            shrink_tries: 400,
            shrink_time: Duration::from_secs(20),
            insecure_curl: reference_server.is_some(),
        };
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let mut outcomes = Vec::new();
        for ep in endpoints {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if ep.bases().iter().all(|b| !setup.urls.contains_key(b)) {
                eprintln!(
                    "{}: skipped ({})",
                    ep.as_str(),
                    ep.bases()
                        .iter()
                        .filter_map(|b| setup.missing.get(b))
                        .next()
                        .map(|s| sanitize_terminal(s))
                        .unwrap_or_default()
                );
            }
            let progress = Arc::new(fz::Progress::default());
            let ticker = tty.then(|| tokio::spawn(progress_ticker(progress.clone())));
            let o = fz::campaign(setup.clone(), ep, settings.clone(), stop.clone(), progress).await;
            if let Some(t) = ticker {
                t.abort();
                eprint!("\r\x1b[2K");
            }
            if !o.stats.urls.is_empty() {
                eprintln!(
                    "{}: {} requests in {:.1} s ({} per second), {} violating, {} finding(s){}",
                    ep.as_str(),
                    o.stats.requests,
                    o.stats.duration_ms as f64 / 1000.0,
                    o.stats.requests_per_sec,
                    o.stats.violations,
                    o.findings.len(),
                    o.stats
                        .stopped_early
                        .as_deref()
                        .map(|s| format!("; stopped: {}", sanitize_terminal(s)))
                        .unwrap_or_default()
                );
            }
            outcomes.push(o);
        }
        let json_path = a.json.clone().unwrap_or_else(|| {
            a.report_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("reports/fuzz"))
                .join("results.json")
        });
        let hint = format!(
            "authconform fuzz --replay {}{}",
            json_path.display(),
            if reference_server.is_some() {
                a.target
                    .reference_faults
                    .iter()
                    .map(|f| format!(" --reference-fault {f}"))
                    .collect::<String>()
            } else {
                " (with this run's target options)".to_string()
            }
        );
        let (results, record) =
            fz::results::build(&outcomes, &setup, &cases, seed, spec_str, &hint);
        (results, Some(record), "reports/fuzz")
    };
    let interrupted = stop.load(Ordering::Relaxed);
    if let Some(r) = reference_server {
        r.shutdown();
    }
    for r in &results {
        println!("{}", console.case_line(r));
    }
    let report_data = RunReport {
        tool: "authconform".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        target: TargetInfo {
            kind: kind.to_string(),
            resource: target.resource.clone(),
            issuer: target.issuer.clone(),
            faults: a.target.reference_faults.clone(),
        },
        spec: crate::record::SpecInfo {
            graded: spec_str.into(),
            source: "fuzz".into(),
            detection: "fuzz rules are not graded by revision; levels are the requirements' own"
                .into(),
        },
        started_at,
        duration_ms: t0.elapsed().as_millis() as u64,
        interrupted,
        summary: RunReport::summarize(&results),
        results,
        fuzz: fuzz_record,
    };
    let dir = a
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_dir));
    if let Err(code) = write_reports(
        &report_data,
        &dir,
        &a.json,
        &a.junit,
        &a.html,
        a.sarif.as_deref(),
    ) {
        return code;
    }
    println!("{}", console.summary(&report_data));
    let s = &report_data.summary;
    if interrupted || s.failed > 0 || s.errored > 0 {
        1
    } else {
        0
    }
}

/// A one-line progress display on a terminal: endpoint, time, requests/s and findings.
async fn progress_ticker(p: Arc<crate::fuzz::Progress>) {
    use std::sync::atomic::Ordering;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(started) = p.started.lock().ok().and_then(|s| *s) else {
            continue;
        };
        let secs = started.elapsed().as_secs_f64();
        let n = p.requests.load(Ordering::Relaxed);
        let name = p.endpoint.lock().map(|e| e.clone()).unwrap_or_default();
        eprint!(
            "\r\x1b[2K[{name}] {secs:.1} s  {n} requests ({:.0}/s)  findings {}",
            if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p.findings.load(Ordering::Relaxed)
        );
        let _ = std::io::stderr().flush();
    }
}

/// `fuzz --replay`: each finding's request, rebuilt for this target, sent once and judged by
/// its rule again. A finding that breaks the rule again is `failed` (confirmed); one that no
/// longer does is `passed`.
async fn replay_findings(
    setup: &crate::fuzz::Setup,
    findings: &[crate::record::Finding],
    cases: &[Case],
    spec: &str,
) -> Vec<CaseResult> {
    use crate::fuzz::{Base, Probe, Rule, oracle};
    use crate::record::Status;
    let mut out = Vec::new();
    let mut conn = crate::fuzz::wire::Conn::default();
    for f in findings {
        let base = Base::parse(&f.request.base);
        let rule = Rule::parse(&f.rule);
        let mut r = crate::fuzz::results::result_for(
            f.result_id.clone(),
            f.result_id
                .rsplit_once('.')
                .map_or(f.result_id.as_str(), |(r, _)| r),
            format!("replay of seed {} case {} ({})", f.seed, f.case, f.rule),
            cases,
            spec,
        );
        r.status = Status::Errored;
        r.details = vec![
            format!("recorded: {}", f.message),
            format!("reproduce: {}", f.curl),
        ];
        let (Some(base), Some(rule)) = (base, rule) else {
            r.message = format!(
                "unknown base {:?} or rule {:?} in the replay file",
                f.request.base, f.rule
            );
            out.push(r);
            continue;
        };
        let Some(url) = setup.urls.get(&base) else {
            r.message = format!(
                "this target has no {} URL: {}",
                base.as_str(),
                setup.missing.get(&base).cloned().unwrap_or_default()
            );
            r.exchanges = setup.discovery.clone();
            out.push(r);
            continue;
        };
        let probe = match Probe::from_replay(&f.request, &setup.substitutions) {
            Ok(p) => p,
            Err(e) => {
                r.message = format!("the replay record is damaged: {e}");
                out.push(r);
                continue;
            }
        };
        // Sent as the campaign sent it (raw request target), recorded by the audited client.
        let req = probe.to_request(url, &format!("replay of a {} finding", rule.as_str()));
        let t = Instant::now();
        let res = setup.wire.send(&mut conn, &req).await;
        let elapsed = t.elapsed();
        let ex = setup
            .http
            .record_sent(&req, &res, elapsed.as_millis() as u64);
        r.duration_ms = elapsed.as_millis() as u64;
        r.exchanges.push(ex);
        let hit = if rule == Rule::StillAnswers {
            match &res {
                Ok(x) if x.status < 500 => None,
                Ok(x) => Some(format!("the known-good request now gets {}", x.status)),
                Err(e) => Some(format!("the known-good request gets no answer: {e}")),
            }
        } else {
            oracle::judge(&probe, &res, elapsed, &setup.bounds)
                .into_iter()
                .find(|v| v.rule == rule)
                .map(|v| v.detail)
        };
        match hit {
            Some(d) => {
                r.status = Status::Failed;
                r.message = format!("confirmed: {d}");
            }
            // A rate limit answers nothing about the rule.
            None if res.as_ref().is_ok_and(|x| x.status == 429) => {
                r.message = "the target answered 429 (rate limited): could not tell".into();
            }
            None => {
                r.status = Status::Passed;
                r.message = format!(
                    "not reproduced: {}",
                    match &res {
                        Ok(x) => format!("answered {}", x.status),
                        Err(e) => e.to_string(),
                    }
                );
            }
        }
        out.push(r);
    }
    out
}
