//! The build context: a deterministic tar made in memory (sorted entries, fixed
//! mtime, mode and owner), so identical bundles give identical bytes and the engine's
//! layer cache holds across iterations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;

use sha2::{Digest, Sha256};

use crate::errors::SandboxError;

/// 2000-01-01T00:00:00Z. Not the epoch: tools that pack files into zip archives (pip
/// building a wheel from copied sources) refuse timestamps before 1980.
const FIXED_MTIME: u64 = 946_684_800;
const FILE_MODE: u32 = 0o644;
const EXECUTABLE_MODE: u32 = 0o755;
const DIRECTORY_MODE: u32 = 0o755;

#[derive(Debug, Clone)]
pub struct BuildContext {
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub digest: String,
}

/// `files` maps context paths (already validated: relative, `/`-separated, no `..`)
/// to contents; it includes `Dockerfile`.
pub fn build_context(files: &BTreeMap<String, Vec<u8>>) -> Result<BuildContext, SandboxError> {
    let entries = plan_entries(files).map_err(SandboxError::Context)?;
    let mut builder = tar::Builder::new(Vec::new());
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(FIXED_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        // Empty names rather than the builder's user: the bytes must not depend on
        // who made them.
        header
            .set_username("")
            .and_then(|()| header.set_groupname(""))
            .map_err(SandboxError::Context)?;
        match entry {
            Entry::Directory(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(DIRECTORY_MODE);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), io::empty())
                    .map_err(SandboxError::Context)?;
            }
            Entry::File(path, content) => {
                header.set_entry_type(tar::EntryType::Regular);
                let mode = if content.starts_with(b"#!") {
                    EXECUTABLE_MODE
                } else {
                    FILE_MODE
                };
                header.set_mode(mode);
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, *content)
                    .map_err(SandboxError::Context)?;
            }
        }
    }
    let bytes = builder.into_inner().map_err(SandboxError::Context)?;
    let digest = Sha256::digest(&bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
    Ok(BuildContext { bytes, digest })
}

enum Entry<'a> {
    Directory(String),
    File(&'a str, &'a [u8]),
}

impl Entry<'_> {
    fn path(&self) -> &str {
        match self {
            Entry::Directory(path) => path,
            Entry::File(path, _) => path,
        }
    }
}

/// Every file plus an explicit entry for each parent directory, sorted by path. The
/// paths were validated upstream; they are checked again here because a malformed
/// one would otherwise escape the context or make an unreadable archive.
fn plan_entries(files: &BTreeMap<String, Vec<u8>>) -> io::Result<Vec<Entry<'_>>> {
    let mut directories = BTreeSet::new();
    for path in files.keys() {
        check_path(path)?;
        let mut end = 0;
        while let Some(offset) = path[end..].find('/') {
            end += offset;
            directories.insert(path[..end].to_owned());
            end += 1;
        }
    }
    if let Some(clash) = directories
        .iter()
        .find(|directory| files.contains_key(*directory))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{clash}` is both a file and a directory"),
        ));
    }
    let mut entries: Vec<Entry<'_>> = directories
        .into_iter()
        .map(Entry::Directory)
        .chain(
            files
                .iter()
                .map(|(path, content)| Entry::File(path, content)),
        )
        .collect();
    entries.sort_by(|left, right| left.path().cmp(right.path()));
    Ok(entries)
}

fn check_path(path: &str) -> io::Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a relative context path", path.escape_debug()),
        ));
    }
    Ok(())
}

/// One instruction of a Dockerfile, its continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The instruction's text, continuation characters and line breaks replaced by
    /// spaces, comment lines inside it left out.
    pub text: String,
    /// Index (0-based) of the physical line the instruction ends on.
    pub last_line: usize,
    /// False when the file ends inside this instruction's line continuation.
    pub complete: bool,
}

impl Instruction {
    /// `FROM`, `RUN`, … as written.
    pub fn keyword(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or_default()
    }
}

/// The instructions of a Dockerfile as the classic builder reads them: blank and
/// comment lines skipped (inside a continuation too), lines ending in the escape
/// character (`\\`, or what a leading `# escape=` directive sets) joined.
pub fn dockerfile_instructions(dockerfile: &str) -> Vec<Instruction> {
    let escape = escape_character(dockerfile);
    let mut instructions = Vec::new();
    let mut current: Option<String> = None;
    for (index, line) in dockerfile.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (part, continues) = match trimmed.strip_suffix(escape) {
            Some(part) => (part, true),
            None => (trimmed, false),
        };
        let text = current.get_or_insert_with(String::new);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(part.trim());
        if !continues {
            instructions.push(Instruction {
                text: current.take().unwrap_or_default(),
                last_line: index,
                complete: true,
            });
        }
    }
    if let Some(text) = current {
        let last_line = dockerfile.lines().count().saturating_sub(1);
        instructions.push(Instruction {
            text,
            last_line,
            complete: false,
        });
    }
    instructions
}

/// The line-continuation character: `\\`, or what a leading `# escape=` parser
/// directive sets.
fn escape_character(dockerfile: &str) -> char {
    for line in dockerfile.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        if key.trim().eq_ignore_ascii_case("escape") {
            return value.trim().chars().next().unwrap_or('\\');
        }
    }
    '\\'
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(path, content)| ((*path).to_owned(), content.as_bytes().to_vec()))
            .collect()
    }

    struct ReadEntry {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        mtime: u64,
        uid: u64,
        username: Vec<u8>,
        content: Vec<u8>,
    }

    fn read_back(bytes: &[u8]) -> Vec<ReadEntry> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let mut entry = entry.expect("entry");
                let header = entry.header().clone();
                let path = entry
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).expect("content");
                ReadEntry {
                    path,
                    kind: header.entry_type(),
                    mode: header.mode().expect("mode"),
                    mtime: header.mtime().expect("mtime"),
                    uid: header.uid().expect("uid"),
                    username: header.username_bytes().unwrap_or_default().to_vec(),
                    content,
                }
            })
            .collect()
    }

    #[test]
    fn same_files_give_same_bytes_whatever_the_insertion_order() {
        let pairs = [
            ("Dockerfile", "FROM scratch\n"),
            ("src/app/main.py", "print(1)\n"),
            ("b.txt", "b"),
            ("a.txt", "a"),
        ];
        let forward = files(&pairs);
        let mut reversed = BTreeMap::new();
        for (path, content) in pairs.iter().rev() {
            reversed.insert((*path).to_owned(), content.as_bytes().to_vec());
        }
        let first = build_context(&forward).expect("context");
        let second = build_context(&reversed).expect("context");
        assert_eq!(first.bytes, second.bytes);
        assert_eq!(first.digest, second.digest);
        assert_eq!(first.digest.len(), 64);
        assert!(first.digest.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn different_content_gives_a_different_digest() {
        let first = build_context(&files(&[("Dockerfile", "FROM a\n")])).expect("context");
        let second = build_context(&files(&[("Dockerfile", "FROM b\n")])).expect("context");
        assert_ne!(first.digest, second.digest);
    }

    #[test]
    fn nested_paths_read_back_with_parent_directories_and_modes() {
        let context = build_context(&files(&[
            ("Dockerfile", "FROM scratch\n"),
            ("pkg/sub/run.sh", "#!/bin/sh\necho hi\n"),
            ("pkg/sub/data.txt", "data"),
            ("pkg/top.py", "x = 1\n"),
        ]))
        .expect("context");
        let entries = read_back(&context.bytes);
        let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Dockerfile",
                "pkg",
                "pkg/sub",
                "pkg/sub/data.txt",
                "pkg/sub/run.sh",
                "pkg/top.py"
            ]
        );
        for entry in &entries {
            assert_eq!(entry.mtime, FIXED_MTIME);
            assert_eq!(entry.uid, 0);
            assert!(entry.username.is_empty());
            let expected_mode = match entry.path.as_str() {
                "pkg" | "pkg/sub" => {
                    assert_eq!(entry.kind, tar::EntryType::Directory);
                    0o755
                }
                "pkg/sub/run.sh" => 0o755,
                _ => 0o644,
            };
            assert_eq!(entry.mode, expected_mode, "mode of {}", entry.path);
        }
        let script = entries
            .iter()
            .find(|entry| entry.path == "pkg/sub/run.sh")
            .expect("script");
        assert_eq!(script.content, b"#!/bin/sh\necho hi\n");
    }

    #[test]
    fn long_paths_survive_the_round_trip() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let context = build_context(&files(&[("Dockerfile", "FROM scratch\n"), (&long, "x")]))
            .expect("context");
        let entries = read_back(&context.bytes);
        assert!(
            entries
                .iter()
                .any(|entry| entry.path == long && entry.content == b"x")
        );
    }

    #[test]
    fn paths_that_escape_the_context_are_refused() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let result = build_context(&files(&[(bad, "x")]));
            assert!(
                matches!(result, Err(SandboxError::Context(_))),
                "`{bad}` was accepted"
            );
        }
    }

    #[test]
    fn a_file_that_is_also_a_directory_is_refused() {
        let result = build_context(&files(&[("a", "x"), ("a/b", "y")]));
        assert!(matches!(result, Err(SandboxError::Context(_))));
    }

    #[test]
    fn instructions_join_continuations_and_skip_comments() {
        let instructions = dockerfile_instructions(
            "# syntax=x\nFROM \\\n  # why\n  python AS build\n\nRUN a \\\n b\nRUN c \\\n",
        );
        let texts: Vec<(&str, usize, bool)> = instructions
            .iter()
            .map(|instruction| {
                (
                    instruction.text.as_str(),
                    instruction.last_line,
                    instruction.complete,
                )
            })
            .collect();
        assert_eq!(
            texts,
            [
                ("FROM python AS build", 3, true),
                ("RUN a b", 6, true),
                ("RUN c", 7, false)
            ]
        );
        assert_eq!(instructions[0].keyword(), "FROM");
        let backtick = dockerfile_instructions("# escape=`\nFROM `\n x\nRUN dir c:\\\n");
        assert_eq!(backtick[0].text, "FROM x");
        assert_eq!(backtick[1].text, "RUN dir c:\\");
    }
}
