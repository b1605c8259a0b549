//! Where `ccnqctl` finds the host and its credentials.
//!
//! Each setting comes from the first place that has it: the command-line flag, then the
//! environment (`CCNQ_*`, handled by clap), then `~/.config/ccnq/ccnqctl.toml`. An
//! operator sets up the file once and scripts override per call.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub endpoint: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub server_fingerprint: Option<String>,
}

pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ccnq/ccnqctl.toml"))
}

/// Reads the file; a missing default file is no error, a missing named one is.
pub fn load(path: &Path, named: bool) -> Result<File, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(File::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_file_is_empty_but_a_named_one_is_an_error() {
        let missing = Path::new("/nonexistent/ccnqctl.toml");
        assert!(load(missing, false).unwrap().endpoint.is_none());
        assert!(load(missing, true).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "endpoint = \"https://h:8443\"\ncertificate = \"x\"\n",
        )
        .unwrap();
        let err = load(&path, true).unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }
}
