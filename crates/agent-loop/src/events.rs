//! What the loop reports while it works; the CLI turns these into progress lines.

use crate::report::{Outcome, StopReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Generating,
    Repairing,
    Building {
        step: u32,
        total: u32,
    },
    Running,
    Checking,
    Judging,
    /// Pulling a fresh lock's published image in place of a build.
    Pulling,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        spec: String,
        run_dir: String,
        max_iterations: u32,
    },
    Phase {
        spec: String,
        iteration: u32,
        phase: Phase,
    },
    IterationFinished {
        spec: String,
        iteration: u32,
        outcome: Outcome,
        detail: String,
    },
    /// The candidates of a first generation that asked for several, before their
    /// iteration finishes as the chosen one's: `(candidate, outcome, chosen)`.
    CandidatesFinished {
        spec: String,
        iteration: u32,
        candidates: Vec<(u32, Outcome, bool)>,
    },
    /// The published image of a fresh lock was taken in place of a build.
    Reused { spec: String, reference: String },
    /// The published image could not be taken: the bundle is built instead.
    ReuseSkipped {
        spec: String,
        reference: String,
        reason: String,
    },
    /// `--refresh-base` pulled the base image again: its pin now, the lock's before,
    /// and whether it moved.
    BaseResolved {
        spec: String,
        image: String,
        reference: String,
        previous: Option<String>,
        moved: bool,
    },
    /// An image named as a build's cache source could not be pulled or kept.
    CacheSourceSkipped {
        spec: String,
        reference: String,
        reason: String,
    },
    Finished {
        spec: String,
        verified: bool,
        stopped_by: StopReason,
        image: Option<String>,
    },
}

/// Where events go. Called from the spec's task; must not block.
pub type EventSink = std::sync::Arc<dyn Fn(Event) + Send + Sync>;
