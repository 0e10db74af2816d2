//! authconform: a conformance suite for MCP authorization (OAuth 2.1 as the Model Context
//! Protocol profiles it), run against live servers.
//!
//! Data flows one way: [`case`] files are loaded and validated, the [`runner`] executes them
//! against a [`target`] through the bounded [`http`] client and produces [`record`]s, and the
//! [`report`] writers turn those records into console lines, JUnit, HTML and JSON. The
//! [`reference`] server is an independent implementation of a compliant AS + RS, with one fault
//! per case for negative controls; it shares no validation code with the checks.

pub mod callback;
pub mod case;
pub mod checks;
pub mod cimd;
pub mod cli;
pub mod client_key;

pub mod discovery;
pub mod expectations;
pub mod fuzz;
pub mod http;
pub mod local_ca;
pub mod login;
pub mod record;
pub mod redact;
pub mod reference;
pub mod report;
pub mod runner;
pub mod spec;
pub mod step;
pub mod target;
pub mod terminal;
pub mod tls_hello;
pub mod www_authenticate;

/// Entry points for the cargo-fuzz targets in `fuzz/` (not an API: no stability promised). Only
/// what is not reachable otherwise: the pure readers of token responses and JWTs, which live in
/// a module private to [`checks`].
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::checks::tokens::{
        aud_names, jwt_claims, jwt_object, jwt_parts, jwt_payload, oauth_error, saved_access_token,
        saved_refresh_token, str_member, token_doc,
    };
}
