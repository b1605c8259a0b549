//! The driver against a real Apache CouchDB 3.4.3 (`ccnq_testkit::couchdb`), with the
//! hosts played by a test double (`support/hosts_double.rs`: it stands in for ccnqd's
//! upgrade path, which does not exist yet, and writes `status:<fqdn>` as a host would).
//!
//! Covered: waves in order, the per-site limit at every poll the double made, a halt
//! after two rollbacks that leaves the host documents as they were, a driver aborted
//! mid-rollout and started again, and two drivers running at once by accident.

#[path = "support/hosts_double.rs"]
mod hosts_double;

use ccnq_api::UpgradeState;
use ccnq_couch::{Auth, Client, ClientConfig, Db};
use ccnq_rollout::model::Outcome;
use ccnq_rollout::{waves, Driver, DriverConfig, Plan, RunState};
use ccnq_testkit::couchdb::CouchServer;
use hosts_double::{host_doc, HostsDouble};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const V: &str = "2026.12.1";

/// Generous: a rollout of a few hosts takes seconds; this only stops a hung test.
const BOUND: Duration = Duration::from_secs(180);

async fn database(name: &str) -> Db {
    let srv = CouchServer::shared();
    let (user, password) = srv.admin();
    let client = Client::new(ClientConfig::new(&srv.url(), Auth::basic(user, password))).unwrap();
    let db = client.db(name);
    assert!(db.create().await.unwrap(), "{name} existed already");
    db
}

async fn fleet(db: &Db, hosts: &[(&str, &str)]) {
    for (fqdn, site) in hosts {
        db.put(&format!("host:{fqdn}"), &host_doc(fqdn, site))
            .await
            .unwrap();
    }
}

async fn rollout(db: &Db, name: &str, body: Value) {
    let mut doc = json!({"type": "rollout", "version": V,
        "halt": {"rolled_back": 2, "not_blessed_within_minutes": 30}});
    for (k, v) in body.as_object().unwrap() {
        doc[k] = v.clone();
    }
    db.put(&format!("rollout:{name}"), &doc).await.unwrap();
}

fn driver(db: &Db, name: &str) -> Driver {
    Driver::new(
        db.clone(),
        name,
        DriverConfig {
            poll_interval: Duration::from_millis(100),
            ..DriverConfig::default()
        },
    )
}

/// Runs a driver to its end, its lines kept.
async fn run(d: &Driver, lines: &Arc<Mutex<Vec<String>>>) -> Plan {
    let lines = lines.clone();
    tokio::time::timeout(
        BOUND,
        d.run(move |l| lines.lock().unwrap().push(l.to_owned())),
    )
    .await
    .expect("the rollout ends")
    .expect("the driver runs")
}

async fn image(db: &Db, fqdn: &str) -> Value {
    db.get(&format!("host:{fqdn}"), None).await.unwrap()["image"].clone()
}

async fn all_blessed(db: &Db, fqdns: &[&str]) {
    for h in fqdns {
        let s = db.get(&format!("status:{h}"), None).await.unwrap();
        assert_eq!(s["upgrade"]["state"], "blessed", "{h}: {s}");
        assert_eq!(s["upgrade"]["booted_version"], V, "{h}");
        assert_eq!(
            image(db, h).await,
            json!({"version": V}),
            "{h}: named, not held"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_waves_go_in_order_and_no_site_exceeds_its_limit() {
    let db = database("waves").await;
    let hosts = [
        ("p1.example.net", "paris"),
        ("p2.example.net", "paris"),
        ("p3.example.net", "paris"),
        ("p4.example.net", "paris"),
        ("p5.example.net", "paris"),
        ("l1.example.net", "lyon"),
        ("l2.example.net", "lyon"),
        ("l3.example.net", "lyon"),
    ];
    let names: Vec<&str> = hosts.iter().map(|(h, _)| *h).collect();
    fleet(&db, &hosts).await;
    let double = HostsDouble::start(db.clone(), &names, &[], 2).await;
    let wave_list = json!([{"name": "canary", "hosts": ["l2.example.net"]},
                           {"name": "half", "percent": 50},
                           {"name": "rest", "percent": 100}]);
    rollout(
        &db,
        "r",
        json!({"waves": wave_list, "max_rebooting_per_site": 2}),
    )
    .await;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let end = run(&driver(&db, "r"), &lines).await;

    assert_eq!(end.state(), RunState::Done, "{:?}", lines.lock().unwrap());
    all_blessed(&db, &names).await;
    let seen = double.observed();
    assert!(seen.over_limit.is_empty(), "{:?}", seen.over_limit);
    assert!(
        seen.max_rebooting.values().all(|n| (1..=2).contains(n)),
        "{:?}",
        seen.max_rebooting
    );
    // Waves in order: every host of a wave blessed before any host of a later wave
    // began to download (it is staged only when its wave starts).
    let r = driver(&db, "r").read().await.unwrap();
    let wave = |h: &str| waves::wave_of(&r.waves, h).unwrap();
    assert_eq!(wave("l2.example.net"), 0);
    for a in &names {
        for b in &names {
            if wave(a) < wave(b) {
                let blessed = seen.first(a, UpgradeState::Blessed).unwrap();
                let started = seen.first(b, UpgradeState::Downloading).unwrap();
                assert!(
                    blessed < started,
                    "{a} (wave {}) blessed after {b} (wave {}) started",
                    wave(a),
                    wave(b)
                );
            }
        }
    }
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l == "wave 0 canary: done"),
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("done"));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("release ")).count(),
        8,
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_two_rollbacks_halt_and_the_host_documents_stay_as_they_are() {
    let db = database("halt").await;
    let hosts = [
        ("a.example.net", "s"),
        ("b.example.net", "s"),
        ("c.example.net", "s"),
        ("d.example.net", "s"),
    ];
    fleet(&db, &hosts).await;
    // Wave 0 is a, b and c; a and b roll back; c has no status (the double does not
    // play it), so it is staged and never released; d is in wave 1, never reached.
    let played = ["a.example.net", "b.example.net", "d.example.net"];
    let double =
        HostsDouble::start(db.clone(), &played, &["a.example.net", "b.example.net"], 2).await;
    let waves = json!([{"name": "first", "hosts": ["a.example.net", "b.example.net", "c.example.net"]},
                       {"name": "rest", "percent": 100}]);
    rollout(
        &db,
        "r",
        json!({"waves": waves, "max_rebooting_per_site": 2}),
    )
    .await;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let d = driver(&db, "r");
    let end = run(&d, &lines).await;

    assert_eq!(end.state(), RunState::Halted, "{:?}", lines.lock().unwrap());
    let reason = end.progress.halted_reason.clone().unwrap();
    assert!(
        reason.contains("2 host(s) of wave 0 first rolled back (a.example.net, b.example.net)"),
        "{reason}"
    );
    for h in ["a.example.net", "b.example.net"] {
        assert_eq!(end.progress.hosts[h].outcome, Some(Outcome::RolledBack));
        assert_eq!(
            image(&db, h).await,
            json!({"version": V}),
            "{h} stays released"
        );
    }
    assert_eq!(
        image(&db, "c.example.net").await,
        json!({"version": V, "hold": true}),
        "c still held"
    );
    assert_eq!(
        image(&db, "d.example.net").await,
        Value::Null,
        "wave 1 never staged"
    );
    let revs = |docs: Vec<Value>| -> Vec<String> {
        docs.iter()
            .map(|d| d["_rev"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = revs(db.docs_with_prefix("host:").await.unwrap());
    let rollout_rev = db.get("rollout:r", None).await.unwrap()["_rev"].clone();
    // Later passes (a restarted driver, another one) change nothing, whatever the
    // hosts report meanwhile.
    double.polls(5).await;
    let again = d.pass().await.unwrap();
    assert_eq!(again.state(), RunState::Halted);
    assert!(again.writes.is_empty() && again.events.is_empty());
    let again = run(&driver(&db, "r"), &Arc::new(Mutex::new(Vec::new()))).await;
    assert_eq!(again.state(), RunState::Halted);
    assert_eq!(revs(db.docs_with_prefix("host:").await.unwrap()), before);
    assert_eq!(
        db.get("rollout:r", None).await.unwrap()["_rev"],
        rollout_rev
    );
    assert!(double.observed().over_limit.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_a_driver_aborted_mid_rollout_is_resumed_by_the_next_within_the_limit() {
    let db = database("resume").await;
    let hosts = [
        ("a.example.net", "x"),
        ("b.example.net", "x"),
        ("c.example.net", "x"),
        ("d.example.net", "y"),
        ("e.example.net", "y"),
        ("f.example.net", "y"),
    ];
    let names: Vec<&str> = hosts.iter().map(|(h, _)| *h).collect();
    fleet(&db, &hosts).await;
    let double = HostsDouble::start(db.clone(), &names, &[], 1).await;
    rollout(
        &db,
        "r",
        json!({"waves": [{"name": "all", "percent": 100}], "max_rebooting_per_site": 1}),
    )
    .await;

    let first = driver(&db, "r");
    let task = tokio::spawn(async move { first.run(|_| {}).await });
    // Abort once two hosts are blessed and the rest are not.
    let reader = driver(&db, "r");
    tokio::time::timeout(BOUND, async {
        loop {
            let r = reader.read().await.unwrap();
            let blessed = r.progress.map_or(0, |p| {
                p.hosts
                    .values()
                    .filter(|h| h.outcome == Some(Outcome::Blessed))
                    .count()
            });
            if blessed >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("two hosts blessed");
    task.abort();
    let _ = task.await;
    let mid = reader.read().await.unwrap().progress.unwrap();
    assert_eq!(mid.state, RunState::Running);
    assert!(
        mid.hosts
            .values()
            .filter(|h| h.outcome == Some(Outcome::Blessed))
            .count()
            < 6
    );

    let lines = Arc::new(Mutex::new(Vec::new()));
    let end = run(&driver(&db, "r"), &lines).await;
    assert_eq!(end.state(), RunState::Done, "{:?}", lines.lock().unwrap());
    all_blessed(&db, &names).await;
    let seen = double.observed();
    assert!(seen.over_limit.is_empty(), "{:?}", seen.over_limit);
    assert_eq!(seen.max_rebooting.get("x"), Some(&1));
    // Hosts blessed before the abort were not released again.
    for (h, p) in &mid.hosts {
        if p.outcome == Some(Outcome::Blessed) {
            assert_eq!(end.progress.hosts[h].released_at, p.released_at, "{h}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_two_drivers_at_once_never_release_beyond_the_limit() {
    let db = database("twice").await;
    let hosts: Vec<(String, &str)> = (0..6)
        .map(|i| (format!("h{i}.example.net"), "one"))
        .collect();
    let refs: Vec<(&str, &str)> = hosts.iter().map(|(h, s)| (h.as_str(), *s)).collect();
    let names: Vec<&str> = refs.iter().map(|(h, _)| *h).collect();
    fleet(&db, &refs).await;
    let double = HostsDouble::start(db.clone(), &names, &[], 1).await;
    rollout(
        &db,
        "r",
        json!({"waves": [{"name": "all", "percent": 100}]}),
    )
    .await;
    let (one, two) = (driver(&db, "r"), driver(&db, "r"));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = tokio::join!(run(&one, &lines), run(&two, &lines));
    assert_eq!(a.state(), RunState::Done);
    assert_eq!(b.state(), RunState::Done);
    all_blessed(&db, &names).await;
    let seen = double.observed();
    assert!(seen.over_limit.is_empty(), "{:?}", seen.over_limit);
    assert_eq!(seen.max_rebooting.get("one"), Some(&1));
    let released = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("release ") && l.contains("rebooting)"))
        .count();
    assert_eq!(
        released, 6,
        "each host released once, by one driver or the other"
    );
}
