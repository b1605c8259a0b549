//! End to end: the real `ccnqd` binary follows a host document in a real CouchDB 3.4.3
//! (`ccnq_testkit::couchdb`, one instance shared by the tests of this binary, a database
//! per test) and brings the real FreeSWITCH 1.11.2 to it.
//!
//! FreeSWITCH (`ccnq_testkit::freeswitch`, the pinned build of ../shared/peers) runs as a
//! systemd unit of a real systemd (an nspawn container sharing the host's network), with
//! a configuration of the test's own that includes what ccnqd renders into its data
//! directory, as the image's skeleton does. Its sofia profiles bind loopback addresses of
//! their own test (127.x.y.n, `ccnq_testkit::freeswitch::loopback`): nothing leaves the
//! machine.
//!
//! What ccnqd sent is read where operators read it: every action of the last apply, with
//! its command and FreeSWITCH's reply, is in `GET /v1/config` (and `status:<fqdn>`). The
//! tests compare those with the plan `POST /v1/config/plan` previewed, and then check the
//! effect in FreeSWITCH itself over its event socket (`sofia xmlstatus`, `sofia status
//! profile`, `acl`, `global_getvar`) with `ccnq-esl`'s client.
//!
//! One fault the real server cannot be made to show on purpose, a `reloadxml` that does
//! not parse (the renderer never writes such files), is injected with `esl-peer`, the
//! event-socket test double checked against the recordings of FreeSWITCH 1.11.2
//! (qa/esl-peer): that test, in [`double`], says so in its name.
//!
//! [`rig`] is the harness; this file holds the changes carried to the real FreeSWITCH,
//! [`kill`] the daemon killed while it applies them.

#[path = "../common/mod.rs"]
mod common;
mod diagnostics;
mod double;
mod kill;
mod rig;

use ccnq_esl::{ConnectOptions, EslClient};
use rig::{
    absent_address, action, actions, base_profiles, host, loopback, poll_until, profiles,
    profiles_but_bad, sent, udp_free, Rig, PASSWORD,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_host_document_reaches_freeswitch_with_exactly_the_planned_commands() {
    let rig = Rig::new("flow").await;
    let ip = loopback(1);

    // First document: nothing known runs, so everything is installed and FreeSWITCH
    // started through systemd, then each profile confirmed over the event socket.
    let (preview, planned) = rig.preview(&host(&ip, "198.51.100.53/32")).await;
    assert_eq!(preview["from_rev"], Value::Null);
    assert!(
        planned.contains(&format!("systemd restart {}", rig.unit)),
        "{preview:#}"
    );
    let rev1 = rig.put(host(&ip, "198.51.100.53/32")).await;
    let config = rig.until_applied(&rev1).await;
    // The drain is skipped: FreeSWITCH is not running yet.
    assert_eq!(planned[0], "fsctl pause inbound; show channels count");
    assert!(
        actions(&config)[0]["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("skipped: FreeSWITCH is not running")),
        "{config:#}"
    );
    assert_eq!(sent(&config), planned[1..], "{config:#}");
    let acl = String::from_utf8(rig.file("autoload_configs/acl.conf.xml")).unwrap();
    assert!(acl.contains("198.51.100.53/32"), "{acl}");
    assert!(rig.unit_active().await);
    assert_eq!(profiles(&rig.sofia().await), base_profiles(&ip));
    assert_eq!(rig.api("acl 198.51.100.53 test-ingress").await, "true");
    assert_eq!(rig.api("acl 198.51.100.54 test-ingress").await, "false");
    assert_eq!(
        rig.api("global_getvar sip_domain_name").await,
        "a.phone.example.net"
    );

    // Only an ACL: exactly what the preview said, reloadxml then reloadacl, and
    // FreeSWITCH's list is the new one.
    let doc2 = host(&ip, "198.51.100.54/32");
    let (preview, planned) = rig.preview(&doc2).await;
    assert_eq!(planned, vec!["reloadxml", "reloadacl"], "{preview:#}");
    assert_eq!(preview["cost"]["kind"], "reload");
    assert_eq!(preview["from_rev"], rev1["_rev"]);
    let pid = rig.main_pid().await;
    let rev2 = rig.put(doc2).await;
    let config = rig.until_applied(&rev2).await;
    assert_eq!(sent(&config), planned);
    assert_eq!(action(&config, "reloadxml")["reply"], "+OK [Success]");
    assert_eq!(action(&config, "reloadacl")["reply"], "+OK acl reloaded");
    assert_eq!(rig.api("acl 198.51.100.54 test-ingress").await, "true");
    assert_eq!(rig.api("acl 198.51.100.53 test-ingress").await, "false");
    assert_eq!(profiles(&rig.sofia().await), base_profiles(&ip));
    assert_eq!(rig.main_pid().await, pid, "FreeSWITCH was not restarted");

    // Nothing that renders: no command at all.
    let mut doc3 = host(&ip, "198.51.100.54/32");
    doc3["provisioning_note"] = json!("moved to rack 4");
    let (preview, planned) = rig.preview(&doc3).await;
    assert!(planned.is_empty(), "{preview:#}");
    let rev3 = rig.put(doc3).await;
    let config = rig.until_applied(&rev3).await;
    assert_eq!(config["last"]["actions"], json!([]));
    assert!(
        config["last"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["path"] == "provisioning_note"),
        "{config:#}"
    );

    // A setting of profile `test`: a rescan of its two sofia profiles only, applied live.
    let mut doc4 = host(&ip, "198.51.100.54/32");
    doc4["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU");
    let (preview, planned) = rig.preview(&doc4).await;
    assert_eq!(
        planned,
        vec![
            "reloadxml",
            "sofia profile test-egress rescan",
            "sofia profile test-ingress rescan"
        ],
        "{preview:#}"
    );
    assert_eq!(rig.profile_field("test-ingress", "CODECS IN").await, "PCMA");
    let rev4 = rig.put(doc4).await;
    let config = rig.until_applied(&rev4).await;
    assert_eq!(sent(&config), planned);
    assert_eq!(
        action(&config, "sofia profile test-ingress rescan")["reply"],
        "Reload XML [Success]\n+OK scan complete"
    );
    assert_eq!(rig.profile_field("test-ingress", "CODECS IN").await, "PCMU");
    assert_eq!(rig.profile_field("test-egress", "CODECS IN").await, "PCMU");
    assert_eq!(
        rig.profile_field("other-ingress", "CODECS IN").await,
        "PCMA"
    );
    assert_eq!(profiles(&rig.sofia().await), base_profiles(&ip));
    assert_eq!(rig.main_pid().await, pid, "FreeSWITCH was not restarted");
    let status = rig
        .until_status("the status of rev4", |st| {
            st["applied"]["rev"] == rev4["_rev"]
        })
        .await;
    assert_eq!(status["state"], "ok", "{status:#}");
}

#[tokio::test]
async fn profiles_are_started_restarted_after_the_ten_second_rule_and_stopped() {
    let rig = Rig::new("profiles").await;
    let ip = loopback(2);
    let rev1 = rig.put(host(&ip, "198.51.100.53/32")).await;
    rig.until_applied(&rev1).await;

    // A new profile: started (its ACL lists come with it), then confirmed RUNNING.
    let mut with_new = host(&ip, "198.51.100.53/32");
    with_new["sip_profiles"]["new"] = json!({
        "ingress_sip_ip": ip, "ingress_sip_port": 5300, "egress_sip_port": 15300
    });
    let (preview, planned) = rig.preview(&with_new).await;
    assert_eq!(
        planned,
        vec![
            "reloadxml",
            "reloadacl",
            "sofia profile new-egress start",
            "sofia profile new-ingress start",
            "sofia xmlstatus",
            "sofia xmlstatus"
        ],
        "{preview:#}"
    );
    let put_new = Instant::now();
    let rev2 = rig.put(with_new.clone()).await;
    let config = rig.until_applied(&rev2).await;
    assert_eq!(sent(&config), planned);
    let mut running = base_profiles(&ip);
    running.push(("new-egress".into(), format!("{ip}:15300"), true));
    running.push(("new-ingress".into(), format!("{ip}:5300"), true));
    running.sort();
    assert_eq!(profiles(&rig.sofia().await), running);

    // Its port: a restart of that profile alone, which FreeSWITCH refuses within 10 s of
    // its start: ccnqd waits as long as FreeSWITCH says, retries, and confirms the bind.
    let mut moved = with_new.clone();
    moved["sip_profiles"]["new"]["ingress_sip_port"] = json!(5301);
    let (preview, planned) = rig.preview(&moved).await;
    assert_eq!(
        planned,
        vec![
            "reloadxml",
            "sofia profile new-ingress restart",
            "sofia xmlstatus"
        ],
        "{preview:#}"
    );
    let rev3 = rig.put(moved).await;
    let config = rig.until_applied(&rev3).await;
    let since_start = put_new.elapsed();
    assert_eq!(sent(&config), planned);
    let restart = action(&config, "sofia profile new-ingress restart");
    assert_eq!(
        restart["reply"],
        "Reload XML [Success]\nrestarting: new-ingress"
    );
    match restart["note"].as_str() {
        Some(note) => assert!(note.contains("refused"), "{restart:#}"),
        // Not refused: then the profile, started after `put_new`, was at least 10 s old
        // when the restart was sent, before the apply ended.
        None => assert!(since_start >= Duration::from_secs(10), "{config:#}"),
    }
    let running = rig
        .until_sofia("new-ingress on its new port", |s| {
            s.is_running_at("new-ingress", &format!("{ip}:5301"))
        })
        .await;
    assert_eq!(profiles(&running).len(), 6, "{running:#?}");
    assert!(running.is_running_at("test-ingress", &format!("{ip}:5200")));
    assert!(running.is_running_at("new-egress", &format!("{ip}:15300")));
    let old = format!("{ip}:5300");
    poll_until(
        "the old port released",
        || async { json!(udp_free(&old)) },
        |v| v == true,
    )
    .await;

    // Removed: both stopped, and gone from FreeSWITCH with their ports.
    let (preview, planned) = rig.preview(&host(&ip, "198.51.100.53/32")).await;
    assert_eq!(
        planned,
        vec![
            "sofia profile new-egress stop",
            "sofia profile new-ingress stop",
            "reloadxml",
            "reloadacl"
        ],
        "{preview:#}"
    );
    let rev4 = rig.put(host(&ip, "198.51.100.53/32")).await;
    let config = rig.until_applied(&rev4).await;
    assert_eq!(sent(&config), planned);
    assert!(
        action(&config, "sofia profile new-ingress stop")["reply"]
            .as_str()
            .unwrap()
            .ends_with("stopping: new-ingress"),
        "{config:#}"
    );
    let stopped = rig
        .until_sofia("new-* stopped", |s| {
            s.profile("new-ingress").is_none() && s.profile("new-egress").is_none()
        })
        .await;
    assert_eq!(profiles(&stopped), base_profiles(&ip));
    for port in [5301, 15300] {
        let addr = format!("{ip}:{port}");
        poll_until(
            &format!("{addr} released"),
            || async { json!(udp_free(&addr)) },
            |v| v == true,
        )
        .await;
    }
    assert!(!rig.has_file("sip_profiles/new-ingress.xml"));
}

#[tokio::test]
async fn a_profile_on_an_address_the_host_lacks_fails_rolls_back_and_the_others_keep_running() {
    let absent = absent_address();
    let rig = Rig::new("bindfail").await;
    let ip = loopback(3);
    let good = rig.put(host(&ip, "198.51.100.53/32")).await;
    rig.until_applied(&good).await;
    let before = rig.file("autoload_configs/acl.conf.xml");

    let mut bad = host(&ip, "198.51.100.53/32");
    bad["sip_profiles"]["bad"] = json!({ "ingress_sip_ip": absent, "ingress_sip_port": 5500 });
    let (preview, planned) = rig.preview(&bad).await;
    assert!(
        planned.contains(&"sofia profile bad-ingress start".to_owned()),
        "{preview:#}"
    );
    let bad = rig.put(bad).await;
    let config = rig.until_failed(&bad).await;
    // FreeSWITCH said it started the profile; it never ran: the confirmation says so.
    assert!(
        action(&config, "sofia profile bad-ingress start")["reply"]
            .as_str()
            .unwrap()
            .ends_with("bad-ingress started successfully"),
        "{config:#}"
    );
    let reason = config["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("not RUNNING on {absent}:")) && reason.contains("bad-"),
        "{config:#}"
    );
    // With FreeSWITCH's own words for it, which are in its log.
    assert!(
        reason.contains("; FreeSWITCH: Error Creating SIP UA for profile: bad-"),
        "{config:#}"
    );
    let log = rig.freeswitch().log();
    assert!(
        log.contains("Error Creating SIP UA for profile: bad-"),
        "FreeSWITCH's log:\n{log}"
    );
    // The last good files back, reloaded (ACL lists too: the new ones were loaded).
    assert_eq!(config["applied"]["rev"], good["_rev"]);
    assert!(!rig.has_file("sip_profiles/bad-ingress.xml"));
    assert_eq!(rig.file("autoload_configs/acl.conf.xml"), before);
    let rollback: Vec<_> = actions(&config)
        .iter()
        .filter(|a| a["step"].is_null())
        .filter_map(|a| a["command"].as_str())
        .collect();
    assert_eq!(rollback, ["reloadxml", "reloadacl"], "{config:#}");
    assert!(actions(&config)
        .iter()
        .filter(|a| a["step"].is_null())
        .all(|a| a["ok"] == true));
    // The other profiles never stopped.
    let s = rig.sofia().await;
    assert_eq!(profiles_but_bad(&s), base_profiles(&ip));
    assert!(s.profile("bad-ingress").is_none(), "{s:#?}");
    let status = rig.status_of(&bad).await;
    assert_eq!(status["state"], "failed", "{status:#}");
    assert_eq!(status["applied"]["rev"], good["_rev"], "{status:#}");
}

#[tokio::test]
async fn a_global_variable_change_drains_and_restarts_freeswitch() {
    let rig = Rig::new("restart").await;
    let ip = loopback(4);
    let first = rig.put(host(&ip, "198.51.100.53/32")).await;
    rig.until_applied(&first).await;
    let pid = rig.main_pid().await.expect("FreeSWITCH runs");
    assert_eq!(rig.api("global_getvar ccnq_test").await, "-ERR no reply\n");

    let mut doc = host(&ip, "198.51.100.53/32");
    doc["sip_variables"] = json!({ "ccnq_test": "1" });
    let (preview, planned) = rig.preview(&doc).await;
    assert_eq!(
        planned[..2],
        [
            "fsctl pause inbound; show channels count".to_owned(),
            format!("systemd restart {}", rig.unit)
        ],
        "{preview:#}"
    );
    let rev = rig.put(doc).await;
    let config = rig.until_applied(&rev).await;
    assert_eq!(sent(&config), planned);
    assert_eq!(
        action(&config, "fsctl pause inbound; show channels count")["reply"],
        "0 calls"
    );
    let new_pid = rig.main_pid().await.expect("FreeSWITCH runs");
    assert_ne!(new_pid, pid, "FreeSWITCH was restarted");
    assert_eq!(rig.api("global_getvar ccnq_test").await, "1");
    // A new process takes calls: the pause of the drain died with the old one.
    assert_eq!(rig.api("fsctl pause_check inbound").await, "false");
    assert_eq!(profiles(&rig.sofia().await), base_profiles(&ip));
}

#[tokio::test]
async fn server_only_switches_freeswitch_off_for_good_and_back_on() {
    let rig = Rig::new("switch").await;
    let ip = loopback(5);
    let systemd = rig.systemd().await;
    let on = rig.put(host(&ip, "198.51.100.53/32")).await;
    rig.until_applied(&on).await;
    assert!(rig.unit_active().await);

    // server_only: drained, stopped, and switched off by the flag on the data volume.
    let mut off = host(&ip, "198.51.100.53/32");
    off["server_only"] = json!(true);
    let (preview, planned) = rig.preview(&off).await;
    let off = rig.put(off).await;
    let config = rig.until_applied(&off).await;
    assert_eq!(sent(&config), planned, "{preview:#}");
    assert_eq!(
        sent(&config).first().map(String::as_str),
        Some("fsctl pause inbound; show channels count"),
        "{config:#}"
    );
    assert!(planned.contains(&format!("systemd stop {}", rig.unit)));
    assert!(!rig.unit_active().await);
    assert!(rig.data.join("switched-off").join(&rig.unit).exists());
    assert!(
        EslClient::connect(&rig.esl.to_string(), PASSWORD, ConnectOptions::default())
            .await
            .is_err(),
        "nothing listens on the event socket"
    );
    // A start from elsewhere (a reboot's preset, an operator's systemctl) is skipped.
    systemd.start(&rig.unit).await.unwrap();
    assert!(!rig.unit_active().await);
    assert!(
        EslClient::connect(&rig.esl.to_string(), PASSWORD, ConnectOptions::default())
            .await
            .is_err(),
        "the start was skipped: still nothing on the event socket"
    );

    // And back: the flag goes, the unit starts, the profiles run again.
    let again = rig.put(host(&ip, "198.51.100.53/32")).await;
    rig.until_applied(&again).await;
    assert!(!rig.data.join("switched-off").join(&rig.unit).exists());
    assert!(rig.unit_active().await);
    assert_eq!(profiles(&rig.sofia().await), base_profiles(&ip));
}
