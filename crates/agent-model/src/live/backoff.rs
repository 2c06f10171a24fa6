//! The wait between attempts after a failure without a `Retry-After`: exponential in
//! the failures in a row, capped, with jitter. The retry loop and the endpoint's
//! rate-limit pause both ask it, so they grow alike.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff between attempts: `base * 2^failures`, at most `cap`, with jitter.
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

impl Backoff {
    /// The wait after `failures` failures in a row before this one (0 for the first):
    /// between half and all of `base * 2^failures`, at most `cap`.
    pub fn delay(self, failures: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(failures.min(16)))
            .min(self.cap);
        // Jitter spreads the retries of concurrent specs that failed at the same moment.
        exponential.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };

    #[test]
    fn the_delay_doubles_with_each_failure_within_its_jitter() {
        for failures in 0..4 {
            let full = Duration::from_millis(100 * 2u64.pow(failures));
            for _ in 0..50 {
                let delay = BACKOFF.delay(failures);
                assert!(delay <= full, "{failures}: {delay:?}");
                assert!(delay >= full / 2, "{failures}: {delay:?}");
            }
        }
    }

    #[test]
    fn the_delay_never_passes_the_cap_however_many_failures() {
        for failures in [4, 10, 16, 40, u32::MAX] {
            let delay = BACKOFF.delay(failures);
            assert!(delay <= BACKOFF.cap, "{failures}: {delay:?}");
            assert!(delay >= BACKOFF.cap / 2, "{failures}: {delay:?}");
        }
    }
}
