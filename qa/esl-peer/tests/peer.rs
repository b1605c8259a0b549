//! The peer as its users see it: through the project's ESL client in-process, through the
//! control directory, and as the `esl-peer` process.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ccnq_esl::{CommandError, ConnectOptions, EslClient, ProfileAccepted, ProfileAction};
use ccnq_esl_peer::{Kind, Peer, PeerConfig};
use common::*;

async fn client(peer: &Peer) -> EslClient {
    EslClient::connect(
        &peer.addr().to_string(),
        "ClueCon",
        ConnectOptions::default(),
    )
    .await
    .expect("connect and auth")
}

#[tokio::test]
async fn the_clients_typed_helpers_read_the_peers_answers() {
    let (peer, conf) = base_peer(Duration::from_secs(10)).await;
    let esl = client(&peer).await;

    assert_eq!(esl.reloadxml().await.unwrap().result, Ok(()));
    assert_eq!(esl.reloadacl().await.unwrap().result, Ok(()));

    // Bind failures: start is accepted, the profile never shows.
    peer.preload_profile("old", "127.0.0.1:5900".parse().unwrap(), Duration::ZERO);
    write_profile(conf.path(), "bad", "192.0.2.1", 5400, "bad");
    write_profile(conf.path(), "dup", "127.0.0.1", 5200, "dup");
    for name in ["bad", "dup"] {
        let out = esl.sofia_profile(name, ProfileAction::Start).await.unwrap();
        assert_eq!(out.result, Ok(ProfileAccepted::Started));
    }
    let status = esl.sofia_xmlstatus().await.unwrap().result.unwrap();
    let names: Vec<&str> = status.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["test-egress", "test-ingress", "old"]);
    assert_eq!(
        status.profile("test-ingress").unwrap().address(),
        Some("127.0.0.1:5200")
    );
    let table = esl.sofia_status().await.unwrap().result.unwrap();
    assert_eq!(table, status);

    // The 10-second rule: `old` was just started.
    let out = esl.sofia_profile("old", ProfileAction::Stop).await.unwrap();
    assert!(
        matches!(out.result, Err(CommandError::ProfileTooYoung { .. })),
        "{:?}",
        out.response.body
    );

    esl.pause_inbound().await.unwrap().result.unwrap();
    assert!(peer.paused());
    esl.resume_inbound().await.unwrap().result.unwrap();
    assert!(!peer.paused());

    peer.set_channels(vec![2, 1, 0]);
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(esl.channels_count().await.unwrap().result.unwrap());
    }
    assert_eq!(counts, [2, 1, 0, 0]);

    peer.set_reloadxml_error(Some("[error near line 3]: broken".into()));
    assert_eq!(
        esl.reloadxml().await.unwrap().result,
        Err(CommandError::ReloadXml {
            message: "[error near line 3]: broken".into()
        })
    );

    esl.subscribe(ccnq_esl::EventFormat::Json, &["BACKGROUND_JOB"])
        .await
        .unwrap();
    let job = esl
        .bgapi("sofia profile test-ingress rescan")
        .await
        .unwrap();
    assert_eq!(
        job.body,
        "Reload XML [[error near line 3]: broken]\n+OK scan complete\n"
    );

    assert_eq!(
        peer.commands(),
        [
            "reloadxml",
            "reloadacl",
            "sofia profile bad start",
            "sofia profile dup start",
            "sofia xmlstatus",
            "sofia status",
            "sofia profile old stop",
            "fsctl pause inbound",
            "fsctl resume inbound",
            "show channels count",
            "show channels count",
            "show channels count",
            "show channels count",
            "reloadxml",
            "sofia profile test-ingress rescan",
        ]
    );
    let log = peer.command_log();
    assert_eq!(log[0].kind, Kind::Socket);
    assert_eq!(log[0].command, "auth");
    assert_eq!(log.last().unwrap().kind, Kind::Bgapi);
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn preloaded_profiles_without_conf_dir() {
    let peer = Peer::start(PeerConfig {
        ten_second_rule: Duration::from_millis(200),
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let bind = "127.0.0.1:5060".parse().unwrap();
    peer.preload_profile("internal", bind, Duration::from_secs(60));
    assert_eq!(peer.profiles(), [("internal".to_string(), bind, true)]);
    let esl = client(&peer).await;
    // Its XML is what was preloaded: rescan finds it, restart brings it back.
    let out = esl
        .sofia_profile("internal", ProfileAction::Rescan)
        .await
        .unwrap();
    assert_eq!(out.result, Ok(ProfileAccepted::ScanComplete));
    let out = esl
        .sofia_profile("internal", ProfileAction::Restart)
        .await
        .unwrap();
    assert_eq!(out.result, Ok(ProfileAccepted::Restarting));
    loop {
        let status = esl.sofia_xmlstatus().await.unwrap().result.unwrap();
        if status.profile("internal").is_some() {
            break;
        }
        assert_eq!(peer.profiles(), [("internal".to_string(), bind, false)]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(peer.profiles(), [("internal".to_string(), bind, true)]);
}

#[tokio::test]
async fn extra_local_ips_can_bind() {
    let conf = tempfile::tempdir().unwrap();
    write_profile(conf.path(), "v6", "::1", 5060, "v6");
    write_profile(conf.path(), "lan", "192.0.2.10", 5060, "lan");
    let peer = Peer::start(PeerConfig {
        conf_dir: Some(conf.path().to_path_buf()),
        local_ips: vec!["::1".parse().unwrap(), "192.0.2.10".parse().unwrap()],
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let esl = client(&peer).await;
    let status = esl.sofia_xmlstatus().await.unwrap().result.unwrap();
    assert_eq!(status.profile("v6").unwrap().address(), Some("[::1]:5060"));
    assert_eq!(
        status.profile("lan").unwrap().address(),
        Some("192.0.2.10:5060")
    );
}

#[tokio::test]
async fn a_broken_profile_file_fails_reloadxml_and_keeps_the_last_good_xml() {
    let (peer, conf) = base_peer(Duration::from_secs(10)).await;
    let esl = client(&peer).await;
    std::fs::write(
        conf.path().join("sip_profiles/zz-broken.xml"),
        "<include>\n<profile name=\"x\">\n</settings>\n",
    )
    .unwrap();
    let out = esl.reloadxml().await.unwrap();
    assert!(
        out.response.body.starts_with("+OK [[error near line 3]: "),
        "{:?}",
        out.response.body
    );
    assert!(matches!(out.result, Err(CommandError::ReloadXml { .. })));
    // The old XML still knows test-ingress.
    let out = esl
        .sofia_profile("test-ingress", ProfileAction::Rescan)
        .await
        .unwrap();
    assert!(out.response.body.ends_with("]\n+OK scan complete\n"));
}

#[tokio::test]
async fn the_control_directory_changes_behaviour_at_run_time() {
    let control = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerConfig {
        control_dir: Some(control.path().to_path_buf()),
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    let esl = client(&peer).await;
    let body = |o: ccnq_esl::Outcome<()>| o.response.body;

    assert_eq!(body(esl.reloadxml().await.unwrap()), "+OK [Success]\n");
    std::fs::write(
        control.path().join("reloadxml-error"),
        "[error near line 9]: x\n",
    )
    .unwrap();
    assert_eq!(
        body(esl.reloadxml().await.unwrap()),
        "+OK [[error near line 9]: x]\n"
    );
    assert_eq!(
        body(esl.reloadacl().await.unwrap()),
        "-ERR [[error near line 9]: x]\n"
    );
    std::fs::remove_file(control.path().join("reloadxml-error")).unwrap();
    assert_eq!(body(esl.reloadxml().await.unwrap()), "+OK [Success]\n");

    // One failure only, and the file is taken.
    let once = control.path().join("reloadxml-error-once");
    std::fs::write(&once, "[error near line 3]: y\n").unwrap();
    assert_eq!(
        body(esl.reloadxml().await.unwrap()),
        "+OK [[error near line 3]: y]\n"
    );
    assert!(!once.exists());
    assert_eq!(body(esl.reloadxml().await.unwrap()), "+OK [Success]\n");

    let count = || async { esl.channels_count().await.unwrap().result.unwrap() };
    assert_eq!(count().await, 0);
    std::fs::write(control.path().join("channels"), "3, 1").unwrap();
    assert_eq!(count().await, 3);
    assert_eq!(count().await, 1);
    assert_eq!(count().await, 1);
    // Unchanged content is not re-applied; new content is.
    std::fs::write(control.path().join("channels"), "3, 1").unwrap();
    assert_eq!(count().await, 1);
    std::fs::write(control.path().join("channels"), "5,0").unwrap();
    assert_eq!(count().await, 5);
    assert_eq!(count().await, 0);
}

/// Runs the binary; kills it on drop if a test fails before SIGTERM.
struct Process(std::process::Child);
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_port_logs_json_lines_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    write_profile(&conf, "test-ingress", "127.0.0.1", 5200, "test-ingress");
    let control = dir.path().join("control");
    std::fs::create_dir(&control).unwrap();
    std::fs::write(control.join("channels"), "4,0").unwrap();
    let log = dir.path().join("commands.jsonl");
    let mut child = Process(
        Command::new(env!("CARGO_BIN_EXE_esl-peer"))
            .args(["--listen", "127.0.0.1:0", "--ten-second-rule-ms", "100"])
            .arg("--conf")
            .arg(&conf)
            .arg("--control")
            .arg(&control)
            .arg("--log")
            .arg(&log)
            .args(["--profile", "old=127.0.0.1:5400"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn esl-peer"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_ne!(addr.port(), 0);

    let esl = EslClient::connect(&addr.to_string(), "ClueCon", ConnectOptions::default())
        .await
        .unwrap();
    let status = esl.sofia_xmlstatus().await.unwrap().result.unwrap();
    let names: Vec<&str> = status.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["test-ingress", "old"]);
    assert_eq!(esl.channels_count().await.unwrap().result, Ok(4));
    let out = esl.sofia_profile("old", ProfileAction::Stop).await.unwrap();
    assert_eq!(out.result, Ok(ProfileAccepted::Stopping));

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["command"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("socket", "auth"),
            ("api", "sofia xmlstatus"),
            ("api", "show channels count"),
            ("api", "sofia profile old stop"),
        ]
    );
    assert_eq!(lines[2]["reply"], "\n4 total.\n");
    assert!(lines
        .iter()
        .all(|v| v["time"].as_str().unwrap().ends_with('Z') && v["unix_ms"].as_i64().unwrap() > 0));

    let pid = child.0.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
