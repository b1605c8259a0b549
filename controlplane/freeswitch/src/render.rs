//! The renderer: turns a validated [`Host`] into the host-specific FreeSWITCH files that
//! the fixed skeleton in the image (`overlays/etc/freeswitch/`) includes from the
//! writable volume ([`VOLUME_DIR`]). It is pure: the same host and secrets give the same
//! bytes, so that a change that renders identically costs nothing.
//!
//! Besides the files, a [`Rendering`] indexes them into *parts* — global, ACL, one per
//! sofia profile — because each part reaches a running FreeSWITCH by a different action
//! (restart, `reloadacl`, `sofia profile … rescan|restart`): the planner compares parts,
//! not files.
//!
//! Two escaping regimes exist, and both are needed:
//! - ordinary elements are parsed as XML by FreeSWITCH, so every value is entity-escaped;
//! - `<X-PRE-PROCESS cmd="set" data="name=value"/>` lines are read *raw*, line by line,
//!   by FreeSWITCH's preprocessor before any XML parsing (it cuts `data` at the next
//!   `"` and never decodes entities): escaping there would change the value, so such
//!   values are written as they are and anything the raw form cannot carry is refused.
//!
//! Every file is parsed back as XML before it is returned: a rendering FreeSWITCH would
//! refuse never leaves this module.

use ccnq_model::{Handler, Host, RtpIp, SofiaProfile};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Where the rendered tree is written on the appliance (`<data_dir>/freeswitch` with the
/// default `data_dir`); the skeleton's `freeswitch.xml` includes from here. Paths in a
/// [`RenderedTree`] are relative to it. A daemon with another `data_dir` writes to its
/// own `<data_dir>/freeswitch`, and its plans say so (see [`crate::plan::plan`]).
pub const VOLUME_DIR: &str = "/var/lib/ccnq/freeswitch";

/// The event socket the control plane talks to: loopback only, never configurable from
/// the document.
pub const EVENT_SOCKET_IP: &str = "127.0.0.1";
/// Port of [`EVENT_SOCKET_IP`].
pub const EVENT_SOCKET_PORT: u16 = 8021;

/// The modules FreeSWITCH loads, in load order: the least an SBC driven over the event
/// socket needs. Logging first so the others' start-up is logged.
pub const MODULES: &[&str] = &[
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_sofia",
];

/// `vars.xml`: global variables.
pub const VARS_PATH: &str = "vars.xml";
/// `modules.conf.xml`.
pub const MODULES_PATH: &str = "autoload_configs/modules.conf.xml";
/// `event_socket.conf.xml`.
pub const EVENT_SOCKET_PATH: &str = "autoload_configs/event_socket.conf.xml";
/// `acl.conf.xml`: every profile's ACL list.
pub const ACL_PATH: &str = "autoload_configs/acl.conf.xml";

/// What the renderer needs that must never come from the host document.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The event socket password (`event_socket.conf.xml`).
    pub event_socket_password: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("event_socket_password", &"<redacted>")
            .finish()
    }
}

/// Why a host could not be rendered. The model already refuses all of these; the
/// renderer checks again because a file FreeSWITCH misreads is worse than an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A value cannot be written safely where it goes.
    #[error("{field}: {value:?} cannot be written to FreeSWITCH's configuration: {reason}")]
    Unsafe {
        /// What the value is (`sip_variables.X`, `secrets.event_socket_password`, …).
        field: String,
        /// The value, for the operator.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A FreeSWITCH host without the SIP domain (the model requires it when FreeSWITCH runs).
    #[error("sip_domain_name: required when FreeSWITCH runs")]
    MissingDomain,
    /// A rendered file did not parse back as XML: a bug in this module.
    #[error("rendered {path} is not well-formed XML: {reason}")]
    NotXml {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
}

/// Relative path (under [`VOLUME_DIR`]) → file bytes, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedTree(BTreeMap<String, Vec<u8>>);

impl RenderedTree {
    /// The bytes of one file.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.0.get(path).map(Vec::as_slice)
    }

    /// Every file, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is rendered (FreeSWITCH does not run).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What turns `self` into `new`: the paths to write (new or different), then the
    /// paths to remove, both in path order.
    pub fn diff(&self, new: &RenderedTree) -> (Vec<String>, Vec<String>) {
        let write = new
            .0
            .iter()
            .filter(|(p, b)| self.0.get(*p) != Some(b))
            .map(|(p, _)| p.clone())
            .collect();
        let remove = self
            .0
            .keys()
            .filter(|p| !new.0.contains_key(*p))
            .cloned()
            .collect();
        (write, remove)
    }

    fn insert(&mut self, path: String, text: String) -> Result<(), RenderError> {
        roxmltree::Document::parse(&text).map_err(|e| RenderError::NotXml {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        self.0.insert(path, text.into_bytes());
        Ok(())
    }
}

impl FromIterator<(String, Vec<u8>)> for RenderedTree {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        RenderedTree(iter.into_iter().collect())
    }
}

/// One sofia profile's files and what its bind is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePart {
    /// The address it binds; a change needs `restart`, never `rescan`.
    pub bind: SocketAddr,
    /// `sip_profiles/<name>.xml`: what `rescan` applies.
    pub settings: String,
    /// `dialplan/<name>.xml` for a socket handler: read at each call after `reloadxml`.
    pub dialplan: Option<String>,
}

/// The rendered files grouped by how a change to them reaches FreeSWITCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// Global variables, modules and the event socket: read only at start-up.
    pub global: Vec<String>,
    /// The ACL lists: read by `reloadacl` only.
    pub acl: String,
    /// Sofia profiles by name.
    pub profiles: BTreeMap<String, ProfilePart>,
}

/// A host's FreeSWITCH configuration: the files, and their parts (`None` when
/// FreeSWITCH does not run on the host, in which case the tree is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    /// The files.
    pub tree: RenderedTree,
    /// The files grouped for the planner.
    pub parts: Option<Parts>,
}

impl Rendering {
    /// Whether this rendering configures a running FreeSWITCH.
    pub fn freeswitch_runs(&self) -> bool {
        self.parts.is_some()
    }

    /// Whether the files named by `paths` have the same bytes here and in `other`.
    pub fn same_files(&self, other: &Rendering, paths: &[&str]) -> bool {
        paths.iter().all(|p| self.tree.get(p) == other.tree.get(p))
    }
}

/// The path of a profile's settings file.
pub fn profile_path(name: &str) -> String {
    format!("sip_profiles/{name}.xml")
}

/// The path of a profile's dialplan file (socket handlers only).
pub fn dialplan_path(name: &str) -> String {
    format!("dialplan/{name}.xml")
}

/// Render `host`. A host where FreeSWITCH does not run (`server_only`, or the service
/// switched off) renders nothing.
pub fn render(host: &Host, secrets: &Secrets) -> Result<Rendering, RenderError> {
    if !host.freeswitch_runs() {
        return Ok(Rendering {
            tree: RenderedTree::default(),
            parts: None,
        });
    }
    let mut tree = RenderedTree::default();

    tree.insert(VARS_PATH.into(), vars_xml(host)?)?;
    tree.insert(MODULES_PATH.into(), modules_xml())?;
    tree.insert(EVENT_SOCKET_PATH.into(), event_socket_xml(secrets)?)?;
    let profiles: Vec<SofiaProfile<'_>> = host.sofia_profiles().collect();
    tree.insert(ACL_PATH.into(), acl_xml(&profiles))?;

    let mut parts = BTreeMap::new();
    for p in &profiles {
        safe_file_name(&p.name)?;
        let settings = profile_path(&p.name);
        tree.insert(settings.clone(), profile_xml(host, p))?;
        let dialplan = match &p.profile.handler {
            Handler::Socket { .. } => {
                let path = dialplan_path(&p.name);
                tree.insert(path.clone(), dialplan_xml(p))?;
                Some(path)
            }
            Handler::Context(_) => None,
        };
        parts.insert(
            p.name.clone(),
            ProfilePart {
                bind: p.bind(),
                settings,
                dialplan,
            },
        );
    }
    Ok(Rendering {
        tree,
        parts: Some(Parts {
            global: vec![
                VARS_PATH.into(),
                MODULES_PATH.into(),
                EVENT_SOCKET_PATH.into(),
            ],
            acl: ACL_PATH.into(),
            profiles: parts,
        }),
    })
}

/// Entity-escape an attribute value (all five, so any quoting style stays safe).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Refuse what FreeSWITCH would expand whatever the escaping (`${…}`, `$${…}`).
fn no_expansion(field: &str, value: &str) -> Result<(), RenderError> {
    if value.contains("${") {
        return Err(RenderError::Unsafe {
            field: field.into(),
            value: value.into(),
            reason: "FreeSWITCH would expand \"${\"",
        });
    }
    Ok(())
}

/// A value for a raw preprocessor line: it cannot be escaped, so refuse what it cannot
/// carry (the closing quote, markup, line breaks, expansions).
fn raw_safe(field: &str, value: &str) -> Result<(), RenderError> {
    no_expansion(field, value)?;
    if value
        .chars()
        .any(|c| matches!(c, '"' | '<' | '>' | '&') || c.is_control())
    {
        return Err(RenderError::Unsafe {
            field: field.into(),
            value: value.into(),
            reason: "the preprocessor reads it raw: no '\"', '<', '>', '&' or control character",
        });
    }
    Ok(())
}

fn safe_file_name(name: &str) -> Result<(), RenderError> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(RenderError::Unsafe {
            field: "sip_profiles".into(),
            value: name.into(),
            reason: "a profile name becomes a file name",
        });
    }
    Ok(())
}

/// `<param name="…" value="…"/>` with both escaped.
fn param(out: &mut String, indent: &str, name: &str, value: &str) {
    let _ = writeln!(
        out,
        "{indent}<param name=\"{}\" value=\"{}\"/>",
        escape(name),
        escape(value)
    );
}

/// Every file is an `<include>` (no XML declaration): FreeSWITCH's preprocessor inlines it
/// where the skeleton includes it and strips the `<include>` lines, as for its own files.
const HEADER: &str =
    "<!-- Written by ccnqd from the host document: do not edit, it is rewritten. -->\n<include>\n";
const FOOTER: &str = "</include>\n";

fn vars_xml(host: &Host) -> Result<String, RenderError> {
    let domain = host
        .sip_domain_name
        .as_deref()
        .ok_or(RenderError::MissingDomain)?;
    let mut vars: Vec<(String, String)> = vec![
        ("sip_domain_name".into(), domain.to_owned()),
        ("rtp_ip".into(), host.rtp_ip.to_string()),
    ];
    vars.extend(
        host.sip_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut out = String::from(HEADER);
    for (name, value) in &vars {
        let field = format!("sip_variables.{name}");
        raw_safe(&field, name)?;
        if name.contains('=') {
            return Err(RenderError::Unsafe {
                field,
                value: name.clone(),
                reason: "a variable name cannot contain '='",
            });
        }
        raw_safe(&field, value)?;
        // One per line: the preprocessor works line by line.
        let _ = writeln!(
            out,
            "  <X-PRE-PROCESS cmd=\"set\" data=\"{name}={value}\"/>"
        );
    }
    out.push_str(FOOTER);
    Ok(out)
}

fn modules_xml() -> String {
    let mut out = String::from(HEADER);
    out.push_str("<configuration name=\"modules.conf\" description=\"Modules\">\n  <modules>\n");
    for m in MODULES {
        let _ = writeln!(out, "    <load module=\"{}\"/>", escape(m));
    }
    out.push_str("  </modules>\n</configuration>\n");
    out.push_str(FOOTER);
    out
}

fn event_socket_xml(secrets: &Secrets) -> Result<String, RenderError> {
    let password = &secrets.event_socket_password;
    // Checked here rather than by `no_expansion`, so that the error never shows it.
    if password.is_empty() || password.contains("${") || password.chars().any(char::is_control) {
        return Err(RenderError::Unsafe {
            field: "secrets.event_socket_password".into(),
            value: "<redacted>".into(),
            reason: "empty, or containing \"${\" or a control character",
        });
    }
    let mut out = String::from(HEADER);
    out.push_str(
        "<configuration name=\"event_socket.conf\" description=\"Socket Client\">\n  <settings>\n",
    );
    param(&mut out, "    ", "nat-map", "false");
    param(&mut out, "    ", "listen-ip", EVENT_SOCKET_IP);
    param(
        &mut out,
        "    ",
        "listen-port",
        &EVENT_SOCKET_PORT.to_string(),
    );
    param(&mut out, "    ", "password", password);
    out.push_str("  </settings>\n</configuration>\n");
    out.push_str(FOOTER);
    Ok(out)
}

fn acl_xml(profiles: &[SofiaProfile<'_>]) -> String {
    let mut out = String::from(HEADER);
    out.push_str(
        "<configuration name=\"acl.conf\" description=\"Network Lists\">\n  <network-lists>\n",
    );
    for p in profiles {
        // default="deny" and no node denies everyone: an empty list is meant to.
        let _ = writeln!(
            out,
            "    <list name=\"{}\" default=\"deny\">",
            escape(p.acl_name())
        );
        for net in p.acl.networks() {
            let _ = writeln!(
                out,
                "      <node type=\"allow\" cidr=\"{}\"/>",
                escape(&net.to_string())
            );
        }
        out.push_str("    </list>\n");
    }
    out.push_str("  </network-lists>\n</configuration>\n");
    out.push_str(FOOTER);
    out
}

/// The media address of a profile: the document's `rtp_ip` when it is of the profile's
/// family; otherwise the profile's own address for IPv6 (sofia's `auto` guesses IPv4
/// only) and `auto` for IPv4.
fn rtp_ip(host: &Host, p: &SofiaProfile<'_>) -> String {
    match (host.rtp_ip, p.ip) {
        (RtpIp::Ip(ip), sip) if ip.is_ipv4() == sip.is_ipv4() => ip.to_string(),
        (_, IpAddr::V6(sip)) => sip.to_string(),
        (_, IpAddr::V4(_)) => "auto".into(),
    }
}

/// The dialplan context a profile's calls enter.
fn context(p: &SofiaProfile<'_>) -> String {
    match &p.profile.handler {
        Handler::Socket { .. } => p.name.clone(),
        Handler::Context(name) => name.clone(),
    }
}

fn profile_xml(host: &Host, p: &SofiaProfile<'_>) -> String {
    let e = p.profile;
    let mut out = String::from(HEADER);
    let _ = writeln!(out, "<profile name=\"{}\">", escape(&p.name));
    out.push_str("  <settings>\n");
    let i = "    ";
    param(&mut out, i, "sip-ip", &p.ip.to_string());
    param(&mut out, i, "sip-port", &p.port.to_string());
    param(&mut out, i, "rtp-ip", &rtp_ip(host, p));
    param(&mut out, i, "apply-inbound-acl", p.acl_name());
    param(&mut out, i, "auth-calls", "false");
    param(&mut out, i, "dialplan", "XML");
    param(&mut out, i, "context", &context(p));
    param(&mut out, i, "inbound-codec-prefs", &e.inbound_codec);
    param(&mut out, i, "outbound-codec-prefs", &e.outbound_codec);
    param(
        &mut out,
        i,
        "inbound-codec-negotiation",
        e.inbound_codec_negotiation.as_str(),
    );
    param(&mut out, i, "timer-T1", &e.timer_t1.to_string());
    param(&mut out, i, "timer-T1X64", &e.timer_t1x64().to_string());
    param(&mut out, i, "timer-T2", &e.timer_t2.to_string());
    param(&mut out, i, "timer-T4", &e.timer_t4.to_string());
    param(
        &mut out,
        i,
        "sip-trace",
        if e.sip_trace { "yes" } else { "no" },
    );
    out.push_str("  </settings>\n</profile>\n");
    out.push_str(FOOTER);
    out
}

/// The `socket` application's target. FreeSWITCH (mod_event_socket's `socket_function`)
/// splits its argument at the *last* `:` and hands the host part to getaddrinfo as it is,
/// so an IPv6 host goes without brackets (`::1:5702`): `[::1]` would not resolve.
fn socket_target(handler: &Handler) -> String {
    match handler {
        Handler::Socket { host, port } => format!("{host}:{port}"),
        Handler::Context(_) => String::new(),
    }
}

fn dialplan_xml(p: &SofiaProfile<'_>) -> String {
    let target = socket_target(&p.profile.handler);
    let mut out = String::from(HEADER);
    let _ = writeln!(out, "<context name=\"{}\">", escape(&p.name));
    out.push_str("  <extension name=\"socket\">\n");
    out.push_str("    <condition field=\"destination_number\" expression=\"^\">\n");
    let _ = writeln!(
        out,
        "      <action application=\"socket\" data=\"{} async full\"/>",
        escape(&target)
    );
    out.push_str("    </condition>\n  </extension>\n</context>\n");
    out.push_str(FOOTER);
    out
}
