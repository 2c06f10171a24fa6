//! The `agent` binary end to end: real engine, real model client, a scripted
//! OpenAI-compatible server in the test process.

mod attest;
mod candidates;
mod cases;
mod commands;
mod economy;
mod egress;
mod engines;
mod floods;
mod github;
mod hostile;
mod locks;
mod model_limits;
mod oversized;
mod podman;
mod preflight;
mod publish;
mod reference;
mod refresh;
mod report;
mod schema;
mod services;
mod snapshots;
mod structure;
mod structured;
mod suites;
mod support;
mod travel;

use std::time::{Duration, Instant};

use agent_testkit::{ScriptedReply, ScriptedServer};
use support::*;

fn content(text: String) -> ScriptedReply {
    ScriptedReply::Content(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn passes_at_the_first_try_with_report_run_dir_and_only_the_verified_image_left() {
    require_engine();
    let server = ScriptedServer::start(vec![content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')")],
    ))])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("hello", HELLO_SPEC);
    let output = agent(
        &workspace,
        &["run", spec.to_str().unwrap(), "--json", "--out", "runs"],
    )
    .await;
    output.assert_code(0);

    let summary: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("--json prints JSON");
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["specs"][0]["spec"], "hello");

    let report = workspace.report("hello");
    assert_eq!(report["spec"], "hello");
    assert_eq!(report["verified"], true);
    assert_eq!(report["iterations"], 1);
    assert!(
        report["image"]
            .as_str()
            .unwrap()
            .starts_with("agent/hello:")
    );
    assert!(report["duration_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(report["usage"]["calls"], 1);
    assert_eq!(report["usage"]["prompt_tokens"], 100);
    assert_eq!(report["usage"]["completion_tokens"], 50);
    let first = &report["history"][0];
    assert_eq!(first["outcome"], "passed");
    assert_eq!(first["exit_code"], 0);
    assert!(first["build_secs"].as_f64().is_some() && first["run_secs"].as_f64().is_some());
    assert_eq!(first["checks"][0]["name"], "greeting");
    assert_eq!(first["checks"][0]["passed"], true);

    let run_dir = workspace.run_dir("hello");
    for file in [
        "transcript.jsonl",
        "iterations/1/bundle/Dockerfile",
        "iterations/1/bundle/main.py",
        "iterations/1/build.log",
        "iterations/1/stdout.txt",
        "iterations/1/stderr.txt",
        "iterations/1/result.json",
        "final/Dockerfile",
        "final/main.py",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} is written");
    }
    assert_eq!(
        std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap(),
        "hello\n"
    );
    let transcript = std::fs::read_to_string(run_dir.join("transcript.jsonl")).unwrap();
    assert_eq!(transcript.lines().count(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.schema_name().as_deref(), Some("code_bundle"));
    assert_eq!(
        request.body["response_format"]["json_schema"]["strict"],
        true
    );
    let text = request.all_text();
    assert!(text.contains("Write a Python program that prints hello."));
    assert!(text.contains("It prints exactly hello."));
    assert!(
        text.contains(agent_testkit::PYTHON_IMAGE),
        "the base image is named"
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );

    workspace.assert_key_nowhere();

    // The verified bundle rebuilds and passes again, without the model.
    let output = agent(&workspace, &["verify", run_dir.to_str().unwrap(), "--json"]).await;
    output.assert_code(0);
    let verified: serde_json::Value = serde_json::from_str(&output.stdout).expect("verify --json");
    assert_eq!(verified["verified"], true);
    assert_eq!(
        verified["context_digest"],
        report["history"][0]["context_digest"]
    );
    assert_eq!(server.requests().len(), 1, "verify asks no model");
    let verify_label = format!(
        "dev.agent.run=verify-{}",
        report["run_id"].as_str().unwrap()
    );
    assert_eq!(containers_with(&verify_label), Vec::<String>::new());
    assert_eq!(images_with(&verify_label), Vec::<String>::new());
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_the_engine_and_the_endpoint() {
    require_engine();
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let output = agent(&workspace, &["doctor"]).await;
    output.assert_code(0);
    assert!(output.stdout.contains("ok    engine"), "{}", output.stdout);
    assert!(
        output.stdout.contains("ok    base image"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("ok    model endpoint"),
        "{}",
        output.stdout
    );

    let dead = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let output = agent(&dead, &["doctor"]).await;
    output.assert_code(3);
    assert!(
        output.stdout.contains("fail  model endpoint"),
        "{}",
        output.stdout
    );
    assert!(output.stdout.contains("hint:"), "{}", output.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_step_is_repaired_with_its_own_output_as_evidence_over_sse() {
    require_engine();
    let broken = format!(
        "FROM {}\nRUN python3 -c \"import sys; print('preparing'); raise ValueError('config missing: sentinel-4711')\"\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n",
        agent_testkit::PYTHON_IMAGE
    );
    let first = bundle(Some(&broken), &[("main.py", "print('hello')")]);
    let fixed = bundle(Some(&python_dockerfile()), &[]);
    let server = ScriptedServer::start_with(move |index, request| {
        assert!(request.is_stream(), "stream = true asks for SSE");
        match index {
            0 => content(first.clone()),
            1 => {
                let repair = request.last_user_message();
                assert!(
                    repair.contains("ValueError: config missing: sentinel-4711"),
                    "{repair}"
                );
                assert!(repair.contains("Traceback"), "{repair}");
                assert!(
                    repair.contains("RUN python3 -c"),
                    "the failing step is named: {repair}"
                );
                assert!(repair.contains("main.py"), "the current bundle is shown");
                content(fixed.clone())
            }
            _ => panic!("no third call expected"),
        }
    })
    .await;
    let (workspace, output) = run_scripted(&server, "stream = true", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("hello");
    assert_eq!(report["history"][0]["outcome"], "build_failed");
    assert_eq!(report["history"][1]["outcome"], "passed");
    assert_eq!(report["iterations"], 2);
    let run_dir = workspace.run_dir("hello");
    let log = std::fs::read_to_string(run_dir.join("iterations/1/build.log")).unwrap();
    assert!(log.contains("sentinel-4711"));
    assert_eq!(
        std::fs::read_to_string(run_dir.join("final/Dockerfile")).unwrap(),
        python_dockerfile()
    );
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_start_is_repaired_with_the_traceback_as_evidence() {
    require_engine();
    let first = bundle(
        Some(&python_dockerfile()),
        &[(
            "main.py",
            "import nonexistent_module_sentinel\nprint('hello')\n",
        )],
    );
    let fixed = bundle(None, &[("main.py", "print('hello')\n")]);
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => content(first.clone()),
        1 => {
            let repair = request.last_user_message();
            assert!(
                repair
                    .contains("ModuleNotFoundError: No module named 'nonexistent_module_sentinel'"),
                "{repair}"
            );
            assert!(repair.contains("Exit code: 1"), "{repair}");
            content(fixed.clone())
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("hello");
    assert_eq!(report["history"][0]["outcome"], "run_failed");
    assert_eq!(report["history"][0]["exit_code"], 1);
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_output_is_repaired_with_expected_and_actual_in_the_feedback() {
    require_engine();
    let first = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello world')\n")],
    );
    let fixed = bundle(None, &[("main.py", "print('hello')\n")]);
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => content(first.clone()),
        1 => {
            let repair = request.last_user_message();
            assert!(
                repair.contains("greeting"),
                "the failed check is named: {repair}"
            );
            assert!(
                repair.contains("hello world"),
                "the actual output is shown: {repair}"
            );
            assert!(
                repair.contains("print('hello world')"),
                "the current bundle is shown"
            );
            content(fixed.clone())
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("hello");
    assert_eq!(report["history"][0]["outcome"], "checks_failed");
    assert_eq!(report["history"][0]["checks"][0]["passed"], false);
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_that_never_passes_exits_1_within_its_iteration_budget() {
    require_engine();
    let wrong = bundle(Some(&python_dockerfile()), &[("main.py", "print('bye')\n")]);
    let server = ScriptedServer::start(vec![
        content(wrong.clone()),
        content(wrong.clone()),
        content(wrong),
    ])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("hello", HELLO_SPEC);
    let output = agent(
        &workspace,
        &[
            "run",
            spec.to_str().unwrap(),
            "--max-iterations",
            "2",
            "--json",
        ],
    )
    .await;
    output.assert_code(1);
    assert_eq!(
        server.requests().len(),
        2,
        "the budget of two iterations holds"
    );
    let report = workspace.report("hello");
    assert_eq!(report["verified"], false);
    assert_eq!(report["iterations"], 2);
    assert_eq!(report["stopped_by"], "max_iterations");
    assert!(report["image"].is_null());
    assert!(!workspace.run_dir("hello").join("final").exists());
    let summary: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(summary["verified"], false);
    output.assert_stderr_has("not verified");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_that_never_ends_is_killed_at_the_run_timeout() {
    require_engine();
    let sleeper = bundle(
        Some(&python_dockerfile()),
        &[(
            "main.py",
            "import time\nprint('started', flush=True)\ntime.sleep(600)\n",
        )],
    );
    let server = ScriptedServer::start(vec![content(sleeper)]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec(
        "sleepy",
        &format!("{HELLO_SPEC}\n[limits]\nrun_timeout_secs = 3\nmax_iterations = 1\n"),
    );
    let started = Instant::now();
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(1);
    let report = workspace.report("sleepy");
    let first = &report["history"][0];
    assert_eq!(first["outcome"], "run_timeout");
    let run_secs = first["run_secs"].as_f64().unwrap();
    assert!(
        (3.0..30.0).contains(&run_secs),
        "killed near the limit: {run_secs}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(
        std::fs::read_to_string(workspace.run_dir("sleepy").join("iterations/1/stdout.txt"))
            .unwrap(),
        "started\n",
        "output before the kill is kept"
    );
    assert_run_cleaned_up(&report);
}

const JUDGED_SPEC: &str = r#"
prompt = "Write a Python program that greets the world enthusiastically."
conditions = "It prints a greeting to the world that ends with an exclamation mark."
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_judge_passes_a_run_when_there_are_no_checks() {
    require_engine();
    let program = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('Hello, world!')\n")],
    );
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => content(program.clone()),
        1 => {
            assert_eq!(request.schema_name().as_deref(), Some("verdict"));
            let text = request.all_text();
            assert!(
                text.contains("Hello, world!"),
                "the judge sees stdout: {text}"
            );
            assert!(
                text.contains("ends with an exclamation mark"),
                "and the conditions"
            );
            content(verdict(
                true,
                "it greets the world with an exclamation mark",
            ))
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "greet", JUDGED_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("greet");
    assert_eq!(report["history"][0]["checks"][0]["name"], "judge");
    assert_eq!(report["history"][0]["checks"][0]["passed"], true);
    assert_eq!(report["usage"]["calls"], 2);
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_verdict_is_fed_back_and_repaired() {
    require_engine();
    let flat = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('Hello, world.')\n")],
    );
    let fixed = bundle(None, &[("main.py", "print('Hello, world!')\n")]);
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => content(flat.clone()),
        1 => content(verdict(
            false,
            "the greeting ends with a full stop, sentinel-judge",
        )),
        2 => {
            let repair = request.last_user_message();
            assert!(
                repair.contains("sentinel-judge"),
                "the verdict's reason is fed back: {repair}"
            );
            content(fixed.clone())
        }
        3 => content(verdict(true, "fine")),
        _ => panic!("no fifth call expected"),
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "greet", JUDGED_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("greet");
    assert_eq!(report["history"][0]["outcome"], "checks_failed");
    assert_eq!(report["history"][1]["outcome"], "passed");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_spec_exits_2_with_file_line_and_column_before_any_model_call() {
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec(
        "bad",
        "prompt = \"p\"\nconditions = \"c\"\n\n[[check]]\nstdout_equal = \"x\"\n",
    );
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(2);
    output.assert_stderr_has("bad.toml:5:");
    output.assert_stderr_has("stdout_equal");
    assert!(output.stderr.starts_with("error: "), "{}", output.stderr);
    assert!(server.requests().is_empty());

    let output = agent(&workspace, &["check", spec.to_str().unwrap()]).await;
    output.assert_code(2);
    output.assert_stderr_has("bad.toml:5:");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_accepts_good_specs_without_model_or_engine() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let spec = workspace.spec("hello", HELLO_SPEC);
    let mut command = agent_command(&workspace, &["check", spec.to_str().unwrap()]);
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let output = run_agent(&mut command).await;
    output.assert_code(0);
    assert!(output.stdout.contains("ok  hello"), "{}", output.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_engine_exits_3_with_a_hint_before_any_model_call() {
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("hello", HELLO_SPEC);
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let started = Instant::now();
    let output = run_agent(&mut command).await;
    output.assert_code(3);
    output.assert_stderr_has("hint: is the Docker engine running?");
    output.assert_stderr_has("docker info");
    assert!(server.requests().is_empty(), "no model call was made");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_transcript_replays_to_the_same_outcome() {
    require_engine();
    let first = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello world')\n")],
    );
    let fixed = bundle(None, &[("main.py", "print('hello')\n")]);
    let server = ScriptedServer::start(vec![content(first), content(fixed)]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    // A name of its own: the verified tag is per spec name and digest, and other tests
    // verify HELLO_SPEC beside this one.
    let spec = workspace.spec("replayed", HELLO_SPEC);
    agent(
        &workspace,
        &["run", spec.to_str().unwrap(), "--out", "recorded"],
    )
    .await
    .assert_code(0);
    let recorded_dir = std::fs::read_dir(workspace.path().join("recorded/replayed"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recorded_dir.join("report.json")).unwrap())
            .unwrap();
    assert_run_cleaned_up(&recorded);
    let transcript = recorded_dir.join("transcript.jsonl");
    drop(server);

    // The endpoint is gone: every answer must come from the transcript.
    let output = agent(
        &workspace,
        &[
            "run",
            spec.to_str().unwrap(),
            "--replay",
            transcript.to_str().unwrap(),
            "--no-lock",
            "--base-url",
            "http://127.0.0.1:9/v1",
        ],
    )
    .await;
    output.assert_code(0);
    let replayed = workspace.report("replayed");
    let outcomes = |report: &serde_json::Value| -> Vec<String> {
        report["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(outcomes(&replayed), outcomes(&recorded));
    assert_eq!(outcomes(&replayed), ["checks_failed", "passed"]);
    assert_eq!(
        replayed["history"][1]["context_digest"],
        recorded["history"][1]["context_digest"]
    );
    assert_run_cleaned_up(&replayed);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixtures_replay_end_to_end() {
    require_engine();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    for fixture in ["fizzbuzz", "sales-report", "stdin-sum"] {
        let dir = root.join("fixtures").join(fixture);
        let output = agent(
            &workspace,
            &[
                "run",
                "--config",
                root.join("agent.toml").to_str().unwrap(),
                "--no-lock",
                "--replay",
                dir.join("transcript.jsonl").to_str().unwrap(),
                dir.join("spec.toml").to_str().unwrap(),
            ],
        )
        .await;
        output.assert_code(0);
        let report = workspace.report(fixture);
        assert_eq!(report["verified"], true, "{fixture}");
        assert_run_cleaned_up(&report);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_specs_concurrently_with_a_summary_and_junit() {
    require_engine();
    let server = ScriptedServer::start_with(|_, request| {
        let text = request.all_text();
        let word = if text.contains("prints alpha") {
            "alpha"
        } else {
            "beta"
        };
        content(bundle(
            Some(&python_dockerfile()),
            &[("main.py", &format!("print('{word}')\n"))],
        ))
    })
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let alpha = workspace.spec(
        "alpha",
        "prompt = \"Write a program that prints alpha.\"\nconditions = \"alpha\"\n[[check]]\nstdout_equals = \"alpha\"\n",
    );
    let beta = workspace.spec(
        "beta",
        "prompt = \"Write a program that prints beta.\"\nconditions = \"beta\"\n[[check]]\nstdout_equals = \"beta\"\n",
    );
    let output = agent(
        &workspace,
        &[
            "run",
            "--jobs",
            "2",
            "--junit",
            "junit.xml",
            alpha.to_str().unwrap(),
            beta.to_str().unwrap(),
        ],
    )
    .await;
    output.assert_code(0);
    output.assert_stderr_has("2 of 2 specs verified");
    let junit = std::fs::read_to_string(workspace.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"alpha\"") && junit.contains("name=\"beta\""),
        "{junit}"
    );
    assert!(junit.contains("failures=\"0\""), "{junit}");
    for spec in ["alpha", "beta"] {
        assert_run_cleaned_up(&workspace.report(spec));
    }
}
