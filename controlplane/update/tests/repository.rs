//! A real TUF repository, signed by `publish` and read by `tough` through its own
//! `file://` transport: what a host accepts, and each thing it must refuse (no
//! signature, a key the root does not trust, expired metadata, metadata older than the
//! trusted, an artifact whose bytes differ, a build for another image id).

mod common;

use ccnq_update::repository::{self, Source, Verified};
use ccnq_update::{artifact, ArtifactRole, Refusal, UpdateError};
use common::{build, copy_dir, days, signing, Repo, ROOTHASH};
use jiff::{SignedDuration, Timestamp};
use tough::FilesystemTransport;

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
async fn a_partition_is_published_without_its_zero_tail() {
    let repo = Repo::new().await;
    let dir = repo.dir.path();
    let b = build(dir, "ccnq", "2026.12.0");
    // A root partition image: 5000 bytes of filesystem, then zeros to 1 MiB.
    let mut image = vec![3u8; 5000];
    image.resize(1 << 20, 0);
    std::fs::write(&b.files[0].1, &image).unwrap();
    repo.publish(&[b], signing(1, days(7))).await;

    let release = repo
        .load("a")
        .await
        .unwrap()
        .release("ccnq", "2026.12.0")
        .unwrap();
    let root = release.artifact(ArtifactRole::Root);
    assert_eq!(
        root.length, 8192,
        "to the end of the last 4 KiB block holding data"
    );
    assert_eq!(root.image_length, 1 << 20);
    let verity = release.artifact(ArtifactRole::Verity);
    assert_eq!(
        verity.image_length, verity.length,
        "no zero tail: sent whole"
    );
    let uki = release.artifact(ArtifactRole::UkiA);
    assert_eq!(uki.image_length, uki.length);
    let served = repo.load("a").await.unwrap().artifact_url(root).unwrap();
    let bytes = std::fs::read(served.to_file_path().unwrap()).unwrap();
    assert_eq!(bytes, image[..8192]);
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
