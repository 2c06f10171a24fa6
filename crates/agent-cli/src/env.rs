//! The environment variables `agent` reads. Only the CLI reads the environment; the
//! library crates get resolved values.

/// Overrides `[model] base_url`.
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
/// Overrides `[model] name`.
pub const AGENT_MODEL: &str = "AGENT_MODEL";
/// Where the Docker engine is, as for the Docker CLI (below `--engine` and
/// `[docker] engines`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Set: `tcp://` engines are reached over TLS with the client certificates of
/// `DOCKER_CERT_PATH`, as the Docker CLI does.
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
/// The folder of `ca.pem`, `cert.pem` and `key.pem`; else `$HOME/.docker`.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The folder of the Docker CLI's `config.json` (registry credentials); else
/// `$HOME/.docker`.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
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
/// The commit and the project's URL in GitLab CI.
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";

/// A variable's value, `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
