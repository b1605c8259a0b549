//! Writes the host's `status:<fqdn>` document, where operators look.
//!
//! The document is replaced as a whole on every write (the daemon owns all of it), with
//! the current `_rev` read just before; a 409 (someone, e.g. a replication, wrote in
//! between) is retried a bounded number of times, re-reading each time. Its id is not
//! among the followed `doc_ids`, so writing it never triggers an apply.
//!
//! The write goes onto the winning revision, and the document's other leaves are then
//! deleted. There are two when the host had begun a history of its own in a new local
//! database before the central one's was brought in
//! ([`crate::replication::bring_status_history`]): one history is enough, and a
//! conflict left in place would travel to the central database.

use serde_json::Value;

use crate::client::Db;
use crate::error::{CouchError, ErrorBody};

pub fn status_id(fqdn: &str) -> String {
    format!("status:{fqdn}")
}

/// Attempts before a persistent conflict is reported.
pub const MAX_ATTEMPTS: usize = 5;

/// Puts `status:<fqdn>` with `body` (a JSON object; `_id`, `_rev`, `type` and `host` are
/// set here). Returns the new revision.
pub async fn write_status(db: &Db, fqdn: &str, body: &Value) -> Result<String, CouchError> {
    let id = status_id(fqdn);
    let mut doc = body
        .as_object()
        .cloned()
        .ok_or_else(|| CouchError::Invalid("the status document must be a JSON object".into()))?;
    doc.insert("_id".into(), Value::String(id.clone()));
    doc.insert("type".into(), Value::String("status".into()));
    doc.insert("host".into(), Value::String(fqdn.to_string()));
    let mut last: Option<ErrorBody> = None;
    for _ in 0..MAX_ATTEMPTS {
        doc.remove("_rev");
        let current = db.get_opt_with(&id, "conflicts=true").await?;
        if let Some(rev) = current.as_ref().and_then(|c| c.get("_rev").cloned()) {
            doc.insert("_rev".into(), rev);
        }
        match db.put(&id, &Value::Object(doc.clone())).await {
            Err(CouchError::Conflict(b)) => last = Some(b),
            Ok(rev) => {
                // A leaf that cannot be deleted now is deleted at the next write.
                for leaf in conflicts(current.as_ref()) {
                    let _ = db.delete(&id, leaf).await;
                }
                return Ok(rev);
            }
            Err(e) => return Err(e),
        }
    }
    Err(CouchError::Conflict(last.unwrap_or_default()))
}

/// The revisions `?conflicts=true` listed beside the winner.
fn conflicts(doc: Option<&Value>) -> Vec<&str> {
    doc.and_then(|d| d.get("_conflicts"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
