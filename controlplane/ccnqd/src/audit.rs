//! The audit trail: every request that changes something, who made it, and what came of it.
//!
//! Written twice on purpose: to an append-only file on the data volume (it survives
//! journal rotation and upgrades, and travels with the host's data), and to the journal
//! (where operators already look). Each entry is one JSON line, flushed to disk before
//! the response is sent, so a crash cannot lose an action that was acknowledged.

use crate::auth::Caller;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub request: &'a str,
    pub who: &'a str,
    pub role: Option<&'a str>,
    pub via: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The HTTP status of the answer.
    pub status: u16,
    /// What was done or why it was refused.
    pub result: &'a str,
}

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating if needed) `<data_dir>/audit.log` for appending only.
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        let path = data_dir.join("audit.log");
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one entry. A failure to write the file is logged loudly but does not
    /// undo the action: the journal copy still holds it.
    pub fn record(
        &self,
        caller: &Caller,
        method: &str,
        path: &str,
        request: &str,
        status: u16,
        result: &str,
    ) {
        let entry = Entry {
            time: now_rfc3339(),
            request,
            who: &caller.who,
            role: caller.role.map(|r| r.as_str()),
            via: caller.via.as_str(),
            method,
            path,
            status,
            result,
        };
        log::info!(
            target: "audit",
            request = request, who = caller.who.as_str(), role = entry.role.unwrap_or("none"),
            via = entry.via, method = method, path = path, status = status;
            "audit: {} {} {} by {}: {}", method, path, status, caller.who, result
        );
        let mut line = match serde_json::to_vec(&entry) {
            Ok(line) => line,
            Err(e) => {
                log::error!("audit entry not serializable: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
            log::error!(path = self.path.display().to_string().as_str(); "cannot write the audit log: {e}");
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Via;
    use ccnq_api::Role;

    #[test]
    fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let alice = Caller {
            who: "CN=alice,OU=operator".into(),
            role: Some(Role::Operator),
            via: Via::Certificate,
        };
        log.record(
            &alice,
            "PUT",
            "/v1/log/level",
            "r1",
            200,
            "level set to debug",
        );
        log.record(&alice, "PUT", "/v1/log/level", "r2", 400, "bad level");
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["who"], "CN=alice,OU=operator");
        assert_eq!(lines[0]["role"], "operator");
        assert_eq!(lines[1]["status"], 400);
        // Reopening appends rather than truncates.
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.record(&alice, "PUT", "/v1/log/level", "r3", 200, "ok");
        assert_eq!(
            std::fs::read_to_string(log.path()).unwrap().lines().count(),
            3
        );
    }
}
