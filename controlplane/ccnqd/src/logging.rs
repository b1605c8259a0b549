//! Where the daemon's log goes: the journal under systemd, stderr otherwise.
//!
//! Under systemd, stderr is connected to the journal (`JOURNAL_STREAM`), and writing
//! there natively keeps the structured fields (`REQUEST`, `ROLE`, `WHO`, …) queryable
//! with `journalctl REQUEST=…`. Everywhere else (a terminal, a test) the same fields are
//! printed as `key=value` after the message, and each line starts with its time (RFC 3339,
//! UTC, milliseconds), which the journal keeps by itself. Every entry carries the host
//! name.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

pub fn init(level: LevelFilter, host: &str) -> anyhow::Result<()> {
    if systemd_journal_logger::connected_to_journal() {
        systemd_journal_logger::JournalLog::new()?
            .with_syslog_identifier("ccnqd".to_string())
            .with_extra_fields(vec![("HOST", host.to_string())])
            .install()?;
    } else {
        log::set_boxed_logger(Box::new(Stderr))?;
    }
    log::set_max_level(level);
    Ok(())
}

/// Plain lines on stderr: `2026-12-01T09:30:05.123Z LEVEL target: message key=value …`.
struct Stderr;

/// RFC 3339 in UTC with milliseconds (`2026-12-01T09:30:05.123Z`): fixed width, so the
/// lines of a log align and sort by time as text.
fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// One stderr line, without its newline.
fn line(at: time::OffsetDateTime, record: &Record) -> String {
    struct Fields(String);
    impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            use std::fmt::Write;
            let _ = write!(self.0, " {key}={value}");
            Ok(())
        }
    }
    let mut fields = Fields(String::new());
    let _ = record.key_values().visit(&mut fields);
    let level = match record.level() {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    format!(
        "{} {level} {}: {}{}",
        timestamp(at),
        record.target(),
        record.args(),
        fields.0
    )
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = line(time::OffsetDateTime::now_utc(), record);
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stderr_line_starts_with_its_utc_time_in_milliseconds() {
        // 09:30:05.007654321 at +02:00: the line says 07:30:05.007 UTC.
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_796_110_205_007_654_321)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        let kvs = [("request", "r1")];
        let record = Record::builder()
            .level(Level::Warn)
            .target("ccnqd::api")
            .args(format_args!("refused"))
            .key_values(&kvs)
            .build();
        let text = line(at, &record);
        assert_eq!(
            text,
            "2026-12-01T07:30:05.007Z WARN  ccnqd::api: refused request=r1"
        );
        // What the time is, read back: RFC 3339, to the millisecond.
        let stamp = text.split(' ').next().unwrap();
        let parsed =
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(parsed.unix_timestamp_nanos(), 1_796_110_205_007_000_000);
    }

    #[test]
    fn the_stamp_keeps_its_width_at_whole_seconds() {
        let at = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(timestamp(at), "1970-01-01T00:00:00.000Z");
    }
}
