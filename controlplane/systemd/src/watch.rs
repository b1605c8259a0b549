//! Following the managed units' ActiveState/SubState as systemd changes them, so the
//! daemon sees a crash the moment systemd does and can report it (status document,
//! journal) without polling.
//!
//! systemd emits `PropertiesChanged` on each unit object (to clients that called
//! Manager.Subscribe, done at connect). One task per watch merges the units' streams
//! and turns property deltas into (unit, old, new, timestamp) events; the delta logic
//! (`next_state`) is pure.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::stream::{select_all, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;
use zbus::zvariant::Value;

use crate::units::ActiveState;

/// The two states the status document shows for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub active: ActiveState,
    pub sub: String,
}

/// One observed transition of a watched unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStateChange {
    pub unit: String,
    pub old: UnitState,
    pub new: UnitState,
    /// When systemd says the change happened (StateChangeTimestamp, µs since the Unix
    /// epoch), or when we saw it if systemd did not say.
    pub timestamp_us: u64,
}

/// The receiving end of a watch. Dropping it stops the watch.
#[derive(Debug)]
pub struct UnitWatch {
    rx: mpsc::UnboundedReceiver<UnitStateChange>,
    task: JoinHandle<()>,
}

impl UnitWatch {
    /// The next change; None once the bus connection is gone.
    pub async fn recv(&mut self) -> Option<UnitStateChange> {
        self.rx.recv().await
    }
}

impl Drop for UnitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Applies one PropertiesChanged delta to the last known state. Returns the new state
/// and systemd's timestamp for it when ActiveState or SubState actually changed:
/// systemd also signals changes of other properties, and may repeat a state.
pub fn next_state(
    last: &UnitState,
    changed: &HashMap<&str, Value<'_>>,
) -> Option<(UnitState, Option<u64>)> {
    let text = |name| match changed.get(name) {
        Some(Value::Str(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let active = text("ActiveState").map(|s| ActiveState::parse(&s));
    let sub = text("SubState");
    if active.is_none() && sub.is_none() {
        return None;
    }
    let new = UnitState {
        active: active.unwrap_or_else(|| last.active.clone()),
        sub: sub.unwrap_or_else(|| last.sub.clone()),
    };
    if new == *last {
        return None;
    }
    let at = match changed.get("StateChangeTimestamp") {
        Some(Value::U64(t)) if *t != 0 => Some(*t),
        _ => None,
    };
    Some((new, at))
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One watched unit: its name, properties proxy and last known state.
pub(crate) struct Watched {
    pub(crate) unit: String,
    pub(crate) proxy: PropertiesProxy<'static>,
    pub(crate) state: UnitState,
}

/// Reads ActiveState and SubState (after the stream is open, so nothing is missed
/// between this read and the first signal).
pub(crate) async fn current_state(proxy: &PropertiesProxy<'static>) -> zbus::Result<UnitState> {
    let iface = InterfaceName::from_static_str_unchecked(crate::manager::UNIT_INTERFACE);
    let active = proxy.get(iface.clone(), "ActiveState").await?;
    let sub = proxy.get(iface, "SubState").await?;
    let text = |v: &Value<'_>| match v {
        Value::Str(s) => s.as_str().to_owned(),
        _ => String::new(),
    };
    Ok(UnitState {
        active: ActiveState::parse(&text(&active)),
        sub: text(&sub),
    })
}

/// Starts the task that merges the units' PropertiesChanged streams.
pub(crate) async fn spawn(mut units: Vec<Watched>) -> zbus::Result<UnitWatch> {
    let mut streams = Vec::with_capacity(units.len());
    for (i, w) in units.iter().enumerate() {
        streams.push(
            w.proxy
                .receive_properties_changed()
                .await?
                .map(move |s| (i, s)),
        );
    }
    for w in units.iter_mut() {
        w.state = current_state(&w.proxy).await?;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut merged = select_all(streams);
        while let Some((i, signal)) = merged.next().await {
            let Ok(args) = signal.args() else { continue };
            if args.interface_name.as_str() != crate::manager::UNIT_INTERFACE {
                continue;
            }
            let w = &mut units[i];
            let invalidated = args
                .invalidated_properties
                .iter()
                .any(|p| *p == "ActiveState" || *p == "SubState");
            let change = if invalidated {
                // systemd sent no values: read them.
                match current_state(&w.proxy).await {
                    Ok(s) if s != w.state => Some((s, None)),
                    Ok(_) => None,
                    Err(e) => {
                        log::warn!("reading the state of {}: {e}", w.unit);
                        None
                    }
                }
            } else {
                next_state(&w.state, &args.changed_properties)
            };
            if let Some((new, at)) = change {
                let event = UnitStateChange {
                    unit: w.unit.clone(),
                    old: std::mem::replace(&mut w.state, new.clone()),
                    new,
                    timestamp_us: at.unwrap_or_else(now_us),
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        }
    });
    Ok(UnitWatch { rx, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: ActiveState, sub: &str) -> UnitState {
        UnitState {
            active,
            sub: sub.into(),
        }
    }

    #[test]
    fn a_crash_is_a_change_with_systemds_timestamp() {
        let last = state(ActiveState::Active, "running");
        let changed = HashMap::from([
            ("ActiveState", Value::from("failed")),
            ("SubState", Value::from("failed")),
            ("StateChangeTimestamp", Value::U64(77)),
        ]);
        let (new, at) = next_state(&last, &changed).expect("change missed");
        assert_eq!(new, state(ActiveState::Failed, "failed"));
        assert_eq!(at, Some(77));
    }

    #[test]
    fn partial_deltas_keep_the_other_field() {
        let last = state(ActiveState::Active, "running");
        let changed = HashMap::from([("SubState", Value::from("reload"))]);
        let (new, at) = next_state(&last, &changed).expect("change missed");
        assert_eq!(new, state(ActiveState::Active, "reload"));
        assert_eq!(at, None);
    }

    #[test]
    fn other_properties_and_repeats_are_not_changes() {
        let last = state(ActiveState::Active, "running");
        let unrelated = HashMap::from([("MainPID", Value::U32(3))]);
        assert_eq!(next_state(&last, &unrelated), None);
        let same = HashMap::from([
            ("ActiveState", Value::from("active")),
            ("SubState", Value::from("running")),
        ]);
        assert_eq!(next_state(&last, &same), None);
    }
}
