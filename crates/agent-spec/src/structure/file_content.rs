//! `fileContentTests`: a file's content against expected and excluded regexes.

use crate::structure::GoRegex;

use crate::check::text::{Stream, shown};
use crate::check::{CheckResult, FileFacts, TYPE_MASK};
use crate::structure::regex_failures;

/// One entry of `fileContentTests`.
#[derive(Debug, Clone)]
pub struct FileContentTest {
    pub name: String,
    pub(crate) group: String,
    pub(crate) path: String,
    pub(crate) expected_contents: Vec<GoRegex>,
    pub(crate) excluded_contents: Vec<GoRegex>,
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

#[cfg(test)]
mod tests {
    use crate::check::{FileEntry, FileFacts};
    use crate::structure::testing::structure;

    fn file(content: Option<&str>, mode: u32) -> FileFacts {
        FileFacts {
            path: "/etc/app.conf".to_owned(),
            entry: Some(FileEntry {
                mode,
                uid: 0,
                gid: 0,
                link_target: None,
                content: content.map(|text| text.as_bytes().to_vec()),
                content_truncated: false,
            }),
        }
    }

    #[test]
    fn contents_are_judged_by_regexes_over_the_whole_file() {
        let tests = structure(
            "schemaVersion: 2.0.0\nfileContentTests:\n  - name: conf\n    path: $HOME/app.conf\n    expectedContents: ['port=\\d+', '(?m)^debug=false$']\n    excludedContents: ['password']\n",
        );
        let test = &tests.file_content_tests[0];
        assert_eq!(
            test.path(),
            "$HOME/app.conf",
            "content tests do not expand their path"
        );
        let passed = test.judge(&file(Some("port=80\ndebug=false\n"), 0o100_644));
        assert!(passed.passed, "{}", passed.detail);
        let failed = test.judge(&file(Some("port=x\ndebug=false\npassword=1\n"), 0o100_644));
        assert!(!failed.passed);
        assert!(failed.detail.starts_with("expected \"port=\\\\d+\" not found in `/etc/app.conf`\nexcluded \"password\" found in `/etc/app.conf`\n"), "{}", failed.detail);
        assert!(failed.detail.contains("password=1"), "{}", failed.detail);
    }

    #[test]
    fn a_missing_file_or_a_directory_fails() {
        let tests = structure(
            "schemaVersion: 2.0.0\nfileContentTests:\n  - name: conf\n    path: /etc/app.conf\n",
        );
        let test = &tests.file_content_tests[0];
        let missing = FileFacts {
            path: "/etc/app.conf".to_owned(),
            entry: None,
        };
        assert_eq!(
            test.judge(&missing).detail,
            "`/etc/app.conf` does not exist, so its content cannot be read"
        );
        assert!(!test.judge(&file(None, 0o040_755)).passed);
        assert!(
            test.judge(&file(Some(""), 0o100_644)).passed,
            "no expectation: any readable file passes"
        );
    }
}
