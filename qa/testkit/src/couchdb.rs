//! A real Apache CouchDB 3.4.3 for tests, from the pinned release tree in
//! `../shared/peers/couchdb-3.4.3-bookworm-amd64.tar.xz` (its README says how it was
//! built and how to start it).
//!
//! Why a real CouchDB: pouchdb-server, the stand-in the tests used before, differs from
//! CouchDB 3 exactly where the control plane can go wrong (spec/couchdb.md): opaque
//! string sequences, the feed ended on deletion, 403 where pouchdb says 401, the account
//! lockout, the admin-only `_replicator`, replication jobs that fail while their
//! documents look fine. Those are only caught against the real server.
//!
//! How: the tarball is unpacked once per machine ([`crate::peers`]: checked against its
//! sha256, under a lock, renamed into place when complete, so parallel test binaries
//! neither race nor see half a tree). Each instance gets its own directory with its
//! `data/`, log, `vm.args` and the last, writable ini of the chain (CouchDB writes the
//! hashed admin password and its uuid there), and listens on a free loopback port. The
//! Erlang node uses a distribution port of its own and no epmd (`-start_epmd false`), so
//! nothing outlives the instance. A watcher process kills the instance when the test
//! process ends, however it ends (the shared instance lives in a static, which is never
//! dropped).
//!
//! A start costs a few seconds, so a test binary shares one instance
//! ([`CouchServer::shared`]) and each test uses its own database names. A test that
//! kills, restarts or stops the server, or locks out a user on purpose, starts its own.
//! Never send a wrong password for the admin to the shared instance: CouchDB locks the
//! user out after a few failures, for every test of the binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The release this harness runs, and the sha256 of its tarball (from
/// `../shared/peers/README.md`): a different file is refused, never run.
pub const VERSION: &str = "3.4.3";
const TARBALL: &str = "couchdb-3.4.3-bookworm-amd64.tar.xz";
const TARBALL_SHA256: &str = "1994c8552dce7cd66c97919aec1a527bd45057fa20ed1514022a574aec81a3ca";

/// The server admin every instance has.
pub const ADMIN: &str = "admin";

/// The unpacked release root (`…/opt/couchdb`), unpacking it first if this machine has
/// not yet ([`crate::peers::unpacked`]). Panics, naming the path, if the tarball is
/// missing or not the pinned one: the tests that need CouchDB must not pass without it.
pub fn tree() -> PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        crate::peers::unpacked(TARBALL, TARBALL_SHA256, &format!("couchdb-{VERSION}"))
            .join("opt/couchdb")
    })
    .clone()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

use crate::free_port;

/// 24 random bytes as hex, for the admin password and the Erlang cookie.
fn random_hex() -> String {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    hex(&b)
}

/// One running CouchDB. Dropping it kills the server and removes its directory, which
/// is kept when the test panicked (its log is `couch.log` there).
pub struct CouchServer {
    port: u16,
    dir: PathBuf,
    password: String,
    name: String,
    child: Option<Child>,
}

static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl CouchServer {
    /// Starts a fresh instance: empty `data/`, the admin [`ADMIN`] with a random
    /// password, `_users` and `_replicator` made (`single_node`).
    pub fn start(tag: &str) -> CouchServer {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let name = format!("ccnq{}x{n}", std::process::id());
        let dir =
            std::env::temp_dir().join(format!("ccnq-couchdb-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut s = CouchServer {
            port: free_port(),
            dir,
            password: random_hex(),
            name,
            child: None,
        };
        watch(&s.dir);
        s.write_config();
        s.launch();
        s
    }

    /// The instance this test binary shares, started on first use. Use database names
    /// of your own; never kill, restart or lock out its admin.
    pub fn shared() -> &'static CouchServer {
        static SHARED: OnceLock<CouchServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let s = CouchServer::start("shared");
            // A static is never dropped: keep the directory (and its log) when any test
            // of the binary fails; the watcher removes it otherwise.
            let keep = s.dir.join("keep");
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = std::fs::write(&keep, b"");
                previous(info);
            }));
            s
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server admin's name ([`ADMIN`]) and password.
    pub fn admin(&self) -> (&str, &str) {
        (ADMIN, &self.password)
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// CouchDB's own log: one line per request with its status, among others.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("couch.log")).unwrap_or_default()
    }

    /// The last file of the ini chain: CouchDB writes into it (hashed admin password),
    /// so it is written only once, before the first start.
    ///
    /// The cookie secret and uuid are set here, as on any CouchDB deployed for real (a
    /// cluster needs the same secret on every node): left unset, CouchDB makes the secret
    /// at the first `POST /_session` with a check-then-set, and two first sessions at
    /// once (a host's pull and push replications starting together) each make one; the
    /// cookie signed with the one overwritten is refused, and that replication crashes
    /// `unauthorized` until the scheduler retries it, minutes later.
    fn write_config(&self) {
        let d = self.dir.display();
        let ini = format!(
            "; CouchDB {VERSION} test instance (qa/testkit/src/couchdb.rs)\n\
             [couchdb]\nsingle_node = true\nuuid = {}\ndatabase_dir = {d}/data\nview_index_dir = {d}/data\n\n\
             [cluster]\nn = 1\n\n\
             [chttpd_auth]\nsecret = {}\n\n\
             [smoosh]\nstate_dir = {d}/data\n\n\
             [chttpd]\nbind_address = 127.0.0.1\nport = {}\n\n\
             [log]\nwriter = file\nfile = {d}/couch.log\nlevel = info\n\n\
             [admins]\n{ADMIN} = {}\n",
            &random_hex()[..32],
            random_hex(),
            self.port,
            self.password
        );
        std::fs::write(self.dir.join("local.ini"), ini).unwrap();
    }

    /// The VM arguments, new for every launch: a distribution port that is free now,
    /// and no epmd (nothing is left running after the node).
    fn write_vm_args(&self) {
        let args = format!(
            "-name {}@127.0.0.1\n-setcookie {}\n-start_epmd false\n-erl_epmd_port {}\n\
             -kernel inet_dist_use_interface {{127,0,0,1}}\n\
             -kernel error_logger silent\n-sasl sasl_error_logger false\n+Bd -noinput\n",
            self.name,
            random_hex(),
            free_port()
        );
        std::fs::write(self.dir.join("vm.args"), args).unwrap();
    }

    fn launch(&mut self) {
        let tree = tree();
        // A free port can be taken by someone else before CouchDB binds it: try again
        // with a new distribution port (the HTTP port must stay, for `restart`).
        for attempt in 1..=3 {
            self.write_vm_args();
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("stdout.log"))
                .unwrap();
            use std::os::unix::process::CommandExt;
            let child = Command::new(tree.join("bin/couchdb"))
                .env("COUCHDB_ARGS_FILE", self.dir.join("vm.args"))
                .env(
                    "COUCHDB_INI_FILES",
                    format!(
                        "{} {}",
                        tree.join("etc/default.ini").display(),
                        self.dir.join("local.ini").display()
                    ),
                )
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                // Its own process group: kill() reaches couchjs and any other child too.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {}: {e}", tree.join("bin/couchdb").display())
                });
            let _ = std::fs::write(self.dir.join("pgid"), child.id().to_string());
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return,
                Err(why) if attempt < 3 => {
                    eprintln!("CouchDB in {} did not start ({why}); again", self.dir.display());
                    self.signal(nix::sys::signal::Signal::SIGKILL);
                }
                Err(why) => panic!(
                    "CouchDB {VERSION} did not start in {}: {why}\n--- stdout.log:\n{}\n--- couch.log (end):\n{}",
                    self.dir.display(),
                    std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default(),
                    tail(&self.log(), 30)
                ),
            }
        }
    }

    /// `GET /_up`, then the system databases (`single_node` makes them at first start).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let auth = basic(ADMIN, &self.password);
        let mut pending = vec!["/_up", "/_users", "/_replicator"];
        while let Some(path) = pending.first() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("it exited ({status})"));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("GET {path} did not answer 200 within 90 s"));
            }
            if get_status(self.port, path, &auth) == Some(200) {
                pending.remove(0);
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(mut child) = self.child.take() {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, sig);
            if sig == nix::sys::signal::Signal::SIGKILL {
                let _ = child.wait();
                return;
            }
            // SIGTERM: CouchDB takes a few seconds; give it a minute, then SIGKILL.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            // Whatever else was in the group.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// SIGKILL, as a crash or power loss would.
    pub fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    /// SIGTERM, as systemd stops it; waits until it has exited.
    pub fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// Killed (if running) and started again: same port, same data, same admin.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Whether the server process is running (not killed or stopped by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for CouchServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let _ = std::fs::write(self.dir.join("keep"), b"");
            eprintln!(
                "CouchDB data and log kept in {} (couch.log)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Leaves a process behind that, once this test process is gone, kills the instance's
/// process group (read from `dir/pgid`, which changes at each launch) and removes `dir`
/// unless `dir/keep` exists.
fn watch(dir: &Path) {
    use std::os::unix::process::CommandExt;
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
pgid=$(cat "$2/pgid" 2>/dev/null) && [ -n "$pgid" ] && kill -KILL "-$pgid" 2>/dev/null
[ -e "$2/keep" ] || rm -rf "$2""#;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("ccnq-couchdb-watch")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        panic!("cannot start the CouchDB watcher (sh): {e}");
    }
}

fn basic(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// The status of `GET path`, or `None` if nothing answered.
fn get_status(port: u16, path: &str, basic_auth: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic_auth}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_base64() {
        assert_eq!(basic("admin", "secret"), "YWRtaW46c2VjcmV0");
        assert_eq!(basic("a", ""), "YTo=");
    }

    /// The harness's own promises: admin-only from the start, data kept over a kill and
    /// a restart on the same port, nothing answering after a stop.
    #[test]
    fn an_instance_starts_keeps_its_data_over_a_restart_and_stops() {
        let mut s = CouchServer::start("harness");
        let admin = basic(ADMIN, s.password());
        assert_eq!(get_status(s.port(), "/_all_dbs", &admin), Some(200));
        assert_eq!(
            get_status(s.port(), "/_all_dbs", &basic(ADMIN, "wrong")),
            Some(401)
        );
        let mut put = TcpStream::connect(("127.0.0.1", s.port())).unwrap();
        write!(
            put,
            "PUT /kept HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {admin}\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        put.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 201"), "{answer}");
        let port = s.port();
        s.restart();
        assert_eq!(s.port(), port);
        assert_eq!(get_status(port, "/kept", &admin), Some(200));
        assert!(s.log().contains("Apache CouchDB 3.4.3 is starting"));
        s.stop();
        assert!(!s.is_running());
        assert_eq!(get_status(port, "/_up", &admin), None);
    }
}
