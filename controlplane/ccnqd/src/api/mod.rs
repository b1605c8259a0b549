//! The local API: the route table, who may call what, and the handlers.
//!
//! One table ([`ROUTES`]) says, for every endpoint, its method, its path and the role
//! it needs. The dispatcher reads it, the OpenAPI description is checked against it,
//! and nothing else decides access. Handlers only compute answers.
//!
//! Every error is an RFC 9457 problem document (`application/problem+json`).

mod couchdb;
mod freeswitch;
mod logs;
mod metrics;
mod openapi;
mod services;

use crate::audit::AuditLog;
use crate::auth::{self, Caller, TokenError};
use crate::config::Config;
use crate::reconcile::report::Report;
use bytes::Bytes;
use ccnq_api::{
    ConfigReport, ConfigState, Health, Level, LogLevel, PlanPreview, Problem, Role, Status, Volume,
    PROBLEM_JSON,
};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use openapi::openapi_json;

/// What every request handler can see: configuration and the daemon's live state.
pub struct Daemon {
    pub config: Config,
    pub started: Instant,
    pub audit: AuditLog,
    pub stopping: AtomicBool,
    /// Where the host stands with its configuration document.
    pub report: Arc<Report>,
    /// What runs, for plan previews; `None` when no document is followed.
    pub planner: Option<Planner>,
    /// The managed units.
    pub services: Arc<crate::services::Services>,
    /// The local CouchDB, for its diagnostics; `None` when no `[couchdb]` is configured.
    pub couch: Option<ccnq_couch::Client>,
    next_request: AtomicU64,
}

impl Daemon {
    pub fn new(
        config: Config,
        audit: AuditLog,
        report: Arc<Report>,
        services: Arc<crate::services::Services>,
    ) -> Daemon {
        Daemon {
            report,
            services,
            planner: None,
            couch: None,
            config,
            started: Instant::now(),
            audit,
            stopping: AtomicBool::new(false),
            next_request: AtomicU64::new(1),
        }
    }
}

/// What a plan preview starts from.
pub struct Planner {
    pub running: crate::freeswitch::SharedRunning,
    pub secrets: ccnq_freeswitch::Secrets,
}

/// What the TLS layer learned about a connection, shared by its requests.
pub struct Connection {
    pub peer: std::net::SocketAddr,
    /// The caller named by a verified client certificate, if one was presented.
    pub certificate: Option<Caller>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Version,
    Status,
    OpenApi,
    GetLogLevel,
    SetLogLevel,
    GetConfig,
    GetPlan,
    PostPlan,
    ListServices,
    ServiceAction(ccnq_api::ServiceAction),
    Upgrade,
    FsProfiles,
    FsGateways,
    FsCalls,
    FsRegistrations,
    Couchdb,
    Metrics,
    Logs,
}

/// One row of the route table.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// `None`: anyone may call it, without authenticating.
    pub role: Option<Role>,
    pub endpoint: Endpoint,
}

impl Route {
    /// Whether `path` is this route's; `Some(Some(name))` carries the `{name}` segment.
    pub fn capture(&self, path: &str) -> Option<Option<String>> {
        let mut name = None;
        let mut pattern = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return Some(name),
                (Some("{name}"), Some(seg)) if !seg.is_empty() => name = Some(seg.to_string()),
                (Some(p), Some(seg)) if p == seg => {}
                _ => return None,
            }
        }
    }

    /// Requests that change something are audited. A POST that only computes (the plan
    /// preview) changes nothing and is not.
    pub fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD) && self.endpoint != Endpoint::PostPlan
    }
}

/// Every endpoint the daemon serves. Keep in step with `openapi::ApiDoc` (a test checks).
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/v1/health",
        role: None,
        endpoint: Endpoint::Health,
    },
    Route {
        method: Method::GET,
        path: "/v1/version",
        role: Some(Role::Reader),
        endpoint: Endpoint::Version,
    },
    Route {
        method: Method::GET,
        path: "/v1/status",
        role: Some(Role::Reader),
        endpoint: Endpoint::Status,
    },
    Route {
        method: Method::GET,
        path: "/v1/upgrade",
        role: Some(Role::Reader),
        endpoint: Endpoint::Upgrade,
    },
    Route {
        method: Method::GET,
        path: "/v1/openapi.json",
        role: Some(Role::Reader),
        endpoint: Endpoint::OpenApi,
    },
    Route {
        method: Method::GET,
        path: "/v1/log/level",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetLogLevel,
    },
    Route {
        method: Method::PUT,
        path: "/v1/log/level",
        role: Some(Role::Operator),
        endpoint: Endpoint::SetLogLevel,
    },
    Route {
        method: Method::GET,
        path: "/v1/config",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetConfig,
    },
    Route {
        method: Method::GET,
        path: "/v1/config/plan",
        role: Some(Role::Reader),
        endpoint: Endpoint::GetPlan,
    },
    // A preview changes nothing, so a reader may ask (see `Route::mutating`).
    Route {
        method: Method::POST,
        path: "/v1/config/plan",
        role: Some(Role::Reader),
        endpoint: Endpoint::PostPlan,
    },
    Route {
        method: Method::GET,
        path: "/v1/services",
        role: Some(Role::Reader),
        endpoint: Endpoint::ListServices,
    },
    // `?force=true` (no drain) also needs admin: checked by the handler, which sees it.
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/start",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Start),
    },
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/stop",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Stop),
    },
    Route {
        method: Method::POST,
        path: "/v1/services/{name}/restart",
        role: Some(Role::Operator),
        endpoint: Endpoint::ServiceAction(ccnq_api::ServiceAction::Restart),
    },
    Route {
        method: Method::GET,
        path: "/v1/logs",
        role: Some(Role::Reader),
        endpoint: Endpoint::Logs,
    },
    Route {
        method: Method::GET,
        path: "/v1/metrics",
        role: Some(Role::Reader),
        endpoint: Endpoint::Metrics,
    },
    Route {
        method: Method::GET,
        path: "/v1/couchdb",
        role: Some(Role::Reader),
        endpoint: Endpoint::Couchdb,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/profiles",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsProfiles,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/gateways",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsGateways,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/calls",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsCalls,
    },
    Route {
        method: Method::GET,
        path: "/v1/freeswitch/registrations",
        role: Some(Role::Reader),
        endpoint: Endpoint::FsRegistrations,
    },
];

/// Largest request body accepted: JSON documents only, the largest being a host document
/// sent for a plan preview (200 profiles are about 100 KiB).
const MAX_BODY: usize = 1024 * 1024;

/// Every answer's body: whole (`full`), or a stream of lines (the logs).
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body streamed from a channel, ending when its sender is dropped; dropping it (the
/// client went) tells the sender.
struct Lines(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Lines {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A body streamed from `rx`.
pub fn streamed(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    Lines(rx).boxed()
}

/// Serves one request. Never fails: every error becomes a problem document.
pub async fn handle(
    daemon: Arc<Daemon>,
    conn: Arc<Connection>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let request_id = format!("{:x}", daemon.next_request.fetch_add(1, Ordering::Relaxed));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut response = dispatch(&daemon, &conn, req, &request_id).await;
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    log::debug!(
        request = request_id.as_str(), peer = conn.peer.to_string().as_str(),
        status = response.status().as_u16();
        "{method} {path}"
    );
    // By the route's pattern: a path no route has is "other", so callers cannot make
    // a series per path they send.
    let route = ROUTES
        .iter()
        .find(|r| r.method == method && r.capture(&path).is_some())
        .map_or("other", |r| r.path);
    crate::metrics::get().api_request(route, response.status().as_u16());
    Ok(response)
}

async fn dispatch(
    daemon: &Daemon,
    conn: &Connection,
    req: Request<Incoming>,
    request_id: &str,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let candidates: Vec<(&Route, Option<String>)> = ROUTES
        .iter()
        .filter_map(|r| r.capture(&path).map(|name| (r, name)))
        .collect();
    if candidates.is_empty() {
        return problem(StatusCode::NOT_FOUND, format!("no endpoint at {path}"));
    }
    let Some((route, name)) = candidates.iter().find(|(r, _)| r.method == req.method()) else {
        let allow: Vec<&str> = candidates.iter().map(|(r, _)| r.method.as_str()).collect();
        let mut resp = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {path}", req.method()),
        );
        if let Ok(v) = header::HeaderValue::from_str(&allow.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return resp;
    };

    let name = name.as_deref();
    let Some(needed) = route.role else {
        return serve(daemon, route.endpoint, req, None, name).await;
    };
    let caller = match identify(daemon, conn, &req) {
        Ok(caller) => caller,
        Err(detail) => {
            log::warn!(request = request_id, peer = conn.peer.to_string().as_str(); "unauthenticated {} {}: {detail}", route.method, route.path);
            let mut resp = problem(StatusCode::UNAUTHORIZED, detail);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"ccnqd\""),
            );
            return resp;
        }
    };
    // A unit that is not managed does not exist as far as the API goes, whatever the
    // caller's role: 404 before the role is even looked at.
    let unmanaged = name.filter(|n| daemon.services.resolve(n).is_none());
    let audited_path = match req.uri().path_and_query() {
        Some(pq) if name.is_some() => pq.as_str().to_string(),
        _ => route.path.to_string(),
    };
    let response = if let Some(n) = unmanaged {
        problem(
            StatusCode::NOT_FOUND,
            format!(
                "{n:?} is not a service this daemon manages (managed: {})",
                daemon.services.managed().join(", ")
            ),
        )
    } else if caller.may(needed) {
        serve(daemon, route.endpoint, req, Some(&caller), name).await
    } else {
        let has = caller
            .role
            .map_or("no role".to_string(), |r| format!("role {r}"));
        problem(
            StatusCode::FORBIDDEN,
            format!(
                "{} needs role {needed}; {} has {has}",
                route.path, caller.who
            ),
        )
    };
    if route.mutating() {
        let result = outcome(&response);
        daemon.audit.record(
            &caller,
            route.method.as_str(),
            &audited_path,
            request_id,
            response.status().as_u16(),
            &result,
        );
    }
    response
}

/// The caller of a request: the verified certificate if there is one, else a bearer token.
fn identify<B>(daemon: &Daemon, conn: &Connection, req: &Request<B>) -> Result<Caller, String> {
    if let Some(caller) = &conn.certificate {
        return Ok(caller.clone());
    }
    let Some(header) = req.headers().get(header::AUTHORIZATION) else {
        return Err("present a client certificate or a bearer token".into());
    };
    let header = header
        .to_str()
        .map_err(|_| "the Authorization header is not text".to_string())?;
    auth::from_bearer(header, &daemon.config.api.tokens).map_err(|e| match e {
        TokenError::Malformed => "the Authorization header must be `Bearer <token>`".into(),
        TokenError::Unknown => "unknown bearer token".into(),
    })
}

/// What a handler wants the audit log to say of its answer, beyond its status.
#[derive(Clone)]
pub struct AuditNote(pub String);

/// A one-line summary of a response for the audit log.
fn outcome(response: &Response<Body>) -> String {
    let status = response.status();
    if let Some(AuditNote(note)) = response.extensions().get::<AuditNote>() {
        return note.clone();
    }
    if status.is_success() {
        "ok".into()
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    }
}

async fn serve(
    daemon: &Daemon,
    endpoint: Endpoint,
    req: Request<Incoming>,
    caller: Option<&Caller>,
    name: Option<&str>,
) -> Response<Body> {
    match endpoint {
        Endpoint::ListServices => services::list(daemon).await,
        Endpoint::ServiceAction(action) => match (caller, name) {
            (Some(caller), Some(name)) => {
                let query = req.uri().query();
                match action {
                    ccnq_api::ServiceAction::Start => {
                        services::start_service(daemon, caller, name, query).await
                    }
                    ccnq_api::ServiceAction::Stop => {
                        services::stop_service(daemon, caller, name, query).await
                    }
                    ccnq_api::ServiceAction::Restart => {
                        services::restart_service(daemon, caller, name, query).await
                    }
                }
            }
            _ => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a service action without a caller or a unit".into(),
            ),
        },
        Endpoint::Couchdb => couchdb::get(daemon).await,
        Endpoint::Metrics => metrics::get(daemon).await,
        Endpoint::Logs => logs::get(daemon, req.uri().query()).await,
        Endpoint::FsProfiles => freeswitch::get_profiles(daemon).await,
        Endpoint::FsGateways => freeswitch::get_gateways(daemon).await,
        Endpoint::FsCalls => freeswitch::get_calls(daemon).await,
        Endpoint::FsRegistrations => freeswitch::get_registrations(daemon).await,
        Endpoint::Health => health(daemon),
        Endpoint::Version => version(daemon),
        Endpoint::Upgrade => upgrade(daemon),
        Endpoint::Status => status(daemon),
        Endpoint::OpenApi => openapi(),
        Endpoint::GetConfig => get_config(daemon),
        Endpoint::GetPlan => get_plan(daemon),
        Endpoint::PostPlan => match read_json::<serde_json::Value>(req).await {
            Ok(body) => post_plan(daemon, body),
            Err(resp) => resp,
        },
        Endpoint::GetLogLevel => get_log_level(),
        Endpoint::SetLogLevel => match read_json::<LogLevel>(req).await {
            Ok(body) => set_log_level(body),
            Err(resp) => resp,
        },
    }
}

/// Liveness and readiness, without details: anyone may ask.
#[utoipa::path(get, path = "/v1/health", tag = "daemon",
    responses((status = 200, description = "The daemon serves", body = Health)))]
fn health(daemon: &Daemon) -> Response<Body> {
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
fn version(daemon: &Daemon) -> Response<Body> {
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
fn upgrade(daemon: &Daemon) -> Response<Body> {
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
fn status(daemon: &Daemon) -> Response<Body> {
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

/// The host document as this host follows it: the newest revision seen, the one in
/// force, the last attempt with its errors and actions, the feed and the replication.
#[utoipa::path(get, path = "/v1/config", tag = "config",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The configuration state", body = ConfigReport),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
fn get_config(daemon: &Daemon) -> Response<Body> {
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
fn get_plan(daemon: &Daemon) -> Response<Body> {
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
fn post_plan(daemon: &Daemon, candidate: serde_json::Value) -> Response<Body> {
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

/// This description.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "daemon",
    description = "Role: reader.",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
fn openapi() -> Response<Body> {
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
fn get_log_level() -> Response<Body> {
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
fn set_log_level(body: LogLevel) -> Response<Body> {
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

/// Reads a small JSON body, or says precisely why not.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json".into(),
        ));
    }
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            ))
        }
        Err(e) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ))
        }
    };
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        problem(StatusCode::BAD_REQUEST, format!("{path}: {}", e.inner()))
    })
}

pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn problem(status: StatusCode, detail: String) -> Response<Body> {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail: Some(detail),
    };
    let mut resp = json(status, &body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROBLEM_JSON),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_and_method_appears_once() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.path, r.method.as_str())),
                "{} {} twice",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn only_health_is_public() {
        let public: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.role.is_none())
            .map(|r| r.path)
            .collect();
        assert_eq!(public, vec!["/v1/health"]);
    }

    #[test]
    fn mutating_routes_need_at_least_operator() {
        for r in ROUTES.iter().filter(|r| r.mutating()) {
            assert!(r.role >= Some(Role::Operator), "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn named_routes_capture_one_segment() {
        let r = ROUTES
            .iter()
            .find(|r| r.path == "/v1/services/{name}/restart")
            .unwrap();
        assert_eq!(
            r.capture("/v1/services/freeswitch/restart"),
            Some(Some("freeswitch".into()))
        );
        assert_eq!(r.capture("/v1/services//restart"), None);
        assert_eq!(r.capture("/v1/services/a/b/restart"), None);
        assert_eq!(r.capture("/v1/services/a/stop"), None);
        let list = ROUTES.iter().find(|r| r.path == "/v1/services").unwrap();
        assert_eq!(list.capture("/v1/services"), Some(None));
        assert_eq!(list.capture("/v1/services/"), None);
    }

    #[test]
    fn problems_are_problem_json() {
        let resp = problem(StatusCode::FORBIDDEN, "no".into());
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.status(), 403);
    }
}
