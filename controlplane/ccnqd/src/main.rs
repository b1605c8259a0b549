//! `ccnqd`: the control-plane daemon of a CCNQ5 host.
//!
//! Start-up order matters and is the daemon's contract with systemd: configuration is
//! checked first (a mistake stops us with the key named), then the data volume (a
//! read-only or missing one stops us), then TLS material (made on first start), then the
//! listeners are bound, and only then is `READY=1` sent.

mod api;
mod audit;
mod auth;
mod bundle;
mod capture;
mod config;
mod event_socket;
mod freeswitch;
mod journal;
mod logging;
mod metrics;
mod notify;
mod reconcile;
mod server;
mod services;
mod system;
mod tls;
mod upgrade;
mod volume;

use clap::Parser;
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Exit status for a configuration error (sysexits' EX_CONFIG): the unit file tells
/// systemd not to restart on it, since trying again cannot help.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(version, about = "The CCNQ5 control-plane daemon")]
struct Args {
    /// The daemon's configuration file.
    #[arg(long, short, default_value = config::DEFAULT_PATH, env = "CCNQD_CONFIG")]
    config: PathBuf,
    /// Check the configuration and the data directory, then exit.
    #[arg(long)]
    check: bool,
    /// Decide whether this boot is good enough to keep (ccnq-boot-check.service, for
    /// boot-complete.target): exit 0 once ccnqd is READY, the local CouchDB answers and
    /// every enabled profile is RUNNING on its address, 1 at the deadline.
    #[arg(long)]
    boot_check: bool,
    /// How long the boot check waits for all of that [default: update.boot_check_deadline_secs
    /// of the configuration, 300 s without an [update] section].
    #[arg(long)]
    boot_check_deadline_secs: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ccnqd: configuration error: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Err(e) = logging::init(config.log_level, &config.host) {
        eprintln!("ccnqd: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = volume::check_writable(&config.data_dir) {
        log::error!("{e}");
        return ExitCode::FAILURE;
    }
    if args.check {
        println!("configuration {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.boot_check {
        let deadline = match (args.boot_check_deadline_secs, &config.update) {
            (Some(secs), _) => std::time::Duration::from_secs(secs),
            (None, Some(update)) => update.boot_check_deadline,
            (None, None) => std::time::Duration::from_secs(300),
        };
        return runtime.block_on(upgrade::boot_check::run(&config, deadline));
    }
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;

    let mut names = vec![config.host.clone()];
    names.extend(config.api.names.iter().cloned());
    names.extend([
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ]);
    let identity = tls::load_or_generate_identity(&config.api, &config.data_dir, &names)?;
    if identity.generated {
        log::warn!(fingerprint = identity.fingerprint.as_str(); "generated a self-signed server certificate; its SHA-256 fingerprint is {}", identity.fingerprint);
    } else {
        log::info!(fingerprint = identity.fingerprint.as_str(); "server certificate fingerprint {}", identity.fingerprint);
    }
    let admin_ca = tls::load_admin_ca(&config.api.admin_ca)?;
    let tls_config = tls::server_config(identity, admin_ca)?;
    let audit = audit::AuditLog::open(&config.data_dir)
        .with_context(|| format!("cannot open the audit log in {}", config.data_dir.display()))?;
    log::info!("audit log: {}", audit.path().display());

    let listeners = server::bind(&config.api.listen).await?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let grace = config.api.shutdown_grace;
    let data_dir = config.data_dir.clone();
    let limit = config.api.max_connections;
    let report = Arc::new(reconcile::report::Report::new(
        config
            .couchdb
            .as_ref()
            .map(|_| format!("host:{}", config.host)),
    ));
    // One systemd connection and one FreeSWITCH lock for the apply step and the API.
    let systemd = freeswitch::LazySystemd::new(config.systemd_bus.clone())
        .with_switched_off_dir(config.data_dir.join("switched-off"));
    let services = Arc::new(services::Services::new(
        &config,
        systemd,
        Arc::default(),
        report.clone(),
    ));
    reconcile::status::attach_services(services.state.clone());
    tokio::spawn(services::watch(services.clone()));
    let followed = follow(&config, &report, &services)?;
    let mut daemon = api::Daemon::new(config, audit, report, services);
    if let Some((planner, couch)) = followed {
        daemon.planner = Some(planner);
        daemon.couch = Some(couch);
    }
    let daemon = Arc::new(daemon);
    let server = Arc::new(server::Server {
        daemon: daemon.clone(),
        acceptor: tokio_rustls::TlsAcceptor::from(tls_config),
        limit: Arc::new(tokio::sync::Semaphore::new(limit)),
        shutdown: shutdown_rx,
        done: done_tx,
    });
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(server::accept_loop(server.clone(), l)))
        .collect();
    drop(server);

    // Handlers first: a SIGTERM that follows READY=1 at once must stop us cleanly, not
    // kill us with the default action.
    let signals = Signals::install()?;
    notify::ready("serving the local API");
    log::info!("ready");

    if let Some(interval) = notify::watchdog_interval() {
        let loops_alive: Vec<_> = loops.iter().map(|h| h.abort_handle()).collect();
        tokio::spawn(notify::watchdog(interval, move || {
            if loops_alive.iter().any(|h| h.is_finished()) {
                return Err("an API listener stopped".into());
            }
            volume::check_writable(&data_dir)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }

    signals.wait().await;
    log::info!("stopping: finishing in-flight requests (at most {grace:?})");
    notify::stopping();
    daemon.stopping.store(true, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Every connection task holds a sender; recv() yields None when the last one ends.
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        log::warn!("grace period over: dropping the connections still open");
    }
    log::info!("stopped");
    Ok(())
}

/// Starts following the host document, when `[couchdb]` says where it is: the
/// reconcile loop with the FreeSWITCH applier, and the replication keeper. Returns what
/// the API needs to preview plans, and the local CouchDB's client for its diagnostics.
fn follow(
    config: &Config,
    report: &Arc<reconcile::report::Report>,
    services: &Arc<services::Services>,
) -> anyhow::Result<Option<(api::Planner, ccnq_couch::Client)>> {
    use anyhow::Context;
    use ccnq_couch::{Auth, Client, ClientConfig};

    let Some(couch) = &config.couchdb else {
        log::warn!("no [couchdb] section in the configuration: following no host document");
        return Ok(None);
    };
    let fs = &config.freeswitch;
    let password = freeswitch::load_or_create_password(&fs.password_file).with_context(|| {
        format!(
            "cannot read or make the event-socket password {}",
            fs.password_file.display()
        )
    })?;
    let secrets = ccnq_freeswitch::Secrets {
        event_socket_password: password.clone(),
    };

    let store = ccnq_apply::FileStore::open(&config.data_dir)
        .context("cannot open the FreeSWITCH file store")?;
    // Checked once: a damaged generation stops us here, not in the first apply.
    let installed = store
        .current()
        .context("cannot read the installed FreeSWITCH files")?;
    if let Some(applied) = store.applied() {
        log::info!(
            "configuration in force: rev {}{}",
            applied.rev,
            match store.in_doubt() {
                [] => String::new(),
                d => format!(
                    "; in doubt (an apply began and did not succeed, it is carried out again from there): rev {}",
                    d.iter().map(|d| d.rev.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        );
        if let Some(i) = installed.filter(|i| !i.confirmed) {
            log::warn!(
                "the files linked are generation {} (rev {}), installed by an apply that did not succeed",
                i.generation,
                i.rev
            );
        }
        // What the status says is applied until an apply here succeeds.
        report.update_quietly(|r| {
            r.applied = Some(ccnq_api::AppliedPoint {
                rev: applied.rev.clone(),
                seq: None,
                at: time::OffsetDateTime::from(applied.at())
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            })
        });
    }
    let running: freeswitch::SharedRunning = Arc::new(std::sync::RwLock::new(
        freeswitch::InForce::from_store(&store, &config.host, &secrets),
    ));
    let mut options = ccnq_apply::ApplyOptions::new(password, fs.drain_deadline);
    options.esl_addr = fs.event_socket;
    options.command_timeout = fs.command_timeout;
    options.confirm_deadline = fs.confirm_deadline;
    options.unit = fs.unit.clone();
    let applier = services::Enforce {
        inner: freeswitch::Freeswitch {
            applier: ccnq_apply::Applier::new(store, services.systemd().clone(), options),
            fqdn: config.host.clone(),
            secrets: secrets.clone(),
            running: running.clone(),
            lock: services.freeswitch_lock(),
        },
        services: services.clone(),
        running: running.clone(),
        enforced: false,
    };

    let auth = match &couch.credentials {
        Some((user, password)) => Auth::basic(user, password),
        None => Auth::None,
    };
    let mut client_config = ClientConfig::new(&couch.url, auth);
    client_config.ca_file = couch.ca.clone();
    client_config.read_timeout = couch.heartbeat * 3;
    let client = Client::new(client_config).context("couchdb.url")?;
    let version = system::version(&config.os_release, &config.kernel_cmdline);
    reconcile::spawn(
        client.db(&couch.database),
        reconcile::Settings {
            fqdn: config.host.clone(),
            data_dir: config.data_dir.clone(),
            heartbeat: couch.heartbeat,
            reconnect_max: couch.reconnect_max,
            credentials_retry: couch.credentials_retry,
            database_check: couch.database_check,
            retry_initial: std::time::Duration::from_secs(1),
            retry_max: couch.apply_retry_max,
        },
        applier,
        report.clone(),
        version.clone(),
    );
    upgrade::spawn(
        upgrade::Context {
            fqdn: config.host.clone(),
            data_dir: config.data_dir.clone(),
            config: config.update.clone(),
            image_id: version.image_id.clone().unwrap_or_else(|| "ccnq".into()),
            boot_interface: system::boot_interface(&config.kernel_cmdline),
            report: report.clone(),
            services: services.clone(),
        },
        &version,
    );

    if let Some(central) = &couch.central {
        use ccnq_couch::replication::{Endpoint, ReplicationSpec};
        let spec = ReplicationSpec {
            fqdn: config.host.clone(),
            central: Endpoint {
                url: central.url.clone(),
                basic: central.credentials.clone(),
            },
            local: Endpoint {
                url: central.local_url.clone(),
                basic: couch.credentials.clone(),
            },
        };
        log::info!("replicating host:{} from {}", config.host, central.url);
        tokio::spawn(reconcile::replication::run(
            reconcile::replication::Keeper {
                local: client.db(&couch.database),
                replicator: client.db("_replicator"),
                spec,
                every: central.check_interval,
                credentials_retry: couch.credentials_retry,
            },
            report.clone(),
        ));
    } else {
        log::info!("no [couchdb.central]: following the local database only");
    }
    Ok(Some((api::Planner { running, secrets }, client)))
}

/// SIGTERM (systemd's stop) and SIGINT (a terminal's Ctrl-C), both meaning "stop cleanly".
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => log::info!("SIGTERM received"),
            _ = self.int.recv() => log::info!("SIGINT received"),
        }
    }
}
