//! Why an update was refused or could not be had.
//!
//! A refusal is a verdict on what the repository served (it must not be trusted, and is
//! reported as such in the host's status); unavailability is a fact about the network
//! (try again later). The two are kept apart so the upgrade path can retry one and not
//! the other.

use thiserror::Error;

/// What the repository served that must not be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A metadata file without the signatures its role needs (none, too few, or by keys
    /// the root does not name for that role).
    Signature,
    /// A metadata file past its expiry date.
    Expired,
    /// A metadata file older than the one already trusted (a rollback or freeze attack).
    Older,
    /// A metadata file that is not what the signed metadata above it says (length or
    /// hash), or does not parse.
    Metadata,
    /// An artifact whose bytes differ from the signed length or SHA-256.
    Artifact,
    /// A release built for another image id than the host's.
    OtherImage,
}

#[derive(Debug, Error)]
pub enum UpdateError {
    /// The repository served something that must not be trusted.
    #[error("update repository refused ({kind:?}): {detail}")]
    Refused { kind: Refusal, detail: String },
    /// The repository could not be reached or a file could not be fetched.
    #[error("update repository unavailable: {0}")]
    Unavailable(String),
    /// The signed targets name no such version.
    #[error("the update repository has no version {version} of image {image_id}")]
    NoSuchVersion { image_id: String, version: String },
    /// Local trouble: the trusted root, the datastore, a file to check.
    #[error("{0}")]
    Local(String),
}

impl UpdateError {
    pub fn refused(kind: Refusal, detail: impl Into<String>) -> UpdateError {
        UpdateError::Refused {
            kind,
            detail: detail.into(),
        }
    }

    /// The kind of refusal, if it is one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            UpdateError::Refused { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
