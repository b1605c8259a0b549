//! `ccnqctl fleet …`: the whole fleet, from the central CouchDB rather than from one
//! host's API. A rollout is carried out by editing host documents there
//! (`ccnq_rollout`), and every host reports its upgrade into its `status:` document
//! there, so this is the one place that sees every host at once. See docs/fleet.md.

use crate::{Failure, Format, EXIT_FLEET_HALTED, EXIT_ROLLOUT_INVALID};
use ccnq_couch::{Auth, Client, ClientConfig, CouchError, Db};
use ccnq_rollout::{Driver, DriverConfig, DriverError, Plan, RunState, StatusView};
use std::path::PathBuf;
use std::time::Duration;

/// Where the central CouchDB is and how to log in.
#[derive(clap::Args)]
pub struct CouchArgs {
    /// The central CouchDB, e.g. https://central.example.net:6984.
    #[arg(long, env = "CCNQ_COUCH_URL")]
    couch_url: String,
    /// The database holding the host documents.
    #[arg(long, env = "CCNQ_COUCH_DATABASE", default_value = "provisioning")]
    couch_database: String,
    /// CouchDB user (none: anonymous).
    #[arg(long, env = "CCNQ_COUCH_USER")]
    couch_user: Option<String>,
    /// File holding that user's password (never on the command line: `ps` shows it).
    #[arg(long, env = "CCNQ_COUCH_PASSWORD_FILE")]
    couch_password_file: Option<PathBuf>,
    /// CA certificate(s) of an https CouchDB (PEM) [default: the system's bundle].
    #[arg(long, env = "CCNQ_COUCH_CA")]
    couch_ca: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Carry out `rollout:<name>` in the foreground, one line per decision, until it is
    /// done (exit 0) or halted (exit 11). Stopped, it resumes where it was when run
    /// again: the progress is in the rollout document.
    Rollout {
        /// The rollout's name: the document `rollout:<name>`.
        name: String,
        /// One pass, then exit (0 whether done or still running; 11 halted): for cron.
        #[arg(long)]
        once: bool,
        /// Seconds between passes.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        #[command(flatten)]
        couch: CouchArgs,
    },
    /// Every host: its site, booted version, upgrade state and since when.
    Status {
        #[command(flatten)]
        couch: CouchArgs,
    },
}

pub fn run(cmd: &FleetCommand, format: Format) -> Result<(), Failure> {
    let runtime = crate::runtime()?;
    match cmd {
        FleetCommand::Rollout {
            name,
            once,
            interval,
            couch,
        } => {
            if !(interval.is_finite() && *interval > 0.0) {
                return Err(crate::usage(
                    "--interval must be a positive number of seconds".into(),
                ));
            }
            let config = DriverConfig {
                poll_interval: Duration::from_secs_f64(*interval),
                ..DriverConfig::default()
            };
            let driver = Driver::new(database(couch)?, name, config);
            runtime.block_on(rollout(&driver, name, *once))
        }
        FleetCommand::Status { couch } => {
            let db = database(couch)?;
            runtime.block_on(status(&db, format))
        }
    }
}

fn database(args: &CouchArgs) -> Result<Db, Failure> {
    let auth = match (&args.couch_user, &args.couch_password_file) {
        (None, None) => Auth::None,
        (Some(user), Some(path)) => {
            let password = std::fs::read_to_string(path).map_err(|e| {
                crate::usage(format!("--couch-password-file {}: {e}", path.display()))
            })?;
            Auth::basic(user, password.trim_end_matches(['\r', '\n']))
        }
        (Some(_), None) => {
            return Err(crate::usage(
                "--couch-user needs --couch-password-file".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(crate::usage(
                "--couch-password-file needs --couch-user".into(),
            ))
        }
    };
    let mut config = ClientConfig::new(&args.couch_url, auth);
    config.ca_file = args.couch_ca.clone();
    let client = Client::new(config)
        .map_err(|e| crate::usage(format!("--couch-url {}: {e}", args.couch_url)))?;
    Ok(client.db(&args.couch_database))
}

/// The exit status a CouchDB failure means, as for the host API's.
fn couch_failure(e: &CouchError, message: String) -> Failure {
    let code = match e {
        CouchError::Transport(_) | CouchError::Timeout(_) => 3,
        CouchError::Unauthorized { .. } => 4,
        CouchError::Server { .. } => 5,
        CouchError::NotFound(_) | CouchError::Conflict(_) | CouchError::BadRequest { .. } => 6,
        CouchError::Invalid(_) => 2,
        CouchError::Decode(_) => 1,
    };
    Failure { code, message }
}

fn driver_failure(e: DriverError) -> Failure {
    let message = e.to_string();
    match &e {
        DriverError::Invalid { .. } => Failure {
            code: EXIT_ROLLOUT_INVALID,
            message,
        },
        DriverError::NotFound(_) => Failure { code: 6, message },
        DriverError::Contended { .. } => Failure { code: 6, message },
        DriverError::Couch { source, .. } => couch_failure(source, message),
    }
}

async fn rollout(driver: &Driver, name: &str, once: bool) -> Result<(), Failure> {
    let end = if once {
        let plan = driver.pass().await.map_err(driver_failure)?;
        for e in &plan.events {
            println!("{e}");
        }
        for (h, why) in &plan.waiting {
            println!("wait {h}: {why}");
        }
        plan
    } else {
        driver
            .run(|line| println!("{line}"))
            .await
            .map_err(driver_failure)?
    };
    finish(name, &end)
}

/// The last line, and the exit status the rollout's state means.
fn finish(name: &str, end: &Plan) -> Result<(), Failure> {
    let p = &end.progress;
    let count = |o| p.hosts.values().filter(|h| h.outcome == Some(o)).count();
    let tally = format!(
        "{} blessed, {} rolled back",
        count(ccnq_rollout::Outcome::Blessed),
        count(ccnq_rollout::Outcome::RolledBack)
    );
    match p.state {
        RunState::Done => {
            println!("rollout:{name} done ({tally})");
            Ok(())
        }
        RunState::Running => {
            println!("rollout:{name} running, wave {} ({tally})", p.wave);
            Ok(())
        }
        RunState::Halted => Err(Failure {
            code: EXIT_FLEET_HALTED,
            message: format!(
                "rollout:{name} halted: {} ({tally}); the host documents are left as they are",
                p.halted_reason.as_deref().unwrap_or("no reason recorded")
            ),
        }),
    }
}

async fn status(db: &Db, format: Format) -> Result<(), Failure> {
    let fleet = ccnq_rollout::driver::read_fleet(db)
        .await
        .map_err(driver_failure)?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (fqdn, host) in &fleet.hosts {
        let status = fleet.statuses.get(fqdn);
        let upgrade = match status {
            Some(StatusView::Upgrade(u)) => Some(u),
            _ => None,
        };
        let image = host.image.as_ref().map(|i| {
            if i.hold {
                format!("{} (hold)", i.version)
            } else {
                i.version.clone()
            }
        });
        let state = match status {
            None => "no status".to_owned(),
            Some(StatusView::NoUpgrade) => "not reported".to_owned(),
            Some(StatusView::Unreadable(_)) => "unreadable".to_owned(),
            Some(StatusView::Upgrade(u)) => match &u.target_version {
                Some(t) if u.state != ccnq_api::UpgradeState::Idle => format!("{} {t}", u.state),
                _ => u.state.to_string(),
            },
        };
        let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
        rows.push([
            fqdn.clone(),
            host.site.clone(),
            dash(upgrade.map(|u| u.booted_version.as_str())),
            state,
            dash(upgrade.map(|u| u.since.as_str())),
            dash(image.as_deref()),
        ]);
        json.push(serde_json::json!({
            "host": fqdn,
            "site": host.site,
            "image": host.image.as_ref().map(|i| serde_json::json!({"version": i.version, "hold": i.hold})),
            "invalid": host.invalid,
            "upgrade": upgrade,
            "status_problem": match status {
                None => Some("no status document".to_owned()),
                Some(StatusView::NoUpgrade) => Some("the status has no upgrade part".to_owned()),
                Some(StatusView::Unreadable(why)) => Some(why.clone()),
                Some(StatusView::Upgrade(_)) => None,
            },
        }));
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Format::Table => print!("{}", table(&rows)),
    }
    Ok(())
}

fn table(rows: &[[String; 6]]) -> String {
    let head = ["HOST", "SITE", "BOOTED", "STATE", "SINCE", "DOCUMENT"].map(String::from);
    let all: Vec<[String; 6]> = std::iter::once(head).chain(rows.iter().cloned()).collect();
    crate::output::columns(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_its_columns_under_the_heads() {
        let rows = [[
            "sbc1.example.net".to_string(),
            "paris".into(),
            "2026.11.2".into(),
            "waiting-wave 2026.12.1".into(),
            "2026-12-02T04:00:00Z".into(),
            "2026.12.1 (hold)".into(),
        ]];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("SITE"), lines[1].find("paris"));
        assert_eq!(lines[0].find("DOCUMENT"), lines[1].find("2026.12.1 (hold)"));
    }

    #[test]
    fn couch_failures_keep_the_exit_codes_of_the_host_api() {
        let code = |e| couch_failure(&e, String::new()).code;
        assert_eq!(code(CouchError::Transport("refused".into())), 3);
        assert_eq!(code(CouchError::from_status(401, b"{}")), 4);
        assert_eq!(code(CouchError::from_status(503, b"{}")), 5);
        assert_eq!(code(CouchError::from_status(404, b"{}")), 6);
    }
}
