//! Runs an image once under limits: create, attach before start, feed stdin, capture
//! stdout and stderr apart with a cap, wait under the timeout (kill on expiry), read
//! the OOM flag, and remove the container on every path, cancellation included.

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, KillContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::cleanup;
use crate::engine::{Captured, RunNetwork, RunOutcome, RunRequest};
use crate::errors::SandboxError;

pub(crate) async fn run(
    docker: &Docker,
    request: RunRequest<'_>,
) -> Result<RunOutcome, SandboxError> {
    let started = Instant::now();
    let limits = &request.limits;
    let with_stdin = request.stdin.is_some();
    let memory_bytes =
        i64::try_from(limits.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    let host_config = HostConfig {
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
    };
    // The spec's args are appended to the image's command (its ENTRYPOINT stays in
    // front), not put in place of its CMD as `docker run image args` would.
    let command = if request.args.is_empty() {
        None
    } else {
        let image_command = docker
            .inspect_image(request.image)
            .await
            .map_err(|source| SandboxError::InspectImage {
                image: request.image.to_owned(),
                source,
            })?
            .config
            .and_then(|config| config.cmd);
        Some(appended_command(image_command, request.args))
    };
    let config = ContainerCreateBody {
        image: Some(request.image.to_owned()),
        cmd: command,
        env: Some(
            request
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect(),
        ),
        labels: Some(
            request
                .labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        tty: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(with_stdin),
        open_stdin: Some(with_stdin),
        stdin_once: Some(with_stdin),
        host_config: Some(host_config),
        ..Default::default()
    };
    let created = docker
        .create_container(None, config)
        .await
        .map_err(|source| SandboxError::CreateContainer {
            image: request.image.to_owned(),
            source,
        })?;
    let guard = ContainerGuard::new(docker.clone(), created.id.clone());
    let result = run_created(docker, &created.id, &request, started).await;
    guard.remove().await;
    result
}

async fn run_created(
    docker: &Docker,
    id: &str,
    request: &RunRequest<'_>,
    started: Instant,
) -> Result<RunOutcome, SandboxError> {
    let engine_error = |source| SandboxError::Run {
        container: id.to_owned(),
        source,
    };
    let limits = &request.limits;
    // Attached before the start so not a byte of output is missed.
    let attach_options = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdout(true)
        .stderr(true)
        .stdin(request.stdin.is_some())
        .build();
    let attached = docker
        .attach_container(id, Some(attach_options))
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
    if let Err(error) = docker.start_container(id, None).await {
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
    let mut input = attached.input;
    let stdin = request.stdin;
    let limit = limits.output_limit_bytes;
    let stdout = &mut outcome.stdout;
    let stderr = &mut outcome.stderr;
    let feed = async move {
        if let Some(bytes) = stdin {
            // The program may exit or close its stdin without reading: a failed write
            // is its business, not an engine error.
            let _ = input.write_all(bytes).await;
            let _ = input.shutdown().await;
        }
        // Without stdin, the write half stays open until the end: closing it early
        // would make some engines close the whole attach stream.
        input
    };
    let read = async {
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    stdout.take(&message, limit);
                }
                Ok(LogOutput::StdErr { message }) => stderr.take(&message, limit),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(error) => {
                    tracing::debug!(%error, container = id, "the attach stream broke");
                    break;
                }
            }
        }
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
    let waited = tokio::time::timeout(limits.timeout, async {
        let (_input, (), exit) = tokio::join!(feed, read, wait);
        exit
    })
    .await;

    match waited {
        Ok(exit) => {
            outcome.exit_code = match exit.map_err(engine_error)? {
                Some(code) => Some(code),
                // The wait ended without a status: ask the container itself.
                None => inspect_exit_code(docker, id).await.map_err(engine_error)?,
            };
        }
        Err(_elapsed) => {
            outcome.timed_out = true;
            let options = KillContainerOptionsBuilder::default()
                .signal("KILL")
                .build();
            if let Err(error) = docker.kill_container(id, Some(options)).await {
                tracing::debug!(%error, container = id, "kill after the timeout failed");
            }
        }
    }
    let inspected = docker
        .inspect_container(id, None)
        .await
        .map_err(engine_error)?;
    outcome.oom_killed = inspected
        .state
        .and_then(|state| state.oom_killed)
        .unwrap_or(false);
    outcome.duration = started.elapsed();
    Ok(outcome)
}

async fn inspect_exit_code(
    docker: &Docker,
    id: &str,
) -> Result<Option<i64>, bollard::errors::Error> {
    let inspected = docker.inspect_container(id, None).await?;
    Ok(inspected.state.and_then(|state| state.exit_code))
}

impl Captured {
    /// Keeps up to `limit` bytes in all; counts everything.
    fn take(&mut self, data: &[u8], limit: usize) {
        self.total_bytes = self.total_bytes.saturating_add(data.len() as u64);
        let room = limit.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Removes the container when dropped, so a cancelled run (Ctrl-C drops the future)
/// leaves nothing behind; the normal paths call [`ContainerGuard::remove`] and wait
/// for the removal.
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    fn new(docker: Docker, id: String) -> ContainerGuard {
        ContainerGuard {
            docker,
            id: Some(id),
        }
    }

    async fn remove(mut self) {
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

    #[test]
    fn captured_keeps_the_limit_and_counts_the_rest() {
        let mut captured = Captured::default();
        captured.take(b"hello", 8);
        assert!(!captured.truncated);
        captured.take(b"world", 8);
        captured.take(b"again", 8);
        assert_eq!(captured.bytes, b"hellowor");
        assert_eq!(captured.total_bytes, 15);
        assert!(captured.truncated);
    }

    #[test]
    fn captured_exactly_at_the_limit_is_not_truncated() {
        let mut captured = Captured::default();
        captured.take(b"12345678", 8);
        assert!(!captured.truncated);
        captured.take(b"", 8);
        assert!(!captured.truncated);
    }

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
