//! Test harness: a site PKI made on the fly, a real `ccnqd` process on loopback, and a
//! TLS client that can present any certificate (or none, or a token).
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use ccnq_pki::{Issued, Validity};

/// A site: its admin CA, a stranger's CA, certificates for each role, and a token.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub ca: Issued,
    pub server: Issued,
    pub admin: Issued,
    pub operator: Issued,
    pub reader: Issued,
    pub stranger: Issued,
    pub expired: Issued,
    pub token: String,
}

impl Site {
    pub fn new() -> Site {
        let days = || Validity::days_from_now(30);
        let ca = ccnq_pki::issue_ca("Test site admin CA", days()).unwrap();
        let other_ca = ccnq_pki::issue_ca("Someone else's CA", days()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let long_ago = Validity {
            not_before: now - time::Duration::days(30),
            not_after: now - time::Duration::days(1),
        };
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
            server: ccnq_pki::issue_server(&ca, &names, days()).unwrap(),
            admin: ccnq_pki::issue_client(&ca, "alice", "admin", days()).unwrap(),
            operator: ccnq_pki::issue_client(&ca, "oscar", "operator", days()).unwrap(),
            reader: ccnq_pki::issue_client(&ca, "rita", "reader", days()).unwrap(),
            stranger: ccnq_pki::issue_client(&other_ca, "mallory", "admin", days()).unwrap(),
            expired: ccnq_pki::issue_client(&ca, "old", "admin", long_ago).unwrap(),
            token: ccnq_pki::new_token().unwrap(),
            ca,
        };
        std::fs::write(site.path("ca.pem"), &site.ca.cert_pem).unwrap();
        std::fs::write(site.path("server.crt"), &site.server.cert_pem).unwrap();
        std::fs::write(site.path("server.key"), &site.server.key_pem).unwrap();
        for (name, cert) in [
            ("admin", &site.admin),
            ("operator", &site.operator),
            ("reader", &site.reader),
            ("stranger", &site.stranger),
            ("expired", &site.expired),
        ] {
            std::fs::write(site.path(&format!("{name}.crt")), &cert.cert_pem).unwrap();
            std::fs::write(site.path(&format!("{name}.key")), &cert.key_pem).unwrap();
        }
        std::fs::create_dir(site.path("data")).unwrap();
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A configuration listening on an ephemeral loopback port. `extra_api` lands in
    /// the `[api]` table; `with_cert` chooses a CA-issued server certificate over a
    /// generated one.
    pub fn config(&self, with_cert: bool, extra_api: &str) -> PathBuf {
        let cert = if with_cert {
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                self.path("server.crt").display(),
                self.path("server.key").display()
            )
        } else {
            String::new()
        };
        let text = format!(
            "host = \"sbc1.example.net\"\ndata_dir = \"{data}\"\n\n[api]\nlisten = [\"127.0.0.1:0\"]\nadmin_ca = \"{ca}\"\n{cert}{extra_api}\n\
             [[api.tokens]]\nname = \"backup-script\"\nrole = \"reader\"\nsha256 = \"{hash}\"\n\n\
             [system]\nos_release = [\"{osr}\"]\nkernel_cmdline = \"{cmd}\"\n",
            data = self.path("data").display(),
            ca = self.path("ca.pem").display(),
            hash = ccnq_pki::token_hash(&self.token),
            osr = self.path("os-release").display(),
            cmd = self.path("cmdline").display(),
        );
        std::fs::write(
            self.path("os-release"),
            "ID=debian\nIMAGE_ID=ccnq\nIMAGE_VERSION=2026.11.2\n",
        )
        .unwrap();
        std::fs::write(self.path("cmdline"), "console=ttyS0 ccnq.slot=a\n").unwrap();
        let path = self.path("ccnqd.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running `ccnqd`, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// When READY=1 arrived on the notify socket.
    pub ready_at: Instant,
    /// The notify socket, still bound: later messages (WATCHDOG=1, STOPPING=1) land here.
    pub notify: UnixDatagram,
    _notify_dir: tempfile::TempDir,
}

pub fn ccnqd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ccnqd"))
}

impl Daemon {
    /// Starts the daemon under a notify socket, as systemd would, and waits for READY=1.
    pub fn start(config: &Path) -> Daemon {
        let mut cmd = Command::new(ccnqd_bin());
        cmd.arg("--config").arg(config);
        Daemon::spawn(cmd)
    }

    /// Starts the daemon as systemd does with `WatchdogSec=`: `WATCHDOG_USEC` set and
    /// `WATCHDOG_PID` naming the daemon itself (hence the `exec` from a shell).
    pub fn start_with_watchdog(config: &Path, usec: u64) -> Daemon {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"")
            .arg(ccnqd_bin())
            .arg(config)
            .env("WATCHDOG_USEC", usec.to_string());
        Daemon::spawn(cmd)
    }

    fn spawn(mut command: Command) -> Daemon {
        let notify_dir = tempfile::tempdir().unwrap();
        let notify_path = notify_dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut child = command
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("JOURNAL_STREAM")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("API listening on https://").nth(1) {
                    let _ = addr_tx.send(rest.trim().parse::<SocketAddr>().unwrap());
                }
                eprintln!("[ccnqd] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut buf = [0u8; 4096];
        let ready_at = loop {
            let n = notify
                .recv(&mut buf)
                .expect("no READY=1 from ccnqd within 30 s");
            let msg = String::from_utf8_lossy(&buf[..n]);
            if msg.lines().any(|l| l == "READY=1") {
                break Instant::now();
            }
        };
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("no listening address logged");
        Daemon {
            child,
            addr,
            stderr: lines,
            ready_at,
            notify,
            _notify_dir: notify_dir,
        }
    }

    /// Waits (up to 10 s) for a line of the daemon's log: it is read by another thread.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The next notify message that has `line` as one of its lines, within 10 s.
    pub fn wait_for_notify(&self, line: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        self.notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == line)
                {
                    return true;
                }
            }
        }
        false
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a test client authenticates.
pub enum Auth<'a> {
    None,
    Cert(&'a Issued),
    Token(&'a str),
}

pub fn client_config(
    site: &Site,
    auth: &Auth,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(site.ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match auth {
        Auth::Cert(c) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to the daemon as `localhost`, offering `versions` and `alpn`.
pub async fn connect(
    site: &Site,
    addr: SocketAddr,
    auth: &Auth<'_>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let config = client_config(site, auth, versions, alpn);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// What came back from one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
    /// The body as it came, for answers that are not JSON (the metrics).
    pub raw: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// One request over a fresh TLS connection. `Err` carries the TLS or HTTP failure.
pub async fn request(
    site: &Site,
    addr: SocketAddr,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Answer, String> {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let tls = connect(site, addr, &auth, &versions, &[b"http/1.1"]).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    send(&mut sender, auth, method, path, body).await
}

pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Answer, String> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Auth::Token(t) = auth {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok(Answer {
        status,
        content_type,
        headers,
        body,
        raw: bytes,
    })
}

pub fn ccnqctl_bin() -> PathBuf {
    let path = ccnqd_bin().with_file_name("ccnqctl");
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace` (or build -p ccnqctl first)",
        path.display()
    );
    path
}

/// A ccnqctl command with no ambient settings: no config file, no CCNQ_* variables.
pub fn ccnqctl(site: &Site) -> std::process::Command {
    let mut cmd = std::process::Command::new(ccnqctl_bin());
    cmd.env("XDG_CONFIG_HOME", site.path("xdg"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CCNQ") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub fn with_cert(cmd: &mut std::process::Command, site: &Site, daemon: &Daemon, who: &str) {
    cmd.arg("--endpoint")
        .arg(format!("https://localhost:{}", daemon.addr.port()))
        .arg("--ca")
        .arg(site.path("ca.pem"))
        .arg("--cert")
        .arg(site.path(&format!("{who}.crt")))
        .arg("--key")
        .arg(site.path(&format!("{who}.key")));
}
