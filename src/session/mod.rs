//! A session: what `run` and `fuzz` do between parsing arguments and printing. It resolves the
//! target (URL options, a TOML profile, or the built-in reference started with faults), builds
//! the audited HTTP client, starts the Client ID Metadata Document host, runs the cases or
//! campaigns, gates on expectations and writes the reports.
//!
//! It prints nothing: what a user should see goes out as [`Event`]s, and the command line
//! decides how to show them. Every failure to set up is an [`Error`], which exits
//! [`Exit::Usage`].

mod events;
mod fuzz;
mod lifecycle;
mod login;
mod merge;
mod profile;

pub use profile::JSON_LOGIN_SCRIPT;
mod reports;
mod run;
mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::case::{self, Case};
use crate::egress::{Policy, UrlCheck, classify};
use crate::http::{Http, HttpConfig};
use crate::record::TargetInfo;
use crate::redact::Redactor;
use crate::reference::{self, Reference};
use crate::target::{self, Profile, Target};

pub use crate::runner::LoginTrace;
pub use crate::stop::StopSignal;
pub use events::{Event, Events};
pub use fuzz::{FuzzOptions, FuzzTarget, fuzz, fuzz_exit, fuzz_outcome, fuzz_target};
pub use login::{LoginOptions, login};
pub use merge::{MergeOptions, Merged, MergedTarget, exit_of, merge, worst_exit};
pub use profile::reference_profile;
pub use reports::ReportOptions;
pub use run::{DocumentOptions, Finished, Gate, Prepared, RunOptions, SetupOptions, prepare, run};
pub use targets::{TargetEvents, TargetsFinished, TargetsOptions, run_targets};

/// The process's exit codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Passed: no MUST case failed or errored (or every verdict matched `--expect`); a
    /// campaign found nothing.
    Ok = 0,
    /// Failed: a MUST case failed, a verdict differed from `--expect` (an expired entry's case
    /// failing included), a campaign found something, or the run was interrupted.
    Failed = 1,
    /// Bad usage, bad configuration, a bad case or expectations file, or a report that could
    /// not be written.
    Usage = 2,
    /// Incomplete: nothing gating failed, but gating cases could not be judged (the target
    /// stopped answering, the deadline passed, a stage a case needed failed; a campaign whose
    /// target went away before it found anything).
    Unjudged = 3,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Why a session could not start or finish; always [`Exit::Usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl std::fmt::Display) -> Self {
        Error(msg.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What to test or attack (the `run` and `fuzz` target flags).
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// The MCP endpoint.
    pub resource: Option<String>,
    /// An authorization server tested alone.
    pub issuer: Option<String>,
    /// A TOML target profile.
    pub config: Option<PathBuf>,
    /// With no target named: the built-in reference's faults.
    pub reference_faults: Vec<String>,
    /// With no target named: the MCP revision the built-in reference speaks (its default,
    /// 2025-11-25, when `None`).
    pub reference_revision: Option<crate::spec::Revision>,
    /// With no target named: how the built-in reference presents its login (and so which
    /// driver its profile uses).
    pub reference_login: reference::LoginStyle,
    /// With no target named: the optional mechanisms (PAR, DPoP, token exchange, ID-JAG) the
    /// built-in reference offers.
    pub reference_offer: reference::Offer,
    /// Extra trusted CA certificates (PEM).
    pub cacert: Option<PathBuf>,
    pub max_body: Option<usize>,
    /// Seconds one exchange may take.
    pub timeout: Option<u64>,
    /// `--allow-host`: hosts the egress policy lets through whatever their address class.
    pub allow_hosts: Vec<String>,
    /// The target's name in a `--targets` file, recorded in its report.
    pub name: Option<String>,
}

/// The shipped cases, or those of `dir`.
pub fn load_cases(dir: Option<&Path>) -> Result<Vec<Case>, Error> {
    match dir {
        Some(d) => case::load_dir(d, crate::checks::NAMES),
        None => case::load_builtin(crate::checks::NAMES),
    }
    .map_err(|e| Error(format!("invalid case files:\n{e}")))
}

/// Every fault must be a lifecycle fault id, or name one of `cases` and be one the reference
/// implements.
pub fn check_faults(faults: &[String], cases: &[Case]) -> Result<(), Error> {
    for f in faults {
        if reference::is_lifecycle_fault(f) {
            continue;
        }
        if !cases.iter().any(|c| c.id() == f) {
            return Err(Error(format!(
                "--reference-fault {f:?} names no case and no lifecycle fault (faults are case \
                 ids, see `authconform list`, or lifecycle fault ids: {})",
                reference::lifecycle_ids()
            )));
        }
        if !reference::FAULTS.contains(&f.as_str()) {
            return Err(Error(format!(
                "the reference server has no fault for {f:?} (its case declares no_fault)"
            )));
        }
    }
    Ok(())
}

/// The target options resolved: HTTP limits (defaults, then the profile, then flags), the
/// target URLs and the profile; with no target named, the reference becomes it when started.
struct Resolved {
    http_cfg: HttpConfig,
    target: Target,
    kind: &'static str,
    profile: Profile,
    reference: Option<Reference>,
    /// `--allow-host` entries, added to the profile's `[network] allow`.
    allow_hosts: Vec<String>,
    /// The profile's folder: relative paths in it resolve against it.
    base_dir: PathBuf,
    /// The target's name in a `--targets` file.
    name: Option<String>,
}

impl Resolved {
    fn load(t: &TargetOptions) -> Result<Self, Error> {
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
        let mut profile = Profile::default();
        let mut base_dir = PathBuf::from(".");
        if let Some(p) = &t.config {
            let loaded = target::load_profile(p).map_err(Error::new)?;
            let base = p.parent().unwrap_or(Path::new("."));
            base_dir = if base.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                base.to_path_buf()
            };
            loaded
                .http
                .apply(base, &mut http_cfg)
                .map_err(|e| Error(format!("{}: {e}", p.display())))?;
            target.resource = loaded.target.resource.clone();
            target.issuer = loaded.target.issuer.clone();
            profile = loaded;
            kind = "config";
        }
        for (flag, v) in [
            ("--resource", &target.resource),
            ("--issuer", &target.issuer),
        ] {
            if let Some(u) = v {
                target::check_url(u).map_err(|e| Error(format!("{flag}: {e}")))?;
            }
        }
        if let Some(n) = t.max_body {
            if n == 0 {
                return Err(Error::new("--max-body must be at least 1"));
            }
            http_cfg.max_body = n;
        }
        if let Some(s) = t.timeout {
            http_cfg.timeout = Duration::from_secs(s.max(1));
        }
        if let Some(f) = &t.cacert {
            let pem =
                std::fs::read(f).map_err(|e| Error(format!("--cacert {}: {e}", f.display())))?;
            http_cfg.extra_roots_pem.push(pem);
        }
        Ok(Resolved {
            http_cfg,
            target,
            kind,
            profile,
            reference: None,
            allow_hosts: t.allow_hosts.clone(),
            base_dir,
            name: t.name.clone(),
        })
    }

    /// Neither a resource nor an issuer: the built-in reference server is the target.
    fn names_no_target(&self) -> bool {
        self.target.resource.is_none() && self.target.issuer.is_none()
    }

    /// Starts the built-in reference (with `faults`, and trusting the document host's CA when
    /// CIMD cases run) and makes it the target: its URL, its CA, its profile.
    /// `t` says how to start it (`reference_faults`, `_revision`, `_login`, `_offer`).
    async fn start_reference(
        &mut self,
        t: &TargetOptions,
        documents: Option<&crate::cimd::Documents>,
        doing: &str,
        events: Events<'_>,
    ) -> Result<(), Error> {
        let (faults, offer) = (&t.reference_faults, t.reference_offer);
        let (revision, login) = (t.reference_revision, t.reference_login);
        let r = reference::start(reference::Options {
            port: 0,
            faults: faults.to_vec(),
            revision,
            login,
            cimd_dev_origins: documents.iter().flat_map(|d| d.dev_origins()).collect(),
            cimd_trust_pem: documents.map(|d| d.host.ca_pem.clone()),
            cimd_resolver: documents.and_then(|d| d.dns.as_ref().ok()).map(|d| d.addr),
            fragile: std::env::var_os("AUTHCONFORM_REFERENCE_FRAGILE").is_some_and(|v| v == "1"),
            open_registration: false,
            offer,
            id_jag_idps: documents
                .and_then(|d| d.idp.as_deref())
                .map(|i| {
                    vec![
                        reference::IdJagIdp {
                            issuer: i.issuer.clone(),
                            jwks: i.jwks(),
                            trusted: true,
                        },
                        reference::IdJagIdp {
                            issuer: i.untrusted_issuer.clone(),
                            jwks: i.untrusted_jwks(),
                            trusted: false,
                        },
                    ]
                })
                .unwrap_or_default(),
        })
        .await
        .map_err(Error::new)?;
        events(Event::ReferenceStarted {
            addr: r.addr,
            faults,
            doing,
        });
        self.http_cfg
            .extra_roots_pem
            .push(r.ca.ca_pem.clone().into_bytes());
        self.target.resource = Some(r.resource.clone());
        self.target.issuer = None;
        self.profile = reference_profile(&r.facts());
        self.kind = "reference";
        self.reference = Some(r);
        Ok(())
    }

    fn info(&self, faults: &[String]) -> TargetInfo {
        TargetInfo {
            kind: self.kind.to_string(),
            resource: self.target.resource.clone(),
            issuer: self.target.issuer.clone(),
            faults: faults.to_vec(),
            name: self.name.clone(),
        }
    }

    /// The egress policy of the session: the target's own address classes (a loopback or
    /// private target may lead to its own class; every target to public addresses), widened
    /// by `--allow-host` and the profile's `[network] allow`. A target in a class the policy
    /// never reaches (link-local, cloud metadata...) is a usage error unless allowed by name.
    async fn egress_policy(&self) -> Result<Policy, Error> {
        // The target's classes first: the policy is made from them.
        let mut found = Vec::new();
        for u in [&self.target.resource, &self.target.issuer]
            .into_iter()
            .flatten()
        {
            match crate::egress::class_of_url(u) {
                Some(c) => found.push((u, c)),
                None => {
                    if let Ok(p) = url::Url::parse(u) {
                        let host = p.host_str().unwrap_or("").to_string();
                        let port = p.port_or_known_default().unwrap_or(443);
                        // A name that does not resolve now fails later, as a connect error.
                        if let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
                            found.extend(addrs.map(|a| (u, classify(a.ip()))));
                        }
                    }
                }
            }
        }
        let mut policy = Policy::for_targets(found.iter().filter_map(|(_, c)| c.ok()));
        let allows = self
            .profile
            .network
            .allow
            .iter()
            .map(|a| ("[network] allow", a));
        let flags = self.allow_hosts.iter().map(|a| ("--allow-host", a));
        for (whence, a) in allows.chain(flags) {
            policy
                .allow(a)
                .map_err(|e| Error(format!("{whence} {a:?}: {e}")))?;
        }
        for (u, c) in found {
            if let Err(f) = c
                && !matches!(policy.check_url(u), Ok(UrlCheck::Allowed))
            {
                return Err(Error(format!(
                    "the target {u} is a {f}: authconform does not connect there unless it is allowed by name (--allow-host, or [network] allow in the profile)"
                )));
            }
        }
        Ok(policy)
    }

    /// The audited client of a session. The test users' passwords are masked wherever they
    /// appear, whatever field carries them; it connects only where the egress policy allows.
    async fn audited_http(&mut self) -> Result<Http, Error> {
        let policy = self.egress_policy().await?;
        self.http_cfg.egress = Some(std::sync::Arc::new(policy));
        let redactor = Redactor::new();
        for p in self.profile.login.passwords() {
            redactor.add_secret(&p);
        }
        Http::new(self.http_cfg.clone(), redactor).map_err(Error::new)
    }
}

/// How long a provisioning command may take unless the profile says otherwise.
const PROVISION_TIMEOUT_SECS: u64 = 60;

/// Runs the profile's `[login] provision` command, once, before the session sends anything:
/// no shell, in the profile's folder (a relative program path resolves against it), with the
/// pool's usernames in `AUTHCONFORM_USERNAMES` (space-separated; the passwords are in the
/// variables the profile names). Its output is kept (64 KiB at most) and redacted. A command
/// that fails or overruns is an [`Error`]: the suite's own setup failed, so nothing about the
/// server was learnt and no verdict would mean anything.
async fn provision(
    login: &crate::login::LoginConfig,
    base: &Path,
    redactor: &Redactor,
) -> Result<Option<crate::record::ProvisionRecord>, Error> {
    let Some(program) = login.provision.first() else {
        return Ok(None);
    };
    let mut argv = login.provision.clone();
    // The program runs in the profile's folder; a relative path is made absolute first (a
    // relative folder joined to it would be resolved once more from inside that folder).
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let base = base.as_path();
    let path = Path::new(program);
    if path.is_relative() && path.components().count() > 1 {
        argv[0] = base.join(path).display().to_string();
    }
    let usernames: Vec<String> = login.pool().into_iter().map(|u| u.username).collect();
    let envs = vec![("AUTHCONFORM_USERNAMES".to_string(), usernames.join(" "))];
    let timeout = Duration::from_secs(
        login
            .provision_timeout_secs
            .unwrap_or(PROVISION_TIMEOUT_SECS)
            .max(1),
    );
    let started = std::time::Instant::now();
    let (argv2, base2) = (argv.clone(), base.to_path_buf());
    let ran = tokio::task::spawn_blocking(move || {
        crate::command::run(
            &argv2,
            &envs,
            Some(&base2),
            timeout,
            crate::record::ProvisionRecord::KEEP,
        )
    })
    .await
    .map_err(|e| Error(format!("[login] provision: {e}")))?;
    let shown = argv.join(" ");
    let ran = ran.map_err(|e| Error(format!("[login] provision `{shown}`: {e}")))?;
    let output = redactor.text(&ran.output);
    if ran.code != 0 {
        let tail: String = output.trim().chars().take(2000).collect();
        return Err(Error(format!(
            "[login] provision `{shown}` exited {}; the run stops before sending anything{}",
            ran.code,
            if tail.is_empty() {
                String::new()
            } else {
                format!(". Its output:\n{tail}")
            }
        )));
    }
    Ok(Some(crate::record::ProvisionRecord {
        command: argv,
        exit_code: ran.code,
        duration_ms: started.elapsed().as_millis() as u64,
        output,
        truncated: ran.truncated,
    }))
}

/// Stops the built-in reference, if the session started one.
fn shut_down(reference: Option<Reference>) {
    if let Some(r) = reference {
        r.shutdown();
    }
}

/// The built-in reference in the foreground (`authconform reference`): started with `faults`,
/// its CA written to a file other clients (curl, an MCP client) can trust. Returns the server
/// and that file.
pub async fn serve_reference(mut opts: reference::Options) -> Result<(Reference, PathBuf), Error> {
    check_faults(&opts.faults, &load_cases(None)?)?;
    // Documents from the dev origins are served under authconform's own CA: trusted here.
    if !opts.cimd_dev_origins.is_empty() && opts.cimd_trust_pem.is_none() {
        let (ca, _) = crate::local_ca::persistent(&crate::local_ca::default_dir())
            .map_err(|e| Error(format!("authconform's CA: {e}")))?;
        opts.cimd_trust_pem = Some(ca.ca_pem);
    }
    opts.fragile |= std::env::var_os("AUTHCONFORM_REFERENCE_FRAGILE").is_some_and(|v| v == "1");
    let r = reference::start(opts).await.map_err(Error::new)?;
    let ca_path =
        std::env::temp_dir().join(format!("authconform-reference-ca-{}.pem", r.addr.port()));
    if let Err(e) = std::fs::write(&ca_path, &r.ca.ca_pem) {
        let msg = format!("cannot write {}: {e}", ca_path.display());
        r.shutdown();
        return Err(Error(msg));
    }
    Ok((r, ca_path))
}
