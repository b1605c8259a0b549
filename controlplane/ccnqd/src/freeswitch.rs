//! FreeSWITCH as the reconcile loop sees it: renders a validated host, plans the least
//! change from what runs, and has `ccnq-apply` carry the plan out.
//!
//! What runs is known from the file store (`ccnq_apply::FileStore` keeps the applied
//! document beside each generation of files), so after a restart the plan is computed
//! from the real previous state, and a document equal to it costs nothing. The same
//! state backs the plan preview of the local API ([`preview`]), which must show exactly
//! what an apply would do.

use crate::reconcile::report::{error_notes, warning_notes};
use crate::reconcile::{Apply, Outcome, Progress, Wanted};
use ccnq_api::{FieldNote, PlanCost, PlanPreview, PlanStep};
use ccnq_apply::{Applier, ApplyReport, Services};
use ccnq_freeswitch::{plan, render, Plan, Rendering, Secrets, Snapshot, SystemdJob};
use ccnq_model::Validated;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::OnceCell;

/// The configuration in force: its revision, its model and its rendering.
pub struct Running {
    pub rev: String,
    pub validated: Validated,
    pub rendering: Rendering,
}

/// Shared with the API, which previews plans from it.
pub type SharedRunning = Arc<RwLock<Option<Running>>>;

/// Rebuilds what runs from the stored document. `None` when nothing is stored, or when
/// the stored document no longer validates or renders (a newer daemon with stricter
/// rules): the next apply then starts from "unknown", which replaces everything.
pub fn running_from(
    document: Value,
    rev: String,
    fqdn: &str,
    secrets: &Secrets,
) -> Option<Running> {
    let validated = match ccnq_model::validate(&document, fqdn) {
        Ok(v) => v,
        Err(errors) => {
            log::warn!(
                "the stored configuration (rev {rev}) no longer validates ({}): the next apply replaces everything",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
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
        let plan = {
            let running = read(&self.running);
            plan(
                running.as_ref().map(|r| Snapshot {
                    host: &r.validated.host,
                    rendering: &r.rendering,
                }),
                Snapshot {
                    host: &wanted.validated.host,
                    rendering: &rendering,
                },
                &self.applier.store().link_path(),
            )
        };
        if plan.is_empty() {
            log::info!(
                "rev {}: nothing renders differently, nothing to do",
                wanted.rev
            );
            self.set_running(wanted, rendering);
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
        if outcome.result.is_ok() {
            self.set_running(wanted, rendering);
        }
        outcome
    }
}

impl<S: Services> Freeswitch<S> {
    fn set_running(&self, wanted: Wanted<'_>, rendering: Rendering) {
        *self.running.write().unwrap_or_else(|p| p.into_inner()) = Some(Running {
            rev: wanted.rev.to_string(),
            validated: wanted.validated.clone(),
            rendering,
        });
    }
}

fn read(running: &SharedRunning) -> std::sync::RwLockReadGuard<'_, Option<Running>> {
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

/// What applying `candidate` would do now, from what runs: the plan with each step's
/// cost, or every validation error. Pure: nothing is written or sent. `data_dir` is the
/// daemon's: the steps name the directory an apply would really write.
pub fn preview(
    fqdn: &str,
    secrets: &Secrets,
    data_dir: &Path,
    running: Option<&Running>,
    candidate: &Value,
) -> PlanPreview {
    let mut out = PlanPreview {
        document: candidate
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        from_rev: running.map(|r| r.rev.clone()),
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
    let p: Plan = plan(
        running.map(|r| Snapshot {
            host: &r.validated.host,
            rendering: &r.rendering,
        }),
        Snapshot {
            host: &validated.host,
            rendering: &rendering,
        },
        &ccnq_apply::files::link_path(data_dir),
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
                        .map(|j| format!("systemd {} freeswitch.service", job(j)))
                }),
                cost: cost(&s.cost),
                detail,
            }
        })
        .collect();
    out
}

fn job(j: SystemdJob) -> &'static str {
    match j {
        SystemdJob::Restart => "restart",
        SystemdJob::Start => "start",
        SystemdJob::Stop => "stop",
        SystemdJob::Enable => "enable",
        SystemdJob::Disable => "disable",
    }
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
            "sbc1.example.net",
            &secrets,
            Path::new("/srv/ccnq"),
            None,
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
