//! The host document — the one source of a host's configuration (see
//! `shared/spec/host-document.md`) — as typed Rust: [`validate`] turns a raw CouchDB
//! document into a normalized [`Host`] with every default applied, or into the complete
//! list of its problems, each with its JSON path. Everything downstream (renderers, the
//! apply planner, the API) works from [`Host`] and never sees raw JSON or a default.

mod checks;
mod error;
mod model;
mod validate;
pub mod window;

pub use error::{ValidationError, Warning};
pub use ipnet::IpNet;
pub use model::{
    Acl, CodecNegotiation, Handler, Host, ImageSpec, Interface, RtpIp, ServiceSwitch, Services,
    Side, SipProfile, SofiaProfile, Traces, DEFAULT_CODEC, DEFAULT_HANDLER_HOST,
    DEFAULT_HANDLER_PORT, DEFAULT_SITE, DEFAULT_TIMER_T1, DEFAULT_TIMER_T2, DEFAULT_TIMER_T4,
    EGRESS_PORT_OFFSET,
};
pub use validate::{is_deleted, validate, Validated, DELETED_PATH};

/// The string rules of the host document, for other documents that name hosts, sites
/// and image versions (a rollout), so that a name means the same everywhere. Each
/// answers `Err(reason)`; the caller adds the path.
pub mod rules {
    pub use crate::checks::{hostname, name, quote, version};
    pub use crate::validate::kind;
}

/// The spec's name for the normalized document.
pub type HostDocument = Host;
