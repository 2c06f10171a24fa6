//! The retry loop around whole attempts, with capped exponential backoff and jitter.
//!
//! Hand-written on purpose: async-openai's retry layer honours any `Retry-After`
//! without an upper bound and does not retry timeouts, while a run must bound both
//! (`max_retry_after_secs`, and a stalled stream is as dead as a refused connection).
//! That layer is not in the request path at all: `transport` sends through its own
//! service, which replaces async-openai's default stack, retry layer included. Rate
//! limits go to the endpoint's [`gate`](crate::live::gate), which pauses every
//! request, not only the one that was refused.

use std::time::Duration;

use crate::backend::Answered;
use crate::errors::ModelError;
use crate::live::attempt::{AttemptError, HttpFailure};
use crate::live::client::LiveClient;
use crate::live::parse::{MAX_ERROR_MESSAGE_CHARS, summarize_error_body, truncate};
use crate::live::request::PreparedRequest;

/// A request as it went over HTTP.
pub(crate) struct Sent {
    pub outcome: Result<Answered, ModelError>,
    /// Attempts made.
    pub attempts: u32,
    /// Time spent at the endpoint's gate: for a place among the requests in flight and
    /// for a rate-limit pause to pass.
    pub waited: Duration,
}

impl LiveClient {
    /// Sends the request, retrying what is worth retrying. Every attempt passes the
    /// endpoint's gate first; a rate limit pauses the gate for every request, and this
    /// one's next attempt waits there like the others.
    pub(crate) async fn call(&self, request: &PreparedRequest) -> Sent {
        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempts += 1;
            let entered = self.gate.enter().await;
            waited += entered.waited;
            // The timeout covers the whole attempt, streamed body included: a stream
            // that stalls is as dead as a server that never answers.
            let failure =
                match tokio::time::timeout(self.request_timeout(), self.attempt(request)).await {
                    Ok(Ok(reply)) => {
                        self.gate.answered();
                        return Sent {
                            outcome: Ok(reply),
                            attempts,
                            waited,
                        };
                    }
                    Ok(Err(failure)) => failure,
                    Err(_) => AttemptError::Timeout,
                };
            drop(entered);
            let retryable = failure.is_retryable();
            let retry_after = failure
                .retry_after()
                .map(|wanted| wanted.min(Duration::from_secs(self.settings.max_retry_after_secs)));
            let rate_limited = retryable && failure.is_rate_limit();
            let error = self.model_error(failure);
            let paused = rate_limited.then(|| self.gate.rate_limited(retry_after, self.backoff));
            if !retryable || attempts > self.settings.max_retries {
                return Sent {
                    outcome: Err(error),
                    attempts,
                    waited,
                };
            }
            let delay = match paused {
                // The gate holds the next attempt until the pause has passed.
                Some(pause) => pause,
                None => self.delay(attempts - 1, retry_after),
            };
            tracing::warn!(
                attempt = attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "model call failed, retrying: {error}"
            );
            if paused.is_none() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// The wait before retry number `retry` (0-based) after a failure other than a
    /// rate limit: the server's `Retry-After` (already capped), else exponential
    /// backoff with jitter.
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wanted) = retry_after {
            return wanted;
        }
        self.backoff.delay(retry)
    }

    pub(crate) fn model_error(&self, failure: AttemptError) -> ModelError {
        let base_url = self.base_url.clone();
        match failure {
            AttemptError::Http(HttpFailure { status, .. }) if matches!(status, 401 | 403) => {
                ModelError::Auth { base_url, status }
            }
            AttemptError::Http(HttpFailure { status, body, .. }) => ModelError::Status {
                base_url,
                status,
                body: self.redact(summarize_error_body(&body)),
            },
            AttemptError::Connection(source) => ModelError::Unreachable { base_url, source },
            AttemptError::Timeout => ModelError::Timeout {
                base_url,
                secs: self.settings.request_timeout_secs,
            },
            AttemptError::Malformed(message) => ModelError::Status {
                base_url,
                status: 200,
                body: self.redact(truncate(&message, MAX_ERROR_MESSAGE_CHARS)),
            },
            AttemptError::Settings(message) => ModelError::Settings(message),
        }
    }
}
