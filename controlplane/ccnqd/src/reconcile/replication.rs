//! Keeps the two `_replicator` documents of this host in the local CouchDB, as long as
//! the daemon runs: created at start, checked again every `check_interval`, and put back
//! (with a warning) if someone deleted or changed them.
//!
//! Checking on a timer rather than following `_replicator`'s own feed keeps one feed per
//! daemon; a repair within a minute is soon enough for a replication that CouchDB itself
//! retries.

use super::report::{now, Report};
use ccnq_api::ReplicationState;
use ccnq_couch::replication::{ensure, Outcome, ReplicationSpec};
use ccnq_couch::Db;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(replicator: Db, spec: ReplicationSpec, every: Duration, report: Arc<Report>) {
    let mut last_detail = String::new();
    loop {
        let (state, detail) = match ensure(&replicator, &spec).await {
            Ok(outcomes) => {
                let mut parts = Vec::new();
                for (id, outcome) in outcomes {
                    match outcome {
                        Outcome::Unchanged => {}
                        Outcome::Created { rev } => {
                            log::info!("replication document {id} created ({rev})");
                            parts.push(format!("created {id}"));
                        }
                        Outcome::Repaired { rev } => {
                            log::warn!("replication document {id} was changed or deleted: repaired ({rev})");
                            parts.push(format!("repaired {id}"));
                        }
                    }
                }
                if parts.is_empty() {
                    ("ok", "unchanged".to_string())
                } else {
                    ("ok", parts.join(", "))
                }
            }
            Err(e) => {
                log::warn!("cannot check the replication documents: {e}");
                ("failed", e.to_string())
            }
        };
        let replication = ReplicationState {
            state: state.into(),
            detail: detail.clone(),
            checked_at: now(),
        };
        // What changed goes into the status document; a repeated result does not.
        if detail != last_detail {
            report.update(|r| r.replication = Some(replication));
        } else {
            report.update_quietly(|r| r.replication = Some(replication));
        }
        last_detail = detail;
        tokio::time::sleep(every).await;
    }
}
