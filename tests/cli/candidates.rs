//! Best of N (`--candidates`): several first bundles built and run side by side, the
//! first to pass kept, or else the repair started from the one that got furthest.

use agent_testkit::{RecordedRequest, ScriptedReply, ScriptedServer};
use serde_json::Value;

use crate::support::*;

fn hello() -> String {
    bundle(Some(&python_dockerfile()), &[("main.py", "print('hello')")])
}

fn goodbye() -> String {
    bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('goodbye')")],
    )
}

fn broken_build() -> String {
    let dockerfile = format!(
        "FROM {}\nRUN echo the-step-that-fails && exit 3\n",
        agent_testkit::PYTHON_IMAGE
    );
    bundle(Some(&dockerfile), &[("main.py", "print('hello')")])
}

fn completions(server: &ScriptedServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|request| request.path == "/v1/chat/completions")
        .collect()
}

/// The transcript's lines, as JSON.
fn transcript(workspace: &Workspace, spec: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(workspace.run_dir(spec).join("transcript.jsonl"))
        .expect("transcript.jsonl");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// The candidate number the transcript gives the call that was answered `content`.
fn candidate_answered(lines: &[Value], content: &str) -> u64 {
    let matching: Vec<&Value> = lines
        .iter()
        .filter(|line| line["response"]["content"].as_str() == Some(content))
        .collect();
    assert_eq!(matching.len(), 1, "one call was answered so: {lines:?}");
    matching[0]["candidate"]
        .as_u64()
        .expect("the call carries its candidate number")
}

fn candidate(report: &Value, number: u64) -> &Value {
    report["candidates"]
        .as_array()
        .expect("report.json lists the candidates")
        .iter()
        .find(|record| record["candidate"] == number)
        .expect("the candidate is listed")
}

#[tokio::test(flavor = "multi_thread")]
async fn three_candidates_where_only_the_second_passes_verify_after_one_generation() {
    require_engine();
    // The second request to arrive gets the one bundle that passes.
    let replies = [goodbye(), hello(), broken_build()];
    let script = replies.clone();
    let server = ScriptedServer::start_with(move |index, _| match script.get(index) {
        Some(reply) => ScriptedReply::Content(reply.clone()),
        None => panic!("request {index}: one generation of three candidates is all it takes"),
    })
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 1");
    let spec = workspace.spec("best-of-three", HELLO_SPEC);
    let output = agent(
        &workspace,
        &["run", spec.to_str().unwrap(), "--candidates", "3"],
    )
    .await;
    output.assert_code(0);
    assert_eq!(server.panics(), Vec::<String>::new());
    assert_eq!(completions(&server).len(), 3, "three bundles asked for");

    let report = workspace.report("best-of-three");
    assert_eq!(report["verified"], true);
    assert_eq!(report["iterations"], 1, "verified after one generation");
    assert_eq!(report["usage"]["calls"], 3, "every candidate's call counts");
    assert_eq!(report["usage"]["prompt_tokens"], 300);
    assert_eq!(report["candidates"].as_array().unwrap().len(), 3);

    let lines = transcript(&workspace, "best-of-three");
    let winner = candidate_answered(&lines, &replies[1]);
    let goodbye_candidate = candidate_answered(&lines, &replies[0]);
    let broken_candidate = candidate_answered(&lines, &replies[2]);
    assert_eq!(candidate(&report, winner)["outcome"], "passed");
    assert_eq!(candidate(&report, winner)["chosen"], true);
    assert_eq!(
        candidate(&report, goodbye_candidate)["outcome"],
        "checks_failed"
    );
    assert_eq!(candidate(&report, goodbye_candidate)["chosen"], false);
    assert_eq!(
        candidate(&report, broken_candidate)["outcome"],
        "build_failed"
    );
    for number in 1..=3u64 {
        let record = candidate(&report, number);
        assert!(record["context_digest"].as_str().is_some(), "{record}");
        assert!(record["build_secs"].as_f64().is_some(), "{record}");
        assert_eq!(record["usage"]["calls"], 1, "{record}");
        assert!(record["finished_secs"].as_f64().unwrap() > 0.0, "{record}");
    }
    assert_eq!(
        report["history"][0]["context_digest"],
        candidate(&report, winner)["context_digest"],
        "the first iteration is the winner's"
    );

    let run_dir = workspace.run_dir("best-of-three");
    for number in 1..=3 {
        let dockerfile = run_dir.join(format!(
            "iterations/1/candidates/{number}/bundle/Dockerfile"
        ));
        assert!(dockerfile.is_file(), "{} is written", dockerfile.display());
    }
    assert_eq!(
        std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap(),
        "hello\n",
        "the winner's output is the iteration's"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("final/main.py")).unwrap(),
        "print('hello')"
    );
    let progress = output
        .stderr
        .lines()
        .find(|line| line.starts_with("best-of-three: iteration 1: candidates: "))
        .expect("a progress line lists the candidates");
    assert!(
        progress.contains(&format!("{winner} passed (kept)")),
        "{progress}"
    );
    assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_no_candidate_passes_the_repair_starts_from_the_furthest_and_names_the_others() {
    require_engine();
    let first = [goodbye(), broken_build()];
    let script = first.clone();
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 | 1 => ScriptedReply::Content(script[index].clone()),
        2 => ScriptedReply::Refusal("I will not write that.".to_owned()),
        3 => {
            assert!(
                request.last_user_message().contains("print('goodbye')"),
                "the repair shows the furthest candidate's bundle"
            );
            ScriptedReply::Content(hello())
        }
        _ => panic!("request {index}: three candidates and one repair are all it takes"),
    })
    .await;
    let workspace = Workspace::new(&server.base_url(), "candidates = 3", "max_iterations = 2");
    let spec = workspace.spec("none-of-three", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(0);
    assert_eq!(server.panics(), Vec::<String>::new());

    let report = workspace.report("none-of-three");
    assert_eq!(report["verified"], true);
    assert_eq!(report["history"].as_array().unwrap().len(), 2);
    assert_eq!(report["history"][0]["outcome"], "checks_failed");
    assert_eq!(report["usage"]["calls"], 4);
    let lines = transcript(&workspace, "none-of-three");
    let furthest = candidate_answered(&lines, &first[0]);
    let broken = candidate_answered(&lines, &first[1]);
    let refused = (1..=3u64)
        .find(|number| *number != furthest && *number != broken)
        .unwrap();
    assert_eq!(candidate(&report, furthest)["chosen"], true);
    assert_eq!(candidate(&report, broken)["outcome"], "build_failed");
    assert_eq!(candidate(&report, refused)["outcome"], "invalid_bundle");

    let repair = completions(&server)[3].last_user_message();
    let other_lines: Vec<&str> = repair
        .lines()
        .filter(|line| line.starts_with("- candidate "))
        .collect();
    assert_eq!(
        other_lines.len(),
        2,
        "one line per other candidate:\n{repair}"
    );
    assert!(
        other_lines
            .iter()
            .any(|line| line.starts_with(&format!("- candidate {broken}: build_failed"))),
        "{other_lines:?}"
    );
    assert!(
        other_lines.iter().any(|line| line
            .starts_with(&format!("- candidate {refused}: invalid_bundle"))
            && line.contains("refused")),
        "{other_lines:?}"
    );
    assert!(
        repair.contains("check `greeting` failed") || repair.contains("greeting"),
        "the furthest candidate's own feedback comes first:\n{repair}"
    );
    assert_run_cleaned_up(&report);
}
