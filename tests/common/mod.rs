//! Helpers shared by the integration tests.

/// A report page must be self-contained and inert: no element that loads or runs anything, no
/// event handler, no meta refresh, and no URL-bearing attribute that leaves the document.
pub fn assert_self_contained_html(html: &str) {
    let doc = scraper::Html::parse_document(html);
    for el in doc
        .root_element()
        .descendants()
        .filter_map(scraper::ElementRef::wrap)
    {
        let name = el.value().name();
        assert!(
            !matches!(
                name,
                "script" | "img" | "iframe" | "object" | "embed" | "link" | "base" | "svg" | "form"
            ),
            "forbidden element <{name}> in report.html"
        );
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
}
