//! The client of one endpoint: its settings, credentials and HTTP client.

use std::sync::Arc;
use std::time::Duration;

use agent_spec::{BundleLimits, ModelSettings};
use async_openai::config::Config;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::errors::ModelError;
use crate::live::backoff::Backoff;
use crate::live::gate::Gate;
use crate::live::negotiation::Negotiation;

/// Connecting never takes longer than this, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The client of one endpoint; shared by every session of an invocation.
#[derive(Clone)]
pub(crate) struct LiveClient {
    pub settings: ModelSettings,
    /// `settings.base_url` without a trailing `/`.
    pub base_url: String,
    pub config: EndpointConfig,
    pub http: reqwest::Client,
    pub backoff: Backoff,
    /// What a bundle may weigh: sets the response cap and is named when a reply
    /// grows past it.
    pub bundle_limits: BundleLimits,
    /// The structured-output mode, shared by every copy of this client.
    pub negotiation: Arc<Negotiation>,
    /// Requests in flight and the rate-limit pause, shared by every copy.
    pub gate: Arc<Gate>,
}

impl LiveClient {
    pub(crate) fn new(
        settings: &ModelSettings,
        api_key: Option<SecretString>,
    ) -> Result<LiveClient, ModelError> {
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ModelError::Settings(format!(
                    "`base_url` must be an http or https URL, got `{base_url}`"
                )));
            }
        }
        if settings.request_timeout_secs == 0 {
            return Err(ModelError::Settings(
                "`request_timeout_secs` must be at least 1".to_owned(),
            ));
        }
        let api_key = api_key.filter(|key| !key.expose_secret().is_empty());
        let authorization = match &api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                    ModelError::Settings(
                        "the API key holds characters an HTTP header cannot carry".to_owned(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let request_timeout = Duration::from_secs(settings.request_timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(request_timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ModelError::Settings(format!("cannot set up the HTTP client: {error}"))
            })?;
        Ok(LiveClient {
            settings: settings.clone(),
            config: EndpointConfig {
                base_url: base_url.clone(),
                authorization,
                api_key: api_key.unwrap_or_else(|| SecretString::from(String::new())),
            },
            base_url,
            http,
            backoff: Backoff::default(),
            bundle_limits: BundleLimits::default(),
            negotiation: Arc::new(Negotiation::new(settings.structured_output)),
            gate: Arc::new(Gate::new(settings.max_concurrent_requests)),
        })
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.request_timeout_secs)
    }

    /// Servers sometimes echo the credentials they refused; they never reach a message.
    pub(crate) fn redact(&self, text: String) -> String {
        let key = self.config.api_key.expose_secret();
        if key.is_empty() {
            text
        } else {
            text.replace(key, "[redacted]")
        }
    }
}

/// Base URL and credentials, set explicitly: async-openai's own config would read
/// `OPENAI_*` variables, and always sends an Authorization header.
#[derive(Clone)]
pub(crate) struct EndpointConfig {
    pub base_url: String,
    /// `Bearer <key>`, marked sensitive; `None` sends no Authorization header.
    pub authorization: Option<HeaderValue>,
    /// Empty when there is no key.
    pub api_key: SecretString,
}

impl Config for EndpointConfig {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base_url
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}
