//! Structured output against a server that does not take `json_schema` (as
//! llama-cpp-python's): `auto` finds what it takes, keeps it, shows it in `doctor`
//! and `report.json`; an explicit setting is obeyed and its rejection not retried.

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::HELLO_SPEC;
use crate::support::*;

/// What llama-cpp-python's server answers to a `json_schema` response format.
fn llama_cpp_rejection() -> ScriptedReply {
    ScriptedReply::Raw {
        status: 500,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: r#"{"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}]"}}"#.to_owned(),
    }
}

/// Rejects `json_schema`, answers every other request with a passing bundle.
async fn llama_like_server() -> ScriptedServer {
    let good = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    );
    ScriptedServer::start_with(move |_, request| {
        let format = &request.body["response_format"];
        if format["type"] == "json_schema" {
            return llama_cpp_rejection();
        }
        assert_eq!(format["type"], "json_object");
        assert_eq!(format["schema"]["additionalProperties"], false);
        ScriptedReply::Content(good.clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_finds_json_object_with_the_schema_keeps_it_and_reports_it() {
    require_engine();
    let server = llama_like_server().await;
    let workspace = Workspace::new(&server.base_url(), "structured_output = \"auto\"", "");
    let output = agent(&workspace, &["doctor"]).await;
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("ok    structured output: `json_object_schema`"),
        "{}",
        output.stdout
    );

    // A name of its own: the verified tag is per spec name and digest, and other tests
    // verify HELLO_SPEC beside this one.
    let spec = workspace.spec("structured", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(0);
    assert_eq!(server.panics(), Vec::<String>::new());
    let report = workspace.report("structured");
    assert_eq!(report["structured_output"], "json_object_schema");
    assert_eq!(report["history"][0]["outcome"], "passed");
    let transcript =
        std::fs::read_to_string(workspace.run_dir("structured").join("transcript.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(transcript.lines().next().unwrap()).unwrap();
    assert_eq!(line["request"]["response_format"], "json_object_schema");
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_json_schema_is_obeyed_and_its_rejection_names_the_setting() {
    require_engine();
    let server = llama_like_server().await;
    let (_workspace, output) = run_scripted(
        &server,
        "structured_output = \"json_schema\"",
        "",
        "hello",
        HELLO_SPEC,
    )
    .await;
    output.assert_code(3);
    output.assert_stderr_has("HTTP 500");
    assert!(
        output.stderr.contains("hint:") && output.stderr.contains("structured_output"),
        "{}",
        output.stderr
    );
    assert_eq!(server.requests().len(), 1, "no fallback and no retry");
}
