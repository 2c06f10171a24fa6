//! `spec.toml` and `agent.toml`: their types, parsing with file/line/column errors,
//! the layering of settings, and the checks that judge a built image: a run's output,
//! the image's configuration, files in it, container-structure-test files, the
//! responses of a running service to its probes, and the hidden test suites a spec
//! runs in the image.
//!
//! Synchronous and free of I/O beyond reading the files it is asked to parse; it never
//! reads the environment (callers pass the variables they resolved).
//!
//! Modules, leaves first: `errors`, `settings` (resolved types), `position`, `layer`
//! (optional layers and their merge), `validate` (the shared checks), `check` (one
//! file per kind of check), `structure` (container-structure-test files), `spec` (one
//! file per part of `spec.toml`), `engines` (`[docker] engines`), and `config`, the
//! facade that merges every source into [`Settings`].

mod check;
mod config;
mod engines;
mod errors;
mod layer;
mod position;
mod settings;
mod spec;
mod structure;
mod validate;

pub use check::{
    BodyExpectation, Check, CheckResult, ContentMatcher, FILE_GROUP, FileCheck, FileEntry,
    FileFacts, IMAGE_GROUP, ImageChecks, ImageFacts, Matcher, Observed, Probe, ProbeFacts,
    ProbeResponse, ceil_boundary, excerpt, floor_boundary, ls_mode,
};
pub use config::{ConfigFile, EnvOverrides, FlagOverrides, Settings};
pub use engines::engine_url;
pub use errors::{ConfigError, Location, SpecError};
pub use layer::{
    BundleLayer, Combine, DockerLayer, LimitsLayer, ModelLayer, PromptsLayer, PublishLayer,
    SettingsLayer,
};
pub use settings::{
    BuildNetwork, BuilderChoice, BundleLimits, DockerSettings, EngineSetting, Limits,
    ModelSettings, NetworkMode, PromptSettings, PublishSettings, StructuredOutput,
};
pub use spec::{
    Case, CheckLines, DEFAULT_CASE, Readiness, RunSpec, Service, Spec, SpecLimits, Suite,
    check_lines, load_spec, parse_spec,
};
pub use structure::{CommandTest, FileContentTest, FileExistenceTest, MetadataTest, StructureFile};
