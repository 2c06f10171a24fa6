//! The only crate that talks to the Docker engine (through bollard): the in-memory
//! build context, builds with a timeout, runs under limits with capped output,
//! labels on everything, cleanup by label, and `gc`.

mod context;
mod engine;
mod errors;

pub use context::{BuildContext, build_context};
pub use engine::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, Captured, CleanupReport,
    EngineInfo, RunLimits, RunNetwork, RunOutcome, RunRequest, Sandbox,
};
pub use errors::SandboxError;

/// Label on every container and image a run creates: the run id.
pub const LABEL_RUN: &str = "dev.agent.run";
/// Label with the spec name.
pub const LABEL_SPEC: &str = "dev.agent.spec";
/// Label with the id of the `agent` invocation (one per process), so a signal handler
/// can remove everything this process made.
pub const LABEL_INVOCATION: &str = "dev.agent.invocation";
/// Verified images are tagged `agent/<spec>:<hash>`; `gc` keeps images tagged so.
pub const VERIFIED_REPOSITORY_PREFIX: &str = "agent/";
