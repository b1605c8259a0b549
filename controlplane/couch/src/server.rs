//! The CouchDB server's own state, for the operator's diagnostics: `_up`, the
//! databases and their info, the replication scheduler's jobs and the active tasks.
//! Answers are returned as CouchDB gives them (the daemon picks what it shows); lists
//! are bounded, so a server with thousands of databases cannot make the daemon hold
//! them all.

use crate::client::{encode_component, Client};
use crate::error::CouchError;
use http::Method;
use serde_json::Value;

/// The most databases whose info is read; an appliance has three.
pub const MAX_DATABASES: usize = 100;
/// The most scheduler jobs read.
pub const MAX_JOBS: usize = 100;

/// `GET /_up`: `{"status": "ok", …}` when the node serves.
pub async fn up(client: &Client) -> Result<Value, CouchError> {
    client.json(Method::GET, "/_up", None).await
}

/// `GET /_all_dbs` (the first [`MAX_DATABASES`]), then `GET /<db>` of each.
pub async fn databases(client: &Client) -> Result<Vec<Value>, CouchError> {
    let path = format!("/_all_dbs?limit={MAX_DATABASES}");
    let names = client.json(Method::GET, &path, None).await?;
    let names = names
        .as_array()
        .ok_or_else(|| CouchError::Decode(format!("_all_dbs is not a list: {names}")))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names.iter().filter_map(Value::as_str) {
        let path = format!("/{}", encode_component(name));
        out.push(client.json(Method::GET, &path, None).await?);
    }
    Ok(out)
}

/// `GET /_scheduler/docs` (the first [`MAX_JOBS`]): every `_replicator` document's job.
pub async fn scheduler_docs(client: &Client) -> Result<Vec<Value>, CouchError> {
    let path = format!("/_scheduler/docs?limit={MAX_JOBS}");
    let answer = client.json(Method::GET, &path, None).await?;
    match answer.get("docs").and_then(Value::as_array) {
        Some(docs) => Ok(docs.clone()),
        None => Err(CouchError::Decode(format!(
            "_scheduler/docs has no docs list: {answer}"
        ))),
    }
}

/// `GET /_active_tasks`.
pub async fn active_tasks(client: &Client) -> Result<Vec<Value>, CouchError> {
    let answer = client.json(Method::GET, "/_active_tasks", None).await?;
    answer
        .as_array()
        .cloned()
        .ok_or_else(|| CouchError::Decode(format!("_active_tasks is not a list: {answer}")))
}
