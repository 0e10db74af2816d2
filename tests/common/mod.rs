//! Helpers shared by the integration tests.

/// The authconform binary of this build, without colours.
#[allow(dead_code)] // Not every test binary that includes this module uses every helper.
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_authconform"));
    c.env("NO_COLOR", "1");
    c
}

/// What a finished command printed, stdout then stderr.
#[allow(dead_code)]
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `results.json` a command wrote into `dir`.
#[allow(dead_code)]
pub fn results(dir: &std::path::Path) -> serde_json::Value {
    let s = std::fs::read_to_string(dir.join("results.json")).expect("results.json written");
    serde_json::from_str(&s).expect("results.json is JSON")
}

/// A report page must be self-contained and inert: no element that loads anything, no event
/// handler, no meta refresh, no URL-bearing attribute that leaves the document, and no script
/// but the page's own: at most one `<script>`, inline, whose SHA-256 is the only `script-src`
/// of a `default-src 'none'` CSP (so even markup that slipped through could not run). Inline
/// SVG (the report's charts) is allowed, without anything in it that links or embeds.
pub fn assert_self_contained_html(html: &str) {
    let doc = scraper::Html::parse_document(html);
    let mut scripts = Vec::new();
    for el in doc
        .root_element()
        .descendants()
        .filter_map(scraper::ElementRef::wrap)
    {
        let name = el.value().name();
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
                    | "animate"
                    | "set"
            ),
            "forbidden element <{name}> in report.html"
        );
        if name == "script" {
            assert!(
                el.value().attrs().next().is_none(),
                "<script> with attributes in report.html"
            );
            scripts.push(el.text().collect::<String>());
        }
        if name == "a"
            && el
                .ancestors()
                .filter_map(scraper::ElementRef::wrap)
                .any(|a| a.value().name() == "svg")
        {
            panic!("link inside an SVG in report.html");
        }
        if name == "meta" {
            assert!(
                !el.value()
                    .attr("http-equiv")
                    .is_some_and(|v| v.eq_ignore_ascii_case("refresh")),
                "meta refresh in report.html"
            );
        }
        for (attr, value) in el.value().attrs() {
            let attr = attr.to_ascii_lowercase();
            assert!(
                !attr.starts_with("on"),
                "event handler {attr}={value:?} on <{name}>"
            );
            // Any URL-bearing attribute must stay inside the document: an absolute, scheme-
            // relative, javascript: or data: URL is what a hostile string would smuggle in.
            if matches!(
                attr.as_str(),
                "href" | "src" | "action" | "formaction" | "srcset" | "poster" | "xlink:href"
            ) {
                assert!(
                    value.starts_with('#'),
                    "{attr}={value:?} on <{name}> leaves the document"
                );
            }
        }
    }
    assert!(
        scripts.len() <= 1,
        "{} scripts in report.html",
        scripts.len()
    );
    let csp = doc
        .select(&scraper::Selector::parse("meta[http-equiv=\"Content-Security-Policy\"]").unwrap())
        .next()
        .and_then(|m| m.value().attr("content"))
        .expect("report.html has a CSP");
    assert!(csp.starts_with("default-src 'none'"), "CSP {csp:?}");
    let script_src: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("script-src "))
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    match scripts.first() {
        Some(s) => {
            use base64::Engine;
            use sha2::Digest;
            let hash = format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s))
            );
            assert_eq!(script_src, [hash.as_str()], "CSP script-src {csp:?}");
        }
        None => assert!(script_src.is_empty(), "CSP script-src {csp:?}"),
    }
}

/// Would this character act on a terminal or reorder displayed text? Everything a report or a
/// console line shows must be free of these (newline and tab are layout, not control). Written
/// out here rather than imported: the crate's own predicate is what is under test.
#[allow(dead_code)] // Not every test binary that includes this module uses every helper.
pub fn is_active_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first terminal control or bidi override in `bytes` (which must be UTF-8), described with
/// some context; `Ok` with the text when there is none.
#[allow(dead_code)]
pub fn find_active_text(what: &str, bytes: &[u8]) -> Result<String, String> {
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|e| format!("{what} is not UTF-8: {e}"))?;
    if let Some((i, c)) = text.char_indices().find(|&(_, c)| is_active_char(c)) {
        let from = text[..i].char_indices().rev().nth(60).map_or(0, |(j, _)| j);
        return Err(format!(
            "{what} contains raw {c:?} at byte {i}: ...{:?}",
            &text[from..(i + c.len_utf8() + 20).min(text.len())]
        ));
    }
    Ok(text)
}

/// Panics unless `bytes` is UTF-8 free of terminal controls and bidi overrides; returns the text.
#[allow(dead_code)]
pub fn assert_inert_text(what: &str, bytes: &[u8]) -> String {
    find_active_text(what, bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// Every violation of `schemas/results.schema.json` by `results`, with where it is.
#[allow(dead_code)]
pub fn results_schema_errors(results: &serde_json::Value) -> Vec<String> {
    let schema_path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/results.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("results schema compiles");
    validator
        .iter_errors(results)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Panics unless the raw text of report.html is inert: no terminal controls, no raw active
/// markup anywhere in the source, and (parsed) nothing that loads or runs anything.
#[allow(dead_code)]
pub fn assert_inert_html(raw: &str) {
    let lower = raw.to_ascii_lowercase();
    for needle in ["<img", "<iframe", "<base", "<link", "<object", "<embed"] {
        assert!(!lower.contains(needle), "raw {needle} in report.html");
    }
    // The page's own script and drawings are markup; anything else spelt `<script` or `<svg`
    // in the source is markup that came from somewhere else. Parsed and raw counts must agree.
    let doc = scraper::Html::parse_document(raw);
    for name in ["script", "svg"] {
        let parsed = doc.select(&scraper::Selector::parse(name).unwrap()).count();
        let spelt = lower.matches(&format!("<{name}")).count();
        assert_eq!(
            spelt, parsed,
            "raw <{name} in report.html beyond the page's own"
        );
    }
    assert_self_contained_html(raw);
}
