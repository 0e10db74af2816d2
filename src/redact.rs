//! Secret redaction, applied when an exchange is recorded, so no report (and no reporter bug) can
//! ever leak a token: the unredacted bytes never reach a [`crate::record::Exchange`].
//!
//! Two rules work together. Structural: values of headers and parameters that carry credentials
//! by definition (`Authorization`, `Cookie`, `access_token`, `client_secret`, ...). Known values:
//! every secret the harness learns during a run (a token it was issued, a configured password) is
//! registered and masked wherever it appears, including inside HTML or error descriptions.

use std::sync::{Arc, RwLock};

/// Header names whose whole value (after the auth scheme, for `Authorization`) is a secret.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "dpop",
];

/// JSON members, form fields and query parameters whose values are secrets.
pub const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "password",
    "registration_access_token",
    "token",
    "assertion",
    "subject_token",
    "actor_token",
    "device_code",
];

/// The mask written in place of a secret. The length is kept: it is evidence (an empty token and
/// a 64 KiB token are different findings) and reveals nothing usable.
pub fn mask(secret: &str) -> String {
    format!("[redacted {} bytes]", secret.len())
}

/// Shared, run-wide list of secret values seen so far.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    known: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value; values shorter than 6 bytes are ignored, since masking every
    /// occurrence of a short string would destroy unrelated evidence.
    pub fn add_secret(&self, value: &str) {
        if value.len() < 6 {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if !known.iter().any(|k| k == value) {
            known.push(value.to_string());
            // Longest first, so a secret containing another is masked whole.
            known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        }
    }

    /// Masks every known secret inside free text.
    pub fn text(&self, s: &str) -> String {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let mut out = s.to_string();
        for k in known.iter() {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), &mask(k));
            }
        }
        out
    }

    /// Redacts one header value. `reveal_auth` keeps an `Authorization` credential that the
    /// harness invented itself (a garbage probe token is evidence, not a secret).
    pub fn header(&self, name: &str, value: &str, reveal_auth: bool) -> String {
        let lname = name.to_ascii_lowercase();
        if lname == "location" || lname == "content-location" || lname == "refresh" {
            return self.url(value);
        }
        if !SECRET_HEADERS.contains(&lname.as_str()) {
            return self.text(value);
        }
        if lname == "authorization" || lname == "proxy-authorization" {
            if reveal_auth {
                return self.text(value);
            }
            // Keep the scheme: it is what many checks are about.
            return match value.split_once(' ') {
                Some((scheme, cred)) => format!("{scheme} {}", mask(cred)),
                None => mask(value),
            };
        }
        if lname == "set-cookie" {
            // Keep the cookie name and attributes (Path, Domain...), mask the value.
            let (pair, attrs) = value.split_once(';').unwrap_or((value, ""));
            let name = pair.split_once('=').map(|(n, _)| n).unwrap_or(pair);
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(";{attrs}")
            };
            return format!("{name}=[redacted]{attrs}");
        }
        if lname == "cookie" {
            return value
                .split(';')
                .map(|p| match p.split_once('=') {
                    Some((n, _)) => format!("{}=[redacted]", n.trim()),
                    None => p.trim().to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ");
        }
        mask(value)
    }

    /// Redacts a body: JSON members and form fields named in [`SECRET_FIELDS`], then known values.
    pub fn body(&self, body: &str) -> String {
        let trimmed = body.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body)
        {
            redact_json(&mut v);
            let s = serde_json::to_string_pretty(&v).unwrap_or_default();
            return self.text(&s);
        }
        if looks_like_form(body) {
            return self.text(&redact_pairs(body));
        }
        self.text(body)
    }

    /// Learns the secret parameter values a URL carries (an authorization response's `code`
    /// in a `Location`), so they are masked wherever else they show up: a redirect page's body
    /// often repeats the URL.
    pub fn learn_from_url(&self, url: &str) {
        for part in url.split(['?', '#']).skip(1) {
            for pair in part.split('&') {
                if let Some((k, v)) = pair.split_once('=')
                    && is_secret_field(k)
                    && !v.is_empty()
                {
                    self.add_secret(v);
                    let decoded: String = url::form_urlencoded::parse(pair.as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    if !decoded.is_empty() && decoded != v {
                        self.add_secret(&decoded);
                    }
                }
            }
        }
    }

    /// Redacts a URL's query parameters named in [`SECRET_FIELDS`] (authorization responses carry
    /// `code`), then known values. Works on the raw string: no URL type touches it.
    pub fn url(&self, url: &str) -> String {
        let (head, frag) = match url.split_once('#') {
            Some((h, f)) => (h, Some(f)),
            None => (url, None),
        };
        let out = match head.split_once('?') {
            Some((base, q)) => format!("{base}?{}", redact_pairs(q)),
            None => head.to_string(),
        };
        let out = match frag {
            Some(f) => format!("{out}#{}", redact_pairs(f)),
            None => out,
        };
        self.text(&out)
    }
}

fn looks_like_form(body: &str) -> bool {
    !body.is_empty()
        && body.len() < 1 << 20
        && body.contains('=')
        && !body.contains(char::is_whitespace)
        && !body.starts_with('<')
}

fn redact_pairs(s: &str) -> String {
    s.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if is_secret_field(k) && !v.is_empty() => {
                format!("{k}={}", mask(v))
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_field(name: &str) -> bool {
    SECRET_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_field(k) {
                    if let serde_json::Value::String(s) = val {
                        *s = mask(s);
                    }
                } else if k == "keys" {
                    // A JWK Set: private members are secrets even when a faulty AS publishes them;
                    // record that they were present, not their value.
                    redact_jwks(val);
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_jwks(keys: &mut serde_json::Value) {
    const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "k", "oth"];
    if let serde_json::Value::Array(items) = keys {
        for key in items {
            if let serde_json::Value::Object(m) = key {
                for p in PRIVATE {
                    if let Some(serde_json::Value::String(s)) = m.get_mut(*p) {
                        *s = mask(s);
                    }
                }
            }
        }
    } else {
        redact_json(keys);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_code_in_a_location_is_masked_there_and_everywhere_after() {
        let r = Redactor::new();
        let loc = "https://client.test/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz";
        r.learn_from_url(loc);
        let h = r.header("Location", loc, false);
        assert!(!h.contains("SplxlOBeZQQYbYS6WxSbIA"), "{h}");
        assert!(h.contains("state=xyz"), "{h}");
        let body = r.body("Redirecting to https://client.test/cb?code=SplxlOBeZQQYbYS6WxSbIA.");
        assert!(!body.contains("SplxlOBeZQQYbYS6WxSbIA"), "{body}");
    }
    use super::*;

    #[test]
    fn authorization_keeps_scheme_masks_credential() {
        let r = Redactor::new();
        assert_eq!(
            r.header("Authorization", "Bearer abc.def.ghi", false),
            "Bearer [redacted 11 bytes]"
        );
        assert_eq!(
            r.header("authorization", "Bearer garbage", true),
            "Bearer garbage"
        );
    }

    #[test]
    fn known_secret_masked_everywhere() {
        let r = Redactor::new();
        r.add_secret("s3cr3t-token-value");
        assert_eq!(
            r.text("<p>your token s3cr3t-token-value</p>"),
            "<p>your token [redacted 18 bytes]</p>"
        );
        assert!(
            r.header("Authorization", "Bearer s3cr3t-token-value", true)
                .contains("redacted")
        );
    }

    #[test]
    fn json_and_form_and_url() {
        let r = Redactor::new();
        let b = r.body(r#"{"access_token":"xyzxyzxyz","token_type":"Bearer","nested":{"refresh_token":"rrrrrr"}}"#);
        assert!(!b.contains("xyzxyzxyz") && !b.contains("rrrrrr") && b.contains("Bearer"));
        let f = r.body("grant_type=authorization_code&code=abcdef&code_verifier=vvvvvvv");
        assert_eq!(
            f,
            "grant_type=authorization_code&code=[redacted 6 bytes]&code_verifier=[redacted 7 bytes]"
        );
        let u = r.url("https://client.test/cb?code=SplxlOBe&state=xyz#access_token=aaa");
        assert_eq!(
            u,
            "https://client.test/cb?code=[redacted 8 bytes]&state=xyz#access_token=[redacted 3 bytes]"
        );
    }

    #[test]
    fn cookies_and_jwks() {
        let r = Redactor::new();
        assert_eq!(
            r.header(
                "Set-Cookie",
                "_session=abc123; Path=/interaction/x; HttpOnly",
                false
            ),
            "_session=[redacted]; Path=/interaction/x; HttpOnly"
        );
        assert_eq!(
            r.header("Cookie", "a=1; b=2", false),
            "a=[redacted]; b=[redacted]"
        );
        let j = r.body(r#"{"keys":[{"kty":"RSA","n":"nnn","e":"AQAB","d":"PRIVATE"}]}"#);
        assert!(!j.contains("PRIVATE") && j.contains("nnn"));
    }
}
