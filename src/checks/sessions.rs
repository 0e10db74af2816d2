//! MCP sessions and state handles at the resource server: what one user gets stays that
//! user's, and neither authenticates a request. A session id without a token gets 401 (MCP
//! 2025-11-25 §9.1), a session id never issued gets 404 up to 2025-11-25 and is ignored by a
//! 2026-07-28 server (transports "Session Management"), session ids are unguessable and bound
//! to their user (Security Best Practices "Session Hijacking": key them as
//! `<user_id>:<session_id>`), and so are the state handles tools mint (MCP 2026-07-28 Security
//! Best Practices "State Handle Hijacking": a handle never authenticates).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::tokens::saved_access_token;
use super::{arg_samples, arg_str, judge_entropy};
use crate::http::{Request, Response};
use crate::spec::Revision;
use crate::step::{CaseCtx, StepResult, Stop};

/// A session id no server issued: how the server answers a session the caller does not have.
const NEVER_ISSUED: &str = "00000000-0000-4000-8000-000000000000";

/// Records a violation without stopping: the case goes on to its other probes.
fn finding(ctx: &mut CaseCtx<'_>, failures: &mut Vec<String>, msg: String) {
    if let Stop::Fail(m) = ctx.failed(msg) {
        failures.push(m);
    }
}

/// An MCP request with an optional token and session id.
async fn mcp_post(
    ctx: &mut CaseCtx<'_>,
    rpc: &str,
    token: Option<&str>,
    session: Option<&str>,
    note: &str,
) -> Result<Response, Stop> {
    let (body, headers) = crate::step::request::mcp_body(rpc, ctx.env.revision);
    mcp_send(ctx, body, headers, token, session, note).await
}

/// An MCP request's body and headers, sent with an optional token and session id.
async fn mcp_send(
    ctx: &mut CaseCtx<'_>,
    body: String,
    headers: Vec<(&'static str, String)>,
    token: Option<&str>,
    session: Option<&str>,
    note: &str,
) -> Result<Response, Stop> {
    let Some(url) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let mut req = Request::new("POST", url.clone(), note)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(s) = session {
        req = req.header("Mcp-Session-Id", s);
    }
    ctx.send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from the MCP endpoint {url}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Sessions (MCP 2025-11-25)

async fn session_from_initialize(
    ctx: &mut CaseCtx<'_>,
    token: &str,
) -> Result<Option<String>, Stop> {
    let r = mcp_post(
        ctx,
        "initialize",
        Some(token),
        None,
        "initialize with a valid token",
    )
    .await?;
    if !(200..300).contains(&r.status) {
        return Err(Stop::Error(format!(
            "initialize with a valid token answered {}: no session to probe",
            r.status
        )));
    }
    Ok(r.header("mcp-session-id").map(str::to_string))
}

/// A session opened with `token` and shown live: a `tools/list` in it with the token is served,
/// or a refusal of a probe in it proves nothing. `(whose, with)` name the session and the token
/// in notes; a server that keeps no sessions leaves none to `probe` (the case is skipped).
async fn live_session(
    ctx: &mut CaseCtx<'_>,
    token: &str,
    (whose, with): (&str, &str),
    probe: &str,
) -> Result<String, Stop> {
    let Some(sid) = session_from_initialize(ctx, token).await? else {
        return Err(Stop::Skip(format!(
            "initialize returned no Mcp-Session-Id: the server keeps no sessions to {probe}"
        )));
    };
    let live = mcp_post(
        ctx,
        "tools/list",
        Some(token),
        Some(&sid),
        &format!("tools/list in {whose} session with {with} (the session must be live)"),
    )
    .await?;
    if !(200..300).contains(&live.status) {
        return Err(Stop::Error(format!(
            "tools/list in {whose} new session with {with} answered {}: the session is not usable",
            live.status
        )));
    }
    Ok(sid)
}

/// A request without a token was served although it carried a session id or a state handle
/// (`carrying`): is it that credential that let it through, or is the endpoint not protected
/// at all (rs-401-no-token's finding)? The same request with neither says. Returns its status
/// and, when it was served too, the reason `judged` cannot be judged (the case is then marked
/// blocked by rs-401-no-token).
async fn served_bare(
    ctx: &mut CaseCtx<'_>,
    carrying: &str,
    judged: &str,
) -> Result<(u16, Option<String>), Stop> {
    let bare = mcp_post(
        ctx,
        "tools/list",
        None,
        None,
        &format!("tools/list with neither {carrying} nor a token"),
    )
    .await?;
    if bare.status >= 300 {
        return Ok((bare.status, None));
    }
    let reason = format!(
        "the MCP endpoint serves tools/list without any token ({}): it is not protected, so {judged} cannot be judged",
        bare.status
    );
    ctx.block("no-401-challenge", Some("rs-401-no-token"), &reason);
    Ok((bare.status, Some(reason)))
}

/// `rs-auth-every-request`: a live session id without a token is refused with 401 (MCP §9.1;
/// Security Best Practices: sessions must not authenticate).
pub async fn session_needs_token(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let at = saved_access_token(ctx, on)?;
    let sid = live_session(ctx, &at, ("the", "the token"), "abuse").await?;
    let r = mcp_post(
        ctx,
        "tools/list",
        None,
        Some(&sid),
        "tools/list with the session id and no token",
    )
    .await?;
    match r.status {
        401 => {
            ctx.pass("a live session id without a token gets 401");
            Ok(())
        }
        s if s < 300 => {
            let (bare, unprotected) =
                served_bare(ctx, "a session id", "what a session id adds").await?;
            if let Some(reason) = unprotected {
                return Err(Stop::Error(reason));
            }
            ctx.fail(format!(
                "the session id alone was enough: tools/list without a token answered {s} (without the session id too: {bare})"
            ))
        }
        s => ctx.fail(format!(
            "tools/list with a session id and no token answered {s}, not 401 with a challenge"
        )),
    }
}

/// `rs-stale-session-4xx`: a session id the server never issued, on a non-initialize request
/// with a valid token. Up to 2025-11-25 a server with sessions answers 404 (another 4xx is a
/// warning); a server without sessions, and any 2026-07-28 server, ignores the header. A 5xx, or
/// echoing the unknown id as if it were live, fails.
pub async fn stale_session(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    const STALE: &str = "00000000-0000-0000-0000-000000000000";
    let at = saved_access_token(ctx, on)?;
    let minted = session_from_initialize(ctx, &at).await?.is_some();
    let r = mcp_post(
        ctx,
        "tools/list",
        Some(&at),
        Some(STALE),
        "tools/list with a valid token and a session id never issued",
    )
    .await?;
    let echoed = r.header("mcp-session-id") == Some(STALE);
    let stateless_rev = ctx.env.revision == Revision::V2026_07_28;
    match r.status {
        s if s >= 500 => ctx.fail(format!("an unknown session id caused a server error ({s})")),
        s if s < 300 && echoed => ctx.fail(format!(
            "the server answered {s} and echoed the unknown session id as if it were live"
        )),
        404 if !stateless_rev => {
            ctx.pass("an unknown session id gets 404");
            Ok(())
        }
        s if s < 300 && (stateless_rev || !minted) => {
            ctx.pass(format!(
                "the header was ignored and the request served ({s}){}",
                if minted { "" } else { ": the server keeps no sessions" }
            ));
            Ok(())
        }
        s if s < 300 => ctx.fail(format!(
            "the server issues sessions but served a request naming one it never issued ({s}); MCP 2025-11-25 wants 404"
        )),
        s if stateless_rev => {
            ctx.warn(format!(
                "a 2026-07-28 server should ignore Mcp-Session-Id; it answered {s}"
            ));
            Ok(())
        }
        s if minted => {
            ctx.warn(format!(
                "an unknown session id got {s}: a refusal, but MCP 2025-11-25 says 404"
            ));
            Ok(())
        }
        s => {
            ctx.pass(format!(
                "the server keeps no sessions and refused the unknown id ({s})"
            ));
            Ok(())
        }
    }
}

/// `rs-session-id-entropy`: `Mcp-Session-Id` values from `samples` initializes (default 32, at
/// most 100) are distinct, not counters, and carry at least ~122 bits (a UUIDv4's).
pub async fn session_id_entropy(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let n = arg_samples(args, 32, 100);
    let at = saved_access_token(ctx, on)?;
    let mut ids = Vec::new();
    for _ in 0..n {
        match session_from_initialize(ctx, &at).await? {
            Some(id) => ids.push(id),
            None if ids.is_empty() => {
                return Err(Stop::Skip(
                    "initialize returned no Mcp-Session-Id: the server keeps no sessions".into(),
                ));
            }
            None => {
                return ctx.fail("some initialize responses carry an Mcp-Session-Id, others none");
            }
        }
    }
    judge_entropy(ctx, "session ids", &ids, 120.0)
}

/// `rs-session-user-binding`: user A's token opens a session; user B's token (saved as
/// `args.other`, default `t2`) naming that session must be refused, or served in a session of
/// B's own. Served as A's session is the failure; the tell is a control with a session id
/// never issued: if the server refuses that but serves A's id to B, it found A's session for B.
pub async fn session_user_binding(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let a = saved_access_token(ctx, on)?;
    let b = saved_access_token(ctx, arg_str(args, "other", "t2"))?;
    if a == b {
        return Err(Stop::Error(
            "the two users' authorizations gave the same access token".into(),
        ));
    }
    // B's token must work on its own, or a refusal in A's session proves nothing.
    let own = mcp_post(
        ctx,
        "initialize",
        Some(&b),
        None,
        "initialize with user B's token (it must work on its own)",
    )
    .await?;
    if !(200..300).contains(&own.status) {
        return Err(Stop::Error(format!(
            "user B's token is refused on its own ({}): a refusal in user A's session would prove nothing",
            own.status
        )));
    }
    let sid = live_session(ctx, &a, ("user A's", "A's token"), "hijack").await?;
    let control = mcp_post(
        ctx,
        "tools/list",
        Some(&b),
        Some(NEVER_ISSUED),
        "tools/list with user B's token and a session id never issued (the control)",
    )
    .await?;
    let r = mcp_post(
        ctx,
        "tools/list",
        Some(&b),
        Some(&sid),
        "tools/list with user B's token naming user A's session",
    )
    .await?;
    let moved = r.header("mcp-session-id").filter(|x| *x != sid);
    match r.status {
        s if s >= 500 => ctx.fail(format!(
            "user B's token naming user A's session caused a server error ({s}), not a refusal"
        )),
        s if (400..500).contains(&s) => {
            ctx.pass(format!(
                "user B's token naming user A's session was refused ({s})"
            ));
            Ok(())
        }
        s if s < 300 && moved.is_some() => {
            ctx.pass(format!(
                "user B's request naming user A's session was served ({s}) in another session, of B's own"
            ));
            Ok(())
        }
        s if s < 300 && (400..500).contains(&control.status) => ctx.fail(format!(
            "user B's token was served in user A's session ({s}), while a session id never issued gets {}: the session is found by its id alone, not bound to the user",
            control.status
        )),
        s if s < 300 && control.status < 300 => Err(Stop::Skip(format!(
            "the server serves a session id it never issued ({}) as it serves user A's ({s}): it does not look sessions up, so their binding to a user cannot be seen (see rs-stale-session-4xx)",
            control.status
        ))),
        s => Err(Stop::Error(format!(
            "user B's token naming user A's session answered {s} (the control: {}): neither served nor refused",
            control.status
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// State handles (MCP 2026-07-28)

/// The JSON-RPC message of a response: a JSON body, or the last `data:` line of an SSE stream
/// that carries a result or an error.
fn rpc_json(r: &Response) -> Option<Value> {
    r.json().or_else(|| {
        r.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .rfind(|v| v.get("result").is_some() || v.get("error").is_some())
    })
}

/// What a tool call came to.
enum Call {
    /// The tool ran and returned this result.
    Result(Value),
    /// Refused: an HTTP error, a JSON-RPC error or a tool error (`isError`).
    Refused(String),
    /// A 2xx without a result or error the suite can read.
    Unreadable,
}

fn call_outcome(r: &Response) -> Call {
    if r.status >= 400 {
        return Call::Refused(format!("HTTP {}", r.status));
    }
    let Some(msg) = rpc_json(r) else {
        return Call::Unreadable;
    };
    if let Some(e) = msg.get("error") {
        return Call::Refused(format!(
            "JSON-RPC error {}",
            e.get("code").cloned().unwrap_or(Value::Null)
        ));
    }
    match msg.get("result") {
        Some(res) if res.get("isError") == Some(&Value::Bool(true)) => {
            Call::Refused("a tool error (isError)".into())
        }
        Some(res) => Call::Result(res.clone()),
        None => Call::Unreadable,
    }
}

/// A caller of the MCP server: a token, and the session it opened (up to 2025-11-25 a server
/// with sessions wants tool calls inside one).
struct Caller {
    token: Option<String>,
    session: Option<String>,
}

async fn caller(ctx: &mut CaseCtx<'_>, token: &str) -> Result<Caller, Stop> {
    let session = if ctx.env.revision == Revision::V2026_07_28 {
        None
    } else {
        session_from_initialize(ctx, token).await?
    };
    Ok(Caller {
        token: Some(token.to_string()),
        session,
    })
}

/// `tools/call` of `tool` with `arguments`, as `who`.
async fn tool_call(
    ctx: &mut CaseCtx<'_>,
    who: &Caller,
    tool: &str,
    arguments: Map<String, Value>,
    note: &str,
) -> Result<Response, Stop> {
    let (body, headers) = crate::step::request::mcp_body("tools/call", ctx.env.revision);
    let mut v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["params"]["name"] = json!(tool);
    v["params"]["arguments"] = Value::Object(arguments);
    let (token, session) = (who.token.as_deref(), who.session.as_deref());
    mcp_send(ctx, v.to_string(), headers, token, session, note).await
}

/// The handle in a create result: at the profile's pointer, else the first text content.
fn handle_in(result: &Value, pointer: Option<&str>) -> Option<String> {
    let v = match pointer {
        Some(p) => result.pointer(p)?.clone(),
        None => result
            .get("content")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("text"))?
            .get("text")?
            .clone(),
    };
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Mints one handle as `who`.
async fn mint(ctx: &mut CaseCtx<'_>, who: &Caller, note: &str) -> Result<String, Stop> {
    let cfg = ctx.env.profile.state_handles.clone();
    let Some((create, _, _)) = cfg.tools() else {
        return Err(Stop::Skip("no [state_handles] tools configured".into()));
    };
    let args: Map<String, Value> = cfg
        .create_arguments
        .iter()
        .map(|(k, v)| (k.clone(), crate::case::model::toml_to_json(v)))
        .collect();
    let r = tool_call(ctx, who, create, args, note).await?;
    match call_outcome(&r) {
        Call::Result(res) => handle_in(&res, cfg.handle.as_deref()).ok_or_else(|| {
            Stop::Error(format!(
                "the {create} result holds no handle at {} (set [state_handles] handle to its JSON pointer)",
                cfg.handle.as_deref().unwrap_or("the first text content")
            ))
        }),
        Call::Refused(why) => Err(Stop::Error(format!(
            "{create} did not mint a handle for the test user: {why}"
        ))),
        Call::Unreadable => Err(Stop::Error(format!(
            "{create} answered {} with no JSON-RPC result to read",
            r.status
        ))),
    }
}

/// Calls the consuming tool with `handle` as `who`.
async fn use_handle(
    ctx: &mut CaseCtx<'_>,
    who: &Caller,
    handle: &str,
    note: &str,
) -> Result<Response, Stop> {
    let cfg = ctx.env.profile.state_handles.clone();
    let Some((_, tool, argument)) = cfg.tools() else {
        return Err(Stop::Skip("no [state_handles] tools configured".into()));
    };
    let mut args = Map::new();
    args.insert(argument.to_string(), Value::String(handle.to_string()));
    tool_call(ctx, who, tool, args, note).await
}

/// `rs-state-handle-binding`: user A mints a handle H with the profile's `create_tool`, and
/// `use_tool` is called with H (a) without a token: 401 (the handle MUST NOT authenticate);
/// (b) with user B's token (saved as `args.other`): refused, or not A's state; then (c) up to
/// `args.samples` handles (default 20, at most 20) must be distinct, no counter, and carry
/// about 120 varying bits (the session-id bar). Every finding is collected before the verdict.
pub async fn state_handle_binding(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let n = arg_samples(args, 20, 20);
    let a_token = saved_access_token(ctx, on)?;
    let b_token = saved_access_token(ctx, arg_str(args, "other", "t2"))?;
    let a = caller(ctx, &a_token).await?;
    let b = caller(ctx, &b_token).await?;
    let nobody = Caller {
        token: None,
        session: None,
    };
    let h = mint(ctx, &a, "user A mints a state handle").await?;
    ctx.note(format!("user A's handle: {h}"));
    let r = use_handle(ctx, &a, &h, "user A uses its own handle (the baseline)").await?;
    let Call::Result(baseline) = call_outcome(&r) else {
        return Err(Stop::Error(format!(
            "the consuming tool did not serve user A's own handle ({}): nothing to compare with",
            r.status
        )));
    };
    let mut failures: Vec<String> = Vec::new();
    // A probe that cannot be judged does not hide what the others found.
    let mut undecided: Option<String> = None;

    // (a) The handle alone, without a token.
    let r = use_handle(ctx, &nobody, &h, "the handle without a token").await?;
    match r.status {
        401 => ctx.pass("the handle without a token gets 401: it does not authenticate"),
        s if s < 300 => {
            let (_, unprotected) =
                served_bare(ctx, "a handle", "whether a handle authenticates").await?;
            if let Some(m) = unprotected {
                undecided.get_or_insert(m);
            } else {
                let m = format!(
                    "the handle without a token was served ({s}): possession of a handle authenticated the request, which MCP 2026-07-28 says MUST NOT happen"
                );
                finding(ctx, &mut failures, m);
            }
        }
        s if s >= 500 => {
            let m = format!("the handle without a token caused a server error ({s})");
            finding(ctx, &mut failures, m);
        }
        s => ctx.warn(format!(
            "the handle without a token was refused with {s}, not the 401 a request without a token gets (MCP 2025-11-25 §9.2)"
        )),
    }

    // (b) User B presents A's handle.
    let r = use_handle(ctx, &b, &h, "user B presents user A's handle").await?;
    match call_outcome(&r) {
        _ if r.status >= 500 => {
            let m = format!(
                "user B presenting user A's handle caused a server error ({})",
                r.status
            );
            finding(ctx, &mut failures, m);
        }
        Call::Refused(why) => {
            ctx.pass(format!(
                "user B presenting user A's handle was refused: {why}"
            ));
        }
        Call::Result(res) if res == baseline => {
            let m = "user B presenting user A's handle got exactly what user A gets: the handle is not bound to its user".to_string();
            finding(ctx, &mut failures, m);
        }
        Call::Result(_) => {
            // A different answer means B did not see A's state, if A's own answer is stable.
            let note = "user A uses its handle again (is its answer stable?)";
            let again = use_handle(ctx, &a, &h, note).await?;
            match call_outcome(&again) {
                Call::Result(res) if res == baseline => ctx.pass(
                    "user B presenting user A's handle did not get user A's state (a different answer; A's own is unchanged)",
                ),
                _ => {
                    undecided = Some(
                        "user A's own answers for its handle differ between calls, and user B got yet another: whether B saw A's state cannot be told".into(),
                    );
                }
            }
        }
        Call::Unreadable => {
            undecided = Some(format!(
                "user B presenting user A's handle got {} with no JSON-RPC result or error to read",
                r.status
            ));
        }
    }

    // (c) The handles cannot be guessed.
    let mut handles = vec![h];
    for i in 1..n {
        match mint(ctx, &a, &format!("state handle sample {}", i + 1)).await {
            Ok(next) => handles.push(next),
            Err(Stop::Error(m)) => {
                undecided.get_or_insert(format!("sampling handles: {m}"));
                break;
            }
            Err(other) => return Err(other),
        }
    }
    if handles.len() == n {
        match judge_entropy(ctx, "state handles", &handles, 120.0) {
            Ok(()) => {}
            Err(Stop::Fail(m)) => failures.push(m),
            Err(other) => return Err(other),
        }
    }
    if !failures.is_empty() {
        if let Some(u) = undecided {
            ctx.note(format!("also undecided: {u}"));
        }
        return Err(Stop::Fail(failures.join("; ")));
    }
    match undecided {
        Some(u) => Err(Stop::Error(u)),
        None => Ok(()),
    }
}
