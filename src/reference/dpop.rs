//! DPoP at the reference (RFC 9449), written apart from the suite's proofs: its own parsing,
//! thumbprint and checks. The token endpoint validates an optional proof (§4.3) and binds what
//! it issues to the key (§5: `token_type: DPoP`, `cnf.jkt`; refresh tokens of public clients;
//! `dpop_jkt` codes, §10). `/mcp` takes `Authorization: DPoP` with a proof carrying `ath` and
//! a nonce it supplies (§7.1, §9), and refuses a bound token sent as Bearer (§7.2). Requests
//! without a proof are untouched: bearer tokens keep working for every other case.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Ref;

/// Algorithms the reference verifies proofs with (advertised in both metadata documents).
pub const ALGS: [&str; 2] = ["ES256", "EdDSA"];
/// How old a proof may be (RFC 9449 §11.1: "seconds or minutes"), and how far ahead.
const MAX_AGE_SECS: i64 = 120;
const MAX_AHEAD_SECS: i64 = 60;
/// jti values remembered (oldest forgotten first; §11.1 memory-exhaustion note).
const SEEN_MAX: usize = 10_000;
/// Nonces `/mcp` accepts: the last few it handed out.
const NONCES_MAX: usize = 32;

/// Replay cache and `/mcp` nonces, in the reference's store.
#[derive(Default)]
pub struct State {
    seen: HashSet<(String, String)>,
    order: VecDeque<((String, String), Instant)>,
    nonces: VecDeque<String>,
    /// Keys that once proved a nonce (the dpop-nonce.downgrade fault forgets to ask them again).
    nonce_keys: HashSet<String>,
}

/// What a valid proof gives the server: its key's thumbprint.
pub struct Proven {
    pub jkt: String,
    pub alg: String,
}

enum Refusal {
    Invalid(String),
    NonceNeeded,
}

fn part(v: &str) -> Option<Value> {
    if v.len() > 8192 {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v).ok()?).ok()
}

/// RFC 7638 §3.2, as the reference computes it.
fn jwk_thumbprint(jwk: &serde_json::Map<String, Value>) -> Option<String> {
    let g = |k: &str| jwk.get(k).and_then(Value::as_str);
    let members: Vec<(&str, &str)> = match g("kty")? {
        "EC" => vec![
            ("crv", g("crv")?),
            ("kty", "EC"),
            ("x", g("x")?),
            ("y", g("y")?),
        ],
        "OKP" => vec![("crv", g("crv")?), ("kty", "OKP"), ("x", g("x")?)],
        _ => return None,
    };
    let mut m = serde_json::Map::new();
    for (k, v) in members {
        m.insert(k.into(), json!(v));
    }
    // serde_json's map is ordered by key without `preserve_order`: lexicographic, compact.
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(Value::Object(m).to_string().as_bytes())))
}

/// The URI as RFC 3986 §6.2.2–6.2.3 normalise it (scheme and host lower case, default port
/// dropped), without query and fragment (RFC 9449 §4.3 item 9).
fn normalised(u: &str) -> Option<String> {
    let mut url = url::Url::parse(u).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

fn htu_matches(s: &Ref, htu: &str, expected: &str) -> bool {
    if s.fault("dpop-proof-validation.htu") {
        return true;
    }
    // The faulty servers compare strings: one the whole claim, one without normalising.
    if s.fault("dpop-htu-normalisation.query-fragment") {
        return htu == expected;
    }
    if s.fault("dpop-htu-normalisation.case-port") {
        let cut = htu.find(['?', '#']).unwrap_or(htu.len());
        return &htu[..cut] == expected;
    }
    normalised(htu).is_some_and(|h| Some(h) == normalised(expected))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The RFC 9449 §4.3 checks, in their order. `ath`: the access token presented with it (at
/// the RS). `nonce`: whether the server requires one of its nonces.
fn check(
    s: &Ref,
    headers: &HeaderMap,
    method: &Method,
    expected_htu: &str,
    token: Option<&str>,
    nonce: bool,
) -> Result<Option<Proven>, Refusal> {
    let bad = |m: &str| Err(Refusal::Invalid(m.to_string()));
    let values: Vec<&[u8]> = headers
        .get_all("dpop")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    // 1. Not more than one DPoP header.
    if values.len() > 1 && !s.fault("dpop-proof-validation.two-headers") {
        return bad("more than one DPoP header");
    }
    // 2. A single well-formed JWT.
    let jwt = std::str::from_utf8(values[0]).unwrap_or("");
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return bad("the DPoP header is not a JWT");
    }
    let (Some(Value::Object(h)), Some(Value::Object(c))) = (part(parts[0]), part(parts[1])) else {
        return bad("the DPoP proof is not a well-formed JWT");
    };
    // 4. typ.
    if h.get("typ").and_then(Value::as_str) != Some("dpop+jwt")
        && !s.fault("dpop-proof-validation.typ")
    {
        return bad("typ is not dpop+jwt");
    }
    // 5.–7. An asymmetric algorithm, verified with the public key in `jwk`, which holds no
    // private key.
    let alg = h.get("alg").and_then(Value::as_str).unwrap_or("");
    let jwk = h.get("jwk").and_then(Value::as_object);
    if jwk.is_some_and(|k| k.contains_key("d")) && !s.fault("dpop-proof-validation.private-jwk") {
        return bad("the jwk header holds a private key");
    }
    let message = format!("{}.{}", parts[0], parts[1]);
    let jkt = match (alg, jwk) {
        ("none", Some(k)) if s.fault("dpop-proof-validation.alg-none") => jwk_thumbprint(k),
        ("HS256", Some(k)) if s.fault("dpop-proof-validation.hs256") => {
            // The faulty server takes the MAC key from the header: anyone can sign.
            let secret = k
                .get("k")
                .and_then(Value::as_str)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .unwrap_or_default();
            let ok = jsonwebtoken::crypto::verify(
                parts[2],
                message.as_bytes(),
                &jsonwebtoken::DecodingKey::from_secret(&secret),
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap_or(false);
            if !ok {
                return bad("signature");
            }
            Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&secret)))
        }
        (_, None) if s.fault("dpop-proof-validation.no-jwk") => {
            h.get("kid").and_then(Value::as_str).map(str::to_string)
        }
        ("ES256" | "EdDSA", Some(k)) => {
            let g = |n: &str| k.get(n).and_then(Value::as_str).unwrap_or("");
            let (key, algorithm) = if alg == "ES256" && g("kty") == "EC" && g("crv") == "P-256" {
                (
                    jsonwebtoken::DecodingKey::from_ec_components(g("x"), g("y")),
                    jsonwebtoken::Algorithm::ES256,
                )
            } else if alg == "EdDSA" && g("kty") == "OKP" && g("crv") == "Ed25519" {
                (
                    jsonwebtoken::DecodingKey::from_ed_components(g("x")),
                    jsonwebtoken::Algorithm::EdDSA,
                )
            } else {
                return bad("the jwk does not fit alg");
            };
            let ok = key
                .ok()
                .and_then(|key| {
                    jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, algorithm).ok()
                })
                .unwrap_or(false);
            if !ok {
                return bad("the signature does not verify with the jwk");
            }
            jwk_thumbprint(k)
        }
        (_, None) => return bad("no jwk header"),
        _ => return bad("alg is not an asymmetric algorithm the server accepts"),
    };
    let Some(jkt) = jkt else {
        return bad("the jwk is not a usable public key");
    };
    // 3. The required claims.
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        c.get("jti").and_then(Value::as_str),
        c.get("htm").and_then(Value::as_str),
        c.get("htu").and_then(Value::as_str),
        c.get("iat").and_then(Value::as_i64),
    ) else {
        return bad("a required claim (jti, htm, htu, iat) is missing");
    };
    if jti.is_empty() || jti.len() > 256 {
        return bad("jti is empty or too long");
    }
    // 8. htm.
    if htm != method.as_str() && !s.fault("dpop-proof-validation.htm") {
        return bad("htm does not match the request's method");
    }
    // 9. htu.
    if !htu_matches(s, htu, expected_htu) {
        return bad("htu does not match the request's URI");
    }
    // 11. iat within the window (the faulty servers: any age, any future, or no skew at all).
    let age = now() - iat;
    let max_age = if s.fault("dpop-clock-skew.past") {
        3
    } else if s.fault("dpop-proof-validation.iat-stale") {
        i64::MAX
    } else {
        MAX_AGE_SECS
    };
    let max_ahead = if s.fault("dpop-clock-skew.future") {
        1
    } else if s.fault("dpop-proof-validation.iat-future") {
        i64::MAX
    } else {
        MAX_AHEAD_SECS
    };
    if age > max_age || -age > max_ahead {
        return bad("iat is outside the accepted window");
    }
    // 12. ath: the hash of the access token presented with the proof.
    if let Some(t) = token {
        let want = URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()));
        match c.get("ath").and_then(Value::as_str) {
            Some(a) if a == want => {}
            None if s.fault("dpop-proof-validation.no-ath") => {}
            _ => return bad("ath is not the hash of the access token"),
        }
    }
    // 10. The server's nonce, checked last so an invalid proof is told so first.
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let d = &mut st.dpop;
    if nonce {
        let sent = c.get("nonce").and_then(Value::as_str);
        let known = sent.is_some_and(|n| d.nonces.iter().any(|x| x == n));
        let forgiven =
            sent.is_none() && s.fault("dpop-nonce.downgrade") && d.nonce_keys.contains(&jkt);
        if (!known || s.fault("dpop-nonce")) && !forgiven {
            return Err(Refusal::NonceNeeded);
        }
        d.nonce_keys.insert(jkt.clone());
    }
    // Replay (§11.1): a jti seen before at this URI is refused while it could be accepted.
    let id = (expected_htu.to_string(), jti.to_string());
    if d.seen.contains(&id) && !s.fault("dpop-proof-validation.replay") {
        return bad("the proof's jti was used before");
    }
    let horizon = std::time::Duration::from_secs((MAX_AGE_SECS + MAX_AHEAD_SECS) as u64);
    while let Some((old, at)) = d.order.front() {
        if at.elapsed() < horizon && d.order.len() < SEEN_MAX {
            break;
        }
        d.seen.remove(old);
        d.order.pop_front();
    }
    d.seen.insert(id.clone());
    d.order.push_back((id, Instant::now()));
    Ok(Some(Proven {
        jkt,
        alg: alg.to_string(),
    }))
}

fn new_nonce(s: &Ref) -> String {
    let n = super::store::random_id(24);
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    st.dpop.nonces.push_back(n.clone());
    while st.dpop.nonces.len() > NONCES_MAX {
        st.dpop.nonces.pop_front();
    }
    n
}

/// The token endpoint's hook: `Ok(None)` without a proof (or when DPoP is not offered: the
/// header is then ignored, as by a server that never heard of it), `Ok(Some)` with a valid
/// one, else the `invalid_dpop_proof` answer (§5).
pub fn at_token_endpoint(
    s: &Ref,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<Proven>, Box<Response>> {
    if !s.offer.dpop {
        return Ok(None);
    }
    let endpoint = format!("{}/token", s.issuer);
    match check(s, headers, method, &endpoint, None, false) {
        Ok(p) => Ok(p),
        Err(Refusal::Invalid(why)) => Err(Box::new(super::token::token_error(
            s,
            400,
            "invalid_dpop_proof",
            &why,
        ))),
        Err(Refusal::NonceNeeded) => Err(Box::new(super::token::token_error(
            s,
            400,
            "use_dpop_nonce",
            "a nonce is required",
        ))),
    }
}

/// The key a token is bound to: the `cnf.jkt` of a JWT (read unverified: the RS verifies the
/// token itself right after, and a token whose claims were altered fails that), else the
/// store's record of an opaque token.
fn bound_key(s: &Ref, token: &str) -> Option<String> {
    if token.split('.').count() == 3 {
        let c = part(token.split('.').nth(1)?)?;
        return c.get("cnf")?.get("jkt")?.as_str().map(str::to_string);
    }
    let st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    st.access.get(token)?.jkt.clone()
}

/// `/mcp`'s refusal: the DPoP challenge (RFC 9449 §7.1), and beside it the Bearer challenge
/// every 401 of an MCP server carries (its `resource_metadata` is how a client discovers the
/// AS; RFC 9449 §7.1 lets a resource name both schemes).
fn challenge(s: &Ref, error: &str, desc: &str, nonce: Option<String>) -> Response {
    let mut r = super::json(401, json!({ "error": error, "error_description": desc }));
    let v = format!(
        "DPoP error=\"{error}\", error_description=\"{desc}\", algs=\"{}\"",
        ALGS.join(" ")
    );
    if let Ok(v) = v.parse() {
        r.headers_mut().append("www-authenticate", v);
    }
    if let Ok(v) = super::resource::challenge(s, None).parse() {
        r.headers_mut().append("www-authenticate", v);
    }
    if let Some(n) = nonce
        && let Ok(v) = n.parse()
    {
        r.headers_mut().insert("dpop-nonce", v);
    }
    r
}

/// `/mcp`'s hook. `None`: not a DPoP matter, the bearer path decides. `Some(Ok(token))`: a
/// DPoP-bound token presented with a valid proof of its key, to be judged like any token.
/// `Some(Err(answer))`: refused here.
pub fn at_resource(
    s: &Ref,
    headers: &HeaderMap,
    method: &Method,
) -> Option<Result<String, Box<Response>>> {
    if !s.offer.dpop {
        return None;
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        // §7.2: a DPoP-bound token sent as a bearer token is refused.
        if bound_key(s, token).is_some() && !s.fault("dpop-downgrade-bearer") {
            return Some(Err(Box::new(challenge(
                s,
                "invalid_token",
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
                None,
            ))));
        }
        return None;
    }
    if !scheme.eq_ignore_ascii_case("dpop") {
        return None;
    }
    let refuse =
        |error: &str, desc: &str, nonce| Some(Err(Box::new(challenge(s, error, desc, nonce))));
    let proven = match check(s, headers, method, &s.resource, Some(token), true) {
        Ok(Some(p)) => p,
        Ok(None) => return refuse("invalid_dpop_proof", "no DPoP proof", None),
        Err(Refusal::Invalid(why)) => return refuse("invalid_dpop_proof", &why, None),
        Err(Refusal::NonceNeeded) => {
            return refuse(
                "use_dpop_nonce",
                "the resource server requires a nonce in the DPoP proof",
                Some(new_nonce(s)),
            );
        }
    };
    // §4.3 item 12, §6: the proof's key must be the key the token is bound to.
    if bound_key(s, token).as_deref() != Some(proven.jkt.as_str()) {
        return refuse(
            "invalid_token",
            "the access token is not bound to the DPoP proof's key",
            None,
        );
    }
    Some(Ok(token.to_string()))
}

/// `dpop_jkt` of an authorization request (§10), kept only when DPoP is offered.
pub fn authorization_jkt(s: &Ref, v: Option<String>) -> Option<String> {
    v.filter(|_| s.offer.dpop)
}

/// The bindings of one token request, by grant: what `token.rs` asks of its proof.
pub struct Binding {
    /// The key the proof demonstrated, if any.
    pub jkt: Option<String>,
    /// The proof's algorithm.
    pub alg: String,
}

impl Binding {
    /// The key the access token is bound to (the dpop-token-type faults bind nothing, or
    /// nothing proven with EdDSA).
    pub fn access(&self, s: &Ref) -> Option<String> {
        let unbound =
            s.fault("dpop-token-type") || (s.fault("dpop-token-type.eddsa") && self.alg == "EdDSA");
        self.jkt.clone().filter(|_| !unbound)
    }
    /// §10: a code whose request named `dpop_jkt` is redeemed only with that key.
    pub fn code_ok(&self, s: &Ref, dpop_jkt: Option<&str>) -> bool {
        match dpop_jkt {
            Some(j) => self.jkt.as_deref() == Some(j) || s.fault("dpop-jkt-code-binding"),
            None => true,
        }
    }
    /// §5: a refresh token bound to a key (a public client's) is used only with that key.
    pub fn refresh_ok(&self, s: &Ref, bound: Option<&str>) -> bool {
        match bound {
            Some(j) => self.jkt.as_deref() == Some(j) || s.fault("dpop-rt-binding"),
            None => true,
        }
    }
}

/// Metadata members: AS metadata (RFC 9449 §5.1) and PRM (RFC 9728 §2).
pub fn advertise(s: &Ref, doc: &mut Value, prm: bool) {
    if !s.offer.dpop {
        return;
    }
    let mut algs: Vec<&str> = ALGS.to_vec();
    if s.fault("dpop-advertised") {
        algs.push("none");
        algs.push("HS256");
    }
    doc["dpop_signing_alg_values_supported"] = json!(algs);
    if prm {
        doc["dpop_bound_access_tokens_required"] = json!(false);
    }
}
