//! One bundle through the engine — build, run, check — the path shared by the loop
//! and `agent verify`. Each step hands its result to the next or ends the iteration
//! with an outcome and the evidence to feed back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use agent_run_dir::IterationDir;
use agent_sandbox::{BuildProgress, BuildRequest, BuildStatus, EnginePort, RunOutcome};

use crate::artifacts::write_file;
use crate::base::{self, BasePin};
use crate::errors::LoopError;
use crate::events::Phase;
use crate::feedback;
use crate::iteration::{Halt, Iteration, end};
use crate::job::Job;
use crate::report::{CaseRecord, IterationRecord, Outcome, egress_record, round_secs, take_run};
use crate::text::first_line;
use crate::verification::{self, CaseRun};

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
    pub artifacts: Option<&'a IterationDir>,
    pub phase: &'a (dyn Fn(Phase) + Send + Sync),
    /// Local images the build may take cached steps from.
    pub cache_from: &'a [String],
    /// The base image to build on when the Dockerfile names it (a fresh lock's, or
    /// the one `--refresh-base` pulled); another base is pinned as the engine has it.
    pub base: Option<&'a BasePin>,
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
            return attempt.map_err(|halt| self.with_egress(halt, iteration));
        }
    }

    /// An iteration that ended after its build was refused connections says so, in
    /// its detail and in what the model is told: a refusal often is the failure.
    fn with_egress(&self, halt: Halt, iteration: &Iteration) -> Halt {
        let (mut ending, egress) = match (halt, &iteration.record.egress) {
            (Halt::Ended(ending), Some(egress)) => (ending, egress),
            (halt, _) => return halt,
        };
        let allowed = self.job.settings.docker.build_allowed_hosts();
        ending
            .feedback
            .push_str(&feedback::egress(egress, &allowed));
        ending
            .detail
            .push_str(&feedback::egress_summary(&egress.refused));
        Halt::Ended(ending)
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
        let context = self.context(files, record).await?;
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
        let egress = self.job.egress_policy();
        let request = BuildRequest {
            context: &context,
            labels: &no_labels,
            timeout,
            network: self.job.build_network(),
            egress: egress.as_ref(),
            cache_repository: Some(&cache_repository),
            cache_from: self.cache_from,
            no_cache: false,
        };
        let built = self.engine.build(request, &mut on_progress).await;
        record.engine = self.engine.engine_host();
        let built = built?;
        record.context_digest = Some(context.digest);
        iteration.waited.engine += engine_started.elapsed();
        record.build_secs = Some(round_secs(built.duration));
        record.egress = egress_record(&built);
        iteration.layers.extend(built.intermediate_images());
        self.keep(IterationDir::build_log, built.log.as_bytes())?;
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

    /// The build context of `files` on the pinned base: the Dockerfile's `FROM` names
    /// the pin, the digest stays the bundle's as written. The pin goes on the record.
    async fn context(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        record: &mut IterationRecord,
    ) -> Result<agent_sandbox::BuildContext, Halt> {
        let written = agent_sandbox::build_context(files)?;
        let pinned = base::for_build(self.engine, self.base, files).await?;
        let (pin, rewritten) = pinned.unzip();
        record.base_digest = pin.map(|pin| pin.reference);
        match rewritten.flatten() {
            Some(files) => Ok(agent_sandbox::BuildContext {
                digest: written.digest,
                ..agent_sandbox::build_context(&files)?
            }),
            None => Ok(written),
        }
    }

    /// Runs the image's cases and gathers what its other checks read (config, files,
    /// structure-test commands), then judges all of it.
    pub async fn run_and_check(
        &self,
        image_id: String,
        iteration: &mut Iteration,
    ) -> Result<Checked, Halt> {
        (self.phase)(Phase::Running);
        let engine_started = Instant::now();
        let facts =
            verification::gather(self.job, self.engine, &image_id, self.labels, self.started).await;
        let record = &mut iteration.record;
        record.engine = self.engine.engine_host().or(record.engine.take());
        let facts = facts?;
        iteration.waited.engine += engine_started.elapsed();
        // A service's logs stand where a spec without cases keeps its run's output.
        let service_run = facts
            .service
            .as_ref()
            .filter(|_| facts.cases.is_empty())
            .map(|served| CaseRun::new(verification::service::as_run(served), 0));
        let runs = if facts.cases.is_empty() {
            service_run.as_slice()
        } else {
            &facts.cases
        };
        self.keep_runs(runs)?;
        if let Some(first) = runs.first() {
            take_run(record, &first.ran);
        }
        if !self.job.spec.cases.is_empty() {
            record.cases = self
                .job
                .spec
                .cases
                .iter()
                .zip(&facts.cases)
                .map(|(case, run)| CaseRecord {
                    name: case.name.clone(),
                    exit_code: run.ran.exit_code,
                    run_secs: round_secs(run.ran.duration),
                    timed_out: run.ran.timed_out,
                    oom_killed: run.ran.oom_killed,
                })
                .collect();
        }

        record.suites = verification::suites::records(&self.job.spec.suites, &facts.suites);

        (self.phase)(Phase::Checking);
        let (checks, ending) = verification::judge(self.job, &facts);
        record.checks = checks;
        if let Some(ending) = ending {
            return Err(Halt::Ended(ending));
        }
        let first = facts.cases.into_iter().next().or(service_run);
        Ok(match first {
            Some(run) => Checked {
                image_id,
                ran: run.ran,
                stdout: run.stdout,
                stderr: run.stderr,
            },
            None => Checked {
                image_id,
                ran: RunOutcome::default(),
                stdout: String::new(),
                stderr: String::new(),
            },
        })
    }

    /// The first case's output as `stdout.txt` and `stderr.txt`, as a spec without
    /// cases always had them; every case's also in `cases/<n>/` when there are several.
    fn keep_runs(&self, runs: &[CaseRun]) -> Result<(), LoopError> {
        if let Some(first) = runs.first() {
            self.keep(IterationDir::stdout, &first.ran.stdout.bytes)?;
            self.keep(IterationDir::stderr, &first.ran.stderr.bytes)?;
        }
        if let (true, Some(artifacts)) = (runs.len() > 1, self.artifacts) {
            for (number, run) in (1u32..).zip(runs) {
                let folder = artifacts.case(number);
                crate::artifacts::create_dir(folder.root())?;
                write_file(&folder.stdout(), &run.ran.stdout.bytes)?;
                write_file(&folder.stderr(), &run.ran.stderr.bytes)?;
            }
        }
        Ok(())
    }

    fn keep(&self, file: fn(&IterationDir) -> PathBuf, bytes: &[u8]) -> Result<(), LoopError> {
        match self.artifacts {
            Some(folder) => write_file(&file(folder), bytes),
            None => Ok(()),
        }
    }
}
