//! The live endpoint: request bodies per structured-output mode, one attempt through
//! async-openai (plain or streamed, read leniently), the retry loop with capped
//! backoff around whole attempts, and the `GET /models` probe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use agent_spec::{BundleLimits, ModelSettings, StructuredOutput};
use async_openai::Client;
use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures_util::StreamExt;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::errors::ModelError;
use crate::model::{ChatMessage, Role, Usage};
use crate::schema::ReplySchema;
use crate::transcript::ResponseRecord;

/// The least a successful answer may weigh before it is cut off; a bundle of source
/// files is far smaller. See [`answer_cap`].
const MIN_ANSWER_CAP_BYTES: u64 = 8 * 1024 * 1024;
/// How much of an error body is kept for the message.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
/// How much of an error body's text goes into [`ModelError::Status`].
const MAX_ERROR_MESSAGE_CHARS: usize = 400;
/// Connecting never takes longer than this, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Statuses worth another attempt: rate limits, timeouts, and overloaded servers.
const RETRIED_STATUSES: [u16; 7] = [408, 409, 429, 500, 502, 503, 504];

/// Exponential backoff between attempts: `base * 2^retry`, at most `cap`, with jitter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
        }
    }
}

/// The client of one endpoint; shared by every session of an invocation.
#[derive(Clone)]
pub(crate) struct LiveClient {
    pub settings: ModelSettings,
    /// `settings.base_url` without a trailing `/`.
    pub base_url: String,
    config: EndpointConfig,
    http: reqwest::Client,
    pub backoff: Backoff,
    /// What a bundle may weigh: sets the response cap and is named when a reply
    /// grows past it.
    pub bundle_limits: BundleLimits,
}

/// A request ready to send, and what the transcript records of it.
pub(crate) struct PreparedRequest {
    pub body: Value,
    /// The messages as sent, the schema instructions included.
    pub messages: Vec<ChatMessage>,
    pub response_format: &'static str,
    pub stream: bool,
}

/// What a successful call produced.
pub(crate) struct RawReply {
    pub response: ResponseRecord,
    pub usage: Usage,
}

impl LiveClient {
    pub fn new(
        settings: &ModelSettings,
        api_key: Option<SecretString>,
    ) -> Result<LiveClient, ModelError> {
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ModelError::Settings(format!(
                    "`base_url` must be an http or https URL, got `{base_url}`"
                )));
            }
        }
        if settings.request_timeout_secs == 0 {
            return Err(ModelError::Settings(
                "`request_timeout_secs` must be at least 1".to_owned(),
            ));
        }
        let api_key = api_key.filter(|key| !key.expose_secret().is_empty());
        let authorization = match &api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                    ModelError::Settings(
                        "the API key holds characters an HTTP header cannot carry".to_owned(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let request_timeout = Duration::from_secs(settings.request_timeout_secs);
        let http = reqwest::Client::builder()
            .connect_timeout(request_timeout.min(MAX_CONNECT_TIMEOUT))
            .user_agent(concat!("agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ModelError::Settings(format!("cannot set up the HTTP client: {error}"))
            })?;
        Ok(LiveClient {
            settings: settings.clone(),
            config: EndpointConfig {
                base_url: base_url.clone(),
                authorization,
                api_key: api_key.unwrap_or_else(|| SecretString::from(String::new())),
            },
            base_url,
            http,
            backoff: Backoff::default(),
            bundle_limits: BundleLimits::default(),
        })
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.request_timeout_secs)
    }

    /// The request body for this schema in the configured structured-output mode.
    pub fn prepare<T: ReplySchema>(&self, messages: &[ChatMessage]) -> PreparedRequest {
        let settings = &self.settings;
        let mut sent = messages.to_vec();
        let response_format = match settings.structured_output {
            StructuredOutput::JsonSchema => json!({
                "type": "json_schema",
                "json_schema": {"name": T::NAME, "schema": T::json_schema(), "strict": true},
            }),
            StructuredOutput::JsonObject => json!({"type": "json_object"}),
            StructuredOutput::None => Value::Null,
        };
        if settings.structured_output != StructuredOutput::JsonSchema {
            // Without a schema-enforcing server the schema has to be in the prompt; it goes
            // after the leading system messages so chat templates still see those first.
            let position = sent
                .iter()
                .take_while(|message| message.role == Role::System)
                .count();
            sent.insert(
                position,
                ChatMessage {
                    role: Role::System,
                    content: schema_instructions::<T>(),
                },
            );
        }
        let mut body = json!({
            "model": settings.name,
            "messages": sent,
            "temperature": settings.temperature,
        });
        if let Some(max_tokens) = settings.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if !response_format.is_null() {
            body["response_format"] = response_format;
        }
        if settings.stream {
            // With `byot` the client does not set these itself.
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        PreparedRequest {
            body,
            messages: sent,
            response_format: match settings.structured_output {
                StructuredOutput::JsonSchema => "json_schema",
                StructuredOutput::JsonObject => "json_object",
                StructuredOutput::None => "none",
            },
            stream: settings.stream,
        }
    }

    /// Sends the request, retrying what is worth retrying. Returns the outcome and the
    /// number of attempts made.
    pub async fn call(&self, request: &PreparedRequest) -> (Result<RawReply, ModelError>, u32) {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // The timeout covers the whole attempt, streamed body included: a stream
            // that stalls is as dead as a server that never answers.
            let failure =
                match tokio::time::timeout(self.request_timeout(), self.attempt(request)).await {
                    Ok(Ok(reply)) => return (Ok(reply), attempts),
                    Ok(Err(failure)) => failure,
                    Err(_) => AttemptError::Timeout,
                };
            let retryable = failure.is_retryable();
            let retry_after = failure.retry_after();
            let error = self.model_error(failure);
            if !retryable || attempts > self.settings.max_retries {
                return (Err(error), attempts);
            }
            let delay = self.delay(attempts - 1, retry_after);
            tracing::warn!(
                attempt = attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "model call failed, retrying: {error}"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// The wait before retry number `retry` (0-based): the server's `Retry-After` up
    /// to `max_retry_after_secs`, else exponential backoff with jitter.
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wanted) = retry_after {
            return wanted.min(Duration::from_secs(self.settings.max_retry_after_secs));
        }
        let exponential = self
            .backoff
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.backoff.cap);
        // Jitter spreads the retries of concurrent specs hitting the same rate limit.
        exponential.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// One attempt. An answer that grows past the cap is not an error of the endpoint
    /// but the model's: it comes back as a reply marked truncated, read no further.
    async fn attempt(&self, request: &PreparedRequest) -> Result<RawReply, AttemptError> {
        let meter = Arc::new(BodyMeter::new(answer_cap(&self.bundle_limits)));
        let outcome = self.exchange(request, &meter).await;
        if meter.tripped() {
            return Ok(meter.truncated_reply());
        }
        outcome
    }

    async fn exchange(
        &self,
        request: &PreparedRequest,
        meter: &Arc<BodyMeter>,
    ) -> Result<RawReply, AttemptError> {
        let client = Client::build(self.http.clone(), self.config.clone()).with_http_service(
            AttemptService {
                http: self.http.clone(),
                meter: Arc::clone(meter),
                stream: request.stream,
            },
        );
        let chat = client.chat();
        if request.stream {
            let mut chunks = match chat.create_stream_byot::<_, Value>(&request.body).await {
                Ok(chunks) => chunks,
                Err(OpenAIError::Boxed(boxed)) if boxed.is::<UnstreamedAnswer>() => {
                    let body = boxed
                        .downcast::<UnstreamedAnswer>()
                        .map(|answer| answer.0)
                        .unwrap_or_default();
                    return match serde_json::from_slice::<Value>(&body) {
                        Ok(completion) => read_completion(&completion),
                        Err(error) => Err(AttemptError::Malformed(format!(
                            "the answer is not JSON ({error}): {}",
                            truncate(&String::from_utf8_lossy(&body), MAX_ERROR_MESSAGE_CHARS)
                        ))),
                    };
                }
                Err(error) => return Err(classify(error)),
            };
            let mut assembly = StreamAssembly::default();
            while let Some(chunk) = chunks.next().await {
                if meter.tripped() {
                    break;
                }
                assembly.add(&chunk.map_err(classify)?)?;
            }
            Ok(assembly.finish())
        } else {
            let completion: Value = chat
                .create_byot::<_, Value>(&request.body)
                .await
                .map_err(classify)?;
            read_completion(&completion)
        }
    }

    fn model_error(&self, failure: AttemptError) -> ModelError {
        let base_url = self.base_url.clone();
        match failure {
            AttemptError::Http(HttpFailure { status, .. }) if matches!(status, 401 | 403) => {
                ModelError::Auth { base_url, status }
            }
            AttemptError::Http(HttpFailure { status, body, .. }) => ModelError::Status {
                base_url,
                status,
                body: self.redact(summarize_error_body(&body)),
            },
            AttemptError::Connection(source) => ModelError::Unreachable { base_url, source },
            AttemptError::Timeout => ModelError::Timeout {
                base_url,
                secs: self.settings.request_timeout_secs,
            },
            AttemptError::Malformed(message) => ModelError::Status {
                base_url,
                status: 200,
                body: self.redact(truncate(&message, MAX_ERROR_MESSAGE_CHARS)),
            },
            AttemptError::Settings(message) => ModelError::Settings(message),
        }
    }

    /// Servers sometimes echo the credentials they refused; they never reach a message.
    fn redact(&self, text: String) -> String {
        let key = self.config.api_key.expose_secret();
        if key.is_empty() {
            text
        } else {
            text.replace(key, "[redacted]")
        }
    }

    /// `GET <base>/models`: any 2xx means the endpoint answers.
    pub async fn probe(&self) -> Result<(), ModelError> {
        let base_url = self.base_url.clone();
        let request = self
            .http
            .get(format!("{}/models", self.base_url))
            .headers(self.config.headers());
        let outcome = tokio::time::timeout(self.request_timeout(), async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = if response.status().is_success() {
                String::new()
            } else {
                read_prefix(response, MAX_ERROR_BODY_BYTES).await
            };
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        match outcome {
            Err(_) => Err(ModelError::Timeout {
                base_url,
                secs: self.settings.request_timeout_secs,
            }),
            Ok(Err(error)) => Err(ModelError::Unreachable {
                base_url,
                source: Box::new(error),
            }),
            Ok(Ok((status, _))) if (200..300).contains(&status) => Ok(()),
            Ok(Ok((status, _))) if matches!(status, 401 | 403) => {
                Err(ModelError::Auth { base_url, status })
            }
            Ok(Ok((status, body))) => Err(ModelError::Status {
                base_url,
                status,
                body: self.redact(summarize_error_body(&body)),
            }),
        }
    }
}

/// Base URL and credentials, set explicitly: async-openai's own config would read
/// `OPENAI_*` variables, and always sends an Authorization header.
#[derive(Clone)]
struct EndpointConfig {
    base_url: String,
    /// `Bearer <key>`, marked sensitive; `None` sends no Authorization header.
    authorization: Option<HeaderValue>,
    /// Empty when there is no key.
    api_key: SecretString,
}

impl Config for EndpointConfig {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base_url
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// A non-success HTTP answer, caught before async-openai reads the body: its typed
/// error body loses the status on servers whose `code` is an integer.
#[derive(Debug)]
struct HttpFailure {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "HTTP {}", self.status)
    }
}

impl std::error::Error for HttpFailure {}

/// A plain JSON answer to a request that asked to stream (servers that ignore
/// `stream`): handed back whole, so it is read as a plain completion.
#[derive(Debug)]
struct UnstreamedAnswer(Vec<u8>);

impl std::fmt::Display for UnstreamedAnswer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a plain answer to a streamed request")
    }
}

impl std::error::Error for UnstreamedAnswer {}

/// Why one attempt failed.
#[derive(Debug)]
enum AttemptError {
    Http(HttpFailure),
    Connection(Box<dyn std::error::Error + Send + Sync>),
    Timeout,
    /// A success status whose body is not a chat completion.
    Malformed(String),
    Settings(String),
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Http(failure) => RETRIED_STATUSES.contains(&failure.status),
            AttemptError::Connection(_) | AttemptError::Timeout => true,
            AttemptError::Malformed(_) | AttemptError::Settings(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Http(failure) => failure.retry_after,
            _ => None,
        }
    }
}

fn classify(error: OpenAIError) -> AttemptError {
    match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
            Ok(failure) => AttemptError::Http(*failure),
            Err(other) => AttemptError::Connection(other),
        },
        OpenAIError::Reqwest(error) if error.is_builder() => {
            AttemptError::Settings(format!("cannot build the request: {error}"))
        }
        OpenAIError::Reqwest(error) => AttemptError::Connection(Box::new(error)),
        OpenAIError::StreamError(error) => AttemptError::Connection(error),
        OpenAIError::ApiError(response) => AttemptError::Http(HttpFailure {
            status: response.status_code.as_u16(),
            retry_after: None,
            body: response.api_error.message,
        }),
        OpenAIError::JSONDeserialize(error, content) => AttemptError::Malformed(format!(
            "the answer is not JSON ({error}): {}",
            truncate(&content, MAX_ERROR_MESSAGE_CHARS)
        )),
        other => AttemptError::Malformed(other.to_string()),
    }
}

/// The transport async-openai sends through: plain reqwest, except that a non-success
/// status becomes an [`HttpFailure`] (status, `Retry-After`, start of the body) and a
/// success body is cut off at the answer cap.
#[derive(Clone)]
struct AttemptService {
    http: reqwest::Client,
    meter: Arc<BodyMeter>,
    /// The request asked to stream: a JSON answer is then handed back whole as an
    /// [`UnstreamedAnswer`] instead of going to the SSE parser.
    stream: bool,
}

impl tower::Service<HttpRequestFactory> for AttemptService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        let meter = Arc::clone(&self.meter);
        let stream = self.stream;
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await?;
            if !response.status().is_success() {
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let body = read_prefix(response, MAX_ERROR_BODY_BYTES).await;
                return Err(OpenAIError::Boxed(Box::new(HttpFailure {
                    status,
                    retry_after,
                    body,
                })));
            }
            let is_json = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| value.starts_with("application/json"));
            if let Some(length) = response.content_length() {
                meter.announced.store(length, Ordering::SeqCst);
            }
            if stream && is_json {
                let body = limit_body(response, Arc::clone(&meter)).bytes().await?;
                return Err(OpenAIError::Boxed(Box::new(UnstreamedAnswer(
                    body.to_vec(),
                ))));
            }
            Ok(limit_body(response, meter))
        })
    }
}

/// The most an answer may weigh: twice what a whole bundle may weigh (JSON escaping
/// and the envelope around the content), and never less than 8 MiB.
pub(crate) fn answer_cap(limits: &BundleLimits) -> u64 {
    limits
        .max_total_bytes
        .saturating_mul(2)
        .max(MIN_ANSWER_CAP_BYTES)
}

/// Counts the bytes of a success body as they arrive, and trips at the cap.
struct BodyMeter {
    cap: u64,
    received: AtomicU64,
    /// `Content-Length`, 0 when the server did not announce one.
    announced: AtomicU64,
    tripped: AtomicBool,
}

impl BodyMeter {
    fn new(cap: u64) -> BodyMeter {
        BodyMeter {
            cap,
            received: AtomicU64::new(0),
            announced: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
        }
    }

    /// Adds a chunk; `false` once the body has grown past the cap.
    fn add(&self, bytes: usize) -> bool {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let received = self.received.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if received > self.cap {
            self.tripped.store(true, Ordering::SeqCst);
        }
        !self.tripped()
    }

    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// What the transcript records of an answer cut off at the cap.
    fn truncated_reply(&self) -> RawReply {
        let announced = self.announced.load(Ordering::SeqCst);
        RawReply {
            response: ResponseRecord {
                content: None,
                finish_reason: None,
                refusal: None,
                choices: 1,
                truncated: true,
                received_bytes: Some(self.received.load(Ordering::SeqCst)),
                announced_bytes: (announced > 0).then_some(announced),
            },
            usage: Usage::default(),
        }
    }
}

/// The same response, with a body that ends in an error once it grows past the cap:
/// the rest is never read, and dropping the response closes the connection.
fn limit_body(response: reqwest::Response, meter: Arc<BodyMeter>) -> reqwest::Response {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if !meter.add(chunk.len()) {
            return Err(std::io::Error::other("the answer is too large"));
        }
        Ok(chunk)
    });
    let mut limited = http::Response::new(reqwest::Body::wrap_stream(body));
    *limited.status_mut() = status;
    *limited.version_mut() = version;
    *limited.headers_mut() = headers;
    reqwest::Response::from(limited)
}

/// At most `limit` bytes of the body, as text; the rest is never read.
async fn read_prefix(response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = |text: &str, scale: f64| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value >= 0.0)
            // Bounded so the conversion cannot overflow; the cap applies later anyway.
            .map(|value| Duration::from_secs_f64((value / scale).min(1.0e6)))
    };
    if let Some(wait) = headers
        .get("retry-after-ms")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| seconds(text, 1000.0))
    {
        return Some(wait);
    }
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    seconds(text, 1.0).or_else(|| {
        let when = httpdate::parse_http_date(text.trim()).ok()?;
        Some(
            when.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    })
}

/// The message of an error body: `error.message`, `message`, `error` or `detail`,
/// else the text itself; shortened.
fn summarize_error_body(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        [
            value.pointer("/error/message"),
            value.get("message"),
            value.get("error"),
            value.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(|field| field.as_str().map(str::to_owned))
    });
    let message = message.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() {
        "(no body)".to_owned()
    } else {
        truncate(&message, MAX_ERROR_MESSAGE_CHARS)
    }
}

fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// An error object where a completion was expected: vLLM's flat
/// `{"object": "error", "code": 400}` or OpenAI's `{"error": {…}}`, in a 200 answer
/// or inside a stream.
fn embedded_error(value: &Value) -> Option<AttemptError> {
    let flat = value.get("object").and_then(Value::as_str) == Some("error");
    let nested = value.get("error").is_some_and(|error| !error.is_null());
    if !flat && !nested {
        return None;
    }
    let status = [value.get("code"), value.pointer("/error/code")]
        .into_iter()
        .flatten()
        .find_map(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(502);
    Some(AttemptError::Http(HttpFailure {
        status,
        retry_after: None,
        body: value.to_string(),
    }))
}

fn read_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    let count = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    })
}

/// Message content: a string, or the text parts of a content array.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// A plain (non-streamed) completion, read leniently.
fn read_completion(completion: &Value) -> Result<RawReply, AttemptError> {
    if let Some(error) = embedded_error(completion) {
        return Err(error);
    }
    if !completion.is_object() {
        return Err(AttemptError::Malformed(format!(
            "the answer is not a chat completion: {}",
            truncate(&completion.to_string(), MAX_ERROR_MESSAGE_CHARS)
        )));
    }
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let first = choices.first();
    let message = first.and_then(|choice| choice.get("message"));
    Ok(RawReply {
        response: ResponseRecord {
            content: text_of(message.and_then(|message| message.get("content"))),
            refusal: text_of(message.and_then(|message| message.get("refusal"))),
            finish_reason: first
                .and_then(|choice| choice.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            choices: choices.len(),
            ..ResponseRecord::default()
        },
        usage: read_usage(completion).unwrap_or_default(),
    })
}

/// Deltas of a streamed completion, put back together.
#[derive(Default)]
struct StreamAssembly {
    content: Option<String>,
    refusal: Option<String>,
    finish_reason: Option<String>,
    saw_choice: bool,
    usage: Option<Usage>,
}

impl StreamAssembly {
    fn add(&mut self, chunk: &Value) -> Result<(), AttemptError> {
        if let Some(error) = embedded_error(chunk) {
            return Err(error);
        }
        if let Some(usage) = read_usage(chunk) {
            self.usage = Some(usage);
        }
        let choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Only the first choice is asked for (`n` is never sent).
        for choice in choices
            .iter()
            .filter(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            self.saw_choice = true;
            let delta = choice.get("delta").or_else(|| choice.get("message"));
            if let Some(piece) = text_of(delta.and_then(|delta| delta.get("content"))) {
                self.content
                    .get_or_insert_with(String::new)
                    .push_str(&piece);
            }
            if let Some(piece) = text_of(delta.and_then(|delta| delta.get("refusal"))) {
                self.refusal
                    .get_or_insert_with(String::new)
                    .push_str(&piece);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    fn finish(self) -> RawReply {
        RawReply {
            response: ResponseRecord {
                content: self.content,
                refusal: self.refusal,
                finish_reason: self.finish_reason,
                choices: usize::from(self.saw_choice),
                ..ResponseRecord::default()
            },
            usage: self.usage.unwrap_or_default(),
        }
    }
}

/// The system message that carries the schema when the server cannot enforce it.
fn schema_instructions<T: ReplySchema>() -> String {
    let schema = serde_json::to_string_pretty(&T::json_schema()).unwrap_or_default();
    format!(
        "Answer with exactly one JSON object and nothing else: no prose, no Markdown \
         fences. The object must match this JSON schema, named `{}`:\n{schema}",
        T::NAME
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut dated = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        dated.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&dated).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        dated.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&dated), None);
    }

    #[test]
    fn error_bodies_are_summarized_from_their_message() {
        assert_eq!(
            summarize_error_body(r#"{"object":"error","message":"bad schema","code":400}"#),
            "bad schema"
        );
        assert_eq!(
            summarize_error_body(r#"{"error":{"message":"nope","code":"x"}}"#),
            "nope"
        );
        assert_eq!(summarize_error_body("plain text"), "plain text");
        assert_eq!(summarize_error_body(""), "(no body)");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }

    #[test]
    fn a_streamed_error_object_keeps_its_integer_code_as_status() {
        let error = embedded_error(&json!({"object": "error", "message": "m", "code": 429}));
        assert!(matches!(
            error,
            Some(AttemptError::Http(HttpFailure { status: 429, .. }))
        ));
        assert!(embedded_error(&json!({"choices": [], "error": null})).is_none());
    }
}
