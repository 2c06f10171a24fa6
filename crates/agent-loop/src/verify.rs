//! `agent verify`: a bundle that is already on disk (a run's `final/`) built, run and
//! checked again through the loop's own path, without the model.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::errors::LoopError;
use crate::iteration::{Halt, Iteration};
use crate::job::Job;
use crate::ports::EnginePort;
use crate::report::{IterationRecord, Outcome};
use crate::trial::Trial;

/// Builds, runs and checks `files` once; the record says how it went. What the run
/// created on the engine is removed, whatever the outcome.
pub async fn verify_bundle<E: EnginePort>(
    job: &Job,
    files: &BTreeMap<String, Vec<u8>>,
    engine: &E,
) -> Result<IterationRecord, LoopError> {
    let labels = job.labels();
    let trial = Trial {
        job,
        engine,
        labels: &labels,
        started: Instant::now(),
        artifacts: None,
        phase: &|_| {},
    };
    let mut iteration = Iteration::start(1);
    iteration.record.summary = "verify".to_string();
    let attempt = trial.attempt(files, &mut iteration).await;
    let cleanup = async {
        engine
            .remove_labelled(agent_sandbox::LABEL_RUN, &job.run_id, None)
            .await?;
        engine.remove_untagged_images(&iteration.layers).await
    }
    .await;
    let mut record = iteration.record;
    match attempt {
        Ok(_) => record.outcome = Outcome::Passed,
        Err(Halt::Ended(ending)) => {
            record.outcome = ending.outcome;
            record.detail = ending.detail;
        }
        Err(Halt::Failed(error)) => return Err(error),
    }
    cleanup?;
    Ok(record)
}
