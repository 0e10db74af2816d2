//! A throw-away certificate authority for the servers authconform runs itself (the reference
//! server, the Client ID Metadata Document host): a fresh CA and a loopback leaf certificate per
//! start, so they are served over https exactly as production servers must be, without any file
//! on disk unless asked. The CA can only vouch for loopback names.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct LocalCa {
    /// PEM of the CA certificate: what a client must trust.
    pub ca_pem: String,
    /// PEM of the leaf certificate chain (leaf, then CA) for 127.0.0.1, ::1 and localhost.
    pub chain_pem: String,
    pub key_pem: String,
}

/// A CA and a leaf for 127.0.0.1, ::1 and localhost; `name` goes into both subjects.
pub fn generate_for(name: &str) -> Result<LocalCa, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("authconform throw-away {name} CA"),
    );
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, format!("authconform {name}"));
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(LocalCa {
        ca_pem: ca_cert.pem(),
        chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// The reference server's CA.
pub fn generate() -> Result<LocalCa, rcgen::Error> {
    generate_for("reference server")
}
