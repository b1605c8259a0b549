//! What the API reports about a managed unit, and the typed states it is made of.
//!
//! The parsing of systemd's property maps is kept pure (`UnitInfo::from_properties`) so
//! the rules — 0 means "never"/"none", `u64::MAX` means "unknown", `not-found` is
//! reported as `absent` — are tested without a bus.

use std::collections::HashMap;
use std::fmt;

use zbus::zvariant::{OwnedValue, Value};

use crate::error::Error;

/// A unit's LoadState.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LoadState {
    Loaded,
    /// systemd's `not-found`: no unit file. Reported as `absent` to the operator.
    Absent,
    Stub,
    BadSetting,
    Error,
    Merged,
    Masked,
    Other(String),
}

impl LoadState {
    pub fn parse(s: &str) -> Self {
        match s {
            "loaded" => LoadState::Loaded,
            "not-found" => LoadState::Absent,
            "stub" => LoadState::Stub,
            "bad-setting" => LoadState::BadSetting,
            "error" => LoadState::Error,
            "merged" => LoadState::Merged,
            "masked" => LoadState::Masked,
            other => LoadState::Other(other.to_owned()),
        }
    }

    /// The word the status document uses (systemd's, except `absent`).
    pub fn as_str(&self) -> &str {
        match self {
            LoadState::Loaded => "loaded",
            LoadState::Absent => "absent",
            LoadState::Stub => "stub",
            LoadState::BadSetting => "bad-setting",
            LoadState::Error => "error",
            LoadState::Merged => "merged",
            LoadState::Masked => "masked",
            LoadState::Other(s) => s,
        }
    }
}

impl fmt::Display for LoadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit's ActiveState.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Maintenance,
    Refreshing,
    Other(String),
}

impl ActiveState {
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            "maintenance" => ActiveState::Maintenance,
            "refreshing" => ActiveState::Refreshing,
            other => ActiveState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Maintenance => "maintenance",
            ActiveState::Refreshing => "refreshing",
            ActiveState::Other(s) => s,
        }
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the API reports about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    pub name: String,
    pub load_state: LoadState,
    pub active_state: ActiveState,
    /// Type-specific state (`running`, `exited`, `dead`, `failed`, …).
    pub sub_state: String,
    /// When the unit entered its current state, in microseconds since the Unix epoch
    /// (StateChangeTimestamp, else ActiveEnterTimestamp); None if it never changed.
    pub since_us: Option<u64>,
    /// Service.MainPID; None for other unit types and when no process runs.
    pub main_pid: Option<u32>,
    /// Service.MemoryCurrent in bytes; None when systemd does not know (no memory
    /// accounting) or for other unit types.
    pub memory_bytes: Option<u64>,
    /// UnitFileState (`enabled`, `disabled`, `static`, …); None when empty.
    pub unit_file_state: Option<String>,
    /// Service.Result of the last run (`success`, `exit-code`, `signal`, `timeout`, …).
    pub result: Option<String>,
    /// The condition that kept the unit from starting at its last start, as a unit file
    /// writes it (`ConditionPathExists=/usr/bin/freeswitch`); None when the conditions
    /// held or were never checked. A skip is not a failure: the job ends `done`.
    pub unmet_condition: Option<String>,
}

fn str_prop<'a>(props: &'a HashMap<String, OwnedValue>, name: &str) -> Option<&'a str> {
    match props.get(name).map(|v| &**v) {
        Some(Value::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn u64_prop(props: &HashMap<String, OwnedValue>, name: &str) -> Option<u64> {
    match props.get(name).map(|v| &**v) {
        Some(Value::U64(n)) => Some(*n),
        _ => None,
    }
}

fn u32_prop(props: &HashMap<String, OwnedValue>, name: &str) -> Option<u32> {
    match props.get(name).map(|v| &**v) {
        Some(Value::U32(n)) => Some(*n),
        _ => None,
    }
}

/// The first condition that did not hold, from `ConditionResult`, `ConditionTimestamp`
/// and `Conditions` (`a(sbbsi)`: type, trigger, negate, parameter, state; state < 0 is
/// "did not hold"). A plain condition is named before a trigger (`|`) one: a plain one
/// that fails is the reason on its own.
fn unmet_condition(unit: &HashMap<String, OwnedValue>) -> Option<String> {
    let checked = u64_prop(unit, "ConditionTimestamp").is_some_and(|t| t != 0);
    let held = !matches!(
        unit.get("ConditionResult").map(|v| &**v),
        Some(Value::Bool(false))
    );
    if !checked || held {
        return None;
    }
    let Some(Value::Array(conditions)) = unit.get("Conditions").map(|v| &**v) else {
        return None;
    };
    let failed: Vec<(bool, String)> = conditions
        .iter()
        .filter_map(|c| match c {
            Value::Structure(s) => match s.fields() {
                [Value::Str(kind), Value::Bool(trigger), Value::Bool(negate), Value::Str(param), Value::I32(state)]
                    if *state < 0 =>
                {
                    let (t, n) = (if *trigger { "|" } else { "" }, if *negate { "!" } else { "" });
                    Some((*trigger, format!("{kind}={t}{n}{param}")))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    failed
        .iter()
        .find(|(trigger, _)| !trigger)
        .or_else(|| failed.first())
        .map(|(_, c)| c.clone())
}

impl UnitInfo {
    /// Builds the report from `GetAll(org.freedesktop.systemd1.Unit)` and, for a
    /// service, `GetAll(org.freedesktop.systemd1.Service)`.
    pub fn from_properties(
        name: &str,
        unit: &HashMap<String, OwnedValue>,
        service: Option<&HashMap<String, OwnedValue>>,
    ) -> Self {
        let nonzero = |v: Option<u64>| v.filter(|&t| t != 0);
        let since_us = nonzero(u64_prop(unit, "StateChangeTimestamp"))
            .or_else(|| nonzero(u64_prop(unit, "ActiveEnterTimestamp")));
        UnitInfo {
            name: name.to_owned(),
            load_state: LoadState::parse(str_prop(unit, "LoadState").unwrap_or("")),
            active_state: ActiveState::parse(str_prop(unit, "ActiveState").unwrap_or("")),
            sub_state: str_prop(unit, "SubState").unwrap_or("").to_owned(),
            since_us,
            main_pid: service
                .and_then(|s| u32_prop(s, "MainPID"))
                .filter(|&p| p != 0),
            memory_bytes: service
                .and_then(|s| u64_prop(s, "MemoryCurrent"))
                .filter(|&m| m != u64::MAX),
            unit_file_state: str_prop(unit, "UnitFileState")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            result: service
                .and_then(|s| str_prop(s, "Result"))
                .map(str::to_owned),
            unmet_condition: unmet_condition(unit),
        }
    }
}

/// Unit types systemd knows; a name must end in one of them.
const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
];

/// Rejects names systemd would refuse, before anything is sent: the API passes names
/// from operators, and a clear error here beats a D-Bus error string.
pub fn validate_unit_name(name: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::InvalidUnitName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    let Some(suffix) = UNIT_SUFFIXES.iter().find(|s| name.ends_with(*s)) else {
        return bad("does not end in a unit type such as .service");
    };
    let prefix = &name[..name.len() - suffix.len()];
    if prefix.is_empty() {
        return bad("empty name before the unit type");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
    {
        return bad("contains characters other than ASCII letters, digits and :-_.\\@");
    }
    if prefix.matches('@').count() > 1 || prefix.starts_with('@') {
        return bad("misplaced @ (template instances are name@instance)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, Value<'static>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OwnedValue::try_from(v.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn running_service_reports_pid_memory_and_since() {
        let unit = props(&[
            ("LoadState", Value::from("loaded")),
            ("ActiveState", Value::from("active")),
            ("SubState", Value::from("running")),
            ("StateChangeTimestamp", Value::U64(1_700_000_000_000_000)),
            ("ActiveEnterTimestamp", Value::U64(1_600_000_000_000_000)),
            ("UnitFileState", Value::from("enabled")),
        ]);
        let service = props(&[
            ("MainPID", Value::U32(42)),
            ("MemoryCurrent", Value::U64(4096)),
            ("Result", Value::from("success")),
        ]);
        let info = UnitInfo::from_properties("x.service", &unit, Some(&service));
        assert_eq!(info.load_state, LoadState::Loaded);
        assert_eq!(info.active_state, ActiveState::Active);
        assert_eq!(info.sub_state, "running");
        assert_eq!(info.since_us, Some(1_700_000_000_000_000));
        assert_eq!(info.main_pid, Some(42));
        assert_eq!(info.memory_bytes, Some(4096));
        assert_eq!(info.unit_file_state.as_deref(), Some("enabled"));
        assert_eq!(info.result.as_deref(), Some("success"));
    }

    #[test]
    fn unknown_memory_no_pid_and_missing_unit_are_reported_as_such() {
        let unit = props(&[
            ("LoadState", Value::from("not-found")),
            ("ActiveState", Value::from("inactive")),
            ("SubState", Value::from("dead")),
            ("StateChangeTimestamp", Value::U64(0)),
            ("ActiveEnterTimestamp", Value::U64(0)),
            ("UnitFileState", Value::from("")),
        ]);
        let service = props(&[
            ("MainPID", Value::U32(0)),
            ("MemoryCurrent", Value::U64(u64::MAX)),
        ]);
        let info = UnitInfo::from_properties("gone.service", &unit, Some(&service));
        assert_eq!(info.load_state, LoadState::Absent);
        assert_eq!(info.load_state.as_str(), "absent");
        assert_eq!(info.since_us, None);
        assert_eq!(info.main_pid, None);
        assert_eq!(info.memory_bytes, None);
        assert_eq!(info.unit_file_state, None);
    }

    #[test]
    fn since_falls_back_to_active_enter_timestamp() {
        let unit = props(&[("ActiveEnterTimestamp", Value::U64(5))]);
        assert_eq!(
            UnitInfo::from_properties("a.target", &unit, None).since_us,
            Some(5)
        );
    }

    #[test]
    fn unit_names_are_checked() {
        for ok in [
            "freeswitch.service",
            "couchdb.service",
            "getty@tty1.service",
            "var-lib.mount",
            "a\\x2db.service",
        ] {
            assert!(validate_unit_name(ok).is_ok(), "{ok} rejected");
        }
        for bad in [
            "",
            "freeswitch",
            ".service",
            "free switch.service",
            "a/b.service",
            "a@b@c.service",
            "x.servic",
        ] {
            assert!(
                matches!(validate_unit_name(bad), Err(Error::InvalidUnitName { .. })),
                "{bad:?} accepted"
            );
        }
        let long = format!("{}.service", "a".repeat(250));
        assert!(validate_unit_name(&long).is_err());
    }
}
