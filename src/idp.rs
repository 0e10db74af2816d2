//! The enterprise identity provider the suite plays for MCP's enterprise-managed authorization
//! (draft-ietf-oauth-identity-assertion-authz-grant, ID-JAG): an issuer on the CIMD document
//! host (same listener, CA and egress rules), its metadata and JWK Set served there, and the
//! key that signs Identity Assertion JWT Authorization Grants. Beside it, a second IdP the AS
//! was never told to trust (its own issuer, key and JWK Set, all served), and an attacker's JWK
//! Set for `jku` headers.
//!
//! This only makes and publishes keys and signs what it is given; the checks decide what to
//! sign (`crate::checks::id_jag`).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::cimd::host::{Delivery, DocumentHost};
use crate::client_key::ClientKey;

/// The `typ` header of an ID-JAG (draft §3).
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";

/// How an assertion is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// ES256 with the trusted IdP's key (its `kid`).
    Trusted,
    /// ES256 with the untrusted IdP's key (its `kid`).
    Untrusted,
    /// ES256 with a key nobody published, under the trusted key's `kid`.
    UnknownKey,
    /// `alg: none`, no signature.
    None,
    /// HS256 keyed with the trusted key's public PEM (RFC 8725 §2.1's confusion).
    Hs256PublicKey,
    /// ES256 with the attacker's key, which the header carries as `jwk`.
    EmbeddedJwk,
    /// ES256 with the attacker's key, whose JWK Set the header's `jku` names.
    Jku,
}

/// A running IdP pair.
pub struct Idp {
    /// The trusted IdP's issuer identifier (RFC 8414): document host base URL + path.
    pub issuer: String,
    pub jwks_url: String,
    key: Arc<ClientKey>,
    /// The second IdP, which the AS must not trust.
    pub untrusted_issuer: String,
    untrusted_key: ClientKey,
    /// The attacker's JWK Set (for `jku`) and key.
    pub attacker_jwks_url: String,
    attacker_key: ClientKey,
}

fn jwks(k: &ClientKey) -> Value {
    json!({ "keys": [k.jwk] })
}

/// Publishes an issuer's metadata (RFC 8414 §3's path-inserted URL, and OIDC Discovery's
/// appended one) and JWK Set; returns the issuer.
fn publish_issuer(host: &DocumentHost, path: &str, key: &ClientKey) -> String {
    let issuer = format!("{}{path}", host.base_url);
    let jwks_url = host.publish(&format!("{path}/jwks.json"), Delivery::json(&jwks(key)));
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": jwks_url,
        "token_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["urn:ietf:params:oauth:grant-type:token-exchange"],
        "identity_chaining_requested_token_types_supported": ["urn:ietf:params:oauth:token-type:id-jag"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    for p in [
        format!("/.well-known/oauth-authorization-server{path}"),
        format!("/.well-known/openid-configuration{path}"),
        format!("{path}/.well-known/openid-configuration"),
        format!("{path}/.well-known/oauth-authorization-server"),
    ] {
        host.publish(&p, Delivery::json(&doc));
    }
    issuer
}

impl Idp {
    /// Makes the keys (the trusted one is `key` when the AS was configured with one) and
    /// publishes both IdPs and the attacker's JWK Set on `host`, the trusted IdP at `path`.
    pub fn publish(
        host: &DocumentHost,
        path: &str,
        key: Option<Arc<ClientKey>>,
    ) -> Result<Self, String> {
        let key = match key {
            Some(k) => k,
            None => Arc::new(ClientKey::generate()?),
        };
        let untrusted_key = ClientKey::generate()?;
        let attacker_key = ClientKey::generate()?;
        let issuer = publish_issuer(host, path, &key);
        let untrusted_issuer = publish_issuer(host, &format!("{path}-untrusted"), &untrusted_key);
        let attacker_jwks_url = host.publish(
            &format!("{path}-attacker/jwks.json"),
            Delivery::json(&jwks(&attacker_key)),
        );
        Ok(Self {
            jwks_url: format!("{issuer}/jwks.json"),
            issuer,
            key,
            untrusted_issuer,
            untrusted_key,
            attacker_jwks_url,
            attacker_key,
        })
    }

    /// The trusted IdP's JWK Set (what the AS was configured with).
    pub fn jwks(&self) -> Value {
        jwks(&self.key)
    }

    /// The untrusted IdP's JWK Set.
    pub fn untrusted_jwks(&self) -> Value {
        jwks(&self.untrusted_key)
    }

    /// Signs `claims` with the header `typ` (`None`: no `typ`) as `how` says.
    pub fn sign(
        &self,
        typ: Option<&str>,
        claims: &Map<String, Value>,
        how: Signing,
    ) -> Result<String, String> {
        let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
        let mut header = Map::new();
        let (alg, key) = match how {
            Signing::None => ("none", None),
            Signing::Hs256PublicKey => ("HS256", None),
            Signing::Trusted | Signing::UnknownKey => ("ES256", Some(&*self.key)),
            Signing::Untrusted => ("ES256", Some(&self.untrusted_key)),
            Signing::EmbeddedJwk | Signing::Jku => ("ES256", Some(&self.attacker_key)),
        };
        header.insert("alg".into(), json!(alg));
        if let Some(t) = typ {
            header.insert("typ".into(), json!(t));
        }
        if let Some(k) = key {
            header.insert("kid".into(), k.jwk["kid"].clone());
        }
        match how {
            Signing::EmbeddedJwk => {
                header.insert("jwk".into(), self.attacker_key.jwk.clone());
            }
            Signing::Jku => {
                header.insert("jku".into(), json!(self.attacker_jwks_url));
            }
            _ => {}
        }
        let signing_input = format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string())
        );
        let signature = match how {
            Signing::None => String::new(),
            Signing::Hs256PublicKey => {
                let k = jsonwebtoken::EncodingKey::from_secret(self.key.public_pem.as_bytes());
                jsonwebtoken::crypto::sign(
                    signing_input.as_bytes(),
                    &k,
                    jsonwebtoken::Algorithm::HS256,
                )
                .map_err(|e| format!("signing: {e}"))?
            }
            _ => {
                let unknown;
                let der: &[u8] = match how {
                    Signing::UnknownKey => {
                        unknown = ClientKey::generate()?.pkcs8;
                        &unknown
                    }
                    _ => &key.ok_or("no key")?.pkcs8,
                };
                let k = jsonwebtoken::EncodingKey::from_ec_der(der);
                jsonwebtoken::crypto::sign(
                    signing_input.as_bytes(),
                    &k,
                    jsonwebtoken::Algorithm::ES256,
                )
                .map_err(|e| format!("signing: {e}"))?
            }
        };
        Ok(format!("{signing_input}.{signature}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp() -> Idp {
        let key = Arc::new(ClientKey::generate().unwrap());
        Idp {
            issuer: "https://127.0.0.1:1/idp".into(),
            jwks_url: "https://127.0.0.1:1/idp/jwks.json".into(),
            key,
            untrusted_issuer: "https://127.0.0.1:1/idp-untrusted".into(),
            untrusted_key: ClientKey::generate().unwrap(),
            attacker_jwks_url: "https://127.0.0.1:1/idp-attacker/jwks.json".into(),
            attacker_key: ClientKey::generate().unwrap(),
        }
    }

    fn header(jwt: &str) -> Value {
        let h = jwt.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    }

    fn verifies_with(jwt: &str, k: &ClientKey) -> bool {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let key = DecodingKey::from_ec_components(
            k.jwk["x"].as_str().unwrap(),
            k.jwk["y"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(jwt, &key, &v).is_ok()
    }

    #[test]
    fn each_signing_is_what_it_says() {
        let i = idp();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(i.issuer));
        let trusted = i.sign(Some(ID_JAG_TYP), &claims, Signing::Trusted).unwrap();
        assert_eq!(header(&trusted)["typ"], ID_JAG_TYP);
        assert!(verifies_with(&trusted, &i.key));
        let other = i
            .sign(Some(ID_JAG_TYP), &claims, Signing::UnknownKey)
            .unwrap();
        assert_eq!(header(&other)["kid"], i.key.jwk["kid"]);
        assert!(!verifies_with(&other, &i.key));
        let none = i.sign(None, &claims, Signing::None).unwrap();
        assert!(none.ends_with('.') && header(&none).get("typ").is_none());
        assert_eq!(header(&none)["alg"], "none");
        let jwk = i
            .sign(Some(ID_JAG_TYP), &claims, Signing::EmbeddedJwk)
            .unwrap();
        assert_eq!(header(&jwk)["jwk"], i.attacker_key.jwk);
        assert!(verifies_with(&jwk, &i.attacker_key));
        let jku = i.sign(Some(ID_JAG_TYP), &claims, Signing::Jku).unwrap();
        assert_eq!(header(&jku)["jku"], json!(i.attacker_jwks_url));
        let hs = i
            .sign(Some(ID_JAG_TYP), &claims, Signing::Hs256PublicKey)
            .unwrap();
        assert_eq!(header(&hs)["alg"], "HS256");
        assert!(verifies_with(
            &i.sign(None, &claims, Signing::Untrusted).unwrap(),
            &i.untrusted_key
        ));
    }
}
