//! The support bundle endpoint: gathers what an operator's ticket needs (the journal and
//! the kernel's messages, os-release, the slots and their boot counters, the status and
//! the host document, FreeSWITCH's and CouchDB's state, the units, the disks, the audit
//! log's tail), redacted ([`crate::bundle::Redactor`]), and streams it as a tar.gz.
//! Operator role, and audited: a bundle is a copy of the host's state leaving it.
//!
//! A part that cannot be read (FreeSWITCH stopped, no CouchDB) is named with the reason
//! in `MANIFEST.txt`; the bundle is made anyway, since a broken host is when it is
//! needed most.

use super::{problem, streamed, Body, Daemon};
use crate::bundle::{Content, Redactor};
use ccnq_api::Problem;
use http::{header, Response, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The most journal bytes a bundle holds.
const MAX_JOURNAL: u64 = 256 << 20;
/// The audit log's lines kept.
const AUDIT_TAIL: usize = 1000;
const JOURNALCTL: &str = "/usr/bin/journalctl";

/// A tar.gz of the host's state for a support ticket, secrets redacted.
#[utoipa::path(get, path = "/v1/support-bundle", tag = "daemon",
    description = "Role: operator. Audited. `hours`: the journal's last N hours instead of this boot's.",
    security(("bearer" = []), ("mutualTLS" = [])),
    params(("hours" = Option<u32>, Query, minimum = 1, maximum = 720, description = "The journal's last N hours (1-720); default: since boot")),
    responses((status = 200, description = "The bundle", body = String, content_type = "application/gzip"),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No room to make it", body = Problem, content_type = "application/problem+json")))]
pub async fn get(daemon: &Daemon, query: Option<&str>) -> Response<Body> {
    let hours = match hours(query) {
        Ok(h) => h,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    let tmp = match tempfile::Builder::new()
        .prefix("support-bundle-")
        .tempdir_in(&daemon.config.data_dir)
    {
        Ok(t) => t,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "cannot make the bundle under {}: {e}",
                    daemon.config.data_dir.display()
                ),
            )
        }
    };
    let redactor = Redactor::new(secrets(daemon));
    let parts = gather(daemon, &redactor, hours, tmp.path()).await;
    let stamp = crate::reconcile::report::now().replace(':', "");
    let prefix = format!("ccnq-support-{}-{stamp}", daemon.config.host);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        crate::bundle::write(&prefix, parts, tx);
        drop(tmp); // the journal's copy goes once written
    });
    let mut resp = Response::new(streamed(rx));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/gzip"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "attachment; filename=\"ccnq-support-{}.tar.gz\"",
        daemon.config.host
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

fn hours(query: Option<&str>) -> Result<Option<u32>, String> {
    let mut hours = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "hours" => match v.parse::<u32>() {
                Ok(h) if (1..=720).contains(&h) => hours = Some(h),
                _ => {
                    return Err(format!(
                        "hours: {v:?} is not a number of hours from 1 to 720"
                    ))
                }
            },
            other => return Err(format!("{other}: not a parameter of /v1/support-bundle")),
        }
    }
    Ok(hours)
}

/// Every secret the daemon can know of: each file of `<data_dir>/secrets`, the CouchDB
/// passwords, the event socket's.
fn secrets(daemon: &Daemon) -> Vec<String> {
    let c = &daemon.config;
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(c.data_dir.join("secrets")) {
        for e in dir.flatten() {
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                out.extend(text.lines().map(str::to_owned));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(&c.freeswitch.password_file) {
        out.extend(text.lines().map(str::to_owned));
    }
    if let Some(couch) = &c.couchdb {
        out.extend(couch.credentials.iter().map(|(_, p)| p.clone()));
        if let Some(central) = &couch.central {
            out.extend(central.credentials.iter().map(|(_, p)| p.clone()));
        }
    }
    out
}

/// Each part, redacted; what could not be read is in the manifest.
async fn gather(
    daemon: &Daemon,
    r: &Redactor,
    hours: Option<u32>,
    tmp: &Path,
) -> Vec<(String, Content)> {
    let c = &daemon.config;
    let mut parts: Vec<(String, Content)> = Vec::new();
    let mut manifest = vec![format!(
        "CCNQ support bundle of {} made {} (journal: {}); secrets redacted as {}.",
        c.host,
        crate::reconcile::report::now(),
        hours.map_or("this boot".into(), |h| format!("the last {h} hours")),
        crate::bundle::REDACTED
    )];
    let mut add = |name: &str, what: &str, got: Result<Content, String>| match got {
        Ok(content) => {
            manifest.push(format!("{name}: {what}"));
            parts.push((name.to_owned(), content));
        }
        Err(e) => manifest.push(format!("{name}: {what}: NOT INCLUDED: {e}")),
    };
    let text = |s: String| Content::Bytes(r.text(&s).into_bytes());
    let json =
        |v: &Value| Content::Bytes(serde_json::to_vec_pretty(&r.json(v)).unwrap_or_default());

    for (name, kernel) in [("journal.txt", false), ("dmesg.txt", true)] {
        let out = tmp.join(name);
        let got = crate::journal::export_text(
            Path::new(JOURNALCTL),
            c.journal_directory.as_deref(),
            hours,
            kernel,
            MAX_JOURNAL,
            |l| r.text(l),
            &out,
        )
        .await
        .map(|_| Content::File(out));
        let what = if kernel {
            "the kernel's messages"
        } else {
            "the journal"
        };
        add(name, what, got);
    }
    let os_release = c
        .os_release
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .ok_or_else(|| "no os-release".to_string());
    add("os-release", "the image", os_release.map(text));
    add(
        "slots.txt",
        "the boot command line and the boot entries with their counters",
        slots(daemon).map(text),
    );

    let version = crate::system::version(&c.os_release, &c.kernel_cmdline);
    let report = daemon.report.snapshot();
    let services = daemon.services.list().await;
    let status = crate::reconcile::status::body(&report, &version, services.as_deref().ok());
    add(
        "status.json",
        "status:<fqdn> as this host writes it",
        Ok(json(&status)),
    );
    add(
        "config.json",
        "GET /v1/config: how the host document is followed",
        Ok(json(&serde_json::to_value(&report).unwrap_or(Value::Null))),
    );
    let upgrade = crate::upgrade::status(&version)
        .map(|u| serde_json::to_value(u).unwrap_or(Value::Null))
        .ok_or_else(|| "not a CCNQ image".to_string());
    add("upgrade.json", "GET /v1/upgrade", upgrade.map(|v| json(&v)));
    add(
        "units.json",
        "the managed units as systemd sees them",
        services.map(|s| json(&serde_json::to_value(s).unwrap_or(Value::Null))),
    );
    add(
        "disk.txt",
        "df of the file systems",
        run("df", &["-h"]).await.map(text),
    );

    let fs = &c.freeswitch;
    match crate::event_socket::connect_configured(fs).await {
        Ok(esl) => {
            for (name, cmd) in [
                ("freeswitch/sofia-status.txt", "sofia status"),
                ("freeswitch/channels.json", "show channels as json"),
                ("freeswitch/status.txt", "status"),
            ] {
                let got = esl
                    .api(cmd)
                    .await
                    .map(|a| text(a.body))
                    .map_err(|e| e.to_string());
                add(name, cmd, got);
            }
        }
        Err(e) => add("freeswitch", "FreeSWITCH's state", Err(e)),
    }

    match &daemon.couch {
        Some(client) => {
            let got = ccnq_couch::server::up(client)
                .await
                .map(|v| json(&v))
                .map_err(|e| e.to_string());
            add("couchdb/up.json", "_up", got);
            let got = ccnq_couch::server::scheduler_docs(client)
                .await
                .map(|v| json(&Value::Array(v)))
                .map_err(|e| e.to_string());
            add("couchdb/scheduler.json", "_scheduler/docs", got);
            if let Some(couch) = &c.couchdb {
                let id = format!("host:{}", c.host);
                let got = client
                    .db(&couch.database)
                    .get_opt(&id)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|d| d.ok_or_else(|| format!("no {id}")));
                add(
                    "host-document.json",
                    "the host document as the local CouchDB has it",
                    got.map(|v| json(&v)),
                );
            }
        }
        None => add(
            "couchdb",
            "CouchDB's state",
            Err("no [couchdb] in ccnqd.toml".into()),
        ),
    }

    let audit = tail(daemon.audit.path(), AUDIT_TAIL);
    add("audit.log", "the audit log's last lines", audit.map(text));
    let manifest = manifest.join("\n") + "\n";
    parts.insert(
        0,
        ("MANIFEST.txt".into(), Content::Bytes(manifest.into_bytes())),
    );
    parts
}

/// The kernel command line (slot, root hash) and the boot entries' names, which carry
/// their boot counters (`ccnq_<v>+<left>-<done>.efi`).
fn slots(daemon: &Daemon) -> Result<String, String> {
    let c = &daemon.config;
    let cmdline = std::fs::read_to_string(&c.kernel_cmdline)
        .map_err(|e| format!("{}: {e}", c.kernel_cmdline.display()))?;
    let mut out = format!("kernel command line: {}\n", cmdline.trim());
    let entries: Option<PathBuf> = c.update.as_ref().map(|u| u.entries.clone());
    match entries.map(|d| (std::fs::read_dir(&d), d)) {
        Some((Ok(dir), d)) => {
            let mut names: Vec<String> = dir
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            out.push_str(&format!("boot entries in {}:\n", d.display()));
            for n in names {
                out.push_str(&format!("  {n}\n"));
            }
        }
        Some((Err(e), d)) => out.push_str(&format!("boot entries: {}: {e}\n", d.display())),
        None => out.push_str("boot entries: no [update] in ccnqd.toml\n"),
    }
    Ok(out)
}

async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n") + "\n")
}
