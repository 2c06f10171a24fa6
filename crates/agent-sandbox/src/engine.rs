//! The engine client: connection, builds, runs, tags and cleanup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::TagImageOptionsBuilder;

use crate::context::BuildContext;
use crate::errors::SandboxError;

/// How long `connect` waits for the engine to answer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// bollard's bound on the wait for response headers of every request (seconds). Streams
/// (build, attach, wait) carry their own timeouts.
const REQUEST_TIMEOUT_SECS: u64 = 120;
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// A connected engine. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    engine: Arc<EngineInfo>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sandbox")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

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

impl BuildOutcome {
    /// The image ids the build printed as `---> <id>`, in build order: the
    /// intermediate images (the last one is the built image when it succeeded). For
    /// [`Sandbox::remove_untagged_images`].
    pub fn intermediate_images(&self) -> Vec<String> {
        crate::build::intermediate_images(&self.log)
    }
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
        let host = docker_host.unwrap_or(DEFAULT_SOCKET);
        let connect_error = |source| SandboxError::Connect {
            host: host.to_owned(),
            source,
        };
        let docker = client_for(host).map_err(connect_error)?;
        let answered = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let docker = docker.negotiate_version().await?;
            let version = docker.version().await?;
            Ok::<_, bollard::errors::Error>((docker, version))
        })
        .await;
        let (docker, version) = match answered {
            Ok(result) => result.map_err(connect_error)?,
            Err(_elapsed) => {
                return Err(connect_error(bollard::errors::Error::RequestTimeoutError));
            }
        };
        let engine = EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
        };
        tracing::debug!(host, ?engine, "connected to the Docker engine");
        Ok(Sandbox {
            docker,
            engine: Arc::new(engine),
        })
    }

    pub fn engine(&self) -> &EngineInfo {
        &self.engine
    }

    pub async fn image_present(&self, image: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(error) if crate::cleanup::is_status(&error, 404) => Ok(false),
            Err(source) => Err(SandboxError::InspectImage {
                image: image.to_owned(),
                source,
            }),
        }
    }

    /// Builds with the classic builder; `progress` is called for each step.
    pub async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        crate::build::build(&self.docker, request, progress).await
    }

    /// Creates, starts, feeds stdin, captures stdout/stderr apart (capped), waits with
    /// the timeout (kill on expiry), inspects for OOM, and always removes the container.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        crate::run::run(&self.docker, request).await
    }

    /// `image` is an id or reference; `reference` is `repo:tag`.
    pub async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        // The tag is what follows the last `:` unless that `:` belongs to a registry
        // host with a port (`host:5000/repo`).
        let (repository, tag) = match reference.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => (reference, "latest"),
        };
        let options = TagImageOptionsBuilder::default()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|source| SandboxError::Tag {
                image: image.to_owned(),
                tag: reference.to_owned(),
                source,
            })
    }

    /// Removes every container and image labelled `key=value`, except images tagged
    /// under [`crate::VERIFIED_REPOSITORY_PREFIX`] and the image `keep` (id).
    pub async fn remove_labelled(
        &self,
        key: &str,
        value: &str,
        keep: Option<&str>,
    ) -> Result<CleanupReport, SandboxError> {
        crate::cleanup::remove_labelled(&self.docker, key, value, keep).await
    }

    /// Removes build leftovers by id (the intermediate images a build printed as
    /// `---> <id>`): each only when it has no tag and no child image; others, and ids
    /// already gone, are skipped.
    pub async fn remove_untagged_images(
        &self,
        ids: &[String],
    ) -> Result<CleanupReport, SandboxError> {
        crate::cleanup::remove_untagged_images(&self.docker, ids).await
    }

    /// Removes what earlier runs left: containers labelled [`crate::LABEL_RUN`] and
    /// images so labelled that are not verified. Objects whose [`crate::LABEL_OWNER`]
    /// names a process still alive on this host (or another host) are left alone
    /// unless `include_live`.
    pub async fn gc(&self, include_live: bool) -> Result<CleanupReport, SandboxError> {
        crate::cleanup::gc(&self.docker, include_live, None).await
    }

    /// [`Sandbox::gc`] restricted to objects that also carry the label `key=value`:
    /// what one batch of runs (or one test) left, without touching anything else.
    pub async fn gc_labelled(
        &self,
        include_live: bool,
        key: &str,
        value: &str,
    ) -> Result<CleanupReport, SandboxError> {
        crate::cleanup::gc(&self.docker, include_live, Some((key, value))).await
    }
}

/// A client for `host` as the Docker CLI reads `DOCKER_HOST`: `unix://` (or a bare
/// socket path), `tcp://` and `http://`.
fn client_for(host: &str) -> Result<Docker, bollard::errors::Error> {
    let version = bollard::API_DEFAULT_VERSION;
    if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_socket(host, REQUEST_TIMEOUT_SECS, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version)
    } else {
        Err(bollard::errors::Error::UnsupportedURISchemeError {
            uri: host.to_owned(),
        })
    }
}
