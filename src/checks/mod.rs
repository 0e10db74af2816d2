//! Named checks: the expectations a declarative case cannot state on its own (exact URL identity,
//! discovery order, comparing sources, probing variants). Each module is one spec concept and
//! names the sections it covers; case files call these by name (`do = "check"`).

pub mod as_metadata;
pub mod challenge;
pub mod prm;

use std::collections::BTreeMap;

use crate::http::is_loopback_url;
use crate::runner::{CaseCtx, StepResult, Stop};

/// Every name a case file may use; the loader rejects others.
pub const NAMES: &[&str] = &[
    "discovery_mechanism",
    "resource_metadata_url",
    "prm_wellknown",
    "prm_unauthenticated",
    "prm_resource_match",
    "prm_resource_form",
    "prm_authorization_servers",
    "prm_as_reachable",
    "prm_no_empty_values",
    "prm_trailing_slash",
    "prm_consistent_sources",
    "prm_https",
    "prm_fuzz_paths",
    "asm_issuer_match",
    "asm_issuer_form",
    "asm_auth_methods",
    "asm_endpoints_https",
    "asm_registration_works",
    "asm_listed_endpoints_work",
    "asm_oidc_consistency",
    "asm_fuzz",
    "asm_jwks",
];

pub async fn run(
    ctx: &mut CaseCtx<'_>,
    name: &str,
    on: Option<&str>,
    args: &BTreeMap<String, toml::Value>,
) -> StepResult {
    let on_or = |d: &str| on.unwrap_or(d).to_string();
    match name {
        "discovery_mechanism" => challenge::discovery_mechanism(ctx, &on_or("prm")),
        "resource_metadata_url" => challenge::resource_metadata_url(ctx, &on_or("prm")),
        "prm_wellknown" => prm::wellknown(ctx, &on_or("prm")),
        "prm_unauthenticated" => prm::unauthenticated(ctx, &on_or("prm")),
        "prm_resource_match" => prm::resource_match(ctx, &on_or("prm")),
        "prm_resource_form" => prm::resource_form(ctx, &on_or("prm")),
        "prm_authorization_servers" => prm::authorization_servers(ctx, &on_or("prm")),
        "prm_as_reachable" => prm::as_reachable(ctx, &on_or("prm")).await,
        "prm_no_empty_values" => prm::no_empty_values(ctx, &on_or("prm")),
        "prm_trailing_slash" => prm::trailing_slash(ctx).await,
        "prm_consistent_sources" => prm::consistent_sources(ctx, &on_or("prm")),
        "prm_https" => prm::https(ctx, &on_or("prm")).await,
        "prm_fuzz_paths" => prm::fuzz_paths(ctx, args).await,
        "asm_issuer_match" => as_metadata::issuer_match(ctx, &on_or("asm")),
        "asm_issuer_form" => as_metadata::issuer_form(ctx, &on_or("asm")),
        "asm_auth_methods" => as_metadata::auth_methods(ctx, &on_or("asm")),
        "asm_endpoints_https" => as_metadata::endpoints_https(ctx, &on_or("asm")),
        "asm_registration_works" => as_metadata::registration_works(ctx, &on_or("asm")).await,
        "asm_listed_endpoints_work" => as_metadata::listed_endpoints_work(ctx, &on_or("asm")).await,
        "asm_oidc_consistency" => as_metadata::oidc_consistency(ctx, &on_or("asm")),
        "asm_fuzz" => as_metadata::fuzz(ctx, &on_or("asm")).await,
        "asm_jwks" => as_metadata::jwks(ctx, &on_or("asm")).await,
        other => Err(Stop::Error(format!("unknown check {other:?}"))),
    }
}

/// The https rule of MCP 11.3 / OAuth 2.1 §1.5 for one URL: https passes; plain http passes
/// nowhere, but on a loopback target it is a warning (local development), not a failure.
pub fn https_rule(ctx: &mut CaseCtx<'_>, what: &str, u: &str) -> StepResult {
    let scheme = u.split(':').next().unwrap_or("").to_ascii_lowercase();
    if scheme == "https" {
        ctx.pass(format!("{what} uses https ({u})"));
        Ok(())
    } else if scheme == "http" && is_loopback_url(u) {
        ctx.warn(format!(
            "{what} uses plain http ({u}); tolerated only because the host is loopback"
        ));
        Ok(())
    } else {
        ctx.fail(format!("{what} is not an https URL ({u})"))
    }
}
