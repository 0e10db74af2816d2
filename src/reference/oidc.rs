//! The reference AS as an OpenID Provider, as far as the rs-id-token-as-at case needs: a code
//! granted with the `openid` scope brings an ID token (OIDC Core 1.0 §3.1.3.3), signed with the
//! same key as the JWT access tokens. Its `aud` is the client (OIDC Core 1.0 §2), never the MCP
//! resource, so the resource server refuses it (MCP 2025-11-25 §9.2) unless it checks only the
//! signature (the fault, in `jwt::verify` and `upstream::faulty_acceptance`).

use serde_json::json;

use super::Ref;
use super::store::{Pending, TokenGrant};

/// The scope value that asks for an ID token (OIDC Core 1.0 §3.1.2.1).
pub const OPENID: &str = "openid";

/// How long an ID token is valid: it is for the client to read once, at sign-in.
const ID_TOKEN_TTL_SECS: u64 = 300;

/// The ID token of a code grant whose scope holds `openid`: `iss`, `sub`, `aud` = the client,
/// `iat`, `exp`, and the authorization request's `nonce` when it sent one (OIDC Core 1.0 §2).
pub fn id_token(s: &Ref, p: &Pending, g: &TokenGrant) -> Option<String> {
    let openid = g
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|x| x == OPENID);
    if !openid {
        return None;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut c = json!({
        "iss": s.issuer, "sub": g.user.as_deref().unwrap_or(&s.username), "aud": g.client_id, "azp": g.client_id,
        "iat": t, "exp": t + ID_TOKEN_TTL_SECS,
    });
    if let Some(n) = &p.nonce {
        c["nonce"] = json!(n);
    }
    Some(s.signer().mint_id_token(&c))
}
