//! A reply past the response cap, end to end: the model's fault, fed back as an
//! `invalid_bundle` with its size and the `[bundle]` limits, then repaired.

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::HELLO_SPEC;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_past_the_cap_is_an_invalid_bundle_fed_back_and_repaired() {
    require_engine();
    let huge = huge_completion();
    let good = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    );
    let server = ScriptedServer::start_with(move |index, request| {
        let last = request.last_user_message();
        // The first answer and the second chance after it are both too large.
        if index == 0 || last.starts_with("Your reply could not be used") {
            if index > 0 {
                assert!(last.contains("cut off at 8.0 MiB"), "{last}");
            }
            return huge.clone();
        }
        assert!(
            last.contains("cut off at 8.0 MiB"),
            "the size is fed back: {last}"
        );
        assert!(last.contains("`[bundle]` limits"), "and the limits: {last}");
        ScriptedReply::Content(good.clone())
    })
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let report = workspace.report("hello");
    assert_eq!(report["verified"], true);
    assert_eq!(report["history"][0]["outcome"], "invalid_bundle");
    assert!(
        report["history"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("cut off at 8.0 MiB"),
        "{}",
        report["history"][0]["detail"]
    );
    assert_eq!(report["history"][1]["outcome"], "passed");

    let transcript =
        std::fs::read_to_string(workspace.run_dir("hello").join("transcript.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = transcript
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "the reply, its second chance, the repair");
    for (line, text) in lines.iter().zip(transcript.lines()).take(2) {
        assert_eq!(line["response"]["truncated"], true);
        assert_eq!(line["error"], serde_json::Value::Null);
        assert!(
            text.len() < 64 * 1024,
            "the cut is not kept: {} bytes",
            text.len()
        );
    }
    assert_eq!(lines[2]["purpose"], "repair");
    assert!(
        !workspace
            .run_dir("hello")
            .join("iterations/1/bundle/data.txt")
            .exists(),
        "nothing of the cut reply is written"
    );
    assert_run_cleaned_up(&report);
}

/// A plain completion whose bundle holds a 48 MB file, written out directly (the
/// unoptimized test build takes seconds to serialize that much through serde).
fn huge_completion() -> ScriptedReply {
    let content = format!(
        r#"{{\"summary\": \"data\", \"dockerfile\": null, \"files\": [{{\"filename\": \"data.txt\", \"content\": \"{}\"}}], \"delete\": []}}"#,
        "x".repeat(48_000_000)
    );
    ScriptedReply::Raw {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: format!(
            r#"{{"id": "big", "object": "chat.completion", "choices": [{{"index": 0, "message": {{"role": "assistant", "content": "{content}"}}, "finish_reason": "stop"}}]}}"#
        ),
    }
}
