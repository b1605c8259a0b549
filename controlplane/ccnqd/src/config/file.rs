//! `ccnqd.toml` as written: the serde shapes and their defaults, before the checks and
//! the defaults that depend on other keys turn them into [`super::Config`].

use super::update;
use ccnq_api::Role;
use serde::Deserialize;
use std::path::PathBuf;

/// The file as written, before defaults that depend on other keys are resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) host: Option<String>,
    #[serde(default = "default_data_dir")]
    pub(super) data_dir: PathBuf,
    pub(super) api: ApiFile,
    #[serde(default)]
    pub(super) log: LogFile,
    #[serde(default)]
    pub(super) system: SystemFile,
    pub(super) couchdb: Option<CouchFile>,
    #[serde(default)]
    pub(super) freeswitch: FreeswitchFile,
    #[serde(default)]
    pub(super) systemd: SystemdFile,
    #[serde(default)]
    pub(super) services: ServicesFile,
    pub(super) update: Option<update::UpdateFile>,
}

/// `[services]`: the units the local API may show and act on. Anything else is 404,
/// whatever the caller's role: the API is no remote `systemctl`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServicesFile {
    /// Default: FreeSWITCH's unit (`freeswitch.unit`) and CouchDB's (`couchdb_unit`).
    pub(super) managed: Option<Vec<String>>,
    /// The unit of the local CouchDB, which `services.couchdb.enabled` of the host
    /// document concerns.
    pub(super) couchdb_unit: Option<String>,
}

/// `[freeswitch]`: how the daemon reaches FreeSWITCH and how long it waits for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FreeswitchFile {
    /// Where the daemon connects; the rendered `event_socket.conf.xml` always makes
    /// FreeSWITCH listen on 127.0.0.1:8021, so only tests change this.
    #[serde(default = "default_event_socket")]
    pub(super) event_socket: String,
    /// The event socket's password: made on first start if absent. Never in the host
    /// document.
    pub(super) password_file: Option<PathBuf>,
    #[serde(default = "default_unit")]
    pub(super) unit: String,
    #[serde(default = "default_drain_deadline")]
    pub(super) drain_deadline_secs: f64,
    #[serde(default = "default_confirm_deadline")]
    pub(super) confirm_deadline_secs: f64,
    #[serde(default = "default_command_timeout")]
    pub(super) command_timeout_secs: f64,
}

impl Default for FreeswitchFile {
    fn default() -> Self {
        FreeswitchFile {
            event_socket: default_event_socket(),
            password_file: None,
            unit: default_unit(),
            drain_deadline_secs: default_drain_deadline(),
            confirm_deadline_secs: default_confirm_deadline(),
            command_timeout_secs: default_command_timeout(),
        }
    }
}

/// `[systemd]`: which bus to manage units on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemdFile {
    /// A D-Bus address (`unix:path=…`); absent: the system bus.
    pub(super) bus: Option<String>,
}

/// `[couchdb]`: the local CouchDB holding this host's document. Absent: the daemon
/// serves its API but follows no document (`not-following`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CouchFile {
    #[serde(default = "default_couch_url")]
    pub(super) url: String,
    #[serde(default = "default_database")]
    pub(super) database: String,
    pub(super) user: Option<String>,
    /// Credentials by file reference: never inline, so the file can be readable by
    /// ccnqd alone while this one is not secret.
    pub(super) password_file: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
    #[serde(default = "default_heartbeat")]
    pub(super) heartbeat_secs: f64,
    #[serde(default = "default_reconnect_max")]
    pub(super) reconnect_max_secs: f64,
    #[serde(default = "default_credentials_retry")]
    pub(super) credentials_retry_secs: f64,
    #[serde(default = "default_database_check")]
    pub(super) database_check_secs: f64,
    #[serde(default = "default_apply_retry_max")]
    pub(super) apply_retry_max_secs: f64,
    pub(super) central: Option<CentralFile>,
}

/// `[couchdb.central]`: the central database this host replicates from and to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CentralFile {
    pub(super) url: String,
    pub(super) user: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    /// The local database as the local CouchDB's replicator reaches it (default:
    /// `url` + `/` + `database` of `[couchdb]`).
    pub(super) local_url: Option<String>,
    #[serde(default = "default_replication_check")]
    pub(super) check_interval_secs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiFile {
    #[serde(default = "default_listen")]
    pub(super) listen: Vec<String>,
    pub(super) admin_ca: PathBuf,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    #[serde(default)]
    pub(super) names: Vec<String>,
    #[serde(default = "default_handshake_timeout")]
    pub(super) handshake_timeout_secs: f64,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: usize,
    #[serde(default = "default_shutdown_grace")]
    pub(super) shutdown_grace_secs: f64,
    #[serde(default)]
    pub(super) tokens: Vec<TokenFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenFile {
    pub(super) name: String,
    pub(super) role: Role,
    pub(super) sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFile {
    #[serde(default = "default_level")]
    pub(super) level: String,
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile {
            level: default_level(),
        }
    }
}

/// Where facts about the running system are read from; tests point these elsewhere.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemFile {
    #[serde(default = "default_os_release")]
    pub(super) os_release: Vec<PathBuf>,
    #[serde(default = "default_cmdline")]
    pub(super) kernel_cmdline: PathBuf,
    /// A journal directory to read instead of the system's (`journalctl --directory`).
    pub(super) journal_directory: Option<PathBuf>,
}

impl Default for SystemFile {
    fn default() -> Self {
        SystemFile {
            os_release: default_os_release(),
            kernel_cmdline: default_cmdline(),
            journal_directory: None,
        }
    }
}

pub(super) fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/ccnq")
}
pub(super) fn default_listen() -> Vec<String> {
    vec!["[::]:8443".into()]
}
pub(super) fn default_handshake_timeout() -> f64 {
    5.0
}
pub(super) fn default_max_connections() -> usize {
    256
}
pub(super) fn default_shutdown_grace() -> f64 {
    10.0
}
pub(super) fn default_level() -> String {
    "info".into()
}
pub(super) fn default_couch_url() -> String {
    "http://127.0.0.1:5984".into()
}
pub(super) fn default_database() -> String {
    "provisioning".into()
}
pub(super) fn default_heartbeat() -> f64 {
    10.0
}
pub(super) fn default_event_socket() -> String {
    "127.0.0.1:8021".into()
}
pub(super) fn default_unit() -> String {
    "freeswitch.service".into()
}
pub(super) fn default_drain_deadline() -> f64 {
    300.0
}
pub(super) fn default_confirm_deadline() -> f64 {
    15.0
}
pub(super) fn default_command_timeout() -> f64 {
    30.0
}
pub(super) fn default_reconnect_max() -> f64 {
    30.0
}
pub(super) fn default_credentials_retry() -> f64 {
    60.0
}
pub(super) fn default_database_check() -> f64 {
    60.0
}
pub(super) fn default_apply_retry_max() -> f64 {
    300.0
}
pub(super) fn default_replication_check() -> f64 {
    60.0
}
pub(super) fn default_os_release() -> Vec<PathBuf> {
    vec!["/etc/os-release".into(), "/usr/lib/os-release".into()]
}
pub(super) fn default_cmdline() -> PathBuf {
    "/proc/cmdline".into()
}
