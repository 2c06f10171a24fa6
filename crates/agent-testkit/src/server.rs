//! The scripted model server: an axum app on 127.0.0.1 that records every request and
//! answers chat completions from a script, as plain JSON or as SSE chunks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Requests larger than this are refused; prompts with long feedback stay far below.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// Characters of content per SSE delta: small, so clients really assemble deltas.
const CHUNK_CHARS: usize = 6;
/// At most this many deltas per reply: a reply of many megabytes goes out in larger
/// pieces instead of millions of tiny events.
const MAX_DELTAS: usize = 4096;
/// A fixed `created` timestamp keeps replies reproducible.
const CREATED: u64 = 1_700_000_000;
const PROMPT_TOKENS: u64 = 100;
const COMPLETION_TOKENS: u64 = 50;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    /// When the server had read the request, by the test process's clock.
    pub received_at: Instant,
}

impl RecordedRequest {
    /// Every message's content, joined with blank lines.
    pub fn all_text(&self) -> String {
        self.messages()
            .iter()
            .map(message_text)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The content of the last message whose role is `user`.
    pub fn last_user_message(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(message_text)
            .unwrap_or_default()
    }

    /// `response_format.json_schema.name`, if any.
    pub fn schema_name(&self) -> Option<String> {
        self.body
            .pointer("/response_format/json_schema/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The first header of that name (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn wants_usage_chunk(&self) -> bool {
        self.body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
    }

    fn model(&self) -> String {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("scripted-model")
            .to_owned()
    }
}

/// A message's text: a plain string, or the `text` parts of a content array.
fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the server does for one request.
#[derive(Debug, Clone)]
pub enum ScriptedReply {
    /// A normal completion whose message content is this text, finish_reason
    /// "stop", usage 100 prompt / 50 completion tokens. As SSE chunks (a few
    /// characters each, usage in a last chunk with empty choices when
    /// `stream_options.include_usage` is set, then `data: [DONE]`) when the request
    /// has `stream: true`.
    Content(String),
    /// As `Content`, with the given finish_reason (e.g. "length", "eos").
    ContentWithFinish {
        content: String,
        finish_reason: String,
    },
    /// `message.refusal` set, content null.
    Refusal(String),
    /// A completion with `choices: []`.
    EmptyChoices,
    /// Any status, headers and body, verbatim.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Waits, then replies.
    Delayed(Duration, Box<ScriptedReply>),
    /// Streams the first `after_chunks` SSE chunks of `content`, then stalls forever
    /// (a dead connection that stays open). A request that did not ask to stream gets
    /// the headers and the first half of the JSON body, then the same stall.
    StallStream {
        content: String,
        after_chunks: usize,
    },
    /// Accepts the request and never answers.
    Hang,
}

type Responder = dyn Fn(usize, &RecordedRequest) -> ScriptedReply + Send + Sync;

/// State shared by the handlers.
struct Shared {
    responder: Box<Responder>,
    /// Chat-completion requests seen so far: the script's index.
    completions: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    panics: Mutex<Vec<String>>,
    /// Chat-completion requests being answered now, and the most there ever were.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Becomes `true` (or closes) when the server is dropped; ends stalls and hangs.
    shutdown: watch::Receiver<bool>,
}

/// Listens on 127.0.0.1 on a free port; stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Answers the n-th chat-completion request (0-based) with `replies[n]`; past the
    /// end, with HTTP 500 and a body saying the script ran out (so a test sees the
    /// extra call). Other requests (`GET /v1/models`) do not consume the script.
    pub async fn start(replies: Vec<ScriptedReply>) -> ScriptedServer {
        let length = replies.len();
        Self::start_with(move |index, _request| match replies.get(index) {
            Some(reply) => reply.clone(),
            None => ScriptedReply::Raw {
                status: 500,
                headers: vec![("content-type".to_owned(), "application/json".to_owned())],
                body: error_body(&format!(
                    "the scripted server ran out of replies: this is request {index} (0-based) \
                     and the script holds {length}"
                )),
            },
        })
        .await
    }

    /// Answers with whatever `responder(index, request)` returns; it may assert on the
    /// request (a panic there becomes an HTTP 500 and is reported by
    /// [`ScriptedServer::panics`]).
    pub async fn start_with(
        responder: impl Fn(usize, &RecordedRequest) -> ScriptedReply + Send + Sync + 'static,
    ) -> ScriptedServer {
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let shared = Arc::new(Shared {
            responder: Box::new(responder),
            completions: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            panics: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            shutdown: shutdown_receiver.clone(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the scripted server cannot bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("the scripted server has no local address");
        let mut stop = shutdown_receiver;
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("the scripted server stopped: {error}");
            }
        });
        ScriptedServer {
            addr,
            shared,
            shutdown,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in order (chat completions and others).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The most chat-completion requests the server was answering at once: from
    /// reading a request until its response (for SSE, the response head) was ready.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// Messages of responder panics (assertion failures inside the script).
    pub fn panics(&self) -> Vec<String> {
        lock(&self.shared.panics).clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        // Ends the accept loop and every stalled or hanging reply, so open
        // connections do not outlive the test.
        let _ = self.shutdown.send(true);
    }
}

/// A poisoned lock only means a test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error_body(message: &str) -> String {
    json!({"error": {"message": message, "type": "scripted_server", "param": null, "code": null}})
        .to_string()
}

fn record(
    shared: &Shared,
    request_path: String,
    headers: &HeaderMap,
    body: &[u8],
) -> RecordedRequest {
    let recorded = RecordedRequest {
        path: request_path,
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        },
        received_at: Instant::now(),
    };
    lock(&shared.requests).push(recorded.clone());
    recorded
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = record(&shared, "/v1/chat/completions".to_owned(), &headers, &body);
    let _flight = Flight::enter(&shared);
    let index = shared.completions.fetch_add(1, Ordering::SeqCst);
    let outcome =
        std::panic::catch_unwind(AssertUnwindSafe(|| (shared.responder)(index, &request)));
    match outcome {
        Ok(reply) => respond(reply, &request, index, shared.shutdown.clone()).await,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            lock(&shared.panics).push(message.clone());
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                error_body(&format!(
                    "the scripted responder panicked on request {index}: {message}"
                )),
            )
        }
    }
}

/// One chat-completion request being answered, counted while it lives.
struct Flight<'a>(&'a Shared);

impl Flight<'_> {
    fn enter(shared: &Shared) -> Flight<'_> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Flight(shared)
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    record(&shared, "/v1/models".to_owned(), &headers, &[]);
    let body = json!({
        "object": "list",
        "data": [{"id": "scripted-model", "object": "model", "created": CREATED, "owned_by": "agent-testkit"}],
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn not_found(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let request_path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES)
        .await
        .unwrap_or_default();
    record(&shared, request_path.clone(), &headers, &body);
    json_response(
        StatusCode::NOT_FOUND,
        error_body(&format!(
            "the scripted server has no route `{request_path}`"
        )),
    )
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Waits until the server is dropped.
async fn until_shutdown(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopped| *stopped).await;
}

/// A body stream that sends nothing and ends only when the server is dropped.
fn stall(shutdown: watch::Receiver<bool>) -> BoxStream<'static, Result<Bytes, Infallible>> {
    stream::once(until_shutdown(shutdown))
        .filter_map(|()| async { None })
        .boxed()
}

fn respond<'a>(
    reply: ScriptedReply,
    request: &'a RecordedRequest,
    index: usize,
    shutdown: watch::Receiver<bool>,
) -> futures_util::future::BoxFuture<'a, Response> {
    Box::pin(async move {
        let completion = Completion {
            id: format!("chatcmpl-scripted-{index}"),
            model: request.model(),
        };
        match reply {
            ScriptedReply::Content(content) => {
                completion.reply(request, Message::Content(content), "stop")
            }
            ScriptedReply::ContentWithFinish {
                content,
                finish_reason,
            } => completion.reply(request, Message::Content(content), &finish_reason),
            ScriptedReply::Refusal(text) => {
                completion.reply(request, Message::Refusal(text), "stop")
            }
            ScriptedReply::EmptyChoices => completion.empty_choices(request),
            ScriptedReply::Raw {
                status,
                headers,
                body,
            } => raw(status, &headers, body),
            ScriptedReply::Delayed(delay, reply) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => respond(*reply, request, index, shutdown).await,
                    () = until_shutdown(shutdown.clone()) => shutting_down(),
                }
            }
            ScriptedReply::StallStream {
                content,
                after_chunks,
            } => completion.stalled(request, content, after_chunks, shutdown),
            ScriptedReply::Hang => {
                until_shutdown(shutdown).await;
                shutting_down()
            }
        }
    })
}

fn shutting_down() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        error_body("the scripted server is shutting down"),
    )
}

fn raw(status: u16, headers: &[(String, String)], body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// The text of the one choice: an answer or a refusal.
enum Message {
    Content(String),
    Refusal(String),
}

/// Builds replies in OpenAI's wire format for one request.
struct Completion {
    id: String,
    model: String,
}

impl Completion {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        })
    }

    fn plain(&self, message: &Message, finish_reason: &str) -> Value {
        let (content, refusal) = match message {
            Message::Content(text) => (Value::String(text.clone()), Value::Null),
            Message::Refusal(text) => (Value::Null, Value::String(text.clone())),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    fn chunk(&self, choices: Value) -> Bytes {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "choices": choices,
        });
        Bytes::from(format!("data: {chunk}\n\n"))
    }

    /// Every SSE event of a streamed reply, `[DONE]` included.
    fn events(
        &self,
        request: &RecordedRequest,
        message: &Message,
        finish_reason: &str,
    ) -> Vec<Bytes> {
        let (field, text) = match message {
            Message::Content(text) => ("content", text),
            Message::Refusal(text) => ("refusal", text),
        };
        let pieces = pieces(text);
        let mut events = Vec::with_capacity(pieces.len() + 3);
        for (position, piece) in pieces.into_iter().enumerate() {
            let mut delta = serde_json::Map::new();
            if position == 0 {
                delta.insert("role".to_owned(), json!("assistant"));
                if field == "refusal" {
                    delta.insert("content".to_owned(), Value::Null);
                }
            }
            delta.insert(field.to_owned(), Value::String(piece.to_owned()));
            events.push(self.chunk(json!([
                {"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}
            ])));
        }
        events.push(self.chunk(json!([
            {"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason}
        ])));
        events.extend(self.closing_events(request));
        events
    }

    /// The usage chunk when asked for, then `[DONE]`.
    fn closing_events(&self, request: &RecordedRequest) -> Vec<Bytes> {
        let mut events = Vec::new();
        if request.wants_usage_chunk() {
            let chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            });
            events.push(Bytes::from(format!("data: {chunk}\n\n")));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }

    fn reply(&self, request: &RecordedRequest, message: Message, finish_reason: &str) -> Response {
        if request.is_stream() {
            let events = self.events(request, &message, finish_reason);
            sse_response(stream::iter(events.into_iter().map(Ok)).boxed())
        } else {
            json_response(
                StatusCode::OK,
                self.plain(&message, finish_reason).to_string(),
            )
        }
    }

    fn empty_choices(&self, request: &RecordedRequest) -> Response {
        if request.is_stream() {
            let events = self.closing_events(request);
            sse_response(stream::iter(events.into_iter().map(Ok)).boxed())
        } else {
            let body = json!({
                "id": self.id,
                "object": "chat.completion",
                "created": CREATED,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            });
            json_response(StatusCode::OK, body.to_string())
        }
    }

    fn stalled(
        &self,
        request: &RecordedRequest,
        content: String,
        after_chunks: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Response {
        if request.is_stream() {
            let events: Vec<Bytes> = self
                .events(request, &Message::Content(content), "stop")
                .into_iter()
                .take(after_chunks)
                .collect();
            sse_response(
                stream::iter(events.into_iter().map(Ok))
                    .chain(stall(shutdown))
                    .boxed(),
            )
        } else {
            let body = self
                .plain(&Message::Content(content), "stop")
                .to_string()
                .into_bytes();
            let head = Bytes::from(body[..body.len() / 2].to_vec());
            let mut response = Response::new(Body::from_stream(
                stream::once(async move { Ok::<_, Infallible>(head) }).chain(stall(shutdown)),
            ));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

/// `text` in pieces of [`CHUNK_CHARS`] characters, or larger ones (still cut at
/// character boundaries) when that would make more than [`MAX_DELTAS`] pieces; at
/// least one piece, empty for an empty text.
fn pieces(text: &str) -> Vec<&str> {
    let piece_bytes = CHUNK_CHARS.max(text.len().div_ceil(MAX_DELTAS));
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = if piece_bytes == CHUNK_CHARS {
            rest.char_indices()
                .nth(CHUNK_CHARS)
                .map_or(rest.len(), |(end, _)| end)
        } else {
            let mut end = piece_bytes.min(rest.len());
            while !rest.is_char_boundary(end) {
                end += 1;
            }
            end
        };
        let (piece, after) = rest.split_at(end);
        pieces.push(piece);
        rest = after;
    }
    if pieces.is_empty() {
        pieces.push("");
    }
    pieces
}

fn sse_response(events: BoxStream<'static, Result<Bytes, Infallible>>) -> Response {
    let mut response = Response::new(Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_body(stream: bool) -> Value {
        let mut body = json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "second"},
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "code_bundle", "schema": {}, "strict": true}},
        });
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    async fn post(server: &ScriptedServer, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/chat/completions", server.base_url()))
            .header("authorization", "Bearer test-key")
            .json(body)
            .send()
            .await
            .expect("the scripted server answers")
    }

    /// Parses an SSE body into its `data:` payloads.
    fn sse_data(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn plain_reply_has_the_openai_shape_and_the_request_is_recorded() {
        let server = ScriptedServer::start(vec![ScriptedReply::Content("hello".into())]).await;
        let response = post(&server, &chat_body(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "plain replies are JSON"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "hello");
        assert_eq!(body["choices"][0]["message"]["refusal"], Value::Null);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 100);
        assert_eq!(body["usage"]["completion_tokens"], 50);
        assert_eq!(body["usage"]["total_tokens"], 150);
        assert!(body["id"].is_string() && body["created"].is_u64());

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.header("Authorization"), Some("Bearer test-key"));
        assert_eq!(request.last_user_message(), "second");
        assert_eq!(request.all_text(), "be brief\n\nfirst\n\nok\n\nsecond");
        assert_eq!(request.schema_name().as_deref(), Some("code_bundle"));
        assert!(!request.is_stream());
    }

    #[tokio::test]
    async fn streamed_reply_is_sse_chunks_with_role_finish_usage_and_done() {
        let content = "a longer content that spans several chunks";
        let server = ScriptedServer::start(vec![ScriptedReply::ContentWithFinish {
            content: content.into(),
            finish_reason: "eos".into(),
        }])
        .await;
        let response = post(&server, &chat_body(true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let data = sse_data(&response.text().await.unwrap());
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|payload| serde_json::from_str(payload).unwrap())
            .collect();
        assert!(chunks.len() > 4, "content is split into small deltas");
        assert!(
            chunks
                .iter()
                .all(|chunk| chunk["object"] == "chat.completion.chunk")
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
        let assembled: String = chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(assembled, content);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "eos");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 50);
        assert!(server.requests()[0].is_stream());
    }

    #[tokio::test]
    async fn refusal_and_empty_choices_have_their_shapes() {
        let server = ScriptedServer::start(vec![
            ScriptedReply::Refusal("no".into()),
            ScriptedReply::EmptyChoices,
        ])
        .await;
        let refusal: Value = post(&server, &chat_body(false)).await.json().await.unwrap();
        assert_eq!(refusal["choices"][0]["message"]["refusal"], "no");
        assert_eq!(refusal["choices"][0]["message"]["content"], Value::Null);
        let empty: Value = post(&server, &chat_body(false)).await.json().await.unwrap();
        assert_eq!(empty["choices"], json!([]));
    }

    #[tokio::test]
    async fn raw_reply_is_verbatim_and_a_script_past_its_end_answers_500() {
        let server = ScriptedServer::start(vec![ScriptedReply::Raw {
            status: 429,
            headers: vec![("retry-after".into(), "3".into())],
            body: "slow down".into(),
        }])
        .await;
        let first = post(&server, &chat_body(false)).await;
        assert_eq!(first.status(), 429);
        assert_eq!(first.headers()["retry-after"], "3");
        assert_eq!(first.text().await.unwrap(), "slow down");
        let second = post(&server, &chat_body(false)).await;
        assert_eq!(second.status(), 500);
        assert!(second.text().await.unwrap().contains("ran out of replies"));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_responder_panic_becomes_a_500_and_is_listed() {
        let server = ScriptedServer::start_with(|_, request| {
            assert_eq!(
                request.last_user_message(),
                "something else",
                "wrong prompt"
            );
            ScriptedReply::Content("unreachable".into())
        })
        .await;
        let response = post(&server, &chat_body(false)).await;
        assert_eq!(response.status(), 500);
        assert!(response.text().await.unwrap().contains("panicked"));
        let panics = server.panics();
        assert_eq!(panics.len(), 1);
        assert!(panics[0].contains("wrong prompt"), "{panics:?}");
    }

    #[tokio::test]
    async fn models_lists_a_model_without_consuming_the_script() {
        let server = ScriptedServer::start(vec![ScriptedReply::Content("x".into())]).await;
        let models: Value = reqwest::get(format!("{}/models", server.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["object"], "list");
        assert_eq!(models["data"][0]["id"], "scripted-model");
        let reply: Value = post(&server, &chat_body(false)).await.json().await.unwrap();
        assert_eq!(reply["choices"][0]["message"]["content"], "x");
        assert_eq!(server.requests()[0].path, "/v1/models");
    }

    #[tokio::test]
    async fn a_stalled_stream_sends_its_first_chunks_then_ends_when_the_server_drops() {
        let server = ScriptedServer::start(vec![ScriptedReply::StallStream {
            content: "abcdefghijklmnop".into(),
            after_chunks: 2,
        }])
        .await;
        let mut response = post(&server, &chat_body(true)).await;
        let first = response.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).starts_with("data: "));
        let stalled = tokio::time::timeout(Duration::from_millis(300), async {
            while response.chunk().await.unwrap().is_some() {}
        })
        .await;
        assert!(stalled.is_err(), "the stream must stall after its chunks");
        drop(server);
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = response.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "dropping the server ends the stalled stream");
    }

    #[tokio::test]
    async fn a_hang_never_answers_until_the_server_drops() {
        let server = ScriptedServer::start(vec![ScriptedReply::Hang]).await;
        let client = reqwest::Client::new();
        let request = client
            .post(format!("{}/chat/completions", server.base_url()))
            .json(&chat_body(false))
            .send();
        let waited = tokio::time::timeout(Duration::from_millis(300), request).await;
        assert!(waited.is_err(), "a hang must not answer");
        assert_eq!(server.requests().len(), 1, "the hung request is recorded");
    }

    #[tokio::test]
    async fn delayed_reply_arrives_after_the_delay() {
        let server = ScriptedServer::start(vec![ScriptedReply::Delayed(
            Duration::from_millis(200),
            Box::new(ScriptedReply::Content("late".into())),
        )])
        .await;
        let started = std::time::Instant::now();
        let reply: Value = post(&server, &chat_body(false)).await.json().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(reply["choices"][0]["message"]["content"], "late");
    }
}
