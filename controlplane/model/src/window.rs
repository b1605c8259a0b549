//! `image.window`: when a host may reboot into a new image.
//!
//! Operators think of maintenance windows as "nights, 02:00 to 05:00, weekdays": a
//! start and an end time of day in UTC, and optionally the days it opens on. A window
//! whose end is before its start runs past midnight (22:00–02:00), and belongs to the
//! day it opens on. Pure: the upgrade path asks [`Window::contains`] with the clock's
//! reading, so the rule is tested without waiting for a night.

use serde::Serialize;

/// A weekday, as the document spells it.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Opens at this minute of the day (UTC), written `"HH:MM"`.
    #[serde(serialize_with = "hhmm")]
    pub start: u16,
    /// Closes at this minute of the day (UTC); before `start`: the next day.
    #[serde(serialize_with = "hhmm")]
    pub end: u16,
    /// The days it opens on (0 = Monday); absent in the document: every day.
    #[serde(serialize_with = "day_names", skip_serializing_if = "is_every_day")]
    pub days: [bool; 7],
}

fn is_every_day(days: &[bool; 7]) -> bool {
    days.iter().all(|d| *d)
}

fn hhmm<S: serde::Serializer>(m: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:02}:{:02}", m / 60, m % 60))
}

fn day_names<S: serde::Serializer>(days: &[bool; 7], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        DAYS.iter()
            .zip(days)
            .filter(|(_, on)| **on)
            .map(|(d, _)| *d),
    )
}

impl Window {
    /// Whether the window is open at `minute` (of the day, UTC) on `weekday` (0 =
    /// Monday).
    pub fn contains(&self, weekday: u8, minute: u16) -> bool {
        let day = |d: u8| self.days[usize::from(d % 7)];
        if self.start == self.end {
            // The whole day from `start` to `start`: open around the clock on its days.
            return day(weekday);
        }
        if self.start < self.end {
            return day(weekday) && (self.start..self.end).contains(&minute);
        }
        // Past midnight: from `start` to the end of the day it opens on, then from
        // midnight to `end` on the next.
        (day(weekday) && minute >= self.start) || (day((weekday + 6) % 7) && minute < self.end)
    }
}

/// `"HH:MM"` (24-hour, UTC) as a minute of the day.
pub fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("expected a time \"HH:MM\" (UTC, 00:00 to 23:59), got {s:?}");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A day's name as its index (0 = Monday).
pub fn parse_day(s: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| *d == s)
        .ok_or_else(|| format!("expected one of {}, got {s:?}", DAYS.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str, days: &[&str]) -> Window {
        let mut on = [days.is_empty(); 7];
        for d in days {
            on[parse_day(d).unwrap()] = true;
        }
        Window {
            start: parse_time(start).unwrap(),
            end: parse_time(end).unwrap(),
            days: on,
        }
    }

    #[test]
    fn a_night_window_is_open_inside_and_closed_outside() {
        let w = window("02:00", "05:00", &[]);
        assert!(w.contains(0, 120));
        assert!(w.contains(6, 299));
        assert!(!w.contains(0, 300), "the end is excluded");
        assert!(!w.contains(0, 119));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens_on() {
        let w = window("22:00", "02:00", &["fri"]);
        assert!(w.contains(4, 22 * 60), "Friday 22:00");
        assert!(w.contains(5, 60), "Saturday 01:00 is still Friday's night");
        assert!(!w.contains(5, 22 * 60), "Saturday 22:00: not a window day");
        assert!(!w.contains(4, 60), "Friday 01:00 is Thursday's night");
        // Sunday's night runs into Monday.
        let sunday = window("23:00", "01:00", &["sun"]);
        assert!(sunday.contains(0, 30));
    }

    #[test]
    fn equal_start_and_end_means_the_whole_of_each_day() {
        let w = window("00:00", "00:00", &["sat", "sun"]);
        assert!(w.contains(5, 0) && w.contains(6, 1439));
        assert!(!w.contains(0, 600));
    }

    #[test]
    fn times_and_days_are_refused_with_the_reason() {
        for bad in ["2:00", "24:00", "12:60", "noon", "12:5", ""] {
            assert!(parse_time(bad).unwrap_err().contains("HH:MM"), "{bad}");
        }
        assert!(parse_day("monday").unwrap_err().contains("mon, tue"));
    }

    #[test]
    fn it_serializes_as_the_document_spells_it() {
        let w = window("22:30", "01:15", &["sat", "mon"]);
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"start": "22:30", "end": "01:15", "days": ["mon", "sat"]})
        );
        let every = window("02:00", "05:00", &[]);
        assert!(serde_json::to_value(&every).unwrap().get("days").is_none());
    }
}
