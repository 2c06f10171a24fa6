//! Cases: each a fresh run of the image with its own stdin, args, env and timeout,
//! judged by its own checks and the spec's top-level ones. A spec without `[[case]]`
//! runs its one default case from `[run]`, and fails and is fed back as it always was.

use std::fmt::Write as _;

use agent_sandbox::RunOutcome;
use agent_spec::{Case, CheckResult, DEFAULT_CASE, Matcher, Observed, excerpt};

use crate::feedback;
use crate::job::Job;
use crate::report::Outcome;
use crate::text::{first_line, gist};
use crate::verification::{Evidence, Facts, Failure, Kind, failed_list};

/// Failed cases shown with their output; the rest are named only.
const CASES_SHOWN: usize = 6;
/// Bytes of each stream shown for a failed case among several.
const CASE_STREAM_BYTES: usize = 1024;

/// One case's run, its output as text.
pub(crate) struct CaseRun {
    pub ran: RunOutcome,
    pub stdout: String,
    pub stderr: String,
    timeout_secs: u64,
}

impl CaseRun {
    pub fn new(ran: RunOutcome, timeout_secs: u64) -> CaseRun {
        CaseRun {
            stdout: String::from_utf8_lossy(&ran.stdout.bytes).into_owned(),
            stderr: String::from_utf8_lossy(&ran.stderr.bytes).into_owned(),
            ran,
            timeout_secs,
        }
    }
}

/// The cases the spec runs. A spec with nothing else to check (or with the judge on)
/// still runs its default case, with no checks when it has none, as it always did.
pub(crate) fn to_run(job: &Job) -> Vec<Case> {
    let spec = &job.spec;
    let cases = spec.cases_to_run();
    let nothing_else = spec.checks_runs_only();
    if !cases.is_empty() || spec.service.is_some() || !(spec.judge || nothing_else) {
        return cases;
    }
    vec![Case {
        name: DEFAULT_CASE.to_owned(),
        stdin: spec.run.stdin.clone(),
        args: spec.run.args.clone(),
        env: spec.run.env.clone(),
        entrypoint: None,
        command: None,
        timeout_secs: None,
        checks: Vec::new(),
    }]
}

/// Whether the spec checks nothing but its default case.
pub(crate) fn is_default_only(job: &Job) -> bool {
    job.spec.cases.is_empty() && job.spec.checks_runs_only()
}

pub(crate) struct Cases;

impl Kind for Cases {
    fn judge(&self, job: &Job, facts: &Facts) -> Evidence {
        let cases = to_run(job);
        let mut results = Vec::new();
        let mut failed = Vec::new();
        for (case, run) in cases.iter().zip(&facts.cases) {
            let (case_results, failure) = evaluate(job, case, run);
            if let Some(headline) = &failure {
                failed.push((case, run, headline.clone(), case_results.clone()));
            }
            results.extend(case_results);
        }
        let failure = if is_default_only(job) {
            failed.first().map(|(_, run, (outcome, headline), checks)| {
                default_failure(*outcome, headline, run, checks)
            })
        } else {
            for (case, _, (_, headline), checks) in &mut failed {
                if checks.iter().all(|check| check.passed) {
                    let result =
                        CheckResult::new(&case.name, "run".to_owned(), false, headline.clone());
                    results.push(result.clone());
                    checks.push(result);
                }
            }
            several_failed(cases.len(), &failed)
        };
        Evidence { results, failure }
    }

    /// Each case as the model must know it: what it feeds the program, what is checked.
    fn describe(&self, job: &Job) -> String {
        let spec = &job.spec;
        if spec.cases.is_empty() {
            return String::new();
        }
        let mut text = String::from(
            "\nThe image is run once per case below, each time in a fresh container with that case's input only; every check of a case must hold for it:\n",
        );
        for case in &spec.cases {
            let stdin = match &case.stdin {
                Some(stdin) => format!("stdin {:?} (then end of file)", excerpt(stdin, 1024)),
                None => "empty stdin".to_owned(),
            };
            let mut fed = vec![stdin];
            if !case.args.is_empty() {
                fed.push(format!(
                    "args {} appended to the command",
                    serde_json::to_string(&case.args).unwrap_or_default()
                ));
            }
            if let Some(entrypoint) = &case.entrypoint {
                fed.push(format!(
                    "ENTRYPOINT replaced by {}",
                    serde_json::to_string(entrypoint).unwrap_or_default()
                ));
            }
            if let Some(command) = &case.command {
                fed.push(format!(
                    "CMD replaced by {}",
                    serde_json::to_string(command).unwrap_or_default()
                ));
            }
            if !case.env.is_empty() {
                fed.push(format!("env {}", env_pairs(case).join(", ")));
            }
            if let Some(secs) = case.timeout_secs {
                fed.push(format!("{secs} s to finish"));
            }
            let _ = writeln!(text, "\nCase `{}`: {}.", case.name, fed.join("; "));
            for check in &case.checks {
                let _ = writeln!(text, "- {}", crate::text::describe_matcher(&check.matcher));
            }
        }
        text
    }
}

/// The default case's failure, worded as a spec without cases always had it.
fn default_failure(
    outcome: Outcome,
    headline: &str,
    run: &CaseRun,
    checks: &[CheckResult],
) -> Failure {
    let failed: Vec<&CheckResult> = checks.iter().filter(|check| !check.passed).collect();
    let detail = match (outcome, failed.first()) {
        (Outcome::ChecksFailed, Some(check)) => {
            format!("check `{}` failed: {}", check.name, gist(&check.detail))
        }
        _ => first_line(headline).to_string(),
    };
    Failure {
        outcome,
        detail,
        feedback: feedback::run(&run.ran, &run.stdout, &run.stderr, headline, &failed),
    }
}

type FailedCase<'a> = (&'a Case, &'a CaseRun, (Outcome, String), Vec<CheckResult>);

/// Every failed case named with what it was fed, its failed checks and the tails of
/// its output; past [`CASES_SHOWN`] only their names.
fn several_failed(total: usize, failed: &[FailedCase<'_>]) -> Option<Failure> {
    let (first, _, (_, first_headline), first_checks) = failed.first()?;
    let mut out = format!("{} of {total} cases failed.\n", failed.len());
    for (case, run, (_, headline), checks) in failed.iter().take(CASES_SHOWN) {
        let _ = writeln!(
            out,
            "\nCase `{}` ({}): {}",
            case.name,
            fed(case),
            first_line(headline)
        );
        if let Some(code) = run.ran.exit_code {
            let _ = writeln!(out, "Exit code: {code}");
        }
        failed_list(&mut out, checks);
        for (title, text) in [("stderr", &run.stderr), ("stdout", &run.stdout)] {
            if text.trim().is_empty() {
                let _ = writeln!(out, "{title}: (empty)");
            } else {
                let _ = writeln!(
                    out,
                    "{title}:\n```\n{}\n```",
                    excerpt(text, CASE_STREAM_BYTES).trim_end()
                );
            }
        }
    }
    if failed.len() > CASES_SHOWN {
        let rest: Vec<String> = failed[CASES_SHOWN..]
            .iter()
            .map(|(case, ..)| format!("`{}`", case.name))
            .collect();
        let _ = writeln!(out, "\nAlso failed: {}.", rest.join(", "));
    }
    let first_check = first_checks.iter().find(|check| !check.passed);
    let detail = match first_check {
        Some(check) => format!(
            "case `{}`: check `{}` failed: {}",
            first.name,
            check.name,
            gist(&check.detail)
        ),
        None => format!("case `{}`: {}", first.name, first_line(first_headline)),
    };
    Some(Failure {
        outcome: Outcome::ChecksFailed,
        detail,
        feedback: out,
    })
}

/// What a case gives the program, in a few words.
fn fed(case: &Case) -> String {
    let mut parts = Vec::new();
    if let Some(stdin) = &case.stdin {
        parts.push(format!("stdin {:?}", excerpt(stdin, 200)));
    }
    if !case.args.is_empty() {
        parts.push(format!("args {:?}", case.args));
    }
    if let Some(entrypoint) = &case.entrypoint {
        parts.push(format!("entrypoint {entrypoint:?}"));
    }
    if let Some(command) = &case.command {
        parts.push(format!("command {command:?}"));
    }
    if !case.env.is_empty() {
        parts.push(format!("env {}", env_pairs(case).join(" ")));
    }
    if parts.is_empty() {
        "no input".to_owned()
    } else {
        parts.join(", ")
    }
}

/// One case's results, and its outcome with the feedback's headline when it failed.
/// A program that did not start, was killed, or exited non-zero without an `exit_code`
/// check asking for it, failed.
fn evaluate(
    job: &Job,
    case: &Case,
    run: &CaseRun,
) -> (Vec<CheckResult>, Option<(Outcome, String)>) {
    let ran = &run.ran;
    if let Some(message) = &ran.start_error {
        let headline = format!("The container could not start: {}", message.trim());
        return (Vec::new(), Some((Outcome::RunFailed, headline)));
    }
    let observed = Observed {
        exit_code: ran.exit_code,
        stdout: &run.stdout,
        stderr: &run.stderr,
        stdout_truncated: ran.stdout.truncated,
        stderr_truncated: ran.stderr.truncated,
    };
    let checks = case.evaluate(&observed);
    let asks_for_exit_code = case
        .checks
        .iter()
        .any(|check| matches!(check.matcher, Matcher::ExitCode(_)));
    let failure = if ran.timed_out {
        Some((
            Outcome::RunTimeout,
            format!(
                "The program did not finish within {} s and was killed. It must finish on its own.",
                run.timeout_secs
            ),
        ))
    } else if ran.oom_killed {
        Some((
            Outcome::RunFailed,
            format!(
                "The program was killed because it ran out of memory (the limit is {} MB).",
                job.limits.memory_mb
            ),
        ))
    } else if ran.exit_code != Some(0) && !asks_for_exit_code {
        let code = ran
            .exit_code
            .map_or("unknown".to_string(), |code| code.to_string());
        Some((
            Outcome::RunFailed,
            format!("The program exited with code {code} (it must exit 0)."),
        ))
    } else if checks.iter().any(|check| !check.passed) {
        Some((
            Outcome::ChecksFailed,
            "The program ran, but its output does not meet the checks.".to_string(),
        ))
    } else {
        None
    };
    (checks, failure)
}

/// A case's environment as `KEY=value` items, in key order.
fn env_pairs(case: &Case) -> Vec<String> {
    case.env
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}
