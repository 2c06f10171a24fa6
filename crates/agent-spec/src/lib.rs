//! `spec.toml` and `agent.toml`: their types, parsing with file/line/column errors,
//! the layering of settings, and the checks that judge a built image: a run's output,
//! the image's configuration, files in it, container-structure-test files, the
//! responses of a running service to its probes, and the hidden test suites a spec
//! runs in the image.
//!
//! Synchronous and free of I/O beyond reading the files it is asked to parse; it never
//! reads the environment (callers pass the variables they resolved).
//!
//! Modules, leaves first: `errors`; `check` (one file per kind of check, `text` how
//! they word their details); `position` (offsets to lines and columns, toml's errors
//! reworded); `problems` (every problem of a file in one pass); `spanned` (values
//! with their place, and the JSON Schema of the tables they sit in); `validate` (the
//! checks every file shares, and `Source` that points a problem at its value);
//! `structure` (container-structure-test files); `config`
//! (`agent.toml`, the environment and the flags, layered into [`Settings`]); and
//! `spec` (one file per part of `spec.toml`). Each depends only on those before it.

mod check;
mod config;
mod errors;
mod position;
mod problems;
mod spanned;
mod spec;
mod structure;
mod validate;

pub use check::{
    Check, CheckResult, ContentMatcher, FileCheck, FileEntry, FileFacts, ImageChecks, ImageFacts,
    Matcher, Observed, Probe, ProbeFacts, ProbeResponse, ceil_boundary, excerpt, floor_boundary,
    ls_mode,
};
pub use config::{
    AllowEntry, BuildNetwork, BuilderChoice, BundleLimits, ConfigFile, DEFAULT_SIGNING_KEY_ENV,
    DockerSettings, EnvOverrides, FlagOverrides, Limits, LimitsLayer, ModelSettings, NetworkMode,
    PromptSettings, PublishSettings, Settings, StructuredOutput, config_schema,
};
pub use errors::Problems;
pub use spec::{
    Case, CheckLines, DEFAULT_CASE, Readiness, RunSpec, Service, Spec, SpecLimits, SpecPart, Suite,
    check_lines, load_spec, parse_spec, spec_schema,
};
pub use structure::{CommandTest, RunOptions, StructureDefaults, StructureFile};
