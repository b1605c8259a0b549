//! One test per validation rule, each naming the exact path and reason an operator sees,
//! plus the behaviours around them: all problems at once, warnings for unknown fields,
//! IPv6, empty ACLs, defaults that overflow, disabled profiles.

use ccnq_model::{is_deleted, validate, Handler, Host, DELETED_PATH};
use serde_json::{json, Value};

const FQDN: &str = "sbc1.example.net";

/// A valid document close to the spec's example, to be broken one field at a time.
fn base() -> Value {
    json!({
        "_id": "host:sbc1.example.net",
        "_rev": "3-abc",
        "type": "host",
        "host": "sbc1.example.net",
        "interfaces": { "primary": { "ipv4": "198.51.100.52" } },
        "sip_domain_name": "a.phone.example.net",
        "sip_profiles": {
            "test": {
                "ingress_sip_ip": "198.51.100.52",
                "ingress_sip_port": 5200,
                "ingress_acl": ["198.51.100.53/32"],
                "egress_acl": ["198.51.100.52/32"]
            }
        }
    })
}

/// Apply `edit` to the base document and return its errors as displayed.
fn errors_after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = base();
    edit(&mut doc);
    match validate(&doc, FQDN) {
        Ok(v) => panic!("accepted: {:#?}", v.host),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn host_after(edit: impl FnOnce(&mut Value)) -> Host {
    let mut doc = base();
    edit(&mut doc);
    match validate(&doc, FQDN) {
        Ok(v) => v.host,
        Err(errors) => panic!("rejected: {errors:#?}"),
    }
}

fn profile(doc: &mut Value) -> &mut Value {
    &mut doc["sip_profiles"]["test"]
}

#[test]
fn base_is_valid_and_keeps_its_rev() {
    let v = validate(&base(), FQDN).unwrap();
    assert_eq!(v.rev.as_deref(), Some("3-abc"));
    assert!(v.warnings.is_empty());
}

#[test]
fn invalid_cidr() {
    assert_eq!(
        errors_after(|d| profile(d)["ingress_acl"] = json!(["10.0.0.0/8", "10.0.0.0/33"])),
        ["sip_profiles.test.ingress_acl[1]: invalid CIDR \"10.0.0.0/33\": prefix length above 32"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["egress_acl"] = json!(["2001:db8::/200", 7])),
        [
            "sip_profiles.test.egress_acl[0]: invalid CIDR \"2001:db8::/200\": prefix length above 128",
            "sip_profiles.test.egress_acl[1]: expected a string, got a number",
        ]
    );
    assert_eq!(
        errors_after(|d| profile(d)["ingress_acl"] = json!("10.0.0.0/8")),
        ["sip_profiles.test.ingress_acl: expected a list of CIDRs, got a string"]
    );
}

#[test]
fn invalid_ip() {
    assert_eq!(
        errors_after(|d| profile(d)["ingress_sip_ip"] = json!("198.51.100.300")),
        ["sip_profiles.test.ingress_sip_ip: invalid IP address \"198.51.100.300\""]
    );
    assert_eq!(
        errors_after(|d| profile(d)["egress_sip_ip"] = json!("sbc1.example.net")),
        ["sip_profiles.test.egress_sip_ip: invalid IP address \"sbc1.example.net\""]
    );
    assert_eq!(
        errors_after(|d| d["interfaces"]["primary"]["ipv4"] = json!("2001:db8::1")),
        ["interfaces.primary.ipv4: expected an IPv4 address, got 2001:db8::1"]
    );
    assert_eq!(
        errors_after(|d| d["rtp_ip"] = json!("eth0")),
        ["rtp_ip: expected \"auto\" or an IP address, got \"eth0\""]
    );
}

#[test]
fn port_out_of_range() {
    assert_eq!(
        errors_after(|d| profile(d)["ingress_sip_port"] = json!(0)),
        ["sip_profiles.test.ingress_sip_port: port 0 is out of range 1..=65535"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["egress_sip_port"] = json!(65536)),
        ["sip_profiles.test.egress_sip_port: port 65536 is out of range 1..=65535"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["egress_sip_port"] = json!(-1)),
        ["sip_profiles.test.egress_sip_port: port -1 is out of range 1..=65535"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["ingress_sip_port"] = json!("5060")),
        ["sip_profiles.test.ingress_sip_port: expected an integer, got a string"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["ingress_sip_port"] = json!(5060.5)),
        ["sip_profiles.test.ingress_sip_port: expected an integer, got 5060.5"]
    );
}

#[test]
fn default_egress_port_overflow_names_egress_sip_port() {
    assert_eq!(
        errors_after(|d| profile(d)["ingress_sip_port"] = json!(60000)),
        ["sip_profiles.test.egress_sip_port: the default egress port, ingress_sip_port + 10000 = 70000, is out of range 1..=65535: set egress_sip_port"]
    );
    // The highest ingress port whose default still fits, and an explicit egress port
    // rescuing a high ingress port.
    assert_eq!(
        host_after(|d| profile(d)["ingress_sip_port"] = json!(55535)).sip_profiles["test"]
            .egress_sip_port,
        65535
    );
    let p = host_after(|d| {
        profile(d)["ingress_sip_port"] = json!(60000);
        profile(d)["egress_sip_port"] = json!(60001);
    });
    assert_eq!(p.sip_profiles["test"].egress_sip_port, 60001);
}

#[test]
fn duplicate_bind_across_entries_and_sides() {
    // Another entry's ingress on this entry's default egress address.
    assert_eq!(
        errors_after(|d| {
            d["sip_profiles"]["other"] =
                json!({ "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 15200 });
        }),
        ["sip_profiles.test.egress_sip_port: test-egress would bind 198.51.100.52:15200, already bound by other-ingress (egress_sip_port defaults to ingress_sip_port + 10000)"]
    );
    // One entry's egress explicitly on its own ingress.
    assert_eq!(
        errors_after(|d| profile(d)["egress_sip_port"] = json!(5200)),
        ["sip_profiles.test.egress_sip_port: test-egress would bind 198.51.100.52:5200, already bound by test-ingress"]
    );
    // Same port on another address is fine.
    let h = host_after(|d| {
        d["sip_profiles"]["other"] =
            json!({ "ingress_sip_ip": "198.51.100.54", "ingress_sip_port": 5200 });
    });
    assert_eq!(h.sofia_profiles().count(), 4);
}

#[test]
fn disabled_profile_binds_nothing_and_is_not_rendered() {
    let h = host_after(|d| {
        d["sip_profiles"]["old"] = json!({
            "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 5200, "disabled": true
        });
    });
    assert!(h.sip_profiles["old"].disabled);
    let names: Vec<String> = h.sofia_profiles().map(|p| p.name).collect();
    assert_eq!(names, ["test-ingress", "test-egress"]);
    // The same entry enabled conflicts, which shows the exclusion above is what let it pass.
    assert_eq!(
        errors_after(|d| {
            d["sip_profiles"]["old"] =
                json!({ "ingress_sip_ip": "198.51.100.52", "ingress_sip_port": 5200 });
        }),
        [
            "sip_profiles.test.ingress_sip_port: test-ingress would bind 198.51.100.52:5200, already bound by old-ingress",
            "sip_profiles.test.egress_sip_port: test-egress would bind 198.51.100.52:15200, already bound by old-egress (egress_sip_port defaults to ingress_sip_port + 10000)",
        ]
    );
}

#[test]
fn host_disagreeing_with_id() {
    assert_eq!(
        errors_after(|d| d["_id"] = json!("host:sbc2.example.net")),
        ["host: \"sbc1.example.net\" disagrees with _id \"host:sbc2.example.net\""]
    );
    assert_eq!(
        errors_after(|d| d["_id"] = json!("sbc1.example.net")),
        ["_id: expected \"host:<fqdn>\", got \"sbc1.example.net\""]
    );
    assert_eq!(
        errors_after(|d| d.as_object_mut().unwrap().remove("_id").map(drop).unwrap()),
        ["_id: required field is missing"]
    );
}

#[test]
fn type_must_be_host() {
    assert_eq!(
        errors_after(|d| d["type"] = json!("status")),
        ["type: expected \"host\", got \"status\""]
    );
    assert_eq!(
        errors_after(|d| d.as_object_mut().unwrap().remove("type").map(drop).unwrap()),
        ["type: required field is missing"]
    );
}

#[test]
fn host_must_be_this_host() {
    let doc = base();
    let shown: Vec<String> = validate(&doc, "sbc2.example.net")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        ["host: \"sbc1.example.net\" is not this host, which is \"sbc2.example.net\""]
    );
    // Host names compare without regard to case.
    assert!(validate(&doc, "SBC1.Example.NET").is_ok());
    assert_eq!(
        errors_after(|d| {
            d["host"] = json!("sbc1.example.net\nX");
            d["_id"] = json!("host:sbc1.example.net\nX");
        }),
        ["host: \"sbc1.example.net\\nX\" contains a line break"]
    );
}

#[test]
fn unknown_handler_form() {
    assert_eq!(
        errors_after(|d| profile(d)["handler"] = json!({ "lua": "route.lua" })),
        ["sip_profiles.test.handler: unknown handler form: expected {\"socket\": \"host:port\"} or {\"context\": \"name\"}, got an object with fields \"lua\""]
    );
    assert_eq!(
        errors_after(|d| profile(d)["handler"] = json!("127.0.0.1:5702")),
        ["sip_profiles.test.handler: unknown handler form: expected {\"socket\": \"host:port\"} or {\"context\": \"name\"}, got a string"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["handler"] = json!({ "socket": "127.0.0.1:5702", "context": "x" })),
        ["sip_profiles.test.handler: both socket and context given: a handler is one or the other"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["handler"] = json!({ "socket": "127.0.0.1" })),
        ["sip_profiles.test.handler.socket: invalid socket \"127.0.0.1\": expected \"host:port\" (IPv6 as \"[address]:port\")"]
    );
    assert_eq!(
        errors_after(|d| profile(d)["handler"] = json!({ "context": "de fault" })),
        ["sip_profiles.test.handler.context: invalid context name: \"de fault\" contains ' ': names allow only A-Z, a-z, 0-9, '_', '.' and '-'"]
    );
    let h = host_after(|d| profile(d)["handler"] = json!({ "context": "default" }));
    assert_eq!(
        h.sip_profiles["test"].handler,
        Handler::Context("default".into())
    );
    let h = host_after(|d| profile(d)["handler"] = json!({ "socket": "[2001:db8::5]:5702" }));
    let handler = &h.sip_profiles["test"].handler;
    assert_eq!(
        handler,
        &Handler::Socket {
            host: "2001:db8::5".into(),
            port: 5702
        }
    );
    assert_eq!(
        handler.socket_target().as_deref(),
        Some("[2001:db8::5]:5702")
    );
}

#[test]
fn sip_domain_name_required_when_freeswitch_runs() {
    let missing = ["sip_domain_name: required when FreeSWITCH runs (server_only is false and services.freeswitch.enabled is not false)"];
    let drop_domain = |d: &mut Value| {
        d.as_object_mut().unwrap().remove("sip_domain_name");
    };
    assert_eq!(errors_after(drop_domain), missing);
    assert_eq!(
        errors_after(|d| {
            drop_domain(d);
            d["services"] = json!({ "freeswitch": { "enabled": true } });
        }),
        missing
    );
    let h = host_after(|d| {
        drop_domain(d);
        d["server_only"] = json!(true);
    });
    assert!(!h.freeswitch_runs());
    let h = host_after(|d| {
        drop_domain(d);
        d["services"] = json!({ "freeswitch": { "enabled": false } });
    });
    assert!(!h.freeswitch_runs());
    assert!(h.services.couchdb.enabled);
}

/// A change made to the base document.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn injection_into_freeswitch_xml_is_rejected() {
    let cases: [(&str, Edit, &str); 9] = [
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "$${hostname}" })),
            "\"$${hostname}\" contains \"$${\", which FreeSWITCH would expand as a global variable",
        ),
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "a${system(rm)}" })),
            "\"a${system(rm)}\" contains \"${\", which FreeSWITCH would expand as a channel variable",
        ),
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "a\"/><action application=\"bridge\"" })),
            "\"a\\\"/><action application=\\\"bridge\\\"\" contains '\"', which is not allowed in a value written to FreeSWITCH's XML",
        ),
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "a & b" })),
            "\"a & b\" contains '&', which is not allowed in a value written to FreeSWITCH's XML",
        ),
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "one\ntwo" })),
            "\"one\\ntwo\" contains a line break",
        ),
        (
            "sip_variables.x",
            Box::new(|d| d["sip_variables"] = json!({ "x": "bell\u{7}" })),
            "\"bell\\u{7}\" contains the control character U+0007",
        ),
        (
            "sip_profiles.test.inbound_codec",
            Box::new(|d| profile(d)["inbound_codec"] = json!("PCMA<x>")),
            "\"PCMA<x>\" contains '<', which is not allowed in a value written to FreeSWITCH's XML",
        ),
        (
            "sip_profiles.test.outbound_codec",
            Box::new(|d| profile(d)["outbound_codec"] = json!("PCMA PCMU")),
            "\"PCMA PCMU\" contains ' ': codec lists allow only A-Z, a-z, 0-9, '_', '.', '@', ',' and '-'",
        ),
        (
            "sip_domain_name",
            Box::new(|d| d["sip_domain_name"] = json!("a.example>")),
            "\"a.example>\" contains '>', which is not allowed in a value written to FreeSWITCH's XML",
        ),
    ];
    for (path, edit, reason) in cases {
        assert_eq!(errors_after(edit), [format!("{path}: {reason}")]);
    }
}

#[test]
fn profile_and_variable_names_use_a_strict_charset() {
    assert_eq!(
        errors_after(|d| {
            let p = d["sip_profiles"]["test"].take();
            d["sip_profiles"] = json!({ "te st": p });
        }),
        ["sip_profiles[\"te st\"]: invalid profile name: \"te st\" contains ' ': names allow only A-Z, a-z, 0-9, '_', '.' and '-'"]
    );
    assert_eq!(
        errors_after(|d| {
            let p = d["sip_profiles"]["test"].take();
            d["sip_profiles"] = json!({ "${x}": p });
        }),
        ["sip_profiles[\"${x}\"]: invalid profile name: \"${x}\" contains \"${\", which FreeSWITCH would expand as a channel variable"]
    );
    assert_eq!(
        errors_after(|d| {
            let p = d["sip_profiles"]["test"].take();
            d["sip_profiles"] = json!({ "-x": p });
        }),
        ["sip_profiles.-x: invalid profile name: \"-x\" must start with a letter, a digit or '_'"]
    );
    let long = "p".repeat(65);
    assert_eq!(
        errors_after(|d| {
            let p = d["sip_profiles"]["test"].take();
            d["sip_profiles"] = json!({ long.clone(): p });
        }),
        // The name is quoted cut short, so a huge key cannot flood the report.
        [format!(
            "sip_profiles.{long}: invalid profile name: \"{}\"… is longer than 64 characters",
            &long[..64]
        )]
    );
    assert_eq!(
        errors_after(|d| d["sip_variables"] = json!({ "": "x" })),
        ["sip_variables[\"\"]: invalid variable name: empty name"]
    );
    assert_eq!(
        errors_after(|d| d["sip_variables"] = json!({ "a=b": "x" })),
        ["sip_variables[\"a=b\"]: invalid variable name: \"a=b\" contains '=': names allow only A-Z, a-z, 0-9, '_', '.' and '-'"]
    );
    assert_eq!(
        errors_after(|d| {
            d["sip_profiles"]["Test"] =
                json!({ "ingress_sip_ip": "198.51.100.60", "ingress_sip_port": 5060 });
        }),
        ["sip_profiles.test: profile name \"test\" differs from \"Test\" only in case"]
    );
    let h = host_after(|d| d["sip_variables"] = json!({ "ext_ip.v4-x_1": "203.0.113.5" }));
    assert_eq!(h.sip_variables["ext_ip.v4-x_1"], "203.0.113.5");
}

#[test]
fn traces_are_checked() {
    assert_eq!(
        errors_after(|d| d["traces"] = json!({
            "interfaces": ["eth0", "eth 1", "averyverylongname0"],
            "filesize": 0,
            "ringsize": -3,
            "filter": "udp\nport 5060",
        })),
        [
            "traces.interfaces[1]: \"eth 1\" contains ' ': interface names allow only A-Z, a-z, 0-9, '_', '.' and '-'",
            "traces.interfaces[2]: \"averyverylongname0\" is longer than 15 characters, the Linux limit",
            "traces.filesize: filesize 0 is out of range 1..=4294967295",
            "traces.ringsize: ringsize -3 is out of range 1..=4294967295",
            "traces.filter: \"udp\\nport 5060\" contains the control character U+000A",
        ]
    );
    assert_eq!(
        errors_after(
            |d| d["traces"] = json!({ "interfaces": [], "filesize": 1, "ringsize": 1, "filter": "x".repeat(1025) })
        ),
        [
            "traces.interfaces: no interface: name at least one (\"any\" for all)",
            "traces.filter: filter is 1025 characters long, more than 1024",
        ]
    );
    assert_eq!(
        errors_after(|d| d["traces"] = json!({ "interfaces": ["any"] })),
        [
            "traces.filesize: required field is missing",
            "traces.ringsize: required field is missing"
        ]
    );
    let h = host_after(
        |d| d["traces"] = json!({ "interfaces": ["any"], "filesize": 1, "ringsize": 2, "filter": "udp port 5060 && len > 100" }),
    );
    assert_eq!(
        h.traces.unwrap().filter.as_deref(),
        Some("udp port 5060 && len > 100")
    );
}

#[test]
fn image_version_is_checked() {
    assert_eq!(
        errors_after(|d| d["image"] = json!({ "version": "../../etc/passwd" })),
        ["image.version: \"../../etc/passwd\" contains '/': versions allow only A-Z, a-z, 0-9, '.', '_', '+', '~' and '-'"]
    );
    assert_eq!(
        errors_after(|d| d["image"] = json!({ "version": "" })),
        ["image.version: empty version"]
    );
    assert_eq!(
        errors_after(|d| d["image"] = json!({})),
        ["image.version: required field is missing"]
    );
    assert_eq!(
        errors_after(|d| d["image"] = json!("2026.11.2")),
        ["image: expected an object, got a string"]
    );
}

#[test]
fn image_hold_defaults_to_false_and_must_be_a_boolean() {
    let h = host_after(|d| d["image"] = json!({ "version": "2026.12.1" }));
    assert!(!h.image.as_ref().unwrap().hold);
    let h = host_after(|d| d["image"] = json!({ "version": "2026.12.1", "hold": true }));
    assert_eq!(h.image.as_ref().unwrap().version, "2026.12.1");
    assert!(h.image.as_ref().unwrap().hold);
    // A null reads as absent, as everywhere in the document.
    let h = host_after(|d| d["image"] = json!({ "version": "2026.12.1", "hold": null }));
    assert!(!h.image.unwrap().hold);
    assert_eq!(
        errors_after(|d| d["image"] = json!({ "version": "2026.12.1", "hold": "yes" })),
        ["image.hold: expected true or false, got a string"]
    );
    // Both problems of the object at once: one never hides the other.
    assert_eq!(
        errors_after(|d| d["image"] = json!({ "hold": 1 })),
        [
            "image.version: required field is missing",
            "image.hold: expected true or false, got a number"
        ]
    );
}

#[test]
fn image_window_is_read_with_its_days_and_each_bad_part_is_named() {
    let h = host_after(|d| {
        d["image"] = json!({ "version": "2", "window": { "start": "22:00", "end": "02:00", "days": ["fri"] } })
    });
    let w = h.image.unwrap().window.unwrap();
    assert_eq!((w.start, w.end), (22 * 60, 2 * 60));
    assert!(w.contains(4, 23 * 60) && w.contains(5, 60) && !w.contains(5, 23 * 60));
    let h = host_after(|d| {
        d["image"] = json!({ "version": "2", "window": { "start": "02:00", "end": "05:00" } })
    });
    assert_eq!(h.image.unwrap().window.unwrap().days, [true; 7]);
    assert_eq!(
        errors_after(|d| {
            d["image"] = json!({ "version": "2", "window": { "start": "25:00", "days": ["friday", 3] } })
        }),
        [
            "image.window.start: expected a time \"HH:MM\" (UTC, 00:00 to 23:59), got \"25:00\"",
            "image.window.end: required field is missing",
            "image.window.days[0]: expected one of mon, tue, wed, thu, fri, sat, sun, got \"friday\"",
            "image.window.days[1]: expected a string, got a number"
        ]
    );
    assert_eq!(
        errors_after(
            |d| d["image"] = json!({ "version": "2", "window": { "start": "01:00", "end": "02:00", "days": [] } })
        ),
        ["image.window.days: empty: the window would never open (leave days out for every day)"]
    );
}

#[test]
fn site_defaults_to_default_and_is_checked_like_other_names() {
    assert_eq!(host_after(|_| {}).site, "default");
    assert_eq!(host_after(|d| d["site"] = json!("paris-1")).site, "paris-1");
    assert_eq!(
        errors_after(|d| d["site"] = json!("paris 1")),
        ["site: invalid site name: \"paris 1\" contains ' ': names allow only A-Z, a-z, 0-9, '_', '.' and '-'"]
    );
    assert_eq!(
        errors_after(|d| d["site"] = json!("")),
        ["site: invalid site name: empty name"]
    );
    assert_eq!(
        errors_after(|d| d["site"] = json!(3)),
        ["site: expected a string, got a number"]
    );
}

#[test]
fn site_and_hold_survive_the_stored_model() {
    let mut doc = base();
    doc["site"] = json!("lyon");
    doc["image"] = json!({ "version": "2026.12.1", "hold": true });
    let v = validate(&doc, FQDN).unwrap();
    let stored = serde_json::to_value(&v.host).unwrap();
    assert_eq!(stored["site"], "lyon");
    assert_eq!(
        stored["image"],
        json!({ "version": "2026.12.1", "hold": true })
    );
    assert_eq!(validate(&stored, FQDN).unwrap().host, v.host);
    // Without hold the stored image is what it always was.
    doc["image"] = json!({ "version": "2026.12.1" });
    let stored = serde_json::to_value(validate(&doc, FQDN).unwrap().host).unwrap();
    assert_eq!(stored["image"], json!({ "version": "2026.12.1" }));
}

#[test]
fn other_typed_fields() {
    assert_eq!(
        errors_after(|d| profile(d)["inbound_codec_negotiation"] = json!("stingy")),
        ["sip_profiles.test.inbound_codec_negotiation: expected \"generous\", \"greedy\" or \"scrooge\", got \"stingy\""]
    );
    assert_eq!(
        errors_after(|d| profile(d)["timer_t1"] = json!(0)),
        ["sip_profiles.test.timer_t1: timer 0 is out of range 1..=3600000"]
    );
    assert_eq!(
        errors_after(|d| d["server_only"] = json!("yes")),
        ["server_only: expected true or false, got a string"]
    );
    assert_eq!(
        errors_after(|d| profile(d)
            .as_object_mut()
            .unwrap()
            .remove("ingress_sip_ip")
            .map(drop)
            .unwrap()),
        ["sip_profiles.test.ingress_sip_ip: required field is missing"]
    );
    assert_eq!(
        errors_after(|d| d["services"] = json!({ "freeswitch": { "enabled": "no" } })),
        ["services.freeswitch.enabled: expected true or false, got a string"]
    );
    assert_eq!(
        errors_after(|d| *d = json!([1])),
        ["(document): expected an object, got an array"]
    );
}

#[test]
fn several_problems_are_all_reported() {
    let errors = errors_after(|d| {
        d["type"] = json!("hots");
        d["_id"] = json!("host:other.example.net");
        d["rtp_ip"] = json!("somewhere");
        d["sip_variables"] = json!({ "a": "${b}" });
        let p = profile(d);
        p["ingress_acl"] = json!(["10.0.0.0/33", "bad"]);
        p["egress_sip_ip"] = json!("1.2.3");
        p["timer_t2"] = json!(-1);
        p["handler"] = json!({});
        d["sip_profiles"]["second"] = json!({ "ingress_sip_port": 70000 });
    });
    assert_eq!(
        errors,
        [
            "type: expected \"host\", got \"hots\"",
            "host: \"sbc1.example.net\" disagrees with _id \"host:other.example.net\"",
            "rtp_ip: expected \"auto\" or an IP address, got \"somewhere\"",
            "sip_variables.a: \"${b}\" contains \"${\", which FreeSWITCH would expand as a channel variable",
            "sip_profiles.second.ingress_sip_ip: required field is missing",
            "sip_profiles.second.ingress_sip_port: port 70000 is out of range 1..=65535",
            "sip_profiles.test.ingress_acl[0]: invalid CIDR \"10.0.0.0/33\": prefix length above 32",
            "sip_profiles.test.ingress_acl[1]: invalid CIDR \"bad\": \"bad\" is not an IP address",
            "sip_profiles.test.egress_sip_ip: invalid IP address \"1.2.3\"",
            "sip_profiles.test.handler: unknown handler form: expected {\"socket\": \"host:port\"} or {\"context\": \"name\"}, got an object with no field",
            "sip_profiles.test.timer_t2: timer -1 is out of range 1..=3600000",
        ]
    );
}

#[test]
fn unknown_fields_are_warnings_not_errors() {
    let mut doc = base();
    doc["future_feature"] = json!({ "x": 1 });
    doc["_attachments"] = json!({});
    doc["services"] =
        json!({ "kamailio": { "enabled": true }, "couchdb": { "enabled": true, "tuning": 3 } });
    doc["interfaces"]["primary"]["mtu"] = json!(9000);
    profile(&mut doc)["tls"] = json!(true);
    profile(&mut doc)["handler"] = json!({ "socket": "127.0.0.1:5702", "async": true });
    doc["image"] = json!({ "version": "1.2.3", "channel": "beta" });
    doc["traces"] = json!({ "interfaces": ["eth0"], "filesize": 1, "ringsize": 1, "snaplen": 96 });
    let v = validate(&doc, FQDN).expect("unknown fields do not reject");
    let shown: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "future_feature: unknown field, ignored",
            "image.channel: unknown field, ignored",
            "services.couchdb.tuning: unknown field, ignored",
            "services.kamailio: unknown service, ignored",
            "interfaces.primary.mtu: unknown field, ignored",
            "sip_profiles.test.tls: unknown field, ignored",
            "sip_profiles.test.handler.async: unknown field, ignored",
            "traces.snaplen: unknown field, ignored",
        ]
    );
    // Ignored means ignored: the model is the one without those fields.
    let mut plain = base();
    plain["image"] = json!({ "version": "1.2.3" });
    plain["traces"] = json!({ "interfaces": ["eth0"], "filesize": 1, "ringsize": 1 });
    assert_eq!(v.host, validate(&plain, FQDN).unwrap().host);
}

#[test]
fn cidr_host_bits_warn_and_mean_the_network() {
    let mut doc = base();
    profile(&mut doc)["ingress_acl"] = json!(["10.1.2.3/8", "192.0.2.7"]);
    let v = validate(&doc, FQDN).unwrap();
    let shown: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["sip_profiles.test.ingress_acl[0]: \"10.1.2.3/8\" has host bits set: it means 10.0.0.0/8, as FreeSWITCH reads it"]
    );
    let nets: Vec<String> = v.host.sip_profiles["test"]
        .ingress_acl
        .networks()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32"]);
}

#[test]
fn ipv6_profiles_acls_and_interfaces() {
    let h = host_after(|d| {
        d["interfaces"]["primary"]["ipv6"] = json!("2001:db8::52");
        d["rtp_ip"] = json!("2001:db8::52");
        d["sip_profiles"]["v6"] = json!({
            "ingress_sip_ip": "2001:db8::52",
            "ingress_sip_port": 5200,
            "ingress_acl": ["2001:db8:1::/48", "::1"],
            "egress_sip_ip": "2001:db8::53",
        });
    });
    let v6: Vec<String> = h
        .sofia_profiles()
        .filter(|p| p.entry == "v6")
        .map(|p| format!("{} {} {:?}", p.name, p.bind(), p.acl.networks()))
        .collect();
    assert_eq!(
        v6,
        [
            "v6-ingress [2001:db8::52]:5200 [2001:db8:1::/48, ::1/128]",
            "v6-egress [2001:db8::53]:15200 []",
        ]
    );
    assert_eq!(h.rtp_ip.to_string(), "2001:db8::52");
    // The same port on the IPv4 and IPv6 addresses of a host is two distinct binds.
    assert_eq!(h.sofia_profiles().count(), 4);
}

#[test]
fn empty_acl_is_valid_and_denies_everyone() {
    let h = host_after(|d| {
        profile(d)["ingress_acl"] = json!([]);
        profile(d).as_object_mut().unwrap().remove("egress_acl");
    });
    let p = &h.sip_profiles["test"];
    assert!(p.ingress_acl.networks().is_empty());
    assert!(p.egress_acl.networks().is_empty());
    assert_eq!(
        h.sofia_profiles()
            .filter(|s| s.acl.networks().is_empty())
            .count(),
        2
    );
}

#[test]
fn nulls_read_as_absent() {
    let h = host_after(|d| {
        d["image"] = Value::Null;
        d["traces"] = Value::Null;
        profile(d)["egress_sip_port"] = Value::Null;
    });
    assert_eq!(h.image, None);
    assert_eq!(h.sip_profiles["test"].egress_sip_port, 15200);
}

#[test]
fn deleted_documents_are_told_apart() {
    let deleted = json!({ "_id": "host:sbc1.example.net", "_rev": "4-x", "_deleted": true });
    assert!(is_deleted(&deleted));
    assert!(!is_deleted(&base()));
    let errors = validate(&deleted, FQDN).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, DELETED_PATH);
    assert_eq!(errors[0].to_string(), "_deleted: the document is deleted");
}
