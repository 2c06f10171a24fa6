//! Best of N: a first generation that asks for several bundles at once
//! (`[model] candidates`), builds, runs and checks them side by side, and keeps the
//! first to pass. When none passes, the run goes on from the one that got furthest
//! (built, then ran, then passed more checks), and its feedback names in one line
//! what each other candidate got wrong.
//!
//! Every candidate's files go to `iterations/1/candidates/<k>/`; the chosen one's are
//! copied to `iterations/1/`, where a single first iteration puts its own, so the
//! rest of the run (repair, report page, verify) reads it like any iteration. All
//! candidates are let finish, so each has an outcome in `report.json` and nothing of
//! theirs is left half-built on the engine.

use std::collections::BTreeMap;
use std::time::Instant;

use agent_model::{ChatMessage, CodeBundle, Reply};
use agent_run_dir::IterationDir;

use agent_sandbox::EnginePort;

use crate::artifacts::{self, write_tree};
use crate::base::BasePin;
use crate::bundle::{Bundle, Rules};
use crate::errors::LoopError;
use crate::events::Phase;
use crate::iteration::{Ending, Halt, Iteration};
use crate::job::Job;
use crate::ports::ModelPort;
use crate::report::{CandidateRecord, Outcome, UsageTotals, round_secs};
use crate::steps;
use crate::trial::{Checked, Trial};

/// What a best-of-N generation needs from its run.
pub(crate) struct Generation<'a, M, E> {
    pub job: &'a Job,
    pub model: &'a mut M,
    pub engine: &'a E,
    pub labels: &'a BTreeMap<String, String>,
    pub inputs: &'a BTreeMap<String, Vec<u8>>,
    pub rules: Rules<'a>,
    /// When the spec's run started.
    pub started: Instant,
    pub phase: &'a (dyn Fn(Phase) + Send + Sync),
    pub usage: &'a mut UsageTotals,
    /// Local images the builds may take cached steps from.
    pub cache_from: &'a [String],
    /// The base image the builds stand on when their Dockerfile names it.
    pub base: Option<&'a BasePin>,
}

/// The candidate the run goes on from, and every candidate's record.
pub(crate) struct Chosen {
    pub iteration: Iteration,
    pub bundle: Option<Bundle>,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Passed (to be sealed), or how it ended, with the others' lines in the feedback.
    pub result: Result<Checked, Ending>,
    pub records: Vec<CandidateRecord>,
}

/// One candidate in progress.
struct Candidate {
    number: u32,
    iteration: Iteration,
    bundle: Option<Bundle>,
    files: BTreeMap<String, Vec<u8>>,
    result: Option<Result<Checked, Ending>>,
    /// When its outcome was known, from the request for the bundles.
    finished: Option<Instant>,
}

impl Candidate {
    /// `iterations/<n>/candidates/<k>/`.
    fn folder(&self, job: &Job) -> IterationDir {
        job.run_dir
            .iteration(self.iteration.record.iteration)
            .candidate(self.number)
    }

    fn passed(&self) -> bool {
        matches!(self.result, Some(Ok(_)))
    }

    fn outcome(&self) -> Outcome {
        match &self.result {
            Some(Ok(_)) => Outcome::Passed,
            Some(Err(ending)) => ending.outcome,
            None => Outcome::InvalidBundle,
        }
    }

    /// How far it got: built, then ran, then passed more checks.
    fn progress(&self) -> (u8, usize) {
        let stage = match self.outcome() {
            Outcome::InvalidBundle => 0,
            Outcome::BuildFailed | Outcome::BuildTimeout => 1,
            Outcome::RunFailed | Outcome::RunTimeout => 2,
            Outcome::ChecksFailed => 3,
            Outcome::Passed => 4,
        };
        (stage, self.iteration.record.passed_checks().count())
    }
}

impl<M: ModelPort, E: EnginePort> Generation<'_, M, E> {
    /// Asks for `count` bundles with `messages`, tries them all, and chooses one.
    pub async fn best_of(
        mut self,
        messages: Vec<ChatMessage>,
        number: u32,
        count: u32,
    ) -> Result<Chosen, Halt> {
        let asked = Instant::now();
        let mut iterations: Vec<Iteration> = (0..count).map(|_| Iteration::start(number)).collect();
        let replies =
            steps::generate_candidates(self.model, &messages, self.usage, &mut iterations).await?;
        let mut candidates = Vec::new();
        for ((number, iteration), reply) in (1..).zip(iterations).zip(replies) {
            candidates.push(self.prepare(&messages, number, iteration, reply).await?);
        }
        // The model stays with the generation: the trials run side by side and share
        // only what may be shared.
        let shared = Trial {
            job: self.job,
            engine: self.engine,
            labels: self.labels,
            started: self.started,
            artifacts: None,
            phase: self.phase,
            cache_from: self.cache_from,
            base: self.base,
        };
        try_all(&shared, &mut candidates).await?;
        self.judge_in_turn(&mut candidates).await?;
        let index = chosen_index(&candidates);
        let records = records(&candidates, candidates[index].number, asked);
        let chosen = candidates.swap_remove(index);
        copy_up(self.job, &chosen)?;
        let Candidate {
            iteration,
            bundle,
            files,
            result,
            ..
        } = chosen;
        let result = match result {
            Some(Ok(checked)) => Ok(checked),
            Some(Err(mut ending)) => {
                let own = ending.feedback.trim_end();
                ending.feedback = format!("{own}{}", others_lines(&records));
                Err(ending)
            }
            None => unreachable!("every candidate has an outcome once judged"),
        };
        Ok(Chosen {
            iteration,
            bundle,
            files,
            result,
            records,
        })
    }

    /// A reply made usable (asked once more if not), validated and written to the
    /// candidate's folder.
    async fn prepare(
        &mut self,
        messages: &[ChatMessage],
        number: u32,
        mut iteration: Iteration,
        reply: Reply<CodeBundle>,
    ) -> Result<Candidate, Halt> {
        let reply = steps::reformat_unusable(
            self.model,
            messages.to_vec(),
            reply,
            self.usage,
            &mut iteration,
        )
        .await?;
        let mut candidate = Candidate {
            number,
            iteration,
            bundle: None,
            files: BTreeMap::new(),
            result: None,
            finished: None,
        };
        let folder = candidate.folder(self.job);
        artifacts::create_dir(folder.root())?;
        match steps::validate(&reply, None, &self.rules, &mut candidate.iteration) {
            Ok(bundle) => {
                candidate.files = bundle.context_files(self.inputs);
                write_tree(&folder.bundle(), &candidate.files)?;
                candidate.bundle = Some(bundle);
            }
            Err(Halt::Ended(ending)) => {
                candidate.result = Some(Err(ending));
                candidate.finished = Some(Instant::now());
            }
            Err(Halt::Failed(error)) => return Err(Halt::Failed(error)),
        }
        Ok(candidate)
    }

    /// With a judge, asks it about the candidates that met the checks, in the order
    /// they did, until one passes; those after it are not asked.
    async fn judge_in_turn(&mut self, candidates: &mut [Candidate]) -> Result<(), Halt> {
        if !self.job.spec.judge {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..candidates.len())
            .filter(|index| candidates[*index].passed())
            .collect();
        order.sort_by_key(|index| candidates[*index].finished);
        for index in order {
            let candidate = &mut candidates[index];
            let Some(Ok(checked)) = &candidate.result else {
                continue;
            };
            (self.phase)(Phase::Judging);
            let judged = steps::judge(
                self.job,
                self.model,
                checked,
                self.usage,
                &mut candidate.iteration,
            )
            .await;
            match judged {
                Ok(()) => return Ok(()),
                Err(Halt::Ended(ending)) => candidate.result = Some(Err(ending)),
                Err(Halt::Failed(error)) => return Err(Halt::Failed(error)),
            }
        }
        Ok(())
    }
}

/// Builds, runs and checks every valid candidate side by side, each with `shared` and
/// its own folder; the engine's slots bound how many build or run at once. An engine
/// failure stops the run once all have ended.
async fn try_all<E: EnginePort>(
    shared: &Trial<'_, E>,
    candidates: &mut [Candidate],
) -> Result<(), LoopError> {
    let trials = candidates
        .iter_mut()
        .filter(|candidate| candidate.bundle.is_some())
        .map(|candidate| async move {
            let folder = candidate.folder(shared.job);
            let trial = Trial {
                artifacts: Some(&folder),
                ..*shared
            };
            let tried = trial
                .attempt(&candidate.files, &mut candidate.iteration)
                .await;
            candidate.finished = Some(Instant::now());
            match tried {
                Ok(checked) => candidate.result = Some(Ok(checked)),
                Err(Halt::Ended(ending)) => candidate.result = Some(Err(ending)),
                Err(Halt::Failed(error)) => return Err(error),
            }
            Ok(())
        });
    let tried = futures_util::future::join_all(trials).await;
    tried.into_iter().collect()
}

/// The first to pass; when none did, the one that got furthest (the first of equals).
fn chosen_index(candidates: &[Candidate]) -> usize {
    let winner = candidates
        .iter()
        .enumerate()
        .filter(|(_, candidate)| candidate.passed())
        .min_by_key(|(_, candidate)| candidate.finished)
        .map(|(index, _)| index);
    winner.unwrap_or_else(|| {
        candidates
            .iter()
            .enumerate()
            .max_by_key(|(index, candidate)| (candidate.progress(), std::cmp::Reverse(*index)))
            .map_or(0, |(index, _)| index)
    })
}

/// The chosen candidate's files, where a single first iteration puts its own.
fn copy_up(job: &Job, chosen: &Candidate) -> Result<(), LoopError> {
    let target = job.run_dir.iteration(chosen.iteration.record.iteration);
    if chosen.bundle.is_some() {
        write_tree(&target.bundle(), &chosen.files)?;
    }
    let evidence = chosen.folder(job).evidence().into_iter();
    for (from, to) in evidence.zip(target.evidence()) {
        if let Ok(bytes) = std::fs::read(from) {
            artifacts::write_file(&to, &bytes)?;
        }
    }
    Ok(())
}

/// Every candidate's record, `chosen` marked.
fn records(candidates: &[Candidate], chosen: u32, asked: Instant) -> Vec<CandidateRecord> {
    candidates
        .iter()
        .map(|candidate| {
            let record = &candidate.iteration.record;
            let detail = match &candidate.result {
                Some(Err(ending)) => ending.detail.clone(),
                _ => String::new(),
            };
            CandidateRecord {
                candidate: candidate.number,
                outcome: candidate.outcome(),
                detail,
                chosen: chosen == candidate.number,
                context_digest: record.context_digest.clone(),
                image_id: record.image_id.clone(),
                build_secs: record.build_secs,
                run_secs: record.run_secs,
                checks_passed: u32::try_from(record.passed_checks().count()).unwrap_or(u32::MAX),
                model_ms: u64::try_from(candidate.iteration.waited.model.as_millis())
                    .unwrap_or(u64::MAX),
                finished_secs: candidate
                    .finished
                    .map_or(0.0, |finished| round_secs(finished - asked)),
                usage: candidate.iteration.usage,
            }
        })
        .collect()
}

/// What the other candidates got wrong, one line each, for the chosen one's feedback.
fn others_lines(records: &[CandidateRecord]) -> String {
    let lines: Vec<String> = records
        .iter()
        .filter(|record| !record.chosen)
        .map(|record| {
            format!(
                "- candidate {}: {}{}",
                record.candidate,
                record.outcome.as_str(),
                if record.detail.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", record.detail.replace('\n', " "))
                }
            )
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "\n\nThis was the furthest of {} versions written side by side; the others failed too:\n{}",
        records.len(),
        lines.join("\n")
    )
}
