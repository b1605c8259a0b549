//! The one fault the real FreeSWITCH cannot be made to show on purpose, a `reloadxml`
//! that does not parse (the renderer never writes such files), injected with `esl-peer`,
//! the event-socket test double checked against the recordings of FreeSWITCH 1.11.2
//! (qa/esl-peer), run as the rig's unit in place of FreeSWITCH. The test says so in its
//! name.

use crate::rig::{host, loopback, sent, Peer, Rig};
use ccnq_testkit::freeswitch::free_port;
use ccnq_testkit::nspawn::container;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn esl_peer_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ccnqd")).with_file_name("esl-peer");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p ccnq-esl-peer; cargo test --workspace does)",
        bin.display()
    );
    bin
}

fn shared() -> PathBuf {
    std::env::var_os("CCNQ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The recorded parse error FreeSWITCH gave for a broken file (fixture 01e).
fn recorded_parse_error() -> String {
    let path = shared().join("fixtures/freeswitch-esl-apply/01e-reloadacl-broken-xml.rx");
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    let start = text
        .find("+OK [[error")
        .expect("a reloadxml parse error in 01e")
        + 5;
    let end = start + text[start..].find("]\n").unwrap();
    text[start..end].to_string()
}

impl Rig {
    /// Every `api`/`bgapi` command the double received.
    pub fn double_commands(&self) -> Vec<String> {
        let Peer::Double(dir) = &self.peer else {
            panic!("only the double keeps a command log")
        };
        std::fs::read_to_string(dir.join("commands.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["kind"] == "api" || e["kind"] == "bgapi")
            .map(|e| e["command"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Installs the double as `<name>.service`: it reads the installed sofia profiles and
/// logs every command. Returns its control directory, the unit and its event socket.
pub fn install_double(name: &str, data: &Path) -> (PathBuf, String, SocketAddr) {
    let c = container();
    let dir = c.var.join(format!("lib/{name}-peer"));
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::copy(esl_peer_bin(), dir.join("esl-peer")).unwrap();
    let esl = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let unit = format!("{name}.service");
    let inside = |p: &Path| c.inside(p).display().to_string();
    c.install(&[(
        unit.clone(),
        format!(
            "[Unit]\nDescription=ccnqd e2e: esl-peer, the event-socket double, for fault injection\n\
             ConditionPathExists=!{flag}\n\
             [Service]\nExecStart={bin} --listen {esl} --conf {conf} --local-ip {ip} \
             --ten-second-rule-ms 1000 --control {control} --log {log}\n\
             [Install]\nWantedBy=multi-user.target\n",
            flag = inside(&data.join("switched-off").join(&unit)),
            bin = inside(&dir.join("esl-peer")),
            conf = inside(&data.join("freeswitch")),
            ip = loopback(99),
            control = inside(&dir.join("control")),
            log = inside(&dir.join("commands.jsonl")),
        ),
    )]);
    (dir, unit, esl)
}

#[tokio::test]
async fn with_the_event_socket_double_a_reloadxml_parse_error_fails_and_the_files_roll_back() {
    // The renderer never writes a file FreeSWITCH cannot parse: the double says it did.
    let rig = Rig::with_double("parse").await;
    let ip = loopback(99);
    let good = rig.put(host(&ip, "198.51.100.54/32")).await;
    rig.until_applied(&good).await;
    let before = rig.file("sip_profiles/test-ingress.xml");
    let seen = rig.double_commands().len();

    let Peer::Double(dir) = &rig.peer else {
        unreachable!()
    };
    let error = recorded_parse_error();
    std::fs::write(dir.join("control/reloadxml-error-once"), &error).unwrap();
    let mut doc = host(&ip, "198.51.100.54/32");
    doc["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU");
    let rev = rig.put(doc).await;
    let config = rig.until_failed(&rev).await;
    assert!(
        config["reason"].as_str().unwrap().contains(&error),
        "{config:#}"
    );
    assert_eq!(config["applied"]["rev"], good["_rev"]);
    assert_eq!(
        rig.file("sip_profiles/test-ingress.xml"),
        before,
        "the good files are back"
    );
    // The failed reloadxml, then the rollback's: nothing else was sent.
    assert_eq!(sent(&config), ["reloadxml", "reloadxml"]);
    assert_eq!(rig.double_commands()[seen..], ["reloadxml", "reloadxml"]);
    let status = rig.status_of(&rev).await;
    assert_eq!(status["state"], "failed", "{status:#}");
    assert_eq!(status["applied"]["rev"], good["_rev"], "{status:#}");

    // The next valid revision is applied normally: settings only, so rescans.
    let mut next = host(&ip, "198.51.100.54/32");
    next["sip_profiles"]["test"]["inbound_codec"] = json!("PCMU,PCMA");
    let (_, planned) = rig.preview(&next).await;
    let next = rig.put(next).await;
    let config = rig.until_applied(&next).await;
    assert_eq!(sent(&config), planned);
    assert!(planned.iter().any(|c| c.ends_with("rescan")), "{planned:?}");
}
