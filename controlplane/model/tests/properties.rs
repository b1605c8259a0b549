//! Properties over generated documents: any valid document validates to a model that
//! carries its values and the spec's defaults, and the stored form of that model (its
//! serialization) validates back to the very same model. Injection tokens placed
//! anywhere in a FreeSWITCH-bound value are always refused.

use ccnq_model::{validate, Handler};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

const LABEL: &str = "[a-z]([a-z0-9-]{0,8}[a-z0-9])?";

fn fqdn() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{LABEL}(\\.{LABEL}){{0,3}}")).unwrap()
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

fn cidr() -> impl Strategy<Value = String> {
    any::<IpAddr>().prop_flat_map(|ip| {
        let max = if ip.is_ipv4() { 32u8 } else { 128 };
        prop_oneof![
            Just(ip.to_string()),
            (0..=max).prop_map(move |p| format!("{ip}/{p}"))
        ]
    })
}

fn handler() -> impl Strategy<Value = Value> {
    prop_oneof![
        (any::<IpAddr>(), 1..=65535u16)
            .prop_map(|(ip, port)| { json!({ "socket": SocketAddr::new(ip, port).to_string() }) }),
        (fqdn(), 1..=65535u16).prop_map(|(h, port)| json!({ "socket": format!("{h}:{port}") })),
        name().prop_map(|c| json!({ "context": c })),
    ]
}

/// Insert `value` under `key` when present, so absent fields exercise the defaults.
fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.to_owned(), v);
    }
}

prop_compose! {
    fn profile()(
        ingress_ip in any::<IpAddr>(),
        ingress_port in 1..=55535u16,
        ingress_acl in proptest::option::of(proptest::collection::vec(cidr(), 0..4)),
        egress_ip in proptest::option::of(any::<IpAddr>()),
        egress_port in proptest::option::of(1..=65535u16),
        egress_acl in proptest::option::of(proptest::collection::vec(cidr(), 0..4)),
        handler in proptest::option::of(handler()),
        inbound_codec in proptest::option::of("[A-Za-z0-9_.@,-]{1,20}"),
        outbound_codec in proptest::option::of("[A-Za-z0-9_.@,-]{1,20}"),
        negotiation in proptest::option::of(prop_oneof![Just("generous"), Just("greedy"), Just("scrooge")]),
        timers in proptest::collection::vec(proptest::option::of(1..=3_600_000u32), 3),
        sip_trace in proptest::option::of(any::<bool>()),
        disabled in proptest::option::of(any::<bool>()),
    ) -> Value {
        let mut m = Map::new();
        m.insert("ingress_sip_ip".into(), json!(ingress_ip.to_string()));
        m.insert("ingress_sip_port".into(), json!(ingress_port));
        put(&mut m, "ingress_acl", ingress_acl.map(|a| json!(a)));
        put(&mut m, "egress_sip_ip", egress_ip.map(|ip| json!(ip.to_string())));
        put(&mut m, "egress_sip_port", egress_port.map(|p| json!(p)));
        put(&mut m, "egress_acl", egress_acl.map(|a| json!(a)));
        put(&mut m, "handler", handler);
        put(&mut m, "inbound_codec", inbound_codec.map(|c| json!(c)));
        put(&mut m, "outbound_codec", outbound_codec.map(|c| json!(c)));
        put(&mut m, "inbound_codec_negotiation", negotiation.map(|n| json!(n)));
        put(&mut m, "timer_t1", timers[0].map(|t| json!(t)));
        put(&mut m, "timer_t2", timers[1].map(|t| json!(t)));
        put(&mut m, "timer_t4", timers[2].map(|t| json!(t)));
        put(&mut m, "sip_trace", sip_trace.map(|b| json!(b)));
        put(&mut m, "disabled", disabled.map(|b| json!(b)));
        Value::Object(m)
    }
}

prop_compose! {
    fn document()(
        fqdn in fqdn(),
        version in proptest::option::of("[A-Za-z0-9]([A-Za-z0-9_+~-]{0,5}\\.[A-Za-z0-9]){0,3}[A-Za-z0-9_+~-]{0,4}"),
        server_only in proptest::option::of(any::<bool>()),
        services in proptest::option::of((proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()))),
        interfaces in proptest::collection::btree_map(
            name(),
            (proptest::option::of(any::<std::net::Ipv4Addr>()), proptest::option::of(any::<std::net::Ipv6Addr>())),
            0..3,
        ),
        domain in proptest::option::of(fqdn()),
        rtp_ip in proptest::option::of(prop_oneof![Just("auto".to_owned()), any::<IpAddr>().prop_map(|ip| ip.to_string())]),
        variables in proptest::collection::btree_map(name(), "[^<>&\"$\\p{Cc}]{0,30}", 0..4),
        profiles in proptest::collection::btree_map(name(), profile(), 0..4),
        traces in proptest::option::of((
            proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}", 1..3),
            1..=u32::MAX,
            1..=u32::MAX,
            proptest::option::of("[ -~]{0,40}[!-~]"),
        )),
    ) -> (String, Value) {
        let mut m = Map::new();
        m.insert("_id".into(), json!(format!("host:{fqdn}")));
        m.insert("_rev".into(), json!("1-generated"));
        m.insert("type".into(), json!("host"));
        m.insert("host".into(), json!(fqdn));
        put(&mut m, "image", version.map(|v| json!({ "version": v })));
        put(&mut m, "server_only", server_only.map(|b| json!(b)));
        put(&mut m, "services", services.map(|(fs, couch)| {
            let mut s = Map::new();
            put(&mut s, "freeswitch", fs.map(|e| json!({ "enabled": e })));
            put(&mut s, "couchdb", couch.map(|e| json!({ "enabled": e })));
            Value::Object(s)
        }));
        let interfaces: Map<String, Value> = interfaces
            .into_iter()
            .map(|(k, (v4, v6))| {
                let mut i = Map::new();
                put(&mut i, "ipv4", v4.map(|a| json!(a.to_string())));
                put(&mut i, "ipv6", v6.map(|a| json!(a.to_string())));
                (k, Value::Object(i))
            })
            .collect();
        m.insert("interfaces".into(), Value::Object(interfaces));
        // Always present: whether it is required depends on the switches, tested elsewhere.
        m.insert("sip_domain_name".into(), json!(domain.unwrap_or_else(|| fqdn.clone())));
        put(&mut m, "rtp_ip", rtp_ip.map(|r| json!(r)));
        m.insert("sip_variables".into(), json!(variables));
        m.insert("sip_profiles".into(), json!(profiles));
        put(&mut m, "traces", traces.map(|(ifs, filesize, ringsize, filter)| {
            let mut t = Map::new();
            t.insert("interfaces".into(), json!(ifs));
            t.insert("filesize".into(), json!(filesize));
            t.insert("ringsize".into(), json!(ringsize));
            put(&mut t, "filter", filter.map(|f| json!(f)));
            Value::Object(t)
        }));
        (fqdn, Value::Object(m))
    }
}

/// The document's binds, worked out here independently of the crate: none shared, and
/// no two profile names equal but for case. Interface names "." and ".." are the
/// generator's only other way to produce an invalid document.
fn generated_valid(doc: &Value) -> bool {
    let profiles = doc["sip_profiles"].as_object().unwrap();
    let lower: BTreeSet<String> = profiles.keys().map(|k| k.to_ascii_lowercase()).collect();
    if lower.len() != profiles.len() {
        return false;
    }
    let mut binds = BTreeSet::new();
    for p in profiles.values() {
        if p["disabled"] == json!(true) {
            continue;
        }
        let ip = p["ingress_sip_ip"].as_str().unwrap();
        let port = p["ingress_sip_port"].as_u64().unwrap();
        let eip = p["egress_sip_ip"].as_str().unwrap_or(ip);
        let eport = p["egress_sip_port"].as_u64().unwrap_or(port + 10000);
        let a: IpAddr = ip.parse().unwrap();
        let b: IpAddr = eip.parse().unwrap();
        if !binds.insert((a, port)) || !binds.insert((b, eport)) {
            return false;
        }
    }
    let ifs = doc["traces"]["interfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    !ifs.iter().any(|i| i == "." || i == "..")
}

proptest! {
    #[test]
    fn valid_documents_validate_and_round_trip((fqdn, doc) in document().prop_filter("binds must be distinct", |(_, d)| generated_valid(d))) {
        let v = match validate(&doc, &fqdn) {
            Ok(v) => v,
            Err(e) => return Err(TestCaseError::fail(format!("{e:#?}\n{doc:#}"))),
        };
        prop_assert_eq!(v.rev.as_deref(), Some("1-generated"));
        prop_assert_eq!(&v.host.host, &fqdn);

        // Values given are kept; absent ones take the spec's defaults.
        let given = doc["sip_profiles"].as_object().unwrap();
        prop_assert_eq!(v.host.sip_profiles.len(), given.len());
        for (name, p) in given {
            let m = &v.host.sip_profiles[name];
            let ip: IpAddr = p["ingress_sip_ip"].as_str().unwrap().parse().unwrap();
            let port = p["ingress_sip_port"].as_u64().unwrap() as u16;
            prop_assert_eq!(m.ingress_sip_ip, ip);
            prop_assert_eq!(m.ingress_sip_port, port);
            prop_assert_eq!(m.egress_sip_ip, p.get("egress_sip_ip").map_or(ip, |e| e.as_str().unwrap().parse().unwrap()));
            prop_assert_eq!(u64::from(m.egress_sip_port), p.get("egress_sip_port").map_or(u64::from(port) + 10000, |e| e.as_u64().unwrap()));
            prop_assert_eq!(&m.inbound_codec, p.get("inbound_codec").map_or("PCMA", |c| c.as_str().unwrap()));
            prop_assert_eq!(m.timer_t1, p.get("timer_t1").map_or(250, |t| t.as_u64().unwrap() as u32));
            prop_assert_eq!(m.disabled, p.get("disabled") == Some(&json!(true)));
            if p.get("handler").is_none() {
                prop_assert_eq!(&m.handler, &Handler::Socket { host: "127.0.0.1".into(), port: 5702 });
            }
            prop_assert_eq!(m.ingress_acl.networks().len(), p.get("ingress_acl").map_or(0, |a| a.as_array().unwrap().len()));
        }
        let enabled = given.values().filter(|p| p["disabled"] != json!(true)).count();
        prop_assert_eq!(v.host.sofia_profiles().count(), 2 * enabled);

        // What the daemon stores validates back to the same model, without remarks.
        let stored = serde_json::to_value(&v.host).unwrap();
        let again = match validate(&stored, &fqdn) {
            Ok(a) => a,
            Err(e) => return Err(TestCaseError::fail(format!("{e:#?}\n{stored:#}"))),
        };
        prop_assert_eq!(&again.host, &v.host);
        prop_assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    }

    #[test]
    fn injection_tokens_are_refused_wherever_they_sit(
        (fqdn, mut doc) in document().prop_filter("binds must be distinct", |(_, d)| generated_valid(d)),
        prefix in "[a-z ]{0,5}",
        token in prop_oneof![Just("$${"), Just("${"), Just("<"), Just(">"), Just("&"), Just("\""), Just("\n"), Just("\r"), Just("\u{1}"), Just("\u{7f}")],
        suffix in "[a-z }]{0,5}",
    ) {
        doc["sip_variables"]["injected"] = json!(format!("{prefix}{token}{suffix}"));
        let errors = validate(&doc, &fqdn).unwrap_err();
        let paths: BTreeMap<&str, usize> = errors.iter().fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.path.as_str()).or_default() += 1;
            m
        });
        prop_assert_eq!(paths, BTreeMap::from([("sip_variables.injected", 1)]));
    }
}
