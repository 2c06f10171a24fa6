//! `agent.toml` and the layering of settings.
//!
//! Precedence, lowest first: built-in defaults < `agent.toml` < environment < command
//! line flags. A spec's `[limits]` sits above `agent.toml` and below flags. This crate
//! never reads the environment: the caller collects the variables into
//! [`EnvOverrides`] and the flags into [`FlagOverrides`].

use std::path::{Path, PathBuf};

use crate::errors::ConfigError;
use crate::spec::Spec;

/// `agent.toml` as written: every field optional, unknown keys rejected with line and
/// column. Relative paths in `[prompts]` are resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    // private fields: the helper who writes the parser chooses the raw representation
    raw: RawConfig,
}

#[derive(Debug, Clone, Default)]
struct RawConfig;

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let _ = (path, text, RawConfig);
        todo!()
    }
}

/// Values taken from the environment (`OPENAI_BASE_URL`, `AGENT_MODEL`).
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    pub base_url: Option<String>,
    pub model: Option<String>,
}

/// Values given on the command line.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub max_iterations: Option<u32>,
}

/// Everything resolved, ready to use.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: ModelSettings,
    pub docker: DockerSettings,
    /// `[limits]` of `agent.toml` over the built-in defaults (flags are applied per
    /// spec by [`Settings::limits_for`]).
    pub limits: Limits,
    pub bundle: BundleLimits,
    pub prompts: PromptSettings,
    /// Flag overrides that apply to each spec's limits.
    pub limit_flags: FlagOverrides,
}

impl PartialEq for FlagOverrides {
    fn eq(&self, other: &Self) -> bool {
        self.base_url == other.base_url
            && self.model == other.model
            && self.max_iterations == other.max_iterations
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutput {
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

impl Settings {
    /// Layers the built-in defaults, the file (if any), the environment and the flags.
    /// Validates values (non-empty model name, base URL parses as http(s), positive
    /// limits, cpus > 0) and names the origin of a bad value in the error.
    pub fn resolve(
        file: Option<&ConfigFile>,
        env: &EnvOverrides,
        flags: &FlagOverrides,
    ) -> Result<Settings, ConfigError> {
        let _ = (file, env, flags);
        todo!()
    }

    /// The limits one spec runs with: these settings' limits, then the spec's
    /// `[limits]`, then the flags.
    pub fn limits_for(&self, spec: &Spec) -> Limits {
        let _ = spec;
        todo!()
    }
}
