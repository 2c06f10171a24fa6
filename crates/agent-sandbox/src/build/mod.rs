//! Builds under the build timeout with the engine's builder (`classic` reads the
//! classic builder's text, `buildkit` BuildKit's status messages), builds once more
//! when a cached layer vanished mid-build, and tags what a build made in the spec's
//! cache. `evidence` keeps what either builder's failure is reported with.

mod buildkit;
mod classic;
mod evidence;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::{Stream, StreamExt};

use crate::egress::Gate;
use crate::errors::SandboxError;
use crate::outcome::{BuildOutcome, BuildProgress, BuildStatus, Builder, EgressRefusals};
use crate::request::BuildRequest;

/// What the engine says when a step's parent image vanished between its cache hit
/// and the step's use of it (removed by `gc --cache` or the cache's size cap while
/// this build ran, or on Podman, whose image removal also takes the untagged parents
/// another build's cache lookup stands on): the build is tried once more, and then
/// builds that layer anew.
const VANISHED_PARENT_ERRORS: [&str; 6] = [
    "unknown parent image id",
    "no such image: sha256:",
    "reference does not exist",
    // Docker 20.10, when the cached image a step stands on went between its cache hit
    // and the step's commit: `failed to get digest sha256:…: open
    // /var/lib/docker/image/…/imagedb/content/sha256/…: no such file or directory`.
    "failed to get digest sha256:",
    // Podman 4.3: `checking if cached image exists from a previous build: getting
    // top layer info: layer not known`.
    "layer not known",
    "image not known",
];

/// `build_args` are the build's `ARG` values (the seal's label build passes its labels
/// so). Under an egress policy the steps join its gate, which every attempt shares.
pub(crate) async fn build(
    docker: &Docker,
    builder: Builder,
    request: BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<BuildOutcome, SandboxError> {
    let started = Instant::now();
    let Some(policy) = request.egress else {
        return attempts(docker, builder, request, build_args, progress, started).await;
    };
    // BuildKit's steps cannot join the gate: building anyway would not enforce it.
    if builder == Builder::BuildKit {
        return Err(SandboxError::EgressNeedsClassic);
    }
    let gate = Gate::open(docker, policy).await?;
    let network = gate.network_mode();
    let mut build_args = build_args.clone();
    build_args.extend(Gate::build_args());
    let step = gate.step();
    let mut progress = |update: BuildProgress| {
        let BuildProgress::Step {
            index, instruction, ..
        } = &update;
        step.set(*index, instruction);
        progress(update);
    };
    let request = BuildRequest {
        network: &network,
        ..request
    };
    let built = attempts(
        docker,
        builder,
        request,
        &build_args,
        &mut progress,
        started,
    )
    .await;
    let refused = gate.close().await;
    let mut built = built?;
    built.log.push_str(&crate::egress::log_lines(&refused));
    built.egress = refused;
    built.duration = started.elapsed();
    Ok(built)
}

/// The build, and once more when a cached layer vanished during it.
async fn attempts(
    docker: &Docker,
    builder: Builder,
    request: BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
    started: Instant,
) -> Result<BuildOutcome, SandboxError> {
    let first = build_once(docker, builder, request, build_args, progress).await?;
    let remaining = request.timeout.saturating_sub(started.elapsed());
    if !parent_vanished(&first.status) || remaining.is_zero() {
        return Ok(first);
    }
    tracing::info!("a cached layer vanished during the build; building again");
    let retry = BuildRequest {
        timeout: remaining,
        ..request
    };
    let mut second = build_once(docker, builder, retry, build_args, progress).await?;
    second.log = format!(
        "{}\n[a cached layer vanished during the build; built again]\n\n{}",
        first.log, second.log
    );
    second.duration = started.elapsed();
    Ok(second)
}

/// Whether the build failed because a cached image it stood on went meanwhile.
fn parent_vanished(status: &BuildStatus) -> bool {
    let BuildStatus::Failed { error, .. } = status else {
        return false;
    };
    let error = error.to_ascii_lowercase();
    VANISHED_PARENT_ERRORS
        .iter()
        .any(|known| error.contains(known))
}

async fn build_once(
    docker: &Docker,
    builder: Builder,
    request: BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<BuildOutcome, SandboxError> {
    let started = Instant::now();
    let (status, log, heads) = match builder {
        Builder::Classic => classic::build(docker, &request, build_args, progress).await?,
        Builder::BuildKit => buildkit::build(docker, &request, build_args, progress).await?,
    };
    if let Some(repository) = request.cache_repository {
        crate::cache::keep_heads(docker, repository, &heads).await;
    }
    Ok(BuildOutcome {
        status,
        log,
        duration: started.elapsed(),
        egress: EgressRefusals::default(),
    })
}

/// What every build asks of the engine, whichever builder takes it: the Dockerfile,
/// the labels, the build args, the cache, the network RUN steps get.
fn options(
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
) -> BuildImageOptionsBuilder {
    let labels: HashMap<&str, &str> = request
        .labels
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let build_args: HashMap<&str, &str> = build_args
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .labels(&labels)
        .buildargs(&build_args)
        .nocache(request.no_cache);
    if request.network != "default" {
        options = options.networkmode(request.network);
    }
    // A JSON array of references, as bollard sends it; `Sandbox::build` sends none to
    // an engine that refuses the array (`dialect::takes_cache_from_list`).
    if !request.cache_from.is_empty() {
        options = options.cachefrom(&request.cache_from.to_vec());
    }
    options
}

/// What either builder's output is read into.
trait Reader {
    /// Takes one item of the stream; `true` when the build has ended with it.
    fn take(&mut self, info: BuildInfo, progress: &mut (dyn FnMut(BuildProgress) + Send)) -> bool;
    /// The stream ended or failed: whatever is pending is taken.
    fn close(&mut self, progress: &mut (dyn FnMut(BuildProgress) + Send));
    /// The id of the image the build made, once the engine has said it.
    fn image_id(&self) -> Option<&str>;
    fn log(&mut self) -> &mut evidence::CappedLog;
    /// What it knows of the step the build failed at.
    fn failing_step(&self) -> evidence::FailingStep;
}

/// The failure `error` ended the build with, logged, with the evidence `reader`
/// gathered.
fn failed(reader: &mut impl Reader, error: String) -> BuildStatus {
    reader.log().push(&format!("ERROR: {error}\n"));
    let step = reader.failing_step();
    BuildStatus::Failed {
        missing_image: evidence::missing_base_image(&error, step.instruction.as_deref()),
        failing_step: step.name,
        step_output: step.output,
        error,
    }
}

/// Reads `stream` into `reader` under `timeout`: the build's status, or `None` at
/// the timeout (marked in the log). Dropping the stream closes the connection, so
/// after a timeout the engine's writes of whatever the step still prints fail at
/// once instead of waiting for a reader.
async fn read(
    stream: impl Stream<Item = Result<BuildInfo, bollard::errors::Error>>,
    timeout: Duration,
    reader: &mut impl Reader,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<Option<BuildStatus>, SandboxError> {
    let mut stream = std::pin::pin!(stream);
    let streamed = tokio::time::timeout(timeout, async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if reader.take(info, progress) {
                        break;
                    }
                }
                Err(error) => {
                    reader.close(progress);
                    return Some(error);
                }
            }
        }
        reader.close(progress);
        None
    })
    .await;
    let error = match streamed {
        Err(_elapsed) => {
            reader.log().push(&format!(
                "\n[build stopped at the timeout of {} s]\n",
                timeout.as_secs()
            ));
            return Ok(None);
        }
        Ok(error) => error,
    };
    let built = reader.image_id().map(|image_id| BuildStatus::Built {
        image_id: image_id.to_owned(),
    });
    Ok(Some(match (error, built) {
        (None, Some(built)) => built,
        (None, None) => failed(
            reader,
            "the engine ended the build without an image".to_owned(),
        ),
        // bollard 0.21.1 may report a decoding error after the stream has already
        // delivered the image id: the build succeeded.
        (Some(error), Some(built)) => {
            tracing::debug!(%error, "ignored an error after the build succeeded");
            built
        }
        (Some(bollard::errors::Error::DockerStreamError { error }), None) => {
            failed(reader, error.trim().to_owned())
        }
        // The engine answered, but refused the build (a Dockerfile it cannot parse,
        // say): an outcome for the model, not an engine error.
        (Some(bollard::errors::Error::DockerResponseServerError { message, .. }), None) => {
            failed(reader, message.trim().to_owned())
        }
        (Some(other), None) => return Err(SandboxError::Build(other)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(error: &str) -> BuildStatus {
        BuildStatus::Failed {
            error: error.to_owned(),
            failing_step: None,
            step_output: String::new(),
            missing_image: None,
        }
    }

    #[test]
    fn a_cached_parent_that_went_meanwhile_is_told_from_a_step_that_failed() {
        let gone = "failed to get digest sha256:2edd30695eff065be2886247d16265d2f7c5106546497d78b478339bd20702d0: open /var/lib/docker/image/fuse-overlayfs/imagedb/content/sha256/2edd30695eff065be2886247d16265d2f7c5106546497d78b478339bd20702d0: no such file or directory";
        assert!(parent_vanished(&failed(gone)));
        assert!(parent_vanished(&failed(
            "checking if cached image exists from a previous build: getting top layer info: layer not known"
        )));
        assert!(!parent_vanished(&failed(
            "The command '/bin/sh -c false' returned a non-zero code: 1"
        )));
        assert!(!parent_vanished(&BuildStatus::TimedOut));
    }
}
