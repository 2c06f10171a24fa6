//! The loop for one spec: generate → validate → build → run → check (→ judge), and on
//! failure feed the evidence back and repair, until the checks pass or the budget
//! (iterations, tokens, wall time) is spent. Each step hands its result to the next
//! or ends the iteration ([`Halt`]); [`finish`] is the one place an iteration ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use agent_model::{ChatMessage, Purpose, Role};
use tokio_util::sync::CancellationToken;

use crate::artifacts::{self, InputDigest, iteration_dir, write_json, write_tree};
use crate::bundle::{Bundle, Rules};
use crate::errors::LoopError;
use crate::events::{Event, EventSink, Phase};
use crate::iteration::{Ending, Halt, Iteration};
use crate::job::Job;
use crate::ports::{EnginePort, ModelPort};
use crate::prompts::{self, message};
use crate::report::{IterationRecord, Outcome, Report, StopReason, UsageTotals, round_secs};
use crate::steps;
use crate::trial::Trial;

/// A finished run: the report (always written when possible) and the failure that
/// stopped it early, if any.
pub struct RunResult {
    pub report: Report,
    pub error: Option<LoopError>,
}

/// What a run has gathered so far.
#[derive(Default)]
struct State {
    history: Vec<IterationRecord>,
    usage: UsageTotals,
    /// The bundle the next repair starts from.
    current: Option<Bundle>,
    /// The verified image's tag and id.
    verified: Option<(String, String)>,
    /// Intermediate images the builds printed, removed at the end.
    layers: BTreeSet<String>,
    /// The run directory's copy of the spec, and the inputs' digests.
    kept_spec: Option<(String, Vec<InputDigest>)>,
}

/// What every iteration of a run shares.
struct Setup {
    inputs: BTreeMap<String, Vec<u8>>,
    input_names: BTreeSet<String>,
    system: String,
    task: String,
    labels: BTreeMap<String, String>,
}

/// One spec's run in progress: the job, its two seams, and what it gathered.
struct Run<'a, M, E> {
    job: &'a Job,
    model: &'a mut M,
    engine: &'a E,
    events: &'a EventSink,
    started: Instant,
    state: State,
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
    events(Event::Started {
        spec: job.spec.name.clone(),
        run_dir: job.run_dir.display().to_string(),
        max_iterations: job.limits.max_iterations,
    });
    let mut run = Run {
        job,
        model,
        engine,
        events,
        started: Instant::now(),
        state: State::default(),
    };
    let outcome = tokio::select! {
        result = run.drive() => result,
        () = cancel.cancelled() => Ok(StopReason::Cancelled),
    };
    let (mut stopped_by, mut error) = match outcome {
        Ok(reason) => (reason, None),
        Err(error) => (StopReason::Error, Some(error)),
    };
    if let Err(cleanup_error) = clean_up(job, engine, &run.state).await {
        tracing::warn!(spec = %job.spec.name, "cleanup failed: {cleanup_error}");
        if error.is_none() && stopped_by != StopReason::Error {
            error = Some(cleanup_error);
        }
    }
    if error.is_some() {
        stopped_by = StopReason::Error;
    }
    let report = report(job, run.state, stopped_by, error.as_ref(), run.started);
    if let Err(write_error) = write_json(&job.run_dir.join("report.json"), &report) {
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

impl<M: ModelPort, E: EnginePort> Run<'_, M, E> {
    async fn drive(&mut self) -> Result<StopReason, LoopError> {
        let setup = prepare(self.job, &mut self.state)?;
        let mut feedback: Option<String> = None;
        for number in 1..=self.job.limits.max_iterations {
            if let Some(reason) = budget_spent(self.job, &self.state.usage, self.started) {
                return Ok(reason);
            }
            let mut iteration = Iteration::start(number);
            let attempt = self
                .attempt(&setup, feedback.as_deref(), &mut iteration)
                .await;
            self.state.layers.extend(iteration.layers.drain(..));
            let ending = match attempt {
                Ok(()) => Ending::passed(),
                Err(Halt::Ended(ending)) => ending,
                Err(Halt::Failed(error)) => return Err(error),
            };
            let passed = ending.outcome == Outcome::Passed;
            feedback = Some(finish(
                self.job,
                &mut self.state,
                self.events,
                iteration,
                ending,
            )?);
            if passed {
                return Ok(StopReason::Passed);
            }
        }
        Ok(StopReason::MaxIterations)
    }

    /// One iteration's steps, from the request to the verified image.
    async fn attempt(
        &mut self,
        setup: &Setup,
        feedback: Option<&str>,
        iteration: &mut Iteration,
    ) -> Result<(), Halt> {
        let (job, state) = (self.job, &mut self.state);
        let number = iteration.record.iteration;
        let events = self.events;
        let phase = |phase| {
            events(Event::Phase {
                spec: job.spec.name.clone(),
                iteration: number,
                phase,
            })
        };
        let (purpose, messages) = request(job, setup, state, feedback);
        phase(match purpose {
            Purpose::Generate => Phase::Generating,
            _ => Phase::Repairing,
        });
        let reply =
            steps::generate(self.model, purpose, messages, &mut state.usage, iteration).await?;
        let folder = iteration_dir(&job.run_dir, number);
        artifacts::create_dir(&folder)?;
        let rules = Rules {
            limits: &job.settings.bundle,
            inputs: &setup.input_names,
            allowed_base_images: &job.settings.docker.allowed_base_images,
        };
        let bundle = steps::validate(&reply, state.current.as_ref(), &rules, iteration)?;
        let files = bundle.context_files(&setup.inputs);
        write_tree(&folder.join("bundle"), &files)?;
        state.current = Some(bundle);

        let trial = Trial {
            job,
            engine: self.engine,
            labels: &setup.labels,
            started: self.started,
            artifacts: Some(&folder),
            phase: &phase,
        };
        let checked = trial.attempt(&files, iteration).await?;
        if job.spec.judge {
            phase(Phase::Judging);
            steps::judge(job, self.model, &checked, &mut state.usage, iteration).await?;
        }
        let digest = iteration.record.context_digest.clone().unwrap_or_default();
        let tag = job.verified_tag(&digest);
        self.engine.tag(&checked.image_id, &tag).await?;
        write_tree(&job.run_dir.join("final"), &files)?;
        state.verified = Some((tag, checked.image_id));
        Ok(())
    }
}

/// The run directory, the spec and inputs kept in it, and the prompts every
/// iteration starts from.
fn prepare(job: &Job, state: &mut State) -> Result<Setup, LoopError> {
    artifacts::create_dir(&job.run_dir.join("iterations"))?;
    let inputs = artifacts::read_inputs(&job.spec)?;
    state.kept_spec = Some(artifacts::keep_spec(&job.spec, &inputs, &job.run_dir)?);
    Ok(Setup {
        input_names: inputs.keys().cloned().collect(),
        system: prompts::system(job),
        task: prompts::task(job, &inputs),
        labels: job.labels(),
        inputs,
    })
}

/// The next request: the task alone, or the task and a repair carrying the feedback.
/// A repair shows the current bundle once, in full, in its own text; the earlier reply
/// is not sent again as an assistant turn, since the bundle says all of it that holds.
fn request(
    job: &Job,
    setup: &Setup,
    state: &State,
    feedback: Option<&str>,
) -> (Purpose, Vec<ChatMessage>) {
    let mut messages = vec![
        message(Role::System, &setup.system),
        message(Role::User, &setup.task),
    ];
    let Some(feedback) = feedback else {
        return (Purpose::Generate, messages);
    };
    let failed = state.history.last().map_or(0, |record| record.iteration);
    let repair = prompts::repair(
        job,
        failed,
        feedback,
        &state.history,
        state.current.as_ref(),
    );
    messages.push(message(Role::User, repair));
    (Purpose::Repair, messages)
}

/// Why the run may not start another iteration, if it may not.
fn budget_spent(job: &Job, usage: &UsageTotals, started: Instant) -> Option<StopReason> {
    let tokens = job.limits.max_total_tokens;
    if tokens > 0 && usage.total_tokens() >= tokens {
        return Some(StopReason::MaxTotalTokens);
    }
    (job.wall_left(started) == Some(std::time::Duration::ZERO)).then_some(StopReason::MaxWallSecs)
}

/// Ends an iteration: its record takes the ending, goes to `result.json`, the events
/// and the history. Returns the feedback for the next request.
fn finish(
    job: &Job,
    state: &mut State,
    events: &EventSink,
    iteration: Iteration,
    ending: Ending,
) -> Result<String, LoopError> {
    let overhead_ms = iteration.overhead_ms();
    let mut record = iteration.record;
    record.outcome = ending.outcome;
    record.detail = ending.detail;
    record.overhead_ms = overhead_ms;
    record.model_ms = u64::try_from(iteration.waited.model.as_millis()).unwrap_or(u64::MAX);
    let path = iteration_dir(&job.run_dir, record.iteration).join("result.json");
    write_json(&path, &record)?;
    events(Event::IterationFinished {
        spec: job.spec.name.clone(),
        iteration: record.iteration,
        outcome: record.outcome,
        detail: record.detail.clone(),
    });
    state.history.push(record);
    Ok(ending.feedback)
}

/// Removes what the run created on the engine, except the verified image.
async fn clean_up<E: EnginePort>(job: &Job, engine: &E, state: &State) -> Result<(), LoopError> {
    let keep = state.verified.as_ref().map(|(_, id)| id.as_str());
    engine
        .remove_labelled(agent_sandbox::LABEL_RUN, &job.run_id, keep)
        .await?;
    let layers: Vec<String> = state.layers.iter().cloned().collect();
    engine.remove_untagged_images(&layers).await?;
    Ok(())
}

fn report(
    job: &Job,
    state: State,
    stopped_by: StopReason,
    error: Option<&LoopError>,
    started: Instant,
) -> Report {
    let (spec_copy, inputs) = state.kept_spec.unzip();
    Report {
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
        stopped_by,
        error: error.map(error_chain),
        spec_copy,
        inputs: inputs.unwrap_or_default(),
        history: state.history,
    }
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
