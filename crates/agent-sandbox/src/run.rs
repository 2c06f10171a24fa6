//! Runs an image once under limits: create, attach before start, feed stdin, capture
//! stdout and stderr apart with a cap, wait under the timeout (kill on expiry), read
//! the OOM flag, and remove the container on every path, cancellation included.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, KillContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::cleanup;
use crate::deadline::{DRAIN_TIMEOUT, bounded};
use crate::errors::SandboxError;
use crate::outcome::{Captured, RunOutcome};
use crate::request::{RunLimits, RunNetwork, RunRequest};

/// The attach stream: what the container writes, as the engine pushes it.
pub(crate) type Output =
    std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

pub(crate) async fn run(
    docker: &Docker,
    product: crate::outcome::Product,
    request: RunRequest<'_>,
) -> Result<RunOutcome, SandboxError> {
    let started = Instant::now();
    let command = command(docker, &request).await?;
    let created = bounded(docker.create_container(None, container_config(&request, command)))
        .await
        .map_err(|source| SandboxError::CreateContainer {
            image: request.image.to_owned(),
            source,
        })?;
    let guard = ContainerGuard::new(docker.clone(), created.id.clone());
    let result = run_created(docker, &created.id, &request, started).await;
    guard.remove().await;
    result.map(|mut outcome| {
        outcome.oom_killed = crate::dialect::oom_killed(
            product,
            outcome.oom_killed,
            outcome.exit_code,
            outcome.timed_out,
        );
        outcome
    })
}

/// The spec's args are appended to the command (its ENTRYPOINT stays in front), not
/// put in place of its CMD as `docker run image args` would. The command is the
/// request's own when it has one, else the image's CMD.
async fn command(
    docker: &Docker,
    request: &RunRequest<'_>,
) -> Result<Option<Vec<String>>, SandboxError> {
    if let Some(command) = request.command {
        return Ok(Some(appended_command(Some(command.to_vec()), request.args)));
    }
    if request.args.is_empty() {
        return Ok(None);
    }
    let image_command = bounded(docker.inspect_image(request.image))
        .await
        .map_err(|source| SandboxError::InspectImage {
            image: request.image.to_owned(),
            source,
        })?
        .config
        .and_then(|config| config.cmd);
    Ok(Some(appended_command(image_command, request.args)))
}

pub(crate) fn container_config(
    request: &RunRequest<'_>,
    command: Option<Vec<String>>,
) -> ContainerCreateBody {
    let with_stdin = request.stdin.is_some();
    ContainerCreateBody {
        cmd: command,
        user: request.user.map(str::to_owned),
        // The engine reads an entrypoint of one empty string as "none".
        entrypoint: request.entrypoint.map(|entrypoint| {
            if entrypoint.is_empty() {
                vec![String::new()]
            } else {
                entrypoint.to_vec()
            }
        }),
        attach_stdin: Some(with_stdin),
        open_stdin: Some(with_stdin),
        stdin_once: Some(with_stdin),
        ..container_body(request.image, request.env, request.labels, &request.limits)
    }
}

/// What every container this crate starts from a built image shares: the image, the
/// only environment it gets, the labels, stdout and stderr apart on the attach
/// stream, and the limits.
pub(crate) fn container_body(
    image: &str,
    env: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    limits: &RunLimits,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(
            env.iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect(),
        ),
        labels: Some(
            labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        tty: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(host_config(limits)),
        ..Default::default()
    }
}

pub(crate) fn host_config(limits: &RunLimits) -> HostConfig {
    let memory_bytes =
        i64::try_from(limits.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    HostConfig {
        memory: Some(memory_bytes),
        // Equal to `memory`: no swap, so a hog is killed instead of thrashing.
        memory_swap: Some(memory_bytes),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        pids_limit: Some(limits.pids),
        network_mode: Some(
            match limits.network {
                RunNetwork::None => "none",
                RunNetwork::Bridge => "bridge",
            }
            .to_owned(),
        ),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        auto_remove: Some(false),
        // The output is read through the attach stream; the engine's own log of it
        // would only fill its disk and slow a chatty program down to the log
        // driver's pace.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        ..Default::default()
    }
}

/// Attaches, starts, feeds stdin and reads the output of the created container `id`
/// under the request's limits; removing it is the caller's.
pub(crate) async fn run_created(
    docker: &Docker,
    id: &str,
    request: &RunRequest<'_>,
    started: Instant,
) -> Result<RunOutcome, SandboxError> {
    let engine_error = |source| SandboxError::Run {
        container: id.to_owned(),
        source,
    };
    // Attached before the start so not a byte of output is missed.
    let attach_options = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdout(true)
        .stderr(true)
        .stdin(request.stdin.is_some())
        .build();
    let attached = bounded(docker.attach_container(id, Some(attach_options)))
        .await
        .map_err(engine_error)?;
    let mut outcome = RunOutcome {
        exit_code: None,
        stdout: Captured::default(),
        stderr: Captured::default(),
        timed_out: false,
        oom_killed: false,
        start_error: None,
        duration: started.elapsed(),
    };
    if let Err(error) = bounded(docker.start_container(id, None)).await {
        match error {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                outcome.start_error = Some(message.trim().to_owned());
                outcome.duration = started.elapsed();
                return Ok(outcome);
            }
            other => return Err(engine_error(other)),
        }
    }
    let mut output = attached.output;
    let limits = &request.limits;
    let mut streams = Streams {
        stdout: &mut outcome.stdout,
        stderr: &mut outcome.stderr,
        limit: limits.output_limit_bytes,
    };
    let finished = tokio::time::timeout(
        limits.timeout,
        until_exit(
            docker,
            id,
            &mut output,
            attached.input,
            request.stdin,
            &mut streams,
        ),
    )
    .await;
    let exit = match finished {
        Ok(exit) => Some(exit.map_err(engine_error)?),
        Err(_elapsed) => {
            stop_after_timeout(docker, id, &mut output, &mut streams).await;
            None
        }
    };
    drop(output);
    let state = bounded(docker.inspect_container(id, None))
        .await
        .map_err(engine_error)?
        .state;
    outcome.timed_out = exit.is_none();
    // The wait can end without a status: then the container's own record has it.
    outcome.exit_code = exit.and_then(|code| code.or_else(|| state.as_ref()?.exit_code));
    outcome.oom_killed = state.and_then(|state| state.oom_killed).unwrap_or(false);
    outcome.duration = started.elapsed();
    Ok(outcome)
}

/// Where the two output streams go, each capped at `limit` bytes.
struct Streams<'a> {
    stdout: &'a mut Captured,
    stderr: &'a mut Captured,
    limit: usize,
}

impl Streams<'_> {
    /// Reads `output` to its end (the container gone) or until it breaks.
    async fn read(&mut self, output: &mut Output, id: &str) {
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    self.stdout.take(&message, self.limit);
                }
                Ok(LogOutput::StdErr { message }) => self.stderr.take(&message, self.limit),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(error) => {
                    tracing::debug!(%error, container = id, "the attach stream broke");
                    break;
                }
            }
        }
    }
}

/// Feeds stdin, reads the output and waits for the container to exit: its exit code,
/// or `None` when the wait ended without one.
async fn until_exit(
    docker: &Docker,
    id: &str,
    output: &mut Output,
    mut input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    stdin: Option<&[u8]>,
    streams: &mut Streams<'_>,
) -> Result<Option<i64>, bollard::errors::Error> {
    let feed = async move {
        if let Some(bytes) = stdin {
            // The program may exit or close its stdin without reading: a failed write
            // is its business, not an engine error.
            let _ = input.write_all(bytes).await;
            let _ = input.shutdown().await;
        }
        // Without stdin, the write half stays open until the end: closing it early
        // would make some engines close the whole attach stream.
        std::future::pending::<()>().await;
        drop(input);
    };
    let wait = async {
        let mut waiting = docker.wait_container(id, None::<WaitContainerOptions>);
        match waiting.next().await {
            Some(Ok(response)) => Ok(Some(response.status_code)),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                Ok(Some(code))
            }
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    };
    // The run is over when the output has ended and the container has exited; a write
    // to a stdin the program never read may still be pending then, and is dropped.
    tokio::select! {
        () = feed => Ok(None),
        ((), exit) = async { tokio::join!(streams.read(output, id), wait) } => exit,
    }
}

/// Kills the container while reading on: whatever the engine still has to push down
/// the attach stream must find a reader, or the engine blocks on that write and the
/// kill, the inspection and the removal behind it stall until bollard's own timeout.
/// The stream ends when the container is gone; if it does not within
/// [`DRAIN_TIMEOUT`], the caller drops the connection, which ends the engine's writes.
async fn stop_after_timeout(
    docker: &Docker,
    id: &str,
    output: &mut Output,
    streams: &mut Streams<'_>,
) {
    let kill = async {
        let options = KillContainerOptionsBuilder::default()
            .signal("KILL")
            .build();
        if let Err(error) = bounded(docker.kill_container(id, Some(options))).await {
            tracing::debug!(%error, container = id, "kill after the timeout failed");
        }
    };
    let drain = tokio::time::timeout(DRAIN_TIMEOUT, streams.read(output, id));
    let ((), drained) = tokio::join!(kill, drain);
    if drained.is_err() {
        tracing::warn!(
            container = id,
            "the output did not end after the kill; dropping it"
        );
    }
}

/// Removes the container when dropped, so a cancelled run (Ctrl-C drops the future)
/// leaves nothing behind; the normal paths call [`ContainerGuard::remove`] and wait
/// for the removal.
pub(crate) struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    pub(crate) fn new(docker: Docker, id: String) -> ContainerGuard {
        ContainerGuard {
            docker,
            id: Some(id),
        }
    }

    pub(crate) async fn remove(mut self) {
        if let Some(id) = self.id.take() {
            cleanup::force_remove_container(&self.docker, &id).await;
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let docker = self.docker.clone();
                runtime.spawn(async move {
                    cleanup::force_remove_container(&docker, &id).await;
                });
            }
            Err(_) => tracing::warn!(container = %id, "no runtime left to remove the container"),
        }
    }
}

/// The image's CMD with `args` after it. A shell-form CMD (`sh -c "script"`) gets them
/// as the script's positional parameters, so `"$@"` carries them to the program.
fn appended_command(image_command: Option<Vec<String>>, args: &[String]) -> Vec<String> {
    let mut command = image_command.unwrap_or_default();
    let shell_form = command.len() == 3 && command[0].ends_with("sh") && command[1] == "-c";
    if shell_form {
        command[2].push_str(" \"$@\"");
        command.push("sh".to_owned());
    }
    command.extend(args.iter().cloned());
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn args_are_appended_to_the_command() {
        let args = strings(&["--fast", "two words"]);
        assert_eq!(
            appended_command(Some(strings(&["python3", "main.py"])), &args),
            strings(&["python3", "main.py", "--fast", "two words"])
        );
        assert_eq!(appended_command(None, &args), args);
        assert_eq!(
            appended_command(Some(strings(&["/bin/sh", "-c", "python3 main.py"])), &args),
            strings(&[
                "/bin/sh",
                "-c",
                "python3 main.py \"$@\"",
                "sh",
                "--fast",
                "two words"
            ])
        );
    }
}
