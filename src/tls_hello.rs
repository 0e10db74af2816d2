//! A raw TLS ClientHello probe (tls-modern-config): ClientHellos encoded byte by byte for the
//! protocol versions and cipher suites a TLS library will not offer any more (SSL 3.0, TLS 1.0,
//! 1.1, weak TLS 1.2 suites), sent over a plain TCP connection, and the server's first record
//! decoded (a ServerHello, an alert, or something else). No TLS library is involved: the point is
//! to see what a server accepts from a client that offers only what it should refuse.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a probe waits to connect, and then for the answer (less if the run's HTTP
/// timeouts are shorter).
pub const PROBE_WAIT: Duration = Duration::from_secs(5);
/// Bytes of the answer read at most: one full TLS record (RFC 8446 §5.1: 2^14 plus header).
const ANSWER_MAX: usize = 5 + (1 << 14) + 256;

/// Which extensions a ClientHello carries.
#[derive(Clone, Copy, PartialEq)]
pub enum Exts {
    /// SSL 3.0 had no extensions (RFC 6101).
    None,
    /// TLS 1.0/1.1 as old clients sent it: SNI, groups, point formats, renegotiation_info.
    Legacy,
    /// TLS 1.2 (RFC 5246 §7.4.1.4): plus signature_algorithms and extended_master_secret.
    Tls12,
    /// TLS 1.3 (RFC 8446 §4.2): supported_versions [1.3], an x25519 key_share.
    Tls13,
}

/// What a server must do with an offer.
#[derive(Clone, Copy, PartialEq)]
pub enum Want {
    /// Refuse it; accepting is a failure, citing this rule.
    Refuse(&'static str),
    /// Refuse it; accepting is a tolerated deviation (a warning), citing this rule.
    Discourage(&'static str),
    /// Accept it: the positive control (at least one of these must start a negotiation).
    Accept,
}

pub struct Offer {
    pub label: &'static str,
    pub record: u16,
    pub legacy: u16,
    pub suites: &'static [u16],
    pub exts: Exts,
    pub want: Want,
}

impl Offer {
    /// The version a server that accepts this offer negotiates.
    pub fn negotiates(&self) -> u16 {
        if self.exts == Exts::Tls13 {
            0x0304
        } else {
            self.legacy
        }
    }
}

const SSL3_SUITES: &[u16] = &[0x002f, 0x0035, 0x000a, 0x0005, 0x0004, 0x0009, 0x00ff];
const LEGACY_SUITES: &[u16] = &[
    0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x00ff,
];
/// NULL, EXPORT, anonymous, DES, RC4 and 3DES suites (RFC 9325 §4.1; RFC 7465 for RC4).
const WEAK_SUITES: &[u16] = &[
    0x0001, 0x0002, 0x003b, 0xc006, 0xc010, // NULL encryption
    0x0003, 0x0006, 0x0008, 0x0014, // EXPORT
    0x0018, 0x001b, 0x0034, 0xc018, // anonymous (DH_anon, ECDH_anon)
    0x0009, 0x0015, // single DES
    0x0004, 0x0005, 0xc007, 0xc011, // RC4
    0x000a, 0x0016, 0xc008, 0xc012, // 3DES (112-bit)
    0x00ff,
];
/// AES-CBC suites only (no AEAD).
const CBC_SUITES: &[u16] = &[
    0xc009, 0xc00a, 0xc013, 0xc014, 0xc023, 0xc024, 0xc027, 0xc028, 0x002f, 0x0035, 0x003c, 0x003d,
    0x00ff,
];
const MODERN12_SUITES: &[u16] = &[
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d, 0x00ff,
];
const TLS13_SUITES: &[u16] = &[0x1301, 0x1302, 0x1303];

pub const OFFERS: &[Offer] = &[
    Offer {
        label: "TLS 1.2 with AEAD suites",
        record: 0x0301,
        legacy: 0x0303,
        suites: MODERN12_SUITES,
        exts: Exts::Tls12,
        want: Want::Accept,
    },
    Offer {
        label: "TLS 1.3",
        record: 0x0301,
        legacy: 0x0303,
        suites: TLS13_SUITES,
        exts: Exts::Tls13,
        want: Want::Accept,
    },
    Offer {
        label: "SSL 3.0 only",
        record: 0x0300,
        legacy: 0x0300,
        suites: SSL3_SUITES,
        exts: Exts::None,
        want: Want::Refuse("RFC 7568 §2: SSL 3.0 MUST NOT be used"),
    },
    Offer {
        label: "TLS 1.0 only",
        record: 0x0301,
        legacy: 0x0301,
        suites: LEGACY_SUITES,
        exts: Exts::Legacy,
        want: Want::Refuse("RFC 8996 §4: TLS 1.0 MUST NOT be negotiated"),
    },
    Offer {
        label: "TLS 1.1 only",
        record: 0x0301,
        legacy: 0x0302,
        suites: LEGACY_SUITES,
        exts: Exts::Legacy,
        want: Want::Refuse("RFC 8996 §5: TLS 1.1 MUST NOT be negotiated"),
    },
    Offer {
        label: "TLS 1.2 with only NULL, EXPORT, anonymous, DES, RC4 and 3DES suites",
        record: 0x0301,
        legacy: 0x0303,
        suites: WEAK_SUITES,
        exts: Exts::Tls12,
        want: Want::Refuse(
            "RFC 9325 §4.1: NULL, RC4, export-grade, anonymous and < 128-bit suites are not negotiated",
        ),
    },
    Offer {
        label: "TLS 1.2 with only AES-CBC suites",
        record: 0x0301,
        legacy: 0x0303,
        suites: CBC_SUITES,
        exts: Exts::Tls12,
        want: Want::Discourage("RFC 9325 §4.2: only AEAD suites are recommended"),
    },
];

pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v => format!("version 0x{v:04x}"),
    }
}

/// RFC 8446 §6 / RFC 5246 §7.2 alert descriptions a refusal usually carries.
fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        40 => "handshake_failure",
        47 => "illegal_parameter",
        50 => "decode_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        109 => "missing_extension",
        112 => "unrecognized_name",
        _ => "other",
    }
}

fn push16(v: &mut Vec<u8>, n: usize) {
    v.extend_from_slice(&(n as u16).to_be_bytes());
}

fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    push16(out, data.len());
    out.extend_from_slice(data);
}

fn u16s(list: &[u16]) -> Vec<u8> {
    list.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// A ClientHello record (RFC 5246 §7.4.1.2; RFC 8446 §4.1.2 for 1.3) for `o`; `sni` is the host
/// name for server_name (RFC 6066 §3), absent for IP literals.
pub fn client_hello(o: &Offer, sni: Option<&str>) -> Vec<u8> {
    let mut body = o.legacy.to_be_bytes().to_vec();
    body.extend_from_slice(&rand::random::<[u8; 32]>());
    if o.exts == Exts::Tls13 {
        // A legacy session id, as 1.3 clients send for middlebox compatibility (RFC 8446 D.4).
        body.push(32);
        body.extend_from_slice(&rand::random::<[u8; 32]>());
    } else {
        body.push(0);
    }
    push16(&mut body, o.suites.len() * 2);
    body.extend_from_slice(&u16s(o.suites));
    body.extend_from_slice(&[1, 0]); // compression: null only
    if o.exts != Exts::None {
        let mut e = Vec::new();
        if let Some(name) = sni {
            let mut d = Vec::new();
            push16(&mut d, name.len() + 3);
            d.push(0);
            push16(&mut d, name.len());
            d.extend_from_slice(name.as_bytes());
            ext(&mut e, 0x0000, &d);
        }
        let groups: &[u16] = if o.exts == Exts::Tls13 {
            &[0x001d, 0x0017]
        } else {
            &[0x001d, 0x0017, 0x0018]
        };
        let mut d = Vec::new();
        push16(&mut d, groups.len() * 2);
        d.extend_from_slice(&u16s(groups));
        ext(&mut e, 0x000a, &d); // supported_groups
        if o.exts != Exts::Tls13 {
            ext(&mut e, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
        }
        if matches!(o.exts, Exts::Tls12 | Exts::Tls13) {
            let algs = [
                0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0807,
            ];
            let mut d = Vec::new();
            push16(&mut d, algs.len() * 2);
            d.extend_from_slice(&u16s(&algs));
            ext(&mut e, 0x000d, &d); // signature_algorithms
        }
        if o.exts == Exts::Tls12 {
            ext(&mut e, 0x0017, &[]); // extended_master_secret
        }
        if o.exts != Exts::Tls13 {
            ext(&mut e, 0xff01, &[0]); // renegotiation_info (initial handshake)
        }
        if o.exts == Exts::Tls13 {
            ext(&mut e, 0x002b, &[2, 0x03, 0x04]); // supported_versions: TLS 1.3
            ext(&mut e, 0x002d, &[1, 1]); // psk_key_exchange_modes: psk_dhe_ke
            // key_share: one x25519 share; any 32 bytes are a usable X25519 public value for
            // the server to answer (the handshake is never finished).
            let mut d = Vec::new();
            push16(&mut d, 2 + 2 + 32);
            d.extend_from_slice(&0x001du16.to_be_bytes());
            push16(&mut d, 32);
            d.extend_from_slice(&rand::random::<[u8; 32]>());
            ext(&mut e, 0x0033, &d);
        }
        push16(&mut body, e.len());
        body.extend_from_slice(&e);
    }
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16];
    rec.extend_from_slice(&o.record.to_be_bytes());
    push16(&mut rec, hs.len());
    rec.extend_from_slice(&hs);
    rec
}

/// How a server answered a ClientHello.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// A ServerHello: the negotiated version (supported_versions for 1.3) and suite.
    Hello {
        version: u16,
        suite: u16,
    },
    Alert {
        level: u8,
        desc: u8,
    },
    /// The connection closed (or was reset) without an answer.
    Closed(String),
    /// Nothing in time.
    Silent,
    /// Something that is neither (not TLS, or another handshake message first).
    Other(String),
    /// No TCP connection at all: the probe cannot tell anything.
    Unreachable(String),
}

impl Answer {
    pub fn describe(&self) -> String {
        match self {
            Answer::Hello { version, suite } => format!(
                "ServerHello: {}, cipher suite 0x{suite:04x}",
                version_name(*version)
            ),
            Answer::Alert { level, desc } => format!(
                "alert {} ({desc}), level {}",
                alert_name(*desc),
                if *level == 2 { "fatal" } else { "warning" }
            ),
            Answer::Closed(e) => format!("connection closed without a ServerHello ({e})"),
            Answer::Silent => "no answer in time".into(),
            Answer::Other(e) => e.clone(),
            Answer::Unreachable(e) => format!("no connection: {e}"),
        }
    }
}

/// The first answer in `buf`, once complete.
fn parse_answer(buf: &[u8]) -> Option<Answer> {
    if buf.len() < 5 {
        return None;
    }
    let rec_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    match buf[0] {
        0x15 if buf.len() >= 7 => Some(Answer::Alert {
            level: buf[5],
            desc: buf[6],
        }),
        0x15 => None,
        0x16 => {
            if buf.len() < 9 {
                return None;
            }
            if buf[5] != 0x02 {
                return Some(Answer::Other(format!(
                    "handshake message type {} instead of a ServerHello",
                    buf[5]
                )));
            }
            let hs_len = u32::from_be_bytes([0, buf[6], buf[7], buf[8]]) as usize;
            let need = 9 + hs_len.min(rec_len.saturating_sub(4));
            if buf.len() < need {
                return None;
            }
            Some(parse_server_hello(&buf[9..need]))
        }
        _ => Some(Answer::Other(format!(
            "not a TLS record: first bytes {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(24)])
        ))),
    }
}

/// A ServerHello body (RFC 5246 §7.4.1.3, RFC 8446 §4.1.3): the version is `supported_versions`
/// when present (TLS 1.3), else `server_version`.
fn parse_server_hello(b: &[u8]) -> Answer {
    if b.len() < 38 {
        return Answer::Other(format!("a ServerHello of {} bytes", b.len()));
    }
    let mut version = u16::from_be_bytes([b[0], b[1]]);
    let sid = b[34] as usize;
    let i = 35 + sid;
    if b.len() < i + 3 {
        return Answer::Other("a truncated ServerHello".into());
    }
    let suite = u16::from_be_bytes([b[i], b[i + 1]]);
    let mut j = i + 3;
    if b.len() >= j + 2 {
        let end = (j + 2 + u16::from_be_bytes([b[j], b[j + 1]]) as usize).min(b.len());
        j += 2;
        while j + 4 <= end {
            let kind = u16::from_be_bytes([b[j], b[j + 1]]);
            let len = u16::from_be_bytes([b[j + 2], b[j + 3]]) as usize;
            if kind == 0x002b && len == 2 && j + 6 <= end {
                version = u16::from_be_bytes([b[j + 4], b[j + 5]]);
            }
            j += 4 + len;
        }
    }
    Answer::Hello { version, suite }
}

/// Sends one ClientHello and reads the first answer, bounded by `waits` (connect, answer) and
/// [`ANSWER_MAX`].
/// `addrs` are the addresses the caller's egress policy checked: connect to those only.
pub async fn send_hello(
    addrs: &[std::net::SocketAddr],
    hello: &[u8],
    waits: (Duration, Duration),
) -> Answer {
    let (connect_wait, answer_wait) = waits;
    let mut s = match tokio::time::timeout(connect_wait, tokio::net::TcpStream::connect(addrs))
        .await
    {
        Err(_) => return Answer::Unreachable(format!("no TCP connection within {connect_wait:?}")),
        Ok(Err(e)) => return Answer::Unreachable(e.to_string()),
        Ok(Ok(s)) => s,
    };
    let exchange = async {
        s.write_all(hello).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(a) = parse_answer(&buf) {
                return Ok::<Answer, std::io::Error>(a);
            }
            if buf.len() >= ANSWER_MAX {
                return Ok(Answer::Other(format!(
                    "{} bytes without a complete first handshake message",
                    buf.len()
                )));
            }
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(if buf.is_empty() {
                    Answer::Closed("EOF".into())
                } else {
                    Answer::Other(format!(
                        "an incomplete record ({} bytes), then EOF",
                        buf.len()
                    ))
                });
            }
            let room = ANSWER_MAX - buf.len();
            buf.extend_from_slice(&chunk[..n.min(room)]);
        }
    };
    match tokio::time::timeout(answer_wait, exchange).await {
        Err(_) => Answer::Silent,
        Ok(Err(e)) => Answer::Closed(e.to_string()),
        Ok(Ok(a)) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_are_well_formed_and_answers_parse() {
        for o in OFFERS {
            let h = client_hello(o, Some("as.example"));
            assert_eq!(h[0], 0x16);
            assert_eq!(u16::from_be_bytes([h[3], h[4]]) as usize, h.len() - 5);
            assert_eq!(h[5], 0x01);
            let hs_len = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
            assert_eq!(hs_len, h.len() - 9);
            assert_eq!(u16::from_be_bytes([h[9], h[10]]), o.legacy);
        }
        assert_eq!(
            parse_answer(&[0x15, 3, 3, 0, 2, 2, 70]),
            Some(Answer::Alert { level: 2, desc: 70 })
        );
        // A TLS 1.3 ServerHello: legacy 1.2, supported_versions 1.3.
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[0u8; 32]);
        sh.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 0x2b, 0, 2, 3, 4]);
        let mut rec = vec![0x16, 3, 3, 0, (sh.len() + 4) as u8, 2, 0, 0, sh.len() as u8];
        rec.extend_from_slice(&sh);
        assert_eq!(
            parse_answer(&rec),
            Some(Answer::Hello {
                version: 0x0304,
                suite: 0x1301
            })
        );
        assert_eq!(parse_answer(&rec[..20]), None);
        assert!(matches!(
            parse_answer(b"HTTP/1.1 400 Bad Request"),
            Some(Answer::Other(_))
        ));
    }
}
