//! A real TUF repository, signed by `publish` and read by `tough` through its own
//! `file://` transport: what a host accepts, and each thing it must refuse (no
//! signature, a key the root does not trust, expired metadata, metadata older than the
//! trusted, an artifact whose bytes differ, a build for another image id).

use ccnq_update::publish::{self, dir_url, Build, Signing};
use ccnq_update::repository::{self, Source, Verified};
use ccnq_update::{artifact, ArtifactRole, Refusal, UpdateError};
use jiff::{SignedDuration, Timestamp};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tough::FilesystemTransport;

const ROOTHASH: &str = "6567ef489d4cd03d56e18b9f1388ce9dadcd2295dd215e837059c39858451396";

struct Repo {
    dir: TempDir,
    key: PathBuf,
    root: Vec<u8>,
}

fn days(n: i64) -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(24 * n)
}

fn new_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let pair = rcgen::KeyPair::generate().unwrap();
    // tough reads ECDSA and Ed25519 keys as PKCS#8 DER (PEM only for RSA).
    std::fs::write(&path, pair.serialize_der()).unwrap();
    path
}

/// A build of `version` with small artifacts of its own bytes.
fn build(dir: &Path, image_id: &str, version: &str) -> Build {
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

fn signing(version: u64, expires: Timestamp) -> Signing {
    Signing {
        expires,
        version: NonZeroU64::new(version).unwrap(),
    }
}

impl Repo {
    async fn new() -> Repo {
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

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    async fn publish(&self, builds: &[Build], signing: Signing) {
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
    fn source(&self, host: &str) -> Source {
        Source {
            metadata_url: dir_url(&self.path().join("metadata")).unwrap(),
            targets_url: dir_url(&self.path().join("targets")).unwrap(),
            trusted_root: self.root.clone(),
            datastore: self.dir.path().join(format!("datastore-{host}")),
        }
    }

    async fn load(&self, host: &str) -> Result<Verified, UpdateError> {
        repository::load(&self.source(host), FilesystemTransport).await
    }

    fn timestamp(&self) -> PathBuf {
        self.path().join("metadata/timestamp.json")
    }
}

fn refusal(r: Result<Verified, UpdateError>) -> (Refusal, String) {
    match r {
        Err(e) => (
            e.refusal().unwrap_or_else(|| panic!("not a refusal: {e}")),
            e.to_string(),
        ),
        Ok(_) => panic!("accepted"),
    }
}

#[tokio::test]
async fn a_published_release_is_verified_and_its_artifacts_pass_their_check() {
    let repo = Repo::new().await;
    let dir = repo.dir.path();
    repo.publish(&[build(dir, "ccnq", "2026.11.0")], signing(1, days(7)))
        .await;
    // A second publish keeps the first version: a fleet may be sent back to it.
    repo.publish(&[build(dir, "ccnq", "2026.12.0")], signing(2, days(7)))
        .await;

    let verified = repo.load("a").await.unwrap();
    assert!(verified.expires() <= days(7));
    for version in ["2026.11.0", "2026.12.0"] {
        let release = verified.release("ccnq", version).unwrap();
        assert_eq!(release.roothash, ROOTHASH);
        for a in &release.artifacts {
            let url = verified.artifact_url(a).unwrap();
            let path = url.to_file_path().unwrap();
            assert!(
                path.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .ends_with(&a.name),
                "{url}"
            );
            artifact::check(&path, a).await.unwrap();
        }
    }
    assert!(matches!(
        verified.release("ccnq", "2027.1.0"),
        Err(UpdateError::NoSuchVersion { .. })
    ));
}

#[tokio::test]
async fn metadata_without_signatures_is_refused() {
    let repo = Repo::new().await;
    repo.publish(
        &[build(repo.dir.path(), "ccnq", "1.0.0")],
        signing(1, days(7)),
    )
    .await;
    let mut ts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.timestamp()).unwrap()).unwrap();
    ts["signatures"] = serde_json::json!([]);
    std::fs::write(repo.timestamp(), serde_json::to_vec(&ts).unwrap()).unwrap();
    let (kind, text) = refusal(repo.load("a").await);
    assert_eq!(kind, Refusal::Signature, "{text}");
    assert!(text.contains("timestamp"), "{text}");
}

#[tokio::test]
async fn metadata_signed_by_a_key_the_root_does_not_name_is_refused() {
    // The publisher will not sign with a key its root does not name; an attacker (or a
    // mirror of another fleet's repository) has a root of its own.
    let ours = Repo::new().await;
    let theirs = Repo::new().await;
    theirs
        .publish(
            &[build(theirs.dir.path(), "ccnq", "1.0.0")],
            signing(1, days(7)),
        )
        .await;
    let host = Source {
        trusted_root: ours.root.clone(),
        ..theirs.source("a")
    };
    let (kind, text) = refusal(repository::load(&host, FilesystemTransport).await);
    assert_eq!(kind, Refusal::Signature, "{text}");
}

#[tokio::test]
async fn expired_metadata_is_refused() {
    let repo = Repo::new().await;
    let an_hour_ago = Timestamp::now() - SignedDuration::from_hours(1);
    repo.publish(
        &[build(repo.dir.path(), "ccnq", "1.0.0")],
        signing(1, an_hour_ago),
    )
    .await;
    let (kind, text) = refusal(repo.load("a").await);
    assert_eq!(kind, Refusal::Expired, "{text}");
}

#[tokio::test]
async fn metadata_older_than_the_trusted_is_refused() {
    let repo = Repo::new().await;
    let dir = repo.dir.path();
    repo.publish(&[build(dir, "ccnq", "1.0.0")], signing(1, days(7)))
        .await;
    let old = dir.join("old-metadata");
    copy_dir(&repo.path().join("metadata"), &old);
    repo.publish(&[build(dir, "ccnq", "2.0.0")], signing(2, days(7)))
        .await;
    repo.load("a").await.unwrap();

    // A mirror (or an attacker) serves the first, still validly signed, metadata again.
    std::fs::remove_dir_all(repo.path().join("metadata")).unwrap();
    copy_dir(&old, &repo.path().join("metadata"));
    let (kind, text) = refusal(repo.load("a").await);
    assert_eq!(kind, Refusal::Older, "{text}");
    // A host that never trusted version 2 takes it: the datastore is what remembers.
    repo.load("b").await.unwrap();
}

#[tokio::test]
async fn an_artifact_whose_bytes_differ_from_the_signed_hash_is_refused() {
    let repo = Repo::new().await;
    repo.publish(
        &[build(repo.dir.path(), "ccnq", "1.0.0")],
        signing(1, days(7)),
    )
    .await;
    let verified = repo.load("a").await.unwrap();
    let release = verified.release("ccnq", "1.0.0").unwrap();
    let root = release.artifact(ArtifactRole::Root);
    let path = verified.artifact_url(root).unwrap().to_file_path().unwrap();
    // A new file in its place (the published one is a hard link to the build's).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x20;
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let e = artifact::check(&path, root).await.unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::Artifact), "{e}");
}

#[tokio::test]
async fn a_release_built_for_another_image_id_is_refused() {
    let repo = Repo::new().await;
    repo.publish(
        &[build(repo.dir.path(), "ccnq-lab", "1.0.0")],
        signing(1, days(7)),
    )
    .await;
    let verified = repo.load("a").await.unwrap();
    let e = verified.release("ccnq", "1.0.0").unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::OtherImage), "{e}");
    assert!(e.to_string().contains("ccnq-lab"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
