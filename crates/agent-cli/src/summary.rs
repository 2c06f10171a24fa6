//! The end of `agent run`: the table on stderr, `--json` on stdout, `--junit` to a file
//! (what CI systems are told is in `ci`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_loop::{Report, StopReason};
use agent_run_dir::RunDir;
use agent_spec::{CheckResult, Spec};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SpecSummary {
    pub spec: String,
    pub verified: bool,
    pub iterations: u32,
    pub image: Option<String>,
    pub duration_secs: f64,
    pub stopped_by: Option<StopReason>,
    pub run_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub error: Option<String>,
    /// The last iteration's check results, each with its group.
    pub checks: Vec<CheckResult>,
    /// The last failed iteration's outcome and detail, for the table and JUnit.
    #[serde(skip)]
    pub last_failure: Option<String>,
    /// The spec file, as given on the command line.
    #[serde(skip)]
    pub spec_path: PathBuf,
    /// The pushed image as `repository@sha256:…`.
    #[serde(skip)]
    pub pushed: Option<String>,
    /// The signed attestations written to the run directory.
    #[serde(skip)]
    pub attestations: Vec<PathBuf>,
}

impl SpecSummary {
    pub fn from_report(report: &Report, run_dir: &RunDir, spec_path: &Path) -> SpecSummary {
        SpecSummary {
            spec_path: spec_path.to_path_buf(),
            pushed: report
                .published
                .as_ref()
                .map(|published| by_digest(&published.reference, &published.digest)),
            attestations: attestation_files(run_dir),
            spec: report.spec.clone(),
            verified: report.verified,
            iterations: report.iterations,
            image: report.image.clone(),
            duration_secs: report.duration_secs,
            stopped_by: Some(report.stopped_by),
            run_dir: Some(run_dir.root().to_path_buf()),
            report: Some(run_dir.report_json()),
            prompt_tokens: report.usage.prompt_tokens,
            completion_tokens: report.usage.completion_tokens,
            error: report.error.clone(),
            checks: report
                .history
                .last()
                .map(|record| record.checks.clone())
                .unwrap_or_default(),
            last_failure: lock_refusal(report).or_else(|| {
                report
                    .history
                    .iter()
                    .rev()
                    .find(|record| record.outcome != agent_loop::Outcome::Passed)
                    .map(|record| format!("{}: {}", record.outcome.as_str(), record.detail))
            }),
        }
    }

    pub fn not_started(spec: &Spec) -> SpecSummary {
        SpecSummary {
            spec: spec.name.clone(),
            verified: false,
            iterations: 0,
            image: None,
            duration_secs: 0.0,
            stopped_by: None,
            run_dir: None,
            report: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            error: None,
            checks: Vec::new(),
            last_failure: None,
            spec_path: spec.path.clone(),
            pushed: None,
            attestations: Vec::new(),
        }
    }

    /// The verified image's tag, else the run directory.
    pub fn place(&self) -> String {
        self.image
            .clone()
            .or_else(|| self.run_dir.as_ref().map(|dir| dir.display().to_string()))
            .unwrap_or_default()
    }

    /// `passed/total` of the last iteration's checks, and the groups that failed.
    fn checks_cell(&self) -> String {
        if self.checks.is_empty() {
            return "-".to_owned();
        }
        let passed = self.checks.iter().filter(|check| check.passed).count();
        let mut failed_groups: Vec<&str> = Vec::new();
        for check in self.checks.iter().filter(|check| !check.passed) {
            if !failed_groups.contains(&check.group.as_str()) {
                failed_groups.push(&check.group);
            }
        }
        let cell = format!("{passed}/{}", self.checks.len());
        if failed_groups.is_empty() {
            cell
        } else {
            format!("{cell} (failed: {})", failed_groups.join(", "))
        }
    }

    pub fn result_word(&self) -> &'static str {
        match (self.verified, self.stopped_by) {
            (true, _) => "verified",
            (false, Some(StopReason::Cancelled)) | (false, None) => "cancelled",
            (false, Some(StopReason::Error)) => "error",
            (false, _) => "not verified",
        }
    }
}

/// `repository@digest` of a pushed `repository:tag` (a port in the registry's host is
/// not a tag: only a `:` after the last `/` starts one).
fn by_digest(reference: &str, digest: &str) -> String {
    let slash = reference.rfind('/').map_or(0, |slash| slash + 1);
    let repository = match reference[slash..].find([':', '@']) {
        Some(colon) => &reference[..slash + colon],
        None => reference,
    };
    format!("{repository}@{digest}")
}

/// The `*.dsse.json` envelopes in the run directory's `attestations/`, sorted.
fn attestation_files(run_dir: &RunDir) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir.root().join("attestations")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".dsse.json"))
        .collect();
    files.sort();
    files
}

/// Why `--locked` left a spec not verified, and what to do about it.
pub fn lock_refusal(report: &Report) -> Option<String> {
    let path = report
        .lock
        .as_ref()
        .map_or_else(|| "the lock".to_string(), |lock| format!("`{}`", lock.path));
    let text = match report.stopped_by {
        StopReason::LockMissing => format!(
            "--locked: no lock at {path}; run `agent run` without --locked to verify the spec and write it, then review and commit it"
        ),
        StopReason::LockStale => format!(
            "--locked: the spec changed since {path} was written; run `agent run` without --locked to repair and re-verify it, then commit the new lock"
        ),
        StopReason::LockFailed => format!(
            "--locked: the bundle in {path} no longer passes its checks; run `agent run` without --locked to repair it"
        ),
        _ => return None,
    };
    Some(text)
}

pub fn print_table(summaries: &[SpecSummary]) {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "SPEC",
            "RESULT",
            "ITERATIONS",
            "CHECKS",
            "TIME",
            "IMAGE / RUN DIRECTORY",
        ]);
    for summary in summaries {
        let place = summary.place();
        table.add_row([
            summary.spec.clone(),
            summary.result_word().to_string(),
            summary.iterations.to_string(),
            summary.checks_cell(),
            format!("{:.1}s", summary.duration_secs),
            place,
        ]);
    }
    let verified = summaries.iter().filter(|summary| summary.verified).count();
    eprintln!(
        "\n{}\n{verified} of {} specs verified",
        table.trim_fmt(),
        summaries.len()
    );
}

pub fn print_json(summaries: &[SpecSummary], exit_code: u8) {
    let value = serde_json::json!({
        "verified": summaries.iter().all(|summary| summary.verified),
        "exit_code": exit_code,
        "specs": summaries,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("summary serialises")
    );
}

/// The JUnit report: a test suite per spec, with one test case per check of its last
/// iteration (`classname` `<spec>.<group>`); a spec not verified with no failed check
/// to show for it (its build failed, or it never ran) gets one failed case saying why.
pub fn write_junit(path: &Path, summaries: &[SpecSummary]) -> anyhow::Result<()> {
    use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
    let failure = |kind: &str, message: String| {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(kind).set_description(message);
        status
    };
    let mut report = JunitReport::new("agent");
    for summary in summaries {
        let mut suite = TestSuite::new(summary.spec.as_str());
        for check in &summary.checks {
            let status = if check.passed {
                TestCaseStatus::success()
            } else {
                failure("check failed", check.detail.clone())
            };
            let mut case = TestCase::new(check.name.as_str(), status);
            case.set_classname(format!("{}.{}", summary.spec, check.group));
            suite.add_test_case(case);
        }
        if !summary.verified && summary.checks.iter().all(|check| check.passed) {
            let message = summary
                .error
                .clone()
                .or_else(|| summary.last_failure.clone())
                .unwrap_or_else(|| summary.result_word().to_string());
            let mut case = TestCase::new(
                summary.spec.as_str(),
                failure(summary.result_word(), message),
            );
            case.set_classname(format!("{}.verified", summary.spec));
            suite.add_test_case(case);
        }
        suite.set_time(Duration::from_secs_f64(summary.duration_secs.max(0.0)));
        report.add_test_suite(suite);
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, report.to_string()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::by_digest;

    #[test]
    fn a_pushed_reference_is_named_by_digest_whatever_its_registry_port() {
        let digest = "sha256:ab12";
        assert_eq!(
            by_digest("127.0.0.1:5000/team/hello:0123456789ab", digest),
            "127.0.0.1:5000/team/hello@sha256:ab12"
        );
        assert_eq!(
            by_digest("ghcr.io/acme/tools/hello:latest", digest),
            "ghcr.io/acme/tools/hello@sha256:ab12"
        );
        assert_eq!(
            by_digest("localhost:5000/hello", digest),
            "localhost:5000/hello@sha256:ab12"
        );
    }
}
