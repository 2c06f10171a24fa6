//! Programs that flood their output, end to end: a flood under a short run timeout is
//! an ordinary `run_timeout` the model repairs, and a signal during a flood stops
//! `agent` promptly; neither leaves anything of the run on the engine.

use std::time::{Duration, Instant};

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

/// A task whose first answer floods; the repair prints `done`.
const DONE_SPEC: &str = r#"
prompt = "Write a Python program that prints done."
conditions = "It prints exactly done."

[[check]]
stdout_equals = "done"
"#;

/// Writes 64 KiB lines to stdout as fast as it can, forever.
const FLOOD: &str = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536 + '\\n')\n";

fn flood() -> ScriptedReply {
    ScriptedReply::Content(bundle(Some(&python_dockerfile()), &[("main.py", FLOOD)]))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_under_a_short_run_timeout_is_a_run_timeout_and_the_repair_passes() {
    require_engine();
    let server = ScriptedServer::start_with(|index, request| match index {
        0 => flood(),
        1 => {
            let repair = request.last_user_message();
            assert!(
                repair.contains("only the first part was kept"),
                "the cut is fed back: {}",
                &repair[..repair.len().min(4000)]
            );
            ScriptedReply::Content(bundle(None, &[("main.py", "print('done')\n")]))
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let spec = format!("{DONE_SPEC}\n[limits]\nrun_timeout_secs = 10\nmemory_mb = 256\n");
    let started = Instant::now();
    let (workspace, output) = run_scripted(&server, "", "", "outbomb", &spec).await;
    output.assert_code(0);
    let elapsed = started.elapsed();
    let report = workspace.report("outbomb");
    let first = &report["history"][0];
    assert_eq!(first["outcome"], "run_timeout", "{first}");
    assert_eq!(first["stdout_truncated"], true, "{first}");
    let run_secs = first["run_secs"].as_f64().expect("run_secs");
    // Stalled behind an unread stream, the engine would hold the run until our 30 s
    // deadline on its calls (or, before that deadline, bollard's 120 s).
    assert!(
        (10.0..38.0).contains(&run_secs),
        "stopped near the timeout: {run_secs}"
    );
    assert_eq!(report["history"][1]["outcome"], "passed");
    assert_eq!(report["iterations"], 2);
    // Two builds and two runs on a busy shared engine: only a guard against a hang.
    assert!(elapsed < Duration::from_secs(300), "took {elapsed:?}");
    let kept = std::fs::metadata(workspace.run_dir("outbomb").join("iterations/1/stdout.txt"))
        .expect("stdout.txt")
        .len();
    assert_eq!(kept, 1024 * 1024, "cut at output_limit_kb");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_a_container_floods_exits_130_promptly_and_leaves_nothing() {
    require_engine();
    let server = ScriptedServer::start(vec![flood()]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let name = "flood-interrupted";
    let spec = workspace.spec(
        name,
        &format!("{DONE_SPEC}\n[limits]\nrun_timeout_secs = 300\n"),
    );
    let mut command = agent_command(&workspace, &["run", spec.to_str().expect("utf-8")]);
    let child = command.spawn().expect("agent starts");
    let pid = child.id().expect("a pid");
    let label = format!("dev.agent.spec={name}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while docker_lines(&["ps", "-q", "--filter", &format!("label={label}")]).is_empty() {
        assert!(Instant::now() < deadline, "the container never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the flood fill every buffer between the container and `agent`.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("agent stops within a minute of the signal")
        .expect("agent's output");
    let stopped_in = signalled.elapsed();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stopped_in < Duration::from_secs(30), "took {stopped_in:?}");
    let report = workspace.report(name);
    assert_eq!(report["stopped_by"], "cancelled");
    assert_eq!(containers_with(&label), Vec::<String>::new());
    assert_run_cleaned_up(&report);
}
