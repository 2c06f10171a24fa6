//! Base images pinned by the lock, end to end: a real registry holds the base, the
//! lock names its repo digest, a base pushed again under the same tag is found by
//! `--refresh-base` (re-checked, repaired with that failure as evidence, the lock
//! rewritten), an unchanged base rewrites nothing, `--locked` builds the old lock on
//! the old base pulled by digest, and a base that is gone is an error with a hint.

use std::path::Path;

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::publish::{Registry, docker, docker_ok};
use crate::support::*;

const SPEC: &str = "prompt = \"Print the greeting the base image keeps.\"\n\
    conditions = \"It prints hello.\"\n[[check]]\nname = \"greeting\"\nstdout_equals = \"hello\"\n";

/// Builds `dockerfile` as `tag` and pushes it; the registry's digest of it.
async fn push_base(registry: &Registry, dockerfile: &str) -> String {
    let context = tempfile::tempdir().expect("a temp dir");
    std::fs::write(context.path().join("Dockerfile"), dockerfile).expect("Dockerfile written");
    let tag = format!("{}/base:1", registry.address());
    let built = std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag])
        .arg(context.path())
        .output()
        .expect("docker runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    docker_ok(&["push", &tag]);
    registry.manifest_digest("base", "1").await
}

fn lock_json(workspace: &Workspace) -> (String, std::time::SystemTime) {
    let path = workspace.path().join("greeting.lock/lock.json");
    let text = std::fs::read_to_string(&path).expect("lock.json");
    let modified = std::fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .expect("mtime");
    (text, modified)
}

fn base_digest_of(lock: &str) -> String {
    let lock: serde_json::Value = serde_json::from_str(lock).expect("lock.json is JSON");
    lock["base_digest"]
        .as_str()
        .expect("a base_digest")
        .to_owned()
}

/// `agent run <spec> <extra>` against the workspace's model, its run directory the
/// only one under `runs/`; the output.
async fn run(workspace: &Workspace, extra: &[&str]) -> Output {
    let _ = std::fs::remove_dir_all(workspace.out());
    let spec = workspace.path().join("greeting.toml");
    let mut args = vec!["run", spec.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    agent(workspace, &args).await
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("a folder");
    for entry in std::fs::read_dir(from).expect("a folder") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copied");
    }
}

/// The model: first the program reading the base's file, then, asked to repair, one
/// reading where the second base keeps it; any further call fails the test.
async fn scripted_model(registry: &Registry) -> ScriptedServer {
    let from = format!("FROM {}/base:1\n", registry.address());
    let first = bundle(
        Some(&format!("{from}CMD [\"cat\", \"/etc/greeting\"]\n")),
        &[],
    );
    let repaired = bundle(
        Some(&format!("{from}CMD [\"cat\", \"/usr/share/greeting\"]\n")),
        &[],
    );
    ScriptedServer::start_with(move |index, request| match index {
        0 => ScriptedReply::Content(first.clone()),
        1 => {
            let repair = request.last_user_message();
            assert!(
                repair.contains("/etc/greeting") && repair.contains("No such file"),
                "the failure on the new base is the evidence: {repair}"
            );
            ScriptedReply::Content(repaired.clone())
        }
        _ => panic!("no third model call expected"),
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_base_is_refreshed_repaired_and_relocked_and_the_old_lock_builds_on_the_old_digest()
{
    require_engine();
    let registry = Registry::start(None).await;
    let base = format!("{}/base", registry.address());
    let busybox = "FROM agent-base/busybox:1\n";
    let first_digest = push_base(
        &registry,
        &format!("{busybox}RUN echo hello > /etc/greeting\n"),
    )
    .await;
    let first_pin = format!("{base}@{first_digest}");
    let server = scripted_model(&registry).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).expect("agent.toml");
    let text = text.replace(agent_testkit::PYTHON_IMAGE, &format!("{base}:1"));
    std::fs::write(&config, text).expect("agent.toml written");
    workspace.spec("greeting", SPEC);

    // Locked on the first base: the lock, the report and the labels name its digest.
    run(&workspace, &[]).await.assert_code(0);
    let (locked, modified) = lock_json(&workspace);
    assert_eq!(base_digest_of(&locked), first_pin);
    let report = workspace.report("greeting");
    assert_eq!(report["base_digest"], first_pin.as_str());
    assert_eq!(report["history"][0]["base_digest"], first_pin.as_str());
    let labels = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        report["image"].as_str().expect("a verified image"),
    ]);
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels");
    assert_eq!(labels["dev.agent.base-digest"], first_pin.as_str());
    assert_eq!(
        labels["org.opencontainers.image.base.name"],
        format!("{base}:1")
    );
    assert_eq!(
        labels["org.opencontainers.image.base.digest"],
        first_digest.as_str()
    );
    let old_lock = tempfile::tempdir().expect("a temp dir");
    copy_dir(&workspace.path().join("greeting.lock"), old_lock.path());

    // The base has not moved: nothing is asked and nothing rewritten. Through the
    // action's run step, whose `refresh-base` takes precedence over `locked`.
    let _ = std::fs::remove_dir_all(workspace.out());
    let mut step = crate::github::run_step(workspace.path(), "greeting.toml", "");
    step.env("INPUT_REFRESH_BASE", "true")
        .env("INPUT_LOCKED", "true");
    let output = run_agent(&mut step).await;
    output.assert_code(0);
    output.assert_stderr_has("unchanged");
    assert_eq!(lock_json(&workspace), (locked.clone(), modified));
    assert_eq!(
        server.requests().len(),
        1,
        "no model call for an unchanged base"
    );

    // A second base under the same tag, without the file: pulled, the locked bundle
    // fails on it, the repair passes, and the lock names the second digest.
    let second_digest = push_base(
        &registry,
        &format!("{busybox}RUN mkdir -p /usr/share && echo hello > /usr/share/greeting\n"),
    )
    .await;
    assert_ne!(second_digest, first_digest);
    docker_ok(&["rmi", &format!("{base}:1")]);
    let output = run(&workspace, &["--refresh-base"]).await;
    output.assert_code(0);
    output.assert_stderr_has("moved");
    assert_eq!(server.requests().len(), 2, "one repair");
    let report = workspace.report("greeting");
    let second_pin = format!("{base}@{second_digest}");
    assert_ne!(report["history"][0]["outcome"], "passed");
    assert_eq!(report["history"][0]["base_digest"], second_pin.as_str());
    assert_eq!(report["history"][1]["outcome"], "passed");
    let (relocked, _) = lock_json(&workspace);
    assert_eq!(base_digest_of(&relocked), second_pin);
    let dockerfile = std::fs::read_to_string(workspace.path().join("greeting.lock/Dockerfile"))
        .expect("the locked Dockerfile");
    assert!(dockerfile.contains("/usr/share/greeting"), "{dockerfile}");
    assert!(
        dockerfile.contains(&format!("FROM {base}:1")),
        "the bundle keeps the tag"
    );

    // The old lock still builds on the first base, pulled back by its digest.
    std::fs::remove_dir_all(workspace.path().join("greeting.lock")).expect("removed");
    copy_dir(old_lock.path(), &workspace.path().join("greeting.lock"));
    let untagged = docker(&["rmi", &first_pin]);
    assert!(untagged.status.success(), "{:?}", untagged);
    assert!(!docker(&["image", "inspect", &first_pin]).status.success());
    let output = run(&workspace, &["--locked"]).await;
    output.assert_code(0);
    let report = workspace.report("greeting");
    assert_eq!(report["verified"], true);
    assert_eq!(report["history"][0]["base_digest"], first_pin.as_str());
    assert!(docker(&["image", "inspect", &first_pin]).status.success());
    let log = std::fs::read_to_string(workspace.run_dir("greeting").join("iterations/1/build.log"))
        .expect("build.log");
    assert!(log.contains(&format!("FROM {first_pin}")), "{log}");
    assert_eq!(server.requests().len(), 2, "--locked asks no model");

    // A base that is gone from the engine and the registry: an error naming it, with
    // the way out.
    let gone = format!("{base}@sha256:{}", "0".repeat(64));
    let (text, _) = lock_json(&workspace);
    let lock_path = workspace.path().join("greeting.lock/lock.json");
    std::fs::write(&lock_path, text.replace(&first_pin, &gone)).expect("lock.json written");
    let output = run(&workspace, &[]).await;
    output.assert_code(3);
    output.assert_stderr_has(&format!(
        "error: the base image `{gone}` the lock pins is neither on the engine nor pullable"
    ));
    output.assert_stderr_has("hint: run `agent run --refresh-base` to re-resolve it");
    assert_eq!(server.requests().len(), 2, "no model call");

    // A refresh whose registry is gone: the base is named, with what to check.
    drop(registry);
    let output = run(&workspace, &["--refresh-base"]).await;
    output.assert_code(3);
    output.assert_stderr_has(&format!(
        "error: cannot pull the base image `{base}:1` again"
    ));
    output.assert_stderr_has(&format!(
        "hint: check that `docker pull {base}:1` works here"
    ));
    assert_eq!(server.requests().len(), 2, "no model call");
    for reference in [format!("{base}:1"), first_pin, second_pin] {
        let _ = docker(&["rmi", &reference]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_base_with_locked_or_no_lock_is_bad_usage() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let spec = workspace.spec("greeting", SPEC);
    for other in ["--locked", "--no-lock"] {
        let output = agent(
            &workspace,
            &["run", spec.to_str().unwrap(), "--refresh-base", other],
        )
        .await;
        output.assert_code(2);
        output.assert_stderr_has("cannot be used with");
    }
}
