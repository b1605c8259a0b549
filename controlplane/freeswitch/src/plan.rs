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

use crate::render::Rendering;
use ccnq_model::Host;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
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

/// A systemd job on [`FREESWITCH_UNIT`].
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

    /// The systemd job on [`FREESWITCH_UNIT`] that carries the action out, if it is one.
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
    /// live (`<data_dir>/freeswitch`), named by the file steps.
    pub fn describe(&self, files_dir: &Path) -> String {
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
                (None, Some(job)) => format!("systemd {job:?} {FREESWITCH_UNIT}").to_lowercase(),
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
    /// The step that carries `action` out, described for a host whose rendered files
    /// live in `files_dir`.
    pub fn new(action: Action, files_dir: &Path) -> Step {
        Step {
            cost: action.cost(),
            description: action.describe(files_dir),
            action,
        }
    }
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
    fn new(actions: Vec<Action>, files_dir: &Path) -> Plan {
        let steps: Vec<Step> = actions
            .into_iter()
            .map(|a| Step::new(a, files_dir))
            .collect();
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
/// applier's link; [`crate::render::VOLUME_DIR`] on the appliance). The directory only
/// goes into the steps' descriptions: the actions are the same wherever the files are.
pub fn plan(running: Option<Snapshot<'_>>, new: Snapshot<'_>, files_dir: &Path) -> Plan {
    let mut actions = freeswitch_actions(running, new);
    let old_version = running.and_then(|r| r.host.image.as_ref());
    if let Some(v) = &new.host.image {
        if old_version != Some(v) {
            actions.push(Action::Upgrade {
                version: v.version.clone(),
            });
        }
    }
    Plan::new(actions, files_dir)
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

fn freeswitch_actions(running: Option<Snapshot<'_>>, new: Snapshot<'_>) -> Vec<Action> {
    let new_r = new.rendering;
    let Some(old) = running else {
        // Unknown state: FreeSWITCH may be running on files we did not write, so the
        // only safe way to "equal" is to load everything afresh.
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
        return vec![
            Action::Drain,
            Action::StopFreeswitch,
            Action::DisableFreeswitch,
            Action::ReplaceFiles { write: vec![] },
        ];
    };
    let old_r = old.rendering;
    let (write, remove) = old_r.tree.diff(&new_r.tree);
    let write_files = || Action::WriteFiles {
        write: write.clone(),
        remove: remove.clone(),
    };
    let (old_parts, new_parts) = match (&old_r.parts, &new_r.parts) {
        (None, None) => return vec![],
        (Some(_), None) => {
            let mut a = vec![
                Action::Drain,
                Action::StopFreeswitch,
                Action::DisableFreeswitch,
            ];
            if !remove.is_empty() {
                a.push(write_files());
            }
            return a;
        }
        (None, Some(_)) => {
            let mut a = vec![
                write_files(),
                Action::EnableFreeswitch,
                Action::StartFreeswitch,
            ];
            a.extend(confirm_all(new_r));
            return a;
        }
        (Some(o), Some(n)) => (o, n),
    };
    if write.is_empty() && remove.is_empty() {
        return vec![];
    }
    let global_same = old_parts.global == new_parts.global
        && old_parts
            .global
            .iter()
            .all(|p| old_r.tree.get(p) == new_r.tree.get(p));
    if !global_same {
        // Modules and global variables are read at start-up only; a restart re-reads
        // everything else too, so no profile-level action is needed besides confirming.
        let mut a = vec![Action::Drain, write_files(), Action::RestartFreeswitch];
        a.extend(confirm_all(new_r));
        return a;
    }

    // Who holds which address now: a profile moving onto an address another surviving
    // profile still holds cannot `restart` onto it (the bind would fail), so it is
    // stopped before and started after the others moved.
    let old_holder: BTreeMap<SocketAddr, &str> = old_parts
        .profiles
        .iter()
        .map(|(n, p)| (p.bind, n.as_str()))
        .collect();

    let mut stops = Vec::new();
    let mut rescans = Vec::new();
    let mut restarts = Vec::new();
    let mut starts = Vec::new();
    let names: BTreeSet<&String> = old_parts
        .profiles
        .keys()
        .chain(new_parts.profiles.keys())
        .collect();
    for name in names {
        match (old_parts.profiles.get(name), new_parts.profiles.get(name)) {
            (Some(_), None) => stops.push(Action::StopProfile {
                profile: name.clone(),
            }),
            (None, Some(n)) => starts.push((name.clone(), n.bind)),
            (Some(o), Some(n)) if o.bind != n.bind => {
                let blocked = old_holder.get(&n.bind).is_some_and(|holder| {
                    *holder != name.as_str() && new_parts.profiles.contains_key(*holder)
                });
                if blocked {
                    stops.push(Action::StopProfile {
                        profile: name.clone(),
                    });
                    starts.push((name.clone(), n.bind));
                } else {
                    restarts.push((name.clone(), n.bind));
                }
            }
            (Some(o), Some(n)) => {
                if old_r.tree.get(&o.settings) != new_r.tree.get(&n.settings) {
                    rescans.push(Action::RescanProfile {
                        profile: name.clone(),
                    });
                }
                // A dialplan-only change is read at the next call after `reloadxml`.
            }
            (None, None) => {}
        }
    }

    let mut a = stops;
    a.push(write_files());
    a.push(Action::ReloadXml);
    if old_r.tree.get(&old_parts.acl) != new_r.tree.get(&new_parts.acl) {
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
