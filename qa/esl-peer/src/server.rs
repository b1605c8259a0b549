//! The event socket itself: accepting connections, reading commands, framing the answers
//! byte for byte as FreeSWITCH's `mod_event_socket` does in the recordings.
//!
//! Each connection has a reader task that turns bytes into commands (so a half-read
//! command is never lost to a `select!`) and a task that owns the writer, answering the
//! commands and forwarding the `BACKGROUND_JOB` events it subscribed to. `bgapi` jobs
//! publish their event to every connection, as FreeSWITCH's event bus does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};

use crate::conf::{self, Profiles};
use crate::events::{self, Event, Format};
use crate::journal::{lock, Journal, Kind, LoggedCommand};
use crate::model::{Model, XmlSource};
use crate::replies;

/// FreeSWITCH 1.11.2 drops a connection announcing a body over 16 MiB (`19-oversized-…`).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// A header block longer than this is not a command; the connection is dropped.
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// What every connection shares.
pub(crate) struct Shared {
    pub model: Mutex<Model>,
    pub journal: Journal,
    pub password: String,
    pub conf_dir: Option<PathBuf>,
    pub control_dir: Option<PathBuf>,
    /// The `channels` control file's content when last applied.
    pub channels_seen: Mutex<Option<String>>,
    pub events: broadcast::Sender<Arc<Event>>,
    pub core_uuid: String,
    pub sequence: AtomicU64,
}

/// The XML comes from the configuration directory, when there is one.
struct ConfDir<'a>(Option<&'a Path>);
impl XmlSource for ConfDir<'_> {
    fn load(&self) -> Option<Result<Profiles, String>> {
        self.0.map(conf::load)
    }
}

impl Shared {
    /// Answers one api command and journals it under the same lock, so the journal's
    /// order is the order the model saw.
    fn api(&self, kind: Kind, command: &str) -> String {
        self.refresh_control();
        let mut model = lock(&self.model);
        let reply = model.api(command, Instant::now(), &ConfDir(self.conf_dir.as_deref()));
        self.journal.record(LoggedCommand {
            at: SystemTime::now(),
            kind,
            command: command.to_string(),
            reply: reply.clone(),
        });
        reply
    }

    fn record_socket(&self, command: &str, reply: &str) {
        self.journal.record(LoggedCommand {
            at: SystemTime::now(),
            kind: Kind::Socket,
            command: command.to_string(),
            reply: reply.to_string(),
        });
    }

    /// Applies the control directory (see the crate documentation): read at each command
    /// so an end-to-end test changes the peer's behaviour without restarting it.
    fn refresh_control(&self) {
        let Some(dir) = &self.control_dir else {
            return;
        };
        let error = std::fs::read_to_string(dir.join("reloadxml-error"))
            .ok()
            .map(|s| s.strip_suffix('\n').unwrap_or(&s).to_string());
        lock(&self.model).set_reloadxml_error(error);
        let once = dir.join("reloadxml-error-once");
        if let Ok(text) = std::fs::read_to_string(&once) {
            // Taken, then gone: the next reload fails, the one after (the rollback's) works.
            if std::fs::remove_file(&once).is_ok() {
                let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                lock(&self.model).fail_next_reload(text);
            }
        }
        let Ok(text) = std::fs::read_to_string(dir.join("channels")) else {
            return;
        };
        let mut seen = lock(&self.channels_seen);
        if seen.as_deref() == Some(text.as_str()) {
            return;
        }
        match parse_channels(&text) {
            Ok(script) => lock(&self.model).set_channels(script),
            Err(e) => eprintln!("esl-peer: control file channels ignored: {e}"),
        }
        *seen = Some(text);
    }

    fn uuid(&self) -> String {
        new_uuid()
    }
}

/// `"2,1,0"` → `[2, 1, 0]`.
pub fn parse_channels(text: &str) -> Result<Vec<u64>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|e| format!("{s:?} is not a channel count: {e}"))
        })
        .collect()
}

/// A random version-4 UUID; std's hasher keys are random per process, which is all a test
/// double needs.
pub fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.finish()
    };
    let (a, b) = (word(), word());
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Accepts connections until `shutdown` changes or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(stream, shared.clone(), shutdown.clone()));
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// One command as the client sent it.
struct Command {
    line: String,
    headers: Vec<(String, String)>,
}

impl Command {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Incoming {
    Command(Command),
    /// A body over the cap, or an endless header block: FreeSWITCH hangs up.
    TooLarge,
    Closed,
}

async fn read_commands(read: OwnedReadHalf, tx: mpsc::Sender<Incoming>) {
    let mut reader = BufReader::new(read);
    loop {
        let incoming = read_command(&mut reader).await;
        let last = !matches!(incoming, Incoming::Command(_));
        if tx.send(incoming).await.is_err() || last {
            return;
        }
    }
}

/// Reads one command: a line, header lines, a blank line (LF or CRLF, `17-crlf-…`), and
/// a body when `Content-Length` says so (read and dropped: no modelled command has one).
async fn read_command(reader: &mut BufReader<OwnedReadHalf>) -> Incoming {
    let mut line_no = 0;
    let mut read = 0;
    let mut cmd = Command {
        line: String::new(),
        headers: Vec::new(),
    };
    loop {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return Incoming::Closed,
            Ok(n) => read += n,
        }
        if read > MAX_HEADER_BLOCK {
            return Incoming::TooLarge;
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if line_no == 0 {
                continue; // stray blank lines between commands
            }
            break;
        }
        if line_no == 0 {
            cmd.line = text.to_string();
        } else if let Some((k, v)) = text.split_once(':') {
            cmd.headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
        line_no += 1;
    }
    if let Some(len) = cmd.header("Content-Length") {
        let Ok(len) = len.parse::<usize>() else {
            return Incoming::TooLarge;
        };
        if len > MAX_BODY {
            return Incoming::TooLarge;
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return Incoming::Closed;
        }
    }
    Incoming::Command(cmd)
}

fn command_reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

fn api_response(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

fn disconnect_notice() -> Vec<u8> {
    format!(
        "Content-Type: text/disconnect-notice\nContent-Length: {}\n\n{}",
        replies::DISCONNECT_BODY.len(),
        replies::DISCONNECT_BODY
    )
    .into_bytes()
}

/// What a connection subscribed to.
struct Subscription {
    format: Format,
    names: HashSet<String>,
}

impl Subscription {
    fn wants(&self, event: &str) -> bool {
        self.names.contains("ALL") || self.names.contains(event)
    }
}

/// Whether the connection goes on after a command.
enum Next {
    Continue,
    Close,
}

struct Connection {
    write: OwnedWriteHalf,
    shared: Arc<Shared>,
    authed: bool,
    subscription: Option<Subscription>,
}

async fn connection(stream: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let (read, write) = stream.into_split();
    let (tx, mut rx) = mpsc::channel(16);
    let reader = tokio::spawn(read_commands(read, tx));
    let mut events = shared.events.subscribe();
    let mut conn = Connection {
        write,
        shared,
        authed: false,
        subscription: None,
    };
    if conn.send(replies::AUTH_REQUEST.as_bytes()).await.is_ok() {
        loop {
            tokio::select! {
                incoming = rx.recv() => match incoming {
                    Some(Incoming::Command(cmd)) => match conn.handle(cmd).await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close) | Err(_) => break,
                    },
                    Some(Incoming::TooLarge) => {
                        let _ = conn.send(&disconnect_notice()).await;
                        break;
                    }
                    Some(Incoming::Closed) | None => break,
                },
                event = events.recv() => match event {
                    Ok(event) => {
                        let frame = conn.subscription.as_ref()
                            .filter(|s| s.wants(&event.name))
                            .map(|s| events::encode(&event, s.format));
                        if let Some(frame) = frame {
                            if conn.send(&frame).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    }
    reader.abort();
    let _ = conn.write.shutdown().await;
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write.write_all(bytes).await
    }

    async fn reply(&mut self, command: &str, text: &str) -> std::io::Result<()> {
        self.shared.record_socket(command, text);
        self.send(&command_reply(text)).await
    }

    async fn handle(&mut self, cmd: Command) -> std::io::Result<Next> {
        let (word, rest) = match cmd.line.split_once(' ') {
            Some((w, r)) => (w, r.trim()),
            None => (cmd.line.as_str(), ""),
        };
        if word == "auth" {
            if rest == self.shared.password {
                self.authed = true;
                self.reply("auth", replies::AUTH_OK).await?;
                return Ok(Next::Continue);
            }
            // `02-wrong-password`: the reply and the notice, then FreeSWITCH hangs up.
            self.shared.record_socket("auth", replies::AUTH_INVALID);
            let mut bytes = command_reply(replies::AUTH_INVALID);
            bytes.extend(disconnect_notice());
            self.send(&bytes).await?;
            return Ok(Next::Close);
        }
        if !self.authed {
            self.reply(&cmd.line, replies::COMMAND_NOT_FOUND).await?;
            return Ok(Next::Continue);
        }
        match word {
            "api" => {
                let body = self.shared.api(Kind::Api, rest);
                self.send(&api_response(&body)).await?;
            }
            "bgapi" => {
                let uuid = cmd
                    .header("Job-UUID")
                    .map(str::to_string)
                    .unwrap_or_else(|| self.shared.uuid());
                let ack = replies::job_accepted(&uuid);
                self.send(
                    format!("Content-Type: command/reply\nReply-Text: {ack}\nJob-UUID: {uuid}\n\n")
                        .as_bytes(),
                )
                .await?;
                let body = self.shared.api(Kind::Bgapi, rest);
                let _ = self
                    .shared
                    .events
                    .send(Arc::new(self.job_event(&uuid, rest, body)));
            }
            "event" => {
                let mut words = rest.split_whitespace();
                match words.next().and_then(Format::parse) {
                    Some(format) => {
                        let sub = self.subscription.get_or_insert(Subscription {
                            format,
                            names: HashSet::new(),
                        });
                        sub.format = format;
                        sub.names.extend(words.map(str::to_string));
                        let text = replies::event_listener_enabled(format.as_str());
                        self.reply(&cmd.line, &text).await?;
                    }
                    None => self.reply(&cmd.line, replies::COMMAND_NOT_FOUND).await?,
                }
            }
            "noevents" => {
                let text = match self.subscription.take() {
                    Some(_) => replies::NO_LONGER_LISTENING,
                    None => replies::NOT_LISTENING,
                };
                self.reply(&cmd.line, text).await?;
            }
            "log" => {
                let level = rest.parse::<u8>().unwrap_or(7).min(7);
                self.reply(&cmd.line, &replies::log_level(level)).await?;
            }
            "nolog" => self.reply(&cmd.line, replies::NO_LONGER_LOGGING).await?,
            "exit" => {
                self.shared.record_socket("exit", replies::BYE);
                let mut bytes = command_reply(replies::BYE);
                bytes.extend(disconnect_notice());
                self.send(&bytes).await?;
                return Ok(Next::Close);
            }
            _ => self.reply(&cmd.line, replies::COMMAND_NOT_FOUND).await?,
        }
        Ok(Next::Continue)
    }

    /// The `BACKGROUND_JOB` event of `mod_event_socket`'s `api_exec` (`09b`).
    fn job_event(&self, uuid: &str, command: &str, body: String) -> Event {
        let now = time::OffsetDateTime::now_utc();
        let (date, clock) = (now.date(), now.time());
        let (h, m, s) = (clock.hour(), clock.minute(), clock.second());
        let local = format!(
            "{}-{:02}-{:02} {h:02}:{m:02}:{s:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        let gmt = format!(
            "{}, {:02} {} {} {h:02}:{m:02}:{s:02} GMT",
            &date.weekday().to_string()[..3],
            date.day(),
            &date.month().to_string()[..3],
            date.year()
        );
        let micros = (now.unix_timestamp_nanos() / 1000).to_string();
        let seq = self
            .shared
            .sequence
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (job, arg) = match command.split_once(' ') {
            Some((c, a)) => (c, Some(a)),
            None => (command, None),
        };
        let mut headers: Vec<(String, String)> = [
            ("Event-Name", "BACKGROUND_JOB"),
            ("Core-UUID", self.shared.core_uuid.as_str()),
            ("FreeSWITCH-Hostname", "esl-peer"),
            ("FreeSWITCH-Switchname", "esl-peer"),
            ("FreeSWITCH-IPv4", "127.0.0.1"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", local.as_str()),
            ("Event-Date-GMT", gmt.as_str()),
            ("Event-Date-Timestamp", micros.as_str()),
            ("Event-Calling-File", "mod_event_socket.c"),
            ("Event-Calling-Function", "api_exec"),
            ("Event-Calling-Line-Number", "1580"),
            ("Event-Sequence", seq.as_str()),
            ("Job-UUID", uuid),
            ("Job-Command", job),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(arg) = arg {
            headers.push(("Job-Command-Arg".into(), arg.to_string()));
        }
        Event {
            name: "BACKGROUND_JOB".into(),
            headers,
            body,
        }
    }
}
