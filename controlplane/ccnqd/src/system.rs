//! Facts about the running system that the daemon reports but does not own: which image
//! and which A/B slot it booted.
//!
//! The image stamps `IMAGE_ID` and `IMAGE_VERSION` into os-release; the boot entry of each
//! slot puts `ccnq.slot=a|b` on the kernel command line. Both are read fresh on each
//! request, since they are tiny and an upgrade changes them only across a reboot anyway.

use ccnq_api::Version;
use std::path::{Path, PathBuf};

/// Reads `/etc/os-release` (or the first of `paths` that exists) and the kernel command
/// line into the version document.
pub fn version(os_release: &[PathBuf], cmdline: &Path) -> Version {
    let release = os_release
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let cmdline = std::fs::read_to_string(cmdline).unwrap_or_default();
    Version {
        daemon: env!("CARGO_PKG_VERSION").to_string(),
        image_id: os_release_value(&release, "IMAGE_ID"),
        image_version: os_release_value(&release, "IMAGE_VERSION"),
        // A PXE boot has no slot (`ccnq.boot=pxe`, no `ccnq.slot`): said so, rather than
        // left unknown, because it changes what an upgrade is (a reboot, no slot write).
        slot: cmdline_value(&cmdline, "ccnq.slot").or_else(|| {
            (cmdline_value(&cmdline, "ccnq.boot").as_deref() == Some("pxe")).then(|| "pxe".into())
        }),
    }
}

/// The MAC of the interface a network boot came through: iPXE puts it on the kernel
/// command line (`ccnq.bootif=${netX/mac:hexhyp}`, image/pxe-artifacts), and the PXE
/// server's per-host files are named after it.
pub fn boot_interface(cmdline: &Path) -> Option<String> {
    let cmdline = std::fs::read_to_string(cmdline).ok()?;
    cmdline_value(&cmdline, "ccnq.bootif")
}

/// One value of an os-release file (a shell-compatible `KEY=value` list, values optionally
/// quoted, see os-release(5)).
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        if k != key {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        let v = v.replace("\\\"", "\"").replace("\\\\", "\\");
        (!v.is_empty()).then_some(v)
    })
}

/// The value of `key=value` on a kernel command line; the last one wins, as in the kernel.
pub fn cmdline_value(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.split_once('='))
        .rfind(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_and_bare_os_release_values() {
        let text =
            "NAME=\"CCNQ\"\nIMAGE_ID=ccnq\nIMAGE_VERSION='2026.11.2'\n# comment\nEMPTY=\"\"\n";
        assert_eq!(os_release_value(text, "IMAGE_ID").as_deref(), Some("ccnq"));
        assert_eq!(
            os_release_value(text, "IMAGE_VERSION").as_deref(),
            Some("2026.11.2")
        );
        assert_eq!(os_release_value(text, "NAME").as_deref(), Some("CCNQ"));
        assert_eq!(os_release_value(text, "EMPTY"), None);
        assert_eq!(os_release_value(text, "VERSION_ID"), None);
    }

    #[test]
    fn reads_the_slot_from_the_kernel_command_line() {
        let line = "console=ttyS0 roothash=abc ccnq.slot=b quiet\n";
        assert_eq!(cmdline_value(line, "ccnq.slot").as_deref(), Some("b"));
        assert_eq!(cmdline_value("quiet", "ccnq.slot"), None);
    }

    #[test]
    fn a_pxe_boot_reports_slot_pxe() {
        let dir = tempfile::tempdir().unwrap();
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "console=ttyS0 ccnq.boot=pxe").unwrap();
        assert_eq!(version(&[], &cmdline).slot.as_deref(), Some("pxe"));
        std::fs::write(&cmdline, "console=ttyS0").unwrap();
        assert_eq!(version(&[], &cmdline).slot, None);
        std::fs::write(&cmdline, "ccnq.boot=pxe ccnq.bootif=52-54-00-12-34-56 rw").unwrap();
        assert_eq!(
            boot_interface(&cmdline).as_deref(),
            Some("52-54-00-12-34-56")
        );
    }

    #[test]
    fn version_falls_back_to_the_second_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let second = dir.path().join("os-release");
        std::fs::write(&second, "IMAGE_ID=ccnq\nIMAGE_VERSION=1.2.3\n").unwrap();
        let cmdline = dir.path().join("cmdline");
        std::fs::write(&cmdline, "ccnq.slot=a").unwrap();
        let v = version(&[dir.path().join("missing"), second], &cmdline);
        assert_eq!(v.image_version.as_deref(), Some("1.2.3"));
        assert_eq!(v.slot.as_deref(), Some("a"));
        assert_eq!(v.daemon, env!("CARGO_PKG_VERSION"));
    }
}
