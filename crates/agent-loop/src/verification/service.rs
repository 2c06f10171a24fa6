//! The image as a service: started once per iteration, ready or not (group
//! `service`), its probes' answers against what each expects (groups `probe:<name>`),
//! and the top-level checks over the logs it wrote until it was stopped (group
//! `service`). The feedback shows what readiness tried and the tail of the logs, and
//! per failed probe the request, the response's status, headers and a bounded part
//! of its body.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agent_sandbox::{
    EnginePort, HttpResponse, ProbeLimits, ProbeOutcome, ProbeRequest,
    Readiness as EngineReadiness, ReadyEnd, RunOutcome, SandboxError, ServiceOutcome,
    ServiceRequest, StopEnd,
};
use agent_spec::{
    CheckResult, Observed, Probe, ProbeFacts, ProbeResponse, Readiness, Service, excerpt,
};

use crate::job::{Job, run_limits};
use crate::report::Outcome;
use crate::verification::{Evidence, Facts, Failure, Kind, failed_list, first_failed};

/// The group of readiness and of the checks over the logs.
pub(crate) const GROUP: &str = "service";
/// The most one probe may take: connect, request, the whole response.
const PROBE_TIMEOUT_SECS: u64 = 10;
/// Bytes of each log stream shown in the feedback.
const LOG_TAIL_BYTES: usize = 2048;
/// Bytes of a response body shown in the feedback.
const BODY_SHOWN_BYTES: usize = 1024;
/// Response headers shown per failed probe.
const HEADERS_SHOWN: usize = 12;

/// Starts the service of `image`, probes it and stops it; `started` is when the spec's
/// run started (the ready timeout and each probe are cut to its wall-clock budget).
pub(crate) async fn serve<E: EnginePort>(
    job: &Job,
    service: &Service,
    engine: &E,
    image: &str,
    labels: &std::collections::BTreeMap<String, String>,
    started: Instant,
) -> Result<ServiceOutcome, SandboxError> {
    let spec = &job.spec;
    let readiness = match &service.readiness {
        Readiness::Http(path) => EngineReadiness::Http { path: path.clone() },
        Readiness::Log(regex) => EngineReadiness::Log(regex.clone()),
        Readiness::Tcp => EngineReadiness::Tcp,
    };
    let limits = run_limits(&job.limits, Duration::ZERO);
    let probe_limits = ProbeLimits {
        timeout: job.timeout(PROBE_TIMEOUT_SECS, started),
        body_limit_bytes: limits.output_limit_bytes,
    };
    let probes: Vec<ProbeRequest> = spec.probes.iter().map(request).collect();
    engine
        .serve(
            ServiceRequest {
                image,
                env: &spec.run.env,
                labels,
                limits,
                port: service.port,
                readiness,
                ready_timeout: job.timeout(service.ready_timeout_secs, started),
                stop_timeout: Duration::from_secs(service.stop_timeout_secs),
                probe_image: &job.settings.docker.probe_image,
                probe_limits,
            },
            &probes,
        )
        .await
}

fn request(probe: &Probe) -> ProbeRequest {
    ProbeRequest {
        method: probe.method.clone(),
        path: probe.path.clone(),
        headers: probe.headers.clone(),
        body: probe.body.clone().unwrap_or_default().into_bytes(),
    }
}

pub(crate) struct ServiceKind<'a>(pub &'a Service);

impl Kind for ServiceKind<'_> {
    fn judge(&self, job: &Job, facts: &Facts) -> Evidence {
        let Some(outcome) = &facts.service else {
            return Evidence {
                results: Vec::new(),
                failure: None,
            };
        };
        let stdout = String::from_utf8_lossy(&outcome.stdout.bytes);
        let stderr = String::from_utf8_lossy(&outcome.stderr.bytes);
        let ready = outcome.readiness.end == ReadyEnd::Ready;
        let mut results = vec![CheckResult::new(
            GROUP,
            "ready".to_owned(),
            ready,
            readiness_detail(job, self.0, outcome),
        )];
        let probes = probe_results(&job.spec.probes, outcome);
        results.extend(probes.iter().flat_map(|(_, checks)| checks.iter().cloned()));
        let observed = Observed {
            exit_code: outcome.exit_code,
            stdout: &stdout,
            stderr: &stderr,
            stdout_truncated: outcome.stdout.truncated,
            stderr_truncated: outcome.stderr.truncated,
        };
        let log_checks: Vec<CheckResult> = job
            .spec
            .checks
            .iter()
            .map(|check| check.evaluate(GROUP, &observed))
            .collect();
        results.extend(log_checks.iter().cloned());
        if results.iter().all(|result| result.passed) {
            return Evidence {
                results,
                failure: None,
            };
        }
        let mut feedback = format!(
            "The image runs as a service listening on port {}.\n",
            self.0.port
        );
        if !ready {
            let _ = writeln!(feedback, "It never became ready: {}", results[0].detail);
        }
        for (outcome, checks) in &probes {
            if checks.iter().any(|check| !check.passed) {
                probe_feedback(&mut feedback, checks, *outcome);
            }
        }
        if log_checks.iter().any(|check| !check.passed) {
            let _ = writeln!(feedback, "\nChecks over what the service wrote:");
            failed_list(&mut feedback, &log_checks);
        }
        logs_feedback(&mut feedback, outcome, &stdout, &stderr);
        Evidence {
            failure: Some(Failure {
                outcome: Outcome::ChecksFailed,
                detail: first_failed(&results),
                feedback,
            }),
            results,
        }
    }

    /// The service as the model must know it, for the task prompt.
    fn describe(&self, job: &Job) -> String {
        let spec = &job.spec;
        let Some(service) = &spec.service else {
            return String::new();
        };
        let ready = match &service.readiness {
            Readiness::Http(path) => format!("`GET {path}` answers with a 2xx status"),
            Readiness::Log(regex) => format!(
                "it writes a line (stdout or stderr) matching the regex `{}`",
                regex.as_str()
            ),
            Readiness::Tcp => format!("it accepts TCP connections on port {}", service.port),
        };
        let mut text = format!(
            "\nThe image is a long-running service: its container is started once, must keep running and listen on port {} (on all interfaces, 0.0.0.0) inside the container. It is ready when {ready}, within {} s of its start. It has no network access at run time (no outbound traffic, no published ports): the requests come from inside its own network namespace. Afterwards it is stopped with SIGTERM and killed {} s later.\n",
            service.port, service.ready_timeout_secs, service.stop_timeout_secs
        );
        if !spec.probes.is_empty() {
            text.push_str("Once it is ready, these HTTP/1.1 requests are made in order:\n");
            for probe in &spec.probes {
                let _ = writeln!(text, "- {}", describe_probe(probe));
            }
        }
        if !spec.checks.is_empty() {
            text.push_str("What the service writes until it is stopped must meet:\n");
            for check in &spec.checks {
                let _ = writeln!(text, "- {}", crate::text::describe_matcher(&check.matcher));
            }
        }
        text
    }
}

/// What readiness found, in words: how long it took, or what it tried and why the
/// service never got there.
fn readiness_detail(job: &Job, service: &Service, outcome: &ServiceOutcome) -> String {
    let report = &outcome.readiness;
    let secs = report.elapsed.as_secs_f64();
    let how = match &service.readiness {
        Readiness::Http(path) => format!("GET {path} until a 2xx"),
        Readiness::Log(regex) => format!("a log line matching /{}/", regex.as_str()),
        Readiness::Tcp => format!("a TCP connection to port {}", service.port),
    };
    let tried = match (report.attempts, report.last_status, &report.last_error) {
        (0, _, _) => String::new(),
        (attempts, Some(status), _) => format!("; {attempts} attempts, the last answered {status}"),
        (attempts, None, Some(error)) => format!("; {attempts} attempts, the last: {error}"),
        (attempts, None, None) => format!("; {attempts} attempts"),
    };
    match report.end {
        ReadyEnd::Ready => format!("ready after {secs:.1} s ({how}{tried})"),
        ReadyEnd::TimedOut => format!(
            "not ready within {} s, waiting for {how}{tried}",
            service.ready_timeout_secs
        ),
        ReadyEnd::Exited if outcome.oom_killed => format!(
            "killed for running out of memory (the limit is {} MB) after {secs:.1} s, before it was ready",
            job.limits.memory_mb
        ),
        ReadyEnd::Exited => format!(
            "exited with code {} after {secs:.1} s, before it was ready (waiting for {how})",
            outcome
                .exit_code
                .map_or("unknown".to_owned(), |code| code.to_string())
        ),
        ReadyEnd::NotStarted => format!(
            "the container could not start: {}",
            outcome
                .start_error
                .as_deref()
                .unwrap_or("the engine refused")
        ),
    }
}

type ProbeJudged<'a> = (Option<&'a ProbeOutcome>, Vec<CheckResult>);

/// Each probe's results, with what came back; a probe not sent (the service never got
/// ready) fails, saying so.
fn probe_results<'a>(probes: &'a [Probe], outcome: &'a ServiceOutcome) -> Vec<ProbeJudged<'a>> {
    probes
        .iter()
        .enumerate()
        .map(|(index, probe)| {
            let sent = outcome.probes.get(index);
            let failure;
            let response = match sent.map(|sent| &sent.response) {
                Some(Ok(response)) => Ok(ProbeResponse {
                    status: response.status,
                    body: &response.body.bytes,
                    body_truncated: response.body.truncated,
                }),
                Some(Err(reason)) => {
                    failure = reason.to_string();
                    Err(failure.as_str())
                }
                None => Err("not sent: the service was not ready"),
            };
            (sent, probe.judge(&ProbeFacts { response }))
        })
        .collect()
}

/// A failed probe: its failed checks (each names the request and what was expected),
/// then what came back.
fn probe_feedback(out: &mut String, checks: &[CheckResult], sent: Option<&ProbeOutcome>) {
    let group = checks.first().map_or("probe", |check| check.group.as_str());
    let _ = writeln!(out, "\nProbe `{}`:", group.trim_start_matches("probe:"));
    failed_list(out, checks);
    if let Some(ProbeOutcome {
        response: Ok(response),
        duration,
    }) = sent
    {
        response_feedback(out, response, *duration);
    }
}

fn response_feedback(out: &mut String, response: &HttpResponse, duration: Duration) {
    let _ = writeln!(
        out,
        "Response: status {} after {} ms",
        response.status,
        duration.as_millis()
    );
    for (name, value) in response.headers.iter().take(HEADERS_SHOWN) {
        let _ = writeln!(out, "{name}: {}", excerpt(value, 200));
    }
    let body = String::from_utf8_lossy(&response.body.bytes);
    if body.is_empty() {
        let _ = writeln!(out, "Body: (empty)");
    } else {
        let cut = if response.body.truncated {
            " (cut at the probe's limit)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "Body{cut}:\n```\n{}\n```",
            excerpt(&body, BODY_SHOWN_BYTES).trim_end()
        );
    }
}

fn logs_feedback(out: &mut String, outcome: &ServiceOutcome, stdout: &str, stderr: &str) {
    let stop = match outcome.stop {
        Some(StopEnd::AlreadyExited) => "it had exited on its own",
        Some(StopEnd::Terminated) => "SIGTERM stopped it",
        Some(StopEnd::Killed) => "it ignored SIGTERM and was killed after the stop timeout",
        None => "it never started",
    };
    let _ = writeln!(out, "\nWhen it was stopped, {stop}.");
    for (title, text) in [("stderr", stderr), ("stdout", stdout)] {
        if text.trim().is_empty() {
            let _ = writeln!(out, "Its {title}: (empty)");
        } else {
            let _ = writeln!(
                out,
                "The end of its {title}:\n```\n{}\n```",
                tail(text, LOG_TAIL_BYTES).trim_end()
            );
        }
    }
}

/// The last `limit` bytes of `text`, from a character boundary.
fn tail(text: &str, limit: usize) -> &str {
    &text[agent_spec::ceil_boundary(text, text.len().saturating_sub(limit))..]
}

fn describe_probe(probe: &Probe) -> String {
    let mut text = format!("`{}` `{} {}`", probe.name, probe.method, probe.path);
    for (name, value) in &probe.headers {
        let _ = write!(text, ", header `{name}: {value}`");
    }
    if let Some(body) = &probe.body {
        let _ = write!(
            text,
            ", body {}",
            serde_json::to_string(&excerpt(body, 1024)).unwrap_or_default()
        );
    }
    let status = probe.status.map_or("any 2xx status".to_owned(), |status| {
        format!("status {status}")
    });
    let _ = write!(text, ": expects {status}");
    if let Some(expect) = &probe.expect {
        let _ = write!(text, " and {}", expect.describe());
    }
    text
}

/// A run that stands for the service in the iteration's record: its logs and how it
/// ended, so `final/` and the report keep what it wrote.
pub(crate) fn as_run(outcome: &ServiceOutcome) -> RunOutcome {
    RunOutcome {
        exit_code: outcome.exit_code,
        stdout: outcome.stdout.clone(),
        stderr: outcome.stderr.clone(),
        timed_out: false,
        oom_killed: outcome.oom_killed,
        start_error: outcome.start_error.clone(),
        duration: outcome.duration,
    }
}
