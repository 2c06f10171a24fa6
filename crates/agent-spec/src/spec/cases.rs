//! `[[case]]`: several runs of one image, each with its own input and checks, and the
//! default case a spec without cases runs.

use std::collections::BTreeMap;

use crate::check::{Check, CheckResult, Observed};
use crate::spec::Spec;

/// The name of the one case a spec without `[[case]]` runs, from `[run]`.
pub const DEFAULT_CASE: &str = "run";

/// One run of the image: what the container gets and what must hold of it.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique within the spec; the group of its results.
    pub name: String,
    pub stdin: Option<String>,
    /// Appended to the image's command (after `[run].args`).
    pub args: Vec<String>,
    /// `[run].env` with the case's own set over it.
    pub env: BTreeMap<String, String>,
    /// Replaces the image's ENTRYPOINT when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD when set.
    pub command: Option<Vec<String>>,
    /// `None`: the spec's run timeout.
    pub timeout_secs: Option<u64>,
    /// The case's own checks, then the spec's top-level ones.
    pub checks: Vec<Check>,
}

impl Case {
    /// Every check of the case on what one run did, grouped under the case's name.
    pub fn evaluate(&self, observed: &Observed<'_>) -> Vec<CheckResult> {
        self.checks
            .iter()
            .map(|check| check.evaluate(&self.name, observed))
            .collect()
    }
}

impl Spec {
    /// What the loop runs: the `[[case]]`s as written (each already holding `[run]`'s
    /// settings and the top-level checks), else, when the spec has `[[check]]`s, one
    /// default case from `[run]` named [`DEFAULT_CASE`]; else none.
    pub fn cases_to_run(&self) -> Vec<Case> {
        if !self.cases.is_empty() {
            return self.cases.clone();
        }
        if self.checks.is_empty() {
            return Vec::new();
        }
        vec![Case {
            name: DEFAULT_CASE.to_owned(),
            stdin: self.run.stdin.clone(),
            args: self.run.args.clone(),
            env: self.run.env.clone(),
            entrypoint: None,
            command: None,
            timeout_secs: None,
            checks: self.checks.clone(),
        }]
    }
}
