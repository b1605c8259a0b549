//! The logs endpoint: the journal of the managed units and of ccnqd itself, filtered
//! and streamed as JSON lines ([`crate::journal`] reads it). Only the HTTP side lives
//! here: the query's check and the streamed answer.

use super::{problem, streamed, Body, Daemon};
use crate::journal::{self, Query};
use ccnq_api::Problem;
use http::{header, Response, StatusCode};
use std::path::Path;

/// Where `journalctl` is on the appliance.
const JOURNALCTL: &str = "/usr/bin/journalctl";
/// ccnqd's own unit, whose log the API shows beside the managed units'.
const OWN_UNIT: &str = "ccnqd.service";

/// The journal, filtered, as JSON lines; followed live with `follow=true`.
#[utoipa::path(get, path = "/v1/logs", tag = "daemon",
    description = "Role: reader. One JSON object per line (`time`, `unit`, `priority`, \
        `identifier`, `pid`, `message`); a last line `{\"error\": …}` if the journal could \
        not be read to the end. Without `lines` or `since`: the newest 100 lines.",
    security(("bearer" = []), ("mutualTLS" = [])),
    params(("unit" = Option<String>, Query, description = "A managed unit, or ccnqd; repeatable"),
        ("priority" = Option<String>, Query, description = "emerg … debug, or 0-7: that priority and the more severe"),
        ("since" = Option<String>, Query, description = "RFC 3339, or relative: -10m, -2h, -1d"),
        ("until" = Option<String>, Query, description = "RFC 3339, or relative"),
        ("match" = Option<String>, Query, min_length = 1, max_length = 200, description = "Text the message must contain (any case)"),
        ("lines" = Option<u64>, Query, minimum = 1, maximum = 100000, description = "At most this many lines (1-100000), the newest"),
        ("follow" = Option<bool>, Query, description = "Keep the answer open and send new lines as they come")),
    responses((status = 200, description = "JSON lines", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json")))]
pub async fn get(daemon: &Daemon, query: Option<&str>) -> Response<Body> {
    let known = |unit: &str| {
        let full = crate::services::unit_name(unit);
        if full == OWN_UNIT {
            return Some(full);
        }
        daemon.services.resolve(&full).map(str::to_owned)
    };
    let q = match Query::parse(query, known) {
        Ok(q) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    let lines = journal::stream(
        Path::new(JOURNALCTL),
        daemon.config.journal_directory.clone(),
        q,
    );
    let mut resp = Response::new(streamed(lines));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}
