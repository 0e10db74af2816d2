//! A single self-contained HTML file for humans, triage first: the run's verdict and why, the
//! `--expect` differences, a scorecard per area, the failures grouped by root cause (see
//! [`super::triage`]), then every case with its exchanges, a sequence diagram of them and a
//! copy-ready `curl` line per exchange.
//!
//! Safety: no external resource, and a CSP (`default-src 'none'`) that allows exactly one script
//! and one style block, each by its SHA-256 computed here at render time, so even markup that
//! slipped through could neither load nor run anything. Everything from the records goes through
//! askama's HTML escaping after control characters and bidi overrides were made visible by
//! [`sanitize_terminal`]; the only `|safe` output is this module's own CSS and script. The SVG
//! charts are drawn by the template from numbers and escaped labels. The template gets a view
//! model of plain strings, so all formatting decisions live here and the template stays a layout.
//!
//! Size: shared discovery exchanges repeat in most cases, identically; an exchange (or a long
//! body) already shown is rendered once and linked to from every later case, so no evidence is
//! dropped and the file stays a fraction of the records' size.

mod svg;

use std::collections::HashMap;
use std::sync::OnceLock;

use askama::Template;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::curl;
use super::triage::{self, Cause, CauseKind, Triage};
use crate::record::{CaseResult, Exchange, OutcomeState, RunReport, Status};
use crate::report::{fmt_ms, one_line, sanitize_terminal};

/// Attribute-like fields (ids, header lines, URLs) are folded onto one line; this caps them so a
/// single hostile header cannot dominate the page.
const LINE_CHARS: usize = 4000;
/// Bodies this long or longer are shown once and referred to when they repeat.
const SHARED_BODY: usize = 256;
/// Cases listed under one cause before "and N more".
const CAUSE_CASES: usize = 50;

const CSS: &str = include_str!("../../../templates/report.css");
const SCRIPT: &str = include_str!("../../../templates/report.js");

/// The CSP source of a block: `'sha256-<base64>'` of its exact text.
fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page's Content-Security-Policy: nothing but this module's own style and script.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
            csp_hash(CSS),
            csp_hash(SCRIPT)
        )
    })
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    csp: &'static str,
    css: &'static str,
    script: &'static str,
    tool: String,
    version: String,
    target: Vec<Field>,
    spec_graded: String,
    spec_how: String,
    started_at: String,
    duration: String,
    interrupted: bool,
    verdict: VerdictView,
    expect: Option<ExpectView>,
    totals: triage::AreaScore,
    areas: Vec<AreaRow>,
    chart: svg::Chart,
    causes: Vec<CauseView>,
    /// How many cases the causes explain.
    cause_cases: usize,
    skips: Vec<CauseView>,
    /// Cases whose verdict changed when re-run alone (see `RunReport::unstable`).
    unstable: Option<UnstableView>,
    area_names: Vec<String>,
    cases: Vec<CaseView>,
}

struct VerdictView {
    state: &'static str,
    headline: &'static str,
    reason: String,
    exit: String,
}

struct ExpectView {
    file: String,
    matched: usize,
    groups: Vec<ExpectGroup>,
}

struct ExpectGroup {
    title: &'static str,
    items: Vec<Link>,
}

struct UnstableView {
    title: String,
    reason: String,
    cases: Vec<Link>,
}

struct Field {
    label: &'static str,
    value: String,
}

struct AreaRow {
    name: String,
    s: triage::AreaScore,
}

/// A link to a case, with a line of text after it.
struct Link {
    anchor: String,
    id: String,
    text: String,
}

struct CauseView {
    kind: &'static str,
    gating: bool,
    title: String,
    count: usize,
    gating_count: usize,
    reason: Option<String>,
    hint: String,
    /// The first case's explanation: one per cause (its cases share it).
    explain: Option<ExplainView>,
    cases: Vec<Link>,
    more: usize,
}

struct ExplainView {
    anchor: String,
    id: String,
    expected: String,
    observed: String,
    why: String,
    quote: Option<QuoteView>,
    refs: String,
}

struct CaseView {
    anchor: String,
    id: String,
    area: String,
    /// The record status.
    status: &'static str,
    /// What the badge says: a tolerated failure reads "warning".
    verdict: &'static str,
    level: &'static str,
    role: String,
    title: String,
    refs: Vec<String>,
    message: String,
    /// The sentence the case enforces, beside the verdict it explains.
    quote: Option<QuoteView>,
    details: Vec<String>,
    spec: String,
    duration: String,
    open: bool,
    seq: Option<svg::Sequence>,
    exchanges: Vec<ExchangeView>,
}

struct QuoteView {
    text: String,
    source: String,
    note: Option<String>,
}

struct Header {
    name: String,
    value: String,
}

enum ExchangeView {
    Full(Box<FullExchange>),
    /// Identical to an exchange shown earlier (shared discovery): a line and a link.
    Same {
        summary: String,
        anchor: String,
        first_case: String,
    },
}

struct FullExchange {
    anchor: String,
    summary: String,
    note: String,
    request_body: Option<Body>,
    status: Option<u16>,
    response_headers: Vec<Header>,
    response_body: Option<Body>,
    truncated: bool,
    error: Option<String>,
    duration: String,
    curl: String,
    curl_note: Option<&'static str>,
}

enum Body {
    Text(String),
    /// The same bytes as a body shown earlier.
    Same {
        anchor: String,
        len: usize,
    },
}

fn line(s: &str) -> String {
    one_line(s, LINE_CHARS)
}

fn headers(h: &[(String, String)]) -> Vec<Header> {
    h.iter()
        .map(|(k, v)| Header {
            name: line(k),
            value: line(v),
        })
        .collect()
}

fn verdict_word(r: &CaseResult) -> &'static str {
    match r.status {
        Status::Failed if r.warning => "warning",
        s => s.as_str(),
    }
}

fn anchor(i: usize) -> String {
    // Index-based anchors: ids come from the catalogue, but an anchor must never depend on a
    // string's content being a valid fragment.
    format!("case-{}", i + 1)
}

fn exchange_summary(ex: &Exchange) -> String {
    let answer = match (ex.status, &ex.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(_)) => "error".to_owned(),
        (None, None) => "no response".to_owned(),
    };
    one_line(&format!("{} {} \u{2192} {answer}", ex.method, ex.url), 300)
}

/// Renders exchanges once each: remembers what was shown where.
struct Seen<'a> {
    exchanges: HashMap<String, (String, String)>,
    bodies: HashMap<&'a str, String>,
    user_agent: String,
}

impl<'a> Seen<'a> {
    fn body(&mut self, body: &'a str, anchor: &str) -> Body {
        if body.len() >= SHARED_BODY {
            if let Some(first) = self.bodies.get(body) {
                return Body::Same {
                    anchor: first.clone(),
                    len: body.len(),
                };
            }
            self.bodies.insert(body, anchor.to_owned());
        }
        Body::Text(sanitize_terminal(body))
    }

    fn exchange(&mut self, ex: &'a Exchange, case: usize, n: usize, case_id: &str) -> ExchangeView {
        // The whole record is the key: an exchange is shared only if every byte is the same.
        let key = serde_json::to_string(ex).unwrap_or_default();
        if let Some((anchor, first_case)) = self.exchanges.get(&key) {
            return ExchangeView::Same {
                summary: exchange_summary(ex),
                anchor: anchor.clone(),
                first_case: first_case.clone(),
            };
        }
        let anchor = format!("case-{}-ex-{}", case + 1, n + 1);
        self.exchanges.insert(key, (anchor.clone(), line(case_id)));
        let c = curl::curl(ex, &self.user_agent, curl::insecure_for(&ex.url));
        let curl_note = match (c.needs_secret, c.exact) {
            (true, _) => Some(
                "A redacted secret stands in this request: put the real value in place of the \
                 [redacted …] marker to replay it.",
            ),
            (false, false) => Some(
                "The body holds bytes a command line cannot carry (NUL) or that were not UTF-8: \
                 this line is close to, not exactly, what was sent.",
            ),
            _ => None,
        };
        ExchangeView::Full(Box::new(FullExchange {
            summary: exchange_summary(ex),
            note: line(&ex.note),
            // The curl line holds the request whole (method, URL, headers, body); a body it can
            // only spell as `\xHH` escapes (newlines, non-ASCII) is shown readable as well.
            request_body: (ex.request_body.as_deref())
                .filter(|b| !b.bytes().all(|c| (0x20..0x7f).contains(&c)))
                .map(|b| self.body(b, &anchor)),
            status: ex.status,
            response_headers: headers(&ex.response_headers),
            response_body: ex.response_body.as_deref().map(|b| self.body(b, &anchor)),
            truncated: ex.body_truncated,
            error: ex.error.as_deref().map(sanitize_terminal),
            duration: fmt_ms(ex.duration_ms),
            // The line is printable ASCII by construction (see `curl::quote`).
            curl: c.line,
            curl_note,
            anchor,
        }))
    }
}

fn quote_view(q: &crate::record::Quote) -> QuoteView {
    QuoteView {
        text: sanitize_terminal(&q.text),
        source: line(&q.source),
        note: q.note.as_deref().map(sanitize_terminal),
    }
}

fn cause_view(report: &RunReport, c: &Cause) -> CauseView {
    let results = &report.results;
    let title = line(&c.title);
    let explain = matches!(
        c.kind,
        CauseKind::Failure | CauseKind::Warning | CauseKind::Error
    )
    .then(|| {
        let i = triage::lead(results, &c.cases);
        let e = triage::explain(&results[i]);
        ExplainView {
            anchor: anchor(i),
            id: line(&results[i].id),
            expected: sanitize_terminal(e.expected),
            observed: sanitize_terminal(&e.observed),
            why: sanitize_terminal(&e.why),
            quote: e.quote.map(quote_view),
            refs: e
                .refs
                .iter()
                .map(|r| line(r))
                .collect::<Vec<_>>()
                .join("; "),
        }
    });
    let cases = (c.cases.iter().take(CAUSE_CASES))
        .map(|&i| {
            let r = &results[i];
            // A case whose own words differ from the cause's title says them.
            let msg = line(&r.message);
            Link {
                anchor: anchor(i),
                id: line(&r.id),
                text: if msg == title || c.kind == CauseKind::Incident {
                    String::new()
                } else {
                    msg
                },
            }
        })
        .collect();
    CauseView {
        kind: match c.kind {
            CauseKind::Blocked => "not-judged",
            k => k.as_str(),
        },
        gating: c.gating > 0,
        title,
        count: c.cases.len(),
        gating_count: c.gating,
        reason: c.reason.as_deref().map(line),
        hint: sanitize_terminal(&c.hint),
        explain,
        cases,
        more: c.cases.len().saturating_sub(CAUSE_CASES),
    }
}

fn verdict_view(t: &Triage) -> VerdictView {
    let (state, headline) = match t.verdict.state {
        OutcomeState::Passed => ("passed", "Gate passed"),
        OutcomeState::Failed => ("failed", "Gate failed"),
        OutcomeState::Incomplete => ("incomplete", "Incomplete: the gate could not be judged"),
        OutcomeState::Interrupted => ("interrupted", "Interrupted: results are partial"),
    };
    VerdictView {
        state,
        headline,
        reason: line(&t.verdict.reason),
        exit: match t.verdict.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "derived from the results (this report has no recorded outcome)".into(),
        },
    }
}

fn expect_view(report: &RunReport, t: &Triage) -> Option<ExpectView> {
    let d = t.expect.as_ref()?;
    let link = |id: &str, text: String| Link {
        anchor: report
            .results
            .iter()
            .position(|r| r.id == id)
            .map(anchor)
            .unwrap_or_default(),
        id: line(id),
        text,
    };
    let change = |c: &&crate::record::ExpectChange| {
        link(
            &c.id,
            format!(
                "expected {}, got {}",
                c.expected.map_or("nothing", Status::as_str),
                c.observed.as_str()
            ),
        )
    };
    let mut groups = vec![
        ExpectGroup {
            title: "New failures",
            items: d.new_failures.iter().map(change).collect(),
        },
        ExpectGroup {
            title: "Fixed (update the file)",
            items: d.fixed.iter().map(change).collect(),
        },
        ExpectGroup {
            title: "Otherwise changed",
            items: d.other.iter().map(change).collect(),
        },
        ExpectGroup {
            title: "Not in the file",
            items: d
                .unlisted
                .iter()
                .map(|c| link(&c.id, format!("got {}", c.observed.as_str())))
                .collect(),
        },
        ExpectGroup {
            title: "Stale entries (no such case)",
            items: d.stale.iter().map(|id| link(id, String::new())).collect(),
        },
        ExpectGroup {
            title: "Expired entries (gate again)",
            items: d
                .expired
                .iter()
                .map(|e| {
                    link(
                        &e.id,
                        format!(
                            "until {}: expected {}, got {}{}",
                            e.until,
                            e.expected.as_str(),
                            e.observed.as_str(),
                            e.reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                    )
                })
                .collect(),
        },
    ];
    groups.retain(|g| !g.items.is_empty());
    for g in &mut groups {
        for l in &mut g.items {
            l.text = line(&l.text);
        }
    }
    Some(ExpectView {
        file: line(d.file),
        matched: d.matched,
        groups,
    })
}

fn target_fields(report: &RunReport) -> Vec<Field> {
    let mut target = vec![Field {
        label: "kind",
        value: line(&report.target.kind),
    }];
    if let Some(r) = &report.target.resource {
        target.push(Field {
            label: "resource",
            value: line(r),
        });
    }
    if let Some(i) = &report.target.issuer {
        target.push(Field {
            label: "issuer",
            value: line(i),
        });
    }
    if let Some(p) = &report.provision {
        // Briefly: the command and the start of its output (results.json keeps all of it).
        target.push(Field {
            label: "test users provisioned",
            value: line(&format!(
                "`{}` exited {} in {}: {}",
                p.command.join(" "),
                p.exit_code,
                fmt_ms(p.duration_ms),
                p.output.trim()
            )),
        });
    }
    if !report.target.faults.is_empty() {
        target.push(Field {
            label: "faults",
            value: (report.target.faults.iter())
                .map(|f| line(f))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    target
}

fn page(report: &RunReport) -> Page {
    let t = triage::triage(report);
    let lanes = svg::Lanes::new(report);
    let mut seen = Seen {
        exchanges: HashMap::new(),
        bodies: HashMap::new(),
        user_agent: format!("{}/{}", report.tool, report.version),
    };
    let cases = (report.results.iter().enumerate())
        .map(|(i, r)| CaseView {
            anchor: anchor(i),
            id: line(&r.id),
            area: line(&r.area),
            status: r.status.as_str(),
            verdict: verdict_word(r),
            level: r.level.as_str(),
            role: line(&r.role),
            title: line(&r.title),
            refs: r.refs.iter().map(|s| line(s)).collect(),
            message: sanitize_terminal(&r.message),
            quote: r.quote.as_ref().map(quote_view),
            details: r.details.iter().map(|s| sanitize_terminal(s)).collect(),
            spec: line(&r.spec),
            duration: fmt_ms(r.duration_ms),
            // Problems open by default: that is what a reader opens the report for.
            open: matches!(verdict_word(r), "failed" | "errored") && r.incident.is_none(),
            seq: svg::sequence(&lanes, &r.exchanges, i),
            exchanges: (r.exchanges.iter().enumerate())
                .map(|(n, ex)| seen.exchange(ex, i, n, &r.id))
                .collect(),
        })
        .collect();
    let causes: Vec<CauseView> = t.causes.iter().map(|c| cause_view(report, c)).collect();
    let mut area_names: Vec<String> = t.areas.iter().map(|a| line(&a.area)).collect();
    area_names.sort();
    area_names.dedup();
    Page {
        csp: content_security_policy(),
        css: CSS,
        script: SCRIPT,
        tool: line(&report.tool),
        version: line(&report.version),
        target: target_fields(report),
        spec_graded: line(&report.spec.graded),
        spec_how: format!(
            "{}: {}",
            line(&report.spec.source),
            line(&report.spec.detection)
        ),
        started_at: line(&report.started_at),
        duration: fmt_ms(report.duration_ms),
        interrupted: report.interrupted,
        verdict: verdict_view(&t),
        expect: expect_view(report, &t),
        chart: svg::chart(&t.areas),
        cause_cases: t.causes.iter().map(|c| c.cases.len()).sum(),
        causes,
        skips: t.skips.iter().map(|c| cause_view(report, c)).collect(),
        unstable: report.unstable.as_ref().map(|u| UnstableView {
            title: format!("Unstable under {} parallel clients", u.concurrency),
            reason: "the server answered 5xx or 429 while cases ran at once; these cases got \
                     another verdict when re-run alone, and are reported as alone"
                .into(),
            cases: (report.results.iter().enumerate())
                .filter(|(_, r)| u.cases.contains(&r.id))
                .map(|(i, r)| Link {
                    anchor: anchor(i),
                    id: line(&r.id),
                    text: String::new(),
                })
                .collect(),
        }),
        totals: t.totals.clone(),
        areas: t
            .areas
            .iter()
            .map(|a| AreaRow {
                name: line(&a.area),
                s: a.clone(),
            })
            .collect(),
        area_names,
        cases,
    }
}

pub fn to_string(report: &RunReport) -> String {
    page(report)
        .render()
        // Rendering into a String only fails if a filter fails; the template uses none that can.
        .expect("HTML report renders")
}

#[cfg(test)]
mod tests;
