//! `agent.toml` as written: its tables read with spans, each value checked and
//! pointed at when it is wrong, into one [`SettingsLayer`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::limits::LimitsTable;
use crate::config::settings::DEFAULT_BASE_IMAGE;
use crate::config::tables::{
    BundleTable, DockerLayer, DockerTable, ModelTable, PromptsTable, PublishTable, SettingsLayer,
};
use crate::errors::{ConfigError, Problems};
use crate::position::describe;
use crate::problems::every_problem;
use crate::spanned::Spanned;
use crate::validate::{self, Source};

/// `agent.toml` as written: every field optional, unknown keys rejected with line and
/// column. Relative paths in `[prompts]` are resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub(crate) layer: SettingsLayer,
}

impl ConfigFile {
    /// Reads and checks the file, with every problem found in it.
    pub fn load(path: &Path) -> Result<ConfigFile, Problems<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            Problems::new(vec![ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }])
        })?;
        every_problem(&text, |text| ConfigFile::parse(path, text))
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let toml: ConfigTable = toml::from_str(text).map_err(|error| {
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

/// The JSON Schema of `agent.toml`, generated from the tables it is read with.
pub fn config_schema() -> serde_json::Value {
    crate::spanned::schema_of::<ConfigTable>("agent.toml")
}

/// `agent.toml` as written: the table its JSON Schema is generated from.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigTable {
    #[serde(default)]
    model: ModelTable,
    #[serde(default)]
    docker: DockerTable,
    #[serde(default)]
    limits: LimitsTable,
    #[serde(default)]
    bundle: BundleTable,
    #[serde(default)]
    prompts: PromptsTable,
    #[serde(default)]
    publish: PublishTable,
}

fn read_file(source: &Source<'_>, toml: ConfigTable) -> Result<SettingsLayer, ConfigError> {
    let allowed_span = toml.docker.allowed_base_images.as_ref().map(Spanned::span);
    let docker = toml.docker.read(source)?;
    base_image_allowed(source, allowed_span, &docker)?;
    Ok(SettingsLayer {
        model: toml.model.read(source)?,
        docker,
        limits: toml.limits.read(source)?,
        bundle: toml.bundle.read(source)?,
        prompts: toml.prompts.read(source)?,
        publish: toml.publish.read(source)?,
    })
}

/// `[publish] tags`.
pub(crate) fn read_tags(
    source: &Source<'_>,
    key: &str,
    tags: Vec<Spanned<String>>,
) -> Result<Vec<String>, ConfigError> {
    tags.into_iter()
        .map(|tag| source.text(key, Some(tag), validate::image_tag))
        .map(|tag| tag.map(Option::unwrap_or_default))
        .collect()
}

/// `cache_from`: image references, each as `--push` takes a repository, with a tag or
/// digest when it has one.
pub(crate) fn read_cache_from(
    source: &Source<'_>,
    key: &str,
    list: Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<String>, ConfigError> {
    list.into_inner()
        .into_iter()
        .map(|reference| {
            let span = reference.span();
            validate::image_reference(reference.get_ref())
                .map_err(|message| source.invalid(span, format!("`{key}`: {message}")))
        })
        .collect()
}

/// `build_allow`: each entry an ecosystem or a host (`config::egress`).
pub(crate) fn read_build_allow(
    source: &Source<'_>,
    key: &str,
    list: Spanned<Vec<Spanned<String>>>,
) -> Result<Option<Vec<String>>, ConfigError> {
    list.into_inner()
        .into_iter()
        .map(|entry| {
            let span = entry.span();
            crate::config::egress::check(entry.get_ref())
                .map_err(|message| source.invalid(span, format!("`{key}`: {message}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `allowed_base_images`, without empty entries.
pub(crate) fn read_allowed_images(
    source: &Source<'_>,
    key: &str,
    list: Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<String>, ConfigError> {
    let mut images = Vec::new();
    for image in list.into_inner() {
        if image.get_ref().trim().is_empty() {
            return Err(source.invalid(image.span(), format!("`{key}` has an empty entry")));
        }
        images.push(image.into_inner());
    }
    Ok(images)
}

/// `allowed_base_images` must allow the image the model is told to build FROM:
/// otherwise every bundle would be refused before it is built.
fn base_image_allowed(
    source: &Source<'_>,
    span: Option<std::ops::Range<usize>>,
    docker: &DockerLayer,
) -> Result<(), ConfigError> {
    let (Some(span), Some(images)) = (span, &docker.allowed_base_images) else {
        return Ok(());
    };
    let wanted = docker.base_image.as_deref().unwrap_or(DEFAULT_BASE_IMAGE);
    if !images.is_empty() && !images.iter().any(|image| image == wanted) {
        return Err(source.invalid(
            span,
            format!(
                "`allowed_base_images` does not contain the base image `{wanted}`; \
                 add it or set `[docker] base_image` to one of them"
            ),
        ));
    }
    Ok(())
}

/// A `[prompts]` entry, resolved against the config file's folder and checked to be a
/// readable file now rather than at the first model call.
pub(crate) fn prompt_file(
    source: &Source<'_>,
    key: &str,
    value: Spanned<String>,
) -> Result<Option<PathBuf>, ConfigError> {
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
