//! Carries a [`Plan`] out over FreeSWITCH's event socket and systemd, checking every
//! reply, because FreeSWITCH's answers cannot be taken at their word: `reloadxml` says
//! `+OK` when the XML does not parse, `sofia profile X start` says it started a profile
//! whose bind then fails, `restart` and `stop` are refused within 10 s of a profile's
//! start. The rules (spec "What a change must cost"):
//!
//! - What runs is recorded around the steps, not with the files: the revision is in
//!   doubt ([`FileStore::begin`]) before the first step is sent, and applied
//!   ([`FileStore::confirm`]) only once the last one succeeded, so a daemon killed
//!   half-way knows, when it starts again, that this revision may be partly in force and
//!   plans from that.
//! - Files: the whole new tree is installed as one generation ([`FileStore::install`], an
//!   atomic swap), whatever the plan's file list (that list is for operators).
//! - `reloadxml` succeeds only on `+OK [Success]`. On **any** failure the files go back
//!   to the last good generation and `reloadxml` is sent again (and `reloadacl`, if the
//!   new ACLs were loaded), the failure is reported with the step, the action and
//!   FreeSWITCH's own words, and nothing further from the plan is sent.
//! - A profile `stop`/`restart` refused as too young is retried after the wait FreeSWITCH
//!   names, a bounded number of times; after `start`/`restart` the profile must be seen
//!   `RUNNING` on its address in `sofia xmlstatus` before the deadline.
//! - A drain pauses inbound calls and waits for them to end or for the deadline, then
//!   the plan goes on (the record says if calls were left). Inbound calls are resumed at
//!   the end unless FreeSWITCH was restarted or stopped since (the pause lives in the
//!   process's memory: a restarted FreeSWITCH takes calls again by itself), including
//!   after a failure.
//! - When FreeSWITCH is not running, event-socket steps are skipped (it reads the files
//!   when it starts) and the records say so.
//! - FreeSWITCH gives its reasons only in its log (a bind that fails: `Error Creating SIP
//!   UA for profile: …`), so the applier's connection asks for its error lines (`log 3`),
//!   and a profile that is not confirmed is reported with FreeSWITCH's own words about it.
//!
//! The daemon owns an [`Applier`] and calls [`Applier::apply`] for each revision; what it
//! did comes back as an [`ApplyReport`] for the status document.

use crate::drain::{self, DrainOutcome};
use crate::files::{FileStore, FilesError};
use ccnq_esl::{CommandError, ConnectOptions, EslClient, EslError, ProfileAction, Received};
use ccnq_freeswitch::render::{EVENT_SOCKET_IP, EVENT_SOCKET_PORT};
use ccnq_freeswitch::{Action, Plan, Rendering, Step, SystemdJob, FREESWITCH_UNIT};
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// What the applier needs from systemd: run a job on a unit and await its result, and
/// tell whether a unit runs. Implemented for [`ccnq_systemd::Systemd`].
pub trait Services: Send + Sync {
    /// Runs `job` on `unit` and waits for it to finish. `Ok` carries systemd's job result,
    /// `"done"` on success (`"failed"`, `"timeout"`, … otherwise); `Err` when the job
    /// could not be run at all.
    fn job(
        &self,
        unit: &str,
        job: SystemdJob,
    ) -> impl Future<Output = Result<String, String>> + Send;
    /// Whether `unit` is running (active or reloading). An absent unit is not running.
    fn is_active(&self, unit: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

impl Services for ccnq_systemd::Systemd {
    async fn job(&self, unit: &str, job: SystemdJob) -> Result<String, String> {
        // An image built without FreeSWITCH has no unit file for it: stopping or disabling
        // what is not installed leaves it as asked; starting it cannot work, and says why.
        let info = self.unit_info(unit).await.map_err(|e| e.to_string())?;
        if info.load_state == ccnq_systemd::LoadState::Absent {
            return match job {
                SystemdJob::Stop | SystemdJob::Disable => Ok("done".to_owned()),
                _ => Err(format!("{unit} is not installed on this host")),
            };
        }
        let done = |r: ccnq_systemd::JobResult| r.as_str().to_owned();
        match job {
            SystemdJob::Restart => self.restart(unit).await.map(done),
            SystemdJob::Start => self.start(unit).await.map(done),
            SystemdJob::Stop => self.stop(unit).await.map(done),
            SystemdJob::Enable => match self.enable(&[unit]).await {
                Ok(o) if !o.carries_install_info => {
                    return Err(format!(
                        "{unit} has no [Install] section: it cannot be enabled"
                    ))
                }
                Ok(_) => Ok("done".to_owned()),
                Err(e) => Err(e),
            },
            SystemdJob::Disable => self.disable(&[unit]).await.map(|_| "done".to_owned()),
        }
        .map_err(|e| e.to_string())
    }

    async fn is_active(&self, unit: &str) -> Result<bool, String> {
        use ccnq_systemd::{ActiveState, LoadState};
        let info = self.unit_info(unit).await.map_err(|e| e.to_string())?;
        Ok(info.load_state != LoadState::Absent
            && matches!(
                info.active_state,
                ActiveState::Active | ActiveState::Reloading
            ))
    }
}

/// How the applier reaches FreeSWITCH and how long it waits.
#[derive(Clone)]
pub struct ApplyOptions {
    /// The event socket (`127.0.0.1:8021` on the appliance).
    pub esl_addr: SocketAddr,
    /// Its password (the one rendered into `event_socket.conf.xml`).
    pub esl_password: String,
    /// Per event-socket command, from sending to the reply.
    pub command_timeout: Duration,
    /// How long a started or restarted profile has to show `RUNNING` on its address, and
    /// a started FreeSWITCH to open its event socket.
    pub confirm_deadline: Duration,
    /// How long a drain waits for calls to end before the plan goes on anyway.
    pub drain_deadline: Duration,
    /// Between two polls (`sofia xmlstatus`, `show channels count`, connection attempts).
    pub poll_interval: Duration,
    /// How many times a profile `stop`/`restart` refused as too young is retried.
    pub profile_retries: u32,
    /// FreeSWITCH's systemd unit.
    pub unit: String,
}

impl ApplyOptions {
    /// The appliance's settings: event socket on loopback, 30 s per command, 15 s to
    /// confirm, polls every 250 ms, 3 retries, `freeswitch.service`.
    pub fn new(esl_password: impl Into<String>, drain_deadline: Duration) -> ApplyOptions {
        ApplyOptions {
            esl_addr: SocketAddr::new(
                EVENT_SOCKET_IP.parse().expect("a literal address"),
                EVENT_SOCKET_PORT,
            ),
            esl_password: esl_password.into(),
            command_timeout: Duration::from_secs(30),
            confirm_deadline: Duration::from_secs(15),
            drain_deadline,
            poll_interval: Duration::from_millis(250),
            profile_retries: 3,
            unit: FREESWITCH_UNIT.to_owned(),
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("esl_addr", &self.esl_addr)
            .field("esl_password", &"<redacted>")
            .field("command_timeout", &self.command_timeout)
            .field("confirm_deadline", &self.confirm_deadline)
            .field("drain_deadline", &self.drain_deadline)
            .field("poll_interval", &self.poll_interval)
            .field("profile_retries", &self.profile_retries)
            .field("unit", &self.unit)
            .finish()
    }
}

/// What an apply is waiting for, while it waits (for the status document's `pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "waiting_for", rename_all = "snake_case")]
pub enum Progress {
    /// Inbound calls are paused; `calls` are still up.
    Draining {
        /// `show channels count` now.
        calls: u64,
    },
    /// FreeSWITCH refused to stop/restart `profile` within 10 s of its start; retrying in
    /// `seconds`.
    WaitingForProfile {
        /// The sofia profile.
        profile: String,
        /// FreeSWITCH's "Please wait N seconds".
        seconds: u64,
    },
}

/// The number operators see for the plan step at `index` in [`Plan::steps`]: 1-based, as
/// `ccnqctl config plan` lists the steps. The journal, the failure reason and the
/// serialized records all use it, so the three never disagree; only the Rust fields hold
/// the 0-based index.
pub fn step_number(index: usize) -> usize {
    index + 1
}

fn serialize_step<S: serde::Serializer>(index: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(step_number(*index) as u64)
}

fn serialize_opt_step<S: serde::Serializer>(
    index: &Option<usize>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match index {
        Some(i) => s.serialize_some(&step_number(*i)),
        None => s.serialize_none(),
    }
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step done and checked.
    Ok,
    /// Step `step` (index into the plan's steps) failed; the files are back on the last
    /// good generation and nothing after it was sent.
    Failed {
        /// Index into [`Plan::steps`]; serialized as its [`step_number`].
        #[serde(serialize_with = "serialize_step")]
        step: usize,
        /// The step's description.
        action: String,
        /// FreeSWITCH's own words where it answered, else what went wrong.
        reason: String,
    },
}

impl std::fmt::Display for Outcome {
    /// `ok`, or `step 4 (reloadxml) failed: <FreeSWITCH's words>`: the journal and the
    /// status document's reason both say this.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Failed {
                step,
                action,
                reason,
            } => write!(f, "step {} ({action}) failed: {reason}", step_number(*step)),
        }
    }
}

/// One thing the applier did (or skipped), for the status document and the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    /// The plan step it belongs to (index into [`Plan::steps`], serialized as its
    /// [`step_number`]); `None` for the rollback and the resume that follow a failure or
    /// a drain.
    #[serde(serialize_with = "serialize_opt_step")]
    pub step: Option<usize>,
    /// What it is, for operators.
    pub description: String,
    /// The event-socket command or systemd job sent, if any.
    pub command: Option<String>,
    /// The answer (FreeSWITCH's text, the systemd job result, the generation installed).
    pub reply: Option<String>,
    /// Whether it did what it should.
    pub ok: bool,
    /// Wall time it took, waits and retries included.
    pub duration_ms: u64,
    /// Anything an operator should know: skipped and why, retries, a drain cut short.
    pub note: Option<String>,
}

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Success, or the step that failed and why.
    pub outcome: Outcome,
    /// Every action, in order, rollback included.
    pub actions: Vec<ActionRecord>,
}

impl ApplyReport {
    /// True when every step succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// Carries plans out for one host; owns its [`FileStore`].
pub struct Applier<S: Services> {
    store: FileStore,
    services: S,
    options: ApplyOptions,
}

impl<S: Services> Applier<S> {
    /// An applier working on `store`, reaching systemd through `services`.
    pub fn new(store: FileStore, services: S, options: ApplyOptions) -> Self {
        Applier {
            store,
            services,
            options,
        }
    }

    /// The installed generations (what runs, for the planner's next `running`).
    pub fn store(&self) -> &FileStore {
        &self.store
    }

    /// The options in force.
    pub fn options(&self) -> &ApplyOptions {
        &self.options
    }

    /// Records `document` (revision `rev`) as applied without a step: for a plan that is
    /// empty because it renders as what runs. Nothing is written when it is already the
    /// revision applied and nothing is in doubt.
    pub fn confirm_unchanged(&mut self, document: &Value, rev: &str) -> Result<(), FilesError> {
        let same = self.store.applied().is_some_and(|a| a.rev == rev);
        if same && self.store.in_doubt().is_empty() {
            return Ok(());
        }
        self.store.confirm(document, rev)
    }

    /// Carries `plan` (from what may be running to `new`) out. `rev` is in doubt from
    /// before the first step and, once the last one succeeded, `document` is recorded as
    /// applied ([`FileStore::applied`]): what a restarted daemon plans from. `progress` is
    /// called while the apply waits (drain, profile age).
    pub async fn apply(
        &mut self,
        plan: &Plan,
        new: &Rendering,
        document: &Value,
        rev: &str,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> ApplyReport {
        if plan.is_empty() {
            // Nothing to send, but the revision is the one applied from now on.
            if let Err(e) = self.confirm_unchanged(document, rev) {
                log::error!(
                    "rev {rev} renders as what runs, but it cannot be recorded as applied: {e}"
                );
            }
            return ApplyReport {
                outcome: Outcome::Ok,
                actions: Vec::new(),
            };
        }
        let started = Instant::now();
        let mut run = Run {
            generation_before: self.store.current_generation(),
            store: &mut self.store,
            services: &self.services,
            options: &self.options,
            progress,
            esl: None,
            log: None,
            just_started: false,
            active: false,
            paused: false,
            acl_reloaded: false,
            records: Vec::new(),
        };
        run.active = match run.services.is_active(&run.options.unit).await {
            Ok(a) => a,
            Err(e) => {
                let reason = format!("cannot tell whether {} runs: {e}", run.options.unit);
                log::warn!("apply of rev {rev} not started: {reason}");
                return not_started(plan, reason);
            }
        };
        // Durable before anything is sent: from the first step on, this revision may be
        // partly in force, and a restarted daemon must plan from that.
        if let Err(e) = run.store.begin(document, rev) {
            let reason = format!("cannot record that rev {rev} is being applied: {e}");
            log::error!("apply of rev {rev} not started: {reason}");
            return not_started(plan, reason);
        }
        let mut outcome = Outcome::Ok;
        for (i, step) in plan.steps.iter().enumerate() {
            if let Err(reason) = run.step(i, step, new, document, rev).await {
                outcome = Outcome::Failed {
                    step: i,
                    action: step.description.clone(),
                    reason,
                };
                log::warn!("apply of rev {rev}: {outcome}");
                run.roll_back().await;
                break;
            }
        }
        run.resume_if_paused().await;
        if outcome == Outcome::Ok {
            run.record_applied(document, rev);
        }
        log::info!(
            "apply of rev {rev}: {} in {} ms ({} actions)",
            match &outcome {
                Outcome::Ok => "ok".to_owned(),
                Outcome::Failed { step, .. } => format!("failed at step {}", step_number(*step)),
            },
            started.elapsed().as_millis(),
            run.records.len()
        );
        ApplyReport {
            outcome,
            actions: run.records,
        }
    }
}

/// The report of an apply given up before its first step, nothing sent or installed:
/// the failure is that step's.
fn not_started(plan: &Plan, reason: String) -> ApplyReport {
    ApplyReport {
        outcome: Outcome::Failed {
            step: 0,
            action: plan.steps[0].description.clone(),
            reason,
        },
        actions: Vec::new(),
    }
}

/// An event-socket command the applier sends and checks.
#[derive(Clone, Copy)]
enum Command<'a> {
    ReloadXml,
    ReloadAcl,
    Profile(&'a str, ProfileAction),
}

impl Command<'_> {
    fn text(&self) -> String {
        match self {
            Command::ReloadXml => "reloadxml".into(),
            Command::ReloadAcl => "reloadacl".into(),
            Command::Profile(p, a) => format!("sofia profile {p} {}", a.as_str()),
        }
    }

    async fn send(&self, esl: &EslClient) -> Result<Answer, EslError> {
        Ok(match self {
            Command::ReloadXml => Answer::from(esl.reloadxml().await?),
            Command::ReloadAcl => Answer::from(esl.reloadacl().await?),
            Command::Profile(p, a) => Answer::from(esl.sofia_profile(p, *a).await?),
        })
    }
}

/// FreeSWITCH's text and its meaning, whatever the command.
struct Answer {
    body: String,
    error: Option<CommandError>,
}

impl<T> From<ccnq_esl::Outcome<T>> for Answer {
    fn from(o: ccnq_esl::Outcome<T>) -> Self {
        Answer {
            body: o.response.body,
            error: o.result.err(),
        }
    }
}

/// FreeSWITCH's words, one line per line, without the trailing newline.
fn words(body: &str) -> String {
    body.trim_end_matches('\n').to_owned()
}

/// Whether `text` names the sofia profile `profile` (as a whole name: `test` is not
/// named by `test-ingress`).
fn names(text: &str, profile: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    text.match_indices(profile)
        .any(|(at, _)| !text[..at].ends_with(part) && !text[at + profile.len()..].starts_with(part))
}

/// A log line's message: FreeSWITCH writes `<date> <time> <idle %> [LEVEL] <file>:<line>
/// <message>`; what follows the source position, or the whole line if it is not there.
fn log_words(text: &str) -> String {
    let text = text.trim();
    let after_level = text.split_once("] ").map_or(text, |(_, rest)| rest);
    match after_level.split_once(' ') {
        Some((position, message)) if position.contains(".c:") => message.trim().to_owned(),
        _ => after_level.to_owned(),
    }
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

const NOT_RUNNING: &str =
    "skipped: FreeSWITCH is not running (it reads the installed files when it starts)";

/// One apply in progress.
struct Run<'a, S: Services> {
    store: &'a mut FileStore,
    services: &'a S,
    options: &'a ApplyOptions,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
    esl: Option<EslClient>,
    /// FreeSWITCH's error log lines on `esl` (`log 3`), when it accepted to send them.
    log: Option<tokio::sync::mpsc::Receiver<Received>>,
    /// FreeSWITCH was (re)started by this apply: its socket may take a moment to open.
    just_started: bool,
    /// Whether FreeSWITCH runs, as far as this apply knows.
    active: bool,
    /// Inbound calls paused by this apply and not yet resumed (or reset by a restart).
    paused: bool,
    /// The new ACLs were loaded: a rollback must load the old ones again.
    acl_reloaded: bool,
    generation_before: Option<u64>,
    records: Vec<ActionRecord>,
}

impl<S: Services> Run<'_, S> {
    fn record(&mut self, r: ActionRecord) {
        log::info!(
            "apply {}{}: command {:?}, reply {:?}, {} ms, {}{}",
            r.step
                .map_or("rollback".into(), |s| format!("step {}", step_number(s))),
            format_args!(" ({})", r.description),
            r.command.as_deref().unwrap_or("-"),
            r.reply.as_deref().unwrap_or("-"),
            r.duration_ms,
            if r.ok { "ok" } else { "FAILED" },
            r.note
                .as_deref()
                .map_or(String::new(), |n| format!(" — {n}")),
        );
        self.records.push(r);
    }

    fn skipped(&mut self, i: usize, step: &Step, why: &str) {
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: None,
            reply: None,
            ok: true,
            duration_ms: 0,
            note: Some(why.to_owned()),
        });
    }

    /// Connects if there is no live connection. Right after this apply started
    /// FreeSWITCH, keeps trying until the confirm deadline.
    async fn connect(&mut self) -> Result<&EslClient, EslError> {
        if self
            .esl
            .as_ref()
            .is_some_and(|c| c.close_reason().is_none())
        {
            return Ok(self.esl.as_ref().expect("checked above"));
        }
        self.esl = None;
        let opts = ConnectOptions {
            command_timeout: self.options.command_timeout,
            ..ConnectOptions::default()
        };
        let addr = self.options.esl_addr.to_string();
        let until = Instant::now()
            + if self.just_started {
                self.options.confirm_deadline
            } else {
                Duration::ZERO
            };
        loop {
            match EslClient::connect(&addr, &self.options.esl_password, opts.clone()).await {
                Ok(c) => {
                    // Only for the words of a failure: without them the apply goes on.
                    self.log = match c.command("log 3").await {
                        Ok(r) if r.is_ok() => c.take_events(),
                        _ => None,
                    };
                    return Ok(self.esl.insert(c));
                }
                Err(e) if !e.is_permanent() && Instant::now() < until => {
                    tokio::time::sleep(self.options.poll_interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn step(
        &mut self,
        i: usize,
        step: &Step,
        new: &Rendering,
        document: &Value,
        rev: &str,
    ) -> Result<(), String> {
        match &step.action {
            Action::WriteFiles { .. } | Action::ReplaceFiles { .. } => {
                self.install(i, step, new, document, rev)
            }
            Action::ReloadXml => self.command(i, step, Command::ReloadXml).await,
            Action::ReloadAcl => {
                self.command(i, step, Command::ReloadAcl).await?;
                self.acl_reloaded = true;
                Ok(())
            }
            Action::RescanProfile { profile } => {
                self.command(i, step, Command::Profile(profile, ProfileAction::Rescan))
                    .await
            }
            Action::StartProfile { profile, .. } => {
                self.command(i, step, Command::Profile(profile, ProfileAction::Start))
                    .await
            }
            Action::StopProfile { profile } => {
                self.command(i, step, Command::Profile(profile, ProfileAction::Stop))
                    .await
            }
            Action::RestartProfile { profile, .. } => {
                self.command(i, step, Command::Profile(profile, ProfileAction::Restart))
                    .await
            }
            Action::ConfirmProfile { profile, bind } => self.confirm(i, step, profile, *bind).await,
            Action::Drain => self.drain(i, step).await,
            Action::RestartFreeswitch
            | Action::StopFreeswitch
            | Action::StartFreeswitch
            | Action::EnableFreeswitch
            | Action::DisableFreeswitch => self.systemd(i, step).await,
            Action::Upgrade { .. } => {
                self.skipped(
                    i,
                    step,
                    "handed to the upgrade path, which runs beside applies: GET /v1/upgrade and the status's upgrade part say where it stands",
                );
                Ok(())
            }
        }
    }

    fn install(
        &mut self,
        i: usize,
        step: &Step,
        new: &Rendering,
        document: &Value,
        rev: &str,
    ) -> Result<(), String> {
        let started = Instant::now();
        let result = self.store.install(&new.tree, document, rev);
        let (reply, ok, reason) = match &result {
            Ok(n) => (format!("generation {n}"), true, None),
            Err(e) => (e.to_string(), false, Some(e.to_string())),
        };
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: None,
            reply: Some(reply),
            ok,
            duration_ms: millis(started),
            note: Some(format!(
                "{} files installed as a whole at {}",
                new.tree.len(),
                self.store.link_path().display()
            )),
        });
        match reason {
            None => Ok(()),
            Some(r) => Err(r),
        }
    }

    /// Sends one command and checks its answer. `stop`/`restart` refused as too young
    /// are retried after the wait FreeSWITCH names; `stop` of a profile that does not
    /// run has nothing to do.
    async fn command(&mut self, i: usize, step: &Step, cmd: Command<'_>) -> Result<(), String> {
        if !self.active {
            self.skipped(i, step, NOT_RUNNING);
            return Ok(());
        }
        let started = Instant::now();
        let text = cmd.text();
        let mut waits = Vec::new();
        let answer = loop {
            // No answer at all (no connection, or it broke): recorded with the reason.
            let sent = match self.connect().await {
                Ok(esl) => cmd.send(esl).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let answer = match sent {
                Ok(a) => a,
                Err(reason) => {
                    self.record(ActionRecord {
                        step: Some(i),
                        description: step.description.clone(),
                        command: Some(text),
                        reply: None,
                        ok: false,
                        duration_ms: millis(started),
                        note: Some(reason.clone()),
                    });
                    return Err(reason);
                }
            };
            match (&answer.error, cmd) {
                (
                    Some(CommandError::ProfileTooYoung { wait_seconds, .. }),
                    Command::Profile(profile, _),
                ) if (waits.len() as u32) < self.options.profile_retries => {
                    let seconds = u64::from(*wait_seconds);
                    waits.push(seconds);
                    (self.progress)(Progress::WaitingForProfile {
                        profile: profile.to_owned(),
                        seconds,
                    });
                    log::info!("{text}: {}; retrying in {seconds} s", words(&answer.body));
                    // FreeSWITCH counts whole seconds: a little margin avoids a second
                    // refusal for the fraction it rounded away.
                    tokio::time::sleep(Duration::from_secs(seconds) + Duration::from_millis(250))
                        .await;
                }
                _ => break answer,
            }
        };
        let mut note = (!waits.is_empty()).then(|| {
            format!(
                "refused {} time(s) within 10 s of the profile's start; waited {} s",
                waits.len(),
                waits.iter().sum::<u64>()
            )
        });
        let ok = match (&answer.error, cmd) {
            (None, _) => true,
            // The profile is already not running: what `stop` is for holds.
            (
                Some(CommandError::InvalidProfile { .. }),
                Command::Profile(_, ProfileAction::Stop),
            ) => {
                note = Some("the profile was not running: nothing to stop".into());
                true
            }
            (Some(_), _) => false,
        };
        let reply = words(&answer.body);
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: Some(text),
            reply: Some(reply.clone()),
            ok,
            duration_ms: millis(started),
            note,
        });
        if ok {
            Ok(())
        } else {
            Err(reply)
        }
    }

    /// Polls `sofia xmlstatus` until `profile` is `RUNNING` on `bind`: `start` answers
    /// success even when the bind fails, and `restart` returns before it is done.
    async fn confirm(
        &mut self,
        i: usize,
        step: &Step,
        profile: &str,
        bind: SocketAddr,
    ) -> Result<(), String> {
        if !self.active {
            self.skipped(i, step, NOT_RUNNING);
            return Ok(());
        }
        let started = Instant::now();
        let until = started + self.options.confirm_deadline;
        let address = bind.to_string();
        let mut polls = 0u32;
        let result: Result<String, String> = loop {
            let esl = match self.connect().await {
                Ok(c) => c,
                Err(e) => break Err(e.to_string()),
            };
            let o = match esl.sofia_xmlstatus().await {
                Ok(o) => o,
                Err(e) => break Err(e.to_string()),
            };
            polls += 1;
            let seen = match &o.result {
                Ok(status) if status.is_running_at(profile, &address) => {
                    break Ok(format!("{profile} RUNNING on {address}"));
                }
                Ok(status) => match status.profile(profile) {
                    None => format!("{profile} is not listed in sofia xmlstatus"),
                    Some(e) => format!("{profile} is {} at {}", e.state, e.data),
                },
                // An answer that is not the status list: FreeSWITCH's words end it.
                Err(_) => break Err(words(&o.response.body)),
            };
            if Instant::now() >= until {
                let words = self
                    .freeswitch_said(profile)
                    .map_or(String::new(), |w| format!("; FreeSWITCH: {w}"));
                break Err(format!(
                    "{profile} not RUNNING on {address} within {} s: {seen}{words}",
                    self.options.confirm_deadline.as_secs_f32()
                ));
            }
            tokio::time::sleep(self.options.poll_interval).await;
        };
        let (ok, reply) = match &result {
            Ok(r) => (true, r.clone()),
            Err(r) => (false, r.clone()),
        };
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: Some("sofia xmlstatus".into()),
            reply: Some(reply),
            ok,
            duration_ms: millis(started),
            note: Some(format!("{polls} poll(s)")),
        });
        result.map(|_| ())
    }

    /// The first error line FreeSWITCH logged about `profile` on this connection so far
    /// (e.g. `Error Creating SIP UA for profile: X (sip:mod_sofia@192.0.2.1:5500;…)
    /// ATTEMPT 1 (RETRY IN 5 SEC)`), without its time stamp and source position.
    fn freeswitch_said(&mut self, profile: &str) -> Option<String> {
        let log = self.log.as_mut()?;
        let mut found = None;
        while let Ok(r) = log.try_recv() {
            if let (Received::Log(line), None) = (r, &found) {
                if names(&line.text, profile) {
                    found = Some(log_words(&line.text));
                }
            }
        }
        found
    }

    async fn drain(&mut self, i: usize, step: &Step) -> Result<(), String> {
        if !self.active {
            self.skipped(
                i,
                step,
                "skipped: FreeSWITCH is not running: no call to drain",
            );
            return Ok(());
        }
        let started = Instant::now();
        let deadline = self.options.drain_deadline;
        let poll = self.options.poll_interval;
        let progress = self.progress;
        let result = match self.connect().await {
            Err(e) => Err(e.to_string()),
            Ok(esl) => {
                // Set before the pause is even sent: if its answer is lost, resuming is
                // still right.
                let outcome = drain::drain(esl, deadline, poll, |calls| {
                    progress(Progress::Draining { calls })
                })
                .await;
                self.paused = true;
                outcome.map_err(|e| e.reply_text())
            }
        };
        let (ok, reply, note) = match &result {
            Ok(DrainOutcome::Drained) => (true, "0 calls".to_owned(), None),
            Ok(DrainOutcome::DeadlineReached { calls }) => (
                true,
                format!("{calls} calls"),
                Some(format!(
                    "drain deadline of {} s reached with {calls} call(s) still up: proceeding, what follows drops them",
                    deadline.as_secs()
                )),
            ),
            Err(r) => (false, r.clone(), None),
        };
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: Some("fsctl pause inbound; show channels count".into()),
            reply: Some(reply),
            ok,
            duration_ms: millis(started),
            note,
        });
        result.map(|_| ())
    }

    async fn systemd(&mut self, i: usize, step: &Step) -> Result<(), String> {
        let job = step.action.systemd().expect("a systemd action");
        let unit = self.options.unit.clone();
        let verb = job.verb();
        let started = Instant::now();
        let result = self.services.job(&unit, job).await;
        let (mut ok, mut reply) = match &result {
            Ok(r) if r == "done" => (true, r.clone()),
            Ok(r) => (false, format!("systemd job {verb} {unit}: {r}")),
            Err(e) => (false, e.clone()),
        };
        // A start job also ends `done` when a start condition fails (the image lacks
        // FreeSWITCH, or it was switched off): say so here rather than fail later on a
        // refused event-socket connection.
        if ok
            && matches!(job, SystemdJob::Restart | SystemdJob::Start)
            && self.services.is_active(&unit).await == Ok(false)
        {
            ok = false;
            reply = format!(
                "systemd job {verb} {unit} ended done, but {unit} is not running: a start \
                 condition failed (is FreeSWITCH installed on this image?)"
            );
        }
        match (job, ok) {
            (SystemdJob::Restart | SystemdJob::Start, true) => {
                // A new FreeSWITCH: new socket, and no pause (it lives in memory).
                self.esl = None;
                self.just_started = true;
                self.active = true;
                self.paused = false;
            }
            (SystemdJob::Stop, true) => {
                self.esl = None;
                self.active = false;
                self.paused = false;
            }
            (SystemdJob::Restart | SystemdJob::Start | SystemdJob::Stop, false) => {
                // Whatever happened, ask rather than guess (it decides whether the
                // rollback can reload the XML and whether calls must be resumed).
                self.esl = None;
                self.just_started = true;
                self.active = self.services.is_active(&unit).await.unwrap_or(self.active);
            }
            _ => {}
        }
        self.record(ActionRecord {
            step: Some(i),
            description: step.description.clone(),
            command: Some(format!("systemd {verb} {unit}")),
            reply: Some(reply.clone()),
            ok,
            duration_ms: millis(started),
            note: None,
        });
        if ok {
            Ok(())
        } else {
            Err(reply)
        }
    }

    /// After every step succeeded: the revision is the one applied. FreeSWITCH runs it
    /// whether or not this can be recorded; if it cannot, the records say so and the
    /// revision stays in doubt, so a restarted daemon carries it out again (planned from
    /// every state in doubt: no harm done).
    fn record_applied(&mut self, document: &Value, rev: &str) {
        let started = Instant::now();
        if let Err(e) = self.store.confirm(document, rev) {
            log::error!("rev {rev} applied, but it cannot be recorded as applied: {e}");
            self.record(ActionRecord {
                step: None,
                description: format!("record rev {rev} as applied"),
                command: None,
                reply: Some(e.to_string()),
                ok: false,
                duration_ms: millis(started),
                note: Some(
                    "FreeSWITCH runs it, but a restarted ccnqd will carry it out again".into(),
                ),
            });
        }
    }

    /// After a failure: the last good files back, and FreeSWITCH told to read them again.
    async fn roll_back(&mut self) {
        if self.store.current_generation() == self.generation_before {
            // Nothing was installed by this apply.
            return;
        }
        let started = Instant::now();
        let failed = self.store.current_generation();
        let (ok, reply) = match self.store.rollback() {
            Ok(()) => (
                true,
                format!(
                    "generation {}",
                    self.store
                        .current_generation()
                        .map_or("-".into(), |g| g.to_string())
                ),
            ),
            Err(FilesError::NoPrevious) => match self
                .store
                .forget("an apply of this set failed and there was no earlier set to go back to")
            {
                Ok(()) => (
                    true,
                    "no earlier generation: the new files stay, marked as not applied".into(),
                ),
                Err(e) => (false, e.to_string()),
            },
            Err(e) => (false, e.to_string()),
        };
        self.record(ActionRecord {
            step: None,
            description: format!(
                "roll the files back from generation {}",
                failed.map_or("-".into(), |g| g.to_string())
            ),
            command: None,
            reply: Some(reply),
            ok,
            duration_ms: millis(started),
            note: None,
        });
        if !self.active {
            return;
        }
        let mut commands = vec![Command::ReloadXml];
        if self.acl_reloaded {
            commands.push(Command::ReloadAcl);
        }
        for cmd in commands {
            let started = Instant::now();
            let text = cmd.text();
            let (ok, reply) = match self.connect().await {
                Err(e) => (false, e.to_string()),
                Ok(esl) => match cmd.send(esl).await {
                    Err(e) => (false, e.to_string()),
                    Ok(a) => (a.error.is_none(), words(&a.body)),
                },
            };
            self.record(ActionRecord {
                step: None,
                description: format!("{text} (rollback to the last good files)"),
                command: Some(text),
                reply: Some(reply),
                ok,
                duration_ms: millis(started),
                note: None,
            });
        }
    }

    /// Takes calls again if this apply paused them and FreeSWITCH still runs the same
    /// process.
    async fn resume_if_paused(&mut self) {
        if !self.paused {
            return;
        }
        self.paused = false;
        if !self.active {
            return;
        }
        let started = Instant::now();
        let result = match self.connect().await {
            Err(e) => Err(e.to_string()),
            Ok(esl) => drain::resume(esl).await.map_err(|e| e.reply_text()),
        };
        self.record(ActionRecord {
            step: None,
            description: "resume inbound calls".into(),
            command: Some("fsctl resume inbound".into()),
            reply: Some(match &result {
                Ok(()) => "+OK".into(),
                Err(r) => r.clone(),
            }),
            ok: result.is_ok(),
            duration_ms: millis(started),
            note: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{log_words, names};

    #[test]
    fn a_profile_is_named_as_a_whole() {
        let line = "Error Creating SIP UA for profile: bad-ingress (sip:mod_sofia@192.0.2.1:5500;transport=udp,tcp) ATTEMPT 1 (RETRY IN 5 SEC)";
        assert!(names(line, "bad-ingress"));
        assert!(!names(line, "bad"));
        assert!(!names(line, "ingress"));
        assert!(!names(line, "bad-ingress2"));
        assert!(names(
            "Started Profile bad-ingress [sofia_reg_bad-ingress]",
            "bad-ingress"
        ));
    }

    #[test]
    fn a_log_line_keeps_its_message() {
        assert_eq!(
            log_words("2026-12-02 00:26:47.433118 69.80% [ERR] sofia.c:3293 Error Creating SIP UA for profile: x (sip:mod_sofia@192.0.2.1:5500) ATTEMPT 1 (RETRY IN 5 SEC)\n"),
            "Error Creating SIP UA for profile: x (sip:mod_sofia@192.0.2.1:5500) ATTEMPT 1 (RETRY IN 5 SEC)"
        );
        assert_eq!(log_words("no prefix at all\n"), "no prefix at all");
        assert_eq!(
            log_words("[ERR] not a position: kept"),
            "not a position: kept"
        );
    }
}
