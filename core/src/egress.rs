//! The egress policy: which addresses the suite may connect to.
//!
//! authconform connects to servers it does not trust, and those servers choose many of the URLs
//! it follows (metadata documents name issuers, endpoints, JWKS and registration URLs). A hostile
//! or careless server can point the suite at the cloud metadata service of the machine it runs
//! on (169.254.169.254 and its cousins); on a CI runner that service hands out the runner's cloud
//! credentials, and the suite would fetch them and write them into a report. The same goes for
//! the runner's loopback services and its private network.
//!
//! So every URL is checked before it is followed: [`classify`] sorts an address into a [`Class`]
//! the suite may reach or a [`Forbidden`] kind it never reaches without an explicit
//! `--allow-host`, and a [`Policy`] reaches what its targets justify: public addresses always,
//! loopback only when a target is on loopback, private only when a target is private (a suite
//! pointed at a public server has no business on the runner's LAN).
//!
//! A check of the URL's host name is worthless on its own: `metadata.example` can resolve to
//! 169.254.169.254, and a second lookup at connect time can answer differently from the first
//! (DNS rebinding). IP literals are decided by [`Policy::check_url`]; names are decided per
//! resolved address ([`Policy::check_addr`]) by the resolver the HTTP client uses, which hands
//! the connector exactly the addresses it checked. This module is the pure half; the resolver
//! lives in the main crate's `egress` module.
//!
//! IPv6 addresses that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are classified by
//! the embedded address: a dual-stack socket or a translator on the path delivers them to the
//! IPv4 address, so `[::ffff:169.254.169.254]` is the metadata service under another spelling.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The class of an address the suite may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Loopback,
    Private,
    Public,
}

impl Class {
    fn noun(self) -> &'static str {
        match self {
            Class::Loopback => "loopback address",
            Class::Private => "private address",
            Class::Public => "public address",
        }
    }
}

/// Why an address is never reached without an explicit allowance, e.g. "link-local address".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden(pub &'static str);

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

const METADATA: Forbidden = Forbidden("cloud metadata address");

/// Cloud metadata services. Checked before the ranges that contain them (link-local, CGNAT,
/// public, IETF) so the message names what the address really is.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure IMDS, OpenStack, ...
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure host (WireServer)
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
];
/// AWS IMDS over IPv6 (Nitro).
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Whether `ip` lies in `base/len`.
fn in_v4(ip: Ipv4Addr, base: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(base)) & mask)
}

/// Whether `ip` lies in `base/len`.
fn in_v6(ip: Ipv6Addr, base: Ipv6Addr, len: u32) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    (u128::from(ip) & mask) == (u128::from(base) & mask)
}

/// The class of an address, or why the suite never reaches it unless told to.
pub fn classify(ip: IpAddr) -> Result<Class, Forbidden> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<Class, Forbidden> {
    const RULES: &[([u8; 4], u32, Result<Class, Forbidden>)] = &[
        ([0, 0, 0, 0], 32, Err(Forbidden("unspecified address"))),
        ([0, 0, 0, 0], 8, Err(Forbidden("'this network' address"))),
        ([169, 254, 0, 0], 16, Err(Forbidden("link-local address"))),
        // Before 240/4, which contains it.
        (
            [255, 255, 255, 255],
            32,
            Err(Forbidden("broadcast address")),
        ),
        ([224, 0, 0, 0], 4, Err(Forbidden("multicast address"))),
        ([240, 0, 0, 0], 4, Err(Forbidden("reserved address"))),
        ([192, 0, 2, 0], 24, Err(Forbidden("documentation address"))),
        (
            [198, 51, 100, 0],
            24,
            Err(Forbidden("documentation address")),
        ),
        (
            [203, 0, 113, 0],
            24,
            Err(Forbidden("documentation address")),
        ),
        (
            [192, 0, 0, 0],
            24,
            Err(Forbidden("IETF protocol assignment")),
        ),
        ([198, 18, 0, 0], 15, Err(Forbidden("benchmarking address"))),
        ([127, 0, 0, 0], 8, Ok(Class::Loopback)),
        ([10, 0, 0, 0], 8, Ok(Class::Private)),
        ([172, 16, 0, 0], 12, Ok(Class::Private)),
        ([192, 168, 0, 0], 16, Ok(Class::Private)),
        // Carrier-grade NAT: the provider's side of the runner's network, not the internet.
        ([100, 64, 0, 0], 10, Ok(Class::Private)),
    ];
    if METADATA_V4.contains(&ip) {
        return Err(METADATA);
    }
    RULES
        .iter()
        .find(|(base, len, _)| in_v4(ip, *base, *len))
        .map_or(Ok(Class::Public), |(_, _, verdict)| *verdict)
}

/// The IPv4 address an IPv6 address carries, by the layout of its prefix.
fn v4_at(ip: Ipv6Addr, byte: usize) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[byte], o[byte + 1], o[byte + 2], o[byte + 3])
}

/// The IPv4 addresses a local-use NAT64 address (64:ff9b:1::/48) may carry. The prefix length
/// is the network operator's choice (RFC 8215), invisible from here, so every layout RFC 6052
/// allows within the /48 is a candidate; octet 8 (bits 64..72, the "u" octet) never carries
/// address bits.
fn nat64_local_candidates(ip: Ipv6Addr) -> [Ipv4Addr; 4] {
    let o = ip.octets();
    [
        Ipv4Addr::new(o[6], o[7], o[9], o[10]),   // /48
        Ipv4Addr::new(o[7], o[9], o[10], o[11]),  // /56
        Ipv4Addr::new(o[9], o[10], o[11], o[12]), // /64
        v4_at(ip, 12),                            // /96
    ]
}

/// The strictest verdict of several: forbidden over anything, then loopback, private, public
/// (the smaller class is reachable from fewer targets).
fn strictest(
    verdicts: impl IntoIterator<Item = Result<Class, Forbidden>>,
) -> Result<Class, Forbidden> {
    let mut best = Ok(Class::Public);
    for v in verdicts {
        best = match (best, v) {
            (Err(f), _) => Err(f),
            (Ok(_), Err(f)) => Err(f),
            (Ok(a), Ok(b)) => Ok(a.min(b)),
        };
    }
    best
}

fn classify_v6(ip: Ipv6Addr) -> Result<Class, Forbidden> {
    let seg = ip.segments();
    if ip == METADATA_V6 {
        return Err(METADATA);
    }
    if ip.is_unspecified() {
        return Err(Forbidden("unspecified address"));
    }
    if ip.is_loopback() {
        return Ok(Class::Loopback);
    }
    // The forms that carry an IPv4 address, classified by what they reach.
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0) {
        // IPv4-mapped ::ffff:a.b.c.d, or IPv4-compatible ::a.b.c.d (:: and ::1 handled above).
        return classify_v4(v4_at(ip, 12));
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(v4_at(ip, 12));
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        // Zeros between the prefix and the last 32 bits: the common /96 layout. Anything else
        // is a shorter layout, and which one is unknowable, so the strictest reading decides.
        if seg[3..6] == [0; 3] {
            return classify_v4(v4_at(ip, 12));
        }
        return strictest(nat64_local_candidates(ip).map(classify_v4));
    }
    if seg[0] == 0x2002 {
        return classify_v4(v4_at(ip, 2));
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        // Teredo hides the IPv4 server and (obfuscated) client; not worth decoding to allow.
        return Err(Forbidden("Teredo tunnel address"));
    }
    const RULES: &[(Ipv6Addr, u32, Result<Class, Forbidden>)] = &[
        (
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
            Err(Forbidden("link-local address")),
        ),
        (
            Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
            8,
            Err(Forbidden("multicast address")),
        ),
        (
            Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0),
            32,
            Err(Forbidden("documentation address")),
        ),
        (
            Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
            20,
            Err(Forbidden("documentation address")),
        ),
        (
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            10,
            Err(Forbidden("site-local address (deprecated)")),
        ),
        (
            Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0),
            64,
            Err(Forbidden("discard-only address")),
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            Ok(Class::Private),
        ),
    ];
    RULES
        .iter()
        .find(|(base, len, _)| in_v6(ip, *base, *len))
        .map_or(Ok(Class::Public), |(_, _, verdict)| *verdict)
}

/// The class of an IP-literal URL's host; `None` for a host name or an unparseable URL.
pub fn class_of_url(url: &str) -> Option<Result<Class, Forbidden>> {
    match Url::parse(url).ok()?.host()? {
        Host::Ipv4(v4) => Some(classify_v4(v4)),
        Host::Ipv6(v6) => Some(classify_v6(v6)),
        Host::Domain(_) => None,
    }
}

/// The host of one `--allow-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedHost {
    /// Lowercased, without a trailing dot (`example.com.` is the same host).
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allowance {
    host: AllowedHost,
    /// `None` allows every port.
    port: Option<u16>,
}

impl Allowance {
    fn matches_port(&self, port: Option<u16>) -> bool {
        match (self.port, port) {
            (None, _) | (_, None) => true,
            (Some(a), Some(p)) => a == p,
        }
    }
}

fn normalise_name(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The URL crate's host of a URL as the user types it in `--allow-host` (IPv6 in brackets).
fn host_for_user(host: &Host<&str>) -> String {
    match host {
        Host::Domain(d) => (*d).to_owned(),
        Host::Ipv4(v4) => v4.to_string(),
        Host::Ipv6(v6) => format!("[{v6}]"),
    }
}

/// The port written in `raw`, including one equal to the scheme's default, which the URL
/// standard drops (`http://h:80/` has no port in `url`). Parsing the same text under the other
/// http scheme, whose default differs, shows it.
fn explicit_port(raw: &str, url: &Url) -> Option<u16> {
    if let Some(port) = url.port() {
        return Some(port);
    }
    let (_, rest) = raw.trim_start().split_once(':')?;
    let other = if url.scheme() == "http" {
        "https"
    } else {
        "http"
    };
    Url::parse(&format!("{other}:{rest}")).ok()?.port()
}

/// What the suite may reach: address classes plus explicit allowances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    reachable: BTreeSet<Class>,
    allowed: Vec<Allowance>,
}

impl Default for Policy {
    /// Public addresses only.
    fn default() -> Self {
        Self::for_targets([])
    }
}

/// What [`Policy::check_url`] decided about a URL whose scheme and host were acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlCheck {
    /// Connect: an IP literal the policy reaches, or an explicitly allowed host.
    Allowed,
    /// A DNS name: each address it resolves to must pass [`Policy::check_addr`].
    Resolve { host: String, port: u16 },
}

/// A URL or address the policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The URL (or host) as given, not re-serialised, so the user recognises it.
    pub url: String,
    pub reason: String,
    /// What to pass to `--allow-host` to permit it, when allowing it is possible.
    pub hint: Option<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused to follow {}: {}", self.url, self.reason)?;
        if let Some(hint) = &self.hint {
            write!(f, " (use --allow-host {hint} to permit)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

fn article(noun: &str) -> &'static str {
    match noun.chars().next() {
        Some(c) if "aeiouAEIOU".contains(c) => "an",
        _ => "a",
    }
}

impl Policy {
    /// What the suite may reach from targets of these classes: always Public; a loopback or
    /// private target also its own class.
    pub fn for_targets(classes: impl IntoIterator<Item = Class>) -> Self {
        let mut reachable: BTreeSet<Class> = classes.into_iter().collect();
        reachable.insert(Class::Public);
        Policy {
            reachable,
            allowed: Vec::new(),
        }
    }

    /// `--allow-host HOST[:PORT]` / profile `[network] allow`: HOST is a DNS name
    /// (case-insensitive), an IPv4 address in any spelling the URL standard accepts (decimal
    /// `2852039166`, hex `0xa9fea9fe`, short `127.1`), or `[v6]`. Without a port it allows every
    /// port.
    pub fn allow(&mut self, spec: &str) -> Result<(), String> {
        let bad = |why: &str| {
            format!("invalid --allow-host {spec:?}: {why} (expected HOST or HOST:PORT)")
        };
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        // The URL parser silently drops tabs and newlines; a spec holding them is a mistake.
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        // Reusing the URL parser gives the host exactly the normalisation URLs get, so an
        // allowance written `0xa9fea9fe` matches a URL written `169.254.169.254`.
        let url = Url::parse(&format!("http://{trimmed}/")).map_err(|e| bad(&e.to_string()))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("has a path, a query or a scheme"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("has user information"));
        }
        if trimmed.ends_with(':') {
            return Err(bad("empty port"));
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => AllowedHost::Name(normalise_name(d)),
            Some(Host::Ipv4(v4)) => AllowedHost::Ip(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => AllowedHost::Ip(IpAddr::V6(v6)),
            None => return Err(bad("no host")),
        };
        let port = explicit_port(&format!("http://{trimmed}/"), &url);
        self.allowed.push(Allowance { host, port });
        Ok(())
    }

    fn allowed(&self, host: &AllowedHost, port: Option<u16>) -> bool {
        self.allowed
            .iter()
            .any(|a| a.host == *host && a.matches_port(port))
    }

    /// Whether the name is allowed on some port (the resolver, which does not see the port,
    /// uses this). An IP literal matches allowances of that address.
    pub fn name_allowed(&self, host: &str) -> bool {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match host.parse::<IpAddr>() {
            Ok(ip) => self.allowed(&AllowedHost::Ip(ip), None),
            Err(_) => self.allowed(&AllowedHost::Name(normalise_name(host)), None),
        }
    }

    /// Scheme first (only http and https), then the host: an IP literal is decided here; a
    /// DNS name allowed on this port is Allowed; any other name needs its addresses checked
    /// after resolution.
    pub fn check_url(&self, url: &str) -> Result<UrlCheck, Refusal> {
        let refuse = |reason: String, hint: Option<String>| Refusal {
            url: url.to_owned(),
            reason,
            hint,
        };
        let parsed = Url::parse(url).map_err(|e| refuse(format!("not a valid URL ({e})"), None))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("not an http(s) URL".to_owned(), None));
        }
        let (host, port) = match (parsed.host(), parsed.port_or_known_default()) {
            (Some(h), Some(p)) => (h, p),
            _ => return Err(refuse("the URL has no host".to_owned(), None)),
        };
        let hint = || {
            let typed = host_for_user(&host);
            Some(match explicit_port(url, &parsed) {
                Some(p) => format!("{typed}:{p}"),
                None => typed,
            })
        };
        let ip = match host {
            Host::Domain(name) => {
                return Ok(
                    if self.allowed(&AllowedHost::Name(normalise_name(name)), Some(port)) {
                        UrlCheck::Allowed
                    } else {
                        UrlCheck::Resolve {
                            host: name.to_owned(),
                            port,
                        }
                    },
                );
            }
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
        };
        if self.allowed(&AllowedHost::Ip(ip), Some(port)) {
            return Ok(UrlCheck::Allowed);
        }
        self.judge_class(ip)
            .map(|()| UrlCheck::Allowed)
            .map_err(|what| refuse(format!("{ip} is {what}"), hint()))
    }

    /// One resolved address of `host` (a name): allowed when the name (or the address) is
    /// allowed on some port, else by class.
    pub fn check_addr(
        &self,
        url_or_host_for_message: &str,
        host: &str,
        ip: IpAddr,
    ) -> Result<(), Refusal> {
        self.check_resolved(url_or_host_for_message, host, None, ip)
    }

    /// [`Self::check_addr`] for a caller that knows the port: an allowance for another port
    /// does not count.
    pub fn check_addr_on_port(
        &self,
        url_or_host_for_message: &str,
        host: &str,
        port: u16,
        ip: IpAddr,
    ) -> Result<(), Refusal> {
        self.check_resolved(url_or_host_for_message, host, Some(port), ip)
    }

    fn check_resolved(
        &self,
        message: &str,
        host: &str,
        port: Option<u16>,
        ip: IpAddr,
    ) -> Result<(), Refusal> {
        if self.allowed(&AllowedHost::Name(normalise_name(host)), port)
            || self.allowed(&AllowedHost::Ip(ip), port)
        {
            return Ok(());
        }
        self.judge_class(ip).map_err(|what| Refusal {
            url: message.to_owned(),
            reason: format!("{host} resolves to {ip}, {what}"),
            hint: Some(match port {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            }),
        })
    }

    /// `Ok` when the policy reaches `ip` by class; else what the address is, with its article
    /// ("a link-local address", "a loopback address, which no target of this run is").
    fn judge_class(&self, ip: IpAddr) -> Result<(), String> {
        match classify(ip) {
            Err(Forbidden(what)) => Err(format!("{} {what}", article(what))),
            Ok(class) if self.reachable.contains(&class) => Ok(()),
            Ok(class) => {
                let noun = class.noun();
                Err(format!(
                    "{} {noun}, which no target of this run is",
                    article(noun)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Result<Class, Forbidden> {
        classify(s.parse().unwrap())
    }

    fn forbidden(s: &str) -> &'static str {
        match classify(s.parse().unwrap()) {
            Err(Forbidden(what)) => what,
            Ok(c) => panic!("{s} classified {c:?}, expected forbidden"),
        }
    }

    #[test]
    fn ipv4_forbidden_ranges() {
        assert_eq!(forbidden("0.0.0.0"), "unspecified address");
        assert_eq!(forbidden("0.1.2.3"), "'this network' address");
        assert_eq!(forbidden("0.255.255.255"), "'this network' address");
        assert_eq!(forbidden("169.254.0.1"), "link-local address");
        assert_eq!(forbidden("169.254.255.255"), "link-local address");
        assert_eq!(forbidden("224.0.0.1"), "multicast address");
        assert_eq!(forbidden("239.255.255.255"), "multicast address");
        assert_eq!(forbidden("255.255.255.255"), "broadcast address");
        assert_eq!(forbidden("240.0.0.1"), "reserved address");
        assert_eq!(forbidden("255.255.255.254"), "reserved address");
        for doc in ["192.0.2.1", "198.51.100.7", "203.0.113.255"] {
            assert_eq!(forbidden(doc), "documentation address", "{doc}");
        }
        assert_eq!(forbidden("192.0.0.8"), "IETF protocol assignment");
        assert_eq!(forbidden("198.18.0.1"), "benchmarking address");
        assert_eq!(forbidden("198.19.255.255"), "benchmarking address");
        assert_eq!(v4("198.20.0.0"), Ok(Class::Public));
    }

    #[test]
    fn metadata_addresses_win_over_their_ranges() {
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "168.63.129.16",
            "192.0.0.192",
            "fd00:ec2::254",
        ] {
            assert_eq!(forbidden(ip), "cloud metadata address", "{ip}");
        }
        // Neighbours fall back to their ranges.
        assert_eq!(forbidden("169.254.169.253"), "link-local address");
        assert_eq!(v4("100.100.100.201"), Ok(Class::Private));
        assert_eq!(v4("168.63.129.17"), Ok(Class::Public));
        assert_eq!(forbidden("192.0.0.193"), "IETF protocol assignment");
        assert_eq!(v4("fd00:ec2::253"), Ok(Class::Private));
    }

    #[test]
    fn ipv4_loopback_private_public() {
        assert_eq!(v4("127.0.0.1"), Ok(Class::Loopback));
        assert_eq!(v4("127.255.0.9"), Ok(Class::Loopback));
        for p in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
        ] {
            assert_eq!(v4(p), Ok(Class::Private), "{p}");
        }
        for p in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "100.63.255.255",
            "1.1.1.1",
        ] {
            assert_eq!(v4(p), Ok(Class::Public), "{p}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        assert_eq!(forbidden("::"), "unspecified address");
        assert_eq!(v4("::1"), Ok(Class::Loopback));
        assert_eq!(forbidden("fe80::1"), "link-local address");
        assert_eq!(forbidden("febf::1"), "link-local address");
        assert_eq!(forbidden("ff02::1"), "multicast address");
        assert_eq!(forbidden("2001:db8::1"), "documentation address");
        assert_eq!(forbidden("3fff:fff::1"), "documentation address");
        assert_eq!(v4("3fff:1000::1"), Ok(Class::Public));
        assert_eq!(forbidden("fec0::1"), "site-local address (deprecated)");
        assert_eq!(forbidden("100::1"), "discard-only address");
        assert_eq!(v4("100:0:0:1::1"), Ok(Class::Public));
        assert_eq!(forbidden("2001::1"), "Teredo tunnel address");
        assert_eq!(
            forbidden("2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            "Teredo tunnel address"
        );
        assert_eq!(v4("fc00::1"), Ok(Class::Private));
        assert_eq!(v4("fdff::1"), Ok(Class::Private));
        assert_eq!(v4("2606:4700::1111"), Ok(Class::Public));
    }

    #[test]
    fn ipv6_embedded_ipv4_is_classified_by_the_ipv4_address() {
        // IPv4-mapped, both spellings.
        assert_eq!(
            forbidden("::ffff:169.254.169.254"),
            "cloud metadata address"
        );
        assert_eq!(forbidden("::ffff:a9fe:a9fe"), "cloud metadata address");
        assert_eq!(v4("::ffff:127.0.0.1"), Ok(Class::Loopback));
        assert_eq!(v4("::ffff:10.1.2.3"), Ok(Class::Private));
        assert_eq!(v4("::ffff:8.8.8.8"), Ok(Class::Public));
        // IPv4-compatible.
        assert_eq!(forbidden("::169.254.169.254"), "cloud metadata address");
        assert_eq!(v4("::127.0.0.1"), Ok(Class::Loopback));
        assert_eq!(forbidden("::0.0.0.2"), "'this network' address");
        // NAT64, well-known prefix.
        assert_eq!(
            forbidden("64:ff9b::169.254.169.254"),
            "cloud metadata address"
        );
        assert_eq!(forbidden("64:ff9b::a9fe:a9fe"), "cloud metadata address");
        assert_eq!(v4("64:ff9b::192.168.0.1"), Ok(Class::Private));
        assert_eq!(v4("64:ff9b::8.8.8.8"), Ok(Class::Public));
        // NAT64, local-use prefix: /96 layout and the /48 layout.
        assert_eq!(
            forbidden("64:ff9b:1::169.254.169.254"),
            "cloud metadata address"
        );
        assert_eq!(
            forbidden("64:ff9b:1:a9fe:a9:fe00::"),
            "cloud metadata address"
        );
        assert_eq!(
            forbidden("64:ff9b:1:7f00:1:0:0:1"),
            "'this network' address"
        );
        assert_eq!(v4("64:ff9b:1::8.8.8.8"), Ok(Class::Public));
        assert_eq!(v4("64:ff9b:1::127.0.0.1"), Ok(Class::Loopback));
        // 6to4: the IPv4 address in bits 16..48.
        assert_eq!(forbidden("2002:a9fe:a9fe::1"), "cloud metadata address");
        assert_eq!(v4("2002:7f00:1::"), Ok(Class::Loopback));
        assert_eq!(v4("2002:c0a8:101::1"), Ok(Class::Private));
        assert_eq!(v4("2002:808:808::1"), Ok(Class::Public));
    }

    #[test]
    fn class_of_url_sees_every_ipv4_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0xA9.0xFE.0xA9.0xFE/",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            "http://169.254.43518/",
            "http://0251.0376.0251.0376/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
        ] {
            assert_eq!(class_of_url(url), Some(Err(METADATA)), "{url}");
        }
        assert_eq!(class_of_url("http://127.1/"), Some(Ok(Class::Loopback)));
        assert_eq!(
            class_of_url("http://[::1]:8080/"),
            Some(Ok(Class::Loopback))
        );
        assert_eq!(class_of_url("https://example.com/"), None);
        assert_eq!(class_of_url("not a url"), None);
    }

    fn refusal(policy: &Policy, url: &str) -> Refusal {
        policy.check_url(url).expect_err(url)
    }

    #[test]
    fn check_url_refuses_other_schemes_without_a_hint() {
        let policy = Policy::for_targets([Class::Loopback, Class::Private]);
        for url in [
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "data:text/plain,hi",
        ] {
            let r = refusal(&policy, url);
            assert_eq!(r.reason, "not an http(s) URL", "{url}");
            assert_eq!(r.hint, None);
            assert_eq!(r.url, url);
        }
        assert_eq!(policy.check_url("HTTP://127.0.0.1/"), Ok(UrlCheck::Allowed));
        assert_eq!(
            policy.check_url("HTTPS://Example.COM/x"),
            Ok(UrlCheck::Resolve {
                host: "example.com".into(),
                port: 443
            })
        );
        assert!(
            refusal(&policy, "no scheme")
                .reason
                .starts_with("not a valid URL")
        );
    }

    #[test]
    fn check_url_messages_show_the_url_as_given() {
        let policy = Policy::default();
        let r = refusal(&policy, "http://0xa9fea9fe/latest/");
        assert_eq!(
            r.to_string(),
            "refused to follow http://0xa9fea9fe/latest/: 169.254.169.254 is a cloud metadata \
             address (use --allow-host 169.254.169.254 to permit)"
        );
        let r = refusal(&policy, "http://127.0.0.1:8080/x");
        assert_eq!(
            r.to_string(),
            "refused to follow http://127.0.0.1:8080/x: 127.0.0.1 is a loopback address, which no \
             target of this run is (use --allow-host 127.0.0.1:8080 to permit)"
        );
        // An explicit default port is still the port the user typed.
        assert_eq!(
            refusal(&policy, "http://10.0.0.1:80/").hint.as_deref(),
            Some("10.0.0.1:80")
        );
        assert_eq!(
            refusal(&policy, "https://10.0.0.1:443/").hint.as_deref(),
            Some("10.0.0.1:443")
        );
        assert_eq!(
            refusal(&policy, "https://10.0.0.1/").hint.as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            refusal(&policy, "http://[fe80::1]:81/").hint.as_deref(),
            Some("[fe80::1]:81")
        );
        assert_eq!(
            refusal(&policy, "http://0.0.0.0/").reason,
            "0.0.0.0 is an unspecified address"
        );
        assert_eq!(
            refusal(&policy, "http://192.0.0.1/").reason,
            "192.0.0.1 is an IETF protocol assignment"
        );
    }

    #[test]
    fn public_target_reaches_only_public() {
        let policy = Policy::for_targets([Class::Public]);
        assert_eq!(policy.check_url("https://8.8.8.8/"), Ok(UrlCheck::Allowed));
        for url in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://[fd12::1]/",
            "http://100.64.1.1/",
        ] {
            assert!(policy.check_url(url).is_err(), "{url}");
        }
        assert_eq!(Policy::for_targets([]), policy);
    }

    #[test]
    fn loopback_target_reaches_loopback_and_public_not_private() {
        let policy = Policy::for_targets([Class::Loopback]);
        assert_eq!(
            policy.check_url("http://127.0.0.1:3000/"),
            Ok(UrlCheck::Allowed)
        );
        assert_eq!(policy.check_url("http://[::1]/"), Ok(UrlCheck::Allowed));
        assert_eq!(policy.check_url("http://127.1/"), Ok(UrlCheck::Allowed));
        assert_eq!(policy.check_url("https://1.1.1.1/"), Ok(UrlCheck::Allowed));
        let r = refusal(&policy, "http://192.168.0.1/");
        assert_eq!(
            r.reason,
            "192.168.0.1 is a private address, which no target of this run is"
        );
    }

    #[test]
    fn private_target_reaches_private_and_public_not_loopback() {
        let policy = Policy::for_targets([Class::Private]);
        assert_eq!(policy.check_url("http://10.1.1.1/"), Ok(UrlCheck::Allowed));
        assert_eq!(policy.check_url("http://8.8.4.4/"), Ok(UrlCheck::Allowed));
        assert!(policy.check_url("http://127.0.0.1/").is_err());
    }

    #[test]
    fn forbidden_stays_forbidden_for_every_target_class() {
        let targets: [&[Class]; 4] = [
            &[],
            &[Class::Loopback],
            &[Class::Private],
            &[Class::Loopback, Class::Private, Class::Public],
        ];
        for t in targets {
            let policy = Policy::for_targets(t.iter().copied());
            for url in [
                "http://169.254.169.254/",
                "http://[fd00:ec2::254]/",
                "http://100.100.100.200/",
                "http://0.0.0.0:8080/",
                "http://[::]/",
                "http://[fe80::1]/",
                "http://224.0.0.1/",
                "http://255.255.255.255/",
                "http://192.0.2.1/",
                "http://[2001:db8::1]/",
                "http://[::ffff:169.254.169.254]/",
                "http://[2001::1]/",
            ] {
                assert!(policy.check_url(url).is_err(), "{url} with targets {t:?}");
                assert!(refusal(&policy, url).hint.is_some());
            }
            let ip: IpAddr = "169.254.169.254".parse().unwrap();
            assert!(policy.check_addr("m.example", "m.example", ip).is_err());
        }
    }

    #[test]
    fn allow_specs() {
        let mut policy = Policy::default();
        policy.allow("169.254.169.254").unwrap();
        assert_eq!(
            policy.check_url("http://169.254.169.254/latest/"),
            Ok(UrlCheck::Allowed)
        );
        assert_eq!(
            policy.check_url("http://0xa9fea9fe:8080/"),
            Ok(UrlCheck::Allowed)
        );

        let mut policy = Policy::default();
        policy.allow("2852039166:8080").unwrap();
        assert_eq!(
            policy.check_url("http://169.254.169.254:8080/"),
            Ok(UrlCheck::Allowed)
        );
        assert!(policy.check_url("http://169.254.169.254/").is_err());

        let mut policy = Policy::default();
        policy.allow("127.1").unwrap();
        assert_eq!(
            policy.check_url("http://127.0.0.1:9/"),
            Ok(UrlCheck::Allowed)
        );

        let mut policy = Policy::default();
        policy.allow("[::1]:8443").unwrap();
        assert_eq!(
            policy.check_url("https://[::1]:8443/"),
            Ok(UrlCheck::Allowed)
        );
        assert!(policy.check_url("https://[::1]:8444/").is_err());

        let mut policy = Policy::default();
        policy.allow("[fe80::1]").unwrap();
        assert_eq!(
            policy.check_url("http://[fe80::1]:1234/"),
            Ok(UrlCheck::Allowed)
        );

        // Port equal to the scheme default is still a port restriction.
        let mut policy = Policy::default();
        policy.allow("10.0.0.1:80").unwrap();
        assert_eq!(policy.check_url("http://10.0.0.1/"), Ok(UrlCheck::Allowed));
        assert!(policy.check_url("https://10.0.0.1/").is_err());

        let mut policy = Policy::default();
        policy.allow("Metadata.Internal").unwrap();
        assert_eq!(
            policy.check_url("http://metadata.internal/x"),
            Ok(UrlCheck::Allowed)
        );
        assert_eq!(
            policy.check_url("http://METADATA.internal.:81/"),
            Ok(UrlCheck::Allowed)
        );
        assert!(policy.name_allowed("metadata.INTERNAL"));
        assert!(!policy.name_allowed("other.internal"));

        let mut policy = Policy::default();
        policy.allow("idp.corp:8443").unwrap();
        assert_eq!(
            policy.check_url("https://idp.corp:8443/"),
            Ok(UrlCheck::Allowed)
        );
        assert_eq!(
            policy.check_url("https://idp.corp/"),
            Ok(UrlCheck::Resolve {
                host: "idp.corp".into(),
                port: 443
            })
        );
        assert!(policy.name_allowed("idp.corp"));
    }

    #[test]
    fn bad_allow_specs() {
        let mut policy = Policy::default();
        for spec in [
            "",
            "   ",
            "http://example.com",
            "https://example.com/",
            "example.com/path",
            "example.com?q",
            "example.com#f",
            "user@example.com",
            "example.com:",
            "example.com:99999",
            "example.com:port",
            "[::1",
            "::1",
            "exa mple.com",
            "a\tb",
        ] {
            let err = policy.allow(spec).expect_err(spec);
            assert!(err.contains(&format!("{spec:?}")), "{err}");
        }
        assert_eq!(policy, Policy::default());
    }

    #[test]
    fn check_addr_by_name_then_class() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let policy = Policy::default();
        let r = policy
            .check_addr(
                "http://metadata.example/x",
                "metadata.example",
                ip("169.254.169.254"),
            )
            .unwrap_err();
        assert_eq!(
            r.reason,
            "metadata.example resolves to 169.254.169.254, a cloud metadata address"
        );
        assert_eq!(
            r.to_string(),
            "refused to follow http://metadata.example/x: metadata.example resolves to \
             169.254.169.254, a cloud metadata address (use --allow-host metadata.example to permit)"
        );
        let r = policy
            .check_addr("h", "lan.example", ip("10.0.0.1"))
            .unwrap_err();
        assert_eq!(
            r.reason,
            "lan.example resolves to 10.0.0.1, a private address, which no target of this run is"
        );
        assert_eq!(
            policy.check_addr("h", "example.com", ip("93.184.216.34")),
            Ok(())
        );
        assert!(policy.check_addr("h", "x", ip("::ffff:127.0.0.1")).is_err());

        let mut allowed = Policy::default();
        allowed.allow("metadata.example:8080").unwrap();
        assert_eq!(
            allowed.check_addr("h", "metadata.example", ip("169.254.169.254")),
            Ok(())
        );
        assert_eq!(
            allowed.check_addr_on_port("h", "metadata.example", 8080, ip("169.254.169.254")),
            Ok(())
        );
        let r = allowed
            .check_addr_on_port("h", "metadata.example", 80, ip("169.254.169.254"))
            .unwrap_err();
        assert_eq!(r.hint.as_deref(), Some("metadata.example:80"));

        // Allowing the address allows the names that resolve to it.
        let mut by_ip = Policy::default();
        by_ip.allow("10.0.0.5").unwrap();
        assert_eq!(
            by_ip.check_addr("h", "internal.corp", ip("10.0.0.5")),
            Ok(())
        );
        assert!(
            by_ip
                .check_addr("h", "internal.corp", ip("10.0.0.6"))
                .is_err()
        );
        assert!(by_ip.name_allowed("10.0.0.5"));
    }
}
