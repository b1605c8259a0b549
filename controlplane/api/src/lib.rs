//! The local API's vocabulary, shared by `ccnqd` (which serves it) and `ccnqctl` (which
//! reads it), so the two cannot drift apart.
//!
//! Every document here derives `ToSchema`: the OpenAPI description the daemon serves is
//! generated from these types and from the route table, never written by hand.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// What a caller may do. Ordered: each role may do everything the roles before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read state; change nothing.
    Reader,
    /// Operate the host: service control, log level, diagnostics.
    Operator,
    /// Everything, including actions that drop calls without draining.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (expected reader, operator or admin)"))
    }
}

/// `GET /v1/health`: liveness and readiness, nothing else, because anyone may ask.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Health {
    /// `ok` while the daemon serves; `stopping` once it has begun to shut down.
    pub status: String,
}

/// `GET /v1/version`: what runs on this host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Version {
    /// The version of `ccnqd` itself.
    pub daemon: String,
    /// `IMAGE_ID` from os-release, absent when not running from a CCNQ image.
    pub image_id: Option<String>,
    /// `IMAGE_VERSION` from os-release.
    pub image_version: Option<String>,
    /// The A/B slot the host booted from (`a` or `b`), from the kernel command line.
    pub slot: Option<String>,
}

/// `GET /v1/status`: how the daemon and its host are doing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Status {
    /// The host's fully-qualified name, as the daemon knows itself.
    pub host: String,
    /// Seconds since the daemon started.
    pub uptime_seconds: u64,
    /// The configuration the host follows.
    pub config: ConfigState,
    /// The writable data volume.
    pub data_volume: Volume,
}

/// Where the host stands with its configuration document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConfigState {
    /// `not-following` until the daemon follows a host document; then `ok`, `failed`
    /// or `pending`.
    pub state: String,
    /// The revision of the host document in force, if any.
    pub applied_rev: Option<String>,
}

/// A mounted volume and its free space.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Volume {
    pub path: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub read_only: bool,
}

/// `PUT /v1/log/level` body and answer: the daemon's log level.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LogLevel {
    pub level: Level,
}

/// How much the daemon logs, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of error, warn, info, debug, trace"))
    }
}

/// Every error the API returns: an RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Reader < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn problem_serializes_type_not_kind() {
        let p = Problem {
            kind: "about:blank".into(),
            title: "Not Found".into(),
            status: 404,
            detail: None,
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert!(json.get("detail").is_none());
    }
}
