//! FreeSWITCH as the reconcile loop sees it: renders a validated host, plans the least
//! change from what runs, and has `ccnq-apply` carry the plan out.
//!
//! What runs is known from the file store (`ccnq_apply::FileStore` records the revision
//! applied once its apply succeeded, and the revisions in doubt: begun, never seen
//! through), so after a restart the plan is computed from the real previous state: a
//! document equal to it costs nothing, and a revision whose apply was cut short is
//! carried out again from the last one applied and every one in doubt
//! ([`ccnq_freeswitch::plan_from`]). The same state ([`InForce`]) backs the plan preview
//! of the local API ([`preview`]), which must show exactly what an apply would do.

use crate::reconcile::report::{error_notes, warning_notes};
use crate::reconcile::{Apply, Outcome, Progress, Wanted};
use ccnq_api::{FieldNote, PlanCost, PlanPreview, PlanStep};
use ccnq_apply::{Applier, ApplyReport, FileStore, Services};
use ccnq_freeswitch::{plan_from, render, Plan, Rendering, Secrets, Snapshot, SystemdJob, Target};
use ccnq_model::Validated;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::OnceCell;

/// A revision as the planner needs it: its model and its rendering.
pub struct Running {
    pub rev: String,
    pub validated: Validated,
    pub rendering: Rendering,
}

impl Running {
    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            host: &self.validated.host,
            rendering: &self.rendering,
        }
    }
}

/// What FreeSWITCH may be running: the revision last applied with success (`None`:
/// nothing known applied) and the revisions in doubt, as the file store records them.
#[derive(Default)]
pub struct InForce {
    pub applied: Option<Running>,
    pub in_doubt: Vec<Running>,
}

impl InForce {
    /// Reads what the store records. A revision that no longer validates or renders (a
    /// newer daemon with stricter rules) cannot be planned from: if it is the one applied
    /// or one in doubt, nothing is known, and the next apply replaces everything.
    pub fn from_store(store: &FileStore, fqdn: &str, secrets: &Secrets) -> InForce {
        let Some(applied) = store.applied() else {
            return InForce::default();
        };
        let mut known = InForce {
            applied: running_from(applied.document.clone(), applied.rev.clone(), fqdn, secrets),
            in_doubt: Vec::new(),
        };
        if known.applied.is_none() {
            log::warn!(
                "rev {} is the one applied and cannot be planned from: the next apply replaces everything",
                applied.rev
            );
        }
        known.in_doubt_from(store, fqdn, secrets, |_| None);
        known
    }

    /// Takes the revisions in doubt from `store`, reusing what `reuse` (then this value)
    /// already rendered.
    fn in_doubt_from(
        &mut self,
        store: &FileStore,
        fqdn: &str,
        secrets: &Secrets,
        mut reuse: impl FnMut(&str) -> Option<Running>,
    ) {
        let mut before = std::mem::take(&mut self.in_doubt);
        for d in store.in_doubt() {
            let known = reuse(&d.rev).or_else(|| {
                let at = before.iter().position(|r| r.rev == d.rev)?;
                Some(before.swap_remove(at))
            });
            match known.or_else(|| running_from(d.document.clone(), d.rev.clone(), fqdn, secrets)) {
                Some(r) => self.in_doubt.push(r),
                None => {
                    log::warn!(
                        "rev {} is in doubt and cannot be planned from: the next apply replaces everything",
                        d.rev
                    );
                    self.applied = None;
                }
            }
        }
        if self.applied.is_none() {
            self.in_doubt.clear();
        }
    }

    /// What the planner starts from.
    fn snapshots(&self) -> (Option<Snapshot<'_>>, Vec<Snapshot<'_>>) {
        (
            self.applied.as_ref().map(Running::snapshot),
            self.in_doubt.iter().map(Running::snapshot).collect(),
        )
    }
}

/// The plan from `in_force` to `new`, its steps named for this host.
fn plan_to(in_force: &InForce, new: Snapshot<'_>, files_dir: &Path, unit: &str) -> Plan {
    let (applied, in_doubt) = in_force.snapshots();
    plan_from(
        ccnq_freeswitch::InForce {
            applied,
            in_doubt: &in_doubt,
        },
        new,
        Target { files_dir, unit },
    )
}

/// Shared with the API, which previews plans from it.
pub type SharedRunning = Arc<RwLock<InForce>>;

/// Rebuilds a revision from its stored document. `None` when the document no longer
/// validates or renders (a newer daemon with stricter rules).
fn running_from(document: Value, rev: String, fqdn: &str, secrets: &Secrets) -> Option<Running> {
    let validated = match ccnq_model::validate(&document, fqdn) {
        Ok(v) => v,
        Err(errors) => {
            log::warn!(
                "the stored configuration (rev {rev}) no longer validates ({})",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return None;
        }
    };
    match render(&validated.host, secrets) {
        Ok(rendering) => Some(Running {
            rev,
            validated,
            rendering,
        }),
        Err(e) => {
            log::warn!("the stored configuration (rev {rev}) no longer renders: {e}");
            None
        }
    }
}

/// The event socket's password: read from `path`, or made (random, mode 0600) on first
/// start. It lives on the data volume, never in the host document.
pub fn load_or_create_password(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let password = text.lines().next().unwrap_or("").trim().to_string();
            if password.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} is empty",
                    path.display()
                )));
            }
            return Ok(password);
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let password = ccnq_pki::new_token()?;
    let temp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    writeln!(f, "{password}")?;
    f.sync_all()?;
    std::fs::rename(&temp, path)?;
    log::info!("made a new event-socket password in {}", path.display());
    Ok(password)
}

/// Held by whatever acts on FreeSWITCH's process (an apply, a service action of the
/// local API), so that a drain or a restart of one never interleaves with the other.
pub type FreeswitchLock = Arc<tokio::sync::Mutex<()>>;

/// The apply step of the reconcile loop, for FreeSWITCH.
pub struct Freeswitch<S: Services> {
    pub applier: Applier<S>,
    /// The host's name, to validate the revisions read back from the store.
    pub fqdn: String,
    pub secrets: Secrets,
    pub running: SharedRunning,
    pub lock: FreeswitchLock,
}

impl<S: Services + 'static> Apply for Freeswitch<S> {
    async fn apply(&mut self, wanted: Wanted<'_>, progress: &Progress) -> Outcome {
        let rendering = match render(&wanted.validated.host, &self.secrets) {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    result: Err(format!("cannot render rev {}: {e}", wanted.rev)),
                    actions: vec![],
                    retry: false,
                }
            }
        };
        let plan = plan_to(
            &read(&self.running),
            Snapshot {
                host: &wanted.validated.host,
                rendering: &rendering,
            },
            &self.applier.store().link_path(),
            &self.applier.options().unit,
        );
        if plan.is_empty() {
            log::info!(
                "rev {}: nothing renders differently, nothing to do",
                wanted.rev
            );
            if let Err(e) = self.applier.confirm_unchanged(wanted.document, wanted.rev) {
                log::error!(
                    "rev {} renders as what runs, but it cannot be recorded as applied: {e}",
                    wanted.rev
                );
            }
            self.settled(wanted, rendering, true);
            return Outcome {
                result: Ok(()),
                actions: vec![],
                retry: false,
            };
        }
        log::info!("rev {}: plan ({}):\n{plan}", wanted.rev, plan.cost);
        let lock = self.lock.clone();
        let _exclusive = lock.lock().await;
        let report = self
            .applier
            .apply(&plan, &rendering, wanted.document, wanted.rev, &|p| {
                progress.pending(waiting_for(&p))
            })
            .await;
        let outcome = outcome(&report);
        self.settled(wanted, rendering, outcome.result.is_ok());
        outcome
    }
}

impl<S: Services> Freeswitch<S> {
    /// After an attempt at `wanted`: it is the revision applied if it `succeeded`, and
    /// what is in doubt is what the store says (normally nothing after a success, `wanted`
    /// among the others after a failure).
    fn settled(&self, wanted: Wanted<'_>, rendering: Rendering, succeeded: bool) {
        let mut wanted = Some(Running {
            rev: wanted.rev.to_string(),
            validated: wanted.validated.clone(),
            rendering,
        });
        let mut known = self.running.write().unwrap_or_else(|p| p.into_inner());
        if succeeded {
            known.applied = wanted.take();
            known.in_doubt.clear();
        }
        let store = self.applier.store();
        known.in_doubt_from(store, &self.fqdn, &self.secrets, |rev| {
            wanted.take_if(|w| w.rev == rev)
        });
    }
}

fn read(running: &SharedRunning) -> std::sync::RwLockReadGuard<'_, InForce> {
    running.read().unwrap_or_else(|p| p.into_inner())
}

/// `pending` as the status shows it.
fn waiting_for(p: &ccnq_apply::Progress) -> String {
    match p {
        ccnq_apply::Progress::Draining { calls } => format!(
            "draining ({calls} call{})",
            if *calls == 1 { "" } else { "s" }
        ),
        ccnq_apply::Progress::WaitingForProfile { profile, seconds } => {
            format!("waiting {seconds} s for profile {profile} (FreeSWITCH's 10-second rule)")
        }
    }
}

fn outcome(report: &ApplyReport) -> Outcome {
    let actions = report
        .actions
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok())
        .collect();
    match &report.outcome {
        ccnq_apply::Outcome::Ok => Outcome {
            result: Ok(()),
            actions,
            retry: false,
        },
        failed @ ccnq_apply::Outcome::Failed { .. } => Outcome {
            // The very words of the journal's line for it (1-based step number).
            result: Err(failed.to_string()),
            // Nothing took effect (FreeSWITCH or systemd could not be reached): trying
            // again later can work. Otherwise FreeSWITCH refused the change itself, and
            // only a new revision can fix it; retrying would drain again for nothing.
            retry: !report.actions.iter().any(|a| a.ok),
            actions,
        },
    }
}

/// Where an apply would act, for the preview to name it: the daemon's data directory
/// (the steps name the directory an apply would really write) and FreeSWITCH's unit (the
/// one its systemd jobs would really run on).
pub struct Host<'a> {
    pub fqdn: &'a str,
    pub data_dir: &'a Path,
    pub unit: &'a str,
}

/// What applying `candidate` would do now, from what may run: the plan with each step's
/// cost, or every validation error. Pure: nothing is written or sent.
pub fn preview(
    host: &Host<'_>,
    secrets: &Secrets,
    in_force: &InForce,
    candidate: &Value,
) -> PlanPreview {
    let fqdn = host.fqdn;
    let mut out = PlanPreview {
        document: candidate
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        from_rev: in_force.applied.as_ref().map(|r| r.rev.clone()),
        in_doubt: in_force.in_doubt.iter().map(|r| r.rev.clone()).collect(),
        to_rev: candidate
            .get("_rev")
            .and_then(Value::as_str)
            .map(str::to_owned),
        valid: false,
        errors: vec![],
        warnings: vec![],
        cost: None,
        steps: vec![],
        summary: String::new(),
    };
    let validated = match ccnq_model::validate(candidate, fqdn) {
        Ok(v) => v,
        Err(errors) => {
            out.summary = format!(
                "invalid ({} error{}): it would not be applied; the configuration in force would stay",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            out.errors = error_notes(errors);
            return out;
        }
    };
    out.warnings = warning_notes(&validated.warnings);
    let rendering = match render(&validated.host, secrets) {
        Ok(r) => r,
        Err(e) => {
            out.errors = vec![FieldNote {
                path: "(document)".into(),
                reason: e.to_string(),
            }];
            out.summary = "cannot be rendered: it would not be applied".into();
            return out;
        }
    };
    let p: Plan = plan_to(
        in_force,
        Snapshot {
            host: &validated.host,
            rendering: &rendering,
        },
        &ccnq_apply::files::link_path(host.data_dir),
        host.unit,
    );
    out.valid = true;
    out.cost = Some(cost(&p.cost));
    out.summary = if p.is_empty() {
        "nothing renders differently: no file written, no command sent".into()
    } else {
        format!(
            "{} step{}; {}",
            p.steps.len(),
            if p.steps.len() == 1 { "" } else { "s" },
            p.cost
        )
    };
    out.steps = p
        .steps
        .iter()
        .map(|s| {
            let mut detail = serde_json::to_value(&s.action).unwrap_or(Value::Null);
            let action = detail
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(o) = detail.as_object_mut() {
                o.remove("action");
            }
            PlanStep {
                action,
                description: s.description.clone(),
                command: s.action.esl_command().or_else(|| {
                    s.action
                        .systemd()
                        .map(|j| format!("systemd {} {}", j.verb(), host.unit))
                }),
                cost: cost(&s.cost),
                detail,
            }
        })
        .collect();
    out
}

fn cost(c: &ccnq_freeswitch::Cost) -> PlanCost {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    PlanCost {
        kind: v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        profiles: v
            .get("profiles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        description: c.to_string(),
    }
}

/// systemd over D-Bus, connected on first use: the daemon starts (and serves its API)
/// even when the bus is not there yet, and an apply that needs it fails and is retried.
/// Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct LazySystemd {
    address: Option<String>,
    conn: Arc<OnceCell<ccnq_systemd::Systemd>>,
    switched_off: Option<std::path::PathBuf>,
}

impl LazySystemd {
    /// `address`: a D-Bus address, or `None` for the system bus.
    pub fn new(address: Option<String>) -> Self {
        LazySystemd {
            address,
            conn: Arc::new(OnceCell::new()),
            switched_off: None,
        }
    }

    /// Enable and disable by a flag file `<dir>/<unit>` instead of unit-file links.
    ///
    /// The image's /etc is read-only, so `systemctl disable` cannot outlive a reboot,
    /// and the preset starts FreeSWITCH at every boot. Its unit carries
    /// `ConditionPathExists=!/var/lib/ccnq/switched-off/freeswitch.service`: the flag,
    /// on the data volume, keeps it off across reboots until it is enabled again.
    pub fn with_switched_off_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.switched_off = Some(dir);
        self
    }

    fn switch(&self, dir: &std::path::Path, unit: &str, on: bool) -> Result<String, String> {
        let flag = dir.join(unit);
        let result = if on {
            match std::fs::remove_file(&flag) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&flag, b"switched off by ccnqd\n"))
                .and_then(|_| std::fs::File::open(dir)?.sync_all())
        };
        result
            .map(|_| "done".to_owned())
            .map_err(|e| format!("{}: {e}", flag.display()))
    }

    pub async fn get(&self) -> Result<&ccnq_systemd::Systemd, String> {
        self.conn
            .get_or_try_init(|| async {
                match &self.address {
                    None => ccnq_systemd::Systemd::connect_system().await,
                    Some(a) => ccnq_systemd::Systemd::connect(a).await,
                }
            })
            .await
            .map_err(|e| format!("cannot reach systemd: {e}"))
    }
}

impl Services for LazySystemd {
    async fn job(&self, unit: &str, job: SystemdJob) -> Result<String, String> {
        match (&self.switched_off, job) {
            (Some(dir), SystemdJob::Enable) => self.switch(dir, unit, true),
            (Some(dir), SystemdJob::Disable) => self.switch(dir, unit, false),
            _ => self.get().await?.job(unit, job).await,
        }
    }
    async fn is_active(&self, unit: &str) -> Result<bool, String> {
        self.get().await?.is_active(unit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_names_the_files_directory_of_the_daemons_data_dir() {
        let doc = serde_json::json!({
            "_id": "host:sbc1.example.net", "_rev": "1-a", "type": "host",
            "host": "sbc1.example.net", "sip_domain_name": "a.phone.example.net",
            "sip_profiles": { "test": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": 5060 } }
        });
        let secrets = Secrets {
            event_socket_password: "ClueCon".into(),
        };
        let p = preview(
            &Host {
                fqdn: "sbc1.example.net",
                data_dir: Path::new("/srv/ccnq"),
                unit: "freeswitch.service",
            },
            &secrets,
            &InForce::default(),
            &doc,
        );
        assert!(p.valid, "{p:?}");
        let files: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| s.action == "replace_files")
            .map(|s| s.description.as_str())
            .collect();
        assert_eq!(files.len(), 1, "{p:#?}");
        assert!(
            files[0].contains(" in /srv/ccnq/freeswitch, "),
            "{}",
            files[0]
        );
        assert!(
            p.steps.iter().all(|s| !s.description.contains("/var/lib")),
            "{p:#?}"
        );
    }

    fn doc(rev: &str, port: u16) -> Value {
        serde_json::json!({
            "_id": "host:sbc1.example.net", "_rev": rev, "type": "host",
            "host": "sbc1.example.net", "sip_domain_name": "a.phone.example.net",
            "sip_profiles": { "test": { "ingress_sip_ip": "192.0.2.10", "ingress_sip_port": port } }
        })
    }

    fn secrets() -> Secrets {
        Secrets {
            event_socket_password: "ClueCon".into(),
        }
    }

    fn known(rev: &str, port: u16) -> Running {
        running_from(doc(rev, port), rev.into(), "sbc1.example.net", &secrets()).unwrap()
    }

    /// The commands of a preview's steps, in order.
    fn commands_of(p: &PlanPreview) -> Vec<&str> {
        p.steps
            .iter()
            .filter_map(|s| s.command.as_deref())
            .collect()
    }

    #[test]
    fn a_preview_names_the_configured_unit_in_its_systemd_steps() {
        let host = Host {
            fqdn: "sbc1.example.net",
            data_dir: Path::new("/srv/ccnq"),
            unit: "fs-e2e-1.service",
        };
        // Nothing known applied: FreeSWITCH is enabled and restarted, through systemd.
        let p = preview(&host, &secrets(), &InForce::default(), &doc("1-a", 5060));
        let systemd: Vec<(&str, &str)> = p
            .steps
            .iter()
            .filter_map(|s| Some((s.command.as_deref()?, s.description.as_str())))
            .filter(|(c, _)| c.starts_with("systemd "))
            .collect();
        assert_eq!(
            systemd,
            [
                (
                    "systemd enable fs-e2e-1.service",
                    "systemd enable fs-e2e-1.service"
                ),
                (
                    "systemd restart fs-e2e-1.service",
                    "systemd restart fs-e2e-1.service"
                )
            ],
            "{p:#?}"
        );
        assert!(
            !serde_json::to_string(&p)
                .unwrap()
                .contains("freeswitch.service"),
            "{p:#?}"
        );
    }

    #[test]
    fn a_preview_starts_from_the_revision_applied_and_every_one_in_doubt() {
        let host = Host {
            fqdn: "sbc1.example.net",
            data_dir: Path::new("/srv/ccnq"),
            unit: "freeswitch.service",
        };
        // 1-a applied on 5060; 2-b, on 5062, cut short; 2-b again: the profile may run on
        // either address, or on none.
        let in_force = InForce {
            applied: Some(known("1-a", 5060)),
            in_doubt: vec![known("2-b", 5062)],
        };
        let p = preview(&host, &secrets(), &in_force, &doc("2-b", 5062));
        assert_eq!(p.from_rev.as_deref(), Some("1-a"));
        assert_eq!(p.in_doubt, ["2-b"]);
        let commands = commands_of(&p);
        assert!(
            commands.contains(&"sofia profile test-ingress stop"),
            "{commands:?}"
        );
        assert!(
            commands.contains(&"sofia profile test-ingress start"),
            "{commands:?}"
        );
        assert!(
            !commands.iter().any(|c| c.ends_with(" restart")),
            "{commands:?}"
        );
        // Nothing in doubt: the plain move.
        let in_force = InForce {
            applied: Some(known("1-a", 5060)),
            in_doubt: vec![],
        };
        let p = preview(&host, &secrets(), &in_force, &doc("2-b", 5062));
        let commands = commands_of(&p);
        assert!(
            commands.contains(&"sofia profile test-ingress restart"),
            "{commands:?}"
        );
    }

    #[test]
    fn a_failure_reason_numbers_the_step_as_the_journal_and_the_plan_do() {
        let failed = ccnq_apply::Outcome::Failed {
            step: 3,
            action: "reloadxml".into(),
            reason: "+OK [mismatched tag]".into(),
        };
        let report = ApplyReport {
            outcome: failed.clone(),
            actions: vec![],
        };
        let o = outcome(&report);
        // Index 3 is the fourth step: `ccnqctl config plan` lists it as " 4.".
        assert_eq!(
            o.result,
            Err("step 4 (reloadxml) failed: +OK [mismatched tag]".to_string())
        );
        assert_eq!(o.result, Err(failed.to_string()));
        assert!(o.retry, "nothing took effect: a retry may work");
    }
}
