//! The two seams of the loop: the model and the engine. The real implementations are
//! `agent_model::ModelSession` and `agent_sandbox::PoolSession` (a spec's share of the
//! engines, one or several); the loop's unit tests use scripted ones.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use agent_model::{ChatMessage, CodeBundle, ModelError, ModelSession, Purpose, Reply, Verdict};
use agent_sandbox::{
    BuildOutcome, BuildProgress, BuildRequest, CleanupReport, PoolSession, ProbeRequest,
    PulledImage, RegistryCredentials, RunOutcome, RunRequest, SandboxError, Sealed, ServiceOutcome,
    ServiceRequest, SuiteOutcome, SuiteRequest,
};
use agent_spec::{FileFacts, ImageFacts};

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

pub trait EnginePort: Send + Sync {
    fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> impl Future<Output = Result<BuildOutcome, SandboxError>> + Send;

    fn run(
        &self,
        request: RunRequest<'_>,
    ) -> impl Future<Output = Result<RunOutcome, SandboxError>> + Send;

    /// Runs `setup` commands, each committed as the next image, then `request` on the
    /// last (container-structure-test's command tests).
    fn run_after_setup(
        &self,
        setup: &[Vec<String>],
        setup_env: &BTreeMap<String, String>,
        request: RunRequest<'_>,
    ) -> impl Future<Output = Result<RunOutcome, SandboxError>> + Send;

    /// Starts the image as a service, waits until it is ready, sends `probes` in
    /// order, stops it and removes it.
    fn serve(
        &self,
        request: ServiceRequest<'_>,
        probes: &[ProbeRequest],
    ) -> impl Future<Output = Result<ServiceOutcome, SandboxError>> + Send;

    /// Runs a hidden test suite in a container of the image and reads its JUnit file
    /// back.
    fn run_suite(
        &self,
        request: SuiteRequest<'_>,
    ) -> impl Future<Output = Result<SuiteOutcome, SandboxError>> + Send;

    /// What the image's config says: user, workdir, ports, env, labels, size.
    fn image_facts(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<ImageFacts, SandboxError>> + Send;

    /// What each of `paths` is in the image, from a container created and never started.
    fn file_facts(
        &self,
        image: &str,
        paths: &[String],
        labels: &BTreeMap<String, String>,
        content_limit: usize,
    ) -> impl Future<Output = Result<Vec<FileFacts>, SandboxError>> + Send;

    fn tag(
        &self,
        image: &str,
        reference: &str,
    ) -> impl Future<Output = Result<(), SandboxError>> + Send;

    /// Pulls `reference` from its registry onto the engine the next run goes to.
    fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> impl Future<Output = Result<PulledImage, SandboxError>> + Send;

    /// A new image: `image` with `labels` added, by a way the engine accepts.
    fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Sealed, SandboxError>> + Send;

    /// Removes every container and image labelled `key=value` but verified images.
    fn remove_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<CleanupReport, SandboxError>> + Send;

    /// Removes build leftovers by id: images with no tag and no children.
    fn remove_untagged_images(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<CleanupReport, SandboxError>> + Send;

    /// Removes the run's containers (`key=value`) and lists no image.
    fn remove_labelled_containers(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<CleanupReport, SandboxError>> + Send;

    /// The address of the engine the next build or run goes to, for the report; `None`
    /// when there is only one engine to speak of.
    fn engine_host(&self) -> Option<String> {
        None
    }

    /// Called after an engine error: when the engine that failed no longer answers and
    /// another can take its work, the address of the one lost. The iteration is then
    /// built and run again, with the same bundle, on the other engine.
    fn lose_engine(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
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

impl EnginePort for PoolSession {
    async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        PoolSession::build(self, request, progress).await
    }

    async fn run(&self, request: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        PoolSession::run(self, request).await
    }

    async fn run_after_setup(
        &self,
        setup: &[Vec<String>],
        setup_env: &BTreeMap<String, String>,
        request: RunRequest<'_>,
    ) -> Result<RunOutcome, SandboxError> {
        PoolSession::run_after_setup(self, setup, setup_env, request).await
    }

    async fn serve(
        &self,
        request: ServiceRequest<'_>,
        probes: &[ProbeRequest],
    ) -> Result<ServiceOutcome, SandboxError> {
        PoolSession::serve(self, request, probes).await
    }

    async fn run_suite(&self, request: SuiteRequest<'_>) -> Result<SuiteOutcome, SandboxError> {
        PoolSession::run_suite(self, request).await
    }

    async fn image_facts(&self, image: &str) -> Result<ImageFacts, SandboxError> {
        PoolSession::image_facts(self, image).await
    }

    async fn file_facts(
        &self,
        image: &str,
        paths: &[String],
        labels: &BTreeMap<String, String>,
        content_limit: usize,
    ) -> Result<Vec<FileFacts>, SandboxError> {
        PoolSession::file_facts(self, image, paths, labels, content_limit).await
    }

    async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        PoolSession::tag(self, image, reference).await
    }

    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> Result<PulledImage, SandboxError> {
        PoolSession::pull(self, reference, credentials, timeout).await
    }

    async fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Sealed, SandboxError> {
        PoolSession::seal(self, image, labels).await
    }

    async fn remove_labelled(&self, key: &str, value: &str) -> Result<CleanupReport, SandboxError> {
        PoolSession::remove_labelled(self, key, value).await
    }

    async fn remove_untagged_images(&self, ids: &[String]) -> Result<CleanupReport, SandboxError> {
        PoolSession::remove_untagged_images(self, ids).await
    }

    async fn remove_labelled_containers(
        &self,
        key: &str,
        value: &str,
    ) -> Result<CleanupReport, SandboxError> {
        PoolSession::remove_labelled_containers(self, key, value).await
    }

    fn engine_host(&self) -> Option<String> {
        self.engine().map(|sandbox| sandbox.engine().host.clone())
    }

    async fn lose_engine(&self) -> Option<String> {
        PoolSession::lose_engine(self).await
    }
}
