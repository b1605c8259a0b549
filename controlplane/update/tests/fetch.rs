//! The repository served over HTTP by a real nginx, as a fleet's hosts reach it: the
//! metadata through `tough` with our transport, the artifacts downloaded, resumed with
//! `Range` after a download is cut, and refused (and removed) when the server's bytes
//! differ from the signed ones.

mod common;

use ccnq_testkit::nginx::Nginx;
use ccnq_update::fetch::{download, HttpSettings, HttpTransport, Pace};
use ccnq_update::repository::{self, Source, Verified};
use ccnq_update::{ArtifactRole, Refusal, UpdateError};
use common::{build, build_with_root, days, signing, Repo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

fn over_http(repo: &Repo, nginx: &Nginx, host: &str) -> Source {
    let base = Url::parse(&nginx.url()).unwrap();
    Source {
        metadata_url: base.join("metadata/").unwrap(),
        targets_url: base.join("targets/").unwrap(),
        ..repo.source(host)
    }
}

async fn load(source: &Source) -> Result<Verified, UpdateError> {
    repository::load(source, HttpTransport::default()).await
}

fn quiet() -> Pace<'static> {
    Pace {
        rate_limit: None,
        progress: &|_, _| {},
    }
}

/// The status lines nginx logged, in order (`"GET /targets/… HTTP/1.1" 206 …`).
fn statuses_for(nginx: &Nginx, name: &str) -> Vec<String> {
    nginx
        .access_log()
        .lines()
        .filter(|l| l.contains(name))
        .filter_map(|l| l.split('"').nth(2).map(|s| s.trim().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_release_is_verified_and_downloaded_over_http() {
    let repo = Repo::new().await;
    repo.publish(
        &[build(repo.dir.path(), "ccnq", "1.0.0")],
        signing(1, days(7)),
    )
    .await;
    let nginx = Nginx::serve(&repo.path(), None);
    let verified = load(&over_http(&repo, &nginx, "a")).await.unwrap();
    let release = verified.release("ccnq", "1.0.0").unwrap();
    let out = tempfile::tempdir().unwrap();
    for a in &release.artifacts {
        let part = out.path().join(format!("{}.part", a.name));
        download(
            &HttpSettings::default(),
            &verified.artifact_url(a).unwrap(),
            &part,
            a,
            &quiet(),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::metadata(&part).unwrap().len(), a.length);
    }
    // tough asked for a newer root first (404: there is none), then the roles in turn.
    let log = nginx.access_log();
    assert!(
        log.contains("GET /metadata/2.root.json HTTP/1.1\" 404"),
        "{log}"
    );
    assert!(
        log.contains("GET /metadata/timestamp.json HTTP/1.1\" 200"),
        "{log}"
    );
}

#[tokio::test]
async fn a_download_cut_short_resumes_with_a_range_request() {
    let repo = Repo::new().await;
    let len = 4 << 20;
    repo.publish(
        &[build_with_root(repo.dir.path(), "ccnq", "1.0.0", len)],
        signing(1, days(7)),
    )
    .await;
    // 1 MiB/s from the server: the first attempt is cut while it is under way.
    let nginx = Nginx::serve(&repo.path(), Some(1 << 20));
    let verified = load(&over_http(&repo, &nginx, "a")).await.unwrap();
    let root = verified
        .release("ccnq", "1.0.0")
        .unwrap()
        .artifact(ArtifactRole::Root)
        .clone();
    let url = verified.artifact_url(&root).unwrap();
    let out = tempfile::tempdir().unwrap();
    let part = out.path().join("root.part");

    let seen = Arc::new(AtomicU64::new(0));
    let first = {
        let (url, part, root, seen) = (url.clone(), part.clone(), root.clone(), seen.clone());
        tokio::spawn(async move {
            let progress = move |done: u64, _total: u64| seen.store(done, Ordering::SeqCst);
            let pace = Pace {
                rate_limit: None,
                progress: &progress,
            };
            download(&HttpSettings::default(), &url, &part, &root, &pace).await
        })
    };
    while seen.load(Ordering::SeqCst) < (1 << 20) {
        assert!(
            !first.is_finished(),
            "the first attempt ended before it was cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // As a restart of the daemon would: the task is gone mid-body.
    first.abort();
    let _ = first.await;
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept >= 1 << 20 && kept < len as u64, "kept {kept} bytes");

    download(&HttpSettings::default(), &url, &part, &root, &quiet())
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&part).unwrap().len(), len as u64);
    let statuses = statuses_for(&nginx, &root.name);
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(
        statuses[1].starts_with("206 "),
        "the second asks for the rest: {statuses:?}"
    );
    let resent: u64 = statuses[1].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(resent < len as u64, "resent {resent} bytes of {len}");
}

#[tokio::test]
async fn bytes_that_differ_from_the_signed_ones_are_refused_and_removed() {
    let repo = Repo::new().await;
    repo.publish(
        &[build(repo.dir.path(), "ccnq", "1.0.0")],
        signing(1, days(7)),
    )
    .await;
    let nginx = Nginx::serve(&repo.path(), None);
    let verified = load(&over_http(&repo, &nginx, "a")).await.unwrap();
    let uki = verified
        .release("ccnq", "1.0.0")
        .unwrap()
        .artifact(ArtifactRole::UkiB)
        .clone();
    let url = verified.artifact_url(&uki).unwrap();
    // The mirror's copy is changed in place (a new file: the published one is a link).
    let served = repo
        .path()
        .join("targets")
        .join(url.path_segments().unwrap().next_back().unwrap());
    let mut bytes = std::fs::read(&served).unwrap();
    bytes[0] ^= 1;
    std::fs::remove_file(&served).unwrap();
    std::fs::write(&served, bytes).unwrap();

    let out = tempfile::tempdir().unwrap();
    let part = out.path().join("uki.part");
    let e = download(&HttpSettings::default(), &url, &part, &uki, &quiet())
        .await
        .unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::Artifact), "{e}");
    assert!(
        !part.exists(),
        "a refused download is not kept to be resumed"
    );
}
