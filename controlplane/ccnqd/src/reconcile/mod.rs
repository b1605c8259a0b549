//! The reconcile loop: from the host document in CouchDB to the host, and back to the
//! status document.
//!
//! Three tasks, so that no outside system can stall another:
//! - **intake** reads the follower's events (`ccnq_couch::follower`): it records the
//!   feed's health and puts each revision of `host:<fqdn>` into a coalescing slot, where
//!   a newer revision replaces one not yet taken (a burst of 50 revisions becomes a few
//!   applies, the last being the newest);
//! - **worker** takes the newest revision, validates it (an invalid one stops there:
//!   `failed` with every error, the configuration in force kept), hands it to the
//!   [`Apply`] hook, then persists the checkpoint (file on the data volume, then
//!   `_local/ccnqd-<fqdn>`) and records the result. After CouchDB refused the `_local`
//!   write (401/403), the next ones are skipped for a growing while
//!   (`ccnq_couch::retry`): an open feed outlives a changed password, so applies may
//!   go on while every new request is refused, and each refused write would count
//!   towards CouchDB's lockout of the user. The file is what a restart reads; the
//!   next `_local` write carries the newest checkpoint;
//! - **status** (in [`status`]) copies the [`Report`] into `status:<fqdn>`.
//!
//! Restart safety: the follower resumes from the *persisted* checkpoint, which moves
//! only after an apply succeeded, so a revision received but not applied is delivered
//! again, never lost. At start the document is also read once directly, whatever the
//! checkpoint says, so the host converges even if it was changed by hand; the apply
//! hook compares with what runs and does nothing when they are equal.

pub mod replication;
pub mod report;
pub mod status;
mod streak;

use ccnq_api::{AppliedPoint, Attempt, Version};
use ccnq_couch::checkpoint::{self, Checkpoint};
use ccnq_couch::follower::{self, Backoff, FollowerConfig, FollowerEvent, ResumePoint};
use ccnq_couch::retry::{is_refusal, Refusals};
use ccnq_couch::{coalesce, Db};
use ccnq_model::Validated;
use report::{now, Report};
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The step that makes the host what a valid document asks. Implemented by the
/// FreeSWITCH applier; the loop neither knows nor cares what it touches.
pub trait Apply: Send + 'static {
    /// Brings the host to `wanted`. Must do nothing (no action at all) when the host
    /// already is what `wanted` asks: the loop calls it again after restarts.
    fn apply(
        &mut self,
        wanted: Wanted<'_>,
        progress: &Progress,
    ) -> impl Future<Output = Outcome> + Send;
}

/// A validated revision of the host document.
#[derive(Clone, Copy)]
pub struct Wanted<'a> {
    pub validated: &'a Validated,
    /// The document as stored (kept beside the files so a restart knows what runs).
    pub document: &'a Value,
    pub rev: &'a str,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `Err(reason)`: the host stays on the configuration in force before the attempt.
    pub result: Result<(), String>,
    /// Each action taken, in order (command, reply, duration…).
    pub actions: Vec<Value>,
    /// Whether trying the same revision again later may succeed (FreeSWITCH was
    /// unreachable, say), as opposed to a refusal only a new revision can fix.
    pub retry: bool,
}

/// Lets an apply say what it waits for (`draining (3 calls)`): shown as `pending`.
pub struct Progress {
    report: Arc<Report>,
}

impl Progress {
    pub fn pending(&self, what: String) {
        self.report.update(|r| {
            r.state = "pending".into();
            r.reason = Some(what);
        });
    }
}

/// Everything the loop needs to know.
pub struct Settings {
    pub fqdn: String,
    pub data_dir: PathBuf,
    pub heartbeat: Duration,
    /// Largest wait between reconnects to CouchDB.
    pub reconnect_max: Duration,
    /// First wait after CouchDB refused the credentials (401/403), for the feed, the
    /// status writer and the `_local` checkpoint alike; doubles at each further refusal.
    pub credentials_retry: Duration,
    /// How often an open feed checks that the database still exists, and a missing one
    /// whether it is back.
    pub database_check: Duration,
    /// First and largest wait before a failed apply of the same revision is retried.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Settings {
    fn doc_id(&self) -> String {
        format!("host:{}", self.fqdn)
    }
    fn checkpoint_path(&self) -> PathBuf {
        self.data_dir.join("checkpoint.json")
    }
}

/// Starts following. Returns at once; the tasks live as long as the runtime.
pub fn spawn<A: Apply>(
    db: Db,
    settings: Settings,
    applier: A,
    report: Arc<Report>,
    version: Version,
) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = Arc::new(settings);
    let saved = match checkpoint::load_file(&settings.checkpoint_path()) {
        Ok(c) => c,
        Err(e) => {
            // A checkpoint we cannot read costs a re-read of the feed, nothing more.
            log::warn!("{e}; reading the feed from the start");
            None
        }
    };
    if let Some(c) = &saved {
        log::info!(
            "resuming the changes feed after seq {} (rev {})",
            c.seq,
            c.rev
        );
    }
    let resume = ResumePoint::new(saved.as_ref().map_or(json!(0), |c| c.seq.clone()));
    let mut config = FollowerConfig::new(vec![settings.doc_id()]);
    config.heartbeat = settings.heartbeat;
    config.backoff_max = settings.reconnect_max;
    config.auth_retry = settings.credentials_retry;
    config.db_check = settings.database_check;
    config.missing_db_poll = settings.database_check.min(config.missing_db_poll);
    let follower = follower::spawn(db.clone(), config, resume.clone(), 16);
    let (tx, rx) = coalesce::slot();
    let pacing = status::Pacing {
        credentials_retry: settings.credentials_retry,
        retry_max: settings.reconnect_max,
    };
    vec![
        tokio::spawn(intake(
            db.clone(),
            settings.clone(),
            follower,
            tx,
            report.clone(),
        )),
        tokio::spawn(worker(
            db.clone(),
            settings.clone(),
            rx,
            applier,
            resume,
            saved,
            report.clone(),
        )),
        tokio::spawn(status::run(
            db,
            settings.fqdn.clone(),
            report,
            version,
            pacing,
        )),
    ]
}

/// One revision to bring the host to.
#[derive(Clone)]
struct Item {
    /// `None` for the start-up read (`GET`), which has no feed sequence.
    seq: Option<Value>,
    doc: Value,
}

async fn intake(
    db: Db,
    settings: Arc<Settings>,
    mut follower: follower::Follower,
    tx: coalesce::Sender<Item>,
    report: Arc<Report>,
) {
    let doc_id = settings.doc_id();
    let mut start_read_done = false;
    let mut lost = streak::Streak::new(streak::REMINDER);
    while let Some(event) = follower.events.recv().await {
        match event {
            FollowerEvent::Connected => {
                if let Some(run) = lost.succeeded(std::time::Instant::now()) {
                    log::info!("changes feed back: {run}");
                }
                log::info!("following {doc_id} in database {}", db.name());
                feed(&report, "connected", None);
                if !start_read_done {
                    start_read_done = start_read(&db, &doc_id, &tx, &report).await;
                }
            }
            FollowerEvent::Change(change) => {
                if change.id != doc_id {
                    // The server filters on `doc_ids`; this is a second line of defence.
                    log::warn!(
                        "ignoring a change of {} on a feed filtered for {doc_id}",
                        change.id
                    );
                    continue;
                }
                let doc = match change.doc {
                    Some(doc) => doc,
                    None if change.deleted => {
                        json!({"_id": change.id, "_rev": change.rev, "_deleted": true})
                    }
                    None => {
                        log::warn!(
                            "change of {doc_id} at seq {} came without its document",
                            change.seq
                        );
                        continue;
                    }
                };
                let rev = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
                log::info!(
                    "{doc_id} changed: rev {} at seq {}",
                    rev.as_deref().unwrap_or("?"),
                    change.seq
                );
                report.update_quietly(|r| r.desired_rev = rev);
                report.set_desired(doc.clone());
                // The feed now carries the newest revision: the start-up read is moot.
                start_read_done = true;
                tx.put(Item {
                    seq: Some(change.seq),
                    doc,
                });
            }
            FollowerEvent::Disconnected(why) => {
                if let Some(unlogged) = lost.failed(&why, std::time::Instant::now()) {
                    log::warn!(
                        "changes feed lost: {why}; reconnecting{}",
                        streak::since_last(unlogged)
                    );
                }
                feed(&report, "disconnected", Some(why));
            }
            FollowerEvent::DatabaseMissing => {
                log::error!(
                    "database {} is missing; waiting for it to come back, then reading it from the start",
                    db.name()
                );
                // Its old sequences mean nothing to a database created again under the
                // same name: a restart from here must not resume from them.
                let path = settings.checkpoint_path();
                match checkpoint::load_file(&path) {
                    Ok(Some(c)) => {
                        let reset = Checkpoint {
                            seq: json!(0),
                            rev: c.rev,
                        };
                        if let Err(e) = checkpoint::save_file(&path, &reset) {
                            log::error!("cannot reset the checkpoint: {e}");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => log::warn!("{e}"),
                }
                feed(
                    &report,
                    "database-missing",
                    Some(format!("database {} not found", db.name())),
                );
            }
            FollowerEvent::AuthRefused(code) => {
                log::error!(
                    "CouchDB refused our credentials (HTTP {code}) for database {}; retrying slowly",
                    db.name()
                );
                feed(
                    &report,
                    "credentials-refused",
                    Some(format!(
                        "HTTP {code} from CouchDB: check couchdb.user and couchdb.password_file"
                    )),
                );
            }
        }
    }
}

/// Reads the document once (at start), so the host converges whatever the checkpoint
/// says. Returns whether that is done (read, or absent: the feed will bring it).
async fn start_read(db: &Db, doc_id: &str, tx: &coalesce::Sender<Item>, report: &Report) -> bool {
    match db.get_opt(doc_id).await {
        Ok(Some(doc)) => {
            let rev = doc.get("_rev").and_then(Value::as_str).map(str::to_owned);
            report.update_quietly(|r| {
                if r.desired_rev.is_none() {
                    r.desired_rev = rev;
                }
            });
            if report.desired().is_none() {
                report.set_desired(doc.clone());
            }
            tx.put(Item { seq: None, doc });
            true
        }
        Ok(None) => {
            log::warn!("{doc_id} does not exist (yet): nothing to apply");
            report.update(|r| {
                if r.applied.is_none() {
                    r.reason = Some(format!("{doc_id} does not exist"));
                }
            });
            true
        }
        Err(e) => {
            log::warn!("cannot read {doc_id}: {e}; trying again at the next connection");
            false
        }
    }
}

/// Records the feed's state; a problem is remembered after recovery.
fn feed(report: &Report, state: &str, detail: Option<String>) {
    report.update(|r| {
        if r.feed.state == state && r.feed.detail == detail {
            return;
        }
        if let Some(d) = &detail {
            r.feed.last_problem = Some(format!("{} {state}: {d}", now()));
        }
        r.feed.state = state.into();
        r.feed.since = now();
        r.feed.detail = detail;
    });
}

async fn worker<A: Apply>(
    db: Db,
    settings: Arc<Settings>,
    mut rx: coalesce::Receiver<Item>,
    mut applier: A,
    resume: ResumePoint,
    mut saved: Option<Checkpoint>,
    report: Arc<Report>,
) {
    let mut backoff = Backoff::new(settings.retry_initial, settings.retry_max);
    let mut retry: Option<(Item, Instant)> = None;
    let mut local = LocalGate::new(settings.credentials_retry);
    loop {
        let item = match retry.take() {
            Some((item, at)) => tokio::select! {
                next = rx.next() => match next {
                    Some((newer, skipped)) => { note_skipped(skipped); newer }
                    None => return,
                },
                _ = tokio::time::sleep_until(at) => item,
            },
            None => match rx.next().await {
                Some((item, skipped)) => {
                    note_skipped(skipped);
                    item
                }
                None => return,
            },
        };
        let started = Instant::now();
        let attempts = report.snapshot().attempts;
        let again = handle(
            &db,
            &settings,
            &item,
            &mut applier,
            &resume,
            &mut saved,
            &mut local,
            &report,
        )
        .await;
        // Counted as an apply once it reached the apply step (the report's own count).
        let after = report.snapshot();
        if after.attempts > attempts {
            let result = after.last.map_or_else(|| "failed".into(), |l| l.result);
            crate::metrics::get().apply_ended(&result, started.elapsed());
        }
        if again {
            let delay = backoff.next_delay().max(settings.retry_initial / 2);
            log::info!("trying the same revision again in {delay:?} unless a newer one comes");
            retry = Some((item, Instant::now() + delay));
        } else {
            backoff.reset();
        }
    }
}

/// Whether `_local/ccnqd-<fqdn>` may be written now: closed for a growing while after
/// each refusal.
struct LocalGate {
    refusals: Refusals,
    closed_until: Option<Instant>,
}

impl LocalGate {
    fn new(credentials_retry: Duration) -> Self {
        LocalGate {
            refusals: Refusals::new(credentials_retry),
            closed_until: None,
        }
    }

    fn is_open(&self) -> bool {
        self.closed_until.is_none_or(|t| Instant::now() >= t)
    }

    /// Records a refusal; returns how long the gate stays closed.
    fn refused(&mut self) -> Duration {
        let wait = self.refusals.next_wait();
        self.closed_until = Some(Instant::now() + wait);
        wait
    }

    fn written(&mut self) {
        self.refusals.reset();
        self.closed_until = None;
    }
}

/// Writes the `_local` checkpoint unless a recent refusal closed the gate.
async fn save_local(db: &Db, fqdn: &str, checkpoint: &Checkpoint, gate: &mut LocalGate) {
    let name = checkpoint::local_name(fqdn);
    if !gate.is_open() {
        log::debug!("not writing _local/{name} yet: CouchDB refused the last write");
        return;
    }
    match checkpoint::save_local(db, fqdn, checkpoint).await {
        Ok(_) => gate.written(),
        Err(e) if is_refusal(&e) => {
            let wait = gate.refused();
            log::warn!(
                "CouchDB refused to write _local/{name}: {e}; not trying again for {wait:?}"
            );
        }
        Err(e) => log::warn!("cannot write _local/{name}: {e}"),
    }
}

fn note_skipped(skipped: u64) {
    if skipped > 0 {
        log::info!("{skipped} older revision(s) superseded before they were applied");
    }
}

/// Validates and applies one revision. Returns whether to retry it later.
#[allow(clippy::too_many_arguments)]
async fn handle<A: Apply>(
    db: &Db,
    settings: &Settings,
    item: &Item,
    applier: &mut A,
    resume: &ResumePoint,
    saved: &mut Option<Checkpoint>,
    local: &mut LocalGate,
    report: &Arc<Report>,
) -> bool {
    let doc_id = settings.doc_id();
    let rev = item
        .doc
        .get("_rev")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let attempt = |result: &str, reason: Option<String>| Attempt {
        rev: Some(rev.clone()),
        result: result.into(),
        reason,
        errors: Vec::new(),
        warnings: Vec::new(),
        actions: Vec::new(),
        at: now(),
    };

    if ccnq_model::is_deleted(&item.doc) {
        let reason = format!("{doc_id} was deleted: the configuration in force is kept");
        log::error!("{reason}");
        report.update(|r| {
            r.state = "failed".into();
            r.reason = Some(reason.clone());
            r.last = Some(attempt("failed", Some(reason)));
        });
        return false;
    }

    let validated = match ccnq_model::validate(&item.doc, &settings.fqdn) {
        Ok(v) => v,
        Err(errors) => {
            let reason = format!(
                "rev {rev} is invalid ({} error{}): the configuration in force is kept",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            log::error!("{doc_id} {reason}");
            for e in &errors {
                log::error!("{doc_id} rev {rev}: {e}");
            }
            report.update(|r| {
                r.state = "failed".into();
                r.reason = Some(reason.clone());
                let mut a = attempt("failed", Some(reason));
                a.errors = report::error_notes(errors);
                r.last = Some(a);
            });
            return false;
        }
    };
    for w in &validated.warnings {
        log::warn!("{doc_id} rev {rev}: {w}");
    }

    report.update(|r| {
        r.attempts += 1;
        r.state = "pending".into();
        r.reason = Some(format!("applying rev {rev}"));
    });
    let progress = Progress {
        report: report.clone(),
    };
    let wanted = Wanted {
        validated: &validated,
        document: &item.doc,
        rev: &rev,
    };
    let outcome = applier.apply(wanted, &progress).await;
    let warnings = report::warning_notes(&validated.warnings);

    if let Err(reason) = outcome.result {
        log::error!("{doc_id} rev {rev} failed: {reason}");
        report.update(|r| {
            r.state = "failed".into();
            r.reason = Some(reason.clone());
            let mut a = attempt("failed", Some(reason));
            a.warnings = warnings;
            a.actions = outcome.actions;
            r.last = Some(a);
        });
        return outcome.retry;
    }

    // Applied: move the checkpoint (file first: it is what a restart reads).
    let seq = item
        .seq
        .clone()
        .or_else(|| saved.as_ref().map(|c| c.seq.clone()))
        .unwrap_or(json!(0));
    let checkpoint = Checkpoint {
        seq: seq.clone(),
        rev: rev.clone(),
    };
    if saved.as_ref() != Some(&checkpoint) {
        let path = settings.checkpoint_path();
        let to_save = checkpoint.clone();
        let written =
            tokio::task::spawn_blocking(move || checkpoint::save_file(&path, &to_save)).await;
        match written {
            Ok(Ok(())) => {
                resume.set(seq.clone());
                *saved = Some(checkpoint.clone());
                save_local(db, &settings.fqdn, &checkpoint, local).await;
            }
            Ok(Err(e)) => log::error!("applied rev {rev}, but {e}"),
            Err(e) => log::error!("applied rev {rev}, but the checkpoint task failed: {e}"),
        }
    }
    log::info!(
        "{doc_id} rev {rev} applied ({} action(s))",
        outcome.actions.len()
    );
    report.update(|r| {
        r.state = "ok".into();
        r.reason = None;
        r.applied = Some(AppliedPoint {
            rev: rev.clone(),
            seq: item.seq.clone(),
            at: now(),
        });
        let mut a = attempt("ok", None);
        a.warnings = warnings;
        a.actions = outcome.actions;
        r.last = Some(a);
    });
    false
}

#[cfg(test)]
mod tests;
