//! The output checks of a run (`[[check]]`, `[[case.check]]`): exit code, stdout and
//! stderr matchers.

use regex::Regex;

use crate::check::CheckResult;
use crate::check::text::{
    EXCERPT_LIMIT, Stream, contains, cut_note, excerpt, matches, not_contains, plural, quote,
    window,
};

/// One `[[check]]` table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// `name`, or a name made from the matcher (`exit_code`, `stdout_contains #2`, …),
    /// unique within the spec.
    pub name: String,
    pub matcher: Matcher,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Matcher {
    ExitCode(i64),
    StdoutEquals(String),
    StdoutContains(String),
    StdoutNotContains(String),
    /// Multi-line mode (`(?m)`), so `^` and `$` match at line ends.
    StdoutMatches(#[serde(serialize_with = "crate::check::text::pattern")] Regex),
    StderrContains(String),
    StderrNotContains(String),
    StderrMatches(#[serde(serialize_with = "crate::check::text::pattern")] Regex),
}

/// What a finished container did, as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// `None` when the container was killed before it exited (timeout).
    pub exit_code: Option<i64>,
    pub stdout: &'a str,
    pub stderr: &'a str,
    /// The stream was cut at the output limit: `*_not_contains` cannot be proven and
    /// fails, and the detail says so.
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl Check {
    /// Judges what a run of the case named `group` did.
    pub fn evaluate(&self, group: &str, observed: &Observed<'_>) -> CheckResult {
        let stdout = Stream {
            name: "stdout",
            text: observed.stdout,
            truncated: observed.stdout_truncated,
        };
        let stderr = Stream {
            name: "stderr",
            text: observed.stderr,
            truncated: observed.stderr_truncated,
        };
        let (passed, detail) = match &self.matcher {
            Matcher::ExitCode(expected) => exit_code(*expected, observed.exit_code),
            Matcher::StdoutEquals(expected) => equals(expected, stdout),
            Matcher::StdoutContains(expected) => contains(expected, stdout),
            Matcher::StdoutNotContains(unwanted) => not_contains(unwanted, stdout),
            Matcher::StdoutMatches(regex) => matches(regex, stdout),
            Matcher::StderrContains(expected) => contains(expected, stderr),
            Matcher::StderrNotContains(unwanted) => not_contains(unwanted, stderr),
            Matcher::StderrMatches(regex) => matches(regex, stderr),
        };
        CheckResult::new(group, self.name.clone(), passed, detail)
    }
}

impl Matcher {
    /// The key as written in `spec.toml`, e.g. `stdout_equals`.
    pub fn key(&self) -> &'static str {
        match self {
            Matcher::ExitCode(_) => "exit_code",
            Matcher::StdoutEquals(_) => "stdout_equals",
            Matcher::StdoutContains(_) => "stdout_contains",
            Matcher::StdoutNotContains(_) => "stdout_not_contains",
            Matcher::StdoutMatches(_) => "stdout_matches",
            Matcher::StderrContains(_) => "stderr_contains",
            Matcher::StderrNotContains(_) => "stderr_not_contains",
            Matcher::StderrMatches(_) => "stderr_matches",
        }
    }
}

fn exit_code(expected: i64, actual: Option<i64>) -> (bool, String) {
    match actual {
        Some(actual) if actual == expected => (true, format!("exit code {actual}")),
        Some(actual) => (
            false,
            format!("expected exit code {expected}, got {actual}"),
        ),
        None => (
            false,
            format!(
                "the program did not exit (killed at the run timeout or by the engine); \
                 expected exit code {expected}"
            ),
        ),
    }
}

/// Line endings and whitespace at the very end never make a difference: programs on
/// any platform end their output with a newline or not.
fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end().to_owned()
}

fn equals(expected: &str, stream: Stream<'_>) -> (bool, String) {
    let expected = normalize(expected);
    let actual = normalize(stream.text);
    if expected == actual {
        return (true, format!("{} equals the expected text", stream.name));
    }
    let expected_lines = lines_of(&expected);
    let actual_lines = lines_of(&actual);
    let mut detail = if actual_lines.is_empty() {
        format!(
            "{} is empty; expected {} line{}:\n{}",
            stream.name,
            expected_lines.len(),
            plural(expected_lines.len()),
            excerpt(&expected, EXCERPT_LIMIT)
        )
    } else {
        difference(stream.name, &expected_lines, &actual_lines)
    };
    if stream.truncated {
        detail.push_str(&format!("\n{}", cut_note(stream.name)));
    }
    (false, detail)
}

/// The lines of a normalized text; none for an empty one.
fn lines_of(text: &str) -> Vec<&str> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    }
}

/// Where a non-empty output first parts from the expected text, both line counts, and
/// the output's lines around that place.
fn difference(name: &str, expected_lines: &[&str], actual_lines: &[&str]) -> String {
    let first_difference = expected_lines
        .iter()
        .zip(actual_lines)
        .position(|(expected, actual)| expected != actual)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    let line_number = first_difference + 1;
    let mut detail = format!("{name} differs from the expected text at line {line_number}:\n");
    detail.push_str(&differing_line(
        expected_lines,
        actual_lines,
        first_difference,
    ));
    detail.push_str(&format!(
        "expected {} line{}, got {} line{}",
        expected_lines.len(),
        plural(expected_lines.len()),
        actual_lines.len(),
        plural(actual_lines.len())
    ));
    let context = window(actual_lines, first_difference);
    if !context.is_empty() {
        detail.push_str(&format!("\n{name} around line {line_number}:\n{context}"));
    }
    detail
}

/// The expected and the actual line at `index`, or which of the two texts ended.
fn differing_line(expected_lines: &[&str], actual_lines: &[&str], index: usize) -> String {
    match (expected_lines.get(index), actual_lines.get(index)) {
        (Some(expected), Some(actual)) => {
            let mut shown = format!(
                "  expected: {}\n  actual:   {}\n",
                quote(expected),
                quote(actual)
            );
            if expected.trim_end() == actual.trim_end() {
                shown.push_str("  (the lines differ only in trailing whitespace)\n");
            }
            shown
        }
        (Some(expected), None) => format!(
            "  expected: {}\n  actual:   (the output ended after line {})\n",
            quote(expected),
            actual_lines.len()
        ),
        (None, Some(actual)) if expected_lines.is_empty() => {
            format!("  expected: no output\n  actual:   {}\n", quote(actual))
        }
        (None, Some(actual)) => format!(
            "  expected: (the expected text ends after line {})\n  actual:   {}\n",
            expected_lines.len(),
            quote(actual)
        ),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::text::DETAIL_LIMIT;

    fn check(matcher: Matcher) -> Check {
        Check {
            name: matcher.key().to_owned(),
            matcher,
        }
    }

    fn regex(pattern: &str) -> Regex {
        regex::RegexBuilder::new(pattern)
            .multi_line(true)
            .build()
            .unwrap()
    }

    fn run(
        exit_code: Option<i64>,
        stdout: &'static str,
        stderr: &'static str,
    ) -> Observed<'static> {
        Observed {
            exit_code,
            stdout,
            stderr,
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    fn evaluate(matcher: Matcher, observed: &Observed<'_>) -> CheckResult {
        let result = check(matcher).evaluate("run", observed);
        assert!(
            result.detail.len() <= DETAIL_LIMIT,
            "{}",
            result.detail.len()
        );
        result
    }

    #[test]
    fn exit_code_passes_and_fails() {
        let result = evaluate(Matcher::ExitCode(0), &run(Some(0), "", ""));
        assert_eq!(
            result,
            CheckResult {
                group: "run".to_owned(),
                name: "exit_code".to_owned(),
                passed: true,
                detail: "exit code 0".to_owned()
            }
        );
        let result = evaluate(Matcher::ExitCode(0), &run(Some(2), "", ""));
        assert!(!result.passed);
        assert_eq!(result.detail, "expected exit code 0, got 2");
    }

    #[test]
    fn exit_code_of_a_killed_container_fails() {
        let result = evaluate(Matcher::ExitCode(0), &run(None, "", ""));
        assert!(!result.passed);
        assert!(
            result
                .detail
                .starts_with("the program did not exit (killed"),
            "{}",
            result.detail
        );
    }

    #[test]
    fn equals_ignores_crlf_and_trailing_whitespace_at_the_end() {
        let matcher = Matcher::StdoutEquals("1\n2\nFizz\n".to_owned());
        assert!(evaluate(matcher.clone(), &run(Some(0), "1\r\n2\r\nFizz  \r\n\n", "")).passed);
        assert!(evaluate(matcher.clone(), &run(Some(0), "1\n2\nFizz", "")).passed);
        let expected_trailing = Matcher::StdoutEquals("a\nb  \n\n".to_owned());
        assert!(evaluate(expected_trailing, &run(Some(0), "a\nb", "")).passed);
    }

    #[test]
    fn equals_points_at_the_first_differing_line() {
        let matcher = Matcher::StdoutEquals("1\n2\nFizz\n4\nBuzz".to_owned());
        let result = evaluate(matcher, &run(Some(0), "1\n2\n3\n4\nBuzz\n", ""));
        assert!(!result.passed);
        assert!(
            result.detail.starts_with(
                "stdout differs from the expected text at line 3:\n  expected: \"Fizz\"\n  actual:   \"3\"\n\
                 expected 5 lines, got 5 lines\nstdout around line 3:\n"
            ),
            "{}",
            result.detail
        );
        assert!(result.detail.contains("    3 | 3"), "{}", result.detail);
    }

    #[test]
    fn equals_says_when_the_output_ends_early_or_runs_on() {
        let matcher = Matcher::StdoutEquals("a\nb\nc".to_owned());
        let short = evaluate(matcher.clone(), &run(Some(0), "a\nb\n", ""));
        assert!(short.detail.contains("at line 3:"), "{}", short.detail);
        assert!(
            short
                .detail
                .contains("actual:   (the output ended after line 2)"),
            "{}",
            short.detail
        );
        assert!(
            short.detail.contains("expected 3 lines, got 2 lines"),
            "{}",
            short.detail
        );
        let long = evaluate(matcher.clone(), &run(Some(0), "a\nb\nc\nd", ""));
        assert!(long.detail.contains("at line 4:"), "{}", long.detail);
        assert!(long.detail.contains("actual:   \"d\""), "{}", long.detail);
        let nothing_expected = evaluate(
            Matcher::StdoutEquals(String::new()),
            &run(Some(0), "x\n", ""),
        );
        assert!(!nothing_expected.passed);
        assert!(
            nothing_expected
                .detail
                .contains("expected: no output\n  actual:   \"x\""),
            "{}",
            nothing_expected.detail
        );
        assert!(
            nothing_expected
                .detail
                .contains("expected 0 lines, got 1 line"),
            "{}",
            nothing_expected.detail
        );
        assert!(
            evaluate(
                Matcher::StdoutEquals(String::new()),
                &run(Some(0), " \r\n", "")
            )
            .passed
        );
        let empty = evaluate(matcher, &run(Some(0), "\n", ""));
        assert!(
            empty
                .detail
                .starts_with("stdout is empty; expected 3 lines:"),
            "{}",
            empty.detail
        );
    }

    #[test]
    fn equals_shows_whitespace_inside_lines() {
        let matcher = Matcher::StdoutEquals("a\nb".to_owned());
        let result = evaluate(matcher, &run(Some(0), "a \nb", ""));
        assert!(!result.passed);
        assert!(
            result.detail.contains("actual:   \"a \""),
            "{}",
            result.detail
        );
        assert!(
            result.detail.contains("only in trailing whitespace"),
            "{}",
            result.detail
        );
    }

    #[test]
    fn equals_on_long_output_stays_short() {
        let expected: String = (1..=5000).map(|number| format!("{number}\n")).collect();
        let actual: &'static str = Box::leak(
            (1..=5000)
                .map(|number| {
                    if number == 4000 {
                        "x\n".to_owned()
                    } else {
                        format!("{number}\n")
                    }
                })
                .collect::<String>()
                .into_boxed_str(),
        );
        let result = evaluate(Matcher::StdoutEquals(expected), &run(Some(0), actual, ""));
        assert!(!result.passed);
        assert!(result.detail.contains("at line 4000:"), "{}", result.detail);
        assert!(
            result.detail.contains("expected: \"4000\""),
            "{}",
            result.detail
        );
    }

    #[test]
    fn contains_passes_and_fails_with_an_excerpt() {
        let result = evaluate(
            Matcher::StdoutContains("lo w".to_owned()),
            &run(Some(0), "hello world", ""),
        );
        assert!(result.passed);
        let result = evaluate(
            Matcher::StdoutContains("bye".to_owned()),
            &run(Some(0), "hello world", ""),
        );
        assert!(!result.passed);
        assert_eq!(
            result.detail,
            "stdout does not contain \"bye\"\nstdout (11 bytes, 1 line):\nhello world"
        );
        let result = evaluate(
            Matcher::StderrContains("warn".to_owned()),
            &run(Some(0), "warn", ""),
        );
        assert!(!result.passed);
        assert_eq!(
            result.detail,
            "stderr does not contain \"warn\"\nstderr is empty"
        );
        assert!(
            evaluate(
                Matcher::StderrContains("warn".to_owned()),
                &run(Some(0), "", "a warning")
            )
            .passed
        );
    }

    #[test]
    fn contains_on_huge_output_shows_head_and_tail() {
        let huge: &'static str =
            Box::leak(format!("START\n{}END\n", "filler line\n".repeat(100_000)).into_boxed_str());
        let result = evaluate(
            Matcher::StdoutContains("absent".to_owned()),
            &run(Some(0), huge, ""),
        );
        assert!(!result.passed);
        assert!(result.detail.contains("START"), "{}", result.detail);
        assert!(result.detail.contains("END"), "{}", result.detail);
        assert!(result.detail.contains("left out"), "{}", result.detail);
    }

    #[test]
    fn not_contains_passes_and_fails_with_the_line() {
        let stdout = "ok\nTraceback (most recent call last)\n";
        let result = evaluate(
            Matcher::StdoutNotContains("Traceback".to_owned()),
            &run(Some(0), stdout, ""),
        );
        assert!(!result.passed);
        assert_eq!(
            result.detail,
            "stdout contains \"Traceback\", which it must not; first at line 2: \"Traceback (most recent call last)\""
        );
        assert!(
            evaluate(
                Matcher::StdoutNotContains("Error".to_owned()),
                &run(Some(0), stdout, "")
            )
            .passed
        );
        let result = evaluate(
            Matcher::StderrNotContains("Error".to_owned()),
            &run(Some(0), "", "x\r\nError\r\n"),
        );
        assert!(!result.passed);
        assert!(
            result.detail.ends_with("first at line 2: \"Error\""),
            "{}",
            result.detail
        );
    }

    #[test]
    fn not_contains_on_truncated_output_fails() {
        let mut observed = run(Some(0), "aaaa", "bbbb");
        observed.stdout_truncated = true;
        let result = evaluate(Matcher::StdoutNotContains("zzz".to_owned()), &observed);
        assert!(!result.passed);
        assert!(
            result.detail.contains("was cut at the output limit"),
            "{}",
            result.detail
        );
        assert!(
            result.detail.contains("cannot be proven"),
            "{}",
            result.detail
        );
        // The other stream was not cut, so absence there is proven.
        assert!(evaluate(Matcher::StderrNotContains("zzz".to_owned()), &observed).passed);
        observed.stderr_truncated = true;
        assert!(!evaluate(Matcher::StderrNotContains("zzz".to_owned()), &observed).passed);
    }

    #[test]
    fn matches_is_multi_line() {
        let result = evaluate(
            Matcher::StdoutMatches(regex(r"^total: \d+$")),
            &run(Some(0), "x\ntotal: 42\ny\n", ""),
        );
        assert!(result.passed, "{}", result.detail);
        assert!(result.detail.contains("\"total: 42\""), "{}", result.detail);
        let result = evaluate(
            Matcher::StdoutMatches(regex(r"^total: \d+$")),
            &run(Some(0), "total: x\n", ""),
        );
        assert!(!result.passed);
        assert!(
            result
                .detail
                .starts_with("stdout does not match the regex `^total: \\d+$`"),
            "{}",
            result.detail
        );
        assert!(result.detail.contains("total: x"), "{}", result.detail);
        assert!(
            evaluate(
                Matcher::StderrMatches(regex("^warn")),
                &run(Some(0), "", "a\nwarning\n")
            )
            .passed
        );
        assert!(
            !evaluate(
                Matcher::StderrMatches(regex("^warn")),
                &run(Some(0), "warn", "a warning")
            )
            .passed
        );
    }

    #[test]
    fn truncated_stream_is_mentioned_in_contains_failures() {
        let mut observed = run(Some(0), "partial", "");
        observed.stdout_truncated = true;
        let result = evaluate(Matcher::StdoutContains("done".to_owned()), &observed);
        assert!(!result.passed);
        assert!(
            result.detail.contains("stdout was cut at the output limit"),
            "{}",
            result.detail
        );
    }
}
