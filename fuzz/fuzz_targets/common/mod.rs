//! Shared by the targets that run the suite's checks: a [`RunEnv`] that never touches the
//! network (the checks fuzzed here are the synchronous ones, which only read what a step saved),
//! and the property every check must keep whatever the server sent.
#![allow(dead_code)]

use authconform::http::{Http, HttpConfig, Response};
use authconform::redact::Redactor;
use authconform::step::{CaseCtx, RunEnv, StepResult, Stop};
use authconform::spec::Revision;
use authconform::target::{Profile, Target};

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://auth.example.com";

/// One environment per process (building the HTTP client is the expensive part); leaked so a
/// `CaseCtx<'static>` can borrow it. Nothing is ever sent through it.
pub fn env() -> &'static RunEnv {
    thread_local! {
        static ENV: &'static RunEnv = Box::leak(Box::new(RunEnv {
            http: Http::new(HttpConfig::default(), Redactor::new()).expect("HTTP client"),
            target: Target {
                resource: Some(RESOURCE.into()),
                issuer: Some(ISSUER.into()),
            },
            revision: Revision::V2025_11_25,
            profile: Profile::default(),
            callback: None,
            registered: Default::default(),
            as_metadata: Default::default(),
            documents: None,
        }));
    }
    ENV.with(|e| *e)
}

pub fn ctx() -> CaseCtx<'static> {
    CaseCtx::new(env())
}

/// A 200 (or other) response with the given body and headers, as the HTTP client records it.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        truncated: false,
    }
}

/// Runs one check and asserts what holds for every check on any input: a failure is always
/// written into the case's details (the report shows why), and a check never both passes and
/// leaves a `FAILED` line of its own.
pub fn run_check(
    name: &str,
    ctx: &mut CaseCtx<'_>,
    check: impl FnOnce(&mut CaseCtx<'_>) -> StepResult,
) -> StepResult {
    let before = ctx.details.len();
    let r = check(ctx);
    let added = &ctx.details[before..];
    match &r {
        Err(Stop::Fail(m)) => assert!(
            added.iter().any(|d| d == &format!("FAILED: {m}")),
            "{name}: failure {m:?} not in the details {added:?}"
        ),
        Ok(()) => assert!(
            !added.iter().any(|d| d.starts_with("FAILED: ")),
            "{name}: passed but recorded a failure: {added:?}"
        ),
        Err(_) => {}
    }
    r
}
