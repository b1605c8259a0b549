//! A real systemd for the tests (ccnq-testkit's nspawn container) and the test units.

#![allow(dead_code)]

pub mod double;

use std::time::Duration;

use ccnq_systemd::Systemd;

// Each test binary uses a part of `common`.
#[allow(unused_imports)]
pub use ccnq_testkit::nspawn::{container, Container};

/// A connection to the container's systemd.
pub trait Connect {
    /// A fresh connection, with a timeout long enough for the units' own timeouts.
    async fn connect(&self) -> Systemd;
}

impl Connect for Container {
    async fn connect(&self) -> Systemd {
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

/// A service whose program is not installed, skipped by its condition the way the
/// image's freeswitch.service and couchdb.service are when built without them.
pub fn not_installed_unit(name: &str) -> (String, String) {
    (
        format!("{name}.service"),
        format!(
            "[Unit]\nDescription=ccnq test: not installed\n\
         ConditionPathExists=/usr/bin/ccnq-test-not-installed\n\
         ConditionPathExists=|!/etc/ccnq-test-never\n\
         [Service]\nExecStart=/usr/bin/ccnq-test-not-installed\n{INSTALL}"
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
