//! The `Sandbox` facade: the connection to the engine, and builds, runs, tags and
//! cleanup through the modules that do each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_spec::{BuildNetwork, BuilderChoice, FileFacts, ImageFacts};
use bollard::Docker;

use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::outcome::{
    BuildOutcome, BuildProgress, Builder, CacheUsage, CleanupReport, EngineInfo, Product,
    RunOutcome,
};
use crate::request::{BuildRequest, RunRequest};

/// How long `connect` waits for the engine to answer a ping before calling it
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for an `ssh://` engine, whose first answer also waits for the ssh login
/// and the remote `docker system dial-stdio`.
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// bollard's bound on the wait for response headers of every request (seconds). Every
/// call carries a shorter deadline of ours ([`crate::deadline`]) and streams (build,
/// attach, wait) their own timeouts, so this one never decides.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How long [`Sandbox::answers`] waits for a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// The engine the Docker CLI uses when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Where an engine is, as the Docker CLI names it (`unix://`, `tcp://`, `ssh://`),
/// the client certificates for a `tcp://` engine that wants TLS, and the private key
/// for an `ssh://` engine (`None`: what `ssh` finds itself: the agent, `~/.ssh/config`,
/// the default identities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineAddress {
    pub url: String,
    pub tls: Option<TlsFiles>,
    pub identity: Option<PathBuf>,
}

/// `ca.pem`, `cert.pem` and `key.pem` of a folder, as the Docker CLI reads them from
/// `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn in_folder(folder: &std::path::Path) -> TlsFiles {
        TlsFiles {
            ca: folder.join("ca.pem"),
            cert: folder.join("cert.pem"),
            key: folder.join("key.pem"),
        }
    }
}

impl EngineAddress {
    /// `url` without TLS.
    pub fn plain(url: &str) -> EngineAddress {
        EngineAddress {
            url: url.to_owned(),
            tls: None,
            identity: None,
        }
    }
}

/// A connected engine. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) docker: Docker,
    engine: Arc<EngineInfo>,
    /// The way of labelling that last worked here (see `seal`).
    seal_memory: Arc<crate::memory::SealMemory>,
    /// What recent BuildKit builds were made of (see `rebuild`).
    recipes: Arc<crate::memory::Recipes>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sandbox")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Connects as the Docker CLI does: `docker_host` (the caller passes `DOCKER_HOST`)
    /// else the local socket; negotiates the API version and pings the engine.
    pub async fn connect(docker_host: Option<&str>) -> Result<Sandbox, SandboxError> {
        Sandbox::connect_to(&EngineAddress::plain(docker_host.unwrap_or(DEFAULT_SOCKET))).await
    }

    /// Connects to `address`, negotiates the API version and asks the engine who it is
    /// (`/version` and `/info`: its CPU count and storage driver).
    pub async fn connect_to(address: &EngineAddress) -> Result<Sandbox, SandboxError> {
        let host = address.url.as_str();
        let connect_error = |source| SandboxError::Connect {
            host: host.to_owned(),
            source,
        };
        let docker = client_for(address).map_err(connect_error)?;
        let patience = if host.starts_with("ssh://") {
            SSH_CONNECT_TIMEOUT
        } else {
            CONNECT_TIMEOUT
        };
        // Reachable means a ping answered in time. What the engine then says of itself
        // gets the bound of any engine call: Podman's `/info` counts its whole store
        // under the storage lock and takes seconds while builds hold that lock.
        let reached = tokio::time::timeout(patience, async {
            let docker = docker.negotiate_version().await?;
            docker.ping().await?;
            Ok::<_, bollard::errors::Error>(docker)
        })
        .await;
        let docker = match reached {
            Ok(answer) => answer.map_err(connect_error)?,
            Err(_elapsed) => {
                return Err(connect_error(bollard::errors::Error::RequestTimeoutError));
            }
        };
        let (version, info) = bounded(async {
            let version = docker.version().await?;
            let info = docker.info().await?;
            Ok::<_, bollard::errors::Error>((version, info))
        })
        .await
        .map_err(connect_error)?;
        let (product, product_version) = crate::dialect::product_of(&version);
        let api_version = version.api_version.clone().unwrap_or_default();
        let engine = EngineInfo {
            host: host.to_owned(),
            product,
            version: product_version,
            api_version: api_version.clone(),
            cpus: info
                .ncpu
                .and_then(|count| usize::try_from(count).ok())
                .unwrap_or(1)
                .max(1),
            storage_driver: info.driver.unwrap_or_default(),
            builder: crate::dialect::auto_builder(product, &api_version),
        };
        tracing::debug!(host, ?engine, "connected to the Docker engine");
        Ok(Sandbox {
            docker,
            seal_memory: Arc::new(crate::memory::SealMemory::starting_with(
                crate::dialect::first_seal_method(engine.product),
            )),
            engine: Arc::new(engine),
            recipes: Arc::default(),
        })
    }

    /// Whether the engine still answers a ping within a few seconds.
    pub async fn answers(&self) -> bool {
        matches!(
            tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await,
            Ok(Ok(_))
        )
    }

    /// This engine with its builds going to the builder `choice` names (`auto`: the
    /// one that does less work there, or under `allowlist` the one that can enforce
    /// it); an error when it names one the engine lacks, or when the engine cannot
    /// enforce the build network asked for.
    pub fn with_builder(
        mut self,
        choice: BuilderChoice,
        network: BuildNetwork,
    ) -> Result<Sandbox, SandboxError> {
        let engine = &self.engine;
        if network == BuildNetwork::Allowlist {
            // Checked on Podman 4.3: its Docker-compatible build runs RUN steps in the
            // host's network namespace whatever `networkmode` says.
            if engine.product == Product::Podman {
                return Err(SandboxError::EgressUnenforceable {
                    host: engine.host.clone(),
                    product: engine.product.to_string(),
                });
            }
            if choice == BuilderChoice::BuildKit {
                return Err(SandboxError::EgressNeedsClassic);
            }
            Arc::make_mut(&mut self.engine).builder = Builder::Classic;
            return Ok(self);
        }
        let builder = match choice {
            BuilderChoice::Auto => {
                crate::dialect::auto_builder(engine.product, &engine.api_version)
            }
            BuilderChoice::Classic => Builder::Classic,
            BuilderChoice::BuildKit => {
                if !crate::dialect::runs_buildkit(engine.product, &engine.api_version) {
                    return Err(SandboxError::NoBuildKit {
                        host: engine.host.clone(),
                        product: engine.product.to_string(),
                        api_version: engine.api_version.clone(),
                    });
                }
                Builder::BuildKit
            }
        };
        Arc::make_mut(&mut self.engine).builder = builder;
        Ok(self)
    }

    pub fn engine(&self) -> &EngineInfo {
        &self.engine
    }

    pub(crate) fn seal_memory(&self) -> &crate::memory::SealMemory {
        &self.seal_memory
    }

    pub(crate) fn recipes(&self) -> &crate::memory::Recipes {
        &self.recipes
    }

    /// What the engine says of `image` (a reference or id).
    pub(crate) async fn inspect(
        &self,
        image: &str,
    ) -> Result<bollard::models::ImageInspect, SandboxError> {
        bounded(self.docker.inspect_image(image))
            .await
            .map_err(|source| SandboxError::InspectImage {
                image: image.to_owned(),
                source,
            })
    }

    /// Whether the engine has `image` (a reference or id) without pulling it.
    pub async fn image_present(&self, image: &str) -> Result<bool, SandboxError> {
        Ok(self.find_image(image).await?.is_some())
    }

    /// Builds with the engine's builder; `progress` is called for each step.
    pub async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        let mut request = request;
        if !request.cache_from.is_empty()
            && !crate::dialect::takes_cache_from_list(self.engine.product, &self.engine.version)
        {
            tracing::warn!(
                "{} {} takes no list of cache sources; building without them",
                self.engine.product,
                self.engine.version
            );
            request.cache_from = &[];
        }
        let outcome = crate::build::build(
            &self.docker,
            self.engine.builder,
            request,
            &std::collections::BTreeMap::new(),
            progress,
        )
        .await?;
        self.recipes.keep(self.engine.builder, &request, &outcome);
        Ok(outcome)
    }

    /// Creates, starts, feeds stdin, captures stdout/stderr apart (capped), waits with
    /// the timeout (kill on expiry), inspects for OOM, and always removes the container.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        crate::run::run(&self.docker, self.engine.product, request).await
    }

    /// Runs `setup` commands one after the other, each committed as the next image
    /// (as container-structure-test does before a command test), then `request` on
    /// the last; every container and committed image is removed.
    pub async fn run_after_setup(
        &self,
        setup: &[Vec<String>],
        setup_env: &BTreeMap<String, String>,
        request: RunRequest<'_>,
    ) -> Result<RunOutcome, SandboxError> {
        crate::setup::run_after_setup(&self.docker, self.engine.product, setup, setup_env, request)
            .await
    }

    /// The image's user, workdir, ports, env, labels, entrypoint, cmd, volumes and size.
    pub async fn image_facts(&self, image: &str) -> Result<ImageFacts, SandboxError> {
        crate::image_facts::image_facts(&self.docker, image).await
    }

    /// What each of `paths` is in `image`, read from one created, never-started
    /// container (labelled `labels`, always removed); `content_limit` bytes of
    /// content are kept per file.
    pub async fn file_facts(
        &self,
        image: &str,
        paths: &[String],
        labels: &BTreeMap<String, String>,
        content_limit: usize,
    ) -> Result<Vec<FileFacts>, SandboxError> {
        crate::file_facts::file_facts(&self.docker, image, paths, labels, content_limit).await
    }

    /// `image` is an id or reference; `reference` is `repo:tag`. When the tag moves
    /// from another image, that image is removed unless something still uses it (a
    /// container, a child image, another tag), so re-tagging leaves nothing dangling.
    pub async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        let previous = match bounded(self.docker.inspect_image(reference)).await {
            Ok(inspected) => inspected.id,
            Err(_) => None,
        };
        crate::cache::tag(&self.docker, image, reference)
            .await
            .map_err(|source| SandboxError::Tag {
                image: image.to_owned(),
                tag: reference.to_owned(),
                source,
            })?;
        let Some(previous) =
            previous.filter(|previous| !crate::cleanup::same_image(previous, image))
        else {
            return Ok(());
        };
        // Only an image left without any tag goes (removing by id would take its last
        // tag with it); without force, the engine still refuses while a container
        // uses it or it is a parent.
        let untagged = match bounded(self.docker.inspect_image(&previous)).await {
            Ok(inspected) => crate::dialect::is_untagged(&inspected.repo_tags.unwrap_or_default()),
            Err(_) => false,
        };
        if untagged {
            crate::cache::untag_or_remove(&self.docker, &previous).await?;
        }
        Ok(())
    }

    /// What the build cache holds.
    pub async fn cache_usage(&self) -> Result<CacheUsage, SandboxError> {
        crate::cache::usage(&self.docker).await
    }

    /// Removes the least recently used cache entries until the cache holds at most
    /// `max_bytes`; what is left.
    pub async fn trim_cache(&self, max_bytes: u64) -> Result<CacheUsage, SandboxError> {
        crate::cache::trim(&self.docker, max_bytes).await
    }

    /// Removes the whole build cache; the ids of the images removed.
    pub async fn remove_cache(&self) -> Result<Vec<String>, SandboxError> {
        crate::cache::remove_all(&self.docker).await
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

    /// Removes every container labelled `key=value`; lists no image.
    pub async fn remove_labelled_containers(
        &self,
        key: &str,
        value: &str,
    ) -> Result<CleanupReport, SandboxError> {
        crate::cleanup::remove_labelled_containers(&self.docker, key, value).await
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

/// A client for `address` as the Docker CLI reads `DOCKER_HOST`: `unix://` (or a bare
/// socket path), `tcp://` and `http://`, `tcp://` or `https://` with TLS, and
/// `ssh://`: the system `ssh` logs in (with its own configuration, keys and known
/// hosts, never asking) and runs `docker system dial-stdio` on the remote host.
fn client_for(address: &EngineAddress) -> Result<Docker, bollard::errors::Error> {
    let host = address.url.as_str();
    let version = bollard::API_DEFAULT_VERSION;
    let tcp = host.starts_with("tcp://") || host.starts_with("http://");
    match &address.tls {
        _ if host.starts_with("unix://") || host.starts_with('/') => {
            Docker::connect_with_socket(host, REQUEST_TIMEOUT_SECS, version)
        }
        _ if host.starts_with("ssh://") => Docker::connect_with_ssh(
            host,
            REQUEST_TIMEOUT_SECS,
            version,
            address
                .identity
                .as_ref()
                .map(|path| path.to_string_lossy().into_owned()),
        ),
        Some(tls) if tcp || host.starts_with("https://") => Docker::connect_with_ssl(
            host,
            &tls.key,
            &tls.cert,
            &tls.ca,
            REQUEST_TIMEOUT_SECS,
            version,
        ),
        None if tcp => Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version),
        _ => Err(bollard::errors::Error::UnsupportedURISchemeError {
            uri: host.to_owned(),
        }),
    }
}
