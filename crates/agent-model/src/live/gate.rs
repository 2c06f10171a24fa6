//! What every request to one endpoint passes before it is sent: a limit on requests in
//! flight (`max_concurrent_requests`), and a pause that a rate-limit answer (HTTP 429)
//! imposes on every request to the endpoint, not only on the one that got it.
//!
//! One gate per endpoint client, shared by every spec's session of an invocation. The
//! pause lasts the server's `Retry-After` (capped by `max_retry_after_secs`), or grows
//! exponentially with the rate limits met in a row when the server names no wait; an
//! answered request ends the row.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::live::backoff::Backoff;

/// The requests in flight and the endpoint's rate-limit pause.
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Semaphore,
    pause: Mutex<Pause>,
}

#[derive(Debug, Default)]
struct Pause {
    /// No request is sent before this.
    until: Option<Instant>,
    /// Rate-limit answers since the last answered request.
    strikes: u32,
}

/// A place among the requests in flight, held while one attempt is under way.
pub(crate) struct Entered<'a> {
    _permit: SemaphorePermit<'a>,
    /// How long the request waited for its place and for the pause to pass.
    pub waited: Duration,
}

impl Gate {
    pub fn new(max_in_flight: u32) -> Gate {
        Gate {
            permits: Semaphore::new(usize::try_from(max_in_flight.max(1)).unwrap_or(1)),
            pause: Mutex::new(Pause::default()),
        }
    }

    /// Waits for a place among the requests in flight and for the endpoint's pause to
    /// pass. The place is held through the pause: while the endpoint is paused no
    /// request may go, so holding it costs nothing and keeps the order of arrival.
    pub async fn enter(&self) -> Entered<'_> {
        let started = Instant::now();
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the gate's semaphore is never closed");
        // A pause may be extended while this request sleeps: look again after waking.
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
        Entered {
            _permit: permit,
            waited: started.elapsed(),
        }
    }

    /// The end of the pause, if it lies ahead.
    fn paused_until(&self) -> Option<Instant> {
        let pause = self.lock();
        pause.until.filter(|until| *until > Instant::now())
    }

    /// A request met a rate limit: pauses the endpoint for `retry_after` (already
    /// capped), or for an exponential backoff over the strikes in a row. Returns the
    /// pause ahead.
    pub fn rate_limited(&self, retry_after: Option<Duration>, backoff: Backoff) -> Duration {
        let mut pause = self.lock();
        let wait = retry_after.unwrap_or_else(|| backoff.delay(pause.strikes));
        pause.strikes = pause.strikes.saturating_add(1);
        let until = Instant::now() + wait;
        pause.until = Some(pause.until.map_or(until, |current| current.max(until)));
        pause
            .until
            .map_or(Duration::ZERO, |until| until - Instant::now())
    }

    /// A request was answered: the next rate limit starts a new row.
    pub fn answered(&self) {
        self.lock().strikes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pause> {
        self.pause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn no_more_than_the_limit_enter_at_once() {
        let gate = Arc::new(Gate::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (gate, inside, most) = (gate.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _entered = gate.enter().await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rate_limit_holds_back_every_later_entry() {
        let gate = Gate::new(4);
        let backoff = Backoff::default();
        let ahead = gate.rate_limited(Some(Duration::from_millis(300)), backoff);
        assert!(ahead > Duration::from_millis(250), "{ahead:?}");
        let entered = gate.enter().await;
        assert!(
            entered.waited >= Duration::from_millis(250),
            "{:?}",
            entered.waited
        );
        // A shorter wait never cuts a longer pause short.
        gate.rate_limited(Some(Duration::from_millis(400)), backoff);
        let ahead = gate.rate_limited(Some(Duration::from_millis(10)), backoff);
        assert!(ahead > Duration::from_millis(300), "{ahead:?}");
    }

    #[test]
    fn without_retry_after_the_pause_grows_with_the_strikes_and_resets() {
        let gate = Gate::new(1);
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        };
        let first = gate.rate_limited(None, backoff);
        let second = gate.rate_limited(None, backoff);
        let third = gate.rate_limited(None, backoff);
        assert!(first <= Duration::from_millis(100), "{first:?}");
        assert!(third >= Duration::from_millis(200), "{third:?}");
        assert!(second <= third);
        gate.answered();
        assert_eq!(gate.lock().strikes, 0);
    }
}
