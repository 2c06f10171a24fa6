//! The check matchers: each judges one aspect of what a container did.

use regex::Regex;

/// One `[[check]]` table.
#[derive(Debug, Clone)]
pub struct Check {
    /// `name`, or a name made from the matcher (`exit_code`, `stdout_contains #2`, …),
    /// unique within the spec.
    pub name: String,
    pub matcher: Matcher,
}

#[derive(Debug, Clone)]
pub enum Matcher {
    ExitCode(i64),
    StdoutEquals(String),
    StdoutContains(String),
    StdoutNotContains(String),
    /// Multi-line mode (`(?m)`), so `^` and `$` match at line ends.
    StdoutMatches(Regex),
    StderrContains(String),
    StderrNotContains(String),
    StderrMatches(Regex),
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

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// For a failure: expected vs actual, short enough to feed back (long text is
    /// shown as head and tail, the first differing line pointed out for `*_equals`).
    /// For a pass: a few words.
    pub detail: String,
}

impl Check {
    pub fn evaluate(&self, observed: &Observed<'_>) -> CheckResult {
        let _ = observed;
        todo!()
    }
}

impl Matcher {
    /// The key as written in `spec.toml`, e.g. `stdout_equals`.
    pub fn key(&self) -> &'static str {
        todo!()
    }
}
