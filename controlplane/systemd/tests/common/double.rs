//! `SystemdManagerDouble`: a TEST DOUBLE of the three members of
//! org.freedesktop.systemd1.Manager that job tracking uses (Subscribe, StartUnit, the
//! JobRemoved signal), served on a private dbus-daemon. How it answers depends on the
//! unit name, to force orderings a real systemd produces only by chance.
//! `tests/real_systemd.rs` checks its signatures against the real systemd's.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

/// Test double of systemd's Manager: how it answers depends on the unit name.
pub struct SystemdManagerDouble {
    next_job: AtomicU32,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl SystemdManagerDouble {
    async fn subscribe(&self) {}

    async fn start_unit(
        &self,
        name: &str,
        _mode: &str,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> zbus::fdo::Result<OwnedObjectPath> {
        let id = self.next_job.fetch_add(1, Ordering::SeqCst);
        let path = OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        let emit = |emitter: SignalEmitter<'static>,
                    id: u32,
                    path: OwnedObjectPath,
                    unit: String,
                    result: &'static str| async move {
            Self::job_removed(&emitter, id, path.as_ref(), &unit, result)
                .await
                .ok();
        };
        match name {
            // The job finishes before the method returns: JobRemoved precedes the reply.
            "early.service" => {
                emit(emitter.to_owned(), id, path.clone(), name.into(), "done").await;
            }
            // Another client's job ends first, then ours, after the reply.
            "late.service" => {
                let emitter = emitter.to_owned();
                let (unit, p) = (name.to_owned(), path.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let other = OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/9999")
                        .expect("static path");
                    emit(
                        emitter.clone(),
                        9999,
                        other,
                        "other.service".into(),
                        "failed",
                    )
                    .await;
                    emit(emitter, id, p, unit, "dependency").await;
                });
            }
            "newer.service" => {
                emit(emitter.to_owned(), id, path.clone(), name.into(), "frozen").await;
            }
            // "never.service": the job never ends.
            _ => {}
        }
        Ok(path)
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// A private dbus-daemon, killed when dropped.
pub struct PrivateBus {
    pub address: String,
    pid: i32,
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

pub fn private_bus() -> PrivateBus {
    let out = Command::new("dbus-daemon")
        .args([
            "--session",
            "--print-address=1",
            "--print-pid=1",
            "--fork",
            "--nopidfile",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("dbus-daemon must be installed (apt-get install dbus)");
    assert!(out.status.success(), "dbus-daemon failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8 from dbus-daemon");
    let mut lines = text.lines();
    let address = lines.next().expect("address line").to_owned();
    let pid = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid line");
    PrivateBus { address, pid }
}

/// Serves the double; the returned connection must be kept alive.
pub async fn serve_double(bus: &PrivateBus) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1",
            SystemdManagerDouble {
                next_job: AtomicU32::new(1),
            },
        )
        .unwrap()
        .build()
        .await
        .expect("serve the double")
}
