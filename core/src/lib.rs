//! authconform-core: the part of authconform that reads and judges without touching the network.
//!
//! It holds the parsers of what a server under test sends ([`www_authenticate`], metadata
//! documents in [`metadata`], token responses and JWTs in [`tokens`], login pages in
//! [`login_form`]), the [`case`] loader with the data it needs ([`spec`], [`record::Level`]), and
//! the pure judgements of the document checks ([`judge`]). The `authconform` crate re-exports all
//! of it under its old paths and wraps each judgement in the check that records it on a case.
//!
//! Its dependency tree has no HTTP client, async runtime or TLS stack: the cargo-fuzz targets
//! depend on this crate alone, so they build in a fraction of the full crate's time while
//! exercising the very code the suite runs.

pub mod case;
/// The egress policy: which addresses a run may connect to (no cloud metadata, no runner LAN).
pub mod egress;
pub mod judge;
pub mod login_form;
pub mod metadata;
pub mod record;
pub mod response;
pub mod spec;
pub mod tokens;
pub mod verdict;
pub mod www_authenticate;
