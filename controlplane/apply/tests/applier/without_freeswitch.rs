//! A host where FreeSWITCH never runs: its unit not installed (an image built without
//! it), or skipped by its start condition. No event socket answers; what systemd says
//! must reach the outcome.

use crate::common::{self, ContainerExt};
use crate::fixture::{base, changed, plan_between, plan_first, rendering};
use ccnq_apply::{Applier, ApplyOptions, FileStore, Outcome};
use ccnq_freeswitch::Action;
use ccnq_systemd::Systemd;
use serde_json::json;
use std::time::Duration;

/// An applier on a real systemd whose FreeSWITCH `unit` never runs (not there, or
/// skipped by its condition): no event socket answers, so the deadlines are short.
fn applier_without_freeswitch(
    systemd: Systemd,
    unit: &str,
    data: &tempfile::TempDir,
) -> Applier<Systemd> {
    let options = ApplyOptions {
        command_timeout: Duration::from_secs(5),
        confirm_deadline: Duration::from_secs(2),
        unit: unit.into(),
        ..ApplyOptions::new("ClueCon", Duration::from_secs(1))
    };
    Applier::new(FileStore::open(data.path()).unwrap(), systemd, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_freeswitch_installed_off_is_clean_and_on_fails_saying_why() {
    let systemd = common::container().connect().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut applier =
        applier_without_freeswitch(systemd, "fs-not-installed-on-this-image.service", &tmp);

    // A server-only host on an image built without FreeSWITCH: stop and disable what is
    // not installed, which leaves it as asked.
    let off = changed("1-a", |d| d["server_only"] = json!(true));
    let first = plan_first(&off);
    assert!(first
        .actions()
        .any(|a| matches!(a, Action::StopFreeswitch | Action::DisableFreeswitch)));
    let report = applier
        .apply(&first, &rendering(&off), &off, "1-a", &|_| {})
        .await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:#?}");

    // Asking for FreeSWITCH there fails, and says it is not installed.
    let on = changed("2-b", |_| {});
    let second = plan_between(&off, &on);
    let report = applier
        .apply(&second, &rendering(&on), &on, "2-b", &|_| {})
        .await;
    match &report.outcome {
        Outcome::Failed { reason, .. } => assert!(reason.contains("not installed"), "{reason}"),
        Outcome::Ok => panic!("FreeSWITCH cannot start where it is not installed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_skipped_by_its_unit_condition_fails_at_that_step_saying_so() {
    let c = common::container();
    let systemd = c.connect().await;
    // As the image's freeswitch.service without FreeSWITCH: the unit file is there, its
    // condition fails, and systemd ends the start job `done` without running anything.
    let unit = "fs-condition-fails.service";
    std::fs::write(
        c.units.join(unit),
        "[Unit]\nConditionPathExists=/usr/bin/not-installed-here\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    systemd.daemon_reload().await.unwrap();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut applier = applier_without_freeswitch(systemd, unit, &tmp);
    let on = base();
    let first = plan_first(&on);
    let report = applier
        .apply(&first, &rendering(&on), &on, "1-a", &|_| {})
        .await;
    match &report.outcome {
        Outcome::Failed { action, reason, .. } => {
            assert!(action.contains("systemd restart"), "{action}");
            assert!(reason.contains("start condition failed"), "{reason}");
        }
        Outcome::Ok => panic!("a start skipped by its condition is not a success"),
    }
}
