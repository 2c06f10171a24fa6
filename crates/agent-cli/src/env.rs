//! The environment variables `agent` reads. Only the CLI reads the environment; the
//! library crates get resolved values.

/// Overrides `[model] base_url`.
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
/// Overrides `[model] name`.
pub const AGENT_MODEL: &str = "AGENT_MODEL";
/// Where the Docker engine is, as for the Docker CLI.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Log filter for `tracing` (also `-v`).
pub const RUST_LOG: &str = "RUST_LOG";

/// A variable's value, `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
