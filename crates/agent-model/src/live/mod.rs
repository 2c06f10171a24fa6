//! The live endpoint: one client per endpoint, shared by every spec of an invocation.
//! A call is prepared (`request`), sent with retries (`retry`) as attempts over HTTP
//! (`transport`), and its answer read leniently (`parse`).

mod attempt;
mod client;
mod parse;
mod request;
mod retry;
mod transport;

use std::sync::Arc;

use agent_spec::StructuredOutput;
use async_openai::config::Config;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::backend::{Call, Exchange, ModelBackend};
use crate::errors::ModelError;
use crate::live::parse::summarize_error_body;
use crate::live::request::{WireMode, prepare};
use crate::live::transport::{MAX_ERROR_BODY_BYTES, read_prefix};
use crate::record::RequestRecord;

pub(crate) use client::{Backoff, LiveClient};

impl LiveClient {
    /// `GET <base>/models`: any 2xx means the endpoint answers.
    pub async fn probe(&self) -> Result<(), ModelError> {
        let base_url = self.base_url.clone();
        let request = self
            .http
            .get(format!("{}/models", self.base_url))
            .headers(self.config.headers());
        let outcome = tokio::time::timeout(self.request_timeout(), async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = if response.status().is_success() {
                String::new()
            } else {
                read_prefix(response, MAX_ERROR_BODY_BYTES).await
            };
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        match outcome {
            Err(_) => Err(ModelError::Timeout {
                base_url,
                secs: self.settings.request_timeout_secs,
            }),
            Ok(Err(error)) => Err(ModelError::Unreachable {
                base_url,
                source: Box::new(error),
            }),
            Ok(Ok((status, _))) if (200..300).contains(&status) => Ok(()),
            Ok(Ok((status, _))) if matches!(status, 401 | 403) => {
                Err(ModelError::Auth { base_url, status })
            }
            Ok(Ok((status, body))) => Err(ModelError::Status {
                base_url,
                status,
                body: self.redact(summarize_error_body(&body)),
            }),
        }
    }

    /// The wire mode for the next request.
    fn mode(&self) -> WireMode {
        match self.settings.structured_output {
            StructuredOutput::JsonSchema => WireMode::JsonSchema,
            StructuredOutput::JsonObject => WireMode::JsonObject,
            StructuredOutput::None => WireMode::Prompt,
        }
    }

    async fn exchange(&self, call: Call<'_>) -> Exchange {
        let request = prepare(&self.settings, self.mode(), &call);
        let (outcome, attempts) = self.call(&request).await;
        Exchange {
            model: self.settings.name.clone(),
            request: RequestRecord {
                messages: request.messages,
                temperature: self.settings.temperature,
                response_format: request.mode.name().to_owned(),
                stream: request.stream,
            },
            outcome,
            attempts,
        }
    }
}

/// A session's view of the shared client.
pub(crate) struct LiveBackend(pub Arc<LiveClient>);

impl ModelBackend for LiveBackend {
    fn exchange<'a>(&'a mut self, call: Call<'a>) -> BoxFuture<'a, Exchange> {
        self.0.exchange(call).boxed()
    }
}
