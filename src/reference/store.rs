//! The reference AS's state: browser sessions, authorization transactions waiting for login
//! and consent, codes, access and refresh tokens. In memory, bounded.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long the reference's codes live (O21 4.1.2 recommends at most 10 minutes). Short, so
/// the code-lifetime case can observe expiry within a test run; the built-in profile says so.
/// Long enough for a case's second browser login to finish while its first code waits.
pub const CODE_TTL: Duration = Duration::from_secs(10);
/// Access tokens live 3 s: short, so at-expired-rs observes expiry without slowing a run.
pub const ACCESS_TTL_SECS: u64 = 3;
/// Refresh tokens expire after this long unused (O21 4.3.3 lets an AS expire idle refresh
/// tokens). Short, so rt-inactivity-expiry observes it; the built-in profile states it.
pub const REFRESH_IDLE: Duration = Duration::from_secs(6);
/// Entries kept per map at most; a fuzz campaign must not grow the reference without limit.
const CAP: usize = 10_000;

#[derive(Default)]
pub struct Session {
    pub user: Option<String>,
    pub consented: HashSet<String>,
}

/// An authorization request that passed validation and waits for login and consent.
#[derive(Clone)]
pub struct Pending {
    pub client_id: String,
    pub public: bool,
    /// The redirect URI the response goes to (registered, validated).
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (then the token request must repeat it).
    pub redirect_sent: bool,
    pub state: Option<String>,
    pub challenge: Option<String>,
    pub method: String,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// OIDC `nonce`, echoed in the ID token (OIDC Core 1.0 §3.1.2.1).
    pub nonce: Option<String>,
    pub created: Instant,
    /// The user who logged in for this request (known once the browser session has one).
    pub user: Option<String>,
    /// `dpop_jkt` of the request (RFC 9449 §10): the code is redeemed only with that key.
    pub dpop_jkt: Option<String>,
}

#[derive(Clone)]
pub struct CodeGrant {
    pub p: Pending,
    pub issued: Instant,
    pub used: bool,
    /// Tokens issued from this code (revoked when the code is replayed, O21 4.1.3).
    pub tokens: Vec<String>,
    /// The token family the code's redemption started (the lifecycle fault
    /// `lifecycle.code-replay-after-refresh` finds the code of a family through it).
    pub family: Option<String>,
}

#[derive(Clone)]
pub struct TokenGrant {
    /// Every token descended from one authorization (code, then refreshes) shares it: a
    /// replayed refresh token revokes the family (O21 4.3.1).
    pub family: String,
    pub client_id: String,
    pub resource: Option<String>,
    pub scope: Option<String>,
    pub expires: Instant,
    pub active: bool,
    /// A spent refresh token stays usable until then (only under the rt-concurrent fault).
    pub grace_until: Option<Instant>,
    /// When the token was issued or last used ([`REFRESH_IDLE`] counts from then).
    pub last_used: Instant,
    /// Issued to a client acting for itself (client_credentials): no user behind it.
    pub machine: bool,
    /// The user the grant is for (None: a client acting for itself, or, under the
    /// grant-revocation-complete fault, tokens of a racing redemption the user's grant record
    /// missed).
    pub user: Option<String>,
    /// The DPoP key the tokens are bound to (RFC 9449 §6.1 `cnf.jkt`), if any.
    pub jkt: Option<String>,
    /// How many refreshes separate the token from its grant: 0 for a code redemption (or any
    /// other grant), n+1 for the tokens a generation-n refresh token was exchanged for. The
    /// lifecycle faults act on later generations only, so single-request cases never see them.
    pub generation: u32,
}

impl TokenGrant {
    /// An active grant whose access tokens live [`ACCESS_TTL_SECS`] from now.
    pub fn new(client_id: String, resource: Option<String>, scope: Option<String>) -> Self {
        Self {
            family: random_id(12),
            client_id,
            resource,
            scope,
            expires: Instant::now() + Duration::from_secs(ACCESS_TTL_SECS),
            active: true,
            grace_until: None,
            last_used: Instant::now(),
            machine: false,
            user: None,
            jkt: None,
            generation: 0,
        }
    }
}

#[derive(Default)]
pub struct Store {
    /// DPoP replay cache and nonces (RFC 9449 §11.1, §9).
    pub dpop: super::dpop::State,
    pub sessions: HashMap<String, Session>,
    pub pending: HashMap<String, Pending>,
    pub codes: HashMap<String, CodeGrant>,
    pub access: HashMap<String, TokenGrant>,
    pub refresh: HashMap<String, TokenGrant>,
    /// Counter for the code-entropy fault's guessable codes.
    pub seq: u64,
    /// Client assertion ids already used (RFC 7523 §3: replay protection).
    pub jtis: std::collections::HashSet<String>,
    /// MCP session ids the resource server issued (`session.rs`).
    pub mcp_sessions: HashSet<String>,
    /// The user each MCP session was created for (`session.rs`).
    pub mcp_session_users: HashMap<String, Option<String>>,
    /// JWT access tokens by `jti`: the RS finds the grant (revoked or not) of a token it
    /// verified.
    pub jwt_ids: HashMap<String, String>,
}

pub fn random_id(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(v)
}

/// The `jti` of a JWT the reference minted.
pub(super) fn jwt_id(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let v: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    v.get("jti")?.as_str().map(str::to_string)
}

fn bound<V>(m: &mut HashMap<String, V>) {
    if m.len() >= CAP {
        m.clear();
    }
}

impl Store {
    pub fn new_session(&mut self) -> String {
        bound(&mut self.sessions);
        let id = random_id(24);
        self.sessions.insert(id.clone(), Session::default());
        id
    }
    pub fn add_pending(&mut self, p: Pending) -> String {
        bound(&mut self.pending);
        let id = random_id(16);
        self.pending.insert(id.clone(), p);
        id
    }
    pub fn add_code(&mut self, code: String, p: Pending) {
        bound(&mut self.codes);
        self.codes.insert(
            code,
            CodeGrant {
                p,
                issued: Instant::now(),
                used: false,
                tokens: Vec::new(),
                family: None,
            },
        );
    }
    /// Issues an access token and a refresh token.
    pub fn issue(&mut self, g: TokenGrant, token: String) -> (String, String) {
        let rt = self.new_refresh(g.clone());
        self.new_access(token.clone(), g);
        (token, rt)
    }
    /// A refresh token for the grant (it lives a day).
    pub fn new_refresh(&mut self, g: TokenGrant) -> String {
        bound(&mut self.refresh);
        let rt = random_id(32);
        self.refresh.insert(
            rt.clone(),
            TokenGrant {
                expires: Instant::now() + Duration::from_secs(86_400),
                ..g
            },
        );
        rt
    }
    pub fn new_access(&mut self, token: String, g: TokenGrant) {
        bound(&mut self.access);
        bound(&mut self.jwt_ids);
        if let Some(jti) = jwt_id(&token) {
            self.jwt_ids.insert(jti, token.clone());
        }
        self.access.insert(token, g);
    }
    /// Records a client assertion id; false when it was used before.
    pub fn seen_jti(&mut self, jti: String) -> bool {
        if self.jtis.len() >= CAP {
            self.jtis.clear();
        }
        self.jtis.insert(jti)
    }

    /// Revokes every token of a family.
    pub fn revoke_family(&mut self, family: &str) {
        for g in self.access.values_mut().chain(self.refresh.values_mut()) {
            if g.family == family {
                g.active = false;
            }
        }
    }
    pub fn revoke(&mut self, t: &str) {
        if let Some(g) = self.access.get_mut(t) {
            g.active = false;
        }
        if let Some(g) = self.refresh.get_mut(t) {
            g.active = false;
        }
    }
}
