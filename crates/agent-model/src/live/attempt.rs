//! How one HTTP attempt can fail, and which failures are worth another attempt.

use std::time::Duration;

use crate::errors::Rejection;

/// Statuses worth another attempt: rate limits, timeouts, and overloaded servers.
const RETRIED_STATUSES: [u16; 7] = [408, 409, 429, 500, 502, 503, 504];

/// A non-success HTTP answer, caught before async-openai reads the body: its typed
/// error body loses the status on servers whose `code` is an integer.
#[derive(Debug)]
pub(crate) struct HttpFailure {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "HTTP {}", self.status)
    }
}

impl std::error::Error for HttpFailure {}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    Http(HttpFailure),
    Connection(Box<dyn std::error::Error + Send + Sync>),
    Timeout,
    /// A success status whose body is not a chat completion.
    Malformed(String),
    Settings(String),
}

impl AttemptError {
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Http(failure) => {
                RETRIED_STATUSES.contains(&failure.status)
                    && Rejection::of(failure.status, &failure.body).is_none()
            }
            AttemptError::Connection(_) | AttemptError::Timeout => true,
            AttemptError::Malformed(_) | AttemptError::Settings(_) => false,
        }
    }

    /// An HTTP 429: the endpoint asks every request to slow down.
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, AttemptError::Http(failure) if failure.status == 429)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Http(failure) => failure.retry_after,
            _ => None,
        }
    }
}
