//! The host's upgrade path, as far as it exists: what it reports.
//!
//! The `upgrade` part of `status:<fqdn>` and `GET /v1/upgrade` say which image and slot
//! the host booted and where an upgrade stands (`ccnq_api::upgrade`, the contract the
//! rollout driver reads). The path itself (download, slot write, reboot, blessing:
//! docs/upgrades.md) is not built yet, so the state is always `idle`.

use ccnq_api::Version;

/// The `since` of the `idle` state: when it was first reported (at the daemon's first
/// status write, moments after it started), since nothing moves it yet.
static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The `upgrade` part (`ccnq_api::upgrade`, read by the rollout driver): the booted
/// image and slot. The upgrade path itself is not built yet (issue #12), so the state
/// is always `idle`: no download, no slot write, no reboot is ever under way, and a
/// rollout waits on this host rather than counting it as upgraded. `None` off a CCNQ
/// image (no `IMAGE_VERSION` or no slot).
pub fn status(version: &Version) -> Option<ccnq_api::upgrade::UpgradeStatus> {
    use ccnq_api::upgrade::{Slot, UpgradeState, UpgradeStatus};
    let booted_slot = match version.slot.as_deref()? {
        "a" => Slot::A,
        "b" => Slot::B,
        "pxe" => Slot::Pxe,
        _ => return None,
    };
    Some(UpgradeStatus {
        booted_version: version.image_version.clone()?,
        booted_slot,
        other_slot_version: None,
        state: UpgradeState::Idle,
        target_version: None,
        reason: None,
        since: STARTED.get_or_init(crate::reconcile::report::now).clone(),
        progress: None,
    })
}
