//! Whole upgrades walked as data: what the host decides at each step.

use super::*;

const T0: &str = "2026-12-02T01:00:00Z";
const T1: &str = "2026-12-02T02:00:00Z";

fn booted(version: &str, slot: Slot) -> Booted {
    Booted {
        version: version.into(),
        slot,
    }
}

fn want(version: &str, hold: bool) -> ImageSpec {
    ImageSpec {
        version: version.into(),
        hold,
        window: None,
    }
}

fn written(version: &str, from: &str) -> Record {
    Record {
        target: Some(Target {
            version: version.into(),
            phase: Phase::Written,
            from: from.into(),
            since: T0.into(),
        }),
        other_slot: Some(version.into()),
        ..Record::default()
    }
}

fn rebooting(version: &str, from: &str) -> Record {
    let mut r = written(version, from);
    r.target.as_mut().unwrap().phase = Phase::Rebooting;
    r
}

#[test]
fn a_host_on_the_version_asked_or_asked_nothing_is_idle() {
    let b = booted("1", Slot::A);
    let r = Record::default();
    assert_eq!(next(None, &b, &r, &Capability::Slots, true), Next::Idle);
    assert_eq!(
        next(Some(&want("1", false)), &b, &r, &Capability::Slots, true),
        Next::Idle
    );
}

#[test]
fn a_new_version_is_written_then_waits_for_the_wave_then_the_window_then_reboots() {
    let b = booted("1", Slot::A);
    assert_eq!(b.other_slot(), Some(Slot::B));
    let empty = Record::default();
    assert_eq!(
        next(Some(&want("2", true)), &b, &empty, &Capability::Slots, true),
        Next::Write {
            version: "2".into()
        },
        "a held version is still downloaded and written"
    );
    let r = written("2", "1");
    assert_eq!(
        next(Some(&want("2", true)), &b, &r, &Capability::Slots, true),
        Next::WaitWave
    );
    assert_eq!(
        next(Some(&want("2", false)), &b, &r, &Capability::Slots, false),
        Next::WaitWindow
    );
    assert_eq!(
        next(Some(&want("2", false)), &b, &r, &Capability::Slots, true),
        Next::Reboot {
            version: "2".into()
        }
    );
}

#[test]
fn a_write_cut_short_is_done_again_and_another_version_replaces_a_written_one() {
    let b = booted("1", Slot::A);
    let mut r = written("2", "1");
    r.target.as_mut().unwrap().phase = Phase::Writing;
    r.other_slot = None;
    assert_eq!(
        next(Some(&want("2", false)), &b, &r, &Capability::Slots, true),
        Next::Write {
            version: "2".into()
        }
    );
    // The document moved on to 3 while 2 sat written: 3 is written over it.
    let r = written("2", "1");
    assert_eq!(
        next(Some(&want("3", false)), &b, &r, &Capability::Slots, true),
        Next::Write {
            version: "3".into()
        }
    );
}

#[test]
fn a_downgrade_named_explicitly_is_an_upgrade_like_any_other() {
    let b = booted("2", Slot::B);
    assert_eq!(b.other_slot(), Some(Slot::A));
    let r = Record {
        other_slot: Some("1".into()),
        ..Record::default()
    };
    // The other slot still holds 1 from before: nothing to fetch, straight to reboot.
    assert_eq!(
        next(Some(&want("1", false)), &b, &r, &Capability::Slots, true),
        Next::Reboot {
            version: "1".into()
        }
    );
}

#[test]
fn the_new_version_booting_waits_for_its_blessing_then_is_blessed() {
    let mut r = rebooting("2", "1");
    let b = booted("2", Slot::B);
    assert!(after_boot(&mut r, &b, None, T1));
    assert_eq!(r.target.as_ref().unwrap().phase, Phase::Booted);
    assert_eq!(
        next(Some(&want("2", false)), &b, &r, &Capability::Slots, true),
        Next::AwaitBlessing
    );
    let s = status(&b, &r, &Next::AwaitBlessing, None, &Live::default());
    assert_eq!(s.state, UpgradeState::Rebooting);
    assert_eq!(s.since, T1);

    assert!(after_boot(&mut r, &b, Some(&BootCheck::Passed), T1));
    assert_eq!(r.target, None);
    assert_eq!(r.other_slot.as_deref(), Some("1"), "the old slot keeps 1");
    let n = next(Some(&want("2", false)), &b, &r, &Capability::Slots, true);
    assert_eq!(n, Next::Idle);
    let s = status(&b, &r, &n, Some(&want("2", false)), &Live::default());
    assert_eq!(s.state, UpgradeState::Blessed);
    assert!(s.is_settled_on("2"));
    assert!(!after_boot(&mut r, &b, Some(&BootCheck::Passed), T1));
}

#[test]
fn a_fall_back_is_reported_with_the_failed_boots_reason_and_not_tried_again() {
    let mut r = rebooting("3", "2");
    let b = booted("2", Slot::A);
    let check = BootCheck::Failed {
        version: "3".into(),
        reason: "profile test is not RUNNING on 192.0.2.10:5060".into(),
    };
    assert!(after_boot(&mut r, &b, Some(&check), T1));
    let f = r.rolled_back.clone().unwrap();
    assert_eq!(f.version, "3");
    assert!(f.reason.contains("profile test"), "{}", f.reason);
    let n = next(Some(&want("3", false)), &b, &r, &Capability::Slots, true);
    assert_eq!(n, Next::StayRolledBack);
    let s = status(&b, &r, &n, Some(&want("3", false)), &Live::default());
    assert_eq!(s.state, UpgradeState::RolledBack);
    assert!(s.is_about("3"));
    assert_eq!(s.booted_version, "2");
    assert_eq!(s.other_slot_version.as_deref(), Some("3"));

    // Just up after the fall-back, before any document has arrived: nothing is
    // forgotten, or the host would go straight back into 3 (its slot is still written).
    assert!(!forget_rolled_back(&mut r, None, false));
    assert!(r.rolled_back.is_some());
    assert_eq!(
        next(Some(&want("3", false)), &b, &r, &Capability::Slots, true),
        Next::StayRolledBack
    );

    // The document names another version: the fall-back is forgotten, 3 may come again.
    assert!(!forget_rolled_back(&mut r, Some(&want("3", false)), true));
    assert!(forget_rolled_back(&mut r, Some(&want("4", false)), true));
    assert_eq!(r.rolled_back, None);
}

#[test]
fn a_fall_back_without_a_report_says_the_boot_loader_went_back() {
    let mut r = rebooting("3", "2");
    let b = booted("2", Slot::A);
    // A report from an older failure does not explain this one.
    let stale = BootCheck::Failed {
        version: "9".into(),
        reason: "old".into(),
    };
    after_boot(&mut r, &b, Some(&stale), T1);
    let reason = r.rolled_back.unwrap().reason;
    assert!(reason.contains("3 did not come up"), "{reason}");
    assert!(reason.contains("went back to 2"), "{reason}");
}

#[test]
fn a_host_that_cannot_write_a_slot_says_why_and_stays_idle() {
    let b = booted("1", Slot::Pxe);
    assert_eq!(b.other_slot(), None);
    let cap = Capability::None("booted from the network".into());
    let n = next(Some(&want("2", false)), &b, &Record::default(), &cap, true);
    assert!(matches!(n, Next::Cannot { .. }));
    let live = Live {
        since: T0.into(),
        ..Live::default()
    };
    let s = status(&b, &Record::default(), &n, Some(&want("2", false)), &live);
    assert_eq!(s.state, UpgradeState::Idle);
    assert_eq!(s.target_version, None, "idle has no target in the contract");
    assert!(s.reason.unwrap().contains("cannot take 2"));
}

#[test]
fn a_network_booted_host_reboots_once_its_pxe_server_offers_the_version() {
    let b = booted("1", Slot::Pxe);
    let none = Record::default();
    let offers = |v: &str| Capability::Pxe {
        offered: Ok(v.into()),
    };
    // The server still boots it into 1: rebooting would change nothing.
    let n = next(Some(&want("2", false)), &b, &none, &offers("1"), true);
    match &n {
        Next::Cannot { reason } => assert!(reason.contains("offers 1 to this host"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let n = next(
        Some(&want("2", false)),
        &b,
        &none,
        &Capability::Pxe {
            offered: Err("no default.ipxe".into()),
        },
        true,
    );
    assert!(matches!(&n, Next::Cannot { reason } if reason.contains("no default.ipxe")));
    // Offered: the wave, then the window, then the drain and the reboot.
    assert_eq!(
        next(Some(&want("2", true)), &b, &none, &offers("2"), true),
        Next::WaitWave
    );
    assert_eq!(
        next(Some(&want("2", false)), &b, &none, &offers("2"), false),
        Next::WaitWindow
    );
    assert_eq!(
        next(Some(&want("2", false)), &b, &none, &offers("2"), true),
        Next::Reboot {
            version: "2".into()
        }
    );
    // Up on 2 (nothing kept across a network boot): settled.
    assert_eq!(
        next(
            Some(&want("2", false)),
            &booted("2", Slot::Pxe),
            &none,
            &offers("2"),
            true
        ),
        Next::Idle
    );
}

#[test]
fn a_refused_download_is_reported_while_it_is_tried_again() {
    let b = booted("1", Slot::A);
    let n = next(
        Some(&want("2", false)),
        &b,
        &Record::default(),
        &Capability::Slots,
        true,
    );
    let live = Live {
        error: Some("update repository refused (Signature): …".into()),
        progress: Some(ByteProgress {
            done: 0,
            total: 10,
            step: None,
        }),
        since: T0.into(),
        ..Live::default()
    };
    let s = status(&b, &Record::default(), &n, Some(&want("2", false)), &live);
    assert_eq!(s.state, UpgradeState::Downloading);
    assert!(s.reason.unwrap().contains("Signature"));
    assert_eq!(s.progress.unwrap().total, 10);
}

#[test]
fn draining_and_rebooting_show_while_the_effects_do_them() {
    let b = booted("1", Slot::A);
    let r = written("2", "1");
    let n = next(Some(&want("2", false)), &b, &r, &Capability::Slots, true);
    for activity in [UpgradeState::Draining, UpgradeState::Rebooting] {
        let live = Live {
            activity: Some(activity),
            since: T1.into(),
            ..Live::default()
        };
        let s = status(&b, &r, &n, Some(&want("2", false)), &live);
        assert_eq!(s.state, activity);
        assert!(s.is_about("2"));
    }
}

#[test]
fn the_record_round_trips_through_its_file_format() {
    let r = rebooting("2", "1");
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("\"phase\":\"rebooting\""), "{text}");
    assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    assert_eq!(
        serde_json::from_str::<Record>("{}").unwrap(),
        Record::default()
    );
}

#[test]
fn no_reboot_into_a_slot_whose_entry_is_spent_or_gone() {
    let mut r = written("3", "2");
    assert!(before_reboot(&mut r, &EntryFound::Bootable));
    assert_eq!(r, written("3", "2"), "a bootable entry changes nothing");

    let spent = EntryFound::NotBootable {
        why: "ccnq_3+0-1.efi has no tries left".into(),
    };
    assert!(!before_reboot(&mut r, &spent));
    let b = booted("2", Slot::A);
    assert_eq!(
        next(Some(&want("3", false)), &b, &r, &Capability::Slots, true),
        Next::Write {
            version: "3".into()
        },
        "written again, with fresh tries"
    );
}
