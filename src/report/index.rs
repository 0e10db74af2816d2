//! The multi-target index page (`index.html`): one row per target with its outcome, its counts
//! and a link to its own report folder. Written by `run --targets` and by `merge` when the
//! reports it combines come from several targets.
//!
//! Like `report.html` it is one self-contained file: no script, no external resource, and a
//! Content-Security-Policy that allows nothing but its own style block (by hash). Every string
//! of a record (target URLs, reasons) may have come from the server under test or a hostile
//! profile: made visible if it holds controls, then escaped for HTML. Links point only at the
//! folders the caller names, percent-encoded, relative.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::record::{OutcomeState, RunReport};

/// One target's row: its report folder (relative to the index page) and its report.
pub struct Entry<'a> {
    /// The folder name under the index page's folder (`staging`, `reference-pkce`).
    pub folder: &'a str,
    pub report: &'a RunReport,
}

const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b}\
h1{font-size:1.4rem;margin:0 0 .3rem}\
p.verdict{font-size:1.1rem;padding:.6rem .8rem;border-radius:.4rem;margin:.6rem 0 1rem}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.url{color:#555;font-size:.85rem;overflow-wrap:anywhere}\
.passed{background:#e6f4ea;color:#135421}.failed,.interrupted{background:#fce8e6;color:#8a1c12}\
.incomplete{background:#fff4ce;color:#6b4b00}.unknown{background:#eee}\
span.state{padding:.05rem .4rem;border-radius:.3rem;font-weight:600}\
@media (max-width:40rem){.hide-narrow{display:none}}\
@media print{a{color:inherit;text-decoration:none}}";

/// The page.
pub fn to_string(entries: &[Entry<'_>]) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let worst = entries
        .iter()
        .map(|e| state_of(e.report))
        .max_by_key(|s| severity(s))
        .unwrap_or("passed");
    let count = |state: &str| {
        entries
            .iter()
            .filter(|e| state_of(e.report) == state)
            .count()
    };
    let mut o = String::with_capacity(4096 + entries.len() * 600);
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'\">\n"
    ));
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    o.push_str(&format!(
        "<title>authconform: {} target{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    ));
    o.push_str(&format!(
        "<h1>authconform: {} target{}</h1>\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    ));
    o.push_str(&format!(
        "<p class=\"verdict {worst}\">Worst outcome: <strong>{worst}</strong> ({} passed, {} failed, {} incomplete, {} interrupted)</p>\n",
        count("passed"),
        count("failed"),
        count("incomplete"),
        count("interrupted")
    ));
    o.push_str("<table>\n<thead><tr><th>Target</th><th>Outcome</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th><th class=\"n hide-narrow\">Warnings</th><th class=\"n\">Skipped</th><th class=\"n\">Errored</th><th class=\"n hide-narrow\">Duration</th></tr></thead>\n<tbody>\n");
    for e in entries {
        let r = e.report;
        let s = &r.summary;
        let state = state_of(r);
        let url = r
            .target
            .resource
            .as_deref()
            .or(r.target.issuer.as_deref())
            .unwrap_or("");
        let mut what = r.target.kind.clone();
        if !r.target.faults.is_empty() {
            what.push_str(&format!(" with fault(s) {}", r.target.faults.join(", ")));
        }
        if let Some(f) = &r.fuzz {
            what.push_str(&format!(", fuzz seed {}", f.seed));
        }
        let reason = r.outcome.as_ref().map_or("", |o| o.reason.as_str());
        let href = format!("{}/report.html", encode_path(e.folder));
        o.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a><div class=\"url\">{}{}</div></td><td><span class=\"state {state}\">{state}</span><div class=\"url\">{}</div></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n hide-narrow\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n hide-narrow\">{}</td></tr>\n",
            esc(&href),
            esc(e.folder),
            esc(&what),
            if url.is_empty() {
                String::new()
            } else {
                format!(": {}", esc(url))
            },
            esc(reason),
            s.passed,
            s.failed - s.warnings,
            s.warnings,
            s.skipped,
            s.errored,
            esc(&super::fmt_ms(r.duration_ms)),
        ));
    }
    o.push_str("</tbody>\n</table>\n<p class=\"url\">Each target's folder holds its report.html, results.json, junit.xml and results.sarif. Failed counts leave out tolerated warnings.</p>\n</body>\n</html>\n");
    o
}

/// The outcome state, `unknown` for a report written before outcomes existed.
fn state_of(r: &RunReport) -> &'static str {
    r.outcome.as_ref().map_or("unknown", |o| o.state.as_str())
}

/// How bad a state is for the page's verdict: the same order as exit codes (1 over 3 over 0).
fn severity(state: &str) -> u8 {
    match state {
        s if s == OutcomeState::Failed.as_str() || s == OutcomeState::Interrupted.as_str() => 3,
        s if s == OutcomeState::Incomplete.as_str() => 2,
        "unknown" => 1,
        _ => 0,
    }
}

/// Text for HTML: controls made visible first (a record's string is hostile), then the five
/// characters that could end a text node or an attribute escaped.
fn esc(s: &str) -> String {
    let s = crate::terminal::sanitize_terminal(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative link to a folder: every byte outside the unreserved set percent-encoded, so a
/// folder name can be neither a scheme (`javascript:`) nor leave its parent (`/`).
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would name this folder or its parent.
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;
    use crate::report::testutil::hostile_report;
    use scraper::{Html, Selector};

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn with_outcome(mut r: RunReport, state: OutcomeState, reason: &str) -> RunReport {
        r.outcome = Some(Outcome {
            state,
            exit_code: 0,
            reason: reason.into(),
            expect: None,
        });
        r
    }

    #[test]
    fn hostile_records_stay_text_and_links_stay_relative() {
        let a = with_outcome(
            hostile_report(),
            OutcomeState::Failed,
            "<script>alert(1)</script>\u{1b}[31m",
        );
        let b = with_outcome(hostile_report(), OutcomeState::Passed, "ok");
        let page = to_string(&[
            Entry {
                folder: "staging",
                report: &a,
            },
            Entry {
                folder: "javascript:alert(1)/..",
                report: &b,
            },
        ]);
        let doc = Html::parse_document(&page);
        assert_eq!(doc.select(&sel("script")).count(), 0);
        assert!(!page.contains("<script>alert"), "raw markup in the page");
        assert!(!page.contains('\u{1b}'), "raw escape character in the page");
        let links: Vec<&str> = doc
            .select(&sel("a"))
            .filter_map(|a| a.value().attr("href"))
            .collect();
        assert_eq!(
            links,
            [
                "staging/report.html",
                "javascript%3Aalert%281%29%2F../report.html"
            ]
        );
        // One row per target, the outcome in each.
        let rows: Vec<String> = doc
            .select(&sel("tbody tr"))
            .map(|r| r.text().collect::<String>())
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].contains("failed") && rows[1].contains("passed"));
        let verdict: String = doc
            .select(&sel("p.verdict"))
            .next()
            .unwrap()
            .text()
            .collect();
        assert!(verdict.contains("Worst outcome: failed"), "{verdict}");
        // Nothing on the page loads or runs anything; the style is allowed by its hash alone.
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
                "<{name}> in the index"
            );
            for (attr, _) in el.value().attrs() {
                assert!(!attr.starts_with("on"), "{attr} on <{name}>");
                assert_ne!(attr, "style", "inline style on <{name}>");
            }
        }
        let csp = doc
            .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
            .next()
            .and_then(|m| m.value().attr("content"))
            .unwrap();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.contains(&hash));
    }

    #[test]
    fn dot_folders_cannot_name_the_parent() {
        assert_eq!(encode_path(".."), "%2E%2E");
        assert_eq!(encode_path("a b/c"), "a%20b%2Fc");
    }
}
