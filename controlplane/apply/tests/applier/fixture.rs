//! The applier's test fixture: a [`FileStore`] with the base document applied, an
//! [`Applier`] on the real systemd of the nspawn container (its jobs [`Observed`]), and
//! what plays FreeSWITCH: the real one ([`real`]) or the event-socket double
//! ([`crate::double::with_the_double`]); and the documents, renderings and plans the tests
//! apply.

use crate::common::{self, ContainerExt};
use ccnq_apply::{Applier, ApplyOptions, ApplyReport, FileStore, Progress, Services};
use ccnq_esl::SofiaStatus;
use ccnq_esl_peer::Peer;
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
pub fn base() -> Value {
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
pub fn changed(rev: &str, f: impl FnOnce(&mut Value)) -> Value {
    changed_from(base(), rev, f)
}

fn changed_from(mut d: Value, rev: &str, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut d);
    d["_rev"] = json!(rev);
    d
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

pub fn rendering(doc: &Value) -> Rendering {
    render(&host(doc), &secrets()).expect("renders")
}

/// The plan of a first apply: nothing known in force (first boot).
pub fn plan_first(new: &Value) -> Plan {
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

pub fn plan_between(old: &Value, new: &Value) -> Plan {
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
pub struct Observed {
    pub systemd: Systemd,
    pub peer: Option<Arc<Peer>>,
    pub jobs: Arc<Mutex<Vec<(SystemdJob, usize)>>>,
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
pub enum Plays {
    /// The real FreeSWITCH, and when it was started (its profiles are younger).
    Real(Freeswitch, Option<Instant>),
    /// The event-socket double, for fault injection.
    Double(Arc<Peer>),
}

pub struct Fixture {
    pub _tmp: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    /// What is applied when the test begins.
    pub base: Value,
    pub peer: Plays,
    pub name: String,
    pub jobs: Arc<Mutex<Vec<(SystemdJob, usize)>>>,
    pub applier: Applier<Observed>,
}

pub struct Setup {
    pub channels: Vec<u64>,
    pub active: bool,
    pub confirm_deadline: Duration,
    pub drain_deadline: Duration,
    /// Whether the stand-in unit can be enabled.
    pub install_section: bool,
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
pub async fn real(name: &str, n: u8, setup: Setup) -> Fixture {
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

impl Fixture {
    /// Plans the base → `new` and applies it with `rendering` (normally `new`'s).
    pub async fn apply_with(
        &mut self,
        new: &Value,
        rendering: &Rendering,
    ) -> (Plan, ApplyReport, Vec<Progress>) {
        self.apply_plan(plan_between(&self.base, new), new, rendering)
            .await
    }

    /// The base changed by `f`, as revision `rev`.
    pub fn changed(&self, rev: &str, f: impl FnOnce(&mut Value)) -> Value {
        changed_from(self.base.clone(), rev, f)
    }

    /// The base's address.
    pub fn ip(&self) -> String {
        self.base["interfaces"]["primary"]["ipv4"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn apply_plan(
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

    pub async fn apply(&mut self, new: &Value) -> (Plan, ApplyReport, Vec<Progress>) {
        self.apply_with(new, &rendering(new)).await
    }

    pub fn installed_rev(&self) -> String {
        self.applier.store().current().unwrap().unwrap().rev
    }

    /// What the store says runs: the revision applied, and those in doubt.
    pub fn applied_and_in_doubt(&self) -> (String, Vec<String>) {
        let store = self.applier.store();
        (
            store.applied().expect("a revision applied").rev.clone(),
            store.in_doubt().iter().map(|d| d.rev.clone()).collect(),
        )
    }

    pub fn installed_tree(&self) -> RenderedTree {
        self.applier.store().current().unwrap().unwrap().tree
    }

    pub fn double(&self) -> &Peer {
        match &self.peer {
            Plays::Double(p) => p,
            Plays::Real(..) => panic!("this fixture runs the real FreeSWITCH"),
        }
    }

    pub fn freeswitch(&self) -> &Freeswitch {
        match &self.peer {
            Plays::Real(fs, _) => fs,
            Plays::Double(_) => panic!("this fixture runs the double"),
        }
    }

    /// FreeSWITCH's answer to `api <command>`, over a connection of the test's own.
    pub async fn api(&self, command: &str) -> String {
        self.freeswitch().api(command).await
    }

    /// The real FreeSWITCH's `sofia xmlstatus`, parsed.
    pub async fn sofia(&self) -> SofiaStatus {
        self.freeswitch().sofia().await
    }

    /// `sofia status profile <profile>`: the value of its `field` line (`CODECS IN`, …).
    pub async fn profile_field(&self, profile: &str, field: &str) -> String {
        self.freeswitch().profile_field(profile, field).await
    }
}

/// The commands the applier sent, in order, as its report records them.
pub fn sent(report: &ApplyReport) -> Vec<&str> {
    report
        .actions
        .iter()
        .filter_map(|a| a.command.as_deref())
        .collect()
}

/// Polls `f` every 100 ms, for at most 60 s, until it is true.
pub async fn eventually<Fut: std::future::Future<Output = bool>>(
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

pub fn step_of(plan: &Plan, pred: impl Fn(&Action) -> bool) -> usize {
    plan.steps
        .iter()
        .position(|s| pred(&s.action))
        .expect("the plan has that step")
}
