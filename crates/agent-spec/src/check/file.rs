//! `[[file]]`: what a spec asks of one path in the image, judged from the archive of a
//! created, never started container.

use regex::Regex;

use crate::check::CheckResult;
use crate::check::text::{Stream, contains, matches, not_contains};

/// The group of every `[[file]]` result.
pub const FILE_GROUP: &str = "file";

/// One path in a created (never started) container, from the archive API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub path: String,
    /// `None`: the path does not exist.
    pub entry: Option<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// `st_mode`, file-type bits included.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link_target: Option<String>,
    /// Regular files only, up to a cap.
    pub content: Option<Vec<u8>>,
    /// The content was cut at the cap.
    pub content_truncated: bool,
}

/// One `[[file]]` table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileCheck {
    /// Absolute.
    pub path: String,
    /// `false`: the path must be absent, and nothing else is asked.
    pub exists: bool,
    /// `st_mode` with the file-type bits, from the `ls -l` form written in the spec.
    pub mode: Option<u32>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub executable: Option<bool>,
    pub content: Option<ContentMatcher>,
}

/// What a `[[file]]` asks of the file's content; at most one per table.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentMatcher {
    Contains(String),
    NotContains(String),
    /// Multi-line, like the output matchers.
    Matches(#[serde(serialize_with = "crate::check::text::pattern")] Regex),
}

/// The file-type bits of `st_mode`.
pub(crate) const TYPE_MASK: u32 = 0o170_000;
const REGULAR: u32 = 0o100_000;
const DIRECTORY: u32 = 0o040_000;
const SYMLINK: u32 = 0o120_000;

/// `ls -l`'s letter for each file type.
const TYPE_LETTERS: [(u32, char); 7] = [
    (REGULAR, '-'),
    (DIRECTORY, 'd'),
    (SYMLINK, 'l'),
    (0o020_000, 'c'),
    (0o060_000, 'b'),
    (0o010_000, 'p'),
    (0o140_000, 's'),
];

impl FileCheck {
    /// One result per aspect the table asks about, whether the path exists or not, so
    /// the count of checks does not change between iterations.
    pub fn judge(&self, facts: &FileFacts) -> Vec<CheckResult> {
        let path = &self.path;
        let result = |aspect: &str, (passed, detail): (bool, String)| {
            CheckResult::new(FILE_GROUP, format!("{path} {aspect}"), passed, detail)
        };
        let Some(entry) = &facts.entry else {
            if !self.exists {
                return vec![result("absent", (true, format!("`{path}` does not exist")))];
            }
            let mut results = vec![result(
                "exists",
                (false, format!("`{path}` does not exist in the image")),
            )];
            let missing = || (false, format!("cannot be checked: `{path}` does not exist"));
            for aspect in self.aspects() {
                results.push(result(aspect, missing()));
            }
            return results;
        };
        if !self.exists {
            let kind = describe_type(entry.mode);
            return vec![result(
                "absent",
                (false, format!("`{path}` exists ({kind}) but must not")),
            )];
        }
        let mut results = vec![result(
            "exists",
            (
                true,
                format!("`{path}` exists ({})", describe_type(entry.mode)),
            ),
        )];
        if let Some(mode) = self.mode {
            results.push(result("mode", compare_mode(mode, entry.mode)));
        }
        if let Some(uid) = self.uid {
            results.push(result("uid", owner("uid", uid, entry.uid)));
        }
        if let Some(gid) = self.gid {
            results.push(result("gid", owner("gid", gid, entry.gid)));
        }
        if let Some(executable) = self.executable {
            results.push(result("executable", is_executable(executable, entry.mode)));
        }
        if let Some(content) = &self.content {
            results.push(result(content.key(), judge_content(content, path, entry)));
        }
        results
    }

    /// The aspects asked besides existence, by the key that asks for them.
    fn aspects(&self) -> Vec<&'static str> {
        let mut aspects = Vec::new();
        if self.mode.is_some() {
            aspects.push("mode");
        }
        if self.uid.is_some() {
            aspects.push("uid");
        }
        if self.gid.is_some() {
            aspects.push("gid");
        }
        if self.executable.is_some() {
            aspects.push("executable");
        }
        if let Some(content) = &self.content {
            aspects.push(content.key());
        }
        aspects
    }
}

impl ContentMatcher {
    /// The key as written in `spec.toml`.
    pub fn key(&self) -> &'static str {
        match self {
            ContentMatcher::Contains(_) => "contains",
            ContentMatcher::NotContains(_) => "not_contains",
            ContentMatcher::Matches(_) => "matches",
        }
    }
}

/// `mode` as `ls -l` prints it, e.g. `-rwxr-xr-x`, `drwxrwxrwt`.
pub fn ls_mode(mode: u32) -> String {
    let kind = TYPE_LETTERS
        .iter()
        .find(|(bits, _)| mode & TYPE_MASK == *bits)
        .map_or('?', |(_, letter)| *letter);
    let mut text = String::with_capacity(10);
    text.push(kind);
    // (read bit, write bit, execute bit, special bit, letter with x, letter without x)
    let triples = [
        (0o400, 0o200, 0o100, 0o4000, 's', 'S'),
        (0o040, 0o020, 0o010, 0o2000, 's', 'S'),
        (0o004, 0o002, 0o001, 0o1000, 't', 'T'),
    ];
    for (read, write, execute, special, with_x, without_x) in triples {
        text.push(if mode & read != 0 { 'r' } else { '-' });
        text.push(if mode & write != 0 { 'w' } else { '-' });
        text.push(match (mode & execute != 0, mode & special != 0) {
            (true, true) => with_x,
            (false, true) => without_x,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// The `st_mode` an `ls -l` mode string stands for, or the problem with it.
pub(crate) fn parse_ls_mode(text: &str) -> Result<u32, String> {
    let characters: Vec<char> = text.chars().collect();
    if characters.len() != 10 {
        return Err(
            "must be 10 characters as `ls -l` prints them, e.g. `-rw-r--r--` or `drwxr-xr-x`"
                .to_owned(),
        );
    }
    let mut mode = TYPE_LETTERS
        .iter()
        .find(|(_, letter)| *letter == characters[0])
        .map(|(bits, _)| *bits)
        .ok_or_else(|| {
            format!(
                "starts with `{}`, which is no file type: use one of `-dlcbps`",
                characters[0]
            )
        })?;
    let triples = [
        (0o400, 0o4000, 's'),
        (0o040, 0o2000, 's'),
        (0o004, 0o1000, 't'),
    ];
    for (index, (read, special, letter)) in triples.into_iter().enumerate() {
        let part = &characters[1 + 3 * index..4 + 3 * index];
        let wrong = || {
            format!(
                "has `{}` where `rwx`, `-` or `{letter}` belong",
                part.iter().collect::<String>()
            )
        };
        match part[0] {
            'r' => mode |= read,
            '-' => {}
            _ => return Err(wrong()),
        }
        match part[1] {
            'w' => mode |= read >> 1,
            '-' => {}
            _ => return Err(wrong()),
        }
        let execute = read >> 2;
        match part[2] {
            'x' => mode |= execute,
            '-' => {}
            found if found == letter => mode |= execute | special,
            found if found == letter.to_ascii_uppercase() => mode |= special,
            _ => return Err(wrong()),
        }
    }
    Ok(mode)
}

fn describe_type(mode: u32) -> &'static str {
    match mode & TYPE_MASK {
        REGULAR => "a regular file",
        DIRECTORY => "a directory",
        SYMLINK => "a symlink",
        _ => "a special file",
    }
}

fn compare_mode(expected: u32, actual: u32) -> (bool, String) {
    let relevant = TYPE_MASK | 0o7777;
    let shown = ls_mode(actual);
    if expected & relevant == actual & relevant {
        return (true, format!("mode {shown}"));
    }
    (
        false,
        format!("expected mode {}, found {shown}", ls_mode(expected)),
    )
}

fn owner(what: &str, expected: u64, actual: u64) -> (bool, String) {
    if expected == actual {
        return (true, format!("{what} {actual}"));
    }
    (false, format!("expected {what} {expected}, found {actual}"))
}

/// Executable means any execute bit set, as `ls -l` shows an `x` (or `s`, `t`).
fn is_executable(expected: bool, mode: u32) -> (bool, String) {
    let actual = mode & 0o111 != 0;
    let shown = ls_mode(mode);
    match (expected, actual) {
        (true, true) => (true, format!("executable ({shown})")),
        (false, false) => (true, format!("not executable ({shown})")),
        (true, false) => (
            false,
            format!("expected executable, but mode is {shown} (no execute bit); `chmod +x` it"),
        ),
        (false, true) => (
            false,
            format!("expected not executable, but mode is {shown}"),
        ),
    }
}

fn judge_content(matcher: &ContentMatcher, path: &str, entry: &FileEntry) -> (bool, String) {
    let Some(content) = &entry.content else {
        let kind = match &entry.link_target {
            Some(target) => format!("a symlink to `{target}`"),
            None => describe_type(entry.mode).to_owned(),
        };
        return (
            false,
            format!("`{path}` is {kind}, not a regular file whose content can be checked"),
        );
    };
    let text = String::from_utf8_lossy(content);
    let name = format!("`{path}`");
    let stream = Stream {
        name: &name,
        text: &text,
        truncated: entry.content_truncated,
    };
    match matcher {
        ContentMatcher::Contains(expected) => contains(expected, stream),
        ContentMatcher::NotContains(unwanted) => not_contains(unwanted, stream),
        ContentMatcher::Matches(regex) => matches(regex, stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(mode: u32, content: &str) -> FileFacts {
        FileFacts {
            path: "/app/main.py".to_owned(),
            entry: Some(FileEntry {
                mode: REGULAR | mode,
                uid: 1000,
                gid: 1000,
                link_target: None,
                content: Some(content.as_bytes().to_vec()),
                content_truncated: false,
            }),
        }
    }

    fn check(content: Option<ContentMatcher>) -> FileCheck {
        FileCheck {
            path: "/app/main.py".to_owned(),
            exists: true,
            mode: Some(REGULAR | 0o644),
            uid: Some(1000),
            gid: Some(1000),
            executable: Some(false),
            content,
        }
    }

    fn verdicts(results: &[CheckResult]) -> Vec<(&str, bool)> {
        results
            .iter()
            .map(|result| (result.name.as_str(), result.passed))
            .collect()
    }

    #[test]
    fn a_matching_file_passes_each_aspect_in_the_file_group() {
        let results = check(Some(ContentMatcher::Contains("def main".to_owned())))
            .judge(&regular(0o644, "def main():\n    pass\n"));
        assert_eq!(
            verdicts(&results),
            [
                ("/app/main.py exists", true),
                ("/app/main.py mode", true),
                ("/app/main.py uid", true),
                ("/app/main.py gid", true),
                ("/app/main.py executable", true),
                ("/app/main.py contains", true),
            ]
        );
        assert!(results.iter().all(|result| result.group == "file"));
    }

    #[test]
    fn mismatches_say_expected_against_actual() {
        let mut facts = regular(0o755, "print(1)\n");
        if let Some(entry) = &mut facts.entry {
            entry.uid = 0;
        }
        let results = check(Some(ContentMatcher::Contains("def main".to_owned()))).judge(&facts);
        let details: Vec<&str> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.detail.as_str())
            .collect();
        assert_eq!(details[0], "expected mode -rw-r--r--, found -rwxr-xr-x");
        assert_eq!(details[1], "expected uid 1000, found 0");
        assert_eq!(
            details[2],
            "expected not executable, but mode is -rwxr-xr-x"
        );
        assert!(
            details[3].starts_with("`/app/main.py` does not contain \"def main\""),
            "{}",
            details[3]
        );
        assert!(details[3].contains("print(1)"), "{}", details[3]);
    }

    #[test]
    fn a_missing_file_fails_every_aspect_and_an_unwanted_one_fails_absent() {
        let absent = FileFacts {
            path: "/app/main.py".to_owned(),
            entry: None,
        };
        let results = check(None).judge(&absent);
        assert_eq!(results.len(), 5);
        assert!(results.iter().all(|result| !result.passed));
        assert_eq!(
            results[0].detail,
            "`/app/main.py` does not exist in the image"
        );
        let unwanted = FileCheck {
            exists: false,
            mode: None,
            uid: None,
            gid: None,
            executable: None,
            ..check(None)
        };
        assert_eq!(
            verdicts(&unwanted.judge(&absent)),
            [("/app/main.py absent", true)]
        );
        let results = unwanted.judge(&regular(0o644, ""));
        assert_eq!(verdicts(&results), [("/app/main.py absent", false)]);
        assert_eq!(
            results[0].detail,
            "`/app/main.py` exists (a regular file) but must not"
        );
    }

    #[test]
    fn content_matchers_pass_and_fail() {
        let judge = |matcher: ContentMatcher, facts: &FileFacts| {
            let check = FileCheck {
                mode: None,
                uid: None,
                gid: None,
                executable: None,
                ..check(Some(matcher))
            };
            check.judge(facts).pop().unwrap()
        };
        let facts = regular(0o644, "import os\ndef main():\n");
        assert!(judge(ContentMatcher::NotContains("eval(".to_owned()), &facts).passed);
        assert!(!judge(ContentMatcher::NotContains("import".to_owned()), &facts).passed);
        let regex = regex::RegexBuilder::new("^def main")
            .multi_line(true)
            .build()
            .unwrap();
        assert!(judge(ContentMatcher::Matches(regex.clone()), &facts).passed);
        assert!(!judge(ContentMatcher::Matches(regex), &regular(0o644, "main()\n")).passed);
        let mut cut = regular(0o644, "import os\n");
        if let Some(entry) = &mut cut.entry {
            entry.content_truncated = true;
        }
        let result = judge(ContentMatcher::NotContains("eval(".to_owned()), &cut);
        assert!(!result.passed, "absence in a cut file cannot be proven");
        let directory = FileFacts {
            path: "/app/main.py".to_owned(),
            entry: Some(FileEntry {
                mode: DIRECTORY | 0o755,
                uid: 0,
                gid: 0,
                link_target: None,
                content: None,
                content_truncated: false,
            }),
        };
        let result = judge(ContentMatcher::Contains("x".to_owned()), &directory);
        assert_eq!(
            result.detail,
            "`/app/main.py` is a directory, not a regular file whose content can be checked"
        );
    }

    #[test]
    fn ls_mode_prints_as_ls_does_and_round_trips() {
        for text in [
            "-rw-r--r--",
            "drwxrwxrwt",
            "-rwsr-xr-x",
            "-rwSr-Sr-T",
            "lrwxrwxrwx",
            "crw-rw-rw-",
            "prw-------",
            "srwxr-xr-x",
            "brw-rw----",
        ] {
            assert_eq!(ls_mode(parse_ls_mode(text).unwrap()), text);
        }
    }
}
