//! The change from one bundle to the next: a unified diff per file, the Dockerfile
//! first, made with `similar`.

use similar::{ChangeTag, TextDiff};

use crate::disk::BundleFiles;
use crate::text;

/// Files larger than this (on either side) are named with their sizes, not diffed:
/// a page is for reading, and the bundle on disk holds the bytes.
const MAX_DIFF_BYTES: usize = 256 * 1024;
/// Diff lines shown per file before the rest is left out.
const MAX_DIFF_LINES: usize = 2_000;
const CONTEXT_LINES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    Added,
    Removed,
    Changed,
}

impl FileChange {
    pub fn as_str(self) -> &'static str {
        match self {
            FileChange::Added => "added",
            FileChange::Removed => "removed",
            FileChange::Changed => "changed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Hunk,
    Added,
    Removed,
    Context,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Hunk => "hunk",
            LineKind::Added => "add",
            LineKind::Removed => "del",
            LineKind::Context => "ctx",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffLine {
    pub kind: LineKind,
    /// The line as shown: `+`, `-` or a space first, controls made visible.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct FileDiff {
    /// The path as shown (controls made visible).
    pub path: String,
    pub change: FileChange,
    pub old_bytes: usize,
    pub new_bytes: usize,
    pub lines: Vec<DiffLine>,
    /// Set when the contents are not diffed (binary or large): why.
    pub not_diffed: Option<&'static str>,
    /// Diff lines left out past [`MAX_DIFF_LINES`].
    pub lines_left_out: usize,
}

/// The files that differ between `old` and `new`, the Dockerfile first and the rest
/// by path; and how many files are the same in both.
pub fn bundle_diff(old: &BundleFiles, new: &BundleFiles) -> (Vec<FileDiff>, usize) {
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort_by_key(|path| (path.as_str() != "Dockerfile", path.as_str()));
    paths.dedup();
    let mut unchanged = 0;
    let mut diffs = Vec::new();
    for path in paths {
        let (before, after) = (old.get(path), new.get(path));
        if before == after {
            unchanged += 1;
            continue;
        }
        diffs.push(file_diff(path, before, after));
    }
    (diffs, unchanged)
}

fn file_diff(path: &str, before: Option<&Vec<u8>>, after: Option<&Vec<u8>>) -> FileDiff {
    let change = match (before, after) {
        (None, _) => FileChange::Added,
        (_, None) => FileChange::Removed,
        _ => FileChange::Changed,
    };
    let empty = Vec::new();
    let (old, new) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut diff = FileDiff {
        path: text::one_line(path),
        change,
        old_bytes: old.len(),
        new_bytes: new.len(),
        lines: Vec::new(),
        not_diffed: None,
        lines_left_out: 0,
    };
    if old.len().max(new.len()) > MAX_DIFF_BYTES {
        diff.not_diffed = Some("too large to show");
    } else if old.contains(&0) || new.contains(&0) {
        diff.not_diffed = Some("binary");
    } else {
        (diff.lines, diff.lines_left_out) =
            unified_lines(&String::from_utf8_lossy(old), &String::from_utf8_lossy(new));
    }
    diff
}

fn unified_lines(old: &str, new: &str) -> (Vec<DiffLine>, usize) {
    let diff = TextDiff::from_lines(old, new);
    let mut lines = Vec::new();
    let mut left_out = 0;
    let mut push = |line: DiffLine| {
        if lines.len() < MAX_DIFF_LINES {
            lines.push(line);
        } else {
            left_out += 1;
        }
    };
    for hunk in diff
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .iter_hunks()
    {
        push(DiffLine {
            kind: LineKind::Hunk,
            text: hunk.header().to_string().trim_end().to_owned(),
        });
        for change in hunk.iter_changes() {
            let (kind, sign) = match change.tag() {
                ChangeTag::Insert => (LineKind::Added, '+'),
                ChangeTag::Delete => (LineKind::Removed, '-'),
                ChangeTag::Equal => (LineKind::Context, ' '),
            };
            let value = change.value();
            let body = value.strip_suffix('\n').unwrap_or(value);
            let mut text = format!("{sign}{}", text::one_line(body));
            if change.missing_newline() {
                text.push_str("  (no newline at end of file)");
            }
            push(DiffLine { kind, text });
        }
    }
    (lines, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BundleFiles {
        entries
            .iter()
            .map(|(path, content)| (path.to_string(), content.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_dockerfile_comes_first_and_unchanged_files_are_counted() {
        let old = files(&[
            ("Dockerfile", "FROM a\n"),
            ("a.py", "x\n"),
            ("same.txt", "s\n"),
        ]);
        let new = files(&[
            ("Dockerfile", "FROM b\n"),
            ("a.py", "y\n"),
            ("same.txt", "s\n"),
            ("0.py", "n\n"),
        ]);
        let (diffs, unchanged) = bundle_diff(&old, &new);
        let paths: Vec<&str> = diffs.iter().map(|diff| diff.path.as_str()).collect();
        assert_eq!(paths, ["Dockerfile", "0.py", "a.py"]);
        assert_eq!(unchanged, 1);
        assert_eq!(diffs[1].change, FileChange::Added);
        let texts: Vec<&str> = diffs[0]
            .lines
            .iter()
            .map(|line| line.text.as_str())
            .collect();
        assert_eq!(texts, ["@@ -1 +1 @@", "-FROM a", "+FROM b"]);
    }

    #[test]
    fn binary_files_are_named_not_diffed() {
        let old = BundleFiles::new();
        let mut new = BundleFiles::new();
        new.insert("blob".into(), vec![0, 1, 2]);
        let (diffs, _) = bundle_diff(&old, &new);
        assert_eq!(diffs[0].not_diffed, Some("binary"));
        assert!(diffs[0].lines.is_empty());
    }
}
