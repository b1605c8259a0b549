//! Writes `status:<fqdn>` into the local CouchDB, where operators (and, through the push
//! replication, the central database) look.
//!
//! A separate task, fed by [`Report::changed`], so that a slow or absent CouchDB never
//! holds up an apply, and so that several changes in a row become one write of the
//! newest state. A failed write is retried until one succeeds, with the newest state
//! each time; the document's id is not followed, so writing it never triggers an apply.
//!
//! Retries wait as `ccnq_couch::retry` says: after a refusal (401/403) the credentials
//! retry, doubling each time, never a few seconds. A writer that retried a refused
//! password every 5 s (this one did) locked the user out of CouchDB, and with it every
//! other client using that user, even a correctly configured one.
//!
//! The managed services' states ([`crate::services::ServicesReport`]) go in too, under
//! `services`; their changes wake the writer through the same [`Report::changed`].

use super::report::Report;
use ccnq_api::{ConfigReport, Version};
use ccnq_couch::retry::{is_refusal, Retry};
use ccnq_couch::Db;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The services' states, attached once at start ([`attach_services`]). A process-wide
/// slot because the writer is spawned by the reconcile loop, which has no business
/// knowing about services; there is one daemon, hence one set of services, per process.
static SERVICES: OnceLock<Arc<crate::services::ServicesReport>> = OnceLock::new();

/// Makes the status writer include the services' states. Call before the loop starts.
pub fn attach_services(services: Arc<crate::services::ServicesReport>) {
    let _ = SERVICES.set(services);
}

/// How the writer waits between failed writes.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// First wait after a refusal (401/403); doubles at each further one.
    pub credentials_retry: Duration,
    /// Longest wait after other failures (capped exponential backoff from 1 s).
    pub retry_max: Duration,
}

pub async fn run(db: Db, fqdn: String, report: Arc<Report>, version: Version, pacing: Pacing) {
    let mut retry = Retry::new(
        pacing.credentials_retry,
        Duration::from_secs(1),
        pacing.retry_max.max(Duration::from_secs(1)),
    );
    let mut failing = super::streak::Streak::new(super::streak::REMINDER);
    loop {
        report.changed().await;
        // Let a burst of updates (pending, then ok) settle into one write.
        tokio::time::sleep(Duration::from_millis(50)).await;
        loop {
            let services = SERVICES.get().map(|s| s.snapshot());
            let body = body(&report.snapshot(), &version, services.as_deref());
            match ccnq_couch::status::write_status(&db, &fqdn, &body).await {
                Ok(rev) => {
                    match failing.succeeded(std::time::Instant::now()) {
                        Some(run) => log::info!("status:{fqdn} written ({rev}) {run}"),
                        None => log::debug!("status:{fqdn} written ({rev})"),
                    }
                    retry.succeeded();
                    break;
                }
                Err(e) => {
                    let wait = retry.after(&e).max(Duration::from_millis(250));
                    let why = e.to_string();
                    if is_refusal(&e) {
                        // Each refusal is logged: it waits long, and an operator must act.
                        log::error!(
                            "CouchDB refused to write status:{fqdn}: {why}; not trying again for {wait:?}"
                        );
                    } else if let Some(n) = failing.failed(&why, std::time::Instant::now()) {
                        log::warn!(
                            "cannot write status:{fqdn}: {why}; retrying in {wait:?}{}",
                            super::streak::since_last(n)
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The status document (without `_id`, `type`, `host`, which `write_status` sets).
/// `services`: each managed unit's state, keyed by unit name.
pub fn body(
    r: &ConfigReport,
    version: &Version,
    services: Option<&[ccnq_api::ServiceState]>,
) -> Value {
    let services: Option<serde_json::Map<String, Value>> = services.map(|list| {
        list.iter()
            .map(|s| {
                (
                    s.name.clone(),
                    serde_json::to_value(s).unwrap_or(Value::Null),
                )
            })
            .collect()
    });
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
        "upgrade": crate::upgrade::status(version),
        "services": services,
        "updated_at": super::report::now(),
    })
}
