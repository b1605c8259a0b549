//! The update repository's metadata, loaded and verified by `tough`.
//!
//! `tough` follows TUF's client workflow: it starts from the root the image ships,
//! follows root rotations, then checks timestamp, snapshot and targets in turn
//! (signatures by each role's threshold of keys, lengths and hashes as the role above
//! signed them, versions never older than those in the datastore, no file past its
//! expiry). Only after all of that does a [`Verified`] exist; its targets are then read
//! as a [`Release`]. The datastore (on `/var`) is what makes a rollback or a freeze
//! detectable across reboots.
//!
//! The transport is the caller's: `tough`'s own for `file://` (the tests, a repository
//! on local media), and an HTTPS one for the fleet.

use crate::error::{Refusal, UpdateError};
use crate::release::{self, Artifact, Release, TargetInfo};
use std::path::PathBuf;
use tough::error::Error as ToughError;
use tough::{ExpirationEnforcement, RepositoryLoader, Transport};
use url::Url;

/// Where a host reads its updates from, and what it trusts.
#[derive(Debug, Clone)]
pub struct Source {
    /// Base URL of the metadata (`…/metadata/`).
    pub metadata_url: Url,
    /// Base URL of the targets (`…/targets/`).
    pub targets_url: Url,
    /// The trusted `root.json`, as the image ships it.
    pub trusted_root: Vec<u8>,
    /// A directory on persistent storage for the last trusted metadata.
    pub datastore: PathBuf,
}

/// Metadata verified down to the targets.
#[derive(Debug)]
pub struct Verified {
    repo: tough::Repository,
    targets_url: Url,
}

/// Loads and verifies the repository's metadata through `transport`.
pub async fn load<T>(source: &Source, transport: T) -> Result<Verified, UpdateError>
where
    T: Transport + Send + Sync + 'static,
{
    std::fs::create_dir_all(&source.datastore).map_err(|e| {
        UpdateError::Local(format!("datastore {}: {e}", source.datastore.display()))
    })?;
    let repo = RepositoryLoader::new(
        &source.trusted_root,
        source.metadata_url.clone(),
        source.targets_url.clone(),
    )
    .transport(transport)
    .datastore(&source.datastore)
    .expiration_enforcement(ExpirationEnforcement::Safe)
    .load()
    .await
    .map_err(classify)?;
    Ok(Verified {
        repo,
        targets_url: source.targets_url.clone(),
    })
}

impl Verified {
    /// The release `version` of `image_id`.
    pub fn release(&self, image_id: &str, version: &str) -> Result<Release, UpdateError> {
        let entries: Vec<(String, &tough::schema::Target)> = self
            .repo
            .all_targets()
            .map(|(name, target)| (name.raw().to_owned(), target))
            .collect();
        release::select(
            entries.iter().map(|(name, t)| TargetInfo {
                name,
                length: t.length,
                sha256: &t.hashes.sha256,
                custom: &t.custom,
            }),
            image_id,
            version,
        )
    }

    /// Where `artifact`'s bytes are served: `<sha256>.<name>` under the targets URL when
    /// the repository uses consistent snapshots (every published file keeps its own
    /// name, so a mirror is never caught half-updated), `<name>` otherwise.
    pub fn artifact_url(&self, artifact: &Artifact) -> Result<Url, UpdateError> {
        let file = if self.repo.root().signed.consistent_snapshot {
            format!("{}.{}", hex::encode(artifact.sha256), artifact.name)
        } else {
            artifact.name.clone()
        };
        let mut base = self.targets_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(&file)
            .map_err(|e| UpdateError::Local(format!("target URL for {file}: {e}")))
    }

    /// When the first of the trusted metadata files expires: past it, nothing from this
    /// repository is accepted until it is signed again.
    pub fn expires(&self) -> jiff::Timestamp {
        let r = &self.repo;
        [
            r.root().signed.expires,
            r.timestamp().signed.expires,
            r.snapshot().signed.expires,
            r.targets().signed.expires,
        ]
        .into_iter()
        .min()
        .expect("four roles")
    }
}

/// `tough`'s error, as a verdict: refused (and why), unavailable, or local trouble.
fn classify(e: ToughError) -> UpdateError {
    use ToughError as E;
    let detail = e.to_string();
    let kind = match &e {
        E::ExpiredMetadata { .. } => Some(Refusal::Expired),
        E::VerifyMetadata { .. }
        | E::VerifyRoleMetadata { .. }
        | E::KeysNotFoundInRoot { .. }
        | E::NoRoleKeysinRoot { .. } => Some(Refusal::Signature),
        E::OlderMetadata { .. }
        | E::OlderSnapshotInTimestamp { .. }
        | E::SnapshotRoleRollback { .. } => Some(Refusal::Older),
        E::HashMismatch { .. }
        | E::MaxSizeExceeded { .. }
        | E::MaxUpdatesExceeded { .. }
        | E::ParseMetadata { .. }
        | E::MetaMissing { .. }
        | E::TimestampMetaLength { .. }
        | E::MissingSnapshotMeta { .. }
        | E::SnapshotTargetsMetaMissing { .. }
        | E::SnapshotRoleMissing { .. }
        | E::VersionMismatch { .. }
        | E::SpecVersion { .. } => Some(Refusal::Metadata),
        _ => None,
    };
    match (kind, &e) {
        (Some(kind), _) => UpdateError::refused(kind, detail),
        (None, E::Transport { .. }) => UpdateError::Unavailable(detail),
        (None, _) => UpdateError::Local(detail),
    }
}
