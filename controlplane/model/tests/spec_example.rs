//! The contract's own example, read from the spec itself (not a copy), must validate and
//! normalize to what the spec says it renders.

use ccnq_model::{validate, CodecNegotiation, Handler, RtpIp, Side};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

fn shared_dir() -> PathBuf {
    match std::env::var_os("CCNQ_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The first ```json block of spec/host-document.md.
fn spec_example() -> serde_json::Value {
    let path = shared_dir().join("spec/host-document.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let start = text.find("```json\n").expect("the spec has a json example") + 8;
    let len = text[start..]
        .find("```")
        .expect("the json example is closed");
    serde_json::from_str(&text[start..start + len]).expect("the spec's example is JSON")
}

#[test]
fn spec_example_validates_and_renders_as_the_spec_says() {
    let doc = spec_example();
    let v = validate(&doc, "sbc1.example.net").expect("the spec's example is valid");
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    assert_eq!(v.rev, None);
    let host = &v.host;
    assert_eq!(host.host, "sbc1.example.net");
    assert_eq!(host.id(), "host:sbc1.example.net");
    assert!(host.freeswitch_runs());
    assert_eq!(
        host.image.as_ref().map(|i| i.version.as_str()),
        Some("2026.11.2")
    );
    assert_eq!(host.sip_domain_name.as_deref(), Some("a.phone.example.net"));
    assert_eq!(host.rtp_ip, RtpIp::Auto);
    assert_eq!(
        host.interfaces["primary"].ipv4,
        Some("198.51.100.52".parse().unwrap())
    );

    let rendered: Vec<(String, SocketAddr, Vec<String>)> = host
        .sofia_profiles()
        .map(|p| {
            (
                p.name.clone(),
                p.bind(),
                p.acl.networks().iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rendered,
        vec![
            (
                "test-ingress".to_owned(),
                "198.51.100.52:5200".parse().unwrap(),
                vec!["198.51.100.53/32".to_owned()]
            ),
            (
                "test-egress".to_owned(),
                "198.51.100.52:15200".parse().unwrap(),
                vec!["198.51.100.52/32".to_owned()]
            ),
        ]
    );
    let sides: Vec<Side> = host.sofia_profiles().map(|p| p.side).collect();
    assert_eq!(sides, [Side::Ingress, Side::Egress]);

    // Every spec default is concrete in the model.
    let p = &host.sip_profiles["test"];
    assert_eq!(p.egress_sip_ip, "198.51.100.52".parse::<IpAddr>().unwrap());
    assert_eq!(
        p.handler,
        Handler::Socket {
            host: "127.0.0.1".into(),
            port: 5702
        }
    );
    assert_eq!(p.inbound_codec, "PCMA");
    assert_eq!(p.outbound_codec, "PCMA");
    assert_eq!(p.inbound_codec_negotiation, CodecNegotiation::Scrooge);
    assert_eq!((p.timer_t1, p.timer_t2, p.timer_t4), (250, 4000, 5000));
    assert_eq!(p.timer_t1x64(), 16000);
    assert!(!p.sip_trace && !p.disabled);

    let traces = host.traces.as_ref().expect("traces are set");
    assert_eq!(traces.interfaces, ["eth0"]);
    assert_eq!((traces.filesize, traces.ringsize), (10000, 50));
    assert_eq!(traces.filter, None);
}

#[test]
fn spec_example_is_for_its_own_host_only() {
    let errors = validate(&spec_example(), "sbc2.example.net").unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["host: \"sbc1.example.net\" is not this host, which is \"sbc2.example.net\""]
    );
}

#[test]
fn normalized_model_serializes_to_a_document_that_validates_to_itself() {
    let v = validate(&spec_example(), "sbc1.example.net").unwrap();
    let stored = serde_json::to_value(&v.host).unwrap();
    assert_eq!(stored["_id"], "host:sbc1.example.net");
    assert_eq!(stored["type"], "host");
    assert_eq!(stored["sip_profiles"]["test"]["egress_sip_port"], 15200);
    assert_eq!(
        stored["sip_profiles"]["test"]["handler"],
        serde_json::json!({"socket": "127.0.0.1:5702"})
    );
    let again = validate(&stored, "sbc1.example.net").unwrap();
    assert_eq!(again.host, v.host);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}
