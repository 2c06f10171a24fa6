//! `report.json` and each iteration's `result.json`, defined once: the loop writes
//! them, the CLI reads them back and the report page shows them. Every record reads
//! with defaults for what it lacks, so a run directory of an older `agent` still
//! reads. The outcome and stop-reason words are type parameters: the writer uses its
//! enums, a reader that must show words a newer `agent` wrote reads them as text.

pub use agent_spec::CheckResult;
use serde::{Deserialize, Serialize};

/// How one iteration ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Also what a record without an outcome reads as.
    #[default]
    InvalidBundle,
    BuildFailed,
    BuildTimeout,
    RunFailed,
    RunTimeout,
    ChecksFailed,
    Passed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InvalidBundle => "invalid_bundle",
            Outcome::BuildFailed => "build_failed",
            Outcome::BuildTimeout => "build_timeout",
            Outcome::RunFailed => "run_failed",
            Outcome::RunTimeout => "run_timeout",
            Outcome::ChecksFailed => "checks_failed",
            Outcome::Passed => "passed",
        }
    }
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Passed,
    MaxIterations,
    MaxTotalTokens,
    MaxWallSecs,
    Cancelled,
    /// The engine or the model endpoint failed (`error` says how); also what a
    /// report without a stop reason reads as.
    #[default]
    Error,
    /// `--locked` and no lock beside the spec.
    LockMissing,
    /// `--locked` and the spec changed since its lock was written.
    LockStale,
    /// `--locked` and the locked bundle failed.
    LockFailed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageTotals {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub calls: u64,
}

impl UsageTotals {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// One iteration, as `history[]` of `report.json` and as `iterations/<n>/result.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IterationRecord<O = Outcome> {
    pub iteration: u32,
    pub outcome: O,
    /// The model's own summary of this version.
    pub summary: String,
    /// What went wrong, in a sentence (empty when passed).
    pub detail: String,
    pub build_secs: Option<f64>,
    pub run_secs: Option<f64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub checks: Vec<CheckResult>,
    /// SHA-256 of the build context (identical bundles, identical digest).
    pub context_digest: Option<String>,
    pub image_id: Option<String>,
    /// The base image the build stood on, pinned: its repo digest
    /// (`repository@sha256:…`) where it came from a registry, else its image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    /// Milliseconds spent waiting for the model in this iteration.
    pub model_ms: u64,
    /// The part of `model_ms` its requests waited before they were sent: for a place
    /// among the requests in flight (`max_concurrent_requests`) or a rate-limit pause.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued_ms: u64,
    /// Milliseconds of the orchestrator's own work in this iteration: everything but
    /// the model's answers and the engine's build and run.
    pub overhead_ms: f64,
    /// The engine that built and ran it (its address), when the run had a pool of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Engines lost during this iteration, in order: each time, the same bundle was
    /// built and run again on another engine, with no new model call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retried_after_lost: Vec<String>,
    /// Each `[[case]]`'s run, in the spec's order (empty for a spec without cases,
    /// whose one run is the fields above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<CaseRecord>,
    /// Each `[[suite]]`'s grade and tests, in the spec's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<SuiteRecord>,
    /// What the build egress policy refused this iteration's build (also when it
    /// passed); absent when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressRecord>,
}

/// The build egress policy's evidence for one build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EgressRecord {
    /// The first hundred distinct refusals.
    pub refused: Vec<RefusedConnection>,
    /// Refused connections past those, counted only.
    #[serde(skip_serializing_if = "is_zero")]
    pub unlisted: u64,
}

/// A connection a build step tried and the policy refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusedConnection {
    /// The name or address asked for.
    pub host: String,
    pub port: u16,
    /// The build step (1-based) running then, and its instruction.
    pub step: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// `proxy` (asked of the build's proxy), `direct` (a connection that ignored the
    /// proxy) or `dns` (a name looked up in the step).
    pub via: String,
    pub reason: String,
    /// Times the same host, port, step and way were refused.
    pub count: u32,
}

/// What a run's builds could reach: the `[docker] build_network` mode, the builder
/// that enforces it, and the hosts `build_allow` let through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildPolicyRecord {
    pub network: String,
    pub builder: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// How one hidden suite went: its grade, and every test its JUnit file held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuiteRecord {
    pub name: String,
    pub passed: bool,
    /// The command's; `None` when it did not exit on its own or never ran.
    pub exit_code: Option<i64>,
    pub run_secs: f64,
    pub tests: Vec<TestRecord>,
}

/// One test case of a suite's JUnit file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestRecord {
    pub name: String,
    pub classname: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How one case's run went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseRecord {
    pub name: String,
    pub exit_code: Option<i64>,
    pub run_secs: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

impl<O> IterationRecord<O> {
    /// The names of the checks it passed.
    pub fn passed_checks(&self) -> impl Iterator<Item = &str> {
        self.checks
            .iter()
            .filter(|check| check.passed)
            .map(|check| check.name.as_str())
    }
}

impl IterationRecord {
    /// An iteration that has not got anywhere yet.
    pub fn new(iteration: u32) -> IterationRecord {
        IterationRecord {
            iteration,
            outcome: Outcome::InvalidBundle,
            summary: String::new(),
            detail: String::new(),
            build_secs: None,
            run_secs: None,
            exit_code: None,
            oom_killed: false,
            stdout_bytes: None,
            stderr_bytes: None,
            stdout_truncated: false,
            stderr_truncated: false,
            checks: Vec::new(),
            context_digest: None,
            image_id: None,
            base_digest: None,
            model_ms: 0,
            queued_ms: 0,
            overhead_ms: 0.0,
            engine: None,
            retried_after_lost: Vec::new(),
            cases: Vec::new(),
            suites: Vec::new(),
            egress: None,
        }
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report<O = Outcome, S = StopReason> {
    pub spec: String,
    pub spec_path: String,
    pub run_id: String,
    pub verified: bool,
    /// Iterations that got as far as a build.
    pub iterations: u32,
    /// Tag of the verified image, or null.
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub duration_secs: f64,
    pub usage: UsageTotals,
    pub model: String,
    /// How the endpoint was asked for structured output (`json_schema`,
    /// `json_object_schema`, `json_object`, `none`): the mode that worked; absent in
    /// replay or when no call was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<String>,
    pub base_image: String,
    /// What the builds could reach, and the builder that saw to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildPolicyRecord>,
    /// The base image of the last build (the verified image's, when verified), pinned
    /// as the lock pins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    pub stopped_by: S,
    pub error: Option<String>,
    /// The run directory's copy of the spec, relative to it (`spec/<file>`), with the
    /// inputs beside it as they were run: what `agent verify` reads.
    #[serde(default)]
    pub spec_copy: Option<String>,
    /// The inputs' context paths and SHA-256 digests, checked before a verify.
    #[serde(default)]
    pub inputs: Vec<InputDigest>,
    /// The lock beside the spec as the run found it, and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockReport>,
    pub history: Vec<IterationRecord<O>>,
    /// Every candidate of the first generation when it asked for more than one
    /// (`--candidates`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateRecord<O>>,
    /// The published image a fresh lock named, pulled and checked in place of a build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused: Option<Published>,
    /// How the verified image got its labels, and how long that took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealRecord>,
    /// Where the verified image was pushed (`--push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// Where the verified image was written (`--save`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<SavedImage>,
    /// The signed attestations stored with the pushed image (`--sign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationRecord>,
    /// Why a push or save of the verified image failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

/// One candidate of a first generation that asked for several bundles: how far it
/// got, what it cost, and whether the run went on from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CandidateRecord<O = Outcome> {
    /// 1-based, in the order the bundles were asked for.
    pub candidate: u32,
    pub outcome: O,
    /// What went wrong, in a sentence (empty when passed).
    pub detail: String,
    /// The run went on from this one: the winner, or (when none passed) the one that
    /// got furthest, which the repair starts from. Its iteration is `history[0]`.
    pub chosen: bool,
    /// SHA-256 of its build context, when it was built.
    pub context_digest: Option<String>,
    pub image_id: Option<String>,
    pub build_secs: Option<f64>,
    pub run_secs: Option<f64>,
    /// Checks it passed, of those evaluated.
    pub checks_passed: u32,
    /// Milliseconds waiting for its model calls.
    pub model_ms: u64,
    /// Seconds from the request for the bundles to this candidate's outcome.
    pub finished_secs: f64,
    /// Its model calls (the request, and a reformat when its reply was unusable).
    pub usage: UsageTotals,
}

/// The verified image's labelling: the way the engine accepted (`rebuild` for a
/// BuildKit image, `config_load`, `commit`, `build`) and its time, refused ways
/// included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SealRecord {
    pub method: String,
    pub secs: f64,
}

/// A signed attestation of the pushed image: its predicate type, the digest of its
/// DSSE envelope, and the tag it is stored under (`<repository>:sha256-<hex>.att`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttestationRecord {
    pub predicate_type: String,
    pub digest: String,
    pub reference: String,
}

/// A verified image written as a file `docker load` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedImage {
    pub path: String,
    pub sha256: String,
}

/// `report.json`'s `lock`: what the run found beside the spec, and whether it wrote a
/// new lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockReport {
    pub path: String,
    pub found: LockState,
    pub written: bool,
}

/// A pushed verified image: the reference and the manifest digest the registry answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Published {
    pub reference: String,
    pub digest: String,
}

/// What `report.json` says of the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// The lock matches the spec.
    Fresh,
    /// The spec changed since the lock was written.
    Stale,
    #[default]
    Missing,
}

/// An input file as it was run: its context path and the SHA-256 of its contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputDigest {
    pub path: String,
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_an_older_agent_reads_with_defaults_for_what_it_lacks() {
        // No `spec_path`, `image_id`, `inputs`, `overhead_ms`, `queued_ms`,
        // `context_digest`, `seal` or `reused`: fields later versions added.
        let older = r#"{"spec": "hello", "run_id": "r1", "verified": true, "iterations": 1,
            "image": "agent/hello:1", "duration_secs": 2.5, "model": "m",
            "base_image": "b", "stopped_by": "passed", "error": null,
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "calls": 1},
            "history": [{"iteration": 1, "outcome": "passed", "summary": "s", "detail": "",
                "checks": [{"name": "exit", "passed": true, "detail": "ok"}]}]}"#;
        let report: Report = serde_json::from_str(older).unwrap();
        assert_eq!(report.stopped_by, StopReason::Passed);
        assert_eq!(report.history[0].outcome, Outcome::Passed);
        assert_eq!(report.history[0].overhead_ms, 0.0);
        assert_eq!(report.history[0].checks[0].group, "");
        assert!(report.seal.is_none() && report.reused.is_none());
        assert_eq!(report.usage.total_tokens(), 7);
    }

    #[test]
    fn a_reader_of_words_keeps_an_outcome_no_agent_writes() {
        let newer = r#"{"stopped_by": "a_new_reason", "history": [{"outcome": "<b>new</b>"}]}"#;
        let report: Report<String, String> = serde_json::from_str(newer).unwrap();
        assert_eq!(report.stopped_by, "a_new_reason");
        assert_eq!(report.history[0].outcome, "<b>new</b>");
        assert!(serde_json::from_str::<Report>(newer).is_err());
    }

    #[test]
    fn a_written_record_keeps_its_field_names_and_leaves_out_empty_optional_ones() {
        let record = IterationRecord::new(2);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["outcome"], "invalid_bundle");
        assert_eq!(json["iteration"], 2);
        for absent in [
            "queued_ms",
            "engine",
            "retried_after_lost",
            "cases",
            "suites",
            "egress",
        ] {
            assert!(json.get(absent).is_none(), "{absent} is written: {json}");
        }
        for present in ["context_digest", "image_id", "overhead_ms", "model_ms"] {
            assert!(json.get(present).is_some(), "{present} is missing: {json}");
        }
    }
}
