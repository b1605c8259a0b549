//! Keeps this host's replication with the central database working, as long as the
//! daemon runs, and says truthfully whether it does.
//!
//! Each check, at start and then every `every`:
//! 1. the local database the pull replication writes into must exist. With
//!    `create_target` false (docs/decisions.md) nothing else makes it, and CouchDB then
//!    fails the job with `db_not_found` while its document looks fine. ccnqd is the
//!    admin of its local CouchDB on the appliance, so it creates the database (`PUT`,
//!    412 meaning someone just did), and says clearly when it may not;
//! 2. the two `_replicator` documents are created, or put back (with a warning) if
//!    someone deleted or changed them;
//! 3. their jobs are read from CouchDB's scheduler (`_scheduler/docs`): a document in
//!    place says nothing about its job, which may be crashing for a missing database,
//!    refused credentials or an unreachable central server. pouchdb-server has no
//!    scheduler: the state is then `unknown`, not a failure.
//!
//! The check is judged by [`judge`] (pure) into the report `GET /v1/config` and the
//! status document show. After a refusal (401/403) the next check waits longer each
//! time (`ccnq_couch::retry`): a keeper retrying a refused credential would help lock
//! the user out. After documents were written, the next checks come sooner, so a job
//! that fails to start shows within seconds rather than at the next interval.
//!
//! Checking on a timer rather than following `_replicator`'s own feed keeps one feed per
//! daemon; a repair within a minute is soon enough for a replication that CouchDB itself
//! retries.
//!
//! Once per start, beside the checks, the status document's history is brought from the
//! central database (`ccnq_couch::replication::bring_status_history`): a host whose local
//! database is new (a network boot's `/var` in RAM, a replaced disk) would otherwise
//! start its status again at revision 1, a branch that loses to the central copy, and the
//! central database would go on showing its old status.

use super::report::{now, Report};
use ccnq_api::{ReplicationJob, ReplicationState};
use ccnq_couch::replication::{ensure, job_state, JobState, Outcome, ReplicationSpec};
use ccnq_couch::retry::{is_refusal, Refusals};
use ccnq_couch::{CouchError, Db};
use std::sync::Arc;
use std::time::Duration;

/// How soon checks follow a change of the documents, while a job has not settled.
const SETTLE: Duration = Duration::from_secs(5);
/// How many such quick checks at most, after one change.
const SETTLE_CHECKS: u32 = 12;

/// What the keeper works on.
pub struct Keeper {
    /// The local database the pull replication writes into (made here when missing).
    pub local: Db,
    /// The local CouchDB's `_replicator`.
    pub replicator: Db,
    pub spec: ReplicationSpec,
    /// Between two checks.
    pub every: Duration,
    /// First wait after CouchDB refused our credentials; doubles at each refusal.
    pub credentials_retry: Duration,
}

/// What one check found, before it is judged.
#[derive(Debug, Default)]
pub struct Found {
    /// What the check did, in order (`created database provisioning`, `repaired …`).
    pub did: Vec<String>,
    /// Why the check could not go on (the database could not be made, the documents
    /// could not be kept).
    pub failure: Option<String>,
    /// The jobs, pull then push.
    pub jobs: Vec<(String, JobState)>,
}

pub async fn run(keeper: Keeper, report: Arc<Report>) {
    tokio::spawn(bring_status_history(
        keeper.replicator.client().clone(),
        keeper.spec.clone(),
        report.clone(),
        keeper.every,
        keeper.credentials_retry,
    ));
    let mut refusals = Refusals::new(keeper.credentials_retry);
    let mut last: Option<ReplicationState> = None;
    let mut quick = 0u32;
    loop {
        let (found, error) = check(&keeper).await;
        let state = judge(&found, now());
        // What changed goes into the status document; a repeated result does not.
        let changed = last.as_ref().is_none_or(|l| !same(l, &state));
        if changed {
            log::info!("replication: {}: {}", state.state, state.detail);
        }
        if !found.did.is_empty() {
            quick = SETTLE_CHECKS;
        }
        let settled = state.jobs.iter().all(|j| j.state == "running");
        let replication = state.clone();
        if changed {
            report.update(|r| r.replication = Some(replication));
        } else {
            report.update_quietly(|r| r.replication = Some(replication));
        }
        last = Some(state);
        let wait = match &error {
            Some(e) if is_refusal(e) => {
                let wait = refusals.next_wait().max(keeper.every);
                log::warn!("CouchDB refused the replication keeper ({e}); next check in {wait:?}");
                wait
            }
            Some(_) => keeper.every,
            None => {
                refusals.reset();
                if quick > 0 && !settled {
                    quick -= 1;
                    keeper.every.min(SETTLE)
                } else {
                    quick = 0;
                    keeper.every
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Until it succeeds once: the central status history brought into the local database;
/// when that wrote anything, a status write is asked for (the local winner may now be
/// the central copy: the writer's next write brings it up to date and deletes the branch
/// that lost). Until the local database exists (the first check makes it) or the
/// central one answers, it tries again every `every`.
async fn bring_status_history(
    client: ccnq_couch::Client,
    spec: ReplicationSpec,
    report: Arc<Report>,
    every: Duration,
    credentials_retry: Duration,
) {
    let mut refusals = Refusals::new(credentials_retry);
    loop {
        match ccnq_couch::replication::bring_status_history(&client, &spec).await {
            Ok(0) => return,
            Ok(n) => {
                log::info!(
                    "status:{}: its history brought from the central database ({n} document)",
                    spec.fqdn
                );
                report.update(|_| {});
                return;
            }
            Err(e) => {
                let wait = if is_refusal(&e) {
                    refusals.next_wait().max(every)
                } else {
                    every
                };
                log::debug!(
                    "status:{}: its history not brought yet ({e}); again in {wait:?}",
                    spec.fqdn
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Whether two reports say the same (the time of the check and of the jobs' last state
/// changes aside).
fn same(a: &ReplicationState, b: &ReplicationState) -> bool {
    let jobs = |s: &ReplicationState| -> Vec<(String, String, Option<String>)> {
        s.jobs
            .iter()
            .map(|j| (j.doc_id.clone(), j.state.clone(), j.error.clone()))
            .collect()
    };
    a.state == b.state && a.detail == b.detail && jobs(a) == jobs(b)
}

/// One check. The error is returned when the check stopped on one (for the pace of the
/// next check).
async fn check(k: &Keeper) -> (Found, Option<CouchError>) {
    let mut found = Found::default();
    let name = k.local.name().to_string();
    let missing = match k.local.exists().await {
        Ok(exists) => !exists,
        Err(e) => {
            found.failure = Some(format!("cannot check the local database {name}: {e}"));
            return (found, Some(e));
        }
    };
    if missing {
        match k.local.create().await {
            Ok(true) => {
                log::warn!(
                    "the local database {name} was missing: created it (the pull replication writes into it)"
                );
                found.did.push(format!("created database {name}"));
            }
            // Someone made it in between.
            Ok(false) => {}
            Err(e) => {
                let hint = if is_refusal(&e) {
                    ": ccnqd must be an admin of its local CouchDB, or someone must create it"
                } else {
                    ""
                };
                found.failure = Some(format!(
                    "the local database {name} is missing and could not be created ({e}){hint}"
                ));
                return (found, Some(e));
            }
        }
    }
    match ensure(&k.replicator, &k.spec).await {
        Ok(outcomes) => {
            for (id, outcome) in outcomes {
                match outcome {
                    Outcome::Unchanged => {}
                    Outcome::Created { rev } => {
                        log::info!("replication document {id} created ({rev})");
                        found.did.push(format!("created {id}"));
                    }
                    Outcome::Repaired { rev } => {
                        log::warn!(
                            "replication document {id} was changed or deleted: repaired ({rev})"
                        );
                        found.did.push(format!("repaired {id}"));
                    }
                }
            }
        }
        Err(e) => {
            log::warn!("cannot check the replication documents: {e}");
            found.failure = Some(format!("cannot keep the replication documents: {e}"));
            return (found, Some(e));
        }
    }
    for id in [
        ccnq_couch::replication::pull_doc_id(&k.spec.fqdn),
        ccnq_couch::replication::push_doc_id(&k.spec.fqdn),
    ] {
        let state = match job_state(k.replicator.client(), k.replicator.name(), &id).await {
            Ok(s) => s,
            Err(e) => JobState::Unknown(format!("cannot read the scheduler: {e}")),
        };
        found.jobs.push((id, state));
    }
    (found, None)
}

/// The report of a check. `ok` needs the documents in place and no job known to fail;
/// a job still starting makes it `pending`; jobs whose state cannot be read
/// (pouchdb-server) leave it `ok` and say `unknown`.
pub fn judge(found: &Found, checked_at: String) -> ReplicationState {
    let jobs: Vec<ReplicationJob> = found
        .jobs
        .iter()
        .map(|(id, s)| match s {
            JobState::Known {
                state,
                error,
                last_updated,
            } => ReplicationJob {
                doc_id: id.clone(),
                state: state.clone(),
                error: error.clone(),
                last_updated: last_updated.clone(),
            },
            JobState::Unknown(why) => ReplicationJob {
                doc_id: id.clone(),
                state: "unknown".into(),
                error: Some(why.clone()),
                last_updated: None,
            },
        })
        .collect();
    let mut parts = found.did.clone();
    let state = if let Some(why) = &found.failure {
        parts.push(why.clone());
        "failed"
    } else {
        let failing: Vec<String> = found
            .jobs
            .iter()
            .filter(|(_, s)| s.is_failing())
            .map(|(id, s)| describe(id, s))
            .collect();
        let starting: Vec<String> = found
            .jobs
            .iter()
            .filter(|(_, s)| s.is_starting())
            .map(|(id, s)| describe(id, s))
            .collect();
        if !failing.is_empty() {
            parts.extend(failing);
            "failed"
        } else if !starting.is_empty() {
            parts.extend(starting);
            "pending"
        } else {
            "ok"
        }
    };
    if parts.is_empty() {
        parts.push("unchanged".into());
    }
    ReplicationState {
        state: state.into(),
        detail: parts.join(", "),
        checked_at,
        jobs,
    }
}

fn describe(id: &str, s: &JobState) -> String {
    match s {
        JobState::Known {
            state,
            error: Some(error),
            ..
        } => format!("{id} {state}: {error}"),
        JobState::Known { state, .. } => format!("{id} {state}"),
        JobState::Unknown(why) => format!("{id} unknown: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(state: &str, error: Option<&str>) -> JobState {
        JobState::Known {
            state: state.into(),
            error: error.map(str::to_string),
            last_updated: Some("2026-12-02T00:24:35Z".into()),
        }
    }

    fn found(pull: JobState, push: JobState) -> Found {
        Found {
            did: vec![],
            failure: None,
            jobs: vec![("p-pull".into(), pull), ("p-push".into(), push)],
        }
    }

    #[test]
    fn both_jobs_running_is_ok() {
        let r = judge(
            &found(known("running", None), known("running", None)),
            "t".into(),
        );
        assert_eq!((r.state.as_str(), r.detail.as_str()), ("ok", "unchanged"));
        assert_eq!(r.jobs.len(), 2);
        assert_eq!(r.jobs[0].doc_id, "p-pull");
        assert_eq!(
            r.jobs[0].last_updated.as_deref(),
            Some("2026-12-02T00:24:35Z")
        );
    }

    #[test]
    fn a_crashing_job_fails_the_replication_with_its_error_though_the_documents_are_fine() {
        let r = judge(
            &found(
                known(
                    "crashing",
                    Some("db_not_found: could not open http://127.0.0.1:5984/provisioning/"),
                ),
                known("running", None),
            ),
            "t".into(),
        );
        assert_eq!(r.state, "failed");
        assert_eq!(
            r.detail,
            "p-pull crashing: db_not_found: could not open http://127.0.0.1:5984/provisioning/"
        );
        assert_eq!(r.jobs[0].state, "crashing");
        assert!(r.jobs[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("db_not_found"));
        for s in ["failed", "error"] {
            assert_eq!(
                judge(
                    &found(known("running", None), known(s, Some("x"))),
                    "t".into()
                )
                .state,
                "failed"
            );
        }
    }

    #[test]
    fn starting_jobs_are_pending_and_what_was_done_comes_first() {
        let mut f = found(known("initializing", None), known("running", None));
        f.did = vec![
            "created database provisioning".into(),
            "created p-pull".into(),
        ];
        let r = judge(&f, "t".into());
        assert_eq!(r.state, "pending");
        assert_eq!(
            r.detail,
            "created database provisioning, created p-pull, p-pull initializing"
        );
    }

    #[test]
    fn without_a_scheduler_the_jobs_are_unknown_and_the_replication_ok() {
        let r = judge(
            &found(
                JobState::Unknown("no scheduler job".into()),
                JobState::Unknown("no scheduler job".into()),
            ),
            "t".into(),
        );
        assert_eq!(r.state, "ok");
        assert!(r.jobs.iter().all(|j| j.state == "unknown"));
        assert_eq!(r.jobs[1].error.as_deref(), Some("no scheduler job"));
    }

    #[test]
    fn a_failure_to_keep_the_documents_or_the_database_is_failed_without_jobs() {
        let f = Found {
            did: vec![],
            failure: Some("the local database provisioning is missing and could not be created (unauthorized: HTTP 403)".into()),
            jobs: vec![],
        };
        let r = judge(&f, "t".into());
        assert_eq!(r.state, "failed");
        assert!(r.detail.contains("could not be created"), "{}", r.detail);
        assert!(r.jobs.is_empty());
    }

    #[test]
    fn reports_differing_only_in_times_are_the_same() {
        let a = judge(
            &found(known("running", None), known("running", None)),
            "t1".into(),
        );
        let mut b = judge(
            &found(known("running", None), known("running", None)),
            "t2".into(),
        );
        b.jobs[0].last_updated = Some("later".into());
        assert!(same(&a, &b));
        let c = judge(
            &found(known("crashing", Some("x")), known("running", None)),
            "t3".into(),
        );
        assert!(!same(&a, &c));
    }
}
