//! The labels and tag prefix everything this crate puts on the engine carries.

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
/// Build results are kept under `agent-cache/<spec>:<tag>` so the engine's layer cache
/// holds across runs and specs without a label step on every build; `gc --cache` and
/// the size cap remove them.
pub const CACHE_REPOSITORY_PREFIX: &str = "agent-cache/";
