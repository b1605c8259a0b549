//! End to end: the real `ccnqd` binary follows a host document in a real pouchdb-server
//! and brings "FreeSWITCH" to it.
//!
//! FreeSWITCH cannot be installed here, so its place is taken by `esl-peer`, the
//! event-socket test double checked against the recordings of FreeSWITCH 1.11.2
//! (qa/esl-peer). It runs as a systemd unit in a real systemd (an nspawn container,
//! sharing the host's network), reads the sofia profiles ccnqd installs, and logs every
//! command it receives: the tests compare that log with the plan the API previewed.
//! A restart of the unit really restarts the double, which reads its files again, as
//! FreeSWITCH does.

mod common;

use ccnq_apply::FileStore;
use ccnq_couch::{Auth as CouchAuth, Client, ClientConfig, Db};
use ccnq_testkit::nspawn::container;
use ccnq_testkit::pouch::{node_available, PouchServer};
use common::{request, Auth, Daemon, Site};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FQDN: &str = "sbc1.example.net";
const ID: &str = "host:sbc1.example.net";

/// One daemon, its CouchDB, and its FreeSWITCH stand-in in the container.
struct Rig {
    site: Site,
    _pouch: PouchServer,
    db: Db,
    daemon: Option<Daemon>,
    config: PathBuf,
    /// The daemon's data directory, seen from the host (it is in the container's /var).
    data: PathBuf,
    /// Where the double keeps its log and control files (host path).
    peer: PathBuf,
    unit: String,
    /// Index of the first command of the double's log not yet taken by `new_commands`.
    seen: usize,
}

fn esl_peer_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ccnqd")).with_file_name("esl-peer");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p ccnq-esl-peer; cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The recorded parse error FreeSWITCH gave for a broken file (fixture 01e).
fn recorded_parse_error() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/freeswitch-esl-apply/01e-reloadacl-broken-xml.rx");
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    let start = text
        .find("+OK [[error")
        .expect("a reloadxml parse error in 01e")
        + 5;
    let end = start + text[start..].find("]\n").unwrap();
    text[start..end].to_string()
}

impl Rig {
    async fn new(tag: &str) -> Rig {
        let c = container();
        let pouch = PouchServer::start(&format!("e2e-{tag}"));
        let db = Client::new(ClientConfig::new(
            &pouch.url(),
            CouchAuth::basic("admin", "secret"),
        ))
        .unwrap()
        .db("provisioning");
        assert!(db.create().await.unwrap());

        let name = format!("e2e-{tag}-{}", std::process::id());
        let data = c.var.join(format!("lib/{name}-ccnq"));
        let peer = c.var.join(format!("lib/{name}-peer"));
        std::fs::create_dir_all(data.join("secrets")).unwrap();
        std::fs::create_dir_all(peer.join("control")).unwrap();
        // The double's default password; the daemon takes it from its secrets file.
        std::fs::write(data.join("secrets/event-socket.password"), "ClueCon\n").unwrap();
        std::fs::copy(esl_peer_bin(), peer.join("esl-peer")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let inside = |p: &Path| Path::new("/var").join(p.strip_prefix(&c.var).unwrap());
        let unit = format!("{name}.service");
        std::fs::write(
            c.units.join(&unit),
            format!(
                "[Unit]\nDescription=ccnqd e2e: esl-peer stands in for FreeSWITCH\n\
                 ConditionPathExists=!{flag}\n\
                 [Service]\nExecStart={bin} --listen 127.0.0.1:{port} --conf {conf} \
                 --local-ip 198.51.100.52 --ten-second-rule-ms 1000 --control {control} --log {log}\n\
                 [Install]\nWantedBy=multi-user.target\n",
                flag = inside(&data.join("switched-off").join(format!("{name}.service"))).display(),
                bin = inside(&peer.join("esl-peer")).display(),
                conf = inside(&data.join("freeswitch")).display(),
                control = inside(&peer.join("control")).display(),
                log = inside(&peer.join("commands.jsonl")).display(),
            ),
        )
        .unwrap();
        ccnq_systemd::Systemd::connect(&c.address)
            .await
            .unwrap()
            .daemon_reload()
            .await
            .unwrap();

        let site = Site::new();
        std::fs::write(site.path("couch.password"), "secret\n").unwrap();
        let base = std::fs::read_to_string(site.config(true, "")).unwrap();
        let text = base.replace(
            &format!("data_dir = \"{}\"", site.path("data").display()),
            &format!("data_dir = \"{}\"", data.display()),
        ) + &format!(
            "\n[couchdb]\nurl = \"{url}\"\nuser = \"admin\"\npassword_file = \"{pw}\"\n\
             heartbeat_secs = 1\nreconnect_max_secs = 1\n\
             [freeswitch]\nevent_socket = \"127.0.0.1:{port}\"\nunit = \"{unit}\"\n\
             drain_deadline_secs = 5\nconfirm_deadline_secs = 20\n\
             [systemd]\nbus = \"{bus}\"\n",
            url = pouch.url(),
            pw = site.path("couch.password").display(),
            bus = c.address,
        );
        let config = site.path("ccnqd-e2e.toml");
        std::fs::write(&config, text).unwrap();
        let daemon = Daemon::start(&config);
        Rig {
            site,
            _pouch: pouch,
            db,
            daemon: Some(daemon),
            config,
            data,
            peer,
            unit,
            seen: 0,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let a = request(
            &self.site,
            self.daemon().addr,
            Auth::Cert(&self.site.reader),
            "GET",
            path,
            None,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200, "GET {path}: {:#}", a.body);
        a.body
    }

    /// The commands `ccnqd` would send for `doc`, as `POST /v1/config/plan` previews them.
    async fn preview(&self, doc: &Value) -> (Value, Vec<String>) {
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
            .filter_map(|s| s["command"].as_str().map(str::to_owned))
            .collect();
        (a.body, commands)
    }

    /// Writes the next revision of the host document; returns it as stored.
    async fn put(&self, mut doc: Value) -> Value {
        doc["_id"] = json!(ID);
        if let Some(current) = self.db.get_opt(ID).await.unwrap() {
            doc["_rev"] = current["_rev"].clone();
        }
        let rev = self.db.put(ID, &doc).await.unwrap();
        doc["_rev"] = json!(rev);
        doc
    }

    /// Waits until `GET /v1/config` satisfies `f`.
    async fn until(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        poll_until(what, || self.get("/v1/config"), f).await
    }

    /// Waits until `status:<fqdn>`, which ccnqd writes from its own task shortly after
    /// the report changes, satisfies `f`.
    async fn until_status(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let id = format!("status:{FQDN}");
        poll_until(what, || async { self.db.get(&id, None).await.unwrap() }, f).await
    }

    async fn until_applied(&self, doc: &Value) -> Value {
        let rev = doc["_rev"].clone();
        self.until(&format!("rev {rev} applied"), |c| {
            c["state"] == "ok" && c["applied"]["rev"] == rev
        })
        .await
    }

    /// Every `api`/`bgapi` command the double received since the last call.
    fn new_commands(&mut self) -> Vec<String> {
        let text = std::fs::read_to_string(self.peer.join("commands.jsonl")).unwrap_or_default();
        let all: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["kind"] == "api" || e["kind"] == "bgapi")
            .map(|e| e["command"].as_str().unwrap().to_string())
            .collect();
        let new = all[self.seen.min(all.len())..].to_vec();
        self.seen = all.len();
        new
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.data.join("freeswitch").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Leave the container clean for the other tests: stop the stand-in unit.
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

/// The spec's example host, with the ingress ACL given.
fn host(acl: &str) -> Value {
    json!({
        "_id": ID,
        "type": "host",
        "host": FQDN,
        "interfaces": { "primary": { "ipv4": "198.51.100.52" } },
        "sip_domain_name": "a.phone.example.net",
        "sip_profiles": {
            "test": {
                "ingress_sip_ip": "198.51.100.52",
                "ingress_sip_port": 5200,
                "ingress_acl": [acl],
                "egress_acl": ["198.51.100.52/32"],
                "handler": { "socket": "127.0.0.1:5702" }
            }
        }
    })
}

/// Polls `fetch` (at most 120 s: CI machines are busy) until its value satisfies `f`.
async fn poll_until<Fut: std::future::Future<Output = Value>>(
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

#[tokio::test]
async fn a_host_document_reaches_freeswitch_with_exactly_the_planned_commands() {
    if !node_available("a_host_document_reaches_freeswitch_with_exactly_the_planned_commands") {
        return;
    }
    let mut rig = Rig::new("flow").await;

    // First document: nothing known runs, so everything is installed and FreeSWITCH
    // (re)started through systemd, then each profile confirmed over the event socket.
    let (preview, commands) = rig.preview(&host("198.51.100.53/32")).await;
    assert_eq!(preview["from_rev"], Value::Null);
    assert!(
        commands.iter().any(|c| c.starts_with("systemd restart")),
        "{preview:#}"
    );
    let rev1 = rig.put(host("198.51.100.53/32")).await;
    rig.until_applied(&rev1).await;
    let acl = String::from_utf8(rig.file("autoload_configs/acl.conf.xml")).unwrap();
    assert!(acl.contains("198.51.100.53/32"), "{acl}");
    assert!(String::from_utf8(rig.file("sip_profiles/test-ingress.xml"))
        .unwrap()
        .contains("5200"));
    let first = rig.new_commands();
    assert!(
        !first.is_empty() && first.iter().all(|c| c == "sofia xmlstatus"),
        "only the confirmations reach the event socket: {first:?}"
    );

    // Only an ACL: exactly what the preview said, reloadxml then reloadacl.
    let doc2 = host("198.51.100.54/32");
    let (preview, planned) = rig.preview(&doc2).await;
    assert_eq!(planned, vec!["reloadxml", "reloadacl"], "{preview:#}");
    assert_eq!(preview["cost"]["kind"], "reload");
    assert_eq!(preview["from_rev"], rev1["_rev"]);
    let rev2 = rig.put(doc2).await;
    rig.until_applied(&rev2).await;
    assert_eq!(rig.new_commands(), planned);
    assert!(String::from_utf8(rig.file("autoload_configs/acl.conf.xml"))
        .unwrap()
        .contains("198.51.100.54/32"));

    // Nothing that renders: no command at all.
    let mut doc3 = host("198.51.100.54/32");
    doc3["provisioning_note"] = json!("moved to rack 4");
    let (preview, planned) = rig.preview(&doc3).await;
    assert!(planned.is_empty(), "{preview:#}");
    let rev3 = rig.put(doc3).await;
    let config = rig.until_applied(&rev3).await;
    assert_eq!(rig.new_commands(), Vec::<String>::new());
    assert_eq!(config["last"]["actions"], json!([]));
    assert!(
        config["last"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["path"] == "provisioning_note"),
        "{config:#}"
    );

    // FreeSWITCH refuses the new files: failed, the files of rev3 back, reloadxml again.
    let before = rig.file("sip_profiles/test-ingress.xml");
    let error = recorded_parse_error();
    std::fs::write(rig.peer.join("control/reloadxml-error-once"), &error).unwrap();
    let mut doc4 = host("198.51.100.54/32");
    doc4["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU");
    let rev4 = rig.put(doc4).await;
    let config = rig
        .until("rev4 failed", |c| {
            c["state"] == "failed" && c["last"]["rev"] == rev4["_rev"]
        })
        .await;
    assert!(
        config["reason"].as_str().unwrap().contains(&error),
        "{config:#}"
    );
    assert_eq!(config["applied"]["rev"], rev3["_rev"]);
    assert_eq!(
        rig.file("sip_profiles/test-ingress.xml"),
        before,
        "rev3's files are back"
    );
    assert_eq!(rig.new_commands(), vec!["reloadxml", "reloadxml"]);
    let status = rig
        .until_status("the status of rev4", |st| st["last"]["rev"] == rev4["_rev"])
        .await;
    assert_eq!(status["state"], "failed", "{status:#}");
    assert_eq!(status["applied"]["rev"], rev3["_rev"], "{status:#}");

    // The next valid revision is applied normally: settings only, so rescans.
    let mut doc5 = host("198.51.100.54/32");
    doc5["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU,PCMA");
    let (_, planned) = rig.preview(&doc5).await;
    let rev5 = rig.put(doc5).await;
    rig.until_applied(&rev5).await;
    assert_eq!(rig.new_commands(), planned);
    assert!(planned.iter().any(|c| c.ends_with("rescan")), "{planned:?}");
}

#[tokio::test]
async fn ccnqd_killed_at_random_points_of_applies_leaves_a_complete_file_set_and_converges() {
    if !node_available(
        "ccnqd_killed_at_random_points_of_applies_leaves_a_complete_file_set_and_converges",
    ) {
        return;
    }
    let mut rig = Rig::new("kill").await;
    let first = rig.put(host("198.51.100.53/32")).await;
    rig.until_applied(&first).await;

    // Each revision has a different number of profiles, so a mix of two sets shows.
    let doc = |n: u16| {
        let mut d = host("198.51.100.53/32");
        for i in 0..n {
            d["sip_profiles"][format!("p{i}")] = json!({
                "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 6000 + 2 * i,
                "egress_sip_port": 7000 + 2 * i
            });
        }
        d
    };
    let mut seed = std::process::id() as u64;
    let mut last = first;
    for round in 0..12u16 {
        last = rig.put(doc(round % 4 + 1)).await;
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(seed >> 33 & 0x1ff)).await;
        let mut daemon = rig.daemon.take().unwrap();
        daemon.child.kill().unwrap(); // SIGKILL
        daemon.child.wait().unwrap();
        drop(daemon);

        // Whatever the moment, the installed set is one complete generation, and it is
        // the rendering of the document recorded with it.
        let store = FileStore::open(&rig.data).unwrap();
        if let Some(installed) = store.current().unwrap() {
            let profiles = installed.document["sip_profiles"]
                .as_object()
                .map_or(0, |p| p.len());
            let on_disk = std::fs::read_dir(rig.data.join("freeswitch/sip_profiles"))
                .unwrap()
                .count();
            assert_eq!(on_disk, 2 * profiles, "round {round}: a mixed file set");
        }
        drop(store);
        rig.daemon = Some(Daemon::start(&rig.config));
    }
    rig.until_applied(&last).await;
    rig.new_commands();
    // A restart with nothing new sends nothing.
    let mut daemon = rig.daemon.take().unwrap();
    daemon.terminate();
    rig.daemon = Some(Daemon::start(&rig.config));
    rig.until_applied(&last).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.new_commands(), Vec::<String>::new());
}

#[tokio::test]
async fn server_only_switches_freeswitch_off_for_good_and_back_on() {
    if !node_available("server_only_switches_freeswitch_off_for_good_and_back_on") {
        return;
    }
    let mut rig = Rig::new("switch").await;
    let systemd = ccnq_systemd::Systemd::connect(&container().address)
        .await
        .unwrap();
    let active = |i: ccnq_systemd::UnitInfo| i.active_state == ccnq_systemd::ActiveState::Active;
    let on = rig.put(host("198.51.100.53/32")).await;
    rig.until_applied(&on).await;
    assert!(active(systemd.unit_info(&rig.unit).await.unwrap()));
    rig.new_commands();

    // server_only: drained, stopped, and switched off by the flag on the data volume.
    let mut off = host("198.51.100.53/32");
    off["server_only"] = json!(true);
    let off = rig.put(off).await;
    rig.until_applied(&off).await;
    assert!(!active(systemd.unit_info(&rig.unit).await.unwrap()));
    assert!(rig.data.join("switched-off").join(&rig.unit).exists());
    let commands = rig.new_commands();
    assert_eq!(
        commands.first().map(String::as_str),
        Some("fsctl pause inbound"),
        "{commands:?}"
    );
    // A start from elsewhere (a reboot's preset, an operator's systemctl) is skipped.
    systemd.start(&rig.unit).await.unwrap();
    assert!(!active(systemd.unit_info(&rig.unit).await.unwrap()));

    // And back: the flag goes, the unit starts, the profiles are confirmed.
    let again = rig.put(host("198.51.100.53/32")).await;
    rig.until_applied(&again).await;
    assert!(!rig.data.join("switched-off").join(&rig.unit).exists());
    assert!(active(systemd.unit_info(&rig.unit).await.unwrap()));
}
