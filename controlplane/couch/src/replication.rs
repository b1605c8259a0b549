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
//! pouchdb-server 4.2.0 both run (checked live against pouchdb-server by the tests). In
//! CouchDB 3 `_replicator` documents are readable by their owner and admins only.
//!
//! pouchdb-server 4.2.0 runs such documents (checked by the live tests), but refuses
//! edits of a `triggered` one (403 `forbidden`, returned as is) and crashes when one is
//! deleted while its job runs (a pouchdb-server bug). CouchDB 3 takes the plain update
//! with the current `_rev`, which is all [`ensure`] ever sends.
//!
//! [`ensure`] is idempotent: it compares the fields we own (source, target, doc_ids,
//! continuous, create_target) and rewrites a document only if one differs or the
//! document is gone; fields the replicator adds (`_replication_state`, `owner`, …) are
//! left alone.

use serde_json::{json, Value};

use crate::client::{basic_header, Db};
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

#[cfg(test)]
mod tests {
    use super::*;

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
