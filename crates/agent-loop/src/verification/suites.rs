//! Hidden test suites (`[[suite]]`): files the model never sees, copied into a
//! container of the built image, the suite's command run under the spec's limits, its
//! JUnit file read back and graded as SWE-bench grades (`agent_sandbox::junit`). Each
//! test is a result of group `suite:<name>`, and one `grade` result says whether the
//! suite passed as a whole. The feedback names the failed tests with their messages
//! and output, never the files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use agent_sandbox::junit::{self, Criteria, Grade, Problem};
use agent_sandbox::{EnginePort, SuiteOutcome, SuiteRequest};
use agent_spec::{CheckResult, Suite, excerpt};

use crate::errors::LoopError;
use crate::job::{Job, run_limits};
use crate::report::{Outcome, SuiteRecord, TestRecord, round_secs};
use crate::verification::{Evidence, Facts, Failure, Kind};

/// The most a JUnit file may weigh to be read back.
const JUNIT_LIMIT_BYTES: usize = 8 * 1024 * 1024;
/// Failed tests shown with their message and output; the rest are named only.
const TESTS_SHOWN: usize = 8;
/// Bytes of a failed test's output shown.
const TEST_OUTPUT_BYTES: usize = 1536;
/// Bytes of each stream of the suite's command shown when it wrote no usable file.
const STREAM_BYTES: usize = 2048;

/// A suite's run and its grade, graded once.
pub(crate) struct SuiteRun {
    pub outcome: SuiteOutcome,
    pub grade: Grade,
}

/// Runs `suite` against `image` and grades it; `started` is when the spec's run
/// started.
pub(crate) async fn run<E: EnginePort>(
    job: &Job,
    suite: &Suite,
    engine: &E,
    image: &str,
    labels: &BTreeMap<String, String>,
    started: Instant,
) -> Result<SuiteRun, LoopError> {
    let files = crate::artifacts::read_suite(suite)?;
    let secs = suite.timeout_secs.unwrap_or(job.limits.run_timeout_secs);
    let outcome = engine
        .run_suite(SuiteRequest {
            image,
            command: &suite.command,
            files: &files,
            dest: &suite.dest,
            junit: &suite.junit,
            junit_limit_bytes: JUNIT_LIMIT_BYTES,
            env: &job.spec.run.env,
            labels,
            limits: run_limits(&job.limits, job.timeout(secs, started)),
        })
        .await?;
    let grade = grade(suite, &outcome);
    Ok(SuiteRun { outcome, grade })
}

pub(crate) struct Suites<'a>(pub &'a [Suite]);

impl Kind for Suites<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let mut results = Vec::new();
        let mut feedback = String::new();
        let mut detail = None;
        for (suite, SuiteRun { outcome, grade }) in self.0.iter().zip(&facts.suites) {
            let group = format!("suite:{}", suite.name);
            let verdict = verdict(grade, outcome);
            results.extend(grade.tests.iter().map(|test| {
                let detail = test
                    .message
                    .clone()
                    .unwrap_or_else(|| if test.passed { "passed" } else { "failed" }.to_owned());
                CheckResult::new(&group, test_name(test), test.passed, detail)
            }));
            results.push(CheckResult::new(
                &group,
                "grade".to_owned(),
                grade.passed,
                verdict.clone(),
            ));
            if !grade.passed {
                detail.get_or_insert_with(|| format!("suite `{}`: {verdict}", suite.name));
                suite_feedback(&mut feedback, suite, grade, outcome, &verdict);
            }
        }
        let failure = detail.map(|detail| Failure {
            outcome: Outcome::ChecksFailed,
            detail,
            feedback,
        });
        Evidence { results, failure }
    }

    /// What the model is told of the suites: that they exist and how they run, never
    /// their files.
    fn describe(&self, _job: &Job) -> String {
        let suites = self.0;
        if suites.is_empty() {
            return String::new();
        }
        let mut text = String::from(
            "\nHidden test suites you cannot see are run against the built image; write the code so that a careful test of the task passes:\n",
        );
        for suite in suites {
            let _ = writeln!(
                text,
                "- `{}`: its files are copied to `{}` in a container of the image, then `{}` runs (replacing ENTRYPOINT and CMD) and must pass every test.",
                suite.name,
                suite.dest,
                serde_json::to_string(&suite.command).unwrap_or_default()
            );
        }
        text
    }
}

/// Each suite's grade and tests, for the iteration's record.
pub(crate) fn records(suites: &[Suite], runs: &[SuiteRun]) -> Vec<SuiteRecord> {
    suites
        .iter()
        .zip(runs)
        .map(|(suite, SuiteRun { outcome, grade })| {
            let ran = outcome.run.as_ref();
            SuiteRecord {
                name: suite.name.clone(),
                passed: grade.passed,
                exit_code: ran.and_then(|run| run.exit_code),
                run_secs: ran.map_or(0.0, |run| round_secs(run.duration)),
                tests: grade
                    .tests
                    .iter()
                    .map(|test| TestRecord {
                        name: test.name.clone(),
                        classname: test.classname.clone(),
                        passed: test.passed,
                        skipped: test.skipped,
                        message: test.message.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn grade(suite: &Suite, outcome: &SuiteOutcome) -> Grade {
    let criteria = Criteria {
        min_tests: suite.min_tests,
        required: suite.required.clone(),
    };
    let exit_code = outcome.run.as_ref().and_then(|run| run.exit_code);
    junit::grade(&outcome.junit, exit_code, &criteria)
}

/// The grade in one line: how many tests passed, or every reason it did not.
fn verdict(grade: &Grade, outcome: &SuiteOutcome) -> String {
    if let Some(refused) = &outcome.copy_error {
        return format!("the hidden files could not be copied in: {refused}");
    }
    let ran = grade.tests.iter().filter(|test| !test.skipped).count();
    let passed = grade.tests.iter().filter(|test| test.passed).count();
    if grade.passed {
        return format!("{passed} of {ran} tests passed");
    }
    let timed_out = outcome.run.as_ref().is_some_and(|run| run.timed_out);
    let mut reasons: Vec<String> = grade
        .problems
        .iter()
        .filter(|problem| !matches!(problem, Problem::Failed(_)))
        .map(ToString::to_string)
        .collect();
    if timed_out {
        reasons.insert(0, "the suite was killed at its timeout".to_owned());
    }
    let failed = ran - passed;
    if failed > 0 {
        reasons.insert(0, format!("{failed} of {ran} tests failed"));
    }
    reasons.join("; ")
}

fn test_name(test: &junit::TestResult) -> String {
    if test.classname.is_empty() {
        test.name.clone()
    } else {
        format!("{}.{}", test.classname, test.name)
    }
}

/// A failed suite for the model: the verdict, each failed test with its message and
/// output (the first [`TESTS_SHOWN`]), and when no test told anything, what the
/// command printed.
fn suite_feedback(
    out: &mut String,
    suite: &Suite,
    grade: &Grade,
    outcome: &SuiteOutcome,
    verdict: &str,
) {
    let _ = writeln!(
        out,
        "The hidden test suite `{}` (you cannot see its files) did not pass: {verdict}.",
        suite.name
    );
    let failed: Vec<&junit::TestResult> = grade
        .tests
        .iter()
        .filter(|test| !test.passed && !test.skipped)
        .collect();
    for test in failed.iter().take(TESTS_SHOWN) {
        let _ = writeln!(out, "\nTest `{}` failed", test_name(test));
        if let Some(message) = &test.message {
            let _ = writeln!(out, "Message: {}", excerpt(message, 400));
        }
        if !test.output.trim().is_empty() {
            let _ = writeln!(
                out,
                "```\n{}\n```",
                excerpt(&test.output, TEST_OUTPUT_BYTES).trim_end()
            );
        }
    }
    if failed.len() > TESTS_SHOWN {
        let rest: Vec<String> = failed[TESTS_SHOWN..]
            .iter()
            .map(|test| format!("`{}`", test_name(test)))
            .collect();
        let _ = writeln!(out, "\nAlso failed: {}.", rest.join(", "));
    }
    // When no test tells what went wrong, what the command printed does.
    if let Some(ran) = outcome.run.as_ref().filter(|_| failed.is_empty()) {
        for (title, captured) in [("stderr", &ran.stderr), ("stdout", &ran.stdout)] {
            let text = String::from_utf8_lossy(&captured.bytes);
            if !text.trim().is_empty() {
                let _ = writeln!(
                    out,
                    "The suite's {title}:\n```\n{}\n```",
                    excerpt(&text, STREAM_BYTES).trim_end()
                );
            }
        }
    }
    out.push('\n');
}
