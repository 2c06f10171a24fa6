//! The loop's seam to the model: the real implementation is
//! `agent_model::ModelSession`; the loop's unit tests use a scripted one. The seam to
//! the engine, `agent_sandbox::EnginePort`, is defined beside the engine.

use std::future::Future;

use agent_model::{ChatMessage, CodeBundle, ModelError, ModelSession, Purpose, Reply, Verdict};

pub trait ModelPort: Send {
    fn code_bundle(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> impl Future<Output = Result<Reply<CodeBundle>, ModelError>> + Send;

    fn verdict(
        &mut self,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> impl Future<Output = Result<Reply<Verdict>, ModelError>> + Send;

    /// `count` bundles for the same messages (best-of-N candidates): one result per
    /// candidate, in order. One call after the other unless the port can do better.
    fn code_bundles(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
        count: u32,
    ) -> impl Future<Output = Vec<Result<Reply<CodeBundle>, ModelError>>> + Send {
        async move {
            let mut replies = Vec::new();
            for _ in 0..count {
                replies.push(self.code_bundle(purpose, iteration, messages).await);
            }
            replies
        }
    }

    /// The structured-output mode the endpoint took, for `report.json`.
    fn structured_output(&self) -> Option<&'static str> {
        None
    }
}

impl ModelPort for ModelSession {
    async fn code_bundle(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<CodeBundle>, ModelError> {
        ModelSession::code_bundle(self, purpose, iteration, messages).await
    }

    async fn verdict(
        &mut self,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<Verdict>, ModelError> {
        ModelSession::verdict(self, iteration, messages).await
    }

    async fn code_bundles(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
        count: u32,
    ) -> Vec<Result<Reply<CodeBundle>, ModelError>> {
        ModelSession::code_bundles(self, purpose, iteration, messages, count).await
    }

    fn structured_output(&self) -> Option<&'static str> {
        ModelSession::structured_output(self)
    }
}
