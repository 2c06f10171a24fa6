//! The client against the scripted server from `agent-testkit`: real async-openai
//! requests over HTTP, plain and streamed, with retries, timeouts, transcripts and
//! replay.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent_spec::{ModelSettings, StructuredOutput};
use agent_testkit::{RecordedRequest, ScriptedReply, ScriptedServer};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{
    Answer, BundleFile, ChatMessage, CodeBundle, Model, ModelError, ModelSession, Purpose, Reply,
    Role, Usage, Verdict,
};

const KEY: &str = "sk-test-SECRET-4242";

fn settings(base_url: &str) -> ModelSettings {
    ModelSettings {
        base_url: base_url.to_owned(),
        api_key_env: "TEST_MODEL_KEY".to_owned(),
        name: "test-model".to_owned(),
        temperature: 0.2,
        request_timeout_secs: 5,
        max_retries: 2,
        max_retry_after_secs: 1,
        structured_output: StructuredOutput::JsonSchema,
        stream: false,
        max_tokens: None,
        max_concurrent_requests: 4,
        candidates: 1,
    }
}

fn live(settings: &ModelSettings) -> Model {
    Model::live(settings, Some(SecretString::from(KEY)))
        .expect("valid settings")
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(40))
}

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage {
            role: Role::System,
            content: "You write code bundles.".to_owned(),
        },
        ChatMessage {
            role: Role::User,
            content: "Print hello.".to_owned(),
        },
    ]
}

fn sample_bundle() -> CodeBundle {
    CodeBundle {
        summary: "prints hello".to_owned(),
        dockerfile: Some(
            "FROM python:3.11\nCOPY main.py .\nCMD [\"python\", \"main.py\"]\n".to_owned(),
        ),
        files: vec![BundleFile {
            filename: "main.py".to_owned(),
            content: "print(\"hello\")\n".to_owned(),
        }],
        delete: Vec::new(),
    }
}

fn bundle_json() -> String {
    serde_json::to_string(&sample_bundle()).unwrap()
}

/// A session writing into a fresh temp dir.
struct Run {
    folder: tempfile::TempDir,
    session: ModelSession,
}

impl Run {
    fn new(model: &Model, spec: &str) -> Run {
        let folder = tempfile::tempdir().unwrap();
        let session = model
            .session(spec, &folder.path().join("transcript.jsonl"))
            .unwrap();
        Run { folder, session }
    }

    fn transcript_path(&self) -> PathBuf {
        self.folder.path().join("transcript.jsonl")
    }

    fn transcript_text(&self) -> String {
        std::fs::read_to_string(self.transcript_path()).unwrap()
    }

    fn transcript(&self) -> Vec<Value> {
        self.transcript_text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    async fn bundle(&mut self) -> Result<Reply<CodeBundle>, ModelError> {
        self.session
            .code_bundle(Purpose::Generate, 1, &messages())
            .await
    }
}

/// One `code_bundle` call against a server playing `replies`.
async fn bundle_call(
    settings_for: impl FnOnce(&str) -> ModelSettings,
    replies: Vec<ScriptedReply>,
) -> (ScriptedServer, Run, Result<Reply<CodeBundle>, ModelError>) {
    let server = ScriptedServer::start(replies).await;
    let model = live(&settings_for(&server.base_url()));
    let mut run = Run::new(&model, "hello");
    let result = run.bundle().await;
    (server, run, result)
}

fn only_request(server: &ScriptedServer) -> RecordedRequest {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "exactly one request: {requests:?}");
    requests.into_iter().next().unwrap()
}

fn streamed(base_url: &str) -> ModelSettings {
    ModelSettings {
        stream: true,
        ..settings(base_url)
    }
}

#[tokio::test]
async fn a_bundle_parses_plain_and_streamed_with_a_strict_schema_request() {
    for stream in [false, true] {
        let (server, run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                max_tokens: Some(4000),
                ..settings(base)
            },
            vec![ScriptedReply::Content(bundle_json())],
        )
        .await;
        let reply = result.unwrap();
        assert_eq!(
            reply.answer,
            Answer::Parsed(sample_bundle()),
            "stream {stream}"
        );
        assert_eq!(
            reply.usage,
            Usage {
                prompt_tokens: 100,
                completion_tokens: 50
            },
            "stream {stream}: usage from the answer or the last chunk"
        );
        assert_eq!(reply.content, bundle_json());

        let request = only_request(&server);
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer sk-test-SECRET-4242")
        );
        assert_eq!(request.schema_name().as_deref(), Some("code_bundle"));
        assert_eq!(request.is_stream(), stream);
        let body = &request.body;
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["max_tokens"], 4000);
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            body["response_format"]["json_schema"]["schema"],
            CodeBundle::json_schema()
        );
        assert_eq!(
            body["messages"].as_array().unwrap().len(),
            2,
            "no extra message"
        );
        if stream {
            assert_eq!(body["stream_options"]["include_usage"], true);
        } else {
            assert!(body.get("stream").is_none());
        }
        assert_eq!(run.transcript().len(), 1);
    }
}

#[tokio::test]
async fn a_verdict_parses_plain_and_streamed() {
    for stream in [false, true] {
        let server = ScriptedServer::start(vec![ScriptedReply::Content(
            r#"{"pass": true, "reason": "matches"}"#.to_owned(),
        )])
        .await;
        let model = live(&ModelSettings {
            stream,
            ..settings(&server.base_url())
        });
        let mut run = Run::new(&model, "hello");
        let reply = run.session.verdict(2, &messages()).await.unwrap();
        assert_eq!(
            reply.answer,
            Answer::Parsed(Verdict {
                pass: true,
                reason: "matches".to_owned()
            })
        );
        let request = only_request(&server);
        assert_eq!(request.schema_name().as_deref(), Some("verdict"));
        let line = &run.transcript()[0];
        assert_eq!(line["schema"], "verdict");
        assert_eq!(line["purpose"], "judge");
        assert_eq!(line["iteration"], 2);
    }
}

#[tokio::test]
async fn json_object_mode_describes_the_schema_and_reads_a_fenced_reply() {
    for stream in [false, true] {
        let fenced = format!(
            "Here is the bundle:\n```json\n{}\n```\nGood luck!",
            bundle_json()
        );
        let (server, run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                structured_output: StructuredOutput::JsonObject,
                ..settings(base)
            },
            vec![ScriptedReply::Content(fenced)],
        )
        .await;
        assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
        let request = only_request(&server);
        assert_eq!(
            request.body["response_format"],
            json!({"type": "json_object"})
        );
        let sent = request.body["messages"].as_array().unwrap();
        assert_eq!(
            sent.len(),
            3,
            "the schema travels in an extra system message"
        );
        assert_eq!(sent[0]["content"], "You write code bundles.");
        assert_eq!(sent[1]["role"], "system");
        let instructions = sent[1]["content"].as_str().unwrap();
        assert!(instructions.contains("`code_bundle`") && instructions.contains("\"dockerfile\""));
        assert_eq!(sent[2]["role"], "user");
        assert_eq!(
            run.transcript()[0]["request"]["response_format"],
            "json_object"
        );
    }
}

#[tokio::test]
async fn none_mode_sends_no_response_format_and_reads_prose_around_the_object() {
    let prose = format!("Sure. {} That is all.", bundle_json());
    let (server, run, result) = bundle_call(
        |base| ModelSettings {
            structured_output: StructuredOutput::None,
            ..settings(base)
        },
        vec![ScriptedReply::Content(prose)],
    )
    .await;
    assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
    let request = only_request(&server);
    assert!(request.body.get("response_format").is_none());
    assert!(request.all_text().contains("named `code_bundle`"));
    assert_eq!(run.transcript()[0]["request"]["response_format"], "none");
}

#[tokio::test]
async fn a_refusal_is_refused_plain_and_streamed() {
    for stream in [false, true] {
        let (_server, _run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                ..settings(base)
            },
            vec![ScriptedReply::Refusal("I will not build that.".to_owned())],
        )
        .await;
        let reply = result.unwrap();
        assert_eq!(
            reply.answer,
            Answer::Refused("I will not build that.".to_owned()),
            "stream {stream}"
        );
        assert_eq!(reply.content, "I will not build that.");
    }
}

#[tokio::test]
async fn empty_choices_and_a_length_cut_are_invalid_with_words_to_act_on() {
    for stream in [false, true] {
        let (_server, _run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                ..settings(base)
            },
            vec![ScriptedReply::EmptyChoices],
        )
        .await;
        match result.unwrap().answer {
            Answer::Invalid(text) => assert!(text.contains("no choices"), "{text}"),
            other => panic!("stream {stream}: expected invalid, got {other:?}"),
        }
        let (_server, _run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                ..settings(base)
            },
            vec![ScriptedReply::ContentWithFinish {
                content: r#"{"summary": "long", "files": [{"filename": "a.py", "content": "pri"#
                    .to_owned(),
                finish_reason: "length".to_owned(),
            }],
        )
        .await;
        match result.unwrap().answer {
            Answer::Invalid(text) => assert!(text.contains("cut at the token limit"), "{text}"),
            other => panic!("stream {stream}: expected invalid, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_types_are_invalid_and_name_the_field() {
    let (_server, _run, result) = bundle_call(
        settings,
        vec![ScriptedReply::Content(
            r#"{"summary": "s", "dockerfile": null, "files": [{"filename": "a", "content": "x"}, {"filename": "b", "content": "y"}, {"filename": "c", "content": 7}], "delete": []}"#
                .to_owned(),
        )],
    )
    .await;
    assert_eq!(
        result.unwrap().answer,
        Answer::Invalid("field `files[2].content` must be a string".to_owned())
    );
}

#[tokio::test]
async fn an_unknown_finish_reason_still_parses() {
    for stream in [false, true] {
        let (_server, _run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                ..settings(base)
            },
            vec![ScriptedReply::ContentWithFinish {
                content: bundle_json(),
                finish_reason: "eos".to_owned(),
            }],
        )
        .await;
        assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
    }
}

#[tokio::test]
async fn a_lenient_completion_without_usage_or_refusal_parses_with_zero_usage() {
    let body = json!({
        "id": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": bundle_json()}, "finish_reason": "abort"}],
    });
    let (_server, _run, result) = bundle_call(
        settings,
        vec![ScriptedReply::Raw {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
        }],
    )
    .await;
    let reply = result.unwrap();
    assert_eq!(reply.answer, Answer::Parsed(sample_bundle()));
    assert_eq!(reply.usage, Usage::default());
}

#[tokio::test]
async fn a_plain_answer_to_a_streamed_request_is_read_as_a_completion() {
    let body = json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": bundle_json()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    });
    let (server, _run, result) = bundle_call(
        streamed,
        vec![ScriptedReply::Raw {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
        }],
    )
    .await;
    let reply = result.unwrap();
    assert!(only_request(&server).is_stream());
    assert_eq!(reply.answer, Answer::Parsed(sample_bundle()));
    assert_eq!(
        reply.usage,
        Usage {
            prompt_tokens: 7,
            completion_tokens: 3
        }
    );
}

#[tokio::test]
async fn a_vllm_error_body_with_an_integer_code_keeps_its_status_and_is_not_retried() {
    let body = json!({
        "object": "error",
        "message": "response_format json_schema is not supported",
        "type": "BadRequestError",
        "param": null,
        "code": 400,
    });
    let (server, run, result) = bundle_call(
        settings,
        vec![ScriptedReply::Raw {
            status: 400,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
        }],
    )
    .await;
    match result {
        Err(ModelError::Status { status, body, .. }) => {
            assert_eq!(status, 400);
            assert_eq!(body, "response_format json_schema is not supported");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
    let line = &run.transcript()[0];
    assert!(line["error"].as_str().unwrap().contains("HTTP 400"));
    assert_eq!(line["response"], Value::Null);
    assert_eq!(line["attempts"], 1);
}

#[tokio::test]
async fn a_429_retry_after_is_honoured_up_to_the_cap() {
    let started = Instant::now();
    let (server, run, result) = bundle_call(
        settings,
        vec![
            ScriptedReply::Raw {
                status: 429,
                headers: vec![("retry-after".to_owned(), "30".to_owned())],
                body: r#"{"error": {"message": "rate limited", "code": "rate_limit"}}"#.to_owned(),
            },
            ScriptedReply::Content(bundle_json()),
        ],
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
    assert_eq!(server.requests().len(), 2);
    // `max_retry_after_secs = 1`: the 30 s asked for become 1 s.
    assert!(elapsed >= Duration::from_millis(950), "waited {elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "waited {elapsed:?}");
    assert_eq!(run.transcript()[0]["attempts"], 2);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let raw = |status| ScriptedReply::Raw {
        status,
        headers: Vec::new(),
        body: "upstream trouble".to_owned(),
    };
    let (server, _run, result) = bundle_call(
        |base| ModelSettings {
            max_retries: 3,
            ..settings(base)
        },
        vec![
            raw(500),
            raw(502),
            raw(503),
            ScriptedReply::Content(bundle_json()),
        ],
    )
    .await;
    assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn spent_retries_give_the_last_status() {
    let raw = |status| ScriptedReply::Raw {
        status,
        headers: Vec::new(),
        body: format!("overloaded {status}"),
    };
    let (server, run, result) = bundle_call(settings, vec![raw(500), raw(502), raw(503)]).await;
    match result {
        Err(ModelError::Status { status, body, .. }) => {
            assert_eq!(status, 503);
            assert_eq!(body, "overloaded 503");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        3,
        "one attempt and max_retries = 2 retries"
    );
    assert_eq!(run.transcript()[0]["attempts"], 3);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let model = live(&settings(&format!("http://127.0.0.1:{port}/v1")));
    let mut run = Run::new(&model, "hello");
    match run.bundle().await {
        Err(ModelError::Unreachable { base_url, .. }) => {
            assert_eq!(base_url, format!("http://127.0.0.1:{port}/v1"));
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert_eq!(run.transcript()[0]["attempts"], 3);
    assert!(matches!(
        model.probe().await,
        Err(ModelError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn a_stalled_stream_times_out_within_the_bound() {
    let started = Instant::now();
    let (server, _run, result) = bundle_call(
        |base| ModelSettings {
            request_timeout_secs: 1,
            max_retries: 0,
            ..streamed(base)
        },
        vec![ScriptedReply::StallStream {
            content: bundle_json(),
            after_chunks: 3,
        }],
    )
    .await;
    let elapsed = started.elapsed();
    match result {
        Err(ModelError::Timeout { secs, .. }) => assert_eq!(secs, 1),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_hanging_server_times_out_on_every_attempt() {
    let started = Instant::now();
    let (server, _run, result) = bundle_call(
        |base| ModelSettings {
            request_timeout_secs: 1,
            max_retries: 1,
            ..settings(base)
        },
        vec![ScriptedReply::Hang, ScriptedReply::Hang],
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(ModelError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(server.requests().len(), 2, "a timeout is retried");
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

#[tokio::test]
async fn a_timeout_then_success_recovers() {
    let (server, _run, result) = bundle_call(
        |base| ModelSettings {
            request_timeout_secs: 1,
            ..settings(base)
        },
        vec![
            ScriptedReply::Delayed(
                Duration::from_secs(3),
                Box::new(ScriptedReply::Content("late".to_owned())),
            ),
            ScriptedReply::Content(bundle_json()),
        ],
    )
    .await;
    assert_eq!(result.unwrap().answer, Answer::Parsed(sample_bundle()));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unauthorized_is_auth_at_once_and_the_key_appears_nowhere() {
    let echo = format!(r#"{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}"#);
    let (server, run, result) = bundle_call(
        settings,
        vec![ScriptedReply::Raw {
            status: 401,
            headers: Vec::new(),
            body: echo.clone(),
        }],
    )
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, ModelError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1, "auth failures are not retried");
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut cause = std::error::Error::source(&error);
    while let Some(source) = cause {
        texts.push(source.to_string());
        cause = source.source();
    }
    texts.push(run.transcript_text());
    texts.push(format!("{:?}", run.session));
    for text in &texts {
        assert!(!text.contains("SECRET"), "the key leaked: {text}");
    }

    // A body that echoes the key in another error is redacted.
    let (_server, run, result) = bundle_call(
        settings,
        vec![ScriptedReply::Raw {
            status: 400,
            headers: Vec::new(),
            body: echo,
        }],
    )
    .await;
    let error = result.unwrap_err();
    assert!(matches!(error, ModelError::Status { status: 400, .. }));
    assert!(!error.to_string().contains("SECRET"), "{error}");
    assert!(error.to_string().contains("[redacted]"), "{error}");
    assert!(!run.transcript_text().contains("SECRET"));

    let model = live(&settings("http://127.0.0.1:9/v1"));
    assert!(!format!("{model:?}").contains("SECRET"));
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle_json())]).await;
    let model = Model::live(&settings(&server.base_url()), None).unwrap();
    let mut run = Run::new(&model, "hello");
    run.bundle().await.unwrap();
    assert_eq!(only_request(&server).header("authorization"), None);
}

/// A bundle holding one file of `bytes` bytes, written out directly: serializing
/// tens of megabytes through unoptimized serde takes seconds.
fn bundle_with_data(bytes: usize) -> String {
    format!(
        r#"{{"summary": "data", "dockerfile": null, "files": [{{"filename": "data.txt", "content": "{}"}}], "delete": []}}"#,
        "x".repeat(bytes)
    )
}

/// A plain completion holding `content`, which needs no JSON escaping.
fn plain_completion(content: &str) -> ScriptedReply {
    let escaped = content.replace('"', "\\\"");
    ScriptedReply::Raw {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: format!(
            r#"{{"id": "x", "object": "chat.completion", "choices": [{{"index": 0, "message": {{"role": "assistant", "content": "{escaped}"}}, "finish_reason": "stop"}}]}}"#
        ),
    }
}

#[tokio::test]
async fn an_answer_past_the_cap_is_invalid_cut_off_and_recorded_as_truncated() {
    const CAP: u64 = 8 * 1024 * 1024;
    let huge = bundle_with_data(48_000_000);
    for stream in [false, true] {
        // The streamed reply goes through the server's own SSE framing; the plain one
        // is written out whole (see `bundle_with_data`).
        let scripted = if stream {
            ScriptedReply::Content(huge.clone())
        } else {
            plain_completion(&huge)
        };
        let (server, run, result) = bundle_call(
            |base| ModelSettings {
                stream,
                // Building and sending 48 MB takes the unoptimized test server a while.
                request_timeout_secs: 120,
                max_retries: 0,
                ..settings(base)
            },
            vec![scripted],
        )
        .await;
        let reply = result.expect("a reply past the cap is the model's fault, not an error");
        let Answer::Invalid(text) = &reply.answer else {
            panic!("stream {stream}: expected invalid, got {:?}", reply.answer);
        };
        assert!(text.contains("cut off at 8.0 MiB"), "{text}");
        assert!(
            text.contains("64 files of at most 1.0 MiB each, 4.0 MiB in all"),
            "{text}"
        );
        if stream {
            assert!(text.contains("your reply grew past 8.0 MiB"), "{text}");
        } else {
            // The plain answer announced its length: the model hears the whole size.
            assert!(text.contains("your reply was 45.8 MiB"), "{text}");
            assert!(!text.contains("grew past"), "{text}");
        }
        assert_eq!(reply.content, "");
        assert_eq!(server.requests().len(), 1, "stream {stream}: not retried");

        let transcript = run.transcript_text();
        assert!(
            transcript.len() < 16 * 1024,
            "a small line: {}",
            transcript.len()
        );
        let line = &run.transcript()[0];
        assert_eq!(line["error"], Value::Null);
        assert_eq!(line["response"]["truncated"], true);
        assert_eq!(line["response"]["content"], Value::Null);
        let received = line["response"]["received_bytes"].as_u64().unwrap();
        assert!(
            (CAP..CAP + 1024 * 1024).contains(&received),
            "stream {stream}: read to the cap and no further: {received}"
        );

        // The recorded cut replays as the same answer.
        let replay = Model::replay(&run.transcript_path()).unwrap();
        let mut replayed = Run::new(&replay, "hello");
        assert_eq!(replayed.bundle().await.unwrap().answer, reply.answer);
    }
}

#[tokio::test]
async fn the_answer_cap_grows_with_the_bundle_limits() {
    let limits = agent_spec::BundleLimits {
        max_total_bytes: 40 * 1024 * 1024,
        ..agent_spec::BundleLimits::default()
    };
    let server = ScriptedServer::start(vec![plain_completion(&bundle_with_data(10_000_000))]).await;
    let model = live(&ModelSettings {
        request_timeout_secs: 120,
        max_retries: 0,
        ..settings(&server.base_url())
    })
    .with_bundle_limits(&limits);
    let mut run = Run::new(&model, "hello");
    let reply = run.bundle().await.unwrap();
    assert!(
        matches!(&reply.answer, Answer::Parsed(bundle) if bundle.files[0].content.len() == 10_000_000),
        "80 MiB of room: the whole 10 MB answer is read"
    );
}

#[tokio::test]
async fn probe_answers_ok_and_refused_credentials_are_auth() {
    let server = ScriptedServer::start(Vec::new()).await;
    let model = live(&settings(&server.base_url()));
    model.probe().await.unwrap();
    let request = only_request(&server);
    assert_eq!(request.path, "/v1/models");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-test-SECRET-4242")
    );

    let base_url = fixed_answer_server("HTTP/1.1 401 Unauthorized").await;
    let model = live(&settings(&base_url));
    assert!(matches!(
        model.probe().await,
        Err(ModelError::Auth { status: 401, .. })
    ));

    let (_folder, empty) = write_transcript("");
    let replay = Model::replay(&empty).unwrap();
    assert!(replay.is_replay());
    replay.probe().await.unwrap();
    assert!(!model.is_replay());
}

/// A server that answers every connection with `status_line` and an empty body.
async fn fixed_answer_server(status_line: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let answer = format!("{status_line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    format!("http://{addr}/v1")
}

fn write_transcript(text: &str) -> (tempfile::TempDir, PathBuf) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("recorded.jsonl");
    std::fs::write(&path, text).unwrap();
    (folder, path)
}

#[tokio::test]
async fn a_transcript_records_every_call_and_replays_the_same_answers() {
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content("Sorry, here it is: not json".to_owned()),
        ScriptedReply::Raw {
            status: 400,
            headers: Vec::new(),
            body: "bad request".to_owned(),
        },
        ScriptedReply::Content(bundle_json()),
        ScriptedReply::EmptyChoices,
        ScriptedReply::Content(r#"{"pass": false, "reason": "wrong output"}"#.to_owned()),
    ])
    .await;
    let model = live(&streamed(&server.base_url()));
    let mut run = Run::new(&model, "fizzbuzz");
    let session = &mut run.session;
    let first = session
        .code_bundle(Purpose::Generate, 1, &messages())
        .await
        .unwrap();
    assert!(matches!(first.answer, Answer::Invalid(_)));
    let failed = session.code_bundle(Purpose::Reformat, 1, &messages()).await;
    assert!(matches!(
        failed,
        Err(ModelError::Status { status: 400, .. })
    ));
    let second = session
        .code_bundle(Purpose::Reformat, 1, &messages())
        .await
        .unwrap();
    let third = session
        .code_bundle(Purpose::Repair, 2, &messages())
        .await
        .unwrap();
    let verdict = session.verdict(2, &messages()).await.unwrap();

    let lines = run.transcript();
    assert_eq!(lines.len(), 5, "failed calls are recorded too");
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "spec",
        "iteration",
        "purpose",
        "schema",
        "model",
        "request",
        "response",
        "usage",
        "latency_ms",
        "attempts",
        "error",
        "started_at",
    ] {
        assert!(keys.contains(&key), "missing `{key}` in {keys:?}");
    }
    assert_eq!(lines[0]["spec"], "fizzbuzz");
    assert_eq!(lines[0]["purpose"], "generate");
    assert_eq!(lines[0]["request"]["stream"], true);
    assert_eq!(
        lines[0]["request"]["messages"][1]["content"],
        "Print hello."
    );
    assert_eq!(lines[0]["response"]["finish_reason"], "stop");
    assert_eq!(lines[0]["usage"]["prompt_tokens"], 100);
    assert_eq!(lines[0]["error"], Value::Null);
    assert!(lines[0]["started_at"].as_str().unwrap().contains('T'));
    assert!(lines[1]["error"].as_str().unwrap().contains("HTTP 400"));
    assert_eq!(lines[2]["purpose"], "reformat");
    assert_eq!(lines[4]["schema"], "verdict");

    // Replay, also for a renamed spec: the same answers from the same parsing code.
    for spec in ["fizzbuzz", "renamed"] {
        let replay = Model::replay(&run.transcript_path()).unwrap();
        let mut replayed = Run::new(&replay, spec);
        let session = &mut replayed.session;
        let again = [
            session
                .code_bundle(Purpose::Generate, 1, &messages())
                .await
                .unwrap(),
            session
                .code_bundle(Purpose::Reformat, 1, &messages())
                .await
                .unwrap(),
            session
                .code_bundle(Purpose::Repair, 2, &messages())
                .await
                .unwrap(),
        ];
        for (live_reply, replayed_reply) in [&first, &second, &third].into_iter().zip(&again) {
            assert_eq!(live_reply.answer, replayed_reply.answer);
            assert_eq!(live_reply.usage, replayed_reply.usage);
            assert_eq!(live_reply.content, replayed_reply.content);
        }
        let replayed_verdict = session.verdict(2, &messages()).await.unwrap();
        assert_eq!(replayed_verdict.answer, verdict.answer);
        assert!(replayed_verdict.latency < Duration::from_millis(100));
        let replay_lines = replayed.transcript();
        assert_eq!(
            replay_lines.len(),
            4,
            "the replayed run writes its own transcript"
        );
        assert_eq!(replay_lines[0]["spec"], spec);
        assert_eq!(replay_lines[3]["schema"], "verdict");
    }
    assert_eq!(
        server.requests().len(),
        5,
        "replay never calls the endpoint"
    );
}

#[tokio::test]
async fn replay_past_the_recorded_calls_or_of_another_schema_is_exhausted() {
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle_json())]).await;
    let model = live(&settings(&server.base_url()));
    let mut run = Run::new(&model, "hello");
    run.bundle().await.unwrap();

    let replay = Model::replay(&run.transcript_path()).unwrap();
    let mut replayed = Run::new(&replay, "hello");
    match replayed.session.verdict(1, &messages()).await {
        Err(ModelError::ReplayExhausted { spec, schema, path }) => {
            assert_eq!(spec, "hello");
            assert_eq!(schema, "verdict");
            assert_eq!(path, run.transcript_path());
        }
        other => panic!("expected exhausted, got {other:?}"),
    }
    let reply = replayed.bundle().await.unwrap();
    assert_eq!(reply.answer, Answer::Parsed(sample_bundle()));
    assert!(matches!(
        replayed.bundle().await,
        Err(ModelError::ReplayExhausted { schema, .. }) if schema == "code_bundle"
    ));
    let lines = replayed.transcript();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("no recorded `verdict` call")
    );
}

#[tokio::test]
async fn replay_reports_unreadable_and_malformed_transcripts() {
    assert!(matches!(
        Model::replay(std::path::Path::new("/nonexistent/transcript.jsonl")),
        Err(ModelError::ReplayRead { .. })
    ));
    let (_folder, path) = write_transcript("\n{not json}\n");
    match Model::replay(&path) {
        Err(ModelError::ReplayParse { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let bad_url = Model::live(&settings("localhost:8000"), None);
    assert!(matches!(bad_url, Err(ModelError::Settings(_))));
    let zero_timeout = Model::live(
        &ModelSettings {
            request_timeout_secs: 0,
            ..settings("http://localhost:8000/v1")
        },
        None,
    );
    assert!(matches!(zero_timeout, Err(ModelError::Settings(_))));
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn the_model_and_its_calls_can_move_between_tasks() {
    fn assert_shared<T: Send + Sync + Clone>() {}
    assert_shared::<Model>();
    let (_folder, path) = write_transcript("");
    let model = Model::replay(&path).unwrap();
    let mut run = Run::new(&model, "hello");
    let call = run.session.code_bundle(Purpose::Generate, 1, &[]);
    assert_send(&call);
    assert!(matches!(
        call.await,
        Err(ModelError::ReplayExhausted { .. })
    ));
    let live_model = live(&settings("http://127.0.0.1:9/v1"));
    let mut live_run = Run::new(&live_model, "hello");
    let probe = live_model.probe();
    assert_send(&probe);
    drop(probe);
    let verdict = live_run.session.verdict(1, &[]);
    assert_send(&verdict);
}

/// What llama-cpp-python's server answers to a `json_schema` response format.
fn llama_cpp_rejection() -> ScriptedReply {
    ScriptedReply::Raw {
        status: 500,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: r#"{"error": {"message": "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}]", "type": "internal_server_error"}}"#.to_owned(),
    }
}

#[tokio::test]
async fn auto_falls_back_to_json_object_with_the_schema_and_keeps_it_for_every_session() {
    let server = ScriptedServer::start(vec![
        llama_cpp_rejection(),
        ScriptedReply::Content(bundle_json()),
        ScriptedReply::Content(bundle_json()),
    ])
    .await;
    let model = live(&ModelSettings {
        structured_output: StructuredOutput::Auto,
        ..settings(&server.base_url())
    });
    let mut run = Run::new(&model, "hello");
    assert_eq!(run.session.structured_output(), None);
    let reply = run.bundle().await.unwrap();
    assert_eq!(reply.answer, Answer::Parsed(sample_bundle()));
    assert_eq!(run.session.structured_output(), Some("json_object_schema"));
    let line = &run.transcript()[0];
    assert_eq!(line["request"]["response_format"], "json_object_schema");
    assert_eq!(
        line["attempts"], 2,
        "the rejected attempt is counted, not retried"
    );

    // Another spec of the same invocation starts in the mode that worked.
    let mut other = Run::new(&model, "other");
    other.bundle().await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    for request in &requests[1..] {
        let body = &request.body;
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["response_format"]["schema"], CodeBundle::json_schema());
        assert_eq!(body["guided_json"], CodeBundle::json_schema());
        assert!(request.all_text().contains("named `code_bundle`"));
    }
}

#[tokio::test]
async fn auto_ends_with_the_schema_in_the_prompt_when_every_format_is_rejected() {
    let rejected = || ScriptedReply::Raw {
        status: 400,
        headers: Vec::new(),
        body: r#"{"error": {"message": "Unrecognized request argument: response_format"}}"#
            .to_owned(),
    };
    let server = ScriptedServer::start(vec![
        rejected(),
        rejected(),
        rejected(),
        ScriptedReply::Content(bundle_json()),
    ])
    .await;
    let model = live(&ModelSettings {
        structured_output: StructuredOutput::Auto,
        ..settings(&server.base_url())
    });
    assert_eq!(model.probe_structured_output().await.unwrap(), Some("none"));
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests[3].body.get("response_format").is_none());
    assert_eq!(
        requests[3].body["max_tokens"], 16,
        "the probe asks for little"
    );
}

#[tokio::test]
async fn an_explicit_mode_is_obeyed_and_a_rejection_of_the_request_is_not_retried() {
    let (server, _run, result) = bundle_call(settings, vec![llama_cpp_rejection()]).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, ModelError::Status { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1, "no fallback, no retry");
    assert!(
        error
            .setting_to_change()
            .unwrap()
            .contains("structured_output")
    );

    let context = ScriptedReply::Raw {
        status: 400,
        headers: Vec::new(),
        body: r#"{"error": {"message": "Requested tokens (9000) exceed context window of 8192"}}"#
            .to_owned(),
    };
    let (server, _run, result) = bundle_call(settings, vec![context]).await;
    let error = result.unwrap_err();
    assert_eq!(server.requests().len(), 1);
    assert!(
        error.setting_to_change().unwrap().contains("max_tokens"),
        "{error}"
    );
}
