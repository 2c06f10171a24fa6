//! The environment variables `agent` reads, each named once here and all of them in
//! [`ALL`] (the tests clear every one of them, so nothing of the machine they run on
//! leaks in). Only the CLI reads the environment; the library crates get resolved
//! values.

use std::path::{Path, PathBuf};

/// Overrides `[model] base_url`.
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
/// Overrides `[model] name`.
pub const AGENT_MODEL: &str = "AGENT_MODEL";
/// The API key, unless `[model] api_key_env` names another variable.
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// The PEM of the key attestations are signed with, unless `[publish]
/// signing_key_env` names another variable.
pub const AGENT_SIGNING_KEY: &str = "AGENT_SIGNING_KEY";
/// Where the Docker engine is, as for the Docker CLI (below `--engine` and
/// `[docker] engines`, above any context).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// The Docker CLI context to use when `DOCKER_HOST` is unset (over `currentContext`
/// in `config.json`).
pub const DOCKER_CONTEXT: &str = "DOCKER_CONTEXT";
/// Set: `tcp://` engines are reached over TLS with the client certificates of
/// `DOCKER_CERT_PATH`, as the Docker CLI does.
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
/// The folder of `ca.pem`, `cert.pem` and `key.pem`; else `$HOME/.docker`.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The folder of the Docker CLI's `config.json` (registry credentials, the current
/// context) and `contexts/`; else `$HOME/.docker`.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Where rootless Docker and Podman put their sockets.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
pub const HOME: &str = "HOME";
/// Where `docker-credential-<name>` helpers are looked up.
pub const PATH: &str = "PATH";
/// Log filter for `tracing` (also `-v`).
pub const RUST_LOG: &str = "RUST_LOG";

/// The commit a GitHub Actions job runs on, for the image's provenance.
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// With `GITHUB_REPOSITORY`, the repository's URL.
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// A file a GitHub Actions step appends Markdown to for the job's summary page.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// `true` in a GitHub Actions job: failed checks become annotations and the step's
/// outputs are written to `GITHUB_OUTPUT`.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// The file a GitHub Actions step writes its outputs to (`name<<delimiter` blocks).
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// The repository's checkout in a GitHub Actions job; annotations name spec files
/// relative to it.
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// `true` in a GitLab CI job: the outputs are written as a dotenv file in `--out`.
pub const GITLAB_CI: &str = "GITLAB_CI";
/// The commit and the project's URL in GitLab CI.
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";

/// Every variable above.
pub const ALL: &[&str] = &[
    OPENAI_BASE_URL,
    AGENT_MODEL,
    OPENAI_API_KEY,
    AGENT_SIGNING_KEY,
    DOCKER_HOST,
    DOCKER_CONTEXT,
    DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH,
    DOCKER_CONFIG,
    XDG_RUNTIME_DIR,
    HOME,
    PATH,
    RUST_LOG,
    GITHUB_SHA,
    GITHUB_SERVER_URL,
    GITHUB_REPOSITORY,
    GITHUB_STEP_SUMMARY,
    GITHUB_ACTIONS,
    GITHUB_OUTPUT,
    GITHUB_WORKSPACE,
    GITLAB_CI,
    CI_COMMIT_SHA,
    CI_PROJECT_URL,
];

/// A variable's value, `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Whether `name` is set to `true`, as CI systems set their marker variables.
pub fn is_true(name: &str) -> bool {
    var(name).is_some_and(|value| value == "true")
}

/// The Docker CLI's folder: `$DOCKER_CONFIG`, else `$HOME/.docker`.
pub fn docker_config_dir() -> PathBuf {
    match (var(DOCKER_CONFIG), var(HOME)) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(home)) => Path::new(&home).join(".docker"),
        (None, None) => PathBuf::from(".docker"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_variable_named_here_is_in_all() {
        let source = include_str!("env.rs");
        let named: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub const "))
            .filter_map(|rest| rest.split_once(": &str = \""))
            .map(|(_, value)| value.trim_end_matches("\";"))
            .collect();
        assert!(named.len() > 10, "{named:?}");
        for name in &named {
            assert!(super::ALL.contains(name), "`{name}` is missing from ALL");
        }
        assert_eq!(named.len(), super::ALL.len(), "ALL names each once");
    }
}
