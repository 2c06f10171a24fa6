//! The evidence of a failure, in words a model can act on: what failed, where, and
//! what the build or the program printed (head and tail when long).

use std::fmt::Write as _;

use agent_sandbox::{BuildOutcome, BuildStatus, RunOutcome};
use agent_spec::{CheckResult, excerpt};

use crate::bundle::Bundle;

/// Bytes of one stream shown in feedback: the head and the tail share this.
const EXCERPT_BYTES: usize = 6 * 1024;

fn fenced(out: &mut String, title: &str, text: &str, truncated_at: Option<u64>) {
    if text.trim().is_empty() {
        let _ = writeln!(out, "{title}: (empty)");
        return;
    }
    let _ = writeln!(out, "{title}:");
    let _ = writeln!(out, "```");
    let _ = writeln!(out, "{}", excerpt(text, EXCERPT_BYTES).trim_end());
    let _ = writeln!(out, "```");
    if let Some(total) = truncated_at {
        let _ = writeln!(
            out,
            "(the program printed {total} bytes on this stream; only the first part was kept)"
        );
    }
}

pub fn invalid_bundle(problems: &[String]) -> String {
    let mut out = String::from(
        "Your reply could not be used as a code bundle, so nothing was built. Problems:\n",
    );
    for problem in problems {
        let _ = writeln!(out, "- {problem}");
    }
    out
}

pub fn refused(text: &str) -> String {
    format!(
        "Your reply was a refusal, so nothing was built: \"{}\". The task is an ordinary programming task; please answer with the code bundle.",
        excerpt(text, 1024)
    )
}

pub fn build(outcome: &BuildOutcome, timeout_secs: u64) -> String {
    let mut out = String::new();
    match &outcome.status {
        BuildStatus::Failed {
            error,
            failing_step,
            step_output,
        } => {
            match failing_step {
                Some(step) => {
                    let _ = writeln!(out, "The Docker build failed at `{step}`.");
                }
                None => {
                    let _ = writeln!(out, "The Docker build failed.");
                }
            }
            let _ = writeln!(out, "The engine said: {}", error.trim());
            fenced(&mut out, "What that step printed", step_output, None);
        }
        BuildStatus::TimedOut => {
            let _ = writeln!(
                out,
                "The Docker build did not finish within {timeout_secs} s and was stopped."
            );
            fenced(
                &mut out,
                "The end of the build log",
                &tail(&outcome.log, 40),
                None,
            );
        }
        BuildStatus::Built { .. } => {}
    }
    out
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a run failed, with its output; `checks` are the failed checks, if any ran.
pub fn run(
    outcome: &RunOutcome,
    stdout: &str,
    stderr: &str,
    headline: &str,
    failed_checks: &[&CheckResult],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{headline}");
    if let Some(code) = outcome.exit_code {
        let _ = writeln!(out, "Exit code: {code}");
    }
    if !failed_checks.is_empty() {
        let _ = writeln!(out, "\nFailed checks:");
        for check in failed_checks {
            let _ = writeln!(out, "- {}: {}", check.name, check.detail);
        }
        out.push('\n');
    }
    fenced(
        &mut out,
        "stderr",
        stderr,
        outcome
            .stderr
            .truncated
            .then_some(outcome.stderr.total_bytes),
    );
    fenced(
        &mut out,
        "stdout",
        stdout,
        outcome
            .stdout
            .truncated
            .then_some(outcome.stdout.total_bytes),
    );
    out
}

/// The bundle as the model should see it: every file in full.
pub fn bundle_listing(bundle: &Bundle) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Dockerfile:\n```dockerfile\n{}\n```",
        bundle.dockerfile.trim_end()
    );
    for (path, content) in &bundle.files {
        let _ = writeln!(out, "\n{path}:\n```\n{}\n```", content.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_failure_names_the_step_and_its_output() {
        let outcome = BuildOutcome {
            status: BuildStatus::Failed {
                error: "The command '/bin/sh -c python3 setup.py' returned a non-zero code: 1"
                    .into(),
                failing_step: Some("Step 3/4 : RUN python3 setup.py".into()),
                step_output: "Traceback (most recent call last):\nValueError: bad config\n".into(),
            },
            log: String::new(),
            duration: std::time::Duration::ZERO,
        };
        let text = build(&outcome, 60);
        assert!(text.contains("Step 3/4 : RUN python3 setup.py"));
        assert!(text.contains("ValueError: bad config"));
        assert!(text.contains("returned a non-zero code: 1"));
    }
}
