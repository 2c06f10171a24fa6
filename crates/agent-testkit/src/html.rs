//! Checks on report pages: that a page holds only the markup its template writes,
//! whatever the run directory it shows held.

use std::collections::BTreeSet;

use scraper::{Html, Selector};

/// The elements the page template itself writes; anything else came from a run.
const REPORT_ELEMENTS: &[&str] = &[
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "input",
    "header",
    "h1",
    "nav",
    "span",
    "label",
    "main",
    "section",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "code",
    "h2",
    "h3",
    "h4",
    "dl",
    "dt",
    "dd",
    "pre",
    "p",
    "ol",
    "li",
    "svg",
    "rect",
    "article",
    "blockquote",
    "details",
    "summary",
];

/// Asserts that the page holds only the template's own markup: no script, image,
/// frame or other element of a run's making, no event handler or `style`
/// attribute, links only within the page, and a single stylesheet and policy.
pub fn assert_only_report_markup(html: &str) {
    let document = Html::parse_document(html);
    let mut names = BTreeSet::new();
    for element in document.root_element().descendent_elements() {
        let value = element.value();
        names.insert(value.name().to_owned());
        for (attribute, content) in value.attrs() {
            assert!(
                !attribute.to_ascii_lowercase().starts_with("on"),
                "an event handler attribute `{attribute}` on <{}>",
                value.name()
            );
            assert_ne!(
                attribute,
                "style",
                "a style attribute on <{}>",
                value.name()
            );
            assert_ne!(attribute, "src", "a src attribute on <{}>", value.name());
            if attribute == "href" {
                assert!(
                    content.starts_with('#'),
                    "a link out of the page: {content}"
                );
            }
        }
    }
    let foreign: Vec<&String> = names
        .iter()
        .filter(|name| !REPORT_ELEMENTS.contains(&name.as_str()))
        .collect();
    assert!(
        foreign.is_empty(),
        "elements the template does not write: {foreign:?}"
    );
    assert_eq!(count(&document, "style"), 1, "one stylesheet");
    assert_eq!(
        count(&document, "script, img, iframe, textarea, object, embed"),
        0
    );
    let policy = Selector::parse("meta[http-equiv=Content-Security-Policy]").expect("selector");
    let policies: Vec<_> = document.select(&policy).collect();
    assert_eq!(policies.len(), 1, "one Content-Security-Policy");
    let content = policies[0].value().attr("content").expect("content");
    assert!(
        content.starts_with("default-src 'none'; style-src 'sha256-"),
        "{content}"
    );
}

pub fn count(document: &Html, selector: &str) -> usize {
    document
        .select(&Selector::parse(selector).expect("selector"))
        .count()
}
