//! `[[suite]]`: hidden test suites. Their files sit below the spec's folder but are
//! never shown to the model nor put in the build context; they are copied into a
//! container of the built image, where a command runs them and writes a JUnit report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::errors::SpecError;
use crate::spec::paths::SpecFolder;
use crate::spec::run::build_list;
use crate::validate::{self, Source, at_least};

/// A `[[suite]]`, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suite {
    /// Unique among the spec's suites.
    pub name: String,
    /// Each hidden file as (its path below `dest`, its canonical path on disk), sorted
    /// by the first, each path once. A listed file lands by its own name, a listed
    /// folder's files by their paths below that folder.
    #[serde(serialize_with = "crate::spec::digest::context_paths")]
    pub files: Vec<(String, PathBuf)>,
    /// The absolute folder in the container the files are copied to, after the build
    /// and before `command` starts; never `/`, without a trailing `/`.
    pub dest: String,
    /// The program that runs the tests and its arguments.
    pub command: Vec<String>,
    /// The absolute path of the JUnit XML file `command` writes, read when it exits.
    pub junit: String,
    /// Tests that must be present and pass; empty: every test present must pass.
    pub required: Vec<String>,
    /// Fewer tests than this in the JUnit file fails the suite.
    pub min_tests: usize,
    /// `None`: none given in the spec.
    pub timeout_secs: Option<u64>,
}

pub(crate) const DEFAULT_MIN_TESTS: usize = 1;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Suite")]
pub(crate) struct RawSuite {
    name: Option<Spanned<String>>,
    files: Option<Spanned<Vec<Spanned<String>>>>,
    dest: Option<Spanned<String>>,
    command: Option<Spanned<Vec<Spanned<String>>>>,
    junit: Option<Spanned<String>>,
    #[serde(default)]
    required: Vec<Spanned<String>>,
    min_tests: Option<usize>,
    timeout_secs: Option<Spanned<u64>>,
}

const FILES_EXAMPLE: &str = "list the hidden test files or folders, relative to the spec, \
                             e.g. [\"hidden_tests/\"]";
const COMMAND_EXAMPLE: &str = "give the program that runs the tests and its arguments, e.g. \
                               [\"python3\", \"-m\", \"pytest\", \"/suite\"]";

/// The `[[suite]]` tables, in order. `inputs` are the spec's resolved inputs: a hidden
/// file may not be one of them.
pub(crate) fn build_suites(
    source: &Source<'_>,
    raw: &[Spanned<RawSuite>],
    inputs: &[(String, PathBuf)],
) -> Result<Vec<Suite>, SpecError> {
    let mut names = HashSet::new();
    raw.iter()
        .map(|table| build_suite(source, table, inputs, &mut names))
        .collect()
}

fn build_suite(
    source: &Source<'_>,
    table: &Spanned<RawSuite>,
    inputs: &[(String, PathBuf)],
    names: &mut HashSet<String>,
) -> Result<Suite, SpecError> {
    let raw = table.get_ref();
    let name = suite_name(source, table, names)?;
    let missing = |key: &str, what: &str| {
        source.invalid(
            table.span(),
            format!("[[suite]] `{name}` has no `{key}`; {what}"),
        )
    };
    let dest = raw.dest.as_ref().ok_or_else(|| {
        missing(
            "dest",
            "give the absolute folder in the container the files are copied to, e.g. \
             \"/suite\"",
        )
    })?;
    let dest = destination(source, dest)?;
    let files = raw
        .files
        .as_ref()
        .ok_or_else(|| missing("files", FILES_EXAMPLE))?;
    let files = hidden_files(source, &name, &dest, files, inputs)?;
    let command = raw
        .command
        .as_ref()
        .ok_or_else(|| missing("command", COMMAND_EXAMPLE))?;
    if command.get_ref().is_empty() {
        return Err(source.invalid(
            command.span(),
            format!("`command` is empty; {COMMAND_EXAMPLE}"),
        ));
    }
    let command = build_list(source, "command", command.get_ref())?;
    let junit = raw.junit.as_ref().ok_or_else(|| {
        missing(
            "junit",
            "give the absolute path of the JUnit XML file its command writes, e.g. \
             \"/tmp/junit.xml\"",
        )
    })?;
    let junit = junit_path(source, junit)?;
    Ok(Suite {
        name,
        files,
        dest,
        command,
        junit,
        required: required(source, &raw.required)?,
        min_tests: raw.min_tests.unwrap_or(DEFAULT_MIN_TESTS),
        timeout_secs: source.number("timeout_secs", raw.timeout_secs.clone(), at_least(1))?,
    })
}

/// A suite's `name`: present, a valid name, unique among the suites.
fn suite_name(
    source: &Source<'_>,
    table: &Spanned<RawSuite>,
    names: &mut HashSet<String>,
) -> Result<String, SpecError> {
    let Some(name) = &table.get_ref().name else {
        return Err(source.invalid(
            table.span(),
            "[[suite]] has no `name`; give each suite a short unique name, e.g. \"unit\""
                .to_owned(),
        ));
    };
    let text = name.get_ref();
    validate::name(text).map_err(|problem| {
        source.invalid(
            name.span(),
            format!("suite name `{}` {problem}", text.escape_debug()),
        )
    })?;
    if !names.insert(text.clone()) {
        return Err(source.invalid(
            name.span(),
            format!(
                "suite name `{text}` is already used by an earlier [[suite]]; names must be \
                 unique"
            ),
        ));
    }
    Ok(text.clone())
}

/// `dest`: an absolute folder other than `/`, without `..` or NUL; a trailing `/` is
/// dropped.
fn destination(source: &Source<'_>, dest: &Spanned<String>) -> Result<String, SpecError> {
    let text = dest.get_ref();
    let trimmed = text.trim_end_matches('/');
    if !text.starts_with('/')
        || trimmed.is_empty()
        || text.contains('\0')
        || text.split('/').any(|part| part == "..")
    {
        return Err(source.invalid(
            dest.span(),
            format!(
                "`dest` `{}` must be an absolute folder other than `/`, without `..` or NUL, \
                 e.g. \"/suite\"",
                text.escape_debug()
            ),
        ));
    }
    Ok(trimmed.to_owned())
}

/// `junit`: the absolute path of a file, without `..` or NUL.
fn junit_path(source: &Source<'_>, junit: &Spanned<String>) -> Result<String, SpecError> {
    let text = junit.get_ref();
    if !text.starts_with('/')
        || text.ends_with('/')
        || text.contains('\0')
        || text.split('/').any(|part| part == "..")
    {
        return Err(source.invalid(
            junit.span(),
            format!(
                "`junit` `{}` must be the absolute path of a file, without `..` or NUL, e.g. \
                 \"/tmp/junit.xml\"",
                text.escape_debug()
            ),
        ));
    }
    Ok(text.clone())
}

/// `files`: each entry below the spec's folder (as `inputs` are), none of them an input,
/// every file landing at a path below `dest` of its own.
fn hidden_files(
    source: &Source<'_>,
    suite: &str,
    dest: &str,
    files: &Spanned<Vec<Spanned<String>>>,
    inputs: &[(String, PathBuf)],
) -> Result<Vec<(String, PathBuf)>, SpecError> {
    let Some(first) = files.get_ref().first() else {
        return Err(source.invalid(files.span(), format!("`files` is empty; {FILES_EXAMPLE}")));
    };
    let fail = |entry: &Spanned<String>, problem: String| SpecError::SuiteFile {
        location: source.location(entry.span()),
        suite: suite.to_owned(),
        file: entry.get_ref().escape_debug().to_string(),
        problem,
    };
    let folder =
        SpecFolder::open(source.path, "suite files").map_err(|problem| fail(first, problem))?;
    let inputs: HashMap<&PathBuf, &String> =
        inputs.iter().map(|(path, disk)| (disk, path)).collect();
    // Path below `dest` → (path below the spec's folder, canonical path).
    let mut landed: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    for entry in files.get_ref() {
        let listed = folder
            .resolve(entry.get_ref())
            .map_err(|problem| fail(entry, problem))?;
        if listed.files.is_empty() {
            return Err(fail(
                entry,
                "is a folder with no file below it; the suite would copy nothing from it"
                    .to_owned(),
            ));
        }
        for (path, disk) in &listed.files {
            if inputs.contains_key(disk) {
                let holds = if listed.folder {
                    format!("holds `{path}`, which is also in `inputs`")
                } else {
                    "is also in `inputs`".to_owned()
                };
                return Err(fail(
                    entry,
                    format!(
                        "{holds}: it would be shown to the model and put in the build \
                         context; keep hidden test files out of `inputs`"
                    ),
                ));
            }
            let below = listed.below(path);
            match landed.get(below) {
                // A file listed twice (itself and its folder) is copied once.
                Some((_, earlier)) if earlier == disk => {}
                Some((earlier, _)) => {
                    return Err(fail(
                        entry,
                        format!(
                            "would copy `{path}` to `{dest}/{below}`, where `{earlier}` goes \
                             already; rename one, or list the folder that holds both so each \
                             keeps its path below it"
                        ),
                    ));
                }
                None => {
                    landed.insert(below.to_owned(), (path.clone(), disk.clone()));
                }
            }
        }
    }
    Ok(landed
        .into_iter()
        .map(|(below, (_, disk))| (below, disk))
        .collect())
}

/// `required`: test names, none empty, none twice.
fn required(source: &Source<'_>, raw: &[Spanned<String>]) -> Result<Vec<String>, SpecError> {
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(raw.len());
    for name in raw {
        let text = name.get_ref();
        if text.trim().is_empty() {
            return Err(source.invalid(
                name.span(),
                "`required` has an empty test name; give the name a test has in the JUnit \
                 file, e.g. \"test_add\""
                    .to_owned(),
            ));
        }
        if !seen.insert(text.as_str()) {
            return Err(source.invalid(
                name.span(),
                format!("`required` lists `{}` twice", text.escape_debug()),
            ));
        }
        names.push(text.clone());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use crate::errors::SpecError;
    use crate::spec::testing::MINIMAL;
    use crate::spec::{Spec, load_spec};

    /// The design's example, each key on a line of its own from line 4.
    const SUITE: &str = "[[suite]]\nname = \"unit\"\nfiles = [\"hidden_tests/\"]\n\
        dest = \"/suite\"\n\
        command = [\"python3\", \"-m\", \"pytest\", \"-q\", \"/suite\", \"--junitxml=/tmp/junit.xml\"]\n\
        junit = \"/tmp/junit.xml\"\n";

    /// A spec folder holding `hidden_tests/test_calc.py` and `hidden_tests/sub/x.py`.
    fn folder() -> tempfile::TempDir {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir_all(folder.path().join("hidden_tests/sub")).unwrap();
        fs::write(
            folder.path().join("hidden_tests/test_calc.py"),
            "def test_add(): pass\n",
        )
        .unwrap();
        fs::write(folder.path().join("hidden_tests/sub/x.py"), "X = 1\n").unwrap();
        folder
    }

    /// `text` after the minimal spec, written as `fizzbuzz.toml` in `folder` and loaded.
    fn spec_in(folder: &Path, text: &str) -> Result<Spec, SpecError> {
        let path = folder.join("fizzbuzz.toml");
        fs::write(&path, format!("{MINIMAL}{text}")).unwrap();
        load_spec(&path).map_err(|problems| problems.into_iter().next().unwrap())
    }

    /// The (line, column, message) of an `Invalid` error.
    fn invalid_in(folder: &Path, text: &str) -> (usize, usize, String) {
        match spec_in(folder, text) {
            Err(SpecError::Invalid { location, message }) => {
                assert_eq!(location.path, folder.join("fizzbuzz.toml"));
                (location.line, location.column, message)
            }
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    /// The (line, column, message after the location) of a `SuiteFile` error.
    fn file_problem(folder: &Path, text: &str) -> (usize, usize, String) {
        let error = spec_in(folder, text).unwrap_err();
        let SpecError::SuiteFile { location, .. } = &error else {
            panic!("expected a suite file error, got {error:?}");
        };
        assert_eq!(location.path, folder.join("fizzbuzz.toml"));
        let message = error.to_string();
        let message = message.strip_prefix(&format!("{location}: ")).unwrap();
        (location.line, location.column, message.to_owned())
    }

    fn canonical(folder: &Path, path: &str) -> PathBuf {
        fs::canonicalize(folder.join(path)).unwrap()
    }

    fn landed(spec: &Spec) -> Vec<&str> {
        spec.suites[0]
            .files
            .iter()
            .map(|(path, _)| path.as_str())
            .collect()
    }

    #[test]
    fn the_design_example_parses_with_every_field() {
        let folder = folder();
        let text = format!(
            "{SUITE}required = [\"test_add\", \"test_sub\"]\nmin_tests = 3\ntimeout_secs = 120\n"
        );
        let spec = spec_in(folder.path(), &text).unwrap();
        assert_eq!(
            spec.suites,
            [super::Suite {
                name: "unit".to_owned(),
                files: vec![
                    (
                        "sub/x.py".to_owned(),
                        canonical(folder.path(), "hidden_tests/sub/x.py")
                    ),
                    (
                        "test_calc.py".to_owned(),
                        canonical(folder.path(), "hidden_tests/test_calc.py")
                    ),
                ],
                dest: "/suite".to_owned(),
                command: [
                    "python3",
                    "-m",
                    "pytest",
                    "-q",
                    "/suite",
                    "--junitxml=/tmp/junit.xml"
                ]
                .map(str::to_owned)
                .to_vec(),
                junit: "/tmp/junit.xml".to_owned(),
                required: vec!["test_add".to_owned(), "test_sub".to_owned()],
                min_tests: 3,
                timeout_secs: Some(120),
            }]
        );
        assert!(spec.inputs.is_empty(), "hidden files are no inputs");
        assert!(
            spec.suites[0]
                .files
                .iter()
                .all(|(_, path)| path.is_absolute())
        );
    }

    #[test]
    fn defaults_and_a_trailing_slash_on_dest() {
        let folder = folder();
        let text = SUITE.replace("\"/suite\"\n", "\"/suite/\"\n");
        let spec = spec_in(folder.path(), &text).unwrap();
        let suite = &spec.suites[0];
        assert_eq!(suite.dest, "/suite");
        assert!(suite.required.is_empty());
        assert_eq!(suite.min_tests, 1);
        assert_eq!(suite.timeout_secs, None);
        assert!(spec_in(folder.path(), "").unwrap().suites.is_empty());
        let none_needed = spec_in(folder.path(), &format!("{SUITE}min_tests = 0\n")).unwrap();
        assert_eq!(none_needed.suites[0].min_tests, 0);
    }

    #[test]
    fn suites_keep_their_order() {
        let folder = folder();
        let text = format!("{}{SUITE}", SUITE.replace("\"unit\"", "\"smoke\""));
        let spec = spec_in(folder.path(), &text).unwrap();
        let names: Vec<&str> = spec
            .suites
            .iter()
            .map(|suite| suite.name.as_str())
            .collect();
        assert_eq!(names, ["smoke", "unit"]);
    }

    #[test]
    fn a_listed_file_lands_by_its_name_and_a_folder_by_the_paths_below_it() {
        let folder = folder();
        fs::write(folder.path().join("conftest.py"), "").unwrap();
        let files = |list: &str| SUITE.replace("[\"hidden_tests/\"]", list);
        let spec = spec_in(folder.path(), &files("[\"./hidden_tests/test_calc.py\"]")).unwrap();
        assert_eq!(landed(&spec), ["test_calc.py"]);
        let spec = spec_in(
            folder.path(),
            &files("[\"hidden_tests/sub\", \"conftest.py\", \"hidden_tests/test_calc.py\"]"),
        )
        .unwrap();
        assert_eq!(landed(&spec), ["conftest.py", "test_calc.py", "x.py"]);
        assert_eq!(
            spec.suites[0].files[2].1,
            canonical(folder.path(), "hidden_tests/sub/x.py")
        );
        // A file listed with its folder lands once; the spec's own folder keeps the
        // paths below it.
        let spec = spec_in(
            folder.path(),
            &files("[\"hidden_tests\", \"hidden_tests/test_calc.py\"]"),
        )
        .unwrap();
        assert_eq!(landed(&spec), ["sub/x.py", "test_calc.py"]);
        let spec = spec_in(folder.path(), &files("[\".\"]")).unwrap();
        assert_eq!(
            landed(&spec),
            [
                "conftest.py",
                "fizzbuzz.toml",
                "hidden_tests/sub/x.py",
                "hidden_tests/test_calc.py"
            ]
        );
    }

    #[test]
    fn two_files_landing_at_one_path_are_refused_naming_it() {
        let folder = folder();
        fs::create_dir(folder.path().join("more")).unwrap();
        fs::write(folder.path().join("more/test_calc.py"), "").unwrap();
        let text = SUITE.replace(
            "[\"hidden_tests/\"]",
            "[\"hidden_tests/\", \"more/test_calc.py\"]",
        );
        assert_eq!(
            file_problem(folder.path(), &text),
            (
                5,
                27,
                "suite `unit` file `more/test_calc.py` would copy `more/test_calc.py` to \
                 `/suite/test_calc.py`, where `hidden_tests/test_calc.py` goes already; rename \
                 one, or list the folder that holds both so each keeps its path below it"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_hidden_file_that_is_also_an_input_is_refused() {
        let folder = folder();
        let (line, column, message) = file_problem(
            folder.path(),
            &format!("inputs = [\"hidden_tests/sub/x.py\"]\n{SUITE}"),
        );
        assert_eq!((line, column), (6, 10));
        assert_eq!(
            message,
            "suite `unit` file `hidden_tests/` holds `hidden_tests/sub/x.py`, which is also in \
             `inputs`: it would be shown to the model and put in the build context; keep \
             hidden test files out of `inputs`"
        );
        // Through a symlink the input is the same file.
        std::os::unix::fs::symlink(
            folder.path().join("hidden_tests/test_calc.py"),
            folder.path().join("calc.py"),
        )
        .unwrap();
        let text = format!(
            "inputs = [\"calc.py\"]\n{}",
            SUITE.replace("\"hidden_tests/\"", "\"hidden_tests/test_calc.py\"")
        );
        let (_, _, message) = file_problem(folder.path(), &text);
        assert!(
            message.starts_with(
                "suite `unit` file `hidden_tests/test_calc.py` is also in `inputs`: it would be \
                 shown to the model and put in the build context"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_hidden_file_follows_the_rules_of_inputs() {
        let outer = tempfile::tempdir().unwrap();
        let spec_folder = outer.path().join("spec");
        fs::create_dir_all(spec_folder.join("empty")).unwrap();
        fs::write(outer.path().join("secret.py"), "").unwrap();
        let cases = [
            ("gone/", "does not exist"),
            (
                "../secret.py",
                "leaves the spec's folder (through `..` or a symlink); suite files must stay below it",
            ),
            (
                "/etc/hostname",
                "is absolute; suite files are relative to the spec's folder",
            ),
            ("", "is empty"),
            (
                "empty",
                "is a folder with no file below it; the suite would copy nothing from it",
            ),
        ];
        for (entry, problem) in cases {
            let text = SUITE.replace("hidden_tests/", entry);
            let (line, column, message) = file_problem(&spec_folder, &text);
            assert_eq!((line, column), (5, 10), "{entry}");
            assert_eq!(message, format!("suite `unit` file `{entry}` {problem}"));
        }
    }

    #[test]
    fn missing_keys_point_at_the_table() {
        let folder = folder();
        let cases = [
            (
                "name = \"unit\"\n",
                "[[suite]] has no `name`; give each suite a short unique name, e.g. \"unit\"",
            ),
            (
                "files = [\"hidden_tests/\"]\n",
                "[[suite]] `unit` has no `files`; list the hidden test files or folders, \
                 relative to the spec, e.g. [\"hidden_tests/\"]",
            ),
            (
                "dest = \"/suite\"\n",
                "[[suite]] `unit` has no `dest`; give the absolute folder in the container the \
                 files are copied to, e.g. \"/suite\"",
            ),
            (
                "command = [",
                "[[suite]] `unit` has no `command`; give the program that runs the tests and \
                 its arguments, e.g. [\"python3\", \"-m\", \"pytest\", \"/suite\"]",
            ),
            (
                "junit = \"/tmp/junit.xml\"\n",
                "[[suite]] `unit` has no `junit`; give the absolute path of the JUnit XML file \
                 its command writes, e.g. \"/tmp/junit.xml\"",
            ),
        ];
        for (line_start, expected) in cases {
            let text: String = SUITE
                .split_inclusive('\n')
                .filter(|line| !line.starts_with(line_start))
                .collect();
            let (line, column, message) = invalid_in(folder.path(), &text);
            assert_eq!((line, column), (3, 1), "{line_start}");
            assert_eq!(message, expected);
        }
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let folder = folder();
        let cases = [
            (
                "name = \"unit\"",
                "name = \"Unit\"",
                (4, 8),
                "suite name `Unit` is not allowed: use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            ),
            (
                "name = \"unit\"",
                "name = \"\"",
                (4, 8),
                "suite name `` is empty",
            ),
            (
                "files = [\"hidden_tests/\"]",
                "files = []",
                (5, 9),
                "`files` is empty; list the hidden test files or folders, relative to the spec, e.g. [\"hidden_tests/\"]",
            ),
            (
                "files = [\"hidden_tests/\"]",
                "files = \"hidden_tests/\"",
                (5, 9),
                "`suite.files`: invalid type: string \"hidden_tests/\", expected a sequence",
            ),
            (
                "dest = \"/suite\"",
                "dest = \"suite\"",
                (6, 8),
                "`dest` `suite` must be an absolute folder other than `/`, without `..` or NUL, e.g. \"/suite\"",
            ),
            (
                "dest = \"/suite\"",
                "dest = \"/\"",
                (6, 8),
                "`dest` `/` must be an absolute folder other than `/`",
            ),
            (
                "dest = \"/suite\"",
                "dest = \"//\"",
                (6, 8),
                "`dest` `//` must be an absolute folder other than `/`",
            ),
            (
                "dest = \"/suite\"",
                "dest = \"/a/../etc\"",
                (6, 8),
                "`dest` `/a/../etc` must be an absolute folder",
            ),
            (
                "dest = \"/suite\"",
                "dest = \"/a\\u0000b\"",
                (6, 8),
                "`dest` `/a\\0b` must be an absolute folder",
            ),
            (
                "command = [",
                "command = []",
                (7, 11),
                "`command` is empty; give the program that runs the tests and its arguments, e.g. [\"python3\", \"-m\", \"pytest\", \"/suite\"]",
            ),
            (
                "command = [",
                "command = [\"a\\u0000\"]",
                (7, 12),
                "an argument in `command` contains a NUL character",
            ),
            (
                "command = [",
                "command = [1]",
                (7, 12),
                "invalid type: integer `1`, expected a string",
            ),
            (
                "junit = \"/tmp/junit.xml\"",
                "junit = \"junit.xml\"",
                (8, 9),
                "`junit` `junit.xml` must be the absolute path of a file, without `..` or NUL, e.g. \"/tmp/junit.xml\"",
            ),
            (
                "junit = \"/tmp/junit.xml\"",
                "junit = \"/tmp/\"",
                (8, 9),
                "`junit` `/tmp/` must be the absolute path of a file",
            ),
            (
                "junit = \"/tmp/junit.xml\"",
                "junit = \"/tmp/../junit.xml\"",
                (8, 9),
                "`junit` `/tmp/../junit.xml` must be the absolute path of a file",
            ),
        ];
        for (line_start, replacement, position, expected) in cases {
            let text: String = SUITE
                .split_inclusive('\n')
                .map(|line| {
                    if line.starts_with(line_start) {
                        format!("{replacement}\n")
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            let (line, column, message) = invalid_in(folder.path(), &text);
            assert_eq!((line, column), position, "{replacement}: {message}");
            assert!(message.starts_with(expected), "{replacement}: {message}");
        }
    }

    #[test]
    fn bad_optional_values_point_at_the_value() {
        let folder = folder();
        let cases = [
            (
                "required = [\"test_add\", \"test_add\"]",
                (9, 25),
                "`required` lists `test_add` twice",
            ),
            (
                "required = [\" \"]",
                (9, 13),
                "`required` has an empty test name; give the name a test has in the JUnit file, e.g. \"test_add\"",
            ),
            (
                "required = \"test_add\"",
                (9, 12),
                "`suite.required`: invalid type: string \"test_add\", expected a sequence",
            ),
            (
                "min_tests = -1",
                (9, 13),
                "`suite.min_tests`: invalid value: integer `-1`, expected a non-negative integer",
            ),
            (
                "timeout_secs = 0",
                (9, 16),
                "`timeout_secs` must be at least 1",
            ),
            (
                "timeout = 5",
                (9, 1),
                "unknown key `timeout` in [[suite]]; expected one of `name`, `files`, `dest`, `command`, `junit`, `required`, `min_tests`, `timeout_secs`",
            ),
        ];
        for (extra, position, expected) in cases {
            let (line, column, message) = invalid_in(folder.path(), &format!("{SUITE}{extra}\n"));
            assert_eq!((line, column), position, "{extra}: {message}");
            assert!(message.starts_with(expected), "{extra}: {message}");
        }
    }

    #[test]
    fn suite_names_are_unique() {
        let folder = folder();
        let (line, column, message) = invalid_in(folder.path(), &format!("{SUITE}{SUITE}"));
        assert_eq!((line, column), (10, 8));
        assert_eq!(
            message,
            "suite name `unit` is already used by an earlier [[suite]]; names must be unique"
        );
    }
}
