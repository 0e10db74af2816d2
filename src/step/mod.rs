//! The step layer: what one case does, step by step, and the context it does it in. Each step
//! kind of a case file (`do = "..."`) is one struct of [`crate::case::model`], executed here as
//! is by the `run` function of its module; named checks ([`crate::checks`]) are built from the
//! same functions. The runner dispatches steps to this layer, the checks call into it, and it
//! imports neither: below it are only the case model, the target profile, the login drivers,
//! the CIMD document host and the audited HTTP client.

pub mod authorize;
pub mod client;
pub mod context;
pub mod discovery;
pub mod document;
pub mod dpop;
pub mod expect;
pub mod facts;
pub mod par;
pub mod params;
pub mod request;
pub mod token;
pub mod wait;

pub use context::{Attempt, CaseCtx, Discovery, RunEnv, Saved, Slot, StepResult, Stop, Waiting};
pub use expect::ErrorOwner;

use crate::case::model::{Expect, ExpectStep};

/// Saves what an action observed under `name` and judges the step's expectations on it.
/// `owner` names the error-format case that owns the shape of error answers at this endpoint
/// (see [`expect::check_owned`]).
pub fn save_and_expect(
    ctx: &mut CaseCtx<'_>,
    saved: Saved,
    name: &str,
    expect: Option<&Expect>,
    owner: Option<ErrorOwner>,
) -> StepResult {
    ctx.saved.insert(name.to_string(), saved.clone());
    ctx.saved_at
        .insert(name.to_string(), std::time::Instant::now());
    match expect {
        Some(e) => expect_on(ctx, &saved, name, e, owner),
        None => Ok(()),
    }
}

/// What a stage-setting request was for: it names the condition its failure is.
#[derive(Debug, Clone, Copy)]
pub enum Stage<'s> {
    /// A valid token request of this grant type.
    Token(&'s str),
    /// A valid request to the MCP endpoint.
    Mcp,
    /// A valid revocation request (RFC 7009 §2.2: answered 200).
    Revocation,
    /// Any other valid request a case file sends (`http` steps: a registration, say).
    Http,
    /// A request to the MCP endpoint that must be challenged (401) for the case to judge the
    /// challenge: without a token, or (`with_token`) with a made-up one.
    Challenge { with_token: bool },
}

/// A failed expectation of a stage-setting request means the case cannot be judged: it is
/// `errored`, and `blocked_by` names the condition (a server error, a refused client
/// authentication, a refused valid request) and the case whose requirement that breaks.
pub fn precondition_held(
    ctx: &mut CaseCtx<'_>,
    r: StepResult,
    precondition: bool,
    saved: &str,
    stage: Stage<'_>,
) -> StepResult {
    let m = match r {
        Err(Stop::Fail(m)) if precondition => m,
        r => return r,
    };
    let response = ctx
        .saved
        .get(saved)
        .and_then(Saved::response)
        .map(|(_, r)| r);
    let status = response.map(|r| r.status);
    let code = response
        .and_then(|r| r.json())
        .and_then(|d| d.get("error")?.as_str().map(str::to_string));
    let method = ctx.exchanges.last().map(client_auth_method);
    let (condition, case, what) = match (status, stage) {
        // A 5xx where a challenge was due is the 401 case's own failure, not a stage problem.
        (Some(401), Stage::Challenge { .. }) => (
            "challenge-incomplete",
            None,
            "the 401 challenge lacks what this case builds on".to_string(),
        ),
        (Some(s), Stage::Challenge { with_token }) => (
            "no-401-challenge",
            Some(if with_token {
                "rs-401-invalid-token"
            } else {
                "rs-401-no-token"
            }),
            format!(
                "the MCP endpoint answered {s} to a request {}: there is no 401 challenge to judge",
                if with_token {
                    "with a made-up token"
                } else {
                    "without a token"
                }
            ),
        ),
        (Some(s), _) if s >= 500 => (
            "server-error",
            None,
            format!("the server answered {s} to a request that only sets the stage"),
        ),
        (Some(s), Stage::Token(_) | Stage::Revocation)
            if s == 401 || code.as_deref() == Some("invalid_client") =>
        {
            (
                "client-authentication-refused",
                Some("asm-auth-methods"),
                format!(
                    "the AS refused the client's {} authentication on a valid token request",
                    method.unwrap_or("unknown")
                ),
            )
        }
        (_, Stage::Revocation) => (
            "revocation-refused",
            None,
            "the AS refused to revoke a token it issued".to_string(),
        ),
        (_, Stage::Token(grant)) => (
            "valid-token-request-refused",
            (grant == "authorization_code").then_some("pkce-positive"),
            format!("the AS refused a valid {grant} token request"),
        ),
        (_, Stage::Http) => (
            "valid-request-refused",
            None,
            "the server refused a valid request".to_string(),
        ),
        (_, Stage::Mcp | Stage::Challenge { .. }) => (
            "valid-mcp-request-refused",
            None,
            "the MCP endpoint refused a valid request".to_string(),
        ),
    };
    let reason = format!("{what}, so this case's probe cannot be judged: {m}");
    ctx.block(condition, case, &reason);
    Err(Stop::Error(reason))
}

/// The client authentication method a recorded token request used (RFC 8414 names).
pub fn client_auth_method(x: &crate::record::Exchange) -> &'static str {
    let header = x
        .request_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str());
    let body = x.request_body.as_deref().unwrap_or("");
    let has = |k: &str| body.split('&').any(|p| p.split('=').next() == Some(k));
    if header.is_some_and(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ")) {
        "client_secret_basic"
    } else if has("client_assertion") {
        "private_key_jwt"
    } else if has("client_secret") {
        "client_secret_post"
    } else {
        "none"
    }
}

/// The `expect` step: expectations over what an earlier step saved.
pub fn run_expect(ctx: &mut CaseCtx<'_>, s: &ExpectStep) -> StepResult {
    let saved = ctx
        .saved
        .get(&s.on)
        .cloned()
        .ok_or_else(|| Stop::Error(format!("nothing saved as `{}`", s.on)))?;
    expect_on(ctx, &saved, &s.on, &s.expect, None)
}

fn expect_on(
    ctx: &mut CaseCtx<'_>,
    saved: &Saved,
    name: &str,
    e: &Expect,
    owner: Option<ErrorOwner>,
) -> StepResult {
    match saved.response() {
        Some((url, r)) => {
            let (url, r) = (url.to_string(), r.clone());
            expect::check_owned(ctx, &url, &r, e, owner)
        }
        None => match saved {
            // A discovery that found no document: the expectation is about that document, so
            // its absence is what the server did wrong, not something the suite failed to see.
            // Only the case that owns "a document is served" fails for that; the others, whose
            // expectations are about members of the document, cannot be judged without one.
            Saved::Discovery(d) if d.attempts.iter().any(|a| a.result.is_ok()) => {
                let msg = format!(
                    "no usable document at {}",
                    d.attempts
                        .iter()
                        .map(|a| a.url.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let prm = d
                    .attempts
                    .iter()
                    .any(|a| a.url.contains("/.well-known/oauth-protected-resource"));
                let owner = if prm { "prm-200-json" } else { "asm-available" };
                if ctx.case_id == owner {
                    return ctx.fail(msg);
                }
                let reason = format!("{msg}: there is no metadata to judge ({owner} judges that)");
                Err(discovery::without_doc(ctx, Stop::Error(reason), owner))
            }
            _ => Err(Stop::Error(format!("`{name}` holds no response"))),
        },
    }
}
