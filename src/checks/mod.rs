//! Named checks: the expectations a declarative case cannot state on its own (exact URL identity,
//! discovery order, comparing sources, probing variants). Each module is one spec concept and
//! names the sections it covers; case files call these by name (`do = "check"`). Most mirror a
//! case area (`cases/<area>/`); `passthrough` and `tls` are concepts within one (audience,
//! transport). What several modules share lives in `tokens` (reading the tokens a case holds,
//! asking the AS about them) and below (hostile bodies, the https rule, check arguments, the
//! entropy judgement).

pub mod advertised;
pub mod as_metadata;
pub mod audience;
pub mod authorization_code;
pub mod challenge;
pub mod cimd;
pub mod client_credentials;
pub mod dcr;
pub mod dpop;
pub mod grant_revocation;
pub mod id_jag;
pub mod par;
pub mod passthrough;
pub mod pkce;
pub mod prm;
pub mod revocation;
pub mod scopes;
pub mod sessions;
pub mod tls;
pub mod token_endpoint;
pub mod token_exchange;
pub mod token_lifecycle;
// Crate-visible only so `crate::fuzzing` can re-export its pure readers to the fuzz targets.
pub(crate) mod tokens;

use std::collections::BTreeMap;

use crate::case::model::CheckStep;
use crate::step::{CaseCtx, StepResult, Stop};

/// The one registry of named checks: each entry is a name a case file may use (`do = "check"`,
/// `name = ...`) and the call it dispatches to, with `ctx`, `on(default)` (the step's `on`, else
/// the default) and `args` (the step's arguments) in scope. The loader's list of known names
/// ([`NAMES`]) and the dispatch ([`run`]) are both generated from it, so a check cannot be named
/// without being implemented.
macro_rules! registry {
    ($ctx:ident, $on:ident, $args:ident; $($name:literal => $call:expr,)*) => {
        /// Every name a case file may use; the loader rejects others.
        pub const NAMES: &[&str] = &[$($name),*];

        /// Runs the named check of a `check` step.
        pub async fn run($ctx: &mut CaseCtx<'_>, step: &CheckStep) -> StepResult {
            let $args = &step.args;
            let $on = |d: &str| step.on.clone().unwrap_or_else(|| d.to_string());
            match step.name.as_str() {
                $($name => $call,)*
                other => Err(Stop::Error(format!("unknown check {other:?}"))),
            }
        }
    };
}

registry! { ctx, on, args;
        "discovery_mechanism" => challenge::discovery_mechanism(ctx, &on("prm")),
        "resource_metadata_url" => challenge::resource_metadata_url(ctx, &on("prm")),
        "prm_wellknown" => prm::wellknown(ctx, &on("prm")),
        "prm_unauthenticated" => prm::unauthenticated(ctx, &on("prm")),
        "prm_resource_match" => prm::resource_match(ctx, &on("prm")),
        "prm_resource_form" => prm::resource_form(ctx, &on("prm")),
        "prm_authorization_servers" => prm::authorization_servers(ctx, &on("prm")),
        "prm_as_reachable" => prm::as_reachable(ctx, &on("prm")).await,
        "prm_no_empty_values" => prm::no_empty_values(ctx, &on("prm")),
        "prm_trailing_slash" => prm::trailing_slash(ctx).await,
        "prm_consistent_sources" => prm::consistent_sources(ctx, &on("prm")),
        "prm_https" => prm::https(ctx, &on("prm")).await,
        "prm_fuzz_paths" => prm::fuzz_paths(ctx, args).await,
        "asm_issuer_match" => as_metadata::issuer_match(ctx, &on("asm")),
        "asm_issuer_form" => as_metadata::issuer_form(ctx, &on("asm")),
        "asm_auth_methods" => as_metadata::auth_methods(ctx, &on("asm")),
        "asm_auth_methods_advertised" => advertised::auth_methods_behaviour(ctx, &on("asm"), advertised::Direction::Advertised).await,
        "asm_grant_types_behaviour" => advertised::grant_types_behaviour(ctx, &on("asm")).await,
        "asm_auth_methods_accepted" => advertised::auth_methods_behaviour(ctx, &on("asm"), advertised::Direction::Accepted).await,
        "asm_endpoints_https" => as_metadata::endpoints_https(ctx, &on("asm")),
        "asm_registration_works" => as_metadata::registration_works(ctx, &on("asm")).await,
        "asm_listed_endpoints_work" => as_metadata::listed_endpoints_work(ctx, &on("asm")).await,
        "asm_protected_resources" => as_metadata::protected_resources(ctx, &on("asm")),
        "asm_oidc_consistency" => as_metadata::oidc_consistency(ctx, &on("asm")),
        "asm_fuzz" => as_metadata::fuzz(ctx, &on("asm")).await,
        "asm_jwks" => as_metadata::jwks(ctx, &on("asm")).await,
        "asm_response_types_values" => as_metadata::response_types_values(ctx, &on("asm")),
        "asm_iss_flag" => as_metadata::iss_flag(ctx, &on("asm"), args),
        "asm_jwks_rotation" => as_metadata::jwks_rotation(ctx, &on("t1")).await,
        "asm_auth_endpoint_no_fragment" => {
            as_metadata::auth_endpoint_no_fragment(ctx, &on("asm"))
        },
        "tls_as" => tls::tls_as(ctx, &on("asm")).await,
        "tls_rs" => tls::tls_rs(ctx, &on("t1")).await,
        "tls_cert" => tls::tls_cert(ctx).await,
        "tls_modern_config" => tls::tls_modern_config(ctx).await,
        "pkce_plain" => pkce::plain(ctx, &on("auth")),
        "pkce_default_method" => pkce::default_method(ctx, &on("auth")).await,
        "pkce_not_leaked" => pkce::not_leaked(ctx, &on("auth")),
        "code_state_echo" => authorization_code::state_echo(ctx, &on("auth")),
        "code_state_on_error" => authorization_code::state_on_error(ctx, &on("auth")),
        "code_state_absent" => authorization_code::state_absent(ctx, &on("auth")),
        "code_iss" => authorization_code::iss(ctx, &on("auth")),
        "code_iss_rfc9207" => authorization_code::iss_rfc9207(ctx, &on("auth")),
        "code_empty_like_omitted" => authorization_code::empty_like_omitted(ctx),
        "code_params_unique" => authorization_code::params_unique(ctx, &on("auth")),
        "code_error_format" => authorization_code::error_format(ctx, &on("auth")),
        "code_no_redirect_before_login" => {
            authorization_code::no_redirect_before_login(ctx, &on("auth"))
        },
        "code_frame_protection" => authorization_code::frame_protection(ctx, &on("auth")),
        "code_referrer_policy" => authorization_code::referrer_policy(ctx, &on("auth")),
        "code_redirect_fragment" => authorization_code::redirect_fragment(ctx, &on("auth")),
        "code_consent_required" => authorization_code::consent_required(ctx, &on("auth")),
        "code_entropy" => authorization_code::entropy(ctx, args).await,
        "code_lifetime" => authorization_code::lifetime(ctx, &on("auth")).await,
        "tokens_revoked" => authorization_code::tokens_revoked(ctx, &on("token")).await,
        "tokens_still_valid" => authorization_code::tokens_still_valid(ctx, &on("token")).await,
        "code_resource_binding" => authorization_code::resource_binding(ctx, &on("token")).await,
        "registered_query_kept" => authorization_code::registered_query_kept(ctx, &on("auth")),
        "token_response_shape" => token_endpoint::response_shape(ctx, &on("token")),
        "token_charset" => token_endpoint::token_charset(ctx, &on("token")),
        "token_short_lived" => token_lifecycle::short_lived(ctx, &on("token")),
        "token_one_of_parallel" => token_endpoint::one_of_parallel(ctx, args),
        "token_fuzz" => token_endpoint::fuzz(ctx, args).await,
        "token_accepted_or_warn" => token_endpoint::accepted_or_warn(ctx, &on("token")),
        "jwt_assertion_graded" => {
            token_endpoint::jwt_assertion_graded(ctx, &on("token"), "asm", args).await
        },
        "rt_rotated" => token_lifecycle::rotated(ctx, &on("t2"), args),
        "as_offers" => as_metadata::offers(ctx, &on("asm"), args),
        "challenge_syntax" => scopes::challenge_syntax(ctx, args),
        "no_offline_access" => scopes::no_offline_access(ctx, &on("c401")),
        "scope_catalogue" => scopes::scope_catalogue(ctx),
        "insufficient_scope_content" => scopes::insufficient_scope_content(ctx, &on("last")),
        "forged_token" => audience::forged_token(ctx, &on("token"), args).await,
        "token_audience_at_rs" => audience::token_audience_at_rs(ctx, &on("token"), args).await,
        "openid_grant" => passthrough::openid_grant(ctx, &on("token")).await,
        "id_token_as_access" => passthrough::id_token_as_access(ctx, &on("token")).await,
        "upstream_token" => passthrough::upstream_token(ctx, &on("token")).await,
        "no_passthrough" => passthrough::no_passthrough(ctx, &on("token")).await,
        "introspection_aud" => revocation::introspection_aud(ctx, &on("intro")),
        "revoked_grant_at_resource" => {
            revocation::revoked_grant_at_resource(ctx, &on("t1")).await
        },
        "two_scope_grant" => scopes::two_scope_grant(ctx, &on("t1")).await,
        "refresh_downscope" => token_lifecycle::refresh_downscope(ctx, &on("t1")).await,
        "refresh_scope_kept" => token_lifecycle::refresh_scope_kept(ctx, &on("t1")).await,
        "refresh_resource_binding" => {
            token_lifecycle::refresh_resource_binding(ctx, &on("t1")).await
        },
        "refresh_idle_expiry" => token_lifecycle::refresh_idle_expiry(ctx, &on("t1")).await,
        "token_entropy" => token_lifecycle::token_entropy(ctx, &on("t1"), args).await,
        "revoked_access_at_resource" => {
            revocation::revoked_access_at_resource(ctx, &on("t1")).await
        },
        "access_revocation_cascade" => {
            revocation::access_revocation_cascade(ctx, &on("t1")).await
        },
        "access_revocation_answer" => revocation::access_revocation_answer(ctx, &on("t1")).await,
        "resource_changes_aud" => audience::resource_changes_aud(ctx, &on("t1"), args).await,
        "request_refused" => scopes::request_refused(ctx, &on("auth"), args).await,
        "scope_order" => scopes::scope_order(ctx).await,
        "scope_reported" => scopes::scope_reported(ctx, &on("t1")).await,
        "session_needs_token" => sessions::session_needs_token(ctx, &on("t1")).await,
        "stale_session" => sessions::stale_session(ctx, &on("t1")).await,
        "session_id_entropy" => sessions::session_id_entropy(ctx, &on("t1"), args).await,
        "session_user_binding" => sessions::session_user_binding(ctx, &on("t1"), args).await,
        "state_handle_binding" => sessions::state_handle_binding(ctx, &on("t1"), args).await,
        "grant_revocation_complete" => grant_revocation::complete(ctx).await,
        "refresh_scope_escalation" => {
            token_lifecycle::refresh_scope_escalation(ctx, &on("t1")).await
        },
        "dcr_secret_expiry" => dcr::secret_expiry(ctx, &on("reg")),
        "dcr_consistent" => dcr::consistent(ctx, &on("reg")),
        "dcr_invalid_handled" => dcr::invalid_handled(ctx, &on("reg"), args),
        "dcr_no_https_client_id" => dcr::no_https_client_id(ctx, &on("reg")),
        "dcr_scope_shown" => dcr::scope_shown(ctx, &on("reg")),
        "dcr_https_only" => dcr::https_only(ctx).await,
        "dcr_fuzz" => dcr::fuzz(ctx, args).await,
        "dcr_escaped" => dcr::escaped(ctx, &on("auth")),
        "dcr_shows_metadata" => dcr::shows_metadata(ctx, &on("auth")),
        "dcr_secret_entropy" => dcr::secret_entropy(ctx, args).await,
        "cimd_flag" => cimd::flag(ctx).await,
        "cimd_fetch" => cimd::fetch(ctx).await,
        "cimd_port" => cimd::port(ctx).await,
        "cimd_shows_hosts" => cimd::shows_hosts(ctx, &on("auth")),
        "cimd_localhost_warning" => cimd::localhost_warning(ctx, &on("auth"), args),
        "cimd_trust_policy" => cimd::trust_policy(ctx, &on("auth")),
        "cimd_refetch_on_token" => cimd::refetch_on_token(ctx, &on("auth")).await,
        "cimd_rebind_ready" => cimd::rebind_ready(ctx),
        "cimd_dns_rebind" => cimd::dns_rebind(ctx).await,
        "cimd_own_document" => cimd::own_document(ctx, &on("auth"), args),
        "cc_supported" => client_credentials::supported(ctx, args).await,
        "token_audience" => client_credentials::token_audience(ctx, &on("token")).await,
        "cc_scope_refused" => client_credentials::scope_refused(ctx, &on("token"), args),
        // Token exchange, RFC 8693 (token_exchange.rs).
        "tx_supported" => token_exchange::supported(ctx, args).await,
        "tx_client" => token_exchange::client(ctx, args).await,
        "tx_response" => token_exchange::response(ctx, &on("exchanged")),
        "tx_act_claim" => token_exchange::act_claim(ctx, &on("exchanged"), args).await,
        "tx_may_act" => token_exchange::may_act(ctx, &on("exchanged"), args).await,
        "tx_foreign_subject" => token_exchange::foreign_subject(ctx).await,
        "tx_no_escalation" => token_exchange::no_escalation(ctx, &on("subject")).await,
        "tx_other_audience_at_rs" => {
            token_exchange::other_audience_at_rs(ctx, &on("exchanged")).await
        },
        // DPoP (RFC 9449): the gate of every dpop-* case, and what proofs cannot state.
        "dpop_offered" => dpop::offered(ctx, args).await,
        "dpop_advertised" => dpop::advertised(ctx).await,
        "dpop_bound" => dpop::bound(ctx, &on("token"), args).await,
        "dpop_nonce" => dpop::nonce(ctx, &on("token"), args).await,
        "dpop_iat_refused" => dpop::iat_refused(ctx, &on("token")),
        // Enterprise-managed authorization, ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant).
        "idjag_ready" => id_jag::ready(ctx).await,
        "idjag_advertised" => id_jag::advertised(ctx, &on("asm")),
        "idjag_accepted" => id_jag::accepted(ctx).await,
        "idjag_refused" => id_jag::refused(ctx, args).await,
        "idjag_replay" => id_jag::replay(ctx).await,
        "idjag_resource_binding" => id_jag::resource_binding(ctx, args).await,
        "idjag_scope" => id_jag::scope(ctx).await,
        "idjag_not_a_bearer" => id_jag::not_a_bearer(ctx).await,
        // Pushed Authorization Requests, RFC 9126 (par.rs).
        "par_offered" => par::offered(ctx).await,
        "par_advertised" => par::advertised(ctx, &on("asm")),
        "par_response" => par::response(ctx, &on("pushed")),
        "par_required_client" => par::required_client(ctx).await,
        "par_request_uri_entropy" => par::request_uri_entropy(ctx, args).await,
}

/// One hostile body for [`hostile_bodies`]: what it is, its bytes, and whether the endpoint
/// accepting it is itself a failure (absurd content stored) or only 5xx and hangs are.
pub struct Hostile {
    pub what: &'static str,
    pub body: Vec<u8>,
    pub acceptance_fails: bool,
}

/// Posts hostile bodies to an endpoint and returns the first mishandling: a 5xx, no answer in
/// time, or (where flagged) an acceptance that `accepted` recognises. A dropped connection is
/// noted, not held against the server.
pub async fn hostile_bodies(
    ctx: &mut CaseCtx<'_>,
    endpoint: &str,
    content_type: &str,
    bodies: Vec<Hostile>,
    accepted: impl Fn(&crate::http::Response) -> bool,
) -> Option<String> {
    let mut worst = None;
    for h in bodies {
        let req = crate::http::Request::new(
            "POST",
            endpoint.to_string(),
            format!("hostile body: {}", h.what),
        )
        .header("Content-Type", content_type)
        .body(h.body);
        match ctx.send(req).await {
            Ok(r) if r.status >= 500 => {
                worst.get_or_insert(format!("{}: {}", h.what, r.status));
            }
            Ok(r) if h.acceptance_fails && accepted(&r) => {
                worst.get_or_insert(format!("{}: accepted ({})", h.what, r.status));
            }
            Ok(r) => ctx.pass(format!("{}: {}", h.what, r.status)),
            Err(crate::http::HttpError::Timeout(d)) => {
                worst.get_or_insert(format!("{}: no answer within {d:?}", h.what));
            }
            Err(e) => ctx.note(format!("{}: {e}", h.what)),
        }
    }
    worst
}

/// The https rule of MCP 11.3 / OAuth 2.1 §1.5 for one URL: https passes; plain http passes
/// nowhere, but on a loopback target it is a warning (local development), not a failure.
pub fn https_rule(ctx: &mut CaseCtx<'_>, what: &str, u: &str) -> StepResult {
    ctx.judged(|f| authconform_core::judge::https_rule(f, what, u))
}

/// `args.<k>` as a string, else `d`.
pub fn arg_str<'a>(args: &'a BTreeMap<String, toml::Value>, k: &str, d: &'a str) -> &'a str {
    args.get(k).and_then(toml::Value::as_str).unwrap_or(d)
}

/// `args.<k>` as a list of strings (members that are not strings left out), when it is a list.
pub fn arg_strings(args: &BTreeMap<String, toml::Value>, k: &str) -> Option<Vec<String>> {
    args.get(k).and_then(toml::Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

/// `args.samples`, how many values an entropy check collects: `default` when not given, and
/// never fewer than 5 or more than `max`.
pub fn arg_samples(args: &BTreeMap<String, toml::Value>, default: i64, max: i64) -> usize {
    args.get("samples")
        .and_then(toml::Value::as_integer)
        .unwrap_or(default)
        .clamp(5, max) as usize
}

/// Bits an attacker must guess, estimated from the samples: positions (up to the shortest
/// value) where the samples differ, times the bits of the alphabet they use (hex, decimal,
/// alphanumeric or base64url).
fn estimated_bits(values: &[String]) -> f64 {
    let shortest = values.iter().map(String::len).min().unwrap_or(0);
    let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let varying: Vec<usize> = (0..shortest)
        .filter(|&i| bytes.iter().any(|b| b[i] != bytes[0][i]))
        .collect();
    let chars: Vec<u8> = varying
        .iter()
        .flat_map(|&i| bytes.iter().map(move |b| b[i]))
        .collect();
    let per_char = if chars.iter().all(u8::is_ascii_digit) {
        10f64.log2()
    } else if chars.iter().all(u8::is_ascii_hexdigit) {
        4.0
    } else if chars.iter().all(u8::is_ascii_alphanumeric) {
        62f64.log2()
    } else {
        6.0
    };
    varying.len() as f64 * per_char
}

/// The shared judgement of values that must be unguessable (RFC 6749 §10.10; tokens, session
/// ids, state handles): distinct, no counters, and at least `min_bits` estimated.
pub fn judge_entropy(
    ctx: &mut CaseCtx<'_>,
    what: &str,
    values: &[String],
    min_bits: f64,
) -> StepResult {
    authorization_code::unpredictable(ctx, what, values)?;
    let bits = estimated_bits(values);
    if bits < min_bits {
        return ctx.fail(format!(
            "the {what} carry about {bits:.0} bits that vary across {} samples, fewer than {min_bits:.0}",
            values.len()
        ));
    }
    ctx.pass(format!(
        "{} {what}: distinct, no counter, about {bits:.0} varying bits (≥ {min_bits:.0})",
        values.len()
    ));
    Ok(())
}
