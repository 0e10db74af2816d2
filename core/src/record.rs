//! The part of the run records the case loader needs: requirement levels. The rest of the
//! records (exchanges, results) stay in `authconform::record`, which re-exports [`Level`].

use serde::{Deserialize, Serialize};

/// Requirement level as graded for the revision of the run. `Info` is a requirement that does
/// not exist in the graded revision (or is informational by nature): it is reported, never gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Must,
    Should,
    May,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
            Level::Info => "INFO",
        }
    }
}

/// The normative sentence a case enforces, as its source words it: the reason for the case's
/// level, shown beside a failure so a reader can weigh it without looking the text up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    /// The sentence, verbatim (shortened with `…` where a clause does not bear on the case).
    pub text: String,
    /// Where it is: `RFC 7523 §3`, `CIMD-01 §4`.
    pub source: String,
    /// How the case's level follows from the sentence when it is not simply its keyword (a
    /// requirement on the client checked at the server, a lowercase "should", a level that
    /// depends on what the server claims) or differs from the catalogue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
