//! The applier against its real neighbours: plans made by the real planner from host
//! documents rendered by the real renderer, files installed by the real [`FileStore`],
//! systemd jobs run by a real systemd (an nspawn container), and the real FreeSWITCH
//! 1.11.2 as a unit of that systemd (`ccnq_testkit::freeswitch`), reading the installed
//! files through the store's link. Each test binds its sofia profiles on a loopback
//! address of its own (`ccnq_testkit::freeswitch::loopback`); what FreeSWITCH did is
//! checked over its event socket.
//!
//! The faults FreeSWITCH cannot be made to produce on purpose (a `reloadxml` that does
//! not parse: the renderer never writes such files; calls that end on a script, for the
//! drains) are injected with `ccnq-esl-peer`, the event-socket test double checked
//! against the recordings, on a stand-in unit that counts its starts: those tests, in
//! [`double`], say `with_the_double` in their names.
//!
//! [`fixture`] is the harness; this file holds the applies on the real FreeSWITCH,
//! [`without_freeswitch`] those on a host where FreeSWITCH never runs.

#[path = "../common/mod.rs"]
mod common;
mod double;
mod fixture;
mod without_freeswitch;

use ccnq_apply::{Outcome, Progress, Services};
use ccnq_freeswitch::Action;
use common::ContainerExt;
use fixture::{eventually, real, rendering, sent, step_of, Plays, Setup};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_only_change_costs_reloadxml_then_reloadacl() {
    let mut f = real("fs-acl", 1, Setup::default()).await;
    assert_eq!(f.api("acl 127.0.0.3 test-ingress").await, "false");
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["test"]["ingress_acl"] = json!(["127.0.0.1/32", "127.0.0.3/32"])
    });
    let (_, report, _) = f.apply(&new).await;
    assert_eq!(report.outcome, Outcome::Ok);
    assert_eq!(sent(&report), ["reloadxml", "reloadacl"]);
    let replies: Vec<_> = report
        .actions
        .iter()
        .filter_map(|a| a.reply.as_deref())
        .collect();
    assert!(replies.contains(&"+OK [Success]"), "{replies:?}");
    assert!(replies.contains(&"+OK acl reloaded"), "{replies:?}");
    // FreeSWITCH has the new list, and nothing was restarted.
    assert_eq!(f.api("acl 127.0.0.3 test-ingress").await, "true");
    assert_eq!(f.api("acl 127.0.0.3 test-egress").await, "false");
    assert!(f.jobs.lock().unwrap().is_empty());
    assert_eq!(f.installed_rev(), "2-b");
    assert_eq!(f.installed_tree(), rendering(&new).tree);
    // Recorded as applied once its last step succeeded; nothing left in doubt.
    assert_eq!(f.applied_and_in_doubt(), ("2-b".into(), vec![]));
    assert!(f.applier.store().current().unwrap().unwrap().confirmed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_settings_change_rescans_that_profile_only() {
    let mut f = real("fs-rescan", 2, Setup::default()).await;
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU");
    });
    let (_, report, _) = f.apply(&new).await;
    assert_eq!(report.outcome, Outcome::Ok);
    // Document profile `test` is two sofia profiles; `other` is left alone.
    assert_eq!(
        sent(&report),
        [
            "reloadxml",
            "sofia profile test-egress rescan",
            "sofia profile test-ingress rescan"
        ]
    );
    // Applied live, without a rebind.
    assert_eq!(f.profile_field("test-ingress", "CODECS IN").await, "PCMU");
    assert_eq!(f.profile_field("test-egress", "CODECS IN").await, "PCMU");
    assert_eq!(f.profile_field("other-ingress", "CODECS IN").await, "PCMA");
    let ip = f.ip();
    assert!(f
        .sofia()
        .await
        .is_running_at("test-ingress", &format!("{ip}:5200")));
    assert_eq!(f.installed_rev(), "2-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_change_restarts_after_the_ten_second_wait_then_confirms() {
    let mut f = real("fs-bind", 3, Setup::default()).await;
    let Plays::Real(_, Some(started)) = f.peer else {
        unreachable!("started by the fixture")
    };
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["test"]["ingress_sip_port"] = json!(5201)
    });
    let (plan, report, progress) = f.apply(&new).await;
    let since_start = started.elapsed();
    assert_eq!(report.outcome, Outcome::Ok);
    assert!(plan
        .actions()
        .any(|a| matches!(a, Action::RestartProfile { profile, .. } if profile == "test-ingress")));
    let cmds = sent(&report);
    assert_eq!(
        cmds,
        [
            "reloadxml",
            "sofia profile test-ingress restart",
            "sofia xmlstatus"
        ]
    );
    let restart = report
        .actions
        .iter()
        .find(|a| a.command.as_deref() == Some("sofia profile test-ingress restart"))
        .unwrap();
    assert_eq!(
        restart.reply.as_deref(),
        Some("Reload XML [Success]\nrestarting: test-ingress")
    );
    // FreeSWITCH was started by the fixture just before: it refuses the restart until the
    // profile is 10 s old, and the applier waits as long as it says.
    match progress.as_slice() {
        [Progress::WaitingForProfile { profile, seconds }] => {
            assert_eq!(profile, "test-ingress");
            assert!((1..=10).contains(seconds), "{seconds}");
            assert!(restart.note.as_deref().unwrap().contains("refused 1 time"));
        }
        // Not refused: then the profile, started after `started`, was 10 s old when the
        // restart was sent, before the apply ended.
        [] => assert!(since_start >= Duration::from_secs(10), "{since_start:?}"),
        other => panic!("expected one wait for test-ingress, got {other:?}"),
    }
    let ip = f.ip();
    let s = f.sofia().await;
    assert!(
        s.is_running_at("test-ingress", &format!("{ip}:5201")),
        "{s:?}"
    );
    assert!(
        s.is_running_at("test-egress", &format!("{ip}:15200")),
        "{s:?}"
    );
    let old = format!("{ip}:5200");
    eventually("the old port released", || async {
        std::net::UdpSocket::bind(&old).is_ok()
    })
    .await;
    assert_eq!(f.installed_rev(), "2-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_profile_is_started_and_confirmed() {
    let mut f = real("fs-new", 4, Setup::default()).await;
    let ip = f.ip();
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["new"] = json!({
            "ingress_sip_ip": ip, "ingress_sip_port": 5300, "egress_sip_port": 15300
        })
    });
    let (_, report, _) = f.apply(&new).await;
    assert_eq!(report.outcome, Outcome::Ok);
    // A new profile brings its ACL lists: reloadacl too; then each start is confirmed.
    assert_eq!(
        sent(&report),
        [
            "reloadxml",
            "reloadacl",
            "sofia profile new-egress start",
            "sofia profile new-ingress start",
            "sofia xmlstatus",
            "sofia xmlstatus"
        ]
    );
    let s = f.sofia().await;
    assert!(
        s.is_running_at("new-ingress", &format!("{ip}:5300")),
        "{s:?}"
    );
    assert!(
        s.is_running_at("new-egress", &format!("{ip}:15300")),
        "{s:?}"
    );
    assert!(
        s.is_running_at("test-ingress", &format!("{ip}:5200")),
        "{s:?}"
    );
    assert_eq!(f.installed_rev(), "2-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_failure_fails_rolls_the_files_back_and_reloads_them() {
    // TEST-NET-1: documentation only, not an address of this host.
    let absent = "192.0.2.123";
    assert!(
        std::net::UdpSocket::bind((absent, 0)).is_err(),
        "this machine has {absent}: the test needs an address the host does not have"
    );
    let mut f = real(
        "fs-bindfail",
        5,
        Setup {
            // The profile never appears: a short deadline is enough to see it fail.
            confirm_deadline: Duration::from_secs(3),
            ..Setup::default()
        },
    )
    .await;
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["bad"] = json!({
            "ingress_sip_ip": absent, "ingress_sip_port": 5500, "egress_sip_port": 15500
        })
    });
    let (plan, report, _) = f.apply(&new).await;
    let confirm = step_of(&plan, |a| matches!(a, Action::ConfirmProfile { .. }));
    match &report.outcome {
        Outcome::Failed {
            step,
            action,
            reason,
        } => {
            assert_eq!(*step, confirm);
            assert_eq!(*action, plan.steps[confirm].description);
            // What the status shows, and FreeSWITCH's own words for it, from its log.
            assert!(
                reason.contains("is not listed in sofia xmlstatus; FreeSWITCH: Error Creating SIP UA for profile: bad-egress (sip:mod_sofia@192.0.2.123:15500"),
                "{reason}"
            );
        }
        Outcome::Ok => panic!("a profile that never bound was reported applied"),
    }
    // FreeSWITCH said it started them, and says in its log why they never ran.
    let start = report
        .actions
        .iter()
        .find(|a| a.command.as_deref() == Some("sofia profile bad-egress start"))
        .unwrap();
    assert_eq!(
        start.reply.as_deref(),
        Some("Reload XML [Success]\nbad-egress started successfully")
    );
    eventually("FreeSWITCH's words for the bind failure", || async {
        f.freeswitch()
            .log()
            .contains("Error Creating SIP UA for profile: bad-")
    })
    .await;
    // The new ACL lists were loaded before the failure: the rollback loads the old ones
    // again, and sends nothing else.
    let cmds = sent(&report);
    assert_eq!(
        cmds[cmds.len() - 3..],
        ["sofia xmlstatus", "reloadxml", "reloadacl"],
        "{cmds:?}"
    );
    let after_confirm = report
        .actions
        .iter()
        .filter(|a| a.step.is_some_and(|s| s > confirm))
        .count();
    assert_eq!(after_confirm, 0);
    let rollback = report
        .actions
        .iter()
        .filter(|a| a.step.is_none())
        .collect::<Vec<_>>();
    assert_eq!(rollback.len(), 3, "{rollback:?}");
    assert!(rollback.iter().all(|a| a.ok));
    assert_eq!(rollback[0].reply.as_deref(), Some("generation 1"));
    assert_eq!(rollback[1].reply.as_deref(), Some("+OK [Success]"));
    assert_eq!(rollback[2].reply.as_deref(), Some("+OK acl reloaded"));
    assert_eq!(f.installed_rev(), "1-a");
    // Not applied; in doubt, since what it started may still run.
    let (applied, in_doubt) = f.applied_and_in_doubt();
    assert_eq!(
        (applied.as_str(), in_doubt.len()),
        ("1-a", 1),
        "{in_doubt:?}"
    );
    assert_eq!(f.installed_tree(), rendering(&f.base).tree);
    assert!(!f
        .data_dir
        .join("freeswitch/sip_profiles/bad-ingress.xml")
        .exists());
    // The old ACL lists are back in FreeSWITCH (`bad-ingress` is gone with its file), and
    // the other profiles never stopped.
    assert_eq!(f.api("acl 127.0.0.1 bad-ingress").await, "false");
    assert_eq!(f.api("acl 127.0.0.1 test-ingress").await, "true");
    let ip = f.ip();
    let s = f.sofia().await;
    assert!(s.profile("bad-ingress").is_none(), "{s:?}");
    for (p, port) in [
        ("test-ingress", 5200),
        ("test-egress", 15200),
        ("other-ingress", 5400),
    ] {
        assert!(s.is_running_at(p, &format!("{ip}:{port}")), "{p}: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_freeswitch_stopped_the_files_are_installed_and_nothing_is_sent() {
    let mut f = real(
        "fs-inactive",
        6,
        Setup {
            active: false,
            ..Setup::default()
        },
    )
    .await;
    let new = f.changed("2-b", |d| {
        d["sip_profiles"]["test"]["ingress_acl"] = json!(["127.0.0.1/32", "127.0.0.3/32"]);
        d["image"] = json!({ "version": "2026.11.2" });
    });
    let (plan, report, _) = f.apply(&new).await;
    assert_eq!(report.outcome, Outcome::Ok);
    assert!(sent(&report).is_empty(), "{report:?}");
    assert_eq!(f.installed_rev(), "2-b");
    assert_eq!(report.actions.len(), plan.steps.len());
    for (a, s) in report.actions.iter().zip(&plan.steps) {
        match &s.action {
            Action::WriteFiles { .. } => assert!(a.ok && a.note.is_some()),
            Action::ReloadXml | Action::ReloadAcl => {
                assert!(a
                    .note
                    .as_deref()
                    .unwrap()
                    .starts_with("skipped: FreeSWITCH is not running"))
            }
            Action::Upgrade { .. } => {
                assert!(a
                    .note
                    .as_deref()
                    .unwrap()
                    .contains("handed to the upgrade path"))
            }
            other => panic!("unexpected step {other:?}"),
        }
    }
    assert!(f.jobs.lock().unwrap().is_empty());
    // Still not running, and when it starts it reads the new files.
    let systemd = common::container().connect().await;
    let unit = &f.freeswitch().unit;
    assert!(!systemd.is_active(unit).await.unwrap());
    assert_eq!(systemd.start(unit).await.unwrap().as_str(), "done");
    assert_eq!(f.api("acl 127.0.0.3 test-ingress").await, "true");
}
