//! What every kind of check shares to word its details: the output-like text being
//! judged, the contains / not-contains / regex matchers over it, and the quoting,
//! clipping and excerpting that keep each detail short.
//!
//! A failed check's detail is fed back to the model, so it says what was expected,
//! what came out and where they part, while staying short: long texts are shown as
//! head and tail, and every detail is capped at [`DETAIL_LIMIT`] bytes.

use regex::Regex;

/// Longest detail, in bytes: a model fixes a program from the first difference, and a
/// whole output of megabytes would only spend its context.
pub(crate) const DETAIL_LIMIT: usize = 2048;

/// Longest excerpt of an output stream inside a detail.
pub(crate) const EXCERPT_LIMIT: usize = 1200;

/// Longest rendering of one expected text or one line inside a detail.
pub(crate) const QUOTE_LIMIT: usize = 400;

/// One output stream with what the details call it.
#[derive(Clone, Copy)]
pub(crate) struct Stream<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub truncated: bool,
}

pub(crate) fn contains(expected: &str, stream: Stream<'_>) -> (bool, String) {
    if stream.text.contains(expected) {
        return (
            true,
            format!("{} contains {}", stream.name, quote(expected)),
        );
    }
    let mut detail = format!("{} does not contain {}", stream.name, quote(expected));
    if stream.truncated {
        detail.push_str(&format!("\n{}", cut_note(stream.name)));
    }
    detail.push_str(&format!("\n{}", shown(stream)));
    (false, detail)
}

pub(crate) fn not_contains(unwanted: &str, stream: Stream<'_>) -> (bool, String) {
    if let Some(offset) = stream.text.find(unwanted) {
        let line_number = stream.text[..offset].matches('\n').count() + 1;
        let line = stream.text.split('\n').nth(line_number - 1).unwrap_or("");
        return (
            false,
            format!(
                "{} contains {}, which it must not; first at line {line_number}: {}",
                stream.name,
                quote(unwanted),
                quote(line.trim_end_matches('\r'))
            ),
        );
    }
    if stream.truncated {
        return (
            false,
            format!(
                "{} was cut at the output limit, so the absence of {} cannot be proven; \
                 make the program print less",
                stream.name,
                quote(unwanted)
            ),
        );
    }
    (
        true,
        format!("{} does not contain {}", stream.name, quote(unwanted)),
    )
}

pub(crate) fn matches(regex: &Regex, stream: Stream<'_>) -> (bool, String) {
    if let Some(found) = regex.find(stream.text) {
        return (
            true,
            format!(
                "{} matches `{}` ({})",
                stream.name,
                clip(regex.as_str(), QUOTE_LIMIT),
                quote(found.as_str())
            ),
        );
    }
    let mut detail = format!(
        "{} does not match the regex `{}` (multi-line: `^` and `$` match at line ends)",
        stream.name,
        clip(regex.as_str(), QUOTE_LIMIT)
    );
    if stream.truncated {
        detail.push_str(&format!("\n{}", cut_note(stream.name)));
    }
    detail.push_str(&format!("\n{}", shown(stream)));
    (false, detail)
}

pub(crate) fn cut_note(stream: &str) -> String {
    format!("note: {stream} was cut at the output limit; what came after the cut is not seen")
}

/// The stream as a detail shows it: empty said as such, else its size and an excerpt.
pub(crate) fn shown(stream: Stream<'_>) -> String {
    if stream.text.is_empty() {
        return format!("{} is empty", stream.name);
    }
    let lines = stream.text.lines().count();
    format!(
        "{} ({} byte{}, {lines} line{}):\n{}",
        stream.name,
        stream.text.len(),
        plural(stream.text.len()),
        plural(lines),
        excerpt(stream.text, EXCERPT_LIMIT)
    )
}

/// A few numbered lines around `center` (0-based), so the model sees the difference
/// in context.
pub(crate) fn window(lines: &[&str], center: usize) -> String {
    let start = center.saturating_sub(2);
    let end = (center + 3).min(lines.len());
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate().take(end).skip(start) {
        out.push_str(&format!("{:>5} | {}\n", index + 1, clip(line, QUOTE_LIMIT)));
    }
    out.trim_end_matches('\n').to_owned()
}

pub(crate) fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// A text in double quotes with control characters escaped, so whitespace and
/// carriage returns stay visible; long texts are cut in the middle.
pub(crate) fn quote(text: &str) -> String {
    let escaped = format!("{text:?}");
    clip(&escaped, QUOTE_LIMIT)
}

/// `text` cut to about `limit` bytes: its head and tail with the middle left out.
pub(crate) fn clip(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let half = limit / 2;
    let head = floor_boundary(text, half);
    let tail = ceil_boundary(text, text.len() - half);
    format!(
        "{}…[{} bytes left out]…{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// `text` whole when it fits in `limit` bytes, else its head and tail around a marker
/// saying how many lines and bytes were left out. Cuts at line ends when there are
/// any nearby, and never inside a character.
pub fn excerpt(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let half = limit / 2;
    let mut head = floor_boundary(text, half);
    if let Some(newline) = text[..head]
        .rfind('\n')
        .filter(|newline| *newline > half / 2)
    {
        head = newline + 1;
    }
    let mut tail = ceil_boundary(text, text.len() - half);
    if let Some(newline) = text[tail..]
        .find('\n')
        .filter(|newline| *newline < half / 2)
    {
        tail += newline + 1;
    }
    let left_out = &text[head..tail];
    format!(
        "{}… [{} lines, {} bytes left out] …\n{}",
        &text[..head],
        left_out.matches('\n').count(),
        left_out.len(),
        &text[tail..]
    )
}

/// The final bound on a detail, whatever built it.
pub(crate) fn cap(detail: &str, limit: usize) -> String {
    if detail.len() <= limit {
        detail.to_owned()
    } else {
        excerpt(detail, limit - 64)
    }
}

/// `index`, or the nearest character boundary of `text` below it.
pub fn floor_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// `index`, or the nearest character boundary of `text` above it.
pub fn ceil_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// A regex serialized as the pattern it was written as (the spec's digest reads it).
pub(crate) fn pattern<S: serde::Serializer>(
    regex: &regex::Regex,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(regex.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_keeps_short_text_whole_and_cuts_long_text_in_the_middle() {
        assert_eq!(excerpt("short", 10), "short");
        let long: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let cut = excerpt(&long, 200);
        assert!(cut.starts_with("line 0\n"));
        assert!(cut.trim_end().ends_with("line 999"));
        assert!(cut.contains("bytes left out"));
        assert!(cut.len() < 300);
    }

    #[test]
    fn clipping_never_splits_a_character() {
        let text = "é".repeat(3000);
        let clipped = clip(&text, 101);
        assert!(clipped.len() < 200);
        let excerpted = excerpt(&text, 101);
        assert!(excerpted.contains("left out"));
        assert!(cap(&"ü\n".repeat(5000), DETAIL_LIMIT).len() <= DETAIL_LIMIT);
    }
}
