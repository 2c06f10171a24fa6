//! The HTML page: the askama template in `templates/page.html` (which escapes every
//! value it prints), the stylesheet in `templates/page.css`, and the
//! Content-Security-Policy that goes with them.

use askama::Template;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::errors::ReportError;
use crate::view::{self, PageView};

/// The stylesheet, inlined so the page is one file.
const STYLE: &str = include_str!("../templates/page.css");

#[derive(Template)]
#[template(path = "page.html")]
struct PageTemplate<'a> {
    page: &'a PageView,
    csp: String,
    style: &'static str,
    bar_width: f64,
}

/// The page's Content-Security-Policy.
///
/// Nothing may load or run: no scripts at all (filtering is done with radio inputs
/// and `:checked` rules, so the page needs none), no images, fonts, frames,
/// connections or form targets. The one stylesheet is allowed by its SHA-256 hash
/// rather than by `'unsafe-inline'`, so neither a `<style>` element nor a `style`
/// attribute that slipped into the page could restyle it (to hide or fake a result,
/// say); the page therefore uses no `style` attributes, and the timeline's bars are
/// SVG rectangles sized by their `width` attributes.
fn content_security_policy(style: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; base-uri 'none'; form-action 'none'"
    )
}

pub fn render(page: &PageView) -> Result<String, ReportError> {
    PageTemplate {
        page,
        csp: content_security_policy(STYLE),
        style: STYLE,
        bar_width: view::BAR_WIDTH,
    }
    .render()
    .map_err(|source| ReportError::Render { source })
}
