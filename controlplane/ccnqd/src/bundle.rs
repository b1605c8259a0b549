//! The support bundle's two pure-ish halves: redaction, and the tar.gz it streams.
//!
//! A bundle is what an operator attaches to a ticket, so it goes to people who must
//! never see the host's secrets. Every part goes through a [`Redactor`] before it is
//! written: each secret the host holds (the files of `<data_dir>/secrets`, the CouchDB
//! passwords of `ccnqd.toml`, the event socket's) is replaced wherever it appears, and
//! in JSON every value under a key that names a secret (`password`, `token`, …) too.
//! What the bundle holds, and where each part came from, is gathered by the API side
//! (`ccnqd::api::bundle`); a part that could not be read is named in `MANIFEST.txt`
//! instead of failing the bundle.
//!
//! The archive is written by `tar` and `flate2` on a blocking thread into a bounded
//! channel ([`write`]), so it streams to the client as it is made and a slow client
//! slows the writer, not the daemon's memory.

use bytes::Bytes;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Replaces the host's secrets in text and JSON.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than 4 characters are refused at configuration; empty ones are
    /// ignored here (they would match everywhere).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        // The longest first: a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Values under a key that names a secret go whole; every other string is redacted
    /// as text.
    pub fn json(&self, v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if names_a_secret(k) && !v.is_null() {
                            Value::String(REDACTED.into())
                        } else {
                            self.json(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.json(v)).collect()),
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }
}

/// `password`, `secret`, `token`, `authorization`, `private_key`, in any case and as a
/// part of a longer key (`central_password`); not `password_file`, a path.
fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_file") || k.ends_with("_path") {
        return false;
    }
    [
        "password",
        "secret",
        "token",
        "authorization",
        "private_key",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// One file of the bundle.
pub enum Content {
    Bytes(Vec<u8>),
    /// A file written for the bundle (the journal), streamed from disk.
    File(PathBuf),
}

/// Writes `parts` as `<prefix>/<name>` entries of a tar.gz into `tx`, on the calling
/// (blocking) thread. Stops when the receiver is gone.
pub fn write(prefix: &str, parts: Vec<(String, Content)>, tx: mpsc::Sender<Bytes>) {
    let gz = flate2::write::GzEncoder::new(Chunks::new(tx), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, content) in parts {
        let path = format!("{prefix}/{name}");
        let done = match content {
            Content::Bytes(b) => {
                let mut h = header(b.len() as u64, now);
                tar.append_data(&mut h, &path, b.as_slice())
            }
            Content::File(f) => match std::fs::File::open(&f) {
                Ok(file) => {
                    let len = file.metadata().map_or(0, |m| m.len());
                    let mut h = header(len, now);
                    tar.append_data(&mut h, &path, file)
                }
                Err(_) => Ok(()),
            },
        };
        if done.is_err() {
            return; // the client went
        }
    }
    if let Ok(gz) = tar.into_inner() {
        if let Ok(mut chunks) = gz.finish() {
            let _ = chunks.flush();
        }
    }
}

fn header(len: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h
}

/// A `Write` that sends 64 KiB chunks into the channel.
struct Chunks {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Chunks {
    fn new(tx: mpsc::Sender<Bytes>) -> Chunks {
        Chunks {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_go_from_text_and_json() {
        let r = Redactor::new(["s3cret-pw".to_string(), "".into(), "ClueCon42".into()]);
        assert_eq!(
            r.text("auth s3cret-pw failed, ClueCon42"),
            "auth [redacted] failed, [redacted]"
        );
        let v = r.json(&json!({
            "couchdb": {"user": "ccnqd", "password": "anything", "password_file": "/var/lib/ccnq/p"},
            "headers": {"Authorization": "Basic eHg="},
            "note": "login with s3cret-pw",
            "list": ["ClueCon42", 3]
        }));
        assert_eq!(v["couchdb"]["password"], REDACTED);
        assert_eq!(v["couchdb"]["password_file"], "/var/lib/ccnq/p");
        assert_eq!(v["couchdb"]["user"], "ccnqd");
        assert_eq!(v["headers"]["Authorization"], REDACTED);
        assert_eq!(v["note"], "login with [redacted]");
        assert_eq!(v["list"], json!([REDACTED, 3]));
    }

    #[test]
    fn the_archive_holds_the_parts() {
        let (tx, mut rx) = mpsc::channel(1024);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("journal.txt");
        std::fs::write(&f, "line 1\nline 2\n").unwrap();
        write(
            "bundle",
            vec![
                ("a.txt".into(), Content::Bytes(b"hello".to_vec())),
                ("journal.txt".into(), Content::File(f)),
            ],
            tx,
        );
        let mut gz = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            gz.extend_from_slice(&chunk);
        }
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut e = entry.unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            seen.push((e.path().unwrap().display().to_string(), text));
        }
        assert_eq!(
            seen,
            [
                ("bundle/a.txt".to_string(), "hello".to_string()),
                (
                    "bundle/journal.txt".to_string(),
                    "line 1\nline 2\n".to_string()
                )
            ]
        );
    }
}
