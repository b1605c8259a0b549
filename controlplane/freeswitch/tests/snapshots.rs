//! The rendered files, byte for byte, against checked-in snapshots under
//! `tests/snapshots/<case>/` (the spec's example and edge cases). Run with
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, then review the diff.

mod common;

use ccnq_freeswitch::render::{self, RenderedTree};
use common::{doc, host, rendering, spec_example};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn snapshot_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(case)
}

fn read_dir(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else {
        return;
    };
    for e in entries {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().expect("file type").is_dir() {
            read_dir(dir, &rel, out);
        } else {
            out.insert(rel, std::fs::read(e.path()).expect("read snapshot"));
        }
    }
}

/// Compare (or with UPDATE_SNAPSHOTS=1, rewrite) one case's files.
fn check(case: &str, tree: &RenderedTree) {
    let dir = snapshot_dir(case);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, bytes) in tree.iter() {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&file, bytes).expect("write snapshot");
        }
        return;
    }
    let mut expected = BTreeMap::new();
    read_dir(&dir, "", &mut expected);
    assert!(
        !expected.is_empty(),
        "no snapshot for {case}: run with UPDATE_SNAPSHOTS=1"
    );
    let got: BTreeMap<String, Vec<u8>> = tree
        .iter()
        .map(|(p, b)| (p.to_owned(), b.to_vec()))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{case}: set of files"
    );
    for (path, bytes) in &expected {
        assert!(
            got[path] == *bytes,
            "{case}/{path} differs from the snapshot:\n--- expected\n{}\n--- got\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&got[path])
        );
    }
}

#[test]
fn spec_example_renders_as_the_spec_says() {
    let h = host(&spec_example());
    let r = rendering(&h);
    check("spec-example", &r.tree);
    // What the spec says it renders.
    let parts = r.parts.expect("FreeSWITCH runs");
    let binds: Vec<(String, String)> = parts
        .profiles
        .iter()
        .map(|(n, p)| (n.clone(), p.bind.to_string()))
        .collect();
    assert_eq!(
        binds,
        [
            ("test-egress".to_owned(), "198.51.100.52:15200".to_owned()),
            ("test-ingress".to_owned(), "198.51.100.52:5200".to_owned())
        ]
    );
}

#[test]
fn empty_acl_denies_everyone() {
    let h = host(&doc(json!({
        "sip_profiles": { "closed": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060 } }
    })));
    let r = rendering(&h);
    check("empty-acl", &r.tree);
    let acl = std::str::from_utf8(r.tree.get(render::ACL_PATH).expect("acl file")).expect("utf-8");
    assert!(acl.contains("<list name=\"closed-ingress\" default=\"deny\">\n    </list>"));
    assert!(!acl.contains("type=\"allow\""));
}

#[test]
fn default_egress_port_and_context_handler() {
    let h = host(&doc(json!({
        "sip_profiles": { "carrier": {
            "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5080,
            "ingress_acl": ["203.0.113.0/24"],
            "handler": { "context": "from-carrier" },
            "inbound_codec": "PCMU,PCMA", "inbound_codec_negotiation": "greedy",
            "timer_t1": 500, "sip_trace": true
        } }
    })));
    let r = rendering(&h);
    check("default-egress-port", &r.tree);
    let parts = r.parts.expect("runs");
    assert_eq!(parts.profiles["carrier-egress"].bind.port(), 15080);
    // A context handler uses the context directly: no dialplan file.
    assert!(parts.profiles.values().all(|p| p.dialplan.is_none()));
}

#[test]
fn ipv6() {
    let h = host(&doc(json!({
        "interfaces": { "primary": { "ipv6": "2001:db8::10" } },
        "sip_profiles": { "v6": {
            "ingress_sip_ip": "2001:db8::10", "ingress_sip_port": 5060,
            "ingress_acl": ["2001:db8:1::/48", "2001:db8:2::1"],
            "egress_sip_ip": "2001:db8::11",
            "handler": { "socket": "[::1]:5702" }
        } }
    })));
    let r = rendering(&h);
    check("ipv6", &r.tree);
    // The socket application splits host and port at the last ':' and resolves the
    // host as written: no brackets.
    let dp = std::str::from_utf8(r.tree.get("dialplan/v6-ingress.xml").expect("dialplan"))
        .expect("utf-8");
    assert!(dp.contains("data=\"::1:5702 async full\""), "{dp}");
    // sofia's rtp-ip "auto" guesses IPv4 only: an IPv6 profile carries its own address.
    let sp = std::str::from_utf8(r.tree.get("sip_profiles/v6-egress.xml").expect("profile"))
        .expect("utf-8");
    assert!(
        sp.contains("<param name=\"rtp-ip\" value=\"2001:db8::11\"/>"),
        "{sp}"
    );
}

#[test]
fn many_profiles_with_variables_and_fixed_rtp_ip() {
    let h = host(&doc(json!({
        "rtp_ip": "192.0.2.99",
        "sip_variables": { "ccnq_region": "eu-west", "quote_ok": "it's" },
        "sip_profiles": {
            "a": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060, "ingress_acl": ["192.0.2.0/24"] },
            "b": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5062, "egress_sip_port": 5063,
                   "egress_acl": ["198.51.100.0/24", "203.0.113.7/32"], "handler": { "socket": "10.0.0.5:7000" } },
            "c": { "ingress_sip_ip": "192.0.2.11", "ingress_sip_port": 5060, "handler": { "context": "c-calls" },
                   "outbound_codec": "G722,PCMA", "timer_t2": 8000, "timer_t4": 9000 },
            "d": { "ingress_sip_ip": "2001:db8::20", "ingress_sip_port": 5070 }
        }
    })));
    let r = rendering(&h);
    check("many-profiles", &r.tree);
    assert_eq!(r.parts.expect("runs").profiles.len(), 8);
}

#[test]
fn disabled_profile_is_not_rendered() {
    let h = host(&doc(json!({
        "sip_profiles": {
            "on": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060 },
            "off": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5070, "disabled": true,
                     "ingress_acl": ["192.0.2.1"] }
        }
    })));
    let r = rendering(&h);
    check("disabled-profile", &r.tree);
    assert!(r
        .tree
        .iter()
        .all(|(p, b)| !p.contains("off-") && !String::from_utf8_lossy(b).contains("off-")));
}

#[test]
fn server_only_or_service_off_renders_nothing() {
    for fields in [
        json!({ "server_only": true }),
        json!({ "services": { "freeswitch": { "enabled": false } } }),
    ] {
        let mut d = spec_example();
        if let (Some(o), Some(f)) = (d.as_object_mut(), fields.as_object()) {
            o.extend(f.clone());
        }
        let r = rendering(&host(&d));
        assert!(r.tree.is_empty(), "{fields}");
        assert!(r.parts.is_none());
    }
}

#[test]
fn rendering_is_deterministic() {
    let h = host(&spec_example());
    assert_eq!(rendering(&h), rendering(&h));
}

#[test]
fn every_file_parses_as_xml_and_values_are_escaped() {
    assert_eq!(
        render::escape("a&b<c>d\"e'f"),
        "a&amp;b&lt;c&gt;d&quot;e&apos;f"
    );
    // The password is not from the document, so only the renderer can escape it.
    let s = ccnq_freeswitch::Secrets {
        event_socket_password: "p&<\"'>w".into(),
    };
    let r = render::render(&host(&spec_example()), &s).expect("renders");
    let es =
        std::str::from_utf8(r.tree.get(render::EVENT_SOCKET_PATH).expect("file")).expect("utf-8");
    let parsed = roxmltree_password(es);
    assert_eq!(parsed, "p&<\"'>w");
    for (path, bytes) in r.tree.iter() {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        assert!(text.contains("<include>"), "{path}");
    }
}

fn roxmltree_password(text: &str) -> String {
    let doc = roxmltree::Document::parse(text).expect("parses");
    doc.descendants()
        .find(|n| n.attribute("name") == Some("password"))
        .and_then(|n| n.attribute("value"))
        .expect("password param")
        .to_owned()
}

#[test]
fn expansion_in_a_secret_is_refused() {
    let s = ccnq_freeswitch::Secrets {
        event_socket_password: "x${y}".into(),
    };
    let err = render::render(&host(&spec_example()), &s).expect_err("refused");
    assert!(matches!(err, render::RenderError::Unsafe { .. }), "{err}");
    // A secret never appears in an error.
    assert!(!err.to_string().contains("x${y}"), "{err}");
}
