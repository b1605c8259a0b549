//! What the host's upgrade path does next, decided without touching anything.
//!
//! An upgrade outlives the daemon: it spans a download that may break, a reboot, and a
//! boot on another slot that may fail. So its progress is a [`Record`] kept on `/var`
//! (shared by both slots), and every decision is a function of that record, what
//! booted, and what the document asks now. [`after_boot`] settles a reboot that the
//! record says was under way (did the new version come up, or did the boot loader go
//! back?), and [`next`] says what to do from here. The effects (`super`) do it and
//! write the record back; the tests here walk whole upgrades as data.

use ccnq_api::upgrade::{ByteProgress, Slot, UpgradeState, UpgradeStatus};
use ccnq_model::ImageSpec;
use serde::{Deserialize, Serialize};

/// What the host booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    pub version: String,
    pub slot: Slot,
}

impl Booted {
    /// The slot an upgrade writes: never the booted one.
    pub fn other_slot(&self) -> Option<Slot> {
        match self.slot {
            Slot::A => Some(Slot::B),
            Slot::B => Some(Slot::A),
            Slot::Pxe => None,
        }
    }
}

/// The upgrade's progress, as kept on `/var/lib/ccnq/update/state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The version under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The version the other slot holds, complete and checked; `None`: empty, or
    /// partly written (a write under way or cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_slot: Option<String>,
    /// The last version this host fell back from, and why. Not tried again while the
    /// document names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<Failure>,
    /// The last version this host blessed, and since when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blessed: Option<Settled>,
}

/// A version under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub version: String,
    pub phase: Phase,
    /// The version the host ran when it began (what the other slot keeps after).
    pub from: String,
    /// When `phase` began (RFC 3339).
    pub since: String,
}

/// How far a version under way got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Fetching and writing the other slot (resumed after a restart).
    Writing,
    /// The other slot holds it, checked, and its boot entry is in place.
    Written,
    /// The reboot into it was asked for.
    Rebooting,
    /// Booted on it; the boot is not blessed yet.
    Booted,
}

/// A version that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub version: String,
    pub reason: String,
    pub since: String,
}

/// A version blessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    pub version: String,
    pub since: String,
}

/// The outcome of a boot's health check (`ccnq-boot-check`), when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootCheck {
    /// Passed on this boot: the boot loader was told to keep it.
    Passed,
    /// Failed on a boot of `version`, for `reason` (read after the fall-back, from the
    /// failed boot's report on `/var`).
    Failed { version: String, reason: String },
}

/// Settles a reboot the record says was under way, now that the host is up again.
/// `check` is the latest boot check's outcome. Returns whether the record changed.
pub fn after_boot(
    record: &mut Record,
    booted: &Booted,
    check: Option<&BootCheck>,
    now: &str,
) -> bool {
    let Some(t) = record.target.clone() else {
        return false;
    };
    if !matches!(t.phase, Phase::Rebooting | Phase::Booted) {
        return false;
    }
    if booted.version == t.version {
        return match check {
            Some(BootCheck::Passed) => {
                record.target = None;
                record.other_slot = Some(t.from);
                record.blessed = Some(Settled {
                    version: t.version,
                    since: now.to_owned(),
                });
                record.rolled_back = None;
                true
            }
            _ if t.phase == Phase::Rebooting => {
                record.target = Some(Target {
                    phase: Phase::Booted,
                    since: now.to_owned(),
                    ..t
                });
                true
            }
            _ => false,
        };
    }
    // Up again, but not on the version it rebooted into: the new boot failed its
    // check (or never came up) until the boot loader's tries ran out.
    let reason = match check {
        Some(BootCheck::Failed { version, reason }) if *version == t.version => reason.clone(),
        _ => format!(
            "{} did not come up: the boot loader went back to {} after its tries",
            t.version, booted.version
        ),
    };
    record.target = None;
    record.other_slot = Some(t.version.clone());
    record.rolled_back = Some(Failure {
        version: t.version,
        reason,
        since: now.to_owned(),
    });
    true
}

/// What the upgrade path does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the host runs what the document asks, or it asks nothing.
    Idle,
    /// Fetch `version` and write it to the other slot (or go on doing so).
    Write { version: String },
    /// Written; the document holds it back (`image.hold`).
    WaitWave,
    /// Written; outside the document's maintenance window.
    WaitWindow,
    /// Written and free to go: drain, then reboot.
    Reboot { version: String },
    /// Booted on the target, waiting for the boot check's verdict.
    AwaitBlessing,
    /// The document names a version this host fell back from: stay.
    StayRolledBack,
    /// This host cannot take the version (a PXE host, no update source): say why.
    Cannot { reason: String },
}

/// How the host can take another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Write the other slot, then reboot into it.
    Slots,
    /// Booted from the network: reboot once the PXE server offers the version. What it
    /// offers this host now, or why that is not known.
    Pxe { offered: Result<String, String> },
    /// Not at all, and why (no update repository configured, no trust root).
    None(String),
}

/// What to do, given what the document asks (`wanted`), what booted, the record and
/// whether the maintenance window is open now.
pub fn next(
    wanted: Option<&ImageSpec>,
    booted: &Booted,
    record: &Record,
    capability: &Capability,
    window_open: bool,
) -> Next {
    if let Some(t) = &record.target {
        if t.phase == Phase::Booted && t.version == booted.version {
            return Next::AwaitBlessing;
        }
    }
    let Some(want) = wanted else {
        return Next::Idle;
    };
    if want.version == booted.version {
        return Next::Idle;
    }
    if record
        .rolled_back
        .as_ref()
        .is_some_and(|f| f.version == want.version)
    {
        return Next::StayRolledBack;
    }
    // Free to reboot into the version: the wave, then the window.
    let gate = |version: &str| {
        if want.hold {
            Next::WaitWave
        } else if !window_open {
            Next::WaitWindow
        } else {
            Next::Reboot {
                version: version.to_owned(),
            }
        }
    };
    match capability {
        Capability::None(reason) => {
            return Next::Cannot {
                reason: reason.clone(),
            }
        }
        Capability::Pxe { offered: Ok(v) } if *v == want.version => return gate(v),
        Capability::Pxe { offered: Ok(v) } => {
            return Next::Cannot {
                reason: format!(
                    "booted from the network, and the PXE server offers {v} to this host"
                ),
            }
        }
        Capability::Pxe { offered: Err(e) } => {
            return Next::Cannot {
                reason: format!(
                    "booted from the network, and what the PXE server offers is not known: {e}"
                ),
            }
        }
        Capability::Slots => {}
    }
    let written = record.other_slot.as_deref() == Some(want.version.as_str())
        && record
            .target
            .as_ref()
            .is_none_or(|t| t.version == want.version && t.phase != Phase::Writing);
    if !written {
        return Next::Write {
            version: want.version.clone(),
        };
    }
    gate(&want.version)
}

/// The boot entry of the written slot, as the ESP has it just before a reboot into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryFound {
    /// Present with tries left (or blessed): the boot loader will take it.
    Bootable,
    /// Present with no tries left (a boot that was not kept, or the booted entry a
    /// downgrade made the last resort), or not there: the boot loader would not take it.
    NotBootable { why: String },
}

/// Checked before every reboot into a written slot, so that no record can send the host
/// into a reboot that boots the same version again: returns whether to go ahead, and
/// otherwise forgets the slot, to be written again with fresh tries. (A boot that failed
/// is a fall-back `after_boot` has already recorded; this is the net under it.)
pub fn before_reboot(record: &mut Record, entry: &EntryFound) -> bool {
    match entry {
        EntryFound::Bootable => true,
        EntryFound::NotBootable { .. } => {
            record.target = None;
            record.other_slot = None;
            false
        }
    }
}

/// Forgets a fall-back once the document names another version: that version may be
/// tried again if a later document names it. Returns whether the record changed.
/// `document_seen` is false until the daemon has read a valid document: right after a
/// fall-back boot none has arrived yet, and forgetting then would send the host
/// straight back into the version that just failed (seen in qa/vm/upgrade-test: a
/// reboot loop between the two slots).
pub fn forget_rolled_back(
    record: &mut Record,
    wanted: Option<&ImageSpec>,
    document_seen: bool,
) -> bool {
    if !document_seen {
        return false;
    }
    let keep = match (&record.rolled_back, wanted) {
        (Some(f), Some(w)) => f.version == w.version,
        (Some(_), None) => false,
        (None, _) => return false,
    };
    if !keep {
        record.rolled_back = None;
    }
    !keep
}

/// What the effects know that the record does not: the moment-to-moment part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Bytes of the write under way.
    pub progress: Option<ByteProgress>,
    /// Draining or rebooting right now (set by the effects while they do it).
    pub activity: Option<UpgradeState>,
    /// Why the last attempt failed (a refused download, say); it is tried again.
    pub error: Option<String>,
    /// When the current state began, as the effects saw it change.
    pub since: String,
}

/// What the host says of its upgrade: the `upgrade` part of `status:<fqdn>`.
pub fn status(
    booted: &Booted,
    record: &Record,
    next: &Next,
    wanted: Option<&ImageSpec>,
    live: &Live,
) -> UpgradeStatus {
    let since = live.since.clone();
    let version = |v: &str| Some(v.to_owned());
    let wanted_version = wanted.map(|w| w.version.clone());
    let (state, target_version, reason, since) = match next {
        Next::Idle => match &record.blessed {
            Some(b) if b.version == booted.version => (
                UpgradeState::Blessed,
                version(&b.version),
                None,
                b.since.clone(),
            ),
            _ => (UpgradeState::Idle, None, None, since),
        },
        Next::Write { version: v } => (
            UpgradeState::Downloading,
            version(v),
            live.error.clone(),
            since,
        ),
        Next::WaitWave => (UpgradeState::WaitingWave, wanted_version, None, since),
        Next::WaitWindow => (UpgradeState::WaitingWindow, wanted_version, None, since),
        Next::Reboot { version: v } => (
            live.activity.unwrap_or(UpgradeState::Written),
            version(v),
            live.error.clone(),
            since,
        ),
        Next::AwaitBlessing => {
            let t = record.target.as_ref().expect("AwaitBlessing has a target");
            (
                UpgradeState::Rebooting,
                version(&t.version),
                None,
                t.since.clone(),
            )
        }
        Next::StayRolledBack => {
            let f = record.rolled_back.as_ref().expect("StayRolledBack has one");
            (
                UpgradeState::RolledBack,
                version(&f.version),
                Some(f.reason.clone()),
                f.since.clone(),
            )
        }
        // The contract's idle has no target: the version is named in the reason.
        Next::Cannot { reason } => (
            UpgradeState::Idle,
            None,
            Some(format!(
                "cannot take {}: {reason}",
                wanted_version.as_deref().unwrap_or("the version asked")
            )),
            since,
        ),
    };
    UpgradeStatus {
        booted_version: booted.version.clone(),
        booted_slot: booted.slot,
        other_slot_version: record.other_slot.clone(),
        state,
        target_version,
        reason,
        since,
        progress: live.progress,
    }
}

#[cfg(test)]
mod tests;
