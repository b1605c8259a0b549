//! Real peers for the applier's tests: a real systemd (one nspawn container per test
//! binary, booted through qa/nspawn/up as ccnq-systemd's tests do, stopped by the watcher
//! `up` leaves behind when this process exits), and host documents rendered by the real
//! renderer. If the container cannot boot the tests fail, loudly; nothing is skipped.

#![allow(dead_code)]

use std::time::Duration;

use ccnq_systemd::Systemd;

// Each test binary uses a part of `common`.
#[allow(unused_imports)]
pub use ccnq_testkit::nspawn::{container, Container};

/// What the applier's tests do with the container.
pub trait ContainerExt {
    async fn connect(&self) -> Systemd;
    async fn install_freeswitch_standin(
        &self,
        systemd: &Systemd,
        name: &str,
        install_section: bool,
    ) -> String;
    fn starts(&self, name: &str) -> usize;
}

impl ContainerExt for Container {
    /// A fresh connection, with a timeout long enough for the units' own timeouts.
    async fn connect(&self) -> Systemd {
        Systemd::connect(&self.address)
            .await
            .expect("connect to the container's bus")
            .with_timeout(Duration::from_secs(30))
    }

    /// Installs a stand-in for freeswitch.service named `<name>.service`: it runs until
    /// stopped and appends a line to /var/tmp/<name>.starts at each start (before the
    /// start job ends: ExecStartPre), so a test can count the (re)starts systemd really did. Without an `[Install]` section it cannot
    /// be enabled.
    async fn install_freeswitch_standin(
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
    fn starts(&self, name: &str) -> usize {
        std::fs::read_to_string(self.var.join(format!("tmp/{name}.starts")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}
