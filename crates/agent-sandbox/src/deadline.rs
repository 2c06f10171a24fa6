//! Our own bounds on engine calls, so that a stalled engine ends a call at a deadline
//! we chose instead of at bollard's client timeout (120 s per request).

use std::future::Future;
use std::time::Duration;

/// The most one engine request (create, attach, start, kill, inspect, remove, list,
/// tag) may take. Generous for a loaded engine on a slow storage driver, and well
/// below bollard's own 120 s.
pub(crate) const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// After a run's timeout: how long the rest of its output may take to drain once the
/// container is killed, before the connection is dropped instead.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `call` bounded by [`ENGINE_CALL_TIMEOUT`]; past it, bollard's timeout error.
pub(crate) async fn bounded<T>(
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    match tokio::time::timeout(ENGINE_CALL_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_elapsed) => {
            tracing::warn!(
                seconds = ENGINE_CALL_TIMEOUT.as_secs(),
                "an engine call did not answer in time"
            );
            Err(bollard::errors::Error::RequestTimeoutError)
        }
    }
}
