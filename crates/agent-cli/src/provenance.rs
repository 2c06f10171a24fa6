//! Where a verified bundle came from, for the image's OCI labels: the CI's own
//! variables (GitHub Actions, GitLab CI), else the git checkout the spec lives in.

use std::path::Path;
use std::process::Command;

use agent_loop::Provenance;

use crate::env;

/// The provenance of a spec in `folder`.
pub fn of(folder: &Path) -> Provenance {
    if let Some(revision) = env::var(env::GITHUB_SHA) {
        let source = match (
            env::var(env::GITHUB_SERVER_URL),
            env::var(env::GITHUB_REPOSITORY),
        ) {
            (Some(server), Some(repository)) => Some(format!("{server}/{repository}")),
            _ => None,
        };
        return Provenance {
            revision: Some(revision),
            source,
        };
    }
    if let Some(revision) = env::var(env::CI_COMMIT_SHA) {
        return Provenance {
            revision: Some(revision),
            source: env::var(env::CI_PROJECT_URL),
        };
    }
    Provenance {
        revision: git(folder, &["rev-parse", "HEAD"]),
        source: git(folder, &["config", "--get", "remote.origin.url"]),
    }
}

/// A git command's one line of output in `folder`, or `None` (no git, no checkout).
fn git(folder: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.trim();
    (output.status.success() && !line.is_empty()).then(|| line.to_string())
}

/// The root of the git checkout `folder` is in, as an absolute path.
pub fn repository_root(folder: &Path) -> Option<std::path::PathBuf> {
    let root = git(folder, &["rev-parse", "--show-toplevel"])?;
    std::fs::canonicalize(root).ok()
}
