//! Writes `status:<fqdn>` into the local CouchDB, where operators (and, through the push
//! replication, the central database) look.
//!
//! A separate task, fed by [`Report::changed`], so that a slow or absent CouchDB never
//! holds up an apply, and so that several changes in a row become one write of the
//! newest state. A failed write is retried until one succeeds; the document's id is not
//! followed, so writing it never triggers an apply.

use super::report::Report;
use ccnq_api::{ConfigReport, Version};
use ccnq_couch::Db;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const RETRY: Duration = Duration::from_secs(5);

pub async fn run(db: Db, fqdn: String, report: Arc<Report>, version: Version) {
    loop {
        report.changed().await;
        // Let a burst of updates (pending, then ok) settle into one write.
        tokio::time::sleep(Duration::from_millis(50)).await;
        loop {
            let body = body(&report.snapshot(), &version);
            match ccnq_couch::status::write_status(&db, &fqdn, &body).await {
                Ok(rev) => {
                    log::debug!("status:{fqdn} written ({rev})");
                    break;
                }
                Err(e) => {
                    log::warn!("cannot write status:{fqdn}: {e}; retrying in {RETRY:?}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

/// The status document (without `_id`, `type`, `host`, which `write_status` sets).
pub fn body(r: &ConfigReport, version: &Version) -> Value {
    json!({
        "state": r.state,
        "reason": r.reason,
        "desired_rev": r.desired_rev,
        "applied": r.applied,
        "last": r.last,
        "feed": r.feed,
        "replication": r.replication,
        "image": {
            "id": version.image_id,
            "version": version.image_version,
            "slot": version.slot,
        },
        "daemon": version.daemon,
        "updated_at": super::report::now(),
    })
}
