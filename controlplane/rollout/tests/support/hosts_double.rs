//! TEST DOUBLE of the host side of a rollout: one task plays the upgrade path of every
//! host of a test fleet, which `ccnqd` does not have yet. It stands in for it only as
//! far as the status contract (`ccnq_api::UpgradeStatus`, docs/fleet.md) goes: it reads
//! each `host:<fqdn>` from the real CouchDB and writes `status:<fqdn>` as a host would.
//!
//! - image named with `hold: true` → `downloading`, then `waiting-wave` (slot written);
//! - hold removed → `rebooting` for a few polls, then `blessed` on the new version, or
//!   `rolled-back` (with a reason) for the hosts the test says roll back.
//!
//! It also watches: at every poll it counts, per site, the hosts whose document
//! releases the version and that have not yet finished (blessed or rolled back), and
//! keeps the highest count and any poll where it exceeded the limit. Shared by the
//! rollout crate's tests and `ccnqctl`'s (included there by path).

#![allow(dead_code)]

use ccnq_api::{Slot, UpgradeState, UpgradeStatus};
use ccnq_couch::Db;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OLD: &str = "2026.11.2";

/// A host document valid per the model (no FreeSWITCH: nothing else to name).
pub fn host_doc(fqdn: &str, site: &str) -> Value {
    json!({"_id": format!("host:{fqdn}"), "type": "host", "host": fqdn, "site": site,
           "server_only": true})
}

/// What one simulated host is doing.
#[derive(Debug, Clone)]
struct Sim {
    booted: String,
    state: UpgradeState,
    target: Option<String>,
    reason: Option<String>,
    polls_left: u32,
}

/// What the double saw, in order.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// `(sequence, fqdn, state entered)`, one per transition.
    pub transitions: Vec<(u64, String, UpgradeState)>,
    /// The highest number of released, unfinished hosts seen at once, per site.
    pub max_rebooting: BTreeMap<String, u32>,
    /// Polls where a site had more than the limit: `(site, count, hosts)`.
    pub over_limit: Vec<(String, u32, Vec<String>)>,
    /// Polls done.
    pub polls: u64,
}

impl Observed {
    /// The sequence number at which `fqdn` first entered `state`.
    pub fn first(&self, fqdn: &str, state: UpgradeState) -> Option<u64> {
        self.transitions
            .iter()
            .find(|(_, h, s)| h == fqdn && *s == state)
            .map(|(n, _, _)| *n)
    }
}

pub struct HostsDouble {
    pub observed: Arc<Mutex<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostsDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostsDouble {
    /// Writes `status:<fqdn>` idle on [`OLD`] for each of `fqdns`, then plays them all
    /// (a host document not among them is not played: it never has a status). `limit`
    /// is the per-site limit the test expects to hold.
    pub async fn start(db: Db, fqdns: &[&str], rolls_back: &[&str], limit: u32) -> HostsDouble {
        let mut sims = BTreeMap::new();
        for fqdn in fqdns {
            let sim = Sim {
                booted: OLD.into(),
                state: UpgradeState::Idle,
                target: None,
                reason: None,
                polls_left: 0,
            };
            write(&db, fqdn, &sim).await;
            sims.insert(fqdn.to_string(), sim);
        }
        let rolls_back: BTreeSet<String> = rolls_back.iter().map(|h| h.to_string()).collect();
        let observed = Arc::new(Mutex::new(Observed::default()));
        let seen = observed.clone();
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                if let Ok(docs) = db.docs_with_prefix("host:").await {
                    poll(&db, &docs, &mut sims, &rolls_back, limit, &seen, &mut seq).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        HostsDouble { observed, task }
    }

    pub fn observed(&self) -> Observed {
        self.observed.lock().unwrap().clone()
    }

    /// Waits (at most two minutes) until the double has polled `n` more times.
    pub async fn polls(&self, n: u64) {
        let target = self.observed().polls + n;
        for _ in 0..3000 {
            if self.observed().polls >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("the hosts double stopped polling");
    }
}

async fn poll(
    db: &Db,
    docs: &[Value],
    sims: &mut BTreeMap<String, Sim>,
    rolls_back: &BTreeSet<String>,
    limit: u32,
    seen: &Mutex<Observed>,
    seq: &mut u64,
) {
    let mut rebooting: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for doc in docs {
        let fqdn = doc["host"].as_str().unwrap_or_default().to_string();
        let site = doc["site"].as_str().unwrap_or("default").to_string();
        let Some(sim) = sims.get_mut(&fqdn) else {
            continue;
        };
        let Some(version) = doc["image"]["version"].as_str().map(str::to_owned) else {
            continue;
        };
        let hold = doc["image"]["hold"] == json!(true);
        let before = (sim.state, sim.target.clone());
        let finished = matches!(sim.state, UpgradeState::Blessed | UpgradeState::RolledBack)
            && sim.target.as_deref() == Some(version.as_str());
        if sim.booted == version && sim.state != UpgradeState::Rebooting {
            // Already there: nothing to do.
        } else if finished {
            // Rolled back from this version: not again until the document changes.
        } else if sim.target.as_deref() != Some(version.as_str()) || sim.state == UpgradeState::Idle
        {
            sim.state = UpgradeState::Downloading;
            sim.target = Some(version.clone());
            sim.reason = None;
        } else if sim.state == UpgradeState::Downloading {
            sim.state = UpgradeState::WaitingWave;
        } else if sim.state == UpgradeState::WaitingWave && !hold {
            sim.state = UpgradeState::Rebooting;
            sim.polls_left = 4;
        } else if sim.state == UpgradeState::Rebooting {
            if sim.polls_left > 0 {
                sim.polls_left -= 1;
            } else if rolls_back.contains(&fqdn) {
                sim.state = UpgradeState::RolledBack;
                sim.reason = Some("the double's health check failed".into());
            } else {
                sim.state = UpgradeState::Blessed;
                sim.booted = version.clone();
            }
        }
        let unfinished = !matches!(sim.state, UpgradeState::Blessed | UpgradeState::RolledBack);
        if !hold && unfinished && sim.booted != version {
            rebooting.entry(site).or_default().push(fqdn.clone());
        }
        if (sim.state, sim.target.clone()) != before {
            *seq += 1;
            seen.lock()
                .unwrap()
                .transitions
                .push((*seq, fqdn.clone(), sim.state));
            write(db, &fqdn, sim).await;
        }
    }
    let mut seen = seen.lock().unwrap();
    seen.polls += 1;
    for (site, hosts) in rebooting {
        let n = hosts.len() as u32;
        let max = seen.max_rebooting.entry(site.clone()).or_default();
        *max = (*max).max(n);
        if n > limit {
            seen.over_limit.push((site, n, hosts));
        }
    }
}

async fn write(db: &Db, fqdn: &str, sim: &Sim) {
    let upgrade = UpgradeStatus {
        booted_version: sim.booted.clone(),
        booted_slot: Slot::A,
        other_slot_version: sim.target.clone().filter(|t| *t != sim.booted),
        state: sim.state,
        target_version: sim.target.clone(),
        reason: sim.reason.clone(),
        since: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        progress: None,
    };
    ccnq_couch::status::write_status(db, fqdn, &json!({ "upgrade": upgrade }))
        .await
        .expect("the double writes its status");
}
