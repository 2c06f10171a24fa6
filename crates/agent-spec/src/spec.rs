//! `spec.toml`: one task, its test conditions and its limits.
//!
//! Parsing happens in two steps: serde reads the text into raw tables that keep the
//! span of every value (unknown keys and wrong types are rejected there), then
//! validation turns them into a [`Spec`], pointing any problem at the value that
//! causes it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;
use walkdir::WalkDir;

use crate::check::{Check, FileCheck, ImageChecks, Matcher};
use crate::errors::SpecError;
use crate::layer::LimitsLayer;
use crate::position::describe;
use crate::structure::StructureFile;
use crate::validate::{self, LimitsOf, LimitsTable, Source};

mod cases;

pub use cases::{Case, DEFAULT_CASE};

/// A parsed and validated spec. Everything here has been checked: names match
/// `[a-z0-9][a-z0-9_.-]*`, regexes compile, each check has exactly one matcher, inputs
/// exist below the spec's folder.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `name`, or the file stem when absent.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub prompt: String,
    pub conditions: String,
    /// Resolved: the explicit `judge`, else `true` when there are no checks.
    pub judge: bool,
    /// Input files, each as (path inside the build context, absolute path on disk).
    /// A folder in `inputs` is expanded to the files below it, sorted.
    pub inputs: Vec<(String, PathBuf)>,
    pub limits: SpecLimits,
    pub run: RunSpec,
    /// The top-level `[[check]]`s; with cases they hold for every case.
    pub checks: Vec<Check>,
    /// `[[case]]` as written, each merged with `[run]` and the top-level checks;
    /// empty: none (see [`Spec::cases_to_run`]).
    pub cases: Vec<Case>,
    /// `[image]`.
    pub image: Option<ImageChecks>,
    /// `[[file]]`.
    pub files: Vec<FileCheck>,
    /// `structure_tests = [...]`, each read and parsed.
    pub structure_tests: Vec<StructureFile>,
}

/// A spec's `[limits]`: each set one overrides `agent.toml`'s `[limits]`. A spec sets
/// only `max_iterations`, the timeouts, `memory_mb`, `cpus` and `network`.
pub type SpecLimits = LimitsLayer;

/// A spec's `[run]`: what the container gets besides its image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    pub stdin: Option<String>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
}

/// Reads and validates a spec file.
pub fn load_spec(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_spec(path, &text)
}

/// Parses spec text; `path` names the file in errors, gives the default name (its
/// stem) and the folder that `inputs` are relative to.
pub fn parse_spec(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let raw: RawSpec = toml::from_str(text).map_err(|error| {
        let (location, message) = describe(path, text, &error);
        SpecError::Invalid { location, message }
    })?;
    let source = Source { path, text };
    let name = spec_name(&source, raw.name.as_ref())?;
    if raw.prompt.get_ref().trim().is_empty() {
        return Err(source.invalid(
            raw.prompt.span(),
            "`prompt` is empty; it must say what the program does".to_owned(),
        ));
    }
    let checks = build_checks(&source, &raw.check)?;
    let judge = resolve_judge(&source, raw.judge.as_ref(), &checks)?;
    let limits = match raw.limits {
        Some(limits) => validate::limits(&source, limits.into(), LimitsOf::Spec)?,
        None => SpecLimits::default(),
    };
    let run = match &raw.run {
        Some(run) => build_run(&source, run)?,
        None => RunSpec::default(),
    };
    let inputs = resolve_inputs(&source, &raw.inputs)?;
    Ok(Spec {
        name,
        path: path.to_path_buf(),
        prompt: raw.prompt.into_inner(),
        conditions: raw.conditions.into_inner(),
        judge,
        inputs,
        limits,
        run,
        checks,
        cases: Vec::new(),
        image: None,
        files: Vec::new(),
        structure_tests: Vec::new(),
    })
}

/// `name`, else the file stem; either must be a valid name.
fn spec_name(source: &Source<'_>, name: Option<&Spanned<String>>) -> Result<String, SpecError> {
    if let Some(name) = name {
        return match check_name(name.get_ref()) {
            Ok(()) => Ok(name.get_ref().clone()),
            Err(problem) => Err(source.invalid(
                name.span(),
                format!("spec name `{}` {problem}", name.get_ref()),
            )),
        };
    }
    let stem = source
        .path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    match check_name(&stem) {
        Ok(()) => Ok(stem),
        Err(problem) => Err(source.invalid(
            0..0,
            format!(
                "the file name gives the spec name `{stem}`, which {problem}; \
                 set `name = \"…\"` in the spec"
            ),
        )),
    }
}

/// The explicit `judge`, else judging exactly when there are no checks.
fn resolve_judge(
    source: &Source<'_>,
    judge: Option<&Spanned<bool>>,
    checks: &[Check],
) -> Result<bool, SpecError> {
    match judge {
        Some(judge) if !*judge.get_ref() && checks.is_empty() => Err(source.invalid(
            judge.span(),
            "`judge = false` and no [[check]] leaves nothing to verify the program; \
             add a [[check]] or remove `judge`"
                .to_owned(),
        )),
        Some(judge) => Ok(*judge.get_ref()),
        None => Ok(checks.is_empty()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Option<Spanned<String>>,
    prompt: Spanned<String>,
    conditions: Spanned<String>,
    judge: Option<Spanned<bool>>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    limits: Option<RawLimits>,
    run: Option<RawRun>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_iterations: Option<Spanned<u32>>,
    build_timeout_secs: Option<Spanned<u64>>,
    run_timeout_secs: Option<Spanned<u64>>,
    memory_mb: Option<Spanned<u64>>,
    cpus: Option<Spanned<f64>>,
    network: Option<Spanned<String>>,
}

impl From<RawLimits> for LimitsTable {
    fn from(raw: RawLimits) -> Self {
        LimitsTable {
            max_iterations: raw.max_iterations,
            build_timeout_secs: raw.build_timeout_secs,
            run_timeout_secs: raw.run_timeout_secs,
            memory_mb: raw.memory_mb,
            cpus: raw.cpus,
            network: raw.network,
            ..LimitsTable::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    stdin: Option<String>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Option<Spanned<String>>,
    exit_code: Option<Spanned<i64>>,
    stdout_equals: Option<Spanned<String>>,
    stdout_contains: Option<Spanned<String>>,
    stdout_not_contains: Option<Spanned<String>>,
    stdout_matches: Option<Spanned<String>>,
    stderr_contains: Option<Spanned<String>>,
    stderr_not_contains: Option<Spanned<String>>,
    stderr_matches: Option<Spanned<String>>,
}

/// Names become image tags, labels and folder names, hence the narrow alphabet.
const NAME_LIMIT: usize = 128;

fn check_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let Some(first) = characters.next() else {
        return Err("is empty".to_owned());
    };
    let allowed_first = first.is_ascii_lowercase() || first.is_ascii_digit();
    let allowed_rest = characters.all(|character| {
        character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || matches!(character, '_' | '.' | '-')
    });
    if !allowed_first || !allowed_rest {
        return Err(
            "is not allowed: use lowercase letters, digits, `_`, `.` and `-`, \
                    starting with a letter or digit"
                .to_owned(),
        );
    }
    if name.len() > NAME_LIMIT {
        return Err(format!("is longer than {NAME_LIMIT} characters"));
    }
    Ok(())
}

const MATCHER_KEYS: &str = "`exit_code`, `stdout_equals`, `stdout_contains`, \
    `stdout_not_contains`, `stdout_matches`, `stderr_contains`, `stderr_not_contains`, \
    `stderr_matches`";

fn build_checks(source: &Source<'_>, raw: &[Spanned<RawCheck>]) -> Result<Vec<Check>, SpecError> {
    let mut matchers = Vec::with_capacity(raw.len());
    for table in raw {
        matchers.push(build_matcher(source, table)?);
    }

    // Explicit names are taken first, so a generated name never steals one.
    let mut taken = HashSet::new();
    for table in raw {
        if let Some(name) = &table.get_ref().name {
            if name.get_ref().trim().is_empty() {
                return Err(source.invalid(
                    name.span(),
                    "check `name` is empty; give it a few words or leave it out".to_owned(),
                ));
            }
            if !taken.insert(name.get_ref().clone()) {
                return Err(source.invalid(
                    name.span(),
                    format!(
                        "check name `{}` is already used by an earlier [[check]]; \
                         names must be unique",
                        name.get_ref()
                    ),
                ));
            }
        }
    }

    let mut checks = Vec::with_capacity(raw.len());
    for (table, matcher) in raw.iter().zip(matchers) {
        let name = match &table.get_ref().name {
            Some(name) => name.get_ref().clone(),
            None => {
                let key = matcher.key();
                let mut name = key.to_owned();
                let mut number = 1;
                while taken.contains(&name) {
                    number += 1;
                    name = format!("{key} #{number}");
                }
                taken.insert(name.clone());
                name
            }
        };
        checks.push(Check { name, matcher });
    }
    Ok(checks)
}

fn build_matcher(source: &Source<'_>, table: &Spanned<RawCheck>) -> Result<Matcher, SpecError> {
    let mut found = matchers_in(source, table.get_ref())?;
    match found.len() {
        1 => Ok(found.remove(0).1),
        0 => Err(source.invalid(
            table.span(),
            format!("check has no matcher; give it one of {MATCHER_KEYS}"),
        )),
        count => {
            let keys: Vec<String> = found.iter().map(|(key, _)| format!("`{key}`")).collect();
            let listed = match keys.split_last() {
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            let count = if count == 2 {
                "two".to_owned()
            } else {
                count.to_string()
            };
            Err(source.invalid(
                table.span(),
                format!("check has {count} matchers, {listed}: put each in its own [[check]]"),
            ))
        }
    }
}

/// Every matcher a `[[check]]` table sets, with its key; one is right.
fn matchers_in(
    source: &Source<'_>,
    raw: &RawCheck,
) -> Result<Vec<(&'static str, Matcher)>, SpecError> {
    let mut found: Vec<(&'static str, Matcher)> = Vec::new();
    if let Some(code) = &raw.exit_code {
        found.push(("exit_code", Matcher::ExitCode(*code.get_ref())));
    }
    type Text = fn(String) -> Matcher;
    let texts: [(&str, _, Text); 5] = [
        ("stdout_equals", &raw.stdout_equals, Matcher::StdoutEquals),
        (
            "stdout_contains",
            &raw.stdout_contains,
            Matcher::StdoutContains,
        ),
        (
            "stdout_not_contains",
            &raw.stdout_not_contains,
            Matcher::StdoutNotContains,
        ),
        (
            "stderr_contains",
            &raw.stderr_contains,
            Matcher::StderrContains,
        ),
        (
            "stderr_not_contains",
            &raw.stderr_not_contains,
            Matcher::StderrNotContains,
        ),
    ];
    for (key, value, make) in texts {
        if let Some(value) = value {
            if key != "stdout_equals" && value.get_ref().is_empty() {
                return Err(source.invalid(
                    value.span(),
                    format!("`{key}` is empty, which every output contains; give it a text"),
                ));
            }
            found.push((key, make(value.get_ref().clone())));
        }
    }
    type Pattern = fn(Regex) -> Matcher;
    let regexes: [(&str, _, Pattern); 2] = [
        (
            "stdout_matches",
            &raw.stdout_matches,
            Matcher::StdoutMatches,
        ),
        (
            "stderr_matches",
            &raw.stderr_matches,
            Matcher::StderrMatches,
        ),
    ];
    for (key, value, make) in regexes {
        if let Some(value) = value {
            found.push((key, make(compile(source, key, value)?)));
        }
    }
    Ok(found)
}

/// Regexes from a spec are written by the user, but still get a size limit so a
/// typo cannot make compiling them eat the machine.
const REGEX_SIZE_LIMIT: usize = 10 * 1024 * 1024;

fn compile(source: &Source<'_>, key: &str, value: &Spanned<String>) -> Result<Regex, SpecError> {
    RegexBuilder::new(value.get_ref())
        .multi_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| {
            // The regex crate draws the pattern with a caret over several lines; the
            // location already points at the pattern, so keep its last line only.
            let text = error.to_string();
            let reason = text
                .lines()
                .rev()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("invalid")
                .trim_start_matches("error: ")
                .to_owned();
            source.invalid(value.span(), format!("bad regex in `{key}`: {reason}"))
        })
}

fn build_run(source: &Source<'_>, raw: &RawRun) -> Result<RunSpec, SpecError> {
    let mut env = BTreeMap::new();
    for (name, value) in &raw.env {
        let text = name.get_ref();
        if !validate::is_variable_name(text) {
            return Err(source.invalid(
                name.span(),
                format!(
                    "environment variable name `{}` is not allowed: it must be non-empty, \
                     without `=` or NUL",
                    text.escape_debug()
                ),
            ));
        }
        if value.get_ref().contains('\0') {
            return Err(source.invalid(
                value.span(),
                format!("the value of environment variable `{text}` contains a NUL character"),
            ));
        }
        env.insert(text.clone(), value.get_ref().clone());
    }
    let mut args = Vec::with_capacity(raw.args.len());
    for argument in &raw.args {
        if argument.get_ref().contains('\0') {
            return Err(source.invalid(
                argument.span(),
                "an argument in `args` contains a NUL character".to_owned(),
            ));
        }
        args.push(argument.get_ref().clone());
    }
    Ok(RunSpec {
        stdin: raw.stdin.clone(),
        env,
        args,
    })
}

fn resolve_inputs(
    source: &Source<'_>,
    raw: &[Spanned<String>],
) -> Result<Vec<(String, PathBuf)>, SpecError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let folder = validate::folder_of(source.path);
    let mut resolved = Vec::new();
    let mut seen = BTreeSet::new();
    for input in raw {
        let fail = |problem: String| SpecError::Input {
            location: source.location(input.span()),
            input: input.get_ref().escape_debug().to_string(),
            problem,
        };
        let root = fs::canonicalize(folder).map_err(|error| {
            fail(format!(
                "cannot be resolved: the spec's folder `{}` is not readable ({error})",
                folder.display()
            ))
        })?;
        for (context_path, disk_path) in
            resolve_input(&root, folder, input.get_ref()).map_err(fail)?
        {
            if context_path == "Dockerfile" {
                return Err(fail(
                    "would replace the Dockerfile the model writes; rename it or put it in a \
                     folder"
                        .to_owned(),
                ));
            }
            // An input listed twice (a file and its folder) goes into the context once.
            if seen.insert(context_path.clone()) {
                resolved.push((context_path, disk_path));
            }
        }
    }
    Ok(resolved)
}

/// One `inputs` entry as (context path, canonical path) pairs, or the problem.
fn resolve_input(
    root: &Path,
    folder: &Path,
    input: &str,
) -> Result<Vec<(String, PathBuf)>, String> {
    if input.is_empty() {
        return Err("is empty".to_owned());
    }
    if input.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    let written = Path::new(input);
    let prefix = context_path(written)?;
    let canonical = fs::canonicalize(folder.join(written)).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {error}")
        }
    })?;
    if !canonical.starts_with(root) {
        return Err(LEAVES_FOLDER.to_owned());
    }
    let metadata = fs::metadata(&canonical).map_err(|error| format!("cannot be read: {error}"))?;
    if metadata.is_file() {
        if prefix.is_empty() {
            return Err("names no file".to_owned());
        }
        return Ok(vec![(prefix, canonical)]);
    }
    if !metadata.is_dir() {
        return Err("is neither a regular file nor a folder".to_owned());
    }
    let mut files = walk(root, &canonical, &prefix)?;
    files.sort();
    Ok(files)
}

/// The path inside the build context, from the path as written, so a symlink inside
/// the folder keeps the name the user gave it.
fn context_path(written: &Path) -> Result<String, String> {
    let mut parts: Vec<String> = Vec::new();
    for component in written.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(LEAVES_FOLDER.to_owned());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; inputs are relative to the spec's folder".to_owned());
            }
        }
    }
    Ok(parts.join("/"))
}

const LEAVES_FOLDER: &str =
    "leaves the spec's folder (through `..` or a symlink); inputs must stay below it";

/// The files below `folder` (canonical), each as (context path below `prefix`,
/// canonical path), in name order. Symlinks are followed while they stay below
/// `root`; a folder reached twice (a symlink back up the tree) is walked once.
fn walk(root: &Path, folder: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    let mut visited = HashSet::from([folder.to_path_buf()]);
    let mut entries = WalkDir::new(folder)
        .min_depth(1)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = entries.next() {
        let (path, descended) = match entry {
            Ok(entry) => (entry.into_path(), true),
            // walkdir refuses to enter a folder it is already inside; that folder was
            // visited, and the checks below still apply to the link.
            Err(error) if error.loop_ancestor().is_some() => {
                let path = error.path().map(Path::to_path_buf).unwrap_or_default();
                (path, false)
            }
            Err(error) => return Err(walk_error(folder, prefix, &error)),
        };
        let context_path = join_context(prefix, folder, &path)?;
        let canonical = fs::canonicalize(&path)
            .map_err(|error| format!("contains `{context_path}`, which cannot be read: {error}"))?;
        if !canonical.starts_with(root) {
            return Err(format!(
                "contains `{context_path}`, a symlink that leaves the spec's folder"
            ));
        }
        let metadata = fs::metadata(&canonical)
            .map_err(|error| format!("contains `{context_path}`, which cannot be read: {error}"))?;
        if metadata.is_dir() {
            if !visited.insert(canonical) && descended {
                entries.skip_current_dir();
            }
        } else if metadata.is_file() {
            files.push((context_path, canonical));
        } else {
            return Err(format!(
                "contains `{context_path}`, which is neither a regular file nor a folder"
            ));
        }
    }
    Ok(files)
}

/// `path` (below `folder`) as a context path below `prefix`.
fn join_context(prefix: &str, folder: &Path, path: &Path) -> Result<String, String> {
    let relative = path.strip_prefix(folder).unwrap_or(path);
    let mut context = prefix.to_owned();
    for part in relative.components() {
        let Some(part) = part.as_os_str().to_str() else {
            return Err(format!(
                "contains `{}`, a name that is not UTF-8",
                path.display()
            ));
        };
        if !context.is_empty() {
            context.push('/');
        }
        context.push_str(part);
    }
    Ok(context)
}

/// A folder that cannot be listed, or an entry whose target cannot be read.
fn walk_error(folder: &Path, prefix: &str, error: &walkdir::Error) -> String {
    let path = error.path().unwrap_or(folder);
    let cause = error
        .io_error()
        .map_or_else(|| error.to_string(), ToString::to_string);
    if fs::metadata(path).is_ok_and(|metadata| metadata.is_dir()) {
        return format!("cannot be read: folder `{}`: {cause}", path.display());
    }
    match join_context(prefix, folder, path) {
        Ok(context_path) => format!("contains `{context_path}`, which cannot be read: {cause}"),
        Err(problem) => problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Observed;
    use crate::settings::NetworkMode;

    const MINIMAL: &str = "prompt = \"print hi\"\nconditions = \"prints hi\"\n";

    fn parse(text: &str) -> Result<Spec, SpecError> {
        parse_spec(Path::new("/specs/fizzbuzz.toml"), text)
    }

    /// The (line, column, message) of an `Invalid` error.
    fn invalid(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(SpecError::Invalid { location, message }) => {
                assert_eq!(location.path, Path::new("/specs/fizzbuzz.toml"));
                (location.line, location.column, message)
            }
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    fn observed(stdout: &str) -> Observed<'_> {
        Observed {
            exit_code: Some(0),
            stdout,
            stderr: "",
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    #[test]
    fn design_example_parses_completely() {
        let text = r#"
name = "fizzbuzz"
prompt = """Write a Python program that prints FizzBuzz for 1..15, one per line."""
conditions = """The output is the FizzBuzz sequence for 1..15."""
judge = false

[limits]
max_iterations = 6
build_timeout_secs = 600
run_timeout_secs = 60
memory_mb = 1024
cpus = 1.0
network = "none"

[run]
stdin = "3 4\n"
env = { GREETING = "hi" }
args = ["--fast"]

[[check]]
name = "sequence"
stdout_equals = """1\n2\nFizz"""
[[check]]
exit_code = 0
"#;
        let spec = parse(text).unwrap();
        assert_eq!(spec.name, "fizzbuzz");
        assert_eq!(spec.path, Path::new("/specs/fizzbuzz.toml"));
        assert!(spec.prompt.starts_with("Write a Python program"));
        assert_eq!(
            spec.conditions,
            "The output is the FizzBuzz sequence for 1..15."
        );
        assert!(!spec.judge);
        assert!(spec.inputs.is_empty());
        assert_eq!(
            spec.limits,
            SpecLimits {
                max_iterations: Some(6),
                build_timeout_secs: Some(600),
                run_timeout_secs: Some(60),
                memory_mb: Some(1024),
                cpus: Some(1.0),
                network: Some(NetworkMode::None),
                ..SpecLimits::default()
            }
        );
        assert_eq!(spec.run.stdin.as_deref(), Some("3 4\n"));
        assert_eq!(spec.run.env.get("GREETING").map(String::as_str), Some("hi"));
        assert_eq!(spec.run.args, vec!["--fast".to_owned()]);
        let names: Vec<&str> = spec
            .checks
            .iter()
            .map(|check| check.name.as_str())
            .collect();
        assert_eq!(names, ["sequence", "exit_code"]);
        assert!(
            matches!(&spec.checks[0].matcher, Matcher::StdoutEquals(text) if text == "1\n2\nFizz")
        );
        assert!(matches!(spec.checks[1].matcher, Matcher::ExitCode(0)));
    }

    #[test]
    fn minimal_spec_takes_the_file_stem_and_defaults() {
        let spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.name, "fizzbuzz");
        assert_eq!(spec.limits, SpecLimits::default());
        assert_eq!(spec.run, RunSpec::default());
        assert!(spec.checks.is_empty());
    }

    #[test]
    fn judge_defaults_to_true_without_checks_and_false_with_them() {
        assert!(parse(MINIMAL).unwrap().judge);
        let with_check = format!("{MINIMAL}[[check]]\nexit_code = 0\n");
        assert!(!parse(&with_check).unwrap().judge);
        let explicit = format!("judge = true\n{MINIMAL}[[check]]\nexit_code = 0\n");
        assert!(parse(&explicit).unwrap().judge);
    }

    #[test]
    fn judge_false_without_checks_is_refused_at_the_value() {
        let (line, column, message) = invalid(&format!("{MINIMAL}judge = false\n"));
        assert_eq!((line, column), (3, 9));
        assert!(message.contains("nothing to verify"), "{message}");
    }

    #[test]
    fn bad_file_stem_asks_for_a_name() {
        let error = parse_spec(Path::new("/specs/Fizz Buzz.toml"), MINIMAL).unwrap_err();
        let SpecError::Invalid { location, message } = error else {
            panic!("expected invalid");
        };
        assert_eq!((location.line, location.column), (1, 1));
        assert!(message.contains("`Fizz Buzz`"), "{message}");
        assert!(message.contains("set `name"), "{message}");
        let named = parse_spec(
            Path::new("/specs/Fizz Buzz.toml"),
            &format!("name = \"fb\"\n{MINIMAL}"),
        );
        assert_eq!(named.unwrap().name, "fb");
    }

    #[test]
    fn bad_name_points_at_the_name() {
        let (line, column, message) = invalid(&format!("{MINIMAL}name   = \"Fizz\"\n"));
        assert_eq!((line, column), (3, 10));
        assert!(
            message.starts_with("spec name `Fizz` is not allowed"),
            "{message}"
        );
        let (_, _, message) = invalid(&format!("{MINIMAL}name = \"-x\"\n"));
        assert!(
            message.contains("starting with a letter or digit"),
            "{message}"
        );
        let (_, _, message) = invalid(&format!("{MINIMAL}name = \"\"\n"));
        assert!(message.contains("is empty"), "{message}");
        assert_eq!(
            parse(&format!("{MINIMAL}name = \"a1_b.c-d\"\n"))
                .unwrap()
                .name,
            "a1_b.c-d"
        );
    }

    #[test]
    fn unknown_key_in_check_names_the_table_and_the_allowed_keys() {
        let text = format!("{MINIMAL}\n[[check]]\n  stdout_equal = \"x\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (5, 3));
        assert!(
            message.starts_with("unknown key `stdout_equal` in [[check]]; expected one of `name`, `exit_code`, `stdout_equals`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_at_top_level_and_in_limits() {
        let (line, column, message) = invalid(&format!("{MINIMAL}promt = \"x\"\n"));
        assert_eq!((line, column), (3, 1));
        assert!(
            message.starts_with(
                "unknown key `promt` at the top level; expected one of `name`, `prompt`"
            ),
            "{message}"
        );
        let (line, column, message) = invalid(&format!("{MINIMAL}[limits]\npids = 3\n"));
        assert_eq!((line, column), (4, 1));
        assert!(
            message.starts_with("unknown key `pids` in [limits]"),
            "{message}"
        );
    }

    #[test]
    fn two_matchers_point_at_the_check_table() {
        let text = format!(
            "{MINIMAL}[[check]]\nexit_code = 0\n\n[[check]]\nexit_code = 0\nstdout_contains = \"x\"\n"
        );
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (6, 1));
        assert_eq!(
            message,
            "check has two matchers, `exit_code` and `stdout_contains`: put each in its own [[check]]"
        );
    }

    #[test]
    fn zero_matchers_point_at_the_check_table() {
        let text = format!("{MINIMAL}\n[[check]]\nname = \"lonely\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (4, 1));
        assert!(
            message.starts_with("check has no matcher; give it one of `exit_code`"),
            "{message}"
        );
    }

    #[test]
    fn bad_regex_points_at_the_pattern() {
        let text = format!("{MINIMAL}[[check]]\nstdout_matches = \"(abc\"\n");
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (4, 18));
        assert_eq!(message, "bad regex in `stdout_matches`: unclosed group");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let (line, column, message) = invalid("prompt = \"x\"\nconditions = [1,\n");
        assert_eq!((line, column), (2, 17));
        assert_eq!(message, "unclosed array, expected `]`");
        let (line, column, message) = invalid("prompt = \"x\"\nconditions = \"y\" z\n");
        assert_eq!((line, column), (2, 18));
        assert_eq!(message, "unexpected key or value, expected newline, `#`");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[limits]\nmax_iterations = \"a\"\n"));
        assert_eq!((line, column), (4, 18));
        assert_eq!(
            message,
            "`limits.max_iterations`: invalid type: string \"a\", expected a non-negative integer"
        );
    }

    #[test]
    fn a_single_check_table_asks_for_double_brackets() {
        let (line, column, message) = invalid(&format!("{MINIMAL}[check]\nexit_code = 0\n"));
        assert_eq!((line, column), (3, 1));
        assert_eq!(
            message,
            "`check` is a list of tables: write [[check]], not [check]"
        );
    }

    #[test]
    fn duplicate_keys_are_named() {
        let (line, column, message) = invalid(&format!("{MINIMAL}prompt = \"again\"\n"));
        assert_eq!((line, column), (3, 1));
        assert_eq!(message, "duplicate key `prompt`");
    }

    #[test]
    fn missing_and_empty_prompt() {
        let (line, column, message) = invalid("conditions = \"x\"\n");
        assert_eq!((line, column), (1, 1));
        assert_eq!(message, "missing key `prompt`");
        let (line, column, message) = invalid("prompt = \" \"\nconditions = \"x\"\n");
        assert_eq!((line, column), (1, 10));
        assert!(message.starts_with("`prompt` is empty"), "{message}");
        let (_, _, message) = invalid("prompt = \"x\"\n");
        assert_eq!(message, "missing key `conditions`");
    }

    #[test]
    fn limits_out_of_range_point_at_the_value() {
        let cases = [
            ("max_iterations = 0", "`max_iterations` must be at least 1"),
            (
                "build_timeout_secs = 0",
                "`build_timeout_secs` must be at least 1",
            ),
            (
                "run_timeout_secs = 0",
                "`run_timeout_secs` must be at least 1",
            ),
            (
                "memory_mb = 5",
                "`memory_mb` must be at least 6 (the engine refuses less)",
            ),
            (
                "cpus = 0",
                "`cpus` must be a number above 0, e.g. `0.5` or `2`",
            ),
            (
                "cpus = -1.5",
                "`cpus` must be a number above 0, e.g. `0.5` or `2`",
            ),
            (
                "cpus = nan",
                "`cpus` must be a number above 0, e.g. `0.5` or `2`",
            ),
            (
                "network = \"host\"",
                "unknown network `host`; expected `none` or `bridge`",
            ),
        ];
        for (line_text, expected) in cases {
            let text = format!("{MINIMAL}[limits]\n{line_text}\n");
            let (line, column, message) = invalid(&text);
            let value_column = line_text.find('=').unwrap() + 3;
            assert_eq!((line, column), (4, value_column), "{line_text}");
            assert_eq!(message, expected);
        }
        let ok = parse(&format!(
            "{MINIMAL}[limits]\nmemory_mb = 6\ncpus = 2\nnetwork = \"bridge\"\n"
        ))
        .unwrap();
        assert_eq!(ok.limits.cpus, Some(2.0));
        assert_eq!(ok.limits.network, Some(NetworkMode::Bridge));
    }

    #[test]
    fn default_check_names_are_made_unique() {
        let text = format!(
            "{MINIMAL}[[check]]\nstdout_contains = \"a\"\n[[check]]\nexit_code = 0\n\
             [[check]]\nstdout_contains = \"b\"\n[[check]]\nstdout_contains = \"c\"\n"
        );
        let spec = parse(&text).unwrap();
        let names: Vec<&str> = spec
            .checks
            .iter()
            .map(|check| check.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "stdout_contains",
                "exit_code",
                "stdout_contains #2",
                "stdout_contains #3"
            ]
        );
    }

    #[test]
    fn default_check_names_avoid_explicit_ones() {
        let text = format!(
            "{MINIMAL}[[check]]\nexit_code = 0\n[[check]]\nname = \"exit_code\"\nexit_code = 1\n"
        );
        let spec = parse(&text).unwrap();
        let names: Vec<&str> = spec
            .checks
            .iter()
            .map(|check| check.name.as_str())
            .collect();
        assert_eq!(names, ["exit_code #2", "exit_code"]);
    }

    #[test]
    fn duplicate_explicit_check_names_are_refused() {
        let text = format!(
            "{MINIMAL}[[check]]\nname = \"a\"\nexit_code = 0\n[[check]]\nname = \"a\"\nexit_code = 1\n"
        );
        let (line, column, message) = invalid(&text);
        assert_eq!((line, column), (7, 8));
        assert!(
            message.starts_with("check name `a` is already used"),
            "{message}"
        );
    }

    #[test]
    fn regexes_are_multi_line() {
        let text = format!("{MINIMAL}[[check]]\nstdout_matches = '^b$'\n");
        let spec = parse(&text).unwrap();
        assert!(
            spec.checks[0]
                .evaluate("run", &observed("a\nb\nc\n"))
                .passed
        );
        assert!(
            !spec.checks[0]
                .evaluate("run", &observed("a\nbb\nc\n"))
                .passed
        );
    }

    #[test]
    fn every_matcher_key_parses_to_its_matcher() {
        let keys = [
            ("exit_code = 3", "exit_code"),
            ("stdout_equals = 'x'", "stdout_equals"),
            ("stdout_contains = 'x'", "stdout_contains"),
            ("stdout_not_contains = 'x'", "stdout_not_contains"),
            ("stdout_matches = 'x'", "stdout_matches"),
            ("stderr_contains = 'x'", "stderr_contains"),
            ("stderr_not_contains = 'x'", "stderr_not_contains"),
            ("stderr_matches = 'x'", "stderr_matches"),
        ];
        for (line, key) in keys {
            let spec = parse(&format!("{MINIMAL}[[check]]\n{line}\n")).unwrap();
            assert_eq!(spec.checks[0].matcher.key(), key);
            assert_eq!(spec.checks[0].name, key);
        }
    }

    #[test]
    fn empty_contains_text_is_refused() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[[check]]\nstdout_contains = ''\n"));
        assert_eq!((line, column), (4, 19));
        assert!(
            message.starts_with("`stdout_contains` is empty"),
            "{message}"
        );
    }

    #[test]
    fn bad_environment_names_in_run_are_refused() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[run]\nenv = {{ \"A=B\" = \"x\" }}\n"));
        assert_eq!((line, column), (4, 9));
        assert!(
            message.starts_with("environment variable name `A=B` is not allowed"),
            "{message}"
        );
        let (_, _, message) = invalid(&format!("{MINIMAL}[run]\nargs = [\"a\\u0000b\"]\n"));
        assert!(message.contains("NUL"), "{message}");
    }

    mod inputs {
        use super::*;

        fn spec_in(folder: &Path, inputs: &str) -> Result<Spec, SpecError> {
            let path = folder.join("task.toml");
            let text = format!("{MINIMAL}inputs = {inputs}\n");
            fs::write(&path, &text).unwrap();
            load_spec(&path)
        }

        /// The (problem, line, column) of an `Input` error.
        fn input_problem(result: Result<Spec, SpecError>) -> (String, String, usize, usize) {
            match result {
                Err(SpecError::Input {
                    location,
                    input,
                    problem,
                }) => (input, problem, location.line, location.column),
                other => panic!("expected an input error, got {other:?}"),
            }
        }

        #[test]
        fn a_file_keeps_its_relative_path() {
            let folder = tempfile::tempdir().unwrap();
            fs::create_dir(folder.path().join("data")).unwrap();
            fs::write(folder.path().join("data/table.csv"), "a,b\n").unwrap();
            let spec = spec_in(folder.path(), "[\"./data/table.csv\"]").unwrap();
            let root = fs::canonicalize(folder.path()).unwrap();
            assert_eq!(
                spec.inputs,
                vec![("data/table.csv".to_owned(), root.join("data/table.csv"))]
            );
            assert!(spec.inputs[0].1.is_absolute());
        }

        #[test]
        fn a_folder_expands_recursively_sorted() {
            let folder = tempfile::tempdir().unwrap();
            let data = folder.path().join("data");
            fs::create_dir_all(data.join("nested/deeper")).unwrap();
            fs::write(data.join("b.txt"), "b").unwrap();
            fs::write(data.join("a.txt"), "a").unwrap();
            fs::write(data.join("nested/deeper/c.txt"), "c").unwrap();
            fs::write(data.join("nested.txt"), "n").unwrap();
            let spec = spec_in(folder.path(), "[\"data\", \"data/a.txt\"]").unwrap();
            let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "data/a.txt",
                    "data/b.txt",
                    "data/nested.txt",
                    "data/nested/deeper/c.txt"
                ]
            );
            let root = fs::canonicalize(folder.path()).unwrap();
            assert_eq!(spec.inputs[3].1, root.join("data/nested/deeper/c.txt"));
        }

        #[test]
        fn a_missing_input_points_at_its_entry() {
            let folder = tempfile::tempdir().unwrap();
            let (input, problem, line, column) =
                input_problem(spec_in(folder.path(), "[ \"gone.csv\"]"));
            assert_eq!(input, "gone.csv");
            assert_eq!(problem, "does not exist");
            assert_eq!((line, column), (3, 12));
        }

        #[test]
        fn escaping_through_dot_dot_is_refused() {
            let outer = tempfile::tempdir().unwrap();
            let folder = outer.path().join("spec");
            fs::create_dir(&folder).unwrap();
            fs::write(outer.path().join("secret.txt"), "s").unwrap();
            let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"../secret.txt\"]"));
            assert!(problem.starts_with("leaves the spec's folder"), "{problem}");
            let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"a/../../secret.txt\"]"));
            assert!(problem.starts_with("leaves the spec's folder"), "{problem}");
        }

        #[test]
        fn escaping_through_a_symlink_is_refused() {
            let outer = tempfile::tempdir().unwrap();
            let folder = outer.path().join("spec");
            fs::create_dir_all(folder.join("data")).unwrap();
            fs::write(outer.path().join("secret.txt"), "s").unwrap();
            std::os::unix::fs::symlink(outer.path().join("secret.txt"), folder.join("link.txt"))
                .unwrap();
            let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"link.txt\"]"));
            assert!(problem.starts_with("leaves the spec's folder"), "{problem}");

            std::os::unix::fs::symlink(
                outer.path().join("secret.txt"),
                folder.join("data/inner.txt"),
            )
            .unwrap();
            let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"data\"]"));
            assert_eq!(
                problem,
                "contains `data/inner.txt`, a symlink that leaves the spec's folder"
            );
        }

        #[test]
        fn a_symlink_inside_the_folder_keeps_its_written_name() {
            let folder = tempfile::tempdir().unwrap();
            fs::write(folder.path().join("real.txt"), "r").unwrap();
            std::os::unix::fs::symlink(
                folder.path().join("real.txt"),
                folder.path().join("alias.txt"),
            )
            .unwrap();
            let spec = spec_in(folder.path(), "[\"alias.txt\"]").unwrap();
            assert_eq!(spec.inputs[0].0, "alias.txt");
            assert_eq!(
                spec.inputs[0].1,
                fs::canonicalize(folder.path().join("real.txt")).unwrap()
            );
        }

        #[test]
        fn a_symlink_loop_in_a_folder_ends() {
            let folder = tempfile::tempdir().unwrap();
            fs::create_dir(folder.path().join("data")).unwrap();
            fs::write(folder.path().join("data/a.txt"), "a").unwrap();
            std::os::unix::fs::symlink(
                folder.path().join("data"),
                folder.path().join("data/again"),
            )
            .unwrap();
            let spec = spec_in(folder.path(), "[\"data\"]").unwrap();
            let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
            assert_eq!(paths, ["data/a.txt"]);
        }

        #[test]
        fn a_folder_reached_through_two_symlinks_is_walked_once_under_the_first_name() {
            let folder = tempfile::tempdir().unwrap();
            fs::create_dir_all(folder.path().join("data/real")).unwrap();
            fs::write(folder.path().join("data/real/a.txt"), "a").unwrap();
            for name in ["data/b-link", "data/a-link"] {
                std::os::unix::fs::symlink(
                    folder.path().join("data/real"),
                    folder.path().join(name),
                )
                .unwrap();
            }
            let spec = spec_in(folder.path(), "[\"data\"]").unwrap();
            let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
            assert_eq!(paths, ["data/a-link/a.txt"]);
        }

        #[test]
        fn a_dangling_symlink_in_a_folder_is_named() {
            let folder = tempfile::tempdir().unwrap();
            fs::create_dir(folder.path().join("data")).unwrap();
            std::os::unix::fs::symlink(
                folder.path().join("gone.txt"),
                folder.path().join("data/dangling.txt"),
            )
            .unwrap();
            let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"data\"]"));
            assert!(
                problem.starts_with("contains `data/dangling.txt`, which cannot be read: "),
                "{problem}"
            );
        }

        #[test]
        fn an_input_named_dockerfile_is_refused() {
            let folder = tempfile::tempdir().unwrap();
            fs::write(folder.path().join("Dockerfile"), "FROM x").unwrap();
            let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"Dockerfile\"]"));
            assert!(
                problem.starts_with("would replace the Dockerfile"),
                "{problem}"
            );
            // The whole folder holds the Dockerfile too.
            let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\".\"]"));
            assert!(
                problem.starts_with("would replace the Dockerfile"),
                "{problem}"
            );
        }

        #[test]
        fn absolute_and_empty_inputs_are_refused() {
            let folder = tempfile::tempdir().unwrap();
            let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"/etc/hostname\"]"));
            assert_eq!(
                problem,
                "is absolute; inputs are relative to the spec's folder"
            );
            let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"\"]"));
            assert_eq!(problem, "is empty");
        }
    }
}
