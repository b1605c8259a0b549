//! The loop that carries a rollout out against the central CouchDB: read the rollout,
//! the host and the status documents; decide ([`crate::plan`]); record the progress;
//! write the host documents; wait; again, until done or halted.
//!
//! Safe to interrupt and safe to run twice, because of the order of the writes:
//! - The progress is written first, against the `_rev` read. A 409 means someone else
//!   (another driver, an operator) changed the rollout: the whole pass starts over from
//!   what the documents say now. So two drivers never both release a host for the same
//!   free reboot slot: the second one's claim conflicts, and its next plan counts the
//!   first one's releases.
//! - The host documents follow, each against its own `_rev`, re-read on a 409; only
//!   `image` is touched. A driver killed in between left progress that says "released"
//!   and a document that still holds: the next pass writes the document again.
//!
//! Polling rather than the `_changes` feed: a pass reads the whole fleet anyway (a
//! release depends on every host of the site), and a rollout moves at the pace of
//! reboots, minutes, not milliseconds.

use crate::fleet::Fleet;
use crate::model::{self, Invalid, Rollout, RunState};
use crate::plan::{plan, HostWrite, Plan};
use ccnq_couch::{CouchError, Db};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// How the driver paces itself.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// Between passes.
    pub poll_interval: Duration,
    /// Passes in a row that may lose the race for the rollout document before the
    /// driver gives up (someone keeps rewriting it).
    pub max_conflicts: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            poll_interval: Duration::from_secs(10),
            max_conflicts: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("rollout:{0} does not exist")]
    NotFound(String),
    #[error("rollout:{name}: {source}")]
    Invalid { name: String, source: Invalid },
    #[error(
        "rollout:{name}: {attempts} conflicting writes in a row: something else keeps changing it"
    )]
    Contended { name: String, attempts: usize },
    #[error("{what}: {source}")]
    Couch {
        what: String,
        #[source]
        source: CouchError,
    },
}

impl DriverError {
    /// The CouchDB error behind this one, if any (for the caller's exit status).
    pub fn couch(&self) -> Option<&CouchError> {
        match self {
            DriverError::Couch { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Worth another pass later: the server or the network failed, not the request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.couch(),
            Some(CouchError::Transport(_) | CouchError::Timeout(_) | CouchError::Server { .. })
        )
    }
}

fn couch(what: impl Into<String>) -> impl FnOnce(CouchError) -> DriverError {
    let what = what.into();
    move |source| DriverError::Couch { what, source }
}

/// Attempts at one host document before its conflict is reported.
const HOST_WRITE_ATTEMPTS: usize = 5;

/// Drives one rollout.
#[derive(Debug, Clone)]
pub struct Driver {
    db: Db,
    name: String,
    config: DriverConfig,
}

impl Driver {
    /// `name` is the rollout's, the tail of `rollout:<name>`.
    pub fn new(db: Db, name: &str, config: DriverConfig) -> Driver {
        Driver {
            db,
            name: name.to_owned(),
            config,
        }
    }

    fn id(&self) -> String {
        format!("rollout:{}", self.name)
    }

    /// The rollout document, validated.
    pub async fn read(&self) -> Result<Rollout, DriverError> {
        let id = self.id();
        let doc = self
            .db
            .get_opt(&id)
            .await
            .map_err(couch(format!("reading {id}")))?
            .ok_or_else(|| DriverError::NotFound(self.name.clone()))?;
        model::validate(&doc).map_err(|source| DriverError::Invalid {
            name: self.name.clone(),
            source,
        })
    }

    /// Every host and status document.
    pub async fn fleet(&self) -> Result<Fleet, DriverError> {
        read_fleet(&self.db).await
    }

    /// One pass: read, decide, record, write. Returns the plan carried out.
    pub async fn pass(&self) -> Result<Plan, DriverError> {
        for _ in 0..self.config.max_conflicts {
            let rollout = self.read().await?;
            if rollout
                .progress
                .as_ref()
                .is_some_and(|p| p.state != RunState::Running)
            {
                return Ok(plan(&rollout, &Fleet::default(), OffsetDateTime::now_utc()));
            }
            let fleet = self.fleet().await?;
            let decided = plan(&rollout, &fleet, OffsetDateTime::now_utc());
            if rollout.progress.as_ref() != Some(&decided.progress) {
                let doc = model::with_progress(&rollout, &decided.progress);
                match self.db.put(&rollout.id(), &doc).await {
                    Ok(_) => {}
                    // Someone else wrote the rollout: decide again from what they wrote.
                    Err(CouchError::Conflict(_)) => continue,
                    Err(e) => {
                        return Err(couch(format!("recording the progress of {}", rollout.id()))(e))
                    }
                }
            }
            for w in &decided.writes {
                self.write_host(w).await?;
            }
            return Ok(decided);
        }
        Err(DriverError::Contended {
            name: self.name.clone(),
            attempts: self.config.max_conflicts,
        })
    }

    /// Sets `image` of one host document, keeping every other field (and any field of
    /// `image` this version does not know).
    async fn write_host(&self, w: &HostWrite) -> Result<(), DriverError> {
        let id = format!("host:{}", w.fqdn);
        let what = || format!("writing the image of {id}");
        let mut last = None;
        for _ in 0..HOST_WRITE_ATTEMPTS {
            let Some(mut doc) = self.db.get_opt(&id).await.map_err(couch(what()))? else {
                // Deleted since the pass read it: nothing to move; the next pass sees it gone.
                return Ok(());
            };
            let mut image = doc
                .get("image")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            image.insert("version".into(), json!(w.image.version));
            if w.image.hold {
                image.insert("hold".into(), json!(true));
            } else {
                image.remove("hold");
            }
            doc["image"] = Value::Object(image);
            match self.db.put(&id, &doc).await {
                Ok(_) => return Ok(()),
                Err(CouchError::Conflict(b)) => last = Some(CouchError::Conflict(b)),
                Err(e) => return Err(couch(what())(e)),
            }
        }
        Err(couch(what())(
            last.unwrap_or(CouchError::Invalid("no attempt".into())),
        ))
    }

    /// Passes until the rollout is done or halted, `report` called with each decision
    /// and each change in why a host waits. Transient CouchDB failures are reported and
    /// waited out; anything else ends the run.
    pub async fn run(&self, mut report: impl FnMut(&str)) -> Result<Plan, DriverError> {
        let mut waiting: BTreeMap<String, String> = BTreeMap::new();
        let mut failing: Option<String> = None;
        loop {
            match self.pass().await {
                Ok(plan) => {
                    if failing.take().is_some() {
                        report("CouchDB answers again");
                    }
                    for e in &plan.events {
                        report(&e.to_string());
                    }
                    for (h, why) in &plan.waiting {
                        if waiting.get(h) != Some(why) {
                            report(&format!("wait {h}: {why}"));
                        }
                    }
                    waiting = plan.waiting.clone();
                    if plan.state() != RunState::Running {
                        return Ok(plan);
                    }
                }
                Err(e) if e.is_transient() => {
                    let why = e.to_string();
                    if failing.as_deref() != Some(why.as_str()) {
                        report(&format!(
                            "{why}; trying again every {:?}",
                            self.config.poll_interval
                        ));
                    }
                    failing = Some(why);
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }
}

/// Every host and status document of `db`.
pub async fn read_fleet(db: &Db) -> Result<Fleet, DriverError> {
    let hosts = db
        .docs_with_prefix("host:")
        .await
        .map_err(couch("reading the host documents"))?;
    let statuses = db
        .docs_with_prefix("status:")
        .await
        .map_err(couch("reading the status documents"))?;
    Ok(Fleet::from_documents(&hosts, &statuses))
}
