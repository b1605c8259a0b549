//! `ccnqctl` against a running `ccnqd`: output formats, credentials from flags, the
//! environment and the settings file, and the exit codes scripts rely on.

mod common;

use ccnq_couch::{Auth as CouchAuth, Client, ClientConfig};
use ccnq_testkit::couchdb::CouchServer;
use common::{ccnqctl as ctl, with_cert, Daemon, Site};
use serde_json::json;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into(),
        String::from_utf8_lossy(&stderr).into(),
    )
}

#[test]
fn status_as_a_table_and_as_json() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "admin");
    let (code, out, err) = run(cmd.arg("status"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("host") && l.ends_with("sbc1.example.net")),
        "{out}"
    );
    assert!(
        out.contains("config") && out.contains("not-following"),
        "{out}"
    );
    assert!(out.contains(" free of "), "{out}");

    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "admin");
    let (code, out, _) = run(cmd.args(["status", "-o", "json"]));
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["host"], "sbc1.example.net");

    // A daemon that follows no document is settled: `config` exits 0.
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "reader");
    let (code, out, err) = run(cmd.arg("config"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("state") && l.ends_with("not-following")),
        "{out}"
    );

    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "reader");
    let (code, out, _) = run(cmd.arg("version"));
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("image version") && l.ends_with("2026.11.2")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("slot") && l.ends_with('a')),
        "{out}"
    );

    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "reader");
    let (code, out, err) = run(cmd.args(["upgrade", "status"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("booted") && l.ends_with("2026.11.2 (slot a)")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("state") && l.ends_with("idle")),
        "{out}"
    );
}

#[test]
fn exit_codes_tell_failures_apart() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    let endpoint = format!("https://localhost:{}", daemon.addr.port());

    // health needs no credentials
    let (code, out, _) = run(ctl(&site)
        .args(["--endpoint", &endpoint, "--ca"])
        .arg(site.path("ca.pem"))
        .arg("health"));
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    // 401 → 4
    let (code, _, err) = run(ctl(&site)
        .args(["--endpoint", &endpoint, "--ca"])
        .arg(site.path("ca.pem"))
        .arg("status"));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("401"), "{err}");
    // 403 → 4
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "reader");
    let (code, _, err) = run(cmd.args(["log-level", "debug"]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("needs role operator"), "{err}");
    // a level that does not exist is refused before anything is sent → 2
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "operator");
    let (code, _, err) = run(cmd.args(["log-level", "loud"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"loud\" is not one of"), "{err}");
    // success of a change
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "operator");
    let (code, out, _) = run(cmd.args(["log-level", "debug"]));
    assert_eq!((code, out.as_str()), (0, "debug\n"));
    // no way to trust the server → 2
    let (code, _, err) = run(ctl(&site).args(["--endpoint", &endpoint, "status"]));
    assert_eq!(code, 2);
    assert!(err.contains("--ca"), "{err}");
    // nobody listening → 3
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = run(ctl(&site)
        .args(["--endpoint", &format!("https://127.0.0.1:{dead}")])
        .arg("--ca")
        .arg(site.path("ca.pem"))
        .arg("status"));
    assert_eq!(code, 3, "{err}");
    // a certificate the server refuses → 3 (the handshake fails)
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "stranger");
    let (code, _, err) = run(cmd.arg("status"));
    assert_eq!(code, 3, "{err}");
}

/// `ccnqctl config` as a script runs it: `(exit status, stdout, stderr)`.
fn config(site: &Site, daemon: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ctl(site);
    with_cert(&mut cmd, site, daemon, "reader");
    run(cmd.arg("config").args(args))
}

/// Runs `ccnqctl config -o json` until the state is `state` (60 s at most).
fn until_state(site: &Site, daemon: &Daemon, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, err) = config(site, daemon, &["-o", "json"]);
        let json: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("ccnqctl config -o json: {e}: {out}{err}"));
        if json["state"] == state {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "state never became {state}: {json:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A script can tell from `ccnqctl config`'s exit status alone whether the host's
/// configuration failed (9) or is not settled yet (10), the report still printed; and
/// `ccnqctl config plan` names the daemon's own data directory. Against a real CouchDB
/// 3.4.3 holding the host document (in a database of this test's own).
#[test]
fn config_exits_with_the_hosts_configuration_state() {
    let couch = CouchServer::shared();
    let (user, password) = couch.admin();
    let db = Client::new(ClientConfig::new(
        &couch.url(),
        CouchAuth::basic(user, password),
    ))
    .unwrap()
    .db("ccnqctl-config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt.block_on(db.create()).unwrap());
    rt.block_on(
        db.put_security(&json!({"admins": {"names": [], "roles": []},
        "members": {"names": [user], "roles": []}})),
    )
    .unwrap();

    let site = Site::new();
    std::fs::write(site.path("couch.password"), format!("{password}\n")).unwrap();
    let config_path = site.config(true, "");
    let text = std::fs::read_to_string(&config_path).unwrap()
        + &format!(
            "\n[couchdb]\nurl = \"{}\"\ndatabase = \"ccnqctl-config\"\nuser = \"{user}\"\n\
             password_file = \"{}\"\nheartbeat_secs = 1\nreconnect_max_secs = 1\n",
            couch.url(),
            site.path("couch.password").display()
        );
    std::fs::write(&config_path, text).unwrap();
    let daemon = Daemon::start(&config_path);

    // No revision of the document yet: not settled.
    until_state(&site, &daemon, "waiting");
    let (code, out, err) = config(&site, &daemon, &[]);
    assert_eq!(code, 10, "{out}{err}");
    assert!(
        out.lines()
            // `waiting`, with the reason once the daemon has read the document.
            .any(|l| l.starts_with("state") && l.split_whitespace().nth(1) == Some("waiting")),
        "the report is printed: {out}"
    );
    assert!(
        err.contains("the host's configuration state is waiting"),
        "{err}"
    );

    // The plan of a first apply replaces the files where this daemon keeps them.
    let mut doc = json!({
        "_id": "host:sbc1.example.net", "type": "host", "host": "sbc1.example.net",
        "sip_domain_name": "a.phone.example.net",
        "sip_profiles": { "test": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060 } }
    });
    std::fs::write(site.path("host.json"), doc.to_string()).unwrap();
    let mut cmd = ctl(&site);
    with_cert(&mut cmd, &site, &daemon, "reader");
    let (code, out, err) = run(cmd.args(["config", "plan"]).arg(site.path("host.json")));
    assert_eq!(code, 0, "{out}{err}");
    let files = format!(" in {}, ", site.path("data/freeswitch").display());
    assert!(out.contains(&files), "{files:?} not in:\n{out}");
    assert!(!out.contains("/var/lib/ccnq"), "{out}");

    // A revision that cannot be applied: failed, 9, with the reason on stderr.
    doc["sip_profiles"]["test"]["ingress_sip_ip"] = json!("not-an-address");
    let rev = rt.block_on(db.put("host:sbc1.example.net", &doc)).unwrap();
    let json = until_state(&site, &daemon, "failed");
    assert_eq!(json["last"]["rev"], json!(rev), "{json:#}");
    let (code, out, err) = config(&site, &daemon, &[]);
    assert_eq!(code, 9, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("state") && l.contains("failed (rev ")),
        "the report is printed: {out}"
    );
    assert!(
        out.contains("error    sip_profiles.test.ingress_sip_ip"),
        "{out}"
    );
    assert!(
        err.contains(&format!(
            "the host's configuration state is failed: rev {rev} is invalid"
        )),
        "{err}"
    );
    // The same status with the API's JSON.
    let (code, out, _) = config(&site, &daemon, &["-o", "json"]);
    assert_eq!(code, 9);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["state"],
        "failed"
    );
}

#[test]
fn settings_come_from_the_file_the_environment_and_flags() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(true, ""));
    std::fs::create_dir_all(site.path("xdg/ccnq")).unwrap();
    std::fs::write(site.path("token"), format!("{}\n", site.token)).unwrap();
    std::fs::write(
        site.path("xdg/ccnq/ccnqctl.toml"),
        format!(
            "endpoint = \"https://localhost:{}\"\nca = \"{}\"\ntoken_file = \"{}\"\n",
            daemon.addr.port(),
            site.path("ca.pem").display(),
            site.path("token").display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(ctl(&site).args(["status", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sbc1.example.net"));
    // The environment overrides the file: a bad endpoint now fails to connect.
    let (code, _, _) = run(ctl(&site)
        .env("CCNQ_ENDPOINT", "https://127.0.0.1:1")
        .arg("status"));
    assert_eq!(code, 3);
    // A flag overrides both.
    let (code, _, _) = run(ctl(&site)
        .env("CCNQ_ENDPOINT", "https://127.0.0.1:1")
        .args([
            "--endpoint",
            &format!("https://localhost:{}", daemon.addr.port()),
            "status",
        ]));
    assert_eq!(code, 0);
}

#[test]
fn a_self_signed_host_is_trusted_by_its_pinned_fingerprint() {
    let site = Site::new();
    let daemon = Daemon::start(&site.config(false, ""));
    let pem = std::fs::read_to_string(site.path("data/tls/server.crt")).unwrap();
    let fingerprint = ccnq_pki::fingerprint(&ccnq_pki::pem_to_der(&pem).unwrap());
    let endpoint = format!("https://127.0.0.1:{}", daemon.addr.port());
    let (code, out, err) = run(ctl(&site)
        .args([
            "--endpoint",
            &endpoint,
            "--server-fingerprint",
            &fingerprint,
        ])
        .arg("--cert")
        .arg(site.path("admin.crt"))
        .arg("--key")
        .arg(site.path("admin.key"))
        .arg("status"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sbc1.example.net"));
    let wrong = "00".repeat(32);
    let (code, _, err) = run(ctl(&site).args([
        "--endpoint",
        &endpoint,
        "--server-fingerprint",
        &wrong,
        "health",
    ]));
    assert_eq!(code, 3);
    assert!(err.contains("fingerprint"), "{err}");
}

#[test]
fn a_site_made_by_ccnqctl_pki_works_end_to_end() {
    let site = Site::new();
    let pki = site.path("pki");
    let (code, _, err) = run(ctl(&site).arg("pki").arg("init").arg(&pki).args([
        "--server-name",
        "localhost",
        "--server-name",
        "127.0.0.1",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(ctl(&site)
        .arg("pki")
        .arg("issue")
        .arg(&pki)
        .args(["--name", "nina", "--role", "reader"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(ctl(&site)
        .arg("pki")
        .arg("issue")
        .arg(&pki)
        .args(["--name", "eve", "--role", "root"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(ctl(&site)
        .arg("pki")
        .arg("init")
        .arg(&pki)
        .args(["--server-name", "localhost"]));
    assert_eq!(code, 2, "an existing CA is never replaced");
    let (code, token, toml) =
        run(ctl(&site).args(["token", "new", "--name", "cron", "--role", "operator"]));
    assert_eq!(code, 0);
    assert!(toml.contains(&ccnq_pki::token_hash(token.trim())));

    let config = format!(
        "host = \"sbc1.example.net\"\ndata_dir = \"{}\"\n[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}\n",
        site.path("data").display(),
        pki.join("ca.pem").display(),
        pki.join("server.crt").display(),
        pki.join("server.key").display(),
        toml.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"),
    );
    std::fs::write(site.path("made.toml"), config).unwrap();
    let daemon = Daemon::start(&site.path("made.toml"));
    let endpoint = format!("https://localhost:{}", daemon.addr.port());
    for who in ["admin", "nina"] {
        let (code, _, err) = run(ctl(&site)
            .args(["--endpoint", &endpoint])
            .arg("--ca")
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join(format!("{who}.crt")))
            .arg("--key")
            .arg(pki.join(format!("{who}.key")))
            .arg("version"));
        assert_eq!(code, 0, "{who}: {err}");
    }
    std::fs::write(site.path("cron.token"), token).unwrap();
    let (code, out, err) = run(ctl(&site)
        .args(["--endpoint", &endpoint])
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--token-file")
        .arg(site.path("cron.token"))
        .args(["log-level", "warn"]));
    assert_eq!((code, out.as_str()), (0, "warn\n"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let site = Site::new();
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(ctl(&site).args(["completions", shell]));
        assert_eq!(code, 0);
        assert!(out.contains("log-level"), "{shell}");
    }
    let (code, _, _) = run(ctl(&site).args(["completions", "cmd.exe"]));
    assert_eq!(code, 2);
}
