//! The same guarantees on Podman's Docker-compatible service as on Docker's engine:
//! the fixtures replayed, the limits, caps and cleanup on every exit path, the seal,
//! verify, the lock, `--save`, and Podman beside Docker as one of several engines.
//! Podman is started by `scripts/podman-engine` (which `scripts/test` calls) and found
//! through `AGENT_TEST_PODMAN`; without it these tests fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use agent_testkit::{ScriptedReply, ScriptedServer};
use serde_json::Value;

use crate::hostile;
use crate::publish::{
    Registry, docker_config, model_printing, run_with, short_digest, spec_printing,
};
use crate::support::*;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

/// The labels of `image` on `engine`, as `docker inspect` shows them.
fn labels_on(engine: &Engine, image: &str) -> Value {
    let lines = engine.docker_lines(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        image,
    ]);
    serde_json::from_str(&lines.join("\n")).expect("labels as JSON")
}

fn good_reply() -> ScriptedReply {
    ScriptedReply::Content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixtures_replay_verified_and_sealed_on_podman() {
    let podman = Engine::podman();
    let root = repository_root();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    // The repository's configuration, but for the build network: Podman cannot enforce
    // the allow-list (`egress::podman_which_cannot_enforce_…`).
    let config = workspace.path().join("podman-agent.toml");
    let text = std::fs::read_to_string(root.join("agent.toml")).unwrap();
    let open = text.replace(
        "build_network = \"allowlist\"",
        "build_network = \"default\"",
    );
    assert_ne!(
        open, text,
        "the repository's agent.toml names its build network"
    );
    std::fs::write(&config, open).unwrap();
    for fixture in ["fizzbuzz", "sales-report", "stdin-sum"] {
        let dir = root.join("fixtures").join(fixture);
        let output = agent(
            &workspace,
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--no-lock",
                "--engine",
                &podman.url,
                "--replay",
                dir.join("transcript.jsonl").to_str().unwrap(),
                dir.join("spec.toml").to_str().unwrap(),
            ],
        )
        .await;
        output.assert_code(0);
        let report = workspace.report(fixture);
        assert_eq!(report["verified"], true, "{fixture}");
        assert_eq!(
            report["seal"]["method"], "build",
            "{fixture}: {}",
            report["seal"]
        );
        let tag = report["image"].as_str().expect("a tag");
        let labels = labels_on(&podman, tag);
        assert_eq!(labels["dev.agent.spec"], fixture);
        assert_eq!(labels["org.opencontainers.image.title"], fixture);
        assert_eq!(labels["dev.agent.run"], report["run_id"]);
        podman.assert_run_cleaned_up(&report);
    }
}

/// A program that reports the limits it runs under; the spec's checks are the limits.
const LIMITS_PROBE: &str = r#"
import os
status = open('/proc/self/status').read()
for line in status.splitlines():
    if line.startswith(('CapEff', 'CapBnd', 'NoNewPrivs')):
        print(line.replace('\t', ' '))
print('net', ' '.join(sorted(os.listdir('/sys/class/net'))))
def first(*paths):
    for path in paths:
        try:
            return open('/sys/fs/cgroup/' + path).read().strip()
        except OSError:
            pass
    return 'unreadable'
# cgroup v2 names first, then v1's.
print('memory', first('memory.max', 'memory/memory.limit_in_bytes'))
print('pids', first('pids.max', 'pids/pids.max'))
cpu = first('cpu.max')
if cpu == 'unreadable':
    cpu = first('cpu/cpu.cfs_quota_us') + ' ' + first('cpu/cpu.cfs_period_us')
print('cpu', cpu)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn podman_runs_under_the_limits_with_no_network_and_no_capabilities() {
    let podman = Engine::podman();
    let probe = bundle(Some(&python_dockerfile()), &[("main.py", LIMITS_PROBE)]);
    let server = ScriptedServer::start(vec![ScriptedReply::Content(probe)]).await;
    let spec = r#"
prompt = "Print the limits."
conditions = "The limits hold."

[limits]
memory_mb = 128
cpus = 0.5

[[check]]
name = "no capabilities"
stdout_contains = "CapEff: 0000000000000000"
[[check]]
name = "no new privileges"
stdout_contains = "NoNewPrivs: 1"
[[check]]
name = "loopback only"
stdout_matches = "(?m)^net lo$"
[[check]]
name = "memory"
stdout_contains = "memory 134217728"
[[check]]
name = "pids"
stdout_contains = "pids 64"
[[check]]
name = "cpus"
stdout_contains = "cpu 50000 100000"
"#;
    let (workspace, output) = run_scripted_on(&podman, &server, "pids = 64", "limits", spec).await;
    assert!(
        output.code.is_some_and(|code| code < 2),
        "{}",
        output.stderr
    );
    let report = workspace.report("limits");
    let stdout =
        std::fs::read_to_string(workspace.run_dir("limits").join("iterations/1/stdout.txt"))
            .unwrap_or_default();
    output.assert_code(0);
    assert_eq!(
        report["verified"], true,
        "{stdout}\n{}",
        report["history"][0]["checks"]
    );
    podman.assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_hog_on_podman_is_reported_as_out_of_memory() {
    hostile::memory_hog_on(&Engine::podman()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_output_on_podman_is_capped_and_marked_as_cut() {
    hostile::endless_output_on(&Engine::podman()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_run_on_podman_removes_the_container_and_writes_the_report() {
    hostile::interrupt_mid_run(&Engine::podman(), "INT", 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_on_podman_removes_what_a_killed_agent_left() {
    hostile::gc_after_kill_on(&Engine::podman()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_its_timeout_on_podman_is_killed_and_fed_back() {
    let podman = Engine::podman();
    let sleeper = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "import time\ntime.sleep(600)\n")],
    );
    let server = ScriptedServer::start(vec![ScriptedReply::Content(sleeper), good_reply()]).await;
    let spec = format!("{HELLO_SPEC}\n[limits]\nrun_timeout_secs = 3\n");
    let started = std::time::Instant::now();
    let (workspace, output) = run_scripted_on(&podman, &server, "", "sleeper", &spec).await;
    output.assert_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let report = workspace.report("sleeper");
    assert_eq!(report["history"][0]["outcome"], "run_timeout");
    assert_eq!(report["history"][1]["outcome"], "passed");
    podman.assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_podman_a_lock_verify_verify_image_and_save_work_as_on_docker() {
    let podman = Engine::podman();
    let server = ScriptedServer::start(vec![good_reply()]).await;
    let workspace = Workspace::on(&podman, &server.base_url(), "", "");
    let spec = workspace.spec("sealed", HELLO_SPEC);
    let spec_arg = spec.to_str().unwrap();
    let output = agent(&workspace, &["run", spec_arg, "--save", "images"]).await;
    output.assert_code(0);
    let report = workspace.report("sealed");
    assert_eq!(report["seal"]["method"], "build");
    assert!(report["seal"]["secs"].as_f64().is_some());
    let tag = report["image"].as_str().expect("a tag").to_owned();
    let labels = labels_on(&podman, &tag);
    assert_eq!(labels["dev.agent.checks"], "greeting");
    assert_eq!(
        labels["dev.agent.bundle-digest"],
        report["history"][0]["context_digest"]
    );

    // The saved file loads into Docker's engine and runs there as it did on Podman.
    let saved = workspace
        .path()
        .join(report["saved"]["path"].as_str().expect("saved"));
    let loaded = docker_lines(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.iter().any(|line| line.contains(&tag)), "{loaded:?}");
    let printed = docker_lines(&["run", "--rm", "--network", "none", &tag]);
    assert_eq!(printed, ["hello"]);
    let _ = std::process::Command::new("docker")
        .args(["rmi", &tag])
        .output();

    let run_dir = workspace.run_dir("sealed");
    agent(&workspace, &["verify", run_dir.to_str().unwrap()])
        .await
        .assert_code(0);
    agent(&workspace, &["verify", "--image", &tag, spec_arg])
        .await
        .assert_code(0);
    podman.assert_run_cleaned_up(&report);

    let mut command = agent_command(
        &workspace,
        &["run", "--locked", spec_arg, "--out", "locked"],
    );
    command.env_remove("OPENAI_API_KEY");
    run_agent(&mut command).await.assert_code(0);
    assert_eq!(server.requests().len(), 1, "the lock needs no model call");
    let locked_dir = std::fs::read_dir(workspace.path().join("locked/sealed"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let locked: Value =
        serde_json::from_str(&std::fs::read_to_string(locked_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(locked["verified"], true);
    assert_eq!(locked["lock"]["found"], "fresh");
    podman.assert_run_cleaned_up(&locked);
}

#[tokio::test(flavor = "multi_thread")]
async fn specs_spread_over_docker_and_podman_and_each_is_sealed_and_cleaned() {
    require_engine();
    let podman = Engine::podman();
    let main = Engine::main();
    let server = ScriptedServer::start((0..4).map(|_| good_reply()).collect()).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[docker]\n",
        &format!(
            "[docker]\nengines = [{{ url = \"{}\", slots = 1 }}, {{ url = \"{}\", slots = 1 }}]\n",
            main.url, podman.url
        ),
    );
    std::fs::write(&config, text).unwrap();
    let specs: Vec<String> = (1..=4)
        .map(|number| {
            let path = workspace.spec(&format!("both-{number}"), HELLO_SPEC);
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let mut args = vec!["run", "--no-lock", "--jobs", "4"];
    args.extend(specs.iter().map(String::as_str));
    agent(&workspace, &args).await.assert_code(0);

    let mut used = BTreeSet::new();
    for number in 1..=4 {
        let report = workspace.report(&format!("both-{number}"));
        assert_eq!(report["verified"], true);
        let engine = report["history"][0]["engine"]
            .as_str()
            .expect("an engine")
            .to_owned();
        // Podman builds with its own builder and takes only the label build; the
        // Docker engine builds with BuildKit, whose image is sealed by its rebuild.
        let expected = if engine == podman.url {
            "build"
        } else {
            "rebuild"
        };
        assert_eq!(report["seal"]["method"], expected, "{engine}");
        let on = if engine == podman.url { &podman } else { &main };
        on.assert_run_cleaned_up(&report);
        used.insert(engine);
    }
    assert_eq!(used.len(), 2, "both engines took work: {used:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_pushed_from_podman_has_the_registrys_digest_and_runs_on_docker() {
    require_engine();
    let podman = Engine::podman();
    let registry = Registry::start(None).await;
    let server = model_printing("from-podman").await;
    let workspace = Workspace::on(&podman, &server.base_url(), "", "");
    let spec = workspace.spec("pushed", &spec_printing("from-podman"));
    let config = docker_config("{}");
    let repository = registry.repository();
    let output = run_with(&workspace, &spec, config.path(), &["--push", &repository]).await;
    output.assert_code(0);
    let report = workspace.report("pushed");
    let reference = format!("{repository}/pushed:{}", short_digest(&report));
    assert_eq!(report["published"]["reference"], reference.as_str());
    let digest = registry
        .manifest_digest("team/pushed", &short_digest(&report))
        .await;
    assert_eq!(report["published"]["digest"], digest.as_str());
    podman.assert_run_cleaned_up(&report);
    let _ = podman.docker_lines(&["rmi", &reference]);

    // Pulled into Docker's engine, it does what was checked on Podman.
    let main = Engine::main();
    main.docker_lines(&["pull", &reference]);
    let printed = main.docker_lines(&["run", "--rm", "--network", "none", &reference]);
    main.docker_lines(&["rmi", &reference]);
    assert_eq!(printed, ["from-podman"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_builds_with_its_own_builder_and_refuses_buildkit_before_any_model_call() {
    let podman = Engine::podman();
    let server = ScriptedServer::start(vec![good_reply()]).await;
    let workspace = Workspace::on(&podman, &server.base_url(), "", "");
    let spec = workspace.spec("no-buildkit", HELLO_SPEC);
    let refused = agent(
        &workspace,
        &["run", spec.to_str().unwrap(), "--builder", "buildkit"],
    )
    .await;
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("cannot run BuildKit builds")
            && refused.stderr.contains("builder = \"auto\""),
        "{}",
        refused.stderr
    );
    assert!(server.requests().is_empty(), "no model call");
    let doctor = agent(&workspace, &["doctor"]).await;
    let line = doctor
        .stdout
        .lines()
        .find(|line| line.starts_with("ok    engine Podman"))
        .unwrap_or_else(|| panic!("a line for Podman:\n{}", doctor.stdout));
    assert!(
        line.ends_with(", builder classic"),
        "auto keeps the classic API: {line}"
    );
}
