//! Two long-lived uses of [`Services`]: following the managed units' states over D-Bus,
//! and the apply step that makes the units what the configuration in force wants.

use super::{desired, Services};
use crate::freeswitch::SharedRunning;
use crate::reconcile::{Apply, Outcome, Progress, Wanted};
use ccnq_systemd::ActiveState;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Follows the managed units' states for as long as the daemon runs: every change is
/// logged and recorded (hence written to `status:<fqdn>`). A lost bus is retried.
pub async fn watch(services: Arc<Services>) {
    if services.managed.is_empty() {
        log::info!("no managed services ([services] managed is empty): nothing to watch");
        return;
    }
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let e = watch_once(&services).await;
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        log::warn!("watching the managed services: {e}; again in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn watch_once(services: &Services) -> String {
    let sd = match services.systemd.get().await {
        Ok(sd) => sd,
        Err(e) => return e,
    };
    let units: Vec<&str> = services.managed.iter().map(String::as_str).collect();
    // The watch first, then the readings: a change in between is not missed.
    let mut watch = match sd.watch(&units).await {
        Ok(w) => w,
        Err(e) => return e.to_string(),
    };
    for unit in &units {
        match sd.unit_info(unit).await {
            Ok(info) => {
                log::info!(unit = *unit; "{unit}: {} ({}), {}", info.active_state, info.sub_state, info.load_state);
                services.state.set_info(&info);
            }
            Err(e) => return e.to_string(),
        }
    }
    while let Some(change) = watch.recv().await {
        let unit = change.unit.as_str();
        let line = format!(
            "{unit}: {} ({}) -> {} ({})",
            change.old.active, change.old.sub, change.new.active, change.new.sub
        );
        if change.new.active == ActiveState::Failed {
            log::warn!(unit = unit, state = change.new.active.as_str(); "{line}");
        } else {
            log::info!(unit = unit, state = change.new.active.as_str(); "{line}");
        }
        match sd.unit_info(unit).await {
            Ok(info) => services.state.set_info(&info),
            Err(e) => log::warn!(unit = unit; "reading {unit} after a change: {e}"),
        }
    }
    "the bus connection closed".into()
}

/// The reconcile loop's apply step with the desired service states on top: after the
/// first apply of this daemon's life, the units are made what the configuration in force
/// wants (the image's preset starts FreeSWITCH even on a `server_only` host, and nothing
/// persistent can be changed in its read-only /etc). Later changes of `server_only` are
/// the planner's.
pub struct Enforce<A: Apply> {
    pub inner: A,
    pub services: Arc<Services>,
    pub running: SharedRunning,
    /// Set once the units were checked against a configuration in force.
    pub enforced: bool,
}

impl<A: Apply> Apply for Enforce<A> {
    async fn apply(&mut self, wanted: Wanted<'_>, progress: &Progress) -> Outcome {
        let outcome = self.inner.apply(wanted, progress).await;
        // The configuration in force after the attempt: the new one if it succeeded,
        // the last good one otherwise.
        let wants = {
            let running = self.running.read().unwrap_or_else(|p| p.into_inner());
            running.applied.as_ref().map(|r| {
                desired(
                    &r.validated.host,
                    &self.services.freeswitch_unit,
                    &self.services.couchdb_unit,
                )
            })
        };
        match wants {
            Some(wants) if !self.enforced => {
                self.enforced = self.services.enforce(&wants).await;
            }
            Some(wants) => {
                for d in &wants {
                    self.services.state.set_desired(
                        &d.unit,
                        Some(if d.running { "running" } else { "stopped" }.into()),
                    );
                }
            }
            None => {}
        }
        outcome
    }
}
