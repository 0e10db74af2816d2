//! DPoP proofs (RFC 9449 §4) the suite makes with its own keys, and the sending of a request
//! that carries one: at the token endpoint (§5) and at the MCP endpoint (§7, with `ath`). A
//! server nonce (§8, §9) asked for with `use_dpop_nonce` is used in one retry, and remembered
//! for later proofs to the same URL. Attacks break exactly one property of a proof (§4.3).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::context::{CaseCtx, Stop};
use crate::case::model::DpopSpec;
use crate::http::{Request, Response};

/// The algorithms the suite signs proofs with, in the order it prefers them.
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];

/// A key pair of the case: the private key (PKCS#8) and its public JWK.
#[derive(Debug, Clone)]
pub struct Key {
    pub alg: &'static str,
    pkcs8: Vec<u8>,
    /// The public key: the members RFC 7638 §3.2 hashes (and nothing else).
    pub jwk: Value,
}

impl Key {
    pub fn generate(alg: &str) -> Result<Key, String> {
        let (alg, algorithm) = match alg {
            "ES256" => ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256),
            "EdDSA" => ("EdDSA", &rcgen::PKCS_ED25519),
            other => return Err(format!("the suite makes no {other:?} DPoP keys")),
        };
        let kp =
            rcgen::KeyPair::generate_for(algorithm).map_err(|e| format!("key generation: {e}"))?;
        let raw = kp.public_key_raw();
        let jwk = if alg == "ES256" {
            if raw.len() != 65 {
                return Err("unexpected P-256 public key encoding".into());
            }
            json!({ "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&raw[33..65]) })
        } else {
            json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(raw) })
        };
        Ok(Key {
            alg,
            pkcs8: kp.serialize_der(),
            jwk,
        })
    }

    /// The JWK SHA-256 thumbprint (RFC 7638 §3): the required members in lexicographic order,
    /// no whitespace.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.jwk)
    }

    fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        if self.alg == "ES256" {
            jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)
        } else {
            jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8)
        }
    }

    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        if self.alg == "ES256" {
            jsonwebtoken::Algorithm::ES256
        } else {
            jsonwebtoken::Algorithm::EdDSA
        }
    }

    /// The private part as a JWK member (`d`), read from the PKCS#8 DER: the 32-byte private
    /// key follows `02 01 01 04 20` (SEC 1 ECPrivateKey) or `04 22 04 20` (Ed25519).
    fn private_d(&self) -> Option<String> {
        let marker: &[u8] = if self.alg == "ES256" {
            &[0x02, 0x01, 0x01, 0x04, 0x20]
        } else {
            &[0x04, 0x22, 0x04, 0x20]
        };
        let at = self.pkcs8.windows(marker.len()).position(|w| w == marker)? + marker.len();
        self.pkcs8
            .get(at..at + 32)
            .map(|d| URL_SAFE_NO_PAD.encode(d))
    }
}

/// RFC 7638 §3.2: the required members of the key type, in lexicographic order.
pub fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or("");
    let canonical = match s("kty") {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
        other => format!(r#"{{"kty":"{other}"}}"#),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the access token's ASCII.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A server's request for a nonce and what the retry with it got.
#[derive(Debug, Clone)]
pub struct NonceChallenge {
    pub url: String,
    pub status: u16,
    pub retry_status: Option<u16>,
    /// The retry was itself answered with `use_dpop_nonce` again.
    pub retry_challenged: bool,
}

/// The DPoP state of one case: its keys, the algorithms the server advertises, the nonces
/// servers handed out (by URL), the last proof sent and the nonce challenges seen.
#[derive(Debug, Default)]
pub struct State {
    keys: HashMap<String, Key>,
    /// `dpop_signing_alg_values_supported` as the gating check found it (empty: unknown).
    pub advertised: Vec<String>,
    nonces: HashMap<String, String>,
    pub last_proof: Option<String>,
    pub challenges: Vec<NonceChallenge>,
}

impl State {
    /// The default algorithm: the first of [`ALGS`] the server advertises, else ES256.
    pub fn default_alg(&self) -> &'static str {
        ALGS.into_iter()
            .find(|a| self.advertised.iter().any(|x| x == a))
            .unwrap_or("ES256")
    }

    /// The case's key `name`, made on first use with `alg` (or the default algorithm).
    pub fn key(&mut self, name: &str, alg: Option<&str>) -> Result<Key, String> {
        if let Some(k) = self.keys.get(name) {
            return Ok(k.clone());
        }
        let alg = alg.unwrap_or(self.default_alg());
        let k = Key::generate(alg)?;
        self.keys.insert(name.to_string(), k.clone());
        Ok(k)
    }

    pub fn nonce_for(&self, url: &str) -> Option<String> {
        self.nonces.get(&htu_of(url)).cloned()
    }
}

/// The URL without query and fragment: what `htu` carries (RFC 9449 §4.2).
pub fn htu_of(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url[..end].to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Scheme and host in upper case, and the scheme's default port spelt out when the URL has
/// none: the same URI after RFC 3986 §6.2.2–6.2.3 normalisation.
fn upper_with_port(htu: &str) -> String {
    let Some((scheme, rest)) = htu.split_once("://") else {
        return htu.to_uppercase();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let port = match (has_port, scheme.to_ascii_lowercase().as_str()) {
        (false, "https") => ":443",
        (false, "http") => ":80",
        _ => "",
    };
    format!(
        "{}://{}{port}{path}",
        scheme.to_uppercase(),
        authority.to_uppercase()
    )
}

/// Builds a proof for a request. `attack` breaks one property; `private-jwk` and `hs256` put
/// what must never be there into the header.
pub fn proof(
    key: &Key,
    htm: &str,
    htu: &str,
    ath: Option<&str>,
    nonce: Option<&str>,
    attack: Option<&str>,
) -> Result<String, String> {
    let a = attack.unwrap_or("");
    let jti: [u8; 16] = rand::random();
    let iat = now()
        + match a {
            "iat-stale" => -3600,
            "iat-future" => 3600,
            "iat-past-10" => -10,
            "iat-future-10" => 10,
            _ => 0,
        };
    let htm = match a {
        "htm" if htm == "POST" => "PUT".to_string(),
        "htm" => "POST".to_string(),
        _ => htm.to_string(),
    };
    let htu = match a {
        "htu" => format!("{htu}-elsewhere"),
        "htu-query-fragment" => format!("{htu}?authconform=1#fragment"),
        "htu-case-port" => upper_with_port(htu),
        _ => htu.to_string(),
    };
    let mut claims =
        json!({ "jti": URL_SAFE_NO_PAD.encode(jti), "htm": htm, "htu": htu, "iat": iat });
    if let Some(t) = ath
        && a != "no-ath"
    {
        claims["ath"] = json!(t);
    }
    if let Some(n) = nonce
        && a != "no-nonce"
    {
        claims["nonce"] = json!(n);
    }
    let mut header = json!({ "typ": if a == "typ" { "JWT" } else { "dpop+jwt" }, "alg": key.alg, "jwk": key.jwk });
    match a {
        "no-jwk" => {
            if let Some(o) = header.as_object_mut() {
                o.remove("jwk");
            }
            header["kid"] = json!(key.thumbprint());
        }
        "private-jwk" => {
            header["jwk"]["d"] = json!(key.private_d().ok_or("no private key part found")?);
        }
        _ => {}
    }
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    match a {
        // Unsigned: an attack string, not something a JWT library would build.
        "alg-none" => {
            header["alg"] = json!("none");
            Ok(format!("{}.{}.", enc(&header), enc(&claims)))
        }
        // A symmetric key carried in the header and the MAC made with it: anyone can.
        "hs256" => {
            let secret: [u8; 32] = rand::random();
            header["alg"] = json!("HS256");
            header["jwk"] = json!({ "kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret) });
            let input = format!("{}.{}", enc(&header), enc(&claims));
            let sig = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(&secret),
                jsonwebtoken::Algorithm::HS256,
            )
            .map_err(|e| format!("signing the proof: {e}"))?;
            Ok(format!("{input}.{sig}"))
        }
        _ => {
            let input = format!("{}.{}", enc(&header), enc(&claims));
            let sig =
                jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding_key(), key.algorithm())
                    .map_err(|e| format!("signing the proof: {e}"))?;
            Ok(format!("{input}.{sig}"))
        }
    }
}

/// Does this response ask for a nonce (RFC 9449 §8: 400 `use_dpop_nonce`; §9: 401 with a
/// `DPoP` challenge whose error is `use_dpop_nonce`)? Returns the nonce it supplies.
pub fn nonce_asked(r: &Response) -> Option<String> {
    let nonce = r.header("dpop-nonce")?.trim().to_string();
    let by_json = r
        .json()
        .and_then(|d| d.get("error")?.as_str().map(str::to_string))
        .is_some_and(|e| e == "use_dpop_nonce");
    let by_challenge = r
        .header_all("www-authenticate")
        .any(|v| v.contains("use_dpop_nonce"));
    (!nonce.is_empty() && nonce.len() <= 4096 && (by_json || by_challenge)).then_some(nonce)
}

/// Sends `req` with a DPoP proof as `spec` describes. The proof's `htm`/`htu` are the
/// request's; `token` (at the RS) gives `ath`. A `use_dpop_nonce` answer with a nonce is
/// retried once with it (both exchanges are recorded); a nonce any answer supplies is kept
/// for the next proof to that URL (§8.2).
pub async fn send(
    ctx: &mut CaseCtx<'_>,
    req: Request,
    spec: &DpopSpec,
    token: Option<&str>,
) -> Result<Response, Stop> {
    let key = ctx
        .dpop
        .key(&spec.key, spec.alg.as_deref())
        .map_err(Stop::Error)?;
    let htu = htu_of(&req.url);
    let ath = token.map(ath);
    let attack = spec.attack.as_deref();
    let mut nonce = ctx.dpop.nonce_for(&req.url);
    let mut tries = 0;
    loop {
        tries += 1;
        let mut r = req.clone();
        let p = match attack {
            Some("replay") => ctx
                .dpop
                .last_proof
                .clone()
                .ok_or_else(|| Stop::Error("no earlier proof to replay".to_string()))?,
            _ => proof(
                &key,
                &req.method,
                &htu,
                ath.as_deref(),
                nonce.as_deref(),
                attack,
            )
            .map_err(Stop::Error)?,
        };
        r = r.header("DPoP", &p);
        if attack == Some("two-headers") {
            let second = proof(
                &key,
                &req.method,
                &htu,
                ath.as_deref(),
                nonce.as_deref(),
                None,
            )
            .map_err(Stop::Error)?;
            r = r.header("DPoP", second);
        }
        ctx.dpop.last_proof = Some(p);
        let resp = ctx
            .send(r)
            .await
            .map_err(|e| Stop::Error(format!("request to {}: {e}", req.url)))?;
        let asked = nonce_asked(&resp);
        if let Some(n) = resp.header("dpop-nonce") {
            let n = n.trim();
            if !n.is_empty() && n.len() <= 4096 {
                ctx.dpop.nonces.insert(htu.clone(), n.to_string());
            }
        }
        if tries == 2 {
            if let Some(c) = ctx.dpop.challenges.last_mut() {
                c.retry_status = Some(resp.status);
                c.retry_challenged = asked.is_some();
            }
            return Ok(resp);
        }
        match asked {
            Some(n) if spec.nonce_retry && attack != Some("replay") => {
                ctx.note(format!(
                    "{} asked for a DPoP nonce ({} use_dpop_nonce): retrying once with it",
                    htu, resp.status
                ));
                ctx.dpop.challenges.push(NonceChallenge {
                    url: htu.clone(),
                    status: resp.status,
                    retry_status: None,
                    retry_challenged: false,
                });
                nonce = Some(n);
            }
            _ => return Ok(resp),
        }
    }
}

/// The access token an `Authorization` value carries (`DPoP <t>`, `Bearer <t>`).
pub fn token_of(authorization: &str) -> Option<&str> {
    let (_, t) = authorization.split_once(' ')?;
    Some(t.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1's RSA example.
        let jwk = json!({ "kty": "RSA", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw" });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn upper_case_and_default_port() {
        assert_eq!(
            upper_with_port("https://as.example/token"),
            "HTTPS://AS.EXAMPLE:443/token"
        );
        assert_eq!(
            upper_with_port("http://127.0.0.1:8080/token"),
            "HTTP://127.0.0.1:8080/token"
        );
    }

    #[test]
    fn proofs_for_both_algorithms_and_the_private_part() {
        for alg in ALGS {
            let k = Key::generate(alg).unwrap();
            let p = proof(&k, "POST", "https://a/t", None, None, None).unwrap();
            assert_eq!(p.split('.').count(), 3);
            let with_d = proof(&k, "POST", "https://a/t", None, None, Some("private-jwk")).unwrap();
            let h: Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(with_d.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(h["jwk"]["d"].as_str().map(str::len), Some(43));
        }
    }
}
