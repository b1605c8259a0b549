//! The `_replicator` documents that keep the local CouchDB in step with the central one.
//!
//! CouchDB replication runs one direction per document, so a host owns two:
//! `ccnqd-<fqdn>-pull` brings exactly `host:<fqdn>` from the central database, and
//! `ccnqd-<fqdn>-push` sends `status:<fqdn>` back; both continuous, both filtered by
//! `doc_ids` (other hosts' documents never travel).
//!
//! Credentials never go inside a URL of a stored document (spec/couchdb.md: CouchDB
//! keeps them there verbatim). The endpoints use the object form
//! `{"url": …, "headers": {"Authorization": "Basic …"}}`, which CouchDB 3 and
//! pouchdb-server 4.2.0 both run (checked live against CouchDB 3.4.3 by the tests). In
//! CouchDB 3 `_replicator` is admin-only: a non-admin user may write there only once it
//! is a member of `_replicator`'s `_security`, and documents are readable by their owner
//! and admins only.
//!
//! CouchDB 3 takes a plain update of a running document with the current `_rev`, and its
//! deletion, which is all [`ensure`] ever sends. pouchdb-server 4.2.0 refuses edits of a
//! `triggered` one (403 `forbidden`, returned as is) and crashes when one is deleted
//! while its job runs (a pouchdb-server bug).
//!
//! A document in place says nothing about its job: CouchDB 3 keeps the document as it is
//! while the job crashes (`db_not_found` for a missing target, refused credentials, an
//! unreachable central server) and retries it with a backoff. [`job_state`] reads what
//! the scheduler says (`_scheduler/docs`, server admins only). pouchdb-server has no
//! scheduler: its 404 or 400 there means "unknown", not an error.
//!
//! `create_target` stays false: a host must never create a database by replicating into
//! it, least of all the central one (docs/decisions.md). The local database is created
//! by the daemon, as its admin, before the documents are written.
//!
//! [`ensure`] is idempotent: it compares the fields we own (source, target, doc_ids,
//! continuous, create_target) and rewrites a document only if one differs or the
//! document is gone; fields the replicator adds (`_replication_state`, `owner`, …) are
//! left alone.

use serde_json::{json, Value};

use crate::client::{basic_header, encode_component, Client, Db};
use crate::error::CouchError;

/// A database URL and how to log into it.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Full database URL without credentials, e.g. `https://central.example.net:6984/provisioning`.
    pub url: String,
    /// Basic-auth user and password, sent as a header by the replicator.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.basic.as_ref().map(|(u, _)| u.as_str());
        write!(f, "Endpoint({}, user {:?})", self.url, user)
    }
}

impl Endpoint {
    fn to_json(&self) -> Result<Value, CouchError> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| CouchError::Invalid(format!("replication URL {:?}: {e}", self.url)))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(CouchError::Invalid(format!(
                "replication URL for {} carries credentials: give them separately",
                uri.host().unwrap_or("?")
            )));
        }
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(CouchError::Invalid(format!(
                "replication URL {:?}: http or https only",
                self.url
            )));
        }
        let mut ep = json!({ "url": self.url });
        if let Some((user, password)) = &self.basic {
            ep["headers"] = json!({ "Authorization": basic_header(user, password) });
        }
        Ok(ep)
    }
}

/// What the host replicates.
#[derive(Debug, Clone)]
pub struct ReplicationSpec {
    pub fqdn: String,
    /// The central provisioning database.
    pub central: Endpoint,
    /// This host's provisioning database, as the local CouchDB's replicator reaches it.
    pub local: Endpoint,
}

pub fn pull_doc_id(fqdn: &str) -> String {
    format!("ccnqd-{fqdn}-pull")
}

pub fn push_doc_id(fqdn: &str) -> String {
    format!("ccnqd-{fqdn}-push")
}

/// The fields of a `_replicator` document that this module owns.
pub const OWNED_FIELDS: [&str; 5] = ["source", "target", "doc_ids", "continuous", "create_target"];

/// The two documents the host wants in `_replicator`, as (id, body).
pub fn desired_docs(spec: &ReplicationSpec) -> Result<[(String, Value); 2], CouchError> {
    let central = spec.central.to_json()?;
    let local = spec.local.to_json()?;
    let pull = json!({
        "source": central,
        "target": local,
        "doc_ids": [format!("host:{}", spec.fqdn)],
        "continuous": true,
        "create_target": false,
    });
    let push = json!({
        "source": local,
        "target": central,
        "doc_ids": [crate::status::status_id(&spec.fqdn)],
        "continuous": true,
        "create_target": false,
    });
    Ok([
        (pull_doc_id(&spec.fqdn), pull),
        (push_doc_id(&spec.fqdn), push),
    ])
}

/// The body of a one-shot `POST /_replicate` that brings `status:<fqdn>`'s history from
/// the central database into the local one (see [`bring_status_history`]).
pub fn status_history_request(spec: &ReplicationSpec) -> Result<Value, CouchError> {
    Ok(json!({
        "source": spec.central.to_json()?,
        "target": spec.local.to_json()?,
        "doc_ids": [crate::status::status_id(&spec.fqdn)],
        "create_target": false,
    }))
}

/// Brings `status:<fqdn>`'s revision history from the central database into the local
/// one, once, through the local CouchDB's own replicator (`client` is the local server).
///
/// CouchDB's winner among a document's leaves is the one with the longest history. A
/// host whose local database is new (a network boot's `/var` in RAM, a replaced disk, a
/// deleted database) starts its status again at revision 1, and that branch loses to the
/// central copy's until it outgrows it: the central database would go on showing the
/// host's old status, for as many writes as it had before. With the central history
/// brought first, the host's next write descends from it. Returns how many documents
/// were written (0: the central database has none, or the local one had it already).
pub async fn bring_status_history(
    client: &Client,
    spec: &ReplicationSpec,
) -> Result<u64, CouchError> {
    let body = status_history_request(spec)?;
    let answer = client
        .json(http::Method::POST, "/_replicate", Some(&body))
        .await?;
    Ok(docs_written(&answer))
}

/// `docs_written` of a one-shot replication's answer: its newest `history` entry, 0 for
/// `no_changes` (whose answer repeats the history of the run before).
pub fn docs_written(answer: &Value) -> u64 {
    if answer.get("no_changes").and_then(Value::as_bool) == Some(true) {
        return 0;
    }
    answer
        .get("history")
        .and_then(Value::as_array)
        .and_then(|h| h.first())
        .and_then(|h| h.get("docs_written"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// True if `current` (the stored document, `None` if absent) differs from `desired` in a
/// field we own.
pub fn needs_repair(current: Option<&Value>, desired: &Value) -> bool {
    let Some(current) = current else { return true };
    if current.get("_deleted").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    OWNED_FIELDS
        .iter()
        .any(|f| current.get(*f) != desired.get(*f))
}

/// What [`ensure`] did to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Created { rev: String },
    Repaired { rev: String },
}

/// Makes `_replicator` (the `replicator` database handle, normally `client.db("_replicator")`)
/// hold the two documents of `spec`. Returns what happened to each, as (id, outcome).
pub async fn ensure(
    replicator: &Db,
    spec: &ReplicationSpec,
) -> Result<Vec<(String, Outcome)>, CouchError> {
    let mut out = Vec::new();
    for (id, desired) in desired_docs(spec)? {
        out.push((id.clone(), ensure_one(replicator, &id, &desired).await?));
    }
    Ok(out)
}

async fn ensure_one(replicator: &Db, id: &str, desired: &Value) -> Result<Outcome, CouchError> {
    let mut last = None;
    // The replicator itself may rewrite the document (pouchdb-server adds
    // `_replication_state`): re-read and retry on a conflict.
    for _ in 0..5 {
        let current = replicator.get_opt(id).await?;
        if !needs_repair(current.as_ref(), desired) {
            return Ok(Outcome::Unchanged);
        }
        let mut doc = desired.clone();
        doc["_id"] = Value::String(id.to_string());
        let existed = match current.as_ref().and_then(|c| c.get("_rev")) {
            Some(rev) => {
                doc["_rev"] = rev.clone();
                true
            }
            None => false,
        };
        match replicator.put(id, &doc).await {
            Ok(rev) if existed => return Ok(Outcome::Repaired { rev }),
            Ok(rev) => return Ok(Outcome::Created { rev }),
            Err(CouchError::Conflict(b)) => last = Some(b),
            Err(e) => return Err(e),
        }
    }
    Err(CouchError::Conflict(last.unwrap_or_default()))
}

/// What CouchDB's replication scheduler says of one `_replicator` document's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Known {
        /// `initializing`, `running`, `pending`, `crashing`, `failed`, `error` or
        /// `completed` (CouchDB 3's scheduler states).
        state: String,
        /// `info.error` (`db_not_found: could not open …`), when the job has one.
        error: Option<String>,
        /// RFC 3339: the job's last state change.
        last_updated: Option<String>,
    },
    /// No job to read: the server has no `_scheduler` (pouchdb-server), the scheduler
    /// has not picked the document up yet, or we may not read it. Says which.
    Unknown(String),
}

impl JobState {
    /// A `_scheduler/docs/<db>/<id>` answer.
    pub fn from_scheduler(doc: &Value) -> JobState {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let Some(state) = text(doc.get("state")) else {
            return JobState::Unknown(format!("the scheduler's answer has no state: {doc}"));
        };
        // `info` is null while running, `{"error": "…"}` after a crash; some states put
        // a plain string there.
        let error = match doc.get("info") {
            Some(Value::Object(info)) => text(info.get("error")),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        JobState::Known {
            state,
            error,
            last_updated: text(doc.get("last_updated")),
        }
    }

    /// Whether the job is known to be broken now: it crashed (and is waiting to be
    /// retried), failed for good, or has an error.
    pub fn is_failing(&self) -> bool {
        matches!(self, JobState::Known { state, .. }
            if matches!(state.as_str(), "crashing" | "failed" | "error"))
    }

    /// Whether the job is known and still starting (`initializing`, `pending`).
    pub fn is_starting(&self) -> bool {
        matches!(self, JobState::Known { state, .. }
            if matches!(state.as_str(), "initializing" | "pending"))
    }
}

/// The scheduler's state of the job behind `doc_id` in the replicator database
/// `replicator` (normally `_replicator`). 404 and 400 (pouchdb-server has no
/// `_scheduler`; CouchDB has not scheduled the document yet) and 401/403 (not a server
/// admin) are [`JobState::Unknown`]; other failures are errors.
pub async fn job_state(
    client: &Client,
    replicator: &str,
    doc_id: &str,
) -> Result<JobState, CouchError> {
    let path = format!(
        "/_scheduler/docs/{}/{}",
        encode_component(replicator),
        encode_component(doc_id)
    );
    match client.json(http::Method::GET, &path, None).await {
        Ok(doc) => Ok(JobState::from_scheduler(&doc)),
        Err(e @ (CouchError::NotFound(_) | CouchError::BadRequest { status: 400, .. })) => {
            Ok(JobState::Unknown(format!(
                "no scheduler job for {doc_id} ({e}): not scheduled yet, or a server without _scheduler"
            )))
        }
        Err(e @ CouchError::Unauthorized { .. }) => Ok(JobState::Unknown(format!(
            "the scheduler may not be read ({e}): server admins only"
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_answers_become_job_states() {
        // As CouchDB 3.4.3 answers for a replication whose target is missing.
        let crashing = json!({
            "database": "_replicator", "doc_id": "r2", "state": "crashing",
            "info": {"error": "db_not_found: could not open http://127.0.0.1:15999/nosuch/"},
            "error_count": 1, "last_updated": "2026-12-02T00:24:35Z",
        });
        let s = JobState::from_scheduler(&crashing);
        assert_eq!(
            s,
            JobState::Known {
                state: "crashing".into(),
                error: Some("db_not_found: could not open http://127.0.0.1:15999/nosuch/".into()),
                last_updated: Some("2026-12-02T00:24:35Z".into()),
            }
        );
        assert!(s.is_failing() && !s.is_starting());
        let running =
            json!({"state": "running", "info": null, "last_updated": "2026-12-02T00:24:31Z"});
        let r = JobState::from_scheduler(&running);
        assert!(!r.is_failing() && !r.is_starting());
        assert!(matches!(&r, JobState::Known { error: None, .. }));
        assert!(JobState::from_scheduler(&json!({"state": "pending"})).is_starting());
        assert!(
            JobState::from_scheduler(&json!({"state": "failed", "info": "bad doc"})).is_failing()
        );
        let unknown = JobState::from_scheduler(&json!({"error": "x"}));
        assert!(matches!(unknown, JobState::Unknown(_)));
        assert!(!unknown.is_failing() && !unknown.is_starting());
    }

    fn spec() -> ReplicationSpec {
        ReplicationSpec {
            fqdn: "a.example.net".into(),
            central: Endpoint {
                url: "https://central.example.net:6984/provisioning".into(),
                basic: Some(("a.example.net".into(), "pw".into())),
            },
            local: Endpoint {
                url: "http://127.0.0.1:5984/provisioning".into(),
                basic: Some(("admin".into(), "secret".into())),
            },
        }
    }

    #[test]
    fn docs_pull_host_and_push_status_without_url_credentials() {
        let [(pull_id, pull), (push_id, push)] = desired_docs(&spec()).unwrap();
        assert_eq!(pull_id, "ccnqd-a.example.net-pull");
        assert_eq!(push_id, "ccnqd-a.example.net-push");
        assert_eq!(pull["doc_ids"], json!(["host:a.example.net"]));
        assert_eq!(push["doc_ids"], json!(["status:a.example.net"]));
        assert_eq!(
            pull["source"]["url"],
            json!("https://central.example.net:6984/provisioning")
        );
        assert_eq!(pull["target"], push["source"]);
        assert_eq!(pull["continuous"], json!(true));
        assert_eq!(
            pull["source"]["headers"]["Authorization"],
            json!(basic_header("a.example.net", "pw"))
        );
        let text = pull.to_string() + &push.to_string();
        assert!(!text.contains("pw@") && !text.contains("secret@"));
    }

    #[test]
    fn url_with_credentials_is_refused() {
        let mut s = spec();
        s.central.url = "https://u:p@central.example.net/provisioning".into();
        assert!(matches!(desired_docs(&s), Err(CouchError::Invalid(_))));
    }

    #[test]
    fn repair_only_when_an_owned_field_differs() {
        let [(_, pull), _] = desired_docs(&spec()).unwrap();
        assert!(needs_repair(None, &pull));
        let mut stored = pull.clone();
        stored["_id"] = json!("ccnqd-a.example.net-pull");
        stored["_rev"] = json!("2-x");
        stored["_replication_state"] = json!("triggered");
        stored["owner"] = json!("admin");
        assert!(!needs_repair(Some(&stored), &pull));
        stored["doc_ids"] = json!(["host:b.example.net"]);
        assert!(needs_repair(Some(&stored), &pull));
        let mut stored2 = pull.clone();
        stored2["continuous"] = json!(false);
        assert!(needs_repair(Some(&stored2), &pull));
        let mut stored3 = pull.clone();
        stored3["source"] = json!("https://central.example.net:6984/provisioning");
        assert!(needs_repair(Some(&stored3), &pull));
    }
}
