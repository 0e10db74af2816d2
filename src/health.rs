//! Target health: one circuit breaker per server the run talks to.
//!
//! A server that stops answering must not cost one timeout per case: 302 cases waiting 15 s
//! each, four at a time, is minutes of nothing. So the HTTP client counts, per authority
//! (host and port, whatever the scheme: a plain-http probe of a dead https server is as dead),
//! the transport failures in a row: connection errors, timeouts, and answers that broke off
//! mid-body. After [`THRESHOLD`] of them the authority is *down*: requests to it fail at once
//! with the one [`Incident`] that says why, and every case that needed it is `errored` with
//! that reason instead of waiting out its own timeouts.
//!
//! What does not count: a body cut at the suite's own size cap (the server answered; it only
//! said too much), a URL the egress policy refused (nothing was sent), and probes that expect
//! the transport to fail (a plain-http request to an https port). On a host that has answered
//! in full before, a body still arriving when the suite's timeout cut it counts once per URL in
//! a streak: parallel cases meeting one drip-feeding URL must not silence a host that answers
//! everything else.
//!
//! Reopening: a server may restart or hiccup. [`COOL_DOWN`] after it went down (or after the
//! last failed probe), one request is let through as a probe while the others still fail at
//! once; an answer of any kind closes the breaker and later requests go out again. Verdicts
//! already tied to the incident stay `errored`: each of them lacked its own evidence, and a
//! later answer does not supply it. Cases that wait on purpose (code and token expiry) are
//! the ones that profit: they resume against a server that came back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Transport failures in a row that mark an authority down.
pub const THRESHOLD: u32 = 3;
/// How long a down authority gets no traffic before one probe is let through.
pub const COOL_DOWN: Duration = Duration::from_secs(10);

/// Why the run stopped sending to a server: shared by every case it affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// `target-down-1`, `target-down-2`, …: what results and reports link to.
    pub id: String,
    /// The server, as `scheme://host:port` of the request that tripped it.
    pub origin: String,
    /// When it tripped, RFC 3339 UTC.
    pub at: String,
    /// One sentence: "the target stopped answering at …: 3 requests in a row timed out; last: …".
    pub reason: String,
}

/// What the client may do with a request to an authority.
#[derive(Debug, Clone)]
pub enum Admit {
    Go,
    /// Send it: it decides whether the authority is back.
    Probe,
    /// Do not send it.
    Down(Incident),
}

/// A transport failure, as the breaker counts it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// "timed out", "refused the connection", "broke off mid-body", …
    pub kind: String,
    /// The body was still arriving when the suite's deadline cut it.
    pub still_sending: bool,
    /// The exchange, `METHOD url`.
    pub exchange: String,
}

#[derive(Default)]
struct Authority {
    streak: Vec<Failure>,
    /// It has given a complete answer at least once in this run.
    answered_once: bool,
    down: Option<Incident>,
    /// When the authority went down or was last probed.
    since: Option<Instant>,
    probing: bool,
}

/// The run's breakers, shared by every clone of the HTTP client.
#[derive(Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    authorities: HashMap<String, Authority>,
    incidents: Vec<Incident>,
}

/// The key a URL's server is counted under: `host:port`, lowercased, default port filled in.
pub fn authority(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some(format!("{host}:{}", u.port_or_known_default()?))
}

fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            _ => u.origin().ascii_serialization(),
        },
        Err(_) => url.to_string(),
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves counts that are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a request to `url` go out now?
    pub fn admit(&self, url: &str) -> Admit {
        let Some(key) = authority(url) else {
            return Admit::Go;
        };
        let mut st = self.lock();
        let Some(a) = st.authorities.get_mut(&key) else {
            return Admit::Go;
        };
        let Some(inc) = &a.down else {
            return Admit::Go;
        };
        let cooled = a.since.is_none_or(|t| t.elapsed() >= COOL_DOWN);
        if cooled && !a.probing {
            a.probing = true;
            return Admit::Probe;
        }
        Admit::Down(inc.clone())
    }

    /// The server answered (any status): the streak ends, and a down authority is back.
    pub fn answered(&self, url: &str) {
        let Some(key) = authority(url) else { return };
        let mut st = self.lock();
        let a = st.authorities.entry(key).or_default();
        a.streak.clear();
        a.answered_once = true;
        a.down = None;
        a.since = None;
        a.probing = false;
    }

    /// A probe that ended without telling (never sent, or a failure it expected): the next
    /// request may probe instead.
    pub fn probe_undecided(&self, url: &str) {
        let Some(key) = authority(url) else { return };
        if let Some(a) = self.lock().authorities.get_mut(&key) {
            a.probing = false;
        }
    }

    /// A transport failure. Returns the incident when this one marked the authority down.
    pub fn failed(&self, url: &str, f: Failure) -> Option<Incident> {
        let key = authority(url)?;
        let mut st = self.lock();
        let n = st.incidents.len();
        let a = st.authorities.entry(key).or_default();
        if a.down.is_some() {
            // A failed probe: stay down, wait another cool-down.
            a.probing = false;
            a.since = Some(Instant::now());
            return None;
        }
        if f.still_sending && a.answered_once && a.streak.iter().any(|g| g.exchange == f.exchange) {
            // On a host that answers, one drip-feeding URL met again by parallel cases is one
            // finding about that URL; counted each time, it would trip the breaker and
            // silence every other case on the host. A host that has never answered in full
            // gives no answers at all: there every drip counts.
            return None;
        }
        a.streak.push(f);
        if (a.streak.len() as u32) < THRESHOLD {
            return None;
        }
        let at = time::OffsetDateTime::now_utc();
        let mut kinds: Vec<&str> = a.streak.iter().map(|f| f.kind.as_str()).collect();
        kinds.dedup();
        let what = if kinds.len() == 1 {
            kinds[0].to_string()
        } else {
            format!("failed ({})", kinds.join(", "))
        };
        let last = a
            .streak
            .last()
            .map(|f| f.exchange.clone())
            .unwrap_or_default();
        let clock = at
            .format(time::macros::format_description!(
                "[hour]:[minute]:[second] UTC"
            ))
            .unwrap_or_default();
        let inc = Incident {
            id: format!("target-down-{}", n + 1),
            origin: origin_of(last.split_once(' ').map_or(last.as_str(), |x| x.1)),
            at: at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            reason: format!(
                "the target stopped answering at {clock}: {} requests in a row {what}; last: {last}",
                a.streak.len()
            ),
        };
        a.down = Some(inc.clone());
        a.since = Some(Instant::now());
        a.streak.clear();
        st.incidents.push(inc.clone());
        Some(inc)
    }

    /// The incident that holds `url`'s server down now, if any.
    pub fn down(&self, url: &str) -> Option<Incident> {
        let key = authority(url)?;
        self.lock().authorities.get(&key)?.down.clone()
    }

    /// Every incident of the run, in order.
    pub fn incidents(&self) -> Vec<Incident> {
        self.lock().incidents.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(url: &str) -> Failure {
        Failure {
            kind: "timed out".into(),
            still_sending: false,
            exchange: format!("GET {url}"),
        }
    }

    #[test]
    fn three_failures_in_a_row_mark_the_authority_down() {
        let h = Health::default();
        let u = "http://127.0.0.1:9/mcp";
        assert!(h.failed(u, timeout(u)).is_none());
        assert!(h.failed(u, timeout(u)).is_none());
        let inc = h.failed(u, timeout(u)).expect("third failure trips");
        assert_eq!(inc.id, "target-down-1");
        assert_eq!(inc.origin, "http://127.0.0.1:9");
        assert!(
            inc.reason
                .contains("3 requests in a row timed out; last: GET http://127.0.0.1:9/mcp")
        );
        // Same host and port over another scheme: the same server.
        assert!(matches!(h.admit("https://127.0.0.1:9/x"), Admit::Down(_)));
        // Another port is another server.
        assert!(matches!(h.admit("http://127.0.0.1:10/"), Admit::Go));
        assert_eq!(h.incidents().len(), 1);
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_out_and_an_answer_reopens() {
        let h = Health::default();
        let u = "http://127.0.0.1:9/";
        for _ in 0..THRESHOLD {
            h.failed(u, timeout(u));
        }
        assert!(matches!(h.admit(u), Admit::Down(_)));
        // Pretend the cool-down passed.
        h.lock().authorities.get_mut("127.0.0.1:9").unwrap().since = None;
        assert!(matches!(h.admit(u), Admit::Probe));
        // One probe at a time: the others still fail at once.
        assert!(matches!(h.admit(u), Admit::Down(_)));
        // A probe that decided nothing lets the next request probe.
        h.probe_undecided(u);
        assert!(matches!(h.admit(u), Admit::Probe));
        // A failed probe keeps it down for another cool-down.
        assert!(h.failed(u, timeout(u)).is_none());
        assert!(matches!(h.admit(u), Admit::Down(_)));
        h.lock().authorities.get_mut("127.0.0.1:9").unwrap().since = None;
        assert!(matches!(h.admit(u), Admit::Probe));
        h.answered(u);
        assert!(matches!(h.admit(u), Admit::Go));
        // The incident stays on record.
        assert_eq!(h.incidents().len(), 1);
    }

    #[test]
    fn an_answer_ends_the_streak() {
        let h = Health::default();
        let u = "http://127.0.0.1:9/";
        h.failed(u, timeout(u));
        h.failed(u, timeout(u));
        h.answered(u);
        assert!(h.failed(u, timeout(u)).is_none());
        assert!(h.down(u).is_none());
    }

    #[test]
    fn mixed_failures_are_named() {
        let h = Health::default();
        let u = "http://127.0.0.1:9/";
        h.failed(u, timeout(u));
        h.failed(
            u,
            Failure {
                kind: "broke off mid-body".into(),
                still_sending: false,
                exchange: format!("GET {u}"),
            },
        );
        let inc = h.failed(u, timeout(u)).unwrap();
        assert!(
            inc.reason
                .contains("3 requests in a row failed (timed out, broke off mid-body, timed out)"),
            "{}",
            inc.reason
        );
    }

    #[test]
    fn one_drip_feeding_url_met_again_counts_once() {
        let h = Health::default();
        let drip = |url: &str| Failure {
            kind: "kept a body trickling past the timeout".into(),
            still_sending: true,
            exchange: format!("GET {url}"),
        };
        let slow = "http://127.0.0.1:9/slow";
        h.answered("http://127.0.0.1:9/mcp");
        for _ in 0..5 {
            assert!(h.failed(slow, drip(slow)).is_none());
        }
        // Three different URLs dripping in a row still trip it.
        assert!(h.failed(slow, drip("http://127.0.0.1:9/a")).is_none());
        let inc = h.failed(slow, drip("http://127.0.0.1:9/b"));
        assert!(inc.is_some(), "three dripping URLs trip the breaker");

        // A host that never answered in full: every drip counts.
        let h = Health::default();
        assert!(h.failed(slow, drip(slow)).is_none());
        assert!(h.failed(slow, drip(slow)).is_none());
        assert!(h.failed(slow, drip(slow)).is_some());
    }
}
