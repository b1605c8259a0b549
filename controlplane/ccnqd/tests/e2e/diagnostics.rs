//! The diagnostics endpoints against the real servers: `GET /v1/couchdb` against the
//! real CouchDB the daemon follows, and `GET /v1/freeswitch/…` against the real
//! FreeSWITCH, with real calls: sipp (Debian's sip-tester) places them on the test's ingress profile,
//! whose handler is the test configuration's answering context, so they stay up while
//! the API is asked what runs.

use crate::common::{connect, Auth};
use crate::rig::{host, loopback, poll_until, Rig};
use ccnq_testkit::freeswitch::ANSWER_CONTEXT;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CALLS: usize = 3;
const NUMBER: &str = "33123456789";

/// sipp making `CALLS` calls to `number` at `target`, each answered and held `hold_ms`,
/// then hung up; sipp gives up after `timeout` (`60s`).
fn sipp(target: &str, number: &str, hold_ms: u64, timeout: &str) -> Command {
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../qa/sip/uac-hold.xml");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let n = CALLS.to_string();
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), target])
        .args(["-key", "contact_ip", "127.0.0.1", "-s", number])
        .args(["-m", &n, "-l", &n, "-r", &n, "-d", &hold_ms.to_string()])
        .args(["-nostdin", "-timeout", timeout, "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// [`sipp`]'s calls, under way.
fn sipp_calls(target: &str, number: &str, hold_ms: u64) -> Child {
    sipp(target, number, hold_ms, "120s")
        .spawn()
        .expect("sipp (Debian's sip-tester, qa/install-deps) must be installed")
}

fn legs_of<'a>(calls: &'a Value, number: &str) -> Vec<&'a Value> {
    calls["calls"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["destination"] == number).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_profiles_calls_registrations_and_couchdb_are_what_runs() {
    let rig = Rig::new("fsstate").await;
    let ip = loopback(8);
    let mut doc = host(&ip, "127.0.0.0/8");
    doc["sip_profiles"]["test"]["handler"] = json!({ "context": ANSWER_CONTEXT });
    let rev = rig.put(doc).await;
    rig.until_applied(&rev).await;

    // The local CouchDB as the daemon reads it: up, and the database it follows with the
    // document just written.
    let couch = rig.get("/v1/couchdb").await;
    assert_eq!(couch["up"], "ok", "{couch:#}");
    let followed = couch["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == rig.db.name())
        .unwrap_or_else(|| panic!("no {} in {couch:#}", rig.db.name()));
    assert!(followed["doc_count"].as_u64() >= Some(1), "{couch:#}");
    assert!(followed["file_bytes"].as_u64() > Some(0), "{couch:#}");
    assert!(couch["replications"].is_array() && couch["active_tasks"].is_array());

    let profiles = rig.get("/v1/freeswitch/profiles").await;
    let ingress = profiles["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "test-ingress")
        .unwrap_or_else(|| panic!("no test-ingress: {profiles:#}"))
        .clone();
    assert_eq!(ingress["address"], format!("{ip}:5200"), "{profiles:#}");
    assert_eq!(ingress["running"], true);
    assert_eq!(ingress["calls"], 0);
    assert_eq!(rig.get("/v1/freeswitch/calls").await["calls"], json!([]));
    assert_eq!(
        rig.get("/v1/freeswitch/registrations").await,
        json!({ "registrations": [] })
    );
    assert_eq!(
        rig.get("/v1/freeswitch/gateways").await,
        json!({ "gateways": [] })
    );

    // The calls up: one inbound leg each, on the ingress profile, to the number dialled.
    let mut sipp = sipp_calls(&format!("{ip}:5200"), NUMBER, 30_000);
    let calls = poll_until(
        "the calls up",
        || rig.get("/v1/freeswitch/calls"),
        |calls| {
            legs_of(calls, NUMBER)
                .iter()
                .filter(|c| c["callstate"] == "ACTIVE")
                .count()
                == CALLS
        },
    )
    .await;
    for leg in legs_of(&calls, NUMBER) {
        assert_eq!(leg["direction"], "inbound", "{leg:#}");
        assert_eq!(leg["profile"], "test-ingress", "{leg:#}");
        assert_eq!(leg["caller_number"], "qa", "{leg:#}");
        assert_eq!(leg["remote_ip"], "127.0.0.1", "{leg:#}");
        assert_eq!(leg["application"], "park", "{leg:#}");
        assert_eq!(leg["read_codec"], "PCMA", "{leg:#}");
        assert!(
            leg["created"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{leg:#}"
        );
    }
    let profiles = rig.get("/v1/freeswitch/profiles").await;
    let count = |name: &str| {
        profiles["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["calls"].clone())
    };
    assert_eq!(count("test-ingress"), Some(json!(CALLS)), "{profiles:#}");
    assert_eq!(count("test-egress"), Some(json!(0)), "{profiles:#}");

    // sipp hangs up: every call completed, and none is left.
    let done = tokio::task::spawn_blocking(move || sipp.wait().unwrap())
        .await
        .unwrap();
    assert!(
        done.success(),
        "sipp: {done} (a call failed or was dropped)"
    );
    poll_until(
        "the calls gone",
        || rig.get("/v1/freeswitch/calls"),
        |calls| legs_of(calls, NUMBER).is_empty(),
    )
    .await;
}

/// The journal lines of one request (`GET /v1/logs?<query>`), read to their end.
async fn log_lines(rig: &Rig, query: &str) -> Vec<Value> {
    let a = rig
        .ask("reader", "GET", &format!("/v1/logs?{query}"), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type, "application/x-ndjson");
    a.text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// `journalctl` processes reading this rig's journal.
fn readers(dir: &str) -> usize {
    let out = Command::new("pgrep")
        .args([
            "-f",
            &format!("journalctl --output=json --no-pager --directory={dir}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn the_journal_is_filtered_streamed_followed_and_let_go() {
    let rig = Rig::new("logs").await;
    let ip = loopback(9);
    let rev = rig.put(host(&ip, "127.0.0.0/8")).await;
    rig.until_applied(&rev).await;
    let unit = rig.unit.clone();

    // systemd's own lines about the FreeSWITCH unit ccnqd started, from the container's
    // real journal; none about any other unit.
    let lines = poll_until(
        "systemd's lines about the unit",
        || async { Value::Array(log_lines(&rig, &format!("unit={unit}&lines=200")).await) },
        |v| {
            v.as_array().is_some_and(|l| {
                l.iter().any(|x| {
                    x["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Started"))
                })
            })
        },
    )
    .await;
    for l in lines.as_array().unwrap() {
        assert_eq!(l["unit"], unit, "{l}");
        assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
    }
    // The text match, any case; priority err and worse has none of these.
    let started = log_lines(&rig, &format!("unit={unit}&match=STARTED&lines=200")).await;
    assert!(!started.is_empty());
    assert!(started.iter().all(|l| l["message"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("started")));
    let errors = log_lines(&rig, &format!("unit={unit}&priority=err&match=started")).await;
    assert!(errors.is_empty(), "{errors:?}");

    // A bad parameter is a 400 naming it; a unit the daemon does not manage too.
    for (query, says) in [("priority=loud", "priority:"), ("unit=sshd", "unit:")] {
        let a = rig
            .ask("reader", "GET", &format!("/v1/logs?{query}"), None)
            .await;
        assert_eq!(a.status, 400, "{query}");
        assert!(
            a.body["detail"].as_str().unwrap().starts_with(says),
            "{query}: {:?}",
            a.body
        );
    }

    // The same through ccnqctl, as an operator reads it.
    let mut cmd = crate::common::ccnqctl(&rig.site);
    crate::common::with_cert(&mut cmd, &rig.site, rig.daemon(), "reader");
    let out = cmd
        .args(["logs", "-u", &unit, "--grep", "started", "-n", "50"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&unit) && l.contains("Started")),
        "{text}"
    );

    // Followed: the answer stays open and brings a line logged after it began (the
    // unit restarted through the API); the client leaves, and journalctl goes with it.
    let dir = ccnq_testkit::nspawn::container()
        .var
        .join("log/journal")
        .display()
        .to_string();
    assert_eq!(readers(&dir), 0);
    let (resp, conn) = open_stream(
        &rig,
        Auth::Cert(&rig.site.reader),
        "GET",
        &format!("/v1/logs?unit={unit}&lines=1&follow=true"),
        "",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    poll_until(
        "journalctl following",
        || async { json!(readers(&dir)) },
        |n| *n == json!(1),
    )
    .await;
    let restarted = rig
        .ask(
            "admin",
            "POST",
            &format!("/v1/services/{unit}/restart?force=true"),
            None,
        )
        .await;
    assert_eq!(restarted.status, 200, "{:?}", restarted.body);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !seen.contains("Started") {
        let frame = tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(&mut body))
            .await
            .expect("a line logged after the follow began")
            .expect("the stream stays open")
            .unwrap();
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    drop(body);
    conn.abort();
    poll_until(
        "journalctl gone with the client",
        || async { json!(readers(&dir)) },
        |n| *n == json!(0),
    )
    .await;
}

#[tokio::test]
async fn the_support_bundle_holds_the_state_and_no_secret() {
    let rig = Rig::new("bundle").await;
    let ip = loopback(10);
    let rev = rig.put(host(&ip, "127.0.0.0/8")).await;
    rig.until_applied(&rev).await;

    let reader = rig.ask("reader", "GET", "/v1/support-bundle", None).await;
    assert_eq!(
        reader.status, 403,
        "a reader may not take the host's state away"
    );
    let a = rig
        .ask("operator", "GET", "/v1/support-bundle?hours=1", None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type, "application/gzip");
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&a.raw[..]));
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        let name = path.split_once('/').map(|(_, n)| n.to_owned()).unwrap();
        files.insert(name, String::from_utf8_lossy(&body).into_owned());
    }
    let manifest = &files["MANIFEST.txt"];
    for name in [
        "journal.txt",
        "dmesg.txt",
        "os-release",
        "slots.txt",
        "status.json",
        "config.json",
        "units.json",
        "disk.txt",
        "freeswitch/sofia-status.txt",
        "freeswitch/channels.json",
        "couchdb/up.json",
        "couchdb/scheduler.json",
        "host-document.json",
        "audit.log",
    ] {
        assert!(files.contains_key(name), "no {name}; manifest:\n{manifest}");
    }
    assert!(
        files["journal.txt"].contains("Started"),
        "{}",
        files["journal.txt"]
    );
    assert!(files["freeswitch/sofia-status.txt"].contains("test-ingress"));
    assert!(files["couchdb/up.json"].contains("\"ok\""));
    assert!(files["host-document.json"].contains(&ip));
    assert!(files["slots.txt"].contains("ccnq.slot=a"));

    // No secret anywhere: the event socket's password, the CouchDB admin's, in the
    // bundle or in the daemon's log.
    let (_, couch_password) = ccnq_testkit::couchdb::CouchServer::shared().admin();
    for secret in [crate::rig::PASSWORD, couch_password] {
        for (name, text) in &files {
            assert!(!text.contains(secret), "{name} holds a secret");
        }
        for line in rig.daemon().stderr.lock().unwrap().iter() {
            assert!(!line.contains(secret), "the daemon logged a secret: {line}");
        }
    }
    // Through ccnqctl, into a file, as an operator takes it.
    let out = rig.site.path("bundle.tar.gz");
    let mut cmd = crate::common::ccnqctl(&rig.site);
    crate::common::with_cert(&mut cmd, &rig.site, rig.daemon(), "operator");
    let done = cmd
        .args(["support-bundle", "-w"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stderr).contains("support bundle:"));
    let file = std::fs::File::open(&out).unwrap();
    let names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(file))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("/MANIFEST.txt")),
        "{names:?}"
    );

    // The bundle was audited, with the operator who took it.
    let audit = poll_until(
        "the bundle in the audit log",
        || async { json!(rig.audit_log()) },
        |t| t.as_str().is_some_and(|t| t.contains("/v1/support-bundle")),
    )
    .await;
    assert!(audit.as_str().unwrap().contains("operator"), "{audit}");
}

/// Opens `method path` with `body` as `auth` and returns the answer with its body
/// unread (a capture's, a followed log's), and the connection's task.
async fn open_stream(
    rig: &Rig,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: &str,
) -> (
    http::Response<hyper::body::Incoming>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tls = connect(
        &rig.site,
        rig.daemon().addr,
        &auth,
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    (sender.send_request(req).await.unwrap(), conn)
}

#[tokio::test]
async fn a_capture_by_call_id_holds_that_call_and_tshark_reads_it() {
    let rig = Rig::new("capture").await;
    let ip = loopback(11);
    let mut doc = host(&ip, "127.0.0.0/8");
    doc["sip_profiles"]["test"]["handler"] = json!({ "context": ANSWER_CONTEXT });
    let rev = rig.put(doc).await;
    rig.until_applied(&rev).await;
    let tag = format!("ccnq{}", std::process::id());
    let wanted = format!("2-{tag}@127.0.0.1");

    // A reader may not capture; a bad filter is named.
    let asked = json!({"interface": "lo", "call_id": wanted, "duration_secs": 20}).to_string();
    let reader = rig.ask("reader", "POST", "/v1/capture", Some(&asked)).await;
    assert_eq!(reader.status, 403);
    let bad = rig
        .ask(
            "operator",
            "POST",
            "/v1/capture",
            Some(r#"{"interface": "lo", "filter": "udp port", "duration_secs": 5}"#),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(
        bad.body["detail"].as_str().unwrap().starts_with("filter:"),
        "{:?}",
        bad.body
    );

    let (resp, _conn) = open_stream(
        &rig,
        Auth::Cert(&rig.site.operator),
        "POST",
        "/v1/capture",
        &asked,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.tcpdump.pcap"
    );
    // One capture per operator.
    let second = rig
        .ask("operator", "POST", "/v1/capture", Some(&asked))
        .await;
    assert_eq!(second.status, 409, "{:?}", second.body);
    let reading = tokio::spawn(async move {
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
    });

    // Three calls, each with a Call-ID of its own (sipp's -cid_str).
    let status = sipp(&format!("{ip}:5200"), NUMBER, 1000, "60s")
        .args(["-cid_str", &format!("%u-{tag}@%s")])
        .status()
        .unwrap();
    assert!(status.success(), "sipp: {status}");
    let pcap = reading.await.unwrap();
    let file = rig.site.path("call.pcap");
    std::fs::write(&file, &pcap).unwrap();

    // tshark reads it as it is: that call's messages only, in order.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-Y",
            "sip",
            "-T",
            "fields",
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.Method",
            "-e",
            "sip.Status-Code",
        ])
        .output()
        .expect("tshark (qa/install-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert!(
        rows.iter().all(|r| r[0] == wanted),
        "another call in the capture:\n{text}"
    );
    let ladder: Vec<String> = rows
        .iter()
        .map(|r| {
            if r[1].is_empty() {
                r.get(2).unwrap_or(&"").to_string()
            } else {
                r[1].to_string()
            }
        })
        .collect();
    assert_eq!(
        ladder.first().map(String::as_str),
        Some("INVITE"),
        "{ladder:?}"
    );
    assert_eq!(
        ladder.iter().filter(|m| *m == "INVITE").count(),
        1,
        "{ladder:?}"
    );
    for step in ["200", "ACK", "BYE"] {
        assert!(ladder.iter().any(|m| m == step), "no {step} in {ladder:?}");
    }
    assert_eq!(
        ladder.last().map(String::as_str),
        Some("200"),
        "the BYE's 200 last: {ladder:?}"
    );
    // Through ccnqctl to standard output, which tshark reads as it is.
    let mut cmd = crate::common::ccnqctl(&rig.site);
    crate::common::with_cert(&mut cmd, &rig.site, rig.daemon(), "operator");
    let got = cmd
        .args([
            "capture",
            "-i",
            "lo",
            "-f",
            "udp port 9",
            "-d",
            "2",
            "-w",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let piped = rig.site.path("piped.pcap");
    std::fs::write(&piped, &got.stdout).unwrap();
    let read = Command::new("tshark")
        .arg("-r")
        .arg(&piped)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&read.stderr)
    );

    // Audited, with what was asked.
    let audit = rig.audit_log();
    assert!(
        audit.contains("/v1/capture") && audit.contains(&wanted),
        "{audit}"
    );
}
