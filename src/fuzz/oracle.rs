//! The oracles: named rules every answer to a generated request must satisfy, each tied to the
//! requirement it serves (`../shared/requirements.md`). A rule judges one request and its
//! answer; it knows what the generator knew (`Probe::invalid`) and nothing about how the server
//! is built.

use std::time::Duration;

use crate::http::{HttpError, Response};

use super::probe::{Base, Probe};
use super::strategy::MARKER;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Every request gets an HTTP answer, and not a 5xx.
    No5xx,
    /// Errors have the shape their RFC gives them.
    ErrorShape,
    /// Nothing is issued (token, client, code, redirect, served resource) for an invalid request.
    NothingIssued,
    /// No request input comes back unescaped in an HTML page.
    NoReflection,
    /// No answer is slower than the bound.
    Latency,
    /// The server still answers a known-good request the way it did before the campaign.
    StillAnswers,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::No5xx,
        Rule::ErrorShape,
        Rule::NothingIssued,
        Rule::NoReflection,
        Rule::Latency,
        Rule::StillAnswers,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::No5xx => "no-5xx",
            Rule::ErrorShape => "error-shape",
            Rule::NothingIssued => "nothing-issued",
            Rule::NoReflection => "no-reflection",
            Rule::Latency => "latency",
            Rule::StillAnswers => "still-answers",
        }
    }
    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
    pub fn describe(self) -> &'static str {
        match self {
            Rule::No5xx => "every request is answered, never with a 5xx",
            Rule::ErrorShape => "errors have their RFC shape",
            Rule::NothingIssued => "nothing is issued for an invalid request",
            Rule::NoReflection => "no input is reflected unescaped into an HTML page",
            Rule::Latency => "no answer is slower than the bound",
            Rule::StillAnswers => "a known-good request is answered as before the campaign",
        }
    }

    /// Does this rule judge requests to `base`?
    pub fn applies(self, base: Base) -> bool {
        match self {
            Rule::ErrorShape => matches!(
                base,
                Base::Token | Base::Register | Base::Authorize | Base::Resource
            ),
            Rule::NothingIssued => !matches!(base, Base::AsMetadata | Base::Prm),
            _ => true,
        }
    }

    /// The requirement a violation at `base` breaks. Rules with no requirement of their own
    /// belong to the endpoint's robustness requirement.
    pub fn requirement(self, base: Base) -> &'static str {
        match (base, self) {
            (Base::Token, Rule::ErrorShape) => "tok-error-format",
            (Base::Token, _) => "tok-fuzz",
            (Base::Register, Rule::ErrorShape | Rule::NothingIssued) => "dcr-invalid-metadata",
            (Base::Register, _) => "dcr-size-fuzz",
            (Base::Authorize, Rule::NothingIssued) => "code-open-redirector",
            (Base::Authorize, _) => "code-error-response-format",
            (Base::AsMetadata, _) => "asm-fuzz",
            (Base::Prm, _) => "prm-fuzz-paths",
            (Base::Resource, Rule::ErrorShape | Rule::NothingIssued) => "rs-401-invalid-token",
            (Base::Resource, _) => "rs-400-malformed-auth",
        }
    }

    /// The result id of this rule at `base`: `<requirement>.<rule>`.
    pub fn result_id(self, base: Base) -> String {
        format!("{}.{}", self.requirement(base), self.as_str())
    }
}

/// What the judge needs besides the request and its answer.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub slow: Duration,
    /// The authorization server's origin (`https://as.example`): redirects there (to a login
    /// page) are not redirects to a client.
    pub as_origins: Vec<String>,
    /// Redirect URIs registered for the test client: an error may be redirected there.
    pub registered_redirects: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

/// RFC 6749 5.2, 4.1.2.1 and the IANA OAuth Extensions Error registry: codes an OAuth error
/// response may carry.
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "unsupported_response_type",
    "server_error",
    "temporarily_unavailable",
    "invalid_target",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "login_required",
    "consent_required",
    "interaction_required",
    "account_selection_required",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "unsupported_token_type",
    "invalid_authorization_details",
    "insufficient_user_authentication",
    "invalid_token",
];

/// RFC 7591 3.2.2.
const REGISTRATION_ERRORS: &[&str] = &[
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_software_statement",
    "unapproved_software_statement",
];

/// RFC 6750 3.1.
const BEARER_ERRORS: &[&str] = &["invalid_request", "invalid_token", "insufficient_scope"];

/// `error` = 1*( %x20-21 / %x23-5B / %x5D-7E ) (RFC 6749 5.2).
fn error_charset_ok(e: &str) -> bool {
    !e.is_empty()
        && e.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

fn excerpt(r: &Response) -> String {
    let t = r.text();
    let mut cut: String = t.chars().take(160).collect();
    if cut.len() < t.len() {
        cut.push('…');
    }
    cut
}

/// Judges one answer. `answer` is `None` when the HTTP client could not build the request
/// (not the server's fault, not judged).
pub fn judge(
    probe: &Probe,
    answer: &Result<Response, HttpError>,
    elapsed: Duration,
    bounds: &Bounds,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |rule: Rule, detail: String| out.push(Violation { rule, detail });
    if elapsed > bounds.slow {
        v(
            Rule::Latency,
            format!(
                "answered after {} ms (bound {} ms)",
                elapsed.as_millis(),
                bounds.slow.as_millis()
            ),
        );
    }
    let r = match answer {
        Ok(r) => r,
        Err(HttpError::Timeout(d)) => {
            v(Rule::Latency, format!("no answer within {} s", d.as_secs()));
            return out;
        }
        Err(
            HttpError::BadUrl { .. }
            | HttpError::BadRequest(_)
            | HttpError::Refused(_)
            | HttpError::TargetDown(_),
        ) => {
            return out;
        }
        Err(HttpError::Transport(e)) => {
            v(Rule::No5xx, format!("no HTTP answer: {e}"));
            return out;
        }
    };
    if r.status >= 500 {
        v(
            Rule::No5xx,
            format!("answered {} ({})", r.status, excerpt(r)),
        );
    }
    // A HEAD answer has no body (RFC 9110 9.3.2): only its status is judged.
    if probe.method == "HEAD" {
        return out;
    }
    if html_reflects(r) {
        v(
            Rule::NoReflection,
            format!(
                "the {} HTML answer contains {MARKER} verbatim: request input reached the page unescaped",
                r.status
            ),
        );
    }
    match probe.base {
        Base::Token => token_rules(probe, r, &mut v),
        Base::Register => register_rules(probe, r, &mut v),
        Base::Authorize => authorize_rules(probe, r, bounds, &mut v),
        Base::Resource => resource_rules(probe, r, &mut v),
        Base::AsMetadata | Base::Prm => {}
    }
    out
}

fn html_reflects(r: &Response) -> bool {
    let html = match r.media_type() {
        Some(m) => m == "text/html" || m == "application/xhtml+xml",
        // No type: a browser sniffs, and markup sniffs as HTML.
        None => true,
    };
    html && r.body.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
}

/// The JSON error object of an answer, or why there is none.
fn json_error(r: &Response, known: &[&[&str]]) -> Result<(), String> {
    if r.media_type().as_deref() != Some("application/json") {
        return Err(format!(
            "{} with Content-Type {:?}, not application/json",
            r.status,
            r.header("content-type").unwrap_or("(none)")
        ));
    }
    let Some(body) = r.json() else {
        return Err(format!(
            "{} with a body that is not JSON: {}",
            r.status,
            excerpt(r)
        ));
    };
    let Some(e) = body.get("error").and_then(|e| e.as_str()) else {
        return Err(format!(
            "{} JSON without a string \"error\": {}",
            r.status,
            excerpt(r)
        ));
    };
    if !error_charset_ok(e) {
        return Err(format!("error {e:?} has characters RFC 6749 5.2 forbids"));
    }
    if !known.iter().any(|set| set.contains(&e)) {
        return Err(format!("error {e:?} is no registered OAuth error code"));
    }
    Ok(())
}

/// A CORS preflight (`OPTIONS`) answered 2xx issues nothing: only other methods are judged.
fn issuing(probe: &Probe) -> bool {
    probe.method != "OPTIONS"
}

fn token_rules(probe: &Probe, r: &Response, v: &mut impl FnMut(Rule, String)) {
    if (200..300).contains(&r.status)
        && issuing(probe)
        && let Some(why) = &probe.invalid
    {
        let issued = r
            .json()
            .and_then(|j| j.get("access_token").map(|_| ()))
            .is_some();
        v(
            Rule::NothingIssued,
            format!(
                "answered {}{} to a request that cannot be valid ({why})",
                r.status,
                if issued { " with an access_token" } else { "" }
            ),
        );
    }
    if matches!(r.status, 400 | 401)
        && let Err(e) = json_error(r, &[OAUTH_ERRORS])
    {
        v(Rule::ErrorShape, format!("token error {e} (O21 3.2.4)"));
    }
}

fn register_rules(probe: &Probe, r: &Response, v: &mut impl FnMut(Rule, String)) {
    if (200..300).contains(&r.status)
        && issuing(probe)
        && let Some(why) = &probe.invalid
    {
        v(
            Rule::NothingIssued,
            format!("registered a client ({}) although {why}", r.status),
        );
    }
    if r.status == 400
        && let Err(e) = json_error(r, &[REGISTRATION_ERRORS, OAUTH_ERRORS])
    {
        v(
            Rule::ErrorShape,
            format!("registration error {e} (RFC 7591 3.2.2)"),
        );
    }
}

/// The `redirect_uri` values a probe sent (query and form body), decoded.
fn sent_redirects(probe: &Probe) -> Vec<String> {
    let mut out = Vec::new();
    let query = probe.suffix.split_once('?').map_or("", |(_, q)| q);
    let body = probe.body.as_deref().unwrap_or_default();
    for raw in [query.as_bytes(), body] {
        for (k, v) in url::form_urlencoded::parse(raw) {
            if k == "redirect_uri" {
                out.push(v.into_owned());
            }
        }
    }
    out
}

/// Does `target` (a redirect without query) match a registered redirect URI? Exactly, or for a
/// loopback IP literal with any port (RFC 8252 7.3, O21 8.4.2).
fn registered(target: &str, registered: &[String]) -> bool {
    registered.iter().any(|r| {
        if r == target {
            return true;
        }
        let (Ok(a), Ok(b)) = (url::Url::parse(r), url::Url::parse(target)) else {
            return false;
        };
        let loopback = matches!(a.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(a.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
        loopback
            && a.scheme() == b.scheme()
            && a.host() == b.host()
            && a.path() == b.path()
            && b.username().is_empty()
    })
}

fn authorize_rules(probe: &Probe, r: &Response, bounds: &Bounds, v: &mut impl FnMut(Rule, String)) {
    if !(300..400).contains(&r.status) {
        return;
    }
    let Some(loc) = r.header("location") else {
        return;
    };
    // A scheme-relative `//host/path` is resolved with either scheme (the AS's is one of them);
    // any other relative reference stays on the AS.
    let candidates: Vec<String> = match loc.strip_prefix("//") {
        Some(rest) => vec![format!("https://{rest}"), format!("http://{rest}")],
        None => vec![loc.to_string()],
    };
    let parsed: Vec<url::Url> = candidates
        .iter()
        .filter_map(|c| url::Url::parse(c).ok())
        .collect();
    let Some(u) = parsed.first() else {
        return;
    };
    if parsed
        .iter()
        .any(|u| bounds.as_origins.contains(&crate::discovery::origin(u)))
    {
        return;
    }
    let absolute = u.as_str();
    let target = absolute.split(['?', '#']).next().unwrap_or(absolute);
    let params: Vec<(String, String)> = u
        .query_pairs()
        .chain(
            u.fragment()
                .map(|f| url::form_urlencoded::parse(f.as_bytes()).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A redirect elsewhere is judged only when it is an authorization response: it goes to a
    // redirect URI the request named, or carries code/error/state. (A hop to an upstream
    // identity provider's login is neither.)
    let to_client = sent_redirects(probe).iter().any(|s| {
        let s = s.split(['?', '#']).next().unwrap_or(s);
        s == target || registered(target, &[s.to_string()])
    }) || ["code", "error", "state", "access_token"]
        .iter()
        .any(|k| get(k).is_some());
    if !registered(target, &bounds.registered_redirects) {
        if to_client {
            v(
                Rule::NothingIssued,
                format!(
                    "redirected to {target:?}, which is not a redirect URI registered for the test client (O21 7.12.2)"
                ),
            );
        }
    } else if get("code").is_some() || get("access_token").is_some() {
        v(
            Rule::NothingIssued,
            "redirected with a code or token although no user logged in".into(),
        );
    } else {
        match get("error") {
            Some(e) if !OAUTH_ERRORS.contains(&e) || !error_charset_ok(e) => v(
                Rule::ErrorShape,
                format!(
                    "error redirect carries error={e:?}, no registered OAuth error code (O21 4.1.2.1)"
                ),
            ),
            None => v(
                Rule::ErrorShape,
                "redirected to the client with neither code nor error (O21 4.1.2.1)".into(),
            ),
            _ => {}
        }
    }
}

fn resource_rules(probe: &Probe, r: &Response, v: &mut impl FnMut(Rule, String)) {
    if (200..300).contains(&r.status)
        && issuing(probe)
        && let Some(why) = &probe.invalid
    {
        v(
            Rule::NothingIssued,
            format!(
                "served the request ({}) although it carried {why}",
                r.status
            ),
        );
    }
    if r.status == 401 {
        let challenges: Vec<String> = r
            .header_all("www-authenticate")
            .map(str::to_string)
            .collect();
        let parsed: Vec<crate::www_authenticate::Challenge> = challenges
            .iter()
            .filter_map(|h| crate::www_authenticate::parse(h).ok())
            .flatten()
            .collect();
        match parsed.iter().find(|c| c.is_scheme("bearer")) {
            None => v(
                Rule::ErrorShape,
                format!(
                    "401 without a Bearer challenge (RFC 6750 3); WWW-Authenticate: {:?}",
                    challenges
                ),
            ),
            Some(c) => {
                if let Some(e) = c.param("error")
                    && !BEARER_ERRORS.contains(&e)
                {
                    v(
                        Rule::ErrorShape,
                        format!("Bearer challenge error={e:?} is none of RFC 6750 3.1's codes"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response, HttpError> {
        Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        })
    }
    fn bounds() -> Bounds {
        Bounds {
            slow: Duration::from_secs(5),
            as_origins: vec!["https://as.test".into()],
            registered_redirects: vec!["http://127.0.0.1:9/cb".into()],
        }
    }
    fn rules(p: &Probe, a: Result<Response, HttpError>) -> Vec<Rule> {
        judge(p, &a, Duration::from_millis(5), &bounds())
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }
    fn token_probe() -> Probe {
        let mut p = Probe::new(Base::Token, "POST");
        p.invalid = Some("made up".into());
        p
    }

    #[test]
    fn token_answers() {
        let p = token_probe();
        let json = [("content-type", "application/json")];
        assert!(rules(&p, resp(400, &json, r#"{"error":"invalid_grant"}"#)).is_empty());
        assert_eq!(
            rules(&p, resp(400, &json, r#"{"error":"nope"}"#)),
            [Rule::ErrorShape]
        );
        assert_eq!(
            rules(
                &p,
                resp(400, &[("content-type", "text/html")], "<h1>x</h1>")
            ),
            [Rule::ErrorShape]
        );
        assert_eq!(
            rules(&p, resp(500, &json, r#"{"error":"server_error"}"#)),
            [Rule::No5xx]
        );
        assert_eq!(
            rules(&p, resp(200, &json, r#"{"access_token":"x"}"#)),
            [Rule::NothingIssued]
        );
        // Other 4xx (405, 413, 415, 429) are not judged for shape.
        assert!(rules(&p, resp(413, &[], "too big")).is_empty());
        assert_eq!(
            rules(&p, Err(HttpError::Transport("reset".into()))),
            [Rule::No5xx]
        );
        assert_eq!(
            rules(&p, Err(HttpError::Timeout(Duration::from_secs(15)))),
            [Rule::Latency]
        );
        assert!(rules(&p, Err(HttpError::BadRequest("header".into()))).is_empty());
    }

    #[test]
    fn reflection_needs_html_and_the_raw_marker() {
        let p = Probe::new(Base::AsMetadata, "GET");
        let html = [("content-type", "text/html; charset=utf-8")];
        assert_eq!(
            rules(&p, resp(404, &html, "no <acprobe> here")),
            [Rule::NoReflection]
        );
        assert!(rules(&p, resp(404, &html, "no &lt;acprobe&gt; here")).is_empty());
        assert!(
            rules(
                &p,
                resp(
                    404,
                    &[("content-type", "application/json")],
                    "\"<acprobe>\""
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn authorize_redirects() {
        let p = Probe::new(Base::Authorize, "GET");
        let loc = |l: &str| resp(302, &[("location", l)], "");
        assert!(rules(&p, loc("/login?x=1")).is_empty());
        assert!(rules(&p, loc("https://as.test/login")).is_empty());
        assert!(rules(&p, loc("//as.test/login")).is_empty());
        assert!(
            rules(
                &p,
                loc("http://127.0.0.1:9/cb?error=invalid_request&state=x")
            )
            .is_empty()
        );
        // Loopback redirect URIs match on any port (RFC 8252 7.3).
        assert!(rules(&p, loc("http://127.0.0.1:1/cb?error=invalid_request")).is_empty());
        assert_eq!(
            rules(&p, loc("https://evil.test/cb?error=invalid_request")),
            [Rule::NothingIssued]
        );
        // A hop to an upstream login is no authorization response...
        assert!(rules(&p, loc("https://idp.test/login?x=1")).is_empty());
        // ...but a redirect to the redirect_uri the request named is, scheme-relative too.
        let mut named = Probe::new(Base::Authorize, "GET");
        named.suffix = "?redirect_uri=https%3A%2F%2Fevil.test%2Fcb".into();
        assert_eq!(
            rules(&named, loc("https://evil.test/cb")),
            [Rule::NothingIssued]
        );
        assert_eq!(rules(&named, loc("//evil.test/cb")), [Rule::NothingIssued]);
        assert_eq!(
            rules(&p, loc("http://127.0.0.1:9/cb?code=abc")),
            [Rule::NothingIssued]
        );
        assert_eq!(
            rules(&p, loc("http://127.0.0.1:9/cb?error=bogus")),
            [Rule::ErrorShape]
        );
    }

    #[test]
    fn resource_answers() {
        let mut p = Probe::new(Base::Resource, "POST");
        p.invalid = Some("garbage".into());
        assert!(
            rules(
                &p,
                resp(
                    401,
                    &[("www-authenticate", r#"Bearer error="invalid_token""#)],
                    ""
                )
            )
            .is_empty()
        );
        assert_eq!(rules(&p, resp(401, &[], "")), [Rule::ErrorShape]);
        assert_eq!(
            rules(
                &p,
                resp(401, &[("www-authenticate", r#"Bearer error="bad""#)], "")
            ),
            [Rule::ErrorShape]
        );
        assert_eq!(rules(&p, resp(200, &[], "{}")), [Rule::NothingIssued]);
        assert!(rules(&p, resp(400, &[], "")).is_empty());
    }

    #[test]
    fn every_result_id_names_a_shipped_case() {
        let cases = crate::case::load_builtin(crate::checks::NAMES).unwrap();
        for b in Base::ALL {
            for r in Rule::ALL {
                let req = r.requirement(b);
                assert!(
                    crate::fuzz::results::requirement_case(&cases, req).is_some(),
                    "{req} has no case"
                );
            }
        }
    }
}
