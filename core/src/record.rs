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
