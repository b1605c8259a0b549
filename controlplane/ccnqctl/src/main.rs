//! `ccnqctl`: the operator's command line for a CCNQ5 host's local API, and (`fleet`)
//! for the whole fleet through the central CouchDB.
//!
//! Output is a table for people and the API's own JSON with `-o json`. Exit codes are a
//! contract with scripts (see `EXIT CODES` in `--help`): a script can tell "the host is
//! unreachable" from "you may not" from "the host refused the request".

mod client;
mod diagnostics;
mod fleet;
mod output;
mod pki;
mod release;
mod settings;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use client::{CallError, Target};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  unexpected answer from the server
  2  usage or local setup error (flags, files, credentials)
  3  the host could not be reached (connection, TLS, timeout)
  4  not authenticated (401) or not allowed (403)
  5  the server failed (5xx)
  6  the server refused the request (other 4xx)
  7  `config plan`: the document would be refused (its errors are printed)
  8  `services start|stop|restart`: systemd's job ended otherwise than `done`
     (failed, timeout, …), or FreeSWITCH could not be drained so nothing was
     done; the report is printed on standard output
  9  `config`: the host's configuration state is `failed` (the last attempt
     failed; the configuration in force is kept); the report is printed
 10  `config`: the state is `pending` (an apply is under way) or `waiting` (no
     revision of the document seen yet): not settled, ask again later; the
     report is printed
 11  `fleet rollout`: the rollout is halted (its reason is printed); the host
     documents are left as they are
 12  `fleet rollout`: the rollout document is invalid (each problem printed
     with its path); nothing was done";

/// `config`: the host's configuration state is `failed`.
const EXIT_CONFIG_FAILED: u8 = 9;
/// `config`: the host's configuration state is `pending` or `waiting`.
const EXIT_CONFIG_NOT_SETTLED: u8 = 10;
/// `fleet rollout`: the rollout is halted.
const EXIT_FLEET_HALTED: u8 = 11;
/// `fleet rollout`: the rollout document is invalid.
const EXIT_ROLLOUT_INVALID: u8 = 12;

#[derive(Parser)]
#[command(name = "ccnqctl", version, about = "Operate a CCNQ5 host through its local API", after_help = EXIT_CODES)]
struct Cli {
    /// The host's API, e.g. https://sbc1.example.net:8443.
    #[arg(long, env = "CCNQ_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// CA certificate that issued the server's certificate (PEM).
    #[arg(long, env = "CCNQ_CA", global = true)]
    ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (as ccnqd logs it).
    #[arg(long, env = "CCNQ_SERVER_FINGERPRINT", global = true)]
    server_fingerprint: Option<String>,
    /// Client certificate (PEM), signed by the site's admin CA.
    #[arg(long, env = "CCNQ_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Private key of the client certificate (PEM).
    #[arg(long, env = "CCNQ_KEY", global = true)]
    key: Option<PathBuf>,
    /// File holding a bearer token (instead of a client certificate).
    #[arg(long, env = "CCNQ_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Settings file [default: ~/.config/ccnq/ccnqctl.toml].
    #[arg(long, env = "CCNQCTL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    /// Give up after this many seconds [default: 10; 900 for `services start|stop|restart`,
    /// which wait for a drain and systemd's job, and for `support-bundle`].
    #[arg(long, global = true)]
    timeout: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Is the daemon up? (needs no credentials)
    Health,
    /// Daemon and image versions, and the booted slot.
    Version,
    /// Uptime, configuration state and the data volume.
    Status,
    /// The host's image upgrade.
    #[command(subcommand)]
    Upgrade(UpgradeCommand),
    /// The host document: desired and applied revisions, the last attempt with its
    /// errors and actions, the changes feed and the replication.
    Config {
        #[command(subcommand)]
        action: Option<ConfigCommand>,
    },
    /// The managed services (FreeSWITCH, CouchDB): list them, or start, stop or restart
    /// one (operator role; FreeSWITCH's calls are drained before a stop or restart).
    Services {
        #[command(subcommand)]
        action: Option<ServicesCommand>,
    },
    /// A tar.gz of the host's state for a support ticket, secrets redacted (operator
    /// role; audited), with its progress on standard error.
    SupportBundle {
        /// Where to write it; `-` for standard output. (`-w`, as a capture's: `-o` is
        /// the output format everywhere.)
        #[arg(short = 'w', long = "write", default_value = "ccnq-support.tar.gz")]
        out: PathBuf,
        /// The journal's last N hours instead of this boot's.
        #[arg(long)]
        hours: Option<u32>,
    },
    /// Capture packets on the host, streamed as a pcap file while it runs (operator
    /// role; audited): `ccnqctl capture -f 'udp port 5060' -w - | tshark -r -`.
    Capture(diagnostics::CaptureArgs),
    /// The daemon's metrics, as Prometheus scrapes them (OpenMetrics text; reader role).
    Metrics,
    /// The journal of the managed units and of ccnqd: filtered, and followed with -f
    /// (reader role). `-o json`: the API's JSON lines as they come.
    Logs(diagnostics::LogsArgs),
    /// The local CouchDB: up, its databases and sizes, its replication jobs and their
    /// lag, its active tasks (reader role).
    Couchdb,
    /// What FreeSWITCH runs now: its sofia profiles, gateways, calls in progress and
    /// registrations (reader role; read-only).
    #[command(subcommand)]
    Fs(diagnostics::FsCommand),
    /// Show the daemon's log level, or set it (operator role).
    LogLevel {
        /// error, warn, info, debug or trace.
        level: Option<String>,
    },
    /// Certificates for a site: the admin CA, role certificates, server certificates.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Bearer tokens for scripts.
    #[command(subcommand)]
    Token(pki::TokenCommand),
    /// The whole fleet, through the central CouchDB: carry out a rollout, show every
    /// host's upgrade.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// The update repository: a signing key, its trusted root, publishing an image
    /// build (signed TUF metadata over plain files, for any web server or mirror).
    #[command(subcommand)]
    Release(release::ReleaseCommand),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum UpgradeCommand {
    /// The booted image and slot, the other slot's version, and where an upgrade stands
    /// (with a progress bar while it downloads or writes).
    Status,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// What applying a host document would do now, from the configuration in force: each
    /// step, its command and what it costs the calls in progress. Nothing is done.
    Plan {
        /// A host document (JSON); `-` for standard input. Without it: the newest
        /// revision the host has seen.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ServicesCommand {
    /// Start a managed unit and wait for systemd's job.
    Start(ServiceArgs),
    /// Stop a managed unit (FreeSWITCH: after draining its calls).
    Stop(ServiceArgs),
    /// Restart a managed unit (FreeSWITCH: after draining its calls).
    Restart(ServiceArgs),
}

#[derive(clap::Args)]
struct ServiceArgs {
    /// The unit, with or without `.service` (e.g. `freeswitch`).
    name: String,
    /// Do not drain FreeSWITCH's calls: they drop (admin role).
    #[arg(long)]
    force: bool,
}

/// Default wait for a service action: the daemon's default drain deadline (300 s) plus
/// systemd's job limit (120 s), with room.
const SERVICE_ACTION_TIMEOUT: f64 = 900.0;

/// A failure, with the exit code it maps to.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        let code = match e {
            CallError::Setup(_) => 2,
            CallError::Connect { .. } => 3,
            CallError::Http(_) => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ccnqctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Pki(cmd) => return pki::run_pki(cmd).map_err(usage),
        Command::Token(cmd) => return pki::run_token(cmd).map_err(usage),
        Command::Fleet(cmd) => return fleet::run(cmd, cli.output),
        Command::Release(cmd) => return release::run(cmd).map_err(usage),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "ccnqctl",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        _ => {}
    }
    let target = target(&cli)?;
    runtime()?.block_on(api_command(&cli, &target))
}

/// The single-threaded runtime each command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })
}

/// Merges flags and environment (clap) with the settings file.
fn target(cli: &Cli) -> Result<Target, Failure> {
    let file = match &cli.config {
        Some(path) => settings::load(path, true),
        None => {
            settings::default_path().map_or(Ok(Default::default()), |p| settings::load(&p, false))
        }
    }
    .map_err(usage)?;
    let endpoint = cli
        .endpoint
        .clone()
        .or(file.endpoint)
        .unwrap_or_else(|| "https://localhost:8443".into());
    let endpoint: http::Uri = endpoint
        .parse()
        .map_err(|e| usage(format!("--endpoint {endpoint}: {e}")))?;
    let fingerprint = match cli.server_fingerprint.clone().or(file.server_fingerprint) {
        Some(text) => Some(ccnq_pki::parse_fingerprint(&text).ok_or_else(|| {
            usage(format!(
                "--server-fingerprint {text:?}: expected 64 hex digits (colons allowed)"
            ))
        })?),
        None => None,
    };
    let cert = cli.cert.clone().or(file.cert);
    let key = cli.key.clone().or(file.key);
    let cert_and_key = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(usage("--cert and --key go together".into())),
    };
    let token = match cli.token_file.clone().or(file.token_file) {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("--token-file {}: {e}", path.display())))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("CCNQ_TOKEN").ok(),
    };
    // Long work before the answer starts: a service action's job, a bundle's gathering.
    let acting = matches!(
        cli.command,
        Command::Services { action: Some(_) } | Command::SupportBundle { .. } | Command::Capture(_)
    );
    let timeout = cli
        .timeout
        .unwrap_or(if acting { SERVICE_ACTION_TIMEOUT } else { 10.0 });
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(usage(
            "--timeout must be a positive number of seconds".into(),
        ));
    }
    Ok(Target {
        endpoint,
        ca: cli.ca.clone().or(file.ca),
        fingerprint,
        cert_and_key,
        token,
        timeout: Duration::from_secs_f64(timeout),
    })
}

async fn api_command(cli: &Cli, target: &Target) -> Result<(), Failure> {
    use http::Method;
    let text = match &cli.command {
        Command::Health => show(
            cli,
            target.call(Method::GET, "/v1/health", None).await?,
            output::health,
        )?,
        Command::Version => show(
            cli,
            target.call(Method::GET, "/v1/version", None).await?,
            output::version,
        )?,
        Command::Status => show(
            cli,
            target.call(Method::GET, "/v1/status", None).await?,
            output::status,
        )?,
        Command::Upgrade(UpgradeCommand::Status) => show(
            cli,
            target.call(Method::GET, "/v1/upgrade", None).await?,
            output::upgrade,
        )?,
        Command::Config { action: None } => {
            let reply = target.call(Method::GET, "/v1/config", None).await?;
            let report = serde_json::from_slice::<ccnq_api::ConfigReport>(&reply.body).ok();
            let text = show(cli, reply, output::config)?;
            if let Some(failure) = report.as_ref().and_then(config_state) {
                print!("{text}");
                return Err(failure);
            }
            text
        }
        Command::Config {
            action: Some(ConfigCommand::Plan { file }),
        } => {
            let reply = match file {
                None => target.call(Method::GET, "/v1/config/plan", None).await?,
                Some(path) => {
                    let body = read_document(path)?;
                    target
                        .call(Method::POST, "/v1/config/plan", Some(body))
                        .await?
                }
            };
            let valid = serde_json::from_slice::<ccnq_api::PlanPreview>(&reply.body)
                .map(|p| p.valid)
                .unwrap_or(true);
            let text = show(cli, reply, output::plan)?;
            if !valid {
                print!("{text}");
                return Err(Failure {
                    code: 7,
                    message: "the document would be refused".into(),
                });
            }
            text
        }
        Command::SupportBundle { out, hours } => {
            let path = match hours {
                Some(h) => format!("/v1/support-bundle?hours={h}"),
                None => "/v1/support-bundle".into(),
            };
            diagnostics::save(target, Method::GET, &path, None, out, "support bundle").await?
        }
        Command::Capture(args) => {
            let body = serde_json::to_vec(&args.body()).unwrap_or_default();
            diagnostics::save(
                target,
                Method::POST,
                "/v1/capture",
                Some(body),
                &args.write,
                "capture",
            )
            .await?
        }
        Command::Logs(args) => {
            let json = matches!(cli.output, Format::Json);
            let mut pending = Vec::new();
            let reply = target
                .stream(Method::GET, &args.path(), None, |chunk| {
                    pending.extend_from_slice(chunk);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        diagnostics::print_log_line(&line[..end], json);
                    }
                })
                .await?;
            succeeded(reply)?;
            String::new()
        }
        Command::Metrics => {
            let reply = succeeded(target.call(Method::GET, "/v1/metrics", None).await?)?;
            String::from_utf8_lossy(&reply.body).into_owned()
        }
        Command::Couchdb => show(
            cli,
            target.call(Method::GET, "/v1/couchdb", None).await?,
            diagnostics::couchdb,
        )?,
        Command::Fs(diagnostics::FsCommand::Profiles) => show(
            cli,
            target
                .call(Method::GET, "/v1/freeswitch/profiles", None)
                .await?,
            |p: &ccnq_api::freeswitch::FsProfiles| diagnostics::fs_profiles(&p.profiles),
        )?,
        Command::Fs(diagnostics::FsCommand::Gateways) => show(
            cli,
            target
                .call(Method::GET, "/v1/freeswitch/gateways", None)
                .await?,
            |g: &ccnq_api::freeswitch::FsGateways| diagnostics::fs_profiles(&g.gateways),
        )?,
        Command::Fs(diagnostics::FsCommand::Calls) => show(
            cli,
            target
                .call(Method::GET, "/v1/freeswitch/calls", None)
                .await?,
            diagnostics::fs_calls,
        )?,
        Command::Fs(diagnostics::FsCommand::Registrations) => show(
            cli,
            target
                .call(Method::GET, "/v1/freeswitch/registrations", None)
                .await?,
            diagnostics::fs_registrations,
        )?,
        Command::Services { action: None } => show(
            cli,
            target.call(Method::GET, "/v1/services", None).await?,
            output::services,
        )?,
        Command::Services {
            action: Some(command),
        } => {
            let (verb, args) = match command {
                ServicesCommand::Start(a) => ("start", a),
                ServicesCommand::Stop(a) => ("stop", a),
                ServicesCommand::Restart(a) => ("restart", a),
            };
            let path = format!(
                "/v1/services/{}/{verb}{}",
                args.name,
                if args.force { "?force=true" } else { "" }
            );
            service_action(cli, target.call(Method::POST, &path, None).await?)?
        }
        Command::LogLevel { level: None } => show(
            cli,
            target.call(Method::GET, "/v1/log/level", None).await?,
            output::log_level,
        )?,
        Command::LogLevel { level: Some(level) } => {
            let level = level.parse::<ccnq_api::Level>().map_err(usage)?;
            let body = serde_json::to_vec(&ccnq_api::LogLevel { level }).unwrap_or_default();
            show(
                cli,
                target
                    .call(Method::PUT, "/v1/log/level", Some(body))
                    .await?,
                output::log_level,
            )?
        }
        Command::Pki(_)
        | Command::Token(_)
        | Command::Fleet(_)
        | Command::Release(_)
        | Command::Completions { .. } => {
            unreachable!("handled before connecting")
        }
    };
    print!("{text}");
    Ok(())
}

/// `ccnqctl config`: the exit status that tells a script where the host stands, beyond
/// "the API answered". `ok` and `not-following` (this daemon follows no document, by its
/// configuration) are settled: 0.
fn config_state(report: &ccnq_api::ConfigReport) -> Option<Failure> {
    let why = report
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let code = match report.state.as_str() {
        "failed" => EXIT_CONFIG_FAILED,
        "pending" | "waiting" => EXIT_CONFIG_NOT_SETTLED,
        _ => return None,
    };
    Some(Failure {
        code,
        message: format!("the host's configuration state is {}{why}", report.state),
    })
}

/// The report of a service action, printed whether the job succeeded or not (it says
/// what systemd answered and what the drain did); the exit code tells which.
fn service_action(cli: &Cli, reply: client::Reply) -> Result<String, Failure> {
    if reply.status.is_success() {
        return show(cli, reply, output::service_action);
    }
    let Ok(failed) = serde_json::from_slice::<ccnq_api::ServiceActionFailed>(&reply.body) else {
        // A plain problem (401, 403, 404, 400): no action was attempted.
        return show(cli, reply, output::service_action);
    };
    let text = match cli.output {
        Format::Json => format!("{}\n", String::from_utf8_lossy(&reply.body).trim_end()),
        Format::Table => output::service_action(&failed.report),
    };
    print!("{text}");
    let code = match reply.status.as_u16() {
        502 => 8,
        409 => 6,
        _ => 5,
    };
    Err(Failure {
        code,
        message: format!(
            "{}: {}",
            reply.status,
            failed.problem.detail.unwrap_or_default()
        ),
    })
}

/// Turns a reply into output, or into the failure its status means.
/// A host document from a file (or `-`: standard input), checked to be JSON here so a
/// typo is a usage error, not a server answer.
fn read_document(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    read.map_err(|e| Failure {
        code: 2,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| Failure {
        code: 2,
        message: format!("{} is not JSON: {e}", path.display()),
    })?;
    Ok(bytes)
}

fn show<T: serde::de::DeserializeOwned>(
    cli: &Cli,
    reply: client::Reply,
    table: fn(&T) -> String,
) -> Result<String, Failure> {
    let reply = succeeded(reply)?;
    let value: T = serde_json::from_slice(&reply.body).map_err(|e| Failure {
        code: 1,
        message: format!("unexpected answer from the server: {e}"),
    })?;
    Ok(match cli.output {
        Format::Json => format!("{}\n", String::from_utf8_lossy(&reply.body).trim_end()),
        Format::Table => table(&value),
    })
}

/// The reply if it succeeded; else the failure with the problem's detail, and the exit
/// status its code calls for.
pub(crate) fn succeeded(reply: client::Reply) -> Result<client::Reply, Failure> {
    if !reply.status.is_success() {
        let detail = serde_json::from_slice::<ccnq_api::Problem>(&reply.body)
            .ok()
            .and_then(|p| p.detail)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
        let code = match reply.status.as_u16() {
            401 | 403 => 4,
            500..=599 => 5,
            400..=499 => 6,
            _ => 1,
        };
        return Err(Failure {
            code,
            message: format!("{}: {detail}", reply.status),
        });
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccnq_api::{ConfigReport, FeedState};

    /// clap's own checks of every subcommand (a flag clashing with a global one, such
    /// as `--key`, only panics when that subcommand is parsed).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn report(state: &str, reason: Option<&str>) -> ConfigReport {
        ConfigReport {
            document: Some("host:sbc1.example.net".into()),
            state: state.into(),
            reason: reason.map(str::to_owned),
            desired_rev: None,
            applied: None,
            last: None,
            feed: FeedState {
                state: "connected".into(),
                since: "2026-12-01T00:00:00Z".into(),
                detail: None,
                last_problem: None,
            },
            replication: None,
            attempts: 0,
        }
    }

    #[test]
    fn the_config_state_gives_the_exit_status() {
        let code = |state, reason| config_state(&report(state, reason)).map(|f| f.code);
        assert_eq!(code("ok", None), None);
        assert_eq!(code("not-following", None), None);
        assert_eq!(code("failed", Some("rev 2-b is invalid")), Some(9));
        assert_eq!(code("pending", Some("draining (3 calls)")), Some(10));
        assert_eq!(code("waiting", None), Some(10));
        let failed = config_state(&report("failed", Some("rev 2-b is invalid"))).unwrap();
        assert_eq!(
            failed.message,
            "the host's configuration state is failed: rev 2-b is invalid"
        );
    }

    #[test]
    fn the_help_lists_every_exit_status() {
        for code in 0..=EXIT_ROLLOUT_INVALID {
            assert!(
                EXIT_CODES
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code}  "))),
                "{code} missing from:\n{EXIT_CODES}"
            );
        }
    }
}
