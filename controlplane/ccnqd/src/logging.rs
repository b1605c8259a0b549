//! Where the daemon's log goes: the journal under systemd, stderr otherwise.
//!
//! Under systemd, stderr is connected to the journal (`JOURNAL_STREAM`), and writing
//! there natively keeps the structured fields (`REQUEST`, `ROLE`, `WHO`, …) queryable
//! with `journalctl REQUEST=…`. Everywhere else (a terminal, a test) the same fields are
//! printed as `key=value` after the message. Every entry carries the host name.

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

/// Plain lines on stderr: `LEVEL target: message key=value …`.
struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
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
        let _ = writeln!(
            std::io::stderr().lock(),
            "{level} {}: {}{}",
            record.target(),
            record.args(),
            fields.0
        );
    }

    fn flush(&self) {}
}
