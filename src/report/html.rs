//! A single self-contained HTML file for humans: no scripts, no external resources, and a CSP that
//! forbids both, so opening a report built from a hostile server's answers is safe.
//!
//! Everything shown goes through askama's HTML escaping (the template never uses `|safe`), after
//! control characters and bidi overrides were made visible by [`sanitize_terminal`]. The template
//! gets a view model of plain strings, so all formatting decisions live here and the template
//! stays a layout.

use askama::Template;

use crate::record::{CaseResult, Exchange, RunReport, Status};
use crate::report::{fmt_ms, one_line, sanitize_terminal};

/// Attribute-like fields (ids, header lines, URLs) are folded onto one line; this caps them so a
/// single hostile header cannot dominate the page.
const LINE_CHARS: usize = 4000;

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    tool: String,
    version: String,
    target: Vec<Field>,
    spec_graded: String,
    spec_how: String,
    started_at: String,
    duration: String,
    interrupted: bool,
    totals: Counts,
    areas: Vec<AreaRow>,
    incidents: Vec<IncidentView>,
    /// Causes that kept errored cases from a verdict (see `CaseResult::blocked_by`).
    blocked: Vec<IncidentView>,
    /// Cases whose verdict changed when re-run alone (see `RunReport::unstable`).
    unstable: Option<IncidentView>,
    gating: Vec<GateLink>,
    cases: Vec<CaseView>,
}

/// A cause shared by many errored cases, shown once with links to them.
struct IncidentView {
    id: String,
    reason: String,
    cases: Vec<GateLink>,
}

struct Field {
    label: &'static str,
    value: String,
}

#[derive(Default)]
struct Counts {
    total: usize,
    passed: usize,
    failed: usize,
    warnings: usize,
    skipped: usize,
    errored: usize,
}

impl Counts {
    fn add(&mut self, r: &CaseResult) {
        self.total += 1;
        match r.status {
            Status::Passed => self.passed += 1,
            Status::Failed => {
                self.failed += 1;
                if r.warning {
                    self.warnings += 1;
                }
            }
            Status::Skipped => self.skipped += 1,
            Status::Errored => self.errored += 1,
        }
    }
}

struct AreaRow {
    name: String,
    counts: Counts,
}

struct GateLink {
    anchor: String,
    id: String,
    message: String,
}

struct CaseView {
    anchor: String,
    id: String,
    /// The record status: drives the CSS filter.
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

struct ExchangeView {
    note: String,
    method: String,
    url: String,
    request_headers: Vec<Header>,
    request_body: Option<String>,
    status: Option<u16>,
    response_headers: Vec<Header>,
    response_body: Option<String>,
    truncated: bool,
    error: Option<String>,
    duration: String,
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

fn exchange_view(ex: &Exchange) -> ExchangeView {
    ExchangeView {
        note: line(&ex.note),
        method: line(&ex.method),
        url: line(&ex.url),
        request_headers: headers(&ex.request_headers),
        request_body: ex.request_body.as_deref().map(sanitize_terminal),
        status: ex.status,
        response_headers: headers(&ex.response_headers),
        response_body: ex.response_body.as_deref().map(sanitize_terminal),
        truncated: ex.body_truncated,
        error: ex.error.as_deref().map(sanitize_terminal),
        duration: fmt_ms(ex.duration_ms),
    }
}

fn verdict(r: &CaseResult) -> &'static str {
    match r.status {
        Status::Failed if r.warning => "warning",
        s => s.as_str(),
    }
}

fn page(report: &RunReport) -> Page {
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
            value: report
                .target
                .faults
                .iter()
                .map(|f| line(f))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    let mut totals = Counts::default();
    let mut areas: Vec<(&str, AreaRow)> = Vec::new();
    let mut gating = Vec::new();
    let mut cases = Vec::with_capacity(report.results.len());
    for (i, r) in report.results.iter().enumerate() {
        totals.add(r);
        match areas.iter_mut().find(|(a, _)| *a == r.area) {
            Some((_, row)) => row.counts.add(r),
            None => {
                let mut counts = Counts::default();
                counts.add(r);
                areas.push((
                    &r.area,
                    AreaRow {
                        name: line(&r.area),
                        counts,
                    },
                ));
            }
        }
        // Index-based anchors: ids come from the catalogue, but an anchor must never depend on
        // a string's content being a valid fragment.
        let anchor = format!("case-{}", i + 1);
        // A case tied to an incident is listed under it, not once more as a gating line.
        if r.gates() && r.incident.is_none() && r.blocked_by.is_none() {
            gating.push(GateLink {
                anchor: anchor.clone(),
                id: line(&r.id),
                message: line(&r.message),
            });
        }
        cases.push(CaseView {
            anchor,
            id: line(&r.id),
            status: r.status.as_str(),
            verdict: verdict(r),
            level: r.level.as_str(),
            role: line(&r.role),
            title: line(&r.title),
            refs: r.refs.iter().map(|s| line(s)).collect(),
            message: sanitize_terminal(&r.message),
            quote: r.quote.as_ref().map(|q| QuoteView {
                text: sanitize_terminal(&q.text),
                source: line(&q.source),
                note: q.note.as_deref().map(sanitize_terminal),
            }),
            details: r.details.iter().map(|s| sanitize_terminal(s)).collect(),
            spec: line(&r.spec),
            duration: fmt_ms(r.duration_ms),
            // Problems open by default: that is what a reader opens the report for.
            open: matches!(verdict(r), "failed" | "errored"),
            exchanges: r.exchanges.iter().map(exchange_view).collect(),
        });
    }

    Page {
        tool: line(&report.tool),
        version: line(&report.version),
        target,
        spec_graded: line(&report.spec.graded),
        spec_how: format!(
            "{}: {}",
            line(&report.spec.source),
            line(&report.spec.detection)
        ),
        started_at: line(&report.started_at),
        duration: fmt_ms(report.duration_ms),
        interrupted: report.interrupted,
        incidents: report
            .incidents
            .iter()
            .map(|inc| IncidentView {
                id: line(&inc.id),
                reason: line(&inc.reason),
                cases: report
                    .results
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.incident.as_deref() == Some(inc.id.as_str()))
                    .map(|(i, r)| GateLink {
                        anchor: format!("case-{}", i + 1),
                        id: line(&r.id),
                        message: String::new(),
                    })
                    .collect(),
            })
            .collect(),
        unstable: report.unstable.as_ref().map(|u| IncidentView {
            id: format!("unstable under {} parallel clients", u.concurrency),
            reason: "the server answered 5xx or 429 while cases ran at once; these cases got another verdict when re-run alone, and are reported as alone".into(),
            cases: report
                .results
                .iter()
                .enumerate()
                .filter(|(_, r)| u.cases.contains(&r.id))
                .map(|(i, r)| GateLink {
                    anchor: format!("case-{}", i + 1),
                    id: line(&r.id),
                    message: String::new(),
                })
                .collect(),
        }),
        blocked: super::blocked_groups(&report.results)
            .into_iter()
            .map(|(b, ids)| IncidentView {
                id: line(&super::blocked_heading(b)),
                reason: line(&b.reason),
                cases: ids
                    .into_iter()
                    .map(|i| GateLink {
                        anchor: format!("case-{}", i + 1),
                        id: line(&report.results[i].id),
                        message: String::new(),
                    })
                    .collect(),
            })
            .collect(),
        totals,
        areas: areas.into_iter().map(|(_, row)| row).collect(),
        gating,
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
mod tests {
    use super::*;
    use crate::report::testutil::{area_counts, hostile_report};
    use scraper::{Html, Selector};

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn hostile_strings_stay_text() {
        let report = hostile_report();
        let out = to_string(&report);
        assert!(!out.contains("<script"), "raw <script in output");
        assert!(!out.contains("<img"), "raw <img in output");
        // `onerror=` does appear, inside escaped text; the element walk below proves it never
        // became an attribute.
        assert!(!out.contains("\"><img"), "attribute breakout");
        assert!(!out.contains('\x1b') && !out.contains('\0') && !out.contains('\u{202E}'));

        let doc = Html::parse_document(&out);
        for el in doc
            .root_element()
            .descendants()
            .filter_map(scraper::ElementRef::wrap)
        {
            let name = el.value().name();
            assert!(
                !matches!(
                    name,
                    "script" | "img" | "iframe" | "object" | "embed" | "link" | "base" | "form"
                ),
                "forbidden element <{name}>"
            );
            for (attr, value) in el.value().attrs() {
                assert!(
                    !attr.to_ascii_lowercase().starts_with("on"),
                    "event handler {attr}"
                );
                if matches!(attr, "href" | "src" | "action" | "formaction" | "srcset") {
                    assert!(
                        value.starts_with('#'),
                        "{attr}={value:?} leaves the document"
                    );
                }
                if attr == "style" {
                    panic!("inline style attribute on <{name}>: keep CSS in the <style> block");
                }
            }
            if name == "meta" && el.value().attr("http-equiv") == Some("refresh") {
                panic!("meta refresh");
            }
        }
        assert!(
            !out.contains("http://") && !out.contains("url("),
            "external reference"
        );

        // The hostile text is still there, visibly, as text.
        let text: String = doc.root_element().text().collect();
        assert!(text.contains("<script>alert(1)</script>"));
        assert!(text.contains("\"><img src=x onerror=alert(1)>"));
        assert!(text.contains("\\x1b[31m") && text.contains("\\u{202e}") && text.contains("]]>"));
    }

    #[test]
    fn csp_and_single_style_block() {
        let out = to_string(&hostile_report());
        let doc = Html::parse_document(&out);
        let csp = doc
            .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
            .next()
            .expect("CSP meta");
        assert_eq!(
            csp.value().attr("content"),
            Some("default-src 'none'; style-src 'unsafe-inline'")
        );
        assert_eq!(doc.select(&sel("style")).count(), 1);
        assert_eq!(doc.select(&sel("head > title")).count(), 1);
    }

    #[test]
    fn structure_and_filter() {
        let report = hostile_report();
        let doc = Html::parse_document(&to_string(&report));

        let cases: Vec<_> = doc.select(&sel(".cases > details.case")).collect();
        assert_eq!(cases.len(), report.results.len());
        for (c, r) in cases.iter().zip(&report.results) {
            let classes: Vec<_> = c.value().classes().collect();
            assert!(classes.contains(&format!("st-{}", r.status.as_str()).as_str()));
        }
        let badge = |i: usize| {
            cases[i]
                .select(&sel("summary .badge"))
                .next()
                .unwrap()
                .text()
                .collect::<String>()
        };
        assert_eq!(badge(0), "passed");
        assert_eq!(badge(1), "failed");
        assert_eq!(badge(2), "warning");
        assert_eq!(badge(3), "errored");
        assert_eq!(badge(4), "skipped");
        assert!(cases[1].value().attr("open").is_some());
        assert!(cases[2].value().attr("open").is_none());

        // Radios must precede the case list as siblings for `:checked ~` to reach it.
        let radios: Vec<_> = doc.select(&sel("input.filter[type=radio]")).collect();
        let ids: Vec<_> = radios.iter().map(|r| r.value().id().unwrap()).collect();
        assert_eq!(
            ids,
            ["f-all", "f-passed", "f-failed", "f-skipped", "f-errored"]
        );
        assert!(radios[0].value().attr("checked").is_some());
        let list = doc.select(&sel(".cases")).next().unwrap();
        for r in &radios {
            assert_eq!(r.parent().map(|p| p.id()), list.parent().map(|p| p.id()));
        }
        let style: String = doc.select(&sel("style")).next().unwrap().text().collect();
        for s in ["passed", "failed", "skipped", "errored"] {
            assert!(style.contains(&format!("#f-{s}:checked ~ .cases .case:not(.st-{s})")));
        }

        let rows: Vec<_> = doc.select(&sel("table.areas tbody tr")).collect();
        let expected = area_counts(&report);
        assert_eq!(rows.len(), expected.len());
        for (row, (_, [tests, failures, errors, skipped])) in rows.iter().zip(&expected) {
            let cells: Vec<String> = row
                .select(&sel("td"))
                .map(|td| td.text().collect::<String>().trim().to_owned())
                .collect();
            // area, passed, failed, skipped, errored, total
            assert_eq!(cells[1], (tests - failures - errors - skipped).to_string());
            assert!(cells[2].starts_with(&failures.to_string()));
            assert_eq!(cells[3], skipped.to_string());
            assert_eq!(cells[4], errors.to_string());
            assert_eq!(cells[5], tests.to_string());
        }

        let gating: Vec<_> = doc.select(&sel("nav.gating a")).collect();
        let expected_gating = report.results.iter().filter(|r| r.gates()).count();
        assert_eq!(gating.len(), expected_gating);
        for a in gating {
            let target = a.value().attr("href").unwrap().trim_start_matches('#');
            assert_eq!(doc.select(&sel(&format!("#{target}"))).count(), 1);
        }

        assert_eq!(doc.select(&sel(".interrupted")).count(), 1);
        let ex = cases[3].select(&sel(".exchange")).count();
        assert_eq!(ex, 2);
        let err_text: String = cases[3]
            .select(&sel(".exchange .error"))
            .flat_map(|e| e.text())
            .collect();
        assert!(err_text.contains("connection refused"));
    }

    #[test]
    fn no_banner_when_complete() {
        let mut report = hostile_report();
        report.interrupted = false;
        let doc = Html::parse_document(&to_string(&report));
        assert_eq!(doc.select(&sel(".interrupted")).count(), 0);
    }
}
