//! The client and the follower against byte-exact recordings of CouchDB 3.4.3 and
//! pouchdb-server 4.2.0, replayed by a test double (support/replay.rs).

mod support;

use std::time::Duration;

use ccnq_couch::follower::{self, FollowerConfig, FollowerEvent, ResumePoint};
use ccnq_couch::{Auth, Client, ClientConfig, CouchError};
use serde_json::{json, Value};
use support::replay::{Recording, ReplayServer, Step, SYNTHETIC_DB_200, SYNTHETIC_DB_404};

const COUCH: &str = "couchdb-3.4.3";
const POUCH: &str = "pouchdb-server-4.2.0";

fn rec(server: &str, name: &str) -> Step {
    Step::Replay(Recording::load(server, name))
}

fn client(url: &str) -> Client {
    let mut cfg = ClientConfig::new(url, Auth::basic("admin", "secret"));
    cfg.read_timeout = Duration::from_secs(5);
    Client::new(cfg).unwrap()
}

fn config(heartbeat_ms: u64) -> FollowerConfig {
    let mut c = FollowerConfig::new(vec!["host:a.example.net".into()]);
    c.heartbeat = Duration::from_millis(heartbeat_ms);
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    c.auth_retry = Duration::from_secs(3600);
    c.missing_db_poll = Duration::from_millis(20);
    c
}

/// Next event, failing the test (not hanging it) if none comes.
async fn next(f: &mut follower::Follower) -> FollowerEvent {
    tokio::time::timeout(Duration::from_secs(20), f.events.recv())
        .await
        .expect("no follower event within 20 s")
        .expect("follower stopped")
}

/// Skips Connected/Disconnected noise up to the next change.
async fn next_change(f: &mut follower::Follower) -> ccnq_couch::Change {
    loop {
        if let FollowerEvent::Change(c) = next(f).await {
            return c;
        }
    }
}

async fn continuous_feed(server: &str) {
    let srv = ReplayServer::start(vec![rec(server, "01-continuous-since0")]).await;
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(1000),
        ResumePoint::new(json!(0)),
        16,
    );
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    let mut versions = Vec::new();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let FollowerEvent::Change(c) = next(&mut f).await else {
            panic!("expected a change")
        };
        assert_eq!(c.id, "host:a.example.net");
        assert!(!c.deleted);
        let doc = c.doc.expect("include_docs");
        assert_eq!(doc["_rev"].as_str(), c.rev.as_deref());
        versions.push(doc["version"].as_i64().unwrap());
        seqs.push(c.seq);
    }
    assert_eq!(versions, vec![1, 2, 3]);
    // Opaque sequences, exactly as sent: strings on CouchDB, integers on pouchdb-server.
    if server == COUCH {
        assert!(seqs
            .iter()
            .all(|s| s.as_str().is_some_and(|s| s.contains("-g1AAAA"))));
    } else {
        assert_eq!(seqs, vec![json!(1), json!(3), json!(4)]);
    }
    // Our request is the recorded one: same request line, JSON content type, same body.
    let seen = srv.seen();
    let Step::Replay(r) = rec(server, "01-continuous-since0") else {
        unreachable!()
    };
    assert_eq!(
        format!("{} {} HTTP/1.1", seen[0].method, seen[0].target),
        r.request_line()
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[0].body,
        br#"{"doc_ids":["host:a.example.net"]}"#.to_vec()
    );
}

#[tokio::test]
async fn couchdb_continuous_feed_delivers_only_our_document() {
    continuous_feed(COUCH).await;
}

#[tokio::test]
async fn pouchdb_continuous_feed_delivers_only_our_document() {
    continuous_feed(POUCH).await;
}

#[tokio::test]
async fn couchdb_killed_mid_feed_reconnects_from_the_persisted_seq() {
    let srv = ReplayServer::start(vec![
        rec(COUCH, "11-continuous-server-killed"),
        rec(COUCH, "11b-continuous-resume-after-restart"),
    ])
    .await;
    let resume = ResumePoint::new(json!(0));
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(1000),
        resume.clone(),
        16,
    );
    let c = next_change(&mut f).await;
    assert_eq!(c.doc.unwrap()["version"], json!(102));
    // The daemon applied it and persisted its seq.
    resume.set(c.seq.clone());
    // The stream stops after a whole heartbeat chunk, without a closing chunk.
    match next(&mut f).await {
        FollowerEvent::Disconnected(why) => assert!(why.contains("body"), "{why}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let c2 = next_change(&mut f).await;
    assert_eq!(c2.doc.unwrap()["version"], json!(200));
    let seen = srv.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        Some(ccnq_couch::changes::since_param(&c.seq)),
        seen[1].query("since")
    );
    // The recorded resume request asked for the same seq.
    let Step::Replay(r) = rec(COUCH, "11b-continuous-resume-after-restart") else {
        unreachable!()
    };
    assert_eq!(
        format!("{} {} HTTP/1.1", seen[1].method, seen[1].target),
        r.request_line()
    );
}

#[tokio::test]
async fn reconnect_uses_the_persisted_seq_not_the_last_seen() {
    let srv = ReplayServer::start(vec![
        rec(COUCH, "11-continuous-server-killed"),
        rec(COUCH, "11c-continuous-server-sigterm"),
    ])
    .await;
    let resume = ResumePoint::new(json!("0"));
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(1000),
        resume,
        16,
    );
    let _seen_but_not_persisted = next_change(&mut f).await;
    assert!(matches!(next(&mut f).await, FollowerEvent::Disconnected(_)));
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    // SIGTERM looks like SIGKILL: the stream stops without a closing chunk.
    assert!(matches!(next(&mut f).await, FollowerEvent::Disconnected(_)));
    let seen = srv.seen();
    assert_eq!(seen[1].query("since").as_deref(), Some("0"));
}

#[tokio::test]
async fn couchdb_database_deleted_is_reported_and_restarts_from_zero() {
    let srv = ReplayServer::start(vec![
        rec(COUCH, "03-continuous-db-deleted"),
        // SYNTHETIC: GET /provisioning right after the deletion (not recorded).
        Step::Synthetic(SYNTHETIC_DB_404),
        // SYNTHETIC: the poll finds it recreated (03z recorded the PUT that recreated it).
        Step::Synthetic(SYNTHETIC_DB_200),
        rec(COUCH, "01-continuous-since0"),
    ])
    .await;
    let resume = ResumePoint::new(json!("17-g1AAAAold"));
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(1000),
        resume.clone(),
        16,
    );
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    let c = next_change(&mut f).await;
    assert_eq!(c.doc.unwrap()["version"], json!(8));
    match next(&mut f).await {
        FollowerEvent::Disconnected(why) => assert!(why.contains("last_seq"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next(&mut f).await, FollowerEvent::DatabaseMissing);
    assert_eq!(resume.get(), json!(0));
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    assert_eq!(next_change(&mut f).await.doc.unwrap()["version"], json!(1));
    let seen = srv.seen();
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("GET", "/provisioning")
    );
    assert_eq!(seen[3].query("since").as_deref(), Some("0"));
}

async fn timeout_ending_reconnects_without_missing_db(server: &str) {
    let mut steps = vec![rec(server, "04-continuous-timeout2000")];
    if server == COUCH {
        // SYNTHETIC: GET /provisioning after the feed ended: the database is there.
        steps.push(Step::Synthetic(SYNTHETIC_DB_200));
    }
    steps.push(rec(server, "01-continuous-since0"));
    let srv = ReplayServer::start(steps).await;
    // pouchdb-server never ends the feed: the per-read timeout (2 × heartbeat) does.
    let heartbeat = if server == COUCH { 1000 } else { 100 };
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(heartbeat),
        ResumePoint::new(json!("now")),
        16,
    );
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    match next(&mut f).await {
        FollowerEvent::Disconnected(why) if server == COUCH => {
            assert!(why.contains("last_seq"), "{why}")
        }
        FollowerEvent::Disconnected(why) => assert!(why.contains("timeout"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(next(&mut f).await, FollowerEvent::Connected);
    assert_eq!(next_change(&mut f).await.doc.unwrap()["version"], json!(1));
}

#[tokio::test]
async fn couchdb_feed_timeout_ending_reconnects() {
    timeout_ending_reconnects_without_missing_db(COUCH).await;
}

#[tokio::test]
async fn pouchdb_silent_feed_times_out_per_read_and_reconnects() {
    timeout_ending_reconnects_without_missing_db(POUCH).await;
}

async fn auth_refused(name: &str, status: u16) {
    let srv = ReplayServer::start(vec![rec(COUCH, name), rec(COUCH, name)]).await;
    let mut f = follower::spawn(
        client(&srv.url).db("provisioning"),
        config(1000),
        ResumePoint::new(json!(0)),
        16,
    );
    assert_eq!(next(&mut f).await, FollowerEvent::AuthRefused(status));
    // Slow retry: no tight loop of requests (auth_retry is an hour here).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.seen().len(), 1);
    assert!(f.events.try_recv().is_err());
}

#[tokio::test]
async fn couchdb_401_is_reported_and_retried_slowly() {
    auth_refused("06b-401-wrong-password", 401).await;
}

#[tokio::test]
async fn couchdb_403_is_reported_and_retried_slowly() {
    auth_refused("06e-403-non-member", 403).await;
}

#[tokio::test]
async fn stale_rev_is_a_conflict_on_both() {
    for server in [COUCH, POUCH] {
        let srv = ReplayServer::start(vec![rec(server, "07a-put-stale-rev-409")]).await;
        let db = client(&srv.url).db("provisioning");
        let doc = json!({"_rev": "1-13ee2f188a6c38e209d485e3daefc306", "type": "host"});
        let e = db.put("host:a.example.net", &doc).await.unwrap_err();
        assert!(e.is_conflict(), "{server}: {e}");
        assert_eq!(srv.seen()[0].target, "/provisioning/host:a.example.net");
    }
}

#[tokio::test]
async fn local_put_reads_the_current_rev_first() {
    for server in [COUCH, POUCH] {
        let srv = ReplayServer::start(vec![
            rec(server, "07e-local-get"),
            rec(server, "07c-local-update-with-rev"),
        ])
        .await;
        let db = client(&srv.url).db("provisioning");
        let rev = db
            .put_local(
                "ccnqd-a.example.net",
                &json!({"last_seq": 8, "host": "a.example.net"}),
            )
            .await
            .unwrap();
        let seen = srv.seen();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].target, "/provisioning/_local/ccnqd-a.example.net");
        assert_eq!(seen[1].method, "PUT");
        let sent: Value = serde_json::from_slice(&seen[1].body).unwrap();
        let Step::Replay(get) = rec(server, "07e-local-get") else {
            unreachable!()
        };
        let get_body = String::from_utf8_lossy(get.chunks.concat().as_slice()).into_owned();
        let current_rev = sent["_rev"].as_str().expect("PUT carries the _rev");
        assert!(
            get_body.contains(&format!("\"_rev\":\"{current_rev}\"")),
            "{server}"
        );
        assert!(!rev.is_empty());
    }
}

#[tokio::test]
async fn pouchdb_local_put_without_rev_conflicts() {
    let srv = ReplayServer::start(vec![rec(POUCH, "07d-local-update-without-rev")]).await;
    let db = client(&srv.url).db("provisioning");
    let e = db
        .put("_local/ccnqd-a.example.net", &json!({"last_seq": 8}))
        .await
        .unwrap_err();
    assert!(e.is_conflict());
}

#[tokio::test]
async fn bulk_docs_results_are_matched_by_id() {
    for server in [COUCH, POUCH] {
        let srv = ReplayServer::start(vec![rec(server, "08-bulk-docs-conflict")]).await;
        let db = client(&srv.url).db("provisioning");
        // Asked in a different order than the answer: matching must follow ids.
        let docs = vec![
            json!({"_id": "host:d.example.net"}),
            json!({"_id": "host:a.example.net", "_rev": "1-x"}),
            json!({"_id": "host:c.example.net"}),
        ];
        let results = db.bulk_docs(&docs).await.unwrap();
        let ids: Vec<_> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "host:d.example.net",
                "host:a.example.net",
                "host:c.example.net"
            ]
        );
        assert!(results[0].result.as_ref().unwrap().starts_with("1-"));
        assert!(results[1].result.as_ref().unwrap_err().is_conflict());
        assert!(results[2].result.as_ref().unwrap().starts_with("1-"));
    }
}

#[tokio::test]
async fn http_errors_are_typed() {
    let srv = ReplayServer::start(vec![
        rec(COUCH, "06a-401-no-credentials"),
        rec(COUCH, "06e-403-non-member"),
    ])
    .await;
    let db = client(&srv.url).db("provisioning");
    for status in [401u16, 403] {
        match db.get("_changes", None).await {
            Err(CouchError::Unauthorized { status: s, .. }) => assert_eq!(s, status),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_connection_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(
        c.server_info().await,
        Err(CouchError::Transport(_))
    ));
}
