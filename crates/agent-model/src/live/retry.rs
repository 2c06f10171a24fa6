//! The retry loop around whole attempts, with capped exponential backoff and jitter.
//!
//! Hand-written on purpose: async-openai's retry layer honours any `Retry-After`
//! without an upper bound and does not retry timeouts, while a run must bound both
//! (`max_retry_after_secs`, and a stalled stream is as dead as a refused connection).

use std::time::Duration;

use rand::Rng;

use crate::backend::Answered;
use crate::errors::ModelError;
use crate::live::attempt::{AttemptError, HttpFailure};
use crate::live::client::LiveClient;
use crate::live::parse::{MAX_ERROR_MESSAGE_CHARS, summarize_error_body, truncate};
use crate::live::request::PreparedRequest;

impl LiveClient {
    /// Sends the request, retrying what is worth retrying. Returns the outcome and the
    /// number of attempts made.
    pub(crate) async fn call(
        &self,
        request: &PreparedRequest,
    ) -> (Result<Answered, ModelError>, u32) {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // The timeout covers the whole attempt, streamed body included: a stream
            // that stalls is as dead as a server that never answers.
            let failure =
                match tokio::time::timeout(self.request_timeout(), self.attempt(request)).await {
                    Ok(Ok(reply)) => return (Ok(reply), attempts),
                    Ok(Err(failure)) => failure,
                    Err(_) => AttemptError::Timeout,
                };
            let retryable = failure.is_retryable();
            let retry_after = failure.retry_after();
            let error = self.model_error(failure);
            if !retryable || attempts > self.settings.max_retries {
                return (Err(error), attempts);
            }
            let delay = self.delay(attempts - 1, retry_after);
            tracing::warn!(
                attempt = attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "model call failed, retrying: {error}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// The wait before retry number `retry` (0-based): the server's `Retry-After` up
    /// to `max_retry_after_secs`, else exponential backoff with jitter.
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wanted) = retry_after {
            return wanted.min(Duration::from_secs(self.settings.max_retry_after_secs));
        }
        let exponential = self
            .backoff
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.backoff.cap);
        // Jitter spreads the retries of concurrent specs hitting the same rate limit.
        exponential.mul_f64(rand::rng().random_range(0.5..=1.0))
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
