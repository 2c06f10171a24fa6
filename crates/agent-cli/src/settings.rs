//! Settings for a command: the config file (`--config`, else `./agent.toml` when
//! present), the environment and the flags, layered by `agent_spec::Settings`.

use std::path::{Path, PathBuf};

use agent_spec::{ConfigFile, EnvOverrides, FlagOverrides, Settings, Spec};

use crate::env;
use crate::failure::Failure;

pub const DEFAULT_CONFIG: &str = "agent.toml";

/// Loads and layers the settings.
pub fn resolve(config: Option<&Path>, flags: FlagOverrides) -> Result<Settings, Failure> {
    let path: Option<PathBuf> = match config {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|path| path.is_file()),
    };
    let file = match &path {
        Some(path) => Some(ConfigFile::load(path).map_err(every_failure)?),
        None => None,
    };
    let environment = EnvOverrides {
        base_url: env::var(env::OPENAI_BASE_URL),
        model: env::var(env::AGENT_MODEL),
    };
    Settings::resolve(file.as_ref(), &environment, &flags).map_err(Failure::usage)
}

/// Loads every spec, reporting every bad one (not only the first).
pub fn load_specs(paths: &[PathBuf]) -> Result<Vec<Spec>, Failure> {
    let mut specs = Vec::new();
    let mut failures = Vec::new();
    for path in paths {
        match agent_spec::load_spec(path) {
            Ok(spec) => specs.push(spec),
            Err(problems) => failures.extend(problems.into_iter().map(Failure::usage)),
        }
    }
    let mut names = std::collections::BTreeMap::new();
    for spec in &specs {
        if let Some(other) = names.insert(spec.name.clone(), spec.path.clone()) {
            failures.push(
                Failure::usage(anyhow::anyhow!(
                    "specs `{}` and `{}` are both named `{}`",
                    other.display(),
                    spec.path.display(),
                    spec.name
                ))
                .with_hint(
                    "set a distinct `name` in one of them: run directories and image tags use it",
                ),
            );
        }
    }
    match failures.len() {
        0 => Ok(specs),
        _ => Err(last_of(failures)),
    }
}

/// Each problem of a file as a failure of its own: all but the last printed here,
/// the last returned, to be printed as the command ends.
pub fn every_failure<E>(problems: agent_spec::Problems<E>) -> Failure
where
    E: std::error::Error + Send + Sync + 'static,
{
    last_of(problems.into_iter().map(Failure::usage).collect())
}

fn last_of(mut failures: Vec<Failure>) -> Failure {
    let last = failures.pop().expect("one failure at least");
    for failure in &failures {
        failure.print();
    }
    last
}
