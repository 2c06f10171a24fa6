//! Model requests across specs: `[model] max_concurrent_requests` bounds the requests
//! in flight to the endpoint, and a rate limit (HTTP 429) pauses every spec's
//! requests, not only the one that got it. Timestamps are the server's.

use std::path::PathBuf;
use std::time::Duration;

use agent_testkit::{RecordedRequest, ScriptedReply, ScriptedServer};
use serde_json::Value;

use crate::support::*;

fn completions(server: &ScriptedServer) -> Vec<RecordedRequest> {
    let mut requests: Vec<RecordedRequest> = server
        .requests()
        .into_iter()
        .filter(|request| request.path == "/v1/chat/completions")
        .collect();
    requests.sort_by_key(|request| request.received_at);
    requests
}

/// A refusal ends an iteration without a build: these runs exercise the model only.
fn slow_refusal(delay: Duration) -> ScriptedReply {
    ScriptedReply::Delayed(
        delay,
        Box::new(ScriptedReply::Refusal("I will not write that.".to_owned())),
    )
}

fn specs(workspace: &Workspace, prefix: &str, count: usize) -> Vec<PathBuf> {
    (0..count)
        .map(|index| workspace.spec(&format!("{prefix}-{index}"), HELLO_SPEC))
        .collect()
}

/// Every transcript line of every spec below the output folder.
fn transcript_lines(workspace: &Workspace) -> Vec<Value> {
    files_below(&workspace.out())
        .into_iter()
        .filter(|path| path.ends_with("transcript.jsonl"))
        .flat_map(|path| {
            std::fs::read_to_string(path)
                .expect("transcript.jsonl")
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn run_all(workspace: &Workspace, specs: &[PathBuf], jobs: &str) -> Output {
    let mut args = vec!["run", "--jobs", jobs];
    args.extend(specs.iter().map(|path| path.to_str().expect("utf-8 path")));
    agent(workspace, &args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_never_exceed_max_concurrent_requests_across_specs() {
    require_engine();
    let server = ScriptedServer::start_with(|_, _| slow_refusal(Duration::from_millis(400))).await;
    let workspace = Workspace::new(
        &server.base_url(),
        "max_concurrent_requests = 2",
        "max_iterations = 1",
    );
    let specs = specs(&workspace, "limited", 6);
    let output = run_all(&workspace, &specs, "6").await;
    output.assert_code(1);
    assert_eq!(completions(&server).len(), 6, "one request per spec");
    assert_eq!(
        server.most_in_flight(),
        2,
        "six specs at once, never more than two requests in flight"
    );
    let queued: Vec<u64> = transcript_lines(&workspace)
        .iter()
        .map(|line| line["queued_ms"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(queued.len(), 6);
    assert!(
        queued.iter().filter(|waited| **waited >= 300).count() >= 4,
        "four requests waited for a place, and the transcript says how long: {queued:?}"
    );
    let reported = (0..6)
        .filter(|index| {
            let report = workspace.report(&format!("limited-{index}"));
            report["history"][0]["queued_ms"].as_u64().unwrap_or(0) >= 300
        })
        .count();
    assert!(reported >= 4, "report.json says so too");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_answer_delays_every_specs_next_request() {
    require_engine();
    let server = ScriptedServer::start_with(|index, _| match index {
        0 => ScriptedReply::Raw {
            status: 429,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("retry-after".to_owned(), "1".to_owned()),
            ],
            body: r#"{"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}"#.to_owned(),
        },
        _ => slow_refusal(Duration::from_millis(200)),
    })
    .await;
    // Two iterations each: the specs that were answered at once ask again at once.
    let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 2");
    let specs = specs(&workspace, "paused", 3);
    let output = run_all(&workspace, &specs, "3").await;
    output.assert_code(1);

    let requests = completions(&server);
    // The spec that met the 429 makes three requests, the other two make two each.
    assert_eq!(requests.len(), 7, "{requests:?}");
    let limited_at = requests[0].received_at;
    let later: Vec<Duration> = requests
        .iter()
        .map(|request| request.received_at.saturating_duration_since(limited_at))
        .filter(|since| *since > Duration::from_millis(100))
        .collect();
    assert!(
        later.len() >= 4,
        "the other specs' repairs and the retry came after the first wave: {later:?}"
    );
    for since in &later {
        assert!(
            *since >= Duration::from_millis(950),
            "no request reached the endpoint within the 1 s it asked for: {later:?}"
        );
    }
    let paused = transcript_lines(&workspace)
        .iter()
        .filter(|line| line["queued_ms"].as_u64().unwrap_or(0) >= 500)
        .count();
    assert!(
        paused >= 2,
        "the repairs of the other specs record their wait"
    );
}
