//! The bundled services (FreeSWITCH, CouchDB) as systemd units the daemon owns: what
//! state they are in, what the host document wants of them, and the actions the local
//! API offers on them.
//!
//! Why one module: the watch, the desired state and the API actions all touch the same
//! units through the same systemd connection, and all must agree on three rules:
//! - only the units named in `[services] managed` are touched through the API;
//! - nothing that drops calls happens to FreeSWITCH without a drain first (unless an
//!   admin forces it), and never while an apply acts on FreeSWITCH (one lock, shared
//!   with [`crate::freeswitch::Freeswitch`]);
//! - every state change and every action is logged and lands in `status:<fqdn>`.
//!
//! What to do (the desired state, the least actions) is pure ([`desired`],
//! [`least_actions`]); doing it is [`Services::act`].

mod desired;
mod report;
mod watch;

use desired::runs;
pub use desired::{desired, least_actions, Desired};
pub use report::ServicesReport;
pub use watch::{watch, Enforce};

use crate::config::Config;
use crate::freeswitch::{FreeswitchLock, LazySystemd};
use crate::reconcile::report::{now, Report};
use ccnq_api::{DrainReport, ServiceAction, ServiceActionReport, ServiceState};
use ccnq_systemd::JobResult;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionEnd {
    /// The job ran and ended `done`.
    Done,
    /// The job ran and ended otherwise (`failed`, `timeout`, …): systemd's result is in
    /// the report.
    JobNotDone,
    /// systemd could not be reached.
    Unreachable,
    /// systemd refused the request (no such unit, wrong state…).
    Refused,
    /// No result within the daemon's own limit.
    TimedOut,
    /// FreeSWITCH runs but its calls could not be drained: nothing was done.
    DrainFailed,
}

/// How the daemon reaches FreeSWITCH's event socket for a drain.
struct Esl {
    addr: SocketAddr,
    password_file: PathBuf,
    command_timeout: Duration,
    drain_deadline: Duration,
    poll: Duration,
}

/// The managed units and the means to act on them.
pub struct Services {
    systemd: LazySystemd,
    managed: Vec<String>,
    freeswitch_unit: String,
    couchdb_unit: String,
    /// One per managed unit (and FreeSWITCH's, shared with the apply step): actions on
    /// a unit run one at a time.
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    esl: Esl,
    /// The configuration report, whose `pending` shows a drain in progress.
    report: Arc<Report>,
    /// Its state and reason before the drain, put back after the action.
    restore: Mutex<Option<(String, Option<String>)>>,
    pub state: Arc<ServicesReport>,
}

/// Between two `show channels count` while draining.
const DRAIN_POLL: Duration = Duration::from_millis(250);

impl Services {
    pub fn new(
        config: &Config,
        systemd: LazySystemd,
        freeswitch_lock: FreeswitchLock,
        report: Arc<Report>,
    ) -> Services {
        let managed = config.services.managed.clone();
        let freeswitch_unit = config.freeswitch.unit.clone();
        let mut locks: HashMap<String, Arc<tokio::sync::Mutex<()>>> = managed
            .iter()
            .map(|u| (u.clone(), Arc::default()))
            .collect();
        locks.insert(freeswitch_unit.clone(), freeswitch_lock);
        let couchdb_unit = config.services.couchdb_unit.clone();
        locks.entry(couchdb_unit.clone()).or_default();
        Services {
            systemd,
            state: Arc::new(ServicesReport::new(&managed, report.clone())),
            managed,
            freeswitch_unit,
            couchdb_unit,
            locks,
            esl: Esl {
                addr: config.freeswitch.event_socket,
                password_file: config.freeswitch.password_file.clone(),
                command_timeout: config.freeswitch.command_timeout,
                drain_deadline: config.freeswitch.drain_deadline,
                poll: DRAIN_POLL,
            },
            report,
            restore: Mutex::new(None),
        }
    }

    pub fn managed(&self) -> &[String] {
        &self.managed
    }

    /// The systemd connection, shared with the apply step.
    pub fn systemd(&self) -> &LazySystemd {
        &self.systemd
    }

    /// The lock the apply step takes while it acts on FreeSWITCH.
    pub fn freeswitch_lock(&self) -> FreeswitchLock {
        self.locks
            .get(&self.freeswitch_unit)
            .cloned()
            .unwrap_or_default()
    }

    /// The managed unit an API path names: `freeswitch` or `freeswitch.service`.
    /// `None` for anything not managed.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        let full = unit_name(name);
        self.managed
            .iter()
            .find(|m| **m == full)
            .map(String::as_str)
    }

    /// Every managed unit as systemd sees it now.
    pub async fn list(&self) -> Result<Vec<ServiceState>, String> {
        let sd = self.systemd.get().await?;
        let mut out = Vec::with_capacity(self.managed.len());
        for unit in &self.managed {
            let info = sd.unit_info(unit).await.map_err(|e| e.to_string())?;
            self.state.set_info(&info);
            out.push(self.state.merged(&info));
        }
        Ok(out)
    }

    /// Starts, stops or restarts `unit`, draining FreeSWITCH's calls first when the
    /// action would drop them (unless `force`), and says what happened. `origin` names
    /// who asked, for the log.
    pub async fn act(
        &self,
        unit: &str,
        action: ServiceAction,
        force: bool,
        origin: &str,
    ) -> (ActionEnd, ServiceActionReport) {
        let started = Instant::now();
        let lock = self.locks.get(unit).cloned().unwrap_or_default();
        let _exclusive = lock.lock().await;
        let waited = started.elapsed();
        log::info!(unit = unit; "{origin}: {action} {unit}{}", if force { " (forced: no drain)" } else { "" });
        let mut report = ServiceActionReport {
            unit: unit.to_owned(),
            action,
            forced: force,
            drain: None,
            job_result: None,
            error: None,
            ok: false,
            waited_ms: millis(waited),
            duration_ms: 0,
            after: None,
            summary: String::new(),
        };
        let end = self.act_locked(unit, action, force, &mut report).await;
        report.duration_ms = millis(started.elapsed());
        report.summary = summary(&report);
        match end {
            ActionEnd::Done => log::info!(unit = unit; "{origin}: {}", report.summary),
            _ => log::warn!(unit = unit; "{origin}: {}", report.summary),
        }
        self.state
            .set_last_action(unit, format!("{} {origin}: {}", now(), report.summary));
        if let Ok(sd) = self.systemd.get().await {
            if let Ok(info) = sd.unit_info(unit).await {
                self.state.set_info(&info);
                report.after = Some(self.state.merged(&info));
            }
        }
        (end, report)
    }

    /// Drains FreeSWITCH's calls, then reboots the host (into the boot entry an image
    /// upgrade placed). FreeSWITCH's lock is held throughout, so that neither an apply
    /// nor the API starts it taking calls again in between. `before_reboot` runs once
    /// the calls are drained, before the reboot is asked for (the upgrade path records
    /// it there). A drain that fails reboots nothing: the caller tries again later.
    pub async fn drain_and_reboot(
        &self,
        before_reboot: impl FnOnce(&DrainReport),
    ) -> Result<DrainReport, String> {
        let unit = self.freeswitch_unit.clone();
        let lock = self.locks.get(&unit).cloned().unwrap_or_default();
        let _exclusive = lock.lock().await;
        let sd = self.systemd.get().await?;
        let (drain, _client) = self.drain(sd, &unit).await;
        if drain.outcome == "failed" {
            return Err(format!(
                "FreeSWITCH's calls could not be drained ({}): not rebooting",
                drain.detail.as_deref().unwrap_or("no detail")
            ));
        }
        before_reboot(&drain);
        log::warn!("rebooting for an image upgrade (drain: {})", drain.outcome);
        sd.start("reboot.target")
            .await
            .map_err(|e| format!("asking systemd for reboot.target: {e}"))?;
        Ok(drain)
    }

    async fn act_locked(
        &self,
        unit: &str,
        action: ServiceAction,
        force: bool,
        report: &mut ServiceActionReport,
    ) -> ActionEnd {
        let sd = match self.systemd.get().await {
            Ok(sd) => sd,
            Err(e) => {
                report.error = Some(e);
                return ActionEnd::Unreachable;
            }
        };
        let mut esl = None;
        if unit == self.freeswitch_unit && action.drops_calls() && !force {
            let (drain, client) = self.drain(sd, unit).await;
            let failed = drain.outcome == "failed";
            report.drain = Some(drain);
            if failed {
                report.error = Some(
                    "FreeSWITCH's calls could not be drained, so nothing was done \
                     (an admin may force the action with ?force=true)"
                        .into(),
                );
                return ActionEnd::DrainFailed;
            }
            esl = client;
        }
        let job = match action {
            ServiceAction::Start => sd.start(unit).await,
            ServiceAction::Stop => sd.stop(unit).await,
            ServiceAction::Restart => sd.restart(unit).await,
        };
        self.clear_draining(unit);
        let end = match job {
            Ok(result) => {
                report.job_result = Some(result.as_str().to_owned());
                report.ok = result == JobResult::Done;
                if report.ok {
                    ActionEnd::Done
                } else {
                    ActionEnd::JobNotDone
                }
            }
            Err(e) => {
                report.error = Some(e.to_string());
                match e {
                    ccnq_systemd::Error::Timeout { .. } => ActionEnd::TimedOut,
                    ccnq_systemd::Error::Connect { .. }
                    | ccnq_systemd::Error::Bus { .. }
                    | ccnq_systemd::Error::Disconnected { .. } => ActionEnd::Unreachable,
                    _ => ActionEnd::Refused,
                }
            }
        };
        // A FreeSWITCH that was paused and is still the same process (the job failed or
        // was refused) would refuse calls forever: take calls again. A restarted or
        // stopped one forgot the pause with its memory.
        if let Some(esl) = esl {
            if end != ActionEnd::Done && esl.close_reason().is_none() {
                let still = sd
                    .unit_info(unit)
                    .await
                    .is_ok_and(|i| runs(&i.active_state));
                if still {
                    let line = match ccnq_apply::resume(&esl).await {
                        Ok(()) => "resumed inbound calls (the action did not take place)".into(),
                        Err(e) => format!("could not resume inbound calls: {}", e.reply_text()),
                    };
                    if let Some(d) = report.drain.as_mut() {
                        d.detail = Some(line);
                    }
                }
            }
        }
        end
    }

    /// Pauses inbound calls and waits until none is left or the deadline passes. The
    /// client is returned so a failed action can resume calls on it.
    async fn drain(
        &self,
        sd: &ccnq_systemd::Systemd,
        unit: &str,
    ) -> (DrainReport, Option<ccnq_esl::EslClient>) {
        let started = Instant::now();
        let deadline = self.esl.drain_deadline;
        let mut out = DrainReport {
            outcome: "failed".into(),
            calls_at_start: None,
            calls_left: None,
            deadline_secs: deadline.as_secs_f64(),
            duration_ms: 0,
            detail: None,
        };
        let finish = |mut out: DrainReport, client| {
            out.duration_ms = millis(started.elapsed());
            (out, client)
        };
        match sd.unit_info(unit).await {
            Ok(info) if !runs(&info.active_state) => {
                out.outcome = "not_running".into();
                out.detail = Some(format!("{unit} is {}: no call to drain", info.active_state));
                return finish(out, None);
            }
            Ok(_) => {}
            Err(e) => {
                out.detail = Some(e.to_string());
                return finish(out, None);
            }
        }
        let esl = match crate::event_socket::connect(
            self.esl.addr,
            &self.esl.password_file,
            self.esl.command_timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                out.detail = Some(e);
                return finish(out, None);
            }
        };
        let counts: Mutex<(Option<u64>, Option<u64>)> = Mutex::new((None, None));
        let saved = self.report.snapshot();
        let result = ccnq_apply::drain(&esl, deadline, self.esl.poll, |calls| {
            {
                let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                c.0.get_or_insert(calls);
                c.1 = Some(calls);
            }
            let what = draining(calls);
            log::info!(unit = unit; "{what}");
            self.state.set_pending(unit, Some(what.clone()));
            self.report.update(|r| {
                r.state = "pending".into();
                r.reason = Some(what);
            });
        })
        .await;
        self.pending_saved(saved.state, saved.reason);
        let (first, last) = *counts.lock().unwrap_or_else(|p| p.into_inner());
        out.calls_at_start = first;
        out.calls_left = last;
        match result {
            Ok(ccnq_apply::DrainOutcome::Drained) => out.outcome = "drained".into(),
            Ok(ccnq_apply::DrainOutcome::DeadlineReached { calls }) => {
                out.outcome = "deadline_reached".into();
                out.calls_left = Some(calls);
                out.detail = Some(format!(
                    "drain deadline of {} s reached with {calls} call(s) still up: proceeding, the action drops them",
                    deadline.as_secs_f64()
                ));
            }
            Err(e) => {
                out.detail = Some(e.to_string());
                self.clear_draining(unit);
                // Do not leave a FreeSWITCH that we could not drain refusing calls.
                let _ = ccnq_apply::resume(&esl).await;
            }
        }
        finish(out, Some(esl))
    }

    /// What the configuration report said before the drain, put back once it is over
    /// (unless something else wrote it since).
    fn pending_saved(&self, state: String, reason: Option<String>) {
        *self.restore.lock().unwrap_or_else(|p| p.into_inner()) = Some((state, reason));
    }

    fn clear_draining(&self, unit: &str) {
        self.state.set_pending(unit, None);
        let saved = self
            .restore
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((state, reason)) = saved {
            self.report.update(|r| {
                if r.state == "pending"
                    && r.reason
                        .as_deref()
                        .is_some_and(|w| w.starts_with("draining"))
                {
                    r.state = state;
                    r.reason = reason;
                }
            });
        }
    }

    /// Makes the units what `wanted` says, with the least actions; returns false when
    /// systemd could not be asked (so the caller tries again later).
    pub async fn enforce(&self, wanted: &[Desired]) -> bool {
        for d in wanted {
            self.state.set_desired(
                &d.unit,
                Some(if d.running { "running" } else { "stopped" }.into()),
            );
            if let Some(note) = &d.note {
                log::warn!(unit = d.unit.as_str(); "{note}");
            }
        }
        let sd = match self.systemd.get().await {
            Ok(sd) => sd,
            Err(e) => {
                log::warn!("desired service states not enforced: {e}");
                return false;
            }
        };
        let mut actual = HashMap::new();
        for d in wanted {
            match sd.unit_info(&d.unit).await {
                Ok(info) => {
                    let known = info.load_state != ccnq_systemd::LoadState::Absent;
                    if !known {
                        log::warn!(unit = d.unit.as_str(); "{} is not installed on this host: it cannot be {}", d.unit, if d.running { "started" } else { "stopped" });
                    }
                    actual.insert(d.unit.clone(), known.then(|| info.active_state.clone()));
                }
                Err(e) => {
                    log::warn!("desired service states not enforced: {e}");
                    return false;
                }
            }
        }
        let actions = least_actions(wanted, &actual);
        if actions.is_empty() {
            log::info!("services already as the host document wants them");
        }
        let mut reached = true;
        for (unit, action) in actions {
            let (end, _) = self.act(&unit, action, false, "desired state").await;
            reached &= end != ActionEnd::Unreachable;
        }
        reached
    }
}

/// `pending` as the status shows it.
fn draining(calls: u64) -> String {
    format!(
        "draining ({calls} call{})",
        if calls == 1 { "" } else { "s" }
    )
}

/// A unit's full name: `freeswitch` is `freeswitch.service`.
pub fn unit_name(name: &str) -> String {
    if name.ends_with(".service") {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One line: what was asked, the drain, systemd's answer, how long.
fn summary(r: &ServiceActionReport) -> String {
    let mut parts = vec![format!("{} {}", r.action, r.unit)];
    if r.forced {
        parts.push("forced, no drain".into());
    }
    if let Some(d) = &r.drain {
        parts.push(match d.outcome.as_str() {
            "drained" => format!(
                "drained {} call(s) in {} ms",
                d.calls_at_start.unwrap_or(0),
                d.duration_ms
            ),
            "deadline_reached" => format!(
                "drain deadline reached with {} call(s) up",
                d.calls_left.unwrap_or(0)
            ),
            "not_running" => "not running: nothing to drain".into(),
            _ => format!("drain failed: {}", d.detail.as_deref().unwrap_or("unknown")),
        });
    }
    match (&r.job_result, &r.error) {
        (Some(result), _) => parts.push(format!("job {result}")),
        (None, Some(e)) => parts.push(e.clone()),
        (None, None) => {}
    }
    parts.push(format!("{} ms", r.duration_ms));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_with_or_without_the_suffix_and_only_when_managed() {
        let config = crate::config::Config::parse(
            "host = \"sbc1.example.net\"\n[api]\nadmin_ca = \"/x\"\n",
            std::path::Path::new("/t.toml"),
        )
        .unwrap();
        let report = Arc::new(Report::new(None));
        let s = Services::new(&config, LazySystemd::new(None), Arc::default(), report);
        assert_eq!(s.resolve("freeswitch"), Some("freeswitch.service"));
        assert_eq!(s.resolve("couchdb.service"), Some("couchdb.service"));
        assert_eq!(s.resolve("ssh"), None);
        assert_eq!(s.resolve("freeswitch.socket"), None);
    }

    #[test]
    fn summaries_carry_the_drain_and_the_job_result() {
        let mut r = ServiceActionReport {
            unit: "freeswitch.service".into(),
            action: ServiceAction::Restart,
            forced: false,
            drain: Some(DrainReport {
                outcome: "deadline_reached".into(),
                calls_at_start: Some(5),
                calls_left: Some(2),
                deadline_secs: 1.0,
                duration_ms: 1000,
                detail: None,
            }),
            job_result: Some("done".into()),
            error: None,
            ok: true,
            waited_ms: 0,
            duration_ms: 1200,
            after: None,
            summary: String::new(),
        };
        let s = summary(&r);
        assert!(s.contains("deadline reached with 2 call(s)"), "{s}");
        assert!(s.contains("job done"), "{s}");
        r.drain = None;
        r.job_result = None;
        r.error = Some("systemd said no".into());
        assert!(summary(&r).contains("systemd said no"));
    }
}
