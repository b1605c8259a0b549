//! The least-action planner: compares what is running (the last applied host and its
//! rendering) with what a new revision asks for, and lists the least disruptive actions
//! that make them equal, following the table "What a change must cost" of
//! `shared/spec/host-document.md`. It is pure: the applier (a later step) maps each
//! [`Action`] to one event-socket command ([`Action::esl_command`]) or one systemd job
//! ([`Action::systemd`]) and does the waiting, retrying and confirming. The only thing
//! it is told about the host is where the rendered files live (`<data_dir>/freeswitch`),
//! so that the steps an operator reads name the real directory.
//!
//! Order inside a plan is fixed because FreeSWITCH's behaviour demands it: stops come
//! before the files change (a profile whose XML is gone can still be stopped, but a
//! restart of it would stop it for good), one write, one `reloadxml` (its reply is the
//! check that the new files parse: the applier rolls the files back on failure before
//! anything else acts), then `reloadacl` (`reloadxml` never reloads ACLs), rescans,
//! restarts, starts, and finally the confirmations that started profiles really bound
//! (`start` reports success even when the bind fails).
//!
//! What runs is not always one rendering. An apply that was cut short (the daemon killed
//! half-way) or that failed after some of its steps took effect leaves FreeSWITCH
//! anywhere between the host last applied and the revision it was carrying out; the
//! daemon knows those revisions as *in doubt* ([`InForce`]). [`plan_from`] then plans
//! from every state FreeSWITCH may be in at once: a profile is only rescanned or
//! restarted where it surely runs, started (which is idempotent: a start of a running
//! profile re-reads its settings) where it may be missing, and stopped then started
//! where it may run elsewhere; a stop of a profile that is not running does no harm.
//! So the interrupted revision is carried out again from the last known state, with no
//! command beyond what one of those states needs, and a revision in doubt that is left
//! behind leaves nothing running. With nothing in doubt it is exactly [`plan`].

use crate::render::{Parts, ProfilePart, Rendering};
use ccnq_model::Host;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// The systemd unit of FreeSWITCH.
pub const FREESWITCH_UNIT: &str = "freeswitch.service";

/// What an action costs the calls in progress. Ordered by [`Cost::severity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cost {
    /// No effect on calls or on FreeSWITCH's behaviour.
    NoEffect,
    /// FreeSWITCH re-reads configuration; no call is dropped.
    Reload,
    /// New inbound calls are refused (`503`) until the step after it; calls in progress go on.
    RefusesNewCalls,
    /// The calls on these sofia profiles are dropped.
    DropsCalls {
        /// Profile names, sorted.
        profiles: Vec<String>,
    },
    /// FreeSWITCH restarts: every call still up after the drain is dropped.
    RestartsFreeswitch,
    /// FreeSWITCH stops: every call still up after the drain is dropped, none is taken after.
    StopsFreeswitch,
    /// The host reboots into another image.
    RebootsHost,
}

impl Cost {
    /// How bad it is, for comparison: 0 (no effect) to 5 (reboot).
    pub fn severity(&self) -> u8 {
        match self {
            Cost::NoEffect => 0,
            Cost::Reload => 1,
            Cost::RefusesNewCalls => 2,
            Cost::DropsCalls { .. } => 3,
            Cost::RestartsFreeswitch | Cost::StopsFreeswitch => 4,
            Cost::RebootsHost => 5,
        }
    }

    /// The worse of two costs; two `DropsCalls` merge their profiles.
    pub fn worst(self, other: Cost) -> Cost {
        match (self, other) {
            (Cost::DropsCalls { profiles: a }, Cost::DropsCalls { profiles: b }) => {
                let set: BTreeSet<String> = a.into_iter().chain(b).collect();
                Cost::DropsCalls {
                    profiles: set.into_iter().collect(),
                }
            }
            (a, b) if b.severity() > a.severity() => b,
            (a, _) => a,
        }
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cost::NoEffect => f.write_str("no effect on calls"),
            Cost::Reload => f.write_str("reload, no call dropped"),
            Cost::RefusesNewCalls => f.write_str("new calls refused while draining"),
            Cost::DropsCalls { profiles } => {
                write!(f, "drops the calls on profile {}", profiles.join(", "))
            }
            Cost::RestartsFreeswitch => {
                f.write_str("restarts FreeSWITCH, drops every call left after draining")
            }
            Cost::StopsFreeswitch => {
                f.write_str("stops FreeSWITCH, drops every call left after draining")
            }
            Cost::RebootsHost => f.write_str("reboots the host after draining"),
        }
    }
}

/// A systemd job on FreeSWITCH's unit ([`FREESWITCH_UNIT`] on the appliance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemdJob {
    /// `RestartUnit` (starts it if stopped).
    Restart,
    /// `StartUnit`.
    Start,
    /// `StopUnit`.
    Stop,
    /// `EnableUnitFiles`.
    Enable,
    /// `DisableUnitFiles`.
    Disable,
}

impl SystemdJob {
    /// As `systemctl` names it: `restart`, `start`, `stop`, `enable`, `disable`.
    pub fn verb(self) -> &'static str {
        match self {
            SystemdJob::Restart => "restart",
            SystemdJob::Start => "start",
            SystemdJob::Stop => "stop",
            SystemdJob::Enable => "enable",
            SystemdJob::Disable => "disable",
        }
    }
}

/// One step of a plan. Each maps to one event-socket command or one systemd job, except
/// [`Action::WriteFiles`] and [`Action::ReplaceFiles`] (the applier writes from the new rendering) and
/// [`Action::Upgrade`] (the upgrade path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `sofia profile <profile> stop` (refused within 10 s of the profile's start: wait
    /// and retry).
    StopProfile {
        /// Sofia profile name.
        profile: String,
    },
    /// Write these files of the new rendering and remove these, in the files directory.
    WriteFiles {
        /// Relative paths to write, from the new rendering.
        write: Vec<String>,
        /// Relative paths to remove.
        remove: Vec<String>,
    },
    /// Make the files in the files directory exactly these files of the new rendering:
    /// write them and remove every other file there. Used when what is on the volume is
    /// not known (first apply), because FreeSWITCH includes whatever files it finds.
    ReplaceFiles {
        /// Relative paths to write, from the new rendering.
        write: Vec<String>,
    },
    /// `reloadxml`: only `+OK [Success]` is success; otherwise put the files back.
    ReloadXml,
    /// `reloadacl`.
    ReloadAcl,
    /// `sofia profile <profile> rescan`: applies settings live, never rebinds.
    RescanProfile {
        /// Sofia profile name.
        profile: String,
    },
    /// `sofia profile <profile> restart`: rebinds; refused within 10 s of its start.
    RestartProfile {
        /// Sofia profile name.
        profile: String,
        /// The address it must bind afterwards.
        bind: SocketAddr,
    },
    /// `sofia profile <profile> start`.
    StartProfile {
        /// Sofia profile name.
        profile: String,
        /// The address it must bind.
        bind: SocketAddr,
    },
    /// Poll `sofia xmlstatus` until the profile is `RUNNING` on `bind`, with a deadline:
    /// `start` answers success even when the bind fails.
    ConfirmProfile {
        /// Sofia profile name.
        profile: String,
        /// The address it must be running on.
        bind: SocketAddr,
    },
    /// If FreeSWITCH runs: `fsctl pause inbound`, then wait for `show channels count` to
    /// reach 0 (or the drain deadline). Nothing when it is stopped.
    Drain,
    /// systemd restart of FreeSWITCH.
    RestartFreeswitch,
    /// systemd stop of FreeSWITCH.
    StopFreeswitch,
    /// systemd disable of FreeSWITCH (it stays off across reboots).
    DisableFreeswitch,
    /// systemd enable of FreeSWITCH.
    EnableFreeswitch,
    /// systemd start of FreeSWITCH.
    StartFreeswitch,
    /// Move to this image version by the upgrade path (fetch, install to the other slot,
    /// drain, reboot, confirm or roll back); skipped when already booted on it.
    Upgrade {
        /// The wanted `image.version`.
        version: String,
    },
}

impl Action {
    /// The event-socket `api` command that carries the action out, if it is one. For
    /// [`Action::ConfirmProfile`] it is the command to poll; for [`Action::Drain`] the
    /// command that starts the drain.
    pub fn esl_command(&self) -> Option<String> {
        Some(match self {
            Action::StopProfile { profile } => format!("sofia profile {profile} stop"),
            Action::ReloadXml => "reloadxml".into(),
            Action::ReloadAcl => "reloadacl".into(),
            Action::RescanProfile { profile } => format!("sofia profile {profile} rescan"),
            Action::RestartProfile { profile, .. } => format!("sofia profile {profile} restart"),
            Action::StartProfile { profile, .. } => format!("sofia profile {profile} start"),
            Action::ConfirmProfile { .. } => "sofia xmlstatus".into(),
            Action::Drain => "fsctl pause inbound".into(),
            _ => return None,
        })
    }

    /// The systemd job on FreeSWITCH's unit that carries the action out, if it is one.
    pub fn systemd(&self) -> Option<SystemdJob> {
        Some(match self {
            Action::RestartFreeswitch => SystemdJob::Restart,
            Action::StopFreeswitch => SystemdJob::Stop,
            Action::DisableFreeswitch => SystemdJob::Disable,
            Action::EnableFreeswitch => SystemdJob::Enable,
            Action::StartFreeswitch => SystemdJob::Start,
            _ => return None,
        })
    }

    /// What the action costs the calls in progress.
    pub fn cost(&self) -> Cost {
        match self {
            Action::WriteFiles { .. }
            | Action::ReplaceFiles { .. }
            | Action::ConfirmProfile { .. }
            | Action::DisableFreeswitch
            | Action::EnableFreeswitch
            | Action::StartFreeswitch => Cost::NoEffect,
            Action::ReloadXml
            | Action::ReloadAcl
            | Action::RescanProfile { .. }
            | Action::StartProfile { .. } => Cost::Reload,
            Action::Drain => Cost::RefusesNewCalls,
            Action::StopProfile { profile } | Action::RestartProfile { profile, .. } => {
                Cost::DropsCalls {
                    profiles: vec![profile.clone()],
                }
            }
            Action::RestartFreeswitch => Cost::RestartsFreeswitch,
            Action::StopFreeswitch => Cost::StopsFreeswitch,
            Action::Upgrade { .. } => Cost::RebootsHost,
        }
    }

    /// A one-line description for operators; `files_dir` is where the rendered files
    /// live (`<data_dir>/freeswitch`), named by the file steps, and `unit` FreeSWITCH's
    /// systemd unit, named by the systemd steps.
    pub fn describe(&self, files_dir: &Path, unit: &str) -> String {
        let dir = files_dir.display();
        match self {
            Action::WriteFiles { write, remove } => {
                let mut parts = Vec::new();
                if !write.is_empty() {
                    parts.push(format!("write {}", write.join(" ")));
                }
                if !remove.is_empty() {
                    parts.push(format!("remove {}", remove.join(" ")));
                }
                format!("{} in {dir}", parts.join("; "))
            }
            Action::ReplaceFiles { write } if write.is_empty() => {
                format!("remove every file in {dir}")
            }
            Action::ReplaceFiles { write } => format!(
                "write {} in {dir}, removing every other file there",
                write.join(" ")
            ),
            Action::RestartProfile { profile, bind } => {
                format!("sofia profile {profile} restart (to bind {bind})")
            }
            Action::StartProfile { profile, bind } => {
                format!("sofia profile {profile} start (on {bind})")
            }
            Action::ConfirmProfile { profile, bind } => {
                format!("confirm {profile} RUNNING on {bind} (sofia xmlstatus)")
            }
            Action::Drain => {
                "drain: fsctl pause inbound, wait until no call is left".into()
            }
            Action::Upgrade { version } => format!(
                "upgrade to image {version} (fetch, install to the other slot, drain, reboot, confirm)"
            ),
            a => match (a.esl_command(), a.systemd()) {
                (Some(cmd), _) => cmd,
                (None, Some(job)) => format!("systemd {} {unit}", job.verb()),
                (None, None) => format!("{a:?}"),
            },
        }
    }
}

/// An action with its cost and description, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// What it costs.
    pub cost: Cost,
    /// For operators.
    pub description: String,
}

impl Step {
    /// The step that carries `action` out, described for `target`.
    pub fn new(action: Action, target: Target<'_>) -> Step {
        Step {
            cost: action.cost(),
            description: action.describe(target.files_dir, target.unit),
            action,
        }
    }
}

/// What the steps of a plan name on the host that carries it out. The actions are the
/// same everywhere; only their descriptions change.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Where the rendered files live: `<data_dir>/freeswitch`, the applier's link
    /// ([`crate::render::VOLUME_DIR`] on the appliance).
    pub files_dir: &'a Path,
    /// FreeSWITCH's systemd unit ([`FREESWITCH_UNIT`] on the appliance).
    pub unit: &'a str,
}

/// The ordered actions that take FreeSWITCH from what runs to what is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// In order.
    pub steps: Vec<Step>,
    /// The worst step's cost (`no_effect` for an empty plan).
    pub cost: Cost,
}

impl Plan {
    fn new(actions: Vec<Action>, target: Target<'_>) -> Plan {
        let steps: Vec<Step> = actions.into_iter().map(|a| Step::new(a, target)).collect();
        let cost = steps
            .iter()
            .fold(Cost::NoEffect, |acc, s| acc.worst(s.cost.clone()));
        Plan { steps, cost }
    }

    /// True when nothing is to be done: no write, no command.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The actions, in order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.steps.iter().map(|s| &s.action)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(f, "nothing to do — no effect on calls");
        }
        for s in &self.steps {
            writeln!(f, "{} — {}", s.description, s.cost)?;
        }
        Ok(())
    }
}

/// A host as applied (or to apply): the model and its rendering, which must come from
/// [`crate::render::render`] of that model.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// The validated model.
    pub host: &'a Host,
    /// Its rendering.
    pub rendering: &'a Rendering,
}

/// The least plan from `running` (`None`: nothing known applied, e.g. first boot) to `new`,
/// on a host whose rendered files live in `files_dir` (`<data_dir>/freeswitch`, the
/// applier's link; [`crate::render::VOLUME_DIR`] on the appliance) and whose FreeSWITCH is
/// [`FREESWITCH_UNIT`]. The directory only goes into the steps' descriptions: the actions
/// are the same wherever the files are. [`plan_from`] with nothing in doubt.
pub fn plan(running: Option<Snapshot<'_>>, new: Snapshot<'_>, files_dir: &Path) -> Plan {
    plan_from(
        InForce {
            applied: running,
            in_doubt: &[],
        },
        new,
        Target {
            files_dir,
            unit: FREESWITCH_UNIT,
        },
    )
}

/// What FreeSWITCH may be running when a plan is made.
#[derive(Debug, Clone, Copy)]
pub struct InForce<'a> {
    /// The host last applied with success (`None`: nothing known applied: the plan then
    /// replaces everything, whatever is in doubt).
    pub applied: Option<Snapshot<'a>>,
    /// The revisions whose applies began after it and never succeeded, in the order they
    /// were last begun: any part of each may be in force.
    pub in_doubt: &'a [Snapshot<'a>],
}

/// The least plan that takes FreeSWITCH to `new` from whichever state `in_force` allows
/// (see the module doc), its steps described for `target`.
///
/// An apply in doubt that drained and was cut short before its restart (or stop) of
/// FreeSWITCH left new calls refused: the pause lives in FreeSWITCH's memory. No step
/// resumes them, because none is needed: a drain comes with a change of the global part
/// or of whether FreeSWITCH runs, so the states in doubt then differ there, and no
/// revision can equal them all: this plan drains and restarts (or stops) FreeSWITCH
/// again, which ends the pause. The properties check it on the model.
pub fn plan_from(in_force: InForce<'_>, new: Snapshot<'_>, target: Target<'_>) -> Plan {
    let states: Vec<Snapshot<'_>> = in_force
        .applied
        .into_iter()
        .chain(in_force.in_doubt.iter().copied())
        .collect();
    let mut actions = match in_force.applied {
        None => unknown_actions(new.rendering),
        Some(_) => freeswitch_actions(&states, new),
    };
    if let Some(v) = &new.host.image {
        let everywhere =
            in_force.applied.is_some() && states.iter().all(|s| s.host.image.as_ref() == Some(v));
        if !everywhere {
            actions.push(Action::Upgrade {
                version: v.version.clone(),
            });
        }
    }
    Plan::new(actions, target)
}

fn all_files(r: &Rendering) -> Vec<String> {
    r.tree.iter().map(|(p, _)| p.to_owned()).collect()
}

fn confirm_all(r: &Rendering) -> Vec<Action> {
    r.parts
        .iter()
        .flat_map(|p| p.profiles.iter())
        .map(|(name, part)| Action::ConfirmProfile {
            profile: name.clone(),
            bind: part.bind,
        })
        .collect()
}

/// Unknown state: FreeSWITCH may be running on files we did not write, so the only safe
/// way to "equal" is to load everything afresh.
fn unknown_actions(new_r: &Rendering) -> Vec<Action> {
    if new_r.freeswitch_runs() {
        let mut a = vec![
            Action::Drain,
            Action::ReplaceFiles {
                write: all_files(new_r),
            },
            Action::EnableFreeswitch,
            Action::RestartFreeswitch,
        ];
        a.extend(confirm_all(new_r));
        return a;
    }
    vec![
        Action::Drain,
        Action::StopFreeswitch,
        Action::DisableFreeswitch,
        Action::ReplaceFiles { write: vec![] },
    ]
}

/// What must happen to one profile of the new rendering, from every state it may be in.
enum ProfileStep {
    Nothing,
    Rescan,
    Restart,
    Start,
    StopThenStart,
}

/// The actions from any of `olds` (at least one) to `new`.
fn freeswitch_actions(olds: &[Snapshot<'_>], new: Snapshot<'_>) -> Vec<Action> {
    let new_r = new.rendering;
    // Every file that differs from the new rendering in one of the states: the write
    // must leave the new set whichever of them is on the volume.
    let mut write = BTreeSet::new();
    let mut remove = BTreeSet::new();
    for old in olds {
        let (w, r) = old.rendering.tree.diff(&new_r.tree);
        write.extend(w);
        remove.extend(r);
    }
    let write: Vec<String> = write.into_iter().collect();
    let remove: Vec<String> = remove.into_iter().collect();
    let write_files = || Action::WriteFiles {
        write: write.clone(),
        remove: remove.clone(),
    };
    let old_parts: Vec<(&Rendering, &Parts)> = olds
        .iter()
        .filter_map(|o| o.rendering.parts.as_ref().map(|p| (o.rendering, p)))
        .collect();
    let some_off = old_parts.len() < olds.len();
    let Some(new_parts) = &new_r.parts else {
        if old_parts.is_empty() {
            return vec![];
        }
        let mut a = vec![
            Action::Drain,
            Action::StopFreeswitch,
            Action::DisableFreeswitch,
        ];
        if !remove.is_empty() {
            a.push(write_files());
        }
        return a;
    };
    if old_parts.is_empty() {
        let mut a = vec![
            write_files(),
            Action::EnableFreeswitch,
            Action::StartFreeswitch,
        ];
        a.extend(confirm_all(new_r));
        return a;
    }
    if some_off {
        // Stopped and switched off, or running one of the other states: a restart
        // starts it in the first case and re-reads everything in the second.
        let mut a = vec![
            Action::Drain,
            write_files(),
            Action::EnableFreeswitch,
            Action::RestartFreeswitch,
        ];
        a.extend(confirm_all(new_r));
        return a;
    }
    if write.is_empty() && remove.is_empty() {
        return vec![];
    }
    let global_same = old_parts.iter().all(|(old_r, old_p)| {
        old_p.global == new_parts.global
            && old_p
                .global
                .iter()
                .all(|p| old_r.tree.get(p) == new_r.tree.get(p))
    });
    if !global_same {
        // Modules and global variables are read at start-up only; a restart re-reads
        // everything else too, so no profile-level action is needed besides confirming.
        let mut a = vec![Action::Drain, write_files(), Action::RestartFreeswitch];
        a.extend(confirm_all(new_r));
        return a;
    }

    let mut stops = Vec::new();
    let mut rescans = Vec::new();
    let mut restarts = Vec::new();
    let mut starts = Vec::new();
    let names: BTreeSet<&String> = old_parts
        .iter()
        .flat_map(|(_, p)| p.profiles.keys())
        .chain(new_parts.profiles.keys())
        .collect();
    for name in names {
        let Some(n) = new_parts.profiles.get(name) else {
            if old_parts.iter().any(|(_, p)| p.profiles.contains_key(name)) {
                stops.push(Action::StopProfile {
                    profile: name.clone(),
                });
            }
            continue;
        };
        let step = profile_step(name, n, &old_parts, new_parts, new_r);
        match step {
            ProfileStep::Nothing => {}
            ProfileStep::Rescan => rescans.push(Action::RescanProfile {
                profile: name.clone(),
            }),
            ProfileStep::Restart => restarts.push((name.clone(), n.bind)),
            ProfileStep::Start => starts.push((name.clone(), n.bind)),
            ProfileStep::StopThenStart => {
                stops.push(Action::StopProfile {
                    profile: name.clone(),
                });
                starts.push((name.clone(), n.bind));
            }
        }
    }

    let mut a = stops;
    a.push(write_files());
    a.push(Action::ReloadXml);
    let acl_same = old_parts
        .iter()
        .all(|(old_r, old_p)| old_r.tree.get(&old_p.acl) == new_r.tree.get(&new_parts.acl));
    if !acl_same {
        a.push(Action::ReloadAcl);
    }
    a.extend(rescans);
    a.extend(
        restarts
            .iter()
            .map(|(profile, bind)| Action::RestartProfile {
                profile: profile.clone(),
                bind: *bind,
            }),
    );
    a.extend(starts.iter().map(|(profile, bind)| Action::StartProfile {
        profile: profile.clone(),
        bind: *bind,
    }));
    a.extend(
        restarts
            .into_iter()
            .chain(starts)
            .map(|(profile, bind)| Action::ConfirmProfile { profile, bind }),
    );
    a
}

/// The step for profile `name`, wanted as `n`, from every state in `olds`.
fn profile_step(
    name: &str,
    n: &ProfilePart,
    olds: &[(&Rendering, &Parts)],
    new_parts: &Parts,
    new_r: &Rendering,
) -> ProfileStep {
    let present: Vec<(&Rendering, &ProfilePart)> = olds
        .iter()
        .filter_map(|(r, p)| p.profiles.get(name).map(|o| (*r, o)))
        .collect();
    let binds: BTreeSet<SocketAddr> = present.iter().map(|(_, o)| o.bind).collect();
    let one_bind = binds.iter().next().copied().filter(|_| binds.len() == 1);
    match one_bind {
        // It runs in every state, on one address: nothing in doubt can have stopped it
        // (an apply stops a profile only where its address changes or it goes).
        Some(bind) if present.len() == olds.len() => {
            if bind == n.bind {
                let settings = present
                    .iter()
                    .any(|(r, o)| r.tree.get(&o.settings) != new_r.tree.get(&n.settings));
                return if settings {
                    ProfileStep::Rescan
                } else {
                    ProfileStep::Nothing
                };
            }
            // A profile moving onto an address another surviving profile still holds
            // cannot `restart` onto it (the bind would fail), so it is stopped before and
            // started after the others moved.
            let blocked = olds.iter().any(|(_, p)| {
                p.profiles.iter().any(|(holder, h)| {
                    holder != name && h.bind == n.bind && new_parts.profiles.contains_key(holder)
                })
            });
            if blocked {
                ProfileStep::StopThenStart
            } else {
                ProfileStep::Restart
            }
        }
        // Missing in some state. Where it runs, it runs on its new address: a start
        // starts it where it is missing and re-reads its settings where it runs (04a).
        _ if binds.iter().all(|b| *b == n.bind) => ProfileStep::Start,
        // It may run elsewhere, or not at all: `restart` fails on a profile that is not
        // running and `start` does not move one that is.
        _ => ProfileStep::StopThenStart,
    }
}
