//! Exponential backoff with real jitter.
//!
//! The daemon backs off after failed reconciles and while changes are stuck
//! (applied, and back again). Jitter spreads the retries of many daemons that
//! failed together (ovsdb-server restarted under a fleet): it comes from the
//! kernel's random source, fresh for every delay — not from the clock or the
//! PID, which would give every retry of one daemon the same factor.

use std::time::Duration;

/// Delay of the first retry; doubles with each failure up to the cap.
const BASE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct Backoff {
    failures: u32,
    max: Duration,
}

impl Backoff {
    pub const fn new(max: Duration) -> Self {
        Self { failures: 0, max }
    }

    /// The delay before the next attempt: 50–100 % of `BASE · 2^failures`, capped.
    pub fn delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let nominal = BASE
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)))
            .min(self.max);
        nominal.mul_f64(0.5 + random_unit() / 2.0)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `period` ± 20 %, fresh for every call: many daemons polling one remote do
/// not stay in step.
pub fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.8 + random_unit() * 0.4)
}

/// A uniform number in [0, 1) from the kernel's random source.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let bits = if filled == bytes.len() as isize {
        u64::from_ne_bytes(bytes)
    } else {
        // No getrandom (very old kernel): std's per-call random hasher keys.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(u64::from(std::process::id()));
        hasher.finish()
    };
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_within_the_jitter_band() {
        let mut backoff = Backoff::new(Duration::from_secs(30));
        let mut nominal = Duration::from_millis(400);
        for _ in 0..12 {
            let delay = backoff.delay();
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay:?} vs {nominal:?}"
            );
            nominal = (nominal * 2).min(Duration::from_secs(30));
        }
        backoff.reset();
        assert!(backoff.delay() <= Duration::from_millis(400));
    }

    #[test]
    fn jitter_differs_between_retries_of_one_process() {
        // The old jitter came from the clock's sub-second part of an elapsed time of
        // ~0 and the PID: the same factor on every retry of a daemon.
        let factors: std::collections::BTreeSet<u128> = (0..50)
            .map(|_| {
                let mut backoff = Backoff::new(Duration::from_secs(30));
                backoff.delay().as_nanos()
            })
            .collect();
        assert!(factors.len() > 40, "only {} distinct delays", factors.len());
    }
}
