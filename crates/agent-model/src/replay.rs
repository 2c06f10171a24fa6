//! Replay: a recorded transcript answering in the endpoint's place, call by call, for
//! one spec; a call of another schema than the one recorded next is refused.

use std::collections::VecDeque;
use std::path::PathBuf;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::backend::{Answered, Call, Exchange, ModelBackend};
use crate::errors::ModelError;
use crate::record::{Entry, RequestRecord};

/// The calls recorded for one spec, answered in order.
pub(crate) struct ReplayBackend {
    pub path: PathBuf,
    pub spec: String,
    pub calls: VecDeque<Entry>,
}

impl ReplayBackend {
    fn answer(&mut self, call: &Call<'_>) -> Exchange {
        let recorded = if self
            .calls
            .front()
            .is_some_and(|next| next.schema == call.schema_name)
        {
            self.calls.pop_front()
        } else {
            None
        };
        let outcome = match &recorded {
            Some(Entry {
                response: Some(response),
                usage,
                ..
            }) => Ok(Answered {
                response: response.clone(),
                usage: *usage,
            }),
            _ => Err(ModelError::ReplayExhausted {
                path: self.path.clone(),
                spec: self.spec.clone(),
                schema: call.schema_name.to_owned(),
            }),
        };
        let (model, request) = recorded
            .map(|recorded| (recorded.model, recorded.request))
            .unwrap_or_default();
        Exchange {
            model,
            // The messages are this run's own; the rest as recorded.
            request: RequestRecord {
                messages: call.messages.to_vec(),
                ..request
            },
            outcome,
            attempts: 0,
            waited: std::time::Duration::ZERO,
        }
    }
}

impl ModelBackend for ReplayBackend {
    fn exchange<'a>(&'a mut self, call: Call<'a>) -> BoxFuture<'a, Exchange> {
        let exchange = self.answer(&call);
        async move { exchange }.boxed()
    }
}
