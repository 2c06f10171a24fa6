//! Probes of a service through the Engine API alone: a helper container joins the
//! service's network namespace, and each connection is one `exec` of busybox `nc`
//! in it whose attach stream relays the bytes. HTTP/1.1 is spoken from here over that
//! stream, so a probe needs no published port, no network and nothing in the
//! service's image, and works on unix, tcp and ssh engines alike.
//!
//! One helper per service and one exec per connection: an exec costs a fraction of a
//! container's create, start and removal (`scripts/bench service` measures both).

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfigLogConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::cleanup::is_status;
use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::outcome::Captured;
use crate::request::{RunAccess, RunLimits, RunNetwork};
use crate::run::{ContainerGuard, Output, host_config, is_running};

/// The image the helper runs when the caller names none: it needs busybox's `nc`,
/// `sleep` and `true`, which the busybox base image has.
pub const DEFAULT_PROBE_IMAGE: &str = "agent-base/busybox:1";

/// The helper's own limits: it only relays bytes.
const HELPER_MEMORY_MB: u64 = 64;
const HELPER_PIDS: i64 = 64;
/// What the relay's `nc` may print about a failed connection.
const RELAY_ERROR_LIMIT: usize = 4 * 1024;

/// One HTTP request to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    pub method: String,
    /// Path and query, as sent on the request line (`/add?a=2`).
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl ProbeRequest {
    /// `GET path` with no headers and no body.
    pub fn get(path: &str) -> ProbeRequest {
        ProbeRequest {
            method: "GET".to_owned(),
            path: path.to_owned(),
            headers: BTreeMap::new(),
            body: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// Up to the body limit; `total_bytes` counts what was read before the cut.
    pub body: Captured,
}

/// Why a probe has no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Nothing accepted the connection: what the relay said (`Connection refused`).
    Connect(String),
    /// No whole response within the probe's deadline.
    TimedOut,
    /// The bytes that came back were not an HTTP response (or the request could not
    /// be sent): the HTTP client's words.
    Protocol(String),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailure::Connect(reason) => write!(formatter, "cannot connect: {reason}"),
            ProbeFailure::TimedOut => write!(formatter, "no response within the deadline"),
            ProbeFailure::Protocol(reason) => write!(formatter, "not an HTTP response: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub response: Result<HttpResponse, ProbeFailure>,
    pub duration: Duration,
}

/// How probes are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeLimits {
    /// The most one probe (connect, request, the whole response) may take.
    pub timeout: Duration,
    /// Body bytes kept; the body ends there, marked as cut.
    pub body_limit_bytes: usize,
}

/// The helper container in the service's network namespace, removed on drop.
pub(crate) struct Prober {
    docker: Docker,
    guard: ContainerGuard,
    id: String,
    port: u16,
}

impl Prober {
    /// Creates and starts the helper from `image` in the network namespace of the
    /// running container `service`; `None` when `service` is no longer running.
    pub(crate) async fn start(
        docker: &Docker,
        service: &str,
        port: u16,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<Prober>, SandboxError> {
        let created = bounded(docker.create_container(None, helper_config(service, image, labels)))
            .await
            .map_err(|source| SandboxError::CreateContainer {
                image: image.to_owned(),
                source,
            })?;
        let guard = ContainerGuard::new(docker.clone(), created.id.clone());
        match bounded(docker.start_container(&created.id, None)).await {
            Ok(()) => Ok(Some(Prober {
                docker: docker.clone(),
                guard,
                id: created.id,
                port,
            })),
            // The engine refuses to join the namespace of a container that exited: 409
            // when it saw so first, 500 when the service exited between the engine's
            // network check and the helper's spec; past a 409, the service's state decides.
            Err(error) => {
                guard.remove().await;
                if is_status(&error, 409) || is_running(docker, service).await == Some(false) {
                    Ok(None)
                } else {
                    Err(SandboxError::Run {
                        container: created.id,
                        source: error,
                    })
                }
            }
        }
    }

    pub(crate) async fn remove(self) {
        self.guard.remove().await;
    }

    /// Whether something accepts a TCP connection on the port: `nc` connects and
    /// hands the socket to `true`, which closes it at once.
    pub(crate) async fn accepts(&self) -> Result<bool, SandboxError> {
        let port = self.port.to_string();
        let (exec, mut relay) = self
            .relay(&["nc", "127.0.0.1", &port, "-e", "true"])
            .await?;
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut relay, &mut sink).await;
        let inspected = bounded(self.docker.inspect_exec(&exec))
            .await
            .map_err(|source| self.engine_error(source))?;
        Ok(inspected.exit_code == Some(0))
    }

    /// One HTTP/1.1 exchange over a fresh connection, bounded by `limits`.
    pub(crate) async fn probe(
        &self,
        request: &ProbeRequest,
        limits: ProbeLimits,
    ) -> Result<ProbeOutcome, SandboxError> {
        let started = Instant::now();
        let port = self.port.to_string();
        let response = match tokio::time::timeout(limits.timeout, async {
            let (_exec, relay) = self.relay(&["nc", "127.0.0.1", &port]).await?;
            Ok::<_, SandboxError>(exchange(relay, request, limits.body_limit_bytes).await)
        })
        .await
        {
            Ok(response) => response?,
            Err(_elapsed) => Err(ProbeFailure::TimedOut),
        };
        Ok(ProbeOutcome {
            response,
            duration: started.elapsed(),
        })
    }

    /// Starts `command` in the helper with its stdin and stdout as a byte stream.
    async fn relay(&self, command: &[&str]) -> Result<(String, Relay), SandboxError> {
        let config = ExecConfig {
            cmd: Some(command.iter().map(|part| (*part).to_owned()).collect()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = bounded(self.docker.create_exec(&self.id, config))
            .await
            .map_err(|source| self.engine_error(source))?
            .id;
        let options = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        match bounded(self.docker.start_exec(&exec, Some(options)))
            .await
            .map_err(|source| self.engine_error(source))?
        {
            StartExecResults::Attached { output, input } => Ok((
                exec,
                Relay {
                    output,
                    input,
                    pending: Bytes::new(),
                    errors: Captured::default(),
                },
            )),
            StartExecResults::Detached => Err(self.engine_error(
                bollard::errors::Error::DockerStreamError {
                    error: "the exec started detached".to_owned(),
                },
            )),
        }
    }

    fn engine_error(&self, source: bollard::errors::Error) -> SandboxError {
        SandboxError::Run {
            container: self.id.clone(),
            source,
        }
    }
}

fn helper_config(
    service: &str,
    image: &str,
    labels: &BTreeMap<String, String>,
) -> ContainerCreateBody {
    let limits = RunLimits {
        memory_mb: HELPER_MEMORY_MB,
        cpus: 1.0,
        pids: HELPER_PIDS,
        network: RunNetwork::None,
        timeout: Duration::ZERO,
        output_limit_bytes: 0,
        access: RunAccess::default(),
    };
    let mut host = host_config(&limits);
    host.network_mode = Some(format!("container:{service}"));
    // The relays' output goes down their exec streams; the helper itself says nothing.
    host.log_config = Some(HostConfigLogConfig {
        typ: Some("none".to_owned()),
        config: None,
    });
    ContainerCreateBody {
        image: Some(image.to_owned()),
        // An entrypoint of the probe image must not stand in front of the sleep.
        entrypoint: Some(vec!["sleep".to_owned()]),
        cmd: Some(vec!["2147483647".to_owned()]),
        labels: Some(labels.clone().into_iter().collect()),
        tty: Some(false),
        host_config: Some(host),
        ..Default::default()
    }
}

/// Sends `request` and reads the response, its body capped at `body_limit` bytes.
async fn exchange(
    relay: Relay,
    request: &ProbeRequest,
    body_limit: usize,
) -> Result<HttpResponse, ProbeFailure> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(relay))
            .await
            .map_err(|error| failure(&error))?;
    let http_request = http_request(request)?;
    let talk = async {
        let response = sender.send_request(http_request).await;
        let response = response.map_err(|error| failure(&error))?;
        read_response(response, body_limit).await
    };
    // The connection task must be polled until the body is read; when it ends first,
    // the response (or its error) still reaches `talk`.
    let drive = async {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "the probe's connection ended with an error");
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = talk => result,
        () = drive => unreachable!("the connection future is made to never finish"),
    }
}

/// The HTTP client's error, or, when the relay could not connect, what it said.
fn failure(error: &hyper::Error) -> ProbeFailure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io_error) = current.downcast_ref::<io::Error>()
            && io_error.kind() == io::ErrorKind::ConnectionRefused
        {
            return ProbeFailure::Connect(io_error.to_string());
        }
        cause = current.source();
    }
    ProbeFailure::Protocol(error.to_string())
}

fn http_request(request: &ProbeRequest) -> Result<http::Request<Full<Bytes>>, ProbeFailure> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(http::header::HOST, "localhost");
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|error| ProbeFailure::Protocol(format!("bad request: {error}")))
}

async fn read_response(
    response: http::Response<hyper::body::Incoming>,
    body_limit: usize,
) -> Result<HttpResponse, ProbeFailure> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut captured = Captured::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| failure(&error))?;
        if let Ok(data) = frame.into_data() {
            captured.take(&data, body_limit);
            // An endless body ends at the cap: the rest is never read.
            if captured.truncated {
                break;
            }
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body: captured,
    })
}

/// An exec's attach stream as one byte stream: reads give what the command wrote on
/// stdout, writes go to its stdin, and what it wrote on stderr is kept (capped).
struct Relay {
    output: Output,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    pending: Bytes,
    errors: Captured,
}

impl AsyncRead for Relay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let count = self.pending.len().min(buffer.remaining());
                buffer.put_slice(&self.pending.split_to(count));
                return Poll::Ready(Ok(()));
            }
            match ready!(self.output.as_mut().poll_next(context)) {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    self.pending = message;
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    self.errors.take(&message, RELAY_ERROR_LIMIT);
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None if self.errors.bytes.is_empty() => return Poll::Ready(Ok(())),
                // The relay could not connect: that is the error, not an empty answer.
                None => {
                    let said = String::from_utf8_lossy(&self.errors.bytes)
                        .trim()
                        .to_owned();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        said,
                    )));
                }
            }
        }
    }
}

impl AsyncWrite for Relay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.input.as_mut().poll_write(context, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_shutdown(context)
    }
}
