//! One generated request ("probe"): where it goes, exactly what bytes it carries, and what the
//! generator knows about it. Probes are concrete (strategies already chose every byte), so the
//! request a finding reports is the request that was sent; the same probe renders the `curl`
//! reproducer and the replay record.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::http::Request;
use crate::record::{ReplayHeader, ReplayRequest};
use crate::terminal::shell_quote;

/// Shortest target-specific value a replay substitutes.
const MIN_SUBSTITUTION: usize = 6;

/// The URL a probe is sent to; each is discovered on the target (metadata or profile).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Base {
    Token,
    Register,
    Authorize,
    AsMetadata,
    Prm,
    Resource,
}

impl Base {
    pub const ALL: [Base; 6] = [
        Base::Token,
        Base::Register,
        Base::Authorize,
        Base::AsMetadata,
        Base::Prm,
        Base::Resource,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Base::Token => "token",
            Base::Register => "register",
            Base::Authorize => "authorize",
            Base::AsMetadata => "as-metadata",
            Base::Prm => "prm",
            Base::Resource => "resource",
        }
    }
    pub fn parse(s: &str) -> Option<Base> {
        Base::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

/// A generated request, relative to its base URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub base: Base,
    pub method: String,
    /// Appended verbatim to the base URL: a path suffix and/or a query (`?` joins an existing
    /// query with `&`).
    pub suffix: String,
    /// Values as bytes: non-ASCII and duplicated headers are deliberate.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
    /// Set when the generator knows the request is invalid, with the reason: nothing may be
    /// issued for it.
    pub invalid: Option<String>,
}

impl Probe {
    pub fn new(base: Base, method: &str) -> Self {
        Self {
            base,
            method: method.to_string(),
            suffix: String::new(),
            headers: Vec::new(),
            body: None,
            invalid: None,
        }
    }

    /// The base URL with the suffix appended.
    pub fn url(&self, base_url: &str) -> String {
        join(base_url, &self.suffix)
    }

    pub fn to_request(&self, base_url: &str, note: &str) -> Request {
        let mut r = Request::new(&self.method, self.url(base_url), note);
        r.headers = self.headers.clone();
        r.body = self.body.clone();
        // Every credential in a probe is generated garbage: showing it reveals nothing.
        r.reveal_auth = true;
        r
    }

    /// Bytes on the wire besides the fixed request line parts: a rough size for "minimal".
    pub fn size(&self) -> usize {
        self.suffix.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
            + self.body.as_ref().map_or(0, Vec::len)
    }

    /// The replay record of this probe as sent to `base_url`, with `substitutions` naming the
    /// target-specific values it contains.
    pub fn to_replay(&self, base_url: &str, substitutions: &[(String, String)]) -> ReplayRequest {
        let body_text = self.body.as_deref().map(String::from_utf8_lossy);
        let uses = |v: &str| {
            let encoded = form_encode(v.as_bytes());
            let within = |hay: &str| hay.contains(v) || hay.contains(&encoded);
            // A short value (an id like "12") would match unrelated bytes on replay.
            v.len() >= MIN_SUBSTITUTION
                && (within(&self.suffix)
                    || body_text.as_deref().is_some_and(within)
                    || self
                        .headers
                        .iter()
                        .any(|(_, h)| within(&String::from_utf8_lossy(h))))
        };
        ReplayRequest {
            base: self.base.as_str().to_string(),
            method: self.method.clone(),
            url: self.url(base_url),
            suffix: self.suffix.clone(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| ReplayHeader {
                    name: n.clone(),
                    value: String::from_utf8_lossy(v).into_owned(),
                    value_base64: std::str::from_utf8(v).is_err().then(|| STANDARD.encode(v)),
                })
                .collect(),
            body_base64: self.body.as_ref().map(|b| STANDARD.encode(b)),
            invalid: self.invalid.clone(),
            substitutions: substitutions
                .iter()
                .filter(|(_, v)| uses(v))
                .cloned()
                .collect(),
        }
    }

    /// Rebuilds a probe from its replay record, replacing each substitution's old value with
    /// the replay target's (`current`: name → value), in the suffix, header values and body.
    pub fn from_replay(r: &ReplayRequest, current: &[(String, String)]) -> Result<Probe, String> {
        let base = Base::parse(&r.base).ok_or_else(|| format!("unknown base {:?}", r.base))?;
        let swaps: Vec<(&str, &str)> = r
            .substitutions
            .iter()
            .filter_map(|(name, old)| {
                current
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, new)| (old.as_str(), new.as_str()))
            })
            .filter(|(old, new)| !old.is_empty() && old != new)
            .collect();
        let swap_bytes = |b: Vec<u8>| -> Vec<u8> {
            let mut out = b;
            for (old, new) in &swaps {
                out = replace_bytes(&out, old.as_bytes(), new.as_bytes());
                // Form-encoded copies too (a redirect URI inside a form body).
                let (eo, en) = (form_encode(old.as_bytes()), form_encode(new.as_bytes()));
                out = replace_bytes(&out, eo.as_bytes(), en.as_bytes());
            }
            out
        };
        let mut headers = Vec::new();
        for h in &r.headers {
            let v = match &h.value_base64 {
                Some(b) => STANDARD
                    .decode(b)
                    .map_err(|e| format!("header {}: {e}", h.name))?,
                None => h.value.as_bytes().to_vec(),
            };
            headers.push((h.name.clone(), swap_bytes(v)));
        }
        let body = match &r.body_base64 {
            Some(b) => Some(swap_bytes(
                STANDARD.decode(b).map_err(|e| format!("body: {e}"))?,
            )),
            None => None,
        };
        let suffix = String::from_utf8(swap_bytes(r.suffix.as_bytes().to_vec()))
            .map_err(|e| format!("suffix: {e}"))?;
        Ok(Probe {
            base,
            method: r.method.clone(),
            suffix,
            headers,
            body,
            invalid: r.invalid.clone(),
        })
    }

    /// A bash command sending exactly this request: no URL normalisation (`--path-as-is`,
    /// `-g`), headers and body byte for byte (a body that a shell argument cannot carry goes
    /// through base64).
    pub fn curl(&self, base_url: &str, insecure: bool) -> String {
        let mut c = String::from("curl -sS -i --path-as-is -g");
        if insecure {
            c.push_str(" -k");
        }
        if self.method != "GET" || self.body.is_some() {
            c.push_str(" -X ");
            c.push_str(&shell_quote(self.method.as_bytes()));
        }
        // curl adds Content-Type/Accept/User-Agent of its own unless told not to.
        let named = |n: &str| self.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n));
        for default in ["Content-Type", "Accept", "User-Agent"] {
            if !named(default) {
                c.push_str(&format!(" -H '{default}:'"));
            }
        }
        for (n, v) in &self.headers {
            let mut h = n.as_bytes().to_vec();
            h.extend_from_slice(b": ");
            h.extend_from_slice(v);
            if v.is_empty() {
                // `-H 'Name;'` is curl's way of sending an empty header.
                h = format!("{n};").into_bytes();
            }
            c.push_str(" -H ");
            c.push_str(&shell_quote(&h));
        }
        let url = shell_quote(self.url(base_url).as_bytes());
        match &self.body {
            Some(b) if b.contains(&0) => {
                return format!(
                    "printf %s {} | base64 -d | {c} --data-binary @- {url}",
                    STANDARD.encode(b)
                );
            }
            Some(b) => {
                c.push_str(" --data-binary ");
                c.push_str(&shell_quote(b));
            }
            None => {}
        }
        c.push(' ');
        c.push_str(&url);
        c
    }
}

fn join(base: &str, suffix: &str) -> String {
    if let Some(q) = suffix.strip_prefix('?')
        && base.contains('?')
    {
        return format!("{base}&{q}");
    }
    format!("{base}{suffix}")
}

pub(crate) fn form_encode(b: &[u8]) -> String {
    url::form_urlencoded::byte_serialize(b).collect()
}

fn replace_bytes(hay: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    if old.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        let mut p = Probe::new(Base::Token, "POST");
        p.headers.push((
            "Content-Type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ));
        p.headers.push(("X-Odd".into(), vec![b'a', 0xff, b'\'']));
        p.body = Some(
            b"grant_type=x&client_id=abc123&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb".to_vec(),
        );
        p
    }

    #[test]
    fn replay_round_trips_and_substitutes_target_values() {
        let p = probe();
        let subs = vec![
            ("client_id".to_string(), "abc123".to_string()),
            (
                "redirect_uri".to_string(),
                "http://127.0.0.1:9/cb".to_string(),
            ),
            ("unused".to_string(), "zzz".to_string()),
        ];
        let r = p.to_replay("https://as.test/token", &subs);
        assert_eq!(r.url, "https://as.test/token");
        assert_eq!(r.substitutions.len(), 2, "only values the request contains");
        assert!(r.headers[1].value_base64.is_some());
        let same = Probe::from_replay(&r, &subs).unwrap();
        assert_eq!(same, p);
        let moved = Probe::from_replay(
            &r,
            &[
                ("client_id".into(), "new-id".into()),
                ("redirect_uri".into(), "http://127.0.0.1:7/cb".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            moved.body.unwrap(),
            b"grant_type=x&client_id=new-id&redirect_uri=http%3A%2F%2F127.0.0.1%3A7%2Fcb"
        );
    }

    #[test]
    fn curl_carries_exact_bytes() {
        let p = probe();
        let c = p.curl("https://as.test/token", false);
        assert!(c.contains(r"-H $'X-Odd: a\xff\''"), "{c}");
        assert!(c.contains("--data-binary 'grant_type=x"), "{c}");
        assert!(c.ends_with(" 'https://as.test/token'"), "{c}");
        let mut nul = Probe::new(Base::Token, "POST");
        nul.body = Some(vec![b'a', 0, b'b']);
        let c = nul.curl("https://as.test/token", true);
        assert!(c.starts_with("printf %s YQBi | base64 -d | curl"), "{c}");
        assert!(c.contains(" -k "), "{c}");
    }

    #[test]
    fn suffix_joins_an_existing_query() {
        let mut p = Probe::new(Base::Authorize, "GET");
        p.suffix = "?a=1".into();
        assert_eq!(
            p.url("https://as.test/authorize?tenant=x"),
            "https://as.test/authorize?tenant=x&a=1"
        );
        assert_eq!(
            p.url("https://as.test/authorize"),
            "https://as.test/authorize?a=1"
        );
    }
}
