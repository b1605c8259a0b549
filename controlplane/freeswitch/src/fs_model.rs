//! A model of FreeSWITCH 1.11.2's configuration behaviour, derived from the recorded
//! event-socket transcripts in `shared/fixtures/freeswitch-esl-apply/` (the scenario each
//! rule comes from is named beside it). It is a test double of FreeSWITCH for plans: it
//! answers "what would FreeSWITCH be running after these actions", so that tests can
//! check that a [`Plan`](crate::Plan) reaches the state a freshly started FreeSWITCH would
//! have on the new files. It reads the rendered XML itself (profile names, `sip-ip`,
//! `sip-port`), as FreeSWITCH does, rather than trusting the renderer's index.
//!
//! Not modelled: time (the 10-second rule, asynchronous stop/restart), calls (only
//! whether new ones are refused: the pause of a drain), and XML parse errors (the
//! renderer never writes broken XML).

use crate::plan::Action;
use crate::render::{RenderedTree, ACL_PATH};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// A sofia profile as it runs: where it bound and the settings it last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningProfile {
    /// The address bound when it (re)started.
    pub bind: SocketAddr,
    /// The bytes of the file its settings were read from, at the last start or rescan.
    pub settings: Vec<u8>,
}

/// What the model refuses, mirroring FreeSWITCH's error replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A command sent while FreeSWITCH is stopped (no event socket to answer).
    #[error("FreeSWITCH is not running")]
    NotRunning,
    /// `Invalid Profile [NAME]` (05, 04b): the profile is not running.
    #[error("Invalid Profile [{0}]")]
    InvalidProfile(String),
    /// `-ERR cannot find config for profile NAME` (04b) or `Failure starting NAME` (04a).
    #[error("no configuration for profile {0}")]
    NoConfig(String),
    /// A confirmation that would time out: the profile is not `RUNNING` on its address (09a, 09c).
    #[error("profile {profile} is not running on {bind}")]
    NotConfirmed {
        /// Sofia profile name.
        profile: String,
        /// The address expected.
        bind: SocketAddr,
    },
    /// A write of a file the new rendering does not have.
    #[error("{0} is not in the rendering")]
    NotRendered(String),
}

/// The observable state of FreeSWITCH and of its configuration volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFreeswitch {
    /// The files on the volume.
    pub disk: RenderedTree,
    /// Whether the systemd unit is enabled.
    pub enabled: bool,
    /// Whether the process runs.
    pub running: bool,
    /// The XML registry (the files as of the last `reloadxml` or start-up).
    pub registry: RenderedTree,
    /// The ACL file content in force (as of the last `reloadacl` or start-up).
    pub acl: Option<Vec<u8>>,
    /// Running sofia profiles by name.
    pub profiles: BTreeMap<String, RunningProfile>,
    /// New inbound calls refused (`fsctl pause inbound`): it lives in the process, so a
    /// start or a stop ends it (10), and a plan must not leave it on.
    pub paused: bool,
}

/// A profile's configuration as found in the XML registry.
struct ProfileConfig {
    bind: SocketAddr,
    settings: Vec<u8>,
}

/// Every `<profile name=…>` with its `sip-ip`/`sip-port`, across the registry's files.
fn profile_configs(registry: &RenderedTree) -> BTreeMap<String, ProfileConfig> {
    let mut out = BTreeMap::new();
    for (_, bytes) in registry.iter() {
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        let Ok(doc) = roxmltree::Document::parse(text) else {
            continue;
        };
        for profile in doc.descendants().filter(|n| n.has_tag_name("profile")) {
            let Some(name) = profile.attribute("name") else {
                continue;
            };
            let param = |key: &str| {
                profile
                    .descendants()
                    .find(|n| n.has_tag_name("param") && n.attribute("name") == Some(key))
                    .and_then(|n| n.attribute("value"))
            };
            let ip = param("sip-ip").and_then(|v| v.parse::<IpAddr>().ok());
            let port = param("sip-port").and_then(|v| v.parse::<u16>().ok());
            if let (Some(ip), Some(port)) = (ip, port) {
                out.entry(name.to_owned()).or_insert(ProfileConfig {
                    bind: SocketAddr::new(ip, port),
                    settings: bytes.to_vec(),
                });
            }
        }
    }
    out
}

impl ModelFreeswitch {
    /// FreeSWITCH stopped and disabled, with `disk` on the volume.
    pub fn stopped(disk: RenderedTree) -> Self {
        ModelFreeswitch {
            disk,
            enabled: false,
            running: false,
            registry: RenderedTree::default(),
            acl: None,
            profiles: BTreeMap::new(),
            paused: false,
        }
    }

    /// FreeSWITCH enabled and freshly started on `disk`: what any plan must end in.
    pub fn booted(disk: RenderedTree) -> Self {
        let mut m = Self::stopped(disk);
        m.enabled = true;
        m.boot();
        m
    }

    /// The state a host must reach for a rendering: booted on it, or stopped and disabled
    /// with nothing on the volume when FreeSWITCH does not run.
    pub fn expected(rendering: &crate::Rendering) -> Self {
        if rendering.freeswitch_runs() {
            Self::booted(rendering.tree.clone())
        } else {
            Self::stopped(rendering.tree.clone())
        }
    }

    /// Start-up: everything is read from the files; profiles start in name order, a
    /// second profile on a taken address never runs (09c).
    fn boot(&mut self) {
        self.running = true;
        self.paused = false;
        self.registry = self.disk.clone();
        self.acl = self.registry.get(ACL_PATH).map(<[u8]>::to_vec);
        self.profiles.clear();
        for (name, cfg) in profile_configs(&self.registry) {
            self.try_start(name, cfg);
        }
    }

    fn try_start(&mut self, name: String, cfg: ProfileConfig) {
        let taken = self.profiles.values().any(|p| p.bind == cfg.bind);
        if !taken {
            self.profiles.insert(
                name,
                RunningProfile {
                    bind: cfg.bind,
                    settings: cfg.settings,
                },
            );
        }
    }

    fn need_running(&self) -> Result<(), ModelError> {
        if self.running {
            Ok(())
        } else {
            Err(ModelError::NotRunning)
        }
    }

    /// Every `sofia profile` command reloads the XML first (`Reload XML [Success]` in
    /// 02, 03, 04a, 06).
    fn reloadxml(&mut self) {
        self.registry = self.disk.clone();
    }

    fn config(&self, name: &str) -> Option<ProfileConfig> {
        profile_configs(&self.registry).remove(name)
    }

    /// Carry out one action; files come from `new` (the rendering being applied).
    pub fn apply(&mut self, action: &Action, new: &RenderedTree) -> Result<(), ModelError> {
        match action {
            Action::WriteFiles { write, remove } => {
                let mut files: BTreeMap<String, Vec<u8>> = self
                    .disk
                    .iter()
                    .map(|(p, b)| (p.to_owned(), b.to_vec()))
                    .collect();
                for p in write {
                    let b = new
                        .get(p)
                        .ok_or_else(|| ModelError::NotRendered(p.clone()))?;
                    files.insert(p.clone(), b.to_vec());
                }
                for p in remove {
                    files.remove(p);
                }
                self.disk = files.into_iter().collect();
            }
            Action::ReplaceFiles { write } => {
                let mut files = BTreeMap::new();
                for p in write {
                    let b = new
                        .get(p)
                        .ok_or_else(|| ModelError::NotRendered(p.clone()))?;
                    files.insert(p.clone(), b.to_vec());
                }
                self.disk = files.into_iter().collect();
            }
            // 01d: reloadxml leaves the ACLs in force unchanged.
            Action::ReloadXml => {
                self.need_running()?;
                self.reloadxml();
            }
            // 01c: reloadacl always reloads the XML too, then the ACLs.
            Action::ReloadAcl => {
                self.need_running()?;
                self.reloadxml();
                self.acl = self.registry.get(ACL_PATH).map(<[u8]>::to_vec);
            }
            // 02, 06: rescan applies settings live and never rebinds; 04b: no config → -ERR.
            Action::RescanProfile { profile } => {
                self.need_running()?;
                self.reloadxml();
                if !self.profiles.contains_key(profile) {
                    return Err(ModelError::InvalidProfile(profile.clone()));
                }
                let cfg = self
                    .config(profile)
                    .ok_or_else(|| ModelError::NoConfig(profile.clone()))?;
                if let Some(p) = self.profiles.get_mut(profile) {
                    p.settings = cfg.settings;
                }
            }
            // 03, 06: restart rebinds to the configured address; 04c: without config it
            // is a stop; 09c: a taken address leaves it not running.
            Action::RestartProfile { profile, .. } => {
                self.need_running()?;
                self.reloadxml();
                if self.profiles.remove(profile).is_none() {
                    return Err(ModelError::InvalidProfile(profile.clone()));
                }
                if let Some(cfg) = self.config(profile) {
                    self.try_start(profile.clone(), cfg);
                }
            }
            // 04a: start of a running profile acts as a rescan; without config it fails;
            // 09a/09c: a bind failure is silent (the reply still says success).
            Action::StartProfile { profile, .. } => {
                self.need_running()?;
                self.reloadxml();
                let cfg = self
                    .config(profile)
                    .ok_or_else(|| ModelError::NoConfig(profile.clone()))?;
                match self.profiles.get_mut(profile) {
                    Some(p) => p.settings = cfg.settings,
                    None => self.try_start(profile.clone(), cfg),
                }
            }
            // 04a/04b: stop removes it; 04b: a second stop is `Invalid Profile`.
            Action::StopProfile { profile } => {
                self.need_running()?;
                self.reloadxml();
                if self.profiles.remove(profile).is_none() {
                    return Err(ModelError::InvalidProfile(profile.clone()));
                }
            }
            // 08: sofia xmlstatus lists each running profile with its address.
            Action::ConfirmProfile { profile, bind } => {
                self.need_running()?;
                if self.profiles.get(profile).map(|p| p.bind) != Some(*bind) {
                    return Err(ModelError::NotConfirmed {
                        profile: profile.clone(),
                        bind: *bind,
                    });
                }
            }
            // 07/10: pausing inbound changes nothing configured, but refuses new calls
            // until a resume or a new process; with FreeSWITCH stopped there is nothing
            // to drain.
            Action::Drain => self.paused = self.running,
            Action::RestartFreeswitch => self.boot(),
            Action::StartFreeswitch => {
                // A start job on a running unit does nothing.
                if !self.running {
                    self.boot();
                }
            }
            Action::StopFreeswitch => {
                self.running = false;
                self.paused = false;
                self.registry = RenderedTree::default();
                self.acl = None;
                self.profiles.clear();
            }
            Action::EnableFreeswitch => self.enabled = true,
            Action::DisableFreeswitch => self.enabled = false,
            // The upgrade path is not FreeSWITCH's business.
            Action::Upgrade { .. } => {}
        }
        Ok(())
    }

    /// Apply a whole plan, stopping at the first refusal (as the applier does).
    pub fn apply_plan(&mut self, plan: &crate::Plan, new: &RenderedTree) -> Result<(), ModelError> {
        plan.actions().try_for_each(|a| self.apply(a, new))
    }
}
