//! What the daemon knows of its configuration document, shared by the reconcile loop
//! (which writes it), the local API (`GET /v1/config`) and the status writer (which
//! copies it into `status:<fqdn>`).
//!
//! One value behind a mutex, so every reader sees a consistent picture, and a `Notify`
//! so the status writer wakes after each change without polling.

use ccnq_api::{ConfigReport, FeedState};
use std::sync::Mutex;
use tokio::sync::Notify;

pub struct Report {
    inner: Mutex<ConfigReport>,
    /// The newest revision of the document seen, as stored: what `GET /v1/config/plan`
    /// previews.
    desired: Mutex<Option<serde_json::Value>>,
    /// Wakes the status writer; `notify_one` keeps a permit, so no change is missed.
    changed: Notify,
    /// Wakes the upgrade path when a new revision arrives. Its own: a `Notify` woken
    /// with `notify_one` has one waiter, and the status writer must miss no change.
    desired_changed: Notify,
}

impl Report {
    /// `document`: the followed document id, `None` when the daemon follows nothing.
    pub fn new(document: Option<String>) -> Report {
        let following = document.is_some();
        Report {
            inner: Mutex::new(ConfigReport {
                document,
                state: if following {
                    "waiting"
                } else {
                    "not-following"
                }
                .into(),
                reason: None,
                desired_rev: None,
                applied: None,
                last: None,
                feed: FeedState {
                    state: if following { "connecting" } else { "off" }.into(),
                    since: now(),
                    detail: None,
                    last_problem: None,
                },
                replication: None,
                attempts: 0,
            }),
            desired: Mutex::new(None),
            changed: Notify::new(),
            desired_changed: Notify::new(),
        }
    }

    pub fn set_desired(&self, doc: serde_json::Value) {
        *self.desired.lock().unwrap_or_else(|p| p.into_inner()) = Some(doc);
        self.desired_changed.notify_one();
    }

    /// Waits for the next [`Report::set_desired`] (the upgrade path's wake-up).
    pub async fn desired_changed(&self) {
        self.desired_changed.notified().await
    }

    pub fn desired(&self) -> Option<serde_json::Value> {
        self.desired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> ConfigReport {
        self.lock().clone()
    }

    /// Changes the report and tells the status writer.
    pub fn update(&self, f: impl FnOnce(&mut ConfigReport)) {
        f(&mut self.lock());
        self.changed.notify_one();
    }

    /// Changes the report without a status write (facts only the local API shows).
    pub fn update_quietly(&self, f: impl FnOnce(&mut ConfigReport)) {
        f(&mut self.lock());
    }

    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConfigReport> {
        // Every update is a few assignments: a panic cannot leave it half done in a way
        // that matters more than losing the report would.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Now, as RFC 3339 (UTC), the form every time in the API and the status document has.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Seconds since the epoch as RFC 3339 (UTC), as FreeSWITCH and CouchDB give times.
pub fn from_epoch(secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Validation errors as the API and the status document show them.
pub fn error_notes(errors: Vec<ccnq_model::ValidationError>) -> Vec<ccnq_api::FieldNote> {
    errors
        .into_iter()
        .map(|e| ccnq_api::FieldNote {
            path: e.path,
            reason: e.reason,
        })
        .collect()
}

/// Validation warnings (unknown fields kept, …) as the API and the status document show them.
pub fn warning_notes(warnings: &[ccnq_model::Warning]) -> Vec<ccnq_api::FieldNote> {
    warnings
        .iter()
        .map(|w| ccnq_api::FieldNote {
            path: w.path.clone(),
            reason: w.reason.clone(),
        })
        .collect()
}
