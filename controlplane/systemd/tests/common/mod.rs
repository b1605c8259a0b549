//! A real systemd for the tests: one nspawn container per test binary, booted through
//! qa/nspawn/up and stopped by the watcher `up` leaves behind when this process exits.
//! If it cannot boot the tests fail, loudly; nothing is skipped.

#![allow(dead_code)]

pub mod double;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ccnq_systemd::Systemd;

pub struct Container {
    pub address: String,
    /// The container's /etc/systemd/system, writable from the host.
    pub units: PathBuf,
}

fn nspawn_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qa/nspawn")
}

/// The shared container, booted on first use.
pub fn container() -> &'static Container {
    static C: OnceLock<Container> = OnceLock::new();
    C.get_or_init(|| {
        let state = std::env::temp_dir().join(format!(
            "ccnq-systemd-{}-{}",
            std::env::args()
                .next()
                .and_then(|a| Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            std::process::id()
        ));
        let started = std::time::Instant::now();
        let out = Command::new(nspawn_dir().join("up"))
            .arg(&state)
            .env("CCNQ_NSPAWN_OWNER_PID", std::process::id().to_string())
            .env("CCNQ_NSPAWN_CLEANUP", "1")
            .output()
            .expect("run qa/nspawn/up");
        if !out.status.success() {
            panic!(
                "qa/nspawn/up failed (these tests need root, systemd-nspawn and debootstrap; \
                 CI={:?}):\n{}",
                std::env::var("CI").ok(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!("nspawn container up in {:?}: {address}", started.elapsed());
        Container {
            address,
            units: state.join("units"),
        }
    })
}

impl Container {
    /// Writes unit files into the container's /etc/systemd/system. Callers then
    /// daemon-reload over D-Bus.
    pub fn install(&self, units: &[(String, String)]) {
        for (name, text) in units {
            std::fs::write(self.units.join(name), text).expect("write unit file");
        }
    }

    /// A fresh connection, with a timeout long enough for the units' own timeouts.
    pub async fn connect(&self) -> Systemd {
        Systemd::connect(&self.address)
            .await
            .expect("connect to the container's bus")
            .with_timeout(Duration::from_secs(30))
    }
}

const INSTALL: &str = "\n[Install]\nWantedBy=multi-user.target\n";

/// A service that runs until stopped, with a reload command.
pub fn ok_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        format!(
            "[Unit]\nDescription=ccnq test: runs\n[Service]\nExecStart=/bin/sleep infinity\n\
             ExecReload=/bin/true\nMemoryAccounting=yes\n{INSTALL}"
        ),
    )
}

/// A oneshot service whose start fails.
pub fn failing_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        "[Unit]\nDescription=ccnq test: fails\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
            .to_owned(),
    )
}

/// A notify service that never notifies: its start times out after 2 s. systemd then
/// fails the unit (Result=timeout) and the start job ends `failed`.
pub fn timeout_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        "[Unit]\nDescription=ccnq test: never ready\n[Service]\nType=notify\n\
         ExecStart=/bin/sleep infinity\nTimeoutStartSec=2\n"
            .to_owned(),
    )
}

/// The same, but it is the job that times out (JobTimeoutSec): the job ends `timeout`.
pub fn job_timeout_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        "[Unit]\nDescription=ccnq test: job times out\nJobTimeoutSec=2\n[Service]\n\
         Type=notify\nExecStart=/bin/sleep infinity\nTimeoutStartSec=infinity\n"
            .to_owned(),
    )
}

/// A service that starts, then dies of SIGSEGV a second later (`$$$$`: systemd turns
/// `$$` into `$`, and the shell needs `$$`).
pub fn crash_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        "[Unit]\nDescription=ccnq test: crashes\n[Service]\n\
         ExecStart=/bin/sh -c 'sleep 1; kill -SEGV $$$$'\n"
            .to_owned(),
    )
}

/// A service that requires another.
pub fn requiring_unit(name: &str, required: &str) -> (String, String) {
    (
        format!("{name}.service"),
        format!(
            "[Unit]\nDescription=ccnq test: requires {required}\nRequires={required}\n\
             After={required}\n[Service]\nExecStart=/bin/sleep infinity\n"
        ),
    )
}
