//! The product of a CI job: a verified image with its provenance on it, and a lock
//! beside the spec that CI re-verifies with no model and no key.

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

const CHANGED_SPEC: &str = r#"
prompt = "Write a Python program that prints hello world."
conditions = "It prints exactly hello world."

[[check]]
name = "greeting"
stdout_equals = "hello world"
"#;

fn image_labels(image: &str) -> serde_json::Value {
    let lines = docker_lines(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        image,
    ]);
    serde_json::from_str(&lines[0]).expect("labels as JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_spec_carries_its_provenance_and_its_lock_reverifies_without_the_model() {
    require_engine();
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content(bundle(
            Some(&python_dockerfile()),
            &[("main.py", "print('hello')")],
        )),
        ScriptedReply::Content(bundle(None, &[("main.py", "print('hello world')")])),
    ])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("locked", HELLO_SPEC);
    let spec_arg = spec.to_str().unwrap();
    let step_summary = workspace.path().join("step-summary.md");
    let mut command = agent_command(&workspace, &["run", spec_arg, "--out", "first"]);
    command
        .env("GITHUB_SHA", "0123abcd")
        .env("GITHUB_SERVER_URL", "https://git.example.test")
        .env("GITHUB_REPOSITORY", "team/specs")
        .env("GITHUB_STEP_SUMMARY", &step_summary);
    run_agent(&mut command).await.assert_code(0);
    let report = read_report(&workspace, "first");
    let tag = report["image"].as_str().unwrap().to_string();

    // The lock beside the spec, as built.
    let lock_dir = workspace.path().join("locked.lock");
    assert_eq!(
        std::fs::read_to_string(lock_dir.join("main.py")).unwrap(),
        "print('hello')"
    );
    assert_eq!(
        std::fs::read_to_string(lock_dir.join("Dockerfile")).unwrap(),
        python_dockerfile()
    );
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lock_dir.join("lock.json")).unwrap())
            .unwrap();
    assert_eq!(
        lock["bundle_digest"],
        report["history"][0]["context_digest"]
    );
    assert_eq!(lock["model"], "scripted");
    assert_eq!(report["lock"]["found"], "missing");
    assert_eq!(report["lock"]["written"], true);

    // Provenance on the image, as `docker inspect` shows it.
    let labels = image_labels(&tag);
    assert_eq!(labels["org.opencontainers.image.title"], "locked");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abcd");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://git.example.test/team/specs"
    );
    assert!(
        labels["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    assert_eq!(labels["dev.agent.spec-digest"], lock["spec_digest"]);
    assert_eq!(labels["dev.agent.bundle-digest"], lock["bundle_digest"]);
    assert_eq!(labels["dev.agent.model"], "scripted");
    assert_eq!(labels["dev.agent.iterations"], "1");
    assert_eq!(labels["dev.agent.checks"], "greeting");
    let summary = std::fs::read_to_string(&step_summary).unwrap();
    assert!(summary.contains("| locked | verified | 1 |"), "{summary}");

    // The image itself re-checks against the spec, with no build.
    let output = agent(&workspace, &["verify", "--image", &tag, spec_arg]).await;
    output.assert_code(0);
    assert_run_cleaned_up(&report);

    // CI: --locked, no key, an endpoint that would need one: verified from the lock
    // alone.
    let mut command = agent_command(
        &workspace,
        &[
            "run",
            "--locked",
            "--base-url",
            "https://api.openai.com/v1",
            spec_arg,
            "--out",
            "locked",
        ],
    );
    command.env_remove("OPENAI_API_KEY");
    run_agent(&mut command).await.assert_code(0);
    let locked = read_report(&workspace, "locked");
    assert_eq!(locked["verified"], true);
    assert_eq!(locked["usage"]["calls"], 0);
    assert_eq!(locked["lock"]["found"], "fresh");
    assert_eq!(locked["lock"]["written"], false);
    assert_eq!(server.requests().len(), 1, "the lock needs no model call");
    assert_run_cleaned_up(&locked);

    // The spec changes: --locked refuses; a normal run repairs from the locked bundle.
    std::fs::write(&spec, CHANGED_SPEC).unwrap();
    let output = agent(&workspace, &["run", "--locked", spec_arg, "--out", "stale"]).await;
    output.assert_code(1);
    output.assert_stderr_has("the spec changed since");
    let output = agent(&workspace, &["run", spec_arg, "--out", "repaired"]).await;
    output.assert_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].all_text().contains("did not pass"),
        "the first call after a stale lock is a repair"
    );
    let repaired = read_report(&workspace, "repaired");
    assert_eq!(repaired["lock"]["found"], "stale");
    assert_eq!(repaired["lock"]["written"], true);
    assert_eq!(repaired["history"][0]["outcome"], "checks_failed");
    assert_eq!(
        std::fs::read_to_string(lock_dir.join("main.py")).unwrap(),
        "print('hello world')"
    );
    assert_run_cleaned_up(&repaired);

    // No lock at all: --locked says what to do.
    std::fs::remove_dir_all(&lock_dir).unwrap();
    let output = agent(
        &workspace,
        &["run", "--locked", spec_arg, "--out", "missing"],
    )
    .await;
    output.assert_code(1);
    output.assert_stderr_has("no lock at");
}

/// The report of the single run below `<workspace>/<out>/locked/`.
fn read_report(workspace: &Workspace, out: &str) -> serde_json::Value {
    let folder = workspace.path().join(out).join("locked");
    let run = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap()
}
