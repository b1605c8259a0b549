//! Real peers for the applier's tests: a real systemd (one nspawn container per test
//! binary, booted through qa/nspawn/up as ccnq-systemd's tests do, stopped by the watcher
//! `up` leaves behind when this process exits), and host documents rendered by the real
//! renderer. If the container cannot boot the tests fail, loudly; nothing is skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ccnq_systemd::Systemd;

pub struct Container {
    pub address: String,
    /// The container's /etc/systemd/system, writable from the host.
    pub units: PathBuf,
    /// The container's /var, seen from the host.
    pub var: PathBuf,
}

fn nspawn_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qa/nspawn")
}

/// The shared container, booted on first use.
pub fn container() -> &'static Container {
    static C: OnceLock<Container> = OnceLock::new();
    C.get_or_init(|| {
        let state = std::env::temp_dir().join(format!("ccnq-apply-{}", std::process::id()));
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
            var: state.join("var"),
        }
    })
}

impl Container {
    /// A fresh connection, with a timeout long enough for the units' own timeouts.
    pub async fn connect(&self) -> Systemd {
        Systemd::connect(&self.address)
            .await
            .expect("connect to the container's bus")
            .with_timeout(Duration::from_secs(30))
    }

    /// Installs a stand-in for freeswitch.service named `<name>.service`: it runs until
    /// stopped and appends a line to /var/tmp/<name>.starts at each start (before the
    /// start job ends: ExecStartPre), so a test can count the (re)starts systemd really did. Without an `[Install]` section it cannot
    /// be enabled.
    pub async fn install_freeswitch_standin(
        &self,
        systemd: &Systemd,
        name: &str,
        install_section: bool,
    ) -> String {
        let unit = format!("{name}.service");
        let install = if install_section {
            "[Install]\nWantedBy=multi-user.target\n"
        } else {
            ""
        };
        std::fs::write(
            self.units.join(&unit),
            format!(
                "[Unit]\nDescription=ccnq-apply test: stands in for FreeSWITCH\n[Service]\n\
                 ExecStartPre=/bin/sh -c 'echo start >> /var/tmp/{name}.starts'\n\
                 ExecStart=/bin/sleep infinity\n\
                 {install}"
            ),
        )
        .expect("write unit file");
        systemd.daemon_reload().await.expect("daemon-reload");
        unit
    }

    /// How many times the stand-in `name` was started.
    pub fn starts(&self, name: &str) -> usize {
        std::fs::read_to_string(self.var.join(format!("tmp/{name}.starts")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}
