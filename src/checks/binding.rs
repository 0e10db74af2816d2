//! What one user gets stays that user's: MCP sessions (MCP 2025-11-25 Security Best Practices
//! "Session Hijacking": bind session ids to the user, key them as `<user_id>:<session_id>`),
//! state handles minted by tools (MCP 2026-07-28 Security Best Practices "State Handle
//! Hijacking": a handle never authenticates, is bound to the user and is unguessable), and a
//! grant the user withdraws at the AS (RFC 7009 §2.1: revoking a grant ends its tokens; RFC
//! 6749 §10.5 / OAuth 2.1 §4.1.3: tokens of a racing redemption are tokens of that grant too).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::lifecycle::{
    access_token_of, introspect, judge_entropy, jwt_claims, mcp_post, oauth_error, refresh,
    session_from_initialize, str_member,
};
use crate::case::model::Consent;
use crate::http::{Request, Response};
use crate::runner::flow;
use crate::runner::{CaseCtx, Saved, StepResult, Stop};
use crate::spec::Revision;

/// A session id no server issued: how the server answers a session the caller does not have.
const NEVER_ISSUED: &str = "00000000-0000-4000-8000-000000000000";

/// Records a violation without stopping: the case goes on to its other probes.
fn finding(ctx: &mut CaseCtx<'_>, failures: &mut Vec<String>, msg: String) {
    if let Stop::Fail(m) = ctx.failed(msg) {
        failures.push(m);
    }
}

fn arg_str<'a>(args: &'a BTreeMap<String, toml::Value>, k: &str, d: &'a str) -> &'a str {
    args.get(k).and_then(toml::Value::as_str).unwrap_or(d)
}

// ---------------------------------------------------------------------------------------------
// Sessions (MCP 2025-11-25)

/// `rs-session-user-binding`: user A's token opens a session; user B's token (saved as
/// `args.other`, default `t2`) naming that session must be refused, or served in a session of
/// B's own. Served as A's session is the failure; the tell is a control with a session id
/// never issued: if the server refuses that but serves A's id to B, it found A's session for B.
pub async fn session_user_binding(
    ctx: &mut CaseCtx<'_>,
    on: &str,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let a = access_token_of(ctx, on)?;
    let b = access_token_of(ctx, arg_str(args, "other", "t2"))?;
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
    let Some(sid) = session_from_initialize(ctx, &a).await? else {
        return Err(Stop::Skip(
            "initialize returned no Mcp-Session-Id: the server keeps no sessions to hijack".into(),
        ));
    };
    let live = mcp_post(
        ctx,
        "tools/list",
        Some(&a),
        Some(&sid),
        "tools/list in user A's session with A's token (the session must be live)",
    )
    .await?;
    if !(200..300).contains(&live.status) {
        return Err(Stop::Error(format!(
            "tools/list in user A's new session with A's token answered {}: the session is not usable",
            live.status
        )));
    }
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
    let Some(url) = ctx.env.target.resource.clone() else {
        return Err(Stop::Skip("no MCP endpoint given (--resource)".into()));
    };
    let (body, headers) = crate::runner::actions::mcp_body("tools/call", ctx.env.revision);
    let mut v: Value = serde_json::from_str(&body).unwrap_or_default();
    v["params"]["name"] = json!(tool);
    v["params"]["arguments"] = Value::Object(arguments);
    let mut req = Request::new("POST", url.clone(), note)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(v.to_string());
    for (n, val) in headers {
        req = req.header(n, val);
    }
    if let Some(t) = &who.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(s) = &who.session {
        req = req.header("Mcp-Session-Id", s);
    }
    ctx.send(req)
        .await
        .map_err(|e| Stop::Error(format!("no response from the MCP endpoint {url}: {e}")))
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
        .map(|(k, v)| (k.clone(), crate::client::toml_to_json(v)))
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
    let n = args
        .get("samples")
        .and_then(toml::Value::as_integer)
        .unwrap_or(20)
        .clamp(5, 20) as usize;
    let a_token = access_token_of(ctx, on)?;
    let b_token = access_token_of(ctx, arg_str(args, "other", "t2"))?;
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
            let m = format!(
                "the handle without a token was served ({s}): possession of a handle authenticated the request, which MCP 2026-07-28 says MUST NOT happen"
            );
            finding(ctx, &mut failures, m);
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

// ---------------------------------------------------------------------------------------------
// Grant revocation by the user (RFC 7009 §2.1, RFC 6749 §10.5)

/// The browser session the grants and the revocation share (the user's login).
const SESSION: &str = "grant-revocation";

/// A token the case holds, for the verdict.
struct Held {
    label: String,
    refresh: bool,
    value: String,
    got: Instant,
    expires_in: Option<u64>,
}

fn hold(out: &mut Vec<Held>, label: &str, doc: &Value) {
    let expires_in = doc.get("expires_in").and_then(Value::as_u64);
    if let Some(at) = str_member(doc, "access_token") {
        out.push(Held {
            label: format!("{label}: access token"),
            refresh: false,
            value: at,
            got: Instant::now(),
            expires_in,
        });
    }
    if let Some(rt) = str_member(doc, "refresh_token") {
        out.push(Held {
            label: format!("{label}: refresh token"),
            refresh: true,
            value: rt,
            got: Instant::now(),
            expires_in: None,
        });
    }
}

fn token_opts<'a>(
    from: Option<&'a str>,
    grant_type: &'a str,
    params: &'a BTreeMap<String, String>,
    parallel: usize,
) -> flow::Token<'a> {
    let mut t = super::pkce::token_opts(from.unwrap_or("auth"), params);
    t.from = from;
    t.grant_type = grant_type;
    t.parallel = (parallel > 1).then_some(parallel);
    t
}

/// The token responses (200 with an access token) of the last token request: all of them
/// for a parallel one.
fn successes(ctx: &CaseCtx<'_>, saved: &Saved, parallel: bool) -> Vec<Value> {
    let all: Vec<Response> = if parallel {
        ctx.parallel.clone()
    } else {
        saved
            .response()
            .map(|(_, r)| r.clone())
            .into_iter()
            .collect()
    };
    all.iter()
        .filter(|r| r.status == 200)
        .filter_map(Response::json)
        .filter(|d| d.get("access_token").is_some())
        .collect()
}

/// One authorization in the user's browser session, its code redeemed by `parallel` requests
/// at once; the token responses that succeeded.
async fn grant(ctx: &mut CaseCtx<'_>, parallel: usize) -> Result<Vec<Value>, Stop> {
    let none = BTreeMap::new();
    let a = flow::authorize(
        ctx,
        flow::Authorize {
            client: "client",
            redirect_uri: None,
            params: &none,
            omit: &[],
            extra: None,
            verifier: None,
            session: Some(SESSION),
            login: true,
            consent: Consent::Approve,
        },
    )
    .await?;
    if a.code().is_none() {
        return Err(Stop::Error(format!(
            "the authorization brought no code: the AS {}",
            a.describe()
        )));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a)));
    let saved = flow::token(
        ctx,
        token_opts(Some("auth"), "authorization_code", &none, parallel),
    )
    .await?;
    Ok(successes(ctx, &saved, parallel > 1))
}

/// The user withdraws the client's access: the profile's account page, requested in the
/// user's browser session, or its command.
async fn withdraw(ctx: &mut CaseCtx<'_>, client_id: &str) -> StepResult {
    let cfg = ctx.env.profile.grant_revocation.clone();
    let username = ctx.env.profile.login.username.clone().unwrap_or_default();
    let fill = |t: &str| {
        t.replace("${client_id}", client_id)
            .replace("${username}", &username)
    };
    if let Some(u) = &cfg.url {
        let url = fill(u);
        let fields: Vec<(String, String)> = if cfg.fields.is_empty() {
            vec![("client_id".into(), client_id.to_string())]
        } else {
            cfg.fields
                .iter()
                .map(|(k, v)| (k.clone(), fill(v)))
                .collect()
        };
        let form = flow::encode_pairs(&fields);
        let req = if cfg.method.as_deref() == Some("GET") {
            let sep = if url.contains('?') { '&' } else { '?' };
            Request::new(
                "GET",
                format!("{url}{sep}{form}"),
                "the test user withdraws the client's access",
            )
        } else {
            let mut r = Request::new(
                "POST",
                url.clone(),
                "the test user withdraws the client's access",
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form);
            // A browser submitting the account page's form names its origin.
            if let Ok(p) = url::Url::parse(&url) {
                r = r.header("Origin", p.origin().ascii_serialization());
            }
            r
        };
        let key = format!("session:{SESSION}");
        let Some(mut browser) = ctx.sessions.remove(&key) else {
            return Err(Stop::Error(
                "no browser session of the test user to withdraw the access with".into(),
            ));
        };
        let r = browser.send(ctx, req).await;
        ctx.sessions.insert(key, browser);
        let r = r.map_err(|e| Stop::Error(format!("the account page did not answer: {e}")))?;
        if r.status >= 400 {
            return Err(Stop::Error(format!(
                "the account page answered {}: the test user could not withdraw the client's access (check [grant_revocation])",
                r.status
            )));
        }
        ctx.note(format!(
            "the test user withdrew the client's access at {url} ({})",
            r.status
        ));
        return Ok(());
    }
    let mut argv = cfg.command.clone();
    if argv.is_empty() {
        return Err(Stop::Skip(
            "no [grant_revocation] url or command configured".into(),
        ));
    }
    argv.push(client_id.to_string());
    let envs = vec![
        ("AUTHCONFORM_CLIENT_ID".to_string(), client_id.to_string()),
        ("AUTHCONFORM_USERNAME".to_string(), username),
    ];
    let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(60).clamp(1, 600));
    let shown = argv.join(" ");
    let out = tokio::task::spawn_blocking(move || run_bounded(&argv, &envs, timeout))
        .await
        .map_err(|e| Stop::Error(format!("the revocation command: {e}")))?;
    match out {
        Ok((0, text)) => {
            ctx.note(format!(
                "the revocation command `{shown}` withdrew the client's access: {text}"
            ));
            Ok(())
        }
        Ok((code, text)) => Err(Stop::Error(format!(
            "the revocation command `{shown}` exited {code}: {text}"
        ))),
        Err(e) => Err(Stop::Error(format!(
            "the revocation command `{shown}`: {e}"
        ))),
    }
}

/// Runs a program (no shell) with a deadline; its exit code and the first 2 KiB of its output.
fn run_bounded(
    argv: &[String],
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<(i32, String), String> {
    use std::io::Read;
    const KEEP: usize = 2048;
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(envs.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    // Both pipes are drained (keeping the start) so a chatty program cannot block on them.
    let drain = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            if let Some(mut p) = p {
                let mut buf = [0u8; 4096];
                while let Ok(n) = p.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut text = out.join().unwrap_or_default();
    text.extend(err.join().unwrap_or_default());
    let text: String = String::from_utf8_lossy(&text[..text.len().min(KEEP)])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Ok((status.code().unwrap_or(-1), text))
}

/// How a held token fared after the revocation.
enum After {
    Ended(String),
    Survived(String),
    /// A self-contained JWT the MCP server still takes (it may check it locally until `exp`).
    JwtAccepted(String),
    NoEvidence(String),
}

async fn probe_after(ctx: &mut CaseCtx<'_>, t: &Held) -> Result<After, Stop> {
    if !t.refresh {
        let left = t
            .expires_in
            .map(|e| Duration::from_secs(e).saturating_sub(t.got.elapsed()));
        if left.is_some_and(|l| l < Duration::from_millis(500)) {
            return Ok(After::NoEvidence(
                "expired (or about to) before it could be tried".into(),
            ));
        }
    } else if let Some(idle) = ctx.env.profile.timing.refresh_idle_secs
        && t.got.elapsed() + Duration::from_millis(500) >= Duration::from_secs(idle)
    {
        return Ok(After::NoEvidence(
            "idle-expired before it could be tried".into(),
        ));
    }
    // Introspection first (it changes nothing), then the token's real use: a refresh, or a
    // request to the MCP server.
    let mut seen = String::new();
    if let Some(d) = introspect(ctx, &t.value).await? {
        if d.get("active") == Some(&Value::Bool(true)) {
            return Ok(After::Survived("introspection says active".into()));
        }
        if !t.refresh && ctx.env.target.resource.is_none() {
            return Ok(After::Ended("introspection says inactive".into()));
        }
        seen = "introspection says inactive; ".into();
    }
    if t.refresh {
        let r = refresh(ctx, &t.value, &[]).await?;
        return Ok(match (r.status, oauth_error(&r).as_deref()) {
            (200, _) => After::Survived(format!("{seen}a refresh with it still succeeds")),
            (400 | 401, Some("invalid_grant")) => {
                After::Ended(format!("{seen}a refresh is refused with invalid_grant"))
            }
            (s, e) => After::NoEvidence(format!("{seen}a refresh answered {s} error={e:?}")),
        });
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Ok(After::NoEvidence(
            "no MCP endpoint and no introspection to try it with".into(),
        ));
    };
    let r = crate::runner::actions::mcp_with_token(
        ctx,
        &resource,
        &t.value,
        "an access token of the withdrawn grant at the MCP endpoint",
    )
    .await?;
    Ok(match r.status {
        401 => After::Ended(format!("{seen}the MCP server refuses it (401)")),
        s if s < 300 && jwt_claims(&t.value).is_some() => {
            After::JwtAccepted(format!("{seen}the MCP server still takes it ({s})"))
        }
        s if s < 300 => After::Survived(format!("{seen}the MCP server still takes it ({s})")),
        s => After::NoEvidence(format!("{seen}the MCP server answered {s}")),
    })
}

/// Whether a held token works just before the revocation (the control must, or its end after
/// proves nothing). A refresh token is asked by introspection only: using it would rotate it.
async fn alive(ctx: &mut CaseCtx<'_>, t: &Held) -> Result<bool, Stop> {
    if let Some(d) = introspect(ctx, &t.value).await? {
        return Ok(d.get("active") == Some(&Value::Bool(true)));
    }
    if t.refresh {
        return Ok(false);
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Ok(false);
    };
    let r = crate::runner::actions::mcp_with_token(
        ctx,
        &resource,
        &t.value,
        "the control grant's access token before the revocation (it must work)",
    )
    .await?;
    Ok((200..300).contains(&r.status))
}

/// `grant-revocation-complete`: in one browser session the test user authorizes the case's
/// (fresh) client three times: grant A, whose refresh token is then used by three requests at
/// once; grant B, whose code is redeemed by five requests at once; grant C, the control,
/// untouched. Then the user withdraws the client's access (profile `[grant_revocation]`), and
/// every token obtained must have stopped working: introspection `active: false`, refresh
/// `invalid_grant`, 401 at the MCP server. A surviving token fails the case (a JWT the MCP
/// server may check locally until `exp` is a warning, as for rev-at); the control must have
/// worked just before and be seen ending, or nothing was observed.
pub async fn grant_revocation_complete(ctx: &mut CaseCtx<'_>) -> StepResult {
    let client_id = flow::client(ctx, "client")?.client_id.clone();
    let mut held: Vec<Held> = Vec::new();

    // Grant A, and racing refreshes of its refresh token.
    let first = grant(ctx, 1).await?;
    let Some(doc) = first.first() else {
        return Err(Stop::Error(
            "the code of grant A could not be redeemed: no tokens to work with".into(),
        ));
    };
    hold(&mut held, "grant A", doc);
    if let Some(rt) = str_member(doc, "refresh_token") {
        let p = BTreeMap::from([("refresh_token".to_string(), rt)]);
        let saved = flow::token(ctx, token_opts(None, "refresh_token", &p, 3)).await?;
        let won = successes(ctx, &saved, true);
        ctx.note(format!(
            "3 refreshes at once with grant A's refresh token: {} succeeded",
            won.len()
        ));
        for (i, d) in won.iter().enumerate() {
            hold(&mut held, &format!("grant A, racing refresh {}", i + 1), d);
        }
    } else {
        ctx.note("grant A brought no refresh token: no refresh race");
    }

    // Grant B, its code redeemed by racing requests.
    let raced = grant(ctx, 5).await?;
    ctx.note(format!(
        "5 redemptions at once of grant B's code: {} succeeded",
        raced.len()
    ));
    for (i, d) in raced.iter().enumerate() {
        hold(
            &mut held,
            &format!("grant B, racing redemption {}", i + 1),
            d,
        );
    }

    // Grant C, the control: it must work just before the revocation.
    let control = grant(ctx, 1).await?;
    let Some(doc) = control.first() else {
        return Err(Stop::Error(
            "the code of grant C (the control) could not be redeemed".into(),
        ));
    };
    let from = held.len();
    hold(&mut held, "grant C (control)", doc);
    let mut alive_before = Vec::new();
    for (i, t) in held.iter().enumerate().skip(from) {
        if alive(ctx, t).await? {
            alive_before.push(i);
        }
    }
    if alive_before.is_empty() {
        // No introspection and no MCP endpoint: a refresh shows the grant is live, and the
        // tokens it brings are the control's now.
        if let Some(rt) = held[from..]
            .iter()
            .find(|t| t.refresh)
            .map(|t| t.value.clone())
        {
            let r = refresh(ctx, &rt, &[]).await?;
            if r.status == 200 {
                let d = r.json().unwrap_or_default();
                let at = held.len();
                hold(&mut held, "grant C (control), refreshed", &d);
                alive_before.extend(at..held.len());
            }
        }
    }
    if alive_before.is_empty() {
        return Err(Stop::Error(
            "the control grant's tokens did not work before the revocation: its end would prove nothing".into(),
        ));
    }

    withdraw(ctx, &client_id).await?;

    let mut survived = Vec::new();
    let mut jwt_kept = Vec::new();
    let mut ended = 0;
    let mut control_ended = false;
    let mut unknown = Vec::new();
    for (i, t) in held.iter().enumerate() {
        match probe_after(ctx, t).await? {
            After::Ended(how) => {
                ended += 1;
                if alive_before.contains(&i) {
                    control_ended = true;
                }
                ctx.note(format!("{}: ended ({how})", t.label));
            }
            After::Survived(how) => survived.push(format!("{} ({how})", t.label)),
            After::JwtAccepted(how) => jwt_kept.push(format!("{} ({how})", t.label)),
            After::NoEvidence(why) => unknown.push(format!("{}: {why}", t.label)),
        }
    }
    for u in &unknown {
        ctx.note(format!("no evidence for {u}"));
    }
    if !survived.is_empty() {
        return ctx.fail(format!(
            "after the user withdrew the client's access, {} of {} tokens still work: {}",
            survived.len(),
            held.len(),
            survived.join("; ")
        ));
    }
    if !control_ended {
        return Err(Stop::Error(
            "the control grant's tokens, which worked just before, could not be seen ending: nothing was observed".into(),
        ));
    }
    if !jwt_kept.is_empty() {
        ctx.warn(format!(
            "JWT access tokens the MCP server still takes after the revocation (it may check them locally until they expire): {}",
            jwt_kept.join("; ")
        ));
    }
    let racing = held.iter().filter(|t| t.label.contains("racing")).count();
    ctx.pass(format!(
        "after the user withdrew the client's access, {ended} of {} tokens were seen ended ({racing} of them minted by racing requests), the control grant included, which worked just before",
        held.len()
    ));
    Ok(())
}
