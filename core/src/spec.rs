//! MCP specification revisions, and how a run picks the one it grades at.
//!
//! A case carries its level per revision. A requirement that does not exist in the graded
//! revision is graded `INFO`: reported, never a failure (`../shared/mcp-auth-versions.md`).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Revision {
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl Revision {
    pub const ALL: [Revision; 3] = [
        Revision::V2025_06_18,
        Revision::V2025_11_25,
        Revision::V2026_07_28,
    ];

    /// Graded when detection is inconclusive: the revision the requirement catalogue was built
    /// against and the one the dominant SDK line speaks (see mcp-auth-versions.md, appendix §3).
    pub const FALLBACK: Revision = Revision::V2025_11_25;

    pub fn as_str(self) -> &'static str {
        match self {
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
            Revision::V2026_07_28 => "2026-07-28",
        }
    }

    /// Maps a protocol version a server reports to the revision whose auth rules apply to it.
    pub fn from_protocol_version(v: &str) -> Option<Revision> {
        match v {
            "2025-06-18" => Some(Revision::V2025_06_18),
            "2025-11-25" => Some(Revision::V2025_11_25),
            "2026-07-28" => Some(Revision::V2026_07_28),
            // Later dated revisions keep 2026-07-28 rules until this suite learns them.
            v if v > "2026-07-28" && v.len() == 10 => Some(Revision::V2026_07_28),
            _ => None,
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Revision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Revision::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown MCP revision {s:?} (expected 2025-06-18, 2025-11-25 or 2026-07-28)"
                )
            })
    }
}

/// `--spec`: a fixed revision, or detect from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChoice {
    Auto,
    Fixed(Revision),
}

impl FromStr for SpecChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(SpecChoice::Auto)
        } else {
            s.parse().map(SpecChoice::Fixed)
        }
    }
}
