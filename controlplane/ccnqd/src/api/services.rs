//! The services endpoints: list the managed units, start/stop/restart one. Only the
//! HTTP side lives here (query, roles beyond the route's, status codes); what an action
//! does is [`crate::services`].

use super::{json, problem, AuditNote, Body, Daemon};
use crate::auth::Caller;
use crate::services::ActionEnd;
use ccnq_api::{
    Problem, Role, ServiceAction, ServiceActionFailed, ServiceActionReport, ServiceList,
};
use http::{Response, StatusCode};

/// Each managed unit as systemd sees it now: state, sub-state, since when, main PID,
/// memory; with what the host document wants of it and the last action taken.
#[utoipa::path(get, path = "/v1/services", tag = "services",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The managed units", body = ServiceList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "systemd cannot be reached", body = Problem, content_type = "application/problem+json")))]
pub async fn list(daemon: &Daemon) -> Response<Body> {
    match daemon.services.list().await {
        Ok(services) => json(StatusCode::OK, &ServiceList { services }),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Starts a managed unit and waits for systemd's job to end.
#[utoipa::path(post, path = "/v1/services/{name}/start", tag = "services",
    description = "Role: operator. Audited. `force=true` needs role admin (and changes nothing for a start).",
    security(("bearer" = []), ("mutualTLS" = [])),
    params(("name" = String, Path, description = "A managed unit, with or without `.service`"),
        ("force" = Option<bool>, Query, description = "Skip the drain (admin only)")),
    responses((status = 200, description = "The job ended `done`", body = ServiceActionReport),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak (or `force` without admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a managed unit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "systemd refused the job (e.g. no such unit on this host)", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 502, description = "The job ended otherwise than `done` (its result is in `report.job_result`)", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 503, description = "systemd cannot be reached", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 504, description = "No job result in time", body = ServiceActionFailed, content_type = "application/problem+json")))]
pub async fn start_service(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    query: Option<&str>,
) -> Response<Body> {
    act(daemon, caller, name, ServiceAction::Start, query).await
}

/// Stops a managed unit and waits for systemd's job to end. For FreeSWITCH, new calls
/// are refused first and the calls in progress drained (until none is left or
/// `freeswitch.drain_deadline_secs`), unless an admin forces it.
#[utoipa::path(post, path = "/v1/services/{name}/stop", tag = "services",
    description = "Role: operator. Audited. FreeSWITCH is drained first unless `force=true`, which needs role admin.",
    security(("bearer" = []), ("mutualTLS" = [])),
    params(("name" = String, Path, description = "A managed unit, with or without `.service`"),
        ("force" = Option<bool>, Query, description = "Skip the drain (admin only): the calls in progress drop")),
    responses((status = 200, description = "The job ended `done`", body = ServiceActionReport),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak (or `force` without admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a managed unit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "systemd refused the job", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 502, description = "The job ended otherwise than `done`, or the drain failed (nothing done)", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 503, description = "systemd cannot be reached", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 504, description = "No job result in time", body = ServiceActionFailed, content_type = "application/problem+json")))]
pub async fn stop_service(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    query: Option<&str>,
) -> Response<Body> {
    act(daemon, caller, name, ServiceAction::Stop, query).await
}

/// Restarts a managed unit and waits for systemd's job to end. For FreeSWITCH, the
/// calls are drained first, as for a stop.
#[utoipa::path(post, path = "/v1/services/{name}/restart", tag = "services",
    description = "Role: operator. Audited. FreeSWITCH is drained first unless `force=true`, which needs role admin.",
    security(("bearer" = []), ("mutualTLS" = [])),
    params(("name" = String, Path, description = "A managed unit, with or without `.service`"),
        ("force" = Option<bool>, Query, description = "Skip the drain (admin only): the calls in progress drop")),
    responses((status = 200, description = "The job ended `done`", body = ServiceActionReport),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak (or `force` without admin)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a managed unit", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "systemd refused the job", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 502, description = "The job ended otherwise than `done`, or the drain failed (nothing done)", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 503, description = "systemd cannot be reached", body = ServiceActionFailed, content_type = "application/problem+json"),
        (status = 504, description = "No job result in time", body = ServiceActionFailed, content_type = "application/problem+json")))]
pub async fn restart_service(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    query: Option<&str>,
) -> Response<Body> {
    act(daemon, caller, name, ServiceAction::Restart, query).await
}

/// `?force=true|false`; anything else is refused, so a typo never means "not forced"
/// silently.
fn force(query: Option<&str>) -> Result<bool, String> {
    let mut force = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        // A bare `force` means true, as in a checkbox.
        match pair.split_once('=').unwrap_or((pair, "true")) {
            ("force", "true") => force = true,
            ("force", "false") => force = false,
            ("force", v) => return Err(format!("force={v}: expected true or false")),
            _ => return Err(format!("unknown query parameter {pair:?} (only force)")),
        }
    }
    Ok(force)
}

async fn act(
    daemon: &Daemon,
    caller: &Caller,
    name: &str,
    action: ServiceAction,
    query: Option<&str>,
) -> Response<Body> {
    let Some(unit) = daemon.services.resolve(name) else {
        // The dispatcher answers 404 first; kept for a handler reached another way.
        return problem(StatusCode::NOT_FOUND, format!("{name:?} is not managed"));
    };
    let force = match force(query) {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    if force && !caller.may(Role::Admin) {
        let has = caller
            .role
            .map_or("no role".to_string(), |r| format!("role {r}"));
        return problem(
            StatusCode::FORBIDDEN,
            format!(
                "force=true (acting without draining calls) needs role admin; {} has {has}",
                caller.who
            ),
        );
    }
    let origin = format!("API ({})", caller.who);
    let (end, report) = daemon.services.act(unit, action, force, &origin).await;
    let note = AuditNote(report.summary.clone());
    let status = match end {
        ActionEnd::Done => StatusCode::OK,
        ActionEnd::JobNotDone | ActionEnd::DrainFailed => StatusCode::BAD_GATEWAY,
        ActionEnd::Refused => StatusCode::CONFLICT,
        ActionEnd::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        ActionEnd::TimedOut => StatusCode::GATEWAY_TIMEOUT,
    };
    let mut response = if status == StatusCode::OK {
        json(status, &report)
    } else {
        let body = ServiceActionFailed {
            problem: Problem {
                kind: "about:blank".into(),
                title: status.canonical_reason().unwrap_or("Error").into(),
                status: status.as_u16(),
                detail: Some(report.summary.clone()),
            },
            report,
        };
        let mut r = json(status, &body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::header::HeaderValue::from_static(ccnq_api::PROBLEM_JSON),
        );
        r
    };
    response.extensions_mut().insert(note);
    response
}

#[cfg(test)]
mod tests {
    use super::force;

    #[test]
    fn force_is_true_false_or_refused() {
        assert_eq!(force(None), Ok(false));
        assert_eq!(force(Some("force=true")), Ok(true));
        assert_eq!(force(Some("force")), Ok(true));
        assert_eq!(force(Some("force=false")), Ok(false));
        assert!(force(Some("force=yes")).is_err());
        assert!(force(Some("drain=no")).is_err());
    }
}
