//! What a session reports while it works, for `run` and `fuzz` alike. The command line turns
//! each event into console output; tests and benches pass a closure that ignores them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fuzz::{Endpoint, Outcome};
use crate::record::{CaseResult, SpecInfo};

/// Where a session's events go. Called in order from the session's own task.
pub type Events<'a> = &'a (dyn Fn(Event<'_>) + Send + Sync);

#[derive(Debug)]
pub enum Event<'a> {
    /// No target was named: the built-in reference was started as the target (`doing` says
    /// what the session does to it).
    ReferenceStarted {
        addr: SocketAddr,
        faults: &'a [String],
        doing: &'a str,
    },
    /// The Client ID Metadata Document host of a run against a real AS, and the CA file that
    /// AS must trust.
    DocumentHost {
        base_url: &'a str,
        ca_path: Option<&'a Path>,
    },
    /// The enterprise IdP the AS under test must trust (its `[enterprise]` profile section):
    /// the issuer and JWK Set URL to configure there.
    EnterpriseIdp { issuer: &'a str, jwks_url: &'a str },
    /// The profile's provisioning command ran and exited 0.
    Provisioned(&'a crate::record::ProvisionRecord),
    /// A run's cases start, graded at `spec`.
    Grading { spec: &'a SpecInfo, cases: usize },
    /// A campaign session's plan: its seed and bounds per endpoint.
    FuzzPlan {
        seed: u64,
        endpoints: usize,
        duration: Option<Duration>,
        cases: Option<u64>,
        concurrency: usize,
    },
    /// An endpoint none of whose URLs were discovered; its campaign sends nothing.
    CampaignSkipped { endpoint: Endpoint, why: &'a str },
    /// A campaign's running counts (about four times a second).
    CampaignProgress {
        endpoint: Endpoint,
        elapsed: Duration,
        requests: u64,
        findings: u64,
    },
    /// An endpoint's campaign ended.
    CampaignDone(&'a Outcome),
    /// A lifecycle campaign's plan: its seed and bounds, and what the target offers it.
    LifecyclePlan {
        seed: u64,
        duration: Option<Duration>,
        sequences: Option<u64>,
        clients: usize,
        revocation: bool,
    },
    /// A lifecycle campaign's running counts (about four times a second).
    LifecycleProgress {
        elapsed: Duration,
        transitions: u64,
        findings: u64,
    },
    /// The lifecycle campaign ended.
    LifecycleDone(&'a crate::record::LifecycleRecord),
    /// A case started a deliberate wait (for a code or a token to expire): the run may sit
    /// still for that long, and says why.
    Waiting(&'a crate::step::Waiting),
    /// A result: a case that finished, or a campaign's rule verdict or replayed finding.
    Result(&'a CaseResult),
    /// The report files written.
    ReportsWritten(&'a [PathBuf]),
}
