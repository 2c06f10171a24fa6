//! The engine found as the Docker CLI finds it, from contexts the real `docker context
//! create` writes into a temp `DOCKER_CONFIG`: the current context reaches the engine
//! for `doctor` and a replayed run, a context's own TLS files reach a tcp engine,
//! `DOCKER_HOST` wins over a context, and a context that does not exist is exit 2
//! before any model call. Each context points at a socket of its own (a link to the
//! main engine's), so reaching it proves the context was read.

use std::path::{Path, PathBuf};

use agent_testkit::ScriptedServer;

use super::{busybox_reply, busybox_workspace, second_engine_script, tls_files, with_base_image};
use crate::support::*;

/// A `DOCKER_CONFIG` folder, and a link to the main engine's socket beside it.
struct DockerConfig {
    dir: tempfile::TempDir,
}

impl DockerConfig {
    fn new() -> DockerConfig {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::os::unix::fs::symlink("/var/run/docker.sock", dir.path().join("engine.sock"))
            .expect("a link to the main engine's socket");
        DockerConfig { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The main engine, reached through this folder's own link.
    fn linked_engine(&self) -> String {
        format!("unix://{}", self.path().join("engine.sock").display())
    }

    /// `docker context <args>` with this folder as `DOCKER_CONFIG`.
    fn docker_context(&self, args: &[&str]) {
        let output = std::process::Command::new("docker")
            .arg("context")
            .args(args)
            .env("DOCKER_CONFIG", self.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker runs");
        assert!(
            output.status.success(),
            "docker context {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn create(&self, name: &str, docker: &str) {
        self.docker_context(&["create", name, "--docker", docker]);
    }

    /// `agent <args>` with this folder as `DOCKER_CONFIG` and `DOCKER_HOST` unset.
    fn agent(&self, workspace: &Workspace, args: &[&str]) -> tokio::process::Command {
        let mut command = agent_command(workspace, args);
        command.env("DOCKER_CONFIG", self.path());
        command
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

/// The `ok    engine` line of `doctor`'s output for `url`, and the line after it.
fn engine_lines<'a>(stdout: &'a str, url: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = stdout.lines().collect();
    let index = lines
        .iter()
        .position(|line| line.starts_with("ok    engine ") && line.contains(url))
        .unwrap_or_else(|| panic!("an ok line for {url}:\n{stdout}"));
    (
        lines[index],
        lines.get(index + 1).copied().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_context_reaches_the_engine_for_doctor_and_a_replayed_run() {
    require_engine();
    let config = DockerConfig::new();
    let engine = config.linked_engine();
    config.create("agent-local", &format!("host={engine}"));
    config.docker_context(&["use", "agent-local"]);

    let silent = ScriptedServer::start(vec![]).await;
    let doctor_workspace = Workspace::new(&silent.base_url(), "", "");
    let doctor = run_agent(&mut config.agent(&doctor_workspace, &["doctor"])).await;
    doctor.assert_code(0);
    let (_, found) = engine_lines(&doctor.stdout, &engine);
    let config_file = config.path().join("config.json");
    assert_eq!(
        found,
        format!(
            "      found by context \"agent-local\" (currentContext in {})",
            config_file.display()
        ),
        "{}",
        doctor.stdout
    );

    let root = repository_root();
    let fixture = root.join("fixtures/fizzbuzz");
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let run = run_agent(&mut config.agent(
        &workspace,
        &[
            "run",
            "--config",
            root.join("agent.toml").to_str().unwrap(),
            "--no-lock",
            "--replay",
            fixture.join("transcript.jsonl").to_str().unwrap(),
            fixture.join("spec.toml").to_str().unwrap(),
        ],
    ))
    .await;
    run.assert_code(0);
    let report = workspace.report("fizzbuzz");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["history"][0]["engine"], engine.as_str(), "{report}");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_host_wins_over_a_context_and_the_context_alone_is_used() {
    require_engine();
    let config = DockerConfig::new();
    let absent = "unix:///var/run/agent-engine-9.sock";
    config.create("agent-absent", &format!("host={absent}"));
    config.docker_context(&["use", "agent-absent"]);
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");

    let mut over = config.agent(&workspace, &["doctor"]);
    over.env("DOCKER_HOST", config.linked_engine());
    let over = run_agent(&mut over).await;
    over.assert_code(0);
    let (_, found) = engine_lines(&over.stdout, &config.linked_engine());
    assert_eq!(found, "      found by DOCKER_HOST", "{}", over.stdout);

    // Without DOCKER_HOST the context is the engine, and it does not answer.
    let alone = run_agent(&mut config.agent(&workspace, &["doctor"])).await;
    alone.assert_code(3);
    let lines: Vec<&str> = alone.stdout.lines().collect();
    let failed = lines
        .iter()
        .position(|line| line.starts_with(&format!("fail  engine {absent}:")))
        .unwrap_or_else(|| panic!("a fail line for {absent}:\n{}", alone.stdout));
    assert!(
        lines[failed + 1]
            .starts_with("      found by context \"agent-absent\" (currentContext in "),
        "{}",
        alone.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_context_that_does_not_exist_is_exit_2_with_a_hint_before_any_model_call() {
    let config = DockerConfig::new();
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("hello", HELLO_SPEC);
    for args in [vec!["run", spec.to_str().unwrap()], vec!["doctor"]] {
        let mut command = config.agent(&workspace, &args);
        command.env("DOCKER_CONTEXT", "agent-missing");
        let output = run_agent(&mut command).await;
        output.assert_code(2);
        assert!(
            output.stderr.starts_with(
                "error: the Docker context `agent-missing` (DOCKER_CONTEXT) does not exist: no `"
            ),
            "{}",
            output.stderr
        );
        assert!(
            output
                .stderr
                .contains(&config.path().join("contexts/meta").display().to_string()),
            "where it looked: {}",
            output.stderr
        );
        assert!(
            output.stderr.contains("hint: `docker context ls`"),
            "{}",
            output.stderr
        );
    }
    assert!(server.requests().is_empty(), "no model call was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_context_with_tls_files_reaches_an_engine_over_tcp() {
    require_engine();
    let certificates = tempfile::tempdir().unwrap();
    tls_files(certificates.path());
    let folder = certificates.path();
    let url = second_engine_script(&["start", "5", "--tls", folder.to_str().unwrap()]);
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    with_base_image("unix:///var/run/agent-engine-5.sock").await;
    let config = DockerConfig::new();
    let file = |name: &str| folder.join(name).display().to_string();
    config.create(
        "agent-tls",
        &format!(
            "host={url},ca={},cert={},key={}",
            file("ca.pem"),
            file("cert.pem"),
            file("key.pem")
        ),
    );
    let silent = ScriptedServer::start(vec![]).await;
    let doctor_workspace = busybox_workspace(&silent, "[]");
    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let workspace = busybox_workspace(&server, "[]");
    // Neither DOCKER_TLS_VERIFY nor DOCKER_CERT_PATH: the context's own files are used.
    let in_context = |workspace: &Workspace, args: &[&str]| {
        let mut command = config.agent(workspace, args);
        command.env("DOCKER_CONTEXT", "agent-tls");
        command
    };

    let doctor = run_agent(&mut in_context(&doctor_workspace, &["doctor"])).await;
    doctor.assert_code(0);
    let (_, found) = engine_lines(&doctor.stdout, &url);
    assert_eq!(
        found,
        "      found by context \"agent-tls\" (DOCKER_CONTEXT)"
    );

    let spec = workspace.spec("context-tls", HELLO_SPEC);
    let run = run_agent(&mut in_context(
        &workspace,
        &["run", spec.to_str().unwrap()],
    ))
    .await;
    run.assert_code(0);
    let report = workspace.report("context-tls");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["history"][0]["engine"], url.as_str());
    second_engine_script(&["stop", "5"]);
}
