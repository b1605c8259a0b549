//! A real TUF repository, signed by `publish`, for the tests of this crate: the keys,
//! builds with small artifacts of their own bytes, and a host's view of it.
#![allow(dead_code)] // each test binary uses its part

use ccnq_update::publish::{self, dir_url, Build, Signing};
use ccnq_update::repository::{self, Source, Verified};
use ccnq_update::{ArtifactRole, UpdateError};
use jiff::{SignedDuration, Timestamp};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tough::FilesystemTransport;

pub const ROOTHASH: &str = "6567ef489d4cd03d56e18b9f1388ce9dadcd2295dd215e837059c39858451396";

pub struct Repo {
    pub dir: TempDir,
    pub key: PathBuf,
    pub root: Vec<u8>,
}

pub fn days(n: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(24 * n)
}

pub fn new_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let pair = rcgen::KeyPair::generate().unwrap();
    // tough reads ECDSA and Ed25519 keys as PKCS#8 DER (PEM only for RSA).
    std::fs::write(&path, pair.serialize_der()).unwrap();
    path
}

/// A build of `version` with small artifacts of its own bytes.
pub fn build(dir: &Path, image_id: &str, version: &str) -> Build {
    let out = dir.join(format!("build-{image_id}-{version}"));
    std::fs::create_dir_all(&out).unwrap();
    let files = ArtifactRole::ALL
        .iter()
        .map(|role| {
            let path = out.join(format!("{image_id}.{}", role.suffix()));
            std::fs::write(&path, format!("{image_id} {version} {role}\n").repeat(1000)).unwrap();
            (*role, path)
        })
        .collect();
    Build {
        image_id: image_id.into(),
        version: version.into(),
        roothash: ROOTHASH.into(),
        files,
    }
}

pub fn signing(version: u64, expires: Timestamp) -> Signing {
    Signing {
        expires,
        version: NonZeroU64::new(version).unwrap(),
    }
}

impl Repo {
    pub async fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let key = new_key(dir.path(), "key.pk8");
        let root = publish::create_root(
            &dir.path().join("repo"),
            std::slice::from_ref(&key),
            days(365),
        )
        .await
        .unwrap();
        Repo { dir, key, root }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub async fn publish(&self, builds: &[Build], signing: Signing) {
        publish::publish(
            &self.path(),
            std::slice::from_ref(&self.key),
            builds,
            signing,
        )
        .await
        .unwrap();
    }

    /// A host's view: the trusted root it ships and its own datastore.
    pub fn source(&self, host: &str) -> Source {
        Source {
            metadata_url: dir_url(&self.path().join("metadata")).unwrap(),
            targets_url: dir_url(&self.path().join("targets")).unwrap(),
            trusted_root: self.root.clone(),
            datastore: self.dir.path().join(format!("datastore-{host}")),
        }
    }

    pub async fn load(&self, host: &str) -> Result<Verified, UpdateError> {
        repository::load(&self.source(host), FilesystemTransport).await
    }

    pub fn timestamp(&self) -> PathBuf {
        self.path().join("metadata/timestamp.json")
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A build whose root artifact is `len` bytes (to give a download time to be cut).
pub fn build_with_root(dir: &Path, image_id: &str, version: &str, len: usize) -> Build {
    let b = build(dir, image_id, version);
    let root = &b.files[0];
    assert_eq!(root.0, ArtifactRole::Root);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&root.1, bytes).unwrap();
    b
}
