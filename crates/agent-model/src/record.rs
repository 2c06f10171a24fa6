//! One line of `transcript.jsonl`: the call as recorded (request, response, usage,
//! latency). Only fields may be added: old transcripts must keep replaying.

use serde::{Deserialize, Serialize};

use crate::message::{ChatMessage, Purpose, Usage};

/// One model call as recorded. Only `spec`, `schema` and `response` matter for
/// replay; the rest is there for people reading the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub spec: String,
    #[serde(default)]
    pub iteration: u32,
    pub purpose: Purpose,
    pub schema: String,
    #[serde(default)]
    pub model: String,
    pub request: RequestRecord,
    #[serde(default)]
    pub response: Option<ResponseRecord>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub started_at: String,
    /// Which of a first generation's candidates this call asked for (1-based);
    /// absent when one bundle was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<u32>,
    /// Milliseconds the call waited at the endpoint's gate before it was sent: for a
    /// place among the requests in flight, or for a rate-limit pause to pass.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued_ms: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RequestRecord {
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub temperature: f64,
    /// `json_schema`, `json_object` or `none`.
    #[serde(default)]
    pub response_format: String,
    #[serde(default)]
    pub stream: bool,
}

/// What the endpoint answered: enough to parse the same `Answer` again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResponseRecord {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    /// How many choices the answer held (0 is an answer of its own kind).
    #[serde(default = "one")]
    pub choices: usize,
    /// The answer grew past the response cap and was cut off there: nothing past the
    /// cap was read or kept, and `content` is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// With `truncated`: how many bytes had arrived when the answer was cut off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_bytes: Option<u64>,
    /// With `truncated`: the size the server announced (`Content-Length`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_bytes: Option<u64>,
}

fn one() -> usize {
    1
}
