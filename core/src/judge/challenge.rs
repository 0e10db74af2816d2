//! The 401 challenge: reading it (`WWW-Authenticate`, RFC 9110 §11.6.1; the `resource_metadata`
//! parameter of RFC 9728 §5.1) and judging it as a discovery mechanism (MCP 2025-11-25 §4.2).
//! `authconform::checks::challenge`, the discovery step and the `expect` step call these.

use super::https_rule;
use crate::metadata::Discovery;
use crate::response::Response;
use crate::spec::Revision;
use crate::verdict::{Findings, StepResult, Stop};
use crate::www_authenticate;

/// The `resource_metadata` parameter of the response's Bearer challenge, if any.
pub fn resource_metadata_param(r: &Response) -> Option<String> {
    let values: Vec<&str> = r.header_all("www-authenticate").collect();
    let challenges = www_authenticate::parse_all(values).ok()?;
    challenges
        .iter()
        .filter(|c| c.is_scheme("bearer"))
        .find_map(|c| c.param("resource_metadata").map(str::to_string))
}

/// The response's challenges, parsed; a malformed header is a failure with the parse position.
pub fn challenges(
    f: &mut Findings,
    r: &Response,
) -> Result<Vec<www_authenticate::Challenge>, Stop> {
    let values: Vec<&str> = r.header_all("www-authenticate").collect();
    if values.is_empty() {
        return Err(failed(f, "the response has no WWW-Authenticate header"));
    }
    match www_authenticate::parse_all(values) {
        Ok(c) if c.is_empty() => Err(failed(f, "WWW-Authenticate holds no challenge")),
        Ok(c) => Ok(c),
        Err(e) => Err(failed(
            f,
            format!("WWW-Authenticate does not parse (RFC 9110 §11.6.1): {e}"),
        )),
    }
}

fn failed(f: &mut Findings, msg: impl Into<String>) -> Stop {
    f.fail(msg).expect_err("a failure")
}

/// rs-401-discovery-mechanism: the header's URL yields PRM, or a well-known URL does.
pub fn discovery_mechanism(f: &mut Findings, d: &Discovery, revision: Revision) -> StepResult {
    let via_header = d
        .attempts
        .iter()
        .any(|a| a.source == "header" && a.doc().is_some());
    let via_wk = d
        .attempts
        .iter()
        .find(|a| a.source != "header" && a.doc().is_some())
        .map(|a| a.url.clone());
    if revision == Revision::V2025_06_18 && !via_header {
        return f.fail(
            "2025-06-18 makes resource_metadata in the 401 challenge the only discovery mechanism, and it does not lead to PRM",
        );
    }
    match (via_header, via_wk) {
        (true, _) => {
            f.pass("the 401 challenge's resource_metadata leads to PRM");
            Ok(())
        }
        (false, Some(u)) => {
            f.pass(format!("no usable resource_metadata, but PRM is served at {u}"));
            Ok(())
        }
        (false, None) => f.fail(
            "neither the 401 challenge (resource_metadata) nor a well-known URL leads to Protected Resource Metadata",
        ),
    }
}

/// rs-401-resource-metadata-url: when the challenge names one, `resource_metadata` is an
/// absolute https URL that returns PRM for this resource (RFC 9728 §5.1).
pub fn resource_metadata_url(f: &mut Findings, d: &Discovery) -> StepResult {
    let probe = d
        .probe
        .as_ref()
        .ok_or_else(|| Stop::Error("no unauthenticated probe was made".into()))?;
    let Some(raw) = resource_metadata_param(probe) else {
        // RFC 9728 §5 "MAY"; since 2025-11-25 a well-known URL is the other mechanism, and in
        // 2025-06-18 (header only) the missing header is rs-401-discovery-mechanism's failure.
        return Err(Stop::Skip(format!(
            "the {} response's challenge has no resource_metadata parameter: whether PRM can be discovered at all is rs-401-discovery-mechanism's finding",
            probe.status
        )));
    };
    if url::Url::parse(&raw).is_err() {
        return f.fail(format!("resource_metadata {raw:?} is not an absolute URL"));
    }
    f.pass(format!("resource_metadata is absolute: {raw}"));
    https_rule(f, "resource_metadata", &raw)?;
    let Some(a) = d.attempts.iter().find(|a| a.source == "header") else {
        return Err(Stop::Error("the header URL was not fetched".into()));
    };
    match (&a.result, a.doc()) {
        (Err(e), _) => Err(Stop::Error(format!("fetching {raw}: {e}"))),
        (Ok(r), None) => f.fail(format!("{raw} answered {} without a JSON object", r.status)),
        (Ok(_), Some(doc)) => {
            if doc.contains_key("resource") {
                f.pass("it returns a PRM document (has `resource`)");
                Ok(())
            } else if doc.contains_key("issuer") {
                f.fail("it returns authorization server metadata, not PRM")
            } else {
                f.fail("the document it returns has no `resource` member")
            }
        }
    }
}
