//! A service's lifetime on the engine: started under the run limits and network,
//! polled until ready (HTTP, a log line or a TCP connect) or until it exits or the
//! deadline passes, probed, stopped (SIGTERM, the stop timeout, SIGKILL), its logs
//! kept capped, and removed on every path, cancellation included.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ContainerCreateResponse;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use regex::Regex;
use tokio::sync::watch;

use crate::deadline::{DRAIN_TIMEOUT, ENGINE_CALL_TIMEOUT, bounded};
use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::Captured;
use crate::probe::{ProbeFailure, ProbeLimits, ProbeOutcome, ProbeRequest, Prober};
use crate::request::RunLimits;
use crate::run::{ContainerGuard, Output, container_body, is_running};

/// Pause between two readiness attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The body a readiness `GET` may bring back; only its status counts.
const READY_BODY_LIMIT: usize = 4 * 1024;
/// The longest log line a readiness pattern is matched against; a longer one is
/// matched on its start.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// How the service shows it is ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// `GET path` answers with a 2xx.
    Http { path: String },
    /// A line the service writes (either stream) matches.
    Log(Regex),
    /// Something accepts a TCP connection on the port.
    Tcp,
}

pub struct ServiceRequest<'a> {
    pub image: &'a str,
    /// The only environment the container gets beyond its image's.
    pub env: &'a BTreeMap<String, String>,
    pub labels: &'a BTreeMap<String, String>,
    /// Memory, CPUs, pids, network and the log cap as for runs; `timeout` is not
    /// used: readiness, each probe and the stop have deadlines of their own.
    pub limits: RunLimits,
    /// Where it listens inside its network namespace.
    pub port: u16,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// The image of the helper that relays probes (busybox `nc`), e.g.
    /// [`crate::DEFAULT_PROBE_IMAGE`].
    pub probe_image: &'a str,
    pub probe_limits: ProbeLimits,
}

/// What readiness tried, for the feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub end: ReadyEnd,
    /// HTTP requests or TCP connects made (0 for a log pattern).
    pub attempts: u32,
    /// The last attempt's status when it was an HTTP answer that was not a 2xx.
    pub last_status: Option<u16>,
    /// The last attempt's failure (`cannot connect: …`).
    pub last_error: Option<String>,
    pub elapsed: Duration,
}

impl ReadinessReport {
    fn ended(end: ReadyEnd) -> ReadinessReport {
        ReadinessReport {
            end,
            attempts: 0,
            last_status: None,
            last_error: None,
            elapsed: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyEnd {
    Ready,
    /// Not ready within the ready timeout.
    TimedOut,
    /// The container exited (or was OOM-killed) before it was ready.
    Exited,
    /// The engine refused to start it.
    NotStarted,
}

/// How the service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopEnd {
    /// It had exited on its own before the stop.
    AlreadyExited,
    /// SIGTERM ended it within the stop timeout.
    Terminated,
    /// It outlived the stop timeout and was killed.
    Killed,
}

#[derive(Debug, Clone)]
pub struct ServiceOutcome {
    pub readiness: ReadinessReport,
    /// One per probe asked for, in order; empty when it never got ready.
    pub probes: Vec<ProbeOutcome>,
    /// What it wrote until it was stopped, each stream capped.
    pub stdout: Captured,
    pub stderr: Captured,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// `None` when it never started.
    pub stop: Option<StopEnd>,
    /// The engine's message when it refused to start the container.
    pub start_error: Option<String>,
    pub duration: Duration,
}

impl Sandbox {
    /// Starts the service, waits until it is ready, sends `probes` in order, stops it
    /// and removes it (and the probes' helper) on every path.
    pub async fn serve(
        &self,
        request: ServiceRequest<'_>,
        probes: &[ProbeRequest],
    ) -> Result<ServiceOutcome, SandboxError> {
        let started = Instant::now();
        let created = create(&self.docker, &request).await?;
        let guard = ContainerGuard::new(self.docker.clone(), created.id.clone());
        let result = serve_created(&self.docker, &created.id, &request, probes, started).await;
        guard.remove().await;
        result
    }
}

/// Creates the service's container with an init as PID 1, which passes SIGTERM on: a
/// program that is PID 1 itself ignores it unless it installed a handler, and every
/// stop would wait out the stop timeout. An engine without an init binary (Podman
/// without catatonit) refuses that; then the container is made without one.
async fn create(
    docker: &Docker,
    request: &ServiceRequest<'_>,
) -> Result<ContainerCreateResponse, SandboxError> {
    let config = container_body(request.image, request.env, request.labels, &request.limits);
    let mut with_init = config.clone();
    if let Some(host) = with_init.host_config.as_mut() {
        host.init = Some(true);
    }
    let created = match bounded(docker.create_container(None, with_init)).await {
        Err(bollard::errors::Error::DockerResponseServerError { message, .. })
            if message.contains("init binary") =>
        {
            tracing::debug!(%message, "the engine has no init; the service runs without one");
            bounded(docker.create_container(None, config)).await
        }
        other => other,
    };
    created.map_err(|source| SandboxError::CreateContainer {
        image: request.image.to_owned(),
        source,
    })
}

async fn serve_created(
    docker: &Docker,
    id: &str,
    request: &ServiceRequest<'_>,
    probes: &[ProbeRequest],
    started: Instant,
) -> Result<ServiceOutcome, SandboxError> {
    let attach_options = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdout(true)
        .stderr(true)
        .build();
    let attached = bounded(docker.attach_container(id, Some(attach_options)))
        .await
        .map_err(|source| engine_error(id, source))?;
    let pattern = match &request.readiness {
        Readiness::Log(pattern) => Some(pattern.clone()),
        _ => None,
    };
    let (logs, reader, log_ready) =
        Logs::spawn(attached.output, request.limits.output_limit_bytes, pattern);
    if let Err(error) = bounded(docker.start_container(id, None)).await {
        let bollard::errors::Error::DockerResponseServerError { message, .. } = error else {
            return Err(engine_error(id, error));
        };
        let readiness = ReadinessReport::ended(ReadyEnd::NotStarted);
        let mut outcome = finished(&logs, readiness, Vec::new(), started);
        outcome.start_error = Some(message.trim().to_owned());
        return Ok(outcome);
    }
    let prober = Prober::start(
        docker,
        id,
        request.port,
        request.probe_image,
        request.labels,
    );
    let Some(prober) = prober.await? else {
        // Gone before the helper could join it: it exited during readiness.
        reader.drain().await;
        let readiness = ReadinessReport {
            elapsed: started.elapsed(),
            ..ReadinessReport::ended(ReadyEnd::Exited)
        };
        let outcome = finished(&logs, readiness, Vec::new(), started);
        return exited(docker, id, outcome, StopEnd::AlreadyExited).await;
    };
    let served = ready_and_probed(docker, id, &prober, request, probes, log_ready).await;
    let (readiness, outcomes) = match served {
        Ok(served) => served,
        Err(error) => {
            prober.remove().await;
            return Err(error);
        }
    };
    // The helper's removal and the service's stop are independent engine work.
    let stopping = async {
        if readiness.end == ReadyEnd::Exited {
            StopEnd::AlreadyExited
        } else {
            stop(docker, id, request.stop_timeout).await
        }
    };
    let ((), stop) = tokio::join!(prober.remove(), stopping);
    reader.drain().await;
    exited(
        docker,
        id,
        finished(&logs, readiness, outcomes, started),
        stop,
    )
    .await
}

/// Readiness, then the probes in order once it is ready.
async fn ready_and_probed(
    docker: &Docker,
    id: &str,
    prober: &Prober,
    request: &ServiceRequest<'_>,
    probes: &[ProbeRequest],
    log_ready: watch::Receiver<bool>,
) -> Result<(ReadinessReport, Vec<ProbeOutcome>), SandboxError> {
    let readiness = wait_ready(docker, id, prober, request, log_ready).await?;
    let mut outcomes = Vec::new();
    if readiness.end == ReadyEnd::Ready {
        for probe in probes {
            outcomes.push(prober.probe(probe, request.probe_limits).await?);
        }
    }
    Ok((readiness, outcomes))
}

fn engine_error(id: &str, source: bollard::errors::Error) -> SandboxError {
    SandboxError::Run {
        container: id.to_owned(),
        source,
    }
}

/// `outcome` with how the service ended, as the engine recorded its exit.
async fn exited(
    docker: &Docker,
    id: &str,
    mut outcome: ServiceOutcome,
    stop: StopEnd,
) -> Result<ServiceOutcome, SandboxError> {
    let state = bounded(docker.inspect_container(id, None))
        .await
        .map_err(|source| engine_error(id, source))?
        .state;
    outcome.stop = Some(stop);
    outcome.exit_code = state.as_ref().and_then(|state| state.exit_code);
    outcome.oom_killed = state.and_then(|state| state.oom_killed).unwrap_or(false);
    Ok(outcome)
}

fn finished(
    logs: &Arc<Mutex<Logs>>,
    readiness: ReadinessReport,
    probes: Vec<ProbeOutcome>,
    started: Instant,
) -> ServiceOutcome {
    let mut logs = logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ServiceOutcome {
        readiness,
        probes,
        stdout: std::mem::take(&mut logs.stdout),
        stderr: std::mem::take(&mut logs.stderr),
        exit_code: None,
        oom_killed: false,
        stop: None,
        start_error: None,
        duration: started.elapsed(),
    }
}

/// Polls until the service is ready, exits, or the ready timeout passes.
async fn wait_ready(
    docker: &Docker,
    id: &str,
    prober: &Prober,
    request: &ServiceRequest<'_>,
    mut log_ready: watch::Receiver<bool>,
) -> Result<ReadinessReport, SandboxError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + request.ready_timeout;
    let mut report = ReadinessReport::ended(ReadyEnd::TimedOut);
    let exited = async {
        let mut waiting = docker.wait_container(id, None::<WaitContainerOptions>);
        // Any answer, an exit code or an error, means it is no longer running.
        let _ = waiting.next().await;
    };
    let polled = async {
        match &request.readiness {
            Readiness::Log(_) => {
                // The sender lives as long as the logs: no error to expect, and when
                // the container exits first, the exit ends the wait.
                let _ = log_ready.wait_for(|ready| *ready).await;
                Ok(())
            }
            readiness => poll(prober, readiness, request, deadline, &mut report).await,
        }
    };
    let end = tokio::select! {
        polled = polled => { polled?; ReadyEnd::Ready }
        () = exited => ReadyEnd::Exited,
        () = tokio::time::sleep_until(deadline) => ReadyEnd::TimedOut,
    };
    report.end = end;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// HTTP or TCP attempts until one succeeds; each is bounded by the deadline.
async fn poll(
    prober: &Prober,
    readiness: &Readiness,
    request: &ServiceRequest<'_>,
    deadline: tokio::time::Instant,
    report: &mut ReadinessReport,
) -> Result<(), SandboxError> {
    loop {
        report.attempts += 1;
        let ready = match readiness {
            Readiness::Http { path } => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let cut_short = left < request.probe_limits.timeout;
                let limits = ProbeLimits {
                    timeout: request.probe_limits.timeout.min(left),
                    body_limit_bytes: READY_BODY_LIMIT,
                };
                let outcome = prober.probe(&ProbeRequest::get(path), limits).await?;
                match outcome.response {
                    Ok(response) if (200..300).contains(&response.status) => true,
                    Ok(response) => {
                        report.last_status = Some(response.status);
                        report.last_error = None;
                        false
                    }
                    // An attempt that the ready timeout cut short says less than the
                    // one before it (a refused connection, say): that one is kept.
                    Err(ProbeFailure::TimedOut)
                        if cut_short
                            && (report.last_error.is_some() || report.last_status.is_some()) =>
                    {
                        false
                    }
                    Err(failure) => {
                        report.last_error = Some(failure.to_string());
                        false
                    }
                }
            }
            Readiness::Tcp => {
                let accepts = prober.accepts().await?;
                if !accepts {
                    report.last_error = Some(format!(
                        "nothing accepts connections on port {}",
                        request.port
                    ));
                }
                accepts
            }
            Readiness::Log(_) => unreachable!("a log pattern is waited for, not polled"),
        };
        if ready {
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// SIGTERM, then SIGKILL after `timeout`, as the engine's stop does.
async fn stop(docker: &Docker, id: &str, timeout: Duration) -> StopEnd {
    // It may have exited during the probes.
    if is_running(docker, id).await == Some(false) {
        return StopEnd::AlreadyExited;
    }
    let seconds = i32::try_from(timeout.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX);
    let options = StopContainerOptionsBuilder::default().t(seconds).build();
    let started = Instant::now();
    let stopped = tokio::time::timeout(
        timeout + ENGINE_CALL_TIMEOUT,
        docker.stop_container(id, Some(options)),
    )
    .await;
    match stopped {
        Ok(Ok(())) => {}
        // The removal behind it kills whatever is left.
        Ok(Err(error)) => tracing::debug!(%error, container = id, "the stop failed"),
        Err(_elapsed) => tracing::warn!(container = id, "the stop did not answer in time"),
    }
    if started.elapsed() >= timeout {
        StopEnd::Killed
    } else {
        StopEnd::Terminated
    }
}

/// The service's output as it arrives: both streams capped, and the readiness
/// pattern matched line by line however much is written.
struct Logs {
    stdout: Captured,
    stderr: Captured,
    limit: usize,
    matcher: Option<LineMatcher>,
    /// Set once a line matched; it lives as long as the logs, so a waiter sees the
    /// match however late it looks.
    matched: watch::Sender<bool>,
}

struct LineMatcher {
    pattern: Regex,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
}

/// The task that reads the logs; aborted when dropped.
struct LogReader(tokio::task::JoinHandle<()>);

impl Logs {
    fn spawn(
        mut output: Output,
        limit: usize,
        pattern: Option<Regex>,
    ) -> (Arc<Mutex<Logs>>, LogReader, watch::Receiver<bool>) {
        let (matched, ready) = watch::channel(false);
        let logs = Arc::new(Mutex::new(Logs {
            stdout: Captured::default(),
            stderr: Captured::default(),
            limit,
            matcher: pattern.map(|pattern| LineMatcher {
                pattern,
                stdout_line: Vec::new(),
                stderr_line: Vec::new(),
            }),
            matched,
        }));
        let shared = Arc::clone(&logs);
        let task = tokio::spawn(async move {
            while let Some(item) = output.next().await {
                let mut logs = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        logs.take(&message, false);
                    }
                    Ok(LogOutput::StdErr { message }) => logs.take(&message, true),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(error) => {
                        tracing::debug!(%error, "the service's attach stream broke");
                        break;
                    }
                }
            }
        });
        (logs, LogReader(task), ready)
    }

    fn take(&mut self, data: &[u8], stderr: bool) {
        let limit = self.limit;
        if stderr {
            self.stderr.take(data, limit);
        } else {
            self.stdout.take(data, limit);
        }
        let Some(matcher) = self.matcher.as_mut() else {
            return;
        };
        if matcher.seen(data, stderr) {
            self.matched.send_replace(true);
            self.matcher = None;
        }
    }
}

impl LineMatcher {
    /// Whether a line completed by `data`, or the line still open after it, matches.
    fn seen(&mut self, data: &[u8], stderr: bool) -> bool {
        let line = if stderr {
            &mut self.stderr_line
        } else {
            &mut self.stdout_line
        };
        for piece in data.split_inclusive(|byte| *byte == b'\n') {
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            let ends_line = piece.ends_with(b"\n");
            // A full line that goes on was matched already: nothing new to see.
            if room == 0 && !ends_line {
                continue;
            }
            line.extend_from_slice(&piece[..piece.len().min(room)]);
            let text = String::from_utf8_lossy(line);
            if self.pattern.is_match(text.trim_end_matches(['\n', '\r'])) {
                return true;
            }
            if ends_line {
                line.clear();
            }
        }
        false
    }
}

impl LogReader {
    /// Waits for the logs to end (the container gone), at most [`DRAIN_TIMEOUT`].
    async fn drain(mut self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut self.0)
            .await
            .is_err()
        {
            tracing::warn!("the service's logs did not end after the stop; dropping them");
        }
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pattern: &str) -> LineMatcher {
        LineMatcher {
            pattern: Regex::new(pattern).expect("pattern"),
            stdout_line: Vec::new(),
            stderr_line: Vec::new(),
        }
    }

    #[test]
    fn a_line_split_over_chunks_matches_once_whole() {
        let mut matcher = matcher("^listening on 8080$");
        assert!(!matcher.seen(b"starting\nlisten", false));
        assert!(matcher.seen(b"ing on 8080\n", false));
    }

    #[test]
    fn the_streams_keep_lines_apart() {
        let mut matcher = matcher("^ready now$");
        assert!(!matcher.seen(b"ready ", false));
        assert!(!matcher.seen(b"now\n", true));
        assert!(matcher.seen(b"now", false));
    }

    #[test]
    fn an_endless_line_stays_bounded() {
        let mut matcher = matcher("never");
        for _ in 0..100 {
            assert!(!matcher.seen(&[b'x'; 8192], false));
        }
        assert!(matcher.stdout_line.len() <= MAX_LINE_BYTES);
        assert!(matcher.seen(b"\nnever", false));
    }
}
