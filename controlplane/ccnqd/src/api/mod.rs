//! The local API: who may call what, and the dispatch to the handlers.
//!
//! One table ([`ROUTES`], in `routes`) says, for every endpoint, its method, its path
//! and the role it needs. The dispatcher here reads it, audits what changes something,
//! counts every request, and nothing else decides access. Handlers, one module per
//! area (`daemon`, `config`, `services`, `freeswitch`, `couchdb`, `logs`, `metrics`),
//! only compute answers.
//!
//! Every error is an RFC 9457 problem document (`application/problem+json`).

mod bundle;
mod capture;
mod config;
mod couchdb;
mod daemon;
mod freeswitch;
mod logs;
mod metrics;
mod openapi;
mod routes;
mod services;

use crate::audit::AuditLog;
use crate::auth::{self, Caller, TokenError};
use crate::config::Config;
use crate::reconcile::report::Report;
use bytes::Bytes;
use ccnq_api::{LogLevel, Problem, PROBLEM_JSON};
use http::{header, Request, Response, StatusCode};
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
    /// The packet captures running.
    pub captures: Arc<crate::capture::Captures>,
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
            captures: Arc::default(),
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

pub use routes::{Endpoint, Route, ROUTES};

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
    // Counted by the route's pattern: a path no route has is "other", so callers cannot
    // make a series per path they send.
    let (route, mut response) = match route_of(&method, &path) {
        Ok((route, name)) => {
            let r = dispatch(&daemon, &conn, req, &request_id, route, name).await;
            (route.path, r)
        }
        Err(refused) => ("other", *refused),
    };
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    log::debug!(
        request = request_id.as_str(), peer = conn.peer.to_string().as_str(),
        status = response.status().as_u16();
        "{method} {path}"
    );
    crate::metrics::get().api_request(route, response.status().as_u16());
    Ok(response)
}

/// The route of `method path` with its `{name}` segment, or the 404 or 405 to answer.
fn route_of(
    method: &http::Method,
    path: &str,
) -> Result<(&'static Route, Option<String>), Box<Response<Body>>> {
    let mut candidates: Vec<(&'static Route, Option<String>)> = ROUTES
        .iter()
        .filter_map(|r| r.capture(path).map(|name| (r, name)))
        .collect();
    if candidates.is_empty() {
        return Err(Box::new(problem(
            StatusCode::NOT_FOUND,
            format!("no endpoint at {path}"),
        )));
    }
    if let Some(i) = candidates.iter().position(|(r, _)| r.method == method) {
        return Ok(candidates.swap_remove(i));
    }
    let allow: Vec<&str> = candidates.iter().map(|(r, _)| r.method.as_str()).collect();
    let mut resp = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {path}"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&allow.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Err(Box::new(resp))
}

async fn dispatch(
    daemon: &Daemon,
    conn: &Connection,
    req: Request<Incoming>,
    request_id: &str,
    route: &Route,
    name: Option<String>,
) -> Response<Body> {
    let name = name.as_deref();
    let Some(needed) = route.role else {
        return serve(daemon, route.endpoint, req, None, name).await;
    };
    let caller = match identify(daemon, conn, &req) {
        Ok(caller) => caller,
        Err(detail) => {
            log::warn!(request = request_id, peer = conn.peer.to_string().as_str(); "unauthenticated {} {}: {detail}", route.method, route.path);
            // A refused change is audited too, by whoever it came from.
            if route.audited() {
                let nobody = Caller {
                    who: format!("unauthenticated {}", conn.peer),
                    role: None,
                    via: auth::Via::Nothing,
                };
                daemon.audit.record(
                    &nobody,
                    route.method.as_str(),
                    route.path,
                    request_id,
                    StatusCode::UNAUTHORIZED.as_u16(),
                    &format!("unauthorized: {detail}"),
                );
            }
            discard(req).await;
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
        discard(req).await;
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
        discard(req).await;
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
    if route.audited() {
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

/// Reads and drops a request's body before an answer that does not need it (401, 403,
/// 404). Over HTTP/2 an answer sent while the body is unread ends the stream with a
/// reset, and common clients (curl 7.88: error 92) then report that instead of the
/// answer. Bounded like any body, and in time: a client that will not send it is not
/// waited for.
async fn discard(req: Request<Incoming>) {
    let body = Limited::new(req.into_body(), MAX_BODY);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), body.collect()).await;
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
        Endpoint::SupportBundle => bundle::get(daemon, req.uri().query()).await,
        Endpoint::Capture => match caller {
            Some(caller) => capture::post(daemon, caller, req).await,
            None => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "a capture without a caller".into(),
            ),
        },
        Endpoint::FsProfiles => freeswitch::get_profiles(daemon).await,
        Endpoint::FsGateways => freeswitch::get_gateways(daemon).await,
        Endpoint::FsCalls => freeswitch::get_calls(daemon).await,
        Endpoint::FsRegistrations => freeswitch::get_registrations(daemon).await,
        Endpoint::Health => daemon::health(daemon),
        Endpoint::Version => daemon::version(daemon),
        Endpoint::Upgrade => daemon::upgrade(daemon),
        Endpoint::Status => daemon::status(daemon),
        Endpoint::OpenApi => daemon::openapi(),
        Endpoint::GetConfig => config::get_config(daemon),
        Endpoint::GetPlan => config::get_plan(daemon),
        Endpoint::PostPlan => match read_json::<serde_json::Value>(req).await {
            Ok(body) => config::post_plan(daemon, body),
            Err(resp) => resp,
        },
        Endpoint::GetLogLevel => daemon::get_log_level(),
        Endpoint::SetLogLevel => match read_json::<LogLevel>(req).await {
            Ok(body) => daemon::set_log_level(body),
            Err(resp) => resp,
        },
    }
}

/// Reads a small JSON body, or says precisely why not.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
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
    fn problems_are_problem_json() {
        let resp = problem(StatusCode::FORBIDDEN, "no".into());
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.status(), 403);
    }
}
