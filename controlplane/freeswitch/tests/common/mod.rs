//! Helpers shared by this crate's integration tests: the spec's example document, read
//! from the spec itself, and building hosts from JSON.

#![allow(dead_code)]

use ccnq_freeswitch::{render, Rendering, Secrets};
use ccnq_model::{validate, Host};
use serde_json::Value;
use std::path::PathBuf;

pub const FQDN: &str = "sbc1.example.net";

pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CCNQ_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// The first ```json block of spec/host-document.md.
pub fn spec_example() -> Value {
    let path = shared_dir().join("spec/host-document.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let start = text.find("```json\n").expect("the spec has a json example") + 8;
    let len = text[start..]
        .find("```")
        .expect("the json example is closed");
    serde_json::from_str(&text[start..start + len]).expect("the spec's example is JSON")
}

pub fn secrets() -> Secrets {
    Secrets {
        event_socket_password: "ClueCon-test".into(),
    }
}

/// Validate `doc` (as host FQDN) or fail the test with the errors.
pub fn host(doc: &Value) -> Host {
    match validate(doc, FQDN) {
        Ok(v) => v.host,
        Err(errors) => panic!("invalid test document: {errors:?}\n{doc:#}"),
    }
}

pub fn rendering(host: &Host) -> Rendering {
    render(host, &secrets()).expect("renders")
}

/// A host document for FQDN with these top-level fields merged in.
pub fn doc(fields: Value) -> Value {
    let mut base = serde_json::json!({
        "_id": format!("host:{FQDN}"),
        "type": "host",
        "host": FQDN,
        "sip_domain_name": "a.phone.example.net",
    });
    if let (Some(b), Some(f)) = (base.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}
