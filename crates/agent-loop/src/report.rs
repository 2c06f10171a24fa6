//! The writer's side of `report.json` and `result.json`, whose records are defined
//! once in `agent_run_dir::report`: what a run's outcome puts in a record, seconds as
//! reports show them, and the write.

use agent_sandbox::RunOutcome;

pub use agent_run_dir::report::{
    AttestationRecord, BuildPolicyRecord, CandidateRecord, CaseRecord, EgressRecord, InputDigest,
    IterationRecord, LockReport, LockState, Outcome, Published, RefusedConnection, Report,
    SavedImage, SealRecord, StopReason, SuiteRecord, TestRecord, UsageTotals,
};

/// Takes what a run reports into `record`: its time, exit, OOM kill and stream sizes.
pub(crate) fn take_run(record: &mut IterationRecord, ran: &RunOutcome) {
    record.run_secs = Some(round_secs(ran.duration));
    record.exit_code = ran.exit_code;
    record.oom_killed = ran.oom_killed;
    record.stdout_bytes = Some(ran.stdout.total_bytes);
    record.stderr_bytes = Some(ran.stderr.total_bytes);
    record.stdout_truncated = ran.stdout.truncated;
    record.stderr_truncated = ran.stderr.truncated;
}

/// The egress policy's refusals as `report.json` records them.
pub(crate) fn egress_record(built: &agent_sandbox::BuildOutcome) -> Option<EgressRecord> {
    (!built.egress.kept.is_empty()).then(|| EgressRecord {
        unlisted: built.egress.unlisted,
        refused: built
            .egress
            .kept
            .iter()
            .map(|refusal| RefusedConnection {
                host: refusal.host.clone(),
                port: refusal.port,
                step: refusal.step,
                instruction: refusal.instruction.clone(),
                via: refusal.via.clone(),
                reason: refusal.reason.clone(),
                count: refusal.count,
            })
            .collect(),
    })
}

/// Seconds to the millisecond, as reports show them.
pub(crate) fn round_secs(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Writes `report.json` in `run_dir`, once the run is over and what became of the
/// verified image is known: the loop leaves it to its caller, which publishes.
pub fn write_report(
    report: &Report,
    run_dir: &agent_run_dir::RunDir,
) -> Result<(), crate::errors::LoopError> {
    crate::artifacts::write_json(&run_dir.report_json(), report)
}
