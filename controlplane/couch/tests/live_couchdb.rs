//! The client, follower, checkpoint, replication and status writer against a real
//! Apache CouchDB 3.4.3 (`ccnq_testkit::couchdb`), and every difference spec/couchdb.md
//! lists between it and pouchdb-server checked against the real thing.
//!
//! The tests share one CouchDB per test binary, each with databases and users of its
//! own; those that kill or restart the server start their own. pouchdb-server appears
//! once, at the end, as a fault injector: it keeps the feed of a deleted database open
//! forever, which CouchDB never does.

mod support;

use std::time::Duration;

use ccnq_couch::follower::{self, Follower, FollowerConfig, FollowerEvent, ResumePoint};
use ccnq_couch::replication::{self, Endpoint, JobState, Outcome, ReplicationSpec};
use ccnq_couch::{
    checkpoint, coalesce, status, Auth, Change, Checkpoint, Client, ClientConfig, CouchError, Db,
};
use ccnq_testkit::couchdb::CouchServer;
use serde_json::{json, Value};

const HOST: &str = "host:a.example.net";

fn admin(srv: &CouchServer) -> Client {
    let (user, password) = srv.admin();
    Client::new(ClientConfig::new(&srv.url(), Auth::basic(user, password))).unwrap()
}

fn client_as(srv: &CouchServer, auth: Auth) -> Client {
    Client::new(ClientConfig::new(&srv.url(), auth)).unwrap()
}

/// Creates database `name` with an explicit `_security` (members: the admin and
/// `members`), never relying on the server's defaults (spec/couchdb.md).
async fn database(c: &Client, name: &str, members: &[&str]) -> Db {
    let db = c.db(name);
    assert!(db.create().await.unwrap(), "{name} existed already");
    let mut names = vec!["admin"];
    names.extend_from_slice(members);
    db.put_security(&json!({"admins": {"names": [], "roles": []},
        "members": {"names": names, "roles": []}}))
        .await
        .unwrap();
    db
}

/// A CouchDB user (in `_users`).
async fn user(c: &Client, name: &str, password: &str) {
    c.db("_users")
        .put(
            &format!("org.couchdb.user:{name}"),
            &json!({"name": name, "password": password, "roles": [], "type": "user"}),
        )
        .await
        .unwrap();
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
    tokio::time::timeout(Duration::from_secs(60), f.events.recv())
        .await
        .expect("no follower event within 60 s")
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

/// Polls `f` every 200 ms until it gives `Some` (at most 120 s: CI machines are busy).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn live_new_revision_arrives_other_hosts_never() {
    let srv = CouchServer::shared();
    let db = database(&admin(srv), "rev", &[]).await;
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
async fn live_docs_with_prefix_lists_live_documents_of_that_prefix_only() {
    let srv = CouchServer::shared();
    let db = database(&admin(srv), "prefix", &[]).await;
    for id in [
        "host:b.example.net",
        "host:a.example.net",
        "status:a.example.net",
        "hosts",
    ] {
        db.put(id, &json!({"n": id})).await.unwrap();
    }
    let gone = db.put("host:c.example.net", &json!({})).await.unwrap();
    db.delete("host:c.example.net", &gone).await.unwrap();
    let ids = |docs: Vec<Value>| -> Vec<String> {
        docs.iter()
            .map(|d| d["_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(db.docs_with_prefix("host:").await.unwrap()),
        ["host:a.example.net", "host:b.example.net"]
    );
    let status = db.docs_with_prefix("status:").await.unwrap();
    assert_eq!(status[0]["n"], "status:a.example.net");
    assert!(db.docs_with_prefix("rollout:").await.unwrap().is_empty());
}

#[tokio::test]
async fn live_sequences_are_opaque_strings_stored_and_sent_back_verbatim() {
    let srv = CouchServer::shared();
    let db = database(&admin(srv), "opaque", &[]).await;
    let mut f = follower::spawn(db.clone(), config(), ResumePoint::new(json!(0)), 64);
    put_version(&db, HOST, 1).await;
    let (changes, _) = changes_until(&mut f, 1).await;
    drop(f);
    let seq = changes.last().unwrap().seq.clone();
    // CouchDB 3: `"N-g1AAAA…"`, not a number (pouchdb-server sends integers).
    let text = seq
        .as_str()
        .unwrap_or_else(|| panic!("CouchDB seq {seq} is not a string"));
    assert!(text.contains("-g1"), "{text}");

    // Stored (file and `_local`) and read back byte for byte.
    let cp = Checkpoint {
        seq: seq.clone(),
        rev: changes.last().unwrap().rev.clone().unwrap(),
    };
    let dir = tempfile_dir("opaque");
    let path = dir.join("checkpoint.json");
    checkpoint::save_file(&path, &cp).unwrap();
    assert_eq!(checkpoint::load_file(&path).unwrap().unwrap().seq, seq);
    checkpoint::save_local(&db, "a.example.net", &cp)
        .await
        .unwrap();
    let local = checkpoint::load_local(&db, "a.example.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local.seq.to_string(), seq.to_string());

    // Sent back unchanged as `since`: the feed resumes after it, never before.
    put_version(&db, HOST, 2).await;
    let mut f = follower::spawn(db.clone(), config(), ResumePoint::new(local.seq), 64);
    let (changes, _) = changes_until(&mut f, 2).await;
    assert!(
        changes
            .iter()
            .all(|c| c.doc.as_ref().unwrap()["version"] == json!(2)),
        "resumed before the stored sequence: {changes:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ccnq-couch-live-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn live_server_killed_and_restarted_resumes_without_loss() {
    let mut srv = CouchServer::start("kill");
    let c = admin(&srv);
    let db = database(&c, "provisioning", &[]).await;
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
async fn live_database_deleted_ends_the_feed_is_reported_and_read_from_0_when_recreated() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let db = database(&c, "deleted", &[]).await;
    let resume = ResumePoint::new(json!(0));
    // No periodic check during the test: CouchDB itself must end the feed.
    let mut cfg = config();
    cfg.db_check = Duration::from_secs(3600);
    let mut f = follower::spawn(db.clone(), cfg, resume.clone(), 64);
    for v in 1..=5 {
        put_version(&db, HOST, v).await;
    }
    let (changes, _) = changes_until(&mut f, 5).await;
    resume.set(changes.last().unwrap().seq.clone());
    db.delete_db().await.unwrap();
    let mut seen = Vec::new();
    loop {
        match next(&mut f).await {
            FollowerEvent::DatabaseMissing => break,
            FollowerEvent::Change(c) => panic!("change after deletion: {c:?}"),
            other => seen.push(other),
        }
    }
    assert!(
        seen.iter().any(|e| matches!(e,
            FollowerEvent::Disconnected(why) if why.contains("last_seq"))),
        "CouchDB ends the feed with a last_seq line: {seen:?}"
    );
    assert_eq!(resume.get(), json!(0), "the old sequence is forgotten");
    database(&c, "deleted", &[]).await;
    put_version(&db, HOST, 100).await;
    let (changes, _) = changes_until(&mut f, 100).await;
    assert_eq!(changes.last().unwrap().id, HOST);
    assert_eq!(
        changes.len(),
        1,
        "a fresh database has one change: {changes:?}"
    );
}

#[tokio::test]
async fn live_refused_credentials_401_and_403_are_reported_and_retried_slowly() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    database(&c, "refused", &["refused-member"]).await;
    user(&c, "refused-member", "right").await;
    user(&c, "refused-stranger", "right").await;
    let cases = [
        // A wrong password (two tries for this user: far below the lockout).
        (Auth::basic("refused-member", "wrong"), 401, "unauthorized"),
        (
            Auth::Cookie {
                user: "refused-member".into(),
                password: "wrong".into(),
            },
            401,
            "unauthorized",
        ),
        // No such user.
        (Auth::basic("refused-nobody", "x"), 401, "unauthorized"),
        // A valid user who is not a member: CouchDB says 403 (pouchdb-server 401).
        (Auth::basic("refused-stranger", "right"), 403, "forbidden"),
        (Auth::None, 401, "unauthorized"),
    ];
    for (auth, status, error) in cases {
        let refused = client_as(srv, auth.clone()).db("refused");
        match refused.info().await {
            Err(CouchError::Unauthorized { status: s, body }) => {
                assert_eq!((s, body.error.as_str()), (status, error), "{auth:?}")
            }
            other => panic!("{auth:?}: {other:?}"),
        }
        // CouchDB checks a wrong password with 600 000 rounds of PBKDF2: on a busy
        // machine that takes longer than the 1 s read timeout of `config()`.
        let mut cfg = config();
        cfg.heartbeat = Duration::from_secs(10);
        let mut f = follower::spawn(refused, cfg, ResumePoint::new(json!(0)), 64);
        assert_eq!(
            next(&mut f).await,
            FollowerEvent::AuthRefused(status),
            "{auth:?}"
        );
        // Slow retry: nothing more within a few heartbeats (auth_retry is an hour).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(f.events.try_recv().is_err(), "{auth:?}: retried too fast");
    }
    // The member with the right password is fine.
    let ok = client_as(srv, Auth::basic("refused-member", "right")).db("refused");
    assert!(ok.exists().await.unwrap());
}

#[tokio::test]
async fn live_an_open_feed_whose_password_changed_ends_at_the_next_db_check_and_backs_off() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let db = database(&c, "rotated", &["rotated-user"]).await;
    user(&c, "rotated-user", "first").await;
    let as_user = client_as(srv, Auth::basic("rotated-user", "first")).db("rotated");
    let mut f = follower::spawn(as_user.clone(), config(), ResumePoint::new(json!(0)), 64);
    put_version(&db, HOST, 1).await;
    changes_until(&mut f, 1).await;
    // The password changes: the open feed goes on, every new request is refused.
    let users = c.db("_users");
    let mut doc = users
        .get("org.couchdb.user:rotated-user", None)
        .await
        .unwrap();
    doc["password"] = json!("second");
    users
        .put("org.couchdb.user:rotated-user", &doc)
        .await
        .unwrap();
    // The periodic `GET /db` (every 500 ms here) is refused: the follower reports it and
    // waits (an hour here) instead of checking again and again with the refused
    // password, each time one more failure towards CouchDB's lockout.
    loop {
        match next(&mut f).await {
            FollowerEvent::AuthRefused(401) => break,
            FollowerEvent::Change(_) | FollowerEvent::Connected => {}
            other => panic!("{other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(f.events.try_recv().is_err(), "retried too fast");
    // Far below the lockout: the new password works.
    let fixed = client_as(srv, Auth::basic("rotated-user", "second")).db("rotated");
    assert!(fixed.exists().await.unwrap());
}

#[tokio::test]
async fn live_repeated_bad_passwords_lock_the_user_out_even_with_the_right_one() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    database(&c, "lockout", &["lockout-user"]).await;
    user(&c, "lockout-user", "right").await;
    let good = client_as(srv, Auth::basic("lockout-user", "right")).db("lockout");
    assert!(good.exists().await.unwrap());
    let bad = client_as(srv, Auth::basic("lockout-user", "wrong")).db("lockout");
    let mut failures = 0;
    let locked = loop {
        match bad.info().await {
            Err(CouchError::Unauthorized { status: 401, .. }) => failures += 1,
            Err(CouchError::Unauthorized { status: 403, body }) => break body,
            other => panic!("after {failures} failures: {other:?}"),
        }
        assert!(failures <= 10, "no lockout after {failures} failures");
    };
    assert!(failures >= 3, "locked out after only {failures} failures");
    assert_eq!(locked.error, "forbidden");
    // The right password is refused too now, as 403: the same class as any refusal.
    match good.info().await {
        Err(CouchError::Unauthorized { status: 403, body }) => assert_eq!(body.error, "forbidden"),
        other => panic!("a locked-out user with the right password: {other:?}"),
    }
    // Only that user: the admin is not affected.
    assert!(c.db("lockout").exists().await.unwrap());
}

#[tokio::test]
async fn live_burst_of_50_revisions_coalesces_to_the_newest() {
    let srv = CouchServer::shared();
    let db = database(&admin(srv), "burst", &[]).await;
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
    tokio::time::timeout(Duration::from_secs(60), seen50_rx)
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
async fn live_local_documents_are_read_then_written_with_their_rev() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let db = database(&c, "local", &[]).await;
    let cp = |n: u64| Checkpoint {
        seq: json!(format!("{n}-g1AAAAopaque")),
        rev: format!("{n}-abc"),
    };
    let r1 = checkpoint::save_local(&db, "a.example.net", &cp(1))
        .await
        .unwrap();
    let r2 = checkpoint::save_local(&db, "a.example.net", &cp(2))
        .await
        .unwrap();
    // CouchDB's `_local` revisions are `0-N`, counting the writes that sent the current
    // `_rev` (pouchdb-server answers 409 without it).
    assert_eq!((r1.as_str(), r2.as_str()), ("0-1", "0-2"));
    assert_eq!(
        checkpoint::load_local(&db, "a.example.net").await.unwrap(),
        Some(cp(2))
    );
    let stored = db.get_local("ccnqd-a.example.net").await.unwrap().unwrap();
    assert_eq!(stored["_rev"], json!("0-2"));
    assert_eq!(stored["host"], json!("a.example.net"));
    // CouchDB (unlike pouchdb-server) takes a `_local` write without `_rev`: it
    // overwrites. The client sends the `_rev` anyway, which both servers take.
    db.put("_local/blind", &json!({"n": 1})).await.unwrap();
    db.put("_local/blind", &json!({"n": 2})).await.unwrap();
    assert_eq!(db.get_local("blind").await.unwrap().unwrap()["n"], json!(2));
    assert_eq!(
        checkpoint::load_local(&db, "b.example.net").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn live_client_operations_with_cookie_auth() {
    let srv = CouchServer::shared();
    let (user, password) = srv.admin();
    let c = client_as(
        srv,
        Auth::Cookie {
            user: user.into(),
            password: password.into(),
        },
    );
    assert_eq!(c.server_info().await.unwrap()["version"], json!("3.4.3"));
    let db = c.db("ops");
    assert!(!db.exists().await.unwrap());
    assert!(db.create().await.unwrap());
    assert!(
        !db.create().await.unwrap(),
        "second create reports 'already there'"
    );
    assert!(db.exists().await.unwrap());
    db.put_security(&json!({"admins": {"names": [], "roles": []},
        "members": {"names": ["admin"], "roles": []}}))
        .await
        .unwrap();

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

    // Members only: an anonymous reader is refused.
    let anon = client_as(srv, Auth::None);
    match anon.db("ops").get("status:a.example.net", None).await {
        Err(CouchError::Unauthorized { status: 401, .. }) => {}
        other => panic!("anonymous read of a members-only database: {other:?}"),
    }
}

fn endpoint(srv: &CouchServer, db: &str) -> Endpoint {
    let (user, password) = srv.admin();
    Endpoint {
        url: format!("{}/{db}", srv.url()),
        basic: Some((user.into(), password.into())),
    }
}

/// The scheduler's state of `doc_id`, once `f` holds of it.
async fn job_until(
    c: &Client,
    doc_id: &str,
    what: &str,
    f: impl Fn(&JobState) -> bool,
) -> JobState {
    eventually(&format!("{doc_id}: {what}"), || async {
        let s = replication::job_state(c, "_replicator", doc_id)
            .await
            .unwrap();
        f(&s).then_some(s)
    })
    .await
}

#[tokio::test]
async fn live_replication_documents_pull_host_push_status_and_are_repaired() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let central = database(&c, "repl-central", &[]).await;
    let local = database(&c, "repl-local", &[]).await;
    let replicator = c.db("_replicator");
    let spec = ReplicationSpec {
        fqdn: "a.example.net".into(),
        central: endpoint(srv, "repl-central"),
        local: endpoint(srv, "repl-local"),
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
    let pull = replication::pull_doc_id("a.example.net");
    let push = replication::push_doc_id("a.example.net");
    for id in [&pull, &push] {
        job_until(
            &c,
            id,
            "running",
            |s| matches!(s, JobState::Known { state, .. } if state == "running"),
        )
        .await;
    }

    // Idempotent.
    let again = replication::ensure(&replicator, &spec).await.unwrap();
    assert!(
        again.iter().all(|(_, o)| *o == Outcome::Unchanged),
        "{again:?}"
    );
    // Someone changes the pull document, then deletes the push one while its job runs
    // (CouchDB takes both; pouchdb-server refuses the first and crashes on the second).
    let mut changed = replicator.get(&pull, None).await.unwrap();
    changed["doc_ids"] = json!(["host:b.example.net"]);
    replicator.put(&pull, &changed).await.unwrap();
    let stored = replicator.get(&push, None).await.unwrap();
    replicator
        .delete(&push, stored["_rev"].as_str().unwrap())
        .await
        .unwrap();
    let repaired = replication::ensure(&replicator, &spec).await.unwrap();
    assert!(
        matches!(repaired[0], (ref id, Outcome::Repaired { .. }) if *id == pull),
        "{repaired:?}"
    );
    assert!(
        matches!(repaired[1], (ref id, Outcome::Created { .. }) if *id == push),
        "{repaired:?}"
    );
    // And both work again: a central change arrives, a local status goes up.
    put_version(&central, HOST, 2).await;
    status::write_status(&local, "a.example.net", &json!({"result": "again"}))
        .await
        .unwrap();
    eventually("version 2 pulled and the status pushed", || async {
        let pulled = local.get_opt(HOST).await.unwrap()?;
        let pushed = central.get_opt("status:a.example.net").await.unwrap()?;
        (pulled["version"] == json!(2) && pushed["result"] == json!("again")).then_some(())
    })
    .await;
    for id in [&pull, &push] {
        let stored = replicator.get(id, None).await.unwrap();
        replicator
            .delete(id, stored["_rev"].as_str().unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn live_a_replication_into_a_missing_database_fails_db_not_found_in_the_scheduler() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    database(&c, "missing-central", &[]).await;
    let spec = ReplicationSpec {
        fqdn: "m.example.net".into(),
        central: endpoint(srv, "missing-central"),
        // Never created: `create_target` is false.
        local: endpoint(srv, "missing-local"),
    };
    let replicator = c.db("_replicator");
    replication::ensure(&replicator, &spec).await.unwrap();
    let pull = replication::pull_doc_id("m.example.net");
    let failed = job_until(&c, &pull, "failing", JobState::is_failing).await;
    let JobState::Known {
        error,
        last_updated,
        ..
    } = &failed
    else {
        unreachable!()
    };
    assert!(
        error.as_deref().unwrap_or("").contains("db_not_found"),
        "{failed:?}"
    );
    assert!(last_updated.is_some(), "{failed:?}");
    // The document itself looks as fine as ever: only the scheduler tells.
    let doc = replicator.get(&pull, None).await.unwrap();
    assert_eq!(doc["create_target"], json!(false));
    assert!(doc.get("_replication_state").is_none(), "{doc}");
    assert!(!c.db("missing-local").exists().await.unwrap());
    // Unknown document: not scheduled, not an error.
    assert!(matches!(
        replication::job_state(&c, "_replicator", "no-such-doc")
            .await
            .unwrap(),
        JobState::Unknown(_)
    ));
    for id in [pull, replication::push_doc_id("m.example.net")] {
        let stored = replicator.get(&id, None).await.unwrap();
        replicator
            .delete(&id, stored["_rev"].as_str().unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn live_replicator_is_admin_only_until_the_user_is_a_member_of_its_security() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    database(&c, "member-src", &["replicator-user"]).await;
    user(&c, "replicator-user", "right").await;
    let as_user = client_as(srv, Auth::basic("replicator-user", "right"));
    let doc = json!({
        "source": endpoint(srv, "member-src").url,
        "target": endpoint(srv, "member-src").url,
        "continuous": false,
    });
    match as_user.db("_replicator").put("by-user", &doc).await {
        Err(CouchError::Unauthorized { status: 403, body }) => assert_eq!(body.error, "forbidden"),
        other => panic!("a non-admin writing to _replicator: {other:?}"),
    }
    // Made a member of `_replicator` (the admin role kept), the user may.
    let replicator = c.db("_replicator");
    let mut security = replicator.get("_security", None).await.unwrap();
    security["members"]["names"] = json!(["replicator-user"]);
    replicator.put_security(&security).await.unwrap();
    assert_eq!(
        replicator.get("_security", None).await.unwrap()["members"]["roles"],
        json!(["_admin"])
    );
    let rev = as_user
        .db("_replicator")
        .put("by-user", &doc)
        .await
        .unwrap();
    // The scheduler stays for server admins: unknown to the user, not an error.
    assert!(matches!(
        replication::job_state(&as_user, "_replicator", "by-user")
            .await
            .unwrap(),
        JobState::Unknown(_)
    ));
    as_user
        .db("_replicator")
        .delete("by-user", &rev)
        .await
        .unwrap();
}

/// A host whose local database is new (a network boot's RAM `/var`, a replaced disk)
/// brings its status history from the central database before it writes, so that its
/// writes win there; one that wrote first ends the losing branch at its next write.
#[tokio::test]
async fn live_a_new_local_database_takes_the_central_status_history_and_its_writes_win() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let central = database(&c, "hist-central", &[]).await;
    let local = database(&c, "hist-local", &[]).await;
    let spec = |fqdn: &str| ReplicationSpec {
        fqdn: fqdn.into(),
        central: endpoint(srv, "hist-central"),
        local: endpoint(srv, "hist-local"),
    };
    // What the hosts' earlier boots left in the central database: five writes each.
    for boot in ["hist-a", "hist-b"] {
        for n in 1..=5 {
            status::write_status(
                &central,
                &format!("{boot}.example.net"),
                &json!({"boot": 1, "n": n}),
            )
            .await
            .unwrap();
        }
    }
    let rev_of = |d: &Value| d["_rev"].as_str().unwrap().to_string();
    let central_a = rev_of(
        &central
            .get("status:hist-a.example.net", None)
            .await
            .unwrap(),
    );
    assert!(central_a.starts_with("5-"), "{central_a}");

    // a: the history first, then the write, which descends from it.
    let written = replication::bring_status_history(&c, &spec("hist-a.example.net"))
        .await
        .unwrap();
    assert_eq!(written, 1);
    let brought = local.get("status:hist-a.example.net", None).await.unwrap();
    assert_eq!(rev_of(&brought), central_a);
    let rev = status::write_status(&local, "hist-a.example.net", &json!({"boot": 2}))
        .await
        .unwrap();
    assert!(rev.starts_with("6-"), "{rev}");
    assert_eq!(
        replication::bring_status_history(&c, &spec("hist-a.example.net"))
            .await
            .unwrap(),
        0,
        "nothing new to bring"
    );

    // b: a write of its own first (the central database was out of reach), then the
    // history: CouchDB's winner is the longer history, the central one, and it is stale.
    status::write_status(&local, "hist-b.example.net", &json!({"boot": 2}))
        .await
        .unwrap();
    assert_eq!(
        replication::bring_status_history(&c, &spec("hist-b.example.net"))
            .await
            .unwrap(),
        1
    );
    let winner = local
        .get_opt_with("status:hist-b.example.net", "conflicts=true")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(winner["boot"], json!(1), "{winner}");
    assert_eq!(
        winner["_conflicts"].as_array().map(Vec::len),
        Some(1),
        "{winner}"
    );
    // The next write goes onto the winner and deletes the branch that lost.
    let rev = status::write_status(
        &local,
        "hist-b.example.net",
        &json!({"boot": 2, "again": true}),
    )
    .await
    .unwrap();
    assert!(rev.starts_with("6-"), "{rev}");
    let now = local
        .get_opt_with("status:hist-b.example.net", "conflicts=true")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now["again"], json!(true), "{now}");
    assert!(now.get("_conflicts").is_none(), "{now}");

    // Pushed, both are the central database's winners, with one leaf each.
    replication::ensure(&c.db("_replicator"), &spec("hist-a.example.net"))
        .await
        .unwrap();
    replication::ensure(&c.db("_replicator"), &spec("hist-b.example.net"))
        .await
        .unwrap();
    eventually("both hosts' new status in the central database", || async {
        let a = central
            .get_opt_with("status:hist-a.example.net", "conflicts=true")
            .await
            .unwrap()?;
        let b = central
            .get_opt_with("status:hist-b.example.net", "conflicts=true")
            .await
            .unwrap()?;
        (a["boot"] == json!(2) && b["again"] == json!(true) && b.get("_conflicts").is_none())
            .then_some(())
    })
    .await;
    let replicator = c.db("_replicator");
    for fqdn in ["hist-a.example.net", "hist-b.example.net"] {
        for id in [
            replication::pull_doc_id(fqdn),
            replication::push_doc_id(fqdn),
        ] {
            let stored = replicator.get(&id, None).await.unwrap();
            replicator
                .delete(&id, stored["_rev"].as_str().unwrap())
                .await
                .unwrap();
        }
    }
}

/// What the diagnostics read of the server: `_up`, the databases with their sizes, a
/// running replication job with its counters, the active tasks.
#[tokio::test]
async fn live_server_state_up_databases_jobs_and_tasks() {
    let srv = CouchServer::shared();
    let c = admin(srv);
    let central = database(&c, "diag-central", &[]).await;
    database(&c, "diag-local", &[]).await;
    central.put(HOST, &json!({"type": "host"})).await.unwrap();
    let spec = ReplicationSpec {
        fqdn: "diag.example.net".into(),
        central: endpoint(srv, "diag-central"),
        local: endpoint(srv, "diag-local"),
    };
    let replicator = c.db("_replicator");
    replication::ensure(&replicator, &spec).await.unwrap();

    assert_eq!(ccnq_couch::server::up(&c).await.unwrap()["status"], "ok");
    let dbs = ccnq_couch::server::databases(&c).await.unwrap();
    let info = dbs
        .iter()
        .find(|d| d["db_name"] == "diag-central")
        .unwrap_or_else(|| panic!("{dbs:?}"));
    assert_eq!(info["doc_count"], 1);
    assert!(info["sizes"]["file"].as_u64() > Some(0), "{info}");
    let pull = replication::pull_doc_id("diag.example.net");
    let job = eventually("the pull job running, with its counters", || async {
        let jobs = ccnq_couch::server::scheduler_docs(&c).await.unwrap();
        jobs.into_iter().find(|j| {
            j["doc_id"] == json!(pull)
                && j["state"] == "running"
                && j["info"]["changes_pending"].is_u64()
        })
    })
    .await;
    assert!(job["last_updated"].is_string(), "{job}");
    let tasks = ccnq_couch::server::active_tasks(&c).await.unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t["type"] == "replication" && t["doc_id"] == json!(pull)),
        "{tasks:?}"
    );
    for id in [pull, replication::push_doc_id("diag.example.net")] {
        let stored = replicator.get(&id, None).await.unwrap();
        replicator
            .delete(&id, stored["_rev"].as_str().unwrap())
            .await
            .unwrap();
    }
}

async fn wait_for(db: &Db, id: &str) -> Value {
    eventually(&format!("{id} replicated into {}", db.name()), || async {
        db.get_opt(id).await.unwrap()
    })
    .await
}

/// pouchdb-server as a fault injector: it keeps the feed of a deleted database open
/// with heartbeats forever (CouchDB ends it at once, tested above), so only the
/// follower's periodic `GET /db` can find the database gone.
#[tokio::test]
async fn pouchdb_fault_a_deleted_databases_feed_that_never_ends_is_caught_by_the_db_check() {
    use ccnq_testkit::pouch::{node_available, PouchServer};
    if !node_available("pouchdb_fault_a_deleted_databases_feed_that_never_ends") {
        return;
    }
    let srv = PouchServer::start("del");
    let c = Client::new(ClientConfig::new(
        &srv.url(),
        Auth::basic("admin", "secret"),
    ))
    .unwrap();
    let db = c.db("provisioning");
    assert!(db.create().await.unwrap());
    db.put_security(&json!({"members": {"names": ["admin"], "roles": []}}))
        .await
        .unwrap();
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
    assert!(db.create().await.unwrap());
    // A fresh database: pouchdb's integer sequence restarts, below the old resume point.
    put_version(&db, HOST, 100).await;
    let (changes, _) = changes_until(&mut f, 100).await;
    assert_eq!(changes.last().unwrap().id, HOST);
}
