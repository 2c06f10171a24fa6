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

impl ModelError {
    /// What to change when the endpoint refused the request itself (a parameter it
    /// does not take, a prompt past its context): no retry can fix that.
    pub fn setting_to_change(&self) -> Option<&'static str> {
        match self {
            ModelError::Status { status, body, .. } => {
                Rejection::of(*status, body).map(Rejection::setting)
            }
            _ => None,
        }
    }
}

/// Why an endpoint refused a request because of the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// `response_format` (or the schema in it) is not supported.
    StructuredOutput,
    /// The prompt and the reply do not fit the model's context.
    ContextLength,
}

impl Rejection {
    /// Reads an error status and body. Servers differ in the status (llama.cpp answers
    /// a `response_format` it does not take with 500), so the body decides; rate
    /// limits and timeouts never count.
    pub fn of(status: u16, body: &str) -> Option<Rejection> {
        if !(400..600).contains(&status) || matches!(status, 408 | 409 | 429) {
            return None;
        }
        let body = body.to_ascii_lowercase();
        let names = |words: &[&str]| words.iter().any(|word| body.contains(word));
        if names(&["response_format", "json_schema", "json_object"]) {
            Some(Rejection::StructuredOutput)
        } else if names(&[
            "context length",
            "context_length",
            "maximum context",
            "context window",
            "n_ctx",
            "exceeds the context",
        ]) {
            Some(Rejection::ContextLength)
        } else {
            None
        }
    }

    pub fn setting(self) -> &'static str {
        match self {
            Rejection::StructuredOutput => {
                "`[model] structured_output` in agent.toml (`auto` finds what the server supports)"
            }
            Rejection::ContextLength => {
                "`[model] max_tokens` in agent.toml, or the server's context size (llama.cpp \
                 `--n_ctx`, vLLM `--max-model-len`); a long prompt or large inputs fill it too"
            }
        }
    }
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
