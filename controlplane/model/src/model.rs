//! The normalized host model: what a host document means once validated, with every
//! default of the spec already applied, so that renderers and the apply planner read
//! concrete values and never need to know a default.
//!
//! Maps are `BTreeMap` so that anything rendered from the model comes out in the same
//! order every time: a change that renders identically must cost nothing. Serializing a
//! [`Host`] gives a valid host document (same field names), which is how the daemon
//! stores and shows the last applied model; reading it back goes through
//! [`crate::validate`] like any other document.

use ipnet::IpNet;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default `handler`: the local call-processing application's outbound event socket.
pub const DEFAULT_HANDLER_HOST: &str = "127.0.0.1";
/// Default `handler` port.
pub const DEFAULT_HANDLER_PORT: u16 = 5702;
/// Default codec preference, inbound and outbound.
pub const DEFAULT_CODEC: &str = "PCMA";
/// Default `timer_t1`, in milliseconds.
pub const DEFAULT_TIMER_T1: u32 = 250;
/// Default `timer_t2`, in milliseconds.
pub const DEFAULT_TIMER_T2: u32 = 4000;
/// Default `timer_t4`, in milliseconds.
pub const DEFAULT_TIMER_T4: u32 = 5000;
/// What the default `egress_sip_port` adds to `ingress_sip_port`.
pub const EGRESS_PORT_OFFSET: u16 = 10000;
/// The `site` of a host document that names none: a fleet without sites is one site.
pub const DEFAULT_SITE: &str = "default";

/// A validated, fully defaulted host document (`_id` `host:<fqdn>`, `type` `host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host's fully qualified name, the document's `host` (and the tail of its `_id`).
    pub host: String,
    /// The site the host belongs to ([`DEFAULT_SITE`] when the document names none): a
    /// rollout limits how many hosts of one site reboot at once.
    pub site: String,
    /// The image version the host must run; `None`: stay on the booted version.
    pub image: Option<ImageSpec>,
    /// True: FreeSWITCH is neither configured nor started.
    pub server_only: bool,
    /// Switches for the bundled services.
    pub services: Services,
    /// The host's addresses, by key (`primary` is the host's own).
    pub interfaces: BTreeMap<String, Interface>,
    /// The SIP domain; always `Some` when [`Host::freeswitch_runs`].
    pub sip_domain_name: Option<String>,
    /// Media address.
    pub rtp_ip: RtpIp,
    /// Extra FreeSWITCH global variables, names and values checked safe for its XML.
    pub sip_variables: BTreeMap<String, String>,
    /// Profile entries by name; each makes two sofia profiles, see [`Host::sofia_profiles`].
    pub sip_profiles: BTreeMap<String, SipProfile>,
    /// The continuous capture ring; `None`: no ring.
    pub traces: Option<Traces>,
}

impl Host {
    /// The document `_id` of this host: `host:<fqdn>`.
    pub fn id(&self) -> String {
        format!("host:{}", self.host)
    }

    /// Whether FreeSWITCH is to be configured and running on this host.
    pub fn freeswitch_runs(&self) -> bool {
        !self.server_only && self.services.freeswitch.enabled
    }

    /// The sofia profiles this document renders, in a stable order (entry name, then
    /// ingress before egress), disabled entries left out. Each one's name is also the
    /// name of its ACL list. This says nothing of whether FreeSWITCH runs: see
    /// [`Host::freeswitch_runs`].
    pub fn sofia_profiles(&self) -> impl Iterator<Item = SofiaProfile<'_>> + '_ {
        self.sip_profiles
            .iter()
            .filter(|(_, p)| !p.disabled)
            .flat_map(|(entry, p)| {
                [Side::Ingress, Side::Egress]
                    .into_iter()
                    .map(move |side| SofiaProfile::new(entry, p, side))
            })
    }
}

impl Serialize for Host {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Host", 14)?;
        st.serialize_field("_id", &self.id())?;
        st.serialize_field("type", "host")?;
        st.serialize_field("host", &self.host)?;
        st.serialize_field("site", &self.site)?;
        match &self.image {
            Some(image) => st.serialize_field("image", image)?,
            None => st.skip_field("image")?,
        }
        st.serialize_field("server_only", &self.server_only)?;
        st.serialize_field("services", &self.services)?;
        st.serialize_field("interfaces", &self.interfaces)?;
        match &self.sip_domain_name {
            Some(d) => st.serialize_field("sip_domain_name", d)?,
            None => st.skip_field("sip_domain_name")?,
        }
        st.serialize_field("rtp_ip", &self.rtp_ip)?;
        st.serialize_field("sip_variables", &self.sip_variables)?;
        st.serialize_field("sip_profiles", &self.sip_profiles)?;
        match &self.traces {
            Some(t) => st.serialize_field("traces", t)?,
            None => st.skip_field("traces")?,
        }
        st.end()
    }
}

/// `image`: the version this host must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSpec {
    /// A version string (`[A-Za-z0-9][A-Za-z0-9._+~-]*`, no `..`).
    pub version: String,
    /// True: the host may download `version` and write it to its other slot, but must
    /// not reboot into it yet (a rollout's wave has not reached it). Default false.
    /// Written only when true, so documents without it read back unchanged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// When the host may reboot into `version`; `None`: at any time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::window::Window>,
}

/// `services`: the bundled services that can be switched off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Services {
    /// `services.freeswitch`.
    pub freeswitch: ServiceSwitch,
    /// `services.couchdb`.
    pub couchdb: ServiceSwitch,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            freeswitch: ServiceSwitch { enabled: true },
            couchdb: ServiceSwitch { enabled: true },
        }
    }
}

/// `services.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceSwitch {
    /// Default true: a service is on unless switched off.
    pub enabled: bool,
}

/// `interfaces.<key>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// IPv4 address, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
}

/// `rtp_ip`: `"auto"` or an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtpIp {
    /// Let FreeSWITCH pick (`"auto"`, the default).
    #[default]
    Auto,
    /// A fixed media address.
    Ip(IpAddr),
}

impl fmt::Display for RtpIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpIp::Auto => f.write_str("auto"),
            RtpIp::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Serialize for RtpIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `sip_profiles.<name>`, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipProfile {
    /// Address of the ingress profile.
    pub ingress_sip_ip: IpAddr,
    /// Port of the ingress profile.
    pub ingress_sip_port: u16,
    /// Who may send to the ingress profile; empty denies everyone.
    pub ingress_acl: Acl,
    /// Address of the egress profile (default: `ingress_sip_ip`).
    pub egress_sip_ip: IpAddr,
    /// Port of the egress profile (default: `ingress_sip_port + 10000`).
    pub egress_sip_port: u16,
    /// Who may send to the egress profile; empty denies everyone.
    pub egress_acl: Acl,
    /// Where calls go.
    pub handler: Handler,
    /// Inbound codec preference (default `PCMA`).
    pub inbound_codec: String,
    /// Outbound codec preference (default `PCMA`).
    pub outbound_codec: String,
    /// Inbound codec negotiation (default `scrooge`).
    pub inbound_codec_negotiation: CodecNegotiation,
    /// SIP T1 in ms (default 250); T1×64 follows it, see [`SipProfile::timer_t1x64`].
    pub timer_t1: u32,
    /// SIP T2 in ms (default 4000).
    pub timer_t2: u32,
    /// SIP T4 in ms (default 5000).
    pub timer_t4: u32,
    /// Sofia's SIP trace (default false).
    pub sip_trace: bool,
    /// A disabled entry is stopped and not rendered (default false).
    pub disabled: bool,
}

impl SipProfile {
    /// Sofia's `timer-T1X64`, which follows T1. Cannot overflow: T1 is bounded by validation.
    pub fn timer_t1x64(&self) -> u32 {
        self.timer_t1.saturating_mul(64)
    }
}

/// `inbound_codec_negotiation`: the values sofia knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecNegotiation {
    /// Prefer the caller's codec order.
    Generous,
    /// Prefer our codec order.
    Greedy,
    /// Our order, and refuse to follow the caller's (the default).
    #[default]
    Scrooge,
}

impl CodecNegotiation {
    /// The value as sofia writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecNegotiation::Generous => "generous",
            CodecNegotiation::Greedy => "greedy",
            CodecNegotiation::Scrooge => "scrooge",
        }
    }
}

/// A list of networks allowed to send to a profile. Rendered `default="deny"` with one
/// `allow` node per entry, so an empty list denies everyone, as intended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Acl(pub Vec<IpNet>);

impl Acl {
    /// The networks, in document order.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

/// `handler`: where a profile's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// An outbound event socket to a call-processing application (the CCNQ4 way).
    /// `host` is an IP literal (IPv6 without brackets) or a host name.
    Socket {
        /// IP literal or host name.
        host: String,
        /// TCP port, 1..=65535.
        port: u16,
    },
    /// An XML dialplan context.
    Context(String),
}

impl Default for Handler {
    fn default() -> Self {
        Handler::Socket {
            host: DEFAULT_HANDLER_HOST.to_owned(),
            port: DEFAULT_HANDLER_PORT,
        }
    }
}

impl Handler {
    /// For a socket handler, its target as FreeSWITCH's `socket` application takes it:
    /// `host:port`, an IPv6 host in brackets.
    pub fn socket_target(&self) -> Option<String> {
        match self {
            Handler::Socket { host, port } if host.contains(':') => {
                Some(format!("[{host}]:{port}"))
            }
            Handler::Socket { host, port } => Some(format!("{host}:{port}")),
            Handler::Context(_) => None,
        }
    }
}

impl Serialize for Handler {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Handler", 1)?;
        match self {
            Handler::Socket { .. } => {
                st.serialize_field("socket", &self.socket_target().unwrap_or_default())?
            }
            Handler::Context(name) => st.serialize_field("context", name)?,
        }
        st.end()
    }
}

/// `traces`: the continuous capture ring kept for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Traces {
    /// Interfaces to capture on (at least one).
    pub interfaces: Vec<String>,
    /// Size of one ring file, in KB (positive).
    pub filesize: u32,
    /// Number of files in the ring (positive).
    pub ringsize: u32,
    /// BPF capture filter; `None`: capture everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Which of an entry's two sofia profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// `<name>-ingress`.
    Ingress,
    /// `<name>-egress`.
    Egress,
}

impl Side {
    /// The suffix the side adds to the entry name, without the dash.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Ingress => "ingress",
            Side::Egress => "egress",
        }
    }
}

/// One rendered sofia profile (and its ACL list of the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SofiaProfile<'a> {
    /// `<entry>-ingress` or `<entry>-egress`: the sofia profile name and the ACL list name.
    pub name: String,
    /// The `sip_profiles` entry it comes from.
    pub entry: &'a str,
    /// Which of the entry's two.
    pub side: Side,
    /// Bind address.
    pub ip: IpAddr,
    /// Bind port.
    pub port: u16,
    /// Who may send to it.
    pub acl: &'a Acl,
    /// The whole entry, for the settings both sides share.
    pub profile: &'a SipProfile,
}

impl<'a> SofiaProfile<'a> {
    fn new(entry: &'a str, profile: &'a SipProfile, side: Side) -> Self {
        let (ip, port, acl) = match side {
            Side::Ingress => (
                profile.ingress_sip_ip,
                profile.ingress_sip_port,
                &profile.ingress_acl,
            ),
            Side::Egress => (
                profile.egress_sip_ip,
                profile.egress_sip_port,
                &profile.egress_acl,
            ),
        };
        SofiaProfile {
            name: format!("{entry}-{}", side.as_str()),
            entry,
            side,
            ip,
            port,
            acl,
            profile,
        }
    }

    /// The name of its ACL list (the same as the profile's).
    pub fn acl_name(&self) -> &str {
        &self.name
    }

    /// The address it binds.
    pub fn bind(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.ip, self.port)
    }
}
