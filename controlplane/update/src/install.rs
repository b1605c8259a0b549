//! Writing a release into the slot the host did not boot, and its boot entry.
//!
//! The order is what makes a crash at any point harmless:
//! 1. the other slot's old boot entry is removed first, so that no entry ever points at
//!    a slot being overwritten;
//! 2. the root and verity partitions are written (with the zero tail their artifacts
//!    leave off), synced, and read back from the device (the page cache dropped first,
//!    so the check sees the disk, not our own buffers) against the signed SHA-256;
//! 3. only then is the UKI placed on the ESP, under a temporary name, synced, and renamed
//!    to `<image_id>_<version>+<tries>.efi`: systemd-boot's boot counting, so a version
//!    that fails its boots is given up for the previous entry by the boot loader itself.
//!
//! The booted slot's partitions and entry are never written, with one exception kept
//! explicit: a downgrade marks the booted entry as a last resort (`+0`), because
//! systemd-boot prefers the newest version among entries with tries left, and would
//! otherwise boot the booted version again instead of the older one.
//!
//! Talks to the host's disk (block devices) and its EFI system partition only.

use crate::artifact;
use crate::error::UpdateError;
use crate::release::Artifact;
use std::cmp::Ordering;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Boot attempts given to a new entry before systemd-boot goes back to the previous one,
/// unless the host's configuration says otherwise.
pub const BOOT_TRIES: u32 = 3;

/// Where one slot's parts live.
#[derive(Debug, Clone)]
pub struct SlotPaths {
    /// The root partition (`/dev/disk/by-partlabel/root-b`, or a file in tests).
    pub root: PathBuf,
    /// Its verity partition.
    pub verity: PathBuf,
}

/// The ESP's boot entries directory (`<esp>/EFI/Linux`) and the image id naming them.
#[derive(Debug, Clone)]
pub struct Entries {
    pub dir: PathBuf,
    pub image_id: String,
}

/// A boot entry on the ESP: `<image_id>_<version>[+left[-done]].efi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub version: String,
    /// Tries left, when the entry is counting (`None`: blessed, or never counted).
    pub tries_left: Option<u32>,
}

impl Entries {
    /// The image's entries, in no particular order.
    pub fn list(&self) -> Result<Vec<Entry>, UpdateError> {
        let read = std::fs::read_dir(&self.dir).map_err(|e| local(&self.dir, e))?;
        let mut out = Vec::new();
        for item in read {
            let item = item.map_err(|e| local(&self.dir, e))?;
            if let Some(name) = item.file_name().to_str() {
                if let Some(e) = parse_entry(&self.image_id, name) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// Removes every entry of a version other than `keep` (the booted one): what is
    /// left of the slot about to be overwritten. Synced before it returns.
    pub fn remove_others(&self, keep: &str) -> Result<Vec<String>, UpdateError> {
        let mut removed = Vec::new();
        for e in self.list()? {
            if e.version != keep {
                let path = self.dir.join(&e.file);
                std::fs::remove_file(&path).map_err(|err| local(&path, err))?;
                removed.push(e.file);
            }
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Places `uki` (already checked) as `version`'s entry with `tries` boot attempts.
    /// When `version` sorts before `booted`, the booted entry becomes a last resort.
    pub fn install(
        &self,
        uki: &Path,
        version: &str,
        booted: &str,
        tries: u32,
    ) -> Result<String, UpdateError> {
        let name = format!("{}_{version}+{tries}.efi", self.image_id);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::copy(uki, &tmp).map_err(|e| local(&tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| local(&tmp, e))?;
        let path = self.dir.join(&name);
        std::fs::rename(&tmp, &path).map_err(|e| local(&path, e))?;
        if compare_versions(version, booted) != Ordering::Greater {
            for e in self.list()? {
                if e.version == booted {
                    let last = format!("{}_{booted}+0.efi", self.image_id);
                    let from = self.dir.join(&e.file);
                    std::fs::rename(&from, self.dir.join(&last))
                        .map_err(|err| local(&from, err))?;
                }
            }
        }
        sync_dir(&self.dir)?;
        Ok(name)
    }
}

/// Reads an entry's file name; `None` for another image's entries and other files.
pub fn parse_entry(image_id: &str, file: &str) -> Option<Entry> {
    let stem = file.strip_suffix(".efi")?;
    let rest = stem.strip_prefix(image_id)?.strip_prefix('_')?;
    let (version, counter) = match rest.rsplit_once('+') {
        Some((v, c)) => (v, Some(c)),
        None => (rest, None),
    };
    let tries_left = match counter {
        None => None,
        Some(c) => Some(c.split('-').next()?.parse().ok()?),
    };
    (!version.is_empty()).then(|| Entry {
        file: file.to_owned(),
        version: version.to_owned(),
        tries_left,
    })
}

/// Orders two versions as systemd-boot does for entries (the UAPI version format
/// specification, as `strverscmp_improved`): runs of digits numerically, runs of
/// letters alphabetically, `~` before anything (a pre-release), and the separators
/// `.`, `-`, `_`, `+` only as boundaries.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let is_sep = |c: u8| matches!(c, b'.' | b'-' | b'_' | b'+');
    loop {
        while let [c, rest @ ..] = a {
            if is_sep(*c) {
                a = rest
            } else {
                break;
            }
        }
        while let [c, rest @ ..] = b {
            if is_sep(*c) {
                b = rest
            } else {
                break;
            }
        }
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (da, db) = (digits(a), digits(b));
        if da > 0 || db > 0 {
            if da == 0 {
                return Ordering::Less;
            }
            if db == 0 {
                return Ordering::Greater;
            }
            let strip = |s: &[u8]| -> Vec<u8> {
                let s: Vec<u8> = s.iter().copied().skip_while(|c| *c == b'0').collect();
                s
            };
            let (na, nb) = (strip(&a[..da]), strip(&b[..db]));
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(&nb));
            if o != Ordering::Equal {
                return o;
            }
            a = &a[da..];
            b = &b[db..];
            continue;
        }
        let letters = |s: &[u8]| {
            s.iter()
                .take_while(|c| !c.is_ascii_digit() && !is_sep(**c) && **c != b'~')
                .count()
        };
        let (la, lb) = (letters(a), letters(b));
        let o = a[..la].cmp(&b[..lb]);
        if o != Ordering::Equal {
            return o;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

/// Blocking (run it on a blocking thread). Copies the checked file `src` onto the
/// partition `dev` (from its first byte), zeroes the rest of the partition image
/// (`artifact.image_length`: the tail left off the wire), syncs it, and checks what the
/// device then holds: the signed SHA-256 of the first `length` bytes, zeros after them.
/// `progress` hears the bytes written so far (the zeros counted as written).
pub fn write_partition(
    src: &Path,
    dev: &Path,
    artifact: &Artifact,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), UpdateError> {
    let mut input = std::fs::File::open(src).map_err(|e| local(src, e))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(dev)
        .map_err(|e| local(dev, e))?;
    let room = out.seek(SeekFrom::End(0)).map_err(|e| local(dev, e))?;
    if room < artifact.image_length {
        return Err(UpdateError::Local(format!(
            "{}: {room} bytes, too small for {} ({} bytes)",
            dev.display(),
            artifact.name,
            artifact.image_length
        )));
    }
    out.seek(SeekFrom::Start(0)).map_err(|e| local(dev, e))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| local(src, e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| local(dev, e))?;
        done += n as u64;
        progress(done);
    }
    zero(&mut out, dev, done, artifact.image_length)?;
    progress(artifact.image_length);
    out.sync_all().map_err(|e| local(dev, e))?;
    // What was written is in the page cache: drop it, so the check reads the device.
    nix::fcntl::posix_fadvise(
        std::os::fd::AsRawFd::as_raw_fd(&out),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .map_err(|e| UpdateError::Local(format!("{}: dropping the cache: {e}", dev.display())))?;
    drop(out);
    artifact::check_blocking(dev, artifact)
}

/// Zeroes `from..to` of `out`: by the device (`fallocate` ZERO_RANGE: a block device
/// passes it on as write-zeroes, a file makes it a hole), else by writing zeros.
fn zero(out: &mut std::fs::File, dev: &Path, from: u64, to: u64) -> Result<(), UpdateError> {
    if to <= from {
        return Ok(());
    }
    let len = i64::try_from(to - from).map_err(|e| local(dev, e))?;
    let start = i64::try_from(from).map_err(|e| local(dev, e))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&*out);
    if nix::fcntl::fallocate(
        fd,
        nix::fcntl::FallocateFlags::FALLOC_FL_ZERO_RANGE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
        start,
        len,
    )
    .is_ok()
    {
        return Ok(());
    }
    out.seek(SeekFrom::Start(from)).map_err(|e| local(dev, e))?;
    let zeros = vec![0u8; 4 << 20];
    let mut left = to - from;
    while left > 0 {
        let n = zeros.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        out.write_all(&zeros[..n]).map_err(|e| local(dev, e))?;
        left -= n as u64;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), UpdateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| local(dir, e))
}

fn local(path: &Path, e: impl std::fmt::Display) -> UpdateError {
    UpdateError::Local(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_systemd_boot_orders_them() {
        use Ordering::*;
        for (a, b, o) in [
            ("2026.12.1", "2026.12.0", Greater),
            ("2026.12.10", "2026.12.9", Greater),
            ("1.0", "1.0.0", Less),
            ("1.0~rc1", "1.0", Less),
            ("2", "2", Equal),
            ("1.0a", "1.0b", Less),
            ("1.01", "1.1", Equal),
            // A number sorts after letters, as the UAPI version format says.
            ("v2", "1", Less),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn entry_names_are_read_with_their_counters() {
        let e = parse_entry("ccnq", "ccnq_2026.12.1+2-1.efi").unwrap();
        assert_eq!((e.version.as_str(), e.tries_left), ("2026.12.1", Some(2)));
        let e = parse_entry("ccnq", "ccnq_2026.12.1.efi").unwrap();
        assert_eq!((e.version.as_str(), e.tries_left), ("2026.12.1", None));
        assert_eq!(
            parse_entry("ccnq", "ccnq_1+0.efi").unwrap().tries_left,
            Some(0)
        );
        assert_eq!(parse_entry("ccnq", "other_1.efi"), None);
        assert_eq!(parse_entry("ccnq", "ccnq_1.conf"), None);
        assert_eq!(parse_entry("ccnq", "ccnq_.efi"), None);
    }
}
