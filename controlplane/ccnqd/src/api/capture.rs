//! The capture endpoint: checks the request, takes a place for it (one per operator, a
//! few at once, none when the data volume is low) and streams what
//! [`crate::capture`] captures as a pcap file. Operator role, and audited, with the
//! filter and selectors in the audit log's note.

use super::{problem, read_json, streamed, AuditNote, Body, Daemon};
use crate::auth::Caller;
use crate::capture::{self, Refused, Request};
use ccnq_api::Problem;
use http::{header, Response, StatusCode};

/// Captures packets and streams them as a pcap file while it runs.
#[utoipa::path(post, path = "/v1/capture", tag = "diagnostics",
    description = "Role: operator. Audited. One capture per operator, a few at once. The \
        pcap streams as packets are captured, until the duration, the packet or the byte \
        limit, or the client leaves.",
    security(("bearer" = []), ("mutualTLS" = [])),
    request_body = Request,
    responses((status = 200, description = "A pcap file, streamed", body = String, content_type = "application/vnd.tcpdump.pcap"),
        (status = 400, description = "A bad field, named (limits, interface, filter)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This operator's capture runs already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many captures, the data volume low, or libpcap failed", body = Problem, content_type = "application/problem+json")))]
pub async fn post(
    daemon: &Daemon,
    caller: &Caller,
    req: http::Request<hyper::body::Incoming>,
) -> Response<Body> {
    let asked: Request = match read_json(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(e) = asked.check() {
        return problem(StatusCode::BAD_REQUEST, e);
    }
    let note = format!(
        "capture on {} filter={:?} call_id={:?} number={:?} for {} s",
        asked.interface, asked.filter, asked.call_id, asked.number, asked.duration_secs
    );
    let free = free_bytes(&daemon.config.data_dir);
    let started = match daemon.captures.take(&caller.who, free) {
        Ok(slot) => capture::start(asked, slot).await,
        Err(e) => Err(e),
    };
    let mut resp = match started {
        Ok(rx) => {
            let mut resp = Response::new(streamed(rx));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/vnd.tcpdump.pcap"),
            );
            resp.extensions_mut()
                .insert(AuditNote(format!("ok: {note}")));
            return resp;
        }
        Err(e) => {
            let status = match e {
                Refused::Bad(_) => StatusCode::BAD_REQUEST,
                Refused::Busy(_) => StatusCode::CONFLICT,
                Refused::Full | Refused::LowDisk(_) | Refused::Failed(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            problem(status, e.to_string())
        }
    };
    let refused = format!("refused: {note}");
    resp.extensions_mut().insert(AuditNote(refused));
    resp
}

/// Free bytes on the data volume (0 if it cannot be read: then no capture starts).
fn free_bytes(dir: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}
