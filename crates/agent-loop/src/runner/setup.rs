//! What every iteration of a run starts from: the run directory, the spec and inputs
//! kept in it, the lock as found, the prompts, and what the run gathers as it goes.

use std::collections::{BTreeMap, BTreeSet};

use agent_model::{ChatMessage, Purpose, Role};
use agent_sandbox::Sealed;

use crate::artifacts;
use crate::base::BasePin;
use crate::bundle::{Bundle, Rules};
use crate::errors::LoopError;
use crate::job::Job;
use crate::lock::{self, Lock, LockMode};
use crate::prompts::{self, message};
use crate::report::{
    CandidateRecord, InputDigest, IterationRecord, LockReport, LockState, Published, UsageTotals,
};

/// What a run has gathered so far.
#[derive(Default)]
pub(super) struct State {
    pub(super) history: Vec<IterationRecord>,
    pub(super) usage: UsageTotals,
    /// The bundle the next repair starts from.
    pub(super) current: Option<Bundle>,
    /// The verified image's tag, its id, and how it was sealed (a reused published
    /// image carries its labels already and is not sealed again).
    pub(super) verified: Option<(String, String, Option<Sealed>)>,
    /// The run directory's copy of the spec, and the inputs' digests.
    pub(super) kept_spec: Option<(String, Vec<InputDigest>)>,
    /// The lock as the run found it, and whether it wrote one.
    pub(super) lock: Option<LockReport>,
    /// The first generation's candidates, when it asked for several.
    pub(super) candidates: Vec<CandidateRecord>,
    /// The published image that passed in place of a build.
    pub(super) reused: Option<Published>,
    /// The images builds may take cached steps from, once pulled before the first build.
    pub(super) cache_from: Option<Vec<String>>,
}

/// What every iteration of a run shares.
pub(super) struct Setup {
    pub(super) inputs: BTreeMap<String, Vec<u8>>,
    pub(super) input_names: BTreeSet<String>,
    pub(super) system: String,
    pub(super) task: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) spec_digest: String,
    /// The lock beside the spec when it is read and there is one, and whether it is fresh.
    pub(super) lock: Option<(Lock, LockState)>,
    /// The base image builds stand on when their Dockerfile names it: a fresh lock's,
    /// or the one `--refresh-base` pulled (see [`crate::base::for_run`]).
    pub(super) base: Option<BasePin>,
}

/// The run directory, the spec and inputs kept in it, the lock, and the prompts every
/// iteration starts from.
pub(super) fn prepare(job: &Job, state: &mut State) -> Result<Setup, LoopError> {
    artifacts::create_dir(&job.run_dir.iterations())?;
    let inputs = artifacts::read_inputs(&job.spec)?;
    let suite_files = artifacts::read_suite_files(&job.spec)?;
    state.kept_spec = Some(artifacts::keep_spec(
        &job.spec,
        &inputs,
        &suite_files,
        &job.run_dir,
    )?);
    let spec_digest = job.spec.digest(&inputs, &suite_files);
    let reads_lock = job.lock != LockMode::Off;
    let found = if reads_lock {
        lock::read(&job.spec)?
    } else {
        None
    };
    let lock = found.map(|lock| {
        let fresh = lock.file.spec_digest == spec_digest
            && lock.file.base_image == job.settings.docker.base_image;
        let state = if fresh {
            LockState::Fresh
        } else {
            LockState::Stale
        };
        (lock, state)
    });
    state.lock = reads_lock.then(|| LockReport {
        path: lock::lock_dir(&job.spec).display().to_string(),
        found: lock
            .as_ref()
            .map_or(LockState::Missing, |(_, state)| *state),
        written: false,
    });
    Ok(Setup {
        input_names: inputs.keys().cloned().collect(),
        system: prompts::system(job),
        task: prompts::task(job, &inputs),
        labels: job.labels(),
        inputs,
        spec_digest,
        lock,
        base: None,
    })
}

/// What a bundle must obey.
pub(super) fn rules<'a>(job: &'a Job, setup: &'a Setup) -> Rules<'a> {
    Rules {
        limits: &job.settings.bundle,
        inputs: &setup.input_names,
        allowed_base_images: &job.settings.docker.allowed_base_images,
    }
}

/// The next request: the task alone, or the task and a repair carrying the feedback.
/// A repair shows the current bundle once, in full, in its own text; the earlier reply
/// is not sent again as an assistant turn, since the bundle says all of it that holds.
pub(super) fn request(
    job: &Job,
    setup: &Setup,
    state: &State,
    feedback: Option<&str>,
) -> (Purpose, Vec<ChatMessage>) {
    let mut messages = vec![
        message(Role::System, &setup.system),
        message(Role::User, &setup.task),
    ];
    let Some(feedback) = feedback else {
        return (Purpose::Generate, messages);
    };
    let failed = state.history.last().map_or(0, |record| record.iteration);
    let repair = prompts::repair(
        job,
        failed,
        feedback,
        &state.history,
        state.current.as_ref(),
    );
    messages.push(message(Role::User, repair));
    (Purpose::Repair, messages)
}
