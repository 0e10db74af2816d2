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
pub mod expect;
pub mod params;
pub mod request;
pub mod token;
pub mod wait;

pub use context::{Attempt, CaseCtx, Discovery, RunEnv, Saved, Slot, StepResult, Stop};

use crate::case::model::{Expect, ExpectStep};

/// Saves what an action observed under `name` and judges the step's expectations on it.
pub fn save_and_expect(
    ctx: &mut CaseCtx<'_>,
    saved: Saved,
    name: &str,
    expect: Option<&Expect>,
) -> StepResult {
    ctx.saved.insert(name.to_string(), saved.clone());
    match expect {
        Some(e) => expect_on(ctx, &saved, name, e),
        None => Ok(()),
    }
}

/// A failed expectation of a stage-setting request means the case cannot be judged.
pub fn precondition_held(r: StepResult, precondition: bool) -> StepResult {
    match r {
        Err(Stop::Fail(m)) if precondition => Err(Stop::Error(format!(
            "a valid request was refused, so the probe cannot be judged: {m}"
        ))),
        r => r,
    }
}

/// The `expect` step: expectations over what an earlier step saved.
pub fn run_expect(ctx: &mut CaseCtx<'_>, s: &ExpectStep) -> StepResult {
    let saved = ctx
        .saved
        .get(&s.on)
        .cloned()
        .ok_or_else(|| Stop::Error(format!("nothing saved as `{}`", s.on)))?;
    expect_on(ctx, &saved, &s.on, &s.expect)
}

fn expect_on(ctx: &mut CaseCtx<'_>, saved: &Saved, name: &str, e: &Expect) -> StepResult {
    match saved.response() {
        Some((url, r)) => {
            let (url, r) = (url.to_string(), r.clone());
            expect::check(ctx, &url, &r, e)
        }
        None => match saved {
            // A discovery that found no document: the expectation is about that document, so
            // its absence is what the server did wrong, not something the suite failed to see.
            Saved::Discovery(d) if d.attempts.iter().any(|a| a.result.is_ok()) => {
                ctx.fail(format!(
                    "no usable document at {}",
                    d.attempts
                        .iter()
                        .map(|a| a.url.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            _ => Err(Stop::Error(format!("`{name}` holds no response"))),
        },
    }
}
