//! Attack campaigns (`authconform fuzz`): proptest strategies throw well-formed-but-wrong and
//! malformed requests at one endpoint for a time or case budget; every answer is judged by the
//! oracles; the first violation of each rule is shrunk to a minimal request, re-sent to record
//! the evidence, and written with its seed, a `curl` command and a replay record.
//!
//! Generation is deterministic per case: case `i` of an endpoint is drawn from an RNG seeded
//! with (campaign seed, endpoint, i), so a finding is reproducible from its seed and index
//! whatever the concurrency, and shrinking regenerates the case's value tree instead of keeping
//! every tree alive.

pub mod lifecycle;
pub mod oracle;
pub mod probe;
pub mod results;
pub mod strategy;
pub mod wire;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::strategy::{SBoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::{Http, HttpError, Request, Response};
use crate::record::{CampaignStats, Exchange, Finding};
use crate::stop::StopSignal;

pub use oracle::{Bounds, Rule, Violation};
pub use probe::{Base, Probe};
pub use strategy::Vocabulary;

/// What `--endpoint` names: one endpoint's campaign (metadata covers both documents).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Token,
    Register,
    Authorize,
    Metadata,
    Resource,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Token,
        Endpoint::Register,
        Endpoint::Authorize,
        Endpoint::Metadata,
        Endpoint::Resource,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Register => "register",
            Endpoint::Authorize => "authorize",
            Endpoint::Metadata => "metadata",
            Endpoint::Resource => "resource",
        }
    }
    pub fn bases(self) -> &'static [Base] {
        match self {
            Endpoint::Token => &[Base::Token],
            Endpoint::Register => &[Base::Register],
            Endpoint::Authorize => &[Base::Authorize],
            Endpoint::Metadata => &[Base::AsMetadata, Base::Prm],
            Endpoint::Resource => &[Base::Resource],
        }
    }
    pub fn of(base: Base) -> Endpoint {
        match base {
            Base::Token => Endpoint::Token,
            Base::Register => Endpoint::Register,
            Base::Authorize => Endpoint::Authorize,
            Base::AsMetadata | Base::Prm => Endpoint::Metadata,
            Base::Resource => Endpoint::Resource,
        }
    }
    /// The endpoint's request strategy.
    pub fn strategy(self, v: &Vocabulary) -> SBoxedStrategy<Probe> {
        match self {
            Endpoint::Token => strategy::token(v),
            Endpoint::Register => strategy::register(v),
            Endpoint::Authorize => strategy::authorize(v),
            Endpoint::Metadata => strategy::metadata(v),
            Endpoint::Resource => strategy::resource(v),
        }
    }
}

/// Bounds of a campaign.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seed: u64,
    /// Stop generating after this long (per endpoint)...
    pub duration: Option<Duration>,
    /// ...or after this many cases, whichever comes first.
    pub cases: Option<u64>,
    pub concurrency: usize,
    /// Candidates tried and time spent shrinking one finding, at most.
    pub shrink_tries: u32,
    pub shrink_time: Duration,
    /// Write `-k` into curl reproducers (the target's CA is a throw-away one).
    pub insecure_curl: bool,
    /// Draw only this share's case numbers (`--shard K/N`: those `i` with `i % N == K - 1`),
    /// so N machines with one seed together send each case of the campaign once. `cases`
    /// still bounds the case numbers, not this share's count.
    pub shard: Option<crate::shard::Shard>,
}

/// The target as the campaign knows it: discovered URLs and the test client.
pub struct Setup {
    /// The audited client: discovery, known-good requests and every recorded exchange.
    pub http: Http,
    /// The generated requests' fast path.
    pub wire: wire::Wire,
    pub urls: BTreeMap<Base, String>,
    pub vocabulary: Vocabulary,
    pub bounds: Bounds,
    /// Target-specific values a replay substitutes: `[name, value]`.
    pub substitutions: Vec<(String, String)>,
    /// Why an endpoint is missing, by base.
    pub missing: BTreeMap<Base, String>,
    /// Discovery exchanges (evidence for skipped or errored results).
    pub discovery: Vec<Exchange>,
}

/// Shared counters a progress display reads while campaigns run.
#[derive(Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub findings: AtomicU64,
    pub endpoint: Mutex<String>,
    pub started: Mutex<Option<Instant>>,
}

/// One endpoint's campaign result.
#[derive(Debug)]
pub struct Outcome {
    pub endpoint: Endpoint,
    pub stats: CampaignStats,
    /// Per base and rule: requests that violated it.
    pub violations: BTreeMap<(Base, Rule), u64>,
    /// Shrunk findings with the recorded exchange of their minimal request.
    pub findings: Vec<(Base, Finding, Vec<Exchange>)>,
    /// Requests sent per base.
    pub sent: BTreeMap<Base, u64>,
    /// The known-good request's answers (before, after), per base.
    pub liveness: Vec<Exchange>,
    /// The endpoint could not be judged (its known-good request got no answer), per base.
    pub errored: BTreeMap<Base, String>,
}

fn case_rng(seed: u64, endpoint: Endpoint, case: u64) -> TestRng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(endpoint.as_str().as_bytes());
    h.update(case.to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    TestRng::from_seed(RngAlgorithm::ChaCha, &key)
}

/// A runner to generate with; reseeded for every case by [`generate`].
pub fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            // Bounded, quiet generation: no persistence files, no forking.
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[0; 32]),
    )
}

/// Case `case` of `endpoint`'s campaign with `seed`: the same request on every run.
pub fn generate(
    runner: &mut TestRunner,
    strategy: &SBoxedStrategy<Probe>,
    seed: u64,
    endpoint: Endpoint,
    case: u64,
) -> Option<Box<dyn ValueTree<Value = Probe>>> {
    *runner.rng() = case_rng(seed, endpoint, case);
    strategy.new_tree(runner).ok()
}

/// The request whose answer shows an endpoint alive, and what it should look like.
pub fn known_good(setup: &Setup, base: Base) -> Probe {
    let cid = setup
        .vocabulary
        .client_id
        .clone()
        .unwrap_or_else(|| "authconform-liveness".into());
    let redirect = setup
        .vocabulary
        .redirect_uri
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:33418/cb".into());
    let verifier = "authconform-liveness-verifier-0123456789abcdefghij";
    let form = |pairs: &[(&str, &str)]| -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    match base {
        Base::Token => {
            let mut p = Probe::new(base, "POST");
            p.headers.push((
                "Content-Type".into(),
                b"application/x-www-form-urlencoded".to_vec(),
            ));
            p.body = Some(
                form(&[
                    ("grant_type", "authorization_code"),
                    ("code", "authconform-liveness-code"),
                    ("redirect_uri", &redirect),
                    ("code_verifier", verifier),
                    ("client_id", &cid),
                ])
                .into_bytes(),
            );
            p.invalid = Some("a made-up code".into());
            p
        }
        Base::Register => {
            let mut p = Probe::new(base, "POST");
            p.headers
                .push(("Content-Type".into(), b"application/json".to_vec()));
            p.body = Some(
                serde_json::json!({
                    "redirect_uris": [redirect],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                    "client_name": "authconform fuzz liveness",
                })
                .to_string()
                .into_bytes(),
            );
            p
        }
        Base::Authorize => {
            let mut p = Probe::new(base, "GET");
            p.suffix = format!(
                "?{}",
                form(&[
                    ("response_type", "code"),
                    ("client_id", &cid),
                    ("redirect_uri", &redirect),
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                    ),
                    ("code_challenge_method", "S256"),
                    ("state", "authconform-liveness"),
                ])
            );
            p
        }
        Base::AsMetadata | Base::Prm => Probe::new(base, "GET"),
        Base::Resource => {
            let mut p = Probe::new(base, "POST");
            p.headers
                .push(("Content-Type".into(), b"application/json".to_vec()));
            p.headers.push((
                "Accept".into(),
                b"application/json, text/event-stream".to_vec(),
            ));
            p.body = Some(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec());
            p
        }
    }
}

struct Shared {
    setup: Arc<Setup>,
    strategy: SBoxedStrategy<Probe>,
    settings: Settings,
    endpoint: Endpoint,
    deadline: Option<Instant>,
    next_case: AtomicU64,
    stop: StopSignal,
    progress: Arc<Progress>,
    claimed: Mutex<HashSet<(Base, Rule)>>,
    state: Mutex<State>,
    /// Transport failures in a row: many mean the target may have died.
    consecutive_failures: AtomicU64,
}

#[derive(Default)]
struct State {
    statuses: BTreeMap<String, u64>,
    unsendable: u64,
    sent: BTreeMap<Base, u64>,
    requests: u64,
    violating_requests: u64,
    violations: BTreeMap<(Base, Rule), u64>,
    findings: Vec<(Base, Finding, Vec<Exchange>)>,
    stopped_early: Option<String>,
}

async fn send(
    wire: &wire::Wire,
    conn: &mut wire::Conn,
    url: &str,
    p: &Probe,
) -> (Result<Response, HttpError>, Duration) {
    let t0 = Instant::now();
    let r = wire.send(conn, &p.to_request(url, "")).await;
    (r, t0.elapsed())
}

/// Runs one endpoint's campaign. `stop` ends it early (Ctrl-C); what finished is reported.
pub async fn campaign(
    setup: Arc<Setup>,
    endpoint: Endpoint,
    settings: Settings,
    stop: StopSignal,
    progress: Arc<Progress>,
) -> Outcome {
    let strategy = endpoint.strategy(&setup.vocabulary);
    campaign_with(setup, endpoint, strategy, settings, stop, progress).await
}

/// [`campaign`] with a given strategy (benchmarks use a fixed request).
pub async fn campaign_with(
    setup: Arc<Setup>,
    endpoint: Endpoint,
    strategy: SBoxedStrategy<Probe>,
    settings: Settings,
    stop: StopSignal,
    progress: Arc<Progress>,
) -> Outcome {
    let started = Instant::now();
    if let Ok(mut e) = progress.endpoint.lock() {
        *e = endpoint.as_str().to_string();
    }
    if let Ok(mut s) = progress.started.lock() {
        *s = Some(started);
    }
    let mut out = Outcome {
        endpoint,
        stats: CampaignStats {
            endpoint: endpoint.as_str().into(),
            ..CampaignStats::default()
        },
        violations: BTreeMap::new(),
        findings: Vec::new(),
        sent: BTreeMap::new(),
        liveness: Vec::new(),
        errored: BTreeMap::new(),
    };
    // Before: each base's known-good answer. No answer at all means the campaign could not
    // tell anything about that base.
    let mut baselines: BTreeMap<Base, u16> = BTreeMap::new();
    for &b in endpoint.bases() {
        let Some(url) = setup.urls.get(&b) else {
            continue;
        };
        out.stats.urls.push(url.clone());
        let (res, ex) = setup
            .http
            .send(known_good(&setup, b).to_request(url, "known-good request before the campaign"))
            .await;
        out.liveness.push(ex);
        match res {
            Ok(r) => {
                baselines.insert(b, r.status);
            }
            Err(e) => {
                out.errored.insert(
                    b,
                    format!("the known-good request before the campaign got no answer: {e}"),
                );
            }
        }
    }
    if baselines.is_empty() {
        return out;
    }
    let shared = Arc::new(Shared {
        setup: setup.clone(),
        strategy,
        deadline: settings.duration.map(|d| started + d),
        settings,
        endpoint,
        next_case: AtomicU64::new(0),
        stop,
        progress,
        claimed: Mutex::new(HashSet::new()),
        state: Mutex::new(State::default()),
        consecutive_failures: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..shared.settings.concurrency.max(1))
        .map(|_| tokio::spawn(worker(shared.clone(), baselines.clone())))
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();

    // After: the same known-good requests.
    let mut after = Vec::new();
    for (&b, &before) in &baselines {
        let url = &setup.urls[&b];
        let good = known_good(&setup, b);
        let (res, ex) = setup
            .http
            .send(good.to_request(url, "known-good request after the campaign"))
            .await;
        out.liveness.push(ex.clone());
        let now = match &res {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("no answer ({e})"),
        };
        // A rate limit is an answer too: the server is there, it only refuses more work.
        let status = res.as_ref().map(|r| r.status).ok();
        if before != 429 && status != Some(before) && status != Some(429) {
            after.push((b, good, before, now, ex));
        }
    }
    let mut st = match Arc::try_unwrap(shared) {
        Ok(s) => s.state.into_inner().unwrap_or_default(),
        Err(s) => std::mem::take(&mut *s.state.lock().unwrap_or_else(|e| e.into_inner())),
    };
    for (b, good, before, now, ex) in after {
        let url = &setup.urls[&b];
        st.findings.push((
            b,
            Finding {
                result_id: Rule::StillAnswers.result_id(b),
                rule: Rule::StillAnswers.as_str().into(),
                endpoint: endpoint.as_str().into(),
                seed: 0,
                case: 0,
                shrink_steps: 0,
                shrink_tries: 0,
                message: setup.http.redactor().text(&format!(
                    "the known-good request got {before} before the campaign and {now} after it"
                )),
                request: good.to_replay(url, &setup.substitutions),
                curl: setup.http.redactor().text(&good.curl(url, false)),
            },
            vec![ex],
        ));
        *st.violations.entry((b, Rule::StillAnswers)).or_default() += 1;
    }
    out.stats.requests = st.requests;
    out.stats.duration_ms = elapsed.as_millis() as u64;
    out.stats.requests_per_sec = if elapsed.as_secs_f64() > 0.0 {
        (st.requests as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0
    } else {
        0.0
    };
    out.stats.statuses = st.statuses;
    out.stats.unsendable = st.unsendable;
    out.stats.violations = st.violating_requests;
    out.stats.stopped_early = st.stopped_early;
    out.violations = st.violations;
    out.findings = st.findings;
    out.sent = st.sent;
    out
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Status(u16),
    Timeout,
    Transport,
}

/// A worker's own counters.
#[derive(Default)]
struct Local {
    requests: u64,
    unsendable: u64,
    sent: BTreeMap<Base, u64>,
    answers: BTreeMap<Answer, u64>,
}

impl Local {
    fn merge_into(self, st: &mut State) {
        st.requests += self.requests;
        st.unsendable += self.unsendable;
        for (b, n) in self.sent {
            *st.sent.entry(b).or_default() += n;
        }
        for (a, n) in self.answers {
            let key = match a {
                Answer::Status(s) => s.to_string(),
                Answer::Timeout => "timeout".into(),
                Answer::Transport => "transport-error".into(),
            };
            *st.statuses.entry(key).or_default() += n;
        }
    }
}

async fn worker(sh: Arc<Shared>, baselines: BTreeMap<Base, u16>) {
    let mut local = Local::default();
    work(&sh, &baselines, &mut local).await;
    if let Ok(mut st) = sh.state.lock() {
        local.merge_into(&mut st);
    }
}

async fn work(sh: &Arc<Shared>, baselines: &BTreeMap<Base, u16>, local: &mut Local) {
    let mut conn = wire::Conn::default();
    let mut runner = runner();
    loop {
        if sh.stop.is_stopped() || sh.deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let next = sh.next_case.fetch_add(1, Ordering::Relaxed);
        let case = match sh.settings.shard {
            Some(s) => next
                .saturating_mul(s.count as u64)
                .saturating_add(s.residue()),
            None => next,
        };
        if sh.settings.cases.is_some_and(|n| case >= n) {
            return;
        }
        // The value tree is not Send: it lives only in this block (and again while shrinking).
        let Some(probe) = generate(
            &mut runner,
            &sh.strategy,
            sh.settings.seed,
            sh.endpoint,
            case,
        )
        .map(|t| t.current()) else {
            continue;
        };
        if !baselines.contains_key(&probe.base) {
            continue;
        }
        let url = &sh.setup.urls[&probe.base];
        let (res, elapsed) = send(&sh.setup.wire, &mut conn, url, &probe).await;
        if matches!(
            res,
            Err(HttpError::BadUrl { .. } | HttpError::BadRequest(_))
        ) {
            local.unsendable += 1;
            continue;
        }
        sh.progress.requests.fetch_add(1, Ordering::Relaxed);
        let violations = oracle::judge(&probe, &res, elapsed, &sh.setup.bounds);
        // Counted locally, merged when the worker ends: no lock on the common path.
        local.requests += 1;
        *local.sent.entry(probe.base).or_default() += 1;
        let key = match &res {
            Ok(r) => Answer::Status(r.status),
            Err(HttpError::Timeout(_)) => Answer::Timeout,
            Err(_) => Answer::Transport,
        };
        *local.answers.entry(key).or_default() += 1;
        let mut to_shrink = Vec::new();
        if !violations.is_empty()
            && let Ok(mut st) = sh.state.lock()
        {
            st.violating_requests += 1;
            for v in &violations {
                *st.violations.entry((probe.base, v.rule)).or_default() += 1;
            }
        }
        for v in violations {
            let first = sh
                .claimed
                .lock()
                .map(|mut c| c.insert((probe.base, v.rule)))
                .unwrap_or(false);
            if first {
                to_shrink.push(v);
            }
        }
        for v in to_shrink {
            sh.progress.findings.fetch_add(1, Ordering::Relaxed);
            // proptest's value trees are not Send, so shrinking holds this worker's thread
            // (the other workers go on) instead of moving between threads at each await.
            let f = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(shrink_finding(sh, case, probe.base, v))
            });
            if let Ok(mut st) = sh.state.lock() {
                st.findings.push(f);
            }
        }
        // A run of requests without an answer: is the target still there?
        if matches!(res, Err(HttpError::Transport(_) | HttpError::Timeout(_))) {
            let n = sh.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= 25 {
                let good = known_good(&sh.setup, probe.base);
                let (alive, _) = send(&sh.setup.wire, &mut conn, url, &good).await;
                if alive.is_err() {
                    if let Ok(mut st) = sh.state.lock() {
                        st.stopped_early = Some(format!(
                            "{n} requests in a row got no answer and neither did the known-good request: the target stopped answering"
                        ));
                    }
                    sh.stop.stop();
                    return;
                }
                sh.consecutive_failures.store(0, Ordering::Relaxed);
            }
        } else {
            sh.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }
}

/// Shrinks case `case` while it keeps violating `v.rule` at the same base: proptest's
/// simplify/complicate walk over the case's value tree, each candidate sent to the target.
async fn shrink_finding(
    sh: &Shared,
    case: u64,
    base: Base,
    first: Violation,
) -> (Base, Finding, Vec<Exchange>) {
    let rule = first.rule;
    let mut tree = generate(
        &mut runner(),
        &sh.strategy,
        sh.settings.seed,
        sh.endpoint,
        case,
    )
    .expect("the case generated before");
    let mut best = tree.current();
    let mut best_v = first;
    let (mut steps, mut tries) = (0u32, 0u32);
    let t0 = Instant::now();
    let url = &sh.setup.urls[&base];
    let mut conn = wire::Conn::default();
    if tree.simplify() {
        while tries < sh.settings.shrink_tries
            && t0.elapsed() < sh.settings.shrink_time
            && !sh.stop.is_stopped()
        {
            let cand = tree.current();
            tries += 1;
            let hit = if cand.base == base {
                let (res, el) = send(&sh.setup.wire, &mut conn, url, &cand).await;
                oracle::judge(&cand, &res, el, &sh.setup.bounds)
                    .into_iter()
                    .find(|v| v.rule == rule)
            } else {
                None
            };
            match hit {
                Some(v) => {
                    best = cand;
                    best_v = v;
                    steps += 1;
                    if !tree.simplify() {
                        break;
                    }
                }
                None => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    // Once more, recorded: the evidence, and a check that the minimal request still fails. It
    // goes over the same raw connection type as the campaign (the audited client's URL parser
    // would normalise dot segments and quotes away), and is recorded by the audited client.
    let req = best.to_request(url, &format!("minimal request breaking {}", rule.as_str()));
    let t1 = Instant::now();
    let res = sh.setup.wire.send(&mut conn, &req).await;
    let ex = sh
        .setup
        .http
        .record_sent(&req, &res, t1.elapsed().as_millis() as u64);
    let again = oracle::judge(&best, &res, t1.elapsed(), &sh.setup.bounds)
        .into_iter()
        .any(|v| v.rule == rule);
    let message = if again {
        best_v.detail.clone()
    } else {
        format!(
            "{} (the recorded re-send did not break the rule again: intermittent)",
            best_v.detail
        )
    };
    let finding = Finding {
        result_id: rule.result_id(base),
        rule: rule.as_str().into(),
        endpoint: sh.endpoint.as_str().into(),
        seed: sh.settings.seed,
        case,
        shrink_steps: steps,
        shrink_tries: tries,
        // The message quotes the answer's body: redacted like a recorded body.
        message: sh.setup.http.redactor().body(&message),
        request: best.to_replay(url, &sh.setup.substitutions),
        curl: sh
            .setup
            .http
            .redactor()
            .text(&best.curl(url, sh.settings.insecure_curl)),
    };
    (base, finding, vec![ex])
}

/// Finds the endpoints to attack: the resource's PRM, its (or the given) authorization
/// server's metadata, and a public test client (from the profile, else registered for the
/// campaign) so requests get past client lookup.
pub async fn discover(
    http: Http,
    resource: Option<&str>,
    issuer: Option<&str>,
    profile_clients: &[crate::target::ClientConfig],
    slow: Duration,
) -> Result<Setup, String> {
    let wire = wire::Wire::new(http.config())?;
    let mut urls = BTreeMap::new();
    let mut missing = BTreeMap::new();
    let mut discovery = Vec::new();
    let mut issuer = issuer.map(str::to_string);
    let get_json = |http: Http, url: String, note: &'static str| async move {
        let (r, ex) = http
            .send(Request::new("GET", url, note).header("Accept", "application/json"))
            .await;
        let doc = r.ok().filter(|r| r.status == 200).and_then(|r| r.json());
        (doc, ex)
    };
    match resource {
        Some(res) => {
            urls.insert(Base::Resource, res.to_string());
            match crate::discovery::prm_candidates(res) {
                Ok(cands) => {
                    let mut found = false;
                    for c in cands {
                        let (doc, ex) =
                            get_json(http.clone(), c.url.clone(), "protected resource metadata")
                                .await;
                        discovery.push(ex);
                        if let Some(doc) = doc {
                            urls.insert(Base::Prm, c.url);
                            if issuer.is_none() {
                                issuer =
                                    doc["authorization_servers"][0].as_str().map(str::to_string);
                            }
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        missing.insert(
                            Base::Prm,
                            "no protected resource metadata at the well-known URLs".into(),
                        );
                    }
                }
                Err(e) => {
                    missing.insert(Base::Prm, e);
                }
            }
        }
        None => {
            missing.insert(Base::Resource, "no MCP endpoint given (--resource)".into());
            missing.insert(Base::Prm, "no MCP endpoint given (--resource)".into());
        }
    }
    let mut as_doc: Option<Value> = None;
    if let Some(iss) = &issuer {
        for c in crate::discovery::as_candidates(iss).unwrap_or_default() {
            let (doc, ex) =
                get_json(http.clone(), c.url.clone(), "authorization server metadata").await;
            discovery.push(ex);
            if let Some(doc) = doc {
                urls.insert(Base::AsMetadata, c.url);
                as_doc = Some(doc);
                break;
            }
        }
    }
    let no_as = if issuer.is_none() {
        "no authorization server: none given and none in the protected resource metadata"
    } else {
        "no authorization server metadata at the issuer's well-known URLs"
    };
    if as_doc.is_none() {
        missing.insert(Base::AsMetadata, no_as.into());
    }
    for (base, member) in [
        (Base::Token, "token_endpoint"),
        (Base::Register, "registration_endpoint"),
        (Base::Authorize, "authorization_endpoint"),
    ] {
        match as_doc.as_ref().and_then(|d| d[member].as_str()) {
            Some(u) => {
                urls.insert(base, u.to_string());
            }
            None => {
                missing.insert(
                    base,
                    if as_doc.is_some() {
                        format!("the authorization server metadata has no {member}")
                    } else {
                        no_as.to_string()
                    },
                );
            }
        }
    }
    // A public test client: the profile's, else one registered now.
    let mut vocabulary = Vocabulary {
        metadata: [Base::AsMetadata, Base::Prm]
            .into_iter()
            .filter(|b| urls.contains_key(b))
            .collect(),
        ..Vocabulary::default()
    };
    if let Some(c) = profile_clients
        .iter()
        .find(|c| c.auth_method == "none")
        .or(profile_clients.first())
    {
        vocabulary.client_id = Some(c.client_id.clone());
        vocabulary.redirect_uri = c.redirect_uris.first().cloned();
    } else if let Some(reg) = urls.get(&Base::Register) {
        let redirect = "http://127.0.0.1:33418/cb";
        let body = serde_json::json!({
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "authconform fuzz",
        });
        let (r, ex) = http
            .send(
                Request::new("POST", reg.clone(), "register the campaign's test client")
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        discovery.push(ex);
        if let Some(id) = r
            .ok()
            .filter(|r| (200..300).contains(&r.status))
            .and_then(|r| r.json())
            .and_then(|j| j["client_id"].as_str().map(str::to_string))
        {
            vocabulary.client_id = Some(id);
            vocabulary.redirect_uri = Some(redirect.into());
        }
    }
    let as_origins = urls
        .values()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| crate::discovery::origin(&u))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let substitutions = [
        ("client_id", vocabulary.client_id.clone()),
        ("redirect_uri", vocabulary.redirect_uri.clone()),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
    .collect();
    Ok(Setup {
        wire,
        bounds: Bounds {
            slow,
            as_origins,
            registered_redirects: vocabulary.redirect_uri.iter().cloned().collect(),
        },
        http,
        urls,
        vocabulary,
        substitutions,
        missing,
        discovery,
    })
}
