//! The event-socket client on tokio: one task owns the TCP connection, writes commands in
//! the order they were issued and matches each `command/reply` or `api/response` to the
//! oldest command still waiting (FreeSWITCH answers in order, and events, log lines and the
//! disconnect notice may arrive between a command and its reply, so the next frame is never
//! assumed to be the reply). Events go to a bounded channel; BACKGROUND_JOB events go to the
//! `bgapi` call that is waiting for them.

use crate::error::{CloseReason, EslError};
use crate::event::{Event, EventError, EventFormat, LogLine};
use crate::frame::{
    encode_command, ContentType, Frame, FrameDecoder, LineEnding, MAX_CONTENT_LENGTH,
};
use crate::reply::{ApiResponse, BackgroundJob, CommandReply};
use bytes::BytesMut;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

/// Connection settings. The defaults suit a local FreeSWITCH on loopback.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// TCP connect plus greeting.
    pub connect_timeout: Duration,
    /// Per command, from sending to its reply.
    pub command_timeout: Duration,
    /// For `bgapi`: from sending to the BACKGROUND_JOB event.
    pub job_timeout: Duration,
    /// Events buffered for the receiver before new ones are dropped (and counted).
    pub event_capacity: usize,
    pub line_ending: LineEnding,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(120),
            event_capacity: 4096,
            line_ending: LineEnding::Lf,
        }
    }
}

/// What arrives without being asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Event(Event),
    /// A `log/data` line (after `log <level>`).
    Log(LogLine),
    /// `text/disconnect-notice` (or a late `text/rude-rejection`): FreeSWITCH is about to close.
    Disconnect(String),
    /// An event frame that did not decode; kept rather than silently lost.
    Undecodable {
        content_type: ContentType,
        error: EventError,
    },
}

type ReplySender = oneshot::Sender<Result<Frame, EslError>>;

enum JobWait {
    None,
    /// The caller chose the Job-UUID; register before sending.
    Known(String, oneshot::Sender<Event>),
    /// FreeSWITCH assigns it in the reply; the connection task registers it while handling
    /// that reply, before it reads the next frame, so the event cannot slip past.
    FromReply(oneshot::Sender<Event>),
}

struct Request {
    bytes: Vec<u8>,
    reply: ReplySender,
    job: JobWait,
}

struct Pending {
    reply: ReplySender,
    job: Option<oneshot::Sender<Event>>,
}

/// A connected event-socket client. Methods take `&self`: share it (e.g. in an `Arc`) to
/// pipeline commands; replies are matched in order.
pub struct EslClient {
    requests: mpsc::UnboundedSender<Request>,
    opts: ConnectOptions,
    events: Mutex<Option<mpsc::Receiver<Received>>>,
    closed: watch::Receiver<Option<CloseReason>>,
    subscriptions: Mutex<HashSet<String>>,
    dropped_events: Arc<AtomicU64>,
}

/// A `bgapi` that FreeSWITCH accepted; `wait` for its BACKGROUND_JOB event.
pub struct JobHandle {
    pub reply: CommandReply,
    pub job_uuid: String,
    command: String,
    started: Instant,
    timeout: Duration,
    event: oneshot::Receiver<Event>,
    closed: watch::Receiver<Option<CloseReason>>,
}

impl JobHandle {
    pub async fn wait(self) -> Result<BackgroundJob, EslError> {
        match tokio::time::timeout(self.timeout, self.event).await {
            Err(_) => Err(EslError::Timeout {
                command: format!("bgapi {} (BACKGROUND_JOB {})", self.command, self.job_uuid),
                after: self.timeout,
            }),
            Ok(Err(_)) => Err(EslError::Closed(
                close_reason(&self.closed).unwrap_or(CloseReason::ClientDropped),
            )),
            Ok(Ok(event)) => Ok(BackgroundJob {
                command: self.command,
                job_uuid: self.job_uuid,
                body: event.body.unwrap_or_default(),
                elapsed: self.started.elapsed(),
            }),
        }
    }
}

fn close_reason(rx: &watch::Receiver<Option<CloseReason>>) -> Option<CloseReason> {
    rx.borrow().clone()
}

/// Refuses text that would end the command early or smuggle in a second one.
fn check_line(text: &str) -> Result<(), EslError> {
    if text.is_empty() {
        return Err(EslError::InvalidCommand {
            reason: "empty command",
        });
    }
    if text.contains('\n') || text.contains('\r') {
        return Err(EslError::InvalidCommand {
            reason: "line break inside a one-line command",
        });
    }
    Ok(())
}

impl EslClient {
    /// Connects, waits for the greeting and authenticates.
    pub async fn connect(
        addr: &str,
        password: &str,
        opts: ConnectOptions,
    ) -> Result<EslClient, EslError> {
        let client = Self::connect_unauthenticated(addr, opts).await?;
        client.auth(password).await?;
        Ok(client)
    }

    /// Connects and waits for `auth/request`, without authenticating. A `text/rude-rejection`
    /// greeting (our address is not in the event socket's ACL) is `AccessDenied`.
    pub async fn connect_unauthenticated(
        addr: &str,
        opts: ConnectOptions,
    ) -> Result<EslClient, EslError> {
        let deadline = opts.connect_timeout;
        let greet = async {
            let mut stream =
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| EslError::Connect {
                        addr: addr.to_string(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            let mut buf = BytesMut::with_capacity(8192);
            let mut decoder = FrameDecoder::new();
            loop {
                if let Some(frame) = decoder
                    .decode(&mut buf)
                    .map_err(|e| EslError::Closed(CloseReason::Frame(e)))?
                {
                    return match frame.content_type() {
                        ContentType::AuthRequest => Ok((stream, buf, decoder)),
                        ContentType::RudeRejection => Err(EslError::AccessDenied {
                            message: frame.body_text().trim_end().to_string(),
                        }),
                        ContentType::DisconnectNotice => Err(EslError::Closed(CloseReason::Eof {
                            notice: Some(frame.body_text()),
                        })),
                        other => Err(EslError::UnexpectedGreeting(format!("{other:?}"))),
                    };
                }
                let n = stream
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| EslError::Closed(CloseReason::Io(e.to_string())))?;
                if n == 0 {
                    return Err(EslError::Closed(CloseReason::Eof { notice: None }));
                }
            }
        };
        let (stream, buf, decoder) =
            tokio::time::timeout(deadline, greet).await.map_err(|_| {
                EslError::ConnectTimeout {
                    addr: addr.to_string(),
                    after: deadline,
                }
            })??;
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(opts.event_capacity.max(1));
        let (closed_tx, closed_rx) = watch::channel(None);
        let dropped_events = Arc::new(AtomicU64::new(0));
        let conn = Connection {
            decoder,
            buf,
            pending: VecDeque::new(),
            jobs: HashMap::new(),
            events: events_tx,
            dropped: dropped_events.clone(),
            notice: None,
        };
        tokio::spawn(conn.run(stream, requests_rx, closed_tx));
        Ok(EslClient {
            requests: requests_tx,
            opts,
            events: Mutex::new(Some(events_rx)),
            closed: closed_rx,
            subscriptions: Mutex::new(HashSet::new()),
            dropped_events,
        })
    }

    /// The receiver of events, log lines and disconnect notices. It can be taken once; it
    /// ends when the connection does. Untaken, events are counted as dropped once the buffer
    /// is full.
    pub fn take_events(&self) -> Option<mpsc::Receiver<Received>> {
        self.events.lock().ok()?.take()
    }

    /// Events lost because the receiver was full or gone.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// Why the connection ended, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        close_reason(&self.closed)
    }

    /// Waits until the connection ends.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.closed.clone();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return close_reason(&rx).unwrap_or(CloseReason::ClientDropped);
            }
        }
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    async fn request(
        &self,
        label: &str,
        bytes: Vec<u8>,
        job: JobWait,
    ) -> Result<(Frame, Duration), EslError> {
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let closed = || EslError::Closed(self.close_reason().unwrap_or(CloseReason::ClientDropped));
        self.requests
            .send(Request {
                bytes,
                reply: tx,
                job,
            })
            .map_err(|_| closed())?;
        match tokio::time::timeout(self.opts.command_timeout, rx).await {
            Err(_) => Err(EslError::Timeout {
                command: label.to_string(),
                after: self.opts.command_timeout,
            }),
            Ok(Err(_)) => Err(closed()),
            Ok(Ok(result)) => result.map(|f| (f, started.elapsed())),
        }
    }

    fn encode(&self, line: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.len() + 2);
        encode_command(&mut out, line, headers, body, self.opts.line_ending);
        out
    }

    async fn command_reply(
        &self,
        label: &str,
        bytes: Vec<u8>,
        job: JobWait,
    ) -> Result<CommandReply, EslError> {
        let (frame, elapsed) = self.request(label, bytes, job).await?;
        match frame.content_type() {
            ContentType::CommandReply => Ok(CommandReply {
                command: label.to_string(),
                reply_text: frame.headers.get("Reply-Text").unwrap_or("").to_string(),
                headers: frame.headers,
                elapsed,
            }),
            other => Err(EslError::UnexpectedReply {
                command: label.to_string(),
                what: format!("{other:?} reply"),
            }),
        }
    }

    /// Sends `auth <password>`. `-ERR invalid` is `AuthFailed`.
    pub async fn auth(&self, password: &str) -> Result<CommandReply, EslError> {
        check_line(password)?;
        let bytes = self.encode(&format!("auth {password}"), &[], None);
        let reply = self.command_reply("auth", bytes, JobWait::None).await?;
        if reply.reply_text == "+OK accepted" {
            Ok(reply)
        } else {
            Err(EslError::AuthFailed {
                reply: reply.reply_text,
            })
        }
    }

    /// Sends any command that is answered by a `command/reply` and returns the reply as is,
    /// `-ERR` included. `text` may hold header lines (`\n`-separated) but no blank line.
    pub async fn command(&self, text: &str) -> Result<CommandReply, EslError> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() || text.contains("\n\n") || text.contains('\r') {
            return Err(EslError::InvalidCommand {
                reason: "empty, blank line or carriage return in command",
            });
        }
        let label = text.lines().next().unwrap_or("").to_string();
        let bytes = self.encode(text, &[], None);
        self.command_reply(&label, bytes, JobWait::None).await
    }

    /// `api <cmd>`: the response body, whatever it says (see `reply` for typed parsing).
    /// A `command/reply` instead (as before auth) is `Rejected`.
    pub async fn api(&self, cmd: &str) -> Result<ApiResponse, EslError> {
        check_line(cmd)?;
        let bytes = self.encode(&format!("api {cmd}"), &[], None);
        let (frame, elapsed) = self.request(cmd, bytes, JobWait::None).await?;
        match frame.content_type() {
            ContentType::ApiResponse => Ok(ApiResponse {
                command: cmd.to_string(),
                body: frame.body_text(),
                elapsed,
            }),
            ContentType::CommandReply => Err(EslError::Rejected {
                command: format!("api {cmd}"),
                reply: frame.headers.get("Reply-Text").unwrap_or("").to_string(),
            }),
            other => Err(EslError::UnexpectedReply {
                command: cmd.to_string(),
                what: format!("{other:?} reply"),
            }),
        }
    }

    async fn submit(&self, cmd: &str, job_uuid: Option<&str>) -> Result<JobHandle, EslError> {
        check_line(cmd)?;
        let (tx, rx) = oneshot::channel();
        let line = format!("bgapi {cmd}");
        let (bytes, job) = match job_uuid {
            Some(uuid) => {
                check_line(uuid)?;
                (
                    self.encode(&line, &[("Job-UUID", uuid)], None),
                    JobWait::Known(uuid.to_string(), tx),
                )
            }
            None => (self.encode(&line, &[], None), JobWait::FromReply(tx)),
        };
        let started = Instant::now();
        let reply = self.command_reply(&line, bytes, job).await?;
        if !reply.is_ok() {
            return Err(EslError::Rejected {
                command: line,
                reply: reply.reply_text,
            });
        }
        let uuid = reply
            .headers
            .get("Job-UUID")
            .map(str::to_string)
            .or_else(|| {
                reply
                    .reply_text
                    .strip_prefix("+OK Job-UUID: ")
                    .map(str::to_string)
            })
            .ok_or_else(|| EslError::UnexpectedReply {
                command: line.clone(),
                what: format!("bgapi reply without Job-UUID: {:?}", reply.reply_text),
            })?;
        Ok(JobHandle {
            reply,
            job_uuid: uuid,
            command: cmd.to_string(),
            started,
            timeout: self.opts.job_timeout,
            event: rx,
            closed: self.closed.clone(),
        })
    }

    /// `bgapi <cmd>`, returning once FreeSWITCH accepted the job. The BACKGROUND_JOB event
    /// only arrives if the connection is subscribed to it.
    pub async fn bgapi_submit(&self, cmd: &str) -> Result<JobHandle, EslError> {
        self.submit(cmd, None).await
    }

    /// `bgapi <cmd>` with our own `Job-UUID` header (FreeSWITCH honours it).
    pub async fn bgapi_submit_with_job_uuid(
        &self,
        cmd: &str,
        job_uuid: &str,
    ) -> Result<JobHandle, EslError> {
        self.submit(cmd, Some(job_uuid)).await
    }

    fn require_subscription(&self, name: &'static str) -> Result<(), EslError> {
        if self.is_subscribed(name) {
            Ok(())
        } else {
            Err(EslError::NotSubscribed { event: name })
        }
    }

    /// `bgapi <cmd>` and its BACKGROUND_JOB event. Refused up front when not subscribed to
    /// BACKGROUND_JOB, since the event would never come.
    pub async fn bgapi(&self, cmd: &str) -> Result<BackgroundJob, EslError> {
        self.require_subscription("BACKGROUND_JOB")?;
        self.submit(cmd, None).await?.wait().await
    }

    /// As `bgapi`, with our own Job-UUID.
    pub async fn bgapi_with_job_uuid(
        &self,
        cmd: &str,
        job_uuid: &str,
    ) -> Result<BackgroundJob, EslError> {
        self.require_subscription("BACKGROUND_JOB")?;
        self.submit(cmd, Some(job_uuid)).await?.wait().await
    }

    /// `event <format> <names...>` (names may include a subclass, as in `CUSTOM peers::test`).
    /// Subscriptions add up, as they do in FreeSWITCH.
    pub async fn subscribe(
        &self,
        format: EventFormat,
        names: &[&str],
    ) -> Result<CommandReply, EslError> {
        if names.is_empty() {
            return Err(EslError::InvalidCommand {
                reason: "no event names",
            });
        }
        for n in names {
            check_line(n)?;
            if n.contains(char::is_whitespace) {
                return Err(EslError::InvalidCommand {
                    reason: "whitespace inside an event name",
                });
            }
        }
        let line = format!("event {} {}", format.as_str(), names.join(" "));
        let bytes = self.encode(&line, &[], None);
        let reply = self.command_reply(&line, bytes, JobWait::None).await?;
        if !reply.is_ok() {
            return Err(EslError::Rejected {
                command: line,
                reply: reply.reply_text,
            });
        }
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.extend(names.iter().map(|n| n.to_string()));
        }
        Ok(reply)
    }

    /// Whether events called `name` are being delivered (directly or through `ALL`).
    pub fn is_subscribed(&self, name: &str) -> bool {
        self.subscriptions
            .lock()
            .map(|s| s.contains(name) || s.contains("ALL"))
            .unwrap_or(false)
    }

    /// The event names subscribed to so far (for re-subscribing after a reconnect).
    pub fn subscriptions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .subscriptions
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `noevents`. FreeSWITCH answers `-ERR not listening for events` when there was no
    /// subscription; that is `Rejected`.
    pub async fn noevents(&self) -> Result<CommandReply, EslError> {
        let reply = self.command("noevents").await?;
        if let Ok(mut s) = self.subscriptions.lock() {
            s.clear();
        }
        if reply.is_ok() {
            Ok(reply)
        } else {
            Err(EslError::Rejected {
                command: "noevents".into(),
                reply: reply.reply_text,
            })
        }
    }

    /// `sendevent <name>` with headers and an optional body. The reply carries the new
    /// event's UUID (`+OK <uuid>`). Bodies above 16 MiB are refused here: FreeSWITCH would
    /// drop the connection (recorded in `19-oversized-content-length`).
    pub async fn sendevent(
        &self,
        name: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<CommandReply, EslError> {
        check_line(name)?;
        for (k, v) in headers {
            check_line(k)?;
            if v.contains(['\n', '\r']) {
                return Err(EslError::InvalidCommand {
                    reason: "line break inside a header value",
                });
            }
            if k.eq_ignore_ascii_case("Content-Length") {
                return Err(EslError::InvalidCommand {
                    reason: "Content-Length is computed from the body",
                });
            }
        }
        if body.is_some_and(|b| b.len() as u64 > MAX_CONTENT_LENGTH) {
            return Err(EslError::InvalidCommand {
                reason: "body above FreeSWITCH's 16 MiB limit",
            });
        }
        let line = format!("sendevent {name}");
        let bytes = self.encode(&line, headers, body);
        let reply = self.command_reply(&line, bytes, JobWait::None).await?;
        if reply.is_ok() {
            Ok(reply)
        } else {
            Err(EslError::Rejected {
                command: line,
                reply: reply.reply_text,
            })
        }
    }

    /// `exit`: FreeSWITCH answers `+OK bye`, sends a disconnect notice and closes; this
    /// returns once it has.
    pub async fn exit(&self) -> Result<CommandReply, EslError> {
        let reply = self.command("exit").await?;
        let _ = tokio::time::timeout(self.opts.command_timeout, self.closed()).await;
        Ok(reply)
    }
}

/// State of the connection task.
struct Connection {
    decoder: FrameDecoder,
    buf: BytesMut,
    pending: VecDeque<Pending>,
    jobs: HashMap<String, oneshot::Sender<Event>>,
    events: mpsc::Sender<Received>,
    dropped: Arc<AtomicU64>,
    notice: Option<String>,
}

impl Connection {
    async fn run(
        mut self,
        stream: TcpStream,
        mut requests: mpsc::UnboundedReceiver<Request>,
        closed: watch::Sender<Option<CloseReason>>,
    ) {
        let (mut reader, mut writer) = stream.into_split();
        // Frames that arrived with the greeting.
        let mut reason = self.drain();
        while reason.is_none() {
            tokio::select! {
                req = requests.recv() => match req {
                    Some(req) => reason = self.send(&mut writer, req).await,
                    None => reason = Some(CloseReason::ClientDropped),
                },
                read = reader.read_buf(&mut self.buf) => match read {
                    Ok(0) => reason = Some(CloseReason::Eof { notice: self.notice.take() }),
                    Ok(_) => reason = self.drain(),
                    Err(e) => reason = Some(CloseReason::Io(e.to_string())),
                },
            }
        }
        let reason = reason.unwrap_or(CloseReason::ClientDropped);
        log::debug!("event socket closed: {reason}");
        let _ = writer.shutdown().await;
        let _ = closed.send(Some(reason.clone()));
        for p in self.pending.drain(..) {
            let _ = p.reply.send(Err(EslError::Closed(reason.clone())));
        }
        // Requests queued but never written fail the same way.
        requests.close();
        while let Ok(req) = requests.try_recv() {
            let _ = req.reply.send(Err(EslError::Closed(reason.clone())));
        }
    }

    async fn send(&mut self, writer: &mut OwnedWriteHalf, req: Request) -> Option<CloseReason> {
        let job = match req.job {
            JobWait::None => None,
            JobWait::Known(uuid, tx) => {
                self.jobs.retain(|_, tx| !tx.is_closed());
                self.jobs.insert(uuid, tx);
                None
            }
            JobWait::FromReply(tx) => Some(tx),
        };
        // Queue before writing: the reply cannot overtake the write, and the order of this
        // queue is the order on the wire.
        self.pending.push_back(Pending {
            reply: req.reply,
            job,
        });
        match writer.write_all(&req.bytes).await {
            Ok(()) => None,
            Err(e) => Some(CloseReason::Io(e.to_string())),
        }
    }

    /// Handles every complete frame in the buffer.
    fn drain(&mut self) -> Option<CloseReason> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => self.dispatch(frame),
                Ok(None) => return None,
                Err(e) => return Some(CloseReason::Frame(e)),
            }
        }
    }

    fn dispatch(&mut self, frame: Frame) {
        match frame.content_type() {
            ContentType::CommandReply | ContentType::ApiResponse => {
                let Some(p) = self.pending.pop_front() else {
                    log::warn!("event socket: reply with no command waiting, ignored");
                    return;
                };
                if let Some(tx) = p.job {
                    let ok = frame
                        .headers
                        .get("Reply-Text")
                        .is_some_and(|t| t.starts_with("+OK"));
                    if let (true, Some(uuid)) = (ok, frame.headers.get("Job-UUID")) {
                        self.jobs.retain(|_, tx| !tx.is_closed());
                        self.jobs.insert(uuid.to_string(), tx);
                    }
                }
                // The caller may have timed out; the entry still had to be consumed to keep
                // the queue aligned with the wire.
                let _ = p.reply.send(Ok(frame));
            }
            ContentType::EventPlain | ContentType::EventJson | ContentType::EventXml => {
                match Event::from_frame(&frame) {
                    Ok(event) => {
                        if event.name() == Some("BACKGROUND_JOB") {
                            if let Some(tx) = event.job_uuid().and_then(|u| self.jobs.remove(u)) {
                                if let Err(event) = tx.send(event) {
                                    self.emit(Received::Event(event));
                                }
                                return;
                            }
                        }
                        self.emit(Received::Event(event));
                    }
                    Err(error) => self.emit(Received::Undecodable {
                        content_type: frame.content_type(),
                        error,
                    }),
                }
            }
            ContentType::LogData => self.emit(Received::Log(LogLine::from_frame(&frame))),
            ContentType::DisconnectNotice | ContentType::RudeRejection => {
                let text = frame.body_text();
                self.notice = Some(text.clone());
                self.emit(Received::Disconnect(text));
            }
            other => log::warn!("event socket: ignoring unexpected {other:?} frame"),
        }
    }

    fn emit(&self, item: Received) {
        if let Err(e) = self.events.try_send(item) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n == 0 || n % 1000 == 999 {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "receiver is behind",
                    mpsc::error::TrySendError::Closed(_) => "receiver is gone",
                };
                log::warn!("event socket: dropping events ({why}), {} so far", n + 1);
            }
        }
    }
}
