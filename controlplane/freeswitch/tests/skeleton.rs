//! The fixed skeleton (`overlays/etc/freeswitch/`) and a rendering fit together: the
//! skeleton's `freeswitch.xml`, with its includes expanded the way FreeSWITCH's
//! preprocessor does it, is one well-formed document in which every rendered piece sits
//! where FreeSWITCH looks for it.

mod common;

use ccnq_freeswitch::render::{RenderedTree, VOLUME_DIR};
use common::{host, rendering, spec_example};
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
            let mut entries: Vec<_> = std::fs::read_dir(self.conf.join(dir))
                .expect("skeleton dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| glob_match(file, n))
                .collect();
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

#[test]
fn skeleton_and_rendering_form_one_freeswitch_document() {
    let r = rendering(&host(&spec_example()));
    let conf = skeleton_dir();
    let top = std::fs::read_to_string(conf.join("freeswitch.xml")).expect("freeswitch.xml");
    let mut pp = Preprocessor {
        conf: &conf,
        volume: &r.tree,
        vars: Vec::new(),
    };
    let mut text = String::new();
    pp.expand(&top, &mut text);
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("expanded freeswitch.xml is not XML: {e}\n{text}"));

    assert_eq!(
        pp.vars,
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
    let profiles: Vec<&str> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("profiles")
                && n.parent().and_then(|p| p.attribute("name")) == Some("sofia.conf")
        })
        .flat_map(|n| n.children().filter(|c| c.has_tag_name("profile")))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(profiles, ["test-egress", "test-ingress"]);
    let contexts: Vec<&str> = section("dialplan")
        .children()
        .filter(|n| n.has_tag_name("context"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(contexts, ["test-egress", "test-ingress"]);
    // Logs go to the log volume.
    assert!(text.contains("value=\"/var/log/freeswitch/freeswitch.log\""));
}
