//! The environment's and the flags' values, each checked and read into a
//! [`SettingsLayer`]; a problem names the variable or the flag.

use crate::config::engines::engine_url;
use crate::config::limits::LimitsLayer;
use crate::config::settings::{BuilderChoice, EngineSetting};
use crate::config::tables::{DockerLayer, ModelLayer, PublishLayer, SettingsLayer};
use crate::errors::ConfigError;
use crate::validate::{self, at_least};

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
    pub(crate) fn layer(&self) -> Result<SettingsLayer, ConfigError> {
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
                overriding(Some(url.as_str()), "flag `--engine`", engine_url).map(|url| {
                    EngineSetting {
                        url: url.unwrap_or_default(),
                        slots: None,
                        identity: None,
                    }
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
    pub(crate) fn layer(&self, above: &SettingsLayer) -> Result<SettingsLayer, ConfigError> {
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
