//! What validation hands back besides a model: the problems that reject a document and
//! the remarks that do not. Both carry the JSON path of the value concerned, because an
//! operator fixing a document needs to know *where*, not only *what*.

use serde::Serialize;

/// One reason a host document is rejected.
///
/// Displays as `path: reason`, e.g.
/// `sip_profiles.test.ingress_acl[1]: invalid CIDR "10.0.0.0/33": prefix length above 32`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ValidationError {
    /// JSON path of the offending value (`(document)` for the document itself).
    pub path: String,
    /// Why the value is rejected.
    pub reason: String,
}

/// Something in a document that was accepted but deserves the operator's attention,
/// typically a field this version does not know (kept in the document, ignored here, so
/// that documents written for newer hosts still reach older ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// JSON path of the value concerned.
    pub path: String,
    /// What was done with it.
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}
