//! Waiting for systemd jobs to finish.
//!
//! StartUnit, StopUnit, … return as soon as systemd has queued a job; the outcome comes
//! later in a `JobRemoved(id, job, unit, result)` signal. systemd may emit that signal
//! *before* the method's reply reaches us (a job that finishes at once, e.g. stopping an
//! inactive unit), so the signal stream is opened once, before any call, and a single
//! dispatcher task reads it for the life of the connection. Results whose caller has not
//! yet learnt its job path are kept while any call is in flight (`JobTable`), then
//! handed over when the caller claims the path.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use zbus::zvariant::OwnedObjectPath;

use crate::error::{Error, Result};
use crate::manager::ManagerProxy;

/// How a systemd job ended (the `result` argument of `JobRemoved`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobResult {
    /// The job did what it was asked.
    Done,
    /// Cancelled before it finished (by another job replacing it, or by an operator).
    Canceled,
    /// The unit's own timeout (e.g. TimeoutStartSec) expired.
    Timeout,
    /// The unit failed (non-zero exit, crash, …).
    Failed,
    /// A unit this one requires failed.
    Dependency,
    /// Not run because it was not needed (e.g. a reload of a unit that is stopping).
    Skipped,
    /// Invalid for the unit's current state (e.g. reload of an inactive unit).
    Invalid,
    /// An Assert…= condition of the unit failed.
    Assert,
    /// The unit type does not support the job type.
    Unsupported,
    /// The unit was garbage-collected before the job ran.
    Collected,
    /// A RefuseManualStart/Stop-like "once" rule applied.
    Once,
    /// A result this code does not know (a newer systemd): kept verbatim.
    Other(String),
}

impl JobResult {
    /// Parses systemd's spelling of a job result.
    pub fn parse(s: &str) -> Self {
        match s {
            "done" => JobResult::Done,
            "canceled" => JobResult::Canceled,
            "timeout" => JobResult::Timeout,
            "failed" => JobResult::Failed,
            "dependency" => JobResult::Dependency,
            "skipped" => JobResult::Skipped,
            "invalid" => JobResult::Invalid,
            "assert" => JobResult::Assert,
            "unsupported" => JobResult::Unsupported,
            "collected" => JobResult::Collected,
            "once" => JobResult::Once,
            other => JobResult::Other(other.to_owned()),
        }
    }

    /// systemd's spelling, for logs and the status document.
    pub fn as_str(&self) -> &str {
        match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Timeout => "timeout",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Skipped => "skipped",
            JobResult::Invalid => "invalid",
            JobResult::Assert => "assert",
            JobResult::Unsupported => "unsupported",
            JobResult::Collected => "collected",
            JobResult::Once => "once",
            JobResult::Other(s) => s,
        }
    }

    /// Only `done` means the unit reached the requested state.
    pub fn is_done(&self) -> bool {
        *self == JobResult::Done
    }
}

impl fmt::Display for JobResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller gets when it claims the job path a method call returned.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The job had already finished: its JobRemoved arrived before the reply.
    Finished(JobResult),
    /// Still running: the result will come through this channel.
    Wait(oneshot::Receiver<JobResult>),
}

/// Bookkeeping between the JobRemoved stream and the callers (pure: no I/O).
#[derive(Debug, Default)]
pub(crate) struct JobTable {
    /// Callers waiting for a known job path.
    waiters: HashMap<String, oneshot::Sender<JobResult>>,
    /// Results seen while calls were in flight, not yet claimed by a caller.
    unclaimed: HashMap<String, JobResult>,
    /// Method calls sent whose job path is not yet claimed. While this is zero no result
    /// can belong to us later, so none is kept: the table stays bounded whatever other
    /// clients of systemd do.
    in_flight: usize,
}

impl JobTable {
    /// Called before a method call that will return a job path.
    pub(crate) fn begin_call(&mut self) {
        self.in_flight += 1;
    }

    /// Called when a call ended without a job to claim (error, timeout, cancellation).
    pub(crate) fn abandon_call(&mut self) {
        self.end_call();
    }

    fn end_call(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.unclaimed.clear();
        }
    }

    /// Called with the job path a method call returned.
    pub(crate) fn claim(&mut self, job: &str) -> Claim {
        let claim = match self.unclaimed.remove(job) {
            Some(result) => Claim::Finished(result),
            None => {
                let (tx, rx) = oneshot::channel();
                self.waiters.insert(job.to_owned(), tx);
                Claim::Wait(rx)
            }
        };
        self.end_call();
        claim
    }

    /// Called for every JobRemoved signal, in bus order.
    pub(crate) fn job_removed(&mut self, job: &str, result: JobResult) {
        if let Some(tx) = self.waiters.remove(job) {
            // The waiter may have timed out and gone: nothing to do then.
            let _ = tx.send(result);
        } else if self.in_flight > 0 {
            self.unclaimed.insert(job.to_owned(), result);
        }
    }

    /// Called when a waiter gives up (timeout).
    pub(crate) fn forget(&mut self, job: &str) {
        self.waiters.remove(job);
    }

    /// Called when the signal stream ends: every waiter sees a closed channel.
    pub(crate) fn close(&mut self) {
        self.waiters.clear();
        self.unclaimed.clear();
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.unclaimed.len()
    }
}

/// The JobRemoved dispatcher of one connection.
pub(crate) struct Jobs {
    table: Arc<Mutex<JobTable>>,
    task: JoinHandle<()>,
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(table: &Mutex<JobTable>) -> MutexGuard<'_, JobTable> {
    // A panic while holding this lock cannot leave the table inconsistent in a way
    // that matters more than losing every job result, so poisoning is ignored.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decrements the in-flight count if the call future is dropped or fails before its
/// job path is claimed.
struct CallGuard<'a> {
    table: &'a Mutex<JobTable>,
    armed: bool,
}

impl CallGuard<'_> {
    fn claim(mut self, job: &str) -> Claim {
        self.armed = false;
        lock(self.table).claim(job)
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            lock(self.table).abandon_call();
        }
    }
}

impl Jobs {
    /// Opens the JobRemoved stream (the match rule is in place when this returns) and
    /// starts the dispatcher on the current tokio runtime.
    pub(crate) async fn start(manager: &ManagerProxy<'static>) -> zbus::Result<Self> {
        let mut stream = manager.receive_job_removed().await?;
        let table = Arc::new(Mutex::new(JobTable::default()));
        let t = Arc::clone(&table);
        let task = tokio::spawn(async move {
            while let Some(signal) = stream.next().await {
                match signal.args() {
                    Ok(args) => {
                        let result = JobResult::parse(args.result);
                        log::debug!("job {} ({}) removed: {}", args.job, args.unit, result);
                        lock(&t).job_removed(args.job.as_str(), result);
                    }
                    Err(e) => log::warn!("malformed JobRemoved signal: {e}"),
                }
            }
            lock(&t).close();
        });
        Ok(Jobs { table, task })
    }

    /// Sends `call` (a StartUnit-like method returning a job path) and waits for the
    /// job's result, all within `timeout`.
    pub(crate) async fn run<F>(
        &self,
        operation: &'static str,
        unit: &str,
        timeout: Duration,
        call: F,
    ) -> Result<JobResult>
    where
        F: Future<Output = zbus::Result<OwnedObjectPath>>,
    {
        let deadline = Instant::now() + timeout;
        lock(&self.table).begin_call();
        let guard = CallGuard {
            table: &self.table,
            armed: true,
        };
        let job = match timeout_at(deadline, call).await {
            Err(_) => {
                return Err(Error::Timeout {
                    operation,
                    unit: unit.to_owned(),
                    job: "-".to_owned(),
                    after: timeout,
                })
            }
            Ok(Err(e)) => return Err(Error::from_call(operation, unit, e)),
            Ok(Ok(job)) => job,
        };
        let rx = match guard.claim(job.as_str()) {
            Claim::Finished(result) => return Ok(result),
            Claim::Wait(rx) => rx,
        };
        match timeout_at(deadline, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(Error::Disconnected {
                operation,
                unit: unit.to_owned(),
                job: job.to_string(),
            }),
            Err(_) => {
                lock(&self.table).forget(job.as_str());
                Err(Error::Timeout {
                    operation,
                    unit: unit.to_owned(),
                    job: job.to_string(),
                    after: timeout,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_result_and_keeps_unknown_ones() {
        for s in [
            "done",
            "canceled",
            "timeout",
            "failed",
            "dependency",
            "skipped",
            "invalid",
            "assert",
            "unsupported",
            "collected",
            "once",
        ] {
            let r = JobResult::parse(s);
            assert!(!matches!(r, JobResult::Other(_)), "{s} parsed as Other");
            assert_eq!(r.as_str(), s);
        }
        assert_eq!(
            JobResult::parse("frozen"),
            JobResult::Other("frozen".into())
        );
        assert!(JobResult::Done.is_done());
        assert!(!JobResult::Failed.is_done());
    }

    #[test]
    fn result_arriving_before_the_reply_is_kept_for_the_caller() {
        let mut t = JobTable::default();
        t.begin_call();
        t.job_removed("/job/7", JobResult::Failed);
        match t.claim("/job/7") {
            Claim::Finished(r) => assert_eq!(r, JobResult::Failed),
            Claim::Wait(_) => panic!("early result lost"),
        }
        assert_eq!(t.kept(), 0);
    }

    #[test]
    fn result_arriving_after_the_claim_reaches_the_waiter() {
        let mut t = JobTable::default();
        t.begin_call();
        let Claim::Wait(mut rx) = t.claim("/job/8") else {
            panic!("no result yet, must wait")
        };
        t.job_removed("/job/9", JobResult::Done);
        assert!(rx.try_recv().is_err(), "another job's result was delivered");
        t.job_removed("/job/8", JobResult::Timeout);
        assert_eq!(rx.try_recv().ok(), Some(JobResult::Timeout));
    }

    #[test]
    fn foreign_results_are_not_kept_when_no_call_is_in_flight() {
        let mut t = JobTable::default();
        t.job_removed("/job/1", JobResult::Done);
        assert_eq!(t.kept(), 0);
        t.begin_call();
        t.job_removed("/job/2", JobResult::Done);
        assert_eq!(t.kept(), 1);
        t.abandon_call();
        assert_eq!(t.kept(), 0, "kept results outlived the calls in flight");
    }

    #[test]
    fn closing_wakes_waiters_with_an_error() {
        let mut t = JobTable::default();
        t.begin_call();
        let Claim::Wait(mut rx) = t.claim("/job/3") else {
            panic!("must wait")
        };
        t.close();
        assert!(matches!(
            rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
