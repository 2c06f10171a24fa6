//! `fileContentTests`: a file's content against expected and excluded regexes.

use regex::Regex;

use crate::check::text::{Stream, shown};
use crate::check::{CheckResult, FileFacts, TYPE_MASK};
use crate::structure::regex_failures;

/// One entry of `fileContentTests`.
#[derive(Debug, Clone)]
pub struct FileContentTest {
    pub name: String,
    pub(crate) group: String,
    pub(crate) path: String,
    pub(crate) expected_contents: Vec<Regex>,
    pub(crate) excluded_contents: Vec<Regex>,
}

impl FileContentTest {
    /// The path as written: the tool expands `$VAR` in existence tests' paths but not
    /// here. A symlink is read where it points, as the tool does.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path that is absent, a directory or unreadable fails; else every expected
    /// regex must match and no excluded one may, each over the whole content.
    pub fn judge(&self, facts: &FileFacts) -> CheckResult {
        let verdict = |passed: bool, detail: String| {
            CheckResult::new(&self.group, self.name.clone(), passed, detail)
        };
        let path = &facts.path;
        let Some(entry) = &facts.entry else {
            return verdict(
                false,
                format!("`{path}` does not exist, so its content cannot be read"),
            );
        };
        let Some(content) = &entry.content else {
            let kind = if entry.mode & TYPE_MASK == 0o040_000 {
                "a directory"
            } else {
                "not a regular file"
            };
            return verdict(
                false,
                format!("`{path}` is {kind}, so its content cannot be read"),
            );
        };
        let text = String::from_utf8_lossy(content);
        let what = format!("`{path}`");
        let failures = [
            regex_failures(&self.expected_contents, &text, true, &what),
            regex_failures(&self.excluded_contents, &text, false, &what),
        ]
        .concat();
        if failures.is_empty() {
            return verdict(true, format!("`{path}` has the expected contents"));
        }
        let stream = Stream {
            name: &what,
            text: &text,
            truncated: entry.content_truncated,
        };
        verdict(false, format!("{}\n{}", failures.join("\n"), shown(stream)))
    }
}
