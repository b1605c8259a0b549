//! The local API's vocabulary, shared by `ccnqd` (which serves it) and `ccnqctl` (which
//! reads it), so the two cannot drift apart.
//!
//! Every document here derives `ToSchema`: the OpenAPI description the daemon serves is
//! generated from these types and from the route table, never written by hand.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

pub mod couchdb;
pub mod freeswitch;
pub mod upgrade;
pub use upgrade::{ByteProgress, ProgressStep, Slot, UpgradeState, UpgradeStatus};

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
    /// The A/B slot the host booted from (`a` or `b`), or `pxe` when it booted from the
    /// network, from the kernel command line.
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

/// `GET /v1/config`: where the host stands with its configuration document, in full.
///
/// The same facts go into the `status:<fqdn>` document in CouchDB; this is the on-box
/// view, which also answers when CouchDB does not.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConfigReport {
    /// The followed document (`host:<fqdn>`); absent when the daemon follows none.
    pub document: Option<String>,
    /// `not-following` (no `[couchdb]` in ccnqd.toml), `waiting` (no revision seen yet),
    /// `ok`, `failed` (the last attempt failed; the configuration in force is kept) or
    /// `pending` (an apply runs and waits for something, named in `reason`).
    pub state: String,
    /// Why the state is what it is (`failed`, `pending`); absent when `ok`.
    pub reason: Option<String>,
    /// The newest revision of the document seen.
    pub desired_rev: Option<String>,
    /// What is in force.
    pub applied: Option<AppliedPoint>,
    /// The last apply attempt, successful or not.
    pub last: Option<Attempt>,
    /// The changes feed from the local CouchDB.
    pub feed: FeedState,
    /// The replication with the central database (its `_replicator` documents and what
    /// CouchDB's scheduler says of their jobs), when one is configured.
    pub replication: Option<ReplicationState>,
    /// Apply attempts since the daemon started (each reached the apply step with a valid
    /// document). Revisions of other documents never count.
    pub attempts: u64,
}

/// A revision in force: the document revision, its feed sequence and when it was applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AppliedPoint {
    pub rev: String,
    /// The `_changes` sequence it came with (opaque: a string in CouchDB, a number in
    /// pouchdb-server); absent when it came from the start-up read of the document.
    pub seq: Option<serde_json::Value>,
    /// RFC 3339.
    pub at: String,
}

/// One attempt to bring the host to a revision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Attempt {
    pub rev: Option<String>,
    /// `ok`, `failed` or `pending`.
    pub result: String,
    pub reason: Option<String>,
    /// Every validation error, each with the JSON path of the offending value.
    pub errors: Vec<FieldNote>,
    /// Accepted oddities (unknown fields kept and ignored, …).
    pub warnings: Vec<FieldNote>,
    /// The actions taken, in order, each with its command, reply and duration.
    pub actions: Vec<serde_json::Value>,
    /// RFC 3339: when the attempt ended (or, while pending, began).
    pub at: String,
}

/// A remark about one field of the host document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldNote {
    /// JSON path, e.g. `sip_profiles.test.ingress_acl[1]`.
    pub path: String,
    pub reason: String,
}

/// The changes feed as the follower sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FeedState {
    /// `off`, `connecting`, `connected`, `disconnected`, `database-missing` or
    /// `credentials-refused`.
    pub state: String,
    /// RFC 3339: since when.
    pub since: String,
    /// What went wrong, in CouchDB's or the network's words.
    pub detail: Option<String>,
    /// The last problem seen, kept after recovery so an operator can see what happened.
    pub last_problem: Option<String>,
}

/// The replication with the central database as last checked: the local database, the
/// two `_replicator` documents, and their jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplicationState {
    /// `ok` (documents in place, no job known to fail), `pending` (a job is still
    /// starting) or `failed` (the local database is missing and cannot be made, the
    /// documents cannot be kept, or a job is `crashing`, `failed` or in `error`).
    pub state: String,
    /// What the last check did (`unchanged`, `created …`, `repaired …`, `created database
    /// …`) and, when it is not `ok`, why, in CouchDB's words (`pull crashing:
    /// db_not_found: …`).
    pub detail: String,
    /// RFC 3339.
    pub checked_at: String,
    /// Each replication job as CouchDB's scheduler (`_scheduler/docs`) reports it: the
    /// pull (`ccnqd-<fqdn>-pull`) first, then the push. Empty when the documents could
    /// not be checked.
    #[serde(default)]
    pub jobs: Vec<ReplicationJob>,
}

/// One replication job, as CouchDB's scheduler reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReplicationJob {
    /// The `_replicator` document behind the job.
    pub doc_id: String,
    /// The scheduler's state: `initializing`, `running`, `pending`, `crashing`,
    /// `failed`, `error` or `completed`; `unknown` when it cannot be read (the server
    /// has no `_scheduler`, as pouchdb-server; the job is not scheduled yet; the daemon's
    /// user is not a server admin).
    pub state: String,
    /// The job's last error (`db_not_found: could not open …`), or why the state is
    /// unknown.
    pub error: Option<String>,
    /// RFC 3339: the scheduler's last change of the job's state.
    pub last_updated: Option<String>,
}

/// `GET /v1/config/plan` and `POST /v1/config/plan`: what applying a document would do
/// now, from the configuration in force, without doing it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PlanPreview {
    /// The document's `_id`, if it has one.
    pub document: Option<String>,
    /// The revision in force, the plan's starting point (`None`: nothing known applied;
    /// the plan then replaces everything).
    pub from_rev: Option<String>,
    /// The revisions whose applies began after `from_rev` and never succeeded (the daemon
    /// killed half-way, or FreeSWITCH refusing a step), in the order they were last
    /// tried: any part of each may be in force, so the plan starts from all of them.
    #[serde(default)]
    pub in_doubt: Vec<String>,
    /// The previewed document's `_rev`, if it has one.
    pub to_rev: Option<String>,
    /// Whether the document would be applied at all.
    pub valid: bool,
    /// Every reason it would be refused, each with its JSON path.
    pub errors: Vec<FieldNote>,
    pub warnings: Vec<FieldNote>,
    /// The worst step's cost; absent for an invalid document.
    pub cost: Option<PlanCost>,
    /// In order.
    pub steps: Vec<PlanStep>,
    /// One line for people.
    pub summary: String,
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PlanStep {
    /// `reload_xml`, `rescan_profile`, `restart_profile`, `drain`, `restart_freeswitch`, …
    pub action: String,
    pub description: String,
    /// The event-socket command or systemd job it sends, if any.
    pub command: Option<String>,
    pub cost: PlanCost,
    /// The action's own fields (profile, bind address, files…).
    pub detail: serde_json::Value,
}

/// What a step costs the calls in progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PlanCost {
    /// `no_effect`, `reload`, `refuses_new_calls`, `drops_calls`, `restarts_freeswitch`,
    /// `stops_freeswitch` or `reboots_host`.
    pub kind: String,
    /// For `drops_calls`: whose calls.
    pub profiles: Vec<String>,
    /// For people.
    pub description: String,
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

/// `GET /v1/services`: the units this daemon manages, as systemd sees them now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServiceList {
    /// One entry per managed unit, in the order of the daemon's configuration.
    pub services: Vec<ServiceState>,
}

/// One managed unit: systemd's view of it, and what the host document wants of it.
/// The same object appears under `services.<unit>` in the `status:<fqdn>` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServiceState {
    /// The unit, e.g. `freeswitch.service`.
    pub name: String,
    /// systemd's LoadState (`loaded`; `absent` when the host has no such unit file).
    pub load_state: String,
    /// systemd's ActiveState: `active`, `inactive`, `failed`, `activating`, …
    pub state: String,
    /// systemd's SubState: `running`, `dead`, `failed`, `start-pre`, …
    pub sub_state: String,
    /// When the unit entered its current state (RFC 3339), if it ever changed.
    pub since: Option<String>,
    /// The main process, while one runs.
    pub main_pid: Option<u32>,
    /// Memory in use by the unit's processes, when systemd accounts for it.
    pub memory_bytes: Option<u64>,
    /// The result of the unit's last run (`success`, `exit-code`, `signal`, `timeout`, …).
    pub result: Option<String>,
    /// Why systemd skipped the unit's last start: the condition that did not hold, as
    /// the unit file writes it. `ConditionPathExists=/usr/bin/freeswitch` means FreeSWITCH
    /// is absent from this host's image (a skip, not a failure).
    pub unmet_condition: Option<String>,
    /// What the host document asks of the unit (`running` or `stopped`), when a document
    /// is in force and says anything about this unit.
    pub desired: Option<String>,
    /// What an action on the unit waits for now, e.g. `draining (3 calls)`.
    pub pending: Option<String>,
    /// The last action the daemon took on the unit (API or desired state), one line.
    pub last_action: Option<String>,
}

/// Which action `POST /v1/services/{name}/{action}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Start,
    Stop,
    Restart,
}

impl ServiceAction {
    pub const ALL: [ServiceAction; 3] = [
        ServiceAction::Start,
        ServiceAction::Stop,
        ServiceAction::Restart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
        }
    }

    /// Whether the action ends the running process (and so drops FreeSWITCH's calls).
    pub fn drops_calls(self) -> bool {
        !matches!(self, ServiceAction::Start)
    }
}

impl fmt::Display for ServiceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of start, stop, restart"))
    }
}

/// What a service action did: the drain (FreeSWITCH), systemd's job result, how long it
/// took. The answer of `POST /v1/services/{name}/{action}` when the job ran and ended
/// `done`; inside a [`ServiceActionFailed`] problem otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServiceActionReport {
    pub unit: String,
    pub action: ServiceAction,
    /// True when an admin asked `?force=true`: no drain, the calls in progress drop.
    pub forced: bool,
    /// The drain before the action; absent when none was needed (not FreeSWITCH, a
    /// start, forced).
    pub drain: Option<DrainReport>,
    /// systemd's job result: `done`, `failed`, `timeout`, `canceled`, `dependency`, …;
    /// absent when no job was run (systemd refused the request, or the drain failed).
    pub job_result: Option<String>,
    /// Why no job result came back, when none did.
    pub error: Option<String>,
    /// True when the job ended `done`.
    pub ok: bool,
    /// How long the request waited for another action or an apply on the same unit.
    pub waited_ms: u64,
    /// From the request to the job's end (drain included).
    pub duration_ms: u64,
    /// The unit after the action, when systemd could be asked.
    pub after: Option<ServiceState>,
    /// One line for people and the audit log.
    pub summary: String,
}

/// The drain of FreeSWITCH's calls before a stop or restart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DrainReport {
    /// `drained` (no call left), `deadline_reached` (went on with calls up),
    /// `not_running` (FreeSWITCH was not running: nothing to drain) or `failed`.
    pub outcome: String,
    /// `show channels count` at the first poll.
    pub calls_at_start: Option<u64>,
    /// `show channels count` at the last poll.
    pub calls_left: Option<u64>,
    /// The configured deadline, in seconds.
    pub deadline_secs: f64,
    pub duration_ms: u64,
    /// What went wrong (`failed`), or what was done after (`resumed inbound calls`).
    pub detail: Option<String>,
}

/// A service action that did not end `done`: a problem document (RFC 9457) that also
/// carries the report, so the caller sees systemd's job result and the drain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ServiceActionFailed {
    #[serde(flatten)]
    pub problem: Problem,
    pub report: ServiceActionReport,
}

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
