//! The writable data volume under the read-only image.
//!
//! Everything `ccnqd` keeps (its certificate, its audit log, later its checkpoint) lives
//! on a writable mount. On an appliance a read-only or missing volume means the disk
//! layout is wrong: starting anyway would lose state silently, so the daemon refuses.

use nix::sys::statvfs::{statvfs, FsFlags};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("data directory {0} does not exist (it must be on the writable data volume)")]
    Missing(PathBuf),
    #[error("data directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("data directory {0} is on a read-only mount (it must be on the writable data volume)")]
    ReadOnly(PathBuf),
    #[error("data directory {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot inspect the mount of {path}: {source}")]
    Stat { path: PathBuf, source: nix::Error },
}

/// Space on the volume, as the status endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub read_only: bool,
}

pub fn usage(path: &Path) -> Result<Usage, VolumeError> {
    let st = statvfs(path).map_err(|source| VolumeError::Stat {
        path: path.to_owned(),
        source,
    })?;
    let fragment = st.fragment_size() as u64;
    Ok(Usage {
        total_bytes: st.blocks() as u64 * fragment,
        free_bytes: st.blocks_available() as u64 * fragment,
        read_only: st.flags().contains(FsFlags::ST_RDONLY),
    })
}

/// Checks that `path` is a directory on a writable mount that we can write to.
///
/// The mount flag catches a volume that failed to mount (leaving the directory on the
/// read-only root); the probe file catches permissions and full or broken filesystems.
pub fn check_writable(path: &Path) -> Result<Usage, VolumeError> {
    let meta = std::fs::metadata(path).map_err(|_| VolumeError::Missing(path.to_owned()))?;
    if !meta.is_dir() {
        return Err(VolumeError::NotADirectory(path.to_owned()));
    }
    let usage = usage(path)?;
    if usage.read_only {
        return Err(VolumeError::ReadOnly(path.to_owned()));
    }
    let probe = path.join(".ccnqd-write-probe");
    std::fs::write(&probe, b"probe")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| match source.raw_os_error() {
            Some(code) if code == nix::libc::EROFS => VolumeError::ReadOnly(path.to_owned()),
            _ => VolumeError::NotWritable {
                path: path.to_owned(),
                source,
            },
        })?;
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_is_writable_and_has_space() {
        let dir = tempfile::tempdir().unwrap();
        let usage = check_writable(dir.path()).unwrap();
        assert!(!usage.read_only);
        assert!(usage.total_bytes > 0 && usage.free_bytes <= usage.total_bytes);
    }

    #[test]
    fn a_missing_directory_is_refused_by_name() {
        let err = check_writable(Path::new("/nonexistent/ccnq")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ccnq does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a_file_is_not_a_data_directory() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = check_writable(file.path()).unwrap_err();
        assert!(matches!(err, VolumeError::NotADirectory(_)));
    }

    /// A read-only tmpfs mounted for the test, unmounted when dropped.
    pub struct ReadOnlyMount(pub tempfile::TempDir);

    impl ReadOnlyMount {
        /// Needs root (the appliance's and CI's case); elsewhere `None`, unless `CI` is
        /// set, where missing privileges are a failure rather than a skip.
        pub fn new() -> Option<ReadOnlyMount> {
            let dir = tempfile::tempdir().unwrap();
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot mount a read-only tmpfs in CI"
                );
                eprintln!("SKIPPED: mounting a read-only tmpfs needs root");
                return None;
            }
            Some(ReadOnlyMount(dir))
        }
    }

    impl Drop for ReadOnlyMount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg(self.0.path())
                .status();
        }
    }

    #[test]
    fn a_read_only_mount_is_refused() {
        let Some(ro) = ReadOnlyMount::new() else {
            return;
        };
        assert!(usage(ro.0.path()).unwrap().read_only);
        let err = check_writable(ro.0.path()).unwrap_err();
        assert!(matches!(err, VolumeError::ReadOnly(_)), "{err}");
        assert!(err.to_string().contains("is on a read-only mount"), "{err}");
    }
}
