//! One login, as a case makes one: a `client` step, an authorization through the profile's
//! login driver, the code redeemed at the token endpoint. Revision detection needs only its
//! token; `authconform login` keeps everything it went through (exchanges, pages, the driver's
//! trace) so a user can see where a profile goes wrong.

use serde::Serialize;

use crate::checks;
use crate::login::Outcome;
use crate::login::users::Lease;
use crate::record::Exchange;
use crate::step::{self, CaseCtx, RunEnv, Saved, Stop, authorize::Authorization};

/// The step of a login that failed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LoginFailure {
    /// `client`, `authorize` or `token`.
    pub step: &'static str,
    pub why: String,
}

fn failed(step: &'static str, why: impl Into<String>) -> LoginFailure {
    LoginFailure {
        step,
        why: why.into(),
    }
}

fn stop_text(s: Stop) -> String {
    match s {
        Stop::Pass(m) | Stop::Fail(m) | Stop::Skip(m) | Stop::Error(m) => m,
    }
}

/// Logs the test user in and redeems the code: the authorization (when the driver got that
/// far) and the access token, or the step that failed. The exchanges are the context's.
pub(crate) async fn one_login(
    ctx: &mut CaseCtx<'_>,
) -> (Option<Authorization>, Result<String, LoginFailure>) {
    let client = match step::client::provision(ctx, &Default::default()).await {
        Ok(c) => c,
        Err(e) => return (None, Err(failed("client", stop_text(e)))),
    };
    ctx.saved.insert("client".into(), Saved::Client(client));
    let a = match checks::tokens::user_authorization(ctx, &Default::default(), &[], None).await {
        Ok(a) => a,
        Err(e) => return (None, Err(failed("authorize", stop_text(e)))),
    };
    if a.code().is_none() {
        let user = ctx
            .test_user(crate::case::model::TestUser::First)
            .map(|u| u.username);
        let why = no_code(&a, user.as_deref());
        return (Some(a), Err(failed("authorize", why)));
    }
    ctx.saved
        .insert("auth".into(), Saved::Authorization(Box::new(a.clone())));
    let token = step::token::token(ctx, &step::token::redeeming("auth", Default::default())).await;
    let token = match token {
        Err(e) => Err(failed("token", stop_text(e))),
        Ok(saved) => match saved.response() {
            None => Err(failed("token", "the token endpoint gave no response")),
            Some((_, r)) => match r.json() {
                Some(doc) if r.status == 200 => checks::tokens::str_member(&doc, "access_token")
                    .ok_or_else(|| failed("token", "the token response holds no access_token")),
                doc => {
                    let member = |k| doc.as_ref().and_then(|d| checks::tokens::str_member(d, k));
                    Err(failed(
                        "token",
                        format!(
                            "the token endpoint answered {}{}{}: the code was not redeemed",
                            r.status,
                            member("error")
                                .map(|e| format!(" error={e}"))
                                .unwrap_or_default(),
                            member("error_description")
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        ),
                    ))
                }
            },
        },
    };
    (Some(a), token)
}

/// Why an authorization that ended brought no code, in words. A login form shown again after
/// the credentials went in (some servers answer it with a 4xx, where the form driver stops) is
/// named for what it is: the AS refused them.
fn no_code(a: &Authorization, user: Option<&str>) -> String {
    let cb = a.callback.clone().unwrap_or_default();
    if let (Outcome::Page { url, status, .. }, Some(last)) =
        (&a.journey.outcome, a.journey.pages.last())
        && a.journey.interactions.contains(&"login")
        && authconform_core::login_form::parse(&last.body)
            .forms
            .iter()
            .any(|f| f.password.is_some())
    {
        return format!(
            "the login form came back ({status}, {url}) after the credentials for {:?} were submitted: the AS refused them. Check [login] username / password_env",
            user.unwrap_or("")
        );
    }
    match &a.journey.outcome {
        Outcome::Redirected { .. } => match cb.get("error") {
            Some(_) => format!(
                "the AS {}{}: it refused the authorization request",
                a.describe(),
                cb.get("error_description")
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            None => format!("the AS {}", a.describe()),
        },
        Outcome::Page { excerpt, .. } => format!(
            "the AS {}; the page says: {}",
            a.describe(),
            excerpt.chars().take(200).collect::<String>()
        ),
    }
}

/// What `authconform login` shows, every string redacted.
#[derive(Debug, Clone, Serialize)]
pub struct LoginTrace {
    /// The pool user who logged in.
    pub user: Option<UserLine>,
    /// The login driver (`form`, `script`...).
    pub driver: String,
    /// Each step that ran, in order, with what it came to.
    pub steps: Vec<StepLine>,
    pub exchanges: Vec<ExchangeLine>,
    /// The pages the driver saw: kind (`login`, `consent`, `page`), URL and status.
    pub pages: Vec<PageLine>,
    /// The driver's own account of what it did (captures, rules).
    pub trace: Vec<String>,
    /// Forms submitted (login, consent).
    pub interactions: Vec<String>,
    /// Where the authorization ended: redirected to (redacted), ended on a page, or failed.
    pub outcome: String,
    /// Set when the login did not get an access token.
    pub failed: Option<LoginFailure>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserLine {
    /// `first`, `second`, or the `[[login.users]]` name.
    pub label: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// `client`, `authorize` or `token`.
    pub step: String,
    /// What it came to (`failed: ...` for the step that failed).
    pub result: String,
}

/// One exchange in short.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeLine {
    pub note: String,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub location: Option<String>,
    /// The start of the response body on one line, or the transport error.
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PageLine {
    pub kind: String,
    pub url: String,
    pub status: u16,
}

impl ExchangeLine {
    fn of(x: &Exchange, r: &crate::redact::Redactor) -> Self {
        let location = x
            .response_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| r.text(v));
        let body = match (&x.error, &x.response_body) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(b)) => b.clone(),
            (None, None) => String::new(),
        };
        let excerpt: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        // Recorded exchanges are redacted already (URLs and `Location` included: masking them
        // as URLs again would mask the masks); secrets learnt later are masked here.
        ExchangeLine {
            note: x.note.clone(),
            method: x.method.clone(),
            url: r.text(&x.url),
            status: x.status,
            location: location.map(|l| r.text(&l)),
            excerpt: r.text(&excerpt.chars().take(160).collect::<String>()),
        }
    }
}

/// The longest `authconform login` may take, like the detection login.
const LOGIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One login as the pool user `user` (the first when `None`), with everything it went through.
pub async fn login_trace(env: &RunEnv, user: Option<usize>) -> LoginTrace {
    let started = std::time::Instant::now();
    let redactor = env.http.redactor().clone();
    let mut ctx = CaseCtx::new(env);
    ctx.case_id = "login".into();
    if let Some(i) = user {
        ctx.leases = vec![Lease::pinned(i)];
    }
    let (auth, result) = match tokio::time::timeout(LOGIN_LIMIT, one_login(&mut ctx)).await {
        Ok(x) => x,
        Err(_) => (
            None,
            Err(failed(
                "authorize",
                format!("the login took longer than {} s", LOGIN_LIMIT.as_secs()),
            )),
        ),
    };
    let user = ctx
        .test_user(crate::case::model::TestUser::First)
        .map(|u| UserLine {
            label: u.label,
            username: u.username,
        });
    if let Ok(t) = &result {
        redactor.add_secret(t);
    }
    let mut steps: Vec<StepLine> = Vec::new();
    let failure = result.as_ref().err();
    for (name, ok) in [
        ("client", "a client to log in with"),
        ("authorize", "a code came back"),
        ("token", "the token endpoint issued an access token"),
    ] {
        match failure {
            Some(f) if f.step == name => {
                steps.push(StepLine {
                    step: name.into(),
                    result: format!("failed: {}", redactor.text(&f.why)),
                });
                break;
            }
            _ => steps.push(StepLine {
                step: name.into(),
                result: ok.into(),
            }),
        }
    }
    if let Some(client) = ctx.saved.get("client").and_then(|s| match s {
        Saved::Client(c) => Some(c),
        _ => None,
    }) {
        steps[0].result = format!("client {} ({})", client.client_id, client.source);
    }
    let outcome = match (&auth, failure) {
        (Some(a), _) => match &a.journey.outcome {
            Outcome::Redirected { location, .. } => {
                format!("redirected to {}", redactor.url(location))
            }
            Outcome::Page {
                url,
                status,
                excerpt,
            } => format!(
                "ended on a page ({status}) at {}: {}",
                redactor.url(url),
                redactor.text(excerpt)
            ),
        },
        (None, Some(f)) => format!("failed at the {} step: {}", f.step, redactor.text(&f.why)),
        (None, None) => String::new(),
    };
    let journey = auth.as_ref().map(|a| &a.journey);
    LoginTrace {
        user,
        driver: format!("{:?}", env.profile.login.driver).to_lowercase(),
        steps,
        exchanges: ctx
            .exchanges
            .iter()
            .map(|x| ExchangeLine::of(x, &redactor))
            .collect(),
        pages: journey
            .map(|j| {
                j.pages
                    .iter()
                    .map(|p| PageLine {
                        kind: p.kind.into(),
                        url: redactor.url(&p.url),
                        status: p.status,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        trace: journey
            .map(|j| j.trace.iter().map(|t| redactor.text(t)).collect())
            .unwrap_or_default(),
        interactions: journey
            .map(|j| j.interactions.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default(),
        outcome,
        failed: result.err().map(|f| LoginFailure {
            step: f.step,
            why: redactor.text(&f.why),
        }),
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
