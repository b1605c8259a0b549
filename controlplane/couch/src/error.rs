//! Typed CouchDB errors.
//!
//! The daemon must react differently to "the document is not there", "someone else wrote
//! first", "our credentials are refused" and "the server is unreachable", and must do so
//! the same way on CouchDB 3 and pouchdb-server. Their `reason` texts differ, so the
//! class is decided from the HTTP status and the `error` field only (spec/couchdb.md).

use serde::Deserialize;

/// The `{"error": …, "reason": …}` body CouchDB sends with a failure. `reason` is kept
/// for humans (logs, status) and never inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CouchError {
    /// 404: no such document or database.
    #[error("not found ({})", .0.error)]
    NotFound(ErrorBody),
    /// 409 (or a bulk result `conflict`): stale or missing `_rev`.
    #[error("conflict ({})", .0.error)]
    Conflict(ErrorBody),
    /// 401 (bad or missing credentials) or 403 (valid user, not allowed; or the user is
    /// locked out after repeated failures, CouchDB 3). pouchdb-server answers 401 where
    /// CouchDB answers 403, so both land here; `status` keeps which. Never retry one
    /// quickly (`crate::retry`).
    #[error("unauthorized: HTTP {status} ({}: {})", .body.error, .body.reason)]
    Unauthorized { status: u16, body: ErrorBody },
    /// Any other 4xx (400 bad_request, 412 file_exists, 415, …).
    #[error("bad request: HTTP {status} ({}: {})", .body.error, .body.reason)]
    BadRequest { status: u16, body: ErrorBody },
    /// 5xx, or a status CouchDB never sends.
    #[error("server error: HTTP {status} ({}: {})", .body.error, .body.reason)]
    Server { status: u16, body: ErrorBody },
    /// Connection refused or reset, TLS failure, body cut off.
    #[error("transport: {0}")]
    Transport(String),
    /// No byte arrived within the per-read timeout (or the connect timeout).
    #[error("timeout while {0}")]
    Timeout(&'static str),
    /// The server answered something that is not the JSON we expect.
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    /// The caller asked for something this client refuses to send (bad URL, a bulk
    /// request without `_id`s, …). Nothing reached the server.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<ccnq_http::HttpError> for CouchError {
    fn from(e: ccnq_http::HttpError) -> CouchError {
        match e {
            ccnq_http::HttpError::Invalid(m) => CouchError::Invalid(m),
            ccnq_http::HttpError::Transport(m) => CouchError::Transport(m),
            ccnq_http::HttpError::Timeout(what) => CouchError::Timeout(what),
        }
    }
}

impl CouchError {
    /// Classifies a non-2xx answer. `body` is the raw response body (JSON or not).
    pub fn from_status(status: u16, body: &[u8]) -> CouchError {
        let body: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        match status {
            404 => CouchError::NotFound(body),
            409 => CouchError::Conflict(body),
            401 | 403 => CouchError::Unauthorized { status, body },
            400..=499 => CouchError::BadRequest { status, body },
            _ => CouchError::Server { status, body },
        }
    }

    /// Classifies one failed entry of a `_bulk_docs` answer (HTTP 201 overall), where
    /// only the `error` field tells what happened to that document.
    pub fn from_bulk_error(body: ErrorBody) -> CouchError {
        match body.error.as_str() {
            "conflict" => CouchError::Conflict(body),
            "forbidden" => CouchError::Unauthorized { status: 403, body },
            "unauthorized" => CouchError::Unauthorized { status: 401, body },
            "not_found" => CouchError::NotFound(body),
            _ => CouchError::BadRequest { status: 400, body },
        }
    }

    /// The HTTP status behind this error, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CouchError::NotFound(_) => Some(404),
            CouchError::Conflict(_) => Some(409),
            CouchError::Unauthorized { status, .. }
            | CouchError::BadRequest { status, .. }
            | CouchError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CouchError::NotFound(_))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, CouchError::Conflict(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decides_not_reason_text() {
        let e = CouchError::from_status(409, br#"{"error":"conflict","reason":"whatever"}"#);
        assert!(e.is_conflict());
        let e = CouchError::from_status(403, br#"{"error":"forbidden","reason":"x"}"#);
        assert!(matches!(e, CouchError::Unauthorized { status: 403, .. }));
        let e = CouchError::from_status(401, b"not json");
        assert!(matches!(e, CouchError::Unauthorized { status: 401, .. }));
        let e = CouchError::from_status(412, br#"{"error":"file_exists"}"#);
        assert!(matches!(e, CouchError::BadRequest { status: 412, .. }));
        let e = CouchError::from_status(500, b"");
        assert!(matches!(e, CouchError::Server { status: 500, .. }));
        assert!(CouchError::from_status(404, b"{}").is_not_found());
    }

    #[test]
    fn bulk_errors_by_error_field() {
        let b = |e: &str| ErrorBody {
            error: e.into(),
            reason: "Document update conflict".into(),
        };
        assert!(CouchError::from_bulk_error(b("conflict")).is_conflict());
        assert!(matches!(
            CouchError::from_bulk_error(b("forbidden")),
            CouchError::Unauthorized { status: 403, .. }
        ));
    }
}
