//! The loop for one spec: generate → validate → build → run → check (→ judge), and on
//! failure feed the evidence back and repair, until the checks pass or the budget
//! (iterations, tokens, wall time) is spent. Each step hands its result to the next
//! or ends the iteration ([`Halt`]); [`finish`] is the one place an iteration ends.
//! A first generation that asks for several candidates goes through
//! [`crate::candidates`] and ends as the chosen candidate's iteration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use agent_model::{ChatMessage, CodeBundle, Purpose, Role};
use agent_sandbox::Sealed;
use tokio_util::sync::CancellationToken;

use agent_run_dir::IterationDir;

use crate::artifacts::{self, InputDigest, write_json, write_tree};
use crate::bundle::{Bundle, Rules};
use crate::candidates::Generation;
use crate::errors::LoopError;
use crate::events::{Event, EventSink, Phase};
use crate::iteration::{Ending, Halt, Iteration};
use crate::job::Job;
use crate::lock::{self, Lock, LockFile, LockMode, LockState};
use crate::ports::{EnginePort, ModelPort};
use crate::prompts::{self, message};
use crate::report::{
    CandidateRecord, IterationRecord, LockReport, Outcome, Published, Report, SealRecord,
    StopReason, UsageTotals, round_secs,
};
use crate::reuse::{self, Wanted};
use crate::seal::{Verification, seal};
use crate::steps;
use crate::trial::{Checked, Trial};

/// A finished run: the report, for the caller to complete (publishing) and write with
/// [`Report::write`], and the failure that stopped it early, if any.
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
    /// The verified image's tag, its id, and how it was sealed (a reused published
    /// image carries its labels already and is not sealed again).
    verified: Option<(String, String, Option<Sealed>)>,
    /// The run directory's copy of the spec, and the inputs' digests.
    kept_spec: Option<(String, Vec<InputDigest>)>,
    /// The lock as the run found it, and whether it wrote one.
    lock: Option<LockReport>,
    /// The first generation's candidates, when it asked for several.
    candidates: Vec<CandidateRecord>,
    /// The published image that passed in place of a build.
    reused: Option<Published>,
    /// The images builds may take cached steps from, once pulled before the first build.
    cache_from: Option<Vec<String>>,
}

/// What every iteration of a run shares.
struct Setup {
    inputs: BTreeMap<String, Vec<u8>>,
    input_names: BTreeSet<String>,
    system: String,
    task: String,
    labels: BTreeMap<String, String>,
    spec_digest: String,
    /// The lock beside the spec when it is read and there is one, and whether it is fresh.
    lock: Option<(Lock, LockState)>,
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
        let setup = prepare(self.job, &mut self.state)?;
        if let Some(reason) = refused_by_lock(self.job, &setup) {
            return Ok(reason);
        }
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

    /// The published image a fresh lock names, pulled in place of a build when its
    /// labels match this spec and bundle: its id and where it came from.
    async fn reuse(
        &mut self,
        setup: &Setup,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &mut Iteration,
        phase: &(dyn Fn(Phase) + Send + Sync),
    ) -> Result<Option<(String, Published)>, Halt> {
        let Some((lock, LockState::Fresh)) = &setup.lock else {
            return Ok(None);
        };
        let Some(published) = &lock.file.published else {
            return Ok(None);
        };
        let context = agent_sandbox::build_context(files)?;
        phase(Phase::Pulling);
        let wanted = Wanted {
            published,
            spec_digest: &setup.spec_digest,
            bundle_digest: &context.digest,
        };
        let Some(image_id) =
            reuse::published_image(self.job, self.engine, self.events, &wanted).await?
        else {
            return Ok(None);
        };
        (self.events)(Event::Reused {
            spec: self.job.spec.name.clone(),
            reference: published.reference.clone(),
        });
        let record = &mut iteration.record;
        record.context_digest = Some(context.digest);
        record.image_id = Some(image_id.clone());
        record.engine = self.engine.engine_host();
        Ok(Some((image_id, published.clone())))
    }

    /// A published image that passed: it carries its verification's labels already,
    /// so it is only tagged as this spec's verified image; the lock stays as it is.
    async fn take_reused(
        &mut self,
        checked: Checked,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &Iteration,
        published: Published,
    ) -> Result<(), Halt> {
        let job = self.job;
        let digest = iteration
            .record
            .context_digest
            .as_deref()
            .unwrap_or_default();
        let tag = job.verified_tag(digest);
        self.engine.tag(&checked.image_id, &tag).await?;
        write_tree(&job.run_dir.final_bundle(), files)?;
        self.state.verified = Some((tag, checked.image_id, None));
        self.state.reused = Some(published);
        Ok(())
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

    /// Seals the image that passed, keeps its bundle as `final/` and writes the lock.
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
        }
    }

    /// Before the first build: the lock's published image (under its digest), for
    /// the build to take every unchanged step from, however stale the lock; the
    /// repository's moving tags of the spec, where runs push (the previous push, when
    /// no committed lock names it); and `[docker] cache_from`.
    async fn pull_cache_sources(&mut self, setup: &Setup) -> Result<(), Halt> {
        if self.state.cache_from.is_some() {
            return Ok(());
        }
        let published = setup
            .lock
            .as_ref()
            .and_then(|(lock, _)| lock.file.published.as_ref());
        let mut references: Vec<String> = published.map(reuse::pinned).into_iter().collect();
        for reference in self
            .job
            .moving_references()
            .into_iter()
            .chain(self.job.settings.docker.cache_from.iter().cloned())
        {
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
        let kept = reuse::cache_sources(self.job, self.engine, self.events, &references).await?;
        self.state.cache_from = Some(kept);
        Ok(())
    }

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
            let verification = Verification {
                image_id: &checked.image_id,
                spec_digest: &setup.spec_digest,
                bundle_digest: &digest,
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
            lock.written = keep_lock(job, setup, bundle, &digest)?;
        }
        Ok(())
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

/// What a bundle must obey.
fn rules<'a>(job: &'a Job, setup: &'a Setup) -> Rules<'a> {
    Rules {
        limits: &job.settings.bundle,
        inputs: &setup.input_names,
        allowed_base_images: &job.settings.docker.allowed_base_images,
    }
}

/// The run directory, the spec and inputs kept in it, the lock, and the prompts every
/// iteration starts from.
fn prepare(job: &Job, state: &mut State) -> Result<Setup, LoopError> {
    artifacts::create_dir(&job.run_dir.iterations())?;
    let inputs = artifacts::read_inputs(&job.spec)?;
    let suite_files = artifacts::read_suite_files(&job.spec)?;
    state.kept_spec = Some(artifacts::keep_spec(
        &job.spec,
        &inputs,
        &suite_files,
        &job.run_dir,
    )?);
    let spec_digest = lock::spec_digest(&job.spec, &inputs, &suite_files);
    let reads_lock = job.lock != LockMode::Off;
    let found = if reads_lock {
        lock::read(&job.spec)?
    } else {
        None
    };
    let lock = found.map(|lock| {
        let fresh = lock.file.spec_digest == spec_digest
            && lock.file.base_image == job.settings.docker.base_image;
        let state = if fresh {
            LockState::Fresh
        } else {
            LockState::Stale
        };
        (lock, state)
    });
    state.lock = reads_lock.then(|| LockReport {
        path: lock::lock_dir(&job.spec).display().to_string(),
        found: lock
            .as_ref()
            .map_or(LockState::Missing, |(_, state)| *state),
        written: false,
    });
    Ok(Setup {
        input_names: inputs.keys().cloned().collect(),
        system: prompts::system(job),
        task: prompts::task(job, &inputs),
        labels: job.labels(),
        inputs,
        spec_digest,
        lock,
    })
}

/// With `--locked`, a missing or stale lock ends the run before anything is built.
fn refused_by_lock(job: &Job, setup: &Setup) -> Option<StopReason> {
    if job.lock != LockMode::Locked {
        return None;
    }
    match &setup.lock {
        None => Some(StopReason::LockMissing),
        Some((_, LockState::Stale)) => Some(StopReason::LockStale),
        Some(_) => None,
    }
}

/// Writes the lock beside the spec unless it already says exactly this; whether it
/// wrote. A lock rewritten for the same bundle (the spec changed, the bundle did not)
/// keeps the image it was published as: its layers still serve the next build as a
/// cache.
fn keep_lock(job: &Job, setup: &Setup, bundle: &Bundle, digest: &str) -> Result<bool, LoopError> {
    let verified_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let file = LockFile {
        spec_digest: setup.spec_digest.clone(),
        base_image: job.settings.docker.base_image.clone(),
        bundle_digest: digest.to_string(),
        model: job.settings.model.name.clone(),
        verified_at,
        published: setup
            .lock
            .as_ref()
            .filter(|(lock, _)| lock.file.bundle_digest == digest)
            .and_then(|(lock, _)| lock.file.published.clone()),
        attestations: setup
            .lock
            .as_ref()
            .filter(|(lock, _)| lock.file.bundle_digest == digest)
            .map(|(lock, _)| lock.file.attestations.clone())
            .unwrap_or_default(),
    };
    let unchanged = setup.lock.as_ref().is_some_and(|(lock, state)| {
        *state == LockState::Fresh && lock.file.bundle_digest == file.bundle_digest
    });
    if unchanged {
        return Ok(false);
    }
    lock::write(&job.spec, bundle, &file)?;
    Ok(true)
}

/// Iterations that got as far as a build (a published image taken in place of one is
/// no build).
fn built_iterations(history: &[IterationRecord]) -> u32 {
    history
        .iter()
        .filter(|record| record.build_secs.is_some())
        .count() as u32
}

/// The names of the checks an iteration passed.
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
    record.queued_ms = u64::try_from(iteration.waited.queued.as_millis()).unwrap_or(u64::MAX);
    write_json(
        &job.run_dir.iteration(record.iteration).result_json(),
        &record,
    )?;
    events(Event::IterationFinished {
        spec: job.spec.name.clone(),
        iteration: record.iteration,
        outcome: record.outcome,
        detail: record.detail.clone(),
    });
    state.history.push(record);
    Ok(ending.feedback)
}

/// Removes what the run created on the engine and is its own: its containers, if
/// any outlived their runs. Its only labelled image is the verified one (`seal` removes
/// one it could not tag); the layers its builds made or hit stay under the cache's
/// tags, for the next build to stand on, and the cache is trimmed to its cap once at
/// the end of the whole `agent run`, not per spec: each trim lists every image.
async fn clean_up<E: EnginePort>(job: &Job, engine: &E) -> Result<(), LoopError> {
    engine
        .remove_labelled_containers(agent_sandbox::LABEL_RUN, &job.run_id)
        .await?;
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
        iterations: built_iterations(&state.history),
        image: state.verified.as_ref().map(|(tag, _, _)| tag.clone()),
        image_id: state.verified.as_ref().map(|(_, id, _)| id.clone()),
        seal: state
            .verified
            .as_ref()
            .and_then(|(_, _, sealed)| sealed.as_ref())
            .map(|sealed| SealRecord {
                method: sealed.method.name().to_owned(),
                secs: round_secs(sealed.duration),
            }),
        duration_secs: round_secs(started.elapsed()),
        usage: state.usage,
        model: job.settings.model.name.clone(),
        base_image: job.settings.docker.base_image.clone(),
        stopped_by,
        error: error.map(|error| agent_model::error_chain(error)),
        spec_copy,
        inputs: inputs.unwrap_or_default(),
        lock: state.lock,
        structured_output: None,
        history: state.history,
        candidates: state.candidates,
        reused: state.reused,
        published: None,
        saved: None,
        attestations: Vec::new(),
        publish_error: None,
    }
}
