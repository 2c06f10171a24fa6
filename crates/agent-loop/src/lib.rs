//! The loop's state machine: generate a bundle, validate it, build, run and check it,
//! and feed the evidence of each failure back to the model until the checks pass or
//! the budget is spent. It emits events and writes the run directory; it never prints.

pub mod bundle;
mod errors;
mod events;
pub mod feedback;
mod ports;
mod prompts;
mod report;
mod runner;

pub use errors::LoopError;
pub use events::{Event, EventSink, Phase};
pub use ports::{EnginePort, ModelPort, run_labels};
pub use prompts::{Prompts, render};
pub use report::{IterationRecord, Outcome, Report, StopReason, UsageTotals};
pub use runner::{Job, RunResult, error_chain, run_limits, run_spec, verify_bundle};

#[cfg(test)]
mod tests;
