//! The report's two drawings, as view models the template turns into inline SVG: the scorecard
//! (a stacked bar per area) and a sequence diagram per case (one lane per party, an arrow per
//! request and per answer). Only numbers and labels leave here; the template escapes the labels,
//! and the fills come from CSS classes, so the page's CSP needs no inline style.

use crate::record::{Exchange, RunReport};
use crate::report::one_line;

use super::super::triage::AreaScore;

/// The scorecard: one row per area.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub rows: Vec<ChartRow>,
}

pub struct ChartRow {
    pub y: u32,
    pub text_y: u32,
    pub label: String,
    pub counts: String,
    pub segments: Vec<Segment>,
}

pub struct Segment {
    pub class: &'static str,
    pub x: u32,
    pub width: u32,
    /// For the tooltip.
    pub title: String,
}

const LABEL_W: u32 = 150;
const BAR_W: u32 = 420;
const ROW_H: u32 = 22;

pub fn chart(areas: &[AreaScore]) -> Chart {
    let max = areas.iter().map(|a| a.total).max().unwrap_or(1).max(1) as u32;
    let rows = (areas.iter().enumerate())
        .map(|(i, a)| {
            let y = i as u32 * ROW_H + 4;
            let mut x = LABEL_W;
            let mut segments = Vec::new();
            for (class, n) in [
                ("s-failed", a.failed),
                ("s-errored", a.errored),
                ("s-warning", a.warnings),
                ("s-passed", a.passed),
                ("s-skipped", a.skipped),
            ] {
                if n == 0 {
                    continue;
                }
                let width = (n as u32 * BAR_W / max).max(2);
                segments.push(Segment {
                    class,
                    x,
                    width,
                    title: format!("{n} {}", &class[2..]),
                });
                x += width;
            }
            let mut counts = format!("{}/{}", a.passed, a.total);
            if a.must_failed > 0 {
                counts.push_str(&format!(", {} MUST", a.must_failed));
            }
            ChartRow {
                y,
                text_y: y + 13,
                label: one_line(&a.area, 22),
                counts,
                segments,
            }
        })
        .collect::<Vec<_>>();
    Chart {
        width: LABEL_W + BAR_W + 110,
        height: rows.len() as u32 * ROW_H + 8,
        rows,
    }
}

/// Who is at the other end of a request: the parties the report knows (the MCP server at
/// `target.resource`, the AS at `target.issuer`), else the origin itself.
pub struct Lanes {
    resource: Option<String>,
    issuer: Option<String>,
}

fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

impl Lanes {
    pub fn new(report: &RunReport) -> Self {
        Lanes {
            resource: report.target.resource.as_deref().and_then(origin),
            issuer: report.target.issuer.as_deref().and_then(origin),
        }
    }

    /// The lane's name for an origin; `path` helps when the report names no AS.
    fn name(&self, origin: &str, path: &str) -> String {
        let rs = self.resource.as_deref() == Some(origin);
        let as_ = self.issuer.as_deref() == Some(origin)
            || (self.issuer.is_none()
                && (path.contains("/.well-known/oauth-authorization-server")
                    || path.contains("/.well-known/openid-configuration")));
        match (rs, as_) {
            (true, true) => "MCP server + AS".into(),
            (true, false) => "MCP server".into(),
            (false, true) => "authorization server".into(),
            (false, false) => "other host".into(),
        }
    }
}

pub struct Sequence {
    pub width: u32,
    pub height: u32,
    pub lanes: Vec<Lane>,
    pub arrows: Vec<Arrow>,
    /// Exchanges not drawn (the diagram stops at [`MAX_ARROWS`]).
    pub more: usize,
    pub more_y: u32,
}

pub struct Lane {
    pub x: u32,
    pub box_x: u32,
    pub name: String,
    pub origin: String,
    pub bottom: u32,
}

pub struct Arrow {
    pub y: u32,
    /// The line and its open arrow head, as a path.
    pub d: String,
    pub label_x: u32,
    pub label: String,
    pub response: bool,
    /// A 4xx/5xx or no answer: drawn in the failure colour.
    pub bad: bool,
}

const LANE_W: u32 = 190;
const TOP: u32 = 46;
const STEP: u32 = 22;
const MAX_ARROWS: usize = 40;
const MAX_LANES: usize = 6;

/// The diagram of one case's exchanges (`None` when it made none).
pub fn sequence(lanes: &Lanes, exchanges: &[Exchange], _case: usize) -> Option<Sequence> {
    if exchanges.is_empty() {
        return None;
    }
    // Lane 0 is the suite; then each origin in first-seen order, the overflow sharing a last one.
    let mut origins: Vec<(String, String)> = Vec::new();
    let mut lane_of = Vec::with_capacity(exchanges.len());
    for ex in exchanges {
        let (o, path) = match url::Url::parse(&ex.url) {
            Ok(u) => (
                origin(&ex.url).unwrap_or_else(|| u.scheme().to_owned()),
                u.path().to_owned(),
            ),
            Err(_) => ("(unparsable URL)".to_owned(), String::new()),
        };
        let i = match origins.iter().position(|(x, _)| *x == o) {
            Some(i) => i,
            None if origins.len() < MAX_LANES - 1 => {
                origins.push((o.clone(), lanes.name(&o, &path)));
                origins.len() - 1
            }
            None => MAX_LANES - 2,
        };
        lane_of.push(i + 1);
    }
    let n_lanes = origins.len() + 1;
    let x = |lane: usize| lane as u32 * LANE_W + LANE_W / 2;
    let drawn = exchanges.len().min(MAX_ARROWS);
    let mut arrows = Vec::with_capacity(drawn * 2);
    for (k, ex) in exchanges.iter().take(drawn).enumerate() {
        let y = TOP + 20 + k as u32 * 2 * STEP;
        let to = x(lane_of[k]);
        let from = x(0);
        let path = match url::Url::parse(&ex.url) {
            Ok(u) => {
                let mut p = u.path().to_owned();
                if u.query().is_some() {
                    p.push_str("?…");
                }
                p
            }
            Err(_) => ex.url.clone(),
        };
        arrows.push(Arrow {
            y,
            d: format!("M{from} {y}H{to}m-7-4l7 4-7 4"),
            label_x: from + 6,
            label: one_line(&format!("{} {}. {path}", k + 1, ex.method), 44),
            response: false,
            bad: false,
        });
        let (label, bad) = match (ex.status, &ex.error) {
            (Some(s), _) => (s.to_string(), s >= 400),
            (None, Some(e)) => (one_line(&format!("no answer: {e}"), 40), true),
            (None, None) => ("no answer".into(), true),
        };
        let ry = y + STEP;
        arrows.push(Arrow {
            y: ry,
            d: format!("M{to} {ry}H{from}m7-4l-7 4 7 4"),
            label_x: from + 6,
            label,
            response: true,
            bad,
        });
    }
    let height = TOP + 20 + drawn as u32 * 2 * STEP + 10;
    let lanes_v = std::iter::once(("authconform".to_owned(), "the suite".to_owned()))
        .chain(origins.into_iter().map(|(o, name)| (name, o)))
        .enumerate()
        .map(|(i, (name, origin))| Lane {
            x: x(i),
            box_x: x(i) - LANE_W / 2 + 6,
            name: one_line(&name, 28),
            origin: one_line(&origin, 30),
            bottom: height,
        })
        .collect();
    Some(Sequence {
        width: n_lanes as u32 * LANE_W,
        height: height + if exchanges.len() > drawn { 18 } else { 0 },
        lanes: lanes_v,
        arrows,
        more: exchanges.len() - drawn,
        more_y: height + 12,
    })
}
