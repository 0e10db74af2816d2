//! Enterprise-managed authorization (MCP's SEP-990 extension): the Identity Assertion JWT
//! Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant, ID-JAG). An enterprise
//! IdP the reference trusts signs an ID-JAG for a client; the client, authenticated as it
//! registered, redeems it here as an RFC 7523 §2.1 jwt-bearer grant.
//!
//! The reference holds the JWK Set of each IdP it was told about (`Options::id_jag_idps`); only
//! the ones marked trusted are accepted. Everything is parsed and checked here, by hand where
//! the check is the point (the `typ` header, `aud`, `client_id`, `resource`, `scope`), with
//! jsonwebtoken for the ES256 signature alone.

use std::collections::{HashSet, VecDeque};

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::Ref;
use super::store::TokenGrant;
use super::token::{issue, token_error};

/// The `typ` an ID-JAG's header carries (draft §3.1).
pub const TYP: &str = "oauth-id-jag+jwt";
/// What the metadata's `authorization_grant_profiles_supported` lists (draft §7.2).
pub const PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: i64 = 30;
/// Remembered `jti`s (the oldest forgotten first).
const JTI_CAP: usize = 4096;

/// An IdP whose JWK Set the reference holds. Only a `trusted` one's ID-JAGs are accepted; an
/// untrusted one is known so that the idjag-issuer-trust fault can model a server that takes
/// any issuer whose own keys verify its assertion.
#[derive(Debug, Clone)]
pub struct IdJagIdp {
    pub issuer: String,
    /// `{"keys": [...]}`: P-256 keys (ES256).
    pub jwks: Value,
    pub trusted: bool,
}

/// The `jti`s of redeemed ID-JAGs, bounded.
#[derive(Debug, Default)]
pub struct SeenJtis {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl SeenJtis {
    /// False when `jti` was seen before.
    fn first_use(&mut self, jti: &str) -> bool {
        if self.set.contains(jti) {
            return false;
        }
        if self.order.len() >= JTI_CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(jti.to_string());
        self.set.insert(jti.to_string());
        true
    }
}

/// The JSON of one base64url JWT segment.
fn segment(jwt: &str, i: usize) -> Option<serde_json::Map<String, Value>> {
    let part = jwt.split('.').nth(i)?;
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Is this jwt-bearer assertion meant as an ID-JAG (its `typ`, or an issuer that is one of the
/// IdPs)? Such assertions go to [`grant`] after client authentication; the rest stay RFC 7523
/// §2.1 grants of the client_credentials extension, authenticated by the assertion alone.
pub fn routed_here(s: &Ref, jwt: &str) -> bool {
    if !s.offer.id_jag || s.id_jag_idps.is_empty() {
        return false;
    }
    let typ =
        segment(jwt, 0).and_then(|h| h.get("typ").and_then(Value::as_str).map(str::to_string));
    let iss =
        segment(jwt, 1).and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_string));
    typ.as_deref() == Some(TYP) || iss.is_some_and(|i| s.id_jag_idps.iter().any(|p| p.issuer == i))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Verifies the ES256 signature with the keys of `idp` (by `kid` when the header names one).
/// Header `jwk`, `jku` and `x5u` are never followed: the IdP's keys are the configured ones.
fn signature_ok(idp: &IdJagIdp, jwt: &str, kid: Option<&str>) -> bool {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let keys = idp.jwks["keys"].as_array().cloned().unwrap_or_default();
    let mut v = Validation::new(Algorithm::ES256);
    // The claims are checked by hand below; here only the signature.
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    keys.iter()
        .filter(|k| kid.is_none() || k["kid"].as_str() == kid)
        .filter_map(|k| DecodingKey::from_ec_components(k["x"].as_str()?, k["y"].as_str()?).ok())
        .any(|key| jsonwebtoken::decode::<Value>(jwt, &key, &v).is_ok())
}

/// Does a trusted IdP's signature verify on this ID-JAG-typed JWT? (Only the
/// idjag-not-a-bearer fault's MCP endpoint asks: a correct one takes no ID-JAG as a token.)
pub fn verifies(s: &Ref, jwt: &str) -> bool {
    let (Some(h), Some(c)) = (segment(jwt, 0), segment(jwt, 1)) else {
        return false;
    };
    let iss = c.get("iss").and_then(Value::as_str).unwrap_or("");
    h.get("typ").and_then(Value::as_str) == Some(TYP)
        && s.id_jag_idps.iter().any(|p| {
            p.trusted
                && p.issuer == iss
                && signature_ok(p, jwt, h.get("kid").and_then(Value::as_str))
        })
}

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The ID-JAG redemption (draft §4.4 and §4.4.1, RFC 7521 §5.2, RFC 7523 §3) by the client the
/// token endpoint authenticated. Each refusal is `invalid_grant` (RFC 7523 §3.1), except a scope
/// or resource the request asks beyond the grant (`invalid_scope`, `invalid_target`).
pub fn grant(s: &Ref, client_id: &str, public: bool, get: Get) -> Response {
    let refuse = |why: &str| token_error(s, 400, "invalid_grant", why);
    // Draft §8.1: for confidential clients only.
    if public {
        return token_error(
            s,
            400,
            "unauthorized_client",
            "ID-JAGs are redeemed by confidential clients only",
        );
    }
    let Some(jwt) = get("assertion") else {
        return token_error(s, 400, "invalid_request", "assertion is required");
    };
    let (Some(header), Some(claims)) = (segment(&jwt, 0), segment(&jwt, 1)) else {
        return refuse("the assertion is not a JWT");
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    // Draft §3: the typ header MUST be oauth-id-jag+jwt (an ID token or a generic JWT is not one).
    if header.get("typ").and_then(Value::as_str) != Some(TYP) && !s.fault("idjag-typ") {
        return refuse("the assertion's typ is not oauth-id-jag+jwt");
    }
    // The issuer must be an IdP this server trusts, and the signature its key's.
    let iss = text("iss").unwrap_or_default();
    let trusted = |p: &&IdJagIdp| p.issuer == iss && (p.trusted || s.fault("idjag-issuer-trust"));
    let Some(idp) = s.id_jag_idps.iter().find(trusted) else {
        return refuse("the assertion's issuer is not a trusted identity provider");
    };
    let alg_ok = header.get("alg").and_then(Value::as_str) == Some("ES256");
    let kid = header.get("kid").and_then(Value::as_str);
    let verified = alg_ok && signature_ok(idp, &jwt, kid);
    if !verified && !s.fault("idjag-signature") {
        return refuse("the assertion's signature does not verify with the issuer's key");
    }
    // Draft §4.4.1: aud is this server's issuer (a string, or an array of exactly that one).
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == s.issuer,
        Some(Value::Array(a)) => a.len() == 1 && a[0].as_str() == Some(s.issuer.as_str()),
        _ => false,
    };
    if !aud_ok && !s.fault("idjag-audience") {
        return refuse("the assertion's aud is not this authorization server's issuer");
    }
    // Draft §4.4.1: client_id names the client that authenticated.
    if text("client_id").as_deref() != Some(client_id) && !s.fault("idjag-client-binding") {
        return refuse("the assertion's client_id is not the authenticated client");
    }
    // RFC 7523 §3 items 4 and 6: an exp in the future; an iat not in the future.
    if !s.fault("idjag-time") {
        let t = now();
        match claims.get("exp").and_then(Value::as_i64) {
            Some(exp) if exp + LEEWAY_SECS > t => {}
            Some(_) => return refuse("the assertion has expired"),
            None => return refuse("the assertion has no exp"),
        }
        match claims.get("iat").and_then(Value::as_i64) {
            Some(iat) if iat <= t + LEEWAY_SECS => {}
            Some(_) => return refuse("the assertion was issued in the future"),
            None => return refuse("the assertion has no iat"),
        }
    }
    let Some(jti) = text("jti") else {
        return refuse("the assertion has no jti");
    };
    if text("sub").is_none() {
        return refuse("the assertion has no sub");
    }
    // Draft §4.4.1, RFC 8707 §2: the resource claim names what may be granted; this server
    // serves one resource. A `resource` in the request must be within the claim.
    let claimed: Vec<String> = match claims.get("resource") {
        Some(Value::String(r)) => vec![r.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect(),
        _ => vec![s.resource.clone()],
    };
    let resource = if s.fault("idjag-resource-binding") {
        // The faulty server takes the request's resource, or the claim's, unexamined.
        get("resource").or_else(|| claimed.first().cloned())
    } else {
        if !claimed.contains(&s.resource) {
            return token_error(
                s,
                400,
                "invalid_target",
                "the assertion is for a resource this server does not serve",
            );
        }
        if get("resource").is_some_and(|r| r != s.resource) {
            return token_error(
                s,
                400,
                "invalid_target",
                "the requested resource is not the one the assertion grants",
            );
        }
        Some(s.resource.clone())
    };
    // Draft §4.4.1, RFC 6749 §3.3: the grant's scope bounds what is issued; asking for more is
    // refused.
    let granted: Vec<String> = text("scope")
        .map(|sc| {
            sc.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let scope = match get("scope") {
        Some(asked) if s.fault("idjag-scope") => Some(asked),
        Some(asked) => {
            let wanted: Vec<&str> = asked.split(' ').filter(|x| !x.is_empty()).collect();
            if !wanted.iter().all(|w| granted.iter().any(|g| g == w)) {
                return token_error(
                    s,
                    400,
                    "invalid_scope",
                    "the requested scope is beyond the assertion's scope",
                );
            }
            Some(wanted.join(" "))
        }
        None => Some(granted.join(" ")),
    }
    .filter(|x| !x.is_empty());
    // RFC 7523 §3 item 7 (MAY): each ID-JAG is redeemed once. The faulty cache breaks instead.
    let first = s
        .id_jag_jtis
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_use(&format!("{iss} {jti}"));
    if !first {
        if s.fault("idjag-replay") {
            return token_error(s, 500, "server_error", "jti cache conflict");
        }
        return refuse("the assertion was redeemed before");
    }
    // The faulty server issues a token bound to no resource.
    let resource = if s.fault("idjag-accepted") {
        None
    } else {
        resource
    };
    let mut g = TokenGrant::new(client_id.to_string(), resource, scope);
    g.user = text("sub");
    // Draft §4.4.3: no refresh token; the ID-JAG is re-requested instead.
    issue(s, g, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jti_cache_refuses_a_second_use_and_stays_bounded() {
        let mut seen = SeenJtis::default();
        assert!(seen.first_use("a"));
        assert!(!seen.first_use("a"));
        for i in 0..(JTI_CAP + 10) {
            seen.first_use(&i.to_string());
        }
        assert_eq!(seen.order.len(), JTI_CAP);
        assert_eq!(seen.set.len(), JTI_CAP);
        // The oldest were forgotten first.
        assert!(seen.first_use("a"));
    }

    #[test]
    fn segments_are_read_without_trusting_them() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"oauth-id-jag+jwt"}"#);
        let c = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.test"}"#);
        let jwt = format!("{h}.{c}.");
        assert_eq!(segment(&jwt, 0).unwrap()["typ"], "oauth-id-jag+jwt");
        assert_eq!(segment(&jwt, 1).unwrap()["iss"], "https://idp.test");
        assert!(segment("not-a-jwt", 1).is_none());
        assert!(
            segment(&format!("{h}.W10."), 1).is_none(),
            "a JSON array is no claims set"
        );
    }
}
