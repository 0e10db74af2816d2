use super::*;
use crate::record::{ExpectChange, ExpectRecord, Outcome};
use crate::report::testutil::{area_counts, hostile_report};
use scraper::{ElementRef, Html, Selector};

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn text(e: ElementRef) -> String {
    e.text().collect()
}

#[test]
fn hostile_strings_stay_text() {
    let report = hostile_report();
    let out = to_string(&report);
    // The page's own script is the only one; nothing from the records became markup.
    assert_eq!(out.matches("<script").count(), 1, "raw <script in output");
    assert!(!out.contains("<img"), "raw <img in output");
    // `onerror=` does appear, inside escaped text; the element walk below proves it never
    // became an attribute.
    assert!(!out.contains("\"><img"), "attribute breakout");
    assert!(!out.contains('\x1b') && !out.contains('\0') && !out.contains('\u{202E}'));

    let doc = Html::parse_document(&out);
    let mut scripts = 0;
    for el in doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
    {
        let name = el.value().name();
        if name == "script" {
            scripts += 1;
            assert_eq!(text(el), SCRIPT);
            assert!(
                el.value().attrs().next().is_none(),
                "attributes on <script>"
            );
            continue;
        }
        let in_svg = el
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| a.value().name() == "svg");
        assert!(
            !matches!(
                name,
                "img"
                    | "iframe"
                    | "object"
                    | "embed"
                    | "link"
                    | "base"
                    | "form"
                    | "foreignObject"
                    | "use"
                    | "image"
            ),
            "forbidden element <{name}>"
        );
        assert!(!(in_svg && name == "a"), "a link inside an SVG");
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
    assert_eq!(scripts, 1);
    assert!(!out.contains("http://"), "external reference");
    assert!(!out.contains("url("), "CSS loads a resource");

    // The hostile text is still there, visibly, as text.
    let body = doc.select(&sel("body")).next().unwrap();
    let t = text(body);
    assert!(t.contains("<script>alert(1)</script>"));
    assert!(t.contains("\"><img src=x onerror=alert(1)>"));
    assert!(t.contains("\\x1b[31m") && t.contains("\\u{202e}") && t.contains("]]>"));
}

#[test]
fn csp_allows_exactly_the_page_style_and_script() {
    let out = to_string(&hostile_report());
    let doc = Html::parse_document(&out);
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .expect("CSP meta")
        .value()
        .attr("content")
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'; "), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let style = text(doc.select(&sel("style")).next().unwrap());
    let script = text(doc.select(&sel("script")).next().unwrap());
    assert!(
        csp.contains(&format!("style-src {}", csp_hash(&style))),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("script-src {}", csp_hash(&script))),
        "{csp}"
    );
    // The hash is of the exact text: a known SHA-256 checks the encoding.
    assert_eq!(
        csp_hash("abc"),
        "'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='"
    );
    assert_eq!(doc.select(&sel("style")).count(), 1);
    assert_eq!(doc.select(&sel("head > title")).count(), 1);
}

#[test]
fn verdict_expect_scorecard_and_causes_come_first() {
    let mut report = hostile_report();
    report.outcome = Some(Outcome {
        state: OutcomeState::Failed,
        exit_code: 1,
        reason: "1 MUST requirement failed".into(),
        expect: Some(ExpectRecord {
            file: "expect.toml".into(),
            matched: 4,
            changed: vec![ExpectChange {
                id: "prm-warn".into(),
                expected: Some(Status::Passed),
                observed: Status::Failed,
            }],
            stale: vec!["gone-case".into()],
            ..ExpectRecord::default()
        }),
    });
    let out = to_string(&report);
    let doc = Html::parse_document(&out);
    let main = doc.select(&sel("main")).next().unwrap();
    let order: Vec<String> = main
        .children()
        .filter_map(ElementRef::wrap)
        .map(|e| {
            e.value()
                .attr("class")
                .unwrap_or(e.value().name())
                .to_owned()
        })
        .collect();
    let pos = |c: &str| {
        (order.iter())
            .position(|x| x.split_whitespace().any(|k| k == c))
            .unwrap_or_else(|| panic!("{c} in {order:?}"))
    };
    assert_eq!(pos("verdict"), 0);
    assert!(pos("expect") < pos("chart") && pos("chart") < pos("causes"));
    assert!(pos("causes") < pos("cases"));

    let v = doc.select(&sel(".verdict")).next().unwrap();
    assert!(v.value().classes().any(|c| c == "o-failed"));
    assert!(text(v).contains("Gate failed") && text(v).contains("exit code 1"));
    let x = text(doc.select(&sel(".expect")).next().unwrap());
    assert!(x.contains("New failures (1)") && x.contains("prm-warn") && x.contains("Stale"));

    // One chart row per area, and a table row each.
    let expected = area_counts(&report);
    let rows: Vec<_> = doc.select(&sel("table.areas tbody tr")).collect();
    assert_eq!(rows.len(), expected.len());
    assert_eq!(
        doc.select(&sel("svg.chart rect.track")).count(),
        expected.len()
    );
    for (row, (_, [tests, failures, errors, skipped])) in rows.iter().zip(&expected) {
        let cells: Vec<String> = row
            .select(&sel("td"))
            .map(|td| text(td).trim().to_owned())
            .collect();
        // area, passed, failed, MUST failed, skipped, errored, total
        assert_eq!(cells[1], (tests - failures - errors - skipped).to_string());
        assert!(cells[2].starts_with(&failures.to_string()));
        assert_eq!(cells[4], skipped.to_string());
        assert_eq!(cells[5], errors.to_string());
        assert_eq!(cells[6], tests.to_string());
    }

    // Every failed or errored case is under exactly one cause; gating causes first.
    let causes: Vec<_> = doc.select(&sel("section.cause")).collect();
    let listed: Vec<String> = causes
        .iter()
        .flat_map(|c| {
            c.select(&sel("ul.affected a"))
                .map(|a| a.value().attr("href").unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let problems = report
        .results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Errored))
        .count();
    assert_eq!(listed.len(), problems);
    for href in &listed {
        assert_eq!(doc.select(&sel(href)).count(), 1, "{href} resolves");
    }
    let gating: Vec<bool> = causes
        .iter()
        .map(|c| !c.value().classes().any(|k| k == "non-gating"))
        .collect();
    assert!(gating.windows(2).all(|w| w[0] >= w[1]), "{gating:?}");
    let first = text(causes[0]);
    assert!(first.contains("How to fix") || !first.is_empty());
    assert!(causes[0].select(&sel("dl.explain")).next().is_some());
}

#[test]
fn cases_carry_filter_data_and_exchanges_are_shown_once() {
    let report = hostile_report();
    let doc = Html::parse_document(&to_string(&report));
    let cases: Vec<_> = doc.select(&sel(".cases > details.case")).collect();
    assert_eq!(cases.len(), report.results.len());
    for (c, r) in cases.iter().zip(&report.results) {
        assert_eq!(c.value().attr("data-level"), Some(r.level.as_str()));
        assert!(c.value().attr("data-area").is_some());
    }
    let verdicts: Vec<&str> = cases
        .iter()
        .map(|c| c.value().attr("data-verdict").unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "passed", "failed", "warning", "errored", "skipped", "passed", "failed"
        ]
    );
    let badge = |i: usize| text(cases[i].select(&sel("summary .badge")).next().unwrap());
    assert_eq!(badge(2), "warning");
    assert!(cases[1].value().attr("open").is_some());
    assert!(cases[2].value().attr("open").is_none());
    // The filter bar is there, hidden until the script shows it.
    let bar = doc.select(&sel("#filters")).next().unwrap();
    assert!(bar.value().attr("hidden").is_some());
    for id in ["f-status", "f-level", "f-area", "f-text", "f-count"] {
        assert_eq!(doc.select(&sel(&format!("#{id}"))).count(), 1, "{id}");
    }

    // Every exchange is either shown in full (with its curl line) or links to where it is.
    let total: usize = report.results.iter().map(|r| r.exchanges.len()).sum();
    let full: Vec<_> = doc.select(&sel("details.exchange")).collect();
    let same: Vec<_> = doc.select(&sel(".case-body > p.same")).collect();
    assert_eq!(full.len() + same.len(), total);
    assert!(!same.is_empty(), "the fixture repeats exchanges");
    for s in &same {
        let href = s
            .select(&sel("a"))
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap();
        assert_eq!(doc.select(&sel(href)).count(), 1, "{href}");
    }
    for f in &full {
        let curl = text(f.select(&sel("pre.curl")).next().unwrap());
        assert!(
            curl.starts_with("curl -i --path-as-is --globoff "),
            "{curl}"
        );
        assert!(curl.bytes().all(|b| (0x20..0x7f).contains(&b)), "{curl:?}");
    }
    // The errored case's failed exchange says so.
    let err: String = cases[3]
        .select(&sel(".exchange .error"))
        .flat_map(|e| e.text())
        .collect();
    assert!(err.contains("connection refused"));

    // A sequence diagram for each case with exchanges: the suite's lane and the host's.
    for (c, r) in cases.iter().zip(&report.results) {
        let seq = c.select(&sel("svg.seq")).next();
        assert_eq!(seq.is_some(), !r.exchanges.is_empty(), "{}", r.id);
        if let Some(s) = seq {
            assert_eq!(s.select(&sel("line.lane")).count(), 2);
            assert_eq!(s.select(&sel("path.q")).count(), r.exchanges.len());
        }
    }
    assert_eq!(doc.select(&sel(".interrupted")).count(), 1);
}

#[test]
fn no_banner_when_complete() {
    let mut report = hostile_report();
    report.interrupted = false;
    let doc = Html::parse_document(&to_string(&report));
    assert_eq!(doc.select(&sel(".interrupted")).count(), 0);
}
