//! The host document's endpoints: how this host follows it (`GET /v1/config`) and what
//! applying a revision would do (`GET|POST /v1/config/plan`), computed from the
//! configuration in force without doing anything.

use super::{json, problem, Body, Daemon};
use ccnq_api::{ConfigReport, PlanPreview, Problem};
use http::{Response, StatusCode};

/// The host document as this host follows it: the newest revision seen, the one in
/// force, the last attempt with its errors and actions, the feed and the replication.
#[utoipa::path(get, path = "/v1/config", tag = "config",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The configuration state", body = ConfigReport),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub fn get_config(daemon: &Daemon) -> Response<Body> {
    json(StatusCode::OK, &daemon.report.snapshot())
}

/// What applying the newest revision seen would do now, from the configuration in force
/// (after a failed attempt: what the next one would try). Nothing is done.
#[utoipa::path(get, path = "/v1/config/plan", tag = "config",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The plan, or every validation error", body = PlanPreview),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No document followed, or none seen yet", body = Problem, content_type = "application/problem+json")))]
pub fn get_plan(daemon: &Daemon) -> Response<Body> {
    match daemon.report.desired() {
        Some(doc) => post_plan(daemon, doc),
        None => problem(
            StatusCode::NOT_FOUND,
            match &daemon.planner {
                None => "this daemon follows no host document ([couchdb] is not configured)".into(),
                Some(_) => format!("no revision of host:{} seen yet", daemon.config.host),
            },
        ),
    }
}

/// What applying the host document in the body would do now, from the configuration in
/// force: each step with its command and what it costs the calls in progress, or every
/// reason the document would be refused. Nothing is written or sent.
#[utoipa::path(post, path = "/v1/config/plan", tag = "config",
    description = "Role: reader. Changes nothing (a POST only because it carries a document).",
    security(("bearer" = []), ("mutualTLS" = [])),
    request_body(content = Object, description = "A host document", content_type = "application/json"),
    responses((status = 200, description = "The plan, or every validation error", body = PlanPreview),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No document followed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json")))]
pub fn post_plan(daemon: &Daemon, candidate: serde_json::Value) -> Response<Body> {
    let Some(planner) = &daemon.planner else {
        return problem(
            StatusCode::NOT_FOUND,
            "this daemon follows no host document ([couchdb] is not configured)".into(),
        );
    };
    let running = planner.running.read().unwrap_or_else(|p| p.into_inner());
    json(
        StatusCode::OK,
        &crate::freeswitch::preview(
            &crate::freeswitch::Host {
                fqdn: &daemon.config.host,
                data_dir: &daemon.config.data_dir,
                unit: &daemon.config.freeswitch.unit,
            },
            &planner.secrets,
            &running,
            &candidate,
        ),
    )
}
