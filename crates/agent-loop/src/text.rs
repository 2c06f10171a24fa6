//! Small text helpers shared by the loop's stages: a detail's gist on one line, a
//! matcher in words. A leaf: it uses no other module of the crate.

use agent_spec::{Matcher, excerpt};

/// The start of a multi-line detail on one line, for progress and `detail`: the first
/// line, and the next when the first ends in a colon.
pub(crate) fn gist(text: &str) -> String {
    let mut lines = text.trim().lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let line = match lines.next() {
        Some(second) if first.ends_with(':') => format!("{first} {second}"),
        _ => first.to_string(),
    };
    excerpt(&line, 240).replace('\n', " ")
}

pub(crate) fn first_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or_default()
}

pub(crate) fn describe_matcher(matcher: &Matcher) -> String {
    let quoted = |text: &str| serde_json::to_string(&excerpt(text, 2048)).unwrap_or_default();
    match matcher {
        Matcher::ExitCode(code) => format!("the exit code is {code}"),
        Matcher::StdoutEquals(text) => format!(
            "stdout equals {} (compared after turning \\r\\n into \\n and trimming trailing whitespace)",
            quoted(text)
        ),
        Matcher::StdoutContains(text) => format!("stdout contains {}", quoted(text)),
        Matcher::StdoutNotContains(text) => format!("stdout does not contain {}", quoted(text)),
        Matcher::StdoutMatches(regex) => {
            format!("stdout matches the regex {}", quoted(regex.as_str()))
        }
        Matcher::StderrContains(text) => format!("stderr contains {}", quoted(text)),
        Matcher::StderrNotContains(text) => format!("stderr does not contain {}", quoted(text)),
        Matcher::StderrMatches(regex) => {
            format!("stderr matches the regex {}", quoted(regex.as_str()))
        }
    }
}
