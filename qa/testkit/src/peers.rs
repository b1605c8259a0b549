//! The pinned builds of the real peers (`../shared/peers/`, see its README): found beside
//! the checkout, checked against their sha256 and unpacked once per machine.
//!
//! Why here: several test binaries start at once and each wants the same tree. The first
//! unpacks it, under an exclusive lock, into a scratch folder that is renamed into place
//! only when complete; the others wait on the lock and then find the tree. A tarball that
//! is not the pinned one is refused, never run: a test must not pass against something
//! else than what the README describes.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `shared/` beside the checkout, or `$CCNQ_SHARED`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("CCNQ_SHARED") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// `<target>` of the running test binary (`<target>/debug/deps/<test>`), so the cache
/// follows `CARGO_TARGET_DIR`; the workspace's `target/` if that cannot be told.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "deps"))
                .and_then(|deps| deps.parent()?.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The folder `../shared/peers/<tarball>` is unpacked in, unpacking it first if this
/// machine has not yet: `<target>/peers/<name>-<first 16 hex digits of the sha256>`.
/// Panics, naming the path, if the tarball is missing or not the pinned one.
pub fn unpacked(tarball: &str, sha256: &str, name: &str) -> PathBuf {
    let peers = target_dir().join("peers");
    let dir = peers.join(format!("{name}-{}", &sha256[..16]));
    // Written last, inside the scratch folder: its presence means the tree is whole.
    let stamp = dir.join(".ccnq-unpacked");
    if stamp.exists() {
        return dir;
    }
    std::fs::create_dir_all(&peers)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", peers.display()));
    let lock_path = peers.join(format!("{name}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    // Held until `lock` is dropped at the end of this function.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if stamp.exists() {
        return dir;
    }
    let source = shared_dir().join("peers").join(tarball);
    let sum = sha256_of(&source);
    assert_eq!(
        sum,
        sha256,
        "{} is not the pinned build (../shared/peers/README.md)",
        source.display()
    );
    let scratch = peers.join(format!("{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(&source)
        .arg("-C")
        .arg(&scratch)
        .status()
        .expect("run tar");
    assert!(
        status.success(),
        "tar could not unpack {}",
        source.display()
    );
    std::fs::write(scratch.join(".ccnq-unpacked"), format!("{sum}\n")).unwrap();
    // A folder left by an interrupted run before the stamp existed is not whole.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&scratch, &dir).unwrap_or_else(|e| {
        panic!(
            "cannot move {} to {}: {e}",
            scratch.display(),
            dir.display()
        )
    });
    dir
}

fn sha256_of(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "the pinned build the tests run against is not readable at {}: {e} \
             (set CCNQ_SHARED to the shared folder if it is elsewhere)",
            path.display()
        )
    });
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
