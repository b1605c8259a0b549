//! The daemon's metrics, for Prometheus (`GET /v1/metrics`, reader role).
//!
//! Two kinds. Events are counted where they happen: each API request by route and
//! status, each apply by result with its duration. States are read when the metrics are
//! asked for ([`Scrape`]): the feed's, the upgrade's, and what FreeSWITCH runs (calls in
//! progress, profiles up), so a scrape never reports a state older than itself. The
//! encoding is `prometheus-client`'s, the Prometheus project's own Rust client, whose
//! OpenMetrics text Prometheus reads; its typed families keep every label set declared.
//! No capture ring exists yet, so none of its usage is reported.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

/// The media type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCode {
    /// The route's pattern (`/v1/services/{name}/start`), never the path asked: one
    /// series per route, whatever the callers send.
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Result_ {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
    slot: String,
}

/// Every metric of the daemon, registered once.
pub struct Metrics {
    registry: Registry,
    api_requests: Family<RouteCode, Counter>,
    applies: Family<Result_, Counter>,
    apply_seconds: Histogram,
    last_apply_ok: Gauge,
    feed: Family<StateLabel, Gauge>,
    upgrade: Family<StateLabel, Gauge>,
    booted: Family<VersionLabel, Gauge>,
    freeswitch_up: Gauge,
    calls: Gauge,
    profiles_running: Gauge,
    profiles: Gauge,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// The states read for one scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The feed's state (`connected`, `disconnected`, …), when a document is followed.
    pub feed: Option<String>,
    /// The upgrade's state, booted version and slot, on a CCNQ image.
    pub upgrade: Option<(String, String, String)>,
    /// `(calls in progress, profiles running, profiles)`; `None`: FreeSWITCH did not
    /// answer.
    pub freeswitch: Option<(u64, u64, u64)>,
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("ccnq"),
            api_requests: Family::default(),
            applies: Family::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            last_apply_ok: Gauge::default(),
            feed: Family::default(),
            upgrade: Family::default(),
            booted: Family::default(),
            freeswitch_up: Gauge::default(),
            calls: Gauge::default(),
            profiles_running: Gauge::default(),
            profiles: Gauge::default(),
        };
        let mut r = m.registry;
        r.register(
            "api_requests",
            "Local API requests, by route and status code",
            m.api_requests.clone(),
        );
        r.register(
            "applies",
            "Revisions of the host document tried, by result (ok, failed)",
            m.applies.clone(),
        );
        r.register(
            "apply_duration_seconds",
            "How long each apply took, validation to the last action",
            m.apply_seconds.clone(),
        );
        r.register(
            "last_apply_ok",
            "1 if the last revision tried was applied, 0 if it failed",
            m.last_apply_ok.clone(),
        );
        r.register(
            "feed_state",
            "The changes feed from the local CouchDB: 1 for its current state",
            m.feed.clone(),
        );
        r.register(
            "upgrade_state",
            "The image upgrade: 1 for its current state",
            m.upgrade.clone(),
        );
        r.register(
            "booted",
            "The image version and slot booted (always 1)",
            m.booted.clone(),
        );
        r.register(
            "freeswitch_up",
            "1 if FreeSWITCH answered on its event socket at this scrape",
            m.freeswitch_up.clone(),
        );
        r.register(
            "calls_in_progress",
            "FreeSWITCH's call legs in progress",
            m.calls.clone(),
        );
        r.register(
            "sofia_profiles_running",
            "Sofia profiles RUNNING",
            m.profiles_running.clone(),
        );
        r.register(
            "sofia_profiles",
            "Sofia profiles FreeSWITCH lists",
            m.profiles.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// One API request answered.
    pub fn api_request(&self, route: &str, code: u16) {
        self.api_requests
            .get_or_create(&RouteCode {
                route: route.to_owned(),
                code,
            })
            .inc();
    }

    /// One revision tried: `ok` or `failed`, and how long it took.
    pub fn apply_ended(&self, result: &str, took: Duration) {
        self.applies
            .get_or_create(&Result_ {
                result: result.to_owned(),
            })
            .inc();
        self.apply_seconds.observe(took.as_secs_f64());
        self.last_apply_ok.set(i64::from(result == "ok"));
    }

    /// The text of a scrape, with the states read for it.
    pub fn encode(&self, now: &Scrape) -> String {
        set_state(&self.feed, now.feed.as_deref());
        set_state(&self.upgrade, now.upgrade.as_ref().map(|u| u.0.as_str()));
        self.booted.clear();
        if let Some((_, version, slot)) = &now.upgrade {
            self.booted
                .get_or_create(&VersionLabel {
                    version: version.clone(),
                    slot: slot.clone(),
                })
                .set(1);
        }
        let (up, (calls, running, all)) = match now.freeswitch {
            Some(fs) => (1, fs),
            None => (0, (0, 0, 0)),
        };
        self.freeswitch_up.set(up);
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.calls.set(gauge(calls));
        self.profiles_running.set(gauge(running));
        self.profiles.set(gauge(all));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A state set: the current state's series at 1, no other.
fn set_state(family: &Family<StateLabel, Gauge>, state: Option<&str>) {
    family.clear();
    if let Some(s) = state {
        family
            .get_or_create(&StateLabel {
                state: s.to_owned(),
            })
            .set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_states_in_the_exposition() {
        let m = Metrics::new();
        m.api_request("/v1/status", 200);
        m.api_request("/v1/status", 200);
        m.api_request("/v1/services/{name}/start", 403);
        m.apply_ended("ok", Duration::from_millis(30));
        m.apply_ended("failed", Duration::from_millis(5));
        let text = m.encode(&Scrape {
            feed: Some("connected".into()),
            upgrade: Some(("idle".into(), "2026.12.1".into(), "a".into())),
            freeswitch: Some((3, 2, 2)),
        });
        for line in [
            "ccnq_api_requests_total{route=\"/v1/status\",code=\"200\"} 2",
            "ccnq_api_requests_total{route=\"/v1/services/{name}/start\",code=\"403\"} 1",
            "ccnq_applies_total{result=\"ok\"} 1",
            "ccnq_applies_total{result=\"failed\"} 1",
            "ccnq_apply_duration_seconds_count 2",
            "ccnq_last_apply_ok 0",
            "ccnq_feed_state{state=\"connected\"} 1",
            "ccnq_upgrade_state{state=\"idle\"} 1",
            "ccnq_booted{version=\"2026.12.1\",slot=\"a\"} 1",
            "ccnq_freeswitch_up 1",
            "ccnq_calls_in_progress 3",
            "ccnq_sofia_profiles_running 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        // The states move: the old series go, FreeSWITCH away is 0, not a stale count.
        let text = m.encode(&Scrape {
            feed: Some("disconnected".into()),
            upgrade: None,
            freeswitch: None,
        });
        assert!(!text.contains("state=\"connected\""), "{text}");
        assert!(
            text.contains("ccnq_feed_state{state=\"disconnected\"} 1"),
            "{text}"
        );
        assert!(!text.contains("ccnq_upgrade_state{"), "{text}");
        assert!(text.contains("ccnq_freeswitch_up 0"), "{text}");
        assert!(text.contains("ccnq_calls_in_progress 0"), "{text}");
    }
}
