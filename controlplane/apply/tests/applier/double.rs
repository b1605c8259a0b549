//! The faults FreeSWITCH cannot be made to produce on purpose, injected with
//! `ccnq-esl-peer`, the event-socket test double checked against the recordings, on a
//! stand-in unit of the real systemd that counts its starts: a `reloadxml` that does not
//! parse (the renderer never writes such files), and calls that end on a script, for the
//! drains. Every test here says `with_the_double` in its name.

use crate::common::{self, ContainerExt};
use crate::fixture::{
    base, changed, plan_first, rendering, step_of, Fixture, Observed, Plays, Setup,
};
use ccnq_apply::{Applier, ApplyOptions, FileStore, Outcome, Progress};
use ccnq_esl_peer::{Peer, PeerConfig};
use ccnq_freeswitch::{Action, SystemdJob};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The applier's journal: every `log` line of this test binary, kept so a test can read
/// what the daemon's journal would say. Installed on first use.
fn journal() -> &'static Mutex<Vec<String>> {
    struct Capture(Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }
    static CAPTURE: std::sync::OnceLock<&'static Capture> = std::sync::OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
        c
    });
    &capture.0
}

/// `base()` applied (installed, the double booted on it), the stand-in unit `name`
/// running or not: for the faults only the double produces.
pub async fn with_the_double(name: &str, setup: Setup) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().to_owned();
    let mut store = FileStore::open(&data_dir).expect("open store");
    let doc = base();
    store
        .install(&rendering(&doc).tree, &doc, "1-a")
        .expect("install the base");
    store.confirm(&doc, "1-a").expect("the base applied");
    let peer = Arc::new(
        Peer::start(PeerConfig {
            conf_dir: Some(data_dir.join("freeswitch")),
            channels: setup.channels,
            ..PeerConfig::default()
        })
        .await
        .expect("start the event-socket peer"),
    );
    let c = common::container();
    let systemd = c.connect().await;
    let unit = c
        .install_freeswitch_standin(&systemd, name, setup.install_section)
        .await;
    if setup.active {
        assert_eq!(systemd.start(&unit).await.unwrap().as_str(), "done");
    }
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let options = ApplyOptions {
        esl_addr: peer.addr(),
        command_timeout: Duration::from_secs(5),
        confirm_deadline: setup.confirm_deadline,
        poll_interval: Duration::from_millis(50),
        unit,
        ..ApplyOptions::new("ClueCon", setup.drain_deadline)
    };
    let services = Observed {
        systemd,
        peer: Some(peer.clone()),
        jobs: jobs.clone(),
    };
    Fixture {
        _tmp: Some(tmp),
        data_dir,
        base: doc,
        peer: Plays::Double(peer),
        name: name.to_owned(),
        jobs,
        applier: Applier::new(store, services, options),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_double_a_reloadxml_parse_error_fails_and_keeps_the_previous_generation() {
    let journal = journal();
    let mut f = with_the_double("fs-parse", Setup::default()).await;
    // A revision of its own, to find this apply's lines in the journal.
    let new = changed("2-parse", |d| {
        d["sip_profiles"]["test"]["ingress_acl"] = json!(["127.0.0.1/32", "127.0.0.3/32"])
    });
    // Files FreeSWITCH cannot parse (as a renderer bug would write them).
    let mut broken = rendering(&new);
    broken.tree = broken
        .tree
        .iter()
        .map(|(p, b)| {
            let b = if p == "sip_profiles/test-ingress.xml" {
                b"<profile name=\"test-ingress\"><settings>".to_vec()
            } else {
                b.to_vec()
            };
            (p.to_owned(), b)
        })
        .collect();
    let (plan, report, _) = f.apply_with(&new, &broken).await;
    let reload = step_of(&plan, |a| *a == Action::ReloadXml);
    match &report.outcome {
        Outcome::Failed { step, reason, .. } => {
            assert_eq!(*step, reload);
            assert!(
                reason.starts_with("+OK [") && reason != "+OK [Success]",
                "{reason}"
            );
        }
        Outcome::Ok => panic!("a failed reloadxml was reported applied"),
    }
    // One step number everywhere, counted from 1 as `ccnqctl config plan` lists them: the
    // reason, the journal and the records of the status document.
    let number = reload + 1;
    let reason = report.outcome.to_string();
    assert!(
        reason.starts_with(&format!("step {number} (reloadxml) failed: +OK [")),
        "{reason}"
    );
    let lines = journal.lock().unwrap().clone();
    assert!(
        lines.contains(&format!("apply of rev 2-parse: {reason}")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "apply of rev 2-parse: failed at step {number} in "
        ))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "apply step {number} (reloadxml): command \"reloadxml\""
        )) && l.contains("FAILED")),
        "{lines:#?}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["outcome"]["step"], json!(number));
    let recorded: Vec<&Value> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["command"] == "reloadxml" && a["ok"] == false)
        .collect();
    assert_eq!(recorded.len(), 1, "{json:#}");
    assert_eq!(recorded[0]["step"], json!(number));
    // reloadacl is never sent; the rollback's reloadxml reads the good files again.
    assert_eq!(f.double().commands(), ["reloadxml", "reloadxml"]);
    let last = report.actions.last().unwrap();
    assert_eq!(
        (last.step, last.reply.as_deref(), last.ok),
        (None, Some("+OK [Success]"), true)
    );
    assert_eq!(f.installed_rev(), "1-a");
    assert_eq!(f.installed_tree(), rendering(&base()).tree);
    assert_eq!(f.applier.store().previous_generation(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_double_a_drain_waits_for_the_last_scripted_call_then_restarts_freeswitch_once() {
    let mut f = with_the_double(
        "fs-drain",
        Setup {
            channels: vec![3, 2, 1, 0],
            ..Setup::default()
        },
    )
    .await;
    // A global variable is read at start-up only: FreeSWITCH restarts, after a drain.
    let new = changed("2-b", |d| d["sip_variables"] = json!({ "ccnq_test": "1" }));
    let (plan, report, progress) = f.apply(&new).await;
    assert_eq!(plan.steps[0].action, Action::Drain, "plan:\n{plan}");
    assert_eq!(report.outcome, Outcome::Ok);
    assert_eq!(
        progress,
        [3, 2, 1, 0].map(|calls| Progress::Draining { calls })
    );
    let cmds = f.double().commands();
    assert_eq!(
        cmds[..5],
        [
            "fsctl pause inbound",
            "show channels count",
            "show channels count",
            "show channels count",
            "show channels count"
        ]
    );
    // Then only the confirmations: no resume, the restarted FreeSWITCH is not paused.
    assert!(cmds[5..].iter().all(|c| c == "sofia xmlstatus"), "{cmds:?}");
    // One restart, asked for once the count read 0 (after those 5 commands).
    assert_eq!(*f.jobs.lock().unwrap(), [(SystemdJob::Restart, 5)]);
    assert_eq!(
        common::container().starts(&f.name),
        2,
        "setup's start and the restart"
    );
    assert_eq!(f.installed_rev(), "2-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_double_a_drain_deadline_reached_proceeds_and_says_so() {
    let mut f = with_the_double(
        "fs-deadline",
        Setup {
            channels: vec![2],
            drain_deadline: Duration::from_millis(300),
            ..Setup::default()
        },
    )
    .await;
    let new = changed("2-b", |d| d["sip_variables"] = json!({ "ccnq_test": "1" }));
    let (_, report, progress) = f.apply(&new).await;
    assert_eq!(report.outcome, Outcome::Ok);
    assert!(progress
        .iter()
        .all(|p| *p == Progress::Draining { calls: 2 }));
    let drain = &report.actions[0];
    assert_eq!(drain.reply.as_deref(), Some("2 calls"));
    assert!(
        drain.note.as_deref().unwrap().contains("deadline"),
        "{drain:?}"
    );
    assert_eq!(f.jobs.lock().unwrap().len(), 1);
    assert_eq!(common::container().starts(&f.name), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_double_a_failure_after_a_drain_rolls_back_and_resumes_inbound_calls() {
    let mut f = with_the_double(
        "fs-noinstall",
        Setup {
            channels: vec![1, 0],
            install_section: false,
            ..Setup::default()
        },
    )
    .await;
    // Nothing known applied (first boot): drain, replace every file, enable, restart.
    // The unit cannot be enabled, so the apply fails with FreeSWITCH still running,
    // paused: the rollback reloads the old files and calls are taken again.
    let new = changed("2-b", |d| d["sip_variables"] = json!({ "ccnq_test": "1" }));
    let nr = rendering(&new);
    let first = plan_first(&new);
    let enable = step_of(&first, |a| *a == Action::EnableFreeswitch);
    let (_, report, _) = f.apply_plan(first, &new, &nr).await;
    match &report.outcome {
        Outcome::Failed { step, reason, .. } => {
            assert_eq!(*step, enable);
            assert!(reason.contains("no [Install] section"), "{reason}");
        }
        Outcome::Ok => panic!("a failed enable was reported applied"),
    }
    assert_eq!(
        f.double().commands(),
        [
            "fsctl pause inbound",
            "show channels count",
            "show channels count",
            "reloadxml",
            "fsctl resume inbound"
        ]
    );
    assert!(!f.double().paused());
    assert_eq!(*f.jobs.lock().unwrap(), [(SystemdJob::Enable, 3)]);
    assert_eq!(common::container().starts(&f.name), 1, "never restarted");
    assert_eq!(f.installed_rev(), "1-a");
}
