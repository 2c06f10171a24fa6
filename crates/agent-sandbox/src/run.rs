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
use crate::request::{RunAccess, RunLimits, RunNetwork, RunRequest};

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

/// The command sent to the engine, as `docker run [--entrypoint E] IMAGE [COMMAND] [ARGS]`
/// would send it: an explicit command with the args after it, exactly as written; no
/// command at all when there are no args (the engine then applies the image's CMD, or
/// none under an entrypoint override, as it always does). Only where args are appended
/// to the image's own CMD does this read the image: that is the one thing `docker run`
/// cannot say, since its args replace the CMD.
async fn command(
    docker: &Docker,
    request: &RunRequest<'_>,
) -> Result<Option<Vec<String>>, SandboxError> {
    if let Some(command) = request.command {
        return Ok(Some([command, request.args].concat()));
    }
    if request.args.is_empty() {
        return Ok(None);
    }
    if request.entrypoint.is_some() {
        // An entrypoint override clears the image's CMD, as the engine's own merge does.
        return Ok(Some(request.args.to_vec()));
    }
    let image_command = bounded(docker.inspect_image(request.image))
        .await
        .map_err(|source| SandboxError::InspectImage {
            image: request.image.to_owned(),
            source,
        })?
        .config
        .and_then(|config| config.cmd);
    Ok(Some(appended_to_image_command(image_command, request.args)))
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
        auto_remove: Some(false),
        // The output is read through the attach stream; the engine's own log of it
        // would only fill its disk and slow a chatty program down to the log
        // driver's pace.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        ..access_config(&limits.access)
    }
}

/// Capabilities, privilege escalation, `--privileged` and host mounts. An exact
/// capability set is every capability dropped and those added back, which is what
/// the engine's `Capabilities` field (that bollard leaves out) does.
fn access_config(access: &RunAccess) -> HostConfig {
    let (cap_drop, cap_add) = match (&access.capabilities, access.engine_defaults) {
        (Some(capabilities), _) => (Some(vec!["ALL".to_owned()]), Some(capabilities.clone())),
        (None, true) => (None, None),
        (None, false) => (Some(vec!["ALL".to_owned()]), None),
    };
    HostConfig {
        cap_drop,
        cap_add,
        security_opt: (!access.engine_defaults).then(|| vec!["no-new-privileges".to_owned()]),
        privileged: access.privileged.then_some(true),
        binds: (!access.binds.is_empty()).then(|| access.binds.clone()),
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

/// Whether the container `id` is running, as the engine's inspect says; `None` when
/// the engine does not say.
pub(crate) async fn is_running(docker: &Docker, id: &str) -> Option<bool> {
    bounded(docker.inspect_container(id, None))
        .await
        .ok()?
        .state?
        .running
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

/// The image's CMD with `args` (never empty here) after it. A shell-form CMD
/// (`/bin/sh -c SCRIPT`, as the builder writes `CMD python3 main.py`) gets `"$@"` after
/// its script's last word, with the args as the shell's positional parameters, so
/// `CMD python3 main.py` with `--fast` runs `python3 main.py --fast`, each arg one word
/// whatever it holds. The script's trailing separators (white space, newlines, `;`) go
/// first: left in, they would make `"$@"` a command of its own.
fn appended_to_image_command(image_command: Option<Vec<String>>, args: &[String]) -> Vec<String> {
    let mut command = image_command.unwrap_or_default();
    if let [shell, flag, script] = command.as_mut_slice()
        && shell.ends_with("sh")
        && flag == "-c"
    {
        let kept = script.trim_end_matches(|c: char| c.is_whitespace() || c == ';');
        *script = format!("{kept} \"$@\"");
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
    fn access_is_none_by_default_and_docker_runs_own_when_asked() {
        let limits = RunLimits {
            memory_mb: 64,
            cpus: 1.0,
            pids: 16,
            network: RunNetwork::None,
            timeout: std::time::Duration::ZERO,
            output_limit_bytes: 0,
            access: RunAccess::default(),
        };
        let none = host_config(&limits);
        assert_eq!(none.cap_drop, Some(strings(&["ALL"])));
        assert_eq!(none.cap_add, None);
        assert_eq!(none.security_opt, Some(strings(&["no-new-privileges"])));
        assert_eq!((none.privileged, none.binds), (None, None));
        let engine = host_config(&RunLimits {
            access: RunAccess {
                engine_defaults: true,
                ..RunAccess::default()
            },
            ..limits.clone()
        });
        assert_eq!((engine.cap_drop, engine.security_opt), (None, None));
        assert_eq!(engine.memory, none.memory, "the limits hold either way");
        let exact = host_config(&RunLimits {
            access: RunAccess {
                capabilities: Some(strings(&["CAP_CHOWN"])),
                privileged: true,
                binds: strings(&["/etc:/host-etc:ro"]),
                ..RunAccess::default()
            },
            ..limits
        });
        assert_eq!(exact.cap_drop, Some(strings(&["ALL"])));
        assert_eq!(exact.cap_add, Some(strings(&["CAP_CHOWN"])));
        assert_eq!(exact.privileged, Some(true));
        assert_eq!(exact.binds, Some(strings(&["/etc:/host-etc:ro"])));
    }

    #[test]
    fn args_are_appended_to_the_image_command() {
        let args = strings(&["--fast", "two words"]);
        assert_eq!(
            appended_to_image_command(Some(strings(&["python3", "main.py"])), &args),
            strings(&["python3", "main.py", "--fast", "two words"])
        );
        assert_eq!(appended_to_image_command(None, &args), args);
        assert_eq!(
            appended_to_image_command(Some(strings(&["/bin/sh", "-c", "python3 main.py"])), &args),
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

    /// A script ending in a newline or `;` once ran `"$@"` as a command of its own,
    /// whose status 0 hid the script's failure.
    #[test]
    fn a_shell_form_script_keeps_its_last_command_when_args_are_appended() {
        let args = strings(&["x"]);
        for script in ["false\n", "false;", "false ; \n\t"] {
            let command =
                appended_to_image_command(Some(strings(&["/bin/sh", "-c", script])), &args);
            assert_eq!(command[2], "false \"$@\"", "{script:?}");
        }
    }
}
