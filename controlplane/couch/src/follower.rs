//! Follows the host's documents through a continuous `_changes` feed, forever.
//!
//! The feed breaks in several ways that the daemon must survive and report
//! (spec/couchdb.md): the server restarts (reset, body cut mid-line, silence), ends the
//! feed (`last_seq`: a timeout, or the database was deleted), refuses our credentials,
//! or the database is missing. This module decides what to do in each case and emits
//! events; parsing is in `changes`, HTTP in `client`.
//!
//! Reconnects resume from the caller's **persisted** checkpoint ([`ResumePoint`]), not
//! from the last sequence seen: a change that was received but not yet applied and
//! saved is then delivered again, never lost. Applying a revision twice is harmless
//! (desired state), skipping one is not.
//!
//! A deleted database: its old sequences mean nothing to a database created later under
//! the same name (pouchdb-server's integers restart at 0: resuming from 50 would skip the
//! first 50 changes). So when the database is found missing, the follower resets the
//! resume point to `0`, reports [`FollowerEvent::DatabaseMissing`], polls `GET /db` until
//! the database is back, and reads it from the beginning. The daemon should persist `0`
//! too when it sees that event, so a restart in between does not resume from the old
//! sequence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::changes::{Change, FeedLine};
use crate::client::Db;
use crate::error::CouchError;
use crate::retry::Refusals;

/// Where the next (re)connection starts: the caller updates it after each checkpoint it
/// has persisted.
#[derive(Debug, Clone)]
pub struct ResumePoint(Arc<Mutex<Value>>);

impl ResumePoint {
    pub fn new(seq: Value) -> Self {
        ResumePoint(Arc::new(Mutex::new(seq)))
    }
    pub fn get(&self) -> Value {
        self.0
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
    pub fn set(&self, seq: Value) {
        match self.0.lock() {
            Ok(mut v) => *v = seq,
            Err(p) => *p.into_inner() = seq,
        }
    }
}

/// What the follower saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowerEvent {
    /// The feed is open (HTTP 200 received).
    Connected,
    Change(Change),
    /// The feed broke or ended; the follower will reconnect after a backoff.
    Disconnected(String),
    /// `GET /db` answered 404. The resume point was reset to `0`; the follower polls
    /// until the database exists again.
    DatabaseMissing,
    /// 401 or 403: credentials refused. Retried after `auth_retry`, then twice as long
    /// at each further refusal (`crate::retry::Refusals`).
    AuthRefused(u16),
}

#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The followed document ids (`host:<fqdn>`, …): filtered on the server.
    pub doc_ids: Vec<String>,
    /// Asked of the server; each read waits at most twice this.
    pub heartbeat: Duration,
    /// First reconnect delay bound; doubles per failed attempt up to `backoff_max`.
    /// The actual delay is drawn uniformly in [0, bound] (full jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// First wait after credentials were refused: a long one, never a tight loop. It
    /// doubles at each further refusal, up to `crate::retry::REFUSED_GROWTH` times this
    /// (CouchDB locks out a user after a few failures: spec/couchdb.md).
    pub auth_retry: Duration,
    /// How often to check whether a missing database is back.
    pub missing_db_poll: Duration,
    /// While a feed is open, how often to check that the database still exists:
    /// pouchdb-server keeps a feed of a deleted database alive with heartbeats forever
    /// (and never shows the changes of a database recreated under the same name).
    /// CouchDB ends the feed itself.
    pub db_check: Duration,
}

impl FollowerConfig {
    pub fn new(doc_ids: Vec<String>) -> Self {
        FollowerConfig {
            doc_ids,
            heartbeat: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            auth_retry: Duration::from_secs(60),
            missing_db_poll: Duration::from_secs(5),
            db_check: Duration::from_secs(60),
        }
    }

    pub fn read_timeout(&self) -> Duration {
        self.heartbeat * 2
    }
}

/// Capped exponential backoff with full jitter.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        // Seeded per process and instance so that many hosts restarted together by the
        // same event do not reconnect in step.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Backoff {
            initial,
            max,
            attempt: 0,
            rng: h.finish() | 1,
        }
    }

    /// The bound for the current attempt: `min(max, initial * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay, uniform in [0, ceiling]; moves to the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*: plenty for spreading reconnects.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let nanos = ceiling.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { r % (nanos + 1) })
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The running follower: events come out of `events`; dropping it stops the task.
pub struct Follower {
    pub events: mpsc::Receiver<FollowerEvent>,
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts following `config.doc_ids` in `db` from `resume` (read again at every
/// reconnect). Events are buffered up to `capacity`; a slow reader slows the follower
/// down, nothing is dropped.
pub fn spawn(db: Db, config: FollowerConfig, resume: ResumePoint, capacity: usize) -> Follower {
    let (tx, events) = mpsc::channel(capacity.max(1));
    let task = tokio::spawn(async move {
        // Ends when the receiver is dropped.
        let _ = run(db, config, resume, tx).await;
    });
    Follower { events, task }
}

/// How one connection ended.
enum Ending {
    /// `last_seq` line, or a clean end of the body.
    ServerEnded(String),
    Broken(CouchError),
    NotFound,
    Auth(u16),
}

struct Closed;

async fn emit(tx: &mpsc::Sender<FollowerEvent>, ev: FollowerEvent) -> Result<(), Closed> {
    tx.send(ev).await.map_err(|_| Closed)
}

/// One connection: open, stream changes until it ends. `connected`: the server accepted
/// the credentials and opened the feed.
async fn session(
    db: &Db,
    config: &FollowerConfig,
    since: &Value,
    tx: &mpsc::Sender<FollowerEvent>,
    delivered: &mut bool,
    connected: &mut bool,
) -> Result<Ending, Closed> {
    let feed = db
        .changes_feed(
            &config.doc_ids,
            since,
            config.heartbeat,
            config.read_timeout(),
        )
        .await;
    let mut feed = match feed {
        Ok(f) => f,
        Err(CouchError::NotFound(_)) => return Ok(Ending::NotFound),
        Err(CouchError::Unauthorized { status, .. }) => return Ok(Ending::Auth(status)),
        Err(e) => return Ok(Ending::Broken(e)),
    };
    *connected = true;
    emit(tx, FollowerEvent::Connected).await?;
    let mut check = tokio::time::interval_at(
        tokio::time::Instant::now() + config.db_check,
        config.db_check,
    );
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `next_line` keeps its partial line in `feed`, so dropping it for a check loses nothing.
        let line = tokio::select! {
            line = feed.next_line() => line,
            _ = check.tick() => {
                match db.exists().await {
                    Ok(false) => return Ok(Ending::NotFound),
                    // The open feed outlives a changed password, but every new request
                    // is refused: checking again at this pace would count towards
                    // CouchDB's lockout. End the session and back off as for any refusal.
                    Err(CouchError::Unauthorized { status, .. }) => return Ok(Ending::Auth(status)),
                    _ => {}
                }
                continue;
            }
        };
        match line {
            Ok(Some(FeedLine::Heartbeat)) => {}
            Ok(Some(FeedLine::Change(c))) => {
                *delivered = true;
                emit(tx, FollowerEvent::Change(c)).await?;
            }
            Ok(Some(FeedLine::LastSeq(seq))) => {
                return Ok(Ending::ServerEnded(format!(
                    "server ended the feed at last_seq {seq}"
                )))
            }
            Ok(Some(FeedLine::Error(b))) => {
                return Ok(Ending::Broken(CouchError::Server {
                    status: 200,
                    body: b,
                }))
            }
            Ok(None) => return Ok(Ending::ServerEnded("server closed the feed".into())),
            Err(e) => return Ok(Ending::Broken(e)),
        }
    }
}

async fn run(
    db: Db,
    config: FollowerConfig,
    resume: ResumePoint,
    tx: mpsc::Sender<FollowerEvent>,
) -> Result<(), Closed> {
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let mut refusals = Refusals::new(config.auth_retry);
    loop {
        let since = resume.get();
        let started = Instant::now();
        let mut delivered = false;
        let mut connected = false;
        let ending = session(&db, &config, &since, &tx, &mut delivered, &mut connected).await?;
        // A connection that delivered something or lived long is healthy: the next
        // failure starts the backoff from the bottom again.
        if delivered || started.elapsed() >= config.backoff_max {
            backoff.reset();
        }
        if connected {
            refusals.reset();
        }
        let mut check_db = false;
        match ending {
            Ending::Auth(status) => {
                emit(&tx, FollowerEvent::AuthRefused(status)).await?;
                tokio::time::sleep(refusals.next_wait()).await;
                continue;
            }
            Ending::NotFound => check_db = true,
            Ending::ServerEnded(why) => {
                // Same bytes for a timeout and a deleted database: ask.
                emit(&tx, FollowerEvent::Disconnected(why)).await?;
                check_db = true;
            }
            Ending::Broken(e) => emit(&tx, FollowerEvent::Disconnected(e.to_string())).await?,
        }
        if check_db {
            match db.exists().await {
                Ok(false) => {
                    wait_for_db(&db, &config, &resume, &tx, &mut refusals).await?;
                    backoff.reset();
                    continue;
                }
                Ok(true) => {}
                Err(CouchError::Unauthorized { status, .. }) => {
                    emit(&tx, FollowerEvent::AuthRefused(status)).await?;
                    tokio::time::sleep(refusals.next_wait()).await;
                    continue;
                }
                // The server went away between the end of the feed and this check: the
                // next connection attempt finds out more.
                Err(_) => {}
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn wait_for_db(
    db: &Db,
    config: &FollowerConfig,
    resume: &ResumePoint,
    tx: &mpsc::Sender<FollowerEvent>,
    refusals: &mut Refusals,
) -> Result<(), Closed> {
    resume.set(Value::from(0));
    emit(tx, FollowerEvent::DatabaseMissing).await?;
    loop {
        tokio::time::sleep(config.missing_db_poll).await;
        match db.exists().await {
            Ok(true) => return Ok(()),
            Ok(false) => refusals.reset(),
            Err(CouchError::Unauthorized { status, .. }) => {
                emit(tx, FollowerEvent::AuthRefused(status)).await?;
                tokio::time::sleep(refusals.next_wait()).await;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut ceilings = Vec::new();
        let mut max_seen = Duration::ZERO;
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d <= c, "{d:?} > {c:?}");
            max_seen = max_seen.max(d);
            ceilings.push(c.as_millis());
        }
        assert_eq!(
            ceilings,
            vec![100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000, 2000]
        );
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        // Jitter: 1000 draws under one ceiling are not all equal and spread over it.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let draws: Vec<_> = (0..1000).map(|_| b.next_delay()).collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(750)));
    }

    #[test]
    fn resume_point_is_shared() {
        let r = ResumePoint::new(Value::from("3-g1"));
        let r2 = r.clone();
        r2.set(Value::from(7));
        assert_eq!(r.get(), Value::from(7));
    }
}
