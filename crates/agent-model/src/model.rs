//! The client, its per-spec sessions and the reply types.

use std::path::Path;
use std::time::Duration;

use agent_spec::ModelSettings;

use crate::errors::ModelError;
use crate::schema::{CodeBundle, Verdict};

/// A chat message as sent to the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// Why a call is made; recorded in the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Generate,
    Repair,
    /// A second chance after a reply that did not parse.
    Reformat,
    Judge,
}

/// Token counts as the server reported them (zero when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One model call's result.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub answer: Answer<T>,
    pub usage: Usage,
    pub latency: Duration,
    /// The reply text as received (for feedback when it does not parse).
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Parsed(T),
    /// The model declined (`refusal` set, or `finish_reason` `content_filter`).
    Refused(String),
    /// The reply was cut (`finish_reason` `length`), empty, not JSON, or JSON that
    /// breaks the schema: the text says which, in words fit to send back.
    Invalid(String),
}

/// The model: a live endpoint, or a recorded transcript answering in its place.
/// Cheap to clone; shared by every spec of an invocation.
#[derive(Clone)]
pub struct Model { /* chosen by the implementation */ }

/// One spec run's view of the model: it writes that run's transcript, and in replay
/// it answers from the calls recorded for that spec, in order.
pub struct ModelSession { /* chosen by the implementation */ }

impl Model {
    /// A live client. `api_key` comes from the environment variable the settings name
    /// (the caller reads it); `None` sends no Authorization header (local servers).
    pub fn live(
        settings: &ModelSettings,
        api_key: Option<secrecy::SecretString>,
    ) -> Result<Model, ModelError> {
        todo!()
    }

    /// Answers from a transcript recorded by an earlier run.
    pub fn replay(transcript: &Path) -> Result<Model, ModelError> {
        todo!()
    }

    pub fn is_replay(&self) -> bool {
        todo!()
    }

    /// Does the endpoint answer? (`GET <base>/models`; for `agent doctor`.)
    pub async fn probe(&self) -> Result<(), ModelError> {
        todo!()
    }

    /// Starts a session for one spec run; creates (truncates) `transcript`.
    pub fn session(&self, spec: &str, transcript: &Path) -> Result<ModelSession, ModelError> {
        todo!()
    }
}

impl ModelSession {
    pub async fn code_bundle(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<CodeBundle>, ModelError> {
        todo!()
    }

    pub async fn verdict(
        &mut self,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<Verdict>, ModelError> {
        todo!()
    }
}
