//! The systemd service protocol: readiness, status text, watchdog, stopping.
//!
//! `READY=1` is sent only once every API listener is bound, so `systemctl start` (and
//! units ordered after us) return when the API really answers. The watchdog is fed by
//! a task that first checks the daemon is healthy (the accept loops are alive and the
//! data volume is still writable): a wedged daemon stops feeding it and systemd
//! restarts it. Outside systemd (no `NOTIFY_SOCKET`) every call here is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("cannot notify systemd: {e}");
    }
}

/// The interval at which to feed the watchdog: half of what systemd asked for, so one
/// late tick is not fatal. `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// Feeds the watchdog forever, as long as `healthy()` says so.
pub async fn watchdog(interval: Duration, healthy: impl Fn() -> Result<(), String>) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        match healthy() {
            Ok(()) => send(&[NotifyState::Watchdog]),
            Err(why) => {
                log::error!("unhealthy, not feeding the watchdog: {why}");
                status(&format!("unhealthy: {why}"));
            }
        }
    }
}
