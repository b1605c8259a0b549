//! How answers are shown: aligned tables for people, the server's JSON for scripts.
//!
//! The JSON output is exactly what the API returned, so a script written against
//! `ccnqctl -o json` and one written against the API itself read the same fields.

use ccnq_api::{
    ConfigReport, Health, LogLevel, PlanPreview, ServiceActionReport, ServiceList, Status, Version,
};

/// Left-aligned `key  value` rows.
pub fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

pub fn version(v: &Version) -> String {
    table(&[
        ("daemon", v.daemon.clone()),
        ("image", or_dash(&v.image_id)),
        ("image version", or_dash(&v.image_version)),
        ("slot", or_dash(&v.slot)),
    ])
}

pub fn upgrade(u: &ccnq_api::upgrade::UpgradeStatus) -> String {
    let mut rows = vec![
        (
            "booted",
            format!("{} (slot {})", u.booted_version, u.booted_slot.as_str()),
        ),
        ("other slot", or_dash(&u.other_slot_version)),
        ("state", u.state.to_string()),
        ("target", or_dash(&u.target_version)),
        ("since", u.since.clone()),
    ];
    if let Some(p) = &u.progress {
        let step = match p.step {
            Some(ccnq_api::ProgressStep::Download) => " downloading",
            Some(ccnq_api::ProgressStep::Write) => " writing the slot",
            None => "",
        };
        rows.push((
            "progress",
            format!("{}{step}", progress_bar(p.done, p.total)),
        ));
    }
    if let Some(reason) = &u.reason {
        rows.push(("reason", reason.clone()));
    }
    table(&rows)
}

/// `[#########-----------]  45% 123.4 MiB of 274.0 MiB`
pub fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 20;
    let done = done.min(total);
    // Nothing to do counts as all done.
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "[{}{}] {percent:>3}% {} of {}",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        bytes(done),
        bytes(total)
    )
}

pub fn status(s: &Status) -> String {
    let vol = &s.data_volume;
    table(&[
        ("host", s.host.clone()),
        ("uptime", duration(s.uptime_seconds)),
        ("config", s.config.state.clone()),
        ("applied revision", or_dash(&s.config.applied_rev)),
        (
            "data volume",
            format!(
                "{} ({} free of {}{})",
                vol.path,
                bytes(vol.free_bytes),
                bytes(vol.total_bytes),
                if vol.read_only { ", READ-ONLY" } else { "" }
            ),
        ),
    ])
}

/// `ccnqctl config`: the state first, then what is in force, then the last attempt with
/// every error on its own line (an operator fixes them one by one).
pub fn config(c: &ConfigReport) -> String {
    let mut rows = vec![
        ("document", or_dash(&c.document)),
        (
            "state",
            match &c.reason {
                Some(r) => format!("{} ({r})", c.state),
                None => c.state.clone(),
            },
        ),
        ("desired revision", or_dash(&c.desired_rev)),
        (
            "applied revision",
            c.applied.as_ref().map_or("-".into(), |a| a.rev.clone()),
        ),
        (
            "applied sequence",
            c.applied
                .as_ref()
                .and_then(|a| a.seq.as_ref())
                .map_or("-".into(), |s| s.to_string()),
        ),
        (
            "applied at",
            c.applied.as_ref().map_or("-".into(), |a| a.at.clone()),
        ),
        (
            "feed",
            format!(
                "{} since {}{}",
                c.feed.state,
                c.feed.since,
                c.feed
                    .detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        ),
    ];
    if let Some(p) = &c.feed.last_problem {
        rows.push(("last feed problem", p.clone()));
    }
    if let Some(r) = &c.replication {
        rows.push((
            "replication",
            format!("{}: {} (checked {})", r.state, r.detail, r.checked_at),
        ));
    }
    rows.push(("apply attempts", c.attempts.to_string()));
    if let Some(last) = &c.last {
        rows.push((
            "last attempt",
            format!(
                "{} for rev {} at {}",
                last.result,
                last.rev.as_deref().unwrap_or("-"),
                last.at
            ),
        ));
    }
    let mut out = table(&rows);
    if let Some(last) = &c.last {
        for e in &last.errors {
            out.push_str(&format!("  error    {}: {}\n", e.path, e.reason));
        }
        for w in &last.warnings {
            out.push_str(&format!("  warning  {}: {}\n", w.path, w.reason));
        }
        for a in &last.actions {
            let text = a
                .get("description")
                .and_then(|d| d.as_str())
                .map_or_else(|| a.to_string(), str::to_owned);
            out.push_str(&format!("  action   {text}\n"));
        }
    }
    out
}

/// `ccnqctl config plan`: from which revision to which, then each step with what it
/// costs, then the worst cost. An operator reads it before saving a document.
pub fn plan(p: &PlanPreview) -> String {
    let mut out = table(&[
        ("document", or_dash(&p.document)),
        ("from revision", or_dash(&p.from_rev)),
        ("to revision", or_dash(&p.to_rev)),
    ]);
    if p.from_rev.is_none() {
        out.push_str("(nothing known applied: the plan replaces everything)\n");
    } else if !p.in_doubt.is_empty() {
        out.push_str(&format!(
            "(in doubt: {}; an apply of each began and did not succeed, any part of it may \
             be in force: the plan starts from all of them)\n",
            p.in_doubt.join(", ")
        ));
    }
    out.push('\n');
    if !p.valid {
        out.push_str(&format!("REFUSED: {}\n", p.summary));
        for e in &p.errors {
            out.push_str(&format!("  error    {}: {}\n", e.path, e.reason));
        }
        return out;
    }
    if p.steps.is_empty() {
        out.push_str(&format!("{}\n", p.summary));
    } else {
        // Aligned, but a long description (a list of files) does not push every cost off
        // the screen.
        let width = p
            .steps
            .iter()
            .map(|s| s.description.len())
            .max()
            .unwrap_or(0)
            .min(60);
        for (i, s) in p.steps.iter().enumerate() {
            out.push_str(&format!(
                "{:>2}. {:<width$}  [{}]\n",
                i + 1,
                s.description,
                s.cost.description
            ));
        }
        out.push('\n');
        if let Some(c) = &p.cost {
            out.push_str(&format!("cost: {}\n", c.description));
        }
    }
    for w in &p.warnings {
        out.push_str(&format!("  warning  {}: {}\n", w.path, w.reason));
    }
    out
}

/// `ccnqctl services`: one row per managed unit, columns aligned.
pub fn services(l: &ServiceList) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![[
        "UNIT".to_string(),
        "STATE".into(),
        "SUB".into(),
        "SINCE".into(),
        "PID".into(),
        "MEMORY".into(),
        "DESIRED".into(),
        "PENDING".into(),
    ]];
    for s in &l.services {
        rows.push([
            s.name.clone(),
            if s.load_state == "absent" {
                "absent".into()
            } else if skipped_by(s).is_some() {
                "skipped".into()
            } else {
                s.state.clone()
            },
            s.sub_state.clone(),
            dash(&s.since),
            s.main_pid.map_or("-".into(), |p| p.to_string()),
            s.memory_bytes.map_or("-".into(), bytes),
            dash(&s.desired),
            dash(&s.pending),
        ]);
    }
    let mut out = columns(&rows);
    // Why a unit is "skipped", under the table: a condition line is too wide for a cell.
    for s in &l.services {
        if let Some(c) = skipped_by(s) {
            out.push_str(&format!(
                "{}: skipped at its last start: {c} does not hold\n",
                s.name
            ));
        }
    }
    out
}

/// Rows as left-aligned columns two spaces apart, each as wide as its widest cell.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The condition that kept an inactive unit from starting, if one did.
fn skipped_by(s: &ccnq_api::ServiceState) -> Option<&str> {
    s.unmet_condition
        .as_deref()
        .filter(|_| s.state == "inactive")
}

/// `ccnqctl services start|stop|restart`: what was done, the drain, systemd's answer.
pub fn service_action(r: &ServiceActionReport) -> String {
    let mut rows = vec![
        ("unit", r.unit.clone()),
        (
            "action",
            format!("{}{}", r.action, if r.forced { " (forced)" } else { "" }),
        ),
    ];
    if let Some(d) = &r.drain {
        let counts = match (d.calls_at_start, d.calls_left) {
            (Some(a), Some(b)) => format!(", {a} call(s) at start, {b} left"),
            _ => String::new(),
        };
        rows.push((
            "drain",
            format!("{} in {} ms{counts}", d.outcome, d.duration_ms),
        ));
        if let Some(detail) = &d.detail {
            rows.push(("drain detail", detail.clone()));
        }
    }
    rows.push(("job result", or_dash(&r.job_result)));
    if let Some(e) = &r.error {
        rows.push(("error", e.clone()));
    }
    if r.waited_ms > 0 {
        rows.push(("waited", format!("{} ms for another action", r.waited_ms)));
    }
    rows.push(("duration", format!("{} ms", r.duration_ms)));
    if let Some(a) = &r.after {
        rows.push((
            "now",
            format!(
                "{} ({}){}",
                a.state,
                a.sub_state,
                a.main_pid.map(|p| format!(", PID {p}")).unwrap_or_default()
            ),
        ));
    }
    table(&rows)
}

pub fn health(h: &Health) -> String {
    format!("{}\n", h.status)
}

pub fn log_level(l: &LogLevel) -> String {
    format!("{}\n", l.level)
}

/// `3d 4h 5m 6s`, dropping leading zero units.
pub fn duration(mut secs: u64) -> String {
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size || !parts.is_empty() {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    parts.push(format!("{secs}s"));
    parts.join(" ")
}

/// Binary units, one decimal: what `df -h` shows.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccnq_api::ServiceState;

    #[test]
    fn durations_and_sizes_read_like_df_and_uptime() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(3_661), "1h 1m 1s");
        assert_eq!(duration(86_400 + 5), "1d 0h 0m 5s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }

    #[test]
    fn the_progress_bar_fills_with_the_bytes_done() {
        assert!(progress_bar(0, 200).starts_with("[--------------------]   0%"));
        assert!(progress_bar(100, 200).starts_with("[##########----------]  50%"));
        assert!(progress_bar(300, 200).starts_with("[####################] 100%"));
        assert!(progress_bar(0, 0).starts_with("[####################] 100%"));
    }

    #[test]
    fn tables_align_their_values() {
        let t = table(&[("a", "1".into()), ("long key", "2".into())]);
        assert_eq!(t, "a         1\nlong key  2\n");
    }

    #[test]
    fn a_unit_skipped_by_its_condition_says_why() {
        let l = ServiceList {
            services: vec![
                ServiceState {
                    name: "freeswitch.service".into(),
                    load_state: "loaded".into(),
                    state: "inactive".into(),
                    sub_state: "dead".into(),
                    unmet_condition: Some("ConditionPathExists=/usr/bin/freeswitch".into()),
                    ..ServiceState::default()
                },
                ServiceState {
                    name: "couchdb.service".into(),
                    load_state: "loaded".into(),
                    state: "active".into(),
                    sub_state: "running".into(),
                    ..ServiceState::default()
                },
            ],
        };
        let out = services(&l);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[1][..3], ["freeswitch.service", "skipped", "dead"]);
        assert_eq!(rows[2][..3], ["couchdb.service", "active", "running"]);
        assert_eq!(
            out.lines().nth(3),
            Some("freeswitch.service: skipped at its last start: ConditionPathExists=/usr/bin/freeswitch does not hold")
        );
        assert_eq!(out.lines().count(), 4);
    }
}
