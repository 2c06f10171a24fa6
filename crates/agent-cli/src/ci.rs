//! What `agent run` tells the CI system it runs in. In GitHub Actions
//! (`GITHUB_ACTIONS=true`): an annotation per failed check, the step's outputs in
//! `GITHUB_OUTPUT`, and the job summary (whenever `GITHUB_STEP_SUMMARY` is set). In
//! GitLab CI (`GITLAB_CI=true`): the same outputs as `<out>/agent.env`. Both get one
//! HTML report of the run's specs, `<out>/report.html`, named by the `report` output.

mod annotations;
mod outputs;
mod step_summary;

use std::path::{Path, PathBuf};

use crate::env;
use crate::summary::SpecSummary;

pub use outputs::DOTENV_FILE;

/// Writes what the CI system around the run reads; each failure is a warning on
/// stderr, never a change of the run's outcome.
pub fn finish(summaries: &[SpecSummary], out: &Path) {
    let github = env::is_true(env::GITHUB_ACTIONS);
    let gitlab = env::is_true(env::GITLAB_CI);
    if github {
        let workspace = env::var(env::GITHUB_WORKSPACE).map(PathBuf::from);
        // stderr: the runner reads workflow commands there too, and stdout is data.
        for line in annotations::lines(summaries, workspace.as_deref()) {
            eprintln!("{line}");
        }
    }
    if let Some(path) = env::var(env::GITHUB_STEP_SUMMARY) {
        warn(
            step_summary::append(Path::new(&path), summaries),
            "append to GITHUB_STEP_SUMMARY",
            &path,
        );
    }
    if !github && !gitlab {
        return;
    }
    let outputs = outputs::Outputs::of(summaries, combined_report(summaries, out));
    if github && let Some(path) = env::var(env::GITHUB_OUTPUT) {
        warn(
            outputs::append(Path::new(&path), &outputs.github()),
            "write GITHUB_OUTPUT",
            &path,
        );
    }
    if gitlab {
        let path = out.join(DOTENV_FILE);
        let written =
            std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, outputs.dotenv()));
        warn(written, "write", &path.display().to_string());
    }
}

fn warn(result: std::io::Result<()>, what: &str, path: &str) {
    if let Err(error) = result {
        eprintln!("agent: warning: cannot {what} `{path}`: {error}");
    }
}

/// `<out>/report.html`: one page for every spec this run ran, or `None` when none
/// ran or the page cannot be written (a warning says why).
fn combined_report(summaries: &[SpecSummary], out: &Path) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = summaries
        .iter()
        .filter_map(|summary| summary.run_dir.clone())
        .filter(|dir| dir.join("report.json").is_file())
        .collect();
    if dirs.is_empty() {
        return None;
    }
    let path = std::path::absolute(out.join("report.html")).ok()?;
    let written = agent_report::render(&dirs).and_then(|html| agent_report::write(&path, &html));
    match written {
        Ok(()) => Some(path),
        Err(error) => {
            eprintln!(
                "agent: warning: cannot write `{}`: {:#}",
                path.display(),
                anyhow::Error::new(error)
            );
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// A valid spec named `name`, read from `<name>.toml`.
    pub fn spec(name: &str) -> agent_spec::Spec {
        agent_spec::parse_spec(
            std::path::Path::new(&format!("{name}.toml")),
            "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nexit_code = 0\n",
        )
        .expect("a valid spec")
    }
}
