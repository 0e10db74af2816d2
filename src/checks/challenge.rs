//! The 401 challenge as a discovery mechanism: MCP 2025-11-25 §4.2 (one of `resource_metadata`
//! in the challenge or PRM at a well-known URL), RFC 9728 §5.1.

use authconform_core::judge;

use crate::step::{CaseCtx, StepResult};

/// rs-401-discovery-mechanism: the header's URL yields PRM, or a well-known URL does.
pub fn discovery_mechanism(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    let revision = ctx.env.revision;
    ctx.judged(|f| judge::challenge::discovery_mechanism(f, &d, revision))
}

/// rs-401-resource-metadata-url: absolute https URL that returns PRM for this resource.
pub fn resource_metadata_url(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    ctx.judged(|f| judge::challenge::resource_metadata_url(f, &d))
}
