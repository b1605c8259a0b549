//! The services API and the desired service states, end to end: the real `ccnqd` over
//! real TLS, managing units of a real systemd (one nspawn container for this test
//! binary, `ccnq_testkit::nspawn`), FreeSWITCH's event socket played by
//! `ccnq-esl-peer` (the test double checked against FreeSWITCH's recordings), CouchDB
//! by a real CouchDB 3.4.3 (`ccnq_testkit::couchdb`, one for this test binary). Each
//! test names its units and its database after itself, so the tests share the
//! container and the CouchDB.

mod common;

use ccnq_esl_peer::{Peer, PeerConfig};
use ccnq_systemd::Systemd;
use ccnq_testkit::nspawn::{container, Container};
use common::{request, Answer, Auth, Daemon, Site};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs until stopped, and notes each start in /var/tmp/<name>.starts (before the start
/// job ends), so a test counts the starts systemd really did.
fn standin(name: &str) -> String {
    format!(
        "[Unit]\nDescription=ccnqd test: stands in for a service\nStartLimitIntervalSec=0\n\
         [Service]\nExecStartPre=/bin/sh -c 'echo start >> /var/tmp/{name}.starts'\n\
         ExecStart=/bin/sleep infinity\n"
    )
}

/// Fails to start: systemd's job result is `failed`.
const FAILS: &str = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStartPre=/bin/false\n\
                     ExecStart=/bin/sleep infinity\n";

/// Never finishes starting: the unit's start timeout (2 s) fails it. systemd's job
/// result is then `failed`, the unit's result `timeout`.
const TIMES_OUT: &str = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nTimeoutStartSec=2\n\
                         ExecStartPre=/bin/sleep 60\nExecStart=/bin/sleep infinity\n";

/// The job itself times out (JobTimeoutSec): systemd's job result is `timeout`.
const JOB_TIMES_OUT: &str = "[Unit]\nStartLimitIntervalSec=0\nJobTimeoutSec=2\n[Service]\n\
                             TimeoutStartSec=infinity\nExecStartPre=/bin/sleep 60\n\
                             ExecStart=/bin/sleep infinity\n";

/// Runs until /var/tmp/<name>.crash appears, then dies with status 3 on its own.
fn crashes(name: &str) -> String {
    format!(
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\n\
         ExecStartPre=/bin/rm -f /var/tmp/{name}.crash\n\
         ExecStart=/bin/sh -c 'while [ ! -e /var/tmp/{name}.crash ]; do sleep 0.1; done; exit 3'\n"
    )
}

async fn systemd(c: &Container) -> Systemd {
    Systemd::connect(&c.address)
        .await
        .expect("connect to the container's bus")
        .with_timeout(Duration::from_secs(30))
}

/// Installs `units` (name without `.service`, text) in the container.
async fn install(c: &Container, units: &[(&str, String)]) {
    c.install(
        &units
            .iter()
            .map(|(n, t)| (format!("{n}.service"), t.clone()))
            .collect::<Vec<_>>(),
    );
    systemd(c)
        .await
        .daemon_reload()
        .await
        .expect("daemon-reload");
}

fn starts(c: &Container, name: &str) -> usize {
    std::fs::read_to_string(c.var.join(format!("tmp/{name}.starts")))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The daemon's configuration: the site's, plus `sections`.
fn config(site: &Site, sections: &str) -> PathBuf {
    let path = site.config(true, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(sections);
    std::fs::write(&path, text).unwrap();
    path
}

/// `[systemd]`, `[freeswitch]` (unit `<fs>.service`, the peer's socket) and `[services]`.
fn sections(site: &Site, fs: &str, peer: Option<&Peer>, managed: &[&str], deadline: f64) -> String {
    std::fs::write(site.path("esl.password"), "ClueCon\n").unwrap();
    let managed: Vec<String> = managed.iter().map(|m| format!("\"{m}.service\"")).collect();
    format!(
        "\n[systemd]\nbus = \"{bus}\"\n\n[freeswitch]\nunit = \"{fs}.service\"\n\
         event_socket = \"{esl}\"\npassword_file = \"{pw}\"\ndrain_deadline_secs = {deadline}\n\
         command_timeout_secs = 5\n\n[services]\nmanaged = [{managed}]\n",
        bus = container().address,
        esl = peer.map_or("127.0.0.1:9".to_string(), |p| p.addr().to_string()),
        pw = site.path("esl.password").display(),
        managed = managed.join(", "),
    )
}

async fn call(site: &Site, d: &Daemon, who: Auth<'_>, method: &str, path: &str) -> Answer {
    request(site, d.addr, who, method, path, None)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn unit_state(site: &Site, d: &Daemon, unit: &str) -> Value {
    let list = call(site, d, Auth::Cert(&site.reader), "GET", "/v1/services").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == unit)
        .cloned()
        .unwrap_or_else(|| panic!("{unit} not listed: {}", list.body))
}

/// Polls `check` every 100 ms for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not seen within 30 s: {what}");
}

#[tokio::test]
async fn lists_and_starts_stops_restarts_units_that_succeed_fail_and_time_out() {
    let c = container();
    install(
        c,
        &[
            ("svc-a-ok", standin("svc-a-ok")),
            ("svc-a-fails", FAILS.into()),
            ("svc-a-slow", TIMES_OUT.into()),
            ("svc-a-jobslow", JOB_TIMES_OUT.into()),
        ],
    )
    .await;
    let site = Site::new();
    let managed = [
        "svc-a-fs",
        "svc-a-ok",
        "svc-a-fails",
        "svc-a-slow",
        "svc-a-jobslow",
    ];
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-a-fs", None, &managed, 5.0),
    ));

    let list = call(&site, &d, Auth::Cert(&site.reader), "GET", "/v1/services").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names: Vec<String> = list.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        managed.map(|m| format!("{m}.service")).to_vec(),
        "every managed unit, in the configured order"
    );
    let fs = &list.body["services"][0];
    assert_eq!(
        fs["load_state"], "absent",
        "a managed unit the host lacks is listed as absent: {fs}"
    );

    // A unit that starts: with or without `.service`.
    let op = || Auth::Cert(&site.operator);
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-a-ok/start").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["job_result"], "done");
    assert_eq!(a.body["ok"], true);
    assert_eq!(a.body["after"]["state"], "active");
    assert!(a.body["after"]["main_pid"].as_u64().is_some(), "{}", a.body);
    assert!(
        a.body["drain"].is_null(),
        "no drain for a unit that is not FreeSWITCH"
    );
    let first_pid = a.body["after"]["main_pid"].clone();
    let a = call(
        &site,
        &d,
        op(),
        "POST",
        "/v1/services/svc-a-ok.service/restart",
    )
    .await;
    assert_eq!(
        (a.status, a.body["job_result"].as_str()),
        (200, Some("done"))
    );
    assert_ne!(a.body["after"]["main_pid"], first_pid, "a new process");
    assert_eq!(starts(c, "svc-a-ok"), 2);
    let listed = unit_state(&site, &d, "svc-a-ok.service").await;
    assert_eq!(listed["state"], "active");
    assert_eq!(listed["sub_state"], "running");
    assert!(listed["since"].as_str().unwrap().ends_with('Z'), "{listed}");
    assert!(
        listed["last_action"]
            .as_str()
            .unwrap()
            .contains("restart svc-a-ok.service"),
        "{listed}"
    );
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-a-ok/stop").await;
    assert_eq!(
        (a.status, a.body["job_result"].as_str()),
        (200, Some("done"))
    );
    assert_eq!(a.body["after"]["state"], "inactive");

    // A unit that fails to start: systemd's result comes back in a problem document.
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-a-fails/start").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["status"], 502);
    assert_eq!(a.body["report"]["job_result"], "failed");
    assert_eq!(a.body["report"]["ok"], false);
    assert_eq!(a.body["report"]["after"]["state"], "failed");
    assert!(
        a.body["detail"].as_str().unwrap().contains("job failed"),
        "{}",
        a.body
    );

    // A unit that never finishes starting: systemd's own timeouts decide.
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-a-slow/start").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.body["report"]["job_result"], "failed");
    assert_eq!(a.body["report"]["after"]["result"], "timeout");
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-a-jobslow/start").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.body["report"]["job_result"], "timeout");

    // Every action is in the audit log, with the path asked and what happened.
    let audit = std::fs::read_to_string(site.path("data/audit.log")).unwrap();
    assert!(
        audit.contains("/v1/services/svc-a-ok.service/restart"),
        "{audit}"
    );
    assert!(
        audit.contains("start svc-a-fails.service; job failed"),
        "{audit}"
    );
    assert!(
        audit.contains("start svc-a-jobslow.service; job timeout"),
        "{audit}"
    );
}

#[tokio::test]
async fn unmanaged_units_are_404_for_everyone_and_roles_are_enforced() {
    let c = container();
    install(c, &[("svc-b-fs", standin("svc-b-fs"))]).await;
    let peer = Peer::start(PeerConfig::default()).await.unwrap();
    let site = Site::new();
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-b-fs", Some(&peer), &["svc-b-fs"], 5.0),
    ));
    // Units the container has, but the daemon does not manage.
    for path in [
        "/v1/services/dbus/restart",
        "/v1/services/systemd-journald.service/stop",
        "/v1/services/svc-a-ok/start",
    ] {
        let a = call(&site, &d, Auth::Cert(&site.admin), "POST", path).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.content_type, "application/problem+json");
        let a = call(&site, &d, Auth::Cert(&site.reader), "POST", path).await;
        assert_eq!(a.status, 404, "{path} as reader: {}", a.body);
    }
    let a = call(&site, &d, Auth::None, "POST", "/v1/services/svc-b-fs/start").await;
    assert_eq!(a.status, 401);
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.reader),
        "POST",
        "/v1/services/svc-b-fs/start",
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = call(&site, &d, Auth::Token(&site.token), "GET", "/v1/services").await;
    assert_eq!(a.status, 200, "a reader lists: {}", a.body);
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.operator),
        "POST",
        "/v1/services/svc-b-fs/restart?force=true",
    )
    .await;
    assert_eq!(a.status, 403, "force needs admin: {}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("admin"));
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.operator),
        "POST",
        "/v1/services/svc-b-fs/restart?force=maybe",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        starts(c, "svc-b-fs"),
        0,
        "nothing was started by refused requests"
    );

    // An admin may force: no drain, not a word to FreeSWITCH.
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.operator),
        "POST",
        "/v1/services/svc-b-fs/start",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.admin),
        "POST",
        "/v1/services/svc-b-fs/restart?force=true",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["forced"], true);
    assert!(a.body["drain"].is_null(), "{}", a.body);
    assert_eq!(starts(c, "svc-b-fs"), 2);
    assert!(peer.commands().is_empty(), "{:?}", peer.commands());
    let audit = std::fs::read_to_string(site.path("data/audit.log")).unwrap();
    assert!(
        audit.contains("/v1/services/svc-b-fs/restart?force=true"),
        "{audit}"
    );
    assert!(audit.contains("forced, no drain"), "{audit}");
    assert!(
        audit.contains("\"status\":404"),
        "refused attempts are audited too: {audit}"
    );
}

#[tokio::test]
async fn a_freeswitch_restart_drains_first_and_restarts_once() {
    let c = container();
    install(c, &[("svc-c-fs", standin("svc-c-fs"))]).await;
    let peer = Peer::start(PeerConfig {
        channels: vec![3, 3, 2, 2, 1, 1, 0],
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let site = Site::new();
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-c-fs", Some(&peer), &["svc-c-fs"], 60.0),
    ));
    // Starting does not drop calls: no drain.
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.operator),
        "POST",
        "/v1/services/svc-c-fs/start",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["drain"].is_null());
    assert!(peer.commands().is_empty());

    let done = AtomicBool::new(false);
    let restart = async {
        let a = call(
            &site,
            &d,
            Auth::Cert(&site.operator),
            "POST",
            "/v1/services/svc-c-fs/restart",
        )
        .await;
        done.store(true, Ordering::SeqCst);
        a
    };
    let watch = async {
        let mut seen = Vec::new();
        while !done.load(Ordering::SeqCst) {
            let r = call(&site, &d, Auth::Cert(&site.reader), "GET", "/v1/config").await;
            if r.body["state"] == "pending" {
                seen.push(r.body["reason"].as_str().unwrap_or("").to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    let (a, pending) = tokio::join!(restart, watch);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["drain"]["outcome"], "drained");
    assert_eq!(a.body["drain"]["calls_at_start"], 3);
    assert_eq!(a.body["drain"]["calls_left"], 0);
    assert_eq!(a.body["job_result"], "done");
    assert_eq!(
        starts(c, "svc-c-fs"),
        2,
        "one start, then exactly one restart"
    );
    let commands = peer.commands();
    assert_eq!(commands[0], "fsctl pause inbound");
    assert_eq!(
        commands
            .iter()
            .filter(|c| *c == "show channels count")
            .count(),
        7
    );
    assert!(
        !commands.iter().any(|c| c.contains("resume")),
        "a restarted FreeSWITCH takes calls again by itself: {commands:?}"
    );
    assert!(
        pending.iter().any(|p| p.starts_with("draining (")),
        "the status showed the drain: {pending:?}"
    );
    assert!(d.log_contains("draining (3 calls)"));
    let after = call(&site, &d, Auth::Cert(&site.reader), "GET", "/v1/config").await;
    assert_eq!(
        after.body["state"], "not-following",
        "the state before the drain is back"
    );
}

#[tokio::test]
async fn a_drain_that_reaches_its_deadline_proceeds_and_says_so() {
    let c = container();
    install(c, &[("svc-d-fs", standin("svc-d-fs"))]).await;
    let peer = Peer::start(PeerConfig {
        channels: vec![5],
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let site = Site::new();
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-d-fs", Some(&peer), &["svc-d-fs"], 1.0),
    ));
    let op = || Auth::Cert(&site.operator);
    assert_eq!(
        call(&site, &d, op(), "POST", "/v1/services/svc-d-fs/start")
            .await
            .status,
        200
    );
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-d-fs/stop").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["drain"]["outcome"], "deadline_reached");
    assert_eq!(a.body["drain"]["calls_left"], 5);
    assert!(
        a.body["drain"]["detail"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{}",
        a.body
    );
    assert!(a.body["summary"]
        .as_str()
        .unwrap()
        .contains("drain deadline reached with 5"));
    assert_eq!(a.body["after"]["state"], "inactive");
    assert_eq!(starts(c, "svc-d-fs"), 1);

    // FreeSWITCH not running: nothing to drain, the start/stop goes ahead.
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-d-fs/restart").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["drain"]["outcome"], "not_running");
    assert_eq!(starts(c, "svc-d-fs"), 2);
}

#[tokio::test]
async fn a_drain_that_cannot_reach_freeswitch_does_nothing() {
    let c = container();
    install(c, &[("svc-e-fs", standin("svc-e-fs"))]).await;
    let site = Site::new();
    // No event socket where the daemon looks.
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-e-fs", None, &["svc-e-fs"], 5.0),
    ));
    let op = || Auth::Cert(&site.operator);
    assert_eq!(
        call(&site, &d, op(), "POST", "/v1/services/svc-e-fs/start")
            .await
            .status,
        200
    );
    let a = call(&site, &d, op(), "POST", "/v1/services/svc-e-fs/restart").await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.body["report"]["drain"]["outcome"], "failed");
    assert!(a.body["report"]["job_result"].is_null(), "no job was run");
    assert_eq!(starts(c, "svc-e-fs"), 1, "not restarted");
}

/// The test's own database `tag` in the shared CouchDB (members only, set explicitly),
/// and the daemon's `[couchdb]` section following it as the server's admin.
async fn couch(tag: &str, site: &Site) -> (ccnq_couch::Db, String) {
    let server = ccnq_testkit::couchdb::CouchServer::shared();
    let (user, password) = server.admin();
    let db = ccnq_couch::Client::new(ccnq_couch::ClientConfig::new(
        &server.url(),
        ccnq_couch::Auth::basic(user, password),
    ))
    .unwrap()
    .db(tag);
    assert!(db.create().await.unwrap());
    db.put_security(&json!({"admins": {"names": [], "roles": []},
        "members": {"names": [user], "roles": []}}))
        .await
        .unwrap();
    std::fs::write(site.path("couch.password"), format!("{password}\n")).unwrap();
    let section = format!(
        "\n[couchdb]\nurl = \"{}\"\ndatabase = \"{tag}\"\nuser = \"{user}\"\npassword_file = \"{}\"\nheartbeat_secs = 1\n",
        server.url(),
        site.path("couch.password").display()
    );
    (db, section)
}

#[tokio::test]
async fn a_unit_crashing_on_its_own_is_logged_and_lands_in_the_status_document() {
    let c = container();
    install(c, &[("svc-f-crash", crashes("svc-f-crash"))]).await;
    let site = Site::new();
    let (db, couch) = couch("services-crash", &site).await;
    let sections = sections(&site, "svc-f-fs", None, &["svc-f-crash", "svc-f-fs"], 5.0);
    let d = Daemon::start(&config(&site, &format!("{sections}{couch}")));
    let unit = "svc-f-crash.service";
    let a = call(
        &site,
        &d,
        Auth::Cert(&site.operator),
        "POST",
        "/v1/services/svc-f-crash/start",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let status_of = |db: ccnq_couch::Db| async move {
        db.get_opt("status:sbc1.example.net")
            .await
            .ok()
            .flatten()
            .map(|doc| doc["services"][unit].clone())
            .unwrap_or(Value::Null)
    };
    eventually("the unit running in status:sbc1.example.net", || {
        let db = db.clone();
        async move { status_of(db).await["state"] == "active" }
    })
    .await;
    // It dies by itself: nobody asked.
    std::fs::write(c.var.join("tmp/svc-f-crash.crash"), "").unwrap();
    eventually("the crash in status:sbc1.example.net", || {
        let db = db.clone();
        async move {
            let s = status_of(db).await;
            s["state"] == "failed" && s["result"] == "exit-code"
        }
    })
    .await;
    eventually("the crash in the log", || async {
        d.stderr.lock().unwrap().iter().any(|l| {
            l.contains(&format!("{unit}: active (running) -> ")) && l.contains("-> failed (failed)")
        })
    })
    .await;
    let doc = db.get("status:sbc1.example.net", None).await.unwrap();
    assert_eq!(
        doc["services"]["svc-f-fs.service"]["load_state"], "absent",
        "{doc}"
    );
    assert_eq!(doc["services"][unit]["main_pid"], Value::Null);
}

#[tokio::test]
async fn a_server_only_host_stops_the_freeswitch_the_preset_started() {
    let c = container();
    install(
        c,
        &[
            ("svc-g-fs", standin("svc-g-fs")),
            ("svc-g-db", standin("svc-g-db")),
        ],
    )
    .await;
    let sd = systemd(c).await;
    let peer = Peer::start(PeerConfig::default()).await.unwrap();
    let site = Site::new();
    let (db, couch) = couch("services-server-only", &site).await;
    db.put(
        "host:sbc1.example.net",
        &json!({
            "type": "host", "host": "sbc1.example.net", "server_only": true,
            "services": { "couchdb": { "enabled": false } },
        }),
    )
    .await
    .unwrap();
    let sections = format!(
        "{}couchdb_unit = \"svc-g-db.service\"\n",
        sections(
            &site,
            "svc-g-fs",
            Some(&peer),
            &["svc-g-fs", "svc-g-db"],
            5.0
        )
    );
    let path = config(&site, &format!("{sections}{couch}"));
    // As at boot: the image's preset started both.
    sd.start("svc-g-fs.service").await.unwrap();
    sd.start("svc-g-db.service").await.unwrap();

    // First start on this host: nothing known applied, the plan itself stops FreeSWITCH.
    let mut d = Daemon::start(&path);
    eventually("the first apply", || async {
        let r = call(&site, &d, Auth::Cert(&site.reader), "GET", "/v1/config").await;
        assert_ne!(r.body["state"], "failed", "{}", r.body);
        r.body["state"] == "ok"
    })
    .await;
    assert_eq!(
        unit_state(&site, &d, "svc-g-fs.service").await["state"],
        "inactive"
    );
    d.terminate();

    // Next boot: the preset starts FreeSWITCH again; the document has not changed, so
    // the plan is empty, and the desired state stops it.
    sd.start("svc-g-fs.service").await.unwrap();
    let d = Daemon::start(&path);
    eventually("FreeSWITCH stopped again", || async {
        let s = unit_state(&site, &d, "svc-g-fs.service").await;
        s["state"] == "inactive" && s["desired"] == "stopped"
    })
    .await;
    let s = unit_state(&site, &d, "svc-g-fs.service").await;
    assert!(
        s["last_action"]
            .as_str()
            .unwrap()
            .contains("desired state: stop svc-g-fs.service"),
        "{s}"
    );
    assert!(d.log_contains("nothing renders differently"));
    // CouchDB switched off in the document stays up: the daemon reads it through CouchDB.
    let db_unit = unit_state(&site, &d, "svc-g-db.service").await;
    assert_eq!(db_unit["state"], "active", "{db_unit}");
    assert_eq!(db_unit["desired"], "running");
    assert!(d.wait_for_log("services.couchdb.enabled is false"));
    assert_eq!(starts(c, "svc-g-db"), 1, "CouchDB untouched");
}

/// `ccnqctl` with the site's CA and `who`'s certificate, and no ambient settings.
fn ctl(site: &Site, d: &Daemon, who: &str) -> std::process::Command {
    let mut cmd = common::ccnqctl(site);
    common::with_cert(&mut cmd, site, d, who);
    cmd
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn ccnqctl_lists_acts_and_exits_with_the_documented_codes() {
    let c = container();
    install(
        c,
        &[
            ("svc-h-ok", standin("svc-h-ok")),
            ("svc-h-fails", FAILS.into()),
        ],
    )
    .await;
    let site = Site::new();
    let d = Daemon::start(&config(
        &site,
        &sections(&site, "svc-h-fs", None, &["svc-h-ok", "svc-h-fails"], 5.0),
    ));

    let (code, out, err) = run(ctl(&site, &d, "operator").args(["services", "start", "svc-h-ok"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("job result") && l.ends_with("done")),
        "{out}"
    );
    let (code, out, err) = run(ctl(&site, &d, "reader").arg("services"));
    assert_eq!(code, 0, "{err}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("UNIT") && header.contains("PENDING"),
        "{out}"
    );
    assert!(
        out.lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
            .any(|cols| cols == ["svc-h-ok.service", "active", "running"]),
        "{out}"
    );
    let (code, out, _) = run(ctl(&site, &d, "reader").args(["services", "-o", "json"]));
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["services"][1]["name"], "svc-h-fails.service");

    // The job failed: the report is printed, the exit code is 8.
    let (code, out, err) =
        run(ctl(&site, &d, "operator").args(["services", "start", "svc-h-fails"]));
    assert_eq!(code, 8, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("job result") && l.ends_with("failed")),
        "{out}"
    );
    let (code, out, _) =
        run(ctl(&site, &d, "operator").args(["services", "restart", "svc-h-fails", "-o", "json"]));
    assert_eq!(code, 8);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["report"]["job_result"], "failed");
    // A reader may not act (4); an unmanaged unit does not exist (6).
    let (code, _, err) = run(ctl(&site, &d, "reader").args(["services", "stop", "svc-h-ok"]));
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = run(ctl(&site, &d, "admin").args(["services", "stop", "dbus"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("not a service this daemon manages"), "{err}");
}
