//! `ccnq-esl-peer`: a **test double** of FreeSWITCH's event socket, standing in for
//! FreeSWITCH 1.11.2 where the real one cannot run (it is not installable on the build
//! machine). It is a model, not a replay: it keeps the state the control plane changes
//! (sofia profiles, pause, the XML it last loaded) and answers with the texts FreeSWITCH
//! gave in the byte-exact recordings in `shared/fixtures/freeswitch-esl-apply/` and
//! `shared/fixtures/freeswitch-esl/`. Its own tests (`tests/conformance.rs`) drive it with
//! the recorded commands and compare its answers with the recorded bytes.
//!
//! Used two ways: in-process ([`Peer::start`]) by the applier's tests, and as the
//! `esl-peer` binary by end-to-end tests that run the real `ccnqd`.
//!
//! # What it models
//! - The socket: `auth` (a wrong password gets `-ERR invalid`, a disconnect notice and a
//!   hang-up), `api`, `bgapi` (`Job-UUID` honoured; a `BACKGROUND_JOB` event in the
//!   subscribed format), `event plain|json|xml`, `noevents`, `log`/`nolog` (no log lines
//!   are sent), `exit`; anything else gets `-ERR command not found`.
//! - `api` commands ([`model`] has the rules, [`replies`] every text and its recording):
//!   `reloadxml`, `reloadacl [reloadxml]`, `sofia profile X start|stop|restart|rescan|killgw`,
//!   `sofia status`, `sofia xmlstatus`, `sofia [xml]status profile X`, `show channels count`,
//!   `fsctl pause|resume [inbound|outbound]`, `fsctl pause_check|shutdown_check|ready_check`,
//!   `version`, `status`. Any other command, and any sub-command not listed, gets
//!   FreeSWITCH's `-ERR <command> Command not found!` so a client depending on something
//!   unmodelled fails loudly rather than reading an invented answer.
//! - Profiles come from the XML in `conf_dir` (`sip_profiles/*.xml`, as `ccnq-freeswitch`
//!   renders them: `<profile name>` with `sip-ip`/`sip-port` params), read again by every
//!   command that reloads XML in FreeSWITCH. At start the peer loads it and starts every
//!   profile, as FreeSWITCH does at boot. Without `conf_dir` the XML never changes and
//!   [`Peer::preload_profile`] sets up running profiles.
//! - A bind fails when the IP is not one of `local_ips` or another running profile holds
//!   the port; `start` still answers success and the profile never appears (`09a`, `09c`).
//! - The 10-second rule scales with [`PeerConfig::ten_second_rule`]; so does a restart's
//!   absence (11 % of it: 1.1 s of 10 s, as recorded).
//!
//! Not modelled: calls (only the scripted count), ACL contents (`acl`), gateways, other
//! events (`CUSTOM sofia::profile_start`, `FAILURE`, `HEARTBEAT`), log lines, `sendevent`,
//! the 25 s pre-auth timeout.
//!
//! # Runtime control (for the process form)
//! With `--control DIR` ([`PeerConfig::control_dir`]) the peer reads, before every
//! `api`/`bgapi` command:
//! - `DIR/reloadxml-error`: when present, its content (one trailing newline dropped) is
//!   the parse error every XML reload fails with (`+OK [<text>]` for `reloadxml`,
//!   `-ERR [<text>]` for `reloadacl`, `Reload XML [<text>]` for profile verbs); absent
//!   means success. It overrides [`Peer::set_reloadxml_error`].
//! - `DIR/reloadxml-error-once`: the same for the next XML reload only; the peer removes
//!   the file when it takes it. This is how broken new files look when the applier then
//!   puts the last good ones back: the rollback's `reloadxml` succeeds.
//! - `DIR/channels`: a comma-separated channel-count script (`2,1,0`), applied whenever
//!   the file's content changes: each `show channels count` takes the next number, the
//!   last one repeats.
//!
//! # Command log
//! Every command received is recorded in order with its time: [`Peer::commands`] (the
//! `api`/`bgapi` commands), [`Peer::command_log`] (all, with replies), and for the
//! binary, one JSON object per line appended and flushed to `--log FILE`:
//! `{"time":"<RFC 3339>","unix_ms":…,"kind":"api|bgapi|socket","command":"…","reply":"…"}`.

pub mod conf;
pub mod events;
pub mod journal;
pub mod model;
pub mod replies;
mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use journal::{Kind, LoggedCommand};
pub use server::{new_uuid, parse_channels};

use journal::{lock, Journal};
use model::Model;
use server::Shared;

/// How the peer behaves.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The event-socket password (`ClueCon`, FreeSWITCH's default).
    pub password: String,
    /// The FreeSWITCH configuration directory holding `sip_profiles/*.xml`.
    pub conf_dir: Option<PathBuf>,
    /// Addresses a profile can bind (else its start fails silently).
    pub local_ips: Vec<IpAddr>,
    /// FreeSWITCH's 10 s; tests shrink it. Scales the restart absence too.
    pub ten_second_rule: Duration,
    /// The channel-count script.
    pub channels: Vec<u64>,
    /// When set, every XML reload fails with this text.
    pub reloadxml_error: Option<String>,
    /// The runtime control directory (see the crate documentation).
    pub control_dir: Option<PathBuf>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            password: "ClueCon".into(),
            conf_dir: None,
            local_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ten_second_rule: Duration::from_secs(10),
            channels: vec![0],
            reloadxml_error: None,
            control_dir: None,
        }
    }
}

/// A running peer; dropping it closes the listener and every connection.
pub struct Peer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
}

impl Peer {
    /// Starts on `127.0.0.1:<free port>`.
    pub async fn start(config: PeerConfig) -> std::io::Result<Peer> {
        Peer::start_with(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), None).await
    }

    /// Starts on `listen`, journaling to `log_file` as JSON lines when given. Fails, as
    /// FreeSWITCH does at boot, when the XML in `conf_dir` is broken.
    pub async fn start_with(
        config: PeerConfig,
        listen: SocketAddr,
        log_file: Option<&Path>,
    ) -> std::io::Result<Peer> {
        let now = Instant::now();
        let mut model = Model::new(
            config.local_ips,
            config.ten_second_rule,
            config.channels,
            config.reloadxml_error,
            now,
        );
        if let Some(dir) = &config.conf_dir {
            let known = conf::load(dir).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.display()),
                )
            })?;
            model.boot(known, now);
        }
        let journal = match log_file {
            Some(path) => Journal::with_file(path)?,
            None => Journal::default(),
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            journal,
            password: config.password,
            conf_dir: config.conf_dir,
            control_dir: config.control_dir,
            channels_seen: Mutex::new(None),
            events,
            core_uuid: new_uuid(),
            sequence: AtomicU64::new(1),
        });
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(server::serve(listener, shared.clone(), rx));
        Ok(Peer {
            shared,
            addr,
            _shutdown: shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every `api`/`bgapi` command received (the text after the keyword), in order.
    pub fn commands(&self) -> Vec<String> {
        self.command_log()
            .into_iter()
            .filter(|c| c.kind != Kind::Socket)
            .map(|c| c.command)
            .collect()
    }

    /// Every command received, socket commands included, with times and replies.
    pub fn command_log(&self) -> Vec<LoggedCommand> {
        self.shared.journal.entries()
    }

    pub fn set_channels(&self, script: Vec<u64>) {
        lock(&self.shared.model).set_channels(script);
    }

    pub fn set_reloadxml_error(&self, text: Option<String>) {
        lock(&self.shared.model).set_reloadxml_error(text);
    }

    /// Every profile the peer holds, in `sofia status` order: `true` when running, `false`
    /// while restarting or after a failed bind. Profiles whose XML has no usable address
    /// are left out.
    pub fn profiles(&self) -> Vec<(String, SocketAddr, bool)> {
        lock(&self.shared.model)
            .profiles(Instant::now())
            .into_iter()
            .filter_map(|p| Some((p.name, p.bind?, p.running)))
            .collect()
    }

    /// Whether inbound calls are paused (`fsctl pause [inbound]`).
    pub fn paused(&self) -> bool {
        lock(&self.shared.model).paused_inbound()
    }

    /// A profile already running for `started_ago` (its XML is known too, until a reload
    /// from `conf_dir` replaces the known XML).
    pub fn preload_profile(&self, name: &str, bind: SocketAddr, started_ago: Duration) {
        let now = Instant::now();
        let since = now.checked_sub(started_ago).unwrap_or(now);
        lock(&self.shared.model).preload(name, bind, since);
    }
}
