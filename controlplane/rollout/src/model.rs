//! The `rollout:<name>` document: which version, in which waves, how many reboots at a
//! time per site, when to stop, and (written by the driver only) how far it has got.
//!
//! An operator writes the first part by hand, so every problem is reported at once, each
//! with its JSON path, and unknown fields are errors rather than warnings: a misspelt
//! `max_rebooting_per_site` must not quietly become the default when it decides how many
//! call servers go down together. `progress` is read back with the same care because a
//! driver restarted from it must decide exactly what the one before it would have.

use ccnq_model::rules;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;

/// A validated rollout document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The tail of `_id` (`rollout:<name>`).
    pub name: String,
    /// The document's `_rev`: the driver writes progress against it.
    pub rev: Option<String>,
    /// The image version every host of the rollout ends on.
    pub version: String,
    /// In order; a host belongs to the first wave that includes it.
    pub waves: Vec<Wave>,
    /// `hosts`: only these hosts (lower-cased FQDNs); `None`: every `host:*` document.
    pub hosts: Option<Vec<String>>,
    /// At most this many hosts of one site released and not yet blessed or rolled back.
    pub max_rebooting_per_site: u32,
    /// When the driver stops.
    pub halt: HaltRule,
    /// What the driver recorded; `None` before its first pass.
    pub progress: Option<Progress>,
    /// The document as read, so the driver writes back every field it does not own.
    pub raw: Map<String, Value>,
}

impl Rollout {
    pub fn id(&self) -> String {
        format!("rollout:{}", self.name)
    }
}

/// One wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    pub name: String,
    pub members: Members,
}

/// Who a wave takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// These hosts (lower-cased FQDNs), wherever their seed falls.
    Hosts(Vec<String>),
    /// Every host whose seed falls below this cumulative share of the fleet (1..=100),
    /// unless an earlier wave took it.
    Percent(u8),
}

/// `halt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaltRule {
    /// Halt once this many hosts of the running wave have rolled back.
    pub rolled_back: u32,
    /// Halt when a released host is not blessed this many minutes after its release.
    pub not_blessed_within_minutes: u32,
}

/// `progress`, the driver's record. Times are RFC 3339 in the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub state: RunState,
    /// Index in `waves` of the running wave (the last one once done).
    pub wave: usize,
    /// Hosts the rollout has released or found done, by FQDN.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Halted,
    Done,
}

/// One host in `progress.hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostProgress {
    /// When the driver removed `image.hold`; absent for a host found already done.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub released_at: Option<OffsetDateTime>,
    /// Absent while the host reboots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// How a released host ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Blessed,
    RolledBack,
    TimedOut,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Blessed => "blessed",
            Outcome::RolledBack => "rolled-back",
            Outcome::TimedOut => "timed-out",
        })
    }
}

/// One problem with a rollout document, displayed `path: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FieldError {
    pub path: String,
    pub reason: String,
}

/// Every problem of a rollout document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rollout document: {}", list(.0))]
pub struct Invalid(pub Vec<FieldError>);

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

const FIELDS: &[&str] = &[
    "type",
    "version",
    "waves",
    "hosts",
    "max_rebooting_per_site",
    "halt",
    "progress",
];

/// Checks a rollout document and turns it into a [`Rollout`], or reports every problem.
pub fn validate(doc: &Value) -> Result<Rollout, Invalid> {
    let mut errors = Vec::new();
    let mut err = |path: &str, reason: String| {
        errors.push(FieldError {
            path: path.to_owned(),
            reason,
        })
    };
    let Value::Object(m) = doc else {
        return Err(Invalid(vec![FieldError {
            path: "(document)".into(),
            reason: format!("expected an object, got {}", kind(doc)),
        }]));
    };
    for k in m.keys() {
        if !k.starts_with('_') && !FIELDS.contains(&k.as_str()) {
            err(k, "unknown field".into());
        }
    }
    let name = match m.get("_id").and_then(Value::as_str) {
        None => {
            err("_id", "required: \"rollout:<name>\"".into());
            None
        }
        Some(id) => match id.strip_prefix("rollout:") {
            None => {
                err(
                    "_id",
                    format!("expected \"rollout:<name>\", got {}", rules::quote(id)),
                );
                None
            }
            Some(name) => match rules::name(name) {
                Ok(()) => Some(name.to_owned()),
                Err(why) => {
                    err("_id", format!("invalid rollout name: {why}"));
                    None
                }
            },
        },
    };
    match get(m, "type") {
        Some(Value::String(t)) if t == "rollout" => {}
        Some(other) => err("type", format!("expected \"rollout\", got {other}")),
        None => err("type", "required field is missing".into()),
    }
    let version = match get(m, "version") {
        Some(Value::String(v)) => match rules::version(v) {
            Ok(()) => Some(v.clone()),
            Err(why) => {
                err("version", why);
                None
            }
        },
        Some(other) => {
            err("version", format!("expected a string, got {}", kind(other)));
            None
        }
        None => {
            err("version", "required field is missing".into());
            None
        }
    };
    let waves = waves(get(m, "waves"), &mut err);
    let hosts = match get(m, "hosts") {
        None => Some(None),
        Some(v) => fqdns(v, "hosts", &mut err).map(Some),
    };
    let max = match get(m, "max_rebooting_per_site") {
        None => Some(1),
        Some(v) => positive(v, "max_rebooting_per_site", &mut err),
    };
    let halt = match get(m, "halt") {
        None => {
            err(
                "halt",
                "required: {\"rolled_back\": N, \"not_blessed_within_minutes\": M}".into(),
            );
            None
        }
        Some(Value::Object(h)) => {
            for k in h.keys() {
                if !["rolled_back", "not_blessed_within_minutes"].contains(&k.as_str()) {
                    err(&format!("halt.{k}"), "unknown field".into());
                }
            }
            let mut field = |k: &str| match get(h, k) {
                None => {
                    err(&format!("halt.{k}"), "required field is missing".into());
                    None
                }
                Some(v) => positive(v, &format!("halt.{k}"), &mut err),
            };
            let rolled_back = field("rolled_back");
            let minutes = field("not_blessed_within_minutes");
            rolled_back.zip(minutes).map(|(rolled_back, m)| HaltRule {
                rolled_back,
                not_blessed_within_minutes: m,
            })
        }
        Some(other) => {
            err("halt", format!("expected an object, got {}", kind(other)));
            None
        }
    };
    let progress = match get(m, "progress") {
        None => Some(None),
        Some(v) => match serde_path_to_error::deserialize::<_, Progress>(v) {
            Ok(p) => Some(Some(p)),
            Err(e) => {
                let at = e.path().to_string();
                let path = if at == "." {
                    "progress".into()
                } else {
                    format!("progress.{at}")
                };
                err(&path, e.into_inner().to_string());
                None
            }
        },
    };
    if let (Some(Some(p)), Some(w)) = (&progress, &waves) {
        if p.wave >= w.len() {
            err(
                "progress.wave",
                format!("{} is past the last wave ({} waves)", p.wave, w.len()),
            );
        }
    }
    match (name, version, waves, hosts, max, halt, progress) {
        (
            Some(name),
            Some(version),
            Some(waves),
            Some(hosts),
            Some(max),
            Some(halt),
            Some(progress),
        ) if errors.is_empty() => Ok(Rollout {
            name,
            rev: m.get("_rev").and_then(Value::as_str).map(str::to_owned),
            version,
            waves,
            hosts,
            max_rebooting_per_site: max,
            halt,
            progress,
            raw: m.clone(),
        }),
        _ => Err(Invalid(errors)),
    }
}

fn waves(v: Option<&Value>, err: &mut impl FnMut(&str, String)) -> Option<Vec<Wave>> {
    let items = match v {
        None => {
            err("waves", "required field is missing".into());
            return None;
        }
        Some(Value::Array(a)) if a.is_empty() => {
            err("waves", "no wave: name at least one".into());
            return None;
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            err(
                "waves",
                format!("expected a list of waves, got {}", kind(other)),
            );
            return None;
        }
    };
    let mut out = Vec::new();
    let mut ok = true;
    let mut last_percent: Option<(u8, String)> = None;
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("waves[{i}]");
        let Value::Object(w) = item else {
            err(&at, format!("expected an object, got {}", kind(item)));
            ok = false;
            continue;
        };
        for k in w.keys() {
            if !["name", "hosts", "percent"].contains(&k.as_str()) {
                err(&format!("{at}.{k}"), "unknown field".into());
                ok = false;
            }
        }
        let name = match get(w, "name") {
            Some(Value::String(n)) => match rules::name(n) {
                Ok(()) if out.iter().any(|x: &Wave| &x.name == n) => {
                    err(
                        &format!("{at}.name"),
                        format!("{} names another wave too", rules::quote(n)),
                    );
                    None
                }
                Ok(()) => Some(n.clone()),
                Err(why) => {
                    err(&format!("{at}.name"), format!("invalid wave name: {why}"));
                    None
                }
            },
            Some(other) => {
                err(
                    &format!("{at}.name"),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
            None => {
                err(&format!("{at}.name"), "required field is missing".into());
                None
            }
        };
        let members = match (get(w, "hosts"), get(w, "percent")) {
            (Some(_), Some(_)) => {
                err(
                    &at,
                    "both hosts and percent given: a wave is one or the other".into(),
                );
                None
            }
            (None, None) => {
                err(
                    &at,
                    "expected {\"hosts\": [fqdn, …]} or {\"percent\": 1..=100}".into(),
                );
                None
            }
            (Some(h), None) => fqdns(h, &format!("{at}.hosts"), err).and_then(|hosts| {
                let mut clash = false;
                for h in &hosts {
                    if let Some(first) = named.insert(h.clone(), at.clone()) {
                        err(
                            &format!("{at}.hosts"),
                            format!("{} is named by {first} already", rules::quote(h)),
                        );
                        clash = true;
                    }
                }
                (!clash).then_some(Members::Hosts(hosts))
            }),
            (None, Some(p)) => match p.as_u64() {
                Some(p @ 1..=100) => {
                    let p = p as u8;
                    match &last_percent {
                        Some((before, which)) if *before >= p => {
                            err(
                                &format!("{at}.percent"),
                                format!("{p} is not above {which}'s {before}: percents are cumulative shares of the fleet, so each wave's must be larger"),
                            );
                            None
                        }
                        _ => {
                            last_percent = Some((p, at.clone()));
                            Some(Members::Percent(p))
                        }
                    }
                }
                _ => {
                    err(
                        &format!("{at}.percent"),
                        format!("expected an integer in 1..=100, got {p}"),
                    );
                    None
                }
            },
        };
        match (name, members) {
            (Some(name), Some(members)) => out.push(Wave { name, members }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A list of host names, lower-cased (host names are case-insensitive), no repeats.
fn fqdns(v: &Value, at: &str, err: &mut impl FnMut(&str, String)) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        err(
            at,
            format!("expected a list of host names, got {}", kind(v)),
        );
        return None;
    };
    if items.is_empty() {
        err(at, "empty list: name at least one host".into());
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}[{i}]");
        match item {
            Value::String(h) => match rules::hostname(h) {
                Ok(()) if out.contains(&h.to_ascii_lowercase()) => {
                    err(&here, format!("{} appears twice", rules::quote(h)));
                    ok = false;
                }
                Ok(()) => out.push(h.to_ascii_lowercase()),
                Err(why) => {
                    err(&here, why);
                    ok = false;
                }
            },
            other => {
                err(&here, format!("expected a host name, got {}", kind(other)));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn positive(v: &Value, at: &str, err: &mut impl FnMut(&str, String)) -> Option<u32> {
    match v.as_u64() {
        Some(n @ 1..) if n <= u64::from(u32::MAX) => Some(n as u32),
        _ => {
            err(at, format!("expected a positive integer, got {v}"));
            None
        }
    }
}

/// `null` reads as absent, as in host documents.
fn get<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

use ccnq_model::rules::kind;

/// The document with `progress` replaced, every other field as read (with its `_rev`).
pub fn with_progress(rollout: &Rollout, progress: &Progress) -> Value {
    let mut doc = rollout.raw.clone();
    doc.insert(
        "progress".into(),
        serde_json::to_value(progress).unwrap_or(Value::Null),
    );
    Value::Object(doc)
}
