//! A real systemd for tests: one nspawn container per test binary, booted from the
//! image-like root by qa/nspawn/up, with its system bus reachable from the host, and
//! stopped by the watcher `up` leaves behind when the test process exits (test binaries
//! have no teardown hook). If it cannot boot, the tests fail loudly; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Container {
    /// The container's system bus, `unix:path=…`.
    pub address: String,
    /// The container's /etc/systemd/system, writable from the host: drop units here,
    /// then daemon-reload over D-Bus.
    pub units: PathBuf,
    /// The container's /var, seen from the host.
    pub var: PathBuf,
}

fn nspawn_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nspawn")
}

/// The shared container of this test binary, booted on first use.
pub fn container() -> &'static Container {
    static C: OnceLock<Container> = OnceLock::new();
    C.get_or_init(|| {
        let binary = std::env::args()
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let state =
            std::env::temp_dir().join(format!("ccnq-nspawn-{binary}-{}", std::process::id()));
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
    /// Where the container sees `host`, a path under [`Container::var`].
    pub fn inside(&self, host: &Path) -> PathBuf {
        let rel = host.strip_prefix(&self.var).unwrap_or_else(|_| {
            panic!(
                "{} is not in the container's /var ({})",
                host.display(),
                self.var.display()
            )
        });
        Path::new("/var").join(rel)
    }

    /// Writes unit files (name, text) into the container's /etc/systemd/system.
    pub fn install(&self, units: &[(String, String)]) {
        for (name, text) in units {
            std::fs::write(self.units.join(name), text).expect("write unit file");
        }
    }
}
