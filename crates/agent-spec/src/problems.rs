//! Every problem of a file in one pass: the parser stops at the first, so after each
//! one the key or table it points at is blanked out (each character a space, so every
//! line and column stays where it was) and the text is parsed again, until it parses
//! or nothing more can be placed. Problems that only follow from a blanked key (a
//! table left without its one key, a required key removed) are not reported.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::errors::{ConfigError, Location, Problems, SpecError};
use crate::position::offset_of;

/// The most problems reported for one file: past that, the first ones are enough to
/// start with.
pub(crate) const MAX_PROBLEMS: usize = 20;

/// An error that may sit at a place in the file, with its message.
pub(crate) trait Placed {
    fn place(&self) -> Option<(&Location, &str)>;
}

impl Placed for SpecError {
    fn place(&self) -> Option<(&Location, &str)> {
        match self {
            SpecError::Read { .. } => None,
            SpecError::Invalid { location, message } => Some((location, message)),
            SpecError::Input { location, .. } | SpecError::SuiteFile { location, .. } => {
                Some((location, ""))
            }
        }
    }
}

impl Placed for ConfigError {
    fn place(&self) -> Option<(&Location, &str)> {
        match self {
            ConfigError::Invalid { location, message } => Some((location, message)),
            ConfigError::Read { .. } | ConfigError::Override { .. } => None,
        }
    }
}

/// What `parse` makes of `text`, or every problem it finds in it, in file order.
pub(crate) fn every_problem<T, E: Placed>(
    text: &str,
    mut parse: impl FnMut(&str) -> Result<T, E>,
) -> Result<T, Problems<E>> {
    let mut text = text.to_owned();
    let mut found: Vec<E> = Vec::new();
    let mut blanked: Vec<(Range<usize>, String)> = Vec::new();
    // Each round blanks something or stops, so the rounds are bounded by the file;
    // the cap keeps a file of thousands of mistakes quick.
    for _ in 0..MAX_PROBLEMS * 4 {
        let error = match parse(&text) {
            Ok(value) if found.is_empty() => return Ok(value),
            Ok(_) => break,
            Err(error) => error,
        };
        let Some(item) = next_blank(&text, &error, &blanked) else {
            if !follows_from(&error, &blanked) {
                found.push(error);
            }
            break;
        };
        if !item.derived {
            found.push(error);
        }
        if found.len() >= MAX_PROBLEMS {
            break;
        }
        text = blank(&text, item.range.clone());
        blanked.push((item.range, item.key));
    }
    found.sort_by_key(|error| {
        error
            .place()
            .map_or((0, 0), |(location, _)| (location.line, location.column))
    });
    Err(Problems::new(found))
}

/// A part of the file to blank out after `error`.
struct Blank {
    range: Range<usize>,
    key: String,
    /// The error only follows from an earlier blank.
    derived: bool,
}

fn next_blank<E: Placed>(
    text: &str,
    error: &E,
    blanked: &[(Range<usize>, String)],
) -> Option<Blank> {
    let (location, message) = error.place()?;
    let offset = offset_of(text, location.line, location.column);
    // At the very start sit the errors of the file as a whole (its name, a missing
    // key), unless a key written there is itself unknown.
    if offset == 0 && !message.starts_with("unknown key") {
        return None;
    }
    let document = DeTable::parse(text).ok()?;
    let mut ends = Vec::new();
    header_starts(document.get_ref(), text, &mut ends);
    ends.sort_unstable();
    let item = innermost(document.get_ref(), &Tables { text, ends }, offset)?;
    let derived = item.is_table
        && blanked
            .iter()
            .any(|(range, _)| item.range.start <= range.start && range.end <= item.range.end);
    Some(Blank {
        range: item.range,
        key: item.key,
        derived,
    })
}

/// "missing key `prompt`" after `prompt` was blanked.
fn follows_from<E: Placed>(error: &E, blanked: &[(Range<usize>, String)]) -> bool {
    let Some((_, message)) = error.place() else {
        return false;
    };
    blanked.iter().any(|(_, key)| {
        message
            .strip_prefix("missing key `")
            .is_some_and(|rest| rest.starts_with(&format!("{key}`")))
    })
}

struct Item {
    range: Range<usize>,
    key: String,
    is_table: bool,
}

/// The text, and where each table ends (where the next header starts).
struct Tables<'a> {
    text: &'a str,
    ends: Vec<usize>,
}

/// The innermost key and value, or table, whose text holds `offset`.
fn innermost(table: &DeTable<'_>, tables: &Tables<'_>, offset: usize) -> Option<Item> {
    let text = tables.text;
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        let found = match value.get_ref() {
            DeValue::Table(inner) if is_header(text, value.span()) => {
                table_item(inner, tables, offset, value.span(), &name)
            }
            DeValue::Array(items)
                if items
                    .first()
                    .is_some_and(|item| is_header(text, item.span())) =>
            {
                items.iter().find_map(|item| match item.get_ref() {
                    DeValue::Table(inner) => table_item(inner, tables, offset, item.span(), &name),
                    _ => None,
                })
            }
            _ => {
                let range = key.span().start..value.span().end;
                holds(&range, offset).then_some(Item {
                    range,
                    key: name,
                    is_table: false,
                })
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A `[table]` or `[[table]]` from its header to its last value: a key inside it if
/// one holds `offset`, else the whole table if it does.
fn table_item(
    table: &DeTable<'_>,
    tables: &Tables<'_>,
    offset: usize,
    header: Range<usize>,
    key: &str,
) -> Option<Item> {
    if let Some(inner) = innermost(table, tables, offset) {
        return Some(inner);
    }
    let end = tables
        .ends
        .iter()
        .copied()
        .find(|start| *start > header.start)
        .unwrap_or(tables.text.len());
    let range = header.start..end;
    holds(&range, offset).then(|| Item {
        range,
        key: key.to_owned(),
        is_table: true,
    })
}

/// Where each `[table]` and `[[table]]` header starts, in file order: a table runs
/// to the next one.
fn header_starts(table: &DeTable<'_>, text: &str, starts: &mut Vec<usize>) {
    for (_, value) in table.iter() {
        match value.get_ref() {
            DeValue::Table(inner) => {
                if is_header(text, value.span()) {
                    starts.push(value.span().start);
                }
                header_starts(inner, text, starts);
            }
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(inner) = item.get_ref() {
                        if is_header(text, item.span()) {
                            starts.push(item.span().start);
                        }
                        header_starts(inner, text, starts);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_header(text: &str, span: Range<usize>) -> bool {
    text.get(span)
        .is_some_and(|written| written.starts_with('['))
}

fn holds(range: &Range<usize>, offset: usize) -> bool {
    range.start <= offset && offset < range.end.max(range.start + 1)
}

/// `text` with each character of `range` but line breaks turned into a space.
fn blank(text: &str, range: Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, character) in text.char_indices() {
        if range.contains(&index) && character != '\n' && character != '\r' {
            out.push(' ');
        } else {
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::errors::SpecError;
    use crate::spec::parse_spec;

    fn problems(text: &str) -> Vec<String> {
        let path = Path::new("/specs/adder.toml");
        match every_problem(text, |text| parse_spec(path, text)) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|error: SpecError| error.to_string())
                .collect(),
        }
    }

    #[test]
    fn three_mistakes_are_three_problems_in_file_order() {
        let text = "name = \"Adder!\"\nprompt = \"p\"\nconditions = \"c\"\n[run]\nargs = \"x\"\n\
                    [[check]]\nstdout_equal = \"7\"\n[[check]]\nexit_code = 0\n";
        let found = problems(text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("/specs/adder.toml:1:8: spec name `Adder!`"));
        assert!(found[1].starts_with("/specs/adder.toml:5:8: `run.args`"));
        assert!(found[2].starts_with("/specs/adder.toml:7:1: unknown key `stdout_equal`"));
        assert!(found[2].contains("did you mean `stdout_equals`?"));
    }

    #[test]
    fn a_removed_required_key_is_not_a_second_problem() {
        let found = problems("prompt = 5\nconditions = \"c\"\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("`prompt`"), "{found:#?}");
    }

    #[test]
    fn a_good_file_has_none_and_a_bad_one_at_most_the_cap() {
        assert!(problems("prompt = \"p\"\nconditions = \"c\"\n").is_empty());
        let many: String = (0..30).map(|n| format!("key{n} = 1\n")).collect();
        let found = problems(&format!("prompt = \"p\"\nconditions = \"c\"\n{many}"));
        assert_eq!(found.len(), MAX_PROBLEMS);
    }

    #[test]
    fn blanking_keeps_lines_and_columns() {
        let text = "a = \"é\"\nb = 1\n";
        let blanked = blank(text, 0..text.find('\n').unwrap());
        assert_eq!(blanked, "       \nb = 1\n");
    }
}
