//! `ccnqctl release`: the operator's side of the update repository.
//!
//! A release is published from an `image/build` output into a directory of plain files
//! (TUF metadata and targets) that any web server or mirror serves; hosts read it with
//! `tough` (`ccnq-update`). This makes the signing key, the repository's trusted root
//! (what `image/build --update-root` puts in the image) and each publish, so that the
//! release process needs nothing but this binary. The signing itself is
//! `ccnq_update::publish`; this is its command line.

use ccnq_update::publish::{self, Build, Signing};
use clap::Subcommand;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Make a signing key (ECDSA P-256, PKCS#8 DER, mode 0600). Never overwrites.
    Key {
        /// Where to write it.
        out: PathBuf,
    },
    /// Start a repository trusting KEY for every role: writes `REPO/metadata/1.root.json`,
    /// the file the image ships as its trusted root (`image/build --update-root`).
    Init {
        #[arg(long)]
        repo: PathBuf,
        /// The signing key (repeatable: every key is trusted, one signature needed).
        #[arg(long = "signing-key", required = true)]
        keys: Vec<PathBuf>,
        /// When the root expires: `Nd` (days from now) or an RFC 3339 time.
        #[arg(long, default_value = "3650d")]
        expires: String,
    },
    /// Add the build in IMAGE_DIR (`image/build --out`) to the repository and sign it
    /// again. Versions already published stay.
    Publish {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long = "signing-key", required = true)]
        keys: Vec<PathBuf>,
        /// The `image/build` output directory (repeatable).
        #[arg(long = "image-dir", required = true)]
        image_dirs: Vec<PathBuf>,
        /// The image id (the output's file prefix, os-release's IMAGE_ID).
        #[arg(long, default_value = "ccnq")]
        image_id: String,
        /// When timestamp, snapshot and targets expire: `Nd` or an RFC 3339 time. Hosts
        /// refuse expired metadata: sign again before then.
        #[arg(long, default_value = "30d")]
        expires: String,
    },
}

pub fn run(cmd: &ReleaseCommand) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match cmd {
        ReleaseCommand::Key { out } => new_key(out),
        ReleaseCommand::Init {
            repo,
            keys,
            expires,
        } => {
            let expires = parse_expiry(expires)?;
            rt.block_on(publish::create_root(repo, keys, expires))
                .map_err(|e| e.to_string())?;
            println!("{}", repo.join("metadata/1.root.json").display());
            Ok(())
        }
        ReleaseCommand::Publish {
            repo,
            keys,
            image_dirs,
            image_id,
            expires,
        } => {
            let expires = parse_expiry(expires)?;
            let builds = image_dirs
                .iter()
                .map(|dir| Build::from_image_output(dir, image_id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let version = next_version(repo)?;
            let signing = Signing { expires, version };
            rt.block_on(publish::publish(repo, keys, &builds, signing))
                .map_err(|e| e.to_string())?;
            for b in &builds {
                println!(
                    "published {} {} (metadata version {version}, expires {expires})",
                    b.image_id, b.version
                );
            }
            Ok(())
        }
    }
}

fn new_key(out: &Path) -> Result<(), String> {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|e| format!("generating a key: {e}"))?;
    let der = pair
        .to_pkcs8v1()
        .map_err(|e| format!("encoding the key: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    file.write_all(der.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// `Nd` from now, or an RFC 3339 time.
fn parse_expiry(text: &str) -> Result<jiff::Timestamp, String> {
    if let Some(days) = text.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .map_err(|_| format!("--expires {text:?}: expected Nd (days) or an RFC 3339 time"))?;
        return Ok(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * days));
    }
    text.parse()
        .map_err(|e| format!("--expires {text:?}: expected Nd (days) or an RFC 3339 time: {e}"))
}

/// One more than the repository's current metadata version (1 for a new repository):
/// hosts refuse metadata older than what they have seen.
fn next_version(repo: &Path) -> Result<NonZeroU64, String> {
    let path = repo.join("metadata/timestamp.json");
    let current = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["signed"]["version"].as_u64())
            .ok_or_else(|| format!("{}: no signed.version", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    NonZeroU64::new(current + 1).ok_or_else(|| format!("{}: version overflow", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_days_or_a_time() {
        let in_30 = parse_expiry("30d").unwrap();
        let now = jiff::Timestamp::now();
        assert!(in_30 > now + jiff::SignedDuration::from_hours(24 * 29));
        assert_eq!(
            parse_expiry("2020-01-01T00:00:00Z").unwrap().to_string(),
            "2020-01-01T00:00:00Z"
        );
        assert!(parse_expiry("soon")
            .unwrap_err()
            .contains("--expires \"soon\""));
    }
}
