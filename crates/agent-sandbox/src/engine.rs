//! The engine client: connection, builds, runs, tags and cleanup.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::context::BuildContext;
use crate::errors::SandboxError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// A connected engine. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox { /* chosen by the implementation */ }

pub struct BuildRequest<'a> {
    pub context: &'a BuildContext,
    /// Put on the image (and, through the engine, on intermediate containers).
    pub labels: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    /// `"default"`, `"none"` or `"host"`: the network RUN steps get.
    pub network: &'a str,
}

/// Reported while a build goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProgress {
    /// `Step 2/5 : RUN pip install …`
    Step {
        index: u32,
        total: u32,
        instruction: String,
    },
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub status: BuildStatus,
    /// The whole build output as the engine streamed it (capped at 4 MiB, the cut
    /// marked).
    pub log: String,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    Built {
        image_id: String,
    },
    Failed {
        /// The engine's one-line error.
        error: String,
        /// `Step k/n : INSTRUCTION` of the step that failed, when known.
        failing_step: Option<String>,
        /// What that step printed before it failed (e.g. a traceback), capped.
        step_output: String,
    },
    /// Stopped at the build timeout; what it left was removed.
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    None,
    Bridge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunLimits {
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    pub network: RunNetwork,
    pub timeout: Duration,
    /// Per stream: bytes kept; the rest is read and discarded.
    pub output_limit_bytes: usize,
}

pub struct RunRequest<'a> {
    pub image: &'a str,
    /// Appended to the image's command (its CMD is replaced by these when non-empty,
    /// after the ENTRYPOINT as usual).
    pub args: &'a [String],
    /// The only environment the container gets beyond its image's.
    pub env: &'a BTreeMap<String, String>,
    pub stdin: Option<&'a [u8]>,
    pub limits: RunLimits,
    pub labels: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// Everything the stream carried, kept or not.
    pub total_bytes: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// `None` when the container never exited on its own (timeout) or never started.
    pub exit_code: Option<i64>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// The engine refused to start the container (e.g. the command does not exist):
    /// its message.
    pub start_error: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub containers: Vec<String>,
    pub images: Vec<String>,
}

impl Sandbox {
    /// Connects as the Docker CLI does: `docker_host` (the caller passes `DOCKER_HOST`)
    /// else the local socket; negotiates the API version and pings the engine.
    pub async fn connect(docker_host: Option<&str>) -> Result<Sandbox, SandboxError> {
        todo!()
    }

    pub fn engine(&self) -> &EngineInfo {
        todo!()
    }

    pub async fn image_present(&self, image: &str) -> Result<bool, SandboxError> {
        todo!()
    }

    /// Builds with the classic builder; `progress` is called for each step.
    pub async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        todo!()
    }

    /// Creates, starts, feeds stdin, captures stdout/stderr apart (capped), waits with
    /// the timeout (kill on expiry), inspects for OOM, and always removes the container.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        todo!()
    }

    /// `image` is an id or reference; `reference` is `repo:tag`.
    pub async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        todo!()
    }

    /// Removes every container and image labelled `key=value`, except images tagged
    /// under [`crate::VERIFIED_REPOSITORY_PREFIX`] and the image `keep` (id).
    pub async fn remove_labelled(
        &self,
        key: &str,
        value: &str,
        keep: Option<&str>,
    ) -> Result<CleanupReport, SandboxError> {
        todo!()
    }

    /// Removes what any earlier run left: containers labelled [`crate::LABEL_RUN`],
    /// images so labelled that are not verified, and dangling intermediate images
    /// whose build was ours.
    pub async fn gc(&self) -> Result<CleanupReport, SandboxError> {
        todo!()
    }
}
