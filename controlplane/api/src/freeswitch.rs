//! FreeSWITCH's state as the local API shows it (`GET /v1/freeswitch/…`, reader role):
//! the sofia profiles and gateways, the calls in progress, the registrations. What an
//! operator reaches for first when calls fail, without a shell on the box and without
//! an event-socket password: the API asks FreeSWITCH a fixed set of read-only questions
//! and never passes a command through.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/freeswitch/profiles`: every sofia profile and alias (`sofia xmlstatus`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsProfiles {
    pub profiles: Vec<FsProfile>,
}

/// One entry of `sofia xmlstatus`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsProfile {
    pub name: String,
    /// `profile`, `alias` or `gateway`.
    pub kind: String,
    /// `host:port` of a profile's SIP URL; a gateway's or alias's data as given.
    pub address: String,
    /// As FreeSWITCH says it, e.g. `RUNNING (0)`, `NOREG`, `REGED`.
    pub state: String,
    /// A profile that is RUNNING.
    pub running: bool,
    /// The call legs in progress on this profile (`show channels`); 0 for others.
    pub calls: u64,
}

/// `GET /v1/freeswitch/gateways`: the sofia gateways (`sofia xmlstatus`), in the same
/// shape as the profiles.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsGateways {
    pub gateways: Vec<FsProfile>,
}

/// `GET /v1/freeswitch/calls`: the call legs in progress (`show channels`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsCalls {
    pub calls: Vec<FsCall>,
}

/// One call leg.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsCall {
    pub uuid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The sofia profile of a SIP leg.
    pub profile: Option<String>,
    /// When the leg was created (RFC 3339).
    pub created: Option<String>,
    /// `RINGING`, `EARLY`, `ACTIVE`, `HELD`, …
    pub callstate: String,
    /// The channel state, e.g. `CS_EXECUTE`.
    pub state: String,
    pub caller_name: String,
    pub caller_number: String,
    /// The number dialled.
    pub destination: String,
    /// The caller's address as FreeSWITCH saw it.
    pub remote_ip: String,
    /// The dialplan application running (`park`, `socket`, `bridge`, …).
    pub application: String,
    pub read_codec: String,
    pub write_codec: String,
    /// The other leg, when bridged.
    pub bridged_to: Option<String>,
}

/// `GET /v1/freeswitch/registrations` (`show registrations`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsRegistrations {
    pub registrations: Vec<FsRegistration>,
}

/// One registration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FsRegistration {
    pub user: String,
    pub realm: String,
    /// The contact registered.
    pub contact: String,
    /// When it expires (RFC 3339).
    pub expires: Option<String>,
    /// `ip:port` and transport it came from, e.g. `192.0.2.7:5060 udp`.
    pub network: String,
}
