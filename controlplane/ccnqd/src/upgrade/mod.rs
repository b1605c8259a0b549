//! The host's upgrade path: from `image.version` in the document to the other slot
//! written, checked and booted, or to a refusal said in the status.
//!
//! [`plan`] decides (pure); this module does: it reads the record on `/var`, loads the
//! signed repository (`ccnq-update`), downloads into `<data_dir>/update/downloads/`,
//! writes the slot the host did not boot and its boot entry, waits for the document's
//! wave and window, drains and reboots (`Services::drain_and_reboot`), and settles the
//! reboot on the way back up. Its state is the `upgrade` part of `status:<fqdn>` and
//! `GET /v1/upgrade`. docs/upgrades.md says what each state means and what is left.

pub mod boot_check;
pub mod plan;

use crate::config::UpdateConfig;
use crate::reconcile::report::{now, Report};
use crate::services::Services;
use ccnq_api::upgrade::{ByteProgress, ProgressStep, Slot, UpgradeState, UpgradeStatus};
use ccnq_api::Version;
use ccnq_model::ImageSpec;
use ccnq_update::fetch::{self, HttpSettings, HttpTransport, Pace};
use ccnq_update::install::{self, Entries, SlotPaths};
use ccnq_update::repository::{self, Source};
use ccnq_update::ArtifactRole;
use plan::{BootCheck, Booted, Capability, EntryFound, Live, Next, Phase, Record, Target};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The newest `upgrade` part, once the path has run; `None` before (the idle one).
static CURRENT: Mutex<Option<UpgradeStatus>> = Mutex::new(None);

/// The `since` of the `idle` state before the path reports: the daemon's first report.
static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The `upgrade` part (`ccnq_api::upgrade`, read by the rollout driver). `None` off a
/// CCNQ image (no `IMAGE_VERSION` or no slot).
pub fn status(version: &Version) -> Option<UpgradeStatus> {
    let booted = booted(version)?;
    if let Some(s) = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        return Some(s);
    }
    Some(UpgradeStatus {
        booted_version: booted.version,
        booted_slot: booted.slot,
        other_slot_version: None,
        state: UpgradeState::Idle,
        target_version: None,
        reason: None,
        since: STARTED.get_or_init(now).clone(),
        progress: None,
    })
}

fn booted(version: &Version) -> Option<Booted> {
    let slot = match version.slot.as_deref()? {
        "a" => Slot::A,
        "b" => Slot::B,
        "pxe" => Slot::Pxe,
        _ => return None,
    };
    Some(Booted {
        version: version.image_version.clone()?,
        slot,
    })
}

/// Everything the path needs from the daemon.
pub struct Context {
    pub fqdn: String,
    pub data_dir: PathBuf,
    pub config: Option<UpdateConfig>,
    pub image_id: String,
    /// A network boot's interface (MAC), naming this host's file on the PXE server.
    pub boot_interface: Option<String>,
    pub report: Arc<Report>,
    pub services: Arc<Services>,
}

/// How often the path looks again while it waits (the window may open, a boot check
/// may report) when no document change wakes it first.
const TICK: Duration = Duration::from_secs(30);

/// Starts the path. Off a CCNQ image it does nothing.
pub fn spawn(ctx: Context, version: &Version) {
    let Some(booted) = booted(version) else {
        return;
    };
    tokio::spawn(run(ctx, booted));
}

async fn run(ctx: Context, booted: Booted) {
    let dir = ctx.data_dir.join("update");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log::error!("upgrade path off: {}: {e}", dir.display());
        return;
    }
    let record_path = dir.join("state.json");
    let mut record = load_record(&record_path);
    let configured = capability(&ctx, &booted);
    let mut wanted: Option<ImageSpec> = None;
    let mut document_seen = false;
    let mut live = Live {
        since: now(),
        ..Live::default()
    };
    let mut shown = Shown::default();
    loop {
        // The newest valid document; an invalid one leaves the last good one in force.
        if let Some(doc) = ctx.report.desired() {
            if let Ok(v) = ccnq_model::validate(&doc, &ctx.fqdn) {
                wanted = v.host.image;
                document_seen = true;
            }
        }
        let check = read_boot_check(&dir.join("boot-check.json"), &booted);
        let mut changed = plan::after_boot(&mut record, &booted, check.as_ref(), &now());
        changed |= plan::forget_rolled_back(&mut record, wanted.as_ref(), document_seen);
        if changed {
            save_record(&record_path, &record);
        }
        let open = wanted
            .as_ref()
            .and_then(|w| w.window.as_ref())
            .is_none_or(window_open_now);
        // A network-booted host asks its PXE server each time it has a version to take.
        let capability = match (&configured, &wanted) {
            (Capability::Pxe { .. }, Some(w)) if w.version != booted.version => {
                pxe_offer(&ctx).await
            }
            _ => configured.clone(),
        };
        let next = plan::next(wanted.as_ref(), &booted, &record, &capability, open);
        shown.publish(
            &ctx.report,
            &booted,
            &record,
            &next,
            wanted.as_ref(),
            &mut live,
        );
        match &next {
            Next::Write { version } => {
                let config = ctx.config.as_ref().expect("Capability::Slots has a config");
                let result = write(
                    &ctx,
                    config,
                    &dir,
                    &booted,
                    version,
                    &mut record,
                    &record_path,
                    progress_writer(ctx.report.clone()),
                )
                .await;
                live.progress = CURRENT
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .and_then(|s| s.progress);
                match result {
                    Ok(()) => {
                        live.error = None;
                        log::info!("upgrade: {version} written to slot {}", other(&booted));
                    }
                    Err(e) => {
                        log::warn!(
                            "upgrade: {version}: {e}; trying again in {:?}",
                            config.retry
                        );
                        live.error = Some(e);
                        shown.publish(
                            &ctx.report,
                            &booted,
                            &record,
                            &next,
                            wanted.as_ref(),
                            &mut live,
                        );
                        wait(&ctx.report, config.retry).await;
                    }
                }
            }
            Next::Reboot { version } => {
                if let (Capability::Slots, Some(config)) = (&capability, &ctx.config) {
                    let entry = entry_found(config, &ctx.image_id, version);
                    if !plan::before_reboot(&mut record, &entry) {
                        log::warn!(
                            "upgrade: not rebooting into {version}: {entry:?}; writing it again"
                        );
                        save_record(&record_path, &record);
                        continue;
                    }
                }
                live.activity = Some(UpgradeState::Draining);
                shown.publish(
                    &ctx.report,
                    &booted,
                    &record,
                    &next,
                    wanted.as_ref(),
                    &mut live,
                );
                let result = ctx
                    .services
                    .drain_and_reboot(|_| {
                        if let Some(t) = record.target.as_mut() {
                            t.phase = Phase::Rebooting;
                            t.since = now();
                        }
                        save_record(&record_path, &record);
                        live.activity = Some(UpgradeState::Rebooting);
                        shown.publish(
                            &ctx.report,
                            &booted,
                            &record,
                            &next,
                            wanted.as_ref(),
                            &mut live,
                        );
                    })
                    .await;
                match result {
                    // The host goes down; give the status writer its moment meanwhile.
                    Ok(_) => std::future::pending::<()>().await,
                    Err(e) => {
                        log::warn!("upgrade: rebooting into {version}: {e}");
                        live.activity = None;
                        live.error = Some(e);
                        wait(&ctx.report, TICK).await;
                    }
                }
            }
            _ => wait(&ctx.report, TICK).await,
        }
    }
}

/// The state last shown, so that `since` moves only when the state or its version do.
#[derive(Default)]
struct Shown(Option<(UpgradeState, Option<String>)>);

impl Shown {
    fn publish(
        &mut self,
        report: &Report,
        booted: &Booted,
        record: &Record,
        next: &Next,
        wanted: Option<&ImageSpec>,
        live: &mut Live,
    ) {
        let s = plan::status(booted, record, next, wanted, live);
        let key = (s.state, s.target_version.clone());
        if self.0.as_ref() != Some(&key) {
            live.since = now();
            log::info!(
                "upgrade: {}{}",
                key.0,
                key.1
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            );
            self.0 = Some(key);
        }
        let s = plan::status(booted, record, next, wanted, live);
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        // Only a change is worth a status write: the path looks again every tick.
        if current.as_ref() != Some(&s) {
            *current = Some(s);
            drop(current);
            report.update(|_| {});
        }
    }
}

/// How often a write under way has its progress written into `status:<fqdn>` (the
/// API shows every byte; the status document need not be rewritten for each).
const PROGRESS_WRITES: Duration = Duration::from_secs(5);

/// Sets the progress of the status already shown, without a new decision, and asks for
/// a status write at most every [`PROGRESS_WRITES`].
fn progress_writer(report: Arc<Report>) -> impl Fn(ByteProgress) + Send + Sync + Clone + 'static {
    let last = Arc::new(Mutex::new(None::<std::time::Instant>));
    move |p| {
        if let Some(s) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            s.progress = Some(p);
        }
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= PROGRESS_WRITES) {
            *last = Some(std::time::Instant::now());
            report.update(|_| {});
        }
    }
}

/// Until a new revision of the document arrives, or `at_most`.
async fn wait(report: &Report, at_most: Duration) {
    let _ = tokio::time::timeout(at_most, report.desired_changed()).await;
}

fn other(booted: &Booted) -> &'static str {
    booted.other_slot().map_or("-", Slot::as_str)
}

fn capability(ctx: &Context, booted: &Booted) -> Capability {
    if booted.slot == Slot::Pxe {
        return match ctx.config.as_ref().and_then(|c| c.pxe_url.as_ref()) {
            Some(_) => Capability::Pxe {
                offered: Err("not asked yet".into()),
            },
            None => Capability::None(
                "booted from the network, and no [update] pxe_url in ccnqd.toml to ask the \
                 PXE server which version it offers"
                    .into(),
            ),
        };
    }
    let Some(config) = ctx.config.as_ref().filter(|c| c.repository.is_some()) else {
        return Capability::None("no [update] repository in ccnqd.toml".into());
    };
    if !config.trusted_root.exists() {
        return Capability::None(format!(
            "no trusted root at {} (the image was built without --update-root)",
            config.trusted_root.display()
        ));
    }
    Capability::Slots
}

/// The written version's boot entry on the ESP.
fn entry_found(config: &UpdateConfig, image_id: &str, version: &str) -> EntryFound {
    let entries = Entries {
        dir: config.entries.clone(),
        image_id: image_id.to_owned(),
    };
    match entries.list() {
        Ok(list) => match list.into_iter().find(|e| e.version == version) {
            Some(e) if e.tries_left == Some(0) => EntryFound::NotBootable {
                why: format!("{} has no tries left", e.file),
            },
            Some(_) => EntryFound::Bootable,
            None => EntryFound::NotBootable {
                why: format!("no boot entry for {version} in {}", entries.dir.display()),
            },
        },
        // An ESP that cannot be read now does not prove the slot gone: go ahead, as
        // the record says (the boot loader falls back if the entry is not there).
        Err(e) => {
            log::warn!("upgrade: reading the boot entries: {e}");
            EntryFound::Bootable
        }
    }
}

/// HTTP to the update repository and the PXE server: the configured CA, else the system's.
fn http_settings(config: &UpdateConfig) -> HttpSettings {
    HttpSettings {
        ca_file: config.ca.clone(),
        ..HttpSettings::default()
    }
}

/// What the PXE server would boot this host into now.
async fn pxe_offer(ctx: &Context) -> Capability {
    let Some(config) = &ctx.config else {
        return Capability::None("no [update] in ccnqd.toml".into());
    };
    let Some(base) = &config.pxe_url else {
        return Capability::None("no [update] pxe_url in ccnqd.toml".into());
    };
    let settings = http_settings(config);
    let offered = ccnq_update::pxe::offered(&settings, base, ctx.boot_interface.as_deref())
        .await
        .map(|(version, _from)| version)
        .map_err(|e| e.to_string());
    Capability::Pxe { offered }
}

/// Whether the window is open now (UTC).
fn window_open_now(w: &ccnq_model::window::Window) -> bool {
    let t = time::OffsetDateTime::now_utc();
    let weekday = t.weekday().number_days_from_monday();
    w.contains(weekday, u16::from(t.hour()) * 60 + u16::from(t.minute()))
}

/// Fetches `version`, writes it to the other slot and places its boot entry.
#[allow(clippy::too_many_arguments)]
async fn write(
    ctx: &Context,
    config: &UpdateConfig,
    dir: &Path,
    booted: &Booted,
    version: &str,
    record: &mut Record,
    record_path: &Path,
    progress: impl Fn(ByteProgress) + Send + Sync + Clone + 'static,
) -> Result<(), String> {
    let slot = booted.other_slot().ok_or("no other slot")?;
    let repo = config
        .repository
        .as_ref()
        .ok_or("no [update] repository in ccnqd.toml")?;
    let settings = http_settings(config);
    let trusted_root = std::fs::read(&config.trusted_root)
        .map_err(|e| format!("{}: {e}", config.trusted_root.display()))?;
    let source = Source {
        metadata_url: repo.metadata.clone(),
        targets_url: repo.targets.clone(),
        trusted_root,
        datastore: dir.join("tuf"),
    };
    let verified = repository::load(&source, HttpTransport::new(settings.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let release = verified
        .release(&ctx.image_id, version)
        .map_err(|e| e.to_string())?;
    let uki_role = match slot {
        Slot::A => ArtifactRole::UkiA,
        _ => ArtifactRole::UkiB,
    };
    // From here the other slot is being changed: no longer trusted to hold anything.
    let resumed = record
        .target
        .as_ref()
        .is_some_and(|t| t.version == version && t.phase == Phase::Writing);
    if !resumed {
        record.target = Some(Target {
            version: version.to_owned(),
            phase: Phase::Writing,
            from: booted.version.clone(),
            since: now(),
        });
    }
    record.other_slot = None;
    save_record(record_path, record);

    let roles = [ArtifactRole::Root, ArtifactRole::Verity, uki_role];
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(|e| format!("{}: {e}", downloads.display()))?;
    // Fetched bytes, then written bytes: both count towards the bar.
    let fetch_total: u64 = roles.iter().map(|r| release.artifact(*r).length).sum();
    // The partitions are written whole: with the zero tail left off the wire.
    let write_total = release.artifact(ArtifactRole::Root).image_length
        + release.artifact(ArtifactRole::Verity).image_length;
    let total = fetch_total + write_total;
    let mut offset = 0u64;
    let mut files = Vec::new();
    for role in roles {
        let artifact = release.artifact(role).clone();
        let url = verified
            .artifact_url(&artifact)
            .map_err(|e| e.to_string())?;
        let part = downloads.join(&artifact.name);
        let p = progress.clone();
        let base = offset;
        let on_bytes = move |done: u64, _all: u64| {
            p(ByteProgress {
                done: base + done,
                total,
                step: Some(ProgressStep::Download),
            })
        };
        fetch::download(
            &settings,
            &url,
            &part,
            &artifact,
            &Pace {
                rate_limit: config.rate_limit,
                progress: &on_bytes,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        offset += artifact.length;
        files.push((artifact, part));
    }

    let entries = Entries {
        dir: config.entries.clone(),
        image_id: ctx.image_id.clone(),
    };
    let paths = SlotPaths {
        root: config.partitions.join(format!("root-{slot}")),
        verity: config.partitions.join(format!("root-{slot}-verity")),
    };
    let booted_version = booted.version.clone();
    let version_owned = version.to_owned();
    let boot_tries = config.boot_tries;
    let p = progress.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        // No entry may point at the slot while it is rewritten.
        entries
            .remove_others(&booted_version)
            .map_err(|e| e.to_string())?;
        let mut base = offset;
        for ((artifact, part), dev) in files.iter().zip([&paths.root, &paths.verity]) {
            let p = p.clone();
            let b = base;
            install::write_partition(part, dev, artifact, &move |n| {
                p(ByteProgress {
                    done: b + n,
                    total,
                    step: Some(ProgressStep::Write),
                })
            })
            .map_err(|e| e.to_string())?;
            base += artifact.image_length;
        }
        let (_, uki) = &files[2];
        entries
            .install(uki, &version_owned, &booted_version, boot_tries)
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .map_err(|e| format!("the slot writer stopped: {e}"))??;
    let _ = std::fs::remove_dir_all(&downloads);
    if let Some(t) = record.target.as_mut() {
        t.phase = Phase::Written;
        t.since = now();
    }
    record.other_slot = Some(version.to_owned());
    save_record(record_path, record);
    Ok(())
}

fn load_record(path: &Path) -> Record {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            // The slot's content is then unknown: the next write starts it over.
            log::warn!(
                "{}: {e}; starting the upgrade record afresh",
                path.display()
            );
            Record::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
        Err(e) => {
            log::warn!(
                "{}: {e}; starting the upgrade record afresh",
                path.display()
            );
            Record::default()
        }
    }
}

/// Written to a temporary file, synced and renamed: a crash leaves the old or the new.
fn save_record(path: &Path, record: &Record) {
    let tmp = path.with_extension("json.tmp");
    let result = serde_json::to_vec_pretty(record)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        log::error!("{}: {e}", path.display());
    }
}

/// What `ccnq-boot-check` wrote: `{"boot_id", "version", "ok", "reason"}`. A pass
/// counts for this boot only; a failure is read after the fall-back, from the failed
/// boot.
fn read_boot_check(path: &Path, booted: &Booted) -> Option<BootCheck> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let version = v.get("version")?.as_str()?.to_owned();
    if v.get("ok")?.as_bool()? {
        let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let same = v.get("boot_id")?.as_str()? == this_boot.trim();
        (same && version == booted.version).then_some(BootCheck::Passed)
    } else {
        let reason = v.get("reason")?.as_str()?.to_owned();
        Some(BootCheck::Failed { version, reason })
    }
}
