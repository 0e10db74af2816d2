//! A client's signing key for `private_key_jwt` (RFC 7523): made at registration, or read from
//! a profile's key file. Plain key material, below every layer that signs or configures.

use serde_json::{Value, json};

/// A client's own P-256 key for `private_key_jwt` (RFC 7523), made at registration.
#[derive(Debug)]
pub struct ClientKey {
    /// PKCS#8 DER of the private key.
    pub pkcs8: Vec<u8>,
    /// The public key as a JWK (what the AS was given).
    pub jwk: Value,
    /// The public key in PEM (for the HS256-keyed-with-the-public-key attack).
    pub public_pem: String,
}

impl ClientKey {
    pub fn generate() -> Result<Self, String> {
        use base64::Engine;
        let kp = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
        let kid: [u8; 9] = rand::random();
        Self::from_key_pair(
            &kp,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid),
        )
    }

    /// A key from a PKCS#8 PEM file (P-256 only: assertions are ES256).
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, String> {
        let kp = rcgen::KeyPair::from_pem(pem).map_err(|e| format!("not a PKCS#8 key: {e}"))?;
        if kp.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err("the key is not a P-256 (ES256) key".into());
        }
        Self::from_key_pair(&kp, kid.unwrap_or_default())
    }

    fn from_key_pair(kp: &rcgen::KeyPair, kid: String) -> Result<Self, String> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = kp.public_key_raw();
        if raw.len() != 65 {
            return Err("unexpected P-256 public key encoding".into());
        }
        Ok(Self {
            pkcs8: kp.serialize_der(),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
                "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
            }),
            public_pem: kp.public_key_pem(),
        })
    }
}
