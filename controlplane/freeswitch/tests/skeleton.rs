//! The fixed skeleton (`overlays/etc/freeswitch/`) and a rendering fit together: the
//! skeleton's `freeswitch.xml`, with its includes expanded the way FreeSWITCH's
//! preprocessor does it, is one well-formed document in which every rendered piece sits
//! where FreeSWITCH looks for it.

mod common;

use ccnq_freeswitch::render::{RenderedTree, VOLUME_DIR};
use common::{doc, host, rendering, spec_example};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn skeleton_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../overlays/etc/freeswitch")
}

/// Test double of FreeSWITCH's preprocessor (switch_xml.c), reduced to what the skeleton
/// uses: line-based `<X-PRE-PROCESS cmd="include" data="GLOB"/>` (relative paths from the
/// configuration directory, absolute ones from the volume, here the rendered tree), with
/// every line holding `<include>`, `</include>` or `<?` dropped, and `cmd="set"` lines
/// consumed into variables.
struct Preprocessor<'a> {
    conf: &'a Path,
    volume: &'a RenderedTree,
    vars: Vec<(String, String)>,
}

fn data_attr(line: &str) -> &str {
    let start = line.find("data=\"").expect("data attribute") + 6;
    let end = line[start..].find('"').expect("closing quote") + start;
    &line[start..end]
}

/// `dir/*.xml` style globs only, which is all the skeleton uses.
fn glob_match(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        Some((pre, post)) => {
            path.len() >= pre.len() + post.len()
                && path.starts_with(pre)
                && path.ends_with(post)
                && !path[pre.len()..path.len() - post.len()].contains('/')
        }
        None => pattern == path,
    }
}

impl Preprocessor<'_> {
    fn expand(&mut self, text: &str, out: &mut String) {
        for line in text.lines() {
            // switch_xml.c drops every line holding one of these, whatever else is on it.
            if line.contains("<include>") || line.contains("</include>") || line.contains("<?") {
                continue;
            }
            if line.contains("<X-PRE-PROCESS") {
                let data = data_attr(line).to_owned();
                if line.contains("cmd=\"set\"") {
                    let (k, v) = data.split_once('=').expect("name=value");
                    self.vars.push((k.into(), v.into()));
                } else {
                    assert!(line.contains("cmd=\"include\""), "{line}");
                    self.include(&data, out);
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }

    fn include(&mut self, pattern: &str, out: &mut String) {
        let mut files: Vec<(String, String)> = Vec::new();
        if let Some(rel) = pattern.strip_prefix(&format!("{VOLUME_DIR}/")) {
            for (path, bytes) in self.volume.iter() {
                if glob_match(rel, path) {
                    files.push((
                        path.into(),
                        String::from_utf8(bytes.to_vec()).expect("utf-8"),
                    ));
                }
            }
        } else {
            assert!(
                !pattern.starts_with('/'),
                "skeleton includes only its own dir or the volume: {pattern}"
            );
            let (dir, file) = pattern.rsplit_once('/').unwrap_or(("", pattern));
            // A glob over a directory the image lacks includes nothing: FreeSWITCH
            // (preprocess_glob, SG_GLOB_NOCHECK) tries the pattern as a file name, prints
            // "Error including …" and goes on.
            let mut entries: Vec<_> = match std::fs::read_dir(self.conf.join(dir)) {
                Ok(d) => d
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(file, n))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => panic!("skeleton dir {dir}: {e}"),
            };
            entries.sort();
            for n in entries {
                let p = self.conf.join(dir).join(&n);
                files.push((n, std::fs::read_to_string(p).expect("skeleton file")));
            }
        }
        for (_, text) in files {
            self.expand(&text, out);
        }
    }
}

/// The skeleton's `freeswitch.xml` with `tree` as the volume, expanded as FreeSWITCH
/// reads it, and the variables its `set` lines defined.
fn expand(tree: &RenderedTree) -> (String, Vec<(String, String)>) {
    let conf = skeleton_dir();
    let top = std::fs::read_to_string(conf.join("freeswitch.xml")).expect("freeswitch.xml");
    let mut pp = Preprocessor {
        conf: &conf,
        volume: tree,
        vars: Vec::new(),
    };
    let mut text = String::new();
    pp.expand(&top, &mut text);
    (text, pp.vars)
}

fn parse(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text)
        .unwrap_or_else(|e| panic!("expanded freeswitch.xml is not XML: {e}\n{text}"))
}

/// The `<param>`s of each sofia profile of the expanded document, by profile name.
fn sofia_params(doc: &roxmltree::Document) -> BTreeMap<String, BTreeMap<String, String>> {
    doc.descendants()
        .filter(|n| {
            n.has_tag_name("profiles")
                && n.parent().and_then(|p| p.attribute("name")) == Some("sofia.conf")
        })
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("profile")))
        .map(|p| {
            let params = p
                .descendants()
                .filter(|n| n.has_tag_name("param"))
                .filter_map(|n| Some((n.attribute("name")?.into(), n.attribute("value")?.into())))
                .collect();
            (
                p.attribute("name").expect("profile name").to_owned(),
                params,
            )
        })
        .collect()
}

/// Each ACL list of the expanded document: its default and its nodes (type, cidr).
fn acl_lists(doc: &roxmltree::Document) -> BTreeMap<String, (String, Vec<(String, String)>)> {
    doc.descendants()
        .filter(|n| {
            n.has_tag_name("network-lists")
                && n.parent().and_then(|p| p.attribute("name")) == Some("acl.conf")
        })
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("list")))
        .map(|l| {
            let nodes = l
                .children()
                .filter(|n| n.has_tag_name("node"))
                .map(|n| {
                    (
                        n.attribute("type").unwrap_or("").to_owned(),
                        n.attribute("cidr").unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (
                l.attribute("name").expect("list name").to_owned(),
                (l.attribute("default").unwrap_or("").to_owned(), nodes),
            )
        })
        .collect()
}

fn dialplan_contexts<'a>(doc: &'a roxmltree::Document) -> Vec<&'a str> {
    doc.root_element()
        .children()
        .filter(|n| n.has_tag_name("section") && n.attribute("name") == Some("dialplan"))
        .flat_map(|s| s.children().filter(|n| n.has_tag_name("context")))
        .filter_map(|n| n.attribute("name"))
        .collect()
}

#[test]
fn skeleton_and_rendering_form_one_freeswitch_document() {
    let r = rendering(&host(&spec_example()));
    let (text, vars) = expand(&r.tree);
    let doc = parse(&text);

    assert_eq!(
        vars,
        [
            (
                "sip_domain_name".to_owned(),
                "a.phone.example.net".to_owned()
            ),
            ("rtp_ip".to_owned(), "auto".to_owned())
        ]
    );
    let section = |name: &str| {
        doc.root_element()
            .children()
            .find(|n| n.has_tag_name("section") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("section {name}"))
    };
    let configs: Vec<&str> = section("configuration")
        .children()
        .filter(|n| n.has_tag_name("configuration"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    // Each configuration exactly once: FreeSWITCH takes the first of a name.
    let mut sorted = configs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), configs.len(), "{configs:?}");
    for needed in [
        "switch.conf",
        "modules.conf",
        "event_socket.conf",
        "acl.conf",
        "sofia.conf",
        "logfile.conf",
        "console.conf",
    ] {
        assert!(
            configs.contains(&needed),
            "{needed} missing from {configs:?}"
        );
    }
    let profiles = sofia_params(&doc);
    assert_eq!(
        profiles.keys().collect::<Vec<_>>(),
        ["test-egress", "test-ingress"]
    );
    assert_eq!(dialplan_contexts(&doc), ["test-egress", "test-ingress"]);
    // Logs go to the log volume.
    assert!(text.contains("value=\"/var/log/freeswitch/freeswitch.log\""));
}

/// A profile whose handler names a context takes its calls into that context, which the
/// image provides (the QA image's answering context, say): the sofia profile names it and
/// nothing is rendered into the dialplan for it. Each sofia profile applies its own ACL
/// list to what it receives: `apply-inbound-acl` names `<entry>-ingress` on the ingress
/// profile and `<entry>-egress` on the egress one, lists that exist and hold exactly the
/// document's networks.
#[test]
fn a_context_handler_renders_no_dialplan_and_each_side_applies_its_own_acl() {
    let r = rendering(&host(&doc(json!({
        "sip_profiles": {
            "carrier": {
                "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5080,
                "ingress_acl": ["203.0.113.0/24", "203.0.113.200"],
                "egress_acl": ["198.51.100.7/32"],
                "handler": { "context": "from-carrier" }
            },
            "pbx": {
                "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5090,
                "ingress_acl": ["192.0.2.128/25"],
                "handler": { "socket": "127.0.0.1:5702" }
            }
        }
    }))));
    let (text, _) = expand(&r.tree);
    let doc = parse(&text);
    let profiles = sofia_params(&doc);
    assert_eq!(
        profiles.keys().collect::<Vec<_>>(),
        [
            "carrier-egress",
            "carrier-ingress",
            "pbx-egress",
            "pbx-ingress"
        ]
    );
    let param = |profile: &str, name: &str| {
        profiles[profile]
            .get(name)
            .unwrap_or_else(|| panic!("{profile}: no {name}"))
            .as_str()
    };
    for side in ["ingress", "egress"] {
        let carrier = format!("carrier-{side}");
        let pbx = format!("pbx-{side}");
        assert_eq!(param(&carrier, "context"), "from-carrier");
        assert_eq!(param(&carrier, "dialplan"), "XML");
        assert_eq!(param(&pbx, "context"), pbx);
        assert_eq!(param(&carrier, "apply-inbound-acl"), carrier);
        assert_eq!(param(&pbx, "apply-inbound-acl"), pbx);
    }
    // Nothing rendered for the context handler: its context comes from the image.
    assert!(
        r.tree
            .iter()
            .all(|(p, _)| !p.starts_with("dialplan/carrier")),
        "{:?}",
        r.tree.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let contexts = dialplan_contexts(&doc);
    assert!(contexts.contains(&"pbx-ingress") && contexts.contains(&"pbx-egress"));
    assert!(
        !contexts
            .iter()
            .any(|c| c.starts_with("carrier") || *c == "from-carrier"),
        "{contexts:?}"
    );
    // The lists the profiles name, each denying all but the document's networks.
    let allow = |cidrs: &[&str]| {
        (
            "deny".to_owned(),
            cidrs
                .iter()
                .map(|c| ("allow".to_owned(), c.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    let lists = acl_lists(&doc);
    assert_eq!(
        lists,
        BTreeMap::from([
            ("carrier-egress".to_owned(), allow(&["198.51.100.7/32"])),
            (
                "carrier-ingress".to_owned(),
                allow(&["203.0.113.0/24", "203.0.113.200/32"])
            ),
            ("pbx-egress".to_owned(), allow(&[])),
            ("pbx-ingress".to_owned(), allow(&["192.0.2.128/25"])),
        ])
    );
    for (name, params) in &profiles {
        assert!(lists.contains_key(&params["apply-inbound-acl"]), "{name}");
    }
}
