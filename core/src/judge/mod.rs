//! The judgements of the checks that read what a step saved and send nothing: each takes the
//! saved data (a discovery, a document, a response) and writes what it observes into
//! [`Findings`], returning how it ends. The checks in `authconform::checks` call them and record
//! the findings on the case, so the suite and the fuzz targets run the same code.

pub mod as_metadata;
pub mod challenge;
pub mod prm;
pub mod token_endpoint;

use crate::response::is_loopback_url;
use crate::verdict::{Findings, StepResult};

/// The https rule of MCP 11.3 / OAuth 2.1 §1.5 for one URL: https passes; plain http passes
/// nowhere, but on a loopback target it is a warning (local development), not a failure.
pub fn https_rule(f: &mut Findings, what: &str, u: &str) -> StepResult {
    let scheme = u.split(':').next().unwrap_or("").to_ascii_lowercase();
    if scheme == "https" {
        f.pass(format!("{what} uses https ({u})"));
        Ok(())
    } else if scheme == "http" && is_loopback_url(u) {
        f.warn(format!(
            "{what} uses plain http ({u}); tolerated only because the host is loopback"
        ));
        Ok(())
    } else {
        f.fail(format!("{what} is not an https URL ({u})"))
    }
}
