//! Where the daemon resumes its changes feed: the sequence and revision it last applied.
//!
//! Kept in two places. The file (on the host's writable data volume) is what the daemon
//! reads at start: it is written atomically (temporary file, fsync, rename, fsync of the
//! directory), so after a crash or power loss it holds either the old or the new
//! checkpoint, never a mix. The `_local/ccnqd-<fqdn>` document in CouchDB lets an
//! operator see how far the host got; `_local` documents do not replicate.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Db;
use crate::error::CouchError;

/// The last applied point of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Opaque sequence, sent back unchanged as `since`.
    pub seq: Value,
    /// Revision of the host document that was applied at that sequence.
    pub rev: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint file {path} is not a checkpoint: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the checkpoint file. `Ok(None)` if there is none yet (first start).
pub fn load_file(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CheckpointError::Decode {
            path: path.to_path_buf(),
            source,
        })
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// First half of a save: the new content, complete and on disk, under a temporary name
/// beside the target (same filesystem, so the rename is atomic).
fn write_temp(path: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let name = path
        .file_name()
        .ok_or_else(|| io_err(path)(std::io::Error::other("no file name")))?
        .to_string_lossy();
    let temp = path.with_file_name(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let bytes =
        serde_json::to_vec(checkpoint).map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    let result = (|| {
        let mut f = fs::File::create(&temp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(io_err(&temp)(e));
    }
    Ok(temp)
}

/// Second half: the rename that switches readers from old to new, made durable.
fn commit(temp: &Path, path: &Path) -> Result<(), CheckpointError> {
    if let Err(e) = fs::rename(temp, path) {
        let _ = fs::remove_file(temp);
        return Err(io_err(path)(e));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Saves the checkpoint file atomically. Blocking: call it from `spawn_blocking` in
/// async code if the disk may be slow.
pub fn save_file(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let temp = write_temp(path, checkpoint)?;
    commit(&temp, path)
}

/// Name of the host's `_local` checkpoint document (without `_local/`).
pub fn local_name(fqdn: &str) -> String {
    format!("ccnqd-{fqdn}")
}

/// Writes `_local/ccnqd-<fqdn>` (reading its current `_rev` first).
pub async fn save_local(
    db: &Db,
    fqdn: &str,
    checkpoint: &Checkpoint,
) -> Result<String, CouchError> {
    let body = serde_json::json!({
        "seq": checkpoint.seq,
        "rev": checkpoint.rev,
        "host": fqdn,
    });
    db.put_local(&local_name(fqdn), &body).await
}

/// Reads `_local/ccnqd-<fqdn>`; `None` if absent.
pub async fn load_local(db: &Db, fqdn: &str) -> Result<Option<Checkpoint>, CouchError> {
    match db.get_local(&local_name(fqdn)).await? {
        None => Ok(None),
        Some(doc) => serde_json::from_value(doc)
            .map(Some)
            .map_err(|e| CouchError::Decode(format!("_local/{}: {e}", local_name(fqdn)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A scratch directory removed when the test ends.
    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    impl AsRef<Path> for TempDir {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }
    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn tempdir(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ccnq-couch-cp-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn cp(n: u64) -> Checkpoint {
        Checkpoint {
            seq: json!(format!("{n}-g1AAAA{}", "x".repeat(n as usize % 300))),
            rev: format!("{n}-abc"),
        }
    }

    #[test]
    fn missing_file_is_none_and_roundtrip() {
        let d = tempdir("rt");
        let p = d.join("checkpoint.json");
        assert_eq!(load_file(&p).unwrap(), None);
        save_file(&p, &cp(3)).unwrap();
        assert_eq!(load_file(&p).unwrap(), Some(cp(3)));
        save_file(
            &p,
            &Checkpoint {
                seq: json!(7),
                rev: "2-x".into(),
            },
        )
        .unwrap();
        assert_eq!(load_file(&p).unwrap().unwrap().seq, json!(7));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn crash_before_rename_keeps_the_old_checkpoint() {
        let d = tempdir("crash");
        let p = d.join("checkpoint.json");
        save_file(&p, &cp(1)).unwrap();
        // The process dies after writing the new content but before the rename.
        let temp = write_temp(&p, &cp(2)).unwrap();
        assert!(temp.exists());
        assert_eq!(load_file(&p).unwrap(), Some(cp(1)));
        // A later save still works and replaces it.
        save_file(&p, &cp(3)).unwrap();
        assert_eq!(load_file(&p).unwrap(), Some(cp(3)));
    }

    #[test]
    fn readers_only_ever_see_a_whole_old_or_new_file() {
        let d = tempdir("race");
        let p = d.join("checkpoint.json");
        save_file(&p, &cp(0)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let c = load_file(&p)
                        .expect("a torn or missing checkpoint")
                        .expect("present");
                    let n: u64 = c.rev.split('-').next().unwrap().parse().unwrap();
                    assert_eq!(c, cp(n), "content of two saves mixed");
                    assert!(n >= last, "went backwards");
                    last = n;
                    reads += 1;
                }
                reads
            })
        };
        for n in 1..=300 {
            save_file(&p, &cp(n)).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 0);
        assert_eq!(load_file(&p).unwrap(), Some(cp(300)));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_silent_restart() {
        let d = tempdir("garbage");
        let p = d.join("checkpoint.json");
        fs::write(&p, b"{\"seq\":").unwrap();
        assert!(matches!(load_file(&p), Err(CheckpointError::Decode { .. })));
    }
}
