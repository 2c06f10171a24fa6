//! `agent.toml`, the environment and the flags, merged into [`Settings`].
//!
//! Precedence, lowest first:
//!
//! 1. built-in defaults ([`crate::settings`]);
//! 2. `agent.toml` ([`ConfigFile`]);
//! 3. the environment ([`EnvOverrides`]);
//! 4. a spec's `[limits]`, for that spec's [`Limits`] ([`Settings::limits_for`]);
//! 5. command line flags ([`FlagOverrides`]).
//!
//! Each source is read into a [`SettingsLayer`] by the same checks
//! ([`crate::validate`]); the layers are merged with [`Combine`] and resolved once
//! over the defaults. This crate never reads the environment: the caller collects the
//! variables into [`EnvOverrides`] and the flags into [`FlagOverrides`].
//!
//! File values are checked when the file is parsed, so their errors carry a line and
//! column; an environment value is checked only when no flag replaces it (a flag
//! given to work around a broken variable must not fail because of that variable),
//! and its error names the variable or flag. Base URLs lose a trailing `/`.
//!
//! The engines are the one exception to the order: `--engine` over `[docker] engines`
//! over `DOCKER_HOST` (which the caller applies when both are silent), since
//! `DOCKER_HOST` is often set for the Docker CLI alone, not for a project.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::errors::ConfigError;
use crate::layer::{
    BundleLayer, Combine, DockerLayer, LimitsLayer, ModelLayer, PromptsLayer, PublishLayer,
    SettingsLayer,
};
use crate::position::describe;
use crate::settings::{
    BuilderChoice, BundleLimits, DEFAULT_BASE_IMAGE, DockerSettings, EngineSetting, Limits,
    ModelSettings, PromptSettings, PublishSettings,
};
use crate::spec::Spec;
use crate::validate::{self, LimitsOf, LimitsTable, Source, any, at_least};

/// `agent.toml` as written: every field optional, unknown keys rejected with line and
/// column. Relative paths in `[prompts]` are resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    layer: SettingsLayer,
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
        Ok(ConfigFile {
            path: path.to_path_buf(),
            layer: read_file(&source, toml)?,
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
    limits: LimitsTable,
    #[serde(default)]
    bundle: TomlBundle,
    #[serde(default)]
    prompts: TomlPrompts,
    #[serde(default)]
    publish: TomlPublish,
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
    max_concurrent_requests: Option<Spanned<u32>>,
    candidates: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlDocker {
    base_image: Option<Spanned<String>>,
    allowed_base_images: Option<Spanned<Vec<Spanned<String>>>>,
    build_network: Option<Spanned<String>>,
    builder: Option<Spanned<String>>,
    cache_max_mb: Option<Spanned<u64>>,
    engines: Option<Spanned<Vec<Spanned<toml::Value>>>>,
    cache_from: Option<Spanned<Vec<Spanned<String>>>>,
    probe_image: Option<Spanned<String>>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TomlPublish {
    repository: Option<Spanned<String>>,
    tags: Option<Vec<Spanned<String>>>,
    sign: Option<Spanned<bool>>,
    signing_key_env: Option<Spanned<String>>,
}

fn read_file(source: &Source<'_>, toml: TomlConfig) -> Result<SettingsLayer, ConfigError> {
    Ok(SettingsLayer {
        model: read_model(source, toml.model)?,
        docker: read_docker(source, toml.docker)?,
        limits: validate::limits(source, toml.limits, LimitsOf::Config)?,
        bundle: read_bundle(source, toml.bundle)?,
        prompts: read_prompts(source, toml.prompts)?,
        publish: read_publish(source, toml.publish)?,
    })
}

fn read_publish(source: &Source<'_>, publish: TomlPublish) -> Result<PublishLayer, ConfigError> {
    let tags = match publish.tags {
        Some(tags) => Some(
            tags.into_iter()
                .map(|tag| source.text("tags", Some(tag), validate::image_tag))
                .map(|tag| tag.map(Option::unwrap_or_default))
                .collect::<Result<Vec<String>, ConfigError>>()?,
        ),
        None => None,
    };
    Ok(PublishLayer {
        repository: source
            .text("repository", publish.repository, validate::repository)?
            .map(Some),
        tags,
        sign: publish.sign.map(Spanned::into_inner),
        signing_key_env: source.text(
            "signing_key_env",
            publish.signing_key_env,
            validate::variable_name,
        )?,
    })
}

fn read_model(source: &Source<'_>, model: TomlModel) -> Result<ModelLayer, ConfigError> {
    Ok(ModelLayer {
        base_url: source.text("base_url", model.base_url, validate::base_url)?,
        api_key_env: source.text("api_key_env", model.api_key_env, validate::variable_name)?,
        name: source.text("name", model.name, validate::model_name)?,
        temperature: source.number("temperature", model.temperature, validate::temperature)?,
        request_timeout_secs: source.number(
            "request_timeout_secs",
            model.request_timeout_secs,
            at_least(1),
        )?,
        max_retries: source.number("max_retries", model.max_retries, any)?,
        max_retry_after_secs: source.number(
            "max_retry_after_secs",
            model.max_retry_after_secs,
            any,
        )?,
        structured_output: source.text(
            "structured_output",
            model.structured_output,
            validate::structured_output,
        )?,
        stream: source.number("stream", model.stream, any)?,
        max_tokens: source
            .number("max_tokens", model.max_tokens, at_least(1))?
            .map(Some),
        max_concurrent_requests: source.number(
            "max_concurrent_requests",
            model.max_concurrent_requests,
            at_least(1),
        )?,
        candidates: source.number("candidates", model.candidates, validate::candidates)?,
    })
}

fn read_docker(source: &Source<'_>, docker: TomlDocker) -> Result<DockerLayer, ConfigError> {
    let base_image = source.text("base_image", docker.base_image, validate::non_empty)?;
    let allowed_base_images = match docker.allowed_base_images {
        Some(list) => Some(read_allowed_images(source, list, base_image.as_deref())?),
        None => None,
    };
    Ok(DockerLayer {
        base_image,
        allowed_base_images,
        build_network: source.text(
            "build_network",
            docker.build_network,
            validate::build_network,
        )?,
        builder: source.text("builder", docker.builder, validate::builder)?,
        cache_max_mb: source.number("cache_max_mb", docker.cache_max_mb, any)?,
        engines: docker
            .engines
            .map(|list| crate::engines::read(source, list))
            .transpose()?,
        cache_from: docker
            .cache_from
            .map(|list| read_cache_from(source, list))
            .transpose()?,
        probe_image: source.text("probe_image", docker.probe_image, validate::non_empty)?,
    })
}

/// `cache_from`: image references, each as `--push` takes a repository, with a tag or
/// digest when it has one.
fn read_cache_from(
    source: &Source<'_>,
    list: Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<String>, ConfigError> {
    list.into_inner()
        .into_iter()
        .map(|reference| {
            let span = reference.span();
            validate::image_reference(reference.get_ref())
                .map_err(|message| source.invalid(span, format!("`cache_from`: {message}")))
        })
        .collect()
}

/// `allowed_base_images`, which must allow the image the model is told to build FROM:
/// otherwise every bundle would be refused before it is built.
fn read_allowed_images(
    source: &Source<'_>,
    list: Spanned<Vec<Spanned<String>>>,
    base_image: Option<&str>,
) -> Result<Vec<String>, ConfigError> {
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
    let wanted = base_image.unwrap_or(DEFAULT_BASE_IMAGE);
    if !images.is_empty() && !images.iter().any(|image| image == wanted) {
        return Err(source.invalid(
            span,
            format!(
                "`allowed_base_images` does not contain the base image `{wanted}`; \
                 add it or set `[docker] base_image` to one of them"
            ),
        ));
    }
    Ok(images)
}

fn read_bundle(source: &Source<'_>, bundle: TomlBundle) -> Result<BundleLayer, ConfigError> {
    Ok(BundleLayer {
        max_total_bytes: source.number("max_total_bytes", bundle.max_total_bytes, at_least(1))?,
        max_files: source.number("max_files", bundle.max_files, at_least(1))?,
        max_file_bytes: source.number("max_file_bytes", bundle.max_file_bytes, at_least(1))?,
        max_path_bytes: source.number("max_path_bytes", bundle.max_path_bytes, at_least(1))?,
    })
}

fn read_prompts(source: &Source<'_>, prompts: TomlPrompts) -> Result<PromptsLayer, ConfigError> {
    Ok(PromptsLayer {
        system: prompt_file(source, "system", prompts.system)?.map(Some),
        task: prompt_file(source, "task", prompts.task)?.map(Some),
        repair: prompt_file(source, "repair", prompts.repair)?.map(Some),
        judge: prompt_file(source, "judge", prompts.judge)?.map(Some),
    })
}

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
    let joined = validate::folder_of(source.path).join(value.get_ref());
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

/// Values taken from the environment (`OPENAI_BASE_URL`, `AGENT_MODEL`).
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    pub base_url: Option<String>,
    pub model: Option<String>,
}

/// Values given on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagOverrides {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub max_iterations: Option<u32>,
    /// `--push`, over `[publish] repository`.
    pub push: Option<String>,
    /// `--sign`, over `[publish] sign`.
    pub sign: bool,
    /// `--engine`, repeated; over `[docker] engines` when given.
    pub engines: Vec<String>,
    /// `--candidates`, over `[model] candidates`.
    pub candidates: Option<u32>,
    /// `--cache-from`, repeated; over `[docker] cache_from` when given.
    pub cache_from: Vec<String>,
    /// `--builder`, over `[docker] builder`.
    pub builder: Option<BuilderChoice>,
}

/// A value from the environment or a flag, checked, its problem naming `origin`.
fn overriding<V, T>(
    value: Option<V>,
    origin: &str,
    check: impl FnOnce(V) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(check)
        .transpose()
        .map_err(|message| ConfigError::Override {
            origin: origin.to_owned(),
            message,
        })
}

impl FlagOverrides {
    fn layer(&self) -> Result<SettingsLayer, ConfigError> {
        let model = ModelLayer {
            base_url: overriding(
                self.base_url.as_deref(),
                "flag `--base-url`",
                validate::base_url,
            )?,
            name: overriding(
                self.model.as_deref(),
                "flag `--model`",
                validate::model_name,
            )?,
            candidates: overriding(self.candidates, "flag `--candidates`", validate::candidates)?,
            ..ModelLayer::default()
        };
        let limits = LimitsLayer {
            max_iterations: overriding(
                self.max_iterations,
                "flag `--max-iterations`",
                at_least(1),
            )?,
            ..LimitsLayer::default()
        };
        let publish = PublishLayer {
            repository: overriding(self.push.as_deref(), "flag `--push`", validate::repository)?
                .map(Some),
            sign: self.sign.then_some(true),
            ..PublishLayer::default()
        };
        let engines = self
            .engines
            .iter()
            .map(|url| {
                overriding(
                    Some(url.as_str()),
                    "flag `--engine`",
                    crate::engines::engine_url,
                )
                .map(|url| EngineSetting {
                    url: url.unwrap_or_default(),
                    slots: None,
                    identity: None,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cache_from = self
            .cache_from
            .iter()
            .map(|reference| {
                overriding(
                    Some(reference.as_str()),
                    "flag `--cache-from`",
                    validate::image_reference,
                )
                .map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let docker = DockerLayer {
            engines: (!engines.is_empty()).then_some(engines),
            cache_from: (!cache_from.is_empty()).then_some(cache_from),
            builder: self.builder,
            ..DockerLayer::default()
        };
        Ok(SettingsLayer {
            model,
            docker,
            limits,
            publish,
            ..SettingsLayer::default()
        })
    }
}

impl EnvOverrides {
    /// The environment's layer; a variable that `above` replaces is not checked.
    fn layer(&self, above: &SettingsLayer) -> Result<SettingsLayer, ConfigError> {
        fn unless_above(value: &Option<String>, replaced: bool) -> Option<&str> {
            value.as_deref().filter(|_| !replaced)
        }
        let model = ModelLayer {
            base_url: overriding(
                unless_above(&self.base_url, above.model.base_url.is_some()),
                "environment variable `OPENAI_BASE_URL`",
                validate::base_url,
            )?,
            name: overriding(
                unless_above(&self.model, above.model.name.is_some()),
                "environment variable `AGENT_MODEL`",
                validate::model_name,
            )?,
            ..ModelLayer::default()
        };
        Ok(SettingsLayer {
            model,
            ..SettingsLayer::default()
        })
    }
}

/// Everything resolved, ready to use.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub model: ModelSettings,
    pub docker: DockerSettings,
    /// The limits below a spec's `[limits]`: `agent.toml`'s over the built-in defaults.
    /// A spec runs with [`Settings::limits_for`].
    pub limits: Limits,
    pub bundle: BundleLimits,
    pub prompts: PromptSettings,
    pub publish: PublishSettings,
    /// The flags' limits, which sit above each spec's `[limits]`.
    pub limit_flags: LimitsLayer,
}

impl Settings {
    /// Merges the file (if any), the environment and the flags over the built-in
    /// defaults, in the order of this module's documentation.
    pub fn resolve(
        file: Option<&ConfigFile>,
        env: &EnvOverrides,
        flags: &FlagOverrides,
    ) -> Result<Settings, ConfigError> {
        let flags = flags.layer()?;
        let env = env.layer(&flags)?;
        let file = file.map(|file| file.layer.clone()).unwrap_or_default();
        let below_flags = env.combine(file);
        let limit_flags = flags.limits.clone();
        let merged = flags.combine(below_flags.clone());
        Ok(Settings {
            model: merged.model.resolve(ModelSettings::default()),
            docker: merged.docker.resolve(DockerSettings::default()),
            limits: below_flags.limits.resolve(Limits::default()),
            bundle: merged.bundle.resolve(BundleLimits::default()),
            prompts: merged.prompts.resolve(PromptSettings::default()),
            publish: merged.publish.resolve(PublishSettings::default()),
            limit_flags,
        })
    }

    /// The limits one spec runs with: the flags over the spec's `[limits]` over these
    /// settings' limits.
    pub fn limits_for(&self, spec: &Spec) -> Limits {
        self.limit_flags
            .clone()
            .combine(spec.limits.clone())
            .resolve(self.limits.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{BuildNetwork, BuilderChoice, NetworkMode, StructuredOutput};
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
    fn cache_sources_are_image_references_and_the_flags_replace_them() {
        let digest = format!("127.0.0.1:5000/ci/hello@sha256:{}", "a".repeat(64));
        let text = format!("[docker]\ncache_from = [\"ghcr.io/acme/tool:main\", \"{digest}\"]\n");
        let file = parse(&text).unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.docker.cache_from,
            ["ghcr.io/acme/tool:main", digest.as_str()]
        );
        let flags = FlagOverrides {
            cache_from: vec!["127.0.0.1:5000/ci/hello".to_owned()],
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
        assert_eq!(settings.docker.cache_from, ["127.0.0.1:5000/ci/hello"]);

        let (line, column, message) = invalid("[docker]\ncache_from = [\"Not/Lower\"]\n");
        assert_eq!((line, column), (2, 15), "{message}");
        assert!(message.contains("`cache_from`"), "{message}");
        let (origin, _) = override_error(
            &EnvOverrides::default(),
            &FlagOverrides {
                cache_from: vec!["x@sha256:short".to_owned()],
                ..FlagOverrides::default()
            },
        );
        assert_eq!(origin, "flag `--cache-from`");
    }

    #[test]
    fn engines_are_addresses_or_tables_and_the_flags_replace_them() {
        let text = "[docker]\nengines = [\"unix:///var/run/docker.sock\", { url = \"tcp://b2:2376\", slots = 3 }]\n";
        let file = parse(text).unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.docker.engines,
            vec![
                EngineSetting {
                    url: "unix:///var/run/docker.sock".to_owned(),
                    slots: None,
                    identity: None,
                },
                EngineSetting {
                    url: "tcp://b2:2376".to_owned(),
                    slots: Some(3),
                    identity: None,
                },
            ]
        );
        let flags = FlagOverrides {
            engines: vec!["unix:///tmp/other.sock".to_owned()],
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
        assert_eq!(settings.docker.engines.len(), 1);
        assert_eq!(settings.docker.engines[0].url, "unix:///tmp/other.sock");

        let (line, column, message) =
            invalid("[docker]\nengines = [{ url = \"tcp://b2:2376\", slot = 3 }]\n");
        assert_eq!((line, column), (2, 12), "{message}");
        assert!(message.contains("unknown key `slot`"), "{message}");
        let text = "[docker]\nengines = [{ url = \"ssh://ci@b3\", identity = \"keys/b3\" }]\n";
        let settings = resolve(
            Some(&parse(text).unwrap()),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.docker.engines[0].identity.as_deref(),
            Some("keys/b3")
        );
        let (_, _, message) =
            invalid("[docker]\nengines = [{ url = \"tcp://b2:2376\", identity = \"k\" }]\n");
        assert!(message.contains("not one"), "{message}");
        let (origin, message) = override_error(
            &EnvOverrides::default(),
            &FlagOverrides {
                engines: vec!["b2:2376".to_owned()],
                ..FlagOverrides::default()
            },
        );
        assert_eq!(origin, "flag `--engine`");
        assert!(message.contains("not an engine address"), "{message}");
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
                max_concurrent_requests: 8,
                candidates: 1,
            }
        );
        assert_eq!(
            settings.docker,
            DockerSettings {
                base_image: "python:3.10-slim".to_owned(),
                allowed_base_images: Vec::new(),
                build_network: BuildNetwork::Default,
                builder: BuilderChoice::Auto,
                cache_max_mb: crate::settings::DEFAULT_CACHE_MAX_MB,
                engines: Vec::new(),
                cache_from: Vec::new(),
                probe_image: "agent-base/busybox:1".to_owned(),
            }
        );
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.bundle, BundleLimits::default());
        assert_eq!(settings.prompts, PromptSettings::default());
        assert_eq!(settings.limit_flags, LimitsLayer::default());
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
max_concurrent_requests = 2
candidates = 3

[docker]
base_image = "agent-base/python:3.11"
allowed_base_images = ["agent-base/python:3.11", "agent-base/busybox:1"]
build_network = "none"
builder = "buildkit"
cache_max_mb = 512
probe_image = "tools/probe:2"

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
                max_concurrent_requests: 2,
                candidates: 3,
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
                builder: BuilderChoice::BuildKit,
                cache_max_mb: 512,
                engines: Vec::new(),
                cache_from: Vec::new(),
                probe_image: "tools/probe:2".to_owned(),
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
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &env, &flags);
        assert_eq!(settings.model.base_url, "https://flag/v1");
        assert_eq!(settings.model.name, "flag-model");
        assert_eq!(settings.limit_flags.max_iterations, Some(2));
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
            ..FlagOverrides::default()
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
                "[model]\nmax_concurrent_requests = 0",
                "`max_concurrent_requests` must be at least 1",
            ),
            (
                "[model]\ncandidates = 17",
                "`candidates` must be between 1 and 16",
            ),
            (
                "[model]\napi_key_env = \"\"",
                "`api_key_env`: must name an environment variable: non-empty, without `=` or NUL",
            ),
            (
                "[docker]\nbuild_network = \"bridge\"",
                "`build_network`: unknown network `bridge`; expected `default`, `none` or `host`",
            ),
            (
                "[docker]\nbuilder = \"kaniko\"",
                "`builder`: unknown builder `kaniko`; expected `auto`, `classic` or `buildkit`",
            ),
            ("[docker]\nbase_image = \" \"", "`base_image`: is empty"),
            ("[docker]\nprobe_image = \"\"", "`probe_image`: is empty"),
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
    fn structured_output_defaults_to_auto_and_reads_json_schema() {
        let file = parse("[model]\nstructured_output = \"json_schema\"\n").unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.model.structured_output,
            StructuredOutput::JsonSchema
        );
        let settings = resolve(None, &EnvOverrides::default(), &FlagOverrides::default());
        assert_eq!(settings.model.structured_output, StructuredOutput::Auto);
    }

    #[test]
    fn publish_is_read_from_the_file_and_the_push_flag_wins() {
        let file =
            parse("[publish]\nrepository = \"ghcr.io/acme/tools/\"\ntags = [\"latest\", \"v1\"]\n")
                .unwrap();
        let settings = resolve(
            Some(&file),
            &EnvOverrides::default(),
            &FlagOverrides::default(),
        );
        assert_eq!(
            settings.publish.repository.as_deref(),
            Some("ghcr.io/acme/tools")
        );
        assert_eq!(settings.publish.tags, ["latest", "v1"]);
        let flags = FlagOverrides {
            push: Some("127.0.0.1:5000/team".to_owned()),
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
        assert_eq!(
            settings.publish.repository.as_deref(),
            Some("127.0.0.1:5000/team")
        );
        assert_eq!(
            settings.publish.tags,
            ["latest", "v1"],
            "tags stay from the file"
        );
        assert_eq!(
            resolve(None, &EnvOverrides::default(), &FlagOverrides::default()).publish,
            PublishSettings::default()
        );

        let (line, column, message) = invalid("[publish]\nrepository = \"Acme/Tools\"\n");
        assert_eq!((line, column), (2, 14));
        assert!(
            message.starts_with("`repository`: `Acme/Tools` is not a repository"),
            "{message}"
        );
        let (line, _, message) = invalid("[publish]\ntags = [\"latest\",\n  \".hidden\"]\n");
        assert_eq!(line, 3);
        assert!(
            message.starts_with("`tags`: `.hidden` is not a tag"),
            "{message}"
        );
        let flags = FlagOverrides {
            push: Some("a b".to_owned()),
            ..FlagOverrides::default()
        };
        let (origin, _) = override_error(&EnvOverrides::default(), &flags);
        assert_eq!(origin, "flag `--push`");
    }

    #[test]
    fn the_flags_limits_sit_above_the_file_but_not_in_its_limits() {
        let file = parse("[limits]\nmax_iterations = 5\n").unwrap();
        let flags = FlagOverrides {
            max_iterations: Some(2),
            ..FlagOverrides::default()
        };
        let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
        assert_eq!(settings.limits.max_iterations, 5);
        let spec = parse_spec(
            Path::new("/specs/task.toml"),
            "prompt = \"x\"\nconditions = \"y\"\n",
        )
        .unwrap();
        assert_eq!(settings.limits_for(&spec).max_iterations, 2);
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
