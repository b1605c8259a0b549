//! The daemon's own endpoints: health (anyone), version, the upgrade state, status, the
//! OpenAPI description, and the log level (read by a reader, set by an operator).

use super::{full, json, openapi_json, problem, Body, Daemon};
use ccnq_api::{ConfigState, Health, Level, LogLevel, Problem, Status, Volume};
use http::{header, Response, StatusCode};
use std::sync::atomic::Ordering;

/// Liveness and readiness, without details: anyone may ask.
#[utoipa::path(get, path = "/v1/health", tag = "daemon",
    responses((status = 200, description = "The daemon serves", body = Health)))]
pub fn health(daemon: &Daemon) -> Response<Body> {
    let status = if daemon.stopping.load(Ordering::Relaxed) {
        "stopping"
    } else {
        "ok"
    };
    json(
        StatusCode::OK,
        &Health {
            status: status.into(),
        },
    )
}

/// The daemon's version, and the image version and slot the host booted.
#[utoipa::path(get, path = "/v1/version", tag = "daemon",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "Versions", body = ccnq_api::Version),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub fn version(daemon: &Daemon) -> Response<Body> {
    json(
        StatusCode::OK,
        &crate::system::version(&daemon.config.os_release, &daemon.config.kernel_cmdline),
    )
}

/// The booted image and slot, and where an upgrade stands (the `upgrade` part of
/// `status:<fqdn>`).
#[utoipa::path(get, path = "/v1/upgrade", tag = "daemon",
    description = "Role: reader. 404 when the host does not run a CCNQ image (no image \
        version or slot to report).",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "Upgrade state", body = ccnq_api::upgrade::UpgradeStatus),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a CCNQ image", body = Problem, content_type = "application/problem+json")))]
pub fn upgrade(daemon: &Daemon) -> Response<Body> {
    let version = crate::system::version(&daemon.config.os_release, &daemon.config.kernel_cmdline);
    match crate::upgrade::status(&version) {
        Some(status) => json(StatusCode::OK, &status),
        None => problem(
            StatusCode::NOT_FOUND,
            "this host does not run a CCNQ image: os-release has no IMAGE_VERSION, or the \
             kernel command line no ccnq.slot (nor ccnq.boot=pxe)"
                .into(),
        ),
    }
}

/// Uptime, configuration state and the data volume.
#[utoipa::path(get, path = "/v1/status", tag = "daemon",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "Status", body = Status),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The data volume cannot be inspected", body = Problem, content_type = "application/problem+json")))]
pub fn status(daemon: &Daemon) -> Response<Body> {
    let dir = &daemon.config.data_dir;
    let usage = match crate::volume::usage(dir) {
        Ok(u) => u,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    json(
        StatusCode::OK,
        &Status {
            host: daemon.config.host.clone(),
            uptime_seconds: daemon.started.elapsed().as_secs(),
            config: {
                let r = daemon.report.snapshot();
                ConfigState {
                    state: r.state,
                    applied_rev: r.applied.map(|a| a.rev),
                }
            },
            data_volume: Volume {
                path: dir.display().to_string(),
                total_bytes: usage.total_bytes,
                free_bytes: usage.free_bytes,
                read_only: usage.read_only,
            },
        },
    )
}

/// This description.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "daemon",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub fn openapi() -> Response<Body> {
    let mut resp = Response::new(full(openapi_json()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The daemon's current log level.
#[utoipa::path(get, path = "/v1/log/level", tag = "daemon",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The log level", body = LogLevel),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub fn get_log_level() -> Response<Body> {
    let level = match log::max_level() {
        log::LevelFilter::Off | log::LevelFilter::Error => Level::Error,
        log::LevelFilter::Warn => Level::Warn,
        log::LevelFilter::Info => Level::Info,
        log::LevelFilter::Debug => Level::Debug,
        log::LevelFilter::Trace => Level::Trace,
    };
    json(StatusCode::OK, &LogLevel { level })
}

/// Changes the daemon's log level until it restarts (the configuration file sets it at start).
#[utoipa::path(put, path = "/v1/log/level", tag = "daemon",
    description = "Role: operator. Audited.",
    security(("bearer" = []), ("mutualTLS" = [])),
    request_body = LogLevel,
    responses((status = 200, description = "The new log level", body = LogLevel),
        (status = 400, description = "Not a log level", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json")))]
pub fn set_log_level(body: LogLevel) -> Response<Body> {
    let filter = match body.level {
        Level::Error => log::LevelFilter::Error,
        Level::Warn => log::LevelFilter::Warn,
        Level::Info => log::LevelFilter::Info,
        Level::Debug => log::LevelFilter::Debug,
        Level::Trace => log::LevelFilter::Trace,
    };
    log::set_max_level(filter);
    log::info!("log level set to {}", body.level);
    json(StatusCode::OK, &body)
}
