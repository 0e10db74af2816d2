//! authconform: a conformance suite for MCP authorization (OAuth 2.1 as the Model Context
//! Protocol profiles it), run against live servers.
//!
//! Data flows one way: [`case`] files are loaded and validated, the [`runner`] executes them
//! against a [`target`] through the bounded [`http`] client and produces [`record`]s, and the
//! [`report`] writers turn those records into console lines, JUnit, HTML and JSON. A [`session`]
//! wires these together for the command line ([`cli`]), the tests and the benches. The
//! [`reference`] server is an independent implementation of a compliant AS + RS, with one fault
//! per case for negative controls; it shares no validation code with the checks.

// The loader, the parsers and the pure judgements live in the member crate `core/` (package
// authconform-core), which builds without the HTTP client, the runtime or TLS; the fuzz targets
// depend on it alone. Re-exported under their old paths.
pub use authconform_core::{case, spec, www_authenticate};

pub mod callback;
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
pub mod session;
pub mod step;
pub mod stop;
pub mod target;
pub mod terminal;
pub mod tls_hello;
