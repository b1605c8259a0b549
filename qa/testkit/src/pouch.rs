//! A real pouchdb-server 4.2.0 per test, started by qa/couchdb/pouchdb-server on a free
//! port with its own data directory, killed when the guard is dropped.

use std::path::PathBuf;
use std::process::Command;

pub struct PouchServer {
    pub port: u16,
    pub data: PathBuf,
    pid: Option<u32>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../couchdb/pouchdb-server")
}

/// True if node and npm are there. When not, says so loudly: the live tests are then
/// skipped, never silently.
pub fn node_available(test: &str) -> bool {
    let ok = ["node", "npm"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !ok {
        eprintln!("\n!!!!!!!! SKIPPED {test}: node/npm are not installed; the live pouchdb-server tests did NOT run !!!!!!!!\n");
    }
    ok
}

use crate::free_port;

impl PouchServer {
    pub fn start(tag: &str) -> PouchServer {
        let data =
            std::env::temp_dir().join(format!("ccnq-couch-pouch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut s = PouchServer {
            port: free_port(),
            data,
            pid: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let out = Command::new("bash")
            .arg(script())
            .arg(self.port.to_string())
            .arg(&self.data)
            .output()
            .expect("run qa/couchdb/pouchdb-server");
        assert!(
            out.status.success(),
            "pouchdb-server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("PID on stdout");
        self.pid = Some(pid);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            // Wait until it is gone, so the port is free for the restart.
            for _ in 0..200 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if stat.contains(") Z ") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Same port, same data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for PouchServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "pouchdb-server data and log kept in {}",
                self.data.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}
