//! A rebinding DNS server for `cimd-ssrf-dns-rebind` (MCP security best practices, SSRF, "DNS
//! Resolution Considerations"; CIMD-01 §6): an AS that checks a client_id's host by resolving
//! it, then connects after resolving it *again*, can be sent to an address it never checked.
//!
//! The AS under test must use this server as its resolver (the profile's `[cimd] resolver`;
//! the built-in reference is started with it). It answers only on this machine's behalf and
//! forwards nothing: [`REBIND_HOST`] first resolves to `127.0.0.1` (the document host's
//! address, which an AS in development mode may fetch from) and, from the first repeated
//! question on, to `::1` only (where the document host keeps a second listener on the same port
//! that must never be reached); `localhost` names get loopback answers (RFC 6761 §6.3); every
//! other name is NXDOMAIN. Answers carry TTL 0 so that no well-behaved cache hides the switch.
//!
//! `*.test` is the name space RFC 6761 §6.2 reserves for testing: public resolvers answer
//! NXDOMAIN for it, so the name cannot lead off the machine whoever resolves it.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The name whose answer changes between lookups.
pub const REBIND_HOST: &str = "rebind.authconform.test";

/// Questions kept at most: a busy or hostile AS must not grow the log without limit.
const LOG_CAP: usize = 2_000;

/// One question the server answered.
#[derive(Debug, Clone)]
pub struct Query {
    /// RFC 3339, UTC.
    pub at: String,
    pub from: String,
    pub name: String,
    pub qtype: String,
    /// What was answered: addresses, "no records" or "NXDOMAIN".
    pub answer: String,
    /// The answer came after the switch (the second lookup of the rebinding name).
    pub rebound: bool,
}

#[derive(Default)]
struct State {
    /// Question types asked for the rebinding name since [`RebindDns::arm`].
    seen: HashSet<RecordType>,
    rebound: bool,
    log: Vec<Query>,
}

/// The running server.
pub struct RebindDns {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl RebindDns {
    /// Listens (UDP) on `addr`; port 0 picks a free one.
    pub async fn start(addr: SocketAddr) -> Result<Self, String> {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| format!("DNS server on {addr}: {e}"))?;
        let addr = sock.local_addr().map_err(|e| format!("DNS server: {e}"))?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                // Anything that is not a well-formed question is dropped, as resolvers do.
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if q.message_type() != MessageType::Query {
                    continue;
                }
                let answer = {
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    respond(&mut s, &q, &peer.to_string())
                };
                if let Ok(bytes) = answer.to_vec() {
                    let _ = sock.send_to(&bytes, peer).await;
                }
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Starts the rebinding over: the next lookup of [`REBIND_HOST`] gets `127.0.0.1` again.
    /// Returns a mark for [`Self::queries_since`].
    pub fn arm(&self) -> usize {
        let mut s = self.lock();
        s.seen.clear();
        s.rebound = false;
        s.log.len()
    }

    /// The questions answered since `mark`, oldest first.
    pub fn queries_since(&self, mark: usize) -> Vec<Query> {
        self.lock().log.iter().skip(mark).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RebindDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The answer to one message: the first question only (resolvers ask one at a time).
fn respond(s: &mut State, q: &Message, from: &str) -> Message {
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(question) = q.queries().first() else {
        r.set_response_code(ResponseCode::FormErr);
        return r;
    };
    r.add_query(question.clone());
    let name = question.name().clone();
    let lower = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let qtype = question.query_type();
    let mut rebound = false;
    let answer: Option<Vec<RData>> = if lower == REBIND_HOST {
        // The switch comes with the first question asked twice: a lookup asks A and AAAA
        // once each (in either order, or only one of them), the next lookup repeats one.
        if !s.rebound && s.seen.contains(&qtype) {
            s.rebound = true;
        }
        s.seen.insert(qtype);
        rebound = s.rebound;
        Some(match (s.rebound, qtype) {
            (false, RecordType::A) => vec![RData::A(A(Ipv4Addr::LOCALHOST))],
            (true, RecordType::AAAA) => vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))],
            _ => vec![],
        })
    } else if lower == "localhost" || lower.ends_with(".localhost") {
        Some(match qtype {
            RecordType::A => vec![RData::A(A(Ipv4Addr::LOCALHOST))],
            RecordType::AAAA => vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))],
            _ => vec![],
        })
    } else {
        None
    };
    let text = match &answer {
        None => "NXDOMAIN".to_string(),
        Some(v) if v.is_empty() => "no records".to_string(),
        Some(v) => v
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    match answer {
        Some(v) if !v.is_empty() => {
            for d in v {
                r.add_answer(Record::from_rdata(name.clone(), 0, d));
            }
        }
        other => {
            if other.is_none() {
                r.set_response_code(ResponseCode::NXDomain);
            }
            // A negative answer with a zero negative-caching time (RFC 2308 §5).
            let soa = SOA::new(
                Name::from_ascii("ns.authconform.test.").unwrap_or_default(),
                Name::from_ascii("hostmaster.authconform.test.").unwrap_or_default(),
                1,
                0,
                0,
                0,
                0,
            );
            r.add_name_server(Record::from_rdata(name.clone(), 0, RData::SOA(soa)));
        }
    }
    if s.log.len() < LOG_CAP {
        s.log.push(Query {
            at: now(),
            from: from.to_string(),
            name: lower,
            qtype: qtype.to_string(),
            answer: text,
            rebound,
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query as Question;

    fn ask(s: &mut State, name: &str, t: RecordType) -> Vec<String> {
        let mut m = Message::new();
        m.set_id(7).set_message_type(MessageType::Query);
        m.add_query(Question::query(Name::from_ascii(name).unwrap(), t));
        let r = respond(s, &m, "test");
        assert_eq!(r.id(), 7);
        r.answers().iter().map(|a| a.data().to_string()).collect()
    }

    #[test]
    fn the_second_lookup_is_rebound_whatever_the_order_of_questions() {
        for first in [RecordType::A, RecordType::AAAA] {
            let other = if first == RecordType::A {
                RecordType::AAAA
            } else {
                RecordType::A
            };
            let mut s = State::default();
            let lookup = |s: &mut State, order: [RecordType; 2]| {
                let mut all: Vec<String> = order
                    .iter()
                    .flat_map(|t| ask(s, "Rebind.Authconform.Test.", *t))
                    .collect();
                all.sort();
                all
            };
            assert_eq!(lookup(&mut s, [first, other]), vec!["127.0.0.1"]);
            assert_eq!(lookup(&mut s, [first, other]), vec!["::1"]);
            assert_eq!(lookup(&mut s, [other, first]), vec!["::1"], "stays rebound");
        }
        // An IPv4-only resolver: its second lookup finds nothing to connect to.
        let mut s = State::default();
        assert_eq!(ask(&mut s, REBIND_HOST, RecordType::A), vec!["127.0.0.1"]);
        assert!(ask(&mut s, REBIND_HOST, RecordType::A).is_empty());
        assert!(s.log[1].rebound);
    }

    #[test]
    fn other_names_are_answered_locally_or_not_at_all() {
        let mut s = State::default();
        assert_eq!(ask(&mut s, "app.localhost.", RecordType::AAAA), vec!["::1"]);
        assert!(ask(&mut s, "example.com.", RecordType::A).is_empty());
        assert_eq!(s.log[1].answer, "NXDOMAIN");
        assert!(
            s.seen.is_empty(),
            "only the rebinding name moves the switch"
        );
    }
}
