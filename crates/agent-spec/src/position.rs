//! Byte offsets in TOML text turned into 1-based lines and columns, and toml's
//! deserialization errors rewritten into messages that name the key and table.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::errors::Location;

/// The 1-based line and column (in characters) of a byte offset; offsets past the end
/// or inside a multi-byte character are clamped so that a bad span never panics.
pub(crate) fn locate(path: &Path, text: &str, offset: usize) -> Location {
    let offset = crate::check::text::floor_boundary(text, offset);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Location {
        path: path.to_path_buf(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// The byte offset of a 1-based line and column (in characters), the inverse of
/// [`locate`]; past the end of a line or of the text, the end.
pub(crate) fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match text[offset..].find('\n') {
            Some(newline) => offset += newline + 1,
            None => return text.len(),
        }
    }
    let rest = &text[offset..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    offset
        + rest[..line_end]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(line_end, |(index, _)| index)
}

/// A toml error as a location and a message a user can act on.
pub(crate) fn describe(path: &Path, text: &str, error: &toml::de::Error) -> (Location, String) {
    let span = error.span().unwrap_or(0..0);
    let location = locate(path, text, span.start);
    let message = error.message().trim();
    let message = if let Some(rest) = message.strip_prefix("unknown field ") {
        unknown_key(text, &span, rest)
    } else if let Some(field) = message.strip_prefix("missing field ") {
        format!("missing key {field}{}", table_suffix(text, &span))
    } else if message.starts_with("invalid type:") || message.starts_with("invalid value:") {
        let found = key_at(text, &span);
        match found {
            // `[check]` where `[[check]]` was meant is the likeliest slip in a spec.
            Some(found)
                if found.table_array
                    && found.dotted_key == "check"
                    && message.ends_with("expected a sequence") =>
            {
                let key = found.dotted_key;
                format!("`{key}` is a list of tables: write [[{key}]], not [{key}]")
            }
            found => {
                let subject = found
                    .map(|found| format!("`{}`: ", found.dotted_key))
                    .unwrap_or_default();
                format!("{subject}{}", friendly_types(message))
            }
        }
    } else if message == "duplicate key" {
        match text
            .get(span.clone())
            .filter(|key| !key.is_empty() && key.len() <= 80)
        {
            Some(key) => format!("duplicate key `{}`", key.trim()),
            None => message.to_owned(),
        }
    } else {
        // Syntax errors from the parser: already short and lowercase, sometimes over
        // several lines.
        message
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ")
    };
    (location, message)
}

/// serde says "`x`, expected one of `a`, `b`"; users read "unknown key `x` in
/// [limits]; expected one of `a`, `b`".
fn unknown_key(text: &str, span: &Range<usize>, rest: &str) -> String {
    let (key, expected) = match rest.split_once(", expected ") {
        Some((key, expected)) => (key, Some(expected)),
        None => (rest.split_once(',').map_or(rest, |(key, _)| key), None),
    };
    let table = key_at(text, span).map_or_else(String::new, |found| format!(" {}", found.table));
    match expected {
        Some(expected) => {
            let suggestion = closest_key(key.trim_matches('`'), expected)
                .map_or_else(String::new, |close| format!("; did you mean `{close}`?"));
            format!("unknown key {key}{table}; expected {expected}{suggestion}")
        }
        None => format!("unknown key {key}{table}; this table takes no keys"),
    }
}

/// The allowed key nearest to a misspelt one (see [`closest`]).
fn closest_key<'a>(key: &str, expected: &'a str) -> Option<&'a str> {
    closest(key, expected.split('`').skip(1).step_by(2))
}

/// The candidate nearest to a misspelt word, when it is near enough to be the one
/// meant (at most two edits, and no more than half the word).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|candidate| (strsim::levenshtein(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2 && *distance * 2 <= word.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn table_suffix(text: &str, span: &Range<usize>) -> String {
    if span.start == 0 && span.end == 0 {
        return String::new();
    }
    table_at(text, span).map_or_else(String::new, |table| format!(" {table}"))
}

/// serde's names for Rust types mean nothing to someone writing TOML.
fn friendly_types(message: &str) -> String {
    message
        .replace("expected u32", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected usize", "expected a non-negative integer")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
}

struct FoundKey {
    /// `in [limits]`, `in [[check]]`, or `at the top level`.
    table: String,
    /// `limits.cpus`.
    dotted_key: String,
    /// The key holds a table where an array of tables is expected.
    table_array: bool,
}

/// The key whose name or value sits at `span`, found by reparsing with spans kept.
fn key_at(text: &str, span: &Range<usize>) -> Option<FoundKey> {
    let document = DeTable::parse(text).ok()?;
    let mut trail = Vec::new();
    search_table(document.get_ref(), span, &mut trail)
}

/// The table whose own span is `span` (a `missing field` error points at the table).
fn table_at(text: &str, span: &Range<usize>) -> Option<String> {
    let document = DeTable::parse(text).ok()?;
    let mut trail = Vec::new();
    search_table_span(document.get_ref(), span, &mut trail)
}

#[derive(Clone)]
struct Step {
    key: String,
    in_array: bool,
}

fn label(trail: &[Step]) -> String {
    if trail.is_empty() {
        return "at the top level".to_owned();
    }
    let dotted = trail
        .iter()
        .map(|step| step.key.as_str())
        .collect::<Vec<_>>()
        .join(".");
    if trail.last().is_some_and(|step| step.in_array) {
        format!("in [[{dotted}]]")
    } else {
        format!("in [{dotted}]")
    }
}

fn search_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    trail: &mut Vec<Step>,
) -> Option<FoundKey> {
    for (key, value) in table.iter() {
        if key.span() == *span || value.span() == *span {
            let mut keys: Vec<&str> = trail.iter().map(|step| step.key.as_str()).collect();
            keys.push(key.get_ref());
            return Some(FoundKey {
                table: label(trail),
                dotted_key: keys.join("."),
                table_array: matches!(value.get_ref(), DeValue::Table(_)),
            });
        }
        let found = match value.get_ref() {
            DeValue::Table(inner) => {
                trail.push(Step {
                    key: key.get_ref().to_string(),
                    in_array: false,
                });
                let found = search_table(inner, span, trail);
                trail.pop();
                found
            }
            DeValue::Array(items) => {
                trail.push(Step {
                    key: key.get_ref().to_string(),
                    in_array: true,
                });
                let found = items.iter().find_map(|item| match item.get_ref() {
                    DeValue::Table(inner) => search_table(inner, span, trail),
                    _ => None,
                });
                trail.pop();
                found
            }
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn search_table_span(
    table: &DeTable<'_>,
    span: &Range<usize>,
    trail: &mut Vec<Step>,
) -> Option<String> {
    for (key, value) in table.iter() {
        let step = |in_array| Step {
            key: key.get_ref().to_string(),
            in_array,
        };
        let found = match value.get_ref() {
            DeValue::Table(inner) => {
                trail.push(step(false));
                let found = if value.span() == *span {
                    Some(label(trail))
                } else {
                    search_table_span(inner, span, trail)
                };
                trail.pop();
                found
            }
            DeValue::Array(items) => {
                trail.push(step(true));
                let found = items.iter().find_map(|item| match item.get_ref() {
                    DeValue::Table(_) if item.span() == *span => Some(label(trail)),
                    DeValue::Table(inner) => search_table_span(inner, span, trail),
                    _ => None,
                });
                trail.pop();
                found
            }
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        let location = locate(Path::new("x.toml"), text, text.find('=').unwrap());
        assert_eq!((location.line, location.column), (1, 3));
        let location = locate(Path::new("x.toml"), text, text.rfind('=').unwrap());
        assert_eq!((location.line, location.column), (2, 4));
    }

    #[test]
    fn offset_of_undoes_locate() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        for offset in text.char_indices().map(|(index, _)| index) {
            let location = locate(Path::new("x"), text, offset);
            assert_eq!(offset_of(text, location.line, location.column), offset);
        }
    }

    #[test]
    fn locate_clamps_offsets_past_the_end_or_inside_a_character() {
        let text = "é";
        assert_eq!(locate(Path::new("x"), text, 1).column, 1);
        assert_eq!(locate(Path::new("x"), text, 99).column, 2);
    }

    #[test]
    fn a_misspelt_key_gets_the_nearest_allowed_one() {
        let expected = "one of `name`, `stdout_equals`, `stdout_contains`";
        assert_eq!(closest_key("stdout_equal", expected), Some("stdout_equals"));
        assert_eq!(closest_key("nmae", expected), Some("name"));
        assert_eq!(closest_key("colour", expected), None);
    }
}
