//! The loop's logic against a scripted model and a scripted engine.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_model::{
    Answer, BundleFile, ChatMessage, CodeBundle, ModelError, Purpose, Reply, Role, Usage, Verdict,
};
use agent_sandbox::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, Captured, CleanupReport, EnginePort,
    PulledImage, RegistryCredentials, RunOutcome, RunRequest, SandboxError, SealMethod, Sealed,
};
use agent_spec::{
    BuildNetwork, BundleLimits, Check, DockerSettings, Limits, LimitsLayer, Matcher, ModelSettings,
    PromptSettings, RunSpec, Settings, Spec, SpecLimits, StructuredOutput,
};
use tokio_util::sync::CancellationToken;

use crate::ports::ModelPort;
use crate::{Event, EventSink, Job, Outcome, Prompts, RunResult, StopReason, run_spec};

#[derive(Default)]
struct ScriptedModel {
    bundles: VecDeque<Answer<CodeBundle>>,
    verdicts: VecDeque<Answer<Verdict>>,
    calls: Vec<(Purpose, Vec<ChatMessage>)>,
    tokens_per_call: u64,
}

fn reply<T>(answer: Answer<T>, tokens: u64) -> Reply<T> {
    Reply {
        content: match &answer {
            Answer::Invalid(_) => "not json".to_string(),
            _ => "{}".to_string(),
        },
        answer,
        usage: Usage {
            prompt_tokens: tokens,
            completion_tokens: tokens,
        },
        latency: Duration::from_millis(1),
        queued: Duration::ZERO,
    }
}

impl ModelPort for ScriptedModel {
    async fn code_bundle(
        &mut self,
        purpose: Purpose,
        _iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<CodeBundle>, ModelError> {
        self.calls.push((purpose, messages.to_vec()));
        let answer = self
            .bundles
            .pop_front()
            .expect("the script has a bundle left");
        Ok(reply(answer, self.tokens_per_call))
    }

    async fn verdict(
        &mut self,
        _iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<Verdict>, ModelError> {
        self.calls.push((Purpose::Judge, messages.to_vec()));
        let answer = self
            .verdicts
            .pop_front()
            .expect("the script has a verdict left");
        Ok(reply(answer, self.tokens_per_call))
    }
}

#[derive(Default)]
struct ScriptedEngine {
    builds: Mutex<VecDeque<BuildStatus>>,
    runs: Mutex<VecDeque<RunOutcome>>,
    hang_runs: bool,
    run_delay: Duration,
    tags: Mutex<Vec<(String, String)>>,
    /// The verified images relabelled, with their labels.
    seals: Mutex<Vec<(String, BTreeMap<String, String>)>>,
    /// Each sweep by label: what it removed (`everything` or `containers`) and the run.
    removed: Mutex<Vec<(&'static str, String)>>,
    contexts: Mutex<Vec<String>>,
    /// Each build's context as sent.
    context_bytes: Mutex<Vec<Vec<u8>>>,
    /// Runs that fail as an engine that went away does.
    failing_runs: Mutex<u32>,
    /// Relabels that fail as an engine that went away does.
    failing_relabels: Mutex<u32>,
    /// What `lose_engine` answers, in turn; `None` once empty.
    lost: Mutex<VecDeque<String>>,
    /// What `image_facts` answers.
    image_facts: agent_spec::ImageFacts,
    /// What pulls find, in turn; once empty, the registry has no such image.
    pulls: Mutex<VecDeque<PulledImage>>,
    /// The images the engine has, by reference or id.
    images: BTreeMap<String, PulledImage>,
}

impl EnginePort for ScriptedEngine {
    async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        self.contexts
            .lock()
            .unwrap()
            .push(request.context.digest.clone());
        self.context_bytes
            .lock()
            .unwrap()
            .push(request.context.bytes.clone());
        progress(BuildProgress::Step {
            index: 1,
            total: 2,
            instruction: "FROM base".into(),
        });
        let status = self
            .builds
            .lock()
            .unwrap()
            .pop_front()
            .expect("a build left");
        Ok(BuildOutcome {
            status,
            log: "Step 1/2 : FROM base\n ---> 0123456789ab\n".into(),
            duration: Duration::from_millis(5),
            egress: Default::default(),
        })
    }

    async fn run(
        &self,
        _request: RunRequest<'_>,
        _setup: Option<agent_sandbox::Setup<'_>>,
    ) -> Result<RunOutcome, SandboxError> {
        if self.hang_runs {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.run_delay).await;
        {
            let mut failing = self.failing_runs.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(SandboxError::NoEngine {
                    lost: "the engine went away".into(),
                });
            }
        }
        Ok(self.runs.lock().unwrap().pop_front().expect("a run left"))
    }

    async fn serve(
        &self,
        _request: agent_sandbox::ServiceRequest<'_>,
        _probes: &[agent_sandbox::ProbeRequest],
    ) -> Result<agent_sandbox::ServiceOutcome, SandboxError> {
        panic!("the scripted engine runs no service: services are tested on the real engine")
    }

    async fn run_suite(
        &self,
        _request: agent_sandbox::SuiteRequest<'_>,
    ) -> Result<agent_sandbox::SuiteOutcome, SandboxError> {
        panic!("the scripted engine runs no suite: suites are tested on the real engine")
    }

    async fn inspect(
        &self,
        _image: &str,
        what: agent_sandbox::Inspect<'_>,
    ) -> Result<agent_sandbox::Inspected, SandboxError> {
        Ok(match what {
            agent_sandbox::Inspect::Config => agent_sandbox::Inspected {
                config: self.image_facts.clone(),
                files: Vec::new(),
            },
            agent_sandbox::Inspect::Files { paths, .. } => agent_sandbox::Inspected {
                config: agent_spec::ImageFacts::default(),
                files: paths
                    .iter()
                    .map(|path| agent_spec::FileFacts {
                        path: path.clone(),
                        entry: None,
                    })
                    .collect(),
            },
        })
    }

    async fn pull(
        &self,
        reference: &str,
        _credentials: Option<&RegistryCredentials>,
        _timeout: Duration,
    ) -> Result<PulledImage, SandboxError> {
        self.pulls
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| SandboxError::Pull {
                role: agent_sandbox::ImageRole::Base,
                image: reference.into(),
                reason: "manifest unknown".into(),
            })
    }

    async fn find_image(&self, image: &str) -> Result<Option<PulledImage>, SandboxError> {
        Ok(self.images.get(image).cloned())
    }

    async fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Sealed, SandboxError> {
        {
            let mut failing = self.failing_relabels.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(SandboxError::NoEngine {
                    lost: "the engine went away".into(),
                });
            }
        }
        self.seals
            .lock()
            .unwrap()
            .push((image.to_string(), labels.clone()));
        Ok(Sealed {
            image_id: SEALED.into(),
            method: SealMethod::Commit,
            duration: std::time::Duration::from_millis(40),
        })
    }

    async fn lose_engine(&self) -> Option<String> {
        self.lost.lock().unwrap().pop_front()
    }

    async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        self.tags
            .lock()
            .unwrap()
            .push((image.to_string(), reference.to_string()));
        Ok(())
    }

    async fn remove(
        &self,
        scope: agent_sandbox::RemovalScope<'_>,
    ) -> Result<CleanupReport, SandboxError> {
        let sweep = match scope {
            agent_sandbox::RemovalScope::Labelled { value, .. } => ("everything", value),
            agent_sandbox::RemovalScope::Containers { value, .. } => ("containers", value),
            agent_sandbox::RemovalScope::Untagged(_) => return Ok(CleanupReport::default()),
        };
        self.removed
            .lock()
            .unwrap()
            .push((sweep.0, sweep.1.to_string()));
        Ok(CleanupReport::default())
    }
}

fn bundle(dockerfile: Option<&str>, main: &str) -> Answer<CodeBundle> {
    Answer::Parsed(CodeBundle {
        summary: "a version".into(),
        dockerfile: dockerfile.map(str::to_string),
        files: vec![BundleFile {
            filename: "main.py".into(),
            content: main.into(),
        }],
        delete: Vec::new(),
    })
}

fn ran(exit_code: i64, stdout: &str, stderr: &str) -> RunOutcome {
    RunOutcome {
        exit_code: Some(exit_code),
        stdout: Captured {
            bytes: stdout.as_bytes().to_vec(),
            total_bytes: stdout.len() as u64,
            truncated: false,
        },
        stderr: Captured {
            bytes: stderr.as_bytes().to_vec(),
            total_bytes: stderr.len() as u64,
            truncated: false,
        },
        timed_out: false,
        oom_killed: false,
        start_error: None,
        duration: Duration::from_millis(3),
    }
}

/// The id the scripted engine gives a verified image once labelled.
const SEALED: &str = "sha256:sealed";

fn built() -> BuildStatus {
    BuildStatus::Built {
        image_id: "sha256:feed".into(),
    }
}

fn settings() -> Settings {
    Settings {
        model: ModelSettings {
            base_url: "http://127.0.0.1:9/v1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            name: "scripted".into(),
            temperature: 0.2,
            request_timeout_secs: 5,
            max_retries: 0,
            max_retry_after_secs: 1,
            structured_output: StructuredOutput::JsonSchema,
            stream: false,
            max_tokens: None,
            max_concurrent_requests: 4,
            candidates: 1,
        },
        docker: DockerSettings {
            base_image: "agent-base/python:3.11".into(),
            allowed_base_images: Vec::new(),
            build_network: BuildNetwork::Default,
            build_allow: None,
            builder: agent_spec::BuilderChoice::Auto,
            cache_max_mb: 0,
            engines: Vec::new(),
            cache_from: Vec::new(),
            probe_image: "agent-base/busybox:1".into(),
            egress_image: "agent-base/python:3.11".into(),
        },
        limits: Limits::default(),
        bundle: BundleLimits::default(),
        prompts: PromptSettings::default(),
        publish: Default::default(),
        limit_flags: LimitsLayer::default(),
    }
}

struct Harness {
    job: Job,
    _dir: tempfile::TempDir,
    events: Arc<Mutex<Vec<Event>>>,
}

fn harness(checks: Vec<Check>, judge: bool, limits: Limits) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.toml"), "prompt = \"Print hello.\"\n").unwrap();
    let spec = Spec {
        name: "hello".into(),
        path: dir.path().join("hello.toml"),
        prompt: "Print hello.".into(),
        conditions: "It prints hello.".into(),
        judge,
        inputs: Vec::new(),
        limits: SpecLimits::default(),
        run: RunSpec::default(),
        checks,
        cases: Vec::new(),
        image: None,
        files: Vec::new(),
        structure_tests: Vec::new(),
        service: None,
        probes: Vec::new(),
        suites: Vec::new(),
    };
    Harness {
        job: Job {
            spec,
            limits,
            settings: Arc::new(settings()),
            prompts: Arc::new(Prompts::default()),
            run_id: "run-1".into(),
            run_dir: agent_run_dir::RunDir::new(dir.path().join("runs/hello/run-1")),
            owner: "host/1".into(),
            lock: crate::LockMode::Off,
            provenance: crate::Provenance::default(),
            credentials: None,
        },
        _dir: dir,
        events: Arc::default(),
    }
}

impl Harness {
    /// Runs the job to its end with no cancellation.
    async fn run(&self, model: &mut ScriptedModel, engine: &ScriptedEngine) -> RunResult {
        run_spec(
            &self.job,
            model,
            engine,
            &self.sink(),
            &CancellationToken::new(),
        )
        .await
    }

    fn sink(&self) -> EventSink {
        let events = self.events.clone();
        Arc::new(move |event| events.lock().unwrap().push(event))
    }
}

fn stdout_equals(text: &str) -> Vec<Check> {
    vec![Check {
        name: "greeting".into(),
        matcher: Matcher::StdoutEquals(text.into()),
    }]
}

const DOCKERFILE: &str =
    "FROM agent-base/python:3.11\nCOPY main.py /\nCMD [\"python\", \"/main.py\"]\n";

#[tokio::test]
async fn passes_at_first_try_tags_writes_final_and_cleans_up() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello\n", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none());
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.stopped_by, StopReason::Passed);
    assert_eq!(report.iterations, 1);
    assert_eq!(
        report.history[0].model_ms, 1,
        "the model's latency is accounted"
    );
    assert!(report.history[0].overhead_ms >= 0.0);
    let tag = report.image.clone().unwrap();
    assert!(
        tag.starts_with("agent/hello:") && tag.len() == "agent/hello:".len() + 12,
        "{tag}"
    );
    assert_eq!(engine.tags.lock().unwrap()[0], (SEALED.to_string(), tag));
    let seal = report.seal.as_ref().expect("the seal is recorded");
    assert_eq!((seal.method.as_str(), seal.secs), ("commit", 0.04));
    assert_eq!(
        engine.removed.lock().unwrap()[0],
        ("containers", "run-1".to_string()),
        "the run's containers are swept; its images are not listed"
    );
    let seals = engine.seals.lock().unwrap();
    assert_eq!(seals.len(), 1, "the verified image is labelled once");
    assert_eq!(
        seals[0].0, "sha256:feed",
        "the built image is the one labelled"
    );
    for (key, value) in [
        ("org.opencontainers.image.title", "hello"),
        ("dev.agent.model", "scripted"),
        ("dev.agent.iterations", "1"),
        ("dev.agent.checks", "greeting"),
        ("dev.agent.run", "run-1"),
    ] {
        assert_eq!(
            seals[0].1.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    let run_dir = harness.job.run_dir.root();
    assert_eq!(
        std::fs::read_to_string(run_dir.join("final/main.py")).unwrap(),
        "print('hello')"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("final/Dockerfile")).unwrap(),
        DOCKERFILE
    );
    assert!(run_dir.join("iterations/1/bundle/main.py").exists());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap(),
        "hello\n"
    );
    assert!(
        !run_dir.join("report.json").exists(),
        "report.json is written once, by the caller, after publishing"
    );
    crate::write_report(&report, &harness.job.run_dir).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(written["verified"], true);
    assert_eq!(written["history"][0]["outcome"], "passed");
    assert_eq!(written["usage"]["calls"], 1);
    let events = harness.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|event| matches!(event, Event::Finished { verified: true, .. }))
    );
}

#[tokio::test]
async fn an_engine_lost_mid_run_builds_and_runs_the_same_bundle_again_without_a_model_call() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello\n", "")])),
        failing_runs: Mutex::new(1),
        lost: Mutex::new(VecDeque::from(["tcp://builder-2:2376".to_string()])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.iterations, 1);
    assert_eq!(
        report.history[0].retried_after_lost,
        vec!["tcp://builder-2:2376".to_string()]
    );
    assert_eq!(model.calls.len(), 1, "no new model call for the retry");
    let contexts = engine.contexts.lock().unwrap();
    assert_eq!(contexts.len(), 2, "built again");
    assert_eq!(contexts[0], contexts[1], "the same bundle");
}

#[tokio::test]
async fn an_engine_lost_while_sealing_builds_runs_and_seals_again_elsewhere() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([
            ran(0, "hello\n", ""),
            ran(0, "hello\n", ""),
        ])),
        failing_relabels: Mutex::new(1),
        lost: Mutex::new(VecDeque::from(["tcp://builder-2:2376".to_string()])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.iterations, 1);
    assert_eq!(
        report.history[0].retried_after_lost,
        vec!["tcp://builder-2:2376".to_string()]
    );
    assert_eq!(model.calls.len(), 1, "no new model call for the retry");
    assert_eq!(engine.contexts.lock().unwrap().len(), 2, "built again");
    assert!(engine.runs.lock().unwrap().is_empty(), "run again");
    assert_eq!(
        engine.seals.lock().unwrap().len(),
        1,
        "sealed once, on the new engine"
    );
}

#[tokio::test]
async fn an_engine_error_with_no_engine_to_move_to_stops_the_run() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built()])),
        failing_runs: Mutex::new(1),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_some());
    assert_eq!(result.report.stopped_by, StopReason::Error);
    assert!(!result.report.verified);
}

#[tokio::test]
async fn build_failure_feeds_the_step_output_back_and_the_repair_merges() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(Some(DOCKERFILE), "print('hello')"),
            bundle(None, "print('hello')  # fixed"),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([
            BuildStatus::Failed {
                error: "The command '/bin/sh -c pip install nothing' returned a non-zero code: 1"
                    .into(),
                failing_step: Some("Step 2/3 : RUN pip install nothing".into()),
                step_output: "ERROR: No matching distribution found for nothing\n".into(),
                missing_image: None,
            },
            built(),
        ])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.report.verified);
    assert_eq!(result.report.history[0].outcome, Outcome::BuildFailed);
    let (purpose, messages) = &model.calls[1];
    assert_eq!(*purpose, Purpose::Repair);
    let repair = &messages.last().unwrap().content;
    assert!(
        repair.contains("No matching distribution found for nothing"),
        "{repair}"
    );
    assert!(
        repair.contains("Step 2/3 : RUN pip install nothing"),
        "{repair}"
    );
    assert!(
        repair.contains(DOCKERFILE.lines().next().unwrap()),
        "the current bundle is shown"
    );
    let roles: Vec<Role> = messages.iter().map(|message| message.role).collect();
    assert_eq!(
        roles,
        [Role::System, Role::User, Role::User],
        "the bundle is sent once: no earlier reply echoed as an assistant turn"
    );
    let shown: usize = messages
        .iter()
        .map(|message| message.content.matches("COPY main.py /").count())
        .sum();
    assert_eq!(shown, 1, "the Dockerfile appears once in a repair");
    assert!(
        messages[1].content.contains("Print hello.")
            && messages[1].content.contains("It prints hello.")
    );
    let final_dockerfile =
        std::fs::read_to_string(harness.job.run_dir.root().join("final/Dockerfile")).unwrap();
    assert_eq!(
        final_dockerfile, DOCKERFILE,
        "a null dockerfile keeps the earlier one"
    );
}

#[tokio::test]
async fn never_passing_stops_at_max_iterations_with_each_failure_fed_back() {
    let limits = Limits {
        max_iterations: 3,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: (0..3)
            .map(|_| bundle(Some(DOCKERFILE), "print('bye')"))
            .collect(),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new((0..3).map(|_| built()).collect()),
        runs: Mutex::new((0..3).map(|_| ran(0, "bye\n", "")).collect()),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    let report = result.report;
    assert!(!report.verified);
    assert_eq!(report.stopped_by, StopReason::MaxIterations);
    assert_eq!(report.history.len(), 3);
    assert_eq!(model.calls.len(), 3);
    assert!(
        report
            .history
            .iter()
            .all(|record| record.outcome == Outcome::ChecksFailed)
    );
    let repair = &model.calls[2].1.last().unwrap().content;
    assert!(
        repair.contains("greeting") && repair.contains("bye"),
        "{repair}"
    );
    assert!(report.image.is_none());
    assert!(engine.tags.lock().unwrap().is_empty());
    assert!(!harness.job.run_dir.root().join("final").exists());
}

#[tokio::test]
async fn a_crash_is_run_failed_with_stderr_in_the_feedback() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(Some(DOCKERFILE), "x"),
            bundle(None, "print('hello')"),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([
            ran(
                1,
                "",
                "Traceback (most recent call last):\nNameError: name 'x' is not defined\n",
            ),
            ran(0, "hello\n", ""),
        ])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.report.verified);
    assert_eq!(result.report.history[0].outcome, Outcome::RunFailed);
    assert_eq!(result.report.history[0].exit_code, Some(1));
    let repair = &model.calls[1].1.last().unwrap().content;
    assert!(
        repair.contains("NameError: name 'x' is not defined"),
        "{repair}"
    );
    assert!(repair.contains("Exit code: 1"), "{repair}");
}

#[tokio::test]
async fn an_unparseable_reply_is_sent_back_once_before_it_counts() {
    let limits = Limits {
        max_iterations: 2,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            Answer::Invalid("the reply is not JSON".into()),
            Answer::Invalid("the reply is not JSON".into()),
            Answer::Invalid("the reply is not JSON".into()),
            bundle(Some(DOCKERFILE), "print('hello')"),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    let purposes: Vec<Purpose> = model.calls.iter().map(|(purpose, _)| *purpose).collect();
    assert_eq!(
        purposes,
        [
            Purpose::Generate,
            Purpose::Reformat,
            Purpose::Repair,
            Purpose::Reformat
        ]
    );
    assert!(
        model.calls[1]
            .1
            .last()
            .unwrap()
            .content
            .contains("the reply is not JSON")
    );
    assert_eq!(result.report.history[0].outcome, Outcome::InvalidBundle);
    assert!(result.report.verified);
    assert_eq!(result.report.iterations, 1, "only built iterations count");
    assert_eq!(result.report.usage.calls, 4);
}

#[tokio::test]
async fn hostile_paths_are_invalid_bundles_and_nothing_is_written_outside() {
    let limits = Limits {
        max_iterations: 1,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([Answer::Parsed(CodeBundle {
            summary: String::new(),
            dockerfile: Some(DOCKERFILE.into()),
            files: vec![BundleFile {
                filename: "../../../escape.txt".into(),
                content: "x".into(),
            }],
            delete: Vec::new(),
        })]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine::default();
    let result = harness.run(&mut model, &engine).await;
    assert_eq!(result.report.history[0].outcome, Outcome::InvalidBundle);
    assert!(result.report.history[0].detail.contains("`..`"));
    assert!(
        engine.contexts.lock().unwrap().is_empty(),
        "nothing was built"
    );
    let root = harness
        .job
        .run_dir
        .root()
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    assert!(!root.join("escape.txt").exists());
    assert!(!harness.job.run_dir.root().join("escape.txt").exists());
}

#[tokio::test]
async fn the_token_budget_stops_the_loop() {
    let limits = Limits {
        max_total_tokens: 150,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: (0..8)
            .map(|_| bundle(Some(DOCKERFILE), "print('bye')"))
            .collect(),
        tokens_per_call: 50,
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new((0..8).map(|_| built()).collect()),
        runs: Mutex::new((0..8).map(|_| ran(0, "bye", "")).collect()),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert_eq!(result.report.stopped_by, StopReason::MaxTotalTokens);
    assert_eq!(
        model.calls.len(),
        2,
        "100 tokens per call: the third call would pass 150"
    );
    assert_eq!(
        result.report.usage.prompt_tokens + result.report.usage.completion_tokens,
        200
    );
}

#[tokio::test]
async fn the_judge_decides_when_there_are_no_checks_and_its_reason_is_fed_back() {
    let harness = harness(Vec::new(), true, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "v1"), bundle(None, "v2")]),
        verdicts: VecDeque::from([
            Answer::Parsed(Verdict {
                pass: false,
                reason: "the greeting is missing its exclamation mark".into(),
            }),
            Answer::Parsed(Verdict {
                pass: true,
                reason: "fine".into(),
            }),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello", ""), ran(0, "hello!", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.report.verified);
    assert_eq!(result.report.history[0].outcome, Outcome::ChecksFailed);
    assert_eq!(result.report.history[0].checks[0].name, "judge");
    let judge_request = &model.calls[1].1[0].content;
    assert!(judge_request.contains("It prints hello.") && judge_request.contains("hello"));
    let repair = &model.calls[2].1.last().unwrap().content;
    assert!(repair.contains("exclamation mark"), "{repair}");
}

#[tokio::test]
async fn cancelling_mid_run_cleans_up_and_reports_cancelled() {
    let harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built()])),
        hang_runs: true,
        ..ScriptedEngine::default()
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let result = run_spec(&harness.job, &mut model, &engine, &harness.sink(), &cancel).await;
    assert_eq!(result.report.stopped_by, StopReason::Cancelled);
    assert!(!result.report.verified);
    assert_eq!(engine.removed.lock().unwrap().len(), 1);
    assert!(
        !harness.job.run_dir.report_json().exists(),
        "the report is returned; its caller writes report.json"
    );
}

#[tokio::test]
async fn an_identical_bundle_gives_an_identical_context() {
    let limits = Limits {
        max_iterations: 2,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(Some(DOCKERFILE), "print(1)"),
            bundle(None, "print(1)"),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "1", ""), ran(0, "1", "")])),
        ..ScriptedEngine::default()
    };
    harness.run(&mut model, &engine).await;
    let contexts = engine.contexts.lock().unwrap();
    assert_eq!(contexts.len(), 2);
    assert_eq!(contexts[0], contexts[1]);
}

#[tokio::test]
async fn the_wall_clock_budget_stops_the_loop_between_iterations() {
    let limits = Limits {
        max_wall_secs: 1,
        ..Limits::default()
    };
    let harness = harness(stdout_equals("hello"), false, limits);
    let mut model = ScriptedModel {
        bundles: (0..8)
            .map(|_| bundle(Some(DOCKERFILE), "print('bye')"))
            .collect(),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new((0..8).map(|_| built()).collect()),
        runs: Mutex::new((0..8).map(|_| ran(0, "bye", "")).collect()),
        run_delay: Duration::from_millis(600),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert_eq!(result.report.stopped_by, StopReason::MaxWallSecs);
    assert_eq!(
        result.report.history.len(),
        2,
        "two runs of 0.6 s spend a 1 s budget"
    );
}

mod locks {
    use super::*;
    use crate::{LockMode, LockState, Published};

    fn passing_engine(runs: usize) -> ScriptedEngine {
        ScriptedEngine {
            builds: Mutex::new((0..runs).map(|_| built()).collect()),
            runs: Mutex::new((0..runs).map(|_| ran(0, "hello\n", "")).collect()),
            ..ScriptedEngine::default()
        }
    }

    /// A harness whose first run verified and wrote its lock.
    async fn locked_harness() -> Harness {
        let mut harness = harness(stdout_equals("hello"), false, Limits::default());
        harness.job.lock = LockMode::Use;
        let mut model = ScriptedModel {
            bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
            ..ScriptedModel::default()
        };
        let result = harness.run(&mut model, &passing_engine(1)).await;
        assert!(result.report.verified);
        let lock = result.report.lock.expect("the lock is reported");
        assert_eq!((lock.found, lock.written), (LockState::Missing, true));
        harness
    }

    #[tokio::test]
    async fn a_verified_run_writes_the_lock_and_a_fresh_lock_verifies_without_the_model() {
        let harness = locked_harness().await;
        let dir = crate::lock_dir(&harness.job.spec);
        assert_eq!(
            std::fs::read_to_string(dir.join("main.py")).unwrap(),
            "print('hello')"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("Dockerfile")).unwrap(),
            DOCKERFILE
        );
        let file: crate::LockFile =
            serde_json::from_str(&std::fs::read_to_string(dir.join("lock.json")).unwrap()).unwrap();
        assert_eq!(file.model, "scripted");
        assert_eq!(file.base_image, "agent-base/python:3.11");

        let mut model = ScriptedModel::default();
        let result = harness.run(&mut model, &passing_engine(1)).await;
        assert!(result.report.verified, "{:?}", result.report);
        assert!(model.calls.is_empty(), "a fresh lock needs no model call");
        assert_eq!(result.report.usage.calls, 0);
        let lock = result.report.lock.unwrap();
        assert_eq!((lock.found, lock.written), (LockState::Fresh, false));
    }

    #[tokio::test]
    async fn a_stale_lock_that_fails_starts_a_repair_from_the_locked_bundle() {
        let mut harness = locked_harness().await;
        harness.job.spec.prompt = "Print hello, politely.".into();
        let mut model = ScriptedModel {
            bundles: VecDeque::from([bundle(None, "print('hello')  # again")]),
            ..ScriptedModel::default()
        };
        let engine = ScriptedEngine {
            builds: Mutex::new(VecDeque::from([built(), built()])),
            runs: Mutex::new(VecDeque::from([ran(0, "bye\n", ""), ran(0, "hello\n", "")])),
            ..ScriptedEngine::default()
        };
        let result = harness.run(&mut model, &engine).await;
        assert!(result.report.verified);
        assert_eq!(model.calls.len(), 1);
        let (purpose, messages) = &model.calls[0];
        assert_eq!(*purpose, Purpose::Repair, "the first call repairs the lock");
        assert!(messages.last().unwrap().content.contains("bye"));
        let lock = result.report.lock.unwrap();
        assert_eq!((lock.found, lock.written), (LockState::Stale, true));
    }

    /// An engine that has the base image `agent-base/python:3.11` as pulled from a
    /// registry, and passes `runs` builds and runs.
    fn engine_with_base(runs: usize) -> ScriptedEngine {
        let base = PulledImage {
            id: "sha256:1d".into(),
            repo_digests: vec!["agent-base/python@sha256:ab".into()],
            ..PulledImage::default()
        };
        ScriptedEngine {
            images: BTreeMap::from([
                ("agent-base/python:3.11".to_string(), base.clone()),
                ("agent-base/python@sha256:ab".to_string(), base),
            ]),
            ..passing_engine(runs)
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    #[tokio::test]
    async fn the_build_stands_on_the_pinned_base_which_the_lock_report_and_labels_name() {
        let mut harness = harness(stdout_equals("hello"), false, Limits::default());
        harness.job.lock = LockMode::Use;
        let mut model = ScriptedModel {
            bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
            ..ScriptedModel::default()
        };
        let engine = engine_with_base(1);
        let result = harness.run(&mut model, &engine).await;
        assert!(result.report.verified, "{:?}", result.report);
        let pin = "agent-base/python@sha256:ab";
        assert_eq!(result.report.base_digest.as_deref(), Some(pin));
        assert_eq!(result.report.history[0].base_digest.as_deref(), Some(pin));
        // The context sent names the pin; its digest is the bundle's as written.
        let sent = engine.context_bytes.lock().unwrap()[0].clone();
        assert!(contains(&sent, &format!("FROM {pin}\n")));
        assert!(!contains(&sent, "FROM agent-base/python:3.11"));
        let written = crate::lock::read(&harness.job.spec).unwrap().unwrap();
        assert_eq!(written.file.base_digest.as_deref(), Some(pin));
        assert_eq!(written.bundle.dockerfile.as_deref(), Some(DOCKERFILE));
        let files = BTreeMap::from([
            ("Dockerfile".to_string(), DOCKERFILE.as_bytes().to_vec()),
            ("main.py".to_string(), b"print('hello')".to_vec()),
        ]);
        let as_written = agent_sandbox::build_context(&files).unwrap().digest;
        assert_eq!(engine.contexts.lock().unwrap()[0], as_written);
        assert_eq!(written.file.bundle_digest, as_written);
        let (_, labels) = engine.seals.lock().unwrap()[0].clone();
        assert_eq!(labels["dev.agent.base-digest"], pin);
        assert_eq!(
            labels["org.opencontainers.image.base.name"],
            "agent-base/python:3.11"
        );
        assert_eq!(labels["org.opencontainers.image.base.digest"], "sha256:ab");

        // The same lock again on the same base: nothing rewritten.
        let result = harness
            .run(&mut ScriptedModel::default(), &engine_with_base(1))
            .await;
        assert!(result.report.verified);
        let lock = result.report.lock.unwrap();
        assert_eq!((lock.found, lock.written), (LockState::Fresh, false));
    }

    #[tokio::test]
    async fn a_fresh_lock_whose_base_is_gone_stops_before_any_build_or_model_call() {
        let harness = locked_harness().await;
        let path = crate::lock_dir(&harness.job.spec).join("lock.json");
        let mut file: crate::LockFile =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file.base_digest = Some("sha256:gone".into());
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let mut model = ScriptedModel::default();
        let engine = passing_engine(1);
        let result = harness.run(&mut model, &engine).await;
        assert!(!result.report.verified);
        assert_eq!(result.report.stopped_by, StopReason::Error);
        match result.error {
            Some(crate::LoopError::BaseUnavailable { reference, source }) => {
                assert_eq!(reference, "sha256:gone");
                assert!(source.is_none(), "an image id is pulled from nowhere");
            }
            other => panic!("expected BaseUnavailable, got {other:?}"),
        }
        assert!(model.calls.is_empty());
        assert!(engine.contexts.lock().unwrap().is_empty(), "nothing built");
    }

    #[tokio::test]
    async fn a_refresh_whose_base_cannot_be_pulled_names_it_and_builds_nothing() {
        let mut harness = locked_harness().await;
        harness.job.lock = LockMode::RefreshBase;
        let mut model = ScriptedModel::default();
        let engine = passing_engine(1);
        let result = harness.run(&mut model, &engine).await;
        match result.error {
            Some(crate::LoopError::BaseRefresh { image, .. }) => {
                assert_eq!(image, "agent-base/python:3.11");
            }
            other => panic!("expected BaseRefresh, got {other:?}"),
        }
        assert!(model.calls.is_empty());
        assert!(engine.contexts.lock().unwrap().is_empty(), "nothing built");
    }

    /// The lock of `harness` after its image was pushed, and an image as the registry
    /// holds it, labelled with `spec_digest` and the lock's bundle digest.
    fn published_lock(harness: &Harness, spec_digest: Option<&str>) -> (Published, PulledImage) {
        let dir = crate::lock_dir(&harness.job.spec);
        let file: crate::LockFile =
            serde_json::from_str(&std::fs::read_to_string(dir.join("lock.json")).unwrap()).unwrap();
        let published = Published {
            reference: "registry.test/ci/hello:0123456789ab".into(),
            digest: "sha256:feed".into(),
        };
        assert!(crate::record_published(&dir, &file.bundle_digest, &published).unwrap());
        let labels = BTreeMap::from([
            (
                "dev.agent.spec-digest".to_string(),
                spec_digest.unwrap_or(&file.spec_digest).to_string(),
            ),
            ("dev.agent.bundle-digest".to_string(), file.bundle_digest),
        ]);
        let pulled = PulledImage {
            id: "sha256:pulled".into(),
            labels,
            ..PulledImage::default()
        };
        (published, pulled)
    }

    #[tokio::test]
    async fn a_fresh_lock_with_a_published_image_runs_that_image_and_builds_nothing() {
        let mut harness = locked_harness().await;
        harness.job.lock = LockMode::Locked;
        let (published, pulled) = published_lock(&harness, None);
        let engine = ScriptedEngine {
            runs: Mutex::new(VecDeque::from([ran(0, "hello\n", "")])),
            pulls: Mutex::new(VecDeque::from([pulled])),
            ..ScriptedEngine::default()
        };
        let result = harness.run(&mut ScriptedModel::default(), &engine).await;
        let report = result.report;
        assert!(report.verified, "{report:?}");
        assert!(engine.contexts.lock().unwrap().is_empty(), "nothing built");
        assert!(engine.seals.lock().unwrap().is_empty(), "its labels stay");
        assert_eq!(report.reused, Some(published.clone()));
        assert_eq!(report.iterations, 0);
        let tag = report.image.clone().unwrap();
        assert_eq!(
            engine.tags.lock().unwrap()[0],
            ("sha256:pulled".into(), tag)
        );
        let events = harness.events.lock().unwrap();
        assert!(events.contains(&Event::Reused {
            spec: "hello".into(),
            reference: published.reference,
        }));
    }

    #[tokio::test]
    async fn a_stale_lock_rewritten_for_the_same_bundle_keeps_its_published_image() {
        let mut harness = locked_harness().await;
        let (published, _) = published_lock(&harness, None);
        let dir = crate::lock_dir(&harness.job.spec);
        let read = || -> crate::LockFile {
            serde_json::from_str(&std::fs::read_to_string(dir.join("lock.json")).unwrap()).unwrap()
        };
        let before = read();
        harness.job.spec.prompt = "Print hello, politely.".into();
        let result = harness
            .run(&mut ScriptedModel::default(), &passing_engine(1))
            .await;
        assert!(result.report.verified, "{:?}", result.report);
        let lock = result.report.lock.unwrap();
        assert_eq!((lock.found, lock.written), (LockState::Stale, true));
        let after = read();
        assert_ne!(after.spec_digest, before.spec_digest);
        assert_eq!(after.bundle_digest, before.bundle_digest);
        assert_eq!(after.published, Some(published));
    }

    #[tokio::test]
    async fn a_published_image_of_another_spec_is_said_and_the_lock_is_built() {
        let harness = locked_harness().await;
        let (_, pulled) = published_lock(&harness, Some("another"));
        let engine = ScriptedEngine {
            pulls: Mutex::new(VecDeque::from([pulled])),
            ..passing_engine(1)
        };
        let result = harness.run(&mut ScriptedModel::default(), &engine).await;
        assert!(result.report.verified);
        assert_eq!(result.report.reused, None);
        assert_eq!(result.report.iterations, 1, "built");
        let events = harness.events.lock().unwrap();
        let said = events.iter().find_map(|event| match event {
            Event::ReuseSkipped { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        let said = said.expect("the reason is said");
        assert!(
            said.starts_with("its label `dev.agent.spec-digest` is `another`, the lock's is `"),
            "{said}"
        );
    }

    #[tokio::test]
    async fn locked_runs_never_call_the_model() {
        // No lock at all.
        let mut harness = harness(stdout_equals("hello"), false, Limits::default());
        harness.job.lock = LockMode::Locked;
        let mut model = ScriptedModel::default();
        let engine = passing_engine(0);
        let result = harness.run(&mut model, &engine).await;
        assert_eq!(result.report.stopped_by, StopReason::LockMissing);
        assert!(!result.report.verified);
        assert!(engine.contexts.lock().unwrap().is_empty(), "nothing built");

        // A stale lock.
        let mut harness = locked_harness().await;
        harness.job.lock = LockMode::Locked;
        harness.job.spec.prompt = "Something else.".into();
        let result = harness.run(&mut model, &passing_engine(0)).await;
        assert_eq!(result.report.stopped_by, StopReason::LockStale);

        // A fresh lock whose bundle fails now.
        harness.job.spec.prompt = "Print hello.".into();
        let engine = ScriptedEngine {
            builds: Mutex::new(VecDeque::from([built()])),
            runs: Mutex::new(VecDeque::from([ran(0, "bye\n", "")])),
            ..ScriptedEngine::default()
        };
        let result = harness.run(&mut model, &engine).await;
        assert_eq!(result.report.stopped_by, StopReason::LockFailed);
        assert_eq!(result.report.history.len(), 1);
        assert!(model.calls.is_empty(), "--locked never calls the model");
    }
}

#[tokio::test]
async fn where_runs_push_the_repositorys_moving_tags_of_the_spec_are_cache_sources() {
    let mut harness = harness(stdout_equals("hello"), false, Limits::default());
    let mut settings = settings();
    settings.publish.repository = Some("registry.test/ci".into());
    settings.publish.tags = vec!["latest".into(), "main".into()];
    settings.docker.cache_from = vec!["registry.test/ci/hello:latest".into()];
    harness.job.settings = Arc::new(settings);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([bundle(Some(DOCKERFILE), "print('hello')")]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello\n", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.report.verified, "{:?}", result.report);
    let asked: Vec<String> = harness
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|event| match event {
            Event::CacheSourceSkipped { reference, .. } => Some(reference.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            "registry.test/ci/hello:latest".to_owned(),
            "registry.test/ci/hello:main".to_owned()
        ],
        "each once, the moving tags first"
    );
}

/// A harness whose first generation asks for `count` candidates.
fn with_candidates(mut harness: Harness, count: u32) -> Harness {
    let mut settings = settings();
    settings.model.candidates = count;
    harness.job.settings = Arc::new(settings);
    harness
}

fn build_failed() -> BuildStatus {
    BuildStatus::Failed {
        error: "The command '/bin/sh -c exit 3' returned a non-zero code: 3".into(),
        failing_step: Some("Step 2/2 : RUN exit 3".into()),
        step_output: String::new(),
        missing_image: None,
    }
}

#[tokio::test]
async fn the_first_candidate_to_pass_is_sealed_and_every_candidate_is_reported() {
    let harness = with_candidates(harness(stdout_equals("hello"), false, Limits::default()), 3);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(Some(DOCKERFILE), "print('goodbye')"),
            bundle(Some(DOCKERFILE), "print('hello')"),
            bundle(
                Some("FROM agent-base/python:3.11\nRUN exit 3\n"),
                "print(1)",
            ),
        ]),
        tokens_per_call: 10,
        ..ScriptedModel::default()
    };
    // Candidates 1 and 2 build in order; candidate 3's build fails.
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built(), build_failed()])),
        runs: Mutex::new(VecDeque::from([
            ran(0, "goodbye\n", ""),
            ran(0, "hello\n", ""),
        ])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.history.len(), 1);
    assert_eq!(report.usage.calls, 3);
    assert_eq!(
        report.usage.total_tokens(),
        60,
        "every candidate's tokens count"
    );
    let outcomes: Vec<(u32, Outcome, bool)> = report
        .candidates
        .iter()
        .map(|record| (record.candidate, record.outcome, record.chosen))
        .collect();
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes.contains(&(3, Outcome::BuildFailed, false)),
        "{outcomes:?}"
    );
    let passed: Vec<&(u32, Outcome, bool)> = outcomes
        .iter()
        .filter(|(_, outcome, _)| *outcome == Outcome::Passed)
        .collect();
    assert_eq!(passed.len(), 1, "one candidate printed hello: {outcomes:?}");
    assert!(passed[0].2, "the passing candidate is chosen");
    assert_eq!(
        engine.seals.lock().unwrap().len(),
        1,
        "only the winner is sealed"
    );
    assert_eq!(
        engine.tags.lock().unwrap().len(),
        1,
        "only the winner is tagged"
    );
    let run_dir = harness.job.run_dir.root();
    for number in 1..=3 {
        assert!(
            run_dir
                .join(format!(
                    "iterations/1/candidates/{number}/bundle/Dockerfile"
                ))
                .is_file()
        );
    }
    assert_eq!(
        std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap(),
        "hello\n"
    );
}

#[tokio::test]
async fn with_no_candidate_passing_the_repair_starts_from_the_furthest() {
    let limits = Limits {
        max_iterations: 2,
        ..Limits::default()
    };
    let harness = with_candidates(harness(stdout_equals("hello"), false, limits), 3);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(
                Some("FROM agent-base/python:3.11\nRUN exit 3\n"),
                "print(1)",
            ),
            bundle(Some(DOCKERFILE), "print('goodbye')"),
            Answer::Refused("no".into()),
            bundle(None, "print('hello')"),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([build_failed(), built(), built()])),
        runs: Mutex::new(VecDeque::from([
            ran(0, "goodbye\n", ""),
            ran(0, "hello\n", ""),
        ])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.history[0].outcome, Outcome::ChecksFailed);
    let chosen: Vec<u32> = report
        .candidates
        .iter()
        .filter(|record| record.chosen)
        .map(|record| record.candidate)
        .collect();
    assert_eq!(chosen, [2], "the one that ran is the furthest");
    let (purpose, messages) = &model.calls[3];
    assert_eq!(*purpose, Purpose::Repair);
    let repair = &messages.last().unwrap().content;
    assert!(
        repair.contains("print('goodbye')"),
        "the furthest bundle: {repair}"
    );
    let lines: Vec<&str> = repair
        .lines()
        .filter(|line| line.starts_with("- candidate "))
        .collect();
    assert_eq!(lines.len(), 2, "{repair}");
    assert!(
        lines[0].starts_with("- candidate 1: build_failed — build failed"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("- candidate 3: invalid_bundle — the model refused"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn with_a_judge_the_candidates_that_ran_are_judged_in_turn_until_one_passes() {
    let harness = with_candidates(harness(Vec::new(), true, Limits::default()), 2);
    let mut model = ScriptedModel {
        bundles: VecDeque::from([
            bundle(Some(DOCKERFILE), "print('hello')"),
            bundle(Some(DOCKERFILE), "print('hello!')"),
        ]),
        verdicts: VecDeque::from([
            Answer::Parsed(Verdict {
                pass: false,
                reason: "no exclamation mark".into(),
            }),
            Answer::Parsed(Verdict {
                pass: true,
                reason: "fine".into(),
            }),
        ]),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new(VecDeque::from([built(), built()])),
        runs: Mutex::new(VecDeque::from([ran(0, "hello", ""), ran(0, "hello!", "")])),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    assert!(report.verified);
    assert_eq!(report.history.len(), 1);
    assert_eq!(report.usage.calls, 4, "two bundles and two verdicts");
    let outcomes: Vec<(Outcome, bool)> = report
        .candidates
        .iter()
        .map(|record| (record.outcome, record.chosen))
        .collect();
    assert_eq!(
        outcomes,
        [(Outcome::ChecksFailed, false), (Outcome::Passed, true)]
    );
    assert_eq!(
        report.candidates[0].detail,
        "check `judge` failed: no exclamation mark"
    );
    assert_eq!(report.history[0].checks[0].name, "judge");
    assert!(report.history[0].checks[0].passed);
}

#[tokio::test]
async fn many_failing_cases_and_an_image_check_are_one_bounded_repair_naming_each() {
    let limits = Limits {
        max_iterations: 2,
        ..Limits::default()
    };
    let mut harness = harness(Vec::new(), false, limits);
    let count = 40;
    harness.job.spec.cases = (0..count)
        .map(|index| agent_spec::Case {
            name: format!("case-{index}"),
            stdin: Some(format!("{index}\n")),
            args: Vec::new(),
            env: BTreeMap::new(),
            entrypoint: None,
            command: None,
            timeout_secs: None,
            checks: stdout_equals("right"),
        })
        .collect();
    harness.job.spec.image = Some(agent_spec::ImageChecks {
        non_root: true,
        ..agent_spec::ImageChecks::default()
    });
    let flood = "wrong\n".repeat(5_000);
    let mut model = ScriptedModel {
        bundles: (0..2)
            .map(|_| bundle(Some(DOCKERFILE), "print('wrong')"))
            .collect(),
        ..ScriptedModel::default()
    };
    let engine = ScriptedEngine {
        builds: Mutex::new((0..2).map(|_| built()).collect()),
        runs: Mutex::new((0..2 * count).map(|_| ran(0, &flood, &flood)).collect()),
        ..ScriptedEngine::default()
    };
    let result = harness.run(&mut model, &engine).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    let report = result.report;
    let first = &report.history[0];
    assert_eq!(first.outcome, Outcome::ChecksFailed);
    assert_eq!(
        first.checks.len(),
        count + 1,
        "one check per case and the image's"
    );
    assert_eq!(first.checks[7].group, "case-7");
    assert_eq!(first.checks[count].group, "image");
    assert!(first.checks.iter().all(|check| !check.passed));
    assert!(
        first.detail.starts_with("41 checks failed"),
        "{}",
        first.detail
    );

    let repair = &model.calls[1].1.last().unwrap().content;
    assert!(repair.contains("40 of 40 cases failed"), "{repair}");
    assert!(
        repair.contains("Case `case-0` (stdin \"0\\n\")"),
        "{repair}"
    );
    assert!(
        repair.contains("`case-39`"),
        "every failed case is named: {repair}"
    );
    assert!(
        repair.contains("non-root") || repair.contains("non_root"),
        "{repair}"
    );
    assert!(
        repair.len() < 40 * 1024,
        "bounded however many cases fail: {} bytes",
        repair.len()
    );
    let task = &model.calls[0].1.last().unwrap().content;
    assert!(task.contains("Case `case-3`: stdin \"3\\n\""), "{task}");
    assert!(
        task.contains("USER is set to a user that is not root"),
        "{task}"
    );
}
