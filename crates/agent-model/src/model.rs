//! The client, its per-spec sessions and the reply types.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_spec::{BundleLimits, ModelSettings};

use crate::errors::ModelError;
use crate::live::LiveClient;
use crate::reply::answer;
use crate::schema::{CodeBundle, ReplySchema, Verdict};
use crate::transcript::{self, Entry, RequestRecord, TranscriptWriter};

/// A chat message as sent to the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// Why a call is made; recorded in the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Generate,
    Repair,
    /// A second chance after a reply that did not parse.
    Reformat,
    Judge,
}

/// Token counts as the server reported them (zero when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One model call's result.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub answer: Answer<T>,
    pub usage: Usage,
    pub latency: Duration,
    /// The reply text as received (for feedback when it does not parse).
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Parsed(T),
    /// The model declined (`refusal` set, or `finish_reason` `content_filter`).
    Refused(String),
    /// The reply was cut (`finish_reason` `length`), empty, not JSON, or JSON that
    /// breaks the schema: the text says which, in words fit to send back.
    Invalid(String),
}

/// The model: a live endpoint, or a recorded transcript answering in its place.
/// Cheap to clone; shared by every spec of an invocation.
#[derive(Clone)]
pub struct Model {
    backend: Arc<Backend>,
    bundle_limits: BundleLimits,
}

enum Backend {
    Live(Arc<LiveClient>),
    Replay { path: PathBuf, entries: Vec<Entry> },
}

/// One spec run's view of the model: it writes that run's transcript, and in replay
/// it answers from the calls recorded for that spec, in order.
pub struct ModelSession {
    spec: String,
    bundle_limits: BundleLimits,
    source: SessionSource,
    transcript: TranscriptWriter,
}

enum SessionSource {
    Live(Arc<LiveClient>),
    Replay {
        path: PathBuf,
        calls: VecDeque<Entry>,
    },
}

impl std::fmt::Debug for Model {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.backend {
            Backend::Live(client) => formatter
                .debug_struct("Model")
                .field("base_url", &client.base_url)
                .field("name", &client.settings.name)
                .finish_non_exhaustive(),
            Backend::Replay { path, entries } => formatter
                .debug_struct("Model")
                .field("replay", path)
                .field("calls", &entries.len())
                .finish(),
        }
    }
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ModelSession")
            .field("spec", &self.spec)
            .field(
                "replay",
                &matches!(self.source, SessionSource::Replay { .. }),
            )
            .finish_non_exhaustive()
    }
}

impl Model {
    /// A live client. `api_key` comes from the environment variable the settings name
    /// (the caller reads it); `None` sends no Authorization header (local servers).
    pub fn live(
        settings: &ModelSettings,
        api_key: Option<secrecy::SecretString>,
    ) -> Result<Model, ModelError> {
        Ok(Model {
            backend: Arc::new(Backend::Live(Arc::new(LiveClient::new(settings, api_key)?))),
            bundle_limits: BundleLimits::default(),
        })
    }

    /// Answers from a transcript recorded by an earlier run.
    pub fn replay(transcript: &Path) -> Result<Model, ModelError> {
        let entries = transcript::read(transcript)?;
        Ok(Model {
            backend: Arc::new(Backend::Replay {
                path: transcript.to_owned(),
                entries,
            }),
            bundle_limits: BundleLimits::default(),
        })
    }

    /// The same model with the `[bundle]` limits of the settings (default: the
    /// built-in ones): an answer may weigh twice a whole bundle (at least 8 MiB), and
    /// one cut off there is fed back naming these limits.
    pub fn with_bundle_limits(self, limits: &BundleLimits) -> Model {
        let backend = match &*self.backend {
            Backend::Live(client) => {
                let mut client = LiveClient::clone(client);
                client.bundle_limits = limits.clone();
                Arc::new(Backend::Live(Arc::new(client)))
            }
            Backend::Replay { .. } => self.backend,
        };
        Model {
            backend,
            bundle_limits: limits.clone(),
        }
    }

    /// The same client with another backoff between retries: `base * 2^retry`, at most
    /// `cap`, with jitter (defaults 0.5 s and 8 s). For tests that must not sleep long;
    /// `Retry-After` still applies, capped by `max_retry_after_secs`. No effect on replay.
    pub fn with_retry_backoff(self, base: Duration, cap: Duration) -> Model {
        match &*self.backend {
            Backend::Live(client) => {
                let mut client = LiveClient::clone(client);
                client.backoff = crate::live::Backoff { base, cap };
                Model {
                    backend: Arc::new(Backend::Live(Arc::new(client))),
                    bundle_limits: self.bundle_limits,
                }
            }
            Backend::Replay { .. } => self,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(*self.backend, Backend::Replay { .. })
    }

    /// Does the endpoint answer? (`GET <base>/models`; for `agent doctor`.)
    pub async fn probe(&self) -> Result<(), ModelError> {
        match &*self.backend {
            Backend::Live(client) => client.probe().await,
            Backend::Replay { .. } => Ok(()),
        }
    }

    /// Starts a session for one spec run; creates (truncates) `transcript`.
    pub fn session(&self, spec: &str, transcript: &Path) -> Result<ModelSession, ModelError> {
        let source = match &*self.backend {
            Backend::Live(client) => SessionSource::Live(Arc::clone(client)),
            Backend::Replay { path, entries } => SessionSource::Replay {
                path: path.clone(),
                calls: transcript::calls_for(entries, spec).into(),
            },
        };
        Ok(ModelSession {
            spec: spec.to_owned(),
            bundle_limits: self.bundle_limits.clone(),
            source,
            transcript: TranscriptWriter::create(transcript)?,
        })
    }
}

impl ModelSession {
    pub async fn code_bundle(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<CodeBundle>, ModelError> {
        self.call(purpose, iteration, messages).await
    }

    pub async fn verdict(
        &mut self,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<Verdict>, ModelError> {
        self.call(Purpose::Judge, iteration, messages).await
    }

    async fn call<T: ReplySchema>(
        &mut self,
        purpose: Purpose,
        iteration: u32,
        messages: &[ChatMessage],
    ) -> Result<Reply<T>, ModelError> {
        let started_at = now_rfc3339();
        let clock = Instant::now();
        let (entry, outcome) = match &mut self.source {
            SessionSource::Live(client) => {
                let request = client.prepare::<T>(messages);
                let (outcome, attempts) = client.call(&request).await;
                let entry = Entry {
                    spec: self.spec.clone(),
                    iteration,
                    purpose,
                    schema: T::NAME.to_owned(),
                    model: client.settings.name.clone(),
                    request: RequestRecord {
                        messages: request.messages,
                        temperature: client.settings.temperature,
                        response_format: request.response_format.to_owned(),
                        stream: request.stream,
                    },
                    response: outcome.as_ref().ok().map(|reply| reply.response.clone()),
                    usage: outcome
                        .as_ref()
                        .map(|reply| reply.usage)
                        .unwrap_or_default(),
                    latency_ms: millis(clock.elapsed()),
                    attempts,
                    error: outcome.as_ref().err().map(describe),
                    started_at,
                };
                let outcome = outcome.map(|reply| (reply.response, reply.usage));
                (entry, outcome)
            }
            SessionSource::Replay { path, calls } => {
                let recorded = if calls.front().is_some_and(|next| next.schema == T::NAME) {
                    calls.pop_front()
                } else {
                    None
                };
                let outcome = match &recorded {
                    Some(Entry {
                        response: Some(response),
                        usage,
                        ..
                    }) => Ok((response.clone(), *usage)),
                    _ => Err(ModelError::ReplayExhausted {
                        path: path.clone(),
                        spec: self.spec.clone(),
                        schema: T::NAME.to_owned(),
                    }),
                };
                let entry = Entry {
                    spec: self.spec.clone(),
                    iteration,
                    purpose,
                    schema: T::NAME.to_owned(),
                    model: recorded
                        .as_ref()
                        .map(|recorded| recorded.model.clone())
                        .unwrap_or_default(),
                    request: RequestRecord {
                        messages: messages.to_vec(),
                        ..recorded
                            .as_ref()
                            .map(|recorded| recorded.request.clone())
                            .unwrap_or_default()
                    },
                    response: outcome.as_ref().ok().map(|(response, _)| response.clone()),
                    usage: outcome
                        .as_ref()
                        .map(|(_, usage)| *usage)
                        .unwrap_or_default(),
                    latency_ms: millis(clock.elapsed()),
                    attempts: 0,
                    error: outcome.as_ref().err().map(describe),
                    started_at,
                };
                (entry, outcome)
            }
        };
        let written = self.transcript.append(&entry);
        let (response, usage) = outcome?;
        written?;
        Ok(Reply {
            answer: answer::<T>(&response, &self.bundle_limits),
            usage,
            latency: clock.elapsed(),
            content: response
                .content
                .clone()
                .filter(|content| !content.is_empty())
                .or_else(|| response.refusal.clone())
                .unwrap_or_default(),
        })
    }
}

/// The error and its causes on one line, as the transcript records it.
fn describe(error: &ModelError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
