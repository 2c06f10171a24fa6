//! The loop for one spec: generate → validate → tar → build → run → check, and on
//! failure feed the evidence back and repair, until the checks pass or the budget
//! (iterations, tokens, wall time) is spent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_model::{Answer, ChatMessage, Purpose, Reply, Role};
use agent_sandbox::{
    BuildContext, BuildProgress, BuildRequest, BuildStatus, RunLimits, RunNetwork, RunOutcome,
    RunRequest,
};
use agent_spec::{
    BuildNetwork, CheckResult, Limits, Matcher, NetworkMode, Observed, Settings, Spec, excerpt,
};
use tokio_util::sync::CancellationToken;

use crate::bundle::{Bundle, Rules};
use crate::errors::LoopError;
use crate::events::{Event, EventSink, Phase};
use crate::feedback;
use crate::ports::{EnginePort, ModelPort, run_labels};
use crate::prompts::{Prompts, render};
use crate::report::{IterationRecord, Outcome, Report, StopReason, UsageTotals, round_secs};

/// The longest model reply quoted back as the assistant turn of a repair.
const ASSISTANT_ECHO_BYTES: usize = 64 * 1024;

/// One spec to run, with everything resolved.
pub struct Job {
    pub spec: Spec,
    pub limits: Limits,
    pub settings: Arc<Settings>,
    pub prompts: Arc<Prompts>,
    pub run_id: String,
    pub run_dir: PathBuf,
    /// `dev.agent.owner` label value of this process.
    pub owner: String,
}

impl Job {
    /// The container run of an image built for this job: the spec's args, env and
    /// stdin, under the job's limits.
    fn run_request<'a>(
        &'a self,
        image: &'a str,
        labels: &'a BTreeMap<String, String>,
        timeout: Duration,
    ) -> RunRequest<'a> {
        RunRequest {
            image,
            args: &self.spec.run.args,
            env: &self.spec.run.env,
            stdin: self.spec.run.stdin.as_deref().map(str::as_bytes),
            limits: run_limits(&self.limits, timeout),
            labels,
        }
    }
}

/// A finished run: the report (always written when possible) and the failure that
/// stopped it early, if any.
pub struct RunResult {
    pub report: Report,
    pub error: Option<LoopError>,
}

#[derive(Default)]
struct State {
    history: Vec<IterationRecord>,
    usage: UsageTotals,
    verified: Option<(String, String)>,
    /// Intermediate images the builds printed, removed at the end.
    layers: BTreeSet<String>,
}

/// Runs one spec to its end. Never panics on what the model or the program does; an
/// engine or endpoint failure stops the run and is returned beside the report.
pub async fn run_spec<M: ModelPort, E: EnginePort>(
    job: &Job,
    model: &mut M,
    engine: &E,
    events: &EventSink,
    cancel: &CancellationToken,
) -> RunResult {
    let started = Instant::now();
    events(Event::Started {
        spec: job.spec.name.clone(),
        run_dir: job.run_dir.display().to_string(),
        max_iterations: job.limits.max_iterations,
    });
    let mut state = State::default();
    let outcome = tokio::select! {
        result = drive(job, model, engine, events, &mut state, started) => result,
        () = cancel.cancelled() => Ok(StopReason::Cancelled),
    };
    let (stopped_by, mut error) = match outcome {
        Ok(reason) => (reason, None),
        Err(error) => (StopReason::Error, Some(error)),
    };

    let keep = state.verified.as_ref().map(|(_, id)| id.as_str());
    let cleanup = async {
        engine
            .remove_labelled(agent_sandbox::LABEL_RUN, &job.run_id, keep)
            .await?;
        let layers: Vec<String> = state.layers.iter().cloned().collect();
        engine.remove_untagged_images(&layers).await
    };
    if let Err(cleanup_error) = cleanup.await {
        tracing::warn!(spec = %job.spec.name, "cleanup failed: {cleanup_error}");
        if error.is_none() && stopped_by != StopReason::Error {
            error = Some(cleanup_error.into());
        }
    }

    let report = Report {
        structured_output: model.structured_output().map(str::to_owned),
        spec: job.spec.name.clone(),
        spec_path: job.spec.path.display().to_string(),
        run_id: job.run_id.clone(),
        verified: state.verified.is_some() && stopped_by == StopReason::Passed,
        iterations: state
            .history
            .iter()
            .filter(|record| record.outcome != Outcome::InvalidBundle)
            .count() as u32,
        image: state.verified.as_ref().map(|(tag, _)| tag.clone()),
        image_id: state.verified.as_ref().map(|(_, id)| id.clone()),
        duration_secs: round_secs(started.elapsed()),
        usage: state.usage,
        model: job.settings.model.name.clone(),
        base_image: job.settings.docker.base_image.clone(),
        stopped_by: if error.is_some() {
            StopReason::Error
        } else {
            stopped_by
        },
        error: error.as_ref().map(error_chain),
        history: state.history,
    };
    let path = job.run_dir.join("report.json");
    if let Err(write_error) = write_json(&path, &report) {
        error.get_or_insert(write_error);
    }
    events(Event::Finished {
        spec: job.spec.name.clone(),
        verified: report.verified,
        stopped_by: report.stopped_by,
        image: report.image.clone(),
    });
    RunResult { report, error }
}

/// An error and its causes on one line, for `report.json`.
pub fn error_chain(error: &LoopError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn message(role: Role, content: impl Into<String>) -> ChatMessage {
    ChatMessage {
        role,
        content: content.into(),
    }
}

async fn drive<M: ModelPort, E: EnginePort>(
    job: &Job,
    model: &mut M,
    engine: &E,
    events: &EventSink,
    state: &mut State,
    started: Instant,
) -> Result<StopReason, LoopError> {
    let spec = &job.spec;
    let limits = &job.limits;
    std::fs::create_dir_all(job.run_dir.join("iterations")).map_err(|source| LoopError::Write {
        path: job.run_dir.clone(),
        source,
    })?;
    let inputs = read_inputs(spec)?;
    let input_names: BTreeSet<String> = inputs.keys().cloned().collect();
    let rules = Rules {
        limits: &job.settings.bundle,
        inputs: &input_names,
        allowed_base_images: &job.settings.docker.allowed_base_images,
    };
    let system = system_prompt(job);
    let task = task_prompt(job, &inputs);
    let labels = run_labels(&job.run_id, &spec.name, &job.owner);

    let mut current: Option<Bundle> = None;
    let mut last_reply: Option<String> = None;
    let mut feedback_text: Option<String> = None;

    for iteration in 1..=limits.max_iterations {
        if limits.max_total_tokens > 0 && state.usage.total_tokens() >= limits.max_total_tokens {
            return Ok(StopReason::MaxTotalTokens);
        }
        if wall_left(limits, started) == Some(Duration::ZERO) {
            return Ok(StopReason::MaxWallSecs);
        }
        let iteration_started = Instant::now();
        let mut waited = Waited::default();
        let phase = |phase| {
            events(Event::Phase {
                spec: spec.name.clone(),
                iteration,
                phase,
            })
        };

        let mut messages = vec![message(Role::System, &system), message(Role::User, &task)];
        let purpose = match &feedback_text {
            None => {
                phase(Phase::Generating);
                Purpose::Generate
            }
            Some(feedback_text) => {
                phase(Phase::Repairing);
                if let Some(reply) = &last_reply {
                    messages.push(message(
                        Role::Assistant,
                        excerpt(reply, ASSISTANT_ECHO_BYTES),
                    ));
                }
                messages.push(message(
                    Role::User,
                    repair_prompt(
                        job,
                        iteration - 1,
                        feedback_text,
                        &state.history,
                        current.as_ref(),
                    ),
                ));
                Purpose::Repair
            }
        };

        let mut reply = model.code_bundle(purpose, iteration, &messages).await?;
        account(state, &reply, &mut waited);
        if let Answer::Invalid(why) = &reply.answer {
            messages.push(message(
                Role::Assistant,
                excerpt(&reply.content, ASSISTANT_ECHO_BYTES),
            ));
            messages.push(message(
                Role::User,
                format!(
                    "Your reply could not be used: {why}\nAnswer again with only the JSON object of the code bundle (`summary`, `dockerfile`, `files`, `delete`), nothing else."
                ),
            ));
            reply = model
                .code_bundle(Purpose::Reformat, iteration, &messages)
                .await?;
            account(state, &reply, &mut waited);
        }
        last_reply = Some(reply.content.clone());

        let mut record = IterationRecord::new(iteration);
        let iteration_dir = job.run_dir.join("iterations").join(iteration.to_string());
        create_dir(&iteration_dir)?;

        let applied = match &reply.answer {
            Answer::Parsed(bundle) => {
                record.summary = bundle.summary.clone();
                Bundle::apply(current.as_ref(), bundle, &rules).map_err(|problems| {
                    (
                        format!("invalid bundle: {}", problems.join("; ")),
                        feedback::invalid_bundle(&problems),
                    )
                })
            }
            Answer::Refused(text) => Err((
                format!("the model refused: {}", excerpt(text, 300)),
                feedback::refused(text),
            )),
            Answer::Invalid(why) => Err((
                format!("unusable reply: {why}"),
                feedback::invalid_bundle(std::slice::from_ref(why)),
            )),
        };
        let bundle = match applied {
            Ok(bundle) => bundle,
            Err((detail, text)) => {
                record.detail = detail;
                feedback_text = Some(text);
                finish_iteration(job, state, events, record, iteration_started, waited)?;
                continue;
            }
        };

        // Build.
        let context_files = bundle.context_files(&inputs);
        write_tree(&iteration_dir.join("bundle"), &context_files)?;
        let (context, built_context, build_labels) = contexts(&context_files, &labels)?;
        record.context_digest = Some(context.digest.clone());
        let build_timeout = cap(
            Duration::from_secs(limits.build_timeout_secs),
            wall_left(limits, started),
        );
        phase(Phase::Building { step: 0, total: 0 });
        let mut on_progress = |progress: BuildProgress| match progress {
            BuildProgress::Step { index, total, .. } => events(Event::Phase {
                spec: spec.name.clone(),
                iteration,
                phase: Phase::Building { step: index, total },
            }),
        };
        let engine_started = Instant::now();
        let built = engine
            .build(
                BuildRequest {
                    context: &built_context,
                    labels: &build_labels,
                    timeout: build_timeout,
                    network: build_network(job.settings.docker.build_network),
                },
                &mut on_progress,
            )
            .await?;
        waited.engine += engine_started.elapsed();
        record.build_secs = Some(round_secs(built.duration));
        write_file(&iteration_dir.join("build.log"), built.log.as_bytes())?;
        state.layers.extend(built.intermediate_images());
        let image_id = match &built.status {
            BuildStatus::Built { image_id } => image_id.clone(),
            BuildStatus::Failed { error, .. } => {
                record.outcome = Outcome::BuildFailed;
                record.detail = format!("build failed: {}", first_line(error));
                feedback_text = Some(feedback::build(&built, build_timeout.as_secs()));
                current = Some(bundle);
                finish_iteration(job, state, events, record, iteration_started, waited)?;
                continue;
            }
            BuildStatus::TimedOut => {
                record.outcome = Outcome::BuildTimeout;
                record.detail =
                    format!("build did not finish within {} s", build_timeout.as_secs());
                feedback_text = Some(feedback::build(&built, build_timeout.as_secs()));
                current = Some(bundle);
                finish_iteration(job, state, events, record, iteration_started, waited)?;
                continue;
            }
        };
        record.image_id = Some(image_id.clone());

        // Run.
        phase(Phase::Running);
        let run_timeout = cap(
            Duration::from_secs(limits.run_timeout_secs),
            wall_left(limits, started),
        );
        let engine_started = Instant::now();
        let ran = engine
            .run(job.run_request(&image_id, &labels, run_timeout))
            .await?;
        waited.engine += engine_started.elapsed();
        write_file(&iteration_dir.join("stdout.txt"), &ran.stdout.bytes)?;
        write_file(&iteration_dir.join("stderr.txt"), &ran.stderr.bytes)?;
        record.take_run(&ran);

        // Check.
        phase(Phase::Checking);
        let stdout = String::from_utf8_lossy(&ran.stdout.bytes).into_owned();
        let stderr = String::from_utf8_lossy(&ran.stderr.bytes).into_owned();
        let verdict = judge_run(job, &ran, &stdout, &stderr);
        record.checks = verdict.checks;
        let (outcome, headline) = match verdict.failure {
            Some(failure) => failure,
            None if spec.judge => {
                phase(Phase::Judging);
                let (judged, judge_waited) =
                    judge(job, model, iteration, &ran, &stdout, &stderr, state).await?;
                waited.model += judge_waited;
                let passed = judged.passed;
                let reason = judged.detail.clone();
                record.checks.push(judged);
                if passed {
                    (Outcome::Passed, String::new())
                } else {
                    (
                        Outcome::ChecksFailed,
                        format!(
                            "The judge found that the output does not meet the conditions: {reason}"
                        ),
                    )
                }
            }
            None => (Outcome::Passed, String::new()),
        };
        record.outcome = outcome;
        if outcome == Outcome::Passed {
            let short = &context.digest[..12.min(context.digest.len())];
            let tag = format!(
                "{}{}:{short}",
                agent_sandbox::VERIFIED_REPOSITORY_PREFIX,
                repository_name(&spec.name)
            );
            engine.tag(&image_id, &tag).await?;
            write_tree(&job.run_dir.join("final"), &context_files)?;
            state.verified = Some((tag, image_id));
            finish_iteration(job, state, events, record, iteration_started, waited)?;
            return Ok(StopReason::Passed);
        }
        let failed: Vec<&CheckResult> =
            record.checks.iter().filter(|check| !check.passed).collect();
        record.detail = match (outcome, failed.first()) {
            (Outcome::ChecksFailed, Some(check)) => {
                format!("check `{}` failed: {}", check.name, gist(&check.detail))
            }
            _ => first_line(&headline).to_string(),
        };
        feedback_text = Some(feedback::run(&ran, &stdout, &stderr, &headline, &failed));
        current = Some(bundle);
        finish_iteration(job, state, events, record, iteration_started, waited)?;
    }
    Ok(StopReason::MaxIterations)
}

/// Time an iteration spent waiting on others: the model's answers, the engine's work.
#[derive(Default, Clone, Copy)]
struct Waited {
    model: Duration,
    engine: Duration,
}

/// The context of the bundle (its digest names the verified image), and the context
/// actually built with the labels it needs: a `LABEL` line after each `FROM` where that
/// is safe (see [`agent_sandbox::with_label_instruction`]), else the engine's `labels`
/// parameter.
fn contexts(
    files: &BTreeMap<String, Vec<u8>>,
    labels: &BTreeMap<String, String>,
) -> Result<(BuildContext, BuildContext, BTreeMap<String, String>), LoopError> {
    let context = agent_sandbox::build_context(files)?;
    let dockerfile = files
        .get(crate::bundle::DOCKERFILE)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    match agent_sandbox::with_label_instruction(&dockerfile, labels) {
        Some(labelled) => {
            let mut built = files.clone();
            built.insert(crate::bundle::DOCKERFILE.to_string(), labelled.into_bytes());
            let built = agent_sandbox::build_context(&built)?;
            Ok((context, built, BTreeMap::new()))
        }
        None => Ok((context.clone(), context, labels.clone())),
    }
}

fn account<T>(state: &mut State, reply: &Reply<T>, waited: &mut Waited) {
    state.usage.prompt_tokens += reply.usage.prompt_tokens;
    state.usage.completion_tokens += reply.usage.completion_tokens;
    state.usage.calls += 1;
    waited.model += reply.latency;
}

fn finish_iteration(
    job: &Job,
    state: &mut State,
    events: &EventSink,
    mut record: IterationRecord,
    started: Instant,
    waited: Waited,
) -> Result<(), LoopError> {
    let own = started
        .elapsed()
        .saturating_sub(waited.model)
        .saturating_sub(waited.engine);
    record.overhead_ms = (own.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    record.model_ms = u64::try_from(waited.model.as_millis()).unwrap_or(u64::MAX);
    let path = job
        .run_dir
        .join("iterations")
        .join(record.iteration.to_string())
        .join("result.json");
    write_json(&path, &record)?;
    events(Event::IterationFinished {
        spec: job.spec.name.clone(),
        iteration: record.iteration,
        outcome: record.outcome,
        detail: record.detail.clone(),
    });
    state.history.push(record);
    Ok(())
}

struct RunVerdict {
    checks: Vec<CheckResult>,
    /// The outcome and the headline of the feedback, when the run did not pass its
    /// checks (the judge, if any, comes after).
    failure: Option<(Outcome, String)>,
}

/// Evaluates the run against the spec's checks. A program that did not start, was
/// killed, or exited non-zero without an `exit_code` check asking for it, failed.
fn judge_run(job: &Job, ran: &RunOutcome, stdout: &str, stderr: &str) -> RunVerdict {
    let spec = &job.spec;
    if let Some(message) = &ran.start_error {
        return RunVerdict {
            checks: Vec::new(),
            failure: Some((
                Outcome::RunFailed,
                format!("The container could not start: {}", message.trim()),
            )),
        };
    }
    let observed = Observed {
        exit_code: ran.exit_code,
        stdout,
        stderr,
        stdout_truncated: ran.stdout.truncated,
        stderr_truncated: ran.stderr.truncated,
    };
    let checks: Vec<CheckResult> = spec
        .checks
        .iter()
        .map(|check| check.evaluate(&observed))
        .collect();
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
    } else if ran.exit_code != Some(0)
        && !spec
            .checks
            .iter()
            .any(|check| matches!(check.matcher, Matcher::ExitCode(_)))
    {
        Some((
            Outcome::RunFailed,
            format!(
                "The program exited with code {} (it must exit 0).",
                ran.exit_code
                    .map_or("unknown".to_string(), |code| code.to_string())
            ),
        ))
    } else if checks.iter().any(|check| !check.passed) {
        Some((
            Outcome::ChecksFailed,
            "The program ran, but its output does not meet the checks.".to_string(),
        ))
    } else {
        None
    };
    RunVerdict { checks, failure }
}

/// Asks the model to judge the output against the conditions; a reply that cannot be
/// used is asked for once more before it counts as a failed judgement.
async fn judge<M: ModelPort>(
    job: &Job,
    model: &mut M,
    iteration: u32,
    ran: &RunOutcome,
    stdout: &str,
    stderr: &str,
    state: &mut State,
) -> Result<(CheckResult, Duration), LoopError> {
    let exit_code = ran
        .exit_code
        .map_or("none".to_string(), |code| code.to_string());
    let stdout_shown = excerpt(stdout, 24 * 1024);
    let stderr_shown = excerpt(stderr, 4 * 1024);
    let text = render(
        &job.prompts.judge,
        &[
            ("prompt", &job.spec.prompt),
            ("conditions", &job.spec.conditions),
            ("exit_code", &exit_code),
            ("stdout", &stdout_shown),
            ("stderr", &stderr_shown),
        ],
    );
    let mut messages = vec![message(Role::User, text)];
    let mut waited = Waited::default();
    let mut last_problem = String::new();
    for attempt in 0..2 {
        let reply = model.verdict(iteration, &messages).await?;
        account(state, &reply, &mut waited);
        match reply.answer {
            Answer::Parsed(verdict) => {
                return Ok((
                    CheckResult {
                        name: "judge".to_string(),
                        passed: verdict.pass,
                        detail: verdict.reason,
                    },
                    waited.model,
                ));
            }
            Answer::Refused(text) => last_problem = format!("the judge refused: {text}"),
            Answer::Invalid(why) => {
                last_problem = format!("the judge's reply could not be used: {why}")
            }
        }
        if attempt == 0 {
            messages.push(message(Role::Assistant, excerpt(&reply.content, 8 * 1024)));
            messages.push(message(
                Role::User,
                format!("{last_problem}\nAnswer with only the JSON object {{\"pass\": true|false, \"reason\": \"…\"}}."),
            ));
        }
    }
    Ok((
        CheckResult {
            name: "judge".to_string(),
            passed: false,
            detail: last_problem,
        },
        waited.model,
    ))
}

fn wall_left(limits: &Limits, started: Instant) -> Option<Duration> {
    (limits.max_wall_secs > 0)
        .then(|| Duration::from_secs(limits.max_wall_secs).saturating_sub(started.elapsed()))
}

fn cap(duration: Duration, wall_left: Option<Duration>) -> Duration {
    match wall_left {
        Some(left) => duration.min(left.max(Duration::from_secs(1))),
        None => duration,
    }
}

fn build_network(network: BuildNetwork) -> &'static str {
    match network {
        BuildNetwork::Default => "default",
        BuildNetwork::None => "none",
        BuildNetwork::Host => "host",
    }
}

pub fn run_limits(limits: &Limits, timeout: Duration) -> RunLimits {
    RunLimits {
        memory_mb: limits.memory_mb,
        cpus: limits.cpus,
        pids: limits.pids,
        network: match limits.network {
            NetworkMode::None => RunNetwork::None,
            NetworkMode::Bridge => RunNetwork::Bridge,
        },
        timeout,
        output_limit_bytes: usize::try_from(limits.output_limit_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX),
    }
}

/// A spec name as a Docker repository component: spec names allow runs of separators
/// and separators at the end (`a..b`, `fizz-`), which the engine refuses in a tag.
fn repository_name(spec: &str) -> String {
    let mut name = String::with_capacity(spec.len());
    for c in spec.chars() {
        let separator = !c.is_ascii_alphanumeric();
        if separator && (name.is_empty() || name.ends_with(['.', '_', '-'])) {
            continue;
        }
        name.push(c);
    }
    name.trim_end_matches(['.', '_', '-']).to_string()
}

/// The start of a multi-line detail on one line, for progress and `detail`: the first
/// line, and the next when the first ends in a colon.
fn gist(text: &str) -> String {
    let mut lines = text.trim().lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let line = match lines.next() {
        Some(second) if first.ends_with(':') => format!("{first} {second}"),
        _ => first.to_string(),
    };
    excerpt(&line, 240).replace('\n', " ")
}

fn first_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or_default()
}

fn read_inputs(spec: &Spec) -> Result<BTreeMap<String, Vec<u8>>, LoopError> {
    spec.inputs
        .iter()
        .map(|(name, path)| {
            std::fs::read(path)
                .map(|bytes| (name.clone(), bytes))
                .map_err(|source| LoopError::Input {
                    path: path.clone(),
                    source,
                })
        })
        .collect()
}

fn system_prompt(job: &Job) -> String {
    let docker = &job.settings.docker;
    let limits = &job.limits;
    let spec = &job.spec;
    let allowed = if docker.allowed_base_images.is_empty() {
        String::new()
    } else {
        format!(
            " Only these base images are allowed: {}.",
            docker
                .allowed_base_images
                .iter()
                .map(|image| format!("`{image}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let build_network = match docker.build_network {
        BuildNetwork::None => "no: RUN steps have no network, so vendor what you need",
        _ => "pip, apt-get and the like work",
    };
    let run_args = if spec.run.args.is_empty() {
        String::new()
    } else {
        format!(
            ", with these arguments appended to the command: {}",
            serde_json::to_string(&spec.run.args).unwrap_or_default()
        )
    };
    let run_network = match limits.network {
        NetworkMode::None => "The container has no network at run time (only loopback).",
        NetworkMode::Bridge => "The container has network access at run time.",
    };
    let run_env = if spec.run.env.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            spec.run
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    render(
        &job.prompts.system,
        &[
            ("base_image", &docker.base_image),
            ("allowed_base_images", &allowed),
            ("build_network", build_network),
            ("run_args", &run_args),
            ("run_network", run_network),
            ("memory_mb", &limits.memory_mb.to_string()),
            ("cpus", &limits.cpus.to_string()),
            ("pids", &limits.pids.to_string()),
            ("run_timeout_secs", &limits.run_timeout_secs.to_string()),
            ("run_env", &run_env),
        ],
    )
}

/// Inputs shown to the model in full when they are text and small.
const INPUT_SHOWN_BYTES: usize = 8 * 1024;

fn task_prompt(job: &Job, inputs: &BTreeMap<String, Vec<u8>>) -> String {
    let spec = &job.spec;
    let checks = if spec.checks.is_empty() {
        String::new()
    } else {
        let mut text = String::from("\nThe output is checked exactly like this:\n");
        for check in &spec.checks {
            text.push_str(&format!("- {}\n", describe_matcher(&check.matcher)));
        }
        text
    };
    let stdin = match &spec.run.stdin {
        Some(stdin) => format!(
            "\nThe program receives this on stdin (then end of file):\n```\n{}\n```\n",
            excerpt(stdin, INPUT_SHOWN_BYTES)
        ),
        None => "\nThe program's stdin is empty.\n".to_string(),
    };
    let mut input_text = String::new();
    if !inputs.is_empty() {
        input_text.push_str("\nThese input files are in the build context at these paths (COPY them into the image; you may not change them):\n");
        for (name, bytes) in inputs {
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    let size = if bytes.len() > INPUT_SHOWN_BYTES {
                        format!(" ({} bytes; its start and its end)", bytes.len())
                    } else {
                        String::new()
                    };
                    input_text.push_str(&format!(
                        "\n{name}{size}:\n```\n{}\n```\n",
                        excerpt(text, INPUT_SHOWN_BYTES).trim_end()
                    ));
                }
                Err(_) => {
                    input_text.push_str(&format!("\n{name}: binary, {} bytes\n", bytes.len()))
                }
            }
        }
    }
    render(
        &job.prompts.task,
        &[
            ("prompt", &spec.prompt),
            ("conditions", &spec.conditions),
            ("checks", &checks),
            ("stdin", &stdin),
            ("inputs", &input_text),
        ],
    )
}

fn describe_matcher(matcher: &Matcher) -> String {
    let quoted = |text: &str| serde_json::to_string(&excerpt(text, 2048)).unwrap_or_default();
    match matcher {
        Matcher::ExitCode(code) => format!("the exit code is {code}"),
        Matcher::StdoutEquals(text) => format!(
            "stdout equals {} (compared after turning \\r\\n into \\n and trimming trailing whitespace)",
            quoted(text)
        ),
        Matcher::StdoutContains(text) => format!("stdout contains {}", quoted(text)),
        Matcher::StdoutNotContains(text) => format!("stdout does not contain {}", quoted(text)),
        Matcher::StdoutMatches(regex) => {
            format!("stdout matches the regex {}", quoted(regex.as_str()))
        }
        Matcher::StderrContains(text) => format!("stderr contains {}", quoted(text)),
        Matcher::StderrNotContains(text) => format!("stderr does not contain {}", quoted(text)),
        Matcher::StderrMatches(regex) => {
            format!("stderr matches the regex {}", quoted(regex.as_str()))
        }
    }
}

fn repair_prompt(
    job: &Job,
    failed_iteration: u32,
    feedback_text: &str,
    history: &[IterationRecord],
    current: Option<&Bundle>,
) -> String {
    let history_text = if history.len() <= 1 {
        "(none before this one)".to_string()
    } else {
        history[..history.len() - 1]
            .iter()
            .map(|record| {
                format!(
                    "- attempt {}: {} — {}{}",
                    record.iteration,
                    record.outcome.as_str(),
                    if record.summary.is_empty() {
                        "(no summary)"
                    } else {
                        &record.summary
                    },
                    if record.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", record.detail)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let bundle_text = current.map_or_else(
        || "(nothing was built yet: send the full bundle, with the Dockerfile)".to_string(),
        feedback::bundle_listing,
    );
    render(
        &job.prompts.repair,
        &[
            ("iteration", &failed_iteration.to_string()),
            ("feedback", feedback_text),
            ("history", &history_text),
            ("bundle", &bundle_text),
        ],
    )
}

fn create_dir(path: &Path) -> Result<(), LoopError> {
    std::fs::create_dir_all(path).map_err(|source| LoopError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LoopError> {
    std::fs::write(path, bytes).map_err(|source| LoopError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), LoopError> {
    let mut text = serde_json::to_string_pretty(value).expect("report types serialise");
    text.push('\n');
    write_file(path, text.as_bytes())
}

/// Writes `files` below `root`. Paths were validated by [`Bundle::apply`] (bundle
/// files) or by the spec loader (inputs), so none escapes `root`; this checks again
/// because a write outside the run directory must be impossible.
fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), LoopError> {
    for (name, bytes) in files {
        let relative = Path::new(name);
        let safe = relative
            .components()
            .all(|component| matches!(component, std::path::Component::Normal(_)));
        if !safe {
            return Err(LoopError::Write {
                path: root.join(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "path leaves the bundle folder",
                ),
            });
        }
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        write_file(&path, bytes)?;
    }
    Ok(())
}

/// Builds, runs and checks a bundle that is already on disk (a run's `final/`),
/// without the model: `agent verify`.
pub async fn verify_bundle<E: EnginePort>(
    job: &Job,
    files: &BTreeMap<String, Vec<u8>>,
    engine: &E,
) -> Result<(IterationRecord, BuildContext), LoopError> {
    let labels = run_labels(&job.run_id, &job.spec.name, &job.owner);
    let (context, built_context, build_labels) = contexts(files, &labels)?;
    let mut record = IterationRecord::new(1);
    record.outcome = Outcome::BuildFailed;
    record.summary = "verify".to_string();
    record.context_digest = Some(context.digest.clone());
    let result = async {
        let built = engine
            .build(
                BuildRequest {
                    context: &built_context,
                    labels: &build_labels,
                    timeout: Duration::from_secs(job.limits.build_timeout_secs),
                    network: build_network(job.settings.docker.build_network),
                },
                &mut |_| {},
            )
            .await?;
        record.build_secs = Some(round_secs(built.duration));
        let image_id = match &built.status {
            BuildStatus::Built { image_id } => image_id.clone(),
            BuildStatus::Failed { error, .. } => {
                record.detail = format!("build failed: {}", first_line(error));
                return Ok::<_, LoopError>(());
            }
            BuildStatus::TimedOut => {
                record.outcome = Outcome::BuildTimeout;
                return Ok(());
            }
        };
        record.image_id = Some(image_id.clone());
        let ran = engine
            .run(job.run_request(
                &image_id,
                &labels,
                Duration::from_secs(job.limits.run_timeout_secs),
            ))
            .await?;
        let stdout = String::from_utf8_lossy(&ran.stdout.bytes).into_owned();
        let stderr = String::from_utf8_lossy(&ran.stderr.bytes).into_owned();
        record.take_run(&ran);
        let verdict = judge_run(job, &ran, &stdout, &stderr);
        record.checks = verdict.checks;
        match verdict.failure {
            Some((outcome, headline)) => {
                record.outcome = outcome;
                record.detail = headline;
            }
            None => record.outcome = Outcome::Passed,
        }
        Ok(())
    }
    .await;
    let cleanup = engine
        .remove_labelled(agent_sandbox::LABEL_RUN, &job.run_id, None)
        .await;
    result?;
    cleanup?;
    Ok((record, context))
}

#[cfg(test)]
mod tests {
    use super::repository_name;

    #[test]
    fn spec_names_become_valid_repository_names() {
        assert_eq!(repository_name("fizzbuzz"), "fizzbuzz");
        assert_eq!(repository_name("sales-report.v2"), "sales-report.v2");
        assert_eq!(repository_name("a..b__c--d"), "a.b_c-d");
        assert_eq!(repository_name("fizz-"), "fizz");
    }
}
