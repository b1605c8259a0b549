//! How `ccnqd` opens an event-socket connection of its own, beside the apply step's: to
//! drain before a stop or a reboot, for the boot check, and for the diagnostics the
//! local API answers. One place reads the password ccnqd made, so every caller reports
//! a missing or empty one the same way.

use ccnq_esl::{ConnectOptions, EslClient};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A connection to FreeSWITCH's event socket at `addr`, authenticated with the first
/// line of `password_file`. The error names what failed, for an operator.
pub async fn connect(
    addr: SocketAddr,
    password_file: &Path,
    command_timeout: Duration,
) -> Result<EslClient, String> {
    let password = read_password(password_file)?;
    let options = ConnectOptions {
        command_timeout,
        ..Default::default()
    };
    EslClient::connect(&addr.to_string(), &password, options)
        .await
        .map_err(|e| format!("cannot reach FreeSWITCH's event socket at {addr}: {e}"))
}

/// [`connect`] with `[freeswitch]` of `ccnqd.toml`: the event socket, its password file,
/// the command timeout.
pub async fn connect_configured(fs: &crate::config::FreeswitchConfig) -> Result<EslClient, String> {
    connect(fs.event_socket, &fs.password_file, fs.command_timeout).await
}

/// The event socket's password as ccnqd made it; never created here: a FreeSWITCH
/// ccnqd never configured does not know it.
fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the event-socket password {}: {e}",
            path.display()
        )
    })?;
    let password = text.lines().next().unwrap_or("").trim().to_owned();
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_and_never_empty() {
        let dir = std::env::temp_dir().join(format!("ccnqd-esl-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret \nignored\n").unwrap();
        assert_eq!(read_password(&f).unwrap(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_password(&f).unwrap_err().contains("is empty"));
        let missing = read_password(&dir.join("absent")).unwrap_err();
        assert!(
            missing.contains("cannot read the event-socket password"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
