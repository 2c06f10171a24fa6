//! container-structure-test configs (`structure_tests`) as checks: command tests run
//! as the tool runs them (setup commands committed, entrypoint cleared, its env
//! rules), file tests on the facts every file check shares, the metadata test on the
//! image's config. The judging is `agent-spec`'s; this module feeds it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use agent_sandbox::{
    EnginePort, RunAccess, RunNetwork, RunOutcome, RunRequest, SandboxError, Setup,
};
use agent_spec::{
    CheckResult, ImageFacts, Observed, RunOptions, StructureDefaults, StructureFile, excerpt,
};

use crate::job::{Job, run_limits};
use crate::report::Outcome;
use crate::verification::{Evidence, Facts, Failure, Kind, first_failed};

/// Bytes of each stream shown for a failed command test.
const STREAM_BYTES: usize = 1024;

/// One command test, ready to run: every `$VAR` expanded as the tool expands it.
pub(crate) struct CommandRun {
    setup: Vec<Vec<String>>,
    setup_env: BTreeMap<String, String>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    /// `containerRunOptions.user`, for setup and the command alike.
    user: Option<String>,
    access: RunAccess,
    /// `structure_defaults = "cst"`: a bridge network, as `docker run` gives.
    bridge: bool,
    /// Why the tool could not even create the container (an unset host variable):
    /// the test fails with it and nothing runs.
    refused: Option<String>,
}

/// The file's command tests against an image whose env is `image.env`.
pub(crate) fn commands(file: &StructureFile, image: &ImageFacts) -> Vec<CommandRun> {
    let options = &file.run_options;
    let cst = file.settings.defaults == StructureDefaults::Cst;
    // The tool sends `capabilities` in the engine's `Capabilities` field, which
    // Docker 20.10 and later ignore: under its defaults they change nothing. agent's
    // own defaults add them back to the empty set, as `--cap-add` (their documented
    // meaning) would.
    let capabilities =
        (!cst && !options.capabilities.is_empty()).then(|| options.capabilities.clone());
    let access = RunAccess {
        engine_defaults: cst,
        capabilities,
        privileged: options.privileged,
        binds: options.bind_mounts.clone(),
    };
    let options_env = options.is_set().then(|| options_env(options));
    file.command_tests
        .iter()
        .map(|test| {
            let planned = file.command_env(test, &image.env);
            let mut env = env_map(planned.run.iter());
            let mut refused = None;
            match &options_env {
                Some(Ok(pairs)) => env.extend(pairs.iter().cloned()),
                Some(Err(why)) => refused = Some(why.clone()),
                None => {}
            }
            CommandRun {
                setup: test.setup.clone(),
                setup_env: env_map(planned.setup.iter()),
                command: planned.command,
                env,
                user: test.user.clone(),
                access: access.clone(),
                bridge: cst,
                refused,
            }
        })
        .collect()
}

/// The env the run options give each test command: the env file's, then the host
/// variables `envVars` names. They are read here, when the tests run, because the
/// tool reads them from its own environment when it runs; they never reach the
/// spec's digest or the model.
fn options_env(options: &RunOptions) -> Result<Vec<(String, String)>, String> {
    let from_file = options.read_env_file().unwrap_or_else(|why| {
        tracing::warn!(%why, "the envFile gives no variables, as container-structure-test then does");
        Vec::new()
    });
    let host = |name: &str| std::env::var(name).ok();
    options.container_env(&from_file, &host)
}

/// `KEY=value` items as a map, later keys over earlier ones.
fn env_map<'a>(items: impl Iterator<Item = &'a String>) -> BTreeMap<String, String> {
    items
        .filter_map(|item| item.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

impl CommandRun {
    /// Under the spec's limits and labels (its network and capabilities unless the
    /// spec asks for the tool's defaults), in a fresh container (after committed
    /// setup containers when the test has setup commands).
    pub async fn run<E: EnginePort>(
        &self,
        job: &Job,
        engine: &E,
        image: &str,
        labels: &BTreeMap<String, String>,
        started: Instant,
    ) -> Result<RunOutcome, SandboxError> {
        if let Some(why) = &self.refused {
            return Ok(RunOutcome {
                start_error: Some(why.clone()),
                ..RunOutcome::default()
            });
        }
        let timeout = job.timeout(job.limits.run_timeout_secs, started);
        let mut limits = run_limits(&job.limits, timeout);
        limits.access = self.access.clone();
        if self.bridge {
            limits.network = RunNetwork::Bridge;
        }
        let request = RunRequest {
            image,
            args: &[],
            entrypoint: Some(&[]),
            command: Some(&self.command),
            user: self.user.as_deref(),
            env: &self.env,
            stdin: None,
            limits,
            labels,
        };
        let setup = (!self.setup.is_empty()).then_some(Setup {
            commands: &self.setup,
            env: &self.setup_env,
        });
        engine.run(request, setup).await
    }
}

/// Every path the file's file tests read.
pub(crate) fn paths(file: &StructureFile, image: &ImageFacts) -> Vec<String> {
    let environment = file.environment(&image.env);
    let existence = file
        .file_existence_tests
        .iter()
        .map(|test| test.path(&environment));
    let content = file
        .file_content_tests
        .iter()
        .map(|test| test.path().to_owned());
    let licenses = file
        .license_tests
        .iter()
        .flat_map(|test| test.files.iter().cloned());
    existence.chain(content).chain(licenses).collect()
}

pub(crate) struct Structure<'a> {
    pub file: &'a StructureFile,
    /// Its place in `structure_tests`, where its command runs are in [`Facts`].
    pub index: usize,
}

impl Kind for Structure<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let file = self.file;
        let environment = file.environment(&facts.image.env);
        let runs = facts
            .commands
            .get(self.index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut results = Vec::new();
        let mut shown = String::new();
        for (test, ran) in file.command_tests.iter().zip(runs) {
            let result = command_result(&file.path, test, ran);
            if !result.passed {
                command_evidence(&mut shown, &result, ran);
            }
            results.push(result);
        }
        for test in &file.file_content_tests {
            results.push(test.judge(&facts.file(test.path())));
        }
        for test in &file.file_existence_tests {
            results.push(test.judge(&facts.file(&test.path(&environment))));
        }
        for test in &file.license_tests {
            let read: Vec<_> = test.files.iter().map(|path| facts.file(path)).collect();
            results.push(test.judge(&read.iter().collect::<Vec<_>>()));
        }
        if let Some(metadata) = &file.metadata_test {
            results.extend(metadata.judge(&facts.image));
        }
        let failure = results.iter().any(|result| !result.passed).then(|| {
            let failed = results.iter().filter(|result| !result.passed).count();
            let mut feedback = format!(
                "container-structure-test config `{}`: {failed} of {} tests failed (command tests run with the image's entrypoint cleared):\n",
                file.path,
                results.len()
            );
            for result in results.iter().filter(|result| !result.passed) {
                let _ = writeln!(feedback, "- {}: {}", result.name, result.detail);
            }
            feedback.push_str(&shown);
            Failure {
                outcome: Outcome::ChecksFailed,
                detail: format!("`{}`: {}", file.path, first_failed(&results)),
                feedback,
            }
        });
        Evidence { results, failure }
    }

    /// The structure-test configs in words, for the task prompt: what each test runs or
    /// reads.
    fn describe(&self, _job: &Job) -> String {
        let file = self.file;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\nThe image is also checked by the container-structure-test config `{}` (command tests run with the image's ENTRYPOINT cleared):",
            file.path
        );
        for test in &file.command_tests {
            let command: Vec<&str> = std::iter::once(test.command.as_str())
                .chain(test.args.iter().map(String::as_str))
                .collect();
            let _ = writeln!(
                text,
                "- command test `{}`: runs {}",
                test.name,
                serde_json::to_string(&command).unwrap_or_default()
            );
        }
        for test in &file.file_existence_tests {
            let _ = writeln!(text, "- file test `{}`", test.name);
        }
        for test in &file.file_content_tests {
            let _ = writeln!(text, "- content test `{}` on `{}`", test.name, test.path());
        }
        for test in &file.license_tests {
            let _ = writeln!(
                text,
                "- license test: {} readable, none naming AGPL or WTFPL",
                serde_json::to_string(&test.files).unwrap_or_default()
            );
        }
        if file.metadata_test.is_some() {
            let _ = writeln!(text, "- a metadata test of the image's configuration");
        }
        text
    }
}

/// A command that could not start fails with the engine's reason, as the tool's does.
fn command_result(group: &str, test: &agent_spec::CommandTest, ran: &RunOutcome) -> CheckResult {
    if let Some(message) = &ran.start_error {
        return CheckResult::new(
            group,
            test.name.clone(),
            false,
            format!("the command could not start: {}", message.trim()),
        );
    }
    let stdout = String::from_utf8_lossy(&ran.stdout.bytes);
    let stderr = String::from_utf8_lossy(&ran.stderr.bytes);
    test.judge(&Observed {
        exit_code: ran.exit_code,
        stdout: &stdout,
        stderr: &stderr,
        stdout_truncated: ran.stdout.truncated,
        stderr_truncated: ran.stderr.truncated,
    })
}

/// A failed command test's output tails, when it printed anything.
fn command_evidence(out: &mut String, result: &CheckResult, ran: &RunOutcome) {
    for (title, bytes) in [("stdout", &ran.stdout.bytes), ("stderr", &ran.stderr.bytes)] {
        let text = String::from_utf8_lossy(bytes);
        if !text.trim().is_empty() {
            let _ = writeln!(
                out,
                "`{}` {title}:\n```\n{}\n```",
                result.name,
                excerpt(&text, STREAM_BYTES).trim_end()
            );
        }
    }
}
