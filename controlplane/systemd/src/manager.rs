//! The slice of systemd's D-Bus API that `ccnqd` uses, as zbus proxies.
//!
//! Written here rather than taken from a generated crate: we need a dozen members of
//! org.freedesktop.systemd1.Manager, and a generated crate compiles hundreds. Unit and
//! service properties are read with `org.freedesktop.DBus.Properties.GetAll` (see
//! `units`), so they need no proxy.

use zbus::proxy;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

/// Well-known bus name of the service manager.
pub const DESTINATION: &str = "org.freedesktop.systemd1";
/// Object path of the manager object.
pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
/// Interface of every unit object.
pub const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
/// Interface of service unit objects.
pub const SERVICE_INTERFACE: &str = "org.freedesktop.systemd1.Service";

/// One change reported by EnableUnitFiles/DisableUnitFiles: `(type, file, destination)`,
/// e.g. `("symlink", "/etc/systemd/system/multi-user.target.wants/x.service", "/etc/…/x.service")`.
pub type RawUnitFileChange = (String, String, String);

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    /// Asks systemd to send unit and job signals to this client.
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Loads the unit if needed and returns its object path; unlike GetUnit it also
    /// answers for units that are not loaded (LoadState then says why).
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<RawUnitFileChange>)>;

    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<RawUnitFileChange>>;

    /// `daemon-reload`: systemd replies once the reload is complete.
    fn reload(&self) -> zbus::Result<()>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}
