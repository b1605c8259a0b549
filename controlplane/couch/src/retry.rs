//! How long a writer waits before it tries CouchDB again after a failure.
//!
//! Why a module of its own: CouchDB 3 locks a user out after a few failed
//! authentications in a short window ("Account is temporarily locked"), and the lockout
//! then refuses every client using that user, even one with the right password
//! (spec/couchdb.md). A writer that retries a refused credential every few seconds (the
//! status writer did) keeps the user locked out for good. So every task that talks to
//! CouchDB — the feed, the status writer, the checkpoint's `_local` write, the
//! replication keeper — waits the same way:
//!
//! - after a **refusal** (401 bad credentials, 403 valid user not allowed, or locked
//!   out): `first`, then twice as long at each further refusal, up to `first *
//!   REFUSED_GROWTH`. No jitter below `first`: a refused credential is never retried
//!   quickly, whatever the dice say;
//! - after any **other failure** (unreachable, 5xx, timeout): capped exponential backoff
//!   with full jitter ([`Backoff`]);
//! - a success resets both.
//!
//! Pure: it says how long; the callers sleep.

use std::time::Duration;

use crate::error::CouchError;
use crate::follower::Backoff;

/// The longest wait after refusals is this many times the first one (60 s → 16 min).
pub const REFUSED_GROWTH: u32 = 16;

/// Whether CouchDB refused the credential or the access: 401 or 403, including an
/// account lockout (403 `forbidden`).
pub fn is_refusal(e: &CouchError) -> bool {
    matches!(e, CouchError::Unauthorized { .. })
}

/// The waits after refusals: `first`, `2 * first`, … up to `first * REFUSED_GROWTH`.
#[derive(Debug, Clone)]
pub struct Refusals {
    first: Duration,
    refused: u32,
}

impl Refusals {
    pub fn new(first: Duration) -> Self {
        Refusals { first, refused: 0 }
    }

    /// The wait before the next attempt after one more refusal.
    pub fn next_wait(&mut self) -> Duration {
        let factor = 1u32
            .checked_shl(self.refused.min(16))
            .unwrap_or(u32::MAX)
            .min(REFUSED_GROWTH);
        self.refused = self.refused.saturating_add(1);
        self.first.saturating_mul(factor)
    }

    /// Refusals in a row so far.
    pub fn count(&self) -> u32 {
        self.refused
    }

    pub fn reset(&mut self) {
        self.refused = 0;
    }
}

/// One writer's retry state: refusals and other failures each on their own ladder.
#[derive(Debug)]
pub struct Retry {
    refusals: Refusals,
    failures: Backoff,
}

impl Retry {
    /// `refused_first`: the first wait after a refusal (`couchdb.credentials_retry_secs`).
    /// `failure_initial`, `failure_max`: the backoff after other failures.
    pub fn new(refused_first: Duration, failure_initial: Duration, failure_max: Duration) -> Self {
        Retry {
            refusals: Refusals::new(refused_first),
            failures: Backoff::new(failure_initial, failure_max),
        }
    }

    /// How long to wait after `error` before the next attempt.
    pub fn after(&mut self, error: &CouchError) -> Duration {
        if is_refusal(error) {
            self.refusals.next_wait()
        } else {
            self.failures.next_delay()
        }
    }

    /// The last attempt worked: the next failure starts from the bottom again.
    pub fn succeeded(&mut self) {
        self.refusals.reset();
        self.failures.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorBody;

    fn refused(status: u16) -> CouchError {
        CouchError::Unauthorized {
            status,
            body: ErrorBody::default(),
        }
    }

    #[test]
    fn refusals_double_from_the_first_wait_up_to_the_cap_and_never_below_it() {
        let mut r = Refusals::new(Duration::from_secs(60));
        let waits: Vec<u64> = (0..8).map(|_| r.next_wait().as_secs()).collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 960, 960, 960, 960]);
        assert_eq!(r.count(), 8);
        r.reset();
        assert_eq!(r.next_wait(), Duration::from_secs(60));
    }

    #[test]
    fn a_refusal_and_a_failure_climb_separate_ladders_and_success_resets_both() {
        let first = Duration::from_secs(30);
        let mut retry = Retry::new(first, Duration::from_millis(10), Duration::from_millis(40));
        assert_eq!(retry.after(&refused(401)), first);
        assert_eq!(retry.after(&refused(403)), first * 2);
        // A transport failure in between neither shortens the next refusal wait nor is
        // itself held back by the refusals.
        let e = CouchError::Transport("reset".into());
        assert!(retry.after(&e) <= Duration::from_millis(40));
        assert_eq!(retry.after(&refused(401)), first * 4);
        retry.succeeded();
        assert_eq!(retry.after(&refused(401)), first);
    }

    #[test]
    fn only_401_and_403_are_refusals() {
        assert!(is_refusal(&refused(401)));
        assert!(is_refusal(&refused(403)));
        assert!(!is_refusal(&CouchError::from_status(404, b"{}")));
        assert!(!is_refusal(&CouchError::from_status(500, b"{}")));
        assert!(!is_refusal(&CouchError::Timeout("x")));
    }
}
