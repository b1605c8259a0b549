//! The CouchDB endpoint: the local CouchDB's own state, asked at each request with the
//! daemon's credentials (`_up`, the databases, `_scheduler/docs`, `_active_tasks`).
//! Reader role, read-only. The mapping from CouchDB's answers to the API's shape is
//! pure ([`state`]) and keeps credentials out: replication URLs lose any user info.

use super::{json, problem, Body, Daemon};
use ccnq_api::couchdb::{CouchDatabase, CouchReplication, CouchState, CouchTask};
use ccnq_api::Problem;
use ccnq_couch::server;
use http::{Response, StatusCode};
use serde_json::Value;

/// Is the local CouchDB up, its databases, replication jobs and active tasks.
#[utoipa::path(get, path = "/v1/couchdb", tag = "couchdb",
    description = "Role: reader. 404 when no `[couchdb]` is configured.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The local CouchDB", body = CouchState),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No CouchDB configured", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "CouchDB cannot be reached or refused", body = Problem, content_type = "application/problem+json")))]
pub async fn get(daemon: &Daemon) -> Response<Body> {
    let Some(client) = &daemon.couch else {
        return problem(
            StatusCode::NOT_FOUND,
            "no [couchdb] in ccnqd.toml: this daemon follows no CouchDB".into(),
        );
    };
    let asked = async {
        let up = server::up(client).await.map_err(|e| format!("_up: {e}"))?;
        let dbs = server::databases(client)
            .await
            .map_err(|e| format!("the databases: {e}"))?;
        let jobs = server::scheduler_docs(client)
            .await
            .map_err(|e| format!("_scheduler/docs: {e}"))?;
        let tasks = server::active_tasks(client)
            .await
            .map_err(|e| format!("_active_tasks: {e}"))?;
        Ok::<_, String>(state(&up, &dbs, &jobs, &tasks))
    };
    match asked.await {
        Ok(s) => json(StatusCode::OK, &s),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the local CouchDB: {e}"),
        ),
    }
}

/// CouchDB's answers in the API's shape.
fn state(up: &Value, dbs: &[Value], jobs: &[Value], tasks: &[Value]) -> CouchState {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let number = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64);
    let databases = dbs
        .iter()
        .map(|d| CouchDatabase {
            name: text(d, "db_name").unwrap_or_default(),
            doc_count: number(d, "doc_count").unwrap_or(0),
            doc_del_count: number(d, "doc_del_count").unwrap_or(0),
            active_bytes: d
                .get("sizes")
                .and_then(|s| number(s, "active"))
                .unwrap_or(0),
            file_bytes: d.get("sizes").and_then(|s| number(s, "file")).unwrap_or(0),
        })
        .collect();
    let replications = jobs
        .iter()
        .map(|j| {
            let doc_id = text(j, "doc_id").unwrap_or_default();
            // A running job's info carries its counters; a crashed one's, its error; some
            // states put a plain string there.
            let (error, pending) = match j.get("info") {
                Some(Value::Object(info)) => (
                    info.get("error").and_then(Value::as_str).map(str::to_owned),
                    info.get("changes_pending").and_then(Value::as_u64),
                ),
                Some(Value::String(s)) => (Some(s.clone()), None),
                _ => (None, None),
            };
            let pending = pending.or_else(|| {
                tasks
                    .iter()
                    .find(|t| text(t, "doc_id").as_deref() == Some(doc_id.as_str()))
                    .and_then(|t| number(t, "changes_pending"))
            });
            CouchReplication {
                state: text(j, "state").unwrap_or_default(),
                error,
                last_updated: text(j, "last_updated"),
                source: without_credentials(&text(j, "source").unwrap_or_default()),
                target: without_credentials(&text(j, "target").unwrap_or_default()),
                changes_pending: pending,
                doc_id,
            }
        })
        .collect();
    let active_tasks = tasks
        .iter()
        .map(|t| CouchTask {
            kind: text(t, "type").unwrap_or_default(),
            on: text(t, "doc_id")
                .or_else(|| text(t, "database"))
                .unwrap_or_default(),
            progress: number(t, "progress"),
            changes_pending: number(t, "changes_pending"),
            started: number(t, "started_on").and_then(crate::reconcile::report::from_epoch),
        })
        .collect();
    CouchState {
        up: text(up, "status").unwrap_or_else(|| "unknown".into()),
        databases,
        replications,
        active_tasks,
    }
}

/// A URL without its user info: `http://u:p@h/db` is `http://h/db`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn couchdb_answers_in_the_api_shape() {
        let up = json!({"status": "ok", "seeds": {}});
        let dbs = [
            json!({"db_name": "provisioning", "doc_count": 2, "doc_del_count": 1,
            "sizes": {"file": 41234, "external": 900, "active": 3100}}),
        ];
        let jobs = [
            json!({"database": "_replicator", "doc_id": "ccnqd-a-pull", "state": "running",
                "source": "http://central.example.net:5984/provisioning/",
                "target": "http://127.0.0.1:5984/provisioning/",
                "info": {"changes_pending": 7, "docs_written": 3},
                "last_updated": "2026-12-03T17:00:00Z"}),
            json!({"database": "_replicator", "doc_id": "ccnqd-a-push", "state": "crashing",
                "source": "http://127.0.0.1:5984/provisioning/",
                "target": "http://host:s3cret@central.example.net:5984/provisioning/",
                "info": {"error": "unauthorized: unauthorized to access or create database"}}),
        ];
        let tasks = [
            json!({"type": "database_compaction", "database": "shards/00-ff/provisioning",
            "progress": 40, "started_on": 1796318000}),
        ];
        let s = state(&up, &dbs, &jobs, &tasks);
        assert_eq!(s.up, "ok");
        assert_eq!(
            (
                s.databases[0].doc_count,
                s.databases[0].active_bytes,
                s.databases[0].file_bytes
            ),
            (2, 3100, 41234)
        );
        assert_eq!(s.replications[0].changes_pending, Some(7));
        assert_eq!(s.replications[0].error, None);
        assert_eq!(s.replications[1].state, "crashing");
        assert!(s.replications[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("unauthorized"));
        assert_eq!(
            s.replications[1].target, "http://central.example.net:5984/provisioning/",
            "no credentials shown"
        );
        assert_eq!(s.active_tasks[0].progress, Some(40));
        assert_eq!(
            s.active_tasks[0].started.as_deref(),
            Some("2026-12-03T17:13:20Z")
        );
    }

    #[test]
    fn user_info_goes_and_the_rest_stays() {
        assert_eq!(
            without_credentials("https://u:p@h:6984/db/"),
            "https://h:6984/db/"
        );
        assert_eq!(without_credentials("http://h/db@x"), "http://h/db@x");
        assert_eq!(without_credentials("not a url"), "not a url");
    }
}
