//! The egress policy applied to real connections: a DNS resolver for the HTTP client and a
//! checked resolution for raw connectors.
//!
//! The servers under test are untrusted and choose the URLs the suite follows; on a CI runner
//! the cloud metadata service one hop away holds the runner's credentials. The policy itself
//! ([`Policy`], in the core crate) is pure; this module applies it where it cannot be dodged:
//! after DNS. Checking a host name before the request proves nothing (the name can resolve to
//! 169.254.169.254, or resolve to a public address for the check and a private one for the
//! connection), so the [`Resolver`] checks every address a lookup returns and hands the
//! connector only the addresses it checked: there is no second lookup to rebind.
//!
//! IP-literal URLs never reach a resolver (the connector uses the literal), so callers run
//! [`Policy::check_url`] on every URL they follow, redirects included; [`resolve_checked`] does
//! both steps for connectors that take socket addresses.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

pub use authconform_core::egress::{
    Class, Forbidden, Policy, Refusal, UrlCheck, class_of_url, classify,
};

/// A `reqwest` DNS resolver that drops every address the policy refuses.
#[derive(Debug, Clone)]
pub struct Resolver {
    policy: Arc<Policy>,
}

impl Resolver {
    pub fn new(policy: Arc<Policy>) -> Self {
        Resolver { policy }
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) on the addresses it gets.
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            // The resolver sees the name only, not the URL, so the message names the host.
            let (kept, refusal) = keep_allowed(addrs, |ip| policy.check_addr(&host, &host, ip));
            if kept.is_empty() {
                return Err(match refusal {
                    Some(r) => Box::new(r) as Box<dyn Error + Send + Sync>,
                    None => no_addresses(&host).into(),
                });
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The addresses `check` passes, and the first refusal. A name with both a public and a
/// refused address keeps the public one: the connector can only reach what is returned.
fn keep_allowed(
    addrs: impl IntoIterator<Item = SocketAddr>,
    check: impl Fn(IpAddr) -> Result<(), Refusal>,
) -> (Vec<SocketAddr>, Option<Refusal>) {
    let mut kept = Vec::new();
    let mut refusal = None;
    for addr in addrs {
        match check(addr.ip()) {
            Ok(()) => kept.push(addr),
            Err(r) => {
                refusal.get_or_insert(r);
            }
        }
    }
    (kept, refusal)
}

fn no_addresses(host: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    )
}

/// The [`Refusal`] somewhere in an error's source chain (a `reqwest::Error` wraps the
/// resolver's error a few layers down).
pub fn find_refusal(e: &(dyn Error + 'static)) -> Option<Refusal> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r.clone());
        }
        current = err.source();
    }
    None
}

/// Why [`resolve_checked`] gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The policy refused the URL or every address its host resolved to.
    Refused(Refusal),
    /// The lookup itself failed.
    Dns(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Refused(r) => r.fmt(f),
            ResolveError::Dns(e) => f.write_str(e),
        }
    }
}

impl Error for ResolveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ResolveError::Refused(r) => Some(r),
            ResolveError::Dns(_) => None,
        }
    }
}

/// The socket addresses a raw connector may connect to for `url`: the literal for an IP-literal
/// URL, else the checked addresses its host resolves to. Connect to these, never re-resolve.
pub async fn resolve_checked(policy: &Policy, url: &str) -> Result<Vec<SocketAddr>, ResolveError> {
    let check = policy.check_url(url).map_err(ResolveError::Refused)?;
    // check_url accepted the URL, so it parses and has a host and a port.
    let parsed = Url::parse(url).map_err(|e| ResolveError::Dns(format!("{url}: {e}")))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| ResolveError::Dns(format!("{url}: no port")))?;
    let (host, port, checked) = match (parsed.host(), check) {
        (Some(Host::Ipv4(v4)), _) => return Ok(vec![SocketAddr::new(IpAddr::V4(v4), port)]),
        (Some(Host::Ipv6(v6)), _) => return Ok(vec![SocketAddr::new(IpAddr::V6(v6), port)]),
        // Explicitly allowed on this port: every address it resolves to.
        (Some(Host::Domain(d)), UrlCheck::Allowed) => (d.to_owned(), port, false),
        (_, UrlCheck::Resolve { host, port }) => (host, port, true),
        (None, UrlCheck::Allowed) => return Err(ResolveError::Dns(format!("{url}: no host"))),
    };
    let addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| ResolveError::Dns(format!("cannot resolve {host}: {e}")))?;
    let (kept, refusal) = if checked {
        // The port is known here, so an allowance for another port does not count.
        keep_allowed(addrs, |ip| policy.check_addr_on_port(url, &host, port, ip))
    } else {
        (addrs.collect(), None)
    };
    match (kept.is_empty(), refusal) {
        (false, _) => Ok(kept),
        (true, Some(r)) => Err(ResolveError::Refused(r)),
        (true, None) => Err(ResolveError::Dns(no_addresses(&host).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(policy: Policy) -> Resolver {
        Resolver::new(Arc::new(policy))
    }

    async fn resolve(
        r: &Resolver,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn Error + Send + Sync>> {
        r.resolve(host.parse().unwrap()).await.map(|a| a.collect())
    }

    #[tokio::test]
    async fn localhost_refused_under_a_public_only_policy() {
        let err = resolve(&resolver(Policy::for_targets([Class::Public])), "localhost")
            .await
            .unwrap_err();
        let refusal = find_refusal(err.as_ref()).expect("a Refusal");
        assert!(
            refusal.reason.starts_with("localhost resolves to "),
            "{refusal}"
        );
        assert!(refusal.reason.contains("a loopback address"), "{refusal}");
        assert_eq!(refusal.hint.as_deref(), Some("localhost"));
    }

    #[tokio::test]
    async fn localhost_allowed_for_a_loopback_target_or_when_allowed() {
        let addrs = resolve(
            &resolver(Policy::for_targets([Class::Loopback])),
            "localhost",
        )
        .await
        .unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));

        let mut policy = Policy::default();
        policy.allow("LOCALHOST:1").unwrap();
        assert!(
            !resolve(&resolver(policy), "localhost")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn reqwest_error_carries_the_refusal() {
        let client = reqwest::Client::builder()
            .dns_resolver(resolver(Policy::default()))
            .no_proxy()
            .build()
            .unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let refusal = find_refusal(&err).expect("the Refusal in the source chain");
        assert!(
            refusal.reason.starts_with("localhost resolves to "),
            "{refusal}"
        );
    }

    #[tokio::test]
    async fn resolve_checked_literals_names_and_refusals() {
        let public = Policy::default();
        let loopback = Policy::for_targets([Class::Loopback]);
        assert_eq!(
            resolve_checked(&loopback, "http://127.0.0.1:8080/x").await,
            Ok(vec!["127.0.0.1:8080".parse().unwrap()])
        );
        assert_eq!(
            resolve_checked(&loopback, "https://[::1]/").await,
            Ok(vec!["[::1]:443".parse().unwrap()])
        );
        let addrs = resolve_checked(&loopback, "http://localhost:8080/")
            .await
            .unwrap();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );

        match resolve_checked(&public, "http://127.0.0.1/").await {
            Err(ResolveError::Refused(r)) => assert_eq!(r.url, "http://127.0.0.1/"),
            other => panic!("{other:?}"),
        }
        match resolve_checked(&public, "http://localhost:8080/").await {
            Err(ResolveError::Refused(r)) => {
                assert_eq!(r.url, "http://localhost:8080/");
                assert_eq!(r.hint.as_deref(), Some("localhost:8080"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve_checked(&loopback, "file:///etc/passwd").await,
            Err(ResolveError::Refused(_))
        ));

        // An allowance for another port does not open this one.
        let mut other_port = Policy::default();
        other_port.allow("localhost:1").unwrap();
        assert!(matches!(
            resolve_checked(&other_port, "http://localhost:2/").await,
            Err(ResolveError::Refused(_))
        ));
        assert!(
            resolve_checked(&other_port, "http://localhost:1/")
                .await
                .is_ok()
        );
    }
}
