//! The one model interface: a call goes in, an exchange comes out. Two
//! implementations answer it, the live endpoint (`live`) and a recorded transcript
//! (`replay`); recording the transcript is a layer around either (`session`).

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::errors::ModelError;
use crate::message::{ChatMessage, Usage};
use crate::record::{RequestRecord, ResponseRecord};

/// One model call: the reply schema and the conversation so far.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    pub schema_name: &'static str,
    pub schema: &'a Value,
    pub messages: &'a [ChatMessage],
}

/// What a successful call produced.
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    pub response: ResponseRecord,
    pub usage: Usage,
}

/// A call as it went: what was sent, and what came back or why nothing did.
pub(crate) struct Exchange {
    /// The model that answered (or was asked).
    pub model: String,
    pub request: RequestRecord,
    pub outcome: Result<Answered, ModelError>,
    /// HTTP attempts made; 0 in replay.
    pub attempts: u32,
    /// Time spent waiting for the endpoint's gate (requests in flight, rate-limit
    /// pause) before the attempts were sent; zero in replay.
    pub waited: Duration,
}

/// An exchange with when it started and how long it took.
pub(crate) struct Timed {
    pub exchange: Exchange,
    /// RFC 3339.
    pub started_at: String,
    pub latency: Duration,
}

impl Timed {
    pub async fn of(exchange: impl Future<Output = Exchange>) -> Timed {
        let started_at = now_rfc3339();
        let clock = Instant::now();
        let exchange = exchange.await;
        Timed {
            exchange,
            started_at,
            latency: clock.elapsed(),
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Answers model calls for one spec run.
pub(crate) trait ModelBackend: Send {
    fn exchange<'a>(&'a mut self, call: Call<'a>) -> BoxFuture<'a, Exchange>;

    /// The same call `count` times, for as many independent answers. One after the
    /// other unless the backend can send them side by side.
    fn exchanges<'a>(&'a mut self, call: Call<'a>, count: u32) -> BoxFuture<'a, Vec<Timed>> {
        async move {
            let mut timed = Vec::new();
            for _ in 0..count {
                timed.push(Timed::of(self.exchange(call)).await);
            }
            timed
        }
        .boxed()
    }

    /// The structured-output mode that worked (`json_schema`, `json_object_schema`,
    /// `json_object`, `none`), once one has; `None` in replay.
    fn structured_output(&self) -> Option<&'static str> {
        None
    }
}
