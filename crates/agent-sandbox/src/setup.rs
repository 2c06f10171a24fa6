//! A run after setup commands, as container-structure-test runs a command test: each
//! setup command runs in a container of the image so far (its entrypoint cleared),
//! which is then committed as the next image; the command runs in a container of the
//! last one. Every container and every committed image is removed at the end.

use std::collections::BTreeMap;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::CommitContainerOptionsBuilder;

use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::outcome::RunOutcome;
use crate::request::RunRequest;
use crate::run::{ContainerGuard, container_config, run_created};

/// Runs `setup` one after the other (with `setup_env`, under the request's limits and
/// labels and user, each committed), then `request` on the image they made. A setup command
/// that cannot start, times out or is killed for memory ends it there: its outcome is
/// returned, with `start_error` naming the setup command.
pub(crate) async fn run_after_setup(
    docker: &Docker,
    product: crate::outcome::Product,
    setup: &[Vec<String>],
    setup_env: &BTreeMap<String, String>,
    request: RunRequest<'_>,
) -> Result<RunOutcome, SandboxError> {
    let mut committed: Vec<String> = Vec::new();
    let result = async {
        let mut image = request.image.to_owned();
        for command in setup {
            let step = RunRequest {
                image: &image,
                args: &[],
                entrypoint: Some(&[]),
                command: Some(command),
                user: request.user,
                env: setup_env,
                stdin: None,
                limits: request.limits.clone(),
                labels: request.labels,
            };
            let (outcome, next) = run_and_commit(docker, step).await?;
            committed.extend(next.clone());
            match next {
                Some(next) if outcome.start_error.is_none() => image = next,
                _ => return Ok(setup_failed(outcome, command)),
            }
        }
        crate::run::run(
            docker,
            product,
            RunRequest {
                image: &image,
                ..request
            },
        )
        .await
    }
    .await;
    if let Err(error) = crate::cleanup::remove_untagged_images(docker, &committed).await {
        tracing::warn!(%error, "cannot remove the images committed by setup commands");
    }
    result
}

/// Runs one setup command and commits its container: the outcome, and the new
/// image's id unless the command could not start, timed out or ran out of memory.
async fn run_and_commit(
    docker: &Docker,
    request: RunRequest<'_>,
) -> Result<(RunOutcome, Option<String>), SandboxError> {
    let started = Instant::now();
    let command = request.command.map(<[String]>::to_vec);
    let created = bounded(docker.create_container(None, container_config(&request, command)))
        .await
        .map_err(|source| SandboxError::CreateContainer {
            image: request.image.to_owned(),
            source,
        })?;
    let guard = ContainerGuard::new(docker.clone(), created.id.clone());
    let outcome = run_created(docker, &created.id, &request, started).await;
    let commit = match &outcome {
        Ok(ran) if ran.start_error.is_none() && !ran.timed_out && !ran.oom_killed => {
            let options = CommitContainerOptionsBuilder::default()
                .container(&created.id)
                .build();
            bounded(docker.commit_container(options, bollard::models::ContainerConfig::default()))
                .await
                .map(|committed| Some(committed.id))
                .map_err(|source| SandboxError::Commit {
                    container: created.id.clone(),
                    source,
                })
        }
        _ => Ok(None),
    };
    guard.remove().await;
    Ok((outcome?, commit?))
}

fn setup_failed(mut outcome: RunOutcome, command: &[String]) -> RunOutcome {
    let why = if outcome.timed_out {
        "did not finish in time".to_owned()
    } else if outcome.oom_killed {
        "ran out of memory".to_owned()
    } else {
        outcome.start_error.take().unwrap_or_default()
    };
    outcome.start_error = Some(format!("setup command {command:?} failed: {why}"));
    outcome.timed_out = false;
    outcome
}
