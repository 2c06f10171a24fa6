//! `agent verify`: a bundle that is already on disk (a run's `final/`) built, run and
//! checked again through the loop's own path, without the model.

use std::collections::BTreeMap;
use std::time::Instant;

use agent_sandbox::{EnginePort, RemovalScope};

use crate::errors::LoopError;
use crate::iteration::{Halt, Iteration};
use crate::job::Job;
use crate::report::{IterationRecord, Outcome};
use crate::trial::Trial;

/// Runs an existing image once and checks it against the job's spec; no build.
pub async fn verify_image<E: EnginePort>(
    job: &Job,
    image: &str,
    engine: &E,
) -> Result<IterationRecord, LoopError> {
    let labels = job.labels();
    let trial = quiet_trial(job, engine, &labels);
    let mut iteration = Iteration::start(1);
    iteration.record.summary = format!("verify {image}");
    iteration.record.image_id = Some(image.to_string());
    let attempt = trial.run_and_check(image.to_string(), &mut iteration).await;
    let cleanup = engine
        .remove(RemovalScope::Labelled {
            key: agent_sandbox::LABEL_RUN,
            value: &job.run_id,
        })
        .await;
    let record = settle(iteration.record, attempt)?;
    cleanup?;
    Ok(record)
}

/// The record with the attempt's outcome; an engine failure is the error.
fn settle<T>(
    mut record: IterationRecord,
    attempt: Result<T, Halt>,
) -> Result<IterationRecord, LoopError> {
    match attempt {
        Ok(_) => record.outcome = Outcome::Passed,
        Err(Halt::Ended(ending)) => {
            record.outcome = ending.outcome;
            record.detail = ending.detail;
        }
        Err(Halt::Failed(error)) => return Err(error),
    }
    Ok(record)
}

/// A trial with no progress events and no files kept: verify prints its own result.
fn quiet_trial<'a, E>(
    job: &'a Job,
    engine: &'a E,
    labels: &'a std::collections::BTreeMap<String, String>,
) -> Trial<'a, E> {
    Trial {
        job,
        engine,
        labels,
        started: Instant::now(),
        artifacts: None,
        phase: &|_| {},
        cache_from: &[],
        base: None,
    }
}

/// Builds, runs and checks `files` once; the record says how it went. What the run
/// created on the engine is removed, whatever the outcome.
pub async fn verify_bundle<E: EnginePort>(
    job: &Job,
    files: &BTreeMap<String, Vec<u8>>,
    engine: &E,
) -> Result<IterationRecord, LoopError> {
    let labels = job.labels();
    let trial = quiet_trial(job, engine, &labels);
    let mut iteration = Iteration::start(1);
    iteration.record.summary = "verify".to_string();
    let attempt = trial.attempt(files, &mut iteration).await;
    let cleanup = async {
        engine
            .remove(RemovalScope::Labelled {
                key: agent_sandbox::LABEL_RUN,
                value: &job.run_id,
            })
            .await?;
        engine
            .remove(RemovalScope::Untagged(&iteration.layers))
            .await
    }
    .await;
    let record = settle(iteration.record, attempt)?;
    cleanup?;
    Ok(record)
}
