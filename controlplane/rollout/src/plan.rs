//! What the driver does next, decided from what the documents say now: pure, so every
//! rule of a rollout is tested without a database, and a driver restarted from the
//! recorded progress decides exactly what the one before it would have.
//!
//! One pass, for the running wave:
//! 1. Each host's outcome: done when its status says it runs the version and is blessed
//!    (or idle on it: a host already there counts without a release); rolled back when
//!    a released host reports `rolled-back` for the version; timed out when a released
//!    host is not blessed within the halt rule's minutes.
//! 2. Halt when the rule says so. A halt writes no host document: every host stays as
//!    it is (rolling a rollout back is a new rollout to the old version).
//! 3. The host documents the wave needs: `image = {version, hold: true}` for every host
//!    not yet released, so the whole wave downloads and writes its other slot ahead;
//!    hold removed for the released ones and for hosts already done.
//! 4. Releases: hosts that report `waiting-wave` for the version (written, held), in
//!    name order, while their site has fewer than `max_rebooting_per_site` hosts
//!    released and not yet blessed or rolled back. The count covers the whole fleet,
//!    including a host whose document releases the version without this rollout having
//!    recorded it (an interrupted driver, an operator's hand): when unsure, count it.
//! 5. The wave is over when each of its hosts is blessed or rolled back (fewer than the
//!    halt rule's number, or it would have halted): the next wave starts in the same
//!    pass; after the last, the rollout is done.
//!
//! Releases are recorded in `progress` before the host documents are written (see the
//! driver): a progress write that loses a race means another driver released first,
//! and this one starts over from what that one recorded.

use crate::fleet::{Fleet, StatusView};
use crate::model::{HostProgress, Outcome, Progress, Rollout, RunState};
use crate::waves;
use ccnq_api::UpgradeState;
use ccnq_model::ImageSpec;
use std::collections::BTreeMap;
use std::fmt;
use time::{Duration, OffsetDateTime};

/// The outcome of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The progress to record (equal to the one read when nothing changed).
    pub progress: Progress,
    /// Host documents to change, after `progress` is recorded. Empty when halting.
    pub writes: Vec<HostWrite>,
    /// What happened, in order, for people.
    pub events: Vec<Event>,
    /// Hosts of the running wave that are not moving, and why (for people; the driver
    /// prints them when they change).
    pub waiting: BTreeMap<String, String>,
}

impl Plan {
    pub fn state(&self) -> RunState {
        self.progress.state
    }
}

/// Set `image` of `host:<fqdn>` to this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWrite {
    pub fqdn: String,
    pub image: ImageSpec,
}

/// One decision, as the driver prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started {
        version: String,
        waves: usize,
    },
    WaveStarted {
        index: usize,
        name: String,
        hosts: usize,
    },
    Staged {
        fqdn: String,
    },
    Released {
        fqdn: String,
        site: String,
        rebooting: u32,
        limit: u32,
    },
    /// Hold removed again: progress says released, the document still held (a driver
    /// stopped between the two writes).
    ReleasedAgain {
        fqdn: String,
    },
    /// The document releases the version though this rollout never did: counted.
    Adopted {
        fqdn: String,
    },
    Blessed {
        fqdn: String,
    },
    AlreadyOn {
        fqdn: String,
    },
    /// A host found done whose document did not name the version: it does now.
    Pinned {
        fqdn: String,
    },
    RolledBack {
        fqdn: String,
        reason: String,
    },
    TimedOut {
        fqdn: String,
        minutes: u32,
    },
    WaveDone {
        index: usize,
        name: String,
    },
    Halted {
        reason: String,
    },
    Done,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { version, waves } => {
                write!(f, "start: version {version}, {waves} wave(s)")
            }
            Event::WaveStarted { index, name, hosts } => {
                write!(f, "wave {index} {name}: start, {hosts} host(s)")
            }
            Event::Staged { fqdn } => write!(f, "stage {fqdn}: image named, hold (pre-download)"),
            Event::Released {
                fqdn,
                site,
                rebooting,
                limit,
            } => write!(
                f,
                "release {fqdn}: hold removed (site {site}: {rebooting}/{limit} rebooting)"
            ),
            Event::ReleasedAgain { fqdn } => {
                write!(
                    f,
                    "release {fqdn}: hold removed (recorded before, not yet written)"
                )
            }
            Event::Adopted { fqdn } => write!(
                f,
                "adopt {fqdn}: its document already releases the version; counted as rebooting"
            ),
            Event::Blessed { fqdn } => write!(f, "blessed {fqdn}"),
            Event::AlreadyOn { fqdn } => write!(f, "done {fqdn}: already on the version"),
            Event::Pinned { fqdn } => write!(f, "pin {fqdn}: document names the version it runs"),
            Event::RolledBack { fqdn, reason } => write!(f, "rolled back {fqdn}: {reason}"),
            Event::TimedOut { fqdn, minutes } => {
                write!(
                    f,
                    "timed out {fqdn}: not blessed within {minutes} min of its release"
                )
            }
            Event::WaveDone { index, name } => write!(f, "wave {index} {name}: done"),
            Event::Halted { reason } => write!(f, "halted: {reason}"),
            Event::Done => write!(f, "done"),
        }
    }
}

/// Decides the next pass. `now` is the driver's clock (release times and the timeout
/// are measured on it alone, never against a host's clock).
pub fn plan(rollout: &Rollout, fleet: &Fleet, now: OffsetDateTime) -> Plan {
    let before = rollout.progress.clone();
    let mut p = before.clone().unwrap_or(Progress {
        state: RunState::Running,
        wave: 0,
        hosts: BTreeMap::new(),
        halted_reason: None,
        updated_at: now,
    });
    let mut pass = Pass {
        rollout,
        fleet,
        now,
        writes: Vec::new(),
        events: Vec::new(),
        waiting: BTreeMap::new(),
    };
    if p.state == RunState::Running {
        if before.is_none() {
            pass.events.push(Event::Started {
                version: rollout.version.clone(),
                waves: rollout.waves.len(),
            });
        }
        pass.run(&mut p, before.is_none());
    }
    if Some(&p) != before.as_ref() {
        p.updated_at = now;
    }
    Plan {
        progress: p,
        writes: pass.writes,
        events: pass.events,
        waiting: pass.waiting,
    }
}

/// Whether a document's `image` already says what `want` does: the version and the
/// hold, whatever else (a maintenance window) it holds.
fn names(image: Option<&ImageSpec>, want: &ImageSpec) -> bool {
    image.is_some_and(|i| i.version == want.version && i.hold == want.hold)
}

struct Pass<'a> {
    rollout: &'a Rollout,
    fleet: &'a Fleet,
    now: OffsetDateTime,
    writes: Vec<HostWrite>,
    events: Vec<Event>,
    waiting: BTreeMap<String, String>,
}

impl Pass<'_> {
    fn halt(&mut self, p: &mut Progress, reason: String) {
        p.state = RunState::Halted;
        p.halted_reason = Some(reason.clone());
        self.writes.clear();
        self.waiting.clear();
        self.events.push(Event::Halted { reason });
    }

    /// What the rollout writes into `image` (the driver keeps the document's other
    /// fields of it, such as its maintenance window).
    fn image(&self, hold: bool) -> ImageSpec {
        ImageSpec {
            version: self.rollout.version.clone(),
            hold,
            window: None,
        }
    }

    fn upgrade(&self, fqdn: &str) -> Option<&ccnq_api::UpgradeStatus> {
        match self.fleet.statuses.get(fqdn) {
            Some(StatusView::Upgrade(u)) => Some(u),
            _ => None,
        }
    }

    fn settled(&self, fqdn: &str) -> bool {
        self.upgrade(fqdn)
            .is_some_and(|u| u.is_settled_on(&self.rollout.version))
    }

    fn rolled_back(&self, fqdn: &str) -> Option<String> {
        self.upgrade(fqdn)
            .filter(|u| u.state == UpgradeState::RolledBack && u.is_about(&self.rollout.version))
            .map(|u| u.reason.clone().unwrap_or_else(|| "no reason given".into()))
    }

    /// The fleet this rollout moves: the `hosts` filter, or every host document.
    fn members(&self) -> Result<Vec<String>, String> {
        let r = self.rollout;
        let members: Vec<String> = match &r.hosts {
            Some(list) => {
                if let Some(h) = list.iter().find(|h| !self.fleet.hosts.contains_key(*h)) {
                    return Err(format!("hosts names {h}, which has no host document"));
                }
                list.clone()
            }
            None => self.fleet.hosts.keys().cloned().collect(),
        };
        for (i, w) in r.waves.iter().enumerate() {
            if let crate::model::Members::Hosts(named) = &w.members {
                if let Some(h) = named.iter().find(|h| !members.contains(h)) {
                    return Err(format!(
                        "wave {i} {} names {h}, which {}",
                        w.name,
                        if self.fleet.hosts.contains_key(h) {
                            "the hosts filter leaves out"
                        } else {
                            "has no host document"
                        }
                    ));
                }
            }
        }
        Ok(members)
    }

    fn run(&mut self, p: &mut Progress, first: bool) {
        let members = match self.members() {
            Ok(m) => m,
            Err(reason) => return self.halt(p, reason),
        };
        let by_wave = waves::assign(&self.rollout.waves, members.iter().map(String::as_str));
        let mut starting = first;
        loop {
            let index = p.wave;
            let wave = &self.rollout.waves[index];
            let hosts = by_wave.get(&index).cloned().unwrap_or_default();
            if starting {
                self.events.push(Event::WaveStarted {
                    index,
                    name: wave.name.clone(),
                    hosts: hosts.len(),
                });
            }
            if let Err(reason) = self.wave_pass(p, &members, &hosts) {
                return self.halt(p, reason);
            }
            let finished = hosts.iter().all(|h| {
                matches!(
                    p.hosts.get(h).and_then(|e| e.outcome),
                    Some(Outcome::Blessed | Outcome::RolledBack)
                )
            });
            if !finished {
                return;
            }
            self.events.push(Event::WaveDone {
                index,
                name: wave.name.clone(),
            });
            if index + 1 == self.rollout.waves.len() {
                p.state = RunState::Done;
                self.events.push(Event::Done);
                return;
            }
            p.wave += 1;
            starting = true;
        }
    }

    /// Steps 1 to 4 for the hosts of one wave. `Err`: halt, for this reason.
    fn wave_pass(
        &mut self,
        p: &mut Progress,
        members: &[String],
        hosts: &[String],
    ) -> Result<(), String> {
        let r = self.rollout;
        let version = &r.version;
        for h in hosts {
            if let Some(why) = &self.fleet.hosts[h].invalid {
                return Err(format!("host:{h} is invalid: {why}"));
            }
        }
        // 1. Outcomes.
        for h in hosts {
            let doc = &self.fleet.hosts[h];
            let entry = p.hosts.get(h).cloned();
            if entry.as_ref().is_some_and(|e| e.outcome.is_some()) {
                continue;
            }
            let mut released_at = entry.and_then(|e| e.released_at);
            if self.settled(h) {
                let e = if released_at.is_some() {
                    Event::Blessed { fqdn: h.clone() }
                } else {
                    Event::AlreadyOn { fqdn: h.clone() }
                };
                self.events.push(e);
                p.hosts.insert(
                    h.clone(),
                    HostProgress {
                        released_at,
                        outcome: Some(Outcome::Blessed),
                    },
                );
                continue;
            }
            if released_at.is_none() && names(doc.image.as_ref(), &self.image(false)) {
                self.events.push(Event::Adopted { fqdn: h.clone() });
                released_at = Some(self.now);
                p.hosts.insert(
                    h.clone(),
                    HostProgress {
                        released_at,
                        outcome: None,
                    },
                );
            }
            let Some(at) = released_at else { continue };
            let limit = Duration::minutes(i64::from(r.halt.not_blessed_within_minutes));
            let outcome = if let Some(reason) = self.rolled_back(h) {
                self.events.push(Event::RolledBack {
                    fqdn: h.clone(),
                    reason,
                });
                Outcome::RolledBack
            } else if self.now - at > limit {
                self.events.push(Event::TimedOut {
                    fqdn: h.clone(),
                    minutes: r.halt.not_blessed_within_minutes,
                });
                Outcome::TimedOut
            } else {
                continue;
            };
            p.hosts.insert(
                h.clone(),
                HostProgress {
                    released_at,
                    outcome: Some(outcome),
                },
            );
        }
        // 2. Halt rule.
        let outcome_of = |h: &String| p.hosts.get(h).and_then(|e| e.outcome);
        if let Some(h) = hosts
            .iter()
            .find(|h| outcome_of(h) == Some(Outcome::TimedOut))
        {
            return Err(format!(
                "{h} was not blessed within {} min of its release",
                r.halt.not_blessed_within_minutes
            ));
        }
        let rolled: Vec<&String> = hosts
            .iter()
            .filter(|h| outcome_of(h) == Some(Outcome::RolledBack))
            .collect();
        if rolled.len() as u64 >= u64::from(r.halt.rolled_back) {
            let names: Vec<&str> = rolled.iter().map(|h| h.as_str()).collect();
            return Err(format!(
                "{} host(s) of wave {} {} rolled back ({}); the rule halts at {}",
                rolled.len(),
                p.wave,
                r.waves[p.wave].name,
                names.join(", "),
                r.halt.rolled_back
            ));
        }
        // 3. The documents the wave needs.
        for h in hosts {
            let entry = p.hosts.get(h);
            let want = match entry.and_then(|e| e.outcome) {
                Some(Outcome::RolledBack) | Some(Outcome::TimedOut) => continue,
                Some(Outcome::Blessed) => self.image(false),
                None if entry.is_some_and(|e| e.released_at.is_some()) => self.image(false),
                None => self.image(true),
            };
            let doc = &self.fleet.hosts[h];
            if names(doc.image.as_ref(), &want) {
                continue;
            }
            self.events
                .push(match (want.hold, entry.and_then(|e| e.outcome)) {
                    (true, _) => Event::Staged { fqdn: h.clone() },
                    (false, Some(Outcome::Blessed)) => Event::Pinned { fqdn: h.clone() },
                    (false, _) => Event::ReleasedAgain { fqdn: h.clone() },
                });
            self.writes.push(HostWrite {
                fqdn: h.clone(),
                image: want,
            });
        }
        // 4. Releases, within each site's limit.
        let mut rebooting: BTreeMap<&str, u32> = BTreeMap::new();
        for h in members {
            let doc = &self.fleet.hosts[h];
            let counted = match p.hosts.get(h) {
                Some(e) => e.released_at.is_some() && e.outcome.is_none(),
                None => {
                    names(doc.image.as_ref(), &self.image(false))
                        && !self.settled(h)
                        && self.rolled_back(h).is_none()
                }
            };
            if counted {
                *rebooting.entry(doc.site.as_str()).or_default() += 1;
            }
        }
        for h in hosts {
            if p.hosts.contains_key(h) {
                continue;
            }
            let doc = &self.fleet.hosts[h];
            let held = names(doc.image.as_ref(), &self.image(true));
            let ready = self
                .upgrade(h)
                .is_some_and(|u| u.state == UpgradeState::WaitingWave && u.is_about(version));
            if !(held && ready) {
                let why = match self.fleet.statuses.get(h) {
                    _ if !held => "staged in this pass".to_owned(),
                    None => "no status document".to_owned(),
                    Some(StatusView::NoUpgrade) => "its status reports no upgrade".to_owned(),
                    Some(StatusView::Unreadable(why)) => format!("unreadable status: {why}"),
                    Some(StatusView::Upgrade(u)) => match (&u.target_version, u.progress) {
                        (Some(t), Some(b)) => {
                            format!("{} {t} ({}/{} bytes)", u.state, b.done, b.total)
                        }
                        (Some(t), None) => format!("{} {t}", u.state),
                        (None, _) => u.state.to_string(),
                    },
                };
                self.waiting.insert(h.clone(), why);
                continue;
            }
            let n = rebooting.entry(doc.site.as_str()).or_default();
            if *n >= r.max_rebooting_per_site {
                self.waiting.insert(
                    h.clone(),
                    format!(
                        "ready; site {} has {n} rebooting (limit {})",
                        doc.site, r.max_rebooting_per_site
                    ),
                );
                continue;
            }
            *n += 1;
            self.events.push(Event::Released {
                fqdn: h.clone(),
                site: doc.site.clone(),
                rebooting: *n,
                limit: r.max_rebooting_per_site,
            });
            p.hosts.insert(
                h.clone(),
                HostProgress {
                    released_at: Some(self.now),
                    outcome: None,
                },
            );
            self.writes.push(HostWrite {
                fqdn: h.clone(),
                image: self.image(false),
            });
        }
        Ok(())
    }
}
