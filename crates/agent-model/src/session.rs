//! One spec run's view of the model: the recording layer around a backend (live or
//! replay). Every call becomes one transcript line, built in one place, and its
//! response is read into a [`Reply`] by the same code for both backends.

use std::time::{Duration, Instant};

use agent_spec::BundleLimits;

use crate::answer::{Reply, answer};
use crate::backend::{Call, Exchange, ModelBackend};
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

    async fn call<T: ReplySchema>(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<T>, ModelError> {
        let started_at = now_rfc3339();
        let clock = Instant::now();
        let schema = T::json_schema();
        let exchange = self
            .backend
            .exchange(Call {
                schema_name: T::NAME,
                schema: &schema,
                messages,
            })
            .await;
        let Exchange {
            model,
            request,
            outcome,
            attempts,
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
            latency_ms: millis(clock.elapsed()),
            attempts,
            error: outcome.as_ref().err().map(|error| error_chain(error)),
            started_at,
        };
        let written = self.transcript.append(&entry);
        let answered = outcome?;
        written?;
        let response = answered.response;
        Ok(Reply {
            answer: answer::<T>(&response, &self.bundle_limits),
            usage: answered.usage,
            latency: clock.elapsed(),
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
