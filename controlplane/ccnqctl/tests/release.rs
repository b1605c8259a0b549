//! `ccnqctl release`: the real binary makes a key, a repository's root and two
//! publishes of `image/build`-shaped outputs; a host's reader (`ccnq_update`, through
//! `tough`) then verifies them under that root: both versions there, the partitions
//! without their zero tails, and expired metadata refused.

use ccnq_update::publish::dir_url;
use ccnq_update::repository::{self, Source};
use ccnq_update::{ArtifactRole, Refusal};
use std::path::{Path, PathBuf};
use std::process::Command;

fn ctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ccnqctl"))
        .args(args)
        .output()
        .unwrap()
}

/// What `image/build --out DIR` leaves for a release: version, root hash, the partition
/// images (a 64 KiB root holding 5000 bytes of data) and both UKIs.
fn image_output(dir: &Path, version: &str) -> PathBuf {
    let out = dir.join(format!("out-{version}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("ccnq.version"), format!("{version}\n")).unwrap();
    std::fs::write(out.join("ccnq.roothash"), format!("{}\n", "ab".repeat(32))).unwrap();
    let mut root = format!("root of {version}").repeat(400).into_bytes();
    root.truncate(5000);
    root.resize(64 << 10, 0);
    std::fs::write(out.join("ccnq.root.raw"), &root).unwrap();
    std::fs::write(out.join("ccnq.root-verity.raw"), vec![9u8; 8192]).unwrap();
    std::fs::write(out.join("ccnq.a.efi"), format!("uki a {version}")).unwrap();
    std::fs::write(out.join("ccnq.b.efi"), format!("uki b {version}")).unwrap();
    out
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[tokio::test]
async fn a_repository_is_made_published_twice_and_read_by_a_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    ok(ctl(&["release", "key", &d("k.pk8")]));
    let again = ctl(&["release", "key", &d("k.pk8")]);
    assert_eq!(again.status.code(), Some(2), "a key is never overwritten");
    let root_path = ok(ctl(&[
        "release",
        "init",
        "--repo",
        &d("repo"),
        "--signing-key",
        &d("k.pk8"),
    ]));
    assert_eq!(root_path.trim(), d("repo/metadata/1.root.json"));

    let v1 = image_output(dir.path(), "1.0.0");
    let v2 = image_output(dir.path(), "1.1.0");
    let publish = |out: &Path, extra: &[&str]| {
        let repo = d("repo");
        let key = d("k.pk8");
        let mut args = vec![
            "release",
            "publish",
            "--repo",
            &repo,
            "--signing-key",
            &key,
            "--image-dir",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(ctl(&args))
    };
    for out in [&v1, &v2] {
        let said = publish(out, &[]);
        assert!(said.starts_with("published ccnq "), "{said}");
    }

    let source = |datastore: &str| Source {
        metadata_url: dir_url(&dir.path().join("repo/metadata")).unwrap(),
        targets_url: dir_url(&dir.path().join("repo/targets")).unwrap(),
        trusted_root: std::fs::read(root_path.trim()).unwrap(),
        datastore: dir.path().join(datastore),
    };
    let verified = repository::load(&source("host"), tough::FilesystemTransport)
        .await
        .unwrap();
    for v in ["1.0.0", "1.1.0"] {
        let r = verified.release("ccnq", v).unwrap();
        let root = r.artifact(ArtifactRole::Root);
        assert_eq!((root.length, root.image_length), (8192, 64 << 10), "{v}");
    }

    // Signed again with an expiry in the past: a host refuses it.
    publish(&v2, &["--expires", "2020-01-01T00:00:00Z"]);
    let e = repository::load(&source("host"), tough::FilesystemTransport)
        .await
        .unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::Expired), "{e}");
}
