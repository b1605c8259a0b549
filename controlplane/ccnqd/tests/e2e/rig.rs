//! The rig of the end-to-end tests: one real `ccnqd` (tests/common's [`Daemon`]) with its
//! own database in the shared real CouchDB 3.4.3 and its own FreeSWITCH, the real one or,
//! for fault injection only, the event-socket double ([`crate::double`]), as a unit of
//! the nspawn container's systemd; and what the tests read back from them.

use crate::common::{request, Answer, Auth, Daemon, Site};
use crate::double::install_double;
use ccnq_couch::{Auth as CouchAuth, Client, ClientConfig, Db};
use ccnq_esl::SofiaStatus;
use ccnq_testkit::couchdb::CouchServer;
pub use ccnq_testkit::freeswitch::loopback;
use ccnq_testkit::freeswitch::Freeswitch;
use ccnq_testkit::nspawn::container;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const FQDN: &str = "sbc1.example.net";
pub const ID: &str = "host:sbc1.example.net";
pub const PASSWORD: &str = "ClueCon";

/// What plays FreeSWITCH for a rig.
pub enum Peer {
    /// The real FreeSWITCH 1.11.2.
    Real(Freeswitch),
    /// The event-socket double, for fault injection only: its control and log files.
    Double(PathBuf),
}

/// One daemon, its CouchDB database, and its FreeSWITCH in the container.
pub struct Rig {
    pub site: Site,
    pub db: Db,
    daemon: Option<Daemon>,
    config: PathBuf,
    /// The daemon's data directory, seen from the host (it is in the container's /var).
    pub data: PathBuf,
    pub peer: Peer,
    pub unit: String,
    pub esl: SocketAddr,
}

impl Rig {
    /// A rig on the real FreeSWITCH.
    pub async fn new(tag: &str) -> Rig {
        Rig::build(tag, false).await
    }

    /// A rig on the event-socket double, for the faults the real server cannot produce.
    pub async fn with_double(tag: &str) -> Rig {
        Rig::build(tag, true).await
    }

    async fn build(tag: &str, double: bool) -> Rig {
        let c = container();
        let couch = CouchServer::shared();
        let (user, password) = couch.admin();
        let database = format!("provisioning-{tag}");
        let db = Client::new(ClientConfig::new(
            &couch.url(),
            CouchAuth::basic(user, password),
        ))
        .unwrap()
        .db(&database);
        assert!(db.create().await.unwrap());

        let name = format!("e2e-{tag}-{}", std::process::id());
        let data = c.var.join(format!("lib/{name}-ccnq"));
        std::fs::create_dir_all(data.join("secrets")).unwrap();
        std::fs::write(
            data.join("secrets/event-socket.password"),
            format!("{PASSWORD}\n"),
        )
        .unwrap();
        let (peer, unit, esl) = if double {
            let (dir, unit, esl) = install_double(&name, &data);
            (Peer::Double(dir), unit, esl)
        } else {
            let fs = Freeswitch::install(c, &name, &data, PASSWORD);
            let (unit, esl) = (fs.unit.clone(), fs.esl);
            (Peer::Real(fs), unit, esl)
        };
        ccnq_systemd::Systemd::connect(&c.address)
            .await
            .unwrap()
            .daemon_reload()
            .await
            .unwrap();

        let site = Site::new();
        std::fs::write(site.path("couch.password"), format!("{password}\n")).unwrap();
        let base = std::fs::read_to_string(site.config(true, "")).unwrap();
        let text = base.replace(
            &format!("data_dir = \"{}\"", site.path("data").display()),
            &format!("data_dir = \"{}\"", data.display()),
        ) + &format!(
            "journal_directory = \"{journal}\"\n\
             \n[couchdb]\nurl = \"{url}\"\ndatabase = \"{database}\"\nuser = \"{user}\"\n\
             password_file = \"{pw}\"\n\
             heartbeat_secs = 1\nreconnect_max_secs = 1\n\
             [freeswitch]\nevent_socket = \"{esl}\"\nunit = \"{unit}\"\n\
             drain_deadline_secs = 5\nconfirm_deadline_secs = 20\n\
             [systemd]\nbus = \"{bus}\"\n",
            url = couch.url(),
            pw = site.path("couch.password").display(),
            bus = c.address,
            journal = c.var.join("log/journal").display(),
        );
        let config = site.path("ccnqd-e2e.toml");
        std::fs::write(&config, text).unwrap();
        let daemon = Daemon::start(&config);
        Rig {
            site,
            db,
            daemon: Some(daemon),
            config,
            data,
            peer,
            unit,
            esl,
        }
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    pub fn freeswitch(&self) -> &Freeswitch {
        match &self.peer {
            Peer::Real(fs) => fs,
            Peer::Double(_) => panic!("this rig runs the event-socket double"),
        }
    }

    /// One request to the daemon as `who` (`reader`, `operator`, `admin`), answered.
    pub async fn ask(&self, who: &str, method: &str, path: &str, body: Option<&str>) -> Answer {
        let cert = match who {
            "reader" => &self.site.reader,
            "operator" => &self.site.operator,
            "admin" => &self.site.admin,
            other => panic!("no certificate for {other}"),
        };
        request(
            &self.site,
            self.daemon().addr,
            Auth::Cert(cert),
            method,
            path,
            body,
        )
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let a = self.ask("reader", "GET", path, None).await;
        assert_eq!(a.status, 200, "GET {path}: {:#}", a.body);
        a.body
    }

    /// `POST /v1/config/plan` for `doc`, and the commands of its steps as the applier
    /// records them once sent (its drain says it polls the channel count; its systemd
    /// jobs name this rig's unit, as the preview does).
    pub async fn preview(&self, doc: &Value) -> (Value, Vec<String>) {
        let a = request(
            &self.site,
            self.daemon().addr,
            Auth::Cert(&self.site.reader),
            "POST",
            "/v1/config/plan",
            Some(&doc.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200, "{:#}", a.body);
        let commands = a.body["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["command"].as_str())
            .map(|c| match c {
                "fsctl pause inbound" => "fsctl pause inbound; show channels count".to_owned(),
                c => c.to_owned(),
            })
            .collect();
        (a.body, commands)
    }

    /// Writes the next revision of the host document; returns it as stored.
    pub async fn put(&self, mut doc: Value) -> Value {
        doc["_id"] = json!(ID);
        if let Some(current) = self.db.get_opt(ID).await.unwrap() {
            doc["_rev"] = current["_rev"].clone();
        }
        let rev = self.db.put(ID, &doc).await.unwrap();
        doc["_rev"] = json!(rev);
        doc
    }

    /// Waits until `GET /v1/config` satisfies `f`.
    pub async fn until(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        poll_until(what, || self.get("/v1/config"), f).await
    }

    /// Waits until `status:<fqdn>`, which ccnqd writes from its own task shortly after
    /// the report changes, satisfies `f`.
    pub async fn until_status(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let id = format!("status:{FQDN}");
        poll_until(what, || async { self.db.get(&id, None).await.unwrap() }, f).await
    }

    /// Waits until `doc` has failed; returns `GET /v1/config` then.
    pub async fn until_failed(&self, doc: &Value) -> Value {
        let rev = doc["_rev"].clone();
        self.until(&format!("rev {rev} failed"), |c| {
            c["state"] == "failed" && c["last"]["rev"] == rev
        })
        .await
    }

    /// Waits until `status:<fqdn>` reports `doc` as the last revision tried.
    pub async fn status_of(&self, doc: &Value) -> Value {
        let rev = doc["_rev"].clone();
        self.until_status(&format!("the status of rev {rev}"), |st| {
            st["last"]["rev"] == rev
        })
        .await
    }

    /// Waits until `doc` is applied; returns `GET /v1/config` then.
    pub async fn until_applied(&self, doc: &Value) -> Value {
        let rev = doc["_rev"].clone();
        self.until(&format!("rev {rev} applied"), |c| {
            c["state"] == "ok" && c["applied"]["rev"] == rev
        })
        .await
    }

    /// FreeSWITCH's answer to `api <command>`.
    pub async fn api(&self, command: &str) -> String {
        self.freeswitch().api(command).await
    }

    /// `sofia xmlstatus`, parsed.
    pub async fn sofia(&self) -> SofiaStatus {
        self.freeswitch().sofia().await
    }

    /// Waits until `sofia xmlstatus` satisfies `f` (stops take effect after their reply).
    pub async fn until_sofia(&self, what: &str, f: impl Fn(&SofiaStatus) -> bool) -> SofiaStatus {
        for _ in 0..1200 {
            let s = self.sofia().await;
            if f(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.sofia().await);
    }

    /// `sofia status profile <profile>`: the value of its `field` line (`CODECS IN`, …).
    pub async fn profile_field(&self, profile: &str, field: &str) -> String {
        self.freeswitch().profile_field(profile, field).await
    }

    pub async fn systemd(&self) -> ccnq_systemd::Systemd {
        ccnq_systemd::Systemd::connect(&container().address)
            .await
            .unwrap()
    }

    pub async fn unit_active(&self) -> bool {
        self.systemd()
            .await
            .unit_info(&self.unit)
            .await
            .unwrap()
            .active_state
            == ccnq_systemd::ActiveState::Active
    }

    pub async fn main_pid(&self) -> Option<u32> {
        self.systemd()
            .await
            .unit_info(&self.unit)
            .await
            .unwrap()
            .main_pid
    }

    /// Kills the daemon with SIGKILL (as a crash or a power cut would) and reaps it.
    pub fn kill_daemon(&mut self) {
        let mut daemon = self.daemon.take().unwrap();
        daemon.child.kill().unwrap(); // SIGKILL
        daemon.child.wait().unwrap();
    }

    /// Stops the daemon as systemd does (SIGTERM) and waits for it.
    pub fn stop_daemon(&mut self) {
        self.daemon.take().unwrap().terminate();
    }

    /// Starts the daemon again, on the same configuration and data directory.
    pub fn start_daemon(&mut self) {
        self.daemon = Some(Daemon::start(&self.config));
    }

    /// Whether the rendered file `rel` is installed.
    pub fn has_file(&self, rel: &str) -> bool {
        self.data.join("freeswitch").join(rel).exists()
    }

    /// The daemon's audit log, as it is now.
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.data.join("audit.log")).unwrap_or_default()
    }

    pub fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.data.join("freeswitch").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Leave the container clean for the other tests: stop this rig's FreeSWITCH.
        let _ = std::process::Command::new("busctl")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &container().address)
            .args([
                "--system",
                "call",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "StopUnit",
                "ss",
                &self.unit,
                "replace",
            ])
            .output();
    }
}

/// The spec's example host on the loopback address `ip`, with the ingress ACL given, and
/// a second document profile `other` that the changes to `test` must leave alone.
pub fn host(ip: &str, acl: &str) -> Value {
    json!({
        "_id": ID,
        "type": "host",
        "host": FQDN,
        "interfaces": { "primary": { "ipv4": ip } },
        "sip_domain_name": "a.phone.example.net",
        "rtp_ip": ip,
        "sip_profiles": {
            "test": {
                "ingress_sip_ip": ip,
                "ingress_sip_port": 5200,
                "ingress_acl": [acl],
                "egress_acl": [format!("{ip}/32")],
                "handler": { "socket": "127.0.0.1:5702" }
            },
            "other": {
                "ingress_sip_ip": ip,
                "ingress_sip_port": 5400
            }
        }
    })
}

/// The commands of the last apply's actions, in order, as `GET /v1/config` reports them.
pub fn sent(config: &Value) -> Vec<String> {
    actions(config)
        .iter()
        .filter_map(|a| a["command"].as_str().map(str::to_owned))
        .collect()
}

pub fn actions(config: &Value) -> &[Value] {
    config["last"]["actions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no last.actions: {config:#}"))
}

/// The action that sent `command`.
pub fn action<'a>(config: &'a Value, command: &str) -> &'a Value {
    actions(config)
        .iter()
        .find(|a| a["command"] == command)
        .unwrap_or_else(|| panic!("no action sent {command:?}: {config:#}"))
}

/// Every profile of the sofia status, by name: (address, running).
pub fn profiles(s: &SofiaStatus) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = s
        .entries
        .iter()
        .filter(|e| e.kind == "profile")
        .map(|e| {
            (
                e.name.clone(),
                e.address().unwrap_or_default().to_owned(),
                e.is_running(),
            )
        })
        .collect();
    v.sort();
    v
}

/// What `host(ip, _)` runs: four sofia profiles, all RUNNING.
pub fn base_profiles(ip: &str) -> Vec<(String, String, bool)> {
    let mut v = vec![
        ("other-egress".to_owned(), format!("{ip}:15400"), true),
        ("other-ingress".to_owned(), format!("{ip}:5400"), true),
        ("test-egress".to_owned(), format!("{ip}:15200"), true),
        ("test-ingress".to_owned(), format!("{ip}:5200"), true),
    ];
    v.sort();
    v
}

/// Polls `fetch` (at most 120 s: CI machines are busy) until its value satisfies `f`.
pub async fn poll_until<Fut: std::future::Future<Output = Value>>(
    what: &str,
    mut fetch: impl FnMut() -> Fut,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        last = fetch().await;
        if f(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}: {last:#}");
}

/// TEST-NET-1 (192.0.2.1, documentation only): an address this host must not have, for a
/// profile that never binds.
pub fn absent_address() -> &'static str {
    let absent = "192.0.2.1";
    assert!(
        std::net::UdpSocket::bind((absent, 0)).is_err(),
        "this machine has {absent}: the test needs an address the host does not have"
    );
    absent
}

/// The profiles of the sofia status but those of document profile `bad`.
pub fn profiles_but_bad(s: &SofiaStatus) -> Vec<(String, String, bool)> {
    profiles(s)
        .into_iter()
        .filter(|p| !p.0.starts_with("bad-"))
        .collect()
}

/// Whether `addr` (UDP) can be bound here: a profile's port is free again once stopped.
pub fn udp_free(addr: &str) -> bool {
    std::net::UdpSocket::bind(addr).is_ok()
}
