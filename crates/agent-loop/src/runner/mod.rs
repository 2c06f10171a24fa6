//! The loop for one spec: generate → validate → build → run → check (→ judge), and on
//! failure feed the evidence back and repair, until the checks pass or the budget
//! (iterations, tokens, wall time) is spent. Each step hands its result to the next
//! or ends the iteration ([`Halt`]); [`finish`] is the one place an iteration ends.
//! A first generation that asks for several candidates goes through
//! [`crate::candidates`] and ends as the chosen candidate's iteration.
//!
//! By step: `setup` prepares what every iteration starts from, `locked` handles the
//! lock (refusal, reuse of its published image, cache sources, writing it), `record`
//! ends iterations and assembles `report.json`; this module drives them.

mod locked;
mod record;
mod setup;

use std::collections::BTreeMap;
use std::time::Instant;

use agent_model::{CodeBundle, Purpose};
use agent_run_dir::IterationDir;
use agent_sandbox::EnginePort;
use tokio_util::sync::CancellationToken;

use self::locked::{keep_lock, refused_by_lock};
use self::record::{finish, report};
use self::setup::{Setup, State, prepare, request, rules};

use crate::artifacts::{self, write_tree};
use crate::base;
use crate::candidates::Generation;
use crate::errors::LoopError;
use crate::events::{Event, EventSink, Phase};
use crate::iteration::{Ending, Halt, Iteration};
use crate::job::Job;
use crate::lock::LockMode;
use crate::ports::ModelPort;
use crate::report::{IterationRecord, Outcome, Report, StopReason, UsageTotals};
use crate::seal::{Verification, seal};
use crate::steps;
use crate::trial::{Checked, Trial};

/// A finished run: the report, for the caller to complete (publishing) and write with
/// [`crate::write_report`], and the failure that stopped it early, if any.
pub struct RunResult {
    pub report: Report,
    pub error: Option<LoopError>,
}

/// Where an iteration's bundle comes from.
enum Source<'a> {
    /// The model: a first generation, or a repair carrying this feedback.
    Model(Option<&'a str>),
    /// The lock beside the spec, built before any model call.
    Lock(&'a CodeBundle),
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
        run_dir: job.run_dir.root().display().to_string(),
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
    if let Err(cleanup_error) = clean_up(job, engine).await {
        tracing::warn!(spec = %job.spec.name, "cleanup failed: {cleanup_error}");
        if error.is_none() && stopped_by != StopReason::Error {
            error = Some(cleanup_error);
        }
    }
    if error.is_some() {
        stopped_by = StopReason::Error;
    }
    let structured_output = run.model.structured_output().map(str::to_owned);
    let mut report = report(job, run.state, stopped_by, error.as_ref(), run.started);
    report.structured_output = structured_output;
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
        let mut setup = prepare(self.job, &mut self.state)?;
        if let Some(reason) = refused_by_lock(self.job, &setup) {
            return Ok(reason);
        }
        setup.base = base::for_run(self.job, self.engine, self.events, setup.lock.as_ref()).await?;
        let mut feedback: Option<String> = None;
        for number in 1..=self.job.limits.max_iterations {
            if let Some(reason) = budget_spent(self.job, &self.state.usage, self.started) {
                return Ok(reason);
            }
            let source = match &setup.lock {
                Some((lock, _)) if number == 1 => Source::Lock(&lock.bundle),
                _ => Source::Model(feedback.as_deref()),
            };
            let mut iteration = Iteration::start(number);
            let candidates = self.job.settings.model.candidates;
            let attempt = match source {
                Source::Model(None) if candidates > 1 => self.best_of(&setup, &mut iteration).await,
                source => self.attempt(&setup, source, &mut iteration).await,
            };
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
            if self.job.lock == LockMode::Locked {
                return Ok(StopReason::LockFailed);
            }
        }
        Ok(StopReason::MaxIterations)
    }

    /// One iteration's steps, from the request to the verified image.
    async fn attempt(
        &mut self,
        setup: &Setup,
        source: Source<'_>,
        iteration: &mut Iteration,
    ) -> Result<(), Halt> {
        let (job, number) = (self.job, iteration.record.iteration);
        let phase = phases(job, self.events, number);
        let from_lock = matches!(source, Source::Lock(_));
        let reply = match source {
            Source::Lock(bundle) => steps::locked(bundle),
            Source::Model(feedback) => {
                let (purpose, messages) = request(job, setup, &self.state, feedback);
                phase(match purpose {
                    Purpose::Generate => Phase::Generating,
                    _ => Phase::Repairing,
                });
                let usage = &mut self.state.usage;
                steps::generate(self.model, purpose, messages, usage, iteration).await?
            }
        };
        let folder = job.run_dir.iteration(number);
        artifacts::create_dir(folder.root())?;
        let current = self.state.current.as_ref();
        let bundle = steps::validate(&reply, current, &rules(job, setup), iteration)?;
        let files = bundle.context_files(&setup.inputs);
        write_tree(&folder.bundle(), &files)?;
        self.state.current = Some(bundle);

        let reused = match from_lock {
            true => self.reuse(setup, &files, iteration, &phase).await?,
            false => None,
        };
        if reused.is_none() {
            self.pull_cache_sources(setup).await?;
        }
        let trial = self.trial(setup, &folder, &phase);
        let checked = match &reused {
            Some((image_id, _)) => trial.run_and_check(image_id.clone(), iteration).await?,
            None => trial.attempt(&files, iteration).await?,
        };
        if job.spec.judge {
            phase(Phase::Judging);
            let usage = &mut self.state.usage;
            steps::judge(job, self.model, &checked, usage, iteration).await?;
        }
        match reused {
            Some((_, published)) => {
                self.take_reused(checked, &files, iteration, published)
                    .await
            }
            None => self.accept(setup, checked, &files, iteration).await,
        }
    }

    /// A first generation of several candidates (`[model] candidates`): the run goes
    /// on from the first to pass, or else from the one that got furthest.
    async fn best_of(&mut self, setup: &Setup, iteration: &mut Iteration) -> Result<(), Halt> {
        let (job, number) = (self.job, iteration.record.iteration);
        let phase = phases(job, self.events, number);
        let (_, messages) = request(job, setup, &self.state, None);
        phase(Phase::Generating);
        self.pull_cache_sources(setup).await?;
        let generation = Generation {
            job,
            model: &mut *self.model,
            engine: self.engine,
            labels: &setup.labels,
            inputs: &setup.inputs,
            rules: rules(job, setup),
            started: self.started,
            phase: &phase,
            usage: &mut self.state.usage,
            cache_from: self.state.cache_from.as_deref().unwrap_or_default(),
            base: setup.base.as_ref(),
        };
        let count = job.settings.model.candidates;
        let chosen = generation.best_of(messages, number, count).await?;
        *iteration = chosen.iteration;
        (self.events)(Event::CandidatesFinished {
            spec: job.spec.name.clone(),
            iteration: number,
            candidates: chosen
                .records
                .iter()
                .map(|record| (record.candidate, record.outcome, record.chosen))
                .collect(),
        });
        self.state.candidates = chosen.records;
        self.state.current = chosen.bundle;
        let checked = chosen.result.map_err(Halt::Ended)?;
        self.accept(setup, checked, &chosen.files, iteration).await
    }

    /// The engine side of an iteration whose artifacts go to `folder`.
    fn trial<'t>(
        &'t self,
        setup: &'t Setup,
        folder: &'t IterationDir,
        phase: &'t (dyn Fn(Phase) + Send + Sync),
    ) -> Trial<'t, E> {
        Trial {
            job: self.job,
            engine: self.engine,
            labels: &setup.labels,
            started: self.started,
            artifacts: Some(folder),
            phase,
            cache_from: self.state.cache_from.as_deref().unwrap_or_default(),
            base: setup.base.as_ref(),
        }
    }

    /// Seals the image that passed, keeps its bundle as `final/` and writes the lock.
    /// An engine lost while sealing sends the same files through build, run and check
    /// on another engine, and the image that passed there is sealed.
    async fn accept(
        &mut self,
        setup: &Setup,
        mut checked: Checked,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &mut Iteration,
    ) -> Result<(), Halt> {
        let job = self.job;
        let digest = iteration.record.context_digest.clone().unwrap_or_default();
        let tag = job.verified_tag(&digest);
        let sealed = loop {
            let base = self.verified_base(&iteration.record);
            let verification = Verification {
                image_id: &checked.image_id,
                spec_digest: &setup.spec_digest,
                bundle_digest: &digest,
                base: base.as_ref(),
                iterations: built_iterations(&self.state.history) + 1,
                checks: iteration.record.passed_checks().collect(),
            };
            let error = match seal(job, self.engine, &verification, &tag).await {
                Ok(sealed) => break sealed,
                Err(error) => error,
            };
            let Some(lost) = self.engine.lose_engine().await else {
                return Err(error.into());
            };
            tracing::warn!(engine = %lost, "the engine was lost while sealing ({error}); building again on another");
            iteration.record.retried_after_lost.push(lost);
            let number = iteration.record.iteration;
            let phase = phases(job, self.events, number);
            let folder = job.run_dir.iteration(number);
            checked = self
                .trial(setup, &folder, &phase)
                .attempt(files, iteration)
                .await?;
        };
        let state = &mut self.state;
        write_tree(&job.run_dir.final_bundle(), files)?;
        state.verified = Some((tag, sealed.image_id.clone(), Some(sealed)));
        if let Some(lock) = &mut state.lock {
            let bundle = state.current.as_ref().expect("a verified bundle");
            let base_digest = iteration.record.base_digest.as_deref();
            lock.written = keep_lock(job, setup, bundle, &digest, base_digest)?;
        }
        Ok(())
    }

    /// The base the iteration's image was built on, as the current bundle names it.
    fn verified_base(&self, record: &IterationRecord) -> Option<base::BasePin> {
        let dockerfile = &self.state.current.as_ref()?.dockerfile;
        Some(base::BasePin {
            name: base::last_stage_base(dockerfile)?,
            reference: record.base_digest.clone()?,
        })
    }
}

/// Sends an iteration's phases as events.
fn phases<'a>(
    job: &'a Job,
    events: &'a EventSink,
    iteration: u32,
) -> impl Fn(Phase) + Send + Sync + 'a {
    move |phase| {
        events(Event::Phase {
            spec: job.spec.name.clone(),
            iteration,
            phase,
        })
    }
}

/// Iterations that got as far as a build (a published image taken in place of one is
/// no build).
pub(super) fn built_iterations(history: &[IterationRecord]) -> u32 {
    history
        .iter()
        .filter(|record| record.build_secs.is_some())
        .count() as u32
}

/// Why the run may not start another iteration, if it may not.
fn budget_spent(job: &Job, usage: &UsageTotals, started: Instant) -> Option<StopReason> {
    let tokens = job.limits.max_total_tokens;
    if tokens > 0 && usage.total_tokens() >= tokens {
        return Some(StopReason::MaxTotalTokens);
    }
    (job.wall_left(started) == Some(std::time::Duration::ZERO)).then_some(StopReason::MaxWallSecs)
}

/// Removes what the run created on the engine and is its own: its containers, if
/// any outlived their runs. Its only labelled image is the verified one (`seal` removes
/// one it could not tag); the layers its builds made or hit stay under the cache's
/// tags, for the next build to stand on, and the cache is trimmed to its cap once at
/// the end of the whole `agent run`, not per spec: each trim lists every image.
async fn clean_up<E: EnginePort>(job: &Job, engine: &E) -> Result<(), LoopError> {
    engine
        .remove(agent_sandbox::RemovalScope::Containers {
            key: agent_sandbox::LABEL_RUN,
            value: &job.run_id,
        })
        .await?;
    Ok(())
}
