//! The one model interface: a call goes in, an exchange comes out. Two
//! implementations answer it, the live endpoint (`live`) and a recorded transcript
//! (`replay`); recording the transcript is a layer around either (`session`).

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::errors::ModelError;
use crate::message::{ChatMessage, Usage};
use crate::record::{RequestRecord, ResponseRecord};

/// One model call: the reply schema and the conversation so far.
pub(crate) struct Call<'a> {
    pub schema_name: &'static str,
    pub schema: &'a Value,
    pub messages: &'a [ChatMessage],
}

/// What a successful call produced.
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    pub response: ResponseRecord,
    pub usage: Usage,
}

/// A call as it went: what was sent, and what came back or why nothing did.
pub(crate) struct Exchange {
    /// The model that answered (or was asked).
    pub model: String,
    pub request: RequestRecord,
    pub outcome: Result<Answered, ModelError>,
    /// HTTP attempts made; 0 in replay.
    pub attempts: u32,
}

/// Answers model calls for one spec run.
pub(crate) trait ModelBackend: Send {
    fn exchange<'a>(&'a mut self, call: Call<'a>) -> BoxFuture<'a, Exchange>;

    /// The structured-output mode that worked (`json_schema`, `json_object_schema`,
    /// `json_object`, `none`), once one has; `None` in replay.
    fn structured_output(&self) -> Option<&'static str> {
        None
    }
}
