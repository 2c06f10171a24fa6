//! The only crate that talks to the Docker engine (through bollard): the in-memory
//! build context, builds with a timeout, runs under limits with capped output,
//! labels on everything, cleanup by label, and `gc`.

mod build;
mod cleanup;
mod context;
mod engine;
mod errors;
mod pull;
mod run;

pub use cleanup::owner_id;
pub use context::{
    BuildContext, Instruction, build_context, dockerfile_instructions, with_label_instruction,
};
pub use engine::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, Captured, CleanupReport, EngineInfo,
    RunLimits, RunNetwork, RunOutcome, RunRequest, Sandbox,
};
pub use errors::SandboxError;

/// Label on every container and image a run creates: the run id.
pub const LABEL_RUN: &str = "dev.agent.run";
/// Label with the spec name.
pub const LABEL_SPEC: &str = "dev.agent.spec";
/// Label naming the `agent` process that made the object, as `<hostname>/<pid>`: a
/// signal handler removes everything its own process made, and `gc` leaves alone what
/// a live process on this host still uses.
pub const LABEL_OWNER: &str = "dev.agent.owner";
/// Verified images are tagged `agent/<spec>:<hash>`; `gc` keeps images tagged so.
pub const VERIFIED_REPOSITORY_PREFIX: &str = "agent/";
