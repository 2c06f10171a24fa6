//! Reading a spec file: serde reads the text into raw tables that keep the span of
//! every value (unknown keys and wrong types are rejected there), then each table's
//! module turns its part into the [`Spec`], pointing any problem at its value.

use std::path::Path;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::config::SpecLimitsTable;
use crate::errors::{Problems, SpecError};
use crate::position::describe;
use crate::problems::every_problem;
use crate::spec::cases::{RawCase, build_cases};
use crate::spec::checks::{RawCheck, build_checks};
use crate::spec::files::{RawFile, build_files};
use crate::spec::image::{RawImage, build_image};
use crate::spec::inputs::resolve_inputs;
use crate::spec::run::{RawRun, RunSpec, build_run};
use crate::spec::service::{RawProbe, RawService, build_probes, build_service};
use crate::spec::structure_tests::{read_structure_tests, structure_settings};
use crate::spec::suites::{RawSuite, build_suites};
use crate::spec::{Service, Spec, SpecLimits};
use crate::validate::{Source, name as check_name};

/// Reads and validates a spec file, with every problem found in it (up to 20).
pub fn load_spec(path: &Path) -> Result<Spec, Problems<SpecError>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        Problems::new(vec![SpecError::Read {
            path: path.to_path_buf(),
            source,
        }])
    })?;
    every_problem(&text, |text| parse_spec(path, text))
}

/// The JSON Schema of `spec.toml`, generated from the tables it is read with.
pub fn spec_schema() -> serde_json::Value {
    crate::spanned::schema_of::<RawSpec>("spec.toml")
}

/// Parses spec text; `path` names the file in errors, gives the default name (its
/// stem) and the folder that `inputs` and hidden test files are relative to.
pub fn parse_spec(path: &Path, text: &str) -> Result<Spec, SpecError> {
    let mut raw: RawSpec = toml::from_str(text).map_err(|error| {
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
    let checks = build_checks(&source, &raw.check, &[])?;
    let limits = match raw.limits.take() {
        Some(limits) => limits.read(&source)?,
        None => SpecLimits::default(),
    };
    let run = match &raw.run {
        Some(run) => build_run(&source, run)?,
        None => RunSpec::default(),
    };
    let image = raw
        .image
        .as_ref()
        .map(|image| build_image(&source, image))
        .transpose()?;
    let files = build_files(&source, &raw.file)?;
    let inputs = resolve_inputs(&source, &raw.inputs)?;
    let structure = structure_settings(
        &source,
        raw.structure_defaults.as_ref(),
        raw.structure_allow_host,
    )?;
    let structure_tests = read_structure_tests(&source, &raw.structure_tests, structure)?;
    let service = raw
        .service
        .as_ref()
        .map(|table| service_part(&source, table, &raw))
        .transpose()?;
    let probes = build_probes(&source, &raw.probe, service.as_ref())?;
    let suites = build_suites(&source, &raw.suite, &inputs)?;
    let mut spec = Spec {
        name,
        path: path.to_path_buf(),
        prompt: raw.prompt.into_inner(),
        conditions: raw.conditions.into_inner(),
        // Both follow from what the spec checks, settled below.
        judge: false,
        cases: Vec::new(),
        inputs,
        limits,
        run,
        checks,
        image,
        files,
        structure_tests,
        service,
        probes,
        suites,
    };
    let deterministic = !spec.checks.is_empty()
        || raw.case.iter().any(|case| case.get_ref().has_checks())
        || !spec.checks_runs_only();
    spec.judge = resolve_judge(&source, raw.judge.as_ref(), deterministic)?;
    spec.cases = build_cases(&source, &raw.case, &spec.run, &spec.checks, spec.judge)?;
    Ok(spec)
}

/// `[service]`, which runs the image once as a service: its top-level checks judge
/// the logs, so neither an exit code (it is stopped, not left to exit) nor cases
/// (one-shot runs) go with it.
fn service_part(
    source: &Source<'_>,
    table: &Spanned<RawService>,
    raw: &RawSpec,
) -> Result<Service, SpecError> {
    if let Some(span) = raw
        .check
        .iter()
        .find_map(|check| check.get_ref().exit_code_span())
    {
        return Err(source.invalid(
            span,
            "`exit_code` with [service]: a service is stopped when its probes are done, so \
             its exit code says nothing; check its logs (`stdout_contains`, …) or its \
             responses ([[probe]])"
                .to_owned(),
        ));
    }
    if let Some(case) = raw.case.first() {
        return Err(source.invalid(
            case.span(),
            "[[case]] with [service]: cases run the image to its exit, a service runs until \
             it is stopped; put the cases in a spec of their own"
                .to_owned(),
        ));
    }
    build_service(source, table)
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

/// The explicit `judge`, else judging exactly when the spec has nothing
/// deterministic to check (no check of any kind).
fn resolve_judge(
    source: &Source<'_>,
    judge: Option<&Spanned<bool>>,
    deterministic: bool,
) -> Result<bool, SpecError> {
    match judge {
        Some(judge) if !*judge.get_ref() && !deterministic => Err(source.invalid(
            judge.span(),
            "`judge = false` with no check of any kind leaves nothing to verify the program; \
             add a [[check]] (or [[case]] checks, [image], [[file]], `structure_tests`, \
             [service], [[suite]]) or \
             remove `judge`"
                .to_owned(),
        )),
        Some(judge) => Ok(*judge.get_ref()),
        None => Ok(!deterministic),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Spec")]
struct RawSpec {
    name: Option<Spanned<String>>,
    prompt: Spanned<String>,
    conditions: Spanned<String>,
    judge: Option<Spanned<bool>>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    limits: Option<SpecLimitsTable>,
    run: Option<RawRun>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
    image: Option<Spanned<RawImage>>,
    #[serde(default)]
    file: Vec<Spanned<RawFile>>,
    #[serde(default)]
    structure_tests: Vec<Spanned<String>>,
    structure_defaults: Option<Spanned<String>>,
    structure_allow_host: Option<bool>,
    service: Option<Spanned<RawService>>,
    #[serde(default)]
    probe: Vec<Spanned<RawProbe>>,
    #[serde(default)]
    suite: Vec<Spanned<RawSuite>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Matcher;
    use crate::config::NetworkMode;
    use crate::spec::testing::{MINIMAL, invalid, parse};

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
    fn judge_defaults_to_true_only_when_nothing_deterministic_is_checked() {
        let deterministic = [
            "[[case]]\nname = \"a\"\n[[case.check]]\nexit_code = 0\n",
            "[image]\nnon_root = true\n",
            "[[file]]\npath = \"/app\"\n",
        ];
        for part in deterministic {
            assert!(!parse(&format!("{MINIMAL}{part}")).unwrap().judge, "{part}");
        }
        // A case without checks is no deterministic check: its output is judged.
        assert!(
            parse(&format!("{MINIMAL}[[case]]\nname = \"a\"\n"))
                .unwrap()
                .judge
        );
        let with_image = format!("{MINIMAL}judge = false\n[image]\nuser = \"app\"\n");
        assert!(
            !parse(&with_image).unwrap().judge,
            "image checks alone may verify"
        );
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
}
