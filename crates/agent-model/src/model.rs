//! The model as the CLI holds it: a live endpoint or a recorded transcript, shared by
//! every spec of an invocation, which opens one recording session per spec run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_spec::{BundleLimits, ModelSettings};

use crate::errors::ModelError;
use crate::live::{Backoff, LiveBackend, LiveClient};
use crate::record::Entry;
use crate::replay::ReplayBackend;
use crate::session::ModelSession;
use crate::transcript::{self, TranscriptWriter};

/// The model: a live endpoint, or a recorded transcript answering in its place.
/// Cheap to clone; shared by every spec of an invocation.
#[derive(Clone)]
pub struct Model {
    source: Arc<Source>,
    bundle_limits: BundleLimits,
}

enum Source {
    Live(Arc<LiveClient>),
    Replay { path: PathBuf, entries: Vec<Entry> },
}

impl std::fmt::Debug for Model {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.source {
            Source::Live(client) => formatter
                .debug_struct("Model")
                .field("base_url", &client.base_url)
                .field("name", &client.settings.name)
                .finish_non_exhaustive(),
            Source::Replay { path, entries } => formatter
                .debug_struct("Model")
                .field("replay", path)
                .field("calls", &entries.len())
                .finish(),
        }
    }
}

impl Model {
    /// A live client. `api_key` comes from the environment variable the settings name
    /// (the caller reads it); `None` sends no Authorization header (local servers).
    pub fn live(
        settings: &ModelSettings,
        api_key: Option<secrecy::SecretString>,
    ) -> Result<Model, ModelError> {
        let client = LiveClient::new(settings, api_key)?;
        Ok(Model {
            source: Arc::new(Source::Live(Arc::new(client))),
            bundle_limits: BundleLimits::default(),
        })
    }

    /// Answers from a transcript recorded by an earlier run.
    pub fn replay(transcript: &Path) -> Result<Model, ModelError> {
        let entries = transcript::read(transcript)?;
        Ok(Model {
            source: Arc::new(Source::Replay {
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
        let mut model = self.with_live(|client| client.bundle_limits = limits.clone());
        model.bundle_limits = limits.clone();
        model
    }

    /// The same client with another backoff between retries: `base * 2^retry`, at most
    /// `cap`, with jitter (defaults 0.5 s and 8 s). For tests that must not sleep long;
    /// `Retry-After` still applies, capped by `max_retry_after_secs`. No effect on replay.
    pub fn with_retry_backoff(self, base: Duration, cap: Duration) -> Model {
        self.with_live(|client| client.backoff = Backoff { base, cap })
    }

    /// A copy whose live client (if any) is changed by `change`.
    fn with_live(self, change: impl FnOnce(&mut LiveClient)) -> Model {
        match &*self.source {
            Source::Live(client) => {
                let mut client = LiveClient::clone(client);
                change(&mut client);
                Model {
                    source: Arc::new(Source::Live(Arc::new(client))),
                    bundle_limits: self.bundle_limits,
                }
            }
            Source::Replay { .. } => self,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(*self.source, Source::Replay { .. })
    }

    /// Does the endpoint answer? (`GET <base>/models`; for `agent doctor`.)
    pub async fn probe(&self) -> Result<(), ModelError> {
        match &*self.source {
            Source::Live(client) => client.probe().await,
            Source::Replay { .. } => Ok(()),
        }
    }

    /// Which structured output does the endpoint take? Tries the modes as a run would,
    /// with a request that asks for a few tokens only, and keeps the one that worked
    /// (for `agent doctor`). `None` in replay.
    pub async fn probe_structured_output(&self) -> Result<Option<&'static str>, ModelError> {
        match &*self.source {
            Source::Live(client) => client.probe_structured_output().await.map(Some),
            Source::Replay { .. } => Ok(None),
        }
    }

    /// Starts a session for one spec run; creates (truncates) `transcript`.
    pub fn session(&self, spec: &str, transcript: &Path) -> Result<ModelSession, ModelError> {
        let backend: Box<dyn crate::backend::ModelBackend> = match &*self.source {
            Source::Live(client) => Box::new(LiveBackend(Arc::clone(client))),
            Source::Replay { path, entries } => Box::new(ReplayBackend {
                path: path.clone(),
                spec: spec.to_owned(),
                calls: transcript::calls_for(entries, spec).into(),
            }),
        };
        Ok(ModelSession {
            spec: spec.to_owned(),
            bundle_limits: self.bundle_limits.clone(),
            backend,
            transcript: TranscriptWriter::create(transcript)?,
        })
    }
}
