//! `[[case]]`: several runs of one image, each with its own input and checks, and the
//! default case a spec without cases runs.

use std::collections::{BTreeMap, HashSet};

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::check::{Check, CheckResult, FILE_GROUP, IMAGE_GROUP, Observed};
use crate::errors::SpecError;
use crate::spec::Spec;
use crate::spec::checks::{RawCheck, build_checks};
use crate::spec::run::{RunSpec, build_env, build_list};
use crate::validate::Source;

/// The name of the one case a spec without `[[case]]` runs, from `[run]`.
pub const DEFAULT_CASE: &str = "run";

/// One run of the image: what the container gets and what must hold of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Case {
    /// Unique within the spec; the group of its results.
    pub name: String,
    pub stdin: Option<String>,
    /// Appended to the image's command (after `[run].args`).
    pub args: Vec<String>,
    /// `[run].env` with the case's own set over it.
    pub env: BTreeMap<String, String>,
    /// Replaces the image's ENTRYPOINT when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD when set.
    pub command: Option<Vec<String>>,
    /// `None`: the spec's run timeout.
    pub timeout_secs: Option<u64>,
    /// The case's own checks, then the spec's top-level ones.
    pub checks: Vec<Check>,
}

impl Case {
    /// Every check of the case on what one run did, grouped under the case's name.
    pub fn evaluate(&self, observed: &Observed<'_>) -> Vec<CheckResult> {
        self.checks
            .iter()
            .map(|check| check.evaluate(&self.name, observed))
            .collect()
    }
}

impl Spec {
    /// What the loop runs: the `[[case]]`s as written (each already holding `[run]`'s
    /// settings and the top-level checks), else one default case from `[run]` named
    /// [`DEFAULT_CASE`] when there is something to judge its run by: `[[check]]`s, or
    /// the model's judgement (a spec with nothing deterministic to check is judged, and
    /// runs as it always did). A spec with only image, file or structure checks runs
    /// no case.
    pub fn cases_to_run(&self) -> Vec<Case> {
        if !self.cases.is_empty() {
            return self.cases.clone();
        }
        // A service's top-level checks judge its logs; it is never run as a case.
        if self.service.is_some() || (self.checks.is_empty() && !self.judge) {
            return Vec::new();
        }
        vec![Case {
            name: DEFAULT_CASE.to_owned(),
            stdin: self.run.stdin.clone(),
            args: self.run.args.clone(),
            env: self.run.env.clone(),
            entrypoint: None,
            command: None,
            timeout_secs: None,
            checks: self.checks.clone(),
        }]
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Case")]
pub(crate) struct RawCase {
    name: Option<Spanned<String>>,
    stdin: Option<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    entrypoint: Option<Vec<Spanned<String>>>,
    command: Option<Vec<Spanned<String>>>,
    timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

impl RawCase {
    pub(crate) fn has_checks(&self) -> bool {
        !self.check.is_empty()
    }
}

/// Groups of results that are not cases.
const RESERVED: [&str; 2] = [IMAGE_GROUP, FILE_GROUP];

/// Longest case name: it names results, JUnit classes and report rows.
const CASE_NAME_LIMIT: usize = 128;

/// The `[[case]]` tables, each merged with `[run]` and followed by the top-level
/// `checks`. `judged`: the model judges the output, so a case may have no check.
pub(crate) fn build_cases(
    source: &Source<'_>,
    raw: &[Spanned<RawCase>],
    run: &RunSpec,
    checks: &[Check],
    judged: bool,
) -> Result<Vec<Case>, SpecError> {
    let mut names = HashSet::new();
    let mut cases = Vec::with_capacity(raw.len());
    for table in raw {
        let case = table.get_ref();
        let name = case_name(source, table, &mut names)?;
        let mut own = build_checks(source, &case.check, checks)?;
        if own.is_empty() && checks.is_empty() && !judged {
            return Err(source.invalid(
                table.span(),
                format!(
                    "case `{name}` has no check: add a [[case.check]] after it, a top-level \
                     [[check]], or `judge = true`"
                ),
            ));
        }
        own.extend(checks.iter().cloned());
        let mut env = run.env.clone();
        env.extend(build_env(source, &case.env)?);
        let mut args = run.args.clone();
        args.extend(build_list(source, "args", &case.args)?);
        let list = |key, value: &Option<Vec<Spanned<String>>>| {
            value
                .as_ref()
                .map(|items| build_list(source, key, items))
                .transpose()
        };
        let timeout_secs = source.number("timeout_secs", case.timeout_secs.clone(), |secs| {
            if secs == 0 {
                Err("must be at least 1".to_owned())
            } else {
                Ok(secs)
            }
        })?;
        cases.push(Case {
            name,
            stdin: case.stdin.clone().or_else(|| run.stdin.clone()),
            args,
            env,
            entrypoint: list("entrypoint", &case.entrypoint)?,
            command: list("command", &case.command)?,
            timeout_secs,
            checks: own,
        });
    }
    Ok(cases)
}

/// A case's `name`: present, a few visible words, unique within the spec.
fn case_name(
    source: &Source<'_>,
    table: &Spanned<RawCase>,
    names: &mut HashSet<String>,
) -> Result<String, SpecError> {
    let Some(name) = &table.get_ref().name else {
        return Err(source.invalid(
            table.span(),
            "[[case]] has no `name`; give each case a short unique name".to_owned(),
        ));
    };
    let text = name.get_ref();
    let problem = if text.trim().is_empty() {
        Some("is empty; give the case a few words".to_owned())
    } else if text.chars().any(char::is_control) {
        Some("contains a control character".to_owned())
    } else if text.len() > CASE_NAME_LIMIT {
        Some(format!("is longer than {CASE_NAME_LIMIT} characters"))
    } else if RESERVED.contains(&text.as_str()) {
        Some("is the group of other checks' results; choose another name".to_owned())
    } else if !names.insert(text.clone()) {
        Some("is already used by an earlier [[case]]; names must be unique".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(source.invalid(
            name.span(),
            format!("case name `{}` {problem}", text.escape_debug()),
        )),
        None => Ok(text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use crate::check::Matcher;
    use crate::spec::testing::{MINIMAL, invalid, observed, parse, readme_blocks};

    const ADDER: &str = r#"
[run]
env = { LANG = "C.UTF-8", MODE = "slow" }
args = ["--quiet"]

[[check]]
exit_code = 0

[[case]]
name = "two numbers"
stdin = "3 4\n"
args = ["--sum"]
env = { MODE = "fast" }
entrypoint = ["python3"]
command = ["main.py"]
timeout_secs = 10
[[case.check]]
stdout_equals = "7"

[[case]]
name = "help"
args = ["--help"]
[[case.check]]
stdout_contains = "usage"
[[case.check]]
name = "exit_code"
exit_code = 0
"#;

    #[test]
    fn cases_merge_run_settings_and_add_the_top_level_checks() {
        let spec = parse(&format!(
            "{MINIMAL}{}",
            ADDER.replace(
                "name = \"exit_code\"\nexit_code = 0",
                "stderr_not_contains = \"Traceback\""
            )
        ))
        .unwrap();
        let cases = spec.cases_to_run();
        assert_eq!(cases.len(), 2);
        let sum = &cases[0];
        assert_eq!(sum.name, "two numbers");
        assert_eq!(sum.stdin.as_deref(), Some("3 4\n"));
        assert_eq!(sum.args, ["--quiet", "--sum"]);
        assert_eq!(sum.env["MODE"], "fast");
        assert_eq!(sum.env["LANG"], "C.UTF-8");
        assert_eq!(sum.entrypoint.as_deref(), Some(&["python3".to_owned()][..]));
        assert_eq!(sum.command.as_deref(), Some(&["main.py".to_owned()][..]));
        assert_eq!(sum.timeout_secs, Some(10));
        let names: Vec<&str> = sum.checks.iter().map(|check| check.name.as_str()).collect();
        assert_eq!(names, ["stdout_equals", "exit_code"]);
        let help = &cases[1];
        assert_eq!(help.stdin, None);
        assert_eq!(help.env["MODE"], "slow");
        assert_eq!(help.entrypoint, None);
        assert_eq!(help.timeout_secs, None);
        assert_eq!(help.checks.len(), 3);
        assert!(!spec.judge, "cases with checks are deterministic");
    }

    #[test]
    fn a_case_judges_under_its_own_name() {
        let spec = parse(&format!(
            "{MINIMAL}{}",
            ADDER.replace("name = \"exit_code\"\nexit_code = 0", "exit_code = 0")
        ))
        .unwrap();
        let results = spec.cases[0].evaluate(&observed("7\n"));
        assert!(
            results
                .iter()
                .all(|result| result.group == "two numbers" && result.passed)
        );
        let results = spec.cases[0].evaluate(&observed("8\n"));
        assert!(!results[0].passed);
        assert!(results[0].detail.contains("\"8\""), "{}", results[0].detail);
    }

    #[test]
    fn without_cases_the_run_is_the_one_default_case() {
        let spec = parse(&format!(
            "{MINIMAL}[run]\nstdin = \"x\"\nargs = [\"-v\"]\n[[check]]\nstdout_contains = \"hi\"\n"
        ))
        .unwrap();
        let cases = spec.cases_to_run();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].name, "run");
        assert_eq!(cases[0].stdin.as_deref(), Some("x"));
        assert_eq!(cases[0].args, ["-v"]);
        assert!(matches!(
            cases[0].checks[0].matcher,
            Matcher::StdoutContains(_)
        ));
    }

    #[test]
    fn a_judged_spec_runs_its_default_case_and_image_checks_alone_run_none() {
        let judged = parse(MINIMAL).unwrap().cases_to_run();
        assert_eq!(judged.len(), 1);
        assert_eq!(judged[0].name, "run");
        assert!(judged[0].checks.is_empty());
        let image_only = parse(&format!("{MINIMAL}[image]\nnon_root = true\n")).unwrap();
        assert!(image_only.cases_to_run().is_empty());
        let judged_image = parse(&format!(
            "{MINIMAL}judge = true\n[image]\nnon_root = true\n"
        ))
        .unwrap();
        assert_eq!(
            judged_image.cases_to_run().len(),
            1,
            "the judge needs a run to read"
        );
    }

    #[test]
    fn a_case_check_may_not_take_a_top_level_name() {
        let (line, column, message) = invalid(&format!("{MINIMAL}{ADDER}"));
        assert_eq!((line, column), (28, 8));
        assert!(
            message.contains("already used by a top-level [[check]]"),
            "{message}"
        );
    }

    #[test]
    fn case_names_are_required_unique_and_not_a_group_of_other_checks() {
        let case = "[[case]]\nname = \"a\"\n[[case.check]]\nexit_code = 0\n";
        let (line, column, message) = invalid(&format!("{MINIMAL}{case}{case}"));
        assert_eq!((line, column), (8, 8));
        assert!(
            message.contains("case name `a` is already used"),
            "{message}"
        );
        let (line, _, message) = invalid(&format!("{MINIMAL}[[case]]\nstdin = \"1\"\n"));
        assert_eq!(line, 3);
        assert!(message.contains("has no `name`"), "{message}");
        let (_, _, message) = invalid(&format!("{MINIMAL}{}", case.replace("\"a\"", "\"image\"")));
        assert!(message.contains("choose another name"), "{message}");
        let (_, _, message) = invalid(&format!("{MINIMAL}{}", case.replace("\"a\"", "\"  \"")));
        assert!(message.contains("is empty"), "{message}");
    }

    #[test]
    fn case_values_are_checked_where_they_are_written() {
        let (line, column, message) = invalid(&format!(
            "{MINIMAL}[[case]]\nname = \"a\"\ntimeout_secs = 0\n[[case.check]]\nexit_code = 0\n"
        ));
        assert_eq!((line, column), (5, 16));
        assert!(
            message.contains("`timeout_secs` must be at least 1"),
            "{message}"
        );
        let (line, _, message) = invalid(&format!(
            "{MINIMAL}[[case]]\nname = \"a\"\nentrypoint = [\"a\\u0000\"]\n[[case.check]]\nexit_code = 0\n"
        ));
        assert_eq!(line, 5);
        assert!(message.contains("`entrypoint` contains a NUL"), "{message}");
        let (line, column, message) = invalid(&format!(
            "{MINIMAL}[[case]]\nname = \"a\"\nstdout = \"x\"\n"
        ));
        assert_eq!((line, column), (5, 1));
        assert!(message.contains("stdout"), "{message}");
        let (_, _, message) = invalid(&format!(
            "{MINIMAL}[[case]]\nname = \"a\"\n[[case.check]]\nexit_code = 0\nstdout_contains = \"x\"\n"
        ));
        assert!(message.contains("two matchers"), "{message}");
    }

    #[test]
    fn a_case_without_any_check_needs_the_judge() {
        let (line, _, message) = invalid(&format!(
            "{MINIMAL}judge = false\n[image]\nnon_root = true\n[[case]]\nname = \"a\"\n"
        ));
        assert_eq!(line, 6);
        assert!(message.contains("case `a` has no check"), "{message}");
        let spec = parse(&format!("{MINIMAL}[[case]]\nname = \"a\"\n")).unwrap();
        assert!(spec.judge, "nothing deterministic: the judge is on");
        assert_eq!(spec.cases_to_run().len(), 1);
    }

    #[test]
    fn the_readme_example_reads_as_it_says() {
        let blocks = readme_blocks("toml", "[[case]]");
        assert_eq!(blocks.len(), 1);
        let spec = parse(&blocks[0]).unwrap();
        let names: Vec<&str> = spec.cases.iter().map(|case| case.name.as_str()).collect();
        assert_eq!(names, ["two numbers", "bad input", "help"]);
        assert_eq!(spec.cases[1].env["LANG"], "C.UTF-8");
        assert_eq!(spec.cases[2].args, ["--help"]);
        assert!(
            spec.cases
                .iter()
                .all(|case| case.checks.last().unwrap().name == "stderr_not_contains")
        );
        assert!(spec.image.unwrap().non_root);
        assert_eq!(spec.files[0].path, "/app/add.py");
        assert!(!spec.judge);
    }
}
