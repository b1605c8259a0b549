//! `ccnqctl fleet rollout` and `ccnqctl fleet status`, the real binary against a real
//! Apache CouchDB 3.4.3 (`ccnq_testkit::couchdb`), the hosts played by the rollout
//! crate's TEST DOUBLE of ccnqd's upgrade path (which does not exist yet): it writes
//! `status:<fqdn>` as a host would.
//!
//! Covered: a rollout to the end with a line per decision, the status table and JSON,
//! `--once`, a halt's exit code, the process killed mid-rollout and run again, an
//! invalid rollout document and bad credentials flags.

#[path = "../../rollout/tests/support/hosts_double.rs"]
mod hosts_double;

use ccnq_couch::{Auth, Client, ClientConfig, Db};
use ccnq_testkit::couchdb::CouchServer;
use hosts_double::{host_doc, HostsDouble};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const V: &str = "2026.12.1";

struct Central {
    db: Db,
    name: String,
    password_file: tempfile::NamedTempFile,
}

async fn central(name: &str, hosts: &[(&str, &str)]) -> Central {
    let srv = CouchServer::shared();
    let (user, password) = srv.admin();
    let client = Client::new(ClientConfig::new(&srv.url(), Auth::basic(user, password))).unwrap();
    let db = client.db(name);
    assert!(db.create().await.unwrap());
    for (fqdn, site) in hosts {
        db.put(&format!("host:{fqdn}"), &host_doc(fqdn, site))
            .await
            .unwrap();
    }
    let password_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password_file.path(), format!("{password}\n")).unwrap();
    Central {
        db,
        name: name.into(),
        password_file,
    }
}

async fn rollout(c: &Central, body: Value) {
    let mut doc = json!({"type": "rollout", "version": V,
        "waves": [{"name": "all", "percent": 100}],
        "halt": {"rolled_back": 2, "not_blessed_within_minutes": 30}});
    for (k, v) in body.as_object().unwrap() {
        doc[k] = v.clone();
    }
    c.db.put("rollout:r", &doc).await.unwrap();
}

/// `ccnqctl fleet <args…>` aimed at the test's database, with no ambient settings.
fn ctl(c: &Central, args: &[&str]) -> Command {
    let srv = CouchServer::shared();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccnqctl"));
    for var in [
        "CCNQ_COUCH_URL",
        "CCNQ_COUCH_DATABASE",
        "CCNQ_COUCH_USER",
        "CCNQ_COUCH_PASSWORD_FILE",
        "CCNQ_COUCH_CA",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("fleet")
        .args(args)
        .arg("--couch-url")
        .arg(srv.url())
        .arg("--couch-database")
        .arg(&c.name)
        .arg("--couch-user")
        .arg(srv.admin().0)
        .arg("--couch-password-file")
        .arg(c.password_file.path());
    cmd
}

/// Runs a command off the runtime (the double keeps playing meanwhile).
async fn output(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_runs_to_done_a_line_per_decision_and_status_shows_every_host() {
    let hosts = [
        ("a.example.net", "paris"),
        ("b.example.net", "paris"),
        ("c.example.net", "lyon"),
    ];
    let c = central("done", &hosts).await;
    let double = HostsDouble::start(
        c.db.clone(),
        &["a.example.net", "b.example.net", "c.example.net"],
        &[],
        1,
    )
    .await;
    rollout(&c, json!({})).await;
    let (code, out, err) = output(ctl(&c, &["rollout", "r", "--interval", "0.1"])).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("start: version {V}, 1 wave(s)"));
    assert!(
        lines.contains(&"stage a.example.net: image named, hold (pre-download)"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("release b.example.net: hold removed (site paris: 1/1 rebooting)")),
        "{out}"
    );
    assert!(lines.contains(&"blessed c.example.net"), "{out}");
    assert_eq!(
        lines.last(),
        Some(&"rollout:r done (3 blessed, 0 rolled back)")
    );
    assert!(double.observed().over_limit.is_empty());

    let (code, table, err) = output(ctl(&c, &["status"])).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("HOST") && rows[0].contains("SINCE"),
        "{table}"
    );
    assert_eq!(rows.len(), 4, "{table}");
    for (row, (fqdn, site)) in rows[1..].iter().zip(hosts) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..5], [fqdn, site, V, "blessed", V], "{table}");
    }
    let mut json_cmd = ctl(&c, &["status"]);
    json_cmd.args(["-o", "json"]);
    let (code, text, _) = output(json_cmd).await;
    assert_eq!(code, 0);
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 3);
    for h in &list {
        assert_eq!(h["upgrade"]["booted_version"], V);
        assert_eq!(h["image"], json!({"version": V, "hold": false}));
        assert_eq!(h["status_problem"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_does_one_pass_and_a_halt_exits_11_every_time() {
    let c = central(
        "halt",
        &[
            ("a.example.net", "s"),
            ("b.example.net", "s"),
            ("quiet.example.net", "s"),
        ],
    )
    .await;
    rollout(
        &c,
        json!({"max_rebooting_per_site": 2, "hosts": ["a.example.net", "b.example.net"]}),
    )
    .await;
    // One pass before any host plays: both are staged, nothing else.
    let (code, out, err) = output(ctl(&c, &["rollout", "r", "--once"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stage a.example.net") && out.contains("stage b.example.net"),
        "{out}"
    );
    assert!(!out.contains("release"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("rollout:r running, wave 0 (0 blessed, 0 rolled back)")
    );
    let doc = c.db.get("host:a.example.net", None).await.unwrap();
    assert_eq!(doc["image"], json!({"version": V, "hold": true}));
    let quiet = c.db.get("host:quiet.example.net", None).await.unwrap();
    assert_eq!(quiet["image"], Value::Null, "outside the hosts filter");
    // `fleet status` shows a host with no status for what it is.
    let (_, table, _) = output(ctl(&c, &["status"])).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("quiet.example.net") && l.contains("no status")),
        "{table}"
    );

    let _double = HostsDouble::start(
        c.db.clone(),
        &["a.example.net", "b.example.net"],
        &["a.example.net", "b.example.net"],
        2,
    )
    .await;
    let (code, out, err) = output(ctl(&c, &["rollout", "r", "--interval", "0.1"])).await;
    assert_eq!(code, 11, "{out}\n{err}");
    assert!(
        out.contains("rolled back a.example.net: the double's health check failed"),
        "{out}"
    );
    assert!(
        err.contains("rollout:r halted: 2 host(s) of wave 0 all rolled back"),
        "{err}"
    );
    assert!(
        err.contains("the host documents are left as they are"),
        "{err}"
    );
    let (code, out, _) = output(ctl(&c, &["rollout", "r", "--once"])).await;
    assert_eq!(code, 11);
    assert!(out.is_empty(), "a halted rollout decides nothing: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_rollout_process_run_again_finishes_within_the_limit() {
    let names: Vec<String> = (0..5).map(|i| format!("h{i}.example.net")).collect();
    let hosts: Vec<(&str, &str)> = names.iter().map(|h| (h.as_str(), "one")).collect();
    let c = central("killed", &hosts).await;
    let fqdns: Vec<&str> = names.iter().map(String::as_str).collect();
    let double = HostsDouble::start(c.db.clone(), &fqdns, &[], 1).await;
    rollout(&c, json!({})).await;
    let mut cmd = ctl(&c, &["rollout", "r", "--interval", "0.1"]);
    let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
    let blessed = |doc: &Value| {
        doc["progress"]["hosts"].as_object().map_or(0, |h| {
            h.values().filter(|p| p["outcome"] == "blessed").count()
        })
    };
    let mut waited = 0;
    while blessed(&c.db.get("rollout:r", None).await.unwrap()) < 2 {
        assert!(waited < 3000, "no progress");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let mid = c.db.get("rollout:r", None).await.unwrap();
    assert_eq!(mid["progress"]["state"], "running");
    assert!(blessed(&mid) < 5);

    let (code, out, err) = output(ctl(&c, &["rollout", "r", "--interval", "0.1"])).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out.lines().last(),
        Some("rollout:r done (5 blessed, 0 rolled back)")
    );
    let seen = double.observed();
    assert!(seen.over_limit.is_empty(), "{:?}", seen.over_limit);
    assert_eq!(seen.max_rebooting.get("one"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_rollout_exits_12_naming_the_field_and_bad_flags_exit_2() {
    let c = central("invalid", &[("a.example.net", "s")]).await;
    rollout(
        &c,
        json!({"max_rebooting_per_site": 0, "waves": [{"name": "w", "percent": 0}]}),
    )
    .await;
    let (code, _, err) = output(ctl(&c, &["rollout", "r", "--once"])).await;
    assert_eq!(code, 12, "{err}");
    assert!(
        err.contains("waves[0].percent: expected an integer in 1..=100, got 0"),
        "{err}"
    );
    assert!(
        err.contains("max_rebooting_per_site: expected a positive integer, got 0"),
        "{err}"
    );
    let doc = c.db.get("host:a.example.net", None).await.unwrap();
    assert_eq!(doc["image"], Value::Null, "nothing was done");

    let (code, _, err) = output(ctl(&c, &["rollout", "missing", "--once"])).await;
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("rollout:missing does not exist"), "{err}");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccnqctl"));
    cmd.args([
        "fleet",
        "status",
        "--couch-url",
        "http://127.0.0.1:1",
        "--couch-user",
        "admin",
    ]);
    let (code, _, err) = output(cmd).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("--couch-user needs --couch-password-file"),
        "{err}"
    );
}
