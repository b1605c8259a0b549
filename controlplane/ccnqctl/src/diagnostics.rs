//! The diagnostics commands' side of `ccnqctl`: their arguments (`logs`, `fs`) and how
//! their answers are shown (`fs profiles|gateways|calls|registrations`, `couchdb`, each
//! journal line of `logs` as it comes).

use crate::output::{bytes, columns};
use clap::Subcommand;

#[derive(clap::Args)]
pub struct LogsArgs {
    /// A managed unit, or ccnqd (repeatable); default: all of them.
    #[arg(short = 'u', long = "unit")]
    pub units: Vec<String>,
    /// emerg … debug, or 0-7: that priority and the more severe.
    #[arg(short, long)]
    pub priority: Option<String>,
    /// RFC 3339, or relative: -10m, -2h, -1d.
    #[arg(long, allow_hyphen_values = true)]
    pub since: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only messages containing this text (any case).
    #[arg(short = 'g', long = "grep")]
    pub text: Option<String>,
    /// At most this many lines, the newest (default 100 without --since).
    #[arg(short = 'n', long)]
    pub lines: Option<u64>,
    /// Keep going: show new lines as they are logged, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
}

impl LogsArgs {
    /// `/v1/logs?…`, each value percent-encoded.
    pub fn path(&self) -> String {
        let enc = ccnq_couch::client::encode_component;
        let mut q: Vec<String> = self
            .units
            .iter()
            .map(|u| format!("unit={}", enc(u)))
            .collect();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", enc(v)));
            }
        };
        add("priority", &self.priority);
        add("since", &self.since);
        add("until", &self.until);
        add("match", &self.text);
        add("lines", &self.lines.map(|n| n.to_string()));
        if self.follow {
            q.push("follow=true".into());
        }
        if q.is_empty() {
            "/v1/logs".into()
        } else {
            format!("/v1/logs?{}", q.join("&"))
        }
    }
}

#[derive(Subcommand)]
pub enum FsCommand {
    /// The sofia profiles and aliases: address, state, calls in progress.
    Profiles,
    /// The sofia gateways and their state.
    Gateways,
    /// The call legs in progress, oldest first.
    Calls,
    /// The SIP registrations FreeSWITCH holds.
    Registrations,
}

/// One line of `/v1/logs`, printed as it comes (a follow never returns).
pub fn print_log_line(line: &[u8], json: bool) {
    use std::io::Write;
    let text = if json {
        String::from_utf8_lossy(line).into_owned()
    } else {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) => log_line(&v),
            Err(_) => String::from_utf8_lossy(line).into_owned(),
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// One journal line as `journalctl` shows it: time, unit, identifier[pid]: message; the
/// endpoint's last-line error as it is.
pub fn log_line(v: &serde_json::Value) -> String {
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return format!("error: {e}");
    }
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-");
    let pid = v
        .get("pid")
        .and_then(|p| p.as_u64())
        .map_or(String::new(), |p| format!("[{p}]"));
    format!(
        "{} {} {}{pid}: {}",
        s("time"),
        s("unit"),
        s("identifier"),
        s("message")
    )
}

/// `ccnqctl couchdb`: up, then the databases, the replication jobs and the tasks.
pub fn couchdb(c: &ccnq_api::couchdb::CouchState) -> String {
    let mut out = format!("up: {}\n\n", c.up);
    let mut rows = vec![[
        "DATABASE".to_string(),
        "DOCS".into(),
        "DELETED".into(),
        "ACTIVE".into(),
        "FILE".into(),
    ]];
    for d in &c.databases {
        rows.push([
            d.name.clone(),
            d.doc_count.to_string(),
            d.doc_del_count.to_string(),
            bytes(d.active_bytes),
            bytes(d.file_bytes),
        ]);
    }
    out.push_str(&columns(&rows));
    out.push('\n');
    let mut rows = vec![[
        "REPLICATION".to_string(),
        "STATE".into(),
        "PENDING".into(),
        "UPDATED".into(),
        "ERROR".into(),
    ]];
    for r in &c.replications {
        rows.push([
            r.doc_id.clone(),
            r.state.clone(),
            r.changes_pending.map_or("-".into(), |n| n.to_string()),
            r.last_updated.clone().unwrap_or_else(|| "-".into()),
            r.error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&columns(&rows));
    if !c.active_tasks.is_empty() {
        out.push('\n');
        let mut rows = vec![[
            "TASK".to_string(),
            "ON".into(),
            "PROGRESS".into(),
            "STARTED".into(),
        ]];
        for t in &c.active_tasks {
            rows.push([
                t.kind.clone(),
                t.on.clone(),
                t.progress.map_or("-".into(), |p| format!("{p}%")),
                t.started.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

/// `ccnqctl fs profiles` (and `fs gateways`): one row per entry of `sofia xmlstatus`.
pub fn fs_profiles(p: &[ccnq_api::freeswitch::FsProfile]) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "KIND".into(),
        "ADDRESS".into(),
        "STATE".into(),
        "CALLS".into(),
    ]];
    for e in p {
        rows.push([
            e.name.clone(),
            e.kind.clone(),
            e.address.clone(),
            e.state.clone(),
            e.calls.to_string(),
        ]);
    }
    columns(&rows)
}

/// `ccnqctl fs calls`: one row per call leg, oldest first, and how many.
pub fn fs_calls(c: &ccnq_api::freeswitch::FsCalls) -> String {
    let dash = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let mut rows = vec![[
        "CREATED".to_string(),
        "DIRECTION".into(),
        "PROFILE".into(),
        "FROM".into(),
        "TO".into(),
        "STATE".into(),
        "APPLICATION".into(),
        "CODEC".into(),
        "UUID".into(),
    ]];
    for l in &c.calls {
        rows.push([
            l.created.clone().unwrap_or_else(|| "-".into()),
            l.direction.clone(),
            l.profile.clone().unwrap_or_else(|| "-".into()),
            dash(&l.caller_number),
            dash(&l.destination),
            dash(&l.callstate),
            dash(&l.application),
            dash(&l.read_codec),
            l.uuid.clone(),
        ]);
    }
    let mut out = columns(&rows);
    out.push_str(&format!(
        "{} call leg{} in progress\n",
        c.calls.len(),
        if c.calls.len() == 1 { "" } else { "s" }
    ));
    out
}

/// `ccnqctl fs registrations`.
pub fn fs_registrations(r: &ccnq_api::freeswitch::FsRegistrations) -> String {
    if r.registrations.is_empty() {
        return "no registration\n".into();
    }
    let mut rows = vec![[
        "USER".to_string(),
        "REALM".into(),
        "CONTACT".into(),
        "EXPIRES".into(),
        "FROM".into(),
    ]];
    for g in &r.registrations {
        rows.push([
            g.user.clone(),
            g.realm.clone(),
            g.contact.clone(),
            g.expires.clone().unwrap_or_else(|| "-".into()),
            g.network.clone(),
        ]);
    }
    columns(&rows)
}

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// The interface (`eth0`, `lo`; default `any`).
    #[arg(short, long)]
    pub interface: Option<String>,
    /// A BPF filter, e.g. `udp port 5060`.
    #[arg(short, long)]
    pub filter: Option<String>,
    /// Only the SIP messages of this Call-ID.
    #[arg(long)]
    pub call_id: Option<String>,
    /// Only the SIP messages with this number in the Request-URI, From or To.
    #[arg(long)]
    pub number: Option<String>,
    /// Seconds to capture (default 60, at most 3600).
    #[arg(short, long)]
    pub duration: Option<u64>,
    /// Stop after this many packets (default 10,000).
    #[arg(short = 'c', long)]
    pub packets: Option<u64>,
    /// Stop after this many bytes (default 100 MiB).
    #[arg(long)]
    pub bytes: Option<u64>,
    /// Where to write the pcap; `-` for standard output.
    #[arg(short, long, default_value = "capture.pcap")]
    pub write: std::path::PathBuf,
}

impl CaptureArgs {
    /// The body of `POST /v1/capture`: only what was given (the daemon has the defaults).
    pub fn body(&self) -> serde_json::Value {
        let mut b = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            if !v.is_null() {
                b.insert(k.into(), v);
            }
        };
        put("interface", serde_json::json!(self.interface));
        put("filter", serde_json::json!(self.filter));
        put("call_id", serde_json::json!(self.call_id));
        put("number", serde_json::json!(self.number));
        put("duration_secs", serde_json::json!(self.duration));
        put("packets", serde_json::json!(self.packets));
        put("bytes", serde_json::json!(self.bytes));
        serde_json::Value::Object(b)
    }
}

/// Streams an answer (a bundle, a capture) into `out` (`-`: standard output), its size
/// so far on standard error; returns what to print once done.
pub async fn save(
    target: &crate::client::Target,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
    out: &std::path::Path,
    what: &str,
) -> Result<String, crate::Failure> {
    use std::io::Write;
    let to_stdout = out == std::path::Path::new("-");
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out).map_err(|e| crate::Failure {
            code: 1,
            message: format!("{}: {e}", out.display()),
        })?)
    };
    let mut written = 0u64;
    let mut failed: Option<String> = None;
    let mut shown = 0u64;
    let reply = target
        .stream(method, path, body, |chunk| {
            if failed.is_some() {
                return;
            }
            if let Err(e) = sink.write_all(chunk) {
                failed = Some(e.to_string());
                return;
            }
            written += chunk.len() as u64;
            if written - shown >= 256 << 10 {
                shown = written;
                eprint!("\r{what}: {}   ", crate::output::bytes(written));
            }
        })
        .await?;
    crate::succeeded(reply)?;
    if let Some(e) = failed {
        return Err(crate::Failure {
            code: 1,
            message: format!("{}: {e}", out.display()),
        });
    }
    let _ = sink.flush();
    eprintln!("\r{what}: {}   ", crate::output::bytes(written));
    Ok(if to_stdout {
        String::new()
    } else {
        format!(
            "{} written ({})\n",
            out.display(),
            crate::output::bytes(written)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_calls_one_row_per_leg_and_the_count() {
        let leg = ccnq_api::freeswitch::FsCall {
            uuid: "6f1c".into(),
            direction: "inbound".into(),
            profile: Some("qa-ingress".into()),
            created: Some("2026-12-03T17:13:20Z".into()),
            callstate: "ACTIVE".into(),
            state: "CS_EXECUTE".into(),
            caller_name: String::new(),
            caller_number: "qa".into(),
            destination: "33123456789".into(),
            remote_ip: "127.0.0.1".into(),
            application: "park".into(),
            read_codec: "PCMA".into(),
            write_codec: "PCMA".into(),
            bridged_to: None,
        };
        let text = fs_calls(&ccnq_api::freeswitch::FsCalls { calls: vec![leg] });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CREATED"), "{text}");
        assert!(
            lines[1].contains("qa-ingress") && lines[1].contains("33123456789"),
            "{text}"
        );
        assert_eq!(lines[2], "1 call leg in progress");
        assert_eq!(
            fs_registrations(&ccnq_api::freeswitch::FsRegistrations {
                registrations: vec![]
            }),
            "no registration\n"
        );
    }
}
