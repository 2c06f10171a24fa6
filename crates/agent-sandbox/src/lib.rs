//! The only crate that talks to the Docker engine (through bollard): the in-memory
//! build context, builds with a timeout, runs under limits with capped output,
//! labels on everything, cleanup by label, and `gc`.
//!
//! Modules, bottom up: `labels`, `request`, `outcome` (every type an operation answers
//! with: outcomes, the product, the seal's way, an image's role), `errors`, `deadline`
//! and `context` are leaves of data and small helpers; `dialect` holds what differs
//! between engines (Docker, Podman) for every other module and uses nothing above
//! `outcome`; `memory` is what an engine remembers between calls; `cleanup`, `cache`,
//! `build` (the classic builder and BuildKit) and `run` do one kind of engine work each
//! (`setup` runs after committed setup commands, `image_facts` and `file_facts` read an
//! image without running it); `engine` is the `Sandbox` facade over them; `pull`,
//! `publish` and `transfer` add image transfers to it, `relabel` labels an image
//! without a build, `rebuild` seals a BuildKit image by its cached build, and `seal`
//! picks the way an engine accepts; `docker_config` reads the Docker CLI's
//! `config.json`, `registry_auth` finds registry credentials in it; `port` is the
//! engine as the loop sees it; `pool` spreads work over several engines' slots.
//! `service` runs a service through its lifetime and `probe` reaches it from inside its
//! network namespace; `suite` runs a hidden test suite and reads its JUnit file back,
//! which `junit` grades (pure, no engine). No module uses one that uses it back
//! (`scripts/check-house` keeps it so).

mod build;
mod cache;
mod cleanup;
mod context;
mod deadline;
mod dialect;
mod docker_config;
mod egress;
mod engine;
mod errors;
mod file_facts;
mod image_facts;
pub mod junit;
mod labels;
mod memory;
mod outcome;
mod pool;
mod port;
mod probe;
mod publish;
mod pull;
mod rebuild;
mod registry_auth;
mod relabel;
mod request;
mod run;
mod seal;
mod service;
mod setup;
mod suite;
mod transfer;
pub use cache::entry_reference as cache_entry_reference;
pub use cleanup::owner_id;
pub use context::{BuildContext, build_context, dockerfile_instructions};
pub use docker_config::read_docker_config;
pub use engine::{DEFAULT_SOCKET, EngineAddress, Sandbox, TlsFiles};
pub use errors::{DockerConfigError, SandboxError};
pub use labels::{
    CACHE_REPOSITORY_PREFIX, LABEL_OWNER, LABEL_RUN, LABEL_SPEC, VERIFIED_REPOSITORY_PREFIX,
};
pub use outcome::{
    BuildOutcome, BuildProgress, BuildStatus, Builder, Captured, CleanupReport, EgressRefusal,
    EgressRefusals, ImageRole, Product, PulledImage, PushRefusal, RunOutcome, SealMethod, Sealed,
};
pub use pool::{Pool, PoolSession};
pub use port::{EnginePort, Inspect, Inspected, RemovalScope, Setup};
pub use probe::{
    DEFAULT_PROBE_IMAGE, HttpResponse, ProbeFailure, ProbeLimits, ProbeOutcome, ProbeRequest,
};
pub use registry_auth::{
    CredentialSource, RegistryCredentials, registry_server, resolve_credentials,
};
pub use request::{BuildRequest, EgressPolicy, RunAccess, RunLimits, RunNetwork, RunRequest};
pub use seal::label_dockerfile;
pub use service::{Readiness, ReadyEnd, ServiceOutcome, ServiceRequest, StopEnd};
pub use suite::{SuiteOutcome, SuiteRequest};
