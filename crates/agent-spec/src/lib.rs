//! `spec.toml` and `agent.toml`: their types, parsing with file/line/column errors,
//! the layering of settings, and the check matchers that judge a run's output.
//!
//! Synchronous and free of I/O beyond reading the files it is asked to parse; it never
//! reads the environment (callers pass the variables they resolved).

mod check;
mod config;
mod errors;
mod position;
mod spec;

pub use check::{Check, CheckResult, Matcher, Observed, excerpt};
pub use config::{
    BuildNetwork, BundleLimits, ConfigFile, DockerSettings, EnvOverrides, FlagOverrides, Limits,
    ModelSettings, NetworkMode, PromptSettings, Settings, StructuredOutput,
};
pub use errors::{ConfigError, Location, SpecError};
pub use spec::{RunSpec, Spec, SpecLimits, load_spec, parse_spec};
