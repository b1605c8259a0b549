//! The managed units' last known states, as the API and `status:<fqdn>` show them: kept
//! apart from the units' control so that the status writer can read them without
//! reaching systemd.

use crate::reconcile::report::Report;
use ccnq_api::ServiceState;
use ccnq_systemd::UnitInfo;
use std::sync::{Arc, Mutex};

/// The managed units' last known states, shared by the watch (which writes it), the API
/// and the status writer (which copies it into `status:<fqdn>`).
pub struct ServicesReport {
    units: Mutex<Vec<ServiceState>>,
    /// Woken on a change that belongs in the status document.
    report: Arc<Report>,
}

impl ServicesReport {
    pub fn new(managed: &[String], report: Arc<Report>) -> ServicesReport {
        ServicesReport {
            units: Mutex::new(
                managed
                    .iter()
                    .map(|name| ServiceState {
                        name: name.clone(),
                        load_state: "unknown".into(),
                        state: "unknown".into(),
                        ..ServiceState::default()
                    })
                    .collect(),
            ),
            report,
        }
    }

    pub fn snapshot(&self) -> Vec<ServiceState> {
        self.lock().clone()
    }

    /// Records what systemd said of `unit`; wakes the status writer when something an
    /// operator cares about changed (memory alone does not).
    pub fn set_info(&self, info: &UnitInfo) {
        let fresh = from_info(info);
        self.change(&info.name, |s| {
            let before = (
                &s.load_state,
                &s.state,
                &s.sub_state,
                s.main_pid,
                &s.result,
                &s.unmet_condition,
            );
            let changed = before
                != (
                    &fresh.load_state,
                    &fresh.state,
                    &fresh.sub_state,
                    fresh.main_pid,
                    &fresh.result,
                    &fresh.unmet_condition,
                );
            s.load_state = fresh.load_state.clone();
            s.state = fresh.state.clone();
            s.sub_state = fresh.sub_state.clone();
            s.since = fresh.since.clone();
            s.main_pid = fresh.main_pid;
            s.memory_bytes = fresh.memory_bytes;
            s.result = fresh.result.clone();
            s.unmet_condition = fresh.unmet_condition.clone();
            changed
        });
    }

    pub fn set_pending(&self, unit: &str, pending: Option<String>) {
        self.change(unit, |s| {
            let changed = s.pending != pending;
            s.pending = pending;
            changed
        });
    }

    pub fn set_desired(&self, unit: &str, desired: Option<String>) {
        self.change(unit, |s| {
            let changed = s.desired != desired;
            s.desired = desired;
            changed
        });
    }

    pub fn set_last_action(&self, unit: &str, line: String) {
        self.change(unit, |s| {
            s.last_action = Some(line);
            true
        });
    }

    /// Desired, pending and last action of `unit` laid over a fresh systemd reading.
    pub(super) fn merged(&self, info: &UnitInfo) -> ServiceState {
        let mut out = from_info(info);
        if let Some(known) = self.lock().iter().find(|s| s.name == info.name) {
            out.desired = known.desired.clone();
            out.pending = known.pending.clone();
            out.last_action = known.last_action.clone();
        }
        out
    }

    fn change(&self, unit: &str, f: impl FnOnce(&mut ServiceState) -> bool) {
        let changed = {
            let mut units = self.lock();
            match units.iter_mut().find(|s| s.name == unit) {
                Some(s) => f(s),
                None => false,
            }
        };
        if changed {
            // `update` is how the status writer learns of a change; the configuration
            // report itself is left as it is.
            self.report.update(|_| {});
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ServiceState>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A unit as the API and the status document show it.
fn from_info(info: &UnitInfo) -> ServiceState {
    ServiceState {
        name: info.name.clone(),
        load_state: info.load_state.as_str().to_owned(),
        state: info.active_state.as_str().to_owned(),
        sub_state: info.sub_state.clone(),
        since: info.since_us.and_then(rfc3339_us),
        main_pid: info.main_pid,
        memory_bytes: info.memory_bytes,
        result: info.result.clone(),
        unmet_condition: info.unmet_condition.clone(),
        desired: None,
        pending: None,
        last_action: None,
    }
}

fn rfc3339_us(us: u64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}
