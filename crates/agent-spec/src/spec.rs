//! `spec.toml`: one task, its test conditions, its limits, and everything that is
//! checked on the image it yields — runs and their cases, the image's configuration,
//! files in it, container-structure-test files, the image as a service with the
//! requests made to it, and hidden test suites run in it. One module per part of the
//! file; `parse` reads the whole.

use std::path::PathBuf;

use crate::check::{Check, FileCheck, ImageChecks, Probe};
use crate::config::{Combine, Limits, LimitsLayer, Settings};
use crate::structure::StructureFile;

mod cases;
mod checks;
mod digest;
mod files;
mod image;
mod inputs;
mod lines;
mod parse;
mod parts;
mod paths;
mod run;
mod service;
mod structure_tests;
mod suites;
#[cfg(test)]
pub(crate) mod testing;

pub use cases::{Case, DEFAULT_CASE};
pub use lines::{CheckLines, check_lines};
pub use parse::{load_spec, parse_spec, spec_schema};
pub use parts::SpecPart;
pub use run::RunSpec;
pub use service::{Readiness, Service};
pub use suites::Suite;

/// A parsed and validated spec. Everything here has been checked: names match
/// `[a-z0-9][a-z0-9_.-]*`, regexes compile, each check has exactly one matcher, inputs
/// and hidden test files exist below the spec's folder.
/// What it asks is also its serialized form ([`Spec::digest`]): every field enters
/// but where it lives (`name`, `path`, the files on disk) and its budget (`limits`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spec {
    /// `name`, or the file stem when absent.
    #[serde(skip)]
    pub name: String,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
    pub prompt: String,
    pub conditions: String,
    /// Resolved: the explicit `judge`, else `true` when there are no checks.
    pub judge: bool,
    /// Input files, each as (path inside the build context, absolute path on disk).
    /// A folder in `inputs` is expanded to the files below it, sorted.
    #[serde(serialize_with = "digest::context_paths")]
    pub inputs: Vec<(String, PathBuf)>,
    #[serde(skip)]
    pub limits: SpecLimits,
    pub run: RunSpec,
    /// The top-level `[[check]]`s; with cases they hold for every case.
    pub checks: Vec<Check>,
    /// `[[case]]` as written, each merged with `[run]` and the top-level checks;
    /// empty: none (see [`Spec::cases_to_run`]).
    pub cases: Vec<Case>,
    /// `[image]`.
    pub image: Option<ImageChecks>,
    /// `[[file]]`.
    pub files: Vec<FileCheck>,
    /// `structure_tests = [...]`, each read and parsed.
    #[serde(serialize_with = "digest::structure_files")]
    pub structure_tests: Vec<StructureFile>,
    /// `[service]`: the image runs as a service; top-level checks judge its logs.
    pub service: Option<Service>,
    /// `[[probe]]`, in order; only with a service.
    pub probes: Vec<Probe>,
    /// `[[suite]]`, in order; hidden test suites, never shown to the model.
    pub suites: Vec<Suite>,
}

/// A spec's `[limits]`: each set one overrides `agent.toml`'s `[limits]`. A spec sets
/// only `max_iterations`, the timeouts, `memory_mb`, `cpus` and `network`.
pub type SpecLimits = LimitsLayer;

impl Settings {
    /// The limits one spec runs with: the flags over the spec's `[limits]` over these
    /// settings' limits.
    pub fn limits_for(&self, spec: &Spec) -> Limits {
        self.limit_flags
            .clone()
            .combine(spec.limits.clone())
            .resolve(self.limits.clone())
    }
}
