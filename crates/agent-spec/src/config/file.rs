//! `agent.toml` as written: its tables read with spans, each value checked and
//! pointed at when it is wrong, into one [`SettingsLayer`].

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::layer::{
    BundleLayer, DockerLayer, ModelLayer, PromptsLayer, PublishLayer, SettingsLayer,
};
use crate::config::limits::{self, LimitsOf, LimitsTable};
use crate::config::settings::{BuildNetwork, BuilderChoice, DEFAULT_BASE_IMAGE, StructuredOutput};
use crate::errors::ConfigError;
use crate::position::describe;
use crate::validate::{self, Source, any, at_least};

/// `agent.toml` as written: every field optional, unknown keys rejected with line and
/// column. Relative paths in `[prompts]` are resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub(crate) layer: SettingsLayer,
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
}

fn read_file(source: &Source<'_>, toml: TomlConfig) -> Result<SettingsLayer, ConfigError> {
    Ok(SettingsLayer {
        model: read_model(source, toml.model)?,
        docker: read_docker(source, toml.docker)?,
        limits: limits::read(source, toml.limits, LimitsOf::Config)?,
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
            str::parse::<StructuredOutput>,
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
            str::parse::<BuildNetwork>,
        )?,
        builder: source.text("builder", docker.builder, str::parse::<BuilderChoice>)?,
        cache_max_mb: source.number("cache_max_mb", docker.cache_max_mb, any)?,
        engines: docker
            .engines
            .map(|list| crate::config::engines::read(source, list))
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
