//! How answers are shown: aligned tables for people, the server's JSON for scripts.
//!
//! The JSON output is exactly what the API returned, so a script written against
//! `ccnqctl -o json` and one written against the API itself read the same fields.

use ccnq_api::{Health, LogLevel, Status, Version};

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
    fn tables_align_their_values() {
        let t = table(&[("a", "1".into()), ("long key", "2".into())]);
        assert_eq!(t, "a         1\nlong key  2\n");
    }
}
