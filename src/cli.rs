//! The command line: argument definitions, and printing what the library's [`session`] reports.
//! The binary (`src/main.rs`) only calls [`main`] and exits with its code.
//!
//! Exit codes ([`Exit`]), one per state of a run ([`crate::record::OutcomeState`]): 0 = passed
//! (no MUST case failed or errored, or every verdict matched `--expect`); 1 = failed (a MUST
//! case failed, a verdict differed from `--expect`, or the run was interrupted); 2 = bad usage,
//! configuration, case or expectations file; 3 = incomplete (nothing gating failed, but MUST
//! cases could not be judged: the target stopped answering, `--deadline` passed, a stage failed).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::case::Selection;
use crate::expected_verdicts::Comparison;
use crate::fuzz::Endpoint;
use crate::record::Level;
use crate::report::console::{Console, Progress};
use crate::session::{
    self, DocumentOptions, Event, Exit, FuzzOptions, ReportOptions, RunOptions, SetupOptions,
    StopSignal, TargetOptions,
};
use crate::spec::{Revision, SpecChoice};
use crate::terminal::sanitize_terminal;

#[derive(Parser, Debug)]
#[command(
    name = "authconform",
    version,
    about = "Conformance suite for MCP authorization: OAuth 2.1 as the Model Context Protocol profiles it",
    long_about = None,
    after_help = "Exit codes: 0 = passed (no MUST case failed or errored, or all verdicts match --expect); 1 = failed (a MUST case failed, a verdict differs from --expect, or the run was interrupted); 2 = bad usage, config, case or expectations file; 3 = incomplete (nothing gating failed, but MUST cases could not be judged: the target stopped answering, --deadline passed...)."
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
    /// Log the test user in once with the profile's login driver and show every step (the
    /// exchanges, the pages, the driver's trace, the outcome): a profile debugged in seconds.
    /// Exit 0 when the token endpoint issued an access token, 1 when the login failed.
    Login(Box<LoginArgs>),
    /// Combine the results.json of shards (`run --shard K/N`), of campaigns or of many targets
    /// into one verdict and one set of reports (several targets: a folder each and index.html).
    /// Exit codes as `run`: the worst of the targets.
    Merge(MergeArgs),
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
    /// Run against the built-in reference server with this fault (a case id, or a lifecycle
    /// fault id: `lifecycle.*`). Repeatable.
    #[arg(long = "reference-fault", value_name = "ID", conflicts_with_all = ["resource", "issuer", "config"])]
    pub reference_faults: Vec<String>,
    /// With no target named: how the built-in reference presents its login: form (HTML forms,
    /// the `form` driver), json (a JSON login API, the `script` driver) or spa (a page whose
    /// script renders the form, the `browser` driver; needs Chromium).
    #[arg(long = "reference-login", value_name = "STYLE", default_value = "form", value_parser = parse_login_style, conflicts_with_all = ["resource", "issuer", "config"])]
    pub reference_login: crate::reference::LoginStyle,
    /// With no target named: the optional mechanisms the built-in reference offers: all (the
    /// default), none, or a comma-separated list of par, dpop, token-exchange, id-jag. One not
    /// offered is neither advertised nor served, and its cases skip.
    #[arg(long = "reference-offer", value_name = "LIST", default_value = "all", value_parser = parse_offer, conflicts_with_all = ["resource", "issuer", "config"])]
    pub reference_offer: crate::reference::Offer,
    /// Extra trusted CA certificates (PEM), e.g. a test server's.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Bytes of a response body read at most.
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Seconds one exchange may take, body included.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Also connect to HOST (a name or an address, any port unless :PORT is given), though the
    /// egress policy refuses its address class (link-local, cloud metadata, another private
    /// network...). Repeatable; adds to the profile's `[network] allow`.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,
}

/// Where the reports go, shared by `run` and `fuzz`. Each command gives `--report-dir` its
/// own default and help (`mut_arg` below), so both keep the flags they always had.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Folder for junit.xml, report.html and results.json.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 log (for code scanning) to FILE.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(mut_arg("report_dir", |a| a.default_value("reports")))]
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
    /// With no target named: the MCP revision the built-in reference speaks, 2025-11-25 (the
    /// default: `initialize` and sessions) or 2026-07-28 (stateless: `server/discover`).
    #[arg(long, value_name = "REVISION", value_parser = parse_reference_revision, conflicts_with_all = ["resource", "issuer", "config"])]
    pub reference_revision: Option<Revision>,
    #[command(flatten)]
    pub reports: ReportArgs,
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
    /// Time limit for the whole run (`90s`, `10m`, `1h`; a bare number is seconds). Cases not
    /// finished by then are errored "not run: deadline" and the reports are written. Default:
    /// none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<std::time::Duration>,
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
    /// Run only share K of N of the selected cases (1-based, e.g. 2/4): the same share on
    /// every machine; a requirement's variants and the exclusive cases stay together, shares
    /// are balanced by expected duration. Combine the shards' reports with `authconform merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<crate::shard::Shard>,
    /// Balance --shard by the case durations of a previous run's results.json (give every
    /// shard the same file).
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub shard_timings: Option<PathBuf>,
    /// Run against every target of a TOML file (`[[target]]` entries: name, and resource /
    /// issuer / config / reference = true; optional faults, expect, cacert): a report folder
    /// each under --report-dir and an index.html. Exit: the worst target's.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "resource", "issuer", "config", "reference_faults", "expect", "write_expect",
        "json", "junit", "html", "sarif",
    ])]
    pub targets: Option<PathBuf>,
    /// With --targets: targets run at once (each with --concurrency cases).
    #[arg(long, value_name = "N", default_value_t = 2, requires = "targets")]
    pub parallel_targets: usize,
    /// Print each failure's details and exchanges.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long)]
    pub no_color: bool,
}

fn parse_shard(s: &str) -> Result<crate::shard::Shard, String> {
    s.parse()
}

#[derive(Args, Debug)]
#[command(
    mut_arg("report_dir", |a| a.help(
        "Folder for junit.xml, report.html and results.json (default reports/fuzz, or \
         reports/fuzz-replay with --replay)"
    )),
    mut_arg("sarif", |a| a.help("Also write a SARIF 2.1.0 log to FILE"))
)]
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
    /// Send only share K of N of each campaign's case numbers (case i when i % N = K-1; needs
    /// --seed, the same on every shard). Combine the shards' reports with `authconform merge`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard, requires = "seed", conflicts_with = "replay")]
    pub shard: Option<crate::shard::Shard>,
    /// Fuzz the OAuth lifecycle instead of single requests: sequences of authorize, redeem,
    /// refresh, revoke, MCP calls and waits, judged by invariants between them (--seconds for
    /// the whole campaign, default 60; --cases counts sequences; --concurrency bounds the
    /// concurrent duplicates of one operation, at most 5).
    #[arg(long, conflicts_with_all = ["shard", "endpoint"])]
    pub lifecycle: bool,
    /// Expected verdicts (TOML `[verdicts]` id = status) the lifecycle campaign must match:
    /// exit 0 when every verdict matches, as `run --expect`.
    #[arg(long, value_name = "FILE", requires = "lifecycle")]
    pub expect: Option<PathBuf>,
    /// Write the lifecycle campaign's verdicts to FILE as expectations.
    #[arg(long, value_name = "FILE", requires = "lifecycle")]
    pub write_expect: Option<PathBuf>,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Print each finding's details and exchanges.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Args, Debug)]
#[command(mut_arg("report_dir", |a| a.default_value("reports")))]
pub struct MergeArgs {
    /// results.json files, or folders holding one (or whose subfolders do, as a download of
    /// every shard's artifact does).
    #[arg(value_name = "DIR|FILE", required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub reports: ReportArgs,
    /// Expected verdicts (TOML `[verdicts]` id = status) every merged target must match.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// Print each failure's details and exchanges.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Who logs in: first, second, a [[login.users]] name, or a username (default: first).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Print the trace as JSON (machine-readable) instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// Inject this fault (a case id, or a lifecycle fault id: `lifecycle.*`). Repeatable.
    #[arg(long = "fault", value_name = "ID")]
    pub faults: Vec<String>,
    /// Development mode for Client ID Metadata Documents: also fetch documents from this
    /// loopback `HOST:PORT` (an authconform document host; other special-use addresses stay
    /// refused). The document host's CA (`authconform ca`) is trusted. Repeatable.
    #[arg(long = "cimd-dev-origin", value_name = "HOST:PORT")]
    pub cimd_dev_origins: Vec<String>,
    /// Resolve document hosts' names through this DNS server (UDP `HOST:PORT`), as an operator
    /// configures a resolver: a run whose profile says `[cimd] resolver = "HOST:PORT"` serves
    /// its rebinding DNS there (`cimd-ssrf-dns-rebind`).
    #[arg(long = "cimd-resolver", value_name = "HOST:PORT")]
    pub cimd_resolver: Option<std::net::SocketAddr>,
    /// The MCP revision the endpoint speaks: 2025-11-25 (default: `initialize` and sessions)
    /// or 2026-07-28 (stateless: `server/discover`, no `Mcp-Session-Id`).
    #[arg(long, value_name = "REVISION", value_parser = parse_reference_revision)]
    pub revision: Option<Revision>,
    /// How the login is presented: form (HTML forms), json (a JSON login API behind a page
    /// with no form) or spa (the form rendered by the page's script).
    #[arg(long, value_name = "STYLE", default_value = "form", value_parser = parse_login_style)]
    pub login: crate::reference::LoginStyle,
    /// Behave like a mock or development AS with open registration: any unknown client_id is a
    /// public client with any redirect URI, and no registration endpoint is offered (for
    /// profiles with `[registration] open = true`; not compliant: it redirects anywhere).
    #[arg(long)]
    pub open_registration: bool,
    /// The optional mechanisms it offers: all (the default), none, or a comma-separated list of
    /// par, dpop, token-exchange, id-jag.
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = parse_offer)]
    pub offer: crate::reference::Offer,
}

fn parse_login_style(s: &str) -> Result<crate::reference::LoginStyle, String> {
    s.parse()
}

fn parse_offer(s: &str) -> Result<crate::reference::Offer, String> {
    s.parse()
}

fn parse_spec(s: &str) -> Result<SpecChoice, String> {
    s.parse()
}

/// A revision the built-in reference can speak.
fn parse_reference_revision(s: &str) -> Result<Revision, String> {
    let r: Revision = s.parse()?;
    if crate::reference::REVISIONS.contains(&r) {
        Ok(r)
    } else {
        Err(format!(
            "the reference speaks 2025-11-25 or 2026-07-28, not {r}"
        ))
    }
}

/// `90`, `90s`, `10m`, `1h`: whole seconds, minutes or hours, more than zero.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (n, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 10m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the deadline must be more than zero".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

impl TargetArgs {
    fn options(self) -> TargetOptions {
        TargetOptions {
            resource: self.resource,
            issuer: self.issuer,
            config: self.config,
            reference_faults: self.reference_faults,
            reference_revision: None,
            reference_login: self.reference_login,
            reference_offer: self.reference_offer,
            cacert: self.cacert,
            max_body: self.max_body,
            timeout: self.timeout,
            allow_hosts: self.allow_hosts,
            name: None,
        }
    }
}

impl ReportArgs {
    fn options(self) -> ReportOptions {
        ReportOptions {
            dir: self.report_dir,
            json: self.json,
            junit: self.junit,
            html: self.html,
            sarif: self.sarif,
        }
    }
}

impl EndpointArg {
    fn endpoints(self) -> Vec<Endpoint> {
        match self {
            EndpointArg::All => Endpoint::ALL.to_vec(),
            EndpointArg::Token => vec![Endpoint::Token],
            EndpointArg::Register => vec![Endpoint::Register],
            EndpointArg::Authorize => vec![Endpoint::Authorize],
            EndpointArg::Metadata => vec![Endpoint::Metadata],
            EndpointArg::Resource => vec![Endpoint::Resource],
        }
    }
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::Must => Level::Must,
            LevelArg::Should => Level::Should,
            LevelArg::May => Level::May,
        }
    }
}

/// Entry point of the binary: parses arguments, runs, returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .code();
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(format!("cannot start the async runtime: {e}")).code(),
    };
    rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(*a).await,
            Command::List(a) => list(a),
            Command::Reference(a) => serve_reference(a).await,
            Command::Ca(a) => show_ca(a),
            Command::Fuzz(a) => fuzz(*a).await,
            Command::Login(a) => login(*a).await,
            Command::Merge(a) => merge(a),
        }
    })
    .code()
}

fn usage_error(msg: impl std::fmt::Display) -> Exit {
    eprintln!("error: {}", sanitize_terminal(&msg.to_string()));
    Exit::Usage
}

fn list(a: ListArgs) -> Exit {
    let cases = match session::load_cases(a.cases.as_deref()) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
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
    Exit::Ok
}

fn show_ca(a: CaArgs) -> Exit {
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
            Exit::Ok
        }
        Err(e) => usage_error(format!("CA in {}: {e}", dir.display())),
    }
}

async fn serve_reference(a: ReferenceArgs) -> Exit {
    let (r, ca_path) = match session::serve_reference(crate::reference::Options {
        port: a.port,
        faults: a.faults.clone(),
        cimd_dev_origins: a.cimd_dev_origins.clone(),
        cimd_resolver: a.cimd_resolver,
        revision: a.revision,
        login: a.login,
        open_registration: a.open_registration,
        offer: a.offer,
        ..Default::default()
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return usage_error(e),
    };
    println!(
        "{}",
        serde_json::json!({
            "issuer": r.issuer,
            "resource": r.resource,
            "ca": ca_path,
            "faults": a.faults,
            "revision": r.revision.as_str(),
            // What a profile needs to drive the reference's login (a throw-away test user).
            "login": { "username": r.username, "password": r.password },
            "second_login": { "username": r.second_username, "password": r.second_password },
            // More users the login accepts, for a profile's [[login.users]] pool.
            "users": r.more_users.iter().map(|u| serde_json::json!({
                "username": u.username, "password": u.password,
            })).collect::<Vec<_>>(),
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
    Exit::Ok
}

/// A stop signal Ctrl-C sets, saying `msg` when it does.
fn stop_on_ctrl_c(msg: &'static str) -> StopSignal {
    let stop = StopSignal::new();
    let s = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("{msg}");
            s.stop();
        }
    });
    stop
}

async fn run(a: RunArgs) -> Exit {
    let printer = Printer::new(a.no_color, a.verbose);
    let stop = stop_on_ctrl_c("interrupted: writing reports for the cases that finished");
    let mut target = a.target.options();
    target.reference_revision = a.reference_revision;
    let opts = RunOptions {
        setup: SetupOptions {
            target,
            documents: Some(DocumentOptions {
                public_base_url: a.public_base_url,
                port: a.document_port,
                ca_dir: a.ca_dir,
            }),
            spec: a.spec,
            max_wait: a.max_wait,
        },
        cases_dir: a.cases,
        selection: Selection {
            only: a.only,
            skip: a.skip,
            level: a.level.map(Level::from),
        },
        concurrency: a.concurrency,
        reports: a.reports.options(),
        expect: a.expect,
        write_expect: a.write_expect,
        deadline: a.deadline,
        shard: a.shard,
        shard_timings: a.shard_timings,
    };
    if let Some(file) = a.targets {
        let opts = session::TargetsOptions {
            file,
            parallel: a.parallel_targets,
            run: opts,
        };
        return run_targets(&printer, opts, &stop).await;
    }
    let finished = session::run(opts, &stop, &|e| printer.show(e)).await;
    printer.end_progress();
    let finished = match finished {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    println!("{}", printer.console.summary(&finished.report));
    match finished.gate() {
        Ok(gate) => {
            if let Some((path, cmp)) = &gate.comparison {
                print_comparison(path, cmp);
            }
            print_outcome(&printer, &finished.report);
            gate.exit
        }
        Err(e) => usage_error(e),
    }
}

/// The last line of a run: its state, the exit code that goes with it, and why ("result:
/// incomplete (exit 3): nothing failed, but 2 MUST cases could not be judged").
fn print_outcome(printer: &Printer, report: &crate::record::RunReport) {
    let html = printer
        .html_report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(html) = html {
        println!("HTML report: {}", html.display());
    }
    if let Some(o) = &report.outcome {
        println!(
            "result: {} (exit {}): {}",
            o.state.as_str(),
            o.exit_code,
            crate::report::one_line(&o.reason, 1000)
        );
    }
}

/// `run --targets`: each target's lines prefixed with its name, then a line per target.
async fn run_targets(printer: &Printer, opts: session::TargetsOptions, stop: &StopSignal) -> Exit {
    let events = |name: &str, e: Event<'_>| match e {
        Event::Result(r) => println!("[{name}] {}", printer.console.case_line(r)),
        // The events a run prints a line for (on stderr) get the name before it; any other
        // (a progress display) is left as it is.
        e @ (Event::ReferenceStarted { .. }
        | Event::DocumentHost { .. }
        | Event::EnterpriseIdp { .. }
        | Event::Provisioned(_)
        | Event::Grading { .. }
        | Event::ReportsWritten(_)) => {
            eprint!("[{name}] ");
            printer.show(e)
        }
        e => printer.show(e),
    };
    let finished = session::run_targets(opts, stop, &events).await;
    printer.end_progress();
    let finished = match finished {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    for (name, e) in &finished.errors {
        usage_error(format!("target {name}: {e}"));
    }
    if finished.targets.len() == 1 {
        println!("index: {}", finished.index.display());
    }
    print_targets(printer, &finished.targets, Some(&finished.index));
    finished.exit
}

fn print_comparison(path: &str, cmp: &Comparison) {
    for (id, want, got) in &cmp.mismatches {
        println!(
            "verdict changed: {id}: expected {}, got {}",
            want.as_str(),
            got.as_str()
        );
    }
    for (id, got) in &cmp.unlisted {
        println!("not in {path}: {id} ({})", got.as_str());
    }
    for id in &cmp.stale {
        println!("stale entry in {path}: {id} (no such case)");
    }
    for e in &cmp.expired {
        let until = e
            .entry
            .until
            .map(crate::expected_verdicts::format_date)
            .unwrap_or_default();
        let reason = e
            .entry
            .reason
            .as_deref()
            .map(|r| format!(" ({})", crate::report::one_line(r, 200)))
            .unwrap_or_default();
        let now = if e.gates() {
            "gates again"
        } else {
            "no longer needed: remove or renew it"
        };
        println!(
            "expired entry in {path}: {} = {} until {until}{reason}; got {}: {now}",
            e.id,
            e.entry.status.as_str(),
            e.observed.as_str()
        );
    }
    println!(
        "expectations {path}: {} matched, {} changed, {} unlisted, {} stale, {} expired",
        cmp.matched,
        cmp.mismatches.len(),
        cmp.unlisted.len(),
        cmp.stale.len(),
        cmp.expired.len()
    );
}

async fn fuzz(a: FuzzArgs) -> Exit {
    let printer = Printer::new(a.no_color, a.verbose);
    let stop =
        stop_on_ctrl_c("\ninterrupted: finishing the requests in flight, then writing reports");
    let opts = FuzzOptions {
        target: a.target.options(),
        endpoints: a.endpoint.endpoints(),
        seconds: a.seconds,
        cases: a.cases,
        seed: a.seed,
        concurrency: a.concurrency,
        slow_ms: a.slow_ms,
        replay: a.replay,
        reports: a.reports.options(),
        shard: a.shard,
        lifecycle: a.lifecycle,
        expect: a.expect,
        write_expect: a.write_expect,
    };
    match session::fuzz(opts, &stop, &|e| printer.show(e)).await {
        Ok(report) => {
            println!("{}", printer.console.summary(&report));
            print_outcome(&printer, &report);
            session::fuzz_exit(&report)
        }
        Err(e) => usage_error(e),
    }
}

fn merge(a: MergeArgs) -> Exit {
    let printer = Printer::new(a.no_color, a.verbose);
    let opts = session::MergeOptions {
        inputs: a.inputs,
        reports: a.reports.options(),
        expect: a.expect,
    };
    let merged = match session::merge(&opts, &|e| printer.show(e)) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    for w in &merged.warnings {
        eprintln!("warning: {}", sanitize_terminal(w));
    }
    print_targets(&printer, &merged.targets, merged.index.as_deref());
    merged.exit
}

/// One target's console summary, or for several a line each and the index page.
fn print_targets(
    printer: &Printer,
    targets: &[session::MergedTarget],
    index: Option<&std::path::Path>,
) {
    if let [one] = targets {
        println!("{}", printer.console.summary(&one.report));
        return;
    }
    for t in targets {
        let r = &t.report;
        let s = &r.summary;
        let (state, reason) = r
            .outcome
            .as_ref()
            .map_or(("unknown", ""), |o| (o.state.as_str(), o.reason.as_str()));
        println!(
            "{:<24} {:<11} {} passed, {} failed, {} skipped, {} errored: {}",
            sanitize_terminal(t.folder.as_deref().unwrap_or("")),
            state,
            s.passed,
            s.failed,
            s.skipped,
            s.errored,
            sanitize_terminal(reason)
        );
    }
    if let Some(p) = index {
        println!("index: {}", p.display());
    }
}

async fn login(a: LoginArgs) -> Exit {
    let printer = Printer::new(a.no_color, false);
    let opts = session::LoginOptions {
        target: a.target.options(),
        user: a.user,
    };
    let trace = match session::login(opts, &|e| printer.show(e)).await {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&trace).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", login_text(&trace, printer.console.color()));
    }
    if trace.failed.is_some() {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// `authconform login`'s trace as text: the steps, each exchange, the pages, the driver's
/// trace, the interactions and the outcome. Every string came from the server or the profile:
/// escaped for the terminal.
fn login_text(t: &session::LoginTrace, color: bool) -> String {
    use std::fmt::Write as _;
    let s = |x: &str| sanitize_terminal(x);
    let paint = |code: &str, x: &str| {
        if color {
            format!("\x1b[{code}m{x}\x1b[0m")
        } else {
            x.to_string()
        }
    };
    let mut o = String::new();
    let who = t
        .user
        .as_ref()
        .map(|u| format!("{} ({})", s(&u.username), s(&u.label)))
        .unwrap_or_else(|| "the profile's login (no test user named)".into());
    let _ = writeln!(o, "login as {who} with the {} driver", s(&t.driver));
    let _ = writeln!(o, "exchanges:");
    for (i, x) in t.exchanges.iter().enumerate() {
        let status = x
            .status
            .map(|c| c.to_string())
            .unwrap_or_else(|| "no answer".into());
        let _ = writeln!(
            o,
            "  {:>2}. {} {} -> {status}  ({})",
            i + 1,
            s(&x.method),
            s(&x.url),
            s(&x.note)
        );
        if let Some(l) = &x.location {
            let _ = writeln!(o, "      Location: {}", s(l));
        }
        if !x.excerpt.is_empty() {
            let _ = writeln!(o, "      {}", s(&x.excerpt));
        }
    }
    if !t.pages.is_empty() {
        let _ = writeln!(o, "pages:");
        for p in &t.pages {
            let _ = writeln!(o, "  {:<8} {}  {}", s(&p.kind), p.status, s(&p.url));
        }
    }
    if !t.trace.is_empty() {
        let _ = writeln!(o, "driver trace:");
        for l in &t.trace {
            let _ = writeln!(o, "  {}", s(l));
        }
    }
    if !t.interactions.is_empty() {
        let _ = writeln!(o, "interactions: {}", s(&t.interactions.join(", ")));
    }
    if !t.outcome.is_empty() {
        let _ = writeln!(o, "outcome: {}", s(&t.outcome));
    }
    let _ = writeln!(o, "steps:");
    for st in &t.steps {
        let _ = writeln!(o, "  {:<9} {}", st.step, s(&st.result));
    }
    let ms = t.duration_ms;
    match &t.failed {
        None => {
            let _ = writeln!(
                o,
                "{}",
                paint(
                    "32",
                    &format!(
                        "login ok in {ms} ms: a code came back and the token endpoint issued an access token"
                    )
                )
            );
        }
        Some(f) => {
            let _ = writeln!(
                o,
                "{}",
                paint(
                    "31",
                    &format!(
                        "login FAILED at the {} step ({ms} ms): {}",
                        f.step,
                        s(&f.why)
                    )
                )
            );
        }
    }
    o
}

/// Shows a session's events: results on stdout, the rest on stderr.
struct Printer {
    console: Console,
    /// A live progress line is drawn (and wiped) only on a terminal outside CI.
    progress_line: bool,
    /// A run's progress, redrawn in place on stderr (on a terminal only): each event redraws
    /// it, and while a case waits on purpose a ticker thread redraws the countdown each second.
    progress: std::sync::Arc<std::sync::Mutex<Option<Progress>>>,
    ticker: std::sync::Once,
    /// The HTML report once written: named again beside the run's last line, where a reader
    /// of a long log looks.
    html_report: std::sync::Mutex<Option<std::path::PathBuf>>,
}

/// Environment variables that say the process runs in CI, where output is a log: no progress
/// line, no carriage returns.
const CI_VARS: &[&str] = &[
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "JENKINS_URL",
    "TF_BUILD",
    "TEAMCITY_VERSION",
    "CIRCLECI",
];

/// The progress line's width: the terminal's (`COLUMNS`, as shells export it), else 80, less
/// one so the cursor never wraps.
fn progress_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(80)
        - 1
}

/// Redraws the progress line in place (`\r`, erase the line): `p` is `None` when there is none.
fn draw_progress(p: Option<&Progress>) {
    if let Some(p) = p {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{}",
            p.line(std::time::Instant::now(), progress_width())
        );
        let _ = err.flush();
    }
}

impl Printer {
    fn new(no_color: bool, verbose: bool) -> Self {
        let color =
            !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Printer {
            console: Console::new(color, verbose),
            progress_line: std::io::stderr().is_terminal()
                && !CI_VARS.iter().any(|v| std::env::var_os(v).is_some()),
            progress: Default::default(),
            ticker: std::sync::Once::new(),
            html_report: Default::default(),
        }
    }

    /// Wipes the progress line, prints with `f`, and draws the line again.
    fn around_progress(&self, f: impl FnOnce(Option<&mut Progress>)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_some() {
            eprint!("\r\x1b[2K");
        }
        f(p.as_mut());
        draw_progress(p.as_ref());
    }

    /// While a case waits, the countdown moves each second even if nothing else happens.
    fn start_ticker(&self) {
        let progress = self.progress.clone();
        self.ticker.call_once(|| {
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                    match p.as_ref() {
                        Some(p) if p.has_waits(std::time::Instant::now()) => draw_progress(Some(p)),
                        Some(_) => {}
                        // The run's progress is over: so is the ticker.
                        None => break,
                    }
                }
            });
        });
    }

    /// The run's progress is over (its summary follows): the line is wiped for good.
    fn end_progress(&self) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.take().is_some() {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    fn show(&self, e: Event<'_>) {
        match e {
            Event::Grading { spec, cases } => {
                eprintln!(
                    "grading at MCP {} ({}); {cases} case(s)",
                    spec.graded,
                    sanitize_terminal(&spec.detection)
                );
                if self.progress_line {
                    let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
                    *p = Some(Progress::new(cases));
                    draw_progress(p.as_ref());
                }
            }
            Event::Waiting(w) if self.progress_line => {
                self.around_progress(|p| {
                    if let Some(p) = p {
                        p.waiting(&w.case, &w.what, w.secs, std::time::Instant::now());
                    }
                });
                self.start_ticker();
            }
            // In a log, a wait is one line: a run that sits still for a minute says why.
            Event::Waiting(w) => eprintln!(
                "{}: waiting {} s {}",
                crate::report::one_line(&w.case, 120),
                w.secs,
                crate::report::one_line(&w.what, 200)
            ),
            Event::Result(r) => self.around_progress(|p| {
                println!("{}", self.console.case_line(r));
                let _ = std::io::stdout().flush();
                if let Some(p) = p {
                    p.result(r);
                }
            }),
            Event::ReportsWritten(paths) => {
                self.end_progress();
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                eprintln!("reports: {}", names.join(", "));
                if let Some(html) = paths
                    .iter()
                    .find(|p| p.extension().is_some_and(|e| e == "html"))
                {
                    *self.html_report.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(html.clone());
                }
            }
            Event::ReferenceStarted {
                addr,
                faults,
                doing,
            } => eprintln!(
                "no target given: {doing} the built-in reference server at https://{addr}{}",
                if faults.is_empty() {
                    String::new()
                } else {
                    format!(" with fault(s) {}", faults.join(", "))
                }
            ),
            Event::DocumentHost { base_url, ca_path } => eprintln!(
                "CIMD document host: {base_url}{}",
                ca_path
                    .map(|p| format!(
                        " (the AS must trust {}; node: NODE_EXTRA_CA_CERTS)",
                        p.display()
                    ))
                    .unwrap_or_default()
            ),
            Event::EnterpriseIdp { issuer, jwks_url } => eprintln!(
                "enterprise IdP (ID-JAG): issuer {}, JWK Set {} (the AS must trust this issuer)",
                sanitize_terminal(issuer),
                sanitize_terminal(jwks_url)
            ),
            Event::Provisioned(p) => eprintln!(
                "test users provisioned: `{}` exited 0 in {:.1} s{}",
                sanitize_terminal(&p.command.join(" ")),
                p.duration_ms as f64 / 1000.0,
                p.output
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| format!(" ({})", sanitize_terminal(l.trim())))
                    .unwrap_or_default()
            ),
            Event::FuzzPlan {
                seed,
                endpoints,
                duration,
                cases,
                concurrency,
            } => eprintln!(
                "fuzz seed {seed} (rerun with --seed {seed}); {endpoints} endpoint(s), {} each, \
                 {concurrency} in flight",
                match (duration, cases) {
                    (Some(d), Some(n)) => format!("{:.1} s or {n} requests", d.as_secs_f64()),
                    (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
                    (None, Some(n)) => format!("{n} requests"),
                    (None, None) => unreachable!("a bound is always set"),
                }
            ),
            Event::CampaignSkipped { endpoint, why } => {
                eprintln!(
                    "{}: skipped ({})",
                    endpoint.as_str(),
                    sanitize_terminal(why)
                )
            }
            Event::CampaignProgress {
                endpoint,
                elapsed,
                requests,
                findings,
            } if self.progress_line => {
                let secs = elapsed.as_secs_f64();
                eprint!(
                    "\r\x1b[2K[{}] {secs:.1} s  {requests} requests ({:.0}/s)  findings {findings}",
                    endpoint.as_str(),
                    if secs > 0.0 {
                        requests as f64 / secs
                    } else {
                        0.0
                    },
                );
                let _ = std::io::stderr().flush();
            }
            Event::CampaignProgress { .. } => {}
            Event::LifecyclePlan {
                seed,
                duration,
                sequences,
                clients,
                revocation,
            } => eprintln!(
                "lifecycle campaign, seed {seed} (rerun with --seed {seed}); {}; {clients} client(s){}",
                match (duration, sequences) {
                    (Some(d), Some(n)) => format!("{:.1} s or {n} sequences", d.as_secs_f64()),
                    (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
                    (None, Some(n)) => format!("{n} sequences"),
                    (None, None) => unreachable!("a bound is always set"),
                },
                if revocation {
                    ", revocation endpoint"
                } else {
                    ", no revocation endpoint"
                }
            ),
            Event::LifecycleProgress {
                elapsed,
                transitions,
                findings,
            } if self.progress_line => {
                let secs = elapsed.as_secs_f64();
                eprint!(
                    "\r\x1b[2K[lifecycle] {secs:.1} s  {transitions} operations ({:.1}/s)  findings {findings}",
                    if secs > 0.0 {
                        transitions as f64 / secs
                    } else {
                        0.0
                    },
                );
                let _ = std::io::stderr().flush();
            }
            Event::LifecycleProgress { .. } => {}
            Event::LifecycleDone(l) => {
                if self.progress_line {
                    eprint!("\r\x1b[2K");
                }
                eprintln!(
                    "lifecycle: {} sequences, {} operations in {:.1} s ({} per second), {} logins ({:.0}% of the time), {} finding(s){}",
                    l.sequences,
                    l.transitions,
                    l.duration_ms as f64 / 1000.0,
                    l.transitions_per_sec,
                    l.logins,
                    l.login_share * 100.0,
                    l.findings.len(),
                    l.stopped_early
                        .as_deref()
                        .map(|s| format!("; stopped: {}", sanitize_terminal(s)))
                        .unwrap_or_default()
                );
                for c in &l.choices {
                    eprintln!(
                        "  learned (sequence {}, step {}): {}",
                        c.sequence, c.step, c.behaviour
                    );
                }
            }
            Event::CampaignDone(o) => {
                if self.progress_line {
                    eprint!("\r\x1b[2K");
                }
                if !o.stats.urls.is_empty() {
                    eprintln!(
                        "{}: {} requests in {:.1} s ({} per second), {} violating, {} finding(s){}",
                        o.endpoint.as_str(),
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
            }
        }
    }
}
