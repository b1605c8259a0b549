//! The metrics endpoint: reads the states a scrape reports (the feed, the upgrade, what
//! FreeSWITCH runs) and hands them to [`crate::metrics`], which owns the counters and
//! the encoding. Reader role: the metrics name the host's version and its traffic.

use super::{problem, Body, Daemon};
use crate::metrics::{Scrape, CONTENT_TYPE};
use ccnq_api::Problem;
use http::{header, Response, StatusCode};

/// The daemon's metrics in the OpenMetrics text format, which Prometheus reads.
#[utoipa::path(get, path = "/v1/metrics", tag = "daemon",
    description = "Role: reader. Applies (count by result, duration, last result), API requests \
        by route and code, the feed and upgrade states, the booted version, and FreeSWITCH's \
        calls in progress and profiles up (`ccnq_freeswitch_up 0` when it does not answer).",
    security(("bearer" = []), ("mutualTLS" = [])),
    responses((status = 200, description = "OpenMetrics text", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub async fn get(daemon: &Daemon) -> Response<Body> {
    let report = daemon.report.snapshot();
    let version = crate::system::version(&daemon.config.os_release, &daemon.config.kernel_cmdline);
    let scrape = Scrape {
        feed: report.document.is_some().then_some(report.feed.state),
        upgrade: crate::upgrade::status(&version).map(|u| {
            (
                u.state.to_string(),
                u.booted_version,
                u.booted_slot.to_string(),
            )
        }),
        freeswitch: freeswitch(daemon).await,
    };
    let text = crate::metrics::get().encode(&scrape);
    match Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(super::full(text))
    {
        Ok(r) => r,
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `(calls in progress, profiles running, profiles)`, or `None` if FreeSWITCH does not
/// answer (stopped, switched off by a server-only document, not yet configured).
async fn freeswitch(daemon: &Daemon) -> Option<(u64, u64, u64)> {
    let fs = &daemon.config.freeswitch;
    let esl = crate::event_socket::connect_configured(fs).await.ok()?;
    let sofia = esl.sofia_xmlstatus().await.ok()?.result.ok()?;
    let calls = esl.channels_count().await.ok()?.result.ok()?;
    let profiles: Vec<_> = sofia
        .entries
        .iter()
        .filter(|e| e.kind == "profile")
        .collect();
    let running = profiles.iter().filter(|e| e.is_running()).count() as u64;
    Some((calls, running, profiles.len() as u64))
}
