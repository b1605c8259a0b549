//! The record of every command the peer received, in order, with its time: kept in memory
//! for in-process tests and, for the process form, appended as JSON lines to a file that
//! is flushed after each line (an end-to-end test reads it while the peer runs).

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// How a command reached the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `api CMD`.
    Api,
    /// `bgapi CMD`.
    Bgapi,
    /// Anything else on the socket (`auth`, `event …`, `exit`…); `auth`'s password is not kept.
    Socket,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Bgapi => "bgapi",
            Kind::Socket => "socket",
        }
    }
}

/// One received command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedCommand {
    pub at: SystemTime,
    pub kind: Kind,
    /// For `api`/`bgapi`, the command after the keyword (`sofia profile x rescan`).
    pub command: String,
    /// The api/response body (for `bgapi`, the job's output), or the Reply-Text.
    pub reply: String,
}

#[derive(Default)]
pub struct Journal {
    entries: Mutex<Vec<LoggedCommand>>,
    file: Mutex<Option<File>>,
}

impl Journal {
    /// Appends to `path` (created if missing).
    pub fn with_file(path: &Path) -> std::io::Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            entries: Mutex::default(),
            file: Mutex::new(Some(file)),
        })
    }

    pub fn record(&self, entry: LoggedCommand) {
        if let Some(file) = lock(&self.file).as_mut() {
            let at = time::OffsetDateTime::from(entry.at);
            let line = serde_json::json!({
                "time": at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                "unix_ms": (at.unix_timestamp_nanos() / 1_000_000) as i64,
                "kind": entry.kind.as_str(),
                "command": entry.command,
                "reply": entry.reply,
            });
            // A log line lost to a full disk must not stop the peer answering: the test
            // reading the file sees the gap.
            let _ = writeln!(file, "{line}").and_then(|()| file.flush());
        }
        lock(&self.entries).push(entry);
    }

    pub fn entries(&self) -> Vec<LoggedCommand> {
        lock(&self.entries).clone()
    }
}

/// A poisoned lock only means another connection's task panicked; its data is still whole.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
