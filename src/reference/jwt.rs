//! The reference's JWT access tokens (RFC 9068): when a client names the resource (RFC 8707),
//! the access token is a JWT for that audience, ES256-signed by the AS key published in
//! `jwks.json`, and the reference RS verifies it locally, as most MCP servers do. Tokens without
//! a resource stay opaque (bound to no audience, so the RS refuses them): the same split node
//! oidc-provider makes.
//!
//! The faults of the forged-token cases live here: each one disables one step of the
//! verification, the way real resource servers get it wrong. The checks that forge tokens
//! share no code with this file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use super::Ref;

/// How long a retired signing key stays published and trusted: longer than anything it signed
/// lives (access tokens, ID tokens), so no token still valid loses the key that verifies it
/// (OpenID Connect Core 1.0 §10.1.1: keep recently decommissioned keys for a while).
const RETIRED_KEEP: Duration = Duration::from_secs(300 + 60);

/// The AS's signing keys: the current one signs; retired ones are still published and still
/// verify until [`RETIRED_KEEP`] has passed.
pub struct KeyRing {
    current: Arc<Signer>,
    retired: Vec<(Arc<Signer>, Instant)>,
}

impl KeyRing {
    pub fn new(first: Signer) -> Self {
        Self {
            current: Arc::new(first),
            retired: Vec::new(),
        }
    }

    pub fn current(&self) -> Arc<Signer> {
        self.current.clone()
    }

    /// Every key a verifier may need: the current one first, then the retired ones not yet
    /// past their keep time.
    pub fn published(&self) -> Vec<Arc<Signer>> {
        let now = Instant::now();
        std::iter::once(self.current.clone())
            .chain(
                self.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }

    /// A new current key under a new `kid`. The old one is retired (kept), unless `drop_old`:
    /// the asm-jwks-rotation fault, an AS that swaps its key out at once.
    pub fn rotate(&mut self, drop_old: bool) -> Result<String, String> {
        let next = Arc::new(Signer::generate()?);
        let old = std::mem::replace(&mut self.current, next);
        let now = Instant::now();
        self.retired.retain(|(_, until)| *until > now);
        if drop_old {
            self.retired.clear();
        } else {
            self.retired.push((old, now + RETIRED_KEEP));
        }
        Ok(self.current.kid.clone())
    }
}

/// The AS signing key.
pub struct Signer {
    enc: EncodingKey,
    dec: DecodingKey,
    pub kid: String,
    /// The public key as published in `jwks.json`.
    pub jwk: Value,
    /// The public key in PEM (SPKI): what an RS that lets the token pick HS256 would use as
    /// the HMAC secret (the key-confusion fault).
    spki_pem: String,
}

impl Signer {
    pub fn generate() -> Result<Self, String> {
        let kp = rcgen::KeyPair::generate().map_err(|e| format!("AS key: {e}"))?;
        let raw = kp.public_key_raw();
        if raw.len() != 65 {
            return Err("AS key: unexpected P-256 point encoding".into());
        }
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&raw[1..33]),
            URL_SAFE_NO_PAD.encode(&raw[33..65]),
        );
        let kid = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        Ok(Self {
            enc: EncodingKey::from_ec_der(&kp.serialize_der()),
            dec: DecodingKey::from_ec_components(&x, &y).map_err(|e| format!("AS key: {e}"))?,
            jwk: json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig",
                         "alg": "ES256", "kid": kid }),
            kid,
            spki_pem: kp.public_key_pem(),
        })
    }

    /// Signs an access token's claims (`typ: at+jwt`, RFC 9068 §2.1).
    pub fn mint(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap_or_default()
    }

    /// Signs an OpenID Connect ID token (OIDC Core 1.0 §2, `typ: JWT`) with the same AS key:
    /// only its `aud` (the client) tells it from an access token, which is why the RS checks
    /// `aud` (MCP 2025-11-25 §9.2) and not only the signature.
    pub fn mint_id_token(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap_or_default()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The claims of a new access token (RFC 9068 §2.2).
pub fn claims(
    s: &Ref,
    g: &super::store::TokenGrant,
    aud: &str,
    scope: Option<&str>,
    ttl: u64,
) -> Value {
    let t = now();
    // RFC 9068 §2.2: a client acting for itself is its own subject.
    let sub = if g.machine {
        &g.client_id
    } else {
        g.user.as_ref().unwrap_or(&s.username)
    };
    let mut c = json!({
        "iss": s.issuer, "sub": sub, "aud": aud, "client_id": g.client_id,
        "iat": t, "nbf": t, "exp": t + ttl, "jti": super::store::random_id(16),
    });
    if let Some(sc) = scope {
        c["scope"] = json!(sc);
    }
    super::token_exchange::add_may_act(s, g, &mut c);
    // RFC 9449 §6.1: a DPoP-bound token names its key's thumbprint.
    if let Some(j) = &g.jkt {
        c["cnf"] = json!({ "jkt": j });
    }
    c
}

fn part(v: &str) -> Option<Value> {
    URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// What the RS learned from a JWT it accepted.
pub struct Verified {
    pub claims: Value,
}

/// Verifies a JWT access token as the RS: the signature with the AS key and ES256 only (the
/// token's `alg`, `jwk`, `jku` and `x5u` choose nothing, RFC 8725 §3.1; its `kid` only picks
/// among the AS's own published keys), then `iss`, `aud` = this resource, `exp` and `nbf` with
/// no leeway beyond 5 s. `None`: refused.
pub fn verify(s: &Ref, token: &str) -> Option<Verified> {
    let mut parts = token.split('.');
    let (h, p, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = part(h)?;
    let claims = part(p)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let keys = s.verification_keys();
    let kid = header.get("kid").and_then(Value::as_str);
    let signer = keys
        .iter()
        .find(|k| Some(k.kid.as_str()) == kid)
        .or(keys.first())?;
    // The faults: each is one way a real RS lets a forged token through.
    let lenient = (s.fault("rs-jwt-attacks.alg-none") && alg.eq_ignore_ascii_case("none"))
        || (s.fault("rs-jwt-attacks.no-signature") && sig.is_empty())
        || (s.fault("rs-jwt-attacks.jku") && header.get("jku").is_some())
        || (s.fault("rs-jwt-attacks.x5u") && header.get("x5u").is_some())
        // "Decode, then check the claims": no signature verification at all.
        || s.fault("rs-jwt-attacks.flipped-signature")
        || s.fault("rs-scope-claim-tamper")
        || s.fault("rs-foreign-issuer")
        || s.fault("rs-time-claims.exp")
        || s.fault("rs-time-claims.nbf")
        || s.fault("rs-jwt-attacks.aud-tampered")
        || s.fault("rs-jwt-attacks.iss-tampered");
    let signed = if lenient {
        true
    } else if s.fault("rs-jwt-attacks.hs256-public-key") && alg == "HS256" {
        hmac_ok(token, signer.spki_pem.as_bytes())
    } else if s.fault("rs-jwt-attacks.kid-traversal")
        && alg == "HS256"
        && header
            .get("kid")
            .and_then(Value::as_str)
            .is_some_and(|k| k.contains(".."))
    {
        // The key is read from the file the kid names: /dev/null is empty.
        hmac_ok(token, b"")
    } else if s.fault("rs-jwt-attacks.jwk-embedded") && header.get("jwk").is_some() {
        let jwk = &header["jwk"];
        DecodingKey::from_ec_components(
            jwk["x"].as_str().unwrap_or(""),
            jwk["y"].as_str().unwrap_or(""),
        )
        .ok()
        .is_some_and(|k| signature_ok(token, &k))
    } else {
        signature_ok(token, &signer.dec)
    };
    if !signed {
        return None;
    }
    let t = now();
    let num = |k: &str| claims.get(k).and_then(Value::as_u64);
    if !s.fault("rs-time-claims.exp") && num("exp").is_none_or(|e| e + 5 < t) {
        return None;
    }
    if !s.fault("rs-time-claims.nbf") && num("nbf").is_some_and(|n| n > t + 5) {
        return None;
    }
    if !s.fault("rs-jwt-attacks.iss-tampered")
        && claims.get("iss").and_then(Value::as_str) != Some(s.issuer.as_str())
    {
        return None;
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == s.resource,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(s.resource.as_str())),
        _ => false,
    };
    // rs-id-token-as-at's fault: any audience will do (an ID token's is the client_id).
    if !aud_ok
        && !super::token_exchange::any_known_audience(s, &claims)
        && !s.fault("rs-jwt-attacks.aud-tampered")
        && !s.fault("rs-aud-wrong")
        && !s.fault("rs-id-token-as-at")
    {
        return None;
    }
    Some(Verified { claims })
}

/// The faults of the forgeries built from scratch (`rs-jwt-attacks.forged-*`): a stateless RS
/// that trusts a token claiming this issuer and audience when it is unsigned
/// (`forged-none`), or when its `kid` names no key of the AS (`forged-unknown-key`: the
/// server, finding no key to check with, skips the check). Its claims (scope included) are
/// then taken as they are. `None`: these faults do not apply; the normal path decides.
pub fn forged_acceptance(s: &Ref, token: &str) -> Option<Value> {
    let none = s.fault("rs-jwt-attacks.forged-none");
    let unknown = s.fault("rs-jwt-attacks.forged-unknown-key");
    if !none && !unknown {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p) = (parts.next()?, parts.next()?);
    let header = part(h)?;
    let claims = part(p)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kid = header.get("kid").and_then(Value::as_str);
    let known = s
        .verification_keys()
        .iter()
        .any(|k| Some(k.kid.as_str()) == kid);
    let lets_through = (none && alg.eq_ignore_ascii_case("none"))
        || (unknown && !alg.eq_ignore_ascii_case("none") && !known);
    let ours = claims.get("iss").and_then(Value::as_str) == Some(s.issuer.as_str());
    (lets_through && ours).then_some(claims)
}

/// ES256 with the AS key, nothing else.
fn signature_ok(token: &str, key: &DecodingKey) -> bool {
    let mut v = Validation::new(Algorithm::ES256);
    // Claims are judged by the caller (with the faults above); only the signature here.
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(token, key, &v).is_ok()
}

fn hmac_ok(token: &str, secret: &[u8]) -> bool {
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret), &v).is_ok()
}
