//! The journal for the local API (`GET /v1/logs`): what the host's units logged,
//! filtered by unit, priority, time and a text match, as a stream of JSON lines, and
//! followed live when asked.
//!
//! Read through `journalctl --output=json`, the journal's stable interface (its file
//! format is not one, and libsystemd's reader would tie the daemon to a C library for
//! one endpoint). The query is checked here first ([`Query::parse`], pure), so that only
//! known options with checked values reach it, each as one `--option=value` argument
//! (no shell, and no value can pass for an option).
//!
//! Bounded: the lines go through a channel of [`CHANNEL`] lines to the client, so a
//! slow client slows `journalctl` instead of filling the daemon's memory; a line longer
//! than [`MAX_LINE`] is cut; an answer ends after [`MAX_LINES`] lines. The child is
//! killed when the client goes (its stream is dropped).

use bytes::Bytes;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

/// Lines buffered between `journalctl` and the client.
pub const CHANNEL: usize = 64;
/// The longest journal record read (JSON, before it is reduced to the fields shown).
pub const MAX_LINE: usize = 64 * 1024;
/// The most lines one answer carries (`lines` may ask fewer).
pub const MAX_LINES: u64 = 100_000;
/// Lines shown when the query says neither `lines` nor `since`.
pub const DEFAULT_LINES: u64 = 100;

/// A checked query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Full unit names.
    pub units: Vec<String>,
    /// 0 (emerg) to 7 (debug): that priority and the more severe.
    pub priority: Option<u8>,
    /// systemd.time(7) forms: `@<epoch>` or `-<n><s|m|h|d>`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// A case-insensitive text that each message must contain.
    pub text: Option<String>,
    pub lines: Option<u64>,
    pub follow: bool,
}

impl Query {
    /// Parses `unit`, `priority`, `since`, `until`, `match`, `lines` and `follow` from a
    /// query string. `unit_known` resolves a unit the API may show (a managed one, or
    /// ccnqd itself) to its full name. Errors name the parameter and the reason.
    pub fn parse(
        query: Option<&str>,
        unit_known: impl Fn(&str) -> Option<String>,
    ) -> Result<Query, String> {
        let mut q = Query::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "unit" => {
                    q.units.push(unit_known(&value).ok_or_else(|| {
                        format!("unit: {value:?} is not a unit this daemon shows")
                    })?)
                }
                "priority" => q.priority = Some(priority(&value)?),
                "since" => q.since = Some(when("since", &value)?),
                "until" => q.until = Some(when("until", &value)?),
                "match" => {
                    if value.is_empty() || value.chars().count() > 200 {
                        return Err("match: 1 to 200 characters".into());
                    }
                    q.text = Some(value.to_lowercase());
                }
                "lines" => {
                    let n: u64 = value
                        .parse()
                        .map_err(|_| format!("lines: {value:?} is not a number"))?;
                    if n == 0 || n > MAX_LINES {
                        return Err(format!("lines: 1 to {MAX_LINES}"));
                    }
                    q.lines = Some(n);
                }
                "follow" => {
                    q.follow = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(format!("follow: {value:?} is not true or false")),
                    }
                }
                other => return Err(format!("{other}: not a parameter of /v1/logs")),
            }
        }
        Ok(q)
    }

    /// `journalctl`'s arguments for this query.
    pub fn args(&self, directory: Option<&Path>) -> Vec<String> {
        let mut a = vec!["--output=json".to_string(), "--no-pager".into()];
        if let Some(d) = directory {
            a.push(format!("--directory={}", d.display()));
        }
        for u in &self.units {
            a.push(format!("--unit={u}"));
        }
        if let Some(p) = self.priority {
            a.push(format!("--priority={p}"));
        }
        if let Some(s) = &self.since {
            a.push(format!("--since={s}"));
        }
        if let Some(u) = &self.until {
            a.push(format!("--until={u}"));
        }
        // Without a start, the newest lines (not the whole journal from its beginning).
        match (self.lines, &self.since) {
            (Some(n), _) => a.push(format!("--lines={n}")),
            (None, None) => a.push(format!("--lines={DEFAULT_LINES}")),
            (None, Some(_)) => {}
        }
        if self.follow {
            a.push("--follow".into());
        }
        a
    }
}

fn priority(v: &str) -> Result<u8, String> {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    if let Some(i) = NAMES.iter().position(|n| *n == v) {
        return Ok(i as u8);
    }
    match v.parse::<u8>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(format!(
            "priority: {v:?} is neither 0-7 nor one of {}",
            NAMES.join(", ")
        )),
    }
}

/// RFC 3339 becomes `@<epoch>`; `-<n><s|m|h|d>` stays as it is.
fn when(key: &str, v: &str) -> Result<String, String> {
    if let Ok(t) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Ok(format!("@{}", t.unix_timestamp()));
    }
    let relative = v
        .strip_prefix('-')
        .and_then(|r| r.strip_suffix(['s', 'm', 'h', 'd']))
        .is_some_and(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()));
    if relative {
        return Ok(v.to_owned());
    }
    Err(format!(
        "{key}: {v:?} is neither an RFC 3339 time nor a relative one like -10m"
    ))
}

/// One journal record (`journalctl --output=json`) as the API shows it, or `None` when
/// it has no message or fails the text match.
pub fn line(record: &Value, text: Option<&str>) -> Option<Value> {
    let message = match record.get("MESSAGE")? {
        Value::String(s) => s.clone(),
        // Binary messages come as arrays of bytes.
        Value::Array(bytes) => {
            let b: Vec<u8> = bytes
                .iter()
                .filter_map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => return None,
    };
    if let Some(t) = text {
        if !message.to_lowercase().contains(t) {
            return None;
        }
    }
    let field = |k: &str| record.get(k).and_then(Value::as_str);
    let at = field("__REALTIME_TIMESTAMP")
        .and_then(|us| us.parse::<i128>().ok())
        .and_then(|us| time::OffsetDateTime::from_unix_timestamp_nanos(us * 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Some(json!({
        "time": at,
        // systemd's own lines about a unit carry it in UNIT (theirs is init.scope).
        "unit": field("UNIT").or_else(|| field("_SYSTEMD_UNIT")),
        "priority": field("PRIORITY").and_then(|p| p.parse::<u8>().ok()),
        "identifier": field("SYSLOG_IDENTIFIER"),
        "pid": field("_PID").and_then(|p| p.parse::<u32>().ok()),
        "message": message,
    }))
}

/// Runs `journalctl` for `query` and sends each line shown, as JSON and a newline, until
/// the journal ends (or, following, until the receiver is dropped). A failure to start
/// or a non-zero exit is sent as a last line `{"error": …}`: the status is long gone.
pub fn stream(
    journalctl: &Path,
    directory: Option<PathBuf>,
    query: Query,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let mut cmd = tokio::process::Command::new(journalctl);
    cmd.args(query.args(directory.as_deref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::spawn(async move {
        let last = match cmd.spawn() {
            Ok(mut child) => {
                let sent = forward(&mut child, &query, &tx).await;
                if sent.is_none() {
                    return; // the client left; dropping the child kills it
                }
                let _ = child.start_kill();
                match child.wait_with_output().await {
                    Ok(out) if out.status.success() || sent == Some(MAX_LINES) => None,
                    Ok(out) => Some(format!(
                        "journalctl: {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                    Err(e) => Some(format!("journalctl: {e}")),
                }
            }
            Err(e) => Some(format!("cannot run {}: {e}", journalctl_name(&cmd))),
        };
        if let Some(error) = last {
            let _ = tx.send(ndjson(&json!({ "error": error }))).await;
        }
    });
    rx
}

/// The journal as text (`journalctl --output=short-iso-precise`) into `out`, for the
/// support bundle: this boot's (`-b`), or its last `hours`, the kernel's alone with
/// `kernel`. Each line goes through `redact`; at most `max_bytes` are written (the
/// newest lines are the ones cut, said in a last line). Returns the bytes written.
pub async fn export_text(
    journalctl: &Path,
    directory: Option<&Path>,
    hours: Option<u32>,
    kernel: bool,
    max_bytes: u64,
    redact: impl Fn(&str) -> String,
    out: &Path,
) -> Result<u64, String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(journalctl);
    cmd.args(["--output=short-iso-precise", "--no-pager"]);
    if let Some(d) = directory {
        cmd.arg(format!("--directory={}", d.display()));
    }
    match hours {
        Some(h) => {
            cmd.arg(format!("--since=-{h}h"));
        }
        // A journal directory from elsewhere has no "this boot" to speak of.
        None if directory.is_none() => {
            cmd.arg("--boot");
        }
        None => {}
    }
    if kernel {
        cmd.arg("--dmesg");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", journalctl.display()))?;
    let stdout = child.stdout.take().ok_or("journalctl: no output")?;
    let mut file = tokio::fs::File::create(out)
        .await
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut written = 0u64;
    while let Ok(Some(line)) = lines.next_line().await {
        let mut text = redact(&line);
        text.push('\n');
        if written + text.len() as u64 > max_bytes {
            let note = format!("[cut: the bundle keeps {max_bytes} bytes of journal]\n");
            let _ = file.write_all(note.as_bytes()).await;
            break;
        }
        file.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", out.display()))?;
        written += text.len() as u64;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(written)
}

fn journalctl_name(cmd: &tokio::process::Command) -> String {
    cmd.as_std().get_program().to_string_lossy().into_owned()
}

/// Sends the child's lines; `None` if the client left, else how many were sent.
async fn forward(
    child: &mut tokio::process::Child,
    query: &Query,
    tx: &mpsc::Sender<Bytes>,
) -> Option<u64> {
    let stdout = child.stdout.take()?;
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::with_capacity(4096);
    let mut sent = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
            .ok()?;
        if n == 0 {
            return Some(sent);
        }
        if buf.last() != Some(&b'\n') {
            // Longer than MAX_LINE: skip the rest of it, show nothing of a cut record.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest).await;
            continue;
        }
        let Ok(record) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        if let Some(shown) = line(&record, query.text.as_deref()) {
            if tx.send(ndjson(&shown)).await.is_err() {
                return None;
            }
            sent += 1;
            if sent >= MAX_LINES {
                return Some(sent);
            }
        }
    }
}

fn ndjson(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(u: &str) -> Option<String> {
        let full = crate::services::unit_name(u);
        ["freeswitch.service", "ccnqd.service"]
            .contains(&full.as_str())
            .then_some(full)
    }

    #[test]
    fn a_query_becomes_checked_journalctl_options() {
        let q = Query::parse(
            Some("unit=freeswitch&priority=warning&since=2026-12-03T17:00:00Z&until=-5m&match=SOFIA&follow=true"),
            known,
        )
        .unwrap();
        assert_eq!(
            q.args(Some(Path::new("/var/log/journal"))),
            [
                "--output=json",
                "--no-pager",
                "--directory=/var/log/journal",
                "--unit=freeswitch.service",
                "--priority=4",
                "--since=@1796317200",
                "--until=-5m",
                "--follow",
            ]
        );
        assert_eq!(q.text.as_deref(), Some("sofia"));
        // Neither lines nor since: the newest lines, not the journal from its start.
        let q = Query::parse(None, known).unwrap();
        assert!(q.args(None).contains(&"--lines=100".to_string()));
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        for (query, says) in [
            ("unit=sshd", "unit:"),
            ("priority=loud", "priority:"),
            ("since=--all", "since:"),
            ("since=yesterday; rm", "since:"),
            ("lines=0", "lines:"),
            ("lines=1000001", "lines:"),
            ("follow=maybe", "follow:"),
            ("output=export", "output:"),
            ("match=", "match:"),
        ] {
            let e = Query::parse(Some(query), known).unwrap_err();
            assert!(e.starts_with(says), "{query}: {e}");
        }
    }

    #[test]
    fn records_are_reduced_and_matched() {
        let r = json!({"MESSAGE": "Started FreeSWITCH", "_SYSTEMD_UNIT": "init.scope",
            "UNIT": "freeswitch.service", "PRIORITY": "6", "_PID": "1",
            "SYSLOG_IDENTIFIER": "systemd", "__REALTIME_TIMESTAMP": "1796317200000000"});
        let shown = line(&r, None).unwrap();
        assert_eq!(shown["message"], "Started FreeSWITCH");
        assert_eq!(shown["time"], "2026-12-03T17:00:00Z");
        assert_eq!(shown["priority"], 6);
        assert_eq!(shown["unit"], "freeswitch.service");
        assert!(line(&r, Some("freeswitch")).is_some());
        assert!(line(&r, Some("couchdb")).is_none());
        let binary = json!({"MESSAGE": [104, 105]});
        assert_eq!(line(&binary, None).unwrap()["message"], "hi");
        assert!(line(&json!({"PRIORITY": "6"}), None).is_none());
    }
}
