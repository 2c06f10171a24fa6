//! The engine's side of the checks: one image's facts gathered once per iteration —
//! the runs of its cases and of its structure-test commands side by side (each holds
//! an engine slot while it runs), the service's lifetime with its probes, the hidden
//! suites' runs, its config
//! from the inspect, and every path any check asks about from one created,
//! never-started container.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use agent_sandbox::{EnginePort, Inspect, RunOutcome, RunRequest, SandboxError, ServiceOutcome};
use agent_spec::{Case, FileFacts, ImageFacts};
use futures_util::future::join_all;

use crate::errors::LoopError;
use crate::job::{Job, run_limits};
use crate::verification::cases::{self, CaseRun};
use crate::verification::suites::{self, SuiteRun};
use crate::verification::{service, structure};

/// Bytes of a file's content read for content checks.
const CONTENT_LIMIT: usize = 1024 * 1024;

/// What the engine said of one image.
#[derive(Default)]
pub(crate) struct Facts {
    /// Empty when no check asks about the config.
    pub image: ImageFacts,
    /// By path, for every path a check names.
    pub files: BTreeMap<String, FileFacts>,
    /// Index-aligned with [`cases::to_run`].
    pub cases: Vec<CaseRun>,
    /// Per structure-test file, per command test, in order.
    pub commands: Vec<Vec<RunOutcome>>,
    /// The service's lifetime, when the spec has one.
    pub service: Option<ServiceOutcome>,
    /// Index-aligned with the spec's suites.
    pub suites: Vec<SuiteRun>,
}

impl Facts {
    pub fn file(&self, path: &str) -> FileFacts {
        self.files.get(path).cloned().unwrap_or(FileFacts {
            path: path.to_owned(),
            entry: None,
        })
    }
}

/// Gathers every fact the job's checks need of `image`; `started` is when the spec's
/// run started (timeouts are cut to its wall-clock budget).
pub(crate) async fn gather<E: EnginePort>(
    job: &Job,
    engine: &E,
    image: &str,
    labels: &BTreeMap<String, String>,
    started: Instant,
) -> Result<Facts, LoopError> {
    let spec = &job.spec;
    let mut facts = Facts::default();
    if spec.image.is_some() || !spec.structure_tests.is_empty() {
        facts.image = engine.inspect(image, Inspect::Config).await?.config;
    }
    let paths = paths(job, &facts.image);
    if !paths.is_empty() {
        let found = engine
            .inspect(
                image,
                Inspect::Files {
                    paths: &paths,
                    labels,
                    content_limit: CONTENT_LIMIT,
                },
            )
            .await?
            .files;
        facts.files = found
            .into_iter()
            .map(|fact| (fact.path.clone(), fact))
            .collect();
    }
    let to_run = cases::to_run(job);
    let case_runs = join_all(
        to_run
            .iter()
            .map(|case| run_case(job, engine, image, labels, case, started)),
    );
    let commands: Vec<_> = spec
        .structure_tests
        .iter()
        .map(|file| structure::commands(file, &facts.image))
        .collect();
    let command_runs = join_all(commands.iter().map(|file| {
        join_all(
            file.iter()
                .map(|command| command.run(job, engine, image, labels, started)),
        )
    }));
    let served = async {
        match &spec.service {
            Some(wanted) => service::serve(job, wanted, engine, image, labels, started)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let suite_runs = join_all(
        spec.suites
            .iter()
            .map(|suite| suites::run(job, suite, engine, image, labels, started)),
    );
    let (case_runs, command_runs, served, suite_runs) =
        tokio::join!(case_runs, command_runs, served, suite_runs);
    facts.service = served?;
    facts.suites = suite_runs.into_iter().collect::<Result<_, _>>()?;
    facts.cases = case_runs.into_iter().collect::<Result<_, _>>()?;
    facts.commands = command_runs
        .into_iter()
        .map(|runs| runs.into_iter().collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    Ok(facts)
}

/// Every path a `[[file]]` or a structure-test file test names, once each.
fn paths(job: &Job, image: &ImageFacts) -> Vec<String> {
    let mut paths: BTreeSet<String> = job
        .spec
        .files
        .iter()
        .map(|file| file.path.clone())
        .collect();
    for file in &job.spec.structure_tests {
        paths.extend(structure::paths(file, image));
    }
    paths.into_iter().collect()
}

async fn run_case<E: EnginePort>(
    job: &Job,
    engine: &E,
    image: &str,
    labels: &BTreeMap<String, String>,
    case: &Case,
    started: Instant,
) -> Result<CaseRun, SandboxError> {
    let secs = case.timeout_secs.unwrap_or(job.limits.run_timeout_secs);
    let timeout = job.timeout(secs, started);
    let ran = engine
        .run(
            RunRequest {
                image,
                args: &case.args,
                entrypoint: case.entrypoint.as_deref(),
                command: case.command.as_deref(),
                user: None,
                env: &case.env,
                stdin: case.stdin.as_deref().map(str::as_bytes),
                limits: run_limits(&job.limits, timeout),
                labels,
            },
            None,
        )
        .await?;
    Ok(CaseRun::new(ran, secs))
}
