//! `[update]` of `ccnqd.toml`: where this host's images come from, and whom it trusts.
//!
//! Never in documents: a document that could name the repository or the trust root
//! could install anything. The URLs are per fleet (a mirror near the site), the trust
//! root is the image's own (`/usr/share/ccnq/update/root.json`, put there by
//! `image/build --update-root`), and the devices are the image's partition labels.
//! A host booted from the network has no slot to write: `pxe_url` says where its PXE
//! server's files are, to learn which version the server would boot it into.
//! Absent: the host reports the version it is asked for as one it cannot take.

use super::{seconds, ConfigError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateFile {
    /// The repository's metadata, e.g. `https://updates.example.net/ccnq/metadata/`.
    metadata_url: Option<String>,
    /// Its targets, e.g. `https://updates.example.net/ccnq/targets/`.
    targets_url: Option<String>,
    /// Network-booted hosts: the PXE server's directory over HTTP(S) (where
    /// `boot.ipxe`, `default.ipxe` and `hosts/` are), e.g. `http://pxe.example.net/ccnq/`.
    pxe_url: Option<String>,
    #[serde(default = "default_root")]
    trusted_root: PathBuf,
    /// PEM CA(s) of a server with a private CA; absent: the system's bundle.
    ca: Option<PathBuf>,
    /// Download bandwidth at most, in bytes per second; absent: no limit.
    rate_limit_bytes_per_sec: Option<u64>,
    /// Where the slots' partitions are found by label (`root-a`, `root-b-verity`…).
    #[serde(default = "default_partitions")]
    partitions: PathBuf,
    /// Where the EFI system partition is mounted.
    #[serde(default = "default_esp")]
    esp: PathBuf,
    /// Wait before a failed download or write is tried again.
    #[serde(default = "default_retry")]
    retry_secs: f64,
    /// Boots a new version is given to prove itself before the boot loader goes back.
    #[serde(default = "default_boot_tries")]
    boot_tries: u32,
    /// How long a new boot has to be healthy (`ccnqd --boot-check`).
    #[serde(default = "default_boot_check_deadline")]
    boot_check_deadline_secs: f64,
}

fn default_root() -> PathBuf {
    "/usr/share/ccnq/update/root.json".into()
}
fn default_partitions() -> PathBuf {
    "/dev/disk/by-partlabel".into()
}
fn default_esp() -> PathBuf {
    "/efi".into()
}
fn default_retry() -> f64 {
    60.0
}
fn default_boot_tries() -> u32 {
    ccnq_update::install::BOOT_TRIES
}
fn default_boot_check_deadline() -> f64 {
    300.0
}

/// Where the signed repository's two halves are.
#[derive(Debug, Clone)]
pub struct RepositoryUrls {
    pub metadata: url::Url,
    pub targets: url::Url,
}

/// The checked `[update]` section.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// The signed repository (hosts with slots); `None` on a network-booted fleet.
    pub repository: Option<RepositoryUrls>,
    /// The PXE server's files (network-booted hosts).
    pub pxe_url: Option<url::Url>,
    pub trusted_root: PathBuf,
    pub ca: Option<PathBuf>,
    pub rate_limit: Option<u64>,
    pub partitions: PathBuf,
    /// `<esp>/EFI/Linux`: the boot entries.
    pub entries: PathBuf,
    pub retry: Duration,
    pub boot_tries: u32,
    pub boot_check_deadline: Duration,
}

impl UpdateFile {
    pub(super) fn check(self, path: &Path) -> Result<UpdateConfig, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: format!("update.{key}"),
            reason,
        };
        let base = |key: &str, text: &str| -> Result<url::Url, ConfigError> {
            let url = url::Url::parse(text)
                .map_err(|e| invalid(key, format!("{text:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "https" | "http" | "file") {
                return Err(invalid(
                    key,
                    format!("{text:?}: the scheme must be https, http or file"),
                ));
            }
            if !url.path().ends_with('/') {
                return Err(invalid(
                    key,
                    format!("{text:?} must end with '/' (a directory)"),
                ));
            }
            Ok(url)
        };
        let absolute = |key: &str, p: &Path| {
            if p.is_absolute() {
                Ok(())
            } else {
                Err(invalid(key, "must be an absolute path".into()))
            }
        };
        absolute("trusted_root", &self.trusted_root)?;
        absolute("partitions", &self.partitions)?;
        absolute("esp", &self.esp)?;
        if self.rate_limit_bytes_per_sec == Some(0) {
            return Err(invalid(
                "rate_limit_bytes_per_sec",
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        let repository = match (&self.metadata_url, &self.targets_url) {
            (Some(m), Some(t)) => Some(RepositoryUrls {
                metadata: base("metadata_url", m)?,
                targets: base("targets_url", t)?,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "targets_url",
                    "missing: metadata_url is set".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "metadata_url",
                    "missing: targets_url is set".into(),
                ))
            }
        };
        let pxe_url = match &self.pxe_url {
            Some(u) => Some(base("pxe_url", u)?),
            None => None,
        };
        if repository.is_none() && pxe_url.is_none() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                key: "update".into(),
                reason: "needs metadata_url and targets_url (a repository), or pxe_url \
                         (network-booted hosts), or both"
                    .into(),
            });
        }
        Ok(UpdateConfig {
            repository,
            pxe_url,
            trusted_root: self.trusted_root,
            ca: self.ca,
            rate_limit: self.rate_limit_bytes_per_sec,
            partitions: self.partitions,
            entries: self.esp.join("EFI/Linux"),
            retry: seconds(self.retry_secs, 1.0, 86400.0).map_err(|r| invalid("retry_secs", r))?,
            boot_tries: match self.boot_tries {
                // systemd-boot counts down from the entry's name: 0 is never tried.
                n @ 1..=9 => n,
                n => return Err(invalid("boot_tries", format!("{n}: must be 1 to 9"))),
            },
            boot_check_deadline: seconds(self.boot_check_deadline_secs, 10.0, 3600.0)
                .map_err(|r| invalid("boot_check_deadline_secs", r))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    const BASE: &str =
        "host = \"sbc1.example.net\"\n[api]\nadmin_ca = \"/etc/ccnq/admin-ca.pem\"\n[update]\n";
    const URLS: &str = "metadata_url = \"https://u.example.net/ccnq/metadata/\"\ntargets_url = \"https://u.example.net/ccnq/targets/\"\n";

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{extra}"), Path::new("/etc/ccnq/ccnqd.toml"))
    }

    fn error_of(extra: &str) -> (String, String) {
        match parse(extra).unwrap_err() {
            ConfigError::Invalid { key, reason, .. } => (key, reason),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn the_urls_alone_get_the_images_defaults() {
        let u = parse(URLS).unwrap().update.unwrap();
        let r = u.repository.as_ref().unwrap();
        assert_eq!(r.metadata.as_str(), "https://u.example.net/ccnq/metadata/");
        assert!(u.pxe_url.is_none());
        assert_eq!(
            u.trusted_root,
            PathBuf::from("/usr/share/ccnq/update/root.json")
        );
        assert_eq!(u.partitions, PathBuf::from("/dev/disk/by-partlabel"));
        assert_eq!(u.entries, PathBuf::from("/efi/EFI/Linux"));
        assert_eq!(u.rate_limit, None);
        assert_eq!(u.retry, Duration::from_secs(60));
        assert_eq!(u.boot_tries, 3);
        assert_eq!(u.boot_check_deadline, Duration::from_secs(300));
    }

    #[test]
    fn a_network_booted_fleet_names_only_its_pxe_server() {
        let u = parse("pxe_url = \"http://pxe.example.net/ccnq/\"\n")
            .unwrap()
            .update
            .unwrap();
        assert!(u.repository.is_none());
        assert_eq!(u.pxe_url.unwrap().as_str(), "http://pxe.example.net/ccnq/");
    }

    #[test]
    fn each_bad_key_is_named_with_the_reason() {
        let (key, reason) = error_of("metadata_url = \"https://u.example.net/m\"\ntargets_url = \"https://u.example.net/t/\"\n");
        assert_eq!(key, "update.metadata_url");
        assert!(reason.contains("must end with '/'"), "{reason}");
        let (key, reason) =
            error_of("metadata_url = \"ftp://u/m/\"\ntargets_url = \"https://u/t/\"\n");
        assert_eq!(key, "update.metadata_url");
        assert!(reason.contains("scheme"), "{reason}");
        let (key, _) = error_of(&format!("{URLS}rate_limit_bytes_per_sec = 0\n"));
        assert_eq!(key, "update.rate_limit_bytes_per_sec");
        let (key, _) = error_of(&format!("{URLS}esp = \"efi\"\n"));
        assert_eq!(key, "update.esp");
        let (key, reason) = error_of("targets_url = \"https://u/t/\"\n");
        assert_eq!(key, "update.metadata_url");
        assert!(reason.contains("targets_url is set"), "{reason}");
        let (key, reason) = error_of("retry_secs = 5\n");
        assert_eq!(key, "update");
        assert!(reason.contains("pxe_url"), "{reason}");
        let (key, _) = error_of("pxe_url = \"http://pxe/ccnq\"\n");
        assert_eq!(key, "update.pxe_url");
        let (key, reason) = error_of(&format!("{URLS}boot_tries = 0\n"));
        assert_eq!(
            (key.as_str(), reason.as_str()),
            ("update.boot_tries", "0: must be 1 to 9")
        );
        let (key, _) = error_of(&format!("{URLS}boot_check_deadline_secs = 1\n"));
        assert_eq!(key, "update.boot_check_deadline_secs");
        let (key, _) = error_of(&format!("{URLS}mirror = \"x\"\n"));
        assert_eq!(key, "update.mirror");
    }
}
