//! The daemon's own configuration: `/etc/ccnq/ccnqd.toml`.
//!
//! This is configuration *of the control plane* (where to listen, whom to trust, where
//! its state lives), shipped in the image or laid down at provisioning. What the *host*
//! must be lives in CouchDB, never here. A mistake here must stop the daemon at start
//! with a message that names the key, so every field is checked before anything runs.

use ccnq_api::Role;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod file;
mod update;
use file::{CouchFile, File, ServicesFile};
pub use update::UpdateConfig;

pub const DEFAULT_PATH: &str = "/etc/ccnq/ccnqd.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name this host knows itself by; its document is `host:<host>`.
    pub host: String,
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub log_level: log::LevelFilter,
    pub os_release: Vec<PathBuf>,
    pub kernel_cmdline: PathBuf,
    /// `None`: the system's journal (`GET /v1/logs`).
    pub journal_directory: Option<PathBuf>,
    /// `None`: no `[couchdb]` section, no document followed.
    pub couchdb: Option<CouchConfig>,
    pub freeswitch: FreeswitchConfig,
    /// `None`: the system bus.
    pub systemd_bus: Option<String>,
    pub services: ServicesConfig,
    /// `None`: no `[update]` section; the host takes no image upgrade.
    pub update: Option<UpdateConfig>,
}

/// The units the daemon manages.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Full unit names (`freeswitch.service`), no duplicates, in the configured order.
    pub managed: Vec<String>,
    /// CouchDB's unit.
    pub couchdb_unit: String,
}

#[derive(Debug, Clone)]
pub struct FreeswitchConfig {
    pub event_socket: SocketAddr,
    pub password_file: PathBuf,
    pub unit: String,
    pub drain_deadline: Duration,
    pub confirm_deadline: Duration,
    pub command_timeout: Duration,
}

/// Where the host document is, and how to log in.
#[derive(Debug, Clone)]
pub struct CouchConfig {
    pub url: String,
    pub database: String,
    /// User and password (read from `password_file` at start).
    pub credentials: Option<(String, String)>,
    pub ca: Option<PathBuf>,
    pub heartbeat: Duration,
    pub reconnect_max: Duration,
    pub credentials_retry: Duration,
    pub database_check: Duration,
    /// Largest wait before a failed apply of the same revision is tried again.
    pub apply_retry_max: Duration,
    pub central: Option<CentralConfig>,
}

#[derive(Debug, Clone)]
pub struct CentralConfig {
    pub url: String,
    pub credentials: Option<(String, String)>,
    pub local_url: String,
    pub check_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: Vec<SocketAddr>,
    pub admin_ca: PathBuf,
    /// Both set, or both unset: then the daemon uses (and on first start makes) a
    /// self-signed certificate under `<data_dir>/tls/`.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Extra names for a generated certificate, beyond the host name and loopback.
    pub names: Vec<String>,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub tokens: Vec<Token>,
}

/// A bearer token: its name (for the audit log), its role, and the SHA-256 of its secret.
/// Only the hash is stored: tokens are random 256-bit secrets, so a plain hash cannot be
/// reversed, and a leaked configuration file grants nothing.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_string(),
            reason,
        };
        let deserializer = toml::Deserializer::new(text);
        let file: File = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".into()
            } else {
                key
            };
            // toml's message carries the line and column; keep its first line only.
            let reason = e.inner().message().lines().next().unwrap_or("").to_string();
            invalid(&key, reason)
        })?;

        let host = match file.host {
            Some(h) => h,
            None => nix::unistd::gethostname()
                .map_err(|e| invalid("host", format!("not set, and gethostname failed: {e}")))?
                .to_string_lossy()
                .into_owned(),
        };
        if !is_hostname(&host) {
            return Err(invalid(
                "host",
                format!("{host:?} is not a valid host name"),
            ));
        }
        if !file.data_dir.is_absolute() {
            return Err(invalid("data_dir", "must be an absolute path".into()));
        }

        let api = file.api;
        if api.listen.is_empty() {
            return Err(invalid("api.listen", "needs at least one address".into()));
        }
        let mut listen = Vec::new();
        for (i, text) in api.listen.iter().enumerate() {
            let addr = text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    &format!("api.listen[{i}]"),
                    format!("{text:?} is not an address:port (e.g. \"[::]:8443\")"),
                )
            })?;
            listen.push(addr);
        }
        let cert_and_key = match (api.cert, api.key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "api.key",
                    "api.cert is set, so api.key must be too".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "api.cert",
                    "api.key is set, so api.cert must be too".into(),
                ))
            }
        };
        for (i, name) in api.names.iter().enumerate() {
            if !is_hostname(name) && name.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    &format!("api.names[{i}]"),
                    format!("{name:?} is neither a host name nor an IP address"),
                ));
            }
        }
        let handshake_timeout = seconds(api.handshake_timeout_secs, 0.1, 60.0)
            .map_err(|r| invalid("api.handshake_timeout_secs", r))?;
        let shutdown_grace = seconds(api.shutdown_grace_secs, 0.0, 300.0)
            .map_err(|r| invalid("api.shutdown_grace_secs", r))?;
        if api.max_connections == 0 {
            return Err(invalid("api.max_connections", "must be at least 1".into()));
        }

        let mut tokens = Vec::new();
        let mut names = BTreeSet::new();
        for (i, t) in api.tokens.into_iter().enumerate() {
            let key = |field: &str| format!("api.tokens[{i}].{field}");
            if t.name.trim().is_empty() {
                return Err(invalid(&key("name"), "must not be empty".into()));
            }
            if !names.insert(t.name.clone()) {
                return Err(invalid(&key("name"), format!("{:?} is used twice", t.name)));
            }
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut sha256).map_err(|_| {
                invalid(
                    &key("sha256"),
                    "must be 64 hexadecimal digits (the SHA-256 of the token; `ccnqctl token new` prints it)".into(),
                )
            })?;
            tokens.push(Token {
                name: t.name,
                role: t.role,
                sha256,
            });
        }

        let log_level = file.log.level.parse::<log::LevelFilter>().map_err(|_| {
            invalid(
                "log.level",
                format!(
                    "{:?} is not one of off, error, warn, info, debug, trace",
                    file.log.level
                ),
            )
        })?;

        let couchdb = match file.couchdb {
            None => None,
            Some(c) => Some(couch_config(c, &invalid)?),
        };

        let fs = file.freeswitch;
        let freeswitch = FreeswitchConfig {
            event_socket: fs.event_socket.parse().map_err(|_| {
                invalid(
                    "freeswitch.event_socket",
                    format!("{:?} is not an address:port", fs.event_socket),
                )
            })?,
            password_file: fs
                .password_file
                .unwrap_or_else(|| file.data_dir.join("secrets/event-socket.password")),
            unit: {
                if !fs.unit.ends_with(".service") || fs.unit.contains('/') {
                    return Err(invalid(
                        "freeswitch.unit",
                        format!("{:?} is not a service unit name", fs.unit),
                    ));
                }
                fs.unit
            },
            drain_deadline: seconds(fs.drain_deadline_secs, 0.0, 86400.0)
                .map_err(|r| invalid("freeswitch.drain_deadline_secs", r))?,
            confirm_deadline: seconds(fs.confirm_deadline_secs, 1.0, 600.0)
                .map_err(|r| invalid("freeswitch.confirm_deadline_secs", r))?,
            command_timeout: seconds(fs.command_timeout_secs, 1.0, 600.0)
                .map_err(|r| invalid("freeswitch.command_timeout_secs", r))?,
        };

        let services = services_config(file.services, &freeswitch.unit, &invalid)?;

        Ok(Config {
            host,
            data_dir: file.data_dir,
            api: ApiConfig {
                listen,
                admin_ca: api.admin_ca,
                cert_and_key,
                names: api.names,
                handshake_timeout,
                max_connections: api.max_connections,
                shutdown_grace,
                tokens,
            },
            log_level,
            os_release: file.system.os_release,
            kernel_cmdline: file.system.kernel_cmdline,
            journal_directory: file.system.journal_directory,
            couchdb,
            freeswitch,
            systemd_bus: file.systemd.bus,
            services,
            update: file.update.map(|u| u.check(path)).transpose()?,
        })
    }
}

fn services_config(
    s: ServicesFile,
    freeswitch_unit: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<ServicesConfig, ConfigError> {
    let service_unit = |key: &str, name: &str| {
        ccnq_systemd::validate_unit_name(name).map_err(|e| invalid(key, e.to_string()))?;
        if !name.ends_with(".service") {
            return Err(invalid(
                key,
                format!("{name:?}: only service units can be managed"),
            ));
        }
        Ok(())
    };
    let couchdb_unit = s.couchdb_unit.unwrap_or_else(|| "couchdb.service".into());
    service_unit("services.couchdb_unit", &couchdb_unit)?;
    let managed = match s.managed {
        Some(list) => list,
        None => vec![freeswitch_unit.to_string(), couchdb_unit.clone()],
    };
    let mut seen = BTreeSet::new();
    for (i, name) in managed.iter().enumerate() {
        let key = format!("services.managed[{i}]");
        service_unit(&key, name)?;
        if !seen.insert(name.as_str()) {
            return Err(invalid(&key, format!("{name:?} is listed twice")));
        }
    }
    Ok(ServicesConfig {
        managed,
        couchdb_unit,
    })
}

fn couch_config(
    c: CouchFile,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<CouchConfig, ConfigError> {
    check_url(&c.url).map_err(|r| invalid("couchdb.url", r))?;
    if c.database.is_empty()
        || !c.database.starts_with(|ch: char| ch.is_ascii_lowercase())
        || !c
            .database
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "_$()+-/".contains(ch))
    {
        return Err(invalid(
            "couchdb.database",
            format!("{:?} is not a CouchDB database name", c.database),
        ));
    }
    let credentials = read_credentials(c.user, c.password_file, "couchdb", invalid)?;
    if let Some(ca) = &c.ca {
        if let Err(e) = std::fs::metadata(ca) {
            return Err(invalid("couchdb.ca", format!("{}: {e}", ca.display())));
        }
    }
    let heartbeat =
        seconds(c.heartbeat_secs, 1.0, 600.0).map_err(|r| invalid("couchdb.heartbeat_secs", r))?;
    let reconnect_max = seconds(c.reconnect_max_secs, 0.1, 3600.0)
        .map_err(|r| invalid("couchdb.reconnect_max_secs", r))?;
    let credentials_retry = seconds(c.credentials_retry_secs, 0.1, 3600.0)
        .map_err(|r| invalid("couchdb.credentials_retry_secs", r))?;
    let database_check = seconds(c.database_check_secs, 0.1, 3600.0)
        .map_err(|r| invalid("couchdb.database_check_secs", r))?;
    let apply_retry_max = seconds(c.apply_retry_max_secs, 1.0, 86400.0)
        .map_err(|r| invalid("couchdb.apply_retry_max_secs", r))?;
    let central = match c.central {
        None => None,
        Some(central) => {
            check_url(&central.url).map_err(|r| invalid("couchdb.central.url", r))?;
            let local_url = central
                .local_url
                .unwrap_or_else(|| format!("{}/{}", c.url.trim_end_matches('/'), c.database));
            check_url(&local_url).map_err(|r| invalid("couchdb.central.local_url", r))?;
            let credentials = read_credentials(
                central.user,
                central.password_file,
                "couchdb.central",
                invalid,
            )?;
            let check_interval = seconds(central.check_interval_secs, 1.0, 3600.0)
                .map_err(|r| invalid("couchdb.central.check_interval_secs", r))?;
            Some(CentralConfig {
                url: central.url,
                credentials,
                local_url,
                check_interval,
            })
        }
    };
    Ok(CouchConfig {
        url: c.url,
        database: c.database,
        credentials,
        ca: c.ca,
        heartbeat,
        reconnect_max,
        credentials_retry,
        database_check,
        apply_retry_max,
        central,
    })
}

/// An http(s) URL without credentials in it (those go in a password file).
fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{url:?}: http or https only"));
    }
    match uri.authority() {
        None => Err(format!("{url:?} names no server")),
        Some(a) if a.as_str().contains('@') => Err(
            "carries credentials: give the user as `user` and the password in `password_file`"
                .into(),
        ),
        Some(_) => Ok(()),
    }
}

/// `user` + `password_file` → the pair, the file read now (first line, trimmed).
fn read_credentials(
    user: Option<String>,
    password_file: Option<PathBuf>,
    section: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<(String, String)>, ConfigError> {
    match (user, password_file) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(
            &format!("{section}.password_file"),
            "user is set, so password_file must be too".into(),
        )),
        (None, Some(_)) => Err(invalid(
            &format!("{section}.user"),
            "password_file is set, so user must be too".into(),
        )),
        (Some(user), Some(file)) => {
            let key = format!("{section}.password_file");
            let text = std::fs::read_to_string(&file)
                .map_err(|e| invalid(&key, format!("{}: {e}", file.display())))?;
            let password = text.lines().next().unwrap_or("").trim().to_string();
            if password.is_empty() {
                return Err(invalid(&key, format!("{} is empty", file.display())));
            }
            Ok(Some((user, password)))
        }
    }
}

fn seconds(value: f64, min: f64, max: f64) -> Result<Duration, String> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("{value} is outside {min}..={max} seconds"))
    }
}

/// RFC 1123 host names: what a FreeSWITCH host and a certificate can both carry.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/ccnq/ccnqd.toml"))
    }

    fn error_of(text: &str) -> (String, String) {
        match parse(text).unwrap_err() {
            ConfigError::Invalid { key, reason, .. } => (key, reason),
            other => panic!("unexpected {other}"),
        }
    }

    const MINIMAL: &str =
        "host = \"sbc1.example.net\"\n[api]\nadmin_ca = \"/etc/ccnq/admin-ca.pem\"\n";

    #[test]
    fn minimal_file_gets_the_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.host, "sbc1.example.net");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/ccnq"));
        assert_eq!(c.api.listen, vec!["[::]:8443".parse().unwrap()]);
        assert_eq!(c.api.max_connections, 256);
        assert_eq!(c.api.handshake_timeout, Duration::from_secs(5));
        assert!(c.api.cert_and_key.is_none());
        assert_eq!(c.log_level, log::LevelFilter::Info);
    }

    #[test]
    fn unknown_key_is_named() {
        let (key, reason) = error_of(&format!("{MINIMAL}listen_port = 3\n"));
        assert_eq!(key, "api.listen_port");
        assert!(reason.contains("listen_port"), "{reason}");
    }

    #[test]
    fn wrong_type_names_the_nested_key() {
        let (key, reason) = error_of(&format!("{MINIMAL}max_connections = \"many\"\n"));
        assert_eq!(key, "api.max_connections");
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let (key, reason) = error_of("[api]\nlisten = [\"127.0.0.1:1\"]\n");
        assert_eq!(key, "api");
        assert!(reason.contains("admin_ca"), "{reason}");
    }

    #[test]
    fn bad_listen_address_names_its_index() {
        let (key, _) = error_of(&format!(
            "{MINIMAL}listen = [\"127.0.0.1:1\", \"localhost\"]\n"
        ));
        assert_eq!(key, "api.listen[1]");
    }

    #[test]
    fn token_hash_must_be_hex_sha256() {
        let text = format!(
            "{MINIMAL}[[api.tokens]]\nname = \"backup\"\nrole = \"reader\"\nsha256 = \"abc\"\n"
        );
        let (key, reason) = error_of(&text);
        assert_eq!(key, "api.tokens[0].sha256");
        assert!(reason.contains("64 hexadecimal"), "{reason}");
    }

    #[test]
    fn token_role_must_be_known() {
        let text = format!(
            "{MINIMAL}[[api.tokens]]\nname = \"backup\"\nrole = \"root\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        );
        let (key, reason) = error_of(&text);
        assert_eq!(key, "api.tokens[0].role");
        assert!(reason.contains("root"), "{reason}");
    }

    #[test]
    fn duplicate_token_names_are_refused() {
        let one = format!(
            "[[api.tokens]]\nname = \"a\"\nrole = \"reader\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        );
        let (key, _) = error_of(&format!("{MINIMAL}{one}{one}"));
        assert_eq!(key, "api.tokens[1].name");
    }

    #[test]
    fn cert_without_key_is_refused() {
        let (key, _) = error_of(&format!("{MINIMAL}cert = \"/x.pem\"\n"));
        assert_eq!(key, "api.key");
    }

    #[test]
    fn relative_data_dir_and_bad_level_are_refused() {
        let (key, _) = error_of(&format!("data_dir = \"var\"\n{MINIMAL}"));
        assert_eq!(key, "data_dir");
        let (key, _) = error_of(&format!("{MINIMAL}[log]\nlevel = \"loud\"\n"));
        assert_eq!(key, "log.level");
    }

    #[test]
    fn host_names_follow_rfc1123() {
        assert!(is_hostname("sbc1.example.net"));
        assert!(!is_hostname("-bad.example"));
        assert!(!is_hostname("a..b"));
        assert!(!is_hostname("under_score"));
    }
    #[test]
    fn couchdb_section_reads_the_password_file_and_resolves_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = parse(&format!(
            "{MINIMAL}[couchdb]\nuser = \"sbc1\"\npassword_file = {:?}\n[couchdb.central]\nurl = \"https://central.example.net:6984/provisioning\"\n",
            pw
        ))
        .unwrap();
        let couch = c.couchdb.unwrap();
        assert_eq!(couch.url, "http://127.0.0.1:5984");
        assert_eq!(couch.database, "provisioning");
        assert_eq!(couch.credentials, Some(("sbc1".into(), "s3cret".into())));
        let central = couch.central.unwrap();
        assert_eq!(central.local_url, "http://127.0.0.1:5984/provisioning");
        assert_eq!(central.credentials, None);
        assert_eq!(c.freeswitch.unit, "freeswitch.service");
        assert_eq!(
            c.freeswitch.password_file,
            PathBuf::from("/var/lib/ccnq/secrets/event-socket.password")
        );
    }

    #[test]
    fn couchdb_mistakes_are_named() {
        let (key, reason) = error_of(&format!(
            "{MINIMAL}[couchdb]\nurl = \"http://admin:pw@127.0.0.1:5984\"\n"
        ));
        assert_eq!(key, "couchdb.url");
        assert!(reason.contains("password_file"), "{reason}");
        let (key, _) = error_of(&format!("{MINIMAL}[couchdb]\nuser = \"x\"\n"));
        assert_eq!(key, "couchdb.password_file");
        let (key, reason) = error_of(&format!(
            "{MINIMAL}[couchdb]\nuser = \"x\"\npassword_file = \"/nonexistent/pw\"\n"
        ));
        assert_eq!(key, "couchdb.password_file");
        assert!(reason.contains("/nonexistent/pw"), "{reason}");
        let (key, _) = error_of(&format!(
            "{MINIMAL}[couchdb]\ndatabase = \"Provisioning\"\n"
        ));
        assert_eq!(key, "couchdb.database");
        let (key, _) = error_of(&format!(
            "{MINIMAL}[couchdb.central]\nurl = \"ftp://x/y\"\n"
        ));
        assert_eq!(key, "couchdb.central.url");
        let (key, _) = error_of(&format!("{MINIMAL}[freeswitch]\nunit = \"freeswitch\"\n"));
        assert_eq!(key, "freeswitch.unit");
    }

    #[test]
    fn managed_services_default_to_freeswitch_and_couchdb() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(
            c.services.managed,
            ["freeswitch.service", "couchdb.service"]
        );
        let c = parse(&format!(
            "{MINIMAL}[freeswitch]\nunit = \"fs.service\"\n[services]\ncouchdb_unit = \"db.service\"\n"
        ))
        .unwrap();
        assert_eq!(c.services.managed, ["fs.service", "db.service"]);
        assert_eq!(c.services.couchdb_unit, "db.service");
    }

    #[test]
    fn managed_service_mistakes_are_named() {
        let (key, reason) = error_of(&format!(
            "{MINIMAL}[services]\nmanaged = [\"a.service\", \"b\"]\n"
        ));
        assert_eq!(key, "services.managed[1]");
        assert!(reason.contains("unit type"), "{reason}");
        let (key, reason) = error_of(&format!(
            "{MINIMAL}[services]\nmanaged = [\"a.service\", \"a.service\"]\n"
        ));
        assert_eq!(key, "services.managed[1]");
        assert!(reason.contains("twice"), "{reason}");
        let (key, reason) = error_of(&format!("{MINIMAL}[services]\nmanaged = [\"tmp.mount\"]\n"));
        assert_eq!(key, "services.managed[0]");
        assert!(reason.contains("service units"), "{reason}");
        let (key, _) = error_of(&format!("{MINIMAL}[services]\ncouchdb_unit = \"x y\"\n"));
        assert_eq!(key, "services.couchdb_unit");
        let (key, _) = error_of(&format!("{MINIMAL}[services]\nunits = []\n"));
        assert_eq!(key, "services.units");
    }
}
