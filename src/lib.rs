//! authconform: a conformance suite for MCP authorization (OAuth 2.1 as the Model Context
//! Protocol profiles it), run against live servers.
//!
//! Who calls whom, top down; no module imports one above it (the README's Layout section has
//! the same picture with every module):
//!
//! - [`cli`] parses arguments and prints; a [`session`] does the work of one `run` or `fuzz`:
//!   it resolves the target (or starts the [`reference`] server), builds the audited [`http`]
//!   client, starts the CIMD document host ([`cimd`]), runs, gates on [`expected_verdicts`] and
//!   writes the [`report`]s. [`stop`] is the one stop signal of runs and campaigns. The
//!   [`harness`] is a second front end over the session: each case a libtest trial.
//! - The [`runner`] orders cases, expands their variants, dispatches each step to the step
//!   layer or to a named check, and collects [`record`]s; only the session imports it. The
//!   [`fuzz`] campaigns are its counterpart for attack campaigns.
//! - [`checks`] are the named checks (one registry gives the loader their names and the runner
//!   their dispatch); they are built on the [`step`] layer, which executes each step kind of a
//!   case file and imports nothing above it.
//! - Below the steps: the [`login`] drivers (given a recording HTTP handle, never a case), the
//!   [`target`] profile, [`cimd`]'s document host, the [`http`] client with [`redact`]ion,
//!   [`callback`], [`discovery`] URL rules, [`client_key`], [`tls_hello`], [`terminal`]
//!   escaping, [`local_ca`], and the member crate `core/` (the [`case`] loader, the parsers and
//!   the pure judgements, without network code).
//! - The [`reference`] server stands apart: an independent implementation of a compliant AS +
//!   RS with one fault per case for negative controls. It imports nothing of the harness but
//!   [`local_ca`], and exposes plain facts the session turns into a profile.

// The loader, the parsers and the pure judgements live in the member crate `core/` (package
// authconform-core), which builds without the HTTP client, the runtime or TLS; the fuzz targets
// depend on it alone. Re-exported under their old paths.
pub use authconform_core::{case, spec, www_authenticate};

pub mod callback;
pub mod checks;
pub mod cimd;
pub mod cli;
pub mod client_key;
pub mod command;
pub mod discovery;
pub mod egress;
pub mod expected_verdicts;
pub mod fuzz;
pub mod harness;
pub mod health;
pub mod http;
pub mod idp;
pub mod local_ca;
pub mod login;
pub mod record;
pub mod redact;
pub mod reference;
pub mod report;
pub mod runner;
pub mod session;
pub mod shard;
pub mod step;
pub mod stop;
pub mod target;
pub mod terminal;
pub mod tls_hello;
