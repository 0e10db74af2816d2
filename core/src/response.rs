//! A response as the HTTP client records it, and the URL rule the https judgements share. The
//! client itself (`authconform::http`) stays in the main crate; it re-exports both.

/// A response, with the body already read up to the cap.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased; values lossily decoded (invalid UTF-8 becomes U+FFFD).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Media type without parameters, lowercased (`application/json; charset=utf-8` → `application/json`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
    /// For a 429 answer, `429` plus the `Retry-After` the server gave: a rate limit says
    /// nothing about any requirement, so callers turn it into "could not tell".
    pub fn rate_limited(&self) -> Option<String> {
        (self.status == 429).then(|| match self.header("retry-after") {
            Some(v) => format!("429, Retry-After: {v}"),
            None => "429".into(),
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON, if it is JSON (whatever the content type says).
    pub fn json(&self) -> Option<serde_json::Value> {
        if self.truncated {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

/// Is this URL's host a loopback address (`127.0.0.0/8`, `::1`, `localhost`)? Plain http is
/// tolerated (as a warning) only for such targets.
pub fn is_loopback_url(u: &str) -> bool {
    match url::Url::parse(u) {
        Ok(u) => match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        Err(_) => false,
    }
}
