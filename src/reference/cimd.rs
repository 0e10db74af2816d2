//! Client ID Metadata Documents, the AS side (draft-ietf-oauth-client-id-metadata-document-00;
//! MCP 2025-11-25 §5.1): a `client_id` that is an https URL names a JSON document the server
//! fetches, validates and caches; the client is then what the document says.
//!
//! Written against the draft's text, sharing nothing with authconform's checks: the URL rules
//! of §3 on the raw string, the fetch of §4 (no redirects, 200 only, bounded size and time, no
//! special-use addresses: §6.5 and MCP §11.6.1), the document rules of §4.1 (exact `client_id`,
//! no shared secrets), HTTP caching of §4.4 without caching failures.
//!
//! Development mode: the server refuses every special-use address (loopback included) except
//! the `HOST:PORT`s it is given, authconform's document host. A name is resolved once, and the
//! address that passed the check is the one connected to (no second lookup a rebinding DNS
//! server could answer differently); the resolver is the system's or one the operator names.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Ref;

/// Documents larger than this are refused (CIMD-00 §6.6 recommends 5 KB).
const MAX_DOCUMENT: usize = 5 * 1024;
/// The whole fetch, headers and body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a document is cached, whatever its headers say.
const MAX_CACHE: Duration = Duration::from_secs(3600);

/// The reference's trust policy for document hosts (MCP 2025-11-25 §11.6.3, CIMD-00 §6.8), as
/// its operator would document it: it has none beyond the fetch rules.
pub const TRUST_POLICY: &str = "open: any client_id URL whose document passes the URL rules (CIMD-00 §3), the fetch rules and the special-use address rules (§6.5; in development mode the document host's loopback origin is allowed) is trusted; no domain allow-list";

/// Cached documents and (only under a fault) cached failures.
#[derive(Default)]
pub struct Cache {
    entries: std::collections::HashMap<String, (Result<Value, String>, Option<Instant>)>,
}

/// Does this client_id name a metadata document? (Anything else is a registered id.)
pub fn is_url(client_id: &str) -> bool {
    let l = client_id.get(..8).unwrap_or(client_id).to_ascii_lowercase();
    l.starts_with("https://") || l.starts_with("http://")
}

/// Resolves a URL client_id to its client metadata (as the rest of the server reads clients),
/// fetching the document unless a fresh copy is cached. `Err` is the reason it is refused.
pub async fn resolve(s: &Ref, client_id: &str) -> Result<Value, String> {
    if s.fault("cimd-fetch") {
        return Err("unknown client".into());
    }
    let key = if s.fault("cimd-no-normalisation") {
        normalised(client_id)
    } else {
        client_id.to_string()
    };
    if let Some(hit) = cached(s, &key) {
        return hit;
    }
    let r = fetch_and_validate(s, client_id).await;
    let mut cache = s.cimd_cache.lock().unwrap_or_else(|e| e.into_inner());
    match &r {
        Ok((doc, ttl))
            if (!ttl.is_zero() || s.fault("cimd-metadata-change"))
                && !s.fault("cimd-cache-headers") =>
        {
            let until = (!s.fault("cimd-metadata-change")).then(|| Instant::now() + *ttl);
            cache.entries.insert(key, (Ok(doc.clone()), until));
        }
        Err(e) if s.fault("cimd-no-cache-errors") => {
            cache.entries.insert(
                key,
                (
                    Err(e.clone()),
                    Some(Instant::now() + Duration::from_secs(300)),
                ),
            );
        }
        _ => {
            cache.entries.remove(&key);
        }
    }
    r.map(|(doc, _)| doc)
}

fn cached(s: &Ref, key: &str) -> Option<Result<Value, String>> {
    let cache = s.cimd_cache.lock().unwrap_or_else(|e| e.into_inner());
    let (v, until) = cache.entries.get(key)?;
    until.is_none_or(|u| Instant::now() < u).then(|| v.clone())
}

/// What the faulty server compares: scheme and host lowercased, default port dropped,
/// unreserved characters percent-decoded.
fn normalised(u: &str) -> String {
    let Ok(parsed) = url::Url::parse(u) else {
        return u.to_string();
    };
    let s = parsed.to_string();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3).unwrap_or("");
        match u8::from_str_radix(hex, 16) {
            Ok(b) if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            _ => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// CIMD-00 §3 on the raw string, then what to fetch.
fn fetch_url(s: &Ref, client_id: &str) -> Result<url::Url, String> {
    let lower = client_id.to_ascii_lowercase();
    let after = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if lower.starts_with("http://") && s.fault("cimd-url-https") {
        &lower["http://".len()..]
    } else {
        return Err("a client_id URL must use the https scheme".into());
    };
    let raw = &client_id[client_id.len() - after.len()..];
    let authority_end = raw.find(['/', '?', '#']).unwrap_or(raw.len());
    let authority = &raw[..authority_end];
    let rest = &raw[authority_end..];
    let mut u = url::Url::parse(client_id).map_err(|e| format!("not a URL: {e}"))?;
    if authority.contains('@') {
        if !s.fault("cimd-url-userinfo") {
            return Err("a client_id URL must not contain userinfo".into());
        }
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    if rest.contains('#') {
        if !s.fault("cimd-url-fragment") {
            return Err("a client_id URL must not contain a fragment".into());
        }
        u.set_fragment(None);
    }
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if (path.is_empty() || path == "/") && !s.fault("cimd-url-path") {
        return Err("a client_id URL must contain a path".into());
    }
    let dot = |seg: &str| {
        let d = seg.to_ascii_lowercase().replace("%2e", ".");
        d == "." || d == ".."
    };
    if path.split('/').any(dot) && !s.fault("cimd-url-dot-segments") {
        return Err("a client_id URL must not contain dot segments".into());
    }
    if s.fault("cimd-url-query") {
        u.set_query(None);
    }
    if s.fault("cimd-url-port") {
        let _ = u.set_port(None);
    }
    Ok(u)
}

/// RFC 6890 special-purpose ranges a server must not be made to connect to.
fn special_use(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                || v.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240
        }
        IpAddr::V6(v) => {
            if let Some(m) = v.to_ipv4_mapped() {
                return special_use(IpAddr::V4(m));
            }
            let seg = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
        }
    }
}

/// RFC 6761 6.2-6.4 and RFC 6762 (`.local`): names that never lead to a public document host.
/// Test names are resolved when an operator configured a resolver (RFC 6761 §6.2: they go to
/// the configured DNS server like any other name); through the system's resolver they would
/// only leak a query that can have no public answer.
fn special_use_name(s: &Ref, host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let resolvable_test = s.cimd_resolver.is_some();
    ["test", "invalid", "example", "local"]
        .iter()
        .filter(|tld| !(resolvable_test && **tld == "test"))
        .any(|tld| h == *tld || h.ends_with(&format!(".{tld}")))
}

/// Resolves `host` through the configured resolver (a DNS server the operator names) or the
/// system's, bounded like the fetch: a resolver that never answers must not hold the
/// authorization request (or the token request naming such a client) open. Nothing is cached
/// here: a caller that wants the checked address used must keep it.
async fn lookup(
    resolver: Option<SocketAddr>,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    use hickory_resolver::config::{
        LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    };
    let ask = async {
        match resolver {
            Some(ns) => {
                let mut cfg = ResolverConfig::new();
                cfg.add_name_server(NameServerConfig::new(
                    ns,
                    hickory_resolver::proto::xfer::Protocol::Udp,
                ));
                let mut b = hickory_resolver::Resolver::builder_with_config(
                    cfg,
                    hickory_resolver::name_server::TokioConnectionProvider::default(),
                );
                let o = b.options_mut();
                o.cache_size = 0;
                o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                o.use_hosts_file = ResolveHosts::Never;
                o.attempts = 1;
                o.timeout = FETCH_TIMEOUT;
                let ips = b.build().lookup_ip(host).await.map_err(|e| e.to_string())?;
                Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect())
            }
            None => tokio::net::lookup_host((host, port))
                .await
                .map(|a| a.collect())
                .map_err(|e| e.to_string()),
        }
    };
    tokio::time::timeout(FETCH_TIMEOUT, ask)
        .await
        .map_err(|_| format!("cannot resolve {host}: no answer within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))
}

/// The faulty server's resolver for its HTTP client: it looks the name up again at connect
/// time, after the check, so a rebinding DNS server chooses where it connects.
struct LookupAgain(Option<SocketAddr>);

impl reqwest::dns::Resolve for LookupAgain {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = lookup(resolver, &host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The address to connect to, checked: a name is resolved once and the checked address is
/// the one used (no second lookup a rebinding DNS could answer differently).
async fn checked_address(s: &Ref, u: &url::Url, nested: bool) -> Result<SocketAddr, String> {
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match u.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(d)) if special_use_name(s, d) => {
            return Err(format!(
                "{d} is a special-use domain name (RFC 6761): not resolved, not fetched"
            ));
        }
        Some(url::Host::Domain(d)) => lookup(s.cimd_resolver, d, port).await?,
        None => return Err("the URL has no host".into()),
    };
    // IPv4 first: loopback services (and the document host) commonly listen on 127.0.0.1 only.
    let first = *addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or("the host resolves to nothing")?;
    let lax = s.fault("cimd-ssrf-special-ip") || (nested && s.fault("cimd-ssrf-nested-urls"));
    for a in &addrs {
        let dev = s.cimd_dev_origins.iter().any(|o| *o == a.to_string());
        if special_use(a.ip()) && !dev && !lax {
            return Err(format!(
                "{} resolves to the special-use address {}: not fetched",
                u.host_str().unwrap_or(""),
                a.ip()
            ));
        }
    }
    Ok(first)
}

/// One bounded GET: no redirects (unless faulty), a time limit, a size limit.
async fn get(s: &Ref, u: &url::Url, nested: bool) -> Result<reqwest::Response, String> {
    let addr = checked_address(s, u, nested).await?;
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(if s.fault("cimd-no-redirect-follow") {
            reqwest::redirect::Policy::limited(3)
        } else {
            reqwest::redirect::Policy::none()
        })
        .timeout(if s.fault("cimd-fetch-timeout") {
            Duration::from_secs(120)
        } else {
            FETCH_TIMEOUT
        })
        .user_agent("authconform-reference");
    if s.fault("cimd-ssrf-dns-rebind") {
        // Checked by name only: the connection resolves the name a second time.
        b = b.dns_resolver(std::sync::Arc::new(LookupAgain(s.cimd_resolver)));
    } else if let Some(host) = u.domain() {
        b = b.resolve(host, addr);
    }
    if let Some(pem) = &s.cimd_trust_pem
        && let Ok(c) = reqwest::Certificate::from_pem(pem.as_bytes())
    {
        b = b.add_root_certificate(c);
    }
    let client = b.build().map_err(|e| e.to_string())?;
    client
        .get(u.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetch failed: {e}"))
}

async fn read_limited(mut r: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| format!("reading: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(format!("the document is larger than {limit} bytes"));
        }
    }
    Ok(body)
}

fn cache_time(r: &reqwest::Response) -> Duration {
    let cc = r
        .headers()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let directives: Vec<&str> = cc.split(',').map(str::trim).collect();
    if directives
        .iter()
        .any(|d| *d == "no-store" || *d == "no-cache")
    {
        return Duration::ZERO;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        .map(|n| Duration::from_secs(n).min(MAX_CACHE))
        .unwrap_or(Duration::ZERO)
}

fn parse(s: &Ref, body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let v: Value = if s.fault("cimd-invalid-json") {
        // The faulty server takes the first JSON value and ignores what follows.
        let mut it = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
        match it.next() {
            Some(Ok(Value::Array(a))) => a.into_iter().next().unwrap_or(Value::Null),
            Some(Ok(v)) => v,
            _ => return Err("the document is not JSON".into()),
        }
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the document is not JSON: {e}"))?
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err("the document is not a JSON object".into()),
    }
}

async fn fetch_and_validate(s: &Ref, client_id: &str) -> Result<(Value, Duration), String> {
    let u = fetch_url(s, client_id)?;
    let r = get(s, &u, false).await?;
    if r.status().as_u16() != 200 && !s.fault("cimd-status-non-200") {
        return Err(format!("the document URL answered {}", r.status().as_u16()));
    }
    let media = super::media_type(r.headers());
    // cimd-content-type: the faulty server compares the raw header, so a parameter such as
    // `; charset=utf-8` makes application/json unacceptable.
    let raw = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_type = if s.fault("cimd-content-type") {
        raw == "application/json"
    } else {
        media == "application/json"
            || (media.starts_with("application/") && media.ends_with("+json"))
    };
    if !json_type {
        return Err(format!("the document's media type is {media:?}, not JSON"));
    }
    let ttl = cache_time(&r);
    let limit = if s.fault("cimd-size-limit") {
        16 << 20
    } else {
        MAX_DOCUMENT
    };
    let body = read_limited(r, limit).await?;
    let mut doc = parse(s, &body)?;

    // CIMD-00 §4.1: the document names itself, exactly (a simple string comparison).
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id)
        && !s.fault("cimd-client-id-mismatch")
    {
        return Err("the document's client_id is not its URL".into());
    }
    doc.insert("client_id".into(), Value::String(client_id.to_string()));
    // MCP §5.1.1: client_id, client_name and redirect_uris are required.
    let uris_ok = doc
        .get("redirect_uris")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
    let name_ok = doc
        .get("client_name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !(uris_ok && name_ok) {
        if !s.fault("cimd-required-fields") {
            return Err("the document lacks a client_name or redirect_uris".into());
        }
        if !uris_ok {
            doc.insert("x_any_redirect".into(), Value::Bool(true));
        }
    }
    if s.fault("cimd-redirect-in-doc") {
        doc.insert("x_any_redirect".into(), Value::Bool(true));
    }
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string();
    // CIMD-00 §4.1: no shared secrets.
    if [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ]
    .contains(&method.as_str())
        && !s.fault("cimd-forbidden-auth-method")
    {
        return Err(format!(
            "token_endpoint_auth_method {method} is not allowed"
        ));
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        if !s.fault("cimd-no-client-secret") {
            return Err("the document contains a client_secret".into());
        }
        // The faulty server authenticates the client with the document's secret.
        doc.insert(
            "token_endpoint_auth_method".into(),
            Value::String("client_secret_basic".into()),
        );
    }
    doc.entry("token_endpoint_auth_method")
        .or_insert_with(|| Value::String("none".into()));
    if method == "private_key_jwt" {
        if s.fault("cimd-private-key-jwt") {
            doc.insert("token_endpoint_auth_method".into(), "none".into());
        } else if !doc.contains_key("jwks") {
            let jwks_uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or("private_key_jwt without jwks or jwks_uri")?;
            let ju = url::Url::parse(jwks_uri).map_err(|e| format!("jwks_uri: {e}"))?;
            if ju.scheme() != "https" {
                return Err("jwks_uri must be https".into());
            }
            let r = get(s, &ju, true)
                .await
                .map_err(|e| format!("jwks_uri: {e}"))?;
            if r.status().as_u16() != 200 {
                return Err(format!("jwks_uri answered {}", r.status().as_u16()));
            }
            let body = read_limited(r, MAX_DOCUMENT).await?;
            let jwks: Value =
                serde_json::from_slice(&body).map_err(|e| format!("jwks_uri: {e}"))?;
            doc.insert("jwks".into(), jwks);
        }
    }
    doc.insert("x_cimd".into(), Value::Bool(true));
    Ok((Value::Object(doc), ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_use_ranges() {
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(special_use(a.parse().expect("ip")), "{a}");
        }
        for a in ["93.184.215.14", "2606:4700::1111"] {
            assert!(!special_use(a.parse().expect("ip")), "{a}");
        }
    }

    #[test]
    fn normalisation_is_what_the_faulty_server_compares() {
        assert_eq!(
            normalised("HTTPS://Example.TEST:443/a/%63.json"),
            "https://example.test/a/c.json"
        );
    }
}
