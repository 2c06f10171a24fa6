//! What a run writes of itself: each iteration's end (`result.json`, the event, the
//! history) and `report.json`'s record once the run is over.

use std::time::Instant;

use super::built_iterations;
use super::setup::State;
use crate::artifacts::write_json;
use crate::errors::LoopError;
use crate::events::{Event, EventSink};
use crate::iteration::{Ending, Iteration};
use crate::job::Job;
use crate::report::{Report, SealRecord, StopReason, round_secs};

/// Ends an iteration: its record takes the ending, goes to `result.json`, the events
/// and the history. Returns the feedback for the next request.
pub(super) fn finish(
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

pub(super) fn report(
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
        build: Some(job.build_policy()),
        base_digest: state
            .history
            .last()
            .and_then(|record| record.base_digest.clone()),
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
