//! Shared by the targets that run the suite's judgements: responses as the HTTP client records
//! them, and the property every check must keep whatever the server sent. The judgements are
//! the pure part of the checks (`authconform_core::judge`); the check of the same name in the
//! suite only looks up what a step saved, calls the judgement and records its findings, so
//! nothing here needs an HTTP client.
#![allow(dead_code)]

use authconform_core::response::Response;
use authconform_core::verdict::{Finding, Findings, StepResult, Stop};

pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const ISSUER: &str = "https://auth.example.com";

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

/// Runs one judgement and asserts what holds for every check on any input: a failure is always
/// among its findings (the check records them, so the report shows why), and a judgement never
/// both passes and finds a failure. Returns the findings (for the warnings) and the result.
pub fn run_check(
    name: &str,
    judge: impl FnOnce(&mut Findings) -> StepResult,
) -> (Findings, StepResult) {
    let mut f = Findings::default();
    let r = judge(&mut f);
    match &r {
        Err(Stop::Fail(m)) => assert!(
            f.0.contains(&Finding::Fail(m.clone())),
            "{name}: failure {m:?} not in the findings {f:?}"
        ),
        Ok(()) => assert!(
            f.failures().next().is_none(),
            "{name}: passed but recorded a failure: {f:?}"
        ),
        Err(_) => {}
    }
    (f, r)
}
