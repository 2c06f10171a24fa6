//! The engines a command uses: `--engine` (repeated) over `[docker] engines`, else
//! the one the Docker CLI would use (`crate::discovery`: `DOCKER_HOST`, a context, a
//! local socket). `tcp://` engines use TLS the way the Docker CLI does: a context's
//! own certificates, else, when `DOCKER_TLS_VERIFY` is set, `ca.pem`, `cert.pem` and
//! `key.pem` from `DOCKER_CERT_PATH` (default `~/.docker`). `ssh://` engines log in
//! with the system `ssh` as the Docker CLI does. Every engine is connected at start;
//! one that does not answer, or lacks a base image no registry can give, is reported
//! and left out, and only when none is left does the command fail.

use std::path::PathBuf;
use std::time::Duration;

use agent_sandbox::{EngineAddress, ImageRole, Pool, Sandbox, SandboxError, TlsFiles};
use agent_spec::{Settings, Spec};

use crate::discovery::{self, DockerEnvironment, FoundBy};
use crate::env;
use crate::failure::Failure;

/// How long a missing base image may take to pull before the engine is left out.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// An engine to connect to, with its configured slots.
pub struct Target {
    pub address: EngineAddress,
    pub slots: Option<usize>,
    /// Why this engine, when no engine was named and it was found as the Docker CLI
    /// finds one.
    pub found_by: Option<FoundBy>,
}

/// The engines the settings name, else the one the Docker CLI would use. A context
/// that does not exist, or cannot be read, is a configuration error (exit 2).
pub fn targets(settings: &Settings) -> Result<Vec<Target>, Failure> {
    let tls = tls_files();
    let networked = |url: &str| {
        ["tcp://", "http://", "https://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    };
    if settings.docker.engines.is_empty() {
        let found =
            discovery::discover(&docker_environment(), &|path| path.exists()).map_err(|error| {
                let hint = error.hint();
                Failure::usage(error).with_hint(hint)
            })?;
        // A context carries its own TLS files; `DOCKER_TLS_VERIFY` is for the rest,
        // as in the Docker CLI.
        let tls = match found.found_by {
            FoundBy::Context { .. } => found.context_tls,
            _ => tls.filter(|_| networked(&found.url)),
        };
        return Ok(vec![Target {
            address: EngineAddress {
                url: found.url,
                tls,
                identity: None,
            },
            slots: None,
            found_by: Some(found.found_by),
        }]);
    }
    let listed = settings.docker.engines.clone();
    Ok(listed
        .into_iter()
        .map(|engine| Target {
            address: EngineAddress {
                tls: tls.clone().filter(|_| networked(&engine.url)),
                identity: engine.identity.as_deref().map(key_path),
                url: engine.url,
            },
            slots: engine.slots,
            found_by: None,
        })
        .collect())
}

/// What the environment says about the engine, for [`discovery::discover`].
fn docker_environment() -> DockerEnvironment {
    DockerEnvironment {
        host: env::var(env::DOCKER_HOST),
        context: env::var(env::DOCKER_CONTEXT),
        config_dir: env::docker_config_dir(),
        runtime_dir: env::var(env::XDG_RUNTIME_DIR).map(PathBuf::from),
    }
}

/// An `identity` as written: `~/` is the home folder; other paths are taken as they
/// are (a relative one from the folder `agent` runs in).
fn key_path(written: &str) -> PathBuf {
    match (written.strip_prefix("~/"), env::var(env::HOME)) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(written),
    }
}

/// The client certificates when `DOCKER_TLS_VERIFY` asks for TLS.
fn tls_files() -> Option<TlsFiles> {
    env::var(env::DOCKER_TLS_VERIFY)?;
    let folder = env::var(env::DOCKER_CERT_PATH)
        .map(PathBuf::from)
        .or_else(|| env::var(env::HOME).map(|home| PathBuf::from(home).join(".docker")))?;
    Some(TlsFiles::in_folder(&folder))
}

/// Connects to every target at once, each building with the builder `[docker]
/// builder` chooses for `build_network`: those that answered, with their slots, and
/// the failures, in the order of the targets.
pub async fn connect(
    targets: Vec<Target>,
    docker: &agent_spec::DockerSettings,
) -> (Vec<(Sandbox, Option<usize>)>, Vec<(String, SandboxError)>) {
    let (builder, network) = (docker.builder, docker.build_network);
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|target| {
            tokio::spawn(async move {
                let connected = Sandbox::connect_to(&target.address)
                    .await
                    .and_then(|sandbox| sandbox.with_builder(builder, network));
                (target.address.url, target.slots, connected)
            })
        })
        .collect();
    let (mut answered, mut failed) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await {
            Ok((_, slots, Ok(sandbox))) => answered.push((sandbox, slots)),
            Ok((url, _, Err(error))) => failed.push((url, error)),
            Err(join_error) => tracing::warn!("an engine connection task failed: {join_error}"),
        }
    }
    (answered, failed)
}

/// The pool of the engines of `settings` that answer and hold `images` (each with
/// what it is for, `base image` or `probe image`; pulled where a registry can give
/// them). With one engine, its failure is the command's, as it always was; with
/// several, each that fails is reported on stderr and left out.
pub async fn pool(settings: &Settings, images: &[(ImageRole, &String)]) -> Result<Pool, Failure> {
    let (answered, failed) = connect(targets(settings)?, &settings.docker).await;
    let several = answered.len() + failed.len() > 1;
    let mut first_failure = None;
    for (url, error) in failed {
        if several {
            eprintln!(
                "agent: engine `{url}` does not answer; it is left out: {}",
                agent_model::error_chain(&error)
            );
        }
        first_failure.get_or_insert(error);
    }
    let mut usable = Vec::new();
    for (sandbox, slots) in answered {
        match ensure_images(&sandbox, images).await {
            Ok(()) => usable.push((sandbox, slots)),
            Err(error) => {
                if several {
                    eprintln!(
                        "agent: engine `{}` lacks a base image; it is left out: {}",
                        sandbox.engine().host,
                        agent_model::error_chain(&error)
                    );
                }
                first_failure.get_or_insert(error);
            }
        }
    }
    if usable.is_empty() {
        let error = first_failure.expect("an engine was named");
        let failure = Failure::engine(error);
        return Err(if several {
            Failure {
                error: failure
                    .error
                    .context("no engine answers with the base images"),
                ..failure
            }
        } else {
            failure
        });
    }
    Ok(Pool::new(usable))
}

/// Every base image the model will be told about, and the probe image when a spec has
/// a service, is on the engine before the first model call (pulled when it is not and
/// a registry can give it): a model cannot repair a missing one.
async fn ensure_images(
    sandbox: &Sandbox,
    images: &[(ImageRole, &String)],
) -> Result<(), SandboxError> {
    for &(role, image) in images {
        if !sandbox.ensure_image(role, image, PULL_TIMEOUT).await? {
            eprintln!(
                "agent: pulled {role} `{image}` on `{}`",
                sandbox.engine().host
            );
        }
    }
    Ok(())
}

/// The probe image, when one of `specs` has a service: it sends the service's probes.
pub fn probe_image<'a>(settings: &'a Settings, specs: &[Spec]) -> Option<(ImageRole, &'a String)> {
    specs
        .iter()
        .any(|spec| spec.service.is_some())
        .then_some((ImageRole::Probe, &settings.docker.probe_image))
}

/// The egress image, when builds go through the egress gate.
pub fn egress_image(settings: &Settings) -> Option<(ImageRole, &String)> {
    (settings.docker.build_network == agent_spec::BuildNetwork::Allowlist)
        .then_some((ImageRole::Egress, &settings.docker.egress_image))
}

/// The base image and the allowed ones, each once.
pub fn base_images(docker: &agent_spec::DockerSettings) -> Vec<&String> {
    let mut images = vec![&docker.base_image];
    for image in &docker.allowed_base_images {
        if !images.contains(&image) {
            images.push(image);
        }
    }
    images
}
