//! One iteration in progress and how it ends: the vocabulary the steps of an
//! iteration share.

use std::time::{Duration, Instant};

use crate::errors::LoopError;
use crate::report::{IterationRecord, Outcome, UsageTotals};

/// One iteration in progress: its record, and what it spent and left behind.
pub(crate) struct Iteration {
    pub record: IterationRecord,
    pub started: Instant,
    pub waited: Waited,
    /// Images its builds committed, removed when the run ends.
    pub layers: Vec<String>,
    /// The model calls made for it.
    pub usage: UsageTotals,
}

impl Iteration {
    pub fn start(number: u32) -> Iteration {
        Iteration {
            record: IterationRecord::new(number),
            started: Instant::now(),
            waited: Waited::default(),
            layers: Vec::new(),
            usage: UsageTotals::default(),
        }
    }

    /// Milliseconds of the orchestrator's own work so far: everything but the model's
    /// answers and the engine's build and run.
    pub fn overhead_ms(&self) -> f64 {
        let own = self
            .started
            .elapsed()
            .saturating_sub(self.waited.model)
            .saturating_sub(self.waited.engine);
        (own.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
    }
}

/// An iteration that ended: its outcome, a sentence for `detail`, and the evidence
/// sent back to the model (empty when it passed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ending {
    pub outcome: Outcome,
    pub detail: String,
    pub feedback: String,
}

impl Ending {
    pub fn passed() -> Ending {
        Ending {
            outcome: Outcome::Passed,
            detail: String::new(),
            feedback: String::new(),
        }
    }
}

/// Why a step did not hand its result to the next: the iteration ended (an outcome,
/// fed back), or the run failed (the engine, the endpoint or the disk).
#[derive(Debug)]
pub(crate) enum Halt {
    Ended(Ending),
    Failed(LoopError),
}

impl<E: Into<LoopError>> From<E> for Halt {
    fn from(error: E) -> Halt {
        Halt::Failed(error.into())
    }
}

/// Ends the iteration with `outcome`.
pub(crate) fn end<T>(
    outcome: Outcome,
    detail: impl Into<String>,
    feedback: impl Into<String>,
) -> Result<T, Halt> {
    Err(Halt::Ended(Ending {
        outcome,
        detail: detail.into(),
        feedback: feedback.into(),
    }))
}

/// Time an iteration spent waiting on others: the model's answers, the engine's work.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Waited {
    pub model: Duration,
    /// The part of `model` spent at the endpoint's gate, behind other specs' requests
    /// or a rate-limit pause.
    pub queued: Duration,
    pub engine: Duration,
}
