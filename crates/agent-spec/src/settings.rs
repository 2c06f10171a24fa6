//! The resolved settings a spec runs with: every value decided, nothing optional
//! that a layer could still fill in. [`crate::layer`] produces them.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Includes `/v1`; requests go to `<base_url>/chat/completions`.
    pub base_url: String,
    /// The name of the environment variable that holds the key (never the key).
    pub api_key_env: String,
    pub name: String,
    pub temperature: f64,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    /// Longest wait a `Retry-After` header may impose before a retry.
    pub max_retry_after_secs: u64,
    pub structured_output: StructuredOutput,
    /// Ask for SSE streaming (`stream = true`); default false.
    pub stream: bool,
    /// `max_tokens` sent with each request; `None` leaves it to the server.
    pub max_tokens: Option<u32>,
    /// Requests to the endpoint in flight at once, across every spec of a run.
    pub max_concurrent_requests: u32,
    /// Bundles asked for in a spec's first generation, built and run side by side.
    pub candidates: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutput {
    /// Chosen per server: the strictest mode it supports.
    Auto,
    JsonSchema,
    JsonObject,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    pub base_image: String,
    /// Empty: any `FROM` is allowed.
    pub allowed_base_images: Vec<String>,
    pub build_network: BuildNetwork,
    /// `[docker] builder` or `--builder`: which of an engine's builders builds.
    pub builder: BuilderChoice,
    /// The most the build cache (`agent-cache/…` images) may hold, in MiB; past it the
    /// least recently used entries are removed after each spec's run. 0: no cap.
    pub cache_max_mb: u64,
    /// `[docker] engines` or `--engine`: where builds and runs go. Empty: the engine
    /// the Docker CLI would use (`DOCKER_HOST`, else the local socket).
    pub engines: Vec<EngineSetting>,
    /// `[docker] cache_from` or `--cache-from`: images in a registry a build may take
    /// unchanged steps from, pulled before the first build (missing ones are skipped).
    pub cache_from: Vec<String>,
    /// The image whose container sends a service's probes from inside its network
    /// namespace; it needs `nc`, `sleep` and `true` (busybox has them).
    pub probe_image: String,
}

/// One engine of `[docker] engines`: its address, how many builds and runs it
/// takes at once (`None`: its CPU count), and for an `ssh://` engine the private key
/// to log in with (`None`: what `ssh` itself would use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSetting {
    pub url: String,
    pub slots: Option<usize>,
    pub identity: Option<String>,
}

/// `[docker] builder`: which builder an engine's builds go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderChoice {
    /// Per engine, the builder that does less work there (BuildKit where the engine
    /// runs it, else the classic builder).
    Auto,
    Classic,
    /// BuildKit; an engine that cannot run it is an error.
    BuildKit,
}

impl std::str::FromStr for BuilderChoice {
    type Err = String;

    /// `auto`, `classic` or `buildkit`, as `[docker] builder` and `--builder` take it.
    fn from_str(value: &str) -> Result<BuilderChoice, String> {
        crate::validate::builder(value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNetwork {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Bridge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_iterations: u32,
    pub build_timeout_secs: u64,
    pub run_timeout_secs: u64,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    /// Per stream.
    pub output_limit_kb: u64,
    /// 0: no token budget.
    pub max_total_tokens: u64,
    /// Wall-clock budget for one spec's whole run; 0: none.
    pub max_wall_secs: u64,
    /// The run's network (spec `[limits] network`); default none.
    pub network: NetworkMode,
}

/// What a model's bundle may weigh (`[bundle]` in `agent.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleLimits {
    pub max_total_bytes: u64,
    pub max_files: usize,
    pub max_file_bytes: u64,
    /// Longest file path, in bytes.
    pub max_path_bytes: usize,
}

/// `[prompts]`: files that replace the built-in prompt templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptSettings {
    pub system: Option<PathBuf>,
    pub task: Option<PathBuf>,
    pub repair: Option<PathBuf>,
    pub judge: Option<PathBuf>,
}

/// `[publish]`: where verified images are pushed, and whether they are signed.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    /// `host[:port]/path`: images go to `<repository>/<spec>:<12 hex of the bundle
    /// digest>`; `None`: not pushed.
    pub repository: Option<String>,
    /// Moving tags pushed beside the digest tag (e.g. `latest`).
    pub tags: Vec<String>,
    /// Each pushed image gets signed attestations (`--sign`); the key is required.
    pub sign: bool,
    /// The variable holding the signing key's PEM.
    pub signing_key_env: String,
}

/// The variable holding the signing key unless `[publish] signing_key_env` names another.
pub const DEFAULT_SIGNING_KEY_ENV: &str = "AGENT_SIGNING_KEY";

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            repository: None,
            tags: Vec::new(),
            sign: false,
            signing_key_env: DEFAULT_SIGNING_KEY_ENV.to_owned(),
        }
    }
}

/// What the model is told to build `FROM` unless `[docker] base_image` says otherwise.
pub(crate) const DEFAULT_BASE_IMAGE: &str = "python:3.10-slim";
/// The probe image unless `[docker] probe_image` says otherwise: small, and built
/// locally by `scripts/base-images`.
pub(crate) const DEFAULT_PROBE_IMAGE: &str = "agent-base/busybox:1";
/// The build cache's default cap: room for the dependency layers of many specs.
pub(crate) const DEFAULT_CACHE_MAX_MB: u64 = 4096;

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key_env: "OPENAI_API_KEY".to_owned(),
            name: "gpt-4o-2024-08-06".to_owned(),
            temperature: 0.2,
            request_timeout_secs: 180,
            max_retries: 4,
            max_retry_after_secs: 60,
            structured_output: StructuredOutput::Auto,
            stream: false,
            max_tokens: None,
            max_concurrent_requests: 8,
            candidates: 1,
        }
    }
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            base_image: DEFAULT_BASE_IMAGE.to_owned(),
            allowed_base_images: Vec::new(),
            build_network: BuildNetwork::Default,
            builder: BuilderChoice::Auto,
            cache_max_mb: DEFAULT_CACHE_MAX_MB,
            engines: Vec::new(),
            cache_from: Vec::new(),
            probe_image: DEFAULT_PROBE_IMAGE.to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_iterations: 8,
            build_timeout_secs: 600,
            run_timeout_secs: 60,
            memory_mb: 1024,
            cpus: 1.0,
            pids: 256,
            output_limit_kb: 1024,
            max_total_tokens: 0,
            max_wall_secs: 0,
            network: NetworkMode::None,
        }
    }
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_total_bytes: 4 * 1024 * 1024,
            max_files: 64,
            max_file_bytes: 1024 * 1024,
            max_path_bytes: 200,
        }
    }
}
