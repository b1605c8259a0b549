//! The local API over real TLS on loopback, against a real `ccnqd` process.

mod common;

use common::{request, Auth, Daemon, Site};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn admin_certificate_reads_status_and_version() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.admin),
        "GET",
        "/v1/status",
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "application/json");
    assert_eq!(a.body["host"], "sbc1.example.net");
    assert_eq!(a.body["config"]["state"], "not-following");
    assert!(a.body["data_volume"]["free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(a.body["data_volume"]["read_only"], false);
    assert!(a.headers.contains_key("x-request-id"));

    let v = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.admin),
        "GET",
        "/v1/version",
        None,
    )
    .await
    .unwrap();
    assert_eq!(v.status, 200);
    assert_eq!(v.body["image_id"], "ccnq");
    assert_eq!(v.body["image_version"], "2026.11.2");
    assert_eq!(v.body["slot"], "a");
    assert_eq!(v.body["daemon"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn a_reader_sees_the_upgrade_state_and_a_host_off_the_image_gets_404() {
    let site = Site::new();
    let config = site.config(true, "");
    let daemon = Daemon::start(&config);
    let u = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.reader),
        "GET",
        "/v1/upgrade",
        None,
    )
    .await
    .unwrap();
    assert_eq!(u.status, 200, "{:?}", u.body);
    assert_eq!(u.body["booted_version"], "2026.11.2");
    assert_eq!(u.body["booted_slot"], "a");
    assert_eq!(u.body["state"], "idle");
    assert!(u.body["since"].as_str().is_some_and(|s| s.ends_with('Z')));

    // The kernel command line names no slot (and it is no PXE boot): not a CCNQ image.
    std::fs::write(site.path("cmdline"), "console=ttyS0\n").unwrap();
    let u = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.reader),
        "GET",
        "/v1/upgrade",
        None,
    )
    .await
    .unwrap();
    assert_eq!(u.status, 404);
    assert!(
        u.body["detail"].as_str().unwrap().contains("ccnq.slot"),
        "{:?}",
        u.body
    );
}

/// The metrics count the requests by route and code, say FreeSWITCH is away (0, not a
/// stale figure) and are the reader's: no credential, no metrics.
#[tokio::test]
async fn metrics_count_requests_by_route_and_need_a_reader() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    for _ in 0..2 {
        let a = request(
            &site,
            daemon.addr,
            Auth::Cert(&site.reader),
            "GET",
            "/v1/status",
            None,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200);
    }
    let anonymous = request(&site, daemon.addr, Auth::None, "GET", "/v1/metrics", None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401);
    let m = request(
        &site,
        daemon.addr,
        Auth::Token(&site.token),
        "GET",
        "/v1/metrics",
        None,
    )
    .await
    .unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("application/openmetrics-text"),
        "{}",
        m.content_type
    );
    let text = m.text();
    for line in [
        "ccnq_api_requests_total{route=\"/v1/status\",code=\"200\"} 2",
        "ccnq_api_requests_total{route=\"/v1/metrics\",code=\"401\"} 1",
        "ccnq_freeswitch_up 0",
        "ccnq_upgrade_state{state=\"idle\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

/// Without a FreeSWITCH to ask (none on this test's event socket), each FreeSWITCH
/// endpoint says so with a 503 naming the event socket, never an empty list.
#[tokio::test]
async fn freeswitch_state_without_freeswitch_is_503_saying_why() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    for path in [
        "/v1/freeswitch/profiles",
        "/v1/freeswitch/gateways",
        "/v1/freeswitch/calls",
        "/v1/freeswitch/registrations",
    ] {
        let a = request(
            &site,
            daemon.addr,
            Auth::Cert(&site.reader),
            "GET",
            path,
            None,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 503, "{path}: {:?}", a.body);
        assert_eq!(a.content_type, "application/problem+json");
        let detail = a.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("event socket") || detail.contains("event-socket"),
            "{path}: {detail}"
        );
        let anonymous = request(&site, daemon.addr, Auth::None, "GET", path, None)
            .await
            .unwrap();
        assert_eq!(anonymous.status, 401, "{path}");
    }
}

#[tokio::test]
async fn no_certificate_and_no_token_is_401_but_health_answers() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(&site, daemon.addr, Auth::None, "GET", "/v1/status", None)
        .await
        .unwrap();
    assert_eq!(a.status, 401);
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(a.body["status"], 401);
    assert!(a.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let h = request(&site, daemon.addr, Auth::None, "GET", "/v1/health", None)
        .await
        .unwrap();
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    assert_eq!(
        h.body.as_object().unwrap().len(),
        1,
        "health tells nothing more: {}",
        h.body
    );
}

#[tokio::test]
async fn tokens_authenticate_and_unknown_tokens_do_not() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let ok = request(
        &site,
        daemon.addr,
        Auth::Token(&site.token),
        "GET",
        "/v1/status",
        None,
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    let bad = request(
        &site,
        daemon.addr,
        Auth::Token("ccnq_not-a-real-token"),
        "GET",
        "/v1/status",
        None,
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 401);
    assert!(bad.body["detail"]
        .as_str()
        .unwrap()
        .contains("unknown bearer token"));
    // The token is a reader's: changing something is forbidden, and audited.
    let put = request(
        &site,
        daemon.addr,
        Auth::Token(&site.token),
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"debug"}"#),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 403);
    let audit = std::fs::read_to_string(site.path("data/audit.log")).unwrap();
    assert!(audit.contains("\"who\":\"token:backup-script\""), "{audit}");
}

#[tokio::test]
async fn reader_may_not_change_anything_and_the_attempt_is_audited() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.reader),
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"debug"}"#),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 403);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("needs role operator"),
        "{}",
        a.body
    );
    let entries = audit_entries(&site);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["role"], "reader");
    assert_eq!(entries[0]["status"], 403);
    assert!(entries[0]["who"].as_str().unwrap().contains("CN=rita"));
    // Reading is allowed.
    let g = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.reader),
        "GET",
        "/v1/log/level",
        None,
    )
    .await
    .unwrap();
    assert_eq!(g.status, 200);
}

#[tokio::test]
async fn operator_changes_the_log_level_and_the_change_is_audited() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.operator),
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"debug"}"#),
    )
    .await
    .unwrap();
    assert_eq!((a.status, a.body["level"].as_str()), (200, Some("debug")));
    let g = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.reader),
        "GET",
        "/v1/log/level",
        None,
    )
    .await
    .unwrap();
    assert_eq!(g.body["level"], "debug");
    let bad = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.operator),
        "PUT",
        "/v1/log/level",
        Some(r#"{"level":"loud"}"#),
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["detail"].as_str().unwrap().starts_with("level:"),
        "{}",
        bad.body
    );
    let missing = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.operator),
        "PUT",
        "/v1/log/level",
        Some(r#"{}"#),
    )
    .await
    .unwrap();
    assert_eq!(missing.status, 400);

    let entries = audit_entries(&site);
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0]["method"], "PUT");
    assert_eq!(entries[0]["path"], "/v1/log/level");
    assert_eq!(entries[0]["role"], "operator");
    assert_eq!(entries[0]["via"], "certificate");
    assert_eq!(entries[0]["result"], "ok");
    assert_eq!(entries[1]["status"], 400);
    // ... and the journal copy (stderr here) names the request too.
    assert!(daemon.wait_for_log("audit: PUT /v1/log/level 200"));
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.admin),
        "GET",
        "/v1/nothing",
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (404, "application/problem+json")
    );
    let m = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.admin),
        "DELETE",
        "/v1/status",
        None,
    )
    .await
    .unwrap();
    assert_eq!(m.status, 405);
    assert_eq!(m.headers["allow"], "GET");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_at_the_handshake() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let err = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.stranger),
        "GET",
        "/v1/health",
        None,
    )
    .await
    .unwrap_err();
    // With TLS 1.3 the client learns of the refusal on its first read.
    assert!(
        err.contains("UnknownCA") || err.contains("unknown ca") || err.contains("alert"),
        "{err}"
    );
    assert!(daemon.wait_for_log("TLS handshake refused"));
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let err = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.expired),
        "GET",
        "/v1/health",
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("CertificateExpired") || err.contains("expired") || err.contains("alert"),
        "{err}"
    );
    assert!(
        daemon.wait_for_log("certificate expired"),
        "the server says why"
    );
}

/// A TLS 1.1 ClientHello (legacy version 3.2, no supported_versions extension), with the
/// extensions a TLS 1.2 server would otherwise need, so that the version is the only
/// reason left to refuse it.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    let suites: [u16; 4] = [0xc009, 0xc013, 0x002f, 0x0035];
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // null compression only
    let extensions: [(u16, &[u8]); 3] = [
        (0x000d, &[0, 4, 0x04, 0x03, 0x04, 0x01]), // signature_algorithms
        (0x000a, &[0, 4, 0x00, 0x17, 0x00, 0x1d]), // supported_groups
        (0x000b, &[1, 0]),                         // ec_point_formats
    ];
    let mut ext = Vec::new();
    for (kind, data) in extensions {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    }
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls11_client_is_refused_and_tls12_is_served() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let mut tcp = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a ServerHello: {reply:?}"
    );
    assert_eq!(reply[5], 2, "fatal");
    assert_eq!(reply[6], 70, "protocol_version alert");
    assert!(daemon.wait_for_log("TLS handshake refused: peer is incompatible: Tls12NotOffered"));

    // The same server does speak TLS 1.2 to a client that offers it.
    let tls = common::connect(
        &site,
        daemon.addr,
        &Auth::Cert(&site.admin),
        &[&rustls::version::TLS12],
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let tls = common::connect(
        &site,
        daemon.addr,
        &Auth::Cert(&site.admin),
        &[&rustls::version::TLS13],
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("https://localhost/v1/status")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn handshake_timeout_and_connection_limit_close_connections() {
    let site = Site::new();
    let daemon =
        Daemon::start(&site.config(true, "handshake_timeout_secs = 0.5\nmax_connections = 1\n"));
    // A client that connects and says nothing is dropped once the handshake times out.
    let mut idle = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(20), idle.read(&mut buf))
        .await
        .expect("server never closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(daemon.wait_for_log("TLS handshake timed out"));

    // With one connection held open, a second is closed at once.
    let held = common::connect(
        &site,
        daemon.addr,
        &Auth::Cert(&site.admin),
        &[&rustls::version::TLS13],
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    let err = request(
        &site,
        daemon.addr,
        Auth::Cert(&site.admin),
        "GET",
        "/v1/health",
        None,
    )
    .await
    .unwrap_err();
    assert!(!err.is_empty());
    assert!(daemon.wait_for_log("connection refused: 1 connections already open"));
    drop(held);
}

#[tokio::test]
async fn ready_is_sent_only_once_the_port_accepts_and_sigterm_stops_cleanly() {
    let site = Site::new();
    let mut daemon = Daemon::start(&site.config(true, ""));
    // READY=1 has arrived (Daemon::start waited for it): the port must accept right now,
    // without any retry.
    let tcp = std::net::TcpStream::connect_timeout(&daemon.addr, Duration::from_secs(1));
    assert!(
        tcp.is_ok(),
        "READY=1 was sent before the API accepted: {tcp:?}"
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status}");
    assert!(daemon.wait_for_notify("STOPPING=1"));
    assert!(daemon.log_contains("stopped"));
}

#[tokio::test]
async fn the_watchdog_is_fed_while_the_daemon_is_healthy() {
    let site = Site::new();
    // systemd passes WatchdogSec as WATCHDOG_USEC; the daemon pings at half of it.
    let daemon = Daemon::start_with_watchdog(&site.config(true, ""), 400_000);
    assert!(daemon.wait_for_notify("WATCHDOG=1"), "no watchdog ping");
    assert!(
        daemon.wait_for_notify("WATCHDOG=1"),
        "only one watchdog ping"
    );
}

#[tokio::test]
async fn first_start_generates_a_server_certificate_and_logs_its_fingerprint() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(false, ""));
    let cert = std::fs::read_to_string(site.path("data/tls/server.crt")).unwrap();
    let der = ccnq_pki::pem_to_der(&cert).unwrap();
    let fingerprint = ccnq_pki::fingerprint(&der);
    assert!(daemon.log_contains(&format!("fingerprint is {fingerprint}")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(site.path("data/tls/server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is private");
    drop(daemon);
    // A second start keeps the same certificate.
    let again = Daemon::start(&site.config(false, ""));
    assert!(again.log_contains(&format!("server certificate fingerprint {fingerprint}")));
}

#[test]
fn configuration_errors_name_the_key_and_exit_78() {
    let site = Site::new();
    let path = site.config(true, "max_connections = 0\n");
    let out = std::process::Command::new(common::ccnqd_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("api.max_connections: must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn a_missing_data_directory_stops_the_daemon() {
    let site = Site::new();
    let path = site.config(true, "");
    std::fs::remove_dir(site.path("data")).unwrap();
    let out = std::process::Command::new(common::ccnqd_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not exist (it must be on the writable data volume)"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_data_directory_stops_the_daemon() {
    let site = Site::new();
    let path = site.config(true, "");
    let data = site.path("data");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a read-only tmpfs in CI"
        );
        eprintln!("SKIPPED: mounting a read-only tmpfs needs root");
        return;
    }
    let out = std::process::Command::new(common::ccnqd_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::process::Command::new("umount").arg(&data).status();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is on a read-only mount (it must be on the writable data volume)"),
        "{stderr}"
    );
}

fn audit_entries(site: &Site) -> Vec<serde_json::Value> {
    std::fs::read_to_string(site.path("data/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A change refused for want of a credential is audited, as docs/api.md promises.
#[tokio::test]
async fn an_unauthenticated_change_is_audited() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let a = request(
        &site,
        daemon.addr,
        Auth::None,
        "PUT",
        "/v1/log/level",
        Some(r#"{"level": "debug"}"#),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 401);
    let entries = audit_entries(&site);
    let e = entries
        .iter()
        .find(|e| e["path"] == "/v1/log/level")
        .unwrap_or_else(|| panic!("not audited: {entries:?}"));
    assert_eq!(e["status"], 401, "{e}");
    assert_eq!(e["via"], "none", "{e}");
    assert!(
        e["who"]
            .as_str()
            .unwrap()
            .starts_with("unauthenticated 127.0.0.1:"),
        "{e}"
    );
}

/// curl over HTTP/2, no credential, a body: it reads the 401 (it used to see its stream
/// reset before the body was read, and report error 92 instead).
#[test]
fn an_unauthenticated_http2_request_with_a_body_gets_its_401() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let body = site.path("big.json");
    std::fs::write(
        &body,
        format!(
            "{{\"level\": \"debug\", \"pad\": \"{}\"}}",
            "x".repeat(300_000)
        ),
    )
    .unwrap();
    let out = std::process::Command::new("curl")
        .args([
            "--http2",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "-X",
            "PUT",
        ])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg("--cacert")
        .arg(site.path("ca.pem"))
        .arg(format!(
            "https://localhost:{}/v1/log/level",
            daemon.addr.port()
        ))
        .output()
        .expect("curl");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said, "401 2", "{said}");
}
