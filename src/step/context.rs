//! Per-case execution state: what earlier steps saved, the exchanges that prove the verdict, and
//! the observations that become the report's details.

use std::collections::HashMap;

use authconform_core::verdict::{Finding, Findings};
use serde_json::{Value, json};

use crate::http::{Http, HttpError, Recorder, Request, Response};
use crate::record::Exchange;
use crate::spec::Revision;
use crate::target::Target;

/// The longest a case may wait on purpose unless the profile or `--max-wait` says otherwise.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 120;

/// A case's place among the cases running at once. A case that waits (for a code or a token
/// to expire) gives its place up while it sleeps, so waits overlap with other cases' work and
/// with each other: a run takes about as long as its longest wait, not the sum of them.
pub struct Slot {
    pub sem: std::sync::Arc<tokio::sync::Semaphore>,
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What a run shares between cases.
pub struct RunEnv {
    pub http: Http,
    pub target: Target,
    pub revision: Revision,
    /// Clients, login, authorization defaults and timing from the target profile.
    pub profile: crate::target::Profile,
    /// The redirect-capture listener, when the profile configures one.
    pub callback: Option<crate::callback::Listener>,
    /// Clients registered for cases that did not ask for a fresh one, by what was asked:
    /// registration endpoints are rate-limited (the MCP TypeScript SDK allows 20 an hour).
    pub registered: tokio::sync::Mutex<HashMap<String, crate::step::client::Client>>,
    /// The PRM and the AS metadata the flow steps use, discovered once per run (before the
    /// first case; see [`crate::step::discovery::resolve_shared`]). A failure is remembered
    /// too: a hostile or dead server must not be asked again by every case.
    pub prm: tokio::sync::OnceCell<crate::step::discovery::Shared>,
    pub as_metadata: tokio::sync::OnceCell<crate::step::discovery::Shared>,
    /// The Client ID Metadata Document host, when the run has CIMD cases.
    pub documents: Option<std::sync::Arc<crate::cimd::Documents>>,
    /// What cases observed, for the cross-checks that run after them.
    pub facts: crate::step::facts::Facts,
    /// The test users and which of them cases hold now (see [`crate::login::users`]).
    pub users: crate::login::users::Leases,
    /// Where a case says it starts waiting on purpose (see [`Waiting`]), when whoever runs
    /// the cases wants to show it; the step layer knows nothing of who listens.
    pub waits: Option<tokio::sync::mpsc::UnboundedSender<Waiting>>,
}

/// A case that starts a deliberate wait: which, what for, and how long. A run that sits for a
/// minute should say what it is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub case: String,
    /// What the wait is for ("for the code to expire").
    pub what: String,
    pub secs: u64,
}

impl RunEnv {
    /// The incident holding the target itself down (its MCP endpoint, or the authorization
    /// server named as the target), if any.
    pub fn target_down(&self) -> Option<crate::health::Incident> {
        [&self.target.resource, &self.target.issuer]
            .into_iter()
            .flatten()
            .find_map(|u| self.http.health().down(u))
    }

    /// The longest a case may wait on purpose (code or token expiry).
    pub fn max_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.profile
                .timing
                .max_wait_secs
                .unwrap_or(DEFAULT_MAX_WAIT_SECS),
        )
    }
}

// The discovery outcome (and the one place a fetched document is parsed) lives in the member
// crate, with the judgements that read it.
pub use authconform_core::metadata::{Attempt, Discovery};

#[derive(Debug, Clone)]
pub enum Saved {
    Response { url: String, response: Response },
    Discovery(Discovery),
    Client(crate::step::client::Client),
    Authorization(Box<super::authorize::Authorization>),
}

impl Saved {
    /// The response an `expect` step inspects (for a discovery: the chosen document's).
    pub fn response(&self) -> Option<(&str, &Response)> {
        match self {
            Saved::Response { url, response } => Some((url, response)),
            Saved::Discovery(d) => d
                .chosen()
                .and_then(|a| a.response().map(|r| (a.url.as_str(), r))),
            Saved::Client(_) | Saved::Authorization(_) => None,
        }
    }

    fn to_json(&self) -> Value {
        let resp = |url: &str, r: &Response| {
            let mut headers = serde_json::Map::new();
            for (n, v) in &r.headers {
                headers
                    .entry(n.clone())
                    .or_insert_with(|| Value::String(v.clone()));
            }
            // The Bearer challenge's parameters, for templates (`${r403.challenge.scope}`).
            let mut challenge = serde_json::Map::new();
            let values: Vec<&str> = r.header_all("www-authenticate").collect();
            if let Ok(cs) = crate::www_authenticate::parse_all(values)
                && let Some(c) = cs.iter().find(|c| c.is_scheme("bearer"))
            {
                for (k, v) in &c.params {
                    challenge
                        .entry(k.to_ascii_lowercase())
                        .or_insert_with(|| Value::String(v.clone()));
                }
            }
            json!({ "url": url, "status": r.status, "header": headers, "doc": r.json(),
                    "challenge": challenge })
        };
        match self {
            Saved::Client(c) => c.to_json(),
            Saved::Authorization(a) => a.to_json(),
            Saved::Response { url, response } => resp(url, response),
            Saved::Discovery(d) => {
                let mut v = match d.chosen() {
                    Some(a) => match &a.result {
                        Ok(r) => resp(&a.url, r),
                        Err(_) => json!({}),
                    },
                    None => json!({}),
                };
                v["identifier"] = Value::String(d.identifier.clone());
                v
            }
        }
    }
}

fn long_state() -> String {
    let unit = "aZ09-._~ %41+/?=&;#é✓𝄞";
    let mut s = String::new();
    while s.len() < 1024 {
        s.push_str(unit);
    }
    s
}

/// Template filters: `${client.redirect.host|upper}`.
fn apply_filter(v: &str, filter: Option<&str>) -> Result<String, String> {
    Ok(match filter {
        None => v.to_string(),
        Some("upper") => v.to_uppercase(),
        Some("lower") => v.to_lowercase(),
        // Uppercases the scheme and the authority only (`HTTPS://MCP.EXAMPLE/mcp`): the same
        // resource for a server that compares them case-insensitively (MCP §8.1).
        Some("upper_origin") => match v.split_once("://") {
            Some((scheme, rest)) => {
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                format!(
                    "{}://{}{}",
                    scheme.to_uppercase(),
                    rest[..end].to_uppercase(),
                    &rest[end..]
                )
            }
            None => v.to_uppercase(),
        },
        // Percent-encodes the first character (`/cb` → `/%63b`): same resource to a decoder,
        // a different string to a simple comparison.
        Some("pct_first") => {
            let mut chars = v.char_indices();
            match chars.find(|(_, c)| c.is_ascii_alphanumeric()) {
                Some((i, c)) => format!("{}%{:02X}{}", &v[..i], c as u32, &v[i + 1..]),
                None => v.to_string(),
            }
        }
        // Percent-encodes every dot (`client.test` → `client%2Etest`).
        Some("pct_dots") => v.replace('.', "%2E"),
        Some(f) => return Err(format!("unknown template filter |{f}")),
    })
}

pub use authconform_core::verdict::{StepResult, Stop};

pub struct CaseCtx<'a> {
    pub env: &'a RunEnv,
    pub saved: HashMap<String, Saved>,
    /// When each step result in `saved` was saved: a token's age against its `expires_in`
    /// (see [`CaseCtx::outlived`]).
    pub saved_at: HashMap<String, std::time::Instant>,
    pub exchanges: Vec<Exchange>,
    /// Observations, in order (passes and failures alike): the report's long description.
    pub details: Vec<String>,
    /// Tolerated deviations (e.g. plain http on loopback): the case fails as a warning.
    pub warnings: Vec<String>,
    /// The last positive observation: a passed case's message.
    pub last_pass: Option<String>,
    /// Browser sessions (cookie jars) named by `authorize` steps.
    pub sessions: HashMap<String, crate::login::Browser>,
    /// Every response of the last parallel request (race probes).
    pub parallel: Vec<Response>,
    /// The current variant's values (`${v.name}`), as templates.
    pub variant: std::collections::BTreeMap<String, String>,
    /// The case id and the current variant's label: they name the case's folder on the
    /// document host.
    pub case_id: String,
    /// The case's area (`dcr`, `authorization_code`...).
    pub area: String,
    pub variant_label: Option<String>,
    /// `${doc.*}`: the document host's URLs for the current `document` step.
    pub doc_vars: serde_json::Map<String, Value>,
    /// The case's running place, when the runner limits concurrency.
    pub slot: Option<Slot>,
    /// The server stopped answering while this case needed it: it cannot be judged, and its
    /// result names this shared reason (see [`crate::health`]).
    pub blocked: Option<crate::health::Incident>,
    /// Shared discovery results whose exchanges this case's evidence already holds.
    pub(crate) adopted: Vec<&'static str>,
    /// Why the case could not be judged, when a stage-setting request failed (see
    /// [`crate::step::precondition_held`]).
    pub blocked_by: Option<crate::record::BlockedBy>,
    /// The case's own requirement is the shape of its error answers (`error_shape = "own"`).
    pub error_shape_own: bool,
    /// The users this case logs in as, by role (first, second): leased at its first login.
    pub leases: Vec<crate::login::users::Lease>,
    /// The case logs in as a second user too: both are leased together, so the second is
    /// distinct from the first whatever other cases hold.
    pub needs_second_user: bool,
}

impl<'a> CaseCtx<'a> {
    pub fn new(env: &'a RunEnv) -> Self {
        Self {
            env,
            saved: HashMap::new(),
            saved_at: HashMap::new(),
            exchanges: Vec::new(),
            details: Vec::new(),
            warnings: Vec::new(),
            last_pass: None,
            sessions: HashMap::new(),
            parallel: Vec::new(),
            variant: Default::default(),
            case_id: String::new(),
            area: String::new(),
            variant_label: None,
            doc_vars: Default::default(),
            slot: None,
            blocked: None,
            adopted: Vec::new(),
            blocked_by: None,
            error_shape_own: false,
            leases: Vec::new(),
            needs_second_user: false,
        }
    }

    /// Why the access token of the token response saved as `on` can no longer stand for a live
    /// token: it has lived its `expires_in` since it was saved. A check that presents it would
    /// see a refusal that proves nothing (the steps in between, logins above all, took longer
    /// than the server lets a token live). `None` while it lives, or when its lifetime is unknown.
    pub fn outlived(&self, on: &str) -> Option<String> {
        let (_, r) = self.saved.get(on)?.response()?;
        outlived(on, &r.json()?, self.saved_at.get(on)?.elapsed())
    }

    /// The pool user a login in `role` uses: leased for this case when it starts (the runner
    /// asks for the first role of every case that may log in) or else at its first login, both
    /// roles at once when the case needs two users; the same user for every later login.
    /// `None` when the pool has no user for the role (no username, or no second user).
    pub fn test_user(
        &mut self,
        role: crate::case::model::TestUser,
    ) -> Option<crate::login::users::PoolUser> {
        use crate::case::model::TestUser;
        let pool = self.env.users.pool();
        let i = match role {
            TestUser::First => 0,
            TestUser::Second => 1,
        };
        if pool.len() <= i {
            return None;
        }
        if self.leases.len() <= i {
            let want = if self.needs_second_user || i == 1 {
                2
            } else {
                1
            };
            let mut got = self.env.users.lease(want);
            if self.leases.len() == 1 {
                // The first role was leased alone; keep it and take the second's lease.
                got.truncate(0);
                got.extend(
                    self.env
                        .users
                        .lease(2)
                        .into_iter()
                        .filter(|l| l.index != self.leases[0].index)
                        .take(1),
                );
            }
            self.leases.extend(got);
        }
        self.leases.get(i).map(|l| pool[l.index].clone())
    }

    /// The usernames this case logged in as, first role first (for its record).
    pub fn users_used(&self) -> Vec<String> {
        let pool = self.env.users.pool();
        self.leases
            .iter()
            .filter_map(|l| pool.get(l.index).map(|u| u.username.clone()))
            .collect()
    }

    /// Is the shape of error answers this case's own requirement? Yes when the case says so,
    /// or when it is (a variant of) the error-format case `owner` itself.
    pub fn owns_error_shape(&self, owner: &str) -> bool {
        self.error_shape_own || self.case_id.split('.').next() == Some(owner)
    }

    /// Sleeps without holding a running place (see [`Slot`]), saying what for (`what`: "for
    /// the code to expire") to whoever listens ([`RunEnv::waits`]). The sleep ends early when
    /// the target goes down meanwhile: waiting out a code's lifetime on a dead server proves
    /// nothing, and the case is tied to the incident.
    pub async fn idle(&mut self, d: std::time::Duration, what: &str) {
        if let Some(tx) = &self.env.waits {
            // A listener that went away only stops hearing about waits.
            let _ = tx.send(Waiting {
                case: self.case_id.clone(),
                what: what.to_string(),
                secs: d.as_secs_f64().ceil() as u64,
            });
        }
        if let Some(slot) = &mut self.slot {
            slot.permit = None;
        }
        let end = tokio::time::Instant::now() + d;
        loop {
            if let Some(inc) = self.env.target_down() {
                self.note(format!("stopped waiting: {}", inc.reason));
                self.blocked.get_or_insert(inc);
                break;
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            tokio::time::sleep_until(end.min(now + std::time::Duration::from_millis(500))).await;
        }
        if let Some(slot) = &mut self.slot {
            slot.permit = slot.sem.clone().acquire_owned().await.ok();
        }
    }

    /// Sends a request and records the exchange as evidence.
    pub async fn send(&mut self, req: Request) -> Result<Response, HttpError> {
        self.recorder().send(req).await
    }

    /// The run's HTTP client with this case's evidence list: the narrow handle given to the
    /// layers below (login drivers).
    pub fn recorder(&mut self) -> Recorder<'_> {
        Recorder {
            http: &self.env.http,
            exchanges: &mut self.exchanges,
            blocked: &mut self.blocked,
        }
    }

    pub fn pass(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.details.push(format!("ok: {msg}"));
        self.last_pass = Some(msg);
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.details.push(format!("warning: {msg}"));
        self.warnings.push(msg);
    }

    pub fn note(&mut self, msg: impl Into<String>) {
        self.details.push(msg.into());
    }

    /// Records why the case cannot be judged: a `condition` the run lists once, the case whose
    /// requirement it breaks (if any) and the reason. The first cause recorded stays. The
    /// caller ends the case `errored` with the same reason.
    pub fn block(&mut self, condition: &str, case: Option<&str>, reason: &str) {
        self.blocked_by
            .get_or_insert_with(|| crate::record::BlockedBy {
                condition: condition.into(),
                case: case.map(str::to_string),
                reason: reason.to_string(),
            });
    }

    pub fn fail(&mut self, msg: impl Into<String>) -> StepResult {
        Err(self.failed(msg))
    }

    /// Records a failure and returns the [`Stop`] to propagate.
    pub fn failed(&mut self, msg: impl Into<String>) -> Stop {
        let msg = msg.into();
        self.details.push(format!("FAILED: {msg}"));
        Stop::Fail(msg)
    }

    /// Runs a pure judgement (`authconform_core::judge`) and records what it found, in order,
    /// as if the check had observed it itself.
    pub fn judged<T>(
        &mut self,
        judge: impl FnOnce(&mut Findings) -> Result<T, Stop>,
    ) -> Result<T, Stop> {
        let mut findings = Findings::default();
        let r = judge(&mut findings);
        for f in findings.0 {
            match f {
                Finding::Pass(m) => self.pass(m),
                Finding::Warn(m) => self.warn(m),
                Finding::Note(m) => self.note(m),
                Finding::Fail(m) => {
                    self.failed(m);
                }
            }
        }
        r
    }

    pub fn discovery(&self, name: &str) -> Result<&Discovery, Stop> {
        match self.saved.get(name) {
            Some(Saved::Discovery(d)) => Ok(d),
            Some(_) => Err(Stop::Error(format!("`{name}` is not a discovery result"))),
            None => Err(Stop::Error(format!("nothing saved as `{name}`"))),
        }
    }

    /// The template view: `target.*` plus every saved value.
    fn vars(&self) -> Value {
        let t = &self.env.target;
        let mut v = json!({
            "target": {
                "resource": t.resource,
                "issuer": t.issuer,
            },
            "spec": self.env.revision.as_str(),
        });
        // Profile values cases may name (`${profile.scope}`); absent ones stay unresolvable.
        let mut profile = serde_json::Map::new();
        if let Some(sc) = &self.env.profile.authorization.scope {
            profile.insert("scope".into(), json!(sc));
        }
        if let Some(b) = &self.env.profile.scopes.broad_scope {
            profile.insert("broad_scope".into(), json!(b));
        }
        v["profile"] = Value::Object(profile);
        if let Some(r) = &t.resource
            && let Ok(u) = url::Url::parse(r)
        {
            v["target"]["origin"] = Value::String(crate::discovery::origin(&u));
        }
        for (k, s) in &self.saved {
            v[k] = s.to_json();
        }
        if !self.doc_vars.is_empty() {
            v["doc"] = Value::Object(self.doc_vars.clone());
        }
        v
    }

    /// Expands `${a.b.c}` references. Unresolvable references are an error naming them.
    pub fn expand(&self, template: &str) -> Result<String, String> {
        if !template.contains("${") {
            return Ok(template.to_string());
        }
        let vars = self.vars();
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {template:?}"))?;
            let (path, filter) = match after[..end].split_once('|') {
                Some((p, f)) => (p, Some(f)),
                None => (&after[..end], None),
            };
            rest = &after[end + 1..];
            // A variant value is itself a template over what was saved (never over `v.`).
            if let Some(name) = path.strip_prefix("v.") {
                let t = self
                    .variant
                    .get(name)
                    .ok_or_else(|| format!("`${{{path}}}`: the variant has no {name}"))?;
                if t.contains("${v.") {
                    return Err(format!(
                        "variant value {name} refers to another variant value"
                    ));
                }
                let v = self.expand(t)?;
                out.push_str(&apply_filter(&v, filter)?);
                continue;
            }
            // Generated values, made only when a template asks for one.
            if let Some(name) = path.strip_prefix("gen.") {
                let v = match name {
                    // 1 KiB of what state values get mangled by: percent signs, plus, spaces,
                    // reserved characters, non-ASCII (RFC 6749 §4.1.2 wants it back unchanged).
                    "state_long" => long_state(),
                    "verifier" => super::authorize::new_verifier(),
                    // 2,000 distinct scope tokens (about 12 KB): an oversized scope.
                    "scope_many" => (0..2000)
                        .map(|i| format!("s{i:04}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => return Err(format!("`${{{path}}}`: no generated value {name}")),
                };
                out.push_str(&apply_filter(&v, filter)?);
                continue;
            }
            // `${a.b?fallback}`: the fallback text when the value is absent (an optional
            // target value, e.g. no --resource when only --issuer is given).
            let (path, fallback) = match path.split_once('?') {
                Some((p, d)) => (p, Some(d)),
                None => (path, None),
            };
            let mut cur = &vars;
            for seg in path.split('.') {
                cur = match cur {
                    Value::Object(m) => m.get(seg).unwrap_or(&Value::Null),
                    Value::Array(a) => seg
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| a.get(i))
                        .unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
            }
            let text = match cur {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => match fallback {
                    Some(d) => d.to_string(),
                    None => return Err(format!("`${{{path}}}` has no value")),
                },
            };
            out.push_str(&apply_filter(&text, filter)?);
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Why a token response `doc` saved as `on` `age` ago no longer holds a live access token: it
/// has lived its `expires_in`. `None` while it lives or when the response gives no lifetime.
fn outlived(on: &str, doc: &Value, age: std::time::Duration) -> Option<String> {
    let life = doc.get("expires_in")?.as_u64()?;
    (age.as_secs_f64() >= life as f64).then(|| {
        format!(
            "the access token saved as `{on}` expired before it could be used (expires_in {life} s, obtained {:.1} s earlier): the steps in between took longer than the server lets a token live, so a refusal now would prove nothing",
            age.as_secs_f64()
        )
    })
}

#[cfg(test)]
mod outlived_tests {
    use super::outlived;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn a_token_is_stale_once_its_expires_in_has_passed() {
        let doc = json!({"access_token": "x", "expires_in": 3});
        assert_eq!(outlived("t1", &doc, Duration::from_millis(2900)), None);
        let why = outlived("t1", &doc, Duration::from_millis(3100)).unwrap();
        assert!(
            why.contains("`t1`") && why.contains("expires_in 3 s") && why.contains("3.1 s"),
            "{why}"
        );
        // No lifetime given: the suite cannot tell, and does not guess.
        let forever = json!({"access_token": "x"});
        assert_eq!(outlived("t1", &forever, Duration::from_secs(86_400)), None);
    }
}
