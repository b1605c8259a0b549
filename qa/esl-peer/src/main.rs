//! `esl-peer`: the FreeSWITCH event-socket test double as a process, for end-to-end tests
//! that run the real `ccnqd` (see the `ccnq_esl_peer` crate documentation for what it
//! models and for the `--control` directory). Prints `listening on <addr>` once bound and
//! exits cleanly on SIGTERM or SIGINT.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ccnq_esl_peer::{parse_channels, Peer, PeerConfig};
use clap::Parser;

/// A FreeSWITCH 1.11.2 event-socket test double (not FreeSWITCH).
#[derive(Parser, Debug)]
#[command(name = "esl-peer", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8021")]
    listen: SocketAddr,
    /// Event-socket password.
    #[arg(long, default_value = "ClueCon")]
    password: String,
    /// FreeSWITCH configuration directory (reads `sip_profiles/*.xml`).
    #[arg(long)]
    conf: Option<PathBuf>,
    /// Another address profiles can bind, besides 127.0.0.1 (repeatable).
    #[arg(long = "local-ip")]
    local_ips: Vec<IpAddr>,
    /// The 10-second rule, in milliseconds (tests shrink it).
    #[arg(long, default_value_t = 10_000)]
    ten_second_rule_ms: u64,
    /// Initial channel-count script, comma-separated.
    #[arg(long, default_value = "0")]
    channels: String,
    /// Runtime control directory (`reloadxml-error`, `channels`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Append every received command as a JSON line to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// A profile already running (and old enough to stop), as NAME=IP:PORT (repeatable).
    #[arg(long = "profile", value_parser = parse_profile)]
    profiles: Vec<(String, SocketAddr)>,
}

fn parse_profile(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=IP:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{s:?}: {addr:?} is not IP:PORT: {e}"))?;
    Ok((name.to_string(), addr))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esl-peer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut local_ips = PeerConfig::default().local_ips;
    for ip in args.local_ips {
        if !local_ips.contains(&ip) {
            local_ips.push(ip);
        }
    }
    let config = PeerConfig {
        password: args.password,
        conf_dir: args.conf,
        local_ips,
        ten_second_rule: Duration::from_millis(args.ten_second_rule_ms),
        channels: parse_channels(&args.channels).map_err(|e| format!("--channels: {e}"))?,
        reloadxml_error: None,
        control_dir: args.control,
    };
    let rule = config.ten_second_rule;
    let peer = Peer::start_with(config, args.listen, args.log.as_deref())
        .await
        .map_err(|e| format!("cannot start on {}: {e}", args.listen))?;
    for (name, addr) in &args.profiles {
        peer.preload_profile(name, *addr, rule);
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", peer.addr())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(peer);
    Ok(())
}
