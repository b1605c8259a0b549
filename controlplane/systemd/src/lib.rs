//! `ccnq-systemd`: how `ccnqd` starts, stops and watches the appliance's services
//! (FreeSWITCH, CouchDB) — through systemd's D-Bus API, never by running `systemctl`,
//! so every operation has a typed result, a timeout and no process to spawn.
//!
//! Modules: `manager` (D-Bus proxy definitions), `jobs` (waiting for a job's result),
//! `watch` (state changes as events), `units` (what the API reports), `error`.

pub mod error;
pub mod jobs;
pub mod manager;
pub mod units;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use zbus::fdo::PropertiesProxy;
use zbus::names::InterfaceName;
use zbus::zvariant::OwnedValue;
use zbus::Connection;

pub use error::{Error, Result};
pub use jobs::JobResult;
pub use units::{validate_unit_name, ActiveState, LoadState, UnitInfo};
pub use watch::{UnitState, UnitStateChange, UnitWatch};

use jobs::Jobs;
use manager::{ManagerProxy, DESTINATION, SERVICE_INTERFACE, UNIT_INTERFACE};

/// Default limit for one operation, call and job together. Longer than systemd's
/// default start timeout (90 s) so that systemd, which knows the unit, decides first.
/// A service whose own timeouts are longer gets those (see [`job_limit`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a job may take beyond the unit's own timeouts before we stop waiting: the
/// D-Bus round trips and systemd's bookkeeping.
const JOB_MARGIN: Duration = Duration::from_secs(30);

/// How long to wait for a job on a service whose `TimeoutStartUSec` and
/// `TimeoutStopUSec` are `start_us` and `stop_us` (systemd's µs, `u64::MAX` for
/// infinity): at least `default`, and long enough for systemd itself to decide, so that
/// a slow start (FreeSWITCH under emulation: its unit allows 180 s) ends with systemd's
/// verdict, not with ours. An infinite timeout cannot be waited for: `default` then.
pub fn job_limit(operation: &str, default: Duration, start_us: u64, stop_us: u64) -> Duration {
    let finite = |us: u64| (us != u64::MAX).then(|| Duration::from_micros(us));
    let unit = match operation {
        "start" => finite(start_us),
        "stop" => finite(stop_us),
        "restart" => finite(start_us).zip(finite(stop_us)).map(|(a, b)| a + b),
        _ => None,
    };
    unit.map_or(default, |u| default.max(u + JOB_MARGIN))
}

/// Signals queued per stream before zbus drops the oldest; generous, because a lost
/// JobRemoved would leave a caller waiting until its timeout.
const MAX_QUEUED: usize = 1024;

/// Where unit file changes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFileScope {
    /// /etc/systemd/system: survives a reboot.
    Persistent,
    /// /run/systemd/system: until the next boot (for a read-only /etc).
    Runtime,
}

/// One symlink created or removed by enable/disable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFileChange {
    /// `symlink` or `unlink` (or another word systemd uses).
    pub kind: String,
    pub file: String,
    /// The symlink's target; empty for `unlink`.
    pub destination: String,
}

/// What enable did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableOutcome {
    /// False when the units have no [Install] section: nothing could be enabled.
    pub carries_install_info: bool,
    pub changes: Vec<UnitFileChange>,
}

fn changes(raw: Vec<manager::RawUnitFileChange>) -> Vec<UnitFileChange> {
    raw.into_iter()
        .map(|(kind, file, destination)| UnitFileChange {
            kind,
            file,
            destination,
        })
        .collect()
}

/// A connection to systemd. Cheap to clone; the clones share one bus connection and one
/// job dispatcher. Must be created inside a tokio runtime, which then serves it.
#[derive(Clone)]
pub struct Systemd {
    conn: Connection,
    manager: ManagerProxy<'static>,
    jobs: Arc<Jobs>,
    timeout: Duration,
}

impl std::fmt::Debug for Systemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Systemd")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The job mode of every operation: a new request replaces a conflicting queued one,
/// as `systemctl` does by default.
const MODE: &str = "replace";

impl Systemd {
    /// Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS if set, else the standard
    /// socket).
    pub async fn connect_system() -> Result<Self> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".to_owned());
        Self::connect(&address).await
    }

    /// Connects to the message bus at `address` (a D-Bus address such as
    /// `unix:path=/run/dbus/system_bus_socket`).
    pub async fn connect(address: &str) -> Result<Self> {
        let err = |source| Error::Connect {
            address: address.to_owned(),
            source: Box::new(source),
        };
        let conn = zbus::connection::Builder::address(address)
            .map_err(err)?
            .max_queued(MAX_QUEUED)
            .build()
            .await
            .map_err(err)?;
        Self::from_connection(conn).await
    }

    /// Uses an open bus connection (for a daemon that shares one).
    pub async fn from_connection(conn: Connection) -> Result<Self> {
        let address = "(connection)";
        let err = |source| Error::Connect {
            address: address.to_owned(),
            source: Box::new(source),
        };
        let manager = ManagerProxy::new(&conn).await.map_err(err)?;
        // The JobRemoved stream must exist before the first call (see `jobs`).
        let jobs = Jobs::start(&manager).await.map_err(err)?;
        // Without Subscribe systemd sends unit PropertiesChanged and job signals only
        // to the job's requester, and not at all while nobody subscribed.
        manager.subscribe().await.map_err(err)?;
        Ok(Systemd {
            conn,
            manager,
            jobs: Arc::new(jobs),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the limit for each later operation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn start(&self, unit: &str) -> Result<JobResult> {
        validate_unit_name(unit)?;
        let limit = self.job_timeout("start", unit).await;
        let call = self.manager.start_unit(unit, MODE);
        self.jobs.run("start", unit, limit, call).await
    }

    pub async fn stop(&self, unit: &str) -> Result<JobResult> {
        validate_unit_name(unit)?;
        let limit = self.job_timeout("stop", unit).await;
        let call = self.manager.stop_unit(unit, MODE);
        self.jobs.run("stop", unit, limit, call).await
    }

    pub async fn restart(&self, unit: &str) -> Result<JobResult> {
        validate_unit_name(unit)?;
        let limit = self.job_timeout("restart", unit).await;
        let call = self.manager.restart_unit(unit, MODE);
        self.jobs.run("restart", unit, limit, call).await
    }

    /// The wait for one job on `unit` ([`job_limit`] from the service's own timeouts).
    /// Anything that cannot be read (not a service, not loaded) leaves the default.
    async fn job_timeout(&self, operation: &str, unit: &str) -> Duration {
        if !unit.ends_with(".service") {
            return self.timeout;
        }
        let read = async {
            let proxy = self.unit_properties(unit).await.ok()?;
            let props: HashMap<String, OwnedValue> = proxy
                .get_all(InterfaceName::from_static_str_unchecked(SERVICE_INTERFACE))
                .await
                .ok()?;
            let us = |name: &str| props.get(name).and_then(|v| u64::try_from(v).ok());
            Some((us("TimeoutStartUSec")?, us("TimeoutStopUSec")?))
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Some((start, stop))) => job_limit(operation, self.timeout, start, stop),
            _ => self.timeout,
        }
    }

    /// Reloads the unit's configuration (ExecReload=). systemd refuses units without
    /// ExecReload (Error::Refused, JobTypeNotApplicable).
    pub async fn reload(&self, unit: &str) -> Result<JobResult> {
        validate_unit_name(unit)?;
        let call = self.manager.reload_unit(unit, MODE);
        self.jobs.run("reload", unit, self.timeout, call).await
    }

    /// Enables the units persistently, then reloads systemd so the change takes effect.
    pub async fn enable(&self, units: &[&str]) -> Result<EnableOutcome> {
        self.enable_in(units, UnitFileScope::Persistent).await
    }

    /// Disables the units persistently, then reloads systemd.
    pub async fn disable(&self, units: &[&str]) -> Result<Vec<UnitFileChange>> {
        self.disable_in(units, UnitFileScope::Persistent).await
    }

    pub async fn enable_in(&self, units: &[&str], scope: UnitFileScope) -> Result<EnableOutcome> {
        let what = units.join(" ");
        for u in units {
            validate_unit_name(u)?;
        }
        let runtime = scope == UnitFileScope::Runtime;
        let (carries_install_info, raw) = self
            .bounded(
                "enable",
                &what,
                self.manager.enable_unit_files(units, runtime, false),
            )
            .await?;
        self.bounded("enable", &what, self.manager.reload()).await?;
        Ok(EnableOutcome {
            carries_install_info,
            changes: changes(raw),
        })
    }

    pub async fn disable_in(
        &self,
        units: &[&str],
        scope: UnitFileScope,
    ) -> Result<Vec<UnitFileChange>> {
        let what = units.join(" ");
        for u in units {
            validate_unit_name(u)?;
        }
        let runtime = scope == UnitFileScope::Runtime;
        let raw = self
            .bounded(
                "disable",
                &what,
                self.manager.disable_unit_files(units, runtime),
            )
            .await?;
        self.bounded("disable", &what, self.manager.reload())
            .await?;
        Ok(changes(raw))
    }

    /// `daemon-reload`: makes systemd re-read unit files (after the daemon writes
    /// one). Returns once the reload is complete.
    pub async fn daemon_reload(&self) -> Result<()> {
        self.bounded("daemon-reload", "-", self.manager.reload())
            .await
    }

    /// ActiveState, SubState, since when, main PID, memory and LoadState of a unit.
    /// A unit without a unit file is reported with `LoadState::Absent`, not an error.
    pub async fn unit_info(&self, unit: &str) -> Result<UnitInfo> {
        validate_unit_name(unit)?;
        let proxy = self.unit_properties(unit).await?;
        let get_all = |iface: &'static str| {
            let proxy = &proxy;
            async move {
                proxy
                    .get_all(InterfaceName::from_static_str_unchecked(iface))
                    .await
                    .map_err(|e| Error::from_call("unit-info", unit, e.into()))
            }
        };
        let unit_props: HashMap<String, OwnedValue> = self
            .bounded_r("unit-info", unit, get_all(UNIT_INTERFACE))
            .await?;
        let service_props = if unit.ends_with(".service") {
            Some(
                self.bounded_r("unit-info", unit, get_all(SERVICE_INTERFACE))
                    .await?,
            )
        } else {
            None
        };
        Ok(UnitInfo::from_properties(
            unit,
            &unit_props,
            service_props.as_ref(),
        ))
    }

    /// Follows the units' ActiveState/SubState. Changes come in bus order; dropping the
    /// returned watch stops it.
    pub async fn watch(&self, units: &[&str]) -> Result<UnitWatch> {
        let mut watched = Vec::with_capacity(units.len());
        for u in units {
            validate_unit_name(u)?;
            watched.push(watch::Watched {
                unit: (*u).to_owned(),
                proxy: self.unit_properties(u).await?,
                state: UnitState {
                    active: ActiveState::Inactive,
                    sub: String::new(),
                },
            });
        }
        let what = units.join(" ");
        self.bounded("watch", &what, watch::spawn(watched)).await
    }

    /// The Properties proxy of a unit's object (loading the unit if needed).
    async fn unit_properties(&self, unit: &str) -> Result<PropertiesProxy<'static>> {
        let path = self
            .bounded("load", unit, self.manager.load_unit(unit))
            .await?;
        let err = |e| Error::from_call("load", unit, e);
        PropertiesProxy::builder(&self.conn)
            .destination(DESTINATION)
            .map_err(err)?
            .path(path)
            .map_err(err)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(err)
    }

    /// Runs a D-Bus call under the operation timeout.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        unit: &str,
        call: impl std::future::Future<Output = zbus::Result<T>>,
    ) -> Result<T> {
        self.bounded_r(operation, unit, async {
            call.await.map_err(|e| Error::from_call(operation, unit, e))
        })
        .await
    }

    async fn bounded_r<T>(
        &self,
        operation: &'static str,
        unit: &str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                operation,
                unit: unit.to_owned(),
                job: "-".to_owned(),
                after: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_slower_than_the_default_gets_its_own_timeouts_and_a_margin() {
        let d = Duration::from_secs(120);
        let s180 = 180_000_000;
        let s60 = 60_000_000;
        assert_eq!(job_limit("start", d, s180, s60), Duration::from_secs(210));
        assert_eq!(job_limit("stop", d, s180, s60), d);
        assert_eq!(job_limit("restart", d, s180, s60), Duration::from_secs(270));
        // Faster units keep the default; infinity cannot be waited for.
        assert_eq!(job_limit("start", d, 10_000_000, 10_000_000), d);
        assert_eq!(job_limit("start", d, u64::MAX, s60), d);
        assert_eq!(job_limit("restart", d, s180, u64::MAX), d);
        assert_eq!(job_limit("reload", d, s180, s60), d);
    }
}
