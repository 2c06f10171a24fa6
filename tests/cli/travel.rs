//! A run directory holds what verifying needs: it is verified from another working
//! directory, after being moved, with the original spec and inputs gone; a changed
//! input in it is refused.

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

const SPEC: &str = r#"
prompt = "Print the first line of data/words.txt."
conditions = "It prints the first word."
inputs = ["data"]

[[check]]
stdout_equals = "alpha"
"#;

const PROGRAM: &str = "print(open('/app/data/words.txt').read().splitlines()[0])";

fn dockerfile() -> String {
    format!(
        "FROM {}\nWORKDIR /app\nCOPY data data\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n",
        agent_testkit::PYTHON_IMAGE
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_run_directory_verifies_from_anywhere_without_the_original_spec() {
    require_engine();
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle(
        Some(&dockerfile()),
        &[("main.py", PROGRAM)],
    ))])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    std::fs::create_dir_all(workspace.path().join("specs/data")).unwrap();
    std::fs::write(
        workspace.path().join("specs/data/words.txt"),
        "alpha\nbeta\n",
    )
    .unwrap();
    std::fs::write(workspace.path().join("specs/words.toml"), SPEC).unwrap();
    let output = agent(&workspace, &["run", "specs/words.toml"]).await;
    output.assert_code(0);
    let report = workspace.report("words");
    assert_eq!(report["spec_copy"], "spec/words.toml");
    assert_eq!(report["inputs"][0]["path"], "data/words.txt");
    assert_eq!(
        report["inputs"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert_run_cleaned_up(&report);

    // The run directory travels: moved elsewhere, the spec and its inputs deleted,
    // verified from a third directory with only the config named.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("artifact");
    std::fs::rename(workspace.run_dir("words"), &moved).unwrap();
    std::fs::remove_dir_all(workspace.path().join("specs")).unwrap();
    let stranger = tempfile::tempdir().unwrap();
    let config = workspace.path().join("agent.toml");
    let verify_from_elsewhere = || async {
        let arguments = [
            "verify",
            moved.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        let mut command = agent_command(&workspace, &arguments);
        command.current_dir(stranger.path());
        run_agent(&mut command).await
    };
    let output = verify_from_elsewhere().await;
    output.assert_code(0);
    output.assert_stderr_has("verified again");

    // An input changed inside the run directory is refused before anything is built.
    std::fs::write(moved.join("spec/data/words.txt"), "gamma\n").unwrap();
    let output = verify_from_elsewhere().await;
    output.assert_code(2);
    output.assert_stderr_has("differ from those the run used: data/words.txt");
}
