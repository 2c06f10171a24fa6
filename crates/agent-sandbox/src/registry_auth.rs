//! Registry credentials found as the Docker CLI finds them: `config.json`'s `auths`
//! entries, its credential helpers (`credHelpers` per registry, else `credsStore`) and
//! the `docker-credential-<name> get` protocol. The caller says where `config.json` is
//! and where helpers are looked up: this module never reads the environment.
//! Credentials are held as secrets and never shown, not even by `Debug`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::docker_config::{DockerConfig, read_docker_config};
use crate::errors::SandboxError;

/// The key Docker Hub's credentials are stored under, as the Docker CLI writes it.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// The user name a helper answers when its secret is an identity token.
const TOKEN_USERNAME: &str = "<token>";
/// The most of a helper's stderr an error repeats.
const HELPER_MESSAGE_LIMIT: usize = 300;

/// Where credentials come from.
#[derive(Debug, Clone)]
pub struct CredentialSource {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; a missing file
    /// means no credentials.
    pub config_file: PathBuf,
    /// The `PATH` that `docker-credential-<name>` helpers are looked up in (`None`: this
    /// process's own).
    pub helper_path: Option<OsString>,
    /// How long a helper may take to answer.
    pub helper_timeout: Duration,
}

/// Credentials for one registry. `Debug` shows the server only.
#[derive(Clone)]
pub struct RegistryCredentials {
    server: String,
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    Password {
        username: String,
        password: SecretString,
    },
    IdentityToken(SecretString),
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.secret {
            Secret::Password { .. } => "password",
            Secret::IdentityToken(_) => "identity token",
        };
        formatter
            .debug_struct("RegistryCredentials")
            .field("server", &self.server)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl RegistryCredentials {
    /// The registry these are for, as `config.json` names it.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The user name and password, when these are a password's credentials: for
    /// talking to the registry's HTTP API directly (attestations).
    pub fn password(&self) -> Option<(&str, &SecretString)> {
        match &self.secret {
            Secret::Password { username, password } => Some((username, password)),
            Secret::IdentityToken(_) => None,
        }
    }

    /// The identity token (an OAuth2 refresh token), when these are one.
    pub fn identity_token(&self) -> Option<&SecretString> {
        match &self.secret {
            Secret::IdentityToken(token) => Some(token),
            Secret::Password { .. } => None,
        }
    }

    /// What the engine's push endpoint takes (sent base64-encoded in a header, never
    /// stored).
    pub(crate) fn to_docker(&self) -> bollard::auth::DockerCredentials {
        let mut credentials = bollard::auth::DockerCredentials {
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        };
        match &self.secret {
            Secret::Password { username, password } => {
                credentials.username = Some(username.clone());
                credentials.password = Some(password.expose_secret().to_owned());
            }
            Secret::IdentityToken(token) => {
                credentials.identitytoken = Some(token.expose_secret().to_owned());
            }
        }
        credentials
    }
}

/// A helper's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The registry a repository lives in, as credentials are keyed: its first path
/// component when that names a host (has a `.` or `:`, or is `localhost`), else Docker
/// Hub.
pub fn registry_server(repository: &str) -> String {
    match repository.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if first == "docker.io" || first == "index.docker.io" {
                DOCKER_HUB_SERVER.to_owned()
            } else {
                first.to_owned()
            }
        }
        _ => DOCKER_HUB_SERVER.to_owned(),
    }
}

/// The credentials for `server` (see [`registry_server`]), `None` when there are none
/// (an anonymous push). A helper named by `credHelpers` for this server wins over
/// `credsStore`, which wins over `auths`, as in the Docker CLI; a helper that knows no
/// credentials for the server falls back to the `auths` entry.
pub async fn resolve_credentials(
    source: &CredentialSource,
    server: &str,
) -> Result<Option<RegistryCredentials>, SandboxError> {
    let config = read_config(&source.config_file)?;
    let from_file = file_credentials(&config, &source.config_file, server)?;
    let helper = config
        .cred_helpers
        .get(server)
        .or(config.creds_store.as_ref())
        .filter(|name| !name.is_empty());
    match helper {
        Some(helper) => Ok(ask_helper(source, helper, server).await?.or(from_file)),
        None => Ok(from_file),
    }
}

fn read_config(path: &Path) -> Result<DockerConfig, SandboxError> {
    // The error's text names the line and column, never the text around it.
    read_docker_config(path).map_err(|error| SandboxError::DockerConfig {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// The `auths` entry for `server`: the exact key, else a key that names the same host
/// (`https://host/v1/` for `host`).
fn file_credentials(
    config: &DockerConfig,
    path: &Path,
    server: &str,
) -> Result<Option<RegistryCredentials>, SandboxError> {
    let entry = config.auths.get(server).or_else(|| {
        config
            .auths
            .iter()
            .find(|(key, _)| hostname_of(key) == server || hostname_of(key) == hostname_of(server))
            .map(|(_, entry)| entry)
    });
    let Some(entry) = entry else {
        return Ok(None);
    };
    let server = server.to_owned();
    if let Some(token) = entry
        .identitytoken
        .as_deref()
        .filter(|token| !token.is_empty())
    {
        return Ok(Some(RegistryCredentials {
            server,
            secret: Secret::IdentityToken(SecretString::from(token.to_owned())),
        }));
    }
    let (username, password) = match entry.auth.as_deref().filter(|auth| !auth.is_empty()) {
        Some(auth) => decode_auth(auth).ok_or_else(|| SandboxError::DockerConfig {
            path: path.to_path_buf(),
            reason: format!("the `auth` of `{server}` is not base64 of `user:password`"),
        })?,
        None => match (&entry.username, &entry.password) {
            (Some(username), Some(password)) => (username.clone(), password.clone()),
            _ => return Ok(None),
        },
    };
    Ok(Some(RegistryCredentials {
        server,
        secret: Secret::Password {
            username,
            password: SecretString::from(password),
        },
    }))
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((
        username.to_owned(),
        password.trim_end_matches('\0').to_owned(),
    ))
}

/// `https://host:5000/v1/` → `host:5000`.
fn hostname_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// Runs `docker-credential-<helper> get` with `server` on stdin. `None` when the helper
/// has no credentials for it.
async fn ask_helper(
    source: &CredentialSource,
    helper: &str,
    server: &str,
) -> Result<Option<RegistryCredentials>, SandboxError> {
    let program = format!("docker-credential-{helper}");
    let failure = |reason: String| SandboxError::CredentialHelper {
        helper: program.clone(),
        server: server.to_owned(),
        reason,
    };
    let mut command = tokio::process::Command::new(&program);
    if let Some(path) = &source.helper_path {
        // A PATH set on the command is also where the program is looked up.
        command.env("PATH", path);
    }
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| failure(error.to_string()))?;
    let answered = tokio::time::timeout(source.helper_timeout, async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(server.as_bytes()).await?;
            stdin.shutdown().await?;
        }
        child.wait_with_output().await
    })
    .await;
    let output = match answered {
        Ok(output) => output.map_err(|error| failure(error.to_string()))?,
        Err(_elapsed) => {
            return Err(failure(format!(
                "no answer within {} s",
                source.helper_timeout.as_secs()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The protocol's "not found" answer comes on stdout and carries no secret.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(failure(helper_message(&output.stderr, output.status)));
    }
    // On a parse failure the output is not repeated: it may hold the secret.
    let answer: HelperAnswer = serde_json::from_str(stdout.trim())
        .map_err(|_| failure("its answer is not the JSON of the `get` protocol".to_owned()))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    let secret = if answer.username == TOKEN_USERNAME {
        Secret::IdentityToken(SecretString::from(answer.secret))
    } else {
        Secret::Password {
            username: answer.username,
            password: SecretString::from(answer.secret),
        }
    };
    Ok(Some(RegistryCredentials {
        server: server.to_owned(),
        secret,
    }))
}

fn helper_message(stderr: &[u8], status: std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return format!("it ended with {status}");
    }
    let cut: String = text.chars().take(HELPER_MESSAGE_LIMIT).collect();
    format!("it ended with {status}: {cut}")
}

#[cfg(test)]
#[path = "registry_auth_tests.rs"]
mod tests;
