//! The evidence of a failure, in words a model can act on: what failed, where, and
//! what the build or the program printed (head and tail when long).

use std::fmt::Write as _;

use agent_sandbox::{BuildOutcome, BuildStatus, RunOutcome};
use agent_spec::{CheckResult, excerpt};

use crate::bundle::Bundle;
use crate::report::{EgressRecord, RefusedConnection};

/// Refused connections named one by one in feedback; the rest are counted.
const EGRESS_SHOWN: usize = 12;

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

/// Why a build failed, with its own output; `base_images` (the configured base image
/// first, then the allowed ones) are named as the ones to build from when the bundle's
/// `FROM` image is not available on the engine.
pub fn build(outcome: &BuildOutcome, timeout_secs: u64, base_images: &[String]) -> String {
    let mut out = String::new();
    match &outcome.status {
        BuildStatus::Failed {
            missing_image: Some(image),
            error,
            ..
        } => missing_image(&mut out, image, error, base_images),
        BuildStatus::Failed {
            error,
            failing_step,
            step_output,
            missing_image: None,
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

/// The connections the build's steps were refused, each with the step, and what the
/// build may reach instead.
pub fn egress(egress: &EgressRecord, allowed: &[String]) -> String {
    let refused = &egress.refused;
    let mut out =
        String::from("\nThe build's network is limited to an allow-list, and it refused:\n");
    for connection in refused.iter().take(EGRESS_SHOWN) {
        let step = match (connection.step, &connection.instruction) {
            (Some(index), Some(instruction)) => {
                format!("step {index} (`{}`)", excerpt(instruction, 200))
            }
            _ => "a step".to_owned(),
        };
        let how = match connection.via.as_str() {
            "dns" => "looked up the name",
            "direct" => "connected, bypassing the proxy, to",
            _ => "tried to reach",
        };
        let target = if connection.via == "dns" {
            format!("`{}`", connection.host)
        } else {
            format!("`{}:{}`", connection.host, connection.port)
        };
        let _ = writeln!(
            out,
            "- {step} {how} {target}, which this build may not reach ({})",
            connection.reason
        );
    }
    let more = refused.len().saturating_sub(EGRESS_SHOWN) as u64 + egress.unlisted;
    if more > 0 {
        let _ = writeln!(out, "- and {more} more refused connections");
    }
    let _ = writeln!(
        out,
        "RUN steps reach the network only through the HTTP proxy already set in HTTP_PROXY and HTTPS_PROXY (pip, apt-get and the like use it), and only these hosts: {}. Get what the build needs from them, or write it into the bundle.",
        allowed.join(", ")
    );
    out
}

/// The refusals in a few words, for the iteration's detail line.
pub fn egress_summary(refused: &[RefusedConnection]) -> String {
    let mut targets: Vec<String> = Vec::new();
    for connection in refused {
        let target = if connection.via == "dns" {
            connection.host.clone()
        } else {
            format!("{}:{}", connection.host, connection.port)
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let more = targets.len().saturating_sub(3);
    targets.truncate(3);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("; build egress refused {}{more}", targets.join(", "))
}

/// A `FROM` the engine cannot get: nothing in the bundle's steps is at fault, only
/// the choice of base image.
fn missing_image(out: &mut String, image: &str, error: &str, base_images: &[String]) {
    let _ = writeln!(
        out,
        "The base image `{image}` is not available on this engine: it has no copy and cannot download one, so the build stopped at its `FROM` line."
    );
    let _ = writeln!(out, "The engine said: {}", error.trim());
    match base_images {
        [] => {
            let _ = writeln!(
                out,
                "Build `FROM` the base image the instructions name instead."
            );
        }
        [only] => {
            let _ = writeln!(out, "Build `FROM {only}` instead.");
        }
        several => {
            let names: Vec<String> = several.iter().map(|name| format!("`{name}`")).collect();
            let _ = writeln!(
                out,
                "Build `FROM` one of these instead: {}.",
                names.join(", ")
            );
        }
    }
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
                missing_image: None,
            },
            log: String::new(),
            duration: std::time::Duration::ZERO,
            egress: Default::default(),
        };
        let text = build(&outcome, 60, &[]);
        assert!(text.contains("Step 3/4 : RUN python3 setup.py"));
        assert!(text.contains("ValueError: bad config"));
        assert!(text.contains("returned a non-zero code: 1"));
    }

    #[test]
    fn a_missing_base_image_is_named_with_the_one_to_use() {
        let outcome = BuildOutcome {
            status: BuildStatus::Failed {
                error: "pull access denied for no-such-image, repository does not exist".into(),
                failing_step: Some("Step 1/3 : FROM no-such-image:1".into()),
                step_output: String::new(),
                missing_image: Some("no-such-image:1".into()),
            },
            log: String::new(),
            duration: std::time::Duration::ZERO,
            egress: Default::default(),
        };
        let text = build(&outcome, 60, &["agent-base/python:3.11".to_owned()]);
        assert!(
            text.contains("The base image `no-such-image:1` is not available on this engine"),
            "{text}"
        );
        assert!(
            text.contains("Build `FROM agent-base/python:3.11` instead."),
            "{text}"
        );
        assert!(build(&outcome, 60, &[]).contains("the base image the instructions name"));
    }
}
