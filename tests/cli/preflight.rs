//! What `agent run` checks before its first model call.

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_base_image_stops_the_run_before_any_model_call() {
    require_engine();
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')")],
    ))])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("base_image = \"{}\"", agent_testkit::PYTHON_IMAGE),
        "base_image = \"agent-missing/nothing:1\"",
    );
    std::fs::write(&config, text).unwrap();
    let spec = workspace.spec(
        "hello",
        "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nexit_code = 0\n",
    );
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(3);
    output.assert_stderr_has(
        "base image `agent-missing/nothing:1` is not on the engine and cannot be pulled",
    );
    output.assert_stderr_has("hint: build the local base images with `scripts/base-images`");
    assert_eq!(server.requests().len(), 0, "no model call was made");
    assert!(!workspace.out().exists(), "no run directory was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_without_its_probe_image_stops_the_run_before_any_model_call() {
    require_engine();
    let server = ScriptedServer::start(Vec::new()).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[docker]\n",
        "[docker]\nprobe_image = \"agent-missing/probe:1\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let spec = workspace.spec(
        "adder",
        "prompt = \"p\"\nconditions = \"c\"\n[service]\nport = 8080\nready_tcp = true\n\
         [[probe]]\nname = \"add\"\npath = \"/add\"\n",
    );
    agent(&workspace, &["check", spec.to_str().unwrap()])
        .await
        .assert_code(0);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(3);
    output.assert_stderr_has("probe image `agent-missing/probe:1` is not on the engine");
    output.assert_stderr_has("`[docker] probe_image` in agent.toml");
    assert_eq!(server.requests().len(), 0, "no model call was made");
    assert!(!workspace.out().exists(), "no run directory was made");
    // `verify --image` names it the same way, before it starts the service.
    let verified = verify_image(&workspace, agent_testkit::BUSYBOX_IMAGE, &spec, &[]).await;
    verified.assert_code(3);
    assert!(
        verified
            .stderr
            .contains("probe image `agent-missing/probe:1` is not on the engine")
            && verified
                .stderr
                .contains("`[docker] probe_image` in agent.toml"),
        "{}",
        verified.stderr
    );
}
