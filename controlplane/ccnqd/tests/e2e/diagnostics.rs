//! The diagnostics endpoints against the real servers: `GET /v1/couchdb` against the
//! real CouchDB the daemon follows, and `GET /v1/freeswitch/…` against the real
//! FreeSWITCH, with real calls: sipp (Debian's sip-tester) places them on the test's ingress profile,
//! whose handler is the test configuration's answering context, so they stay up while
//! the API is asked what runs.

use crate::rig::{host, loopback, poll_until, Rig};
use ccnq_testkit::freeswitch::ANSWER_CONTEXT;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CALLS: usize = 3;
const NUMBER: &str = "33123456789";

/// `CALLS` calls to `number` at `target`, each answered and held `hold_ms`, then hung
/// up by sipp.
fn sipp_calls(target: &str, number: &str, hold_ms: u64) -> Child {
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../qa/sip/uac-hold.xml");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let n = CALLS.to_string();
    Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), target])
        .args(["-key", "contact_ip", "127.0.0.1", "-s", number])
        .args(["-m", &n, "-l", &n, "-r", &n, "-d", &hold_ms.to_string()])
        .args(["-nostdin", "-timeout", "120s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
