//! `[[check]]` and `[[case.check]]` tables: one matcher each, names given or made
//! from the matcher, unique among the checks a case runs.

use std::collections::HashSet;

use crate::spanned::Spanned;
use regex::Regex;
use serde::Deserialize;

use crate::check::{Check, Matcher};
use crate::errors::SpecError;
use crate::validate::{self, Source};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Check")]
pub(crate) struct RawCheck {
    name: Option<Spanned<String>>,
    exit_code: Option<Spanned<i64>>,
    stdout_equals: Option<Spanned<String>>,
    stdout_contains: Option<Spanned<String>>,
    stdout_not_contains: Option<Spanned<String>>,
    stdout_matches: Option<Spanned<String>>,
    stderr_contains: Option<Spanned<String>>,
    stderr_not_contains: Option<Spanned<String>>,
    stderr_matches: Option<Spanned<String>>,
}

impl RawCheck {
    /// Where its `exit_code` is, if it has one.
    pub(crate) fn exit_code_span(&self) -> Option<std::ops::Range<usize>> {
        self.exit_code.as_ref().map(Spanned::span)
    }
}

const MATCHER_KEYS: &str = "`exit_code`, `stdout_equals`, `stdout_contains`, \
    `stdout_not_contains`, `stdout_matches`, `stderr_contains`, `stderr_not_contains`, \
    `stderr_matches`";

/// The checks of `raw` tables. `shared`: checks that run beside these (the top-level
/// ones, for a case's own), whose names these may neither repeat nor take.
pub(crate) fn build_checks(
    source: &Source<'_>,
    raw: &[Spanned<RawCheck>],
    shared: &[Check],
) -> Result<Vec<Check>, SpecError> {
    let mut matchers = Vec::with_capacity(raw.len());
    for table in raw {
        matchers.push(build_matcher(source, table)?);
    }

    // Explicit names are taken first, so a generated name never steals one.
    let mut taken: HashSet<String> = shared.iter().map(|check| check.name.clone()).collect();
    for table in raw {
        if let Some(name) = &table.get_ref().name {
            if name.get_ref().trim().is_empty() {
                return Err(source.invalid(
                    name.span(),
                    "check `name` is empty; give it a few words or leave it out".to_owned(),
                ));
            }
            if !taken.insert(name.get_ref().clone()) {
                let owner = if shared.iter().any(|check| check.name == *name.get_ref()) {
                    "a top-level [[check]], which holds for every case"
                } else {
                    "an earlier [[check]]"
                };
                return Err(source.invalid(
                    name.span(),
                    format!(
                        "check name `{}` is already used by {owner}; names must be unique",
                        name.get_ref()
                    ),
                ));
            }
        }
    }

    let mut checks = Vec::with_capacity(raw.len());
    for (table, matcher) in raw.iter().zip(matchers) {
        let name = match &table.get_ref().name {
            Some(name) => name.get_ref().clone(),
            None => {
                let key = matcher.key();
                let mut name = key.to_owned();
                let mut number = 1;
                while taken.contains(&name) {
                    number += 1;
                    name = format!("{key} #{number}");
                }
                taken.insert(name.clone());
                name
            }
        };
        checks.push(Check { name, matcher });
    }
    Ok(checks)
}

fn build_matcher(source: &Source<'_>, table: &Spanned<RawCheck>) -> Result<Matcher, SpecError> {
    let mut found = matchers_in(source, table.get_ref())?;
    match found.len() {
        1 => Ok(found.remove(0).1),
        0 => Err(source.invalid(
            table.span(),
            format!("check has no matcher; give it one of {MATCHER_KEYS}"),
        )),
        count => {
            let keys: Vec<String> = found.iter().map(|(key, _)| format!("`{key}`")).collect();
            let listed = match keys.split_last() {
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            let count = if count == 2 {
                "two".to_owned()
            } else {
                count.to_string()
            };
            Err(source.invalid(
                table.span(),
                format!("check has {count} matchers, {listed}: put each in its own [[check]]"),
            ))
        }
    }
}

/// Every matcher a `[[check]]` table sets, with its key; one is right.
fn matchers_in(
    source: &Source<'_>,
    raw: &RawCheck,
) -> Result<Vec<(&'static str, Matcher)>, SpecError> {
    let mut found: Vec<(&'static str, Matcher)> = Vec::new();
    if let Some(code) = &raw.exit_code {
        found.push(("exit_code", Matcher::ExitCode(*code.get_ref())));
    }
    type Text = fn(String) -> Matcher;
    let texts: [(&str, _, Text); 5] = [
        ("stdout_equals", &raw.stdout_equals, Matcher::StdoutEquals),
        (
            "stdout_contains",
            &raw.stdout_contains,
            Matcher::StdoutContains,
        ),
        (
            "stdout_not_contains",
            &raw.stdout_not_contains,
            Matcher::StdoutNotContains,
        ),
        (
            "stderr_contains",
            &raw.stderr_contains,
            Matcher::StderrContains,
        ),
        (
            "stderr_not_contains",
            &raw.stderr_not_contains,
            Matcher::StderrNotContains,
        ),
    ];
    for (key, value, make) in texts {
        if let Some(value) = value {
            if key != "stdout_equals" && value.get_ref().is_empty() {
                return Err(source.invalid(
                    value.span(),
                    format!("`{key}` is empty, which every output contains; give it a text"),
                ));
            }
            found.push((key, make(value.get_ref().clone())));
        }
    }
    type Pattern = fn(Regex) -> Matcher;
    let regexes: [(&str, _, Pattern); 2] = [
        (
            "stdout_matches",
            &raw.stdout_matches,
            Matcher::StdoutMatches,
        ),
        (
            "stderr_matches",
            &raw.stderr_matches,
            Matcher::StderrMatches,
        ),
    ];
    for (key, value, make) in regexes {
        if let Some(value) = value {
            found.push((key, make(compile(source, key, value)?)));
        }
    }
    Ok(found)
}

pub(crate) fn compile(
    source: &Source<'_>,
    key: &str,
    value: &Spanned<String>,
) -> Result<Regex, SpecError> {
    validate::regex(value.get_ref(), true)
        .map_err(|reason| source.invalid(value.span(), format!("bad regex in `{key}`: {reason}")))
}

#[cfg(test)]
mod tests {
    use crate::spec::testing::{MINIMAL, invalid, observed, parse};

    #[test]
    fn unknown_key_in_check_names_the_table_and_the_allowed_keys() {
        let text = format!("{MINIMAL}\n[[check]]\n  stdout_equal = \"x\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (5, 3));
        assert!(
            message.starts_with("unknown key `stdout_equal` in [[check]]; expected one of `name`, `exit_code`, `stdout_equals`"),
            "{message}"
        );
    }

    #[test]
    fn two_matchers_point_at_the_check_table() {
        let text = format!(
            "{MINIMAL}[[check]]\nexit_code = 0\n\n[[check]]\nexit_code = 0\nstdout_contains = \"x\"\n"
        );
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (6, 1));
        assert_eq!(
            message,
            "check has two matchers, `exit_code` and `stdout_contains`: put each in its own [[check]]"
        );
    }

    #[test]
    fn zero_matchers_point_at_the_check_table() {
        let text = format!("{MINIMAL}\n[[check]]\nname = \"lonely\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (4, 1));
        assert!(
            message.starts_with("check has no matcher; give it one of `exit_code`"),
            "{message}"
        );
    }

    #[test]
    fn bad_regex_points_at_the_pattern() {
        let text = format!("{MINIMAL}[[check]]\nstdout_matches = \"(abc\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (4, 18));
        assert_eq!(message, "bad regex in `stdout_matches`: unclosed group");
    }

    #[test]
    fn a_single_check_table_asks_for_double_brackets() {
        let (line, column, message) = invalid(&format!("{MINIMAL}[check]\nexit_code = 0\n"));
        assert_eq!((line, column), (3, 1));
        assert_eq!(
            message,
            "`check` is a list of tables: write [[check]], not [check]"
        );
    }

    #[test]
    fn default_check_names_are_made_unique() {
        let text = format!(
            "{MINIMAL}[[check]]\nstdout_contains = \"a\"\n[[check]]\nexit_code = 0\n\
             [[check]]\nstdout_contains = \"b\"\n[[check]]\nstdout_contains = \"c\"\n"
        );
        let spec = parse(&text).unwrap();
        let names: Vec<&str> = spec
            .checks
            .iter()
            .map(|check| check.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "stdout_contains",
                "exit_code",
                "stdout_contains #2",
                "stdout_contains #3"
            ]
        );
    }

    #[test]
    fn default_check_names_avoid_explicit_ones() {
        let text = format!(
            "{MINIMAL}[[check]]\nexit_code = 0\n[[check]]\nname = \"exit_code\"\nexit_code = 1\n"
        );
        let spec = parse(&text).unwrap();
        let names: Vec<&str> = spec
            .checks
            .iter()
            .map(|check| check.name.as_str())
            .collect();
        assert_eq!(names, ["exit_code #2", "exit_code"]);
    }

    #[test]
    fn duplicate_explicit_check_names_are_refused() {
        let text = format!(
            "{MINIMAL}[[check]]\nname = \"a\"\nexit_code = 0\n[[check]]\nname = \"a\"\nexit_code = 1\n"
        );
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (7, 8));
        assert!(
            message.starts_with("check name `a` is already used"),
            "{message}"
        );
    }

    #[test]
    fn regexes_are_multi_line() {
        let text = format!("{MINIMAL}[[check]]\nstdout_matches = '^b$'\n");
        let spec = parse(&text).unwrap();
        assert!(
            spec.checks[0]
                .evaluate("run", &observed("a\nb\nc\n"))
                .passed
        );
        assert!(
            !spec.checks[0]
                .evaluate("run", &observed("a\nbb\nc\n"))
                .passed
        );
    }

    #[test]
    fn every_matcher_key_parses_to_its_matcher() {
        let keys = [
            ("exit_code = 3", "exit_code"),
            ("stdout_equals = 'x'", "stdout_equals"),
            ("stdout_contains = 'x'", "stdout_contains"),
            ("stdout_not_contains = 'x'", "stdout_not_contains"),
            ("stdout_matches = 'x'", "stdout_matches"),
            ("stderr_contains = 'x'", "stderr_contains"),
            ("stderr_not_contains = 'x'", "stderr_not_contains"),
            ("stderr_matches = 'x'", "stderr_matches"),
        ];
        for (line, key) in keys {
            let spec = parse(&format!("{MINIMAL}[[check]]\n{line}\n")).unwrap();
            assert_eq!(spec.checks[0].matcher.key(), key);
            assert_eq!(spec.checks[0].name, key);
        }
    }

    #[test]
    fn empty_contains_text_is_refused() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[[check]]\nstdout_contains = ''\n"));
        assert_eq!((line, column), (4, 19));
        assert!(
            message.starts_with("`stdout_contains` is empty"),
            "{message}"
        );
    }
}
