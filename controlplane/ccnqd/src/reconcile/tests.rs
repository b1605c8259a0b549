//! The reconcile loop against a real CouchDB 3.4.3 (`ccnq_testkit::couchdb`: one shared
//! by these tests, each with its own database; the test that kills the server has its
//! own), with a test double in place of the FreeSWITCH applier.
//!
//! The applier itself (controlplane/apply) is tested against the recorded FreeSWITCH;
//! here only the loop's own promises are checked: which revisions reach the apply step,
//! how often, in what order, what survives a restart, and what the report and the
//! `status:` document say.

use super::report::Report;
use super::*;
use ccnq_couch::{Auth, Client, ClientConfig};
use ccnq_testkit::couchdb::CouchServer;
use std::sync::Mutex;
use tokio::sync::RwLock;

const FQDN: &str = "sbc1.example.net";
const ID: &str = "host:sbc1.example.net";

/// One call of the apply step, as the double saw it.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    rev: String,
    host: String,
    /// Whether the call changed what runs (its revision differed from the running one).
    effect: bool,
}

/// TEST DOUBLE of the FreeSWITCH applier. It keeps the contract the loop relies on:
/// what runs is persisted on the data directory (the real applier keeps the applied
/// document beside its files), a call for what already runs has no effect, and a call
/// can be held (to stop the daemon "during an apply") or made to fail.
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    running_file: PathBuf,
    /// Applies wait for a read lock: a test holding the write lock holds them.
    gate: Arc<RwLock<()>>,
    fail: Arc<Mutex<Option<String>>>,
    delay: Duration,
}

impl Apply for Recorder {
    async fn apply(&mut self, wanted: Wanted<'_>, progress: &Progress) -> Outcome {
        progress.pending(format!("test double applying {}", wanted.rev));
        tokio::time::sleep(self.delay).await;
        // Held here while a test wants the daemon stopped mid-apply.
        drop(self.gate.read().await);
        let running = std::fs::read_to_string(&self.running_file).unwrap_or_default();
        let effect = running != wanted.rev;
        self.calls.lock().unwrap().push(Call {
            rev: wanted.rev.to_string(),
            host: wanted.validated.host.host.clone(),
            effect,
        });
        if let Some(reason) = self.fail.lock().unwrap().clone() {
            return Outcome {
                result: Err(reason),
                actions: vec![],
                retry: false,
            };
        }
        if effect {
            std::fs::write(&self.running_file, wanted.rev).unwrap();
        }
        Outcome {
            result: Ok(()),
            actions: if effect {
                vec![json!({"description": format!("test double: run {}", wanted.rev)})]
            } else {
                vec![]
            },
            retry: false,
        }
    }
}

/// The CouchDB of a test: the shared one, or its own when the test kills it.
enum Couch {
    Shared(&'static CouchServer),
    Own(CouchServer),
}

impl std::ops::Deref for Couch {
    type Target = CouchServer;
    fn deref(&self) -> &CouchServer {
        match self {
            Couch::Shared(s) => s,
            Couch::Own(s) => s,
        }
    }
}

struct Harness {
    couch: Couch,
    /// The followed database, the test's own.
    name: String,
    admin: Db,
    /// Settings that some tests change (see [`settings`] for the rest).
    credentials_retry: Duration,
    database_check: Duration,
    dir: tempfile::TempDir,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Applies wait for a read lock: a test holding the write lock holds them.
    gate: Arc<RwLock<()>>,
    fail: Arc<Mutex<Option<String>>>,
    delay: Duration,
    daemon: Option<Running>,
}

/// One "run" of the daemon's loop; dropping it stops the loop as a crash would.
struct Running {
    report: Arc<Report>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn admin_client(couch: &CouchServer) -> Client {
    let (user, password) = couch.admin();
    Client::new(ClientConfig::new(&couch.url(), Auth::basic(user, password))).unwrap()
}

fn settings(dir: &Path, credentials_retry: Duration, database_check: Duration) -> Settings {
    Settings {
        fqdn: FQDN.into(),
        data_dir: dir.to_path_buf(),
        // CouchDB checks a wrong password with 600 000 rounds of PBKDF2: a read timeout
        // of 2 heartbeats must leave room for that on a busy machine.
        heartbeat: Duration::from_secs(2),
        reconnect_max: Duration::from_millis(500),
        credentials_retry,
        database_check,
        retry_initial: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
    }
}

fn version() -> Version {
    Version {
        daemon: "test".into(),
        image_id: Some("ccnq5".into()),
        image_version: Some("2026.12.1".into()),
        slot: Some("a".into()),
    }
}

use std::path::Path;

impl Harness {
    /// On the shared CouchDB, following a database of the test's own, created with an
    /// explicit `_security` (never CouchDB's defaults).
    async fn new(tag: &str) -> Harness {
        let h = Harness::without_database(Couch::Shared(CouchServer::shared()), tag);
        h.create_database().await;
        h
    }

    /// With a CouchDB of its own, which the test may kill.
    async fn own(tag: &str) -> Harness {
        let h = Harness::without_database(
            Couch::Own(CouchServer::start(&format!("reconcile-{tag}"))),
            tag,
        );
        h.create_database().await;
        h
    }

    async fn create_database(&self) {
        assert!(self.admin.create().await.unwrap());
        self.admin
            .put_security(&json!({"admins": {"names": [], "roles": []},
                "members": {"names": ["admin"], "roles": []}}))
            .await
            .unwrap();
    }

    fn without_database(couch: Couch, tag: &str) -> Harness {
        let name = format!("reconcile-{tag}");
        let admin = admin_client(&couch).db(&name);
        Harness {
            couch,
            name,
            admin,
            credentials_retry: Duration::from_millis(500),
            database_check: Duration::from_millis(300),
            dir: tempfile::tempdir().unwrap(),
            calls: Arc::default(),
            gate: Arc::default(),
            fail: Arc::default(),
            delay: Duration::ZERO,
            daemon: None,
        }
    }

    /// Starts the loop as the daemon would, logging in as `auth`.
    fn start_as(&mut self, auth: Auth) {
        let db = Client::new(ClientConfig::new(&self.couch.url(), auth))
            .unwrap()
            .db(&self.name);
        let report = Arc::new(Report::new(Some(ID.into())));
        let recorder = Recorder {
            calls: self.calls.clone(),
            running_file: self.dir.path().join("running-rev"),
            gate: self.gate.clone(),
            fail: self.fail.clone(),
            delay: self.delay,
        };
        let tasks = spawn(
            db,
            settings(self.dir.path(), self.credentials_retry, self.database_check),
            recorder,
            report.clone(),
            version(),
        );
        self.daemon = Some(Running { report, tasks });
    }

    fn start(&mut self) {
        let (user, password) = self.couch.admin();
        self.start_as(Auth::basic(user, password));
    }

    fn own_couch(&mut self) -> &mut CouchServer {
        match &mut self.couch {
            Couch::Own(s) => s,
            Couch::Shared(_) => panic!("this test must start its own CouchDB"),
        }
    }

    fn report_handle(&self) -> Arc<Report> {
        self.daemon.as_ref().unwrap().report.clone()
    }

    /// The keeper of the replication with `central` (a database of the same server
    /// stands in for the central CouchDB), as the daemon runs it. The `_replicator`
    /// document ids come from the host's name: a test keeping a replication needs a
    /// CouchDB of its own.
    fn keep_replication(&self, central: &str, local: &str) -> tokio::task::JoinHandle<()> {
        use ccnq_couch::replication::{Endpoint, ReplicationSpec};
        let (user, password) = self.couch.admin();
        let endpoint = |db: &str| Endpoint {
            url: format!("{}/{db}", self.couch.url()),
            basic: Some((user.into(), password.into())),
        };
        let client = admin_client(&self.couch);
        tokio::spawn(replication::run(
            replication::Keeper {
                local: client.db(&self.name),
                replicator: client.db("_replicator"),
                spec: ReplicationSpec {
                    fqdn: FQDN.into(),
                    central: endpoint(central),
                    local: endpoint(local),
                },
                every: Duration::from_millis(500),
                credentials_retry: Duration::from_millis(500),
            },
            self.report_handle(),
        ))
    }

    fn stop(&mut self) {
        self.daemon = None;
    }

    fn report(&self) -> ConfigReportView {
        ConfigReportView(self.daemon.as_ref().unwrap().report.snapshot())
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        checkpoint::load_file(&self.dir.path().join("checkpoint.json")).unwrap()
    }

    /// Writes a new revision of a document (any id), returning its `_rev`. Retries on a
    /// conflict: the daemon writes `status:` documents too.
    async fn put(&self, id: &str, mut doc: Value) -> String {
        loop {
            match self
                .admin
                .get_opt(id)
                .await
                .unwrap()
                .and_then(|d| d.get("_rev").cloned())
            {
                Some(rev) => doc["_rev"] = rev,
                None => {
                    if let Some(o) = doc.as_object_mut() {
                        o.remove("_rev");
                    }
                }
            }
            match self.admin.put(id, &doc).await {
                Ok(rev) => return rev,
                Err(e) if e.is_conflict() => continue,
                Err(e) => panic!("PUT {id}: {e}"),
            }
        }
    }

    async fn put_host(&self, n: u32) -> String {
        self.put(ID, host_doc(n)).await
    }

    /// Waits (at most 120 s: CI machines are busy) until `what` holds of the report.
    async fn until(&self, what: &str, f: impl Fn(&ccnq_api::ConfigReport) -> bool) {
        for _ in 0..2400 {
            if f(&self.daemon.as_ref().unwrap().report.snapshot()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for: {what}\nreport: {:#?}",
            self.report().0
        );
    }

    async fn until_applied(&self, rev: &str) {
        self.until(&format!("rev {rev} applied"), |r| {
            r.state == "ok" && r.applied.as_ref().map(|a| a.rev.as_str()) == Some(rev)
        })
        .await
    }

    /// The `status:` document, once `f` holds of it (at most 120 s).
    async fn status_doc(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..2400 {
            if let Some(doc) = self.admin.get_opt(&format!("status:{FQDN}")).await.unwrap() {
                if f(&doc) {
                    return doc;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "status document never showed {what}: {:#?}",
            self.admin.get_opt(&format!("status:{FQDN}")).await
        );
    }
}

struct ConfigReportView(ccnq_api::ConfigReport);

/// A valid host document whose `n` makes each revision different.
fn host_doc(n: u32) -> Value {
    json!({
        "type": "host",
        "host": FQDN,
        "interfaces": { "primary": { "ipv4": "198.51.100.52" } },
        "sip_domain_name": "a.phone.example.net",
        "sip_variables": { "revision_marker": format!("r{n}") },
        "sip_profiles": {
            "test": { "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 5200 }
        }
    })
}

/// CouchDB's sequences are opaque strings (`"6-g1AAAA…"`) whose number before the dash
/// grows with each change: the tests may read it; the daemon never does.
fn seq_number(c: &Checkpoint) -> u64 {
    c.seq
        .as_str()
        .and_then(|s| s.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("CouchDB seq {} is not \"N-…\"", c.seq))
}

#[tokio::test]
async fn a_new_revision_reaches_the_apply_step_and_other_documents_never_do() {
    let mut h = Harness::new("route").await;
    h.start();
    h.until("the feed connected", |r| r.feed.state == "connected")
        .await;
    let rev1 = h.put_host(1).await;
    h.until_applied(&rev1).await;
    assert_eq!(
        h.calls(),
        vec![Call {
            rev: rev1.clone(),
            host: FQDN.into(),
            effect: true
        }]
    );

    // Other hosts' documents, other types, and our own status document.
    for i in 0..5 {
        h.put(
            "host:sbc2.example.net",
            json!({"type": "host", "host": "sbc2.example.net", "n": i}),
        )
        .await;
        h.put("number:33123456789", json!({"type": "number", "n": i}))
            .await;
        h.put(&format!("status:{FQDN}"), json!({"type": "status", "n": i}))
            .await;
    }
    // A sentinel revision of ours: the feed is ordered, so once it is applied, every
    // change written before it has been through the feed.
    let rev2 = h.put_host(2).await;
    h.until_applied(&rev2).await;
    let calls = h.calls();
    assert_eq!(
        calls.len(),
        2,
        "only our two revisions reach the apply step: {calls:?}"
    );
    assert_eq!(calls[1].rev, rev2);
    assert_eq!(h.report().0.attempts, 2);

    // The status document says what was applied, and the image it runs.
    let status = h
        .status_doc("rev2 ok", |d| {
            d["applied"]["rev"] == json!(rev2) && d["state"] == "ok"
        })
        .await;
    assert_eq!(status["type"], "status");
    assert_eq!(status["host"], FQDN);
    assert_eq!(status["image"]["version"], "2026.12.1");
    assert_eq!(status["image"]["slot"], "a");
    // The upgrade part, as the rollout driver reads it (ccnq_api::upgrade): the booted
    // image, and idle, since this host has no upgrade path yet.
    let upgrade: ccnq_api::upgrade::UpgradeStatus =
        serde_json::from_value(status["upgrade"].clone()).unwrap();
    assert_eq!(
        (
            upgrade.booted_version.as_str(),
            upgrade.booted_slot,
            upgrade.state
        ),
        (
            "2026.12.1",
            ccnq_api::upgrade::Slot::A,
            ccnq_api::upgrade::UpgradeState::Idle
        )
    );
    assert_eq!(
        status["last"]["actions"][0]["description"],
        format!("test double: run {rev2}")
    );
    // The checkpoint: file and _local.
    let file = h.checkpoint().unwrap();
    assert_eq!(file.rev, rev2);
    let local = checkpoint::load_local(&h.admin, FQDN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(local, file);
}

#[tokio::test]
async fn an_invalid_revision_fails_with_every_error_and_keeps_the_configuration_in_force() {
    let mut h = Harness::new("invalid").await;
    h.start();
    let rev1 = h.put_host(1).await;
    h.until_applied(&rev1).await;

    // One revision breaking each rule of the model at once.
    let mut bad = host_doc(2);
    bad["host"] = json!("sbc9.example.net"); // disagrees with _id
    bad["sip_profiles"]["test"]["ingress_acl"] = json!(["10.0.0.0/33"]);
    bad["sip_profiles"]["test"]["egress_sip_port"] = json!(70000);
    bad["sip_profiles"]["twin"] =
        json!({"ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 5200});
    bad["sip_profiles"]["test"]["handler"] = json!({"lua": "route.lua"});
    bad["sip_variables"]["x"] = json!("${system(rm -rf /)}");
    bad["sip_domain_name"] = json!("a<b>.example.net");
    let rev2 = h.put(ID, bad).await;
    h.until("rev2 failed", |r| {
        r.state == "failed" && r.last.as_ref().and_then(|l| l.rev.as_deref()) == Some(&rev2)
    })
    .await;
    let report = h.report().0;
    let errors = &report.last.as_ref().unwrap().errors;
    for path in [
        "host",
        "sip_profiles.test.ingress_acl[0]",
        "sip_profiles.test.egress_sip_port",
        "sip_profiles.test.handler",
        "sip_variables.x",
        "sip_domain_name",
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && !e.reason.is_empty()),
            "no error at {path}: {errors:#?}"
        );
    }
    assert!(
        errors.iter().any(|e| e.reason.contains("5200")),
        "the duplicate bind is reported: {errors:#?}"
    );
    // Nothing reached the apply step, and rev1 stays in force.
    assert_eq!(h.calls().len(), 1);
    assert_eq!(report.applied.as_ref().unwrap().rev, rev1);
    assert_eq!(h.checkpoint().unwrap().rev, rev1);
    let status = h
        .status_doc("rev2 failed", |d| {
            d["state"] == "failed" && d["last"]["rev"] == json!(rev2)
        })
        .await;
    assert_eq!(status["applied"]["rev"], json!(rev1));
    assert!(
        status["last"]["errors"].as_array().unwrap().len() >= 7,
        "{status:#}"
    );
    assert!(
        status["reason"].as_str().unwrap().contains("kept"),
        "{status:#}"
    );

    // The next valid revision is applied normally.
    let rev3 = h.put_host(3).await;
    h.until_applied(&rev3).await;
    assert_eq!(h.calls().len(), 2);
}

#[tokio::test]
async fn a_burst_of_50_revisions_leads_to_a_handful_of_applies_ending_with_the_newest() {
    let mut h = Harness::new("burst").await;
    h.start();
    h.until("the feed connected", |r| r.feed.state == "connected")
        .await;
    // The first apply is held until the whole burst has been seen, as happens when
    // revisions come faster than FreeSWITCH applies them; the count then does not
    // depend on this machine's speed.
    let held = h.gate.clone().write_owned().await;
    let mut last = String::new();
    for n in 0..50 {
        last = h.put_host(n).await;
    }
    h.until("the newest revision seen", |r| {
        r.desired_rev.as_deref() == Some(&last)
    })
    .await;
    drop(held);
    h.until_applied(&last).await;
    let calls = h.calls();
    assert!(
        calls.len() <= 2,
        "{} applies for 50 revisions: {calls:?}",
        calls.len()
    );
    assert_eq!(calls.last().unwrap().rev, last);
}

#[tokio::test]
async fn restarts_before_during_and_after_an_apply_lose_nothing_and_repeat_no_effect() {
    let mut h = Harness::new("restart").await;
    h.start();
    let rev1 = h.put_host(1).await;
    h.until_applied(&rev1).await;
    let mut seqs = vec![seq_number(&h.checkpoint().unwrap())];

    // After an apply: the start-up read brings rev1 again, with no effect.
    h.stop();
    h.start();
    h.until_applied(&rev1).await;
    assert_eq!(h.calls().iter().filter(|c| c.effect).count(), 1);
    seqs.push(seq_number(&h.checkpoint().unwrap()));

    // During an apply: held inside the apply step, then the daemon dies.
    let held = h.gate.clone().write_owned().await;
    let rev2 = h.put_host(2).await;
    h.until("rev2 pending", |r| r.state == "pending").await;
    h.stop();
    assert_eq!(
        h.checkpoint().unwrap().rev,
        rev1,
        "nothing saved for an unfinished apply"
    );
    seqs.push(seq_number(&h.checkpoint().unwrap()));
    drop(held);
    h.start();
    h.until_applied(&rev2).await;
    seqs.push(seq_number(&h.checkpoint().unwrap()));

    // Before an apply: a revision written while the daemon is down.
    h.stop();
    let rev3 = h.put_host(3).await;
    h.start();
    h.until_applied(&rev3).await;
    seqs.push(seq_number(&h.checkpoint().unwrap()));

    let effects: Vec<String> = h
        .calls()
        .into_iter()
        .filter(|c| c.effect)
        .map(|c| c.rev)
        .collect();
    assert_eq!(
        effects,
        vec![rev1, rev2, rev3],
        "each revision took effect exactly once"
    );
    assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "the checkpoint went back: {seqs:?}"
    );
    assert!(seqs.last() > seqs.first());
}

#[tokio::test]
async fn couchdb_killed_mid_feed_is_reported_and_followed_again() {
    let mut h = Harness::own("kill").await;
    h.start();
    let rev1 = h.put_host(1).await;
    h.until_applied(&rev1).await;

    h.own_couch().kill();
    h.until("the feed lost", |r| r.feed.state == "disconnected")
        .await;
    h.own_couch().restart();
    h.until("the feed back", |r| r.feed.state == "connected")
        .await;
    let rev2 = h.put_host(2).await;
    h.until_applied(&rev2).await;
    let report = h.report().0;
    assert!(
        report
            .feed
            .last_problem
            .as_deref()
            .unwrap_or("")
            .contains("disconnected"),
        "{:#?}",
        report.feed
    );
    let status = h
        .status_doc("the recovered feed", |d| d["applied"]["rev"] == json!(rev2))
        .await;
    assert_eq!(status["feed"]["state"], "connected");
    assert!(status["feed"]["last_problem"]
        .as_str()
        .unwrap()
        .contains("disconnected"));
}

#[tokio::test]
async fn a_deleted_and_recreated_database_is_reported_and_read_from_the_start() {
    let mut h = Harness::new("dbdel").await;
    h.start();
    for n in 0..5 {
        h.put_host(n).await;
    }
    let rev = h.put_host(5).await;
    h.until_applied(&rev).await;
    assert!(seq_number(&h.checkpoint().unwrap()) >= 6);

    h.admin.delete_db().await.unwrap();
    h.until("the database missing", |r| {
        r.feed.state == "database-missing"
    })
    .await;
    assert_eq!(
        h.checkpoint().unwrap().seq,
        json!(0),
        "the old sequence is forgotten"
    );

    h.create_database().await;
    let rev_new = h.put_host(9).await;
    h.until_applied(&rev_new).await;
    assert!(h
        .report()
        .0
        .feed
        .last_problem
        .unwrap()
        .contains("database-missing"));
}

#[tokio::test]
async fn refused_credentials_are_reported_and_retried_until_accepted() {
    let mut h = Harness::new("auth").await;
    h.admin
        .put_security(&json!({"admins": {"names": [], "roles": []},
            "members": {"names": ["admin", "reconcile-auth-ccnqd"], "roles": []}}))
        .await
        .unwrap();
    let rev1 = h.put_host(1).await;
    // The user does not exist yet.
    h.start_as(Auth::basic("reconcile-auth-ccnqd", "s3cret"));
    h.until("credentials refused", |r| {
        r.feed.state == "credentials-refused"
    })
    .await;
    assert!(h.calls().is_empty());

    let users = admin_client(&h.couch).db("_users");
    users
        .put(
            "org.couchdb.user:reconcile-auth-ccnqd",
            &json!({"name": "reconcile-auth-ccnqd", "password": "s3cret", "roles": [], "type": "user"}),
        )
        .await
        .unwrap();
    h.until_applied(&rev1).await;
    assert!(h
        .report()
        .0
        .feed
        .last_problem
        .unwrap()
        .contains("credentials-refused"));
}

#[tokio::test]
async fn a_failed_apply_is_reported_retried_and_replaced_by_a_newer_revision() {
    let mut h = Harness::new("fail").await;
    *h.fail.lock().unwrap() = Some("reloadxml: +OK [mismatched tag]".into());
    h.start();
    let rev1 = h.put_host(1).await;
    h.until("rev1 failed", |r| r.state == "failed").await;
    assert!(h.report().0.applied.is_none());
    assert!(h.checkpoint().is_none(), "no checkpoint for a failed apply");
    h.status_doc("failed with FreeSWITCH's words", |d| {
        d["state"] == "failed" && d["reason"] == "reloadxml: +OK [mismatched tag]"
    })
    .await;

    *h.fail.lock().unwrap() = None;
    let rev2 = h.put_host(2).await;
    h.until_applied(&rev2).await;
    assert!(h.calls().iter().all(|c| c.rev == rev1 || c.rev == rev2));
}

#[tokio::test]
async fn the_replication_documents_are_created_repaired_and_bring_the_central_document() {
    use ccnq_couch::replication::pull_doc_id;
    let mut h = Harness::own("replication").await;
    // A second database of the same server stands in for the central CouchDB.
    let central = admin_client(&h.couch).db("central");
    assert!(central.create().await.unwrap());
    h.start();
    let name = h.name.clone();
    let keeper = h.keep_replication("central", &name);
    h.until("both jobs running", jobs_running).await;

    // A document written centrally reaches the local database and is applied.
    let mut doc = host_doc(1);
    doc["_id"] = json!(ID);
    let rev1 = central.put(ID, &doc).await.unwrap();
    h.until_applied(&rev1).await;

    // Someone deletes the pull document while its job runs (CouchDB takes it;
    // pouchdb-server crashed): it is put back.
    let replicator = admin_client(&h.couch).db("_replicator");
    let pull = replicator.get(&pull_doc_id(FQDN), None).await.unwrap();
    replicator
        .delete(&pull_doc_id(FQDN), pull["_rev"].as_str().unwrap())
        .await
        .unwrap();
    h.until("the pull document put back", |r| {
        r.replication.as_ref().is_some_and(|s| {
            s.state != "failed"
                && s.detail
                    .starts_with(&format!("created {}", pull_doc_id(FQDN)))
        })
    })
    .await;
    h.until("both jobs running again", jobs_running).await;
    // And it works again: a central change arrives and is applied.
    let mut doc = central.get(ID, None).await.unwrap();
    doc["sip_variables"]["revision_marker"] = json!("r2");
    let rev2 = central.put(ID, &doc).await.unwrap();
    h.until_applied(&rev2).await;
    keeper.abort();
}

/// The replication is `ok`, and CouchDB's scheduler runs both jobs.
fn jobs_running(r: &ccnq_api::ConfigReport) -> bool {
    r.replication.as_ref().is_some_and(|s| {
        s.state == "ok" && s.jobs.len() == 2 && s.jobs.iter().all(|j| j.state == "running")
    })
}

#[tokio::test]
async fn the_keeper_creates_the_missing_local_database_so_the_central_document_arrives() {
    let mut h = Harness::without_database(
        Couch::Own(CouchServer::start("reconcile-localdb")),
        "localdb",
    );
    let central = admin_client(&h.couch).db("central");
    assert!(central.create().await.unwrap());
    let mut doc = host_doc(1);
    doc["_id"] = json!(ID);
    let rev1 = central.put(ID, &doc).await.unwrap();
    // A first boot: the local CouchDB has no database yet, and nothing but ccnqd would
    // make it (`create_target` is false).
    h.start();
    h.until("the database missing", |r| {
        r.feed.state == "database-missing"
    })
    .await;
    let name = h.name.clone();
    let keeper = h.keep_replication("central", &name);
    h.until_applied(&rev1).await;
    assert!(h.admin.exists().await.unwrap());
    // Nobody but the keeper made it: the test did not, and `create_target` is false.
    let doc = admin_client(&h.couch)
        .db("_replicator")
        .get(&ccnq_couch::replication::pull_doc_id(FQDN), None)
        .await
        .unwrap();
    assert_eq!(doc["create_target"], json!(false));
    h.until("both jobs running", jobs_running).await;
    keeper.abort();
}

#[tokio::test]
async fn a_failing_replication_job_is_reported_with_its_error_though_its_documents_are_fine() {
    use ccnq_couch::replication::{pull_doc_id, push_doc_id};
    let mut h = Harness::own("health").await;
    h.start();
    let name = h.name.clone();
    // The central database named in the configuration does not exist: both jobs
    // crash with `db_not_found`, while their documents are in place.
    let keeper = h.keep_replication("no-such-central", &name);
    h.until("the jobs failing", |r| {
        r.replication
            .as_ref()
            .is_some_and(|s| s.state == "failed" && s.jobs.iter().all(|j| j.state == "crashing"))
    })
    .await;
    let replication = h.report().0.replication.unwrap();
    assert!(
        replication.detail.contains("db_not_found"),
        "{replication:#?}"
    );
    assert_eq!(replication.jobs[0].doc_id, pull_doc_id(FQDN));
    assert_eq!(replication.jobs[1].doc_id, push_doc_id(FQDN));
    for job in &replication.jobs {
        assert!(
            job.error
                .as_deref()
                .unwrap_or("")
                .starts_with("db_not_found"),
            "{job:#?}"
        );
        assert!(job.last_updated.is_some(), "{job:#?}");
    }
    let replicator = admin_client(&h.couch).db("_replicator");
    assert!(replicator
        .get_opt(&pull_doc_id(FQDN))
        .await
        .unwrap()
        .is_some());
    // The status document says the same.
    h.status_doc("the failing replication", |d| {
        d["replication"]["state"] == "failed"
            && d["replication"]["jobs"][0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("db_not_found"))
    })
    .await;
    keeper.abort();
}

/// Counts the requests for `path` (`/db/…`) that CouchDB refused (401 or 403), from its
/// log of every request.
fn refused_requests(couch: &CouchServer, path: &str) -> usize {
    couch
        .log()
        .lines()
        .filter(|l| l.contains(&format!(" {path} ")))
        .filter(|l| l.contains(&format!(" {path} 401 ")) || l.contains(&format!(" {path} 403 ")))
        .count()
}

#[tokio::test]
async fn refused_writes_back_off_so_a_correct_client_is_never_locked_out() {
    const USER: &str = "reconcile-backoff-ccnqd";
    let mut h = Harness::new("backoff").await;
    h.admin
        .put_security(&json!({"admins": {"names": [], "roles": []},
            "members": {"names": ["admin", USER], "roles": []}}))
        .await
        .unwrap();
    let users = admin_client(&h.couch).db("_users");
    let user_id = format!("org.couchdb.user:{USER}");
    users
        .put(
            &user_id,
            &json!({"name": USER, "password": "first", "roles": [], "type": "user"}),
        )
        .await
        .unwrap();
    // A long first wait after a refusal, and no periodic database check: the open feed
    // outlives a password change and keeps delivering.
    h.credentials_retry = Duration::from_secs(30);
    h.database_check = Duration::from_secs(3600);
    h.start_as(Auth::basic(USER, "first"));
    let rev1 = h.put_host(1).await;
    h.until_applied(&rev1).await;
    h.status_doc("rev1 ok", |d| d["applied"]["rev"] == json!(rev1))
        .await;

    // The password changes while the daemon runs with the old one.
    let mut doc = users.get(&user_id, None).await.unwrap();
    doc["password"] = json!("second");
    users.put(&user_id, &doc).await.unwrap();
    let old = Client::new(ClientConfig::new(
        &h.couch.url(),
        Auth::basic(USER, "first"),
    ))
    .unwrap()
    .db(&h.name);
    // Successful logins do not count towards the lockout: poll until the old password
    // is refused (once).
    for _ in 0..600 {
        match old.exists().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) if ccnq_couch::retry::is_refusal(&e) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // Revisions keep arriving through the open feed; each apply wants a `_local`
    // checkpoint and a status document written with the refused password.
    for n in 2..=7 {
        let rev = h.put_host(n).await;
        h.until_applied(&rev).await;
    }
    // A negative check, so it waits: the status writer that retried every 5 s would
    // have tried again by now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let db = &h.name;
    let local = refused_requests(&h.couch, &format!("/{db}/_local/ccnqd-{FQDN}"));
    let status = refused_requests(&h.couch, &format!("/{db}/status:{FQDN}"));
    assert!(local <= 1, "{local} refused _local writes: not backing off");
    assert!(
        status <= 1,
        "{status} refused status writes: not backing off"
    );
    assert!(
        local + status >= 1,
        "no write was refused: the test tests nothing"
    );
    // The user is not locked out: a client with the new password gets in.
    let new = Client::new(ClientConfig::new(
        &h.couch.url(),
        Auth::basic(USER, "second"),
    ))
    .unwrap()
    .db(&h.name);
    match new.exists().await {
        Ok(true) => {}
        other => panic!("a correctly configured client after the daemon's refusals: {other:?}"),
    }
}
