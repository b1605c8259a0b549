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

use crate::config::Config;
use crate::freeswitch::{FreeswitchLock, LazySystemd, SharedRunning};
use crate::reconcile::report::{now, Report};
use crate::reconcile::{Apply, Outcome, Progress, Wanted};
use ccnq_api::{DrainReport, ServiceAction, ServiceActionReport, ServiceState};
use ccnq_systemd::{ActiveState, JobResult, UnitInfo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The managed units' last known states, shared by the watch (which writes it), the API
/// and the status writer (which copies it into `status:<fqdn>`).
pub struct ServicesReport {
    units: Mutex<Vec<ServiceState>>,
    /// Woken on a change that belongs in the status document.
    report: Arc<Report>,
}

impl ServicesReport {
    pub fn new(managed: &[String], report: Arc<Report>) -> ServicesReport {
        ServicesReport {
            units: Mutex::new(
                managed
                    .iter()
                    .map(|name| ServiceState {
                        name: name.clone(),
                        load_state: "unknown".into(),
                        state: "unknown".into(),
                        ..ServiceState::default()
                    })
                    .collect(),
            ),
            report,
        }
    }

    pub fn snapshot(&self) -> Vec<ServiceState> {
        self.lock().clone()
    }

    /// Records what systemd said of `unit`; wakes the status writer when something an
    /// operator cares about changed (memory alone does not).
    pub fn set_info(&self, info: &UnitInfo) {
        let fresh = from_info(info);
        self.change(&info.name, |s| {
            let before = (
                &s.load_state,
                &s.state,
                &s.sub_state,
                s.main_pid,
                &s.result,
                &s.unmet_condition,
            );
            let changed = before
                != (
                    &fresh.load_state,
                    &fresh.state,
                    &fresh.sub_state,
                    fresh.main_pid,
                    &fresh.result,
                    &fresh.unmet_condition,
                );
            s.load_state = fresh.load_state.clone();
            s.state = fresh.state.clone();
            s.sub_state = fresh.sub_state.clone();
            s.since = fresh.since.clone();
            s.main_pid = fresh.main_pid;
            s.memory_bytes = fresh.memory_bytes;
            s.result = fresh.result.clone();
            s.unmet_condition = fresh.unmet_condition.clone();
            changed
        });
    }

    pub fn set_pending(&self, unit: &str, pending: Option<String>) {
        self.change(unit, |s| {
            let changed = s.pending != pending;
            s.pending = pending;
            changed
        });
    }

    pub fn set_desired(&self, unit: &str, desired: Option<String>) {
        self.change(unit, |s| {
            let changed = s.desired != desired;
            s.desired = desired;
            changed
        });
    }

    pub fn set_last_action(&self, unit: &str, line: String) {
        self.change(unit, |s| {
            s.last_action = Some(line);
            true
        });
    }

    /// Desired, pending and last action of `unit` laid over a fresh systemd reading.
    fn merged(&self, info: &UnitInfo) -> ServiceState {
        let mut out = from_info(info);
        if let Some(known) = self.lock().iter().find(|s| s.name == info.name) {
            out.desired = known.desired.clone();
            out.pending = known.pending.clone();
            out.last_action = known.last_action.clone();
        }
        out
    }

    fn change(&self, unit: &str, f: impl FnOnce(&mut ServiceState) -> bool) {
        let changed = {
            let mut units = self.lock();
            match units.iter_mut().find(|s| s.name == unit) {
                Some(s) => f(s),
                None => false,
            }
        };
        if changed {
            // `update` is how the status writer learns of a change; the configuration
            // report itself is left as it is.
            self.report.update(|_| {});
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ServiceState>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A unit as the API and the status document show it.
pub fn from_info(info: &UnitInfo) -> ServiceState {
    ServiceState {
        name: info.name.clone(),
        load_state: info.load_state.as_str().to_owned(),
        state: info.active_state.as_str().to_owned(),
        sub_state: info.sub_state.clone(),
        since: info.since_us.and_then(rfc3339_us),
        main_pid: info.main_pid,
        memory_bytes: info.memory_bytes,
        result: info.result.clone(),
        unmet_condition: info.unmet_condition.clone(),
        desired: None,
        pending: None,
        last_action: None,
    }
}

fn rfc3339_us(us: u64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Whether a unit counts as running for the desired state: a unit on its way up counts,
/// so that a start is never sent twice.
fn runs(state: &ActiveState) -> bool {
    matches!(
        state,
        ActiveState::Active
            | ActiveState::Activating
            | ActiveState::Reloading
            | ActiveState::Refreshing
    )
}

/// What the host document wants of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub unit: String,
    pub running: bool,
    /// Why the document's word was not followed as written, if it was not.
    pub note: Option<String>,
}

/// The desired state of FreeSWITCH and CouchDB from a valid host document.
///
/// `services.couchdb.enabled: false` is not followed: this daemon reads its document
/// through the local CouchDB, so stopping it would cut the host off from the very
/// document that could turn it back on. CouchDB stays running and the note says so
/// (docs/decisions.md).
pub fn desired(host: &ccnq_model::Host, freeswitch_unit: &str, couchdb_unit: &str) -> Vec<Desired> {
    vec![
        Desired {
            unit: freeswitch_unit.to_owned(),
            running: host.freeswitch_runs(),
            note: None,
        },
        Desired {
            unit: couchdb_unit.to_owned(),
            running: true,
            note: (!host.services.couchdb.enabled).then(|| {
                "services.couchdb.enabled is false, but ccnqd follows its host document \
                 through this CouchDB: it stays running"
                    .to_owned()
            }),
        },
    ]
}

/// The least actions that make the units' states (`actual`, by unit) what `wanted`
/// says: start what should run and does not, stop what runs and should not. A unit
/// systemd does not have (`None`) gets no action: there is nothing to start.
pub fn least_actions(
    wanted: &[Desired],
    actual: &HashMap<String, Option<ActiveState>>,
) -> Vec<(String, ServiceAction)> {
    wanted
        .iter()
        .filter_map(|d| {
            let state = actual.get(&d.unit)?.as_ref()?;
            match (d.running, runs(state)) {
                (true, false) => Some((d.unit.clone(), ServiceAction::Start)),
                (false, true) => Some((d.unit.clone(), ServiceAction::Stop)),
                _ => None,
            }
        })
        .collect()
}

/// How an action ended, for the HTTP status of the answer.
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
        let full = if name.ends_with(".service") {
            name.to_owned()
        } else {
            format!("{name}.service")
        };
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
        let password = match read_password(&self.esl.password_file) {
            Ok(p) => p,
            Err(e) => {
                out.detail = Some(e);
                return finish(out, None);
            }
        };
        let options = ccnq_esl::ConnectOptions {
            command_timeout: self.esl.command_timeout,
            ..Default::default()
        };
        let esl = match ccnq_esl::EslClient::connect(&self.esl.addr.to_string(), &password, options)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                out.detail = Some(format!(
                    "cannot reach FreeSWITCH's event socket at {}: {e}",
                    self.esl.addr
                ));
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

/// The event socket's password as ccnqd made it; never created here: a FreeSWITCH
/// ccnqd never configured does not know it.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the event-socket password {}: {e}",
            path.display()
        )
    })?;
    let password = text.lines().next().unwrap_or("").trim().to_owned();
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password)
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

/// Follows the managed units' states for as long as the daemon runs: every change is
/// logged and recorded (hence written to `status:<fqdn>`). A lost bus is retried.
pub async fn watch(services: Arc<Services>) {
    if services.managed.is_empty() {
        log::info!("no managed services ([services] managed is empty): nothing to watch");
        return;
    }
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let e = watch_once(&services).await;
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        log::warn!("watching the managed services: {e}; again in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn watch_once(services: &Services) -> String {
    let sd = match services.systemd.get().await {
        Ok(sd) => sd,
        Err(e) => return e,
    };
    let units: Vec<&str> = services.managed.iter().map(String::as_str).collect();
    // The watch first, then the readings: a change in between is not missed.
    let mut watch = match sd.watch(&units).await {
        Ok(w) => w,
        Err(e) => return e.to_string(),
    };
    for unit in &units {
        match sd.unit_info(unit).await {
            Ok(info) => {
                log::info!(unit = *unit; "{unit}: {} ({}), {}", info.active_state, info.sub_state, info.load_state);
                services.state.set_info(&info);
            }
            Err(e) => return e.to_string(),
        }
    }
    while let Some(change) = watch.recv().await {
        let unit = change.unit.as_str();
        let line = format!(
            "{unit}: {} ({}) -> {} ({})",
            change.old.active, change.old.sub, change.new.active, change.new.sub
        );
        if change.new.active == ActiveState::Failed {
            log::warn!(unit = unit, state = change.new.active.as_str(); "{line}");
        } else {
            log::info!(unit = unit, state = change.new.active.as_str(); "{line}");
        }
        match sd.unit_info(unit).await {
            Ok(info) => services.state.set_info(&info),
            Err(e) => log::warn!(unit = unit; "reading {unit} after a change: {e}"),
        }
    }
    "the bus connection closed".into()
}

/// The reconcile loop's apply step with the desired service states on top: after the
/// first apply of this daemon's life, the units are made what the configuration in force
/// wants (the image's preset starts FreeSWITCH even on a `server_only` host, and nothing
/// persistent can be changed in its read-only /etc). Later changes of `server_only` are
/// the planner's.
pub struct Enforce<A: Apply> {
    pub inner: A,
    pub services: Arc<Services>,
    pub running: SharedRunning,
    /// Set once the units were checked against a configuration in force.
    pub enforced: bool,
}

impl<A: Apply> Apply for Enforce<A> {
    async fn apply(&mut self, wanted: Wanted<'_>, progress: &Progress) -> Outcome {
        let outcome = self.inner.apply(wanted, progress).await;
        // The configuration in force after the attempt: the new one if it succeeded,
        // the last good one otherwise.
        let wants = {
            let running = self.running.read().unwrap_or_else(|p| p.into_inner());
            running.applied.as_ref().map(|r| {
                desired(
                    &r.validated.host,
                    &self.services.freeswitch_unit,
                    &self.services.couchdb_unit,
                )
            })
        };
        match wants {
            Some(wants) if !self.enforced => {
                self.enforced = self.services.enforce(&wants).await;
            }
            Some(wants) => {
                for d in &wants {
                    self.services.state.set_desired(
                        &d.unit,
                        Some(if d.running { "running" } else { "stopped" }.into()),
                    );
                }
            }
            None => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(doc: serde_json::Value) -> ccnq_model::Host {
        ccnq_model::validate(&doc, "sbc1.example.net")
            .expect("valid")
            .host
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "_id": "host:sbc1.example.net", "type": "host", "host": "sbc1.example.net",
            "sip_domain_name": "a.example.net",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    fn actual(pairs: &[(&str, Option<ActiveState>)]) -> HashMap<String, Option<ActiveState>> {
        pairs
            .iter()
            .map(|(u, s)| (u.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn server_only_wants_freeswitch_stopped_and_couchdb_running() {
        let d = desired(
            &host(base(serde_json::json!({"server_only": true}))),
            "freeswitch.service",
            "couchdb.service",
        );
        assert_eq!(
            d.iter()
                .map(|d| (d.unit.as_str(), d.running))
                .collect::<Vec<_>>(),
            [("freeswitch.service", false), ("couchdb.service", true)]
        );
        let d = desired(
            &host(base(
                serde_json::json!({"services": {"freeswitch": {"enabled": false}}}),
            )),
            "freeswitch.service",
            "couchdb.service",
        );
        assert!(!d[0].running);
        let d = desired(
            &host(base(serde_json::json!({}))),
            "fs.service",
            "db.service",
        );
        assert!(d[0].running && d[1].running && d[1].note.is_none());
    }

    #[test]
    fn couchdb_switched_off_stays_running_with_a_note() {
        let d = desired(
            &host(base(
                serde_json::json!({"services": {"couchdb": {"enabled": false}}}),
            )),
            "freeswitch.service",
            "couchdb.service",
        );
        assert!(d[1].running);
        assert!(d[1].note.as_deref().unwrap().contains("stays running"));
    }

    #[test]
    fn least_actions_start_what_should_run_and_stop_what_should_not() {
        let wanted = vec![
            Desired {
                unit: "fs.service".into(),
                running: false,
                note: None,
            },
            Desired {
                unit: "db.service".into(),
                running: true,
                note: None,
            },
        ];
        let a = least_actions(
            &wanted,
            &actual(&[
                ("fs.service", Some(ActiveState::Active)),
                ("db.service", Some(ActiveState::Failed)),
            ]),
        );
        assert_eq!(
            a,
            [
                ("fs.service".to_string(), ServiceAction::Stop),
                ("db.service".to_string(), ServiceAction::Start)
            ]
        );
        // Already right, on its way, or not installed: nothing.
        for states in [
            [Some(ActiveState::Inactive), Some(ActiveState::Active)],
            [Some(ActiveState::Failed), Some(ActiveState::Activating)],
            [None, None],
        ] {
            let a = least_actions(
                &wanted,
                &actual(&[
                    ("fs.service", states[0].clone()),
                    ("db.service", states[1].clone()),
                ]),
            );
            assert!(a.is_empty(), "{states:?}: {a:?}");
        }
    }

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
