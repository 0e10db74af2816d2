//! Area 11, audience: a token is for one resource (RFC 8707 §2; MCP 2025-11-25 §11.1). At the
//! AS: naming the resource changes the audience of the token it issues. At the resource server:
//! a token must be one the AS issued for this resource, and a forged one must be refused (MCP
//! 2025-11-25 §9.2, §11.8; OAuth 2.1 §5.2).
//!
//! Every forged token starts from a real access token the AS issued to the suite, so a refusal
//! can only come from the change the attack made (the case first shows the real token works).
//! Tokens are taken apart and reassembled as strings: the attacks are byte strings to send,
//! not JWTs a library would agree to build (it rightly refuses `alg: none`). Signatures, where
//! an attack needs one, come from `jsonwebtoken`'s signing primitive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::tokens::{
    OTHER_RESOURCE, aud_names, jwt_object, jwt_parts, saved_access_token, token_claims,
};
use crate::http::Request;
use crate::step::{CaseCtx, StepResult, Stop};

// ---------------------------------------------------------------------------------------------
// At the AS (RFC 8707 §2)

/// `as-resource-ignored`: the access token obtained with `resource` has a different audience
/// from the one obtained without it (MCP 2025-11-25 §11.1: the AS binds tokens when it supports
/// the parameter). `on` names the token with `resource`; `args.without` the one without.
pub async fn resource_changes_aud(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let without = super::arg_str(args, "without", "t2").to_string();
    let resource = ctx
        .env
        .target
        .resource
        .clone()
        .ok_or_else(|| Stop::Skip("no MCP endpoint: no resource to name".into()))?;
    let with_at = saved_access_token(ctx, on)?;
    let without_at = saved_access_token(ctx, &without)?;
    let a1 = token_claims(ctx, &with_at)
        .await?
        .get("aud")
        .cloned()
        .unwrap_or(Value::Null);
    let a2 = token_claims(ctx, &without_at)
        .await?
        .get("aud")
        .cloned()
        .unwrap_or(Value::Null);
    ctx.note(format!("aud with resource: {a1}; without: {a2}"));
    if a1 == a2 {
        ctx.warn(format!(
            "the tokens have the same audience ({a1}) with and without resource: the AS ignores the parameter, so the MCP server must check the audience some other way"
        ));
        return Ok(());
    }
    if !aud_names(&a1, &resource) {
        ctx.warn(format!(
            "the audience differs with resource, but does not name {resource} (aud {a1})"
        ));
        return Ok(());
    }
    ctx.pass(format!(
        "naming the resource binds the token to it (aud {a1}; without resource: {a2})"
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// At the resource server: forged tokens

/// A JWT taken apart: header and claims as JSON objects, and the signature as sent.
struct Jwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: String,
}

fn parse_jwt(token: &str) -> Option<Jwt> {
    let [header, claims, signature] = jwt_parts(token)?;
    Some(Jwt {
        header: jwt_object(header)?,
        claims: jwt_object(claims)?,
        signature: signature.to_string(),
    })
}

fn b64(m: &Map<String, Value>) -> String {
    URL_SAFE_NO_PAD.encode(Value::Object(m.clone()).to_string())
}

/// `header.claims` signed with `key` (RFC 7515 §5.1 signing input).
pub(super) fn signed(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &EncodingKey,
    alg: Algorithm,
) -> Result<String, Stop> {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg)
        .map_err(|e| Stop::Error(format!("signing the forged token: {e}")))?;
    Ok(format!("{input}.{sig}"))
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The attacks that work on any token string, opaque or not.
const OPAQUE: &[&str] = &["truncated", "extended", "case-flipped"];

/// Bit flips and case flips keep the token's alphabet, so the RS sees a well-formed token.
fn flip_case(t: &str) -> String {
    t.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `rs-jwt-attacks.*`, `rs-time-claims.*`, `rs-scope-claim-tamper`, `rs-foreign-issuer`: a
/// token forged from the access token saved as `on` must be refused at the MCP endpoint.
/// `args.attack` names the forgery.
pub async fn forged_token(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let attack = args
        .get("attack")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| Stop::Error("forged_token needs args.attack".into()))?
        .to_string();
    let at = saved_access_token(ctx, on)?;
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint to present tokens to".into()));
    };
    // A key server for the jku / x5u attacks lives until the verdict is in.
    let mut key_server = None;
    let (forged, what) = if OPAQUE.contains(&attack.as_str()) {
        opaque_forgery(&attack, &at)?
    } else {
        let Some(jwt) = parse_jwt(&at) else {
            return Err(Stop::Skip(format!(
                "the access token is opaque (not a JWT): the {attack} forgery applies to JWTs only"
            )));
        };
        jwt_forgery(ctx, &attack, jwt, &mut key_server).await?
    };
    ctx.note(format!("forged token: {what}"));
    let r = crate::step::request::mcp_with_token(ctx, &resource, &forged, "a forged access token")
        .await?;
    if let Some(ks) = key_server.take() {
        let hits = ks.stop();
        if hits > 0 {
            ctx.warn(format!(
                "the resource server fetched the key URL the token named ({hits} request(s)): it lets a token choose where its keys come from (RFC 8725 §3.1 asks for an allow-list), which is also a server-side request forgery"
            ));
        }
    }
    match r.status {
        401 => {
            ctx.pass("refused with 401");
            Ok(())
        }
        s if (400..500).contains(&s) => {
            ctx.pass(format!(
                "refused with {s} (MCP 2025-11-25 §9.2 expects 401 invalid_token for a token it cannot accept)"
            ));
            Ok(())
        }
        s if s >= 500 => ctx.fail(format!(
            "the resource server failed with {s} on a forged token instead of refusing it with 401"
        )),
        s => ctx.fail(format!(
            "the resource server ACCEPTED the forged token ({s}): {what}"
        )),
    }
}

fn opaque_forgery(attack: &str, at: &str) -> Result<(String, String), Stop> {
    let n = at.chars().count();
    Ok(match attack {
        // Half the token: an RS that compares by prefix (or only the first bytes) takes it.
        "truncated" => (
            at.chars().take(n / 2).collect(),
            format!(
                "the real token cut to its first {} of {n} characters",
                n / 2
            ),
        ),
        "extended" => (
            format!("{at}AAAA"),
            "the real token with 4 characters appended".into(),
        ),
        "case-flipped" => {
            let f = flip_case(at);
            if f == at {
                return Err(Stop::Skip(
                    "the access token has no letters whose case could be flipped".into(),
                ));
            }
            (
                f,
                "the real token with the case of every letter flipped".into(),
            )
        }
        _ => return Err(Stop::Error(format!("unknown attack {attack:?}"))),
    })
}

async fn jwt_forgery(
    ctx: &mut CaseCtx<'_>,
    attack: &str,
    jwt: Jwt,
    key_server: &mut Option<KeyServer>,
) -> Result<(String, String), Stop> {
    let Jwt {
        mut header,
        mut claims,
        signature,
    } = jwt;
    let t = now();
    let keep_sig = |h: &Map<String, Value>, c: &Map<String, Value>| {
        format!("{}.{}.{signature}", b64(h), b64(c))
    };
    let shown = |h: &Map<String, Value>, c: &Map<String, Value>| {
        let mut c = c.clone();
        c.remove("sub");
        format!(
            "header {}, claims {}",
            Value::Object(h.clone()),
            Value::Object(c)
        )
    };
    Ok(match attack {
        "alg-none" => {
            header.insert("alg".into(), json!("none"));
            let tok = format!("{}.{}.", b64(&header), b64(&claims));
            (
                tok,
                format!("unsigned (alg none): {}", shown(&header, &claims)),
            )
        }
        "no-signature" => {
            let tok = format!("{}.{}.", b64(&header), b64(&claims));
            (tok, "the real token with its signature removed".into())
        }
        "flipped-signature" => {
            let mut raw = URL_SAFE_NO_PAD
                .decode(&signature)
                .map_err(|_| Stop::Error("the token's signature is not base64url".into()))?;
            if let Some(b) = raw.last_mut() {
                *b ^= 0x01;
            }
            if let Some(b) = raw.first_mut() {
                *b ^= 0x80;
            }
            let tok = format!(
                "{}.{}.{}",
                b64(&header),
                b64(&claims),
                URL_SAFE_NO_PAD.encode(raw)
            );
            (
                tok,
                "the real token with one bit flipped in the first and the last byte of its signature".into(),
            )
        }
        "hs256-public-key" => {
            let pem = as_public_key_pem(ctx, header.get("kid").and_then(Value::as_str)).await?;
            header.insert("alg".into(), json!("HS256"));
            let tok = signed(
                &header,
                &claims,
                &EncodingKey::from_secret(pem.as_bytes()),
                Algorithm::HS256,
            )?;
            (
                tok,
                "HS256, keyed with the AS's public key in PEM (algorithm confusion, RFC 8725 §2.1)"
                    .into(),
            )
        }
        "kid-traversal" => {
            header.insert("alg".into(), json!("HS256"));
            header.insert(
                "kid".into(),
                json!("../../../../../../../../../../dev/null"),
            );
            let tok = signed(
                &header,
                &claims,
                &EncodingKey::from_secret(b""),
                Algorithm::HS256,
            )?;
            (
                tok,
                "kid \"../../../../../../../../../../dev/null\", HS256 with an empty key (a server that reads the key from the file the kid names)".into(),
            )
        }
        "jwk-embedded" | "jku" | "x5u" | "foreign-issuer" => {
            let k = crate::client_key::ClientKey::generate().map_err(Stop::Error)?;
            let enc = EncodingKey::from_ec_der(&k.pkcs8);
            header.insert("alg".into(), json!("ES256"));
            let what = match attack {
                "jwk-embedded" => {
                    header.insert("kid".into(), k.jwk["kid"].clone());
                    header.insert("jwk".into(), k.jwk.clone());
                    "signed with the suite's own key, carried in the header's jwk (CVE-2018-0114)"
                        .to_string()
                }
                "jku" | "x5u" => {
                    let ks = KeyServer::start(&k).await?;
                    let url = if attack == "jku" {
                        header.insert("kid".into(), k.jwk["kid"].clone());
                        format!("{}/jwks.json", ks.origin)
                    } else {
                        format!("{}/cert.pem", ks.origin)
                    };
                    header.insert(attack.into(), json!(url));
                    *key_server = Some(ks);
                    format!("signed with the suite's own key, whose {attack} URL {url} is named in the header (served on 127.0.0.1)")
                }
                // Same kid, same claims: only the signature says who made it.
                _ => "the real token's header and claims, signed with a key of the suite's (same kid and iss)".to_string(),
            };
            (signed(&header, &claims, &enc, Algorithm::ES256)?, what)
        }
        "aud-tampered" => {
            claims.insert("aud".into(), json!(OTHER_RESOURCE));
            (
                keep_sig(&header, &claims),
                format!("aud changed to {OTHER_RESOURCE}, signature kept"),
            )
        }
        "iss-tampered" => {
            claims.insert("iss".into(), json!("https://attacker.authconform.test"));
            (
                keep_sig(&header, &claims),
                "iss changed to https://attacker.authconform.test, signature kept".into(),
            )
        }
        "scope-widened" => {
            let wider = widened_scope(ctx, claims.get("scope").and_then(Value::as_str));
            claims.insert("scope".into(), json!(wider));
            (
                keep_sig(&header, &claims),
                format!("scope claim widened to {wider:?}, signature kept"),
            )
        }
        "exp-past" => {
            claims.insert("exp".into(), json!(t - 3600));
            claims.insert("iat".into(), json!(t - 7200));
            (
                keep_sig(&header, &claims),
                "exp an hour ago (iat two hours ago), signature kept".into(),
            )
        }
        "nbf-future" => {
            claims.insert("nbf".into(), json!(t + 3600));
            claims.insert("iat".into(), json!(t + 3600));
            (
                keep_sig(&header, &claims),
                "nbf and iat an hour ahead, signature kept".into(),
            )
        }
        _ => return Err(Stop::Error(format!("unknown attack {attack:?}"))),
    })
}

/// The scope claim with every scope the resource advertises added (and a made-up one, so the
/// claim changes even when the token already held them all).
fn widened_scope(ctx: &CaseCtx<'_>, current: Option<&str>) -> String {
    let mut s = super::scopes::words(current.unwrap_or(""));
    if let Ok(d) = ctx.discovery("prm")
        && let Some(Value::Array(all)) = d.doc().and_then(|d| d.get("scopes_supported").cloned())
    {
        for v in all.iter().filter_map(Value::as_str) {
            if !s.iter().any(|x| x == v) {
                s.push(v.to_string());
            }
        }
    }
    s.push("admin".into());
    s.join(" ")
}

/// The AS's signing key (by `kid`, else the first signing key of its JWK Set) in PEM, as an
/// attacker would download and convert it.
async fn as_public_key_pem(ctx: &mut CaseCtx<'_>, kid: Option<&str>) -> Result<String, Stop> {
    let doc = ctx
        .discovery("asm")?
        .doc()
        .ok_or_else(|| Stop::Error("no authorization server metadata".into()))?;
    let Some(Value::String(uri)) = doc.get("jwks_uri") else {
        return Err(Stop::Skip(
            "the AS publishes no jwks_uri: no public key to confuse".into(),
        ));
    };
    let r = ctx
        .send(Request::new("GET", uri.clone(), "the AS's JWK Set"))
        .await
        .map_err(|e| Stop::Error(format!("jwks_uri {uri}: {e}")))?;
    let set = r.json().unwrap_or_default();
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key = keys
        .iter()
        .find(|k| kid.is_some() && k.get("kid").and_then(Value::as_str) == kid)
        .or_else(|| {
            keys.iter()
                .find(|k| k.get("use").is_none_or(|u| u == "sig"))
        })
        .ok_or_else(|| Stop::Error(format!("no signing key in the JWK Set at {uri}")))?;
    spki_pem(key).ok_or_else(|| {
        Stop::Skip(format!(
            "the AS key is neither P-256 nor RSA ({}): no PEM form to build",
            key.get("kty").and_then(Value::as_str).unwrap_or("?")
        ))
    })
}

/// A P-256 or RSA JWK as a SubjectPublicKeyInfo PEM (RFC 5480, RFC 8017 A.1.1): the bytes a
/// careless HS256 verifier uses as its secret.
fn spki_pem(jwk: &Value) -> Option<String> {
    let field = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    let der = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 0x04||x||y }
            let mut d = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
            d.push(0x04);
            d.extend(x);
            d.extend(y);
            d
        }
        "RSA" => {
            let rsa_key = der_seq(&[der_uint(&field("n")?), der_uint(&field("e")?)]);
            let mut bits = vec![0u8];
            bits.extend(rsa_key);
            // rsaEncryption with NULL parameters.
            let alg = hex_bytes("300d06092a864886f70d0101010500");
            der_seq(&[alg, der_tlv(0x03, &bits)])
        }
        _ => return None,
    };
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Some(pem)
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect()
}

fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | len.len() as u8);
        out.extend(len);
    }
    out.extend_from_slice(body);
    out
}

fn der_seq(items: &[Vec<u8>]) -> Vec<u8> {
    der_tlv(0x30, &items.concat())
}

/// A positive INTEGER: leading zeros dropped, one added when the high bit is set.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    let mut body = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend(v);
    der_tlv(0x02, &body)
}

/// A plain-http server on 127.0.0.1 serving the suite's key as a JWK Set and as a
/// certificate, counting requests (a fetch is evidence the RS follows token-supplied URLs).
struct KeyServer {
    origin: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    async fn start(k: &crate::client_key::ClientKey) -> Result<Self, Stop> {
        let kp = rcgen::KeyPair::try_from(k.pkcs8.as_slice())
            .map_err(|e| Stop::Error(format!("key: {e}")))?;
        let cert = rcgen::CertificateParams::new(vec!["attacker.authconform.test".to_string()])
            .and_then(|p| p.self_signed(&kp))
            .map_err(|e| Stop::Error(format!("certificate: {e}")))?
            .pem();
        let jwks = json!({ "keys": [k.jwk] }).to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Stop::Error(format!("key server: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Stop::Error(format!("key server: {e}")))?
            .port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (h, jwks, cert) = (h.clone(), jwks.clone(), cert.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                if uri.path().ends_with(".pem") {
                    ([("content-type", "application/x-pem-file")], cert)
                } else {
                    ([("content-type", "application/json")], jwks)
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            origin: format!("http://127.0.0.1:{port}"),
            hits,
            task,
        })
    }

    fn stop(self) -> usize {
        self.task.abort();
        self.hits.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_spki_pem_parses_back() {
        let k = crate::client_key::ClientKey::generate().unwrap();
        let pem = spki_pem(&k.jwk).unwrap();
        // The PEM the suite builds from the JWK is the one rcgen writes for the same key.
        assert_eq!(pem.trim(), k.public_pem.trim());
    }

    #[test]
    fn der_uint_adds_sign_byte() {
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0x00, 0x01]), vec![0x02, 0x01, 0x01]);
    }

    #[test]
    fn opaque_forgeries_differ_from_the_token() {
        let t = "AbCdEfGhIjKlMnOpQrSt";
        for a in OPAQUE {
            let (f, _) = opaque_forgery(a, t).unwrap();
            assert_ne!(f, t, "{a}");
        }
    }
}
