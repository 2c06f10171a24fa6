//! One attempt over HTTP through async-openai: the endpoint's base URL and
//! credentials, a transport that keeps a failing status and its body, a success body
//! cut off at the answer cap, and the `Retry-After` headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::Client;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::answer::answer_cap;
use crate::backend::Answered;
use crate::live::attempt::{AttemptError, HttpFailure};
use crate::live::client::LiveClient;
use crate::live::parse::{MAX_ERROR_MESSAGE_CHARS, StreamAssembly, read_completion, truncate};
use crate::live::request::PreparedRequest;
use crate::message::Usage;
use crate::record::ResponseRecord;

/// How much of an error body is kept for the message.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

impl LiveClient {
    /// One attempt. An answer that grows past the cap is not an error of the endpoint
    /// but the model's: it comes back as a reply marked truncated, read no further.
    pub(crate) async fn attempt(
        &self,
        request: &PreparedRequest,
    ) -> Result<Answered, AttemptError> {
        let meter = Arc::new(BodyMeter::new(answer_cap(&self.bundle_limits)));
        let outcome = self.send(request, &meter).await;
        if meter.tripped() {
            return Ok(meter.truncated_reply());
        }
        outcome
    }

    async fn send(
        &self,
        request: &PreparedRequest,
        meter: &Arc<BodyMeter>,
    ) -> Result<Answered, AttemptError> {
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
}

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
    fn truncated_reply(&self) -> Answered {
        let announced = self.announced.load(Ordering::SeqCst);
        Answered {
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
pub(crate) async fn read_prefix(response: reqwest::Response, limit: usize) -> String {
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
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

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
}
