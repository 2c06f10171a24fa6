//! `agent.toml` and the layering of settings.
//!
//! Precedence, lowest first: built-in defaults < `agent.toml` < environment < command
//! line flags. A spec's `[limits]` sits above `agent.toml` and below flags. This crate
//! never reads the environment: the caller collects the variables into
//! [`EnvOverrides`] and the flags into [`FlagOverrides`].
//!
//! File values are validated when the file is parsed, so their errors carry a line
//! and column; an environment or flag value is validated only when it wins, and its
//! error names the variable or flag. Base URLs lose a trailing `/`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::errors::ConfigError;
use crate::position::{describe, locate};
use crate::spec::{Spec, parse_network};

/// `agent.toml` as written: every field optional, unknown keys rejected with line and
/// column. Relative paths in `[prompts]` are resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    raw: RawConfig,
}

/// The file's values, validated, each `None` where the file is silent.
#[derive(Debug, Clone, Default)]
struct RawConfig {
    base_url: Option<String>,
    api_key_env: Option<String>,
    model_name: Option<String>,
    temperature: Option<f64>,
    request_timeout_secs: Option<u64>,
    max_retries: Option<u32>,
    max_retry_after_secs: Option<u64>,
    structured_output: Option<StructuredOutput>,
    stream: Option<bool>,
    max_tokens: Option<u32>,
    base_image: Option<String>,
    allowed_base_images: Option<Vec<String>>,
    build_network: Option<BuildNetwork>,
    max_iterations: Option<u32>,
    build_timeout_secs: Option<u64>,
    run_timeout_secs: Option<u64>,
    memory_mb: Option<u64>,
    cpus: Option<f64>,
    pids: Option<i64>,
    output_limit_kb: Option<u64>,
    max_total_tokens: Option<u64>,
    max_wall_secs: Option<u64>,
    network: Option<NetworkMode>,
    max_total_bytes: Option<u64>,
    max_files: Option<usize>,
    max_file_bytes: Option<u64>,
    max_path_bytes: Option<usize>,
    prompts: PromptSettings,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let toml: TomlConfig = toml::from_str(text).map_err(|error| {
            let (location, message) = describe(path, text, &error);
            ConfigError::Invalid { location, message }
        })?;
        let source = Source { path, text };
        let raw = validate_file(&source, toml)?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            raw,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    #[serde(default)]
    model: TomlModel,
    #[serde(default)]
    docker: TomlDocker,
    #[serde(default)]
    limits: TomlLimits,
    #[serde(default)]
    bundle: TomlBundle,
    #[serde(default)]
    prompts: TomlPrompts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlModel {
    base_url: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    temperature: Option<Spanned<f64>>,
    request_timeout_secs: Option<Spanned<u64>>,
    max_retries: Option<Spanned<u32>>,
    max_retry_after_secs: Option<Spanned<u64>>,
    structured_output: Option<Spanned<String>>,
    stream: Option<Spanned<bool>>,
    max_tokens: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlDocker {
    base_image: Option<Spanned<String>>,
    allowed_base_images: Option<Spanned<Vec<Spanned<String>>>>,
    build_network: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlLimits {
    max_iterations: Option<Spanned<u32>>,
    build_timeout_secs: Option<Spanned<u64>>,
    run_timeout_secs: Option<Spanned<u64>>,
    memory_mb: Option<Spanned<u64>>,
    cpus: Option<Spanned<f64>>,
    pids: Option<Spanned<i64>>,
    output_limit_kb: Option<Spanned<u64>>,
    max_total_tokens: Option<Spanned<u64>>,
    max_wall_secs: Option<Spanned<u64>>,
    network: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlBundle {
    max_total_bytes: Option<Spanned<u64>>,
    max_files: Option<Spanned<usize>>,
    max_file_bytes: Option<Spanned<u64>>,
    max_path_bytes: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlPrompts {
    system: Option<Spanned<String>>,
    task: Option<Spanned<String>>,
    repair: Option<Spanned<String>>,
    judge: Option<Spanned<String>>,
}

/// The text being parsed, for pointing errors at spans.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn invalid(&self, span: Range<usize>, message: String) -> ConfigError {
        ConfigError::Invalid {
            location: locate(self.path, self.text, span.start),
            message,
        }
    }

    /// A number that must be at least `minimum`.
    fn at_least<T: Copy + PartialOrd + std::fmt::Display>(
        &self,
        key: &str,
        value: Option<Spanned<T>>,
        minimum: T,
    ) -> Result<Option<T>, ConfigError> {
        match value {
            Some(value) if *value.get_ref() < minimum => {
                Err(self.invalid(value.span(), format!("`{key}` must be at least {minimum}")))
            }
            Some(value) => Ok(Some(value.into_inner())),
            None => Ok(None),
        }
    }

    /// A string checked by `validate`, whose problem becomes the message.
    fn checked<T>(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        validate: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match value {
            Some(value) => validate(value.get_ref())
                .map(Some)
                .map_err(|problem| self.invalid(value.span(), format!("`{key}`: {problem}"))),
            None => Ok(None),
        }
    }
}

fn validate_file(source: &Source<'_>, toml: TomlConfig) -> Result<RawConfig, ConfigError> {
    let TomlConfig {
        model,
        docker,
        limits,
        bundle,
        prompts,
    } = toml;

    let temperature = match model.temperature {
        Some(value) if !(0.0..=2.0).contains(value.get_ref()) => {
            return Err(source.invalid(
                value.span(),
                "`temperature` must be between 0 and 2".to_owned(),
            ));
        }
        other => other.map(Spanned::into_inner),
    };
    let cpus = match limits.cpus {
        Some(value) if !(value.get_ref().is_finite() && *value.get_ref() > 0.0) => {
            return Err(source.invalid(
                value.span(),
                "`cpus` must be a number above 0, e.g. `0.5` or `2`".to_owned(),
            ));
        }
        other => other.map(Spanned::into_inner),
    };

    let base_image = source.checked("base_image", docker.base_image, non_empty)?;
    let allowed_base_images = match docker.allowed_base_images {
        Some(list) => {
            let span = list.span();
            let mut images = Vec::new();
            for image in list.into_inner() {
                if image.get_ref().trim().is_empty() {
                    return Err(source.invalid(
                        image.span(),
                        "`allowed_base_images` has an empty entry".to_owned(),
                    ));
                }
                images.push(image.into_inner());
            }
            // The model is told to build FROM `base_image`; if that is not allowed,
            // every bundle would be refused before it is built.
            let wanted = base_image.as_deref().unwrap_or(DEFAULT_BASE_IMAGE);
            if !images.is_empty() && !images.iter().any(|image| image == wanted) {
                return Err(source.invalid(
                    span,
                    format!(
                        "`allowed_base_images` does not contain the base image `{wanted}`; \
                         add it or set `[docker] base_image` to one of them"
                    ),
                ));
            }
            Some(images)
        }
        None => None,
    };

    Ok(RawConfig {
        base_url: source.checked("base_url", model.base_url, validate_base_url)?,
        api_key_env: source.checked("api_key_env", model.api_key_env, validate_variable_name)?,
        model_name: source.checked("name", model.name, validate_model_name)?,
        temperature,
        request_timeout_secs: source.at_least(
            "request_timeout_secs",
            model.request_timeout_secs,
            1,
        )?,
        max_retries: model.max_retries.map(Spanned::into_inner),
        max_retry_after_secs: model.max_retry_after_secs.map(Spanned::into_inner),
        structured_output: source.checked(
            "structured_output",
            model.structured_output,
            parse_structured_output,
        )?,
        stream: model.stream.map(Spanned::into_inner),
        max_tokens: source.at_least("max_tokens", model.max_tokens, 1)?,
        base_image,
        allowed_base_images,
        build_network: source.checked(
            "build_network",
            docker.build_network,
            parse_build_network,
        )?,
        max_iterations: source.at_least("max_iterations", limits.max_iterations, 1)?,
        build_timeout_secs: source.at_least("build_timeout_secs", limits.build_timeout_secs, 1)?,
        run_timeout_secs: source.at_least("run_timeout_secs", limits.run_timeout_secs, 1)?,
        memory_mb: source.at_least("memory_mb", limits.memory_mb, MINIMUM_MEMORY_MB)?,
        cpus,
        pids: source.at_least("pids", limits.pids, 1)?,
        output_limit_kb: source.at_least("output_limit_kb", limits.output_limit_kb, 1)?,
        max_total_tokens: limits.max_total_tokens.map(Spanned::into_inner),
        max_wall_secs: limits.max_wall_secs.map(Spanned::into_inner),
        network: source.checked("network", limits.network, |value| {
            parse_network(value)
                .ok_or_else(|| format!("unknown network `{value}`; expected `none` or `bridge`"))
        })?,
        max_total_bytes: source.at_least("max_total_bytes", bundle.max_total_bytes, 1)?,
        max_files: source.at_least("max_files", bundle.max_files, 1)?,
        max_file_bytes: source.at_least("max_file_bytes", bundle.max_file_bytes, 1)?,
        max_path_bytes: source.at_least("max_path_bytes", bundle.max_path_bytes, 1)?,
        prompts: PromptSettings {
            system: prompt_file(source, "system", prompts.system)?,
            task: prompt_file(source, "task", prompts.task)?,
            repair: prompt_file(source, "repair", prompts.repair)?,
            judge: prompt_file(source, "judge", prompts.judge)?,
        },
    })
}

/// The engine refuses a memory limit below 6 MB.
pub(crate) const MINIMUM_MEMORY_MB: u64 = 6;

const DEFAULT_BASE_IMAGE: &str = "python:3.10-slim";

/// A `[prompts]` entry, resolved against the config file's folder and checked to be a
/// readable file now rather than at the first model call.
fn prompt_file(
    source: &Source<'_>,
    key: &str,
    value: Option<Spanned<String>>,
) -> Result<Option<PathBuf>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.get_ref().trim().is_empty() {
        return Err(source.invalid(value.span(), format!("`prompts.{key}` is empty")));
    }
    let folder = match source.path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let joined = folder.join(value.get_ref());
    let resolved = std::fs::canonicalize(&joined).map_err(|error| {
        let problem = if error.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {error}")
        };
        source.invalid(
            value.span(),
            format!("`prompts.{key}`: `{}` {problem}", joined.display()),
        )
    })?;
    if !resolved.is_file() {
        return Err(source.invalid(
            value.span(),
            format!("`prompts.{key}`: `{}` is not a file", joined.display()),
        ));
    }
    Ok(Some(resolved))
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("is empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// An `http://` or `https://` URL with a host; a trailing `/` is dropped so that
/// `<base_url>/chat/completions` has a single slash. The value is never echoed, since
/// a URL may carry credentials.
fn validate_base_url(value: &str) -> Result<String, String> {
    let lowercase = value.to_ascii_lowercase();
    let rest = if lowercase.starts_with("https://") {
        &value["https://".len()..]
    } else if lowercase.starts_with("http://") {
        &value["http://".len()..]
    } else {
        return Err("the base URL must start with `http://` or `https://`".to_owned());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the base URL has no host".to_owned());
    }
    if value
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err("the base URL contains whitespace or control characters".to_owned());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn validate_model_name(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("the model name is empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

fn validate_variable_name(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(['=', '\0']) {
        Err("must name an environment variable: non-empty, without `=` or NUL".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

fn parse_structured_output(value: &str) -> Result<StructuredOutput, String> {
    match value {
        "json_schema" => Ok(StructuredOutput::JsonSchema),
        "json_object" => Ok(StructuredOutput::JsonObject),
        "none" => Ok(StructuredOutput::None),
        "auto" => Ok(StructuredOutput::Auto),
        _ => Err(format!(
            "unknown mode `{value}`; expected `auto`, `json_schema`, `json_object` or `none`"
        )),
    }
}

fn parse_build_network(value: &str) -> Result<BuildNetwork, String> {
    match value {
        "default" => Ok(BuildNetwork::Default),
        "none" => Ok(BuildNetwork::None),
        "host" => Ok(BuildNetwork::Host),
        _ => Err(format!(
            "unknown network `{value}`; expected `default`, `none` or `host`"
        )),
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
    /// Find out what the endpoint supports: `json_schema`, else `json_object` with
    /// the schema attached, else plain `json_object`, else the schema in the prompt.
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
        let mut settings = Settings::default_with(flags);
        if let Some(file) = file {
            settings.apply_file(&file.raw);
        }
        // Only the value that wins is checked: a flag given to work around a broken
        // variable must not fail because of that variable.
        let base_url = flags
            .base_url
            .as_deref()
            .map(|value| (value, "flag `--base-url`"))
            .or_else(|| {
                let value = env.base_url.as_deref()?;
                Some((value, "environment variable `OPENAI_BASE_URL`"))
            });
        if let Some((value, origin)) = base_url {
            settings.model.base_url =
                validate_base_url(value).map_err(|message| ConfigError::Override {
                    origin: origin.to_owned(),
                    message,
                })?;
        }
        let model = flags
            .model
            .as_deref()
            .map(|value| (value, "flag `--model`"))
            .or_else(|| {
                let value = env.model.as_deref()?;
                Some((value, "environment variable `AGENT_MODEL`"))
            });
        if let Some((value, origin)) = model {
            settings.model.name =
                validate_model_name(value).map_err(|message| ConfigError::Override {
                    origin: origin.to_owned(),
                    message,
                })?;
        }
        if flags.max_iterations == Some(0) {
            return Err(ConfigError::Override {
                origin: "flag `--max-iterations`".to_owned(),
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(settings)
    }

    fn default_with(flags: &FlagOverrides) -> Settings {
        Settings {
            model: ModelSettings {
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
            },
            docker: DockerSettings {
                base_image: DEFAULT_BASE_IMAGE.to_owned(),
                allowed_base_images: Vec::new(),
                build_network: BuildNetwork::Default,
            },
            limits: Limits::default(),
            bundle: BundleLimits::default(),
            prompts: PromptSettings::default(),
            limit_flags: flags.clone(),
        }
    }

    fn apply_file(&mut self, raw: &RawConfig) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        let model = &mut self.model;
        set(&mut model.base_url, &raw.base_url);
        set(&mut model.api_key_env, &raw.api_key_env);
        set(&mut model.name, &raw.model_name);
        set(&mut model.temperature, &raw.temperature);
        set(&mut model.request_timeout_secs, &raw.request_timeout_secs);
        set(&mut model.max_retries, &raw.max_retries);
        set(&mut model.max_retry_after_secs, &raw.max_retry_after_secs);
        set(&mut model.structured_output, &raw.structured_output);
        set(&mut model.stream, &raw.stream);
        if raw.max_tokens.is_some() {
            model.max_tokens = raw.max_tokens;
        }
        let docker = &mut self.docker;
        set(&mut docker.base_image, &raw.base_image);
        set(&mut docker.allowed_base_images, &raw.allowed_base_images);
        set(&mut docker.build_network, &raw.build_network);
        let limits = &mut self.limits;
        set(&mut limits.max_iterations, &raw.max_iterations);
        set(&mut limits.build_timeout_secs, &raw.build_timeout_secs);
        set(&mut limits.run_timeout_secs, &raw.run_timeout_secs);
        set(&mut limits.memory_mb, &raw.memory_mb);
        set(&mut limits.cpus, &raw.cpus);
        set(&mut limits.pids, &raw.pids);
        set(&mut limits.output_limit_kb, &raw.output_limit_kb);
        set(&mut limits.max_total_tokens, &raw.max_total_tokens);
        set(&mut limits.max_wall_secs, &raw.max_wall_secs);
        set(&mut limits.network, &raw.network);
        let bundle = &mut self.bundle;
        set(&mut bundle.max_total_bytes, &raw.max_total_bytes);
        set(&mut bundle.max_files, &raw.max_files);
        set(&mut bundle.max_file_bytes, &raw.max_file_bytes);
        set(&mut bundle.max_path_bytes, &raw.max_path_bytes);
        self.prompts = raw.prompts.clone();
    }

    /// The limits one spec runs with: these settings' limits, then the spec's
    /// `[limits]`, then the flags.
    pub fn limits_for(&self, spec: &Spec) -> Limits {
        let mut limits = self.limits.clone();
        let overrides = &spec.limits;
        if let Some(value) = overrides.max_iterations {
            limits.max_iterations = value;
        }
        if let Some(value) = overrides.build_timeout_secs {
            limits.build_timeout_secs = value;
        }
        if let Some(value) = overrides.run_timeout_secs {
            limits.run_timeout_secs = value;
        }
        if let Some(value) = overrides.memory_mb {
            limits.memory_mb = value;
        }
        if let Some(value) = overrides.cpus {
            limits.cpus = value;
        }
        if let Some(value) = overrides.network {
            limits.network = value;
        }
        if let Some(value) = self.limit_flags.max_iterations {
            limits.max_iterations = value;
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/project/agent.toml"), text)
    }

    /// The (line, column, message) of an `Invalid` error.
    fn invalid(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(ConfigError::Invalid { location, message }) => {
                assert_eq!(location.path, Path::new("/project/agent.toml"));
                (location.line, location.column, message)
            }
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    fn resolve(file: Option<&ConfigFile>, env: &EnvOverrides, flags: &FlagOverrides) -> Settings {
        Settings::resolve(file, env, flags).unwrap()
    }

    fn override_error(env: &EnvOverrides, flags: &FlagOverrides) -> (String, String) {
        match Settings::resolve(None, env, flags) {
            Err(ConfigError::Override { origin, message }) => (origin, message),
            other => panic!("expected an override error, got {other:?}"),
        }
    }

    #[test]
    fn built_in_defaults() {
        let settings = resolve(None, &EnvOverrides::default(), &FlagOverrides::default());
        assert_eq!(
            settings.model,
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
            }
        );
        assert_eq!(
            settings.docker,
            DockerSettings {
                base_image: "python:3.10-slim".to_owned(),
                allowed_base_images: Vec::new(),
                build_network: BuildNetwork::Default,
            }
        );
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.bundle, BundleLimits::default());
        assert_eq!(settings.prompts, PromptSettings::default());
        assert_eq!(settings.limit_flags, FlagOverrides::default());
    }

    #[test]
    fn every_file_key_is_read() {
        let text = r#"
[model]
base_url = "http://localhost:8000/v1/"
api_key_env = "LOCAL_KEY"
name = "qwen"
temperature = 0
request_timeout_secs = 30
max_retries = 0
max_retry_after_secs = 5
structured_output = "json_object"
stream = true
max_tokens = 4096

[docker]
base_image = "agent-base/python:3.11"
allowed_base_images = ["agent-base/python:3.11", "agent-base/busybox:1"]
build_network = "none"

[limits]
max_iterations = 3
build_timeout_secs = 100
run_timeout_secs = 10
memory_mb = 256
cpus = 0.5
pids = 64
output_limit_kb = 16
max_total_tokens = 100000
max_wall_secs = 900
network = "bridge"

[bundle]
max_total_bytes = 1000
max_files = 5
max_file_bytes = 500
max_path_bytes = 50
"#;
        let file = parse(text).unwrap();
        assert_eq!(file.path, Path::new("/project/agent.toml"));
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.model,
            ModelSettings {
                base_url: "http://localhost:8000/v1".to_owned(),
                api_key_env: "LOCAL_KEY".to_owned(),
                name: "qwen".to_owned(),
                temperature: 0.0,
                request_timeout_secs: 30,
                max_retries: 0,
                max_retry_after_secs: 5,
                structured_output: StructuredOutput::JsonObject,
                stream: true,
                max_tokens: Some(4096),
            }
        );
        assert_eq!(
            settings.docker,
            DockerSettings {
                base_image: "agent-base/python:3.11".to_owned(),
                allowed_base_images: vec![
                    "agent-base/python:3.11".to_owned(),
                    "agent-base/busybox:1".to_owned()
                ],
                build_network: BuildNetwork::None,
            }
        );
        assert_eq!(
            settings.limits,
            Limits {
                max_iterations: 3,
                build_timeout_secs: 100,
                run_timeout_secs: 10,
                memory_mb: 256,
                cpus: 0.5,
                pids: 64,
                output_limit_kb: 16,
                max_total_tokens: 100000,
                max_wall_secs: 900,
                network: NetworkMode::Bridge,
            }
        );
        assert_eq!(
            settings.bundle,
            BundleLimits {
                max_total_bytes: 1000,
                max_files: 5,
                max_file_bytes: 500,
                max_path_bytes: 50,
            }
        );
    }

    #[test]
    fn empty_file_keeps_the_defaults() {
        let file = parse("").unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings,
            resolve(None, &EnvOverrides::default(), &FlagOverrides::default())
        );
    }

    #[test]
    fn each_layer_wins_over_the_one_below() {
        let file =
            parse("[model]\nbase_url = \"http://file/v1\"\nname = \"file-model\"\n").unwrap();
        let none = EnvOverrides::default();
        let no_flags = FlagOverrides::default();
        let settings = resolve(Some(&file), &none, &no_flags);
        assert_eq!(settings.model.base_url, "http://file/v1");
        assert_eq!(settings.model.name, "file-model");

        let env = EnvOverrides {
            base_url: Some("http://env/v1".to_owned()),
            model: Some("env-model".to_owned()),
        };
        let settings = resolve(Some(&file), &env, &no_flags);
        assert_eq!(settings.model.base_url, "http://env/v1");
        assert_eq!(settings.model.name, "env-model");

        let flags = FlagOverrides {
            base_url: Some("https://flag/v1".to_owned()),
            model: Some("flag-model".to_owned()),
            max_iterations: Some(2),
        };
        let settings = resolve(Some(&file), &env, &flags);
        assert_eq!(settings.model.base_url, "https://flag/v1");
        assert_eq!(settings.model.name, "flag-model");
        assert_eq!(settings.limit_flags, flags);
    }

    #[test]
    fn spec_limits_sit_between_the_file_and_the_flags() {
        let file =
            parse("[limits]\nmax_iterations = 5\nmemory_mb = 512\nrun_timeout_secs = 7\n").unwrap();
        let spec = parse_spec(
            Path::new("/specs/task.toml"),
            "prompt = \"x\"\nconditions = \"y\"\n[limits]\nmax_iterations = 4\nmemory_mb = 64\ncpus = 2\nnetwork = \"bridge\"\n",
        )
        .unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(settings.limits.max_iterations, 5);
        let limits = settings.limits_for(&spec);
        assert_eq!(limits.max_iterations, 4);
        assert_eq!(limits.memory_mb, 64);
        assert_eq!(limits.cpus, 2.0);
        assert_eq!(limits.network, NetworkMode::Bridge);
        // Left alone by the spec: the file's value.
        assert_eq!(limits.run_timeout_secs, 7);
        assert_eq!(limits.build_timeout_secs, 600);

        let flags = FlagOverrides {
            max_iterations: Some(1),
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
        let limits = settings.limits_for(&spec);
        assert_eq!(limits.max_iterations, 1);
        assert_eq!(limits.memory_mb, 64);
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let env = EnvOverrides {
            base_url: Some("localhost:8000/v1".to_owned()),
            model: None,
        };
        let (origin, message) = override_error(&env, &FlagOverrides::default());
        assert_eq!(origin, "environment variable `OPENAI_BASE_URL`");
        assert_eq!(
            message,
            "the base URL must start with `http://` or `https://`"
        );

        let env = EnvOverrides {
            base_url: None,
            model: Some(" ".to_owned()),
        };
        let (origin, message) = override_error(&env, &FlagOverrides::default());
        assert_eq!(origin, "environment variable `AGENT_MODEL`");
        assert_eq!(message, "the model name is empty");
    }

    #[test]
    fn bad_flag_values_name_the_flag() {
        let flags = FlagOverrides {
            base_url: Some("https://".to_owned()),
            ..FlagOverrides::default()
        };
        let (origin, message) = override_error(&EnvOverrides::default(), &flags);
        assert_eq!(origin, "flag `--base-url`");
        assert_eq!(message, "the base URL has no host");

        let flags = FlagOverrides {
            model: Some(String::new()),
            ..FlagOverrides::default()
        };
        let (origin, _) = override_error(&EnvOverrides::default(), &flags);
        assert_eq!(origin, "flag `--model`");

        let flags = FlagOverrides {
            max_iterations: Some(0),
            ..FlagOverrides::default()
        };
        let (origin, message) = override_error(&EnvOverrides::default(), &flags);
        assert_eq!(origin, "flag `--max-iterations`");
        assert_eq!(message, "must be at least 1");
    }

    #[test]
    fn a_flag_replaces_a_bad_environment_value_without_error() {
        let env = EnvOverrides {
            base_url: Some("ftp://x".to_owned()),
            model: Some(String::new()),
        };
        let flags = FlagOverrides {
            base_url: Some("http://ok/v1".to_owned()),
            model: Some("m".to_owned()),
            max_iterations: None,
        };
        let settings = resolve(None, &env, &flags);
        assert_eq!(settings.model.base_url, "http://ok/v1");
        assert_eq!(settings.model.name, "m");
    }

    #[test]
    fn unknown_keys_have_line_and_column() {
        let (line, column, message) = invalid("[model]\nname = \"m\"\n  temprature = 0.1\n");
        assert_eq!((line, column), (3, 3));
        assert!(
            message.starts_with("unknown key `temprature` in [model]; expected one of `base_url`, `api_key_env`, `name`, `temperature`"),
            "{message}"
        );
        let (line, column, message) = invalid("[limits]\n\n[dockr]\nbase_image = \"x\"\n");
        assert_eq!((line, column), (3, 2));
        assert!(message.starts_with("unknown key `dockr` at the top level; expected one of `model`, `docker`, `limits`, `bundle`, `prompts`"), "{message}");
        let (line, column, message) = invalid("[bundle]\nmax_file = 3\n");
        assert_eq!((line, column), (2, 1));
        assert!(
            message.starts_with("unknown key `max_file` in [bundle]"),
            "{message}"
        );
        let (_, _, message) = invalid("[prompts]\nsystm = \"a\"\n");
        assert!(
            message.starts_with("unknown key `systm` in [prompts]"),
            "{message}"
        );
        let (_, _, message) = invalid("[docker]\nbuild_net = \"a\"\n");
        assert!(
            message.starts_with("unknown key `build_net` in [docker]"),
            "{message}"
        );
    }

    #[test]
    fn bad_file_values_point_at_the_value() {
        let cases = [
            (
                "[model]\nbase_url = \"api.openai.com\"",
                "`base_url`: the base URL must start with `http://` or `https://`",
            ),
            ("[model]\nname = \"\"", "`name`: the model name is empty"),
            (
                "[model]\ntemperature = 3",
                "`temperature` must be between 0 and 2",
            ),
            (
                "[model]\nrequest_timeout_secs = 0",
                "`request_timeout_secs` must be at least 1",
            ),
            (
                "[model]\nstructured_output = \"xml\"",
                "`structured_output`: unknown mode `xml`; expected `auto`, `json_schema`, `json_object` or `none`",
            ),
            ("[model]\nmax_tokens = 0", "`max_tokens` must be at least 1"),
            (
                "[model]\napi_key_env = \"\"",
                "`api_key_env`: must name an environment variable: non-empty, without `=` or NUL",
            ),
            (
                "[docker]\nbuild_network = \"bridge\"",
                "`build_network`: unknown network `bridge`; expected `default`, `none` or `host`",
            ),
            ("[docker]\nbase_image = \" \"", "`base_image`: is empty"),
            (
                "[limits]\nmax_iterations = 0",
                "`max_iterations` must be at least 1",
            ),
            ("[limits]\nmemory_mb = 5", "`memory_mb` must be at least 6"),
            (
                "[limits]\ncpus = 0.0",
                "`cpus` must be a number above 0, e.g. `0.5` or `2`",
            ),
            ("[limits]\npids = 0", "`pids` must be at least 1"),
            (
                "[limits]\nnetwork = \"host\"",
                "`network`: unknown network `host`; expected `none` or `bridge`",
            ),
            ("[bundle]\nmax_files = 0", "`max_files` must be at least 1"),
        ];
        for (text, expected) in cases {
            let (line, column, message) = invalid(text);
            let value_column = text.split('\n').nth(1).unwrap().find('=').unwrap() + 3;
            assert_eq!((line, column), (2, value_column), "{text}");
            assert_eq!(message, expected, "{text}");
        }
        let (line, column, message) = invalid("[limits]\nmax_iterations = -1\n");
        assert_eq!((line, column), (2, 18));
        assert_eq!(
            message,
            "`limits.max_iterations`: invalid value: integer `-1`, expected a non-negative integer"
        );
    }

    #[test]
    fn base_image_must_be_allowed() {
        let text = "[docker]\nallowed_base_images = [\"agent-base/busybox:1\"]\n";
        let (line, column, message) = invalid(text);
        assert_eq!((line, column), (2, 23));
        assert!(
            message.contains("does not contain the base image `python:3.10-slim`"),
            "{message}"
        );
        let allowed = "[docker]\nbase_image = \"agent-base/busybox:1\"\nallowed_base_images = [\"agent-base/busybox:1\"]\n";
        assert!(parse(allowed).is_ok());
    }

    #[test]
    fn prompts_are_resolved_against_the_config_folder() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("prompts")).unwrap();
        std::fs::write(folder.path().join("prompts/system.md"), "be brief").unwrap();
        std::fs::write(folder.path().join("judge.md"), "judge well").unwrap();
        let path = folder.path().join("agent.toml");
        std::fs::write(
            &path,
            "[prompts]\nsystem = \"prompts/system.md\"\njudge = \"./judge.md\"\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        let root = std::fs::canonicalize(folder.path()).unwrap();
        assert_eq!(
            settings.prompts,
            PromptSettings {
                system: Some(root.join("prompts/system.md")),
                task: None,
                repair: None,
                judge: Some(root.join("judge.md")),
            }
        );
        assert!(settings.prompts.system.as_ref().unwrap().is_absolute());
    }

    #[test]
    fn a_missing_prompt_file_is_an_error_with_location() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("agent.toml");
        let text = "[prompts]\nrepair = \"nowhere.md\"\n";
        let error = ConfigFile::parse(&path, text).unwrap_err();
        let ConfigError::Invalid { location, message } = error else {
            panic!("expected invalid, got {error:?}");
        };
        assert_eq!((location.line, location.column), (2, 10));
        assert!(message.starts_with("`prompts.repair`: `"), "{message}");
        assert!(message.ends_with("nowhere.md` does not exist"), "{message}");
        std::fs::create_dir(folder.path().join("folder.md")).unwrap();
        let error = ConfigFile::parse(&path, "[prompts]\ntask = \"folder.md\"\n").unwrap_err();
        assert!(error.to_string().ends_with("is not a file"), "{error}");
    }

    #[test]
    fn a_missing_config_file_is_a_read_error() {
        let error = ConfigFile::load(Path::new("/nonexistent/agent.toml")).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert_eq!(
            error.to_string(),
            "cannot read config `/nonexistent/agent.toml`"
        );
    }
}
