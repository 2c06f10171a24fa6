//! What callers ask of the engine: a build and a limited run.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_spec::AllowEntry;

use crate::context::BuildContext;

#[derive(Clone, Copy)]
pub struct BuildRequest<'a> {
    pub context: &'a BuildContext,
    /// Put on the image (and, through the engine, on intermediate containers).
    pub labels: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    /// `"default"`, `"none"` or `"host"`: the network RUN steps get, unless `egress`
    /// is given.
    pub network: &'a str,
    /// RUN steps reach only what this policy allows (through a gate whose namespace
    /// they join); the gate's containers get `labels`.
    pub egress: Option<&'a EgressPolicy>,
    /// The repository (`agent-cache/<spec>`) the build's images are tagged in, so a
    /// concurrent cleanup never takes a layer this build uses and nothing it made is
    /// left dangling; `None` leaves the build's images untagged.
    pub cache_repository: Option<&'a str>,
    /// Images on the engine (pulled from a registry) whose steps the classic builder
    /// may take as cached when their history matches the Dockerfile's, step by step.
    pub cache_from: &'a [String],
    /// Every step built afresh. Podman's builder keys a step by its text before the
    /// build args are put in, so a cached `LABEL "${KEY}"="${VALUE}"` comes back with
    /// the values of the build that first made it.
    pub no_cache: bool,
}

/// What a build's steps may reach, and the image that enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Any image with `python3`.
    pub image: String,
    pub allow: Vec<AllowEntry>,
    /// Put on the gate's containers and volume, so that a run's removal and `gc` find
    /// them.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    None,
    Bridge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunLimits {
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    pub network: RunNetwork,
    pub timeout: Duration,
    /// Per stream: bytes kept; the rest is read and discarded.
    pub output_limit_bytes: usize,
    /// Privileges and host paths; the default gives none.
    pub access: RunAccess,
}

/// What a container may do beyond its own processes. The default: every capability
/// dropped, no privilege escalation, nothing of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunAccess {
    /// `docker run`'s own defaults: the engine's default capabilities and privilege
    /// escalation allowed, as container-structure-test runs its containers.
    pub engine_defaults: bool,
    /// The exact capability set (`CAP_NET_ADMIN` or `NET_ADMIN`), whatever the above.
    pub capabilities: Option<Vec<String>>,
    /// Every device and capability of the host (`--privileged`).
    pub privileged: bool,
    /// Host paths mounted in, as `docker run -v` takes them (`/host:/inside:ro`).
    pub binds: Vec<String>,
}

pub struct RunRequest<'a> {
    pub image: &'a str,
    /// Appended to the command: to `command` when given, else to the image's CMD (an
    /// entrypoint override clears that CMD, as it does for `docker run`).
    pub args: &'a [String],
    /// Replaces the image's ENTRYPOINT; `Some(&[])` clears it (as `--entrypoint ""`).
    pub entrypoint: Option<&'a [String]>,
    /// Replaces the image's CMD; `args` are appended to it.
    pub command: Option<&'a [String]>,
    /// Replaces the image's USER.
    pub user: Option<&'a str>,
    /// The only environment the container gets beyond its image's.
    pub env: &'a BTreeMap<String, String>,
    pub stdin: Option<&'a [u8]>,
    pub limits: RunLimits,
    pub labels: &'a BTreeMap<String, String>,
}
