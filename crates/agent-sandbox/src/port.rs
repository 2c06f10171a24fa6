//! The engine as the loop sees it: one trait of coarse operations, implemented by a
//! [`crate::PoolSession`] (a spec's share of the engines) and, in the loop's unit
//! tests, by a scripted engine. Defined here, beside the engine, so that each
//! operation is written once: the `Sandbox` does the work, the session picks the
//! engine and holds its slot.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use agent_spec::{FileFacts, ImageFacts};

use crate::errors::SandboxError;
use crate::outcome::{BuildOutcome, BuildProgress, CleanupReport, PulledImage, RunOutcome, Sealed};
use crate::probe::ProbeRequest;
use crate::registry_auth::RegistryCredentials;
use crate::request::{BuildRequest, RunRequest};
use crate::service::{ServiceOutcome, ServiceRequest};
use crate::suite::{SuiteOutcome, SuiteRequest};

/// Commands run before a run, each committed as the next image (as
/// container-structure-test does before a command test), with their environment.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub commands: &'a [Vec<String>],
    pub env: &'a BTreeMap<String, String>,
}

/// What to read of an image without running it.
#[derive(Debug, Clone, Copy)]
pub enum Inspect<'a> {
    /// Its config: user, workdir, ports, env, labels, entrypoint, cmd, volumes, size.
    Config,
    /// What each of `paths` is, from one container created and never started
    /// (labelled `labels`, always removed); `content_limit` bytes kept per file.
    Files {
        paths: &'a [String],
        labels: &'a BTreeMap<String, String>,
        content_limit: usize,
    },
}

/// What an [`Inspect`] read: the config, or the files; the other stays empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspected {
    pub config: ImageFacts,
    pub files: Vec<FileFacts>,
}

/// What a removal takes away.
#[derive(Debug, Clone, Copy)]
pub enum RemovalScope<'a> {
    /// Every container and image labelled `key=value`, but verified images.
    Labelled { key: &'a str, value: &'a str },
    /// Every container labelled `key=value`; no image.
    Containers { key: &'a str, value: &'a str },
    /// Build leftovers by id: each image only when it has no tag and no child.
    Untagged(&'a [String]),
}

pub trait EnginePort: Send + Sync {
    /// Builds with the engine's builder; `progress` is called for each step.
    fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> impl Future<Output = Result<BuildOutcome, SandboxError>> + Send;

    /// Runs `request` in a fresh container, after `setup` when there is some.
    fn run(
        &self,
        request: RunRequest<'_>,
        setup: Option<Setup<'_>>,
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

    /// Reads `what` of `image` without running it.
    fn inspect(
        &self,
        image: &str,
        what: Inspect<'_>,
    ) -> impl Future<Output = Result<Inspected, SandboxError>> + Send;

    /// Tags `image` as `reference` (see [`crate::Sandbox::tag`]).
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

    /// `image` (a reference or id) on the engine the next build goes to, without
    /// pulling it; `None` when that engine does not have it.
    fn find_image(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<PulledImage>, SandboxError>> + Send;

    /// A new image: `image` with `labels` added, by a way the engine accepts.
    fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Sealed, SandboxError>> + Send;

    /// Removes what `scope` names from every engine the work used.
    fn remove(
        &self,
        scope: RemovalScope<'_>,
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
