//! Keeps one authenticated event-socket connection alive for the daemon: reconnects with
//! capped exponential backoff and jitter, re-applies event subscriptions, and forwards every
//! connection's events into one receiver. A wrong password or an ACL rejection is not retried
//! in a tight loop: those wait `permanent_failure_delay` (they need an operator) and are kept
//! as typed errors in the published state so the daemon can report them as such.

use crate::client::{ConnectOptions, EslClient, Received};
use crate::error::EslError;
use crate::event::EventFormat;
use crate::reply::CommandReply;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Retry delays. Pure: `delay` is a function of its arguments, so it is unit-tested.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// After the first failure.
    pub initial: Duration,
    /// Cap of the exponential growth.
    pub max: Duration,
    /// After a wrong password or an ACL rejection.
    pub permanent_failure_delay: Duration,
    /// Fraction (0..=1) of each delay that is randomised, so a fleet of daemons restarted
    /// together does not reconnect in lockstep.
    pub jitter: f64,
    /// A connection that lived at least this long resets the failure count.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            permanent_failure_delay: Duration::from_secs(60),
            jitter: 0.5,
            stable_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay after `failures` consecutive failures (>= 1); `unit` is uniform in [0, 1).
    /// The result lies in `[(1 - jitter) * base, base]`, `base` doubling up to `max`.
    pub fn delay(&self, failures: u32, permanent: bool, unit: f64) -> Duration {
        let base = if permanent {
            self.permanent_failure_delay
        } else {
            let exp = failures.saturating_sub(1).min(30);
            self.initial.saturating_mul(1u32 << exp).min(self.max)
        };
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter)
    }
}

/// What the supervisor is doing, for status reporting.
#[derive(Debug, Clone)]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// Waiting `retry_in` before the next attempt after `failures` failures.
    Waiting {
        failures: u32,
        retry_in: Duration,
        last_error: Arc<EslError>,
    },
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionState::Connecting => write!(f, "connecting"),
            ConnectionState::Connected => write!(f, "connected"),
            ConnectionState::Waiting {
                failures,
                retry_in,
                last_error,
            } => write!(
                f,
                "{failures} failed attempt(s), retrying in {retry_in:?}: {last_error}"
            ),
        }
    }
}

type Subscriptions = Arc<Mutex<Vec<(EventFormat, Vec<String>)>>>;

/// A supervised connection. Dropping it stops the supervisor and closes the connection.
pub struct ReconnectingClient {
    current: watch::Receiver<Option<Arc<EslClient>>>,
    state: watch::Receiver<ConnectionState>,
    events: Mutex<Option<mpsc::Receiver<Received>>>,
    subscriptions: Subscriptions,
    dropped_events: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for ReconnectingClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReconnectingClient {
    /// Starts the supervisor (on the current tokio runtime).
    pub fn spawn(
        addr: impl Into<String>,
        password: impl Into<String>,
        opts: ConnectOptions,
        backoff: Backoff,
    ) -> ReconnectingClient {
        let (current_tx, current) = watch::channel(None);
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
        let subscriptions: Subscriptions = Arc::default();
        let dropped_events = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(supervise(Supervisor {
            addr: addr.into(),
            password: password.into(),
            opts,
            backoff,
            current: current_tx,
            state: state_tx,
            events: events_tx,
            subscriptions: subscriptions.clone(),
            dropped: dropped_events.clone(),
        }));
        ReconnectingClient {
            current,
            state,
            events: Mutex::new(Some(events_rx)),
            subscriptions,
            dropped_events,
            task,
        }
    }

    /// The live connection, or `NotConnected` (fail fast: the caller reports it).
    pub fn client(&self) -> Result<Arc<EslClient>, EslError> {
        match self.current.borrow().clone() {
            Some(c) if c.close_reason().is_none() => Ok(c),
            _ => Err(EslError::NotConnected {
                state: self.state().to_string(),
            }),
        }
    }

    /// Waits up to `timeout` for a live connection.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Arc<EslClient>, EslError> {
        let mut rx = self.current.clone();
        let wait = async {
            loop {
                if let Some(c) = rx.borrow_and_update().clone() {
                    if c.close_reason().is_none() {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.client()
    }

    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// Events from every connection, in one receiver; can be taken once.
    pub fn take_events(&self) -> Option<mpsc::Receiver<Received>> {
        self.events.lock().ok()?.take()
    }

    /// Events lost because this receiver was full or gone.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// Subscribes now (if connected) and after every reconnect.
    pub async fn subscribe(
        &self,
        format: EventFormat,
        names: &[&str],
    ) -> Result<CommandReply, EslError> {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.push((format, names.iter().map(|s| s.to_string()).collect()));
        }
        self.client()?.subscribe(format, names).await
    }
}

struct Supervisor {
    addr: String,
    password: String,
    opts: ConnectOptions,
    backoff: Backoff,
    current: watch::Sender<Option<Arc<EslClient>>>,
    state: watch::Sender<ConnectionState>,
    events: mpsc::Sender<Received>,
    subscriptions: Subscriptions,
    dropped: Arc<AtomicU64>,
}

/// Small xorshift generator for jitter; cryptographic quality is not needed, only that two
/// daemons do not draw the same sequence.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Jitter(h.finish() | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn supervise(s: Supervisor) {
    let mut failures: u32 = 0;
    let mut jitter = Jitter::new();
    loop {
        let _ = s.state.send(ConnectionState::Connecting);
        let error = match EslClient::connect(&s.addr, &s.password, s.opts.clone()).await {
            Ok(client) => {
                let started = Instant::now();
                let subs = s
                    .subscriptions
                    .lock()
                    .map(|v| v.clone())
                    .unwrap_or_default();
                for (format, names) in subs {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    if let Err(e) = client.subscribe(format, &names).await {
                        log::warn!("event socket: re-subscribing {names:?} failed: {e}");
                    }
                }
                let client = Arc::new(client);
                let events = client.take_events();
                let _ = s.current.send(Some(client.clone()));
                let _ = s.state.send(ConnectionState::Connected);
                log::info!("event socket: connected to {}", s.addr);
                if let Some(mut events) = events {
                    while let Some(item) = events.recv().await {
                        if s.events.try_send(item).is_err() {
                            s.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let reason = client.closed().await;
                let _ = s.current.send(None);
                log::warn!("event socket: connection to {} lost: {reason}", s.addr);
                if started.elapsed() >= s.backoff.stable_after {
                    failures = 0;
                }
                EslError::Closed(reason)
            }
            Err(e) => {
                if e.is_permanent() {
                    log::error!("event socket: {e}; not retrying in a loop");
                } else {
                    log::warn!("event socket: {e}");
                }
                e
            }
        };
        failures = failures.saturating_add(1);
        let retry_in = s
            .backoff
            .delay(failures, error.is_permanent(), jitter.unit());
        let _ = s.state.send(ConnectionState::Waiting {
            failures,
            retry_in,
            last_error: Arc::new(error),
        });
        tokio::time::sleep(retry_in).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_bounds() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, false, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(2, false, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay(4, false, 0.0), Duration::from_millis(1600));
        assert_eq!(b.delay(100, false, 0.0), Duration::from_secs(30));
        assert_eq!(b.delay(3, false, 0.999_999).as_millis(), 400);
        assert_eq!(b.delay(1, true, 0.0), Duration::from_secs(60));
        assert!(b.delay(1, true, 0.99) >= Duration::from_secs(30));
    }

    #[test]
    fn jitter_is_uniformish_in_unit_interval() {
        let mut j = Jitter::new();
        let draws: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
        assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
        let low = draws.iter().filter(|&&u| u < 0.5).count();
        assert!((300..700).contains(&low), "{low}");
    }
}
