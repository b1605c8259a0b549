//! CouchDB client for the CCNQ5 control plane.
//!
//! The daemon follows its host document through the local CouchDB's `_changes` feed,
//! checkpoints what it applied, keeps a `_replicator` document that brings the host's
//! documents from the central database, and writes its `status:` document back. Each of
//! those is one module here; the behaviours they follow are in spec/couchdb.md, and how
//! each of them waits after a failure (never hammering a refused credential) in `retry`.

pub mod all_docs;
pub mod changes;
pub mod checkpoint;
pub mod client;
pub mod coalesce;
pub mod error;
pub mod follower;
pub mod replication;
pub mod retry;
pub mod server;
pub mod status;

pub use changes::{Change, FeedLine};
pub use checkpoint::Checkpoint;
pub use client::{Auth, BulkResult, Client, ClientConfig, Db};
pub use coalesce::slot;
pub use error::{CouchError, ErrorBody};
