//! Typed errors of the systemd client: the daemon reports them with the unit and the
//! operation named, so an operator reading the status document knows what failed where.
//! zbus errors are boxed: they are large and every `Result` here would carry their size.

use std::time::Duration;

/// Everything that can go wrong talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus could not be reached or refused us.
    #[error("connecting to the D-Bus system bus at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: Box<zbus::Error>,
    },
    /// A unit name given by the caller is not a valid systemd unit name.
    #[error("unit name {name:?} is invalid: {reason}")]
    InvalidUnitName { name: String, reason: &'static str },
    /// systemd does not know the unit (no unit file, not loaded).
    #[error("{operation} {unit}: no such unit")]
    NoSuchUnit {
        operation: &'static str,
        unit: String,
    },
    /// systemd answered a method call with an error.
    #[error("{operation} {unit}: systemd said {name}: {message}")]
    Refused {
        operation: &'static str,
        unit: String,
        /// D-Bus error name, e.g. `org.freedesktop.systemd1.JobTypeNotApplicable`.
        name: String,
        message: String,
    },
    /// Any other D-Bus failure (connection lost, bad reply).
    #[error("{operation} {unit}: D-Bus: {source}")]
    Bus {
        operation: &'static str,
        unit: String,
        #[source]
        source: Box<zbus::Error>,
    },
    /// The operation did not finish in time. The job may still be queued or running in
    /// systemd: it is not cancelled, because systemd's own unit timeouts decide its fate.
    #[error("{operation} {unit}: no result after {after:?} (job {job})")]
    Timeout {
        operation: &'static str,
        unit: String,
        /// The job's object path, or "-" if the method call itself did not return.
        job: String,
        after: Duration,
    },
    /// The connection closed while a job was being waited for.
    #[error("{operation} {unit}: the bus connection closed before job {job} finished")]
    Disconnected {
        operation: &'static str,
        unit: String,
        job: String,
    },
}

impl Error {
    /// Maps a failed D-Bus call to the most precise variant.
    pub(crate) fn from_call(operation: &'static str, unit: &str, err: zbus::Error) -> Self {
        if let zbus::Error::MethodError(name, message, _) = &err {
            let name = name.as_str().to_owned();
            if name == "org.freedesktop.systemd1.NoSuchUnit" {
                return Error::NoSuchUnit {
                    operation,
                    unit: unit.to_owned(),
                };
            }
            return Error::Refused {
                operation,
                unit: unit.to_owned(),
                name,
                message: message.clone().unwrap_or_default(),
            };
        }
        Error::Bus {
            operation,
            unit: unit.to_owned(),
            source: Box::new(err),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
