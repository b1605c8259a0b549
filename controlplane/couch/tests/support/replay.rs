//! TEST DOUBLE: a TCP server that replays recorded CouchDB / pouchdb-server answers.
//!
//! CI cannot run CouchDB 3, so the client and the follower are checked against the
//! byte-exact recordings in shared/fixtures/couchdb/: each answer is written back in the
//! read chunks the real server produced (from the `S->C N bytes` markers of the `.log`),
//! and a recording whose server died (`NOTE S->C EOF`) ends with the connection closed
//! mid-stream, just as the real one did. Where no recording exists (a 404 or 200 for
//! `GET /db`), a `Step::Synthetic` answer is used and named so in each test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn shared_dir() -> PathBuf {
    match std::env::var("CCNQ_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// How a recorded connection ended on the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the connection (killed, stopped, or after a complete answer).
    Close,
    /// The client closed it: the server was still there, silent.
    HoldOpen,
}

#[derive(Debug, Clone)]
pub struct Recording {
    pub name: String,
    pub chunks: Vec<Vec<u8>>,
    pub end: End,
    /// The request the real client sent.
    pub tx: Vec<u8>,
}

impl Recording {
    /// `server` is `couchdb-3.4.3` or `pouchdb-server-4.2.0`.
    pub fn load(server: &str, name: &str) -> Recording {
        let dir = shared_dir().join("fixtures/couchdb").join(server);
        let log = std::fs::read_to_string(dir.join(format!("{name}.log")))
            .unwrap_or_else(|e| panic!("{server}/{name}.log: {e}"));
        let rx = std::fs::read(dir.join(format!("{name}.rx"))).unwrap();
        let tx = std::fs::read(dir.join(format!("{name}.tx"))).unwrap();
        let mut chunks = Vec::new();
        let mut at = 0;
        for line in log
            .lines()
            .filter(|l| l.starts_with("#### ") && l.contains("] S->C "))
        {
            let n: usize = line
                .split("] S->C ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad marker in {name}.log: {line}"));
            chunks.push(rx[at..at + n].to_vec());
            at += n;
        }
        assert_eq!(
            at,
            rx.len(),
            "{name}: markers do not add up to the .rx size"
        );
        let end = if log.contains("NOTE S->C EOF") {
            End::Close
        } else {
            End::HoldOpen
        };
        Recording {
            name: name.to_string(),
            chunks,
            end,
            tx,
        }
    }

    /// The recorded request line (`POST /provisioning/_changes?… HTTP/1.1`).
    pub fn request_line(&self) -> String {
        String::from_utf8_lossy(self.tx.split(|&b| b == b'\r').next().unwrap_or_default())
            .into_owned()
    }
}

/// One connection's answer.
#[derive(Debug, Clone)]
pub enum Step {
    Replay(Recording),
    /// Not recorded: a complete response written by the test (named in the test).
    Synthetic(&'static str),
}

/// A request the double received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
}

pub struct ReplayServer {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

impl ReplayServer {
    /// Serves `steps`, one per accepted connection, in order. Connections beyond the
    /// script are held open in silence (a server that hangs).
    pub async fn start(steps: Vec<Step>) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let mut steps = steps.into_iter();
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let step = steps.next();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    seen.lock().unwrap().push(req);
                    match step {
                        Some(Step::Replay(rec)) => {
                            for chunk in &rec.chunks {
                                if sock.write_all(chunk).await.is_err() {
                                    return;
                                }
                                let _ = sock.flush().await;
                                // Separate reads on the client side, as recorded.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if rec.end == End::Close {
                                let _ = sock.shutdown().await;
                                return;
                            }
                        }
                        Some(Step::Synthetic(resp)) => {
                            let _ = sock.write_all(resp.as_bytes()).await;
                        }
                        None => {}
                    }
                    // Hold open until the client goes away.
                    let mut sink = [0u8; 1024];
                    while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        ReplayServer { url, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// SYNTHETIC (not recorded): CouchDB's answer to `GET /db` for a missing database.
pub const SYNTHETIC_DB_404: &str = "HTTP/1.1 404 Object Not Found\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{\"error\":\"not_found\",\"reason\":\"missing\"}";
/// SYNTHETIC (not recorded): `GET /db` for an existing database.
pub const SYNTHETIC_DB_200: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 28\r\nConnection: close\r\n\r\n{\"db_name\":\"provisioning\"}\r\n";
