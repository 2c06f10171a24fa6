//! The distribution API as far as attestations need it: manifests read and written,
//! blobs read and uploaded, each answer read only up to a bound. Credentials as the
//! caller found them (the Docker CLI's): `Basic` where the registry asks for it, else
//! a bearer token from the realm its `WWW-Authenticate` challenge names. Registries on
//! the loopback are spoken to over plain HTTP, as the Docker engine does; others over
//! HTTPS.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::errors::AttestError;

/// How long one request may take, answer included: manifests and envelopes are small.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an error body repeated in a message.
const MESSAGE_LIMIT: usize = 300;
/// The most a token answer may hold.
const TOKEN_LIMIT: usize = 64 * 1024;

/// Credentials for a registry.
#[derive(Clone)]
pub enum Login {
    Password {
        username: String,
        password: SecretString,
    },
    /// An OAuth2 refresh token (`identitytoken` in the Docker CLI's config).
    IdentityToken(SecretString),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Login { .. }")
    }
}

/// One registry, with the authorization it last earned.
#[derive(Debug)]
pub struct Registry {
    client: reqwest::Client,
    host: String,
    base: String,
    login: Option<Login>,
    authorization: Mutex<Option<String>>,
}

/// A request's parts that are sent again after an authorization challenge.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Below `/v2/`, or an absolute URL the registry gave (an upload's location).
    pub path: &'a str,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    /// For messages: what was asked (`the manifest of …`).
    pub what: &'a str,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Registry {
    /// The registry at `host` (`host[:port]`), with `login` or anonymous.
    pub fn new(host: &str, login: Option<Login>) -> Result<Registry, AttestError> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|source| AttestError::Unreachable {
                registry: host.to_owned(),
                source,
            })?;
        let scheme = if is_loopback(host) { "http" } else { "https" };
        Ok(Registry {
            client,
            host: host.to_owned(),
            base: format!("{scheme}://{host}/v2/"),
            login,
            authorization: Mutex::new(None),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `call`; on a 401, earns an authorization as the challenge asks and sends
    /// it once more. A second 401 (or 403) is refused credentials.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response, AttestError> {
        let response = self.send_once(call).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.refused(call, response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let authorization = self.authorize(&challenge, call).await?;
        *self.authorization.lock().await = Some(authorization);
        let response = self.send_once(call).await?;
        self.refused(call, response)
    }

    fn refused(&self, call: &Call<'_>, response: Response) -> Result<Response, AttestError> {
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AttestError::AuthRefused {
                registry: self.host.clone(),
                what: call.what.to_owned(),
                status: response.status().as_u16(),
            }),
            _ => Ok(response),
        }
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Response, AttestError> {
        let url = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            call.path.to_owned()
        } else {
            format!("{}{}", self.base, call.path)
        };
        let mut request = self.client.request(call.method.clone(), url);
        if let Some(accept) = call.accept {
            request = request.header(ACCEPT, accept);
        }
        if let Some(content_type) = call.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = self.authorization.lock().await.clone() {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        request
            .send()
            .await
            .map_err(|source| self.unreachable(source))
    }

    fn unreachable(&self, source: reqwest::Error) -> AttestError {
        AttestError::Unreachable {
            registry: self.host.clone(),
            source,
        }
    }

    /// The `Authorization` value the challenge asks for.
    async fn authorize(&self, challenge: &str, call: &Call<'_>) -> Result<String, AttestError> {
        let refused = || AttestError::AuthRefused {
            registry: self.host.clone(),
            what: call.what.to_owned(),
            status: 401,
        };
        let (scheme, parameters) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return match &self.login {
                Some(Login::Password { username, password }) => {
                    Ok(basic(username, password.expose_secret()))
                }
                _ => Err(refused()),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(refused());
        }
        let parameters = challenge_parameters(parameters);
        let realm = parameters
            .iter()
            .find(|(key, _)| key == "realm")
            .map(|(_, value)| value.clone())
            .ok_or_else(refused)?;
        let token = self.token(&realm, &parameters, call).await?;
        Ok(format!("Bearer {token}"))
    }

    /// A bearer token from `realm` for the challenge's service and scope.
    async fn token(
        &self,
        realm: &str,
        parameters: &[(String, String)],
        call: &Call<'_>,
    ) -> Result<String, AttestError> {
        let query: Vec<(&str, &str)> = parameters
            .iter()
            .filter(|(key, _)| key == "service" || key == "scope")
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        let request = match &self.login {
            Some(Login::IdentityToken(token)) => {
                let mut form = query.clone();
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("client_id", "agent"),
                    ("refresh_token", token.expose_secret()),
                ]);
                self.client.post(realm).form(&form)
            }
            Some(Login::Password { username, password }) => self
                .client
                .get(realm)
                .query(&query)
                .header(AUTHORIZATION, basic(username, password.expose_secret())),
            None => self.client.get(realm).query(&query),
        };
        let response = request
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = response.status();
        if !status.is_success() {
            return Err(AttestError::AuthRefused {
                registry: self.host.clone(),
                what: call.what.to_owned(),
                status: status.as_u16(),
            });
        }
        let bytes = self.read_bounded(response, TOKEN_LIMIT, "a token").await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&bytes).map_err(|error| self.malformed("a token", error))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| self.malformed("a token", "it holds no `token`"))
    }

    /// The answer's body, refused past `limit` bytes (counted as it arrives).
    pub(crate) async fn read_bounded(
        &self,
        mut response: Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, AttestError> {
        let too_large = || AttestError::TooLarge {
            registry: self.host.clone(),
            what: what.to_owned(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| self.unreachable(source))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    pub(crate) fn malformed(&self, what: &str, reason: impl std::fmt::Display) -> AttestError {
        AttestError::Malformed {
            registry: self.host.clone(),
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// An answer that is not the success the call expected.
    pub(crate) async fn unexpected(&self, what: &str, response: Response) -> AttestError {
        let status = response.status().as_u16();
        let body = self
            .read_bounded(response, MESSAGE_LIMIT * 4, what)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        AttestError::Registry {
            registry: self.host.clone(),
            what: what.to_owned(),
            status,
            message: text.trim().chars().take(MESSAGE_LIMIT).collect(),
        }
    }

    /// An upload's `Location`, made absolute against the registry.
    pub(crate) fn location(&self, headers: &HeaderMap) -> Option<String> {
        let location = headers.get(LOCATION)?.to_str().ok()?;
        if location.starts_with("http://") || location.starts_with("https://") {
            return Some(location.to_owned());
        }
        let origin = self.base.strip_suffix("/v2/")?;
        Some(format!("{origin}{location}"))
    }
}

fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// `realm="https://auth",service="registry",scope="repository:a:pull"` → pairs.
fn challenge_parameters(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value, remaining),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        pairs.push((key, value.to_owned()));
        rest = remaining.trim_start_matches(',').trim();
    }
    pairs
}

/// Hosts the engine itself speaks plain HTTP to without being told.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_is_read_with_commas_inside_quotes() {
        let pairs = challenge_parameters(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            pairs,
            [
                ("realm".to_owned(), "https://auth.example/token".to_owned()),
                ("service".to_owned(), "registry.example".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull,push".to_owned()),
            ]
        );
    }

    #[test]
    fn only_loopback_registries_are_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
