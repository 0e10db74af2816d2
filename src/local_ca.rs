//! A throw-away certificate authority for the servers authconform runs itself (the reference
//! server, the Client ID Metadata Document host): a fresh CA and a loopback leaf certificate per
//! start, so they are served over https exactly as production servers must be, without any file
//! on disk unless asked. The CA can only vouch for loopback names and `authconform.test`, the
//! test name space (RFC 6761 §6.2) of the rebinding DNS server ([`crate::cimd::dns`]).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, SanType,
};

pub struct LocalCa {
    /// PEM of the CA certificate: what a client must trust.
    pub ca_pem: String,
    /// PEM of the leaf certificate chain (leaf, then CA) for 127.0.0.1, ::1 and localhost.
    pub chain_pem: String,
    pub key_pem: String,
    /// The leaf also names [`crate::cimd::dns::REBIND_HOST`]. False for a stored CA made before
    /// the CA's constraints admitted that name: an AS that trusts it would refuse the whole leaf.
    pub names_rebind_host: bool,
}

/// The CA's parameters. Name constraints limit it to loopback names and addresses, and to
/// `authconform.test` (RFC 6761 §6.2 test names, which public DNS answers with NXDOMAIN), so a
/// CA a user installs (for an AS that must fetch from authconform's document host) can vouch
/// for nothing but this machine. The parameters are rebuilt identically for a stored CA key: the
/// issuer of a leaf is named by them.
pub(crate) fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, format!("authconform {name} CA"));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::DnsName("authconform.test".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)),
            GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
                std::net::Ipv6Addr::LOCALHOST.octets(),
                128,
            )),
        ],
        excluded_subtrees: vec![],
    });
    Ok(p)
}

fn leaf_for(
    name: &str,
    issuer: &Issuer<'_, KeyPair>,
    rebind: bool,
) -> Result<(String, String), rcgen::Error> {
    let leaf_key = KeyPair::generate()?;
    let mut names = vec!["localhost".to_string()];
    if rebind {
        names.push(crate::cimd::dns::REBIND_HOST.to_string());
    }
    let mut leaf = CertificateParams::new(names)?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, format!("authconform {name}"));
    let leaf_cert = leaf.signed_by(&leaf_key, issuer)?;
    Ok((leaf_cert.pem(), leaf_key.serialize_pem()))
}

/// A fresh throw-away CA and a leaf for 127.0.0.1, ::1 and localhost; `name` goes into both
/// subjects.
pub fn generate_for(name: &str) -> Result<LocalCa, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let params = ca_params(&format!("throw-away {name}"))?;
    let ca_cert = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);
    let (leaf, key_pem) = leaf_for(name, &issuer, true)?;
    Ok(LocalCa {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{leaf}{}", ca_cert.pem()),
        key_pem,
        names_rebind_host: true,
    })
}

/// The reference server's CA.
pub fn generate() -> Result<LocalCa, rcgen::Error> {
    generate_for("reference server")
}

/// Where the persistent CA lives: `$AUTHCONFORM_CA_DIR`, else `$XDG_CACHE_HOME/authconform/ca`,
/// else `~/.cache/authconform/ca`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AUTHCONFORM_CA_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("authconform").join("ca")
}

/// The persistent CA in `dir` (`ca.pem`, `ca-key.pem`), made on first use, and a fresh leaf
/// signed by it. An AS that must fetch from the document host is told to trust `ca.pem` once
/// (`NODE_EXTRA_CA_CERTS` for node servers); it stays valid across runs.
pub fn persistent(dir: &Path) -> Result<(LocalCa, PathBuf), String> {
    const NAME: &str = "document host";
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca-key.pem");
    let params = ca_params("local").map_err(|e| e.to_string())?;
    let (ca_pem, ca_key) = if cert_path.exists() && key_path.exists() {
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let key = KeyPair::from_pem(&read(&key_path)?)
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        (read(&cert_path)?, key)
    } else {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write_private(&key_path, &key.serialize_pem())?;
        std::fs::write(&cert_path, cert.pem())
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
        (cert.pem(), key)
    };
    let issuer = Issuer::new(params, ca_key);
    let (mut leaf, mut key_pem) = leaf_for(NAME, &issuer, true).map_err(|e| e.to_string())?;
    let names_rebind_host = trusted_for(&ca_pem, &leaf, crate::cimd::dns::REBIND_HOST);
    if !names_rebind_host {
        (leaf, key_pem) = leaf_for(NAME, &issuer, false).map_err(|e| e.to_string())?;
    }
    Ok((
        LocalCa {
            chain_pem: format!("{leaf}{ca_pem}"),
            ca_pem,
            key_pem,
            names_rebind_host,
        },
        cert_path,
    ))
}

/// Would a client that trusts `ca_pem` accept `leaf_pem` for `name`? (A CA stored by an older
/// version has narrower name constraints than [`ca_params`] now gives.)
fn trusted_for(ca_pem: &str, leaf_pem: &str, name: &str) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let (Ok(ca), Ok(leaf), Ok(server)) = (
        CertificateDer::from_pem_slice(ca_pem.as_bytes()),
        CertificateDer::from_pem_slice(leaf_pem.as_bytes()),
        ServerName::try_from(name.to_string()),
    ) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(ca).is_err() {
        return false;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let Ok(v) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider,
    )
    .build() else {
        return false;
    };
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        v.as_ref(),
        &leaf,
        &[],
        &server,
        &[],
        UnixTime::now(),
    )
    .is_ok()
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_persistent_ca_is_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("authconform-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, path) = persistent(&dir).expect("first");
        let (b, _) = persistent(&dir).expect("second");
        assert_eq!(a.ca_pem, b.ca_pem, "the CA is kept");
        assert_ne!(a.key_pem, b.key_pem, "each start gets a fresh leaf");
        assert!(b.chain_pem.ends_with(&a.ca_pem));
        assert!(a.names_rebind_host, "a new CA admits the rebinding name");
        assert_eq!(std::fs::read_to_string(path).expect("ca.pem"), a.ca_pem);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A CA stored before `authconform.test` joined the constraints: its leaves must not name
    /// the rebinding host, or an AS trusting it would refuse every document.
    #[test]
    fn an_older_stored_ca_gets_a_leaf_without_the_rebinding_name() {
        let dir = std::env::temp_dir().join(format!("authconform-oldca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let key = KeyPair::generate().expect("key");
        let mut old = ca_params("local").expect("params");
        if let Some(nc) = old.name_constraints.as_mut() {
            nc.permitted_subtrees
                .retain(|t| !matches!(t, GeneralSubtree::DnsName(n) if n == "authconform.test"));
        }
        let cert = old.self_signed(&key).expect("old CA");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("ca.pem");
        write_private(&dir.join("ca-key.pem"), &key.serialize_pem()).expect("key");
        let (ca, _) = persistent(&dir).expect("persistent");
        assert!(!ca.names_rebind_host);
        let leaf = ca
            .chain_pem
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap();
        assert!(
            trusted_for(&ca.ca_pem, leaf, "localhost"),
            "the leaf is still good"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
