//! One bundle through the engine — build, run, check — the path shared by the loop
//! and `agent verify`. Each step hands its result to the next or ends the iteration
//! with an outcome and the evidence to feed back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use agent_sandbox::{BuildProgress, BuildRequest, BuildStatus, RunOutcome};
use agent_spec::{CheckResult, DEFAULT_CASE, Matcher, Observed, excerpt};

use crate::artifacts::write_file;
use crate::errors::LoopError;
use crate::events::Phase;
use crate::feedback;
use crate::iteration::{Halt, Iteration, end};
use crate::job::Job;
use crate::ports::EnginePort;
use crate::report::{Outcome, round_secs};

/// What a build and run that met every check leave for the steps after.
pub(crate) struct Checked {
    pub image_id: String,
    pub ran: RunOutcome,
    pub stdout: String,
    pub stderr: String,
}

/// The engine side of one iteration.
pub(crate) struct Trial<'a, E> {
    pub job: &'a Job,
    pub engine: &'a E,
    pub labels: &'a BTreeMap<String, String>,
    /// When the spec's run started: phase timeouts are cut to the wall-clock budget.
    pub started: Instant,
    /// The iteration's folder for the build log and the output; `None` keeps them
    /// in memory only.
    pub artifacts: Option<&'a Path>,
    pub phase: &'a (dyn Fn(Phase) + Send + Sync),
}

impl<E: EnginePort> Trial<'_, E> {
    /// Builds `files`, runs the image and checks what it did. When the engine is lost
    /// on the way, the same files go to another engine (no new model call).
    pub async fn attempt(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &mut Iteration,
    ) -> Result<Checked, Halt> {
        loop {
            let attempt = match self.build(files, iteration).await {
                Ok(image_id) => self.run_and_check(image_id, iteration).await,
                Err(halt) => Err(halt),
            };
            if let Err(Halt::Failed(LoopError::Engine(error))) = &attempt {
                if let Some(lost) = self.engine.lose_engine().await {
                    tracing::warn!(engine = %lost, "the engine was lost ({error}); building again on another");
                    iteration.record.retried_after_lost.push(lost);
                    continue;
                }
            }
            return attempt;
        }
    }

    async fn build(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &mut Iteration,
    ) -> Result<String, Halt> {
        let record = &mut iteration.record;
        // The Dockerfile as written, with no labels: a label step would be one more
        // committed step per build and make every later step unique to the run. The
        // build's images are kept under the spec's cache tags instead; the verified
        // image gets the labels once (see `seal`).
        let context = agent_sandbox::build_context(files)?;
        let cache_repository = self.job.cache_repository();
        let timeout = self
            .job
            .timeout(self.job.limits.build_timeout_secs, self.started);
        (self.phase)(Phase::Building { step: 0, total: 0 });
        let mut on_progress = |progress: BuildProgress| match progress {
            BuildProgress::Step { index, total, .. } => {
                (self.phase)(Phase::Building { step: index, total })
            }
        };
        let engine_started = Instant::now();
        let no_labels = BTreeMap::new();
        let request = BuildRequest {
            context: &context,
            labels: &no_labels,
            timeout,
            network: self.job.build_network(),
            cache_repository: Some(&cache_repository),
        };
        let built = self.engine.build(request, &mut on_progress).await;
        record.engine = self.engine.engine_host();
        let built = built?;
        record.context_digest = Some(context.digest);
        iteration.waited.engine += engine_started.elapsed();
        record.build_secs = Some(round_secs(built.duration));
        iteration.layers.extend(built.intermediate_images());
        self.keep("build.log", built.log.as_bytes())?;
        match &built.status {
            BuildStatus::Built { image_id } => {
                record.image_id = Some(image_id.clone());
                Ok(image_id.clone())
            }
            BuildStatus::Failed { error, .. } => end(
                Outcome::BuildFailed,
                format!("build failed: {}", first_line(error)),
                feedback::build(&built, timeout.as_secs(), &self.job.base_images()),
            ),
            BuildStatus::TimedOut => end(
                Outcome::BuildTimeout,
                format!("build did not finish within {} s", timeout.as_secs()),
                feedback::build(&built, timeout.as_secs(), &self.job.base_images()),
            ),
        }
    }

    pub async fn run_and_check(
        &self,
        image_id: String,
        iteration: &mut Iteration,
    ) -> Result<Checked, Halt> {
        let record = &mut iteration.record;
        (self.phase)(Phase::Running);
        let timeout = self
            .job
            .timeout(self.job.limits.run_timeout_secs, self.started);
        let engine_started = Instant::now();
        let ran = self
            .engine
            .run(self.job.run_request(&image_id, self.labels, timeout))
            .await?;
        record.engine = self.engine.engine_host().or(record.engine.take());
        iteration.waited.engine += engine_started.elapsed();
        self.keep("stdout.txt", &ran.stdout.bytes)?;
        self.keep("stderr.txt", &ran.stderr.bytes)?;
        record.take_run(&ran);

        (self.phase)(Phase::Checking);
        let stdout = String::from_utf8_lossy(&ran.stdout.bytes).into_owned();
        let stderr = String::from_utf8_lossy(&ran.stderr.bytes).into_owned();
        let (checks, failure) = evaluate(self.job, &ran, &stdout, &stderr);
        record.checks = checks;
        if let Some((outcome, headline)) = failure {
            let failed: Vec<&CheckResult> =
                record.checks.iter().filter(|check| !check.passed).collect();
            let detail = match (outcome, failed.first()) {
                (Outcome::ChecksFailed, Some(check)) => {
                    format!("check `{}` failed: {}", check.name, gist(&check.detail))
                }
                _ => first_line(&headline).to_string(),
            };
            let text = feedback::run(&ran, &stdout, &stderr, &headline, &failed);
            return end(outcome, detail, text);
        }
        Ok(Checked {
            image_id,
            ran,
            stdout,
            stderr,
        })
    }

    fn keep(&self, name: &str, bytes: &[u8]) -> Result<(), LoopError> {
        match self.artifacts {
            Some(folder) => write_file(&folder.join(name), bytes),
            None => Ok(()),
        }
    }
}

/// Evaluates the run against the spec's checks: the results, and the outcome with
/// the headline of the feedback when it failed. A program that did not start, was
/// killed, or exited non-zero without an `exit_code` check asking for it, failed.
fn evaluate(
    job: &Job,
    ran: &RunOutcome,
    stdout: &str,
    stderr: &str,
) -> (Vec<CheckResult>, Option<(Outcome, String)>) {
    if let Some(message) = &ran.start_error {
        let headline = format!("The container could not start: {}", message.trim());
        return (Vec::new(), Some((Outcome::RunFailed, headline)));
    }
    let observed = Observed {
        exit_code: ran.exit_code,
        stdout,
        stderr,
        stdout_truncated: ran.stdout.truncated,
        stderr_truncated: ran.stderr.truncated,
    };
    let checks: Vec<CheckResult> = job
        .spec
        .checks
        .iter()
        .map(|check| check.evaluate(DEFAULT_CASE, &observed))
        .collect();
    let asks_for_exit_code = job
        .spec
        .checks
        .iter()
        .any(|check| matches!(check.matcher, Matcher::ExitCode(_)));
    let failure = if ran.timed_out {
        Some((
            Outcome::RunTimeout,
            format!(
                "The program did not finish within {} s and was killed. It must finish on its own.",
                job.limits.run_timeout_secs
            ),
        ))
    } else if ran.oom_killed {
        Some((
            Outcome::RunFailed,
            format!(
                "The program was killed because it ran out of memory (the limit is {} MB).",
                job.limits.memory_mb
            ),
        ))
    } else if ran.exit_code != Some(0) && !asks_for_exit_code {
        let code = ran
            .exit_code
            .map_or("unknown".to_string(), |code| code.to_string());
        Some((
            Outcome::RunFailed,
            format!("The program exited with code {code} (it must exit 0)."),
        ))
    } else if checks.iter().any(|check| !check.passed) {
        Some((
            Outcome::ChecksFailed,
            "The program ran, but its output does not meet the checks.".to_string(),
        ))
    } else {
        None
    };
    (checks, failure)
}

/// The start of a multi-line detail on one line, for progress and `detail`: the first
/// line, and the next when the first ends in a colon.
pub(crate) fn gist(text: &str) -> String {
    let mut lines = text.trim().lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let line = match lines.next() {
        Some(second) if first.ends_with(':') => format!("{first} {second}"),
        _ => first.to_string(),
    };
    excerpt(&line, 240).replace('\n', " ")
}

pub(crate) fn first_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or_default()
}
