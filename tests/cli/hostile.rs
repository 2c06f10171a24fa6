//! Hostile replies, misbehaving programs, signals and faults, end to end: each case
//! ends as a reported outcome, never a crash, a hang, a leak or a stray write.

use std::time::{Duration, Instant};

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

const HELLO_SPEC: &str = r#"
prompt = "Write a Python program that prints hello."
conditions = "It prints exactly hello."

[[check]]
stdout_equals = "hello"
"#;

fn good() -> ScriptedReply {
    ScriptedReply::Content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_replies_are_fed_back_until_a_good_one_passes() {
    require_engine();
    let escape = bundle(
        Some(&python_dockerfile()),
        &[("../../outside.txt", "gotcha")],
    );
    let absolute = bundle(
        Some(&python_dockerfile()),
        &[("/tmp/agent-absolute-sentinel", "x")],
    );
    let server = ScriptedServer::start_with(move |index, request| match index {
        // Not JSON at all, then the same again on the second chance: invalid_bundle.
        0 | 1 => ScriptedReply::Content("Sure! Here is your program: print('hello')".into()),
        2 => {
            assert!(request.last_user_message().contains("could not be used"));
            ScriptedReply::Content(escape.clone())
        }
        3 => {
            assert!(
                request.last_user_message().contains("`..`"),
                "{}",
                request.last_user_message()
            );
            ScriptedReply::Content(absolute.clone())
        }
        4 => ScriptedReply::Refusal("I cannot help with that.".into()),
        5 => {
            assert!(
                request.last_user_message().contains("refusal"),
                "{}",
                request.last_user_message()
            );
            good()
        }
        _ => panic!("no further call expected"),
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("hello");
    let outcomes: Vec<&str> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "invalid_bundle",
            "invalid_bundle",
            "invalid_bundle",
            "invalid_bundle",
            "passed"
        ]
    );
    assert_eq!(report["iterations"], 1, "only the good bundle was built");
    assert!(!workspace.path().join("outside.txt").exists());
    assert!(
        !workspace
            .path()
            .parent()
            .unwrap()
            .join("outside.txt")
            .exists()
    );
    assert!(!std::path::Path::new("/tmp/agent-absolute-sentinel").exists());
    for path in files_below(&workspace.out()) {
        assert!(path.starts_with(workspace.out()), "{}", path.display());
    }
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_gets_only_the_spec_env_and_never_the_key() {
    require_engine();
    let program =
        "import os\nfor key in sorted(os.environ):\n    print(f'{key}={os.environ[key]}')\n";
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", program)],
    ))])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec(
        "env",
        "prompt = \"p\"\nconditions = \"c\"\n[run]\nenv = { SPEC_VALUE = \"given\" }\n[[check]]\nstdout_contains = \"SPEC_VALUE=given\"\n",
    );
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    command.env("HOST_ONLY_SENTINEL", "host-value");
    let output = run_agent(&mut command).await;
    output.assert_code(0);
    let stdout =
        std::fs::read_to_string(workspace.run_dir("env").join("iterations/1/stdout.txt")).unwrap();
    assert!(stdout.contains("SPEC_VALUE=given"));
    assert!(!stdout.contains("HOST_ONLY_SENTINEL"), "{stdout}");
    assert!(!stdout.contains(API_KEY), "{stdout}");
    assert!(!stdout.contains("OPENAI_API_KEY"), "{stdout}");
    workspace.assert_key_nowhere();
    assert_run_cleaned_up(&workspace.report("env"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_hog_is_reported_as_out_of_memory() {
    require_engine();
    memory_hog_on(&Engine::main()).await;
}

/// A program that eats memory past the spec's limit on `engine`: out of memory, fed back.
pub(crate) async fn memory_hog_on(engine: &Engine) {
    let hog = bundle(
        Some(&python_dockerfile()),
        &[(
            "main.py",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n",
        )],
    );
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => ScriptedReply::Content(hog.clone()),
        1 => {
            assert!(
                request.last_user_message().contains("ran out of memory"),
                "{}",
                request.last_user_message()
            );
            good()
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let (workspace, output) = run_scripted_on(
        engine,
        &server,
        "",
        "hog",
        &format!("{HELLO_SPEC}\n[limits]\nmemory_mb = 64\n"),
    )
    .await;
    output.assert_code(0);
    let report = workspace.report("hog");
    assert_eq!(report["history"][0]["outcome"], "run_failed");
    assert_eq!(report["history"][0]["oom_killed"], true);
    engine.assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_output_is_capped_and_marked_as_cut() {
    require_engine();
    endless_output_on(&Engine::main()).await;
}

/// 200 MiB on stdout on `engine`: counted, cut at the limit, the feedback small.
pub(crate) async fn endless_output_on(engine: &Engine) {
    let flood = bundle(
        Some(&python_dockerfile()),
        &[(
            "main.py",
            "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(200 * 1024):\n    sys.stdout.write(line)\n",
        )],
    );
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => ScriptedReply::Content(flood.clone()),
        1 => {
            let repair = request.last_user_message();
            assert!(
                repair.contains("only the first part was kept"),
                "{}",
                &repair[..repair.len().min(4000)]
            );
            assert!(
                repair.len() < 200 * 1024,
                "the feedback stays small: {}",
                repair.len()
            );
            good()
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let (workspace, output) =
        run_scripted_on(engine, &server, "output_limit_kb = 64", "flood", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("flood");
    let first = &report["history"][0];
    assert_eq!(first["stdout_truncated"], true);
    assert_eq!(first["stdout_bytes"], 200 * 1024 * 1024);
    let kept = std::fs::metadata(workspace.run_dir("flood").join("iterations/1/stdout.txt"))
        .unwrap()
        .len();
    assert_eq!(kept, 64 * 1024);
    engine.assert_run_cleaned_up(&report);
}

/// Waits until `condition` holds, checking every 200 ms, for at most `limit`.
async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// `kill -<signal>` while the container runs on `engine`: the container is removed and
/// the report written.
pub(crate) async fn interrupt_mid_run(engine: &Engine, signal: &str, expected_code: i32) {
    require_engine();
    let sleeper = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "import time\ntime.sleep(600)\n")],
    );
    let server = ScriptedServer::start(vec![ScriptedReply::Content(sleeper)]).await;
    let workspace = Workspace::on(engine, &server.base_url(), "", "");
    let name = format!("sleep-{}", signal.to_lowercase());
    let spec = workspace.spec(
        &name,
        &format!("{HELLO_SPEC}\n[limits]\nrun_timeout_secs = 300\n"),
    );
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    let child = command.spawn().expect("agent starts");
    let pid = child.id().expect("a pid");
    let label = format!("dev.agent.spec={name}");
    let running = wait_for(Duration::from_secs(120), || {
        !engine
            .docker_lines(&["ps", "-q", "--filter", &format!("label={label}")])
            .is_empty()
    })
    .await;
    assert!(running, "the container started");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("agent stops within a minute of the signal")
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = workspace.report(&name);
    assert_eq!(report["stopped_by"], "cancelled");
    assert_eq!(
        engine.containers_with(&label),
        Vec::<String>::new(),
        "no container left"
    );
    engine.assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_run_removes_the_container_and_writes_the_report() {
    interrupt_mid_run(&Engine::main(), "INT", 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_removes_the_container_and_writes_the_report() {
    interrupt_mid_run(&Engine::main(), "TERM", 143).await;
}

/// Whether a process of this host runs `sleep <marker>`: a build step's, whichever
/// builder runs it.
fn sleeping(marker: &str) -> bool {
    !agent_testkit::processes_holding(&format!("sleep {marker}")).is_empty()
}

/// A signal while `builder` runs a build step: `agent` stops with `expected_code`,
/// and the step, its container and the run's objects are gone.
async fn interrupt_mid_build(signal: &str, expected_code: i32, marker: &str, builder: &str) {
    require_engine();
    let dockerfile = format!(
        "FROM {}\nRUN sleep {marker}\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n",
        agent_testkit::PYTHON_IMAGE
    );
    let slow = bundle(Some(&dockerfile), &[("main.py", "print('hello')\n")]);
    let server = ScriptedServer::start(vec![ScriptedReply::Content(slow)]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let name = format!("slow-build-{}-{builder}", signal.to_lowercase());
    let spec = workspace.spec(&name, HELLO_SPEC);
    let mut command = agent_command(
        &workspace,
        &["run", spec.to_str().unwrap(), "--builder", builder],
    );
    let child = command.spawn().expect("agent starts");
    let pid = child.id().expect("a pid");
    let building = wait_for(Duration::from_secs(120), || sleeping(marker)).await;
    assert!(building, "the build's RUN step started");
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("agent stops within a minute of the signal")
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gone = wait_for(Duration::from_secs(30), || {
        !sleeping(marker)
            && !docker_lines(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"])
                .iter()
                .any(|command| command.contains(&format!("sleep {marker}")))
    })
    .await;
    assert!(gone, "the build step is stopped and its container removed");
    assert_run_cleaned_up(&workspace.report(&name));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_build_stops_the_build_and_leaves_nothing() {
    interrupt_mid_build("INT", 130, "617", "buildkit").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_classic_build_stops_the_build_and_leaves_nothing() {
    interrupt_mid_build("INT", 130, "623", "classic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_build_stops_the_build_and_leaves_nothing() {
    interrupt_mid_build("TERM", 143, "619", "buildkit").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_what_a_killed_agent_left() {
    require_engine();
    gc_after_kill_on(&Engine::main()).await;
}

/// `kill -9` of `agent` while its container runs on `engine`, then `agent gc`.
pub(crate) async fn gc_after_kill_on(engine: &Engine) {
    let sleeper = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "import time\ntime.sleep(600)\n")],
    );
    let server = ScriptedServer::start(vec![ScriptedReply::Content(sleeper)]).await;
    let workspace = Workspace::on(engine, &server.base_url(), "", "");
    let spec = workspace.spec(
        "killed",
        &format!("{HELLO_SPEC}\n[limits]\nrun_timeout_secs = 300\n"),
    );
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    let mut child = command.spawn().expect("agent starts");
    let label = "label=dev.agent.spec=killed";
    let running = wait_for(Duration::from_secs(120), || {
        !engine
            .docker_lines(&["ps", "-q", "--filter", label])
            .is_empty()
    })
    .await;
    assert!(running, "the container started");
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(
        !engine
            .docker_lines(&["ps", "-aq", "--filter", label])
            .is_empty(),
        "kill -9 leaves the container"
    );
    let output = agent(&workspace, &["gc"]).await;
    output.assert_code(0);
    assert_eq!(
        engine.docker_lines(&["ps", "-aq", "--filter", label]),
        Vec::<String>::new()
    );
    assert_eq!(
        engine.docker_lines(&["images", "-aq", "--filter", label]),
        Vec::<String>::new()
    );
}

/// A unix socket that forwards to the real engine until it is cut: the engine
/// "goes away" mid-run from `agent`'s point of view.
struct EngineProxy {
    path: std::path::PathBuf,
    cut: tokio_util::sync::CancellationToken,
}

impl EngineProxy {
    fn start(dir: &std::path::Path) -> EngineProxy {
        let path = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("proxy socket");
        let cut = tokio_util::sync::CancellationToken::new();
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stop.cancelled() => return,
                };
                let Ok((mut inbound, _)) = accepted else {
                    return;
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        EngineProxy { path, cut }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_that_goes_away_mid_run_exits_3_with_the_report_written() {
    require_engine();
    let sleeper = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "import time\ntime.sleep(600)\n")],
    );
    let server = ScriptedServer::start(vec![ScriptedReply::Content(sleeper)]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec(
        "orphan",
        &format!("{HELLO_SPEC}\n[limits]\nrun_timeout_secs = 300\n"),
    );
    let proxy = EngineProxy::start(workspace.path());
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    command.env("DOCKER_HOST", format!("unix://{}", proxy.path.display()));
    let child = command.spawn().expect("agent starts");
    let label = "label=dev.agent.spec=orphan";
    let running = wait_for(Duration::from_secs(120), || {
        !docker_lines(&["ps", "-q", "--filter", label]).is_empty()
    })
    .await;
    assert!(running, "the container started");
    proxy.cut.cancel();
    let _ = std::fs::remove_file(&proxy.path);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("agent stops when the engine goes away")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    let report = workspace.report("orphan");
    assert_eq!(report["stopped_by"], "error");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty())
    );
    // The engine was unreachable for cleanup; `agent gc` removes what was left.
    let output = agent(&workspace, &["gc"]).await;
    output.assert_code(0);
    assert_eq!(
        docker_lines(&["ps", "-aq", "--filter", label]),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn model_faults_are_retried_or_fed_back_and_the_transcript_records_them() {
    require_engine();
    let good_bundle = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    );
    let server = ScriptedServer::start(vec![
        ScriptedReply::Raw {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            body: "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}".into(),
        },
        ScriptedReply::Raw {
            status: 503,
            headers: Vec::new(),
            body: "upstream unavailable".into(),
        },
        ScriptedReply::EmptyChoices,
        ScriptedReply::ContentWithFinish {
            content: "{\"summary\": \"cut\", \"dockerfile\": \"FROM".into(),
            finish_reason: "length".into(),
        },
        ScriptedReply::ContentWithFinish {
            content: good_bundle,
            finish_reason: "eos".into(),
        },
    ])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("faults", HELLO_SPEC);
    let started = Instant::now();
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(120));
    let report = workspace.report("faults");
    assert_eq!(report["history"][0]["outcome"], "invalid_bundle");
    assert_eq!(report["history"][1]["outcome"], "passed");
    assert_eq!(server.requests().len(), 5);
    let transcript =
        std::fs::read_to_string(workspace.run_dir("faults").join("transcript.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = transcript
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "generate, reformat, repair: {transcript}");
    assert_eq!(lines[0]["attempts"], 3, "429 and 503 were retried");
    assert_eq!(lines[1]["purpose"], "reformat");
    assert_eq!(lines[1]["response"]["finish_reason"], "length");
    assert_eq!(lines[2]["response"]["finish_reason"], "eos");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_request_exits_3_with_the_status_the_report_and_a_hint() {
    require_engine();
    let server = ScriptedServer::start(vec![ScriptedReply::Raw {
        status: 400,
        headers: Vec::new(),
        body: "{\"object\":\"error\",\"message\":\"guided decoding is not supported\",\"type\":\"BadRequestError\",\"code\":400}".into(),
    }])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("rejected", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(3);
    output.assert_stderr_has("HTTP 400");
    output.assert_stderr_has("guided decoding is not supported");
    output.assert_stderr_has("hint:");
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
    let report = workspace.report("rejected");
    assert_eq!(report["stopped_by"], "error");
    assert!(report["error"].as_str().unwrap().contains("400"));
    let transcript =
        std::fs::read_to_string(workspace.run_dir("rejected").join("transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"error\""), "{transcript}");
    assert_run_cleaned_up(&report);
}
