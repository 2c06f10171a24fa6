//! `agent.toml`, the environment and the flags, merged into [`Settings`].
//!
//! Precedence, lowest first:
//!
//! 1. built-in defaults (`settings`);
//! 2. `agent.toml` ([`ConfigFile`]);
//! 3. the environment ([`EnvOverrides`]);
//! 4. a spec's `[limits]`, for that spec's [`Limits`] (`Settings::limits_for`, beside
//!    the spec);
//! 5. command line flags ([`FlagOverrides`]).
//!
//! Each source is read into a `SettingsLayer` by the same checks (`crate::validate`); the layers are merged with `Combine` and resolved once over the
//! defaults. This crate never reads the environment: the caller collects the
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

mod egress;
mod engines;
mod file;
mod layer;
mod limits;
mod overrides;
mod settings;
mod tables;
#[cfg(test)]
mod tests;

pub use egress::AllowEntry;
pub use file::{ConfigFile, config_schema};
pub(crate) use layer::Combine;
pub(crate) use limits::SpecLimitsTable;
pub use limits::{Limits, LimitsLayer};
pub use overrides::{EnvOverrides, FlagOverrides};
pub use settings::{BuildNetwork, BuilderChoice, NetworkMode, StructuredOutput};
pub use tables::{
    BundleLimits, DEFAULT_SIGNING_KEY_ENV, DockerSettings, ModelSettings, PromptSettings,
    PublishSettings,
};

use crate::errors::ConfigError;

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
}
