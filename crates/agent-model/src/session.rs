//! One spec run's view of the model: the recording layer around a backend (live or
//! replay). Every call becomes one transcript line, built in one place, and its
//! response is read into a [`Reply`] by the same code for both backends.

use std::time::Duration;

use agent_spec::BundleLimits;

use crate::answer::{Reply, answer};
use crate::backend::{Call, Exchange, ModelBackend, Timed};
use crate::errors::{ModelError, error_chain};
use crate::message::{ChatMessage, Purpose};
use crate::record::Entry;
use crate::schema::{CodeBundle, ReplySchema, Verdict};
use crate::transcript::TranscriptWriter;

/// Writes one spec run's transcript around the backend answering its calls.
pub struct ModelSession {
    pub(crate) spec: String,
    pub(crate) bundle_limits: BundleLimits,
    pub(crate) backend: Box<dyn ModelBackend>,
    pub(crate) transcript: TranscriptWriter,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ModelSession")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl ModelSession {
    pub async fn code_bundle(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<CodeBundle>, ModelError> {
        self.call(purpose, iteration, messages).await
    }

    pub async fn verdict(
        &mut self,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<Verdict>, ModelError> {
        self.call(Purpose::Judge, iteration, messages).await
    }

    /// The structured-output mode the endpoint took (`json_schema`,
    /// `json_object_schema`, `json_object`, `none`); `None` in replay or before a
    /// call was answered.
    pub fn structured_output(&self) -> Option<&'static str> {
        self.backend.structured_output()
    }

    /// `count` bundles for the same messages, asked for side by side (the endpoint's
    /// gate bounds how many are in flight): one result per candidate, in order, each
    /// recorded in the transcript with its candidate number.
    pub async fn code_bundles(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
        count: u32,
    ) -> Vec<Result<Reply<CodeBundle>, ModelError>> {
        let schema = CodeBundle::json_schema();
        let call = Call {
            schema_name: CodeBundle::NAME,
            schema: &schema,
            messages,
        };
        let answers = self.backend.exchanges(call, count).await;
        let mut replies = Vec::new();
        for (candidate, timed) in (1..).zip(answers) {
            replies.push(self.record(purpose, iteration, Some(candidate), timed));
        }
        replies
    }

    async fn call<T: ReplySchema>(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<T>, ModelError> {
        let schema = T::json_schema();
        let call = Call {
            schema_name: T::NAME,
            schema: &schema,
            messages,
        };
        let timed = Timed::of(self.backend.exchange(call)).await;
        self.record(purpose, iteration, None, timed)
    }

    /// Writes the exchange's transcript line and reads its answer.
    fn record<T: ReplySchema>(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        candidate: Option<u32>,
        timed: Timed,
    ) -> Result<Reply<T>, ModelError> {
        let Timed {
            exchange,
            started_at,
            latency,
        } = timed;
        let Exchange {
            model,
            request,
            outcome,
            attempts,
            waited,
        } = exchange;
        let entry = Entry {
            spec: self.spec.clone(),
            iteration,
            purpose,
            schema: T::NAME.to_owned(),
            model,
            request,
            response: outcome
                .as_ref()
                .ok()
                .map(|answered| answered.response.clone()),
            usage: outcome
                .as_ref()
                .map(|answered| answered.usage)
                .unwrap_or_default(),
            latency_ms: millis(latency),
            attempts,
            error: outcome.as_ref().err().map(|error| error_chain(error)),
            started_at,
            candidate,
            queued_ms: millis(waited),
        };
        let written = self.transcript.append(&entry);
        let answered = outcome?;
        written?;
        let response = answered.response;
        Ok(Reply {
            answer: answer::<T>(&response, &self.bundle_limits),
            usage: answered.usage,
            latency,
            queued: waited,
            content: response
                .content
                .filter(|content| !content.is_empty())
                .or(response.refusal)
                .unwrap_or_default(),
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
