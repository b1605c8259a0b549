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
//! against the recordings, on a stand-in unit that counts its starts: those tests say
//! `with_the_double` in their names.

mod common;
use common::ContainerExt;

use ccnq_apply::{Applier, ApplyOptions, ApplyReport, FileStore, Outcome, Progress, Services};
use ccnq_esl::SofiaStatus;
use ccnq_esl_peer::{Peer, PeerConfig};
use ccnq_freeswitch::render::VOLUME_DIR;
use ccnq_freeswitch::{
    plan, render, Action, Plan, RenderedTree, Rendering, Secrets, Snapshot, SystemdJob,
};
use ccnq_systemd::Systemd;
use ccnq_testkit::freeswitch::{loopback, Freeswitch};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FQDN: &str = "sbc1.example.net";

/// The host every test starts from, on 127.0.0.1 (where nothing binds: the double, or
/// no FreeSWITCH at all).
fn base() -> Value {
    base_on("127.0.0.1")
}

/// The host every test starts from, its profiles on `ip`.
fn base_on(ip: &str) -> Value {
    json!({
        "_id": format!("host:{FQDN}"),
        "_rev": "1-a",
        "type": "host",
        "host": FQDN,
        "interfaces": { "primary": { "ipv4": ip } },
        "sip_domain_name": "a.phone.example.net",
        "rtp_ip": ip,
        "sip_profiles": {
            "test": {
                "ingress_sip_ip": ip,
                "ingress_sip_port": 5200,
                "egress_sip_port": 15200,
                "ingress_acl": ["127.0.0.1/32"],
                "egress_acl": ["127.0.0.1/32"]
            },
            "other": {
                "ingress_sip_ip": ip,
                "ingress_sip_port": 5400,
                "egress_sip_port": 15400
            }
        }
    })
}

/// `base()` changed by `f`, as revision `rev`.
fn changed(rev: &str, f: impl FnOnce(&mut Value)) -> Value {
    changed_from(base(), rev, f)
}

fn changed_from(mut d: Value, rev: &str, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut d);
    d["_rev"] = json!(rev);
    d
}

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

fn secrets() -> Secrets {
    Secrets {
        event_socket_password: "ClueCon".into(),
    }
}

fn host(doc: &Value) -> ccnq_model::Host {
    ccnq_model::validate(doc, FQDN)
        .unwrap_or_else(|e| panic!("invalid test document: {e:?}"))
        .host
}

fn rendering(doc: &Value) -> Rendering {
    render(&host(doc), &secrets()).expect("renders")
}

/// The plan of a first apply: nothing known in force (first boot).
fn plan_first(new: &Value) -> Plan {
    let (nh, nr) = (host(new), rendering(new));
    plan(
        None,
        Snapshot {
            host: &nh,
            rendering: &nr,
        },
        Path::new(VOLUME_DIR),
    )
}

fn plan_between(old: &Value, new: &Value) -> Plan {
    let (oh, nh) = (host(old), host(new));
    let (or, nr) = (rendering(old), rendering(new));
    plan(
        Some(Snapshot {
            host: &oh,
            rendering: &or,
        }),
        Snapshot {
            host: &nh,
            rendering: &nr,
        },
        Path::new(VOLUME_DIR),
    )
}

/// The real systemd, observed: each job is recorded, with how many event-socket
/// commands the double had received when it was asked for, then run for real.
struct Observed {
    systemd: Systemd,
    peer: Option<Arc<Peer>>,
    jobs: Arc<Mutex<Vec<(SystemdJob, usize)>>>,
}

impl Services for Observed {
    async fn job(&self, unit: &str, job: SystemdJob) -> Result<String, String> {
        let seen = self.peer.as_ref().map_or(0, |p| p.commands().len());
        self.jobs.lock().unwrap().push((job, seen));
        self.systemd.job(unit, job).await
    }

    async fn is_active(&self, unit: &str) -> Result<bool, String> {
        self.systemd.is_active(unit).await
    }
}

/// What plays FreeSWITCH in a fixture.
enum Plays {
    /// The real FreeSWITCH, and when it was started (its profiles are younger).
    Real(Freeswitch, Option<Instant>),
    /// The event-socket double, for fault injection.
    Double(Arc<Peer>),
}

struct Fixture {
    _tmp: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    /// What is applied when the test begins.
    base: Value,
    peer: Plays,
    name: String,
    jobs: Arc<Mutex<Vec<(SystemdJob, usize)>>>,
    applier: Applier<Observed>,
}

struct Setup {
    channels: Vec<u64>,
    active: bool,
    confirm_deadline: Duration,
    drain_deadline: Duration,
    /// Whether the stand-in unit can be enabled.
    install_section: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            channels: vec![0],
            active: true,
            confirm_deadline: Duration::from_secs(10),
            drain_deadline: Duration::from_secs(10),
            install_section: true,
        }
    }
}

/// `base_on(loopback(n))` applied: installed, and the real FreeSWITCH, unit `name`,
/// started on it (or not, as `setup.active` says).
async fn real(name: &str, n: u8, setup: Setup) -> Fixture {
    let c = common::container();
    // In the container's /var: FreeSWITCH reads the files from there.
    let data_dir = c
        .var
        .join(format!("lib/{name}-{}-ccnq", std::process::id()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut store = FileStore::open(&data_dir).expect("open store");
    let doc = base_on(&loopback(n));
    store
        .install(&rendering(&doc).tree, &doc, "1-a")
        .expect("install the base");
    store.confirm(&doc, "1-a").expect("the base applied");
    let fs = Freeswitch::install(c, name, &data_dir, "ClueCon");
    let systemd = c.connect().await;
    systemd.daemon_reload().await.expect("daemon-reload");
    let started = setup.active.then(Instant::now);
    if setup.active {
        assert_eq!(systemd.start(&fs.unit).await.unwrap().as_str(), "done");
    }
    let options = ApplyOptions {
        esl_addr: fs.esl,
        command_timeout: Duration::from_secs(10),
        confirm_deadline: setup.confirm_deadline,
        poll_interval: Duration::from_millis(50),
        unit: fs.unit.clone(),
        ..ApplyOptions::new("ClueCon", setup.drain_deadline)
    };
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let services = Observed {
        systemd,
        peer: None,
        jobs: jobs.clone(),
    };
    Fixture {
        _tmp: None,
        data_dir,
        base: doc,
        peer: Plays::Real(fs, started),
        name: name.to_owned(),
        jobs,
        applier: Applier::new(store, services, options),
    }
}

/// `base()` applied (installed, the double booted on it), the stand-in unit `name`
/// running or not: for the faults only the double produces.
async fn with_the_double(name: &str, setup: Setup) -> Fixture {
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

impl Fixture {
    /// Plans the base → `new` and applies it with `rendering` (normally `new`'s).
    async fn apply_with(
        &mut self,
        new: &Value,
        rendering: &Rendering,
    ) -> (Plan, ApplyReport, Vec<Progress>) {
        self.apply_plan(plan_between(&self.base, new), new, rendering)
            .await
    }

    /// The base changed by `f`, as revision `rev`.
    fn changed(&self, rev: &str, f: impl FnOnce(&mut Value)) -> Value {
        changed_from(self.base.clone(), rev, f)
    }

    /// The base's address.
    fn ip(&self) -> String {
        self.base["interfaces"]["primary"]["ipv4"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn apply_plan(
        &mut self,
        plan: Plan,
        new: &Value,
        rendering: &Rendering,
    ) -> (Plan, ApplyReport, Vec<Progress>) {
        let seen = Mutex::new(Vec::new());
        let rev = new["_rev"].as_str().unwrap().to_owned();
        let report = self
            .applier
            .apply(&plan, rendering, new, &rev, &|p| {
                seen.lock().unwrap().push(p)
            })
            .await;
        eprintln!(
            "plan:\n{plan}report: {}",
            serde_json::to_string_pretty(&report).unwrap()
        );
        (plan, report, seen.into_inner().unwrap())
    }

    async fn apply(&mut self, new: &Value) -> (Plan, ApplyReport, Vec<Progress>) {
        self.apply_with(new, &rendering(new)).await
    }

    fn installed_rev(&self) -> String {
        self.applier.store().current().unwrap().unwrap().rev
    }

    /// What the store says runs: the revision applied, and those in doubt.
    fn applied_and_in_doubt(&self) -> (String, Vec<String>) {
        let store = self.applier.store();
        (
            store.applied().expect("a revision applied").rev.clone(),
            store.in_doubt().iter().map(|d| d.rev.clone()).collect(),
        )
    }

    fn installed_tree(&self) -> RenderedTree {
        self.applier.store().current().unwrap().unwrap().tree
    }

    fn double(&self) -> &Peer {
        match &self.peer {
            Plays::Double(p) => p,
            Plays::Real(..) => panic!("this fixture runs the real FreeSWITCH"),
        }
    }

    fn freeswitch(&self) -> &Freeswitch {
        match &self.peer {
            Plays::Real(fs, _) => fs,
            Plays::Double(_) => panic!("this fixture runs the double"),
        }
    }

    /// FreeSWITCH's answer to `api <command>`, over a connection of the test's own.
    async fn api(&self, command: &str) -> String {
        self.freeswitch().api(command).await
    }

    /// The real FreeSWITCH's `sofia xmlstatus`, parsed.
    async fn sofia(&self) -> SofiaStatus {
        self.freeswitch().sofia().await
    }

    /// `sofia status profile <profile>`: the value of its `field` line (`CODECS IN`, …).
    async fn profile_field(&self, profile: &str, field: &str) -> String {
        self.freeswitch().profile_field(profile, field).await
    }
}

/// The commands the applier sent, in order, as its report records them.
fn sent(report: &ApplyReport) -> Vec<&str> {
    report
        .actions
        .iter()
        .filter_map(|a| a.command.as_deref())
        .collect()
}

/// Polls `f` every 100 ms, for at most 60 s, until it is true.
async fn eventually<Fut: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) {
    for _ in 0..600 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn step_of(plan: &Plan, pred: impl Fn(&Action) -> bool) -> usize {
    plan.steps
        .iter()
        .position(|s| pred(&s.action))
        .expect("the plan has that step")
}

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
                assert!(a.note.as_deref().unwrap().contains("not implemented yet"))
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
