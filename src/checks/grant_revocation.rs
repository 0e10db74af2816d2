//! A grant the user withdraws at the AS (`grant-revocation-complete`; RFC 7009 §2.1, RFC 6749
//! §10.5 / OAuth 2.1 §4.1.3): the user's account page or the profile's command ends the client's
//! access, and every token the grant brought must stop working, racing refreshes and racing code
//! redemptions included.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::tokens::{introspect, jwt_claims, oauth_error, refresh, str_member, user_authorization};
use crate::case::model::TokenStep;
use crate::http::{Request, Response};
use crate::step::{CaseCtx, Saved, StepResult, Stop};
use crate::step::{client, params, token};

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

/// A token request sent `parallel` times at once (a race), from the authorization saved as
/// `from` or from nothing.
fn racing(
    from: Option<&str>,
    grant_type: &str,
    params: BTreeMap<String, String>,
    parallel: usize,
) -> TokenStep {
    TokenStep {
        from: from.map(str::to_string),
        grant_type: grant_type.to_string(),
        params,
        parallel: (parallel > 1).then_some(parallel),
        ..Default::default()
    }
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
    let a = user_authorization(ctx, &none, &[], Some(SESSION)).await?;
    if a.code().is_none() {
        return Err(Stop::Error(format!(
            "the authorization brought no code: the AS {}",
            a.describe()
        )));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a)));
    let saved = token::token(
        ctx,
        &racing(Some("auth"), "authorization_code", none, parallel),
    )
    .await?;
    Ok(successes(ctx, &saved, parallel > 1))
}

/// The user withdraws the client's access: the profile's account page, requested in the
/// user's browser session, or its command.
async fn withdraw(ctx: &mut CaseCtx<'_>, client_id: &str) -> StepResult {
    let cfg = ctx.env.profile.grant_revocation.clone();
    // The user who granted the access: the one this case leased.
    let username = ctx
        .test_user(crate::case::model::TestUser::First)
        .map(|u| u.username)
        .unwrap_or_default();
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
        let form = params::encode_pairs(&fields);
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
        let r = browser.send(&mut ctx.recorder(), req).await;
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

/// Runs a program (no shell) with a deadline; its exit code and the first 2 KiB of its output,
/// on one line.
pub(super) fn run_bounded(
    argv: &[String],
    envs: &[(String, String)],
    timeout: Duration,
) -> Result<(i32, String), String> {
    let ran = crate::command::run(argv, envs, None, timeout, 2048)?;
    let text = ran.output.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((ran.code, text))
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
        if let Some(shape) = crate::step::expect::token_refused(&r, &["invalid_grant"]) {
            crate::step::expect::note_shape(ctx, shape);
            return Ok(After::Ended(format!("{seen}a refresh is refused")));
        }
        return Ok(match (r.status, oauth_error(&r).as_deref()) {
            (200, _) => After::Survived(format!("{seen}a refresh with it still succeeds")),
            (s, e) => After::NoEvidence(format!("{seen}a refresh answered {s} error={e:?}")),
        });
    }
    let Some(resource) = ctx.env.target.resource.clone() else {
        return Ok(After::NoEvidence(
            "no MCP endpoint and no introspection to try it with".into(),
        ));
    };
    let r = crate::step::request::mcp_with_token(
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
    let r = crate::step::request::mcp_with_token(
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
pub async fn complete(ctx: &mut CaseCtx<'_>) -> StepResult {
    let client_id = client::named(ctx, "client")?.client_id.clone();
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
        let saved = token::token(ctx, &racing(None, "refresh_token", p, 3)).await?;
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
