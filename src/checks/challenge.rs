//! The 401 challenge as a discovery mechanism: MCP 2025-11-25 §4.2 (one of `resource_metadata`
//! in the challenge or PRM at a well-known URL), RFC 9728 §5.1.

use super::https_rule;
use crate::spec::Revision;
use crate::step::{CaseCtx, StepResult, Stop};

/// rs-401-discovery-mechanism: the header's URL yields PRM, or a well-known URL does.
pub fn discovery_mechanism(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    let via_header = d
        .attempts
        .iter()
        .any(|a| a.source == "header" && a.doc().is_some());
    let via_wk = d
        .attempts
        .iter()
        .find(|a| a.source != "header" && a.doc().is_some())
        .map(|a| a.url.clone());
    if ctx.env.revision == Revision::V2025_06_18 && !via_header {
        return ctx.fail(
            "2025-06-18 makes resource_metadata in the 401 challenge the only discovery mechanism, and it does not lead to PRM",
        );
    }
    match (via_header, via_wk) {
        (true, _) => {
            ctx.pass("the 401 challenge's resource_metadata leads to PRM");
            Ok(())
        }
        (false, Some(u)) => {
            ctx.pass(format!("no usable resource_metadata, but PRM is served at {u}"));
            Ok(())
        }
        (false, None) => ctx.fail(
            "neither the 401 challenge (resource_metadata) nor a well-known URL leads to Protected Resource Metadata",
        ),
    }
}

/// rs-401-resource-metadata-url: absolute https URL that returns PRM for this resource.
pub fn resource_metadata_url(ctx: &mut CaseCtx<'_>, on: &str) -> StepResult {
    let d = ctx.discovery(on)?.clone();
    let probe = d
        .probe
        .as_ref()
        .ok_or_else(|| Stop::Error("no unauthenticated probe was made".into()))?;
    let Some(raw) = crate::step::discovery::resource_metadata_param(probe) else {
        return ctx.fail(format!(
            "the {} response's challenge has no resource_metadata parameter",
            probe.status
        ));
    };
    if url::Url::parse(&raw).is_err() {
        return ctx.fail(format!("resource_metadata {raw:?} is not an absolute URL"));
    }
    ctx.pass(format!("resource_metadata is absolute: {raw}"));
    https_rule(ctx, "resource_metadata", &raw)?;
    let Some(a) = d.attempts.iter().find(|a| a.source == "header") else {
        return Err(Stop::Error("the header URL was not fetched".into()));
    };
    match (&a.result, a.doc()) {
        (Err(e), _) => Err(Stop::Error(format!("fetching {raw}: {e}"))),
        (Ok(r), None) => ctx.fail(format!("{raw} answered {} without a JSON object", r.status)),
        (Ok(_), Some(doc)) => {
            if doc.contains_key("resource") {
                ctx.pass("it returns a PRM document (has `resource`)");
                Ok(())
            } else if doc.contains_key("issuer") {
                ctx.fail("it returns authorization server metadata, not PRM")
            } else {
                ctx.fail("the document it returns has no `resource` member")
            }
        }
    }
}
