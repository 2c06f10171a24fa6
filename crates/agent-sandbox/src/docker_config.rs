//! The Docker CLI's `config.json`, read in one place: the context it names (for the
//! CLI's engine discovery) and its registry credentials (`registry_auth`). A missing
//! or empty file is an empty config, as the Docker CLI reads it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::errors::DockerConfigError;

/// `config.json` as far as `agent` reads it; other keys are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct DockerConfig {
    /// The context `docker` uses when `DOCKER_CONTEXT` and `DOCKER_HOST` are unset.
    #[serde(default, rename = "currentContext")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub(crate) auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    pub(crate) creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    pub(crate) cred_helpers: BTreeMap<String, String>,
}

/// One `auths` entry. Its `Debug` would show secrets: it is never printed.
#[derive(Default, Deserialize)]
pub(crate) struct AuthEntry {
    #[serde(default)]
    pub(crate) auth: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<String>,
    #[serde(default)]
    pub(crate) identitytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AuthEntry { .. }")
    }
}

/// Reads `config.json` at `path`.
pub fn read_docker_config(path: &Path) -> Result<DockerConfig, DockerConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DockerConfig::default());
        }
        Err(error) => return Err(DockerConfigError::Read(error)),
    };
    if text.trim().is_empty() {
        return Ok(DockerConfig::default());
    }
    serde_json::from_str(&text).map_err(DockerConfigError::Parse)
}
