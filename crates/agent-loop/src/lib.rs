//! The loop's state machine: generate a bundle, validate it, build, run and check it,
//! and feed the evidence of each failure back to the model until the checks pass or
//! the budget is spent. It emits events and writes the run directory; it never prints.

mod artifacts;
mod base;
mod base_pin;
pub mod bundle;
mod candidates;
mod errors;
mod events;
pub mod feedback;
mod iteration;
mod job;
mod lock;
mod ports;
mod prompts;
mod report;
mod reuse;
mod runner;
mod seal;
mod steps;
mod templates;
mod text;
mod trial;
mod verification;
mod verify;

pub use artifacts::sha256_hex;
pub use errors::LoopError;
pub use events::{Event, EventSink, Phase};
pub use job::{Job, Provenance, run_labels, run_limits};
pub use lock::{
    LockFile, LockMode, current_spec_digest, lock_dir, record_attestations, record_published,
};
pub use ports::ModelPort;
pub use report::{
    AttestationRecord, CandidateRecord, CaseRecord, InputDigest, IterationRecord, LockReport,
    LockState, Outcome, Published, Report, SavedImage, StopReason, SuiteRecord, TestRecord,
    UsageTotals, write_report,
};
pub use runner::{RunResult, run_spec};
pub use templates::{Prompts, render};
pub use verify::{verify_bundle, verify_image};

#[cfg(test)]
mod tests;
