//! The client, follower, checkpoint, replication and status writer against a real
//! pouchdb-server 4.2.0 (each test starts its own on a free port).

mod support;

use std::time::Duration;

use ccnq_couch::follower::{self, Follower, FollowerConfig, FollowerEvent, ResumePoint};
use ccnq_couch::replication::{self, Endpoint, Outcome, ReplicationSpec};
use ccnq_couch::{
    checkpoint, coalesce, status, Auth, Change, Checkpoint, Client, ClientConfig, CouchError, Db,
};
use ccnq_testkit::pouch::{node_available, PouchServer};
use serde_json::json;

const HOST: &str = "host:a.example.net";

fn admin(url: &str) -> Client {
    Client::new(ClientConfig::new(url, Auth::basic("admin", "secret"))).unwrap()
}

/// Creates `provisioning`, readable by admins only (pouchdb-server is world-readable
/// until `_security` is set).
async fn provisioning(c: &Client) -> Db {
    let db = c.db("provisioning");
    assert!(db.create().await.unwrap());
    db.put_security(&json!({"admins": {"names": [], "roles": []}, "members": {"names": ["admin"], "roles": []}}))
        .await
        .unwrap();
    db
}

fn config() -> FollowerConfig {
    let mut c = FollowerConfig::new(vec![HOST.into()]);
    c.heartbeat = Duration::from_millis(500);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c.auth_retry = Duration::from_secs(3600);
    c.missing_db_poll = Duration::from_millis(100);
    c.db_check = Duration::from_millis(500);
    c
}

async fn put_version(db: &Db, id: &str, version: i64) -> String {
    let mut doc = db
        .get_opt(id)
        .await
        .unwrap()
        .unwrap_or_else(|| json!({"type": "host"}));
    doc["version"] = json!(version);
    db.put(id, &doc).await.unwrap()
}

async fn next(f: &mut Follower) -> FollowerEvent {
    tokio::time::timeout(Duration::from_secs(30), f.events.recv())
        .await
        .expect("no follower event within 30 s")
        .expect("follower stopped")
}

/// Changes until one of `id` at `version`; returns all changes seen on the way.
async fn changes_until(f: &mut Follower, version: i64) -> (Vec<Change>, Vec<FollowerEvent>) {
    let mut changes = Vec::new();
    let mut states = Vec::new();
    loop {
        match next(f).await {
            FollowerEvent::Change(c) => {
                let done = c.doc.as_ref().and_then(|d| d["version"].as_i64()) == Some(version);
                changes.push(c);
                if done {
                    return (changes, states);
                }
            }
            other => states.push(other),
        }
    }
}

#[tokio::test]
async fn live_new_revision_arrives_other_hosts_never() {
    if !node_available("live_new_revision_arrives_other_hosts_never") {
        return;
    }
    let srv = PouchServer::start("rev");
    let c = admin(&srv.url());
    let db = provisioning(&c).await;
    let mut f = follower::spawn(db.clone(), config(), ResumePoint::new(json!(0)), 64);
    put_version(&db, HOST, 1).await;
    put_version(&db, "host:b.example.net", 1).await;
    let rev2 = put_version(&db, HOST, 2).await;
    put_version(&db, "host:b.example.net", 2).await;
    let (changes, _) = changes_until(&mut f, 2).await;
    assert!(changes.iter().all(|c| c.id == HOST), "{changes:?}");
    let last = changes.last().unwrap();
    assert_eq!(last.rev.as_deref(), Some(rev2.as_str()));
    assert_eq!(last.doc.as_ref().unwrap()["_rev"], json!(rev2));
    put_version(&db, "host:b.example.net", 3).await;
    put_version(&db, HOST, 3).await;
    let (changes, _) = changes_until(&mut f, 3).await;
    assert!(changes.iter().all(|c| c.id == HOST), "{changes:?}");
}

#[tokio::test]
async fn live_server_killed_and_restarted_resumes_without_loss() {
    if !node_available("live_server_killed_and_restarted_resumes_without_loss") {
        return;
    }
    let mut srv = PouchServer::start("kill");
    let c = admin(&srv.url());
    let db = provisioning(&c).await;
    let resume = ResumePoint::new(json!(0));
    let mut f = follower::spawn(db.clone(), config(), resume.clone(), 64);
    put_version(&db, HOST, 1).await;
    let (changes, _) = changes_until(&mut f, 1).await;
    resume.set(changes.last().unwrap().seq.clone());
    srv.kill();
    // The feed breaks: reported, then reconnect attempts are refused while it is down.
    match next(&mut f).await {
        FollowerEvent::Disconnected(_) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    srv.restart();
    let rev2 = put_version(&db, HOST, 2).await;
    let (changes, states) = changes_until(&mut f, 2).await;
    assert!(states.contains(&FollowerEvent::Connected), "{states:?}");
    assert_eq!(changes.last().unwrap().rev.as_deref(), Some(rev2.as_str()));
    // Nothing before the persisted point came again.
    assert!(
        changes
            .iter()
            .all(|c| c.doc.as_ref().unwrap()["version"] == json!(2)),
        "{changes:?}"
    );
}

#[tokio::test]
async fn live_database_deleted_and_recreated_is_reported_and_recovers() {
    if !node_available("live_database_deleted_and_recreated_is_reported_and_recovers") {
        return;
    }
    let srv = PouchServer::start("del");
    let c = admin(&srv.url());
    let db = provisioning(&c).await;
    let resume = ResumePoint::new(json!(0));
    let mut f = follower::spawn(db.clone(), config(), resume.clone(), 64);
    for v in 1..=5 {
        put_version(&db, HOST, v).await;
    }
    let (changes, _) = changes_until(&mut f, 5).await;
    resume.set(changes.last().unwrap().seq.clone());
    db.delete_db().await.unwrap();
    loop {
        match next(&mut f).await {
            FollowerEvent::DatabaseMissing => break,
            FollowerEvent::Change(c) => panic!("change after deletion: {c:?}"),
            _ => {}
        }
    }
    assert_eq!(resume.get(), json!(0));
    provisioning(&c).await;
    // A fresh database: its sequence restarts, below the old resume point.
    put_version(&db, HOST, 100).await;
    let (changes, _) = changes_until(&mut f, 100).await;
    assert_eq!(changes.last().unwrap().id, HOST);
}

#[tokio::test]
async fn live_wrong_credentials_are_reported_and_retried_slowly() {
    if !node_available("live_wrong_credentials_are_reported_and_retried_slowly") {
        return;
    }
    let srv = PouchServer::start("auth");
    provisioning(&admin(&srv.url())).await;
    for auth in [
        Auth::basic("admin", "wrong"),
        Auth::Cookie {
            user: "admin".into(),
            password: "wrong".into(),
        },
    ] {
        let bad = Client::new(ClientConfig::new(&srv.url(), auth.clone())).unwrap();
        let mut f = follower::spawn(
            bad.db("provisioning"),
            config(),
            ResumePoint::new(json!(0)),
            64,
        );
        assert_eq!(
            next(&mut f).await,
            FollowerEvent::AuthRefused(401),
            "{auth:?}"
        );
        // Slow retry: nothing more within a few heartbeats (auth_retry is an hour).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(f.events.try_recv().is_err(), "{auth:?}: retried too fast");
    }
}

#[tokio::test]
async fn live_burst_of_50_revisions_coalesces_to_the_newest() {
    if !node_available("live_burst_of_50_revisions_coalesces_to_the_newest") {
        return;
    }
    let srv = PouchServer::start("burst");
    let c = admin(&srv.url());
    let db = provisioning(&c).await;
    let mut f = follower::spawn(db.clone(), config(), ResumePoint::new(json!(0)), 64);
    let (tx, mut rx) = coalesce::slot::<Change>();
    let (seen50_tx, seen50_rx) = tokio::sync::oneshot::channel();
    // The follower side: every change goes into the slot.
    let pump = tokio::spawn(async move {
        let mut seen50 = Some(seen50_tx);
        while let Some(ev) = f.events.recv().await {
            if let FollowerEvent::Change(c) = ev {
                let v = c.doc.as_ref().and_then(|d| d["version"].as_i64());
                tx.put(c);
                if v == Some(50) {
                    if let Some(s) = seen50.take() {
                        let _ = s.send(());
                    }
                }
            }
        }
    });
    put_version(&db, HOST, 1).await;
    // The apply side takes the first revision and is "busy" while 49 more arrive.
    let (first, _) = rx.next().await.unwrap();
    assert_eq!(first.doc.unwrap()["version"], json!(1));
    for v in 2..=50 {
        put_version(&db, HOST, v).await;
    }
    tokio::time::timeout(Duration::from_secs(30), seen50_rx)
        .await
        .unwrap()
        .unwrap();
    let (next_apply, skipped) = rx.next().await.unwrap();
    assert_eq!(next_apply.doc.unwrap()["version"], json!(50));
    assert!(rx.try_take().is_none());
    eprintln!(
        "burst of 49 revisions: the next apply uses the newest; {skipped} superseded in the slot"
    );
    pump.abort();
}

#[tokio::test]
async fn live_client_operations_with_cookie_auth() {
    if !node_available("live_client_operations_with_cookie_auth") {
        return;
    }
    let srv = PouchServer::start("ops");
    let c = Client::new(ClientConfig::new(
        &srv.url(),
        Auth::Cookie {
            user: "admin".into(),
            password: "secret".into(),
        },
    ))
    .unwrap();
    assert_eq!(c.server_info().await.unwrap()["version"], json!("4.2.0"));
    let db = c.db("provisioning");
    assert!(!db.exists().await.unwrap());
    assert!(db.create().await.unwrap());
    assert!(
        !db.create().await.unwrap(),
        "second create reports 'already there'"
    );
    assert!(db.exists().await.unwrap());

    let rev1 = db
        .put(HOST, &json!({"type": "host", "version": 1}))
        .await
        .unwrap();
    assert!(db
        .put(HOST, &json!({"type": "host"}))
        .await
        .unwrap_err()
        .is_conflict());
    let rev2 = db
        .put(HOST, &json!({"_rev": rev1, "type": "host", "version": 2}))
        .await
        .unwrap();
    assert_eq!(
        db.get(HOST, Some(&rev1)).await.unwrap()["version"],
        json!(1)
    );
    assert_eq!(db.get(HOST, None).await.unwrap()["version"], json!(2));
    assert!(db.delete(HOST, &rev1).await.unwrap_err().is_conflict());
    db.delete(HOST, &rev2).await.unwrap();
    assert!(db.get(HOST, None).await.unwrap_err().is_not_found());

    // _local: create, then update (pouchdb-server needs the current _rev).
    let cp = Checkpoint {
        seq: json!(7),
        rev: "2-abc".into(),
    };
    checkpoint::save_local(&db, "a.example.net", &cp)
        .await
        .unwrap();
    let cp2 = Checkpoint {
        seq: json!(9),
        rev: "3-def".into(),
    };
    checkpoint::save_local(&db, "a.example.net", &cp2)
        .await
        .unwrap();
    assert_eq!(
        checkpoint::load_local(&db, "a.example.net").await.unwrap(),
        Some(cp2)
    );
    assert_eq!(
        checkpoint::load_local(&db, "b.example.net").await.unwrap(),
        None
    );

    // _bulk_docs with one conflict.
    db.put("host:c.example.net", &json!({})).await.unwrap();
    let results = db
        .bulk_docs(&[
            json!({"_id": "host:d.example.net"}),
            json!({"_id": "host:c.example.net"}),
            json!({"_id": "host:e.example.net"}),
        ])
        .await
        .unwrap();
    assert!(results[0].result.is_ok() && results[2].result.is_ok());
    assert!(results[1].result.as_ref().unwrap_err().is_conflict());

    // Status document: create, then replace with the current _rev.
    let s1 = status::write_status(&db, "a.example.net", &json!({"result": "ok"}))
        .await
        .unwrap();
    let s2 = status::write_status(
        &db,
        "a.example.net",
        &json!({"result": "failed", "reason": "x"}),
    )
    .await
    .unwrap();
    assert_ne!(s1, s2);
    let doc = db.get("status:a.example.net", None).await.unwrap();
    assert_eq!(
        (
            doc["type"].clone(),
            doc["host"].clone(),
            doc["result"].clone()
        ),
        (json!("status"), json!("a.example.net"), json!("failed"))
    );

    // Members-only after `_security`: an anonymous reader is refused.
    let anon = Client::new(ClientConfig::new(&srv.url(), Auth::None)).unwrap();
    db.put_security(&json!({"members": {"names": ["admin"], "roles": []}}))
        .await
        .unwrap();
    match anon
        .db("provisioning")
        .get("status:a.example.net", None)
        .await
    {
        Err(CouchError::Unauthorized { .. }) => {}
        other => panic!("anonymous read of a members-only database: {other:?}"),
    }
}

#[tokio::test]
async fn live_replication_documents_pull_host_and_push_status() {
    if !node_available("live_replication_documents_pull_host_and_push_status") {
        return;
    }
    let srv = PouchServer::start("repl");
    let c = admin(&srv.url());
    let central = c.db("central");
    central.create().await.unwrap();
    let local = provisioning(&c).await;
    let replicator = c.db("_replicator");
    let _ = replicator.create().await.unwrap();
    let spec = ReplicationSpec {
        fqdn: "a.example.net".into(),
        central: Endpoint {
            url: format!("{}/central", srv.url()),
            basic: Some(("admin".into(), "secret".into())),
        },
        local: Endpoint {
            url: format!("{}/provisioning", srv.url()),
            basic: Some(("admin".into(), "secret".into())),
        },
    };
    let done = replication::ensure(&replicator, &spec).await.unwrap();
    assert!(
        done.iter()
            .all(|(_, o)| matches!(o, Outcome::Created { .. })),
        "{done:?}"
    );
    // No credentials inside a stored URL.
    for (id, _) in &done {
        let stored = replicator.get(id, None).await.unwrap();
        for side in ["source", "target"] {
            assert!(
                !stored[side]["url"].as_str().unwrap().contains('@'),
                "{stored}"
            );
        }
    }

    central
        .put(HOST, &json!({"type": "host", "version": 1}))
        .await
        .unwrap();
    central
        .put("host:b.example.net", &json!({"type": "host"}))
        .await
        .unwrap();
    status::write_status(&local, "a.example.net", &json!({"result": "ok"}))
        .await
        .unwrap();
    wait_for(&local, HOST).await;
    wait_for(&central, "status:a.example.net").await;
    assert!(local.get_opt("host:b.example.net").await.unwrap().is_none());

    // Idempotent, and repairs what someone changed or deleted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = replication::ensure(&replicator, &spec).await.unwrap();
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{again:?}"
    );
    // Repair of a changed or deleted document is not exercised here: pouchdb-server
    // forbids edits of a triggered replication document and crashes when one is deleted
    // while it runs. `needs_repair` is unit-tested; CouchDB 3 takes the update.
}

async fn wait_for(db: &Db, id: &str) {
    for _ in 0..300 {
        if db.get_opt(id).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never replicated into {}", db.name());
}
