//! `ccnqd --boot-check`: whether this boot is good enough to keep.
//!
//! systemd-boot counts the boots of a new entry; `systemd-bless-boot` keeps it only once
//! `boot-complete.target` is reached, which `ccnq-boot-check.service` is required by.
//! A kernel that boots is not enough for a call server: the boot counts as good only
//! when `ccnqd` is READY, the local CouchDB answers with this host's document, and every
//! sofia profile that document enables is RUNNING on its address, all within the
//! deadline. The verdict is written to `/var/lib/ccnq/update/boot-check.json` (the data
//! volume both slots share), where `ccnqd` reads it: a pass blesses this boot, a
//! failure is the reason reported after the fall-back. On failure the unit reboots, so
//! the entry's tries run down and the boot loader goes back to the previous slot.
//!
//! [`verdict`] is pure; [`run`] gathers the facts from systemd, CouchDB and FreeSWITCH.

use crate::config::Config;
use ccnq_esl::SofiaStatus;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the check saw on one look.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `Err(why)` unless `ccnqd.service` is active (Type=notify: READY sent).
    pub ccnqd: Result<(), String>,
    /// The profiles the host's document enables, with their addresses; `Err(why)` when
    /// the local CouchDB did not answer with a valid document.
    pub profiles: Result<Vec<(String, SocketAddr)>, String>,
    /// FreeSWITCH's `sofia xmlstatus`, when it answered.
    pub sofia: Result<SofiaStatus, String>,
}

/// `Ok` when the boot is good; otherwise every reason it is not.
pub fn verdict(f: &Facts) -> Result<(), String> {
    let mut why = Vec::new();
    if let Err(e) = &f.ccnqd {
        why.push(format!("ccnqd is not ready: {e}"));
    }
    match &f.profiles {
        Err(e) => why.push(format!("the local CouchDB: {e}")),
        Ok(profiles) if profiles.is_empty() => {}
        Ok(profiles) => match &f.sofia {
            Err(e) => why.push(format!("FreeSWITCH: {e}")),
            Ok(status) => {
                for (name, bind) in profiles {
                    if !status.is_running_at(name, &bind.to_string()) {
                        let seen = status.profile(name).map_or("not listed".to_owned(), |e| {
                            format!("{} at {}", e.state, e.data)
                        });
                        why.push(format!("profile {name} is not RUNNING on {bind} ({seen})"));
                    }
                }
            }
        },
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// Looks until the boot is good or `deadline` passes, writes the verdict, and exits 0
/// (good) or 1.
pub async fn run(config: &Config, deadline: Duration) -> ExitCode {
    let version = crate::system::version(&config.os_release, &config.kernel_cmdline);
    let started = Instant::now();
    let mut last;
    loop {
        let facts = gather(config).await;
        last = verdict(&facts);
        if last.is_ok() || started.elapsed() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let record = serde_json::json!({
        "boot_id": boot_id.trim(),
        "version": version.image_version,
        "ok": last.is_ok(),
        "reason": last.as_ref().err(),
        "at": crate::reconcile::report::now(),
    });
    let dir = config.data_dir.join("update");
    let path = dir.join("boot-check.json");
    let tmp = dir.join("boot-check.json.tmp");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, record.to_string()))
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        log::error!("{}: {e}", path.display());
    }
    match last {
        Ok(()) => {
            log::info!(
                "boot check passed: this boot of {} is kept",
                version.image_version.as_deref().unwrap_or("?")
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            log::error!("boot check failed within {} s: {why}", deadline.as_secs());
            ExitCode::FAILURE
        }
    }
}

async fn gather(config: &Config) -> Facts {
    let ccnqd = match ccnq_systemd_connect(config).await {
        Ok(sd) => match sd.unit_info("ccnqd.service").await {
            Ok(i) if i.active_state.as_str() == "active" => Ok(()),
            Ok(i) => Err(format!("ccnqd.service is {}", i.active_state.as_str())),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    let profiles = profiles(config).await;
    let sofia = match &profiles {
        Ok(p) if !p.is_empty() => sofia(config).await,
        _ => Ok(SofiaStatus::default()),
    };
    Facts {
        ccnqd,
        profiles,
        sofia,
    }
}

async fn ccnq_systemd_connect(config: &Config) -> Result<ccnq_systemd::Systemd, String> {
    match &config.systemd_bus {
        Some(addr) => ccnq_systemd::Systemd::connect(addr).await,
        None => ccnq_systemd::Systemd::connect_system().await,
    }
    .map_err(|e| e.to_string())
}

/// The enabled profiles of the host's document, read from the local CouchDB.
async fn profiles(config: &Config) -> Result<Vec<(String, SocketAddr)>, String> {
    let couch = config
        .couchdb
        .as_ref()
        .ok_or("no [couchdb] in ccnqd.toml")?;
    let auth = match &couch.credentials {
        Some((user, password)) => ccnq_couch::Auth::basic(user, password),
        None => ccnq_couch::Auth::None,
    };
    let mut cc = ccnq_couch::ClientConfig::new(&couch.url, auth);
    cc.ca_file = couch.ca.clone();
    let db = ccnq_couch::Client::new(cc)
        .map_err(|e| e.to_string())?
        .db(&couch.database);
    let id = format!("host:{}", config.host);
    let doc = db
        .get_opt(&id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no document {id}"))?;
    let valid = ccnq_model::validate(&doc, &config.host)
        .map_err(|errors| format!("{id} is not valid ({} errors)", errors.len()))?;
    let host = valid.host;
    if !host.freeswitch_runs() {
        return Ok(Vec::new());
    }
    Ok(host
        .sofia_profiles()
        .map(|p| (p.name, SocketAddr::new(p.ip, p.port)))
        .collect())
}

async fn sofia(config: &Config) -> Result<SofiaStatus, String> {
    let fs = &config.freeswitch;
    let esl = crate::event_socket::connect_configured(fs).await?;
    let o = esl.sofia_xmlstatus().await.map_err(|e| e.to_string())?;
    o.result.map_err(|_| o.response.body.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(entries: &[(&str, &str, &str)]) -> SofiaStatus {
        SofiaStatus {
            entries: entries
                .iter()
                .map(|(name, data, state)| ccnq_esl::SofiaStatusEntry {
                    name: (*name).into(),
                    kind: "profile".into(),
                    data: (*data).into(),
                    state: (*state).into(),
                })
                .collect(),
        }
    }

    fn facts(sofia: SofiaStatus) -> Facts {
        Facts {
            ccnqd: Ok(()),
            profiles: Ok(vec![
                ("test-ingress".into(), "192.0.2.10:5200".parse().unwrap()),
                ("test-egress".into(), "192.0.2.10:5201".parse().unwrap()),
            ]),
            sofia: Ok(sofia),
        }
    }

    #[test]
    fn a_boot_with_every_profile_running_on_its_address_is_good() {
        let s = status(&[
            (
                "test-ingress",
                "sip:mod_sofia@192.0.2.10:5200",
                "RUNNING (0)",
            ),
            (
                "test-egress",
                "sip:mod_sofia@192.0.2.10:5201",
                "RUNNING (0)",
            ),
        ]);
        assert_eq!(verdict(&facts(s)), Ok(()));
    }

    #[test]
    fn every_reason_a_boot_is_bad_is_given() {
        let s = status(&[(
            "test-ingress",
            "sip:mod_sofia@192.0.2.99:5200",
            "RUNNING (0)",
        )]);
        let mut f = facts(s);
        f.ccnqd = Err("ccnqd.service is activating".into());
        let why = verdict(&f).unwrap_err();
        assert!(
            why.contains("ccnqd is not ready: ccnqd.service is activating"),
            "{why}"
        );
        assert!(why.contains("profile test-ingress is not RUNNING on 192.0.2.10:5200 (RUNNING (0) at sip:mod_sofia@192.0.2.99:5200)"), "{why}");
        assert!(
            why.contains("profile test-egress is not RUNNING on 192.0.2.10:5201 (not listed)"),
            "{why}"
        );
    }

    #[test]
    fn a_host_without_profiles_needs_no_freeswitch_but_needs_its_couchdb() {
        let f = Facts {
            ccnqd: Ok(()),
            profiles: Ok(Vec::new()),
            sofia: Err("connection refused".into()),
        };
        assert_eq!(verdict(&f), Ok(()));
        let f = Facts {
            profiles: Err("connection refused".into()),
            ..f
        };
        assert!(verdict(&f)
            .unwrap_err()
            .contains("the local CouchDB: connection refused"));
    }
}
