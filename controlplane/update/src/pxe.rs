//! Which version the PXE server would boot this host into: a network-booted host has no
//! slot to write, so it upgrades by rebooting, and only once the server offers the
//! version its document names (else it would boot the same version again).
//!
//! The layout is `image/pxe-artifacts`': beside each version's own directory
//! (`<version>/boot.ipxe`), `boot.ipxe` picks the version, from `hosts/<mac>.ipxe` (this
//! host's choice) or else `default.ipxe`; each holds `set ccnq_version <version>`. The
//! MAC is the one iPXE booted from, which it puts on the kernel command line
//! (`ccnq.bootif=`). A host asks the same server over HTTP what those files say.
//! Talks to the PXE server's web server only.

use crate::error::UpdateError;
use crate::fetch::{small_file, HttpSettings};
use url::Url;

/// The version a script sets (`set ccnq_version <v>`), if it sets one.
pub fn version_in_script(script: &str) -> Option<String> {
    script.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("set"), Some("ccnq_version"), Some(v), None) if !v.starts_with('$') => {
                Some(v.to_owned())
            }
            _ => None,
        }
    })
}

/// The file name iPXE gives a MAC with `${netX/mac:hexhyp}`: `52-54-00-12-34-56`.
pub fn host_file(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| format!("hosts/{}.ipxe", parts.join("-").to_ascii_lowercase()))
}

/// What the server at `base` offers the host with `mac`: the version, and the file that
/// said it. Errors say why it is not known (no such file, none sets a version, the
/// server unreachable).
pub async fn offered(
    settings: &HttpSettings,
    base: &Url,
    mac: Option<&str>,
) -> Result<(String, String), UpdateError> {
    let mut files = Vec::new();
    if let Some(f) = mac.and_then(host_file) {
        files.push(f);
    }
    files.push("default.ipxe".to_owned());
    for file in &files {
        let url = base
            .join(file)
            .map_err(|e| UpdateError::Local(format!("{base}{file}: {e}")))?;
        if let Some(bytes) = small_file(settings, &url, 64 << 10).await? {
            let text = String::from_utf8_lossy(&bytes);
            return match version_in_script(&text) {
                Some(v) => Ok((v, url.to_string())),
                None => Err(UpdateError::Unavailable(format!(
                    "{url}: no `set ccnq_version <version>` line"
                ))),
            };
        }
    }
    Err(UpdateError::Unavailable(format!(
        "the PXE server at {base} has none of {}",
        files.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_a_script_sets() {
        let script = "#!ipxe\n# chosen by the rollout\nset ccnq_version 2026.12.1\n";
        assert_eq!(version_in_script(script).as_deref(), Some("2026.12.1"));
        assert_eq!(
            version_in_script("#!ipxe\nchain ${ccnq_version}/boot.ipxe\n"),
            None
        );
        assert_eq!(version_in_script("set ccnq_version ${other}\n"), None);
        assert_eq!(version_in_script("set ccnq_version 1 2\n"), None);
    }

    #[test]
    fn a_mac_names_the_hosts_file_as_ipxe_spells_it() {
        assert_eq!(
            host_file("52:54:00:AB:cd:01").as_deref(),
            Some("hosts/52-54-00-ab-cd-01.ipxe")
        );
        assert_eq!(
            host_file("52-54-00-ab-cd-01").as_deref(),
            Some("hosts/52-54-00-ab-cd-01.ipxe")
        );
        assert_eq!(host_file("52:54:00:ab:cd"), None);
        assert_eq!(host_file("../../etc/passwd"), None);
    }
}
