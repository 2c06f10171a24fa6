//! The live endpoint: one client per endpoint, shared by every spec of an invocation.
//! A call is prepared (`request`), sent with retries (`retry`) as attempts over HTTP
//! (`transport`) that each pass the endpoint's `gate` (requests in flight, rate-limit
//! pause), and its answer read leniently (`parse`).

mod attempt;
mod backoff;
mod client;
mod gate;
mod negotiation;
mod parse;
mod request;
mod retry;
mod transport;

use std::sync::Arc;

use async_openai::config::Config;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::backend::{Call, Exchange, ModelBackend, Timed};
use crate::errors::{ModelError, Rejection};
use crate::live::parse::summarize_error_body;
use crate::live::request::{WireMode, prepare};
use crate::live::transport::{MAX_ERROR_BODY_BYTES, read_prefix};
use crate::record::RequestRecord;

pub(crate) use backoff::Backoff;
pub(crate) use client::LiveClient;

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

    /// Finds the structured-output mode with a request that asks for a few tokens
    /// only (for `agent doctor`): the mode is then kept as a run would keep it.
    pub(crate) async fn probe_structured_output(&self) -> Result<&'static str, ModelError> {
        let mut client = self.clone();
        client.settings.max_tokens = Some(16);
        client.settings.stream = false;
        client.settings.max_retries = 0;
        let schema = crate::schema::Verdict::json_schema();
        let messages = [crate::message::ChatMessage {
            role: crate::message::Role::User,
            content: "Answer with {\"pass\": true, \"reason\": \"ok\"}.".to_owned(),
        }];
        let exchange = client
            .exchange(Call {
                schema_name: crate::schema::Verdict::SCHEMA_NAME,
                schema: &schema,
                messages: &messages,
            })
            .await;
        exchange.outcome?;
        Ok(self.negotiation.current().name())
    }

    /// The structured-output mode that worked, once one has.
    pub(crate) fn structured_output(&self) -> Option<&'static str> {
        self.negotiation.settled().map(WireMode::name)
    }

    /// Sends `call` in the endpoint's structured-output mode; under `auto`, a request
    /// rejected for its `response_format` is sent again in the next mode at once.
    pub(crate) async fn exchange(&self, call: Call<'_>) -> Exchange {
        let (mut attempts, mut waited) = (0, std::time::Duration::ZERO);
        loop {
            let mode = self.negotiation.current();
            let request = prepare(&self.settings, mode, &call);
            let sent = self.call(&request).await;
            let outcome = sent.outcome;
            attempts += sent.attempts;
            waited += sent.waited;
            match &outcome {
                Ok(_) => self.negotiation.settle(mode),
                Err(error) if is_format_rejection(error) => {
                    if let Some(next) = self.negotiation.fall_back(mode) {
                        tracing::warn!(
                            "`{}` does not take structured output as `{}`, trying `{}`: {error}",
                            self.base_url,
                            mode.name(),
                            next.name()
                        );
                        continue;
                    }
                }
                Err(_) => {}
            }
            return Exchange {
                model: self.settings.name.clone(),
                request: RequestRecord {
                    messages: request.messages,
                    temperature: self.settings.temperature,
                    response_format: request.mode.name().to_owned(),
                    stream: request.stream,
                },
                outcome,
                attempts,
                waited,
            };
        }
    }
}

fn is_format_rejection(error: &ModelError) -> bool {
    matches!(error, ModelError::Status { status, body, .. }
        if Rejection::of(*status, body) == Some(Rejection::StructuredOutput))
}

/// A session's view of the shared client.
pub(crate) struct LiveBackend(pub Arc<LiveClient>);

impl ModelBackend for LiveBackend {
    fn exchange<'a>(&'a mut self, call: Call<'a>) -> BoxFuture<'a, Exchange> {
        self.0.exchange(call).boxed()
    }

    /// Side by side: the endpoint's gate bounds how many are in flight.
    fn exchanges<'a>(&'a mut self, call: Call<'a>, count: u32) -> BoxFuture<'a, Vec<Timed>> {
        let client = &self.0;
        futures_util::future::join_all((0..count).map(move |_| Timed::of(client.exchange(call))))
            .boxed()
    }

    fn structured_output(&self) -> Option<&'static str> {
        self.0.structured_output()
    }
}
