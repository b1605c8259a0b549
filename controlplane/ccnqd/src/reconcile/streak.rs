//! A run of the same failure, logged once rather than at every attempt.
//!
//! While the local CouchDB starts (a minute or two on a first boot, longer under an
//! emulator) the feed and the status writer each fail about once a second; a journal
//! line per attempt buries the lines that matter. A [`Streak`] says which failures to
//! log: the first of a run, any whose reason differs from the last one logged, and a
//! reminder every [`Streak::reminder`]; the recovery is then logged once, with how many
//! attempts failed and for how long. Pure: the caller passes the time and logs.

use std::fmt;
use std::time::{Duration, Instant};

/// How often an unchanged failure is logged again.
pub const REMINDER: Duration = Duration::from_secs(60);

/// The suffix of a reminder's line: how many failures it stands for.
pub fn since_last(unlogged: u32) -> String {
    match unlogged {
        0 => String::new(),
        n => format!(" (and {n} more such failure(s) since the last line)"),
    }
}

/// One kind of attempt's run of failures.
#[derive(Debug)]
pub struct Streak {
    reminder: Duration,
    run: Option<Run>,
}

#[derive(Debug)]
struct Run {
    since: Instant,
    failures: u32,
    unlogged: u32,
    logged_at: Instant,
    logged_reason: String,
}

/// A run of failures that has just ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub failures: u32,
    pub lasted: Duration,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "after {} failed attempt(s) over {:.1} s",
            self.failures,
            self.lasted.as_secs_f64()
        )
    }
}

impl Streak {
    /// A streak that repeats an unchanged failure every `reminder`.
    pub fn new(reminder: Duration) -> Streak {
        Streak {
            reminder,
            run: None,
        }
    }

    /// An attempt failed for `reason`: whether to log it. `Some(n)` carries how many
    /// failures of the run went unlogged since the last line (0 for a run's first).
    pub fn failed(&mut self, reason: &str, now: Instant) -> Option<u32> {
        let Some(run) = &mut self.run else {
            self.run = Some(Run {
                since: now,
                failures: 1,
                unlogged: 0,
                logged_at: now,
                logged_reason: reason.to_owned(),
            });
            return Some(0);
        };
        run.failures += 1;
        let due = now.saturating_duration_since(run.logged_at) >= self.reminder;
        if due || run.logged_reason != reason {
            let unlogged = std::mem::take(&mut run.unlogged);
            run.logged_at = now;
            run.logged_reason = reason.to_owned();
            return Some(unlogged);
        }
        run.unlogged += 1;
        None
    }

    /// An attempt succeeded: the run it ends, if there was one.
    pub fn succeeded(&mut self, now: Instant) -> Option<Ended> {
        self.run.take().map(|run| Ended {
            failures: run.failures,
            lasted: now.saturating_duration_since(run.since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_run_is_logged_at_its_start_at_each_new_reason_and_every_reminder() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Streak::new(MINUTE);
        assert_eq!(s.failed("refused", at(0)), Some(0));
        assert_eq!(s.failed("refused", at(1)), None);
        assert_eq!(s.failed("refused", at(2)), None);
        assert_eq!(s.failed("timeout", at(3)), Some(2), "a new reason is news");
        assert_eq!(s.failed("timeout", at(30)), None);
        assert_eq!(
            s.failed("timeout", at(63)),
            Some(1),
            "a minute after the last line"
        );
        assert_eq!(s.failed("timeout", at(64)), None);
        assert_eq!(
            s.succeeded(at(70)).map(|e| e.failures),
            Some(7),
            "every failure of the run, logged or not"
        );
    }

    #[test]
    fn the_recovery_reports_the_run_once_and_the_next_failure_starts_a_new_one() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Streak::new(MINUTE);
        assert_eq!(s.succeeded(at(0)), None, "no run, nothing to report");
        s.failed("refused", at(10));
        s.failed("refused", at(11));
        s.failed("refused", at(12));
        assert_eq!(
            s.succeeded(at(15)),
            Some(Ended {
                failures: 3,
                lasted: Duration::from_secs(5)
            })
        );
        assert_eq!(s.succeeded(at(16)), None);
        assert_eq!(s.failed("refused", at(20)), Some(0));
    }
}
