//! container-structure-test configs (schema 2.0.0) read as checks: their types, how
//! they are read from YAML with line and column errors, and how each kind of test is
//! judged, exactly as the real `container-structure-test` binary judges it.
//!
//! One file per kind of test, as the tool's own `pkg/types/v2` has them; what they
//! share (Go's `os.Expand`, RE2-style matching, the results' names) sits here.

mod command;
mod file_content;
mod file_existence;
mod metadata;
mod parse;
mod yaml;

pub use command::CommandTest;
pub use file_content::FileContentTest;
pub use file_existence::FileExistenceTest;
pub use metadata::MetadataTest;
pub(crate) use parse::parse_structure;

use regex::Regex;

use crate::check::text::quote;

/// One config file named in `structure_tests`, parsed.
#[derive(Debug, Clone)]
pub struct StructureFile {
    /// As written in the spec; the group of every result from this file.
    pub path: String,
    /// The file's text as read, for the spec's digest.
    pub contents: String,
    /// `globalEnvVars`: (key, value) as written; values are expanded against the
    /// image's environment when applied ([`StructureFile::environment`]).
    pub global_env: Vec<(String, String)>,
    pub command_tests: Vec<CommandTest>,
    pub file_existence_tests: Vec<FileExistenceTest>,
    pub file_content_tests: Vec<FileContentTest>,
    /// `None` when the file has no `metadataTest`, or an empty one (the tool skips it).
    pub metadata_test: Option<MetadataTest>,
}

impl StructureFile {
    /// `KEY=value` for `globalEnvVars`, each value expanded (Go's `os.Expand`) against
    /// the image's env, as the tool sets them before any test.
    pub fn global_env_values(&self, image_env: &[String]) -> Vec<String> {
        self.global_env
            .iter()
            .map(|(key, value)| format!("{key}={}", expand_env(value, image_env)))
            .collect()
    }

    /// The env every test of this file sees: the image's with the global values set
    /// over it. Paths and commands are expanded against it.
    pub fn environment(&self, image_env: &[String]) -> Vec<String> {
        let globals: Vec<(String, String)> = self
            .global_env
            .iter()
            .map(|(key, value)| (key.clone(), expand_env(value, image_env)))
            .collect();
        merge_env(image_env, &globals)
    }
}

/// `base` (`KEY=value` list) with `overrides` set over it, each new key appended, as
/// the engine merges a container's env over its image's.
pub(crate) fn merge_env(base: &[String], overrides: &[(String, String)]) -> Vec<String> {
    let mut merged: Vec<String> = base.to_vec();
    for (key, value) in overrides {
        let entry = format!("{key}={value}");
        let prefix = format!("{key}=");
        match merged
            .iter_mut()
            .find(|existing| existing.starts_with(&prefix) || *existing == key)
        {
            Some(existing) => *existing = entry,
            None => merged.push(entry),
        }
    }
    merged
}

/// The value of `key` in a `KEY=value` list; the first `=` splits, as the tool's
/// `convertSliceToMap`, and a later duplicate wins, as a Go map assignment does.
pub(crate) fn lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value)
}

/// Go's `os.Expand` with the variables of `env`: `$NAME` and `${NAME}` are replaced by
/// their value, or nothing when unset; `$` followed by one of `*#$@!?-` or a digit is
/// a one-character name; `${}` and an unclosed `${` are dropped; a `$` before any other
/// character, or at the end, stays.
pub(crate) fn expand_env(text: &str, env: &[String]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'$' || index + 1 >= bytes.len() {
            index += 1;
            continue;
        }
        out.push_str(&text[start..index]);
        let (name, width) = shell_name(&text[index + 1..]);
        match name {
            Some(name) => out.push_str(lookup(env, name).unwrap_or_default()),
            // Valid syntax without a name: the dollar stays.
            None if width == 0 => out.push('$'),
            // Bad syntax: Go eats it.
            None => {}
        }
        index += width + 1;
        start = index;
    }
    out.push_str(&text[start.min(text.len())..]);
    out
}

/// Go's `getShellName`: the name after a `$` and how many bytes it spans.
fn shell_name(rest: &str) -> (Option<&str>, usize) {
    let bytes = rest.as_bytes();
    let special = |byte: u8| b"*#$@!?-".contains(&byte) || byte.is_ascii_digit();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && special(bytes[1]) && bytes[2] == b'}' {
            return (Some(&rest[1..2]), 3);
        }
        return match rest[1..].find('}') {
            Some(0) => (None, 2),
            Some(end) => (Some(&rest[1..=end]), end + 2),
            None => (None, 1),
        };
    }
    if special(bytes[0]) {
        return (Some(&rest[0..1]), 1);
    }
    let width = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
        .count();
    if width == 0 {
        (None, 0)
    } else {
        (Some(&rest[..width]), width)
    }
}

/// Each pattern's failure as the tool words it, joined; empty when all hold.
/// `should_match` false: the pattern is excluded.
pub(crate) fn regex_failures(
    patterns: &[Regex],
    text: &str,
    should_match: bool,
    what: &str,
) -> Vec<String> {
    patterns
        .iter()
        .filter(|pattern| pattern.is_match(text) != should_match)
        .map(|pattern| {
            let verb = if should_match { "expected" } else { "excluded" };
            let found = if should_match { "not found" } else { "found" };
            format!("{verb} {} {found} in {what}", quote(pattern.as_str()))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use crate::errors::SpecError;
    use crate::structure::{StructureFile, parse_structure};

    pub(crate) fn structure(text: &str) -> StructureFile {
        match parse_structure("structure.yaml", Path::new("/specs/structure.yaml"), text) {
            Ok(file) => file,
            Err(error) => panic!("{error}"),
        }
    }

    /// The (line, column, message) of the error a structure file gives.
    pub(crate) fn refused(text: &str) -> (usize, usize, String) {
        match parse_structure("structure.yaml", Path::new("/specs/structure.yaml"), text) {
            Err(SpecError::Invalid { location, message }) => {
                assert_eq!(location.path, Path::new("/specs/structure.yaml"));
                (location.line, location.column, message)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|pair| (*pair).to_owned()).collect()
    }

    #[test]
    fn expansion_follows_go_os_expand() {
        let env = env(&["HOME=/root", "A=1", "EQ=x=y", "_U9=u"]);
        let cases = [
            ("$HOME/bin", "/root/bin"),
            ("${HOME}x", "/rootx"),
            ("$EQ", "x=y"),
            ("$_U9!", "u!"),
            ("$MISSING|", "|"),
            ("a$", "a$"),
            ("$ x", "$ x"),
            ("$$", ""),
            ("$1a", "a"),
            ("${}", ""),
            ("${HOME", "HOME"),
            ("${A}${A}", "11"),
            ("é$A", "é1"),
        ];
        for (text, expected) in cases {
            assert_eq!(expand_env(text, &env), expected, "{text}");
        }
    }

    #[test]
    fn global_env_is_expanded_against_the_image_and_set_over_it() {
        let file = testing::structure(
            "schemaVersion: '2.0.0'\nglobalEnvVars:\n  - key: PATH\n    value: /opt/bin:$PATH\n  - key: NEW\n    value: x\nmetadataTest:\n  user: app\n",
        );
        let image = env(&["PATH=/usr/bin", "LANG=C"]);
        assert_eq!(
            file.global_env_values(&image),
            ["PATH=/opt/bin:/usr/bin", "NEW=x"]
        );
        assert_eq!(
            file.environment(&image),
            ["PATH=/opt/bin:/usr/bin", "LANG=C", "NEW=x"]
        );
    }
}
