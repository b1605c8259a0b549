//! The local CouchDB as the local API shows it (`GET /v1/couchdb`, reader role): is it
//! up, its databases and their sizes, its replication jobs (the host's link to the
//! central database) with their last error and how far behind they are, and its active
//! tasks. What an operator asks when a change written centrally does not arrive.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/couchdb`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CouchState {
    /// `_up`'s `status` (`ok`, or e.g. `nolive` while the node starts).
    pub up: String,
    /// Every database (`_all_dbs`, then each one's info), system databases included.
    pub databases: Vec<CouchDatabase>,
    /// The replication jobs (`_scheduler/docs`).
    pub replications: Vec<CouchReplication>,
    /// `_active_tasks`: replications, compactions, indexing.
    pub active_tasks: Vec<CouchTask>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CouchDatabase {
    pub name: String,
    pub doc_count: u64,
    pub doc_del_count: u64,
    /// Live data (`sizes.active`), bytes.
    pub active_bytes: u64,
    /// On disk (`sizes.file`), bytes: much more than `active_bytes` means compaction is due.
    pub file_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CouchReplication {
    /// The `_replicator` document (`ccnqd-<fqdn>-pull`, `-push`).
    pub doc_id: String,
    /// `running`, `pending`, `crashing`, `failed`, `completed`, …
    pub state: String,
    /// The job's last error, e.g. `db_not_found: …`, `unauthorized: …`.
    pub error: Option<String>,
    pub last_updated: Option<String>,
    /// Source and target URLs, with any credentials removed.
    pub source: String,
    pub target: String,
    /// Changes the job has still to read (`_active_tasks`' `changes_pending`): its lag.
    pub changes_pending: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CouchTask {
    /// `replication`, `database_compaction`, `indexer`, …
    pub kind: String,
    /// The database (or the replication's document) it works on.
    pub on: String,
    /// Percent done, for tasks that say.
    pub progress: Option<u64>,
    pub changes_pending: Option<u64>,
    /// When it started (RFC 3339).
    pub started: Option<String>,
}
