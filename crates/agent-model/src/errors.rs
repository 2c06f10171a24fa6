//! Errors of the model client. Every variant is an infrastructure failure (the CLI
//! exits 3): a reply that does not parse is not an error but an [`crate::Answer`].
//! No message ever contains the API key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Connection refused, DNS, TLS: after the retries were spent.
    #[error("cannot reach the model endpoint `{base_url}`")]
    Unreachable {
        base_url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// 401 / 403.
    #[error("the model endpoint `{base_url}` refused the credentials (HTTP {status})")]
    Auth { base_url: String, status: u16 },
    /// Any other non-success status once retries were spent (or at once for 4xx other
    /// than 408 / 409 / 429); `body` is the start of the error body.
    #[error("the model endpoint `{base_url}` answered HTTP {status}: {body}")]
    Status {
        base_url: String,
        status: u16,
        body: String,
    },
    /// No answer within `request_timeout_secs`, on every attempt.
    #[error("the model endpoint `{base_url}` did not answer within {secs} s")]
    Timeout { base_url: String, secs: u64 },
    #[error("invalid model settings: {0}")]
    Settings(String),
    #[error("cannot read transcript `{path}`")]
    ReplayRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("transcript `{path}` line {line} is not a transcript entry: {message}")]
    ReplayParse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The run asked for more model calls than the transcript recorded for this spec,
    /// or for another kind of call than the one recorded next.
    #[error("transcript `{path}` has no recorded `{schema}` call left for spec `{spec}`")]
    ReplayExhausted {
        path: PathBuf,
        spec: String,
        schema: String,
    },
    #[error("cannot write transcript `{path}`")]
    TranscriptWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes on one line, joined by `: ` (for transcripts and
/// `report.json`).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}
