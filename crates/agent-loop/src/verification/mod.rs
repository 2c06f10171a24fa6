//! Everything an iteration checks on a built image: the runs of its cases, its config
//! (`[image]`), its files (`[[file]]`), its container-structure-test configs, the
//! image as a service (`[service]`, `[[probe]]`) and its hidden test suites
//! (`[[suite]]`). The
//! engine's facts are gathered once per iteration ([`gather`]), then each kind of check
//! judges them and words its own feedback, one module per kind, all through [`Kind`].

mod cases;
mod files;
mod gather;
mod image;
pub(crate) mod service;
mod structure;
pub(crate) mod suites;

use std::fmt::Write as _;

use agent_spec::CheckResult;

use crate::iteration::Ending;
use crate::job::Job;
use crate::report::Outcome;

pub(crate) use cases::CaseRun;
pub(crate) use gather::{Facts, gather};

/// How much feedback all failed checks together may take: the repair request stays
/// bounded however many cases or tests fail.
const FEEDBACK_LIMIT: usize = 24 * 1024;

/// One kind of check: it judges the facts the engine gave and, when something failed,
/// says what in words the model can act on.
pub(crate) trait Kind {
    fn judge(&self, job: &Job, facts: &Facts) -> Evidence;

    /// The checks in words, for the task prompt.
    fn describe(&self, job: &Job) -> String;
}

/// What one kind of check found.
pub(crate) struct Evidence {
    pub results: Vec<CheckResult>,
    pub failure: Option<Failure>,
}

/// A kind of check that failed: the outcome it stands for, a one-line detail for the
/// report, and its section of the feedback.
pub(crate) struct Failure {
    pub outcome: Outcome,
    pub detail: String,
    pub feedback: String,
}

/// Every kind of check the job's spec has, in the order results are reported.
fn kinds(job: &Job) -> Vec<Box<dyn Kind + '_>> {
    let mut kinds: Vec<Box<dyn Kind + '_>> = vec![Box::new(cases::Cases)];
    if let Some(checks) = &job.spec.image {
        kinds.push(Box::new(image::Image(checks)));
    }
    if !job.spec.files.is_empty() {
        kinds.push(Box::new(files::Files(&job.spec.files)));
    }
    for (index, file) in job.spec.structure_tests.iter().enumerate() {
        kinds.push(Box::new(structure::Structure { file, index }));
    }
    if let Some(service) = &job.spec.service {
        kinds.push(Box::new(service::ServiceKind(service)));
    }
    if !job.spec.suites.is_empty() {
        kinds.push(Box::new(suites::Suites(&job.spec.suites)));
    }
    kinds
}

/// Every result, and how the iteration ends when any failed. A spec whose only kind is
/// its default case ends as it always did (`run_timeout`, `run_failed`,
/// `checks_failed`, with that run's feedback); with several cases or kinds, any
/// failure is `checks_failed` and the feedback names each.
pub(crate) fn judge(job: &Job, facts: &Facts) -> (Vec<CheckResult>, Option<Ending>) {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for kind in kinds(job) {
        let evidence = kind.judge(job, facts);
        results.extend(evidence.results);
        failures.extend(evidence.failure);
    }
    let only_default_case = cases::is_default_only(job);
    let ending = match failures.len() {
        0 => None,
        1 if only_default_case => failures.pop().map(|failure| Ending {
            outcome: failure.outcome,
            detail: failure.detail,
            feedback: failure.feedback,
        }),
        _ => Some(combined(&results, &failures)),
    };
    (results, ending)
}

fn combined(results: &[CheckResult], failures: &[Failure]) -> Ending {
    let failed = results.iter().filter(|result| !result.passed).count();
    let mut feedback = format!(
        "The image was built, but {failed} of {} checks failed.\n",
        results.len()
    );
    for (index, failure) in failures.iter().enumerate() {
        let section = failure.feedback.trim_end();
        let room = FEEDBACK_LIMIT.saturating_sub(feedback.len() + 2);
        if index == 0 && section.len() > room {
            // The first failure is always shown, cut to fit.
            let _ = writeln!(feedback, "\n{}", agent_spec::excerpt(section, room));
            continue;
        }
        if section.len() > room {
            let _ = writeln!(
                feedback,
                "\n(more failures were found; fix these first: {})",
                failure.detail
            );
            break;
        }
        let _ = writeln!(feedback, "\n{section}");
    }
    let detail = match failures {
        [only] => only.detail.clone(),
        [first, ..] => format!(
            "{failed} {} failed; first: {}",
            if failed == 1 { "check" } else { "checks" },
            first.detail.trim_start_matches("check ")
        ),
        [] => String::new(),
    };
    Ending {
        outcome: Outcome::ChecksFailed,
        detail,
        feedback,
    }
}

impl Evidence {
    /// A kind's results; when any failed, its feedback is `heading` over the list of
    /// failed checks, and its detail the first of them.
    pub(crate) fn of_results(results: Vec<CheckResult>, heading: &str) -> Evidence {
        let failure = results.iter().any(|result| !result.passed).then(|| {
            let mut feedback = format!("{heading}\n");
            failed_list(&mut feedback, &results);
            Failure {
                outcome: Outcome::ChecksFailed,
                detail: first_failed(&results),
                feedback,
            }
        });
        Evidence { results, failure }
    }
}

/// The failed results of a kind as a bulleted list, `name: detail`.
pub(crate) fn failed_list(out: &mut String, results: &[CheckResult]) {
    for result in results.iter().filter(|result| !result.passed) {
        let _ = writeln!(out, "- {}: {}", result.name, result.detail);
    }
}

/// `check `name` failed: …` of a kind's first failed result, for `detail`.
pub(crate) fn first_failed(results: &[CheckResult]) -> String {
    results
        .iter()
        .find(|result| !result.passed)
        .map(|result| {
            format!(
                "check `{}` failed: {}",
                result.name,
                crate::text::gist(&result.detail)
            )
        })
        .unwrap_or_default()
}

/// What the spec's cases feed the program and what the image must be, for the task
/// prompt; empty for a spec with only `[run]` and `[[check]]`.
pub(crate) fn describe(job: &Job) -> String {
    kinds(job).iter().map(|kind| kind.describe(job)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, passed: bool) -> CheckResult {
        CheckResult {
            group: "image".into(),
            name: name.into(),
            passed,
            detail: String::new(),
        }
    }

    fn failure(detail: &str) -> Failure {
        Failure {
            outcome: Outcome::ChecksFailed,
            detail: detail.into(),
            feedback: detail.into(),
        }
    }

    #[test]
    fn one_failed_check_among_several_failures_is_counted_in_the_singular() {
        let results = [result("user", false), result("workdir", true)];
        let failures = [failure("check `user` failed"), failure("the probe failed")];
        let ending = combined(&results, &failures);
        assert_eq!(ending.detail, "1 check failed; first: `user` failed");
        let results = [result("user", false), result("workdir", false)];
        let ending = combined(&results, &failures);
        assert_eq!(ending.detail, "2 checks failed; first: `user` failed");
    }
}
