//! The peer checked against the recordings of FreeSWITCH 1.11.2: each test drives it with
//! a recording's commands (`.tx`), does what the recording's `.steps` did between them
//! (XML edits, waits: scaled down through `ten_second_rule`), and compares each answer
//! with the recorded frame, byte for byte. Where the recorded answer depends on timing
//! (`Please wait N seconds`, a status poll during a restart) the shape is compared and
//! N checked to be a possible FreeSWITCH answer.

mod common;

use std::time::Duration;

use ccnq_esl_peer::{Peer, PeerConfig};
use common::*;

/// The scaled 10-second rule; waits of "more than 10 s" become this plus a margin.
const RULE: Duration = Duration::from_millis(1500);
const PAST_RULE: Duration = Duration::from_millis(1700);

async fn quick_peer() -> (Peer, tempfile::TempDir) {
    base_peer(RULE).await
}

#[tokio::test]
async fn apply_01a_reloadxml() {
    let (peer, _conf) = quick_peer().await;
    let mut s = Session::open(&peer, Recording::load(APPLY, "01a-api-reloadxml")).await;
    s.exact(1).await;
}

#[tokio::test]
async fn apply_01b_reloadacl() {
    let (peer, _conf) = quick_peer().await;
    let mut s = Session::open(&peer, Recording::load(APPLY, "01b-api-reloadacl")).await;
    s.exact(1).await;
}

#[tokio::test]
async fn apply_01c_reloadacl_reloadxml() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "01c-api-reloadacl-reloadxml");
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
}

#[tokio::test]
async fn apply_01e_reloadacl_with_broken_xml() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "01e-reloadacl-broken-xml");
    assert_eq!(rec.command(4), "api acl 127.0.0.3 test-ingress");
    let mut s = Session::open(&peer, rec).await;
    // The scenario's broken include file; its error text is the test's to supply.
    peer.set_reloadxml_error(Some(
        "[error near line 176]: unexpected closing tag </settings>".into(),
    ));
    s.exact_all(1..4).await;
    // Command 4 (`acl`) is not modelled. The file is fixed, then `reloadacl` succeeds.
    peer.set_reloadxml_error(None);
    s.exact(5).await;
}

#[tokio::test]
async fn apply_02_rescan_applies_non_bind_changes() {
    let (peer, conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "02-rescan-after-non-bind-change");
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    write_profile(
        conf.path(),
        "test-ingress",
        "127.0.0.1",
        5200,
        "test-ingress-v2",
    );
    s.exact_all(2..5).await;
    write_profile(
        conf.path(),
        "test-ingress",
        "127.0.0.1",
        5200,
        "test-ingress-v3",
    );
    s.exact_all(5..7).await;
}

#[tokio::test]
async fn apply_03_restart_within_10s_and_after() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "03-restart-within-10s-and-after");
    let absent = rec.reply(5).text(); // `sofia status` while restarting
    let present = rec.reply(1).text();
    assert_ne!(absent, present);
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    s.please_wait(2).await;
    s.please_wait(3).await;
    tokio::time::sleep(PAST_RULE).await;
    s.exact(4).await;
    // During the restart the profile is absent; whether a poll lands inside that window
    // is timing, so each poll must be one of the two recorded answers (the model's unit
    // tests check the window itself on a synthetic clock).
    let got = s.send(5).await.text();
    assert!(got == absent || got == present, "{got:?}");
    let got = s.send(6).await.text();
    let (missing, back) = (s.rec.reply(6).text(), s.rec.reply(11).text());
    assert!(got == missing || got == back, "{got:?}");
    loop {
        let got = s.send(5).await.text();
        assert!(got == absent || got == present, "{got:?}");
        if got == present {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.exact(11).await;
    // The age counts from the respawn: refused again.
    s.please_wait(12).await;
    s.exact(13).await;
}

#[tokio::test]
async fn apply_04a_add_start_stop_remove_profile() {
    let (peer, conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "04a-add-start-stop-remove-profile");
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    write_profile(conf.path(), "new-ingress", "127.0.0.1", 5300, "new-ingress");
    s.exact_all(2..11).await;
    s.please_wait(11).await;
    tokio::time::sleep(PAST_RULE).await;
    s.exact_all(12..15).await;
    remove_profile(conf.path(), "new-ingress");
    s.exact_all(15..18).await;
}

#[tokio::test]
async fn apply_04b_remove_xml_first_then_rescan_stop() {
    let (peer, conf) = quick_peer().await;
    write_profile(conf.path(), "new-ingress", "127.0.0.1", 5300, "new-ingress");
    // Running since FreeSWITCH's start, long enough ago for `stop`.
    peer.preload_profile("new-ingress", "127.0.0.1:5300".parse().unwrap(), RULE);
    let rec = Recording::load(APPLY, "04b-remove-xml-first-then-rescan-stop");
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    remove_profile(conf.path(), "new-ingress");
    s.exact_all(2..s.rec.commands.len()).await;
}

#[tokio::test]
async fn apply_04c_restart_without_xml_is_a_stop() {
    let (peer, conf) = quick_peer().await;
    write_profile(conf.path(), "new-ingress", "127.0.0.1", 5300, "new-ingress");
    peer.preload_profile("new-ingress", "127.0.0.1:5300".parse().unwrap(), RULE);
    remove_profile(conf.path(), "new-ingress");
    let rec = Recording::load(APPLY, "04c-remove-xml-then-restart");
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..3).await;
    // Polls during and after the restart window: the profile never comes back.
    s.exact_all(3..s.rec.commands.len()).await;
    tokio::time::sleep(PAST_RULE).await;
    s.exact(3).await;
    assert!(peer.profiles().iter().all(|(n, _, _)| n != "new-ingress"));
}

#[tokio::test]
async fn apply_05_unknown_profile() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "05-unknown-profile");
    let n = rec.commands.len();
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..n).await;
}

#[tokio::test]
async fn apply_06_port_change_rescan_keeps_bind_restart_rebinds() {
    let (peer, conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "06-egress-port-change-rescan-restart");
    let absent = rec.reply(9).text();
    let after = rec.reply(14).text();
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..3).await;
    write_profile(
        conf.path(),
        "test-egress",
        "127.0.0.1",
        15201,
        "test-egress",
    );
    s.exact_all(3..8).await;
    tokio::time::sleep(PAST_RULE).await;
    s.exact(8).await;
    loop {
        let got = s.send(9).await.text();
        assert!(got == absent || got == after, "{got:?}");
        if got == after {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.exact(15).await;
}

#[tokio::test]
async fn apply_07_channels_count_and_fsctl() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "07-channels-count-fsctl");
    let n = rec.commands.len();
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..n).await;
}

#[tokio::test]
async fn apply_10_call_count_and_pause_while_calls_come_and_go() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "10-call-count-pause-kill");
    // The calls the scenario placed and ended, as the count script: none, one, one
    // (inbound refused while paused), none after uuid_kill, one, none after hupall.
    peer.set_channels(vec![0, 1, 1, 0, 1, 0]);
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..3).await;
    // 3 (`show channels as json` with a call), 7 and 9 (`uuid_kill`), 12 (`hupall`):
    // calls are not modelled.
    s.exact_all(4..7).await;
    assert!(peer.paused());
    s.exact(8).await;
    s.exact_all(10..12).await;
    assert!(!peer.paused());
    s.exact_all(13..15).await;
}

#[tokio::test]
async fn apply_08_sofia_xmlstatus() {
    let (peer, _conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "08-sofia-xmlstatus");
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..4).await;
}

#[tokio::test]
async fn apply_09a_bad_ip_start_reports_success_never_runs() {
    let (peer, conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "09a-bad-ip-profile-start");
    let n = rec.commands.len();
    write_profile(
        conf.path(),
        "bad-ingress",
        "192.0.2.123",
        5400,
        "bad-ingress",
    );
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..n).await;
    assert!(peer.profiles().contains(&(
        "bad-ingress".into(),
        "192.0.2.123:5400".parse().unwrap(),
        false
    )));
}

#[tokio::test]
async fn apply_09c_port_conflict_start_reports_success_never_runs() {
    let (peer, conf) = quick_peer().await;
    let rec = Recording::load(APPLY, "09c-port-conflict-profile-start");
    let n = rec.commands.len();
    write_profile(conf.path(), "dup-ingress", "127.0.0.1", 5200, "dup-ingress");
    let mut s = Session::open(&peer, rec).await;
    s.exact_all(1..n).await;
    let profiles = peer.profiles();
    assert!(profiles.contains(&(
        "test-ingress".into(),
        "127.0.0.1:5200".parse().unwrap(),
        true
    )));
    assert!(profiles.contains(&(
        "dup-ingress".into(),
        "127.0.0.1:5200".parse().unwrap(),
        false
    )));
}

// ---- the socket itself (`freeswitch-esl/`) ----

async fn plain_peer() -> Peer {
    Peer::start(PeerConfig::default()).await.unwrap()
}

#[tokio::test]
async fn esl_02_wrong_password_is_refused_and_dropped() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "02-wrong-password");
    let want_notice = rec.frames[2].clone();
    let mut s = Session::open(&peer, rec).await; // `auth WrongPassword` → `-ERR invalid`
    assert_eq!(s.frame().await, want_notice);
    s.expect_eof().await;
}

#[tokio::test]
async fn esl_03_05_08_12_auth_reloadxml_version_unknown() {
    let peer = plain_peer().await;
    Session::open(&peer, Recording::load(ESL, "03-auth-ok")).await;
    for name in [
        "05-api-reloadxml",
        "08-api-version",
        "12-api-nonexistent-command",
        "14b-reloadxml-after-fix",
        "17-crlf-line-endings",
    ] {
        let mut s = Session::open(&peer, Recording::load(ESL, name)).await;
        s.exact(1).await;
    }
}

#[tokio::test]
async fn esl_04_status_has_the_recorded_shape() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "04-api-status");
    let want = rec.reply(1).body_text();
    let mut s = Session::open(&peer, rec).await;
    let got = s.send(1).await.body_text();
    // Same lines, the uptime and CPU figures aside.
    let shape = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.chars().filter(|c| !c.is_ascii_digit()).collect())
            .collect()
    };
    assert_eq!(shape(&got), shape(&want));
}

#[tokio::test]
async fn esl_13_exit() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "13-exit");
    let notice = rec.frames[3].clone();
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    assert_eq!(s.frame().await, notice);
    s.expect_eof().await;
}

#[tokio::test]
async fn esl_14_broken_reloadxml_answers_ok_with_the_error() {
    let peer = Peer::start(PeerConfig {
        reloadxml_error: Some("[error near line 132]: unexpected closing tag </settings>".into()),
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let mut s = Session::open(&peer, Recording::load(ESL, "14-broken-xml-reloadxml")).await;
    s.exact(1).await;
}

#[tokio::test]
async fn esl_15_commands_before_auth() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "15-preauth-command-then-auth");
    let mut s = Session::open_unauthenticated(&peer, rec).await;
    s.exact_all(0..3).await;
}

#[tokio::test]
async fn esl_18_log_nolog_noevents() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "18-log-7-and-nolog");
    let mut s = Session::open(&peer, rec).await;
    // The log/data frames after `reloadxml` are not modelled; the replies are.
    s.exact_all(1..5).await;
}

#[tokio::test]
async fn esl_19_oversized_body_is_dropped() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "19-oversized-content-length");
    let notice = rec.frames[2].clone();
    let mut s = Session::open(&peer, rec).await;
    let cmd = s.rec.commands[1].clone();
    s.send_raw(&cmd).await;
    assert_eq!(s.frame().await, notice);
    s.expect_eof().await;
}

#[tokio::test]
async fn esl_09a_bgapi_without_subscription_only_acknowledges() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "09a-bgapi-status-no-subscription");
    let want = rec.reply(1);
    let mut s = Session::open(&peer, rec).await;
    let got = s.send(1).await;
    let uuid = got.header("Job-UUID").expect("Job-UUID").to_string();
    let recorded = want.header("Job-UUID").unwrap();
    assert_eq!(got.text(), want.text().replace(recorded, &uuid));
    // Nothing else comes: the next command's reply is the next frame.
    let version = Recording::load(ESL, "08-api-version");
    s.send_raw(&version.commands[1]).await;
    assert_eq!(s.frame().await.text(), version.reply(1).text());
}

#[tokio::test]
async fn esl_09b_bgapi_event_plain() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "09b-bgapi-status-event-plain");
    let want_event = rec.frames[4].clone();
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    let ack = s.send(2).await;
    let uuid = ack.header("Job-UUID").unwrap().to_string();
    let event = s.frame().await;
    assert_eq!(event.content_type(), want_event.content_type());
    // The event's own header block: the same names in the same order, this job's values.
    let mut inner = event.body.clone();
    let got = split_frame(&mut inner).expect("event headers and body");
    let mut inner = want_event.body.clone();
    let want = split_frame(&mut inner).unwrap();
    let names = |f: &RawFrame| f.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    assert_eq!(got.header("Event-Name"), Some("BACKGROUND_JOB"));
    assert_eq!(got.header("Job-UUID"), Some(uuid.as_str()));
    assert_eq!(got.header("Job-Command"), Some("status"));
    assert!(got.body_text().contains(") is ready\n"));
    // The peer's plain event is also what the project's client decodes.
    let mut buf = bytes_of(&event);
    let frame = ccnq_esl::FrameDecoder::new()
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let decoded = ccnq_esl::Event::from_frame(&frame).unwrap();
    assert_eq!(decoded.name(), Some("BACKGROUND_JOB"));
}

fn bytes_of(f: &RawFrame) -> bytes::BytesMut {
    bytes::BytesMut::from(&f.bytes[..])
}

#[tokio::test]
async fn esl_09c_bgapi_client_job_uuid_event_json() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "09c-bgapi-status-event-json-client-job-uuid");
    let want_event = rec.frames[4].clone();
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    s.exact(2).await; // the client's Job-UUID is honoured: byte-exact acknowledgement
    let event = s.frame().await;
    assert_eq!(event.content_type(), "text/event-json");
    let got: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&event.body).unwrap();
    let want: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&want_event.body).unwrap();
    let keys = |m: &serde_json::Map<String, serde_json::Value>| {
        let mut k: Vec<_> = m.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&got), keys(&want));
    assert_eq!(got["Job-UUID"], want["Job-UUID"]);
    assert_eq!(got["Job-Command"], want["Job-Command"]);
    let body = got["_body"].as_str().unwrap();
    assert_eq!(got["Content-Length"], body.len().to_string().as_str());
}

#[tokio::test]
async fn esl_09d_bgapi_event_xml() {
    let peer = plain_peer().await;
    let rec = Recording::load(ESL, "09d-bgapi-version-event-xml");
    let want_event = rec.frames[4].clone();
    let mut s = Session::open(&peer, rec).await;
    s.exact(1).await;
    let ack = s.send(2).await;
    let uuid = ack.header("Job-UUID").unwrap().to_string();
    let event = s.frame().await;
    assert_eq!(event.content_type(), "text/event-xml");
    let got = event.body_text();
    let want = want_event.body_text();
    // `version` is constant, so everything after the headers is byte-exact.
    let tail = |t: &str| t[t.find("  </headers>").unwrap()..].to_string();
    assert_eq!(tail(&got), tail(&want));
    let doc = roxmltree::Document::parse(&got).unwrap();
    let names = |d: &roxmltree::Document| {
        d.descendants()
            .find(|n| n.has_tag_name("headers"))
            .unwrap()
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&doc),
        names(&roxmltree::Document::parse(&want).unwrap())
    );
    assert!(got.contains(&format!("<Job-UUID>{uuid}</Job-UUID>")));
}
