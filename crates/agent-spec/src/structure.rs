//! container-structure-test configs (schemas 1.0.0 and 2.0.0) read as checks: their
//! types, how they are read from YAML with line and column errors, and how each kind
//! of test is judged, exactly as the real `container-structure-test` binary judges it.
//!
//! One file per kind of test, as the tool's own `pkg/types/v2` has them; what they
//! share (Go's `os.Expand`, RE2-style matching, the results' names) sits here.

mod command;
mod file_content;
mod file_existence;
mod license;
mod metadata;
mod parse;
mod run_options;
mod yaml;

pub use command::CommandTest;
pub use file_content::FileContentTest;
pub use file_existence::FileExistenceTest;
pub use license::LicenseTest;
pub use metadata::MetadataTest;
pub(crate) use parse::parse_structure;
pub use run_options::{RunOptions, StructureDefaults, StructureSettings};

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
    pub license_tests: Vec<LicenseTest>,
    pub schema: Schema,
    /// `containerRunOptions` (schema 2.0.0 only).
    pub run_options: RunOptions,
    /// The spec's `structure_defaults` and `structure_allow_host`.
    pub settings: StructureSettings,
}

/// The file's `schemaVersion`: the tool reads both, with different rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// 1.0.0: `command` is a list, no metadata test or run options, and
    /// `globalEnvVars` reach setup commands only.
    V1,
    V2,
}

/// What one command test's containers get, every `$VAR` expanded as the tool does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnv {
    /// `KEY=value` of each setup command's container.
    pub setup: Vec<String>,
    /// `KEY=value` of the test command's container (before the run options' env).
    pub run: Vec<String>,
    /// The command and its args.
    pub command: Vec<String>,
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
        match self.schema {
            // 1.0.0 never sets them on the image: they reach setup commands alone.
            Schema::V1 => image_env.to_vec(),
            Schema::V2 => merge_env(image_env, &globals),
        }
    }

    /// The env and command of `test` on an image whose env is `image_env`. Schema
    /// 2.0.0 sets the globals on the image first; 1.0.0 hands them, with the test's
    /// own, to the setup commands only.
    pub fn command_env(&self, test: &CommandTest, image_env: &[String]) -> CommandEnv {
        let environment = self.environment(image_env);
        let globals = self.global_env_values(image_env);
        // In 2.0.0 the globals are on the image already; giving them to the setup
        // containers again changes nothing.
        let setup = [globals.clone(), test.setup_env(&environment)].concat();
        let run = match self.schema {
            Schema::V1 => test.run_env(),
            Schema::V2 => [globals, test.run_env()].concat(),
        };
        CommandEnv {
            command: test.full_command(&environment, &setup),
            setup,
            run,
        }
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

/// A pattern of a structure-test file: as written (what details show) and compiled
/// with Go's meaning.
#[derive(Debug, Clone)]
pub(crate) struct GoRegex {
    pub written: String,
    pub regex: Regex,
}

impl GoRegex {
    /// Go's `MatchString`: anywhere in the text.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.written
    }
}

/// A Go RE2 pattern in the regex crate's syntax. Both read the same syntax and
/// match over UTF-8 alike, but Go's `\d`, `\w`, `\s` and `\b` are ASCII while the
/// regex crate's are Unicode (`\w` matches `é` here and not in the tool), so those
/// are spelled out as ASCII; Go's `\s` also leaves out `\v`.
pub(crate) fn go_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut class_start = false;
    let mut characters = pattern.chars().peekable();
    while let Some(character) = characters.next() {
        let starting = std::mem::take(&mut class_start);
        match character {
            '\\' => {
                let Some(escaped) = characters.next() else {
                    out.push('\\');
                    break;
                };
                out.push_str(&ascii_escape(escaped, in_class));
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if characters.peek() == Some(&'^') {
                    out.push('^');
                    characters.next();
                }
            }
            // `[:alpha:]` inside a class is a class name, not the class's end.
            '[' if characters.peek() == Some(&':') => {
                out.push('[');
                for inner in characters.by_ref() {
                    out.push(inner);
                    if inner == ']' {
                        break;
                    }
                }
            }
            // A `]` first in a class is a literal, in both syntaxes.
            ']' if in_class && !starting => {
                in_class = false;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

/// One escape (`\` and `escaped`) with Go's ASCII meaning.
fn ascii_escape(escaped: char, in_class: bool) -> String {
    let spelled = match (escaped, in_class) {
        ('d', false) => "[0-9]",
        ('D', false) => "[^0-9]",
        ('w', false) => "[0-9A-Za-z_]",
        ('W', false) => "[^0-9A-Za-z_]",
        ('s', false) => "[\\t\\n\\f\\r ]",
        ('S', false) => "[^\\t\\n\\f\\r ]",
        ('b', false) => "(?-u:\\b)",
        ('B', false) => "(?-u:\\B)",
        ('d', true) => "0-9",
        ('D', true) => "[:^digit:]",
        ('w', true) => "0-9A-Za-z_",
        ('W', true) => "[:^word:]",
        ('s', true) => "\\t\\n\\f\\r ",
        ('S', true) => "[:^space:]",
        _ => return format!("\\{escaped}"),
    };
    spelled.to_owned()
}

/// Each pattern's failure as the tool words it, joined; empty when all hold.
/// `should_match` false: the pattern is excluded.
pub(crate) fn regex_failures(
    patterns: &[GoRegex],
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
    use crate::structure::{StructureFile, StructureSettings, parse_structure};

    fn parse(text: &str) -> Result<StructureFile, SpecError> {
        parse_structure(
            "structure.yaml",
            Path::new("/specs/structure.yaml"),
            text,
            StructureSettings::default(),
        )
    }

    pub(crate) fn structure(text: &str) -> StructureFile {
        match parse(text) {
            Ok(file) => file,
            Err(error) => panic!("{error}"),
        }
    }

    /// The (line, column, message) of the error a structure file gives.
    pub(crate) fn refused(text: &str) -> (usize, usize, String) {
        match parse(text) {
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
    fn go_classes_are_ascii() {
        let go = |pattern: &str, text: &str| {
            regex::Regex::new(&go_pattern(pattern))
                .unwrap()
                .is_match(text)
        };
        assert!(!go(r"^\w$", "é"));
        assert!(go(r"^\w+$", "a_1"));
        assert!(!go(r"\d", "٣"));
        assert!(go(r"^[\d.]+$", "1.5"));
        assert!(!go(r"^[\w]$", "é"));
        assert!(go(r"^[^\d]$", "x"));
        assert!(!go(r"\s", "\u{0B}"));
        assert!(go(r"a\sb", "a b"));
        assert!(go(r"\bx", "éx"), "é is no word character in Go");
        assert!(go(r"^[]a]+$", "]a"));
        assert!(go(r"^[[:alpha:]\d]+$", "a1"));
        assert!(go(r"\.\(\)", ".()"));
        assert!(go(r"(?i)STRASSE", "strasse"));
        assert_eq!(go_pattern(r"[\D\S]"), "[[:^digit:][:^space:]]");
    }

    #[test]
    fn a_global_value_may_be_empty_but_not_its_key() {
        let file = testing::structure(
            "schemaVersion: 2.0.0\nglobalEnvVars:\n  - key: EMPTY\n    value: ''\nmetadataTest:\n  user: app\n",
        );
        assert_eq!(file.global_env, [("EMPTY".to_owned(), String::new())]);
        let (line, column, message) =
            testing::refused("schemaVersion: 2.0.0\nglobalEnvVars:\n  - value: x\n");
        assert_eq!((line, column), (3, 5));
        assert!(message.contains("has no `key`"), "{message}");
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
