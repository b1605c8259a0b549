//! The `upgrade` part of `status:<fqdn>`: what a host says of its image upgrade.
//!
//! It is a contract between two programs that never meet: the host's upgrade path (in
//! `ccnqd`, which writes it) and the rollout driver (`ccnq-rollout`, which reads it from
//! the central database to decide which host may reboot next). It lives here, beside the
//! API's other documents, so that neither side can drift from the other. See
//! `docs/fleet.md` for how the driver reads each state.
//!
//! Rules the writer keeps, because the driver relies on them:
//! - `state` is about `target_version`: `written` for version X means X is in the other
//!   slot, not that some version is.
//! - A host whose document says `image.hold: true` never reboots into the held version;
//!   it reports `waiting-wave` once the slot is written.
//! - After `rolled-back` from X the host does not try X again until its document changes.
//! - `since` changes only when `state` or `target_version` does (never on a progress
//!   update), so it tells how long the host has been in this state.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// `status:<fqdn>`'s `upgrade` object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UpgradeStatus {
    /// The image version the host runs now (os-release `IMAGE_VERSION`).
    pub booted_version: String,
    /// Where it booted from.
    pub booted_slot: Slot,
    /// The version written in the other A/B slot, if any (none when PXE-booted or the
    /// slot is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_slot_version: Option<String>,
    /// Where the upgrade stands.
    pub state: UpgradeState,
    /// The version `state` is about; absent when `idle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// Why, for `rolled-back` and for any state entered after a failure (a download
    /// refused, say); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When `state` began (RFC 3339, UTC).
    pub since: String,
    /// Bytes of the download, while `downloading` (and kept once `written`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ByteProgress>,
}

impl UpgradeStatus {
    /// Whether the host runs `version` and has nothing under way: blessed on it, or idle
    /// on it (a host installed with that version, or blessed long ago).
    pub fn is_settled_on(&self, version: &str) -> bool {
        self.booted_version == version
            && matches!(self.state, UpgradeState::Idle | UpgradeState::Blessed)
    }

    /// Whether this state is about `version`.
    pub fn is_about(&self, version: &str) -> bool {
        self.target_version.as_deref() == Some(version)
    }
}

/// The slot a host booted from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
    /// Booted from the network: there is no other slot to write, the next boot takes
    /// whatever the PXE server serves.
    Pxe,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
            Slot::Pxe => "pxe",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a host's upgrade stands, in the order a successful one goes through them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeState {
    /// Nothing under way: the host runs what its document asks (or it asks nothing).
    Idle,
    /// Fetching `target_version`.
    Downloading,
    /// `target_version` is in the other slot and checked.
    Written,
    /// Written, and waiting for the host's maintenance window before rebooting.
    WaitingWindow,
    /// Written, and held by the document (`image.hold: true`): a rollout's wave has not
    /// released this host yet.
    WaitingWave,
    /// Draining calls before the reboot.
    Draining,
    /// Rebooting into `target_version` (written before the reboot, so the last word of
    /// a host that never comes back is this).
    Rebooting,
    /// Booted `target_version` and confirmed it good: the slot is kept.
    Blessed,
    /// Booted `target_version`, found it bad (or it did not boot), and went back to the
    /// previous slot; `reason` says why.
    RolledBack,
}

impl UpgradeState {
    pub const ALL: [UpgradeState; 9] = [
        UpgradeState::Idle,
        UpgradeState::Downloading,
        UpgradeState::Written,
        UpgradeState::WaitingWindow,
        UpgradeState::WaitingWave,
        UpgradeState::Draining,
        UpgradeState::Rebooting,
        UpgradeState::Blessed,
        UpgradeState::RolledBack,
    ];

    /// The name as the document spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeState::Idle => "idle",
            UpgradeState::Downloading => "downloading",
            UpgradeState::Written => "written",
            UpgradeState::WaitingWindow => "waiting-window",
            UpgradeState::WaitingWave => "waiting-wave",
            UpgradeState::Draining => "draining",
            UpgradeState::Rebooting => "rebooting",
            UpgradeState::Blessed => "blessed",
            UpgradeState::RolledBack => "rolled-back",
        }
    }
}

impl fmt::Display for UpgradeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much of the slot's making is done, in bytes: the download, then the write, both
/// counted in one `total` (so a bar fills once), with the step under way.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ByteProgress {
    pub done: u64,
    pub total: u64,
    /// `download` or `write` (absent from hosts that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<ProgressStep>,
}

/// The step a [`ByteProgress`] is in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProgressStep {
    /// Fetching the artifacts from the repository.
    Download,
    /// Writing the other slot's partitions and checking them.
    Write,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_are_spelled_as_the_document_spells_them() {
        for state in UpgradeState::ALL {
            let v = serde_json::to_value(state).unwrap();
            assert_eq!(v, json!(state.as_str()));
            assert_eq!(serde_json::from_value::<UpgradeState>(v).unwrap(), state);
        }
        assert!(serde_json::from_value::<UpgradeState>(json!("waiting_wave")).is_err());
    }

    #[test]
    fn a_full_status_round_trips_and_optional_parts_may_be_absent() {
        let full = json!({
            "booted_version": "2026.11.2",
            "booted_slot": "a",
            "other_slot_version": "2026.12.1",
            "state": "downloading",
            "target_version": "2026.12.1",
            "since": "2026-12-02T04:00:00Z",
            "progress": { "done": 1024, "total": 4096, "step": "download" }
        });
        let s: UpgradeStatus = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(s.booted_slot, Slot::A);
        assert_eq!(
            s.progress,
            Some(ByteProgress {
                done: 1024,
                total: 4096,
                step: Some(ProgressStep::Download),
            })
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), full);

        let idle: UpgradeStatus = serde_json::from_value(json!({
            "booted_version": "2026.12.1", "booted_slot": "pxe", "state": "idle",
            "since": "2026-12-02T04:00:00Z"
        }))
        .unwrap();
        assert!(idle.is_settled_on("2026.12.1"));
        assert!(!idle.is_settled_on("2026.11.2"));
        assert!(!idle.is_about("2026.12.1"));
    }

    #[test]
    fn only_idle_or_blessed_on_the_version_is_settled() {
        let mut s: UpgradeStatus = serde_json::from_value(json!({
            "booted_version": "2", "booted_slot": "b", "state": "rolled-back",
            "target_version": "2", "reason": "boot check failed", "since": "2026-12-02T04:00:00Z"
        }))
        .unwrap();
        assert!(!s.is_settled_on("2"));
        s.state = UpgradeState::Blessed;
        assert!(s.is_settled_on("2"));
        s.state = UpgradeState::Rebooting;
        assert!(!s.is_settled_on("2"));
    }
}
