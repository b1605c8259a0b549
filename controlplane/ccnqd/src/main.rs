//! `ccnqd`: the control-plane daemon of a CCNQ5 host.
//!
//! Start-up order matters and is the daemon's contract with systemd: configuration is
//! checked first (a mistake stops us with the key named), then the data volume (a
//! read-only or missing one stops us), then TLS material (made on first start), then the
//! listeners are bound, and only then is `READY=1` sent.

mod api;
mod audit;
mod auth;
mod config;
mod logging;
mod notify;
mod server;
mod system;
mod tls;
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
    let daemon = Arc::new(api::Daemon::new(config, audit));
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
