//! Metadata documents as discovery reads them: Protected Resource Metadata (RFC 9728) and
//! authorization server metadata (RFC 8414 / OIDC Discovery). The body goes through
//! `Attempt::new` (the one place a fetched document is parsed) into a `Discovery`, and every
//! judgement of a document runs on it: those of the `prm-*`, `asm-*` and challenge checks that
//! read no network (`authconform_core::judge`, which those checks call).
//!
//! Input: one document, or two separated by a NUL byte (JSON text never holds a raw NUL): the
//! first is served at the path-inserted / RFC 8414 URL, the second at the root / OIDC URL. The
//! resource is `https://mcp.example.com/mcp`, the issuer `https://auth.example.com`.
//!
//! Properties, besides nothing panicking:
//! - an attempt has a usable document exactly when the body is a JSON object (and status 200);
//!   the chosen attempt is the first usable one;
//! - every check records each failure it returns, and never passes with a failure recorded;
//! - with no usable document, the document checks error (cannot judge) rather than pass or fail;
//! - passes imply what they claim: `prm-resource-match` with no warning means every document
//!   names exactly the resource, `asm-issuer-match` that every document states the issuer,
//!   `as-auth-endpoint-get-fragment` that no `authorization_endpoint` has a `#`,
//!   `prm-no-empty-values` that the chosen document has no empty member.
#![no_main]

mod common;

use authconform_core::judge::{as_metadata, challenge, prm};
use authconform_core::metadata::{Attempt, Discovery};
use authconform_core::spec::Revision;
use authconform_core::verdict::{Findings, StepResult, Stop};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn discovery(identifier: &str, sources: [&'static str; 2], bodies: &[&[u8]]) -> Discovery {
    let attempts: Vec<Attempt> = bodies
        .iter()
        .zip(sources)
        .map(|(b, s)| {
            Attempt::new(
                s,
                format!("https://example.test/{s}"),
                Ok(common::response(
                    200,
                    &[("Content-Type", "application/json")],
                    b,
                )),
            )
        })
        .collect();
    for (a, b) in attempts.iter().zip(bodies) {
        let want = match serde_json::from_slice::<Value>(b) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        };
        assert_eq!(
            a.doc(),
            want,
            "Attempt::new read {:?}",
            String::from_utf8_lossy(b)
        );
    }
    let chosen = attempts.iter().position(|a| a.doc().is_some());
    Discovery {
        identifier: identifier.into(),
        probe: None,
        attempts,
        chosen,
    }
}

type Check = fn(&mut Findings, &Discovery) -> StepResult;

/// The challenge check as the suite runs it (the graded revision is the newest).
fn discovery_mechanism(f: &mut Findings, d: &Discovery) -> StepResult {
    challenge::discovery_mechanism(f, d, Revision::V2025_11_25)
}

fn run_all(d: &Discovery, checks: &[(&str, Check)]) -> Vec<(Findings, StepResult)> {
    let has_doc = d.chosen.is_some();
    checks
        .iter()
        .map(|(name, check)| {
            let (f, r) = common::run_check(name, |f| check(f, d));
            // Without a document there is nothing to judge: the suite must say so, not guess.
            // (`prm-wellknown-path` and `rs-401-discovery-mechanism` judge exactly that absence,
            // `prm-consistent-sources` and `asm-oidc-consistency` skip.)
            if !has_doc
                && !matches!(
                    *name,
                    "wellknown" | "discovery_mechanism" | "consistent_sources" | "oidc_consistency"
                )
            {
                assert!(
                    matches!(r, Err(Stop::Error(_))),
                    "{name} on no document: {r:?}"
                );
            }
            (f, r)
        })
        .collect()
}

fn docs(d: &Discovery) -> Vec<serde_json::Map<String, Value>> {
    d.attempts.iter().filter_map(Attempt::doc).collect()
}

fuzz_target!(|data: &[u8]| {
    let bodies: Vec<&[u8]> = data.splitn(2, |b| *b == 0).collect();

    // As Protected Resource Metadata.
    let d = discovery(common::RESOURCE, ["path_inserted", "root"], &bodies);
    run_all(
        &d,
        &[
            ("wellknown", prm::wellknown),
            ("unauthenticated", prm::unauthenticated),
            ("resource_form", prm::resource_form),
            ("authorization_servers", prm::authorization_servers),
            ("consistent_sources", prm::consistent_sources),
            ("discovery_mechanism", discovery_mechanism),
        ],
    );
    let (f, r) = run_all(&d, &[("resource_match", prm::resource_match)]).remove(0);
    if r.is_ok() && f.warnings().next().is_none() {
        for doc in docs(&d) {
            assert_eq!(
                doc.get("resource"),
                Some(&Value::String(common::RESOURCE.into()))
            );
        }
    }
    if run_all(&d, &[("no_empty_values", prm::no_empty_values)])[0]
        .1
        .is_ok()
    {
        let doc = d.doc().expect("passed, so there is a document");
        for (k, v) in &doc {
            let empty = match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty() && k != "bearer_methods_supported",
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            assert!(!empty, "member {k:?} = {v} passed as non-empty");
        }
    }

    // As authorization server metadata.
    let d = discovery(common::ISSUER, ["oauth", "oidc"], &bodies);
    run_all(
        &d,
        &[
            ("issuer_form", as_metadata::issuer_form),
            ("auth_methods", as_metadata::auth_methods),
            ("endpoints_https", as_metadata::endpoints_https),
            ("oidc_consistency", as_metadata::oidc_consistency),
        ],
    );
    if run_all(&d, &[("issuer_match", as_metadata::issuer_match)])[0]
        .1
        .is_ok()
    {
        for doc in docs(&d) {
            assert_eq!(
                doc.get("issuer"),
                Some(&Value::String(common::ISSUER.into()))
            );
        }
    }
    let frag: Check = as_metadata::auth_endpoint_no_fragment;
    if run_all(&d, &[("auth_endpoint_no_fragment", frag)])[0]
        .1
        .is_ok()
    {
        for doc in docs(&d) {
            if let Some(Value::String(u)) = doc.get("authorization_endpoint") {
                assert!(!u.contains('#'), "{u:?} passed");
            }
        }
    }
});
