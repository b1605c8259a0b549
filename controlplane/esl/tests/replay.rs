//! The client against the recorded FreeSWITCH: every transcript in
//! `shared/fixtures/freeswitch-esl/` and `shared/fixtures/freeswitch-esl-apply/` is replayed
//! by `ReplayServer` (a test double, see below) in three chunkings, and each test asserts
//! what the client made of it.

use ccnq_esl::reply::{parse_bool, parse_reloadacl, parse_sofia_profile, parse_sofia_status_table};
use ccnq_esl::{
    Backoff, CloseReason, CommandError, ConnectOptions, ConnectionState, EslClient, EslError,
    Event, EventFormat, FrameError, LineEnding, ProfileAccepted, ProfileAction, Received,
    ReconnectingClient, SofiaStatus, MAX_CONTENT_LENGTH,
};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const NOTICE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

fn shared() -> PathBuf {
    match std::env::var("CCNQ_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

fn fixture_dir(apply: bool) -> PathBuf {
    shared().join("fixtures").join(if apply {
        "freeswitch-esl-apply"
    } else {
        "freeswitch-esl"
    })
}

/// One step of a recorded conversation, from the server's side.
#[derive(Debug, Clone)]
enum Step {
    /// Bytes FreeSWITCH sent in one `send()` (`S->C`).
    Send(Vec<u8>),
    /// Bytes the recorded client sent (`C->S`); ours must send the same.
    Expect(Vec<u8>),
    /// FreeSWITCH closed the connection.
    ServerClose,
    /// The client closed; nothing more may arrive from ours.
    ClientClose,
}

/// A transcript: `.rx` and `.tx` cut at the chunk sizes of the `#### ... N bytes` markers
/// of `.log`.
fn load(apply: bool, name: &str) -> Vec<Step> {
    let dir = fixture_dir(apply);
    let read = |ext: &str| {
        std::fs::read(dir.join(format!("{name}.{ext}")))
            .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"))
    };
    let (rx, tx, log) = (read("rx"), read("tx"), read("log"));
    let (mut r, mut t) = (0usize, 0usize);
    let mut steps = Vec::new();
    for line in log.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if !line.starts_with("#### ") {
            continue;
        }
        let size = |dir: &str| -> Option<usize> {
            let after = line.split_once(dir)?.1.trim();
            after.strip_suffix(" bytes")?.parse().ok()
        };
        if let Some(n) = size("] S->C ") {
            steps.push(Step::Send(rx[r..r + n].to_vec()));
            r += n;
        } else if let Some(n) = size("] C->S ") {
            steps.push(Step::Expect(tx[t..t + n].to_vec()));
            t += n;
        } else if line.contains("server closed the TCP connection") {
            steps.push(Step::ServerClose);
        } else if line.contains("client closed the connection") {
            steps.push(Step::ClientClose);
        }
    }
    assert_eq!(
        (r, t),
        (rx.len(), tx.len()),
        "{name}: markers do not cover the files"
    );
    steps
}

#[derive(Debug, Clone, Copy)]
enum Chunking {
    /// As FreeSWITCH's `send()` calls were recorded.
    Recorded,
    /// One byte per write.
    ByteByByte,
    /// Everything the server says before it next waits for the client, in one write.
    AllAtOnce,
}

const CHUNKINGS: [Chunking; 3] = [
    Chunking::Recorded,
    Chunking::ByteByByte,
    Chunking::AllAtOnce,
];

/// TEST DOUBLE for FreeSWITCH's event socket: a real TCP listener on 127.0.0.1 that replays
/// recordings of the real FreeSWITCH 1.11.2. It checks that the client sends exactly the
/// recorded bytes (`.tx`) and answers with the recorded bytes (`.rx`), cut as `chunking`
/// says. It knows nothing of ESL; it only replays.
struct ReplayServer;

impl ReplayServer {
    async fn start(
        steps: Vec<Step>,
        chunking: Chunking,
    ) -> (String, JoinHandle<Result<(), String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let steps = match chunking {
            Chunking::AllAtOnce => coalesce(steps),
            _ => steps,
        };
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = sock.set_nodelay(true);
            play(&mut sock, &steps, chunking).await
        });
        (addr, handle)
    }
}

fn coalesce(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for s in steps {
        match (out.last_mut(), s) {
            (Some(Step::Send(prev)), Step::Send(more)) => prev.extend(more),
            (_, s) => out.push(s),
        }
    }
    out
}

async fn play(sock: &mut TcpStream, steps: &[Step], chunking: Chunking) -> Result<(), String> {
    let limit = Duration::from_secs(10);
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Send(bytes) => match chunking {
                Chunking::ByteByByte => {
                    for b in bytes {
                        sock.write_all(&[*b])
                            .await
                            .map_err(|e| format!("step {i}: write: {e}"))?;
                        tokio::task::yield_now().await;
                    }
                }
                _ => {
                    sock.write_all(bytes)
                        .await
                        .map_err(|e| format!("step {i}: write: {e}"))?;
                    // Let the client read this chunk on its own, as it was recorded.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            },
            Step::Expect(want) => {
                let mut got = vec![0u8; want.len()];
                tokio::time::timeout(limit, sock.read_exact(&mut got))
                    .await
                    .map_err(|_| format!("step {i}: client did not send {:?}", lossy(want)))?
                    .map_err(|e| format!("step {i}: reading {:?}: {e}", lossy(want)))?;
                if &got != want {
                    return Err(format!(
                        "step {i}: client sent {:?}, recording has {:?}",
                        lossy(&got),
                        lossy(want)
                    ));
                }
            }
            Step::ServerClose => {
                let _ = sock.shutdown().await;
                return Ok(());
            }
            Step::ClientClose => {
                let mut extra = Vec::new();
                tokio::time::timeout(limit, sock.read_to_end(&mut extra))
                    .await
                    .map_err(|_| "client never closed".to_string())?
                    .map_err(|e| e.to_string())?;
                if !extra.is_empty() {
                    return Err(format!("client sent unrecorded bytes {:?}", lossy(&extra)));
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(5),
        job_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

/// Runs `scenario` against the replay of `name` in every chunking; the server double must
/// also have seen exactly the recorded client bytes.
async fn replay<F, Fut>(apply: bool, name: &str, scenario: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    for chunking in CHUNKINGS {
        let (addr, server) = ReplayServer::start(load(apply, name), chunking).await;
        tokio::time::timeout(Duration::from_secs(30), scenario(addr))
            .await
            .unwrap_or_else(|_| panic!("{name} {chunking:?}: scenario hung"));
        let served = tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .unwrap_or_else(|_| panic!("{name} {chunking:?}: server double hung"))
            .expect("server task");
        if let Err(e) = served {
            panic!("{name} {chunking:?}: {e}");
        }
    }
}

async fn connect(addr: &str) -> EslClient {
    EslClient::connect(addr, "ClueCon", opts())
        .await
        .expect("connect")
}

/// Everything the client received, until the connection ended.
async fn drain(client: &EslClient) -> Vec<Received> {
    let mut rx = client.take_events().expect("events");
    let mut out = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        out.push(item);
    }
    out
}

/// Received events until `pred` matched `count` of them.
async fn wait_events(
    rx: &mut tokio::sync::mpsc::Receiver<Received>,
    mut want: impl FnMut(&Event) -> bool,
    count: usize,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut matched = 0;
    while matched < count {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Received::Event(e))) => {
                if want(&e) {
                    matched += 1;
                }
                seen.push(e);
            }
            Ok(Some(_)) => {}
            other => panic!("waiting for events: {other:?} after {seen:?}"),
        }
    }
    seen
}

const STATUS_BODY: &str = "UP 0 years, 0 days, 0 hours, 0 minutes, 10 seconds, 704 milliseconds, 961 microseconds\nFreeSWITCH (Version 1.11.2-release git 3f13ad1 2026-08-09 16:23:10Z 64bit) is ready\n0 session(s) since startup\n0 session(s) - peak 0, last 5min 0 \n0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n100 session(s) max\nmin idle cpu 0.00/96.13\nCurrent Stack Size/Max 240K/240K\n";
const VERSION_BODY: &str = "FreeSWITCH Version 1.11.2-release+git~20260809T162310Z~3f13ad1b1d~64bit (git 3f13ad1 2026-08-09 16:23:10Z 64bit)\n";

// ---------------------------------------------------------------- freeswitch-esl

#[tokio::test]
async fn t01_greeting_then_client_closes() {
    replay(false, "01-connect-auth-request", |addr| async move {
        let client = EslClient::connect_unauthenticated(&addr, opts())
            .await
            .expect("greeting");
        assert_eq!(client.close_reason(), None);
    })
    .await;
}

#[tokio::test]
async fn t02_wrong_password_is_auth_failed_then_disconnect() {
    replay(false, "02-wrong-password", |addr| async move {
        let client = EslClient::connect_unauthenticated(&addr, opts())
            .await
            .unwrap();
        match client.auth("WrongPassword").await {
            Err(e @ EslError::AuthFailed { .. }) => {
                assert!(e.is_permanent());
                assert!(e.to_string().contains("-ERR invalid"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            client.closed().await,
            CloseReason::Eof {
                notice: Some(NOTICE.into())
            }
        );
        assert_eq!(
            drain(&client).await,
            vec![Received::Disconnect(NOTICE.into())]
        );
    })
    .await;
    // Through `connect`, the same recording is a distinct, permanent error.
    for chunking in CHUNKINGS {
        let (addr, server) = ReplayServer::start(load(false, "02-wrong-password"), chunking).await;
        let steps_ok = async {
            match EslClient::connect(&addr, "WrongPassword", opts()).await {
                Err(EslError::AuthFailed { reply }) => assert_eq!(reply, "-ERR invalid"),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("wrong password accepted"),
            }
        };
        steps_ok.await;
        // `connect` drops the refused connection at once, so the double may find the socket
        // closed while still writing the notice; the auth bytes (step 1) must have matched.
        match server.await.unwrap() {
            Ok(()) => {}
            Err(e) => assert!(e.starts_with("step 2: write"), "{chunking:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn t03_auth_ok() {
    replay(false, "03-auth-ok", |addr| async move {
        let client = EslClient::connect_unauthenticated(&addr, opts())
            .await
            .unwrap();
        let reply = client.auth("ClueCon").await.unwrap();
        assert_eq!(reply.reply_text, "+OK accepted");
        assert_eq!(reply.command, "auth"); // the password is not kept
    })
    .await;
}

#[tokio::test]
async fn t04_api_status() {
    replay(false, "04-api-status", |addr| async move {
        let client = connect(&addr).await;
        let r = client.api("status").await.unwrap();
        assert_eq!(r.command, "status");
        assert_eq!(r.body, STATUS_BODY);
        assert_eq!(r.body.len(), 367);
    })
    .await;
}

#[tokio::test]
async fn t05_api_reloadxml_success() {
    replay(false, "05-api-reloadxml", |addr| async move {
        let out = connect(&addr).await.reloadxml().await.unwrap();
        assert_eq!(out.response.body, "+OK [Success]\n");
        assert_eq!(out.result, Ok(()));
    })
    .await;
}

#[tokio::test]
async fn t06_api_sofia_status_table() {
    replay(false, "06-api-sofia-status", |addr| async move {
        let out = connect(&addr).await.sofia_status().await.unwrap();
        let status = out.result.unwrap();
        assert_eq!(status.entries.len(), 1);
        assert!(status.is_running_at("internal", "127.0.0.1:5060"));
    })
    .await;
}

#[tokio::test]
async fn t07_rescan() {
    replay(
        false,
        "07-api-sofia-profile-internal-rescan",
        |addr| async move {
            let out = connect(&addr)
                .await
                .sofia_profile("internal", ProfileAction::Rescan)
                .await
                .unwrap();
            assert_eq!(out.result, Ok(ProfileAccepted::ScanComplete));
            assert_eq!(out.response.command, "sofia profile internal rescan");
        },
    )
    .await;
}

#[tokio::test]
async fn t08_api_version() {
    replay(false, "08-api-version", |addr| async move {
        assert_eq!(
            connect(&addr).await.api("version").await.unwrap().body,
            VERSION_BODY
        );
    })
    .await;
}

#[tokio::test]
async fn t09a_bgapi_without_subscription() {
    replay(
        false,
        "09a-bgapi-status-no-subscription",
        |addr| async move {
            let client = connect(&addr).await;
            // bgapi would wait forever for an event FreeSWITCH will not send: refused, nothing sent.
            assert!(matches!(
                client.bgapi("status").await,
                Err(EslError::NotSubscribed {
                    event: "BACKGROUND_JOB"
                })
            ));
            let job = client.bgapi_submit("status").await.unwrap();
            assert_eq!(job.job_uuid, "6ef5ec44-c884-4a6f-bf6f-ab6d0642a979");
            assert_eq!(
                job.reply.reply_text,
                "+OK Job-UUID: 6ef5ec44-c884-4a6f-bf6f-ab6d0642a979"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn t09b_bgapi_event_plain() {
    replay(false, "09b-bgapi-status-event-plain", |addr| async move {
        let client = connect(&addr).await;
        let r = client
            .subscribe(EventFormat::Plain, &["BACKGROUND_JOB"])
            .await
            .unwrap();
        assert_eq!(r.reply_text, "+OK event listener enabled plain");
        let job = client.bgapi("status").await.unwrap();
        assert_eq!(job.job_uuid, "de69d0e5-33ff-437b-9451-49319bb9363b");
        assert_eq!(job.command, "status");
        assert!(job
            .body
            .starts_with("UP 0 years, 0 days, 0 hours, 0 minutes, 16 seconds"));
        assert_eq!(job.body.len(), 367);
        // Delivered to the bgapi call, not to the event stream.
        let mut rx = client.take_events().unwrap();
        assert!(rx.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn t09c_bgapi_json_client_job_uuid() {
    replay(
        false,
        "09c-bgapi-status-event-json-client-job-uuid",
        |addr| async move {
            let client = connect(&addr).await;
            client
                .subscribe(EventFormat::Json, &["BACKGROUND_JOB"])
                .await
                .unwrap();
            let job = client
                .bgapi_with_job_uuid("status", "11111111-2222-3333-4444-555555555555")
                .await
                .unwrap();
            assert_eq!(job.job_uuid, "11111111-2222-3333-4444-555555555555");
            assert!(job.body.ends_with("Current Stack Size/Max 240K/240K\n"));
            assert_eq!(job.body.len(), 367);
        },
    )
    .await;
}

#[tokio::test]
async fn t09d_bgapi_event_xml() {
    replay(false, "09d-bgapi-version-event-xml", |addr| async move {
        let client = connect(&addr).await;
        client
            .subscribe(EventFormat::Xml, &["BACKGROUND_JOB"])
            .await
            .unwrap();
        let job = client.bgapi("version").await.unwrap();
        assert_eq!(job.job_uuid, "d77d242d-082c-48c7-839b-2dedb1fa53c0");
        assert_eq!(job.body, VERSION_BODY);
    })
    .await;
}

#[tokio::test]
async fn t10_events_interleaved_with_pipelined_replies() {
    replay(false, "10-event-plain-ALL", |addr| async move {
        let client = connect(&addr).await;
        let mut rx = client.take_events().unwrap();
        client
            .subscribe(EventFormat::Plain, &["ALL"])
            .await
            .unwrap();
        let status = client.api("status").await.unwrap();
        assert!(status.body.contains("32 seconds, 280 milliseconds"));
        // Sent back to back before either reply, as recorded.
        let (job, reload) = tokio::join!(client.bgapi("version"), client.reloadxml());
        let job = job.unwrap();
        assert_eq!(job.job_uuid, "01c6a588-bed0-4398-bcef-c7e5329b7ba6");
        assert_eq!(job.body, VERSION_BODY);
        assert_eq!(reload.unwrap().result, Ok(()));
        let events = wait_events(&mut rx, |_| true, 4).await;
        let seen: Vec<(Option<&str>, Option<u64>)> =
            events.iter().map(|e| (e.name(), e.sequence())).collect();
        // Wire order is not Event-Sequence order.
        assert_eq!(
            seen,
            [
                (Some("API"), Some(431)),
                (Some("API"), Some(432)),
                (Some("RELOADXML"), Some(435)),
                (Some("API"), Some(434)),
            ]
        );
        assert_eq!(events[0].get("API-Command"), Some("status"));
        assert_eq!(events[0].get("FreeSWITCH-IPv6"), Some("fd00::2"));
        assert_eq!(
            events[0].get("Event-Date-GMT"),
            Some("Sat, 28 Nov 2026 00:01:26 GMT")
        );
        assert_eq!(events[0].body, None);
        assert_eq!(client.dropped_events(), 0);
    })
    .await;
}

#[tokio::test]
async fn t10b_heartbeat_and_reschedule() {
    replay(false, "10b-event-plain-ALL-25s", |addr| async move {
        let client = connect(&addr).await;
        let mut rx = client.take_events().unwrap();
        client
            .subscribe(EventFormat::Plain, &["ALL"])
            .await
            .unwrap();
        let events = wait_events(&mut rx, |_| true, 3).await;
        let names: Vec<_> = events.iter().filter_map(|e| e.name()).collect();
        assert_eq!(names, ["HEARTBEAT", "RE_SCHEDULE", "RE_SCHEDULE"]);
        assert_eq!(
            events[0].get("FreeSWITCH-Version"),
            Some("1.11.2-release+git~20260809T162310Z~3f13ad1b1d~64bit")
        );
        assert_eq!(events[0].get("Event-Info"), Some("System Ready"));
        assert_eq!(events[2].get("Task-Desc"), Some("check_ip"));
    })
    .await;
}

#[tokio::test]
async fn t11_json_heartbeat() {
    replay(false, "11-event-json-HEARTBEAT", |addr| async move {
        let client = connect(&addr).await;
        let mut rx = client.take_events().unwrap();
        client
            .subscribe(EventFormat::Json, &["HEARTBEAT"])
            .await
            .unwrap();
        assert!(client.is_subscribed("HEARTBEAT"));
        assert!(!client.is_subscribed("BACKGROUND_JOB"));
        let e = wait_events(&mut rx, |_| true, 1).await.remove(0);
        assert_eq!(e.format, EventFormat::Json);
        assert_eq!(e.name(), Some("HEARTBEAT"));
        assert_eq!(e.get("Idle-CPU"), Some("74.400000"));
        assert_eq!(e.get("FreeSWITCH-IPv6"), Some("fd00::2"));
        assert_eq!(e.sequence(), Some(436));
        assert_eq!(e.body, None);
    })
    .await;
}

#[tokio::test]
async fn t12_nonexistent_api_command() {
    replay(false, "12-api-nonexistent-command", |addr| async move {
        let r = connect(&addr)
            .await
            .api("nonexistent_command")
            .await
            .unwrap();
        assert_eq!(r.body, "-ERR nonexistent_command Command not found!\n");
    })
    .await;
}

#[tokio::test]
async fn t13_exit() {
    replay(false, "13-exit", |addr| async move {
        let client = connect(&addr).await;
        let r = client.exit().await.unwrap();
        assert_eq!(r.reply_text, "+OK bye");
        assert_eq!(
            client.close_reason(),
            Some(CloseReason::Eof {
                notice: Some(NOTICE.into())
            })
        );
        assert!(matches!(
            client.api("status").await,
            Err(EslError::Closed(CloseReason::Eof { .. }))
        ));
    })
    .await;
}

#[tokio::test]
async fn t14_broken_xml_reloadxml_is_a_failure_despite_ok() {
    replay(false, "14-broken-xml-reloadxml", |addr| async move {
        let out = connect(&addr).await.reloadxml().await.unwrap();
        assert_eq!(
            out.result,
            Err(CommandError::ReloadXml {
                message: "[error near line 132]: unexpected closing tag </settings>".into()
            })
        );
    })
    .await;
    replay(false, "14b-reloadxml-after-fix", |addr| async move {
        assert_eq!(
            connect(&addr).await.reloadxml().await.unwrap().result,
            Ok(())
        );
    })
    .await;
}

#[tokio::test]
async fn t14c_broken_xml_with_events_and_split_frame() {
    replay(
        false,
        "14c-broken-xml-reloadxml-event-plain-ALL",
        |addr| async move {
            let client = connect(&addr).await;
            let mut rx = client.take_events().unwrap();
            client
                .subscribe(EventFormat::Plain, &["ALL"])
                .await
                .unwrap();
            assert!(matches!(
                client.reloadxml().await.unwrap().result,
                Err(CommandError::ReloadXml { .. })
            ));
            let first = wait_events(&mut rx, |_| true, 1).await;
            assert_eq!(first[0].get("API-Command"), Some("reloadxml"));
            // This reply's header block and body arrived in separate reads.
            let status = client.sofia_status().await.unwrap().result.unwrap();
            assert!(status.is_running_at("internal", "127.0.0.1:5060"));
            let second = wait_events(&mut rx, |_| true, 1).await;
            assert_eq!(second[0].get("API-Command-Argument"), Some("status"));
            // No RELOADXML event for the failed reload.
            drop(client);
            while let Some(r) = rx.recv().await {
                if let Received::Event(e) = r {
                    assert_ne!(e.name(), Some("RELOADXML"));
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn t15_command_before_auth() {
    replay(false, "15-preauth-command-then-auth", |addr| async move {
        let client = EslClient::connect_unauthenticated(&addr, opts())
            .await
            .unwrap();
        match client.api("status").await {
            Err(EslError::Rejected { reply, .. }) => assert_eq!(reply, "-ERR command not found"),
            other => panic!("{other:?}"),
        }
        client.auth("ClueCon").await.unwrap();
        let r = client.command("frobnicate").await.unwrap();
        assert!(!r.is_ok());
        assert_eq!(r.reply_text, "-ERR command not found");
    })
    .await;
}

#[tokio::test]
async fn t16_preauth_idle_timeout_disconnect() {
    replay(false, "16-preauth-idle-timeout", |addr| async move {
        let client = EslClient::connect_unauthenticated(&addr, opts())
            .await
            .unwrap();
        assert_eq!(
            client.closed().await,
            CloseReason::Eof {
                notice: Some(NOTICE.into())
            }
        );
        assert_eq!(
            drain(&client).await,
            vec![Received::Disconnect(NOTICE.into())]
        );
    })
    .await;
}

#[tokio::test]
async fn t17_crlf_line_endings() {
    replay(false, "17-crlf-line-endings", |addr| async move {
        let o = ConnectOptions {
            line_ending: LineEnding::CrLf,
            ..opts()
        };
        let client = EslClient::connect(&addr, "ClueCon", o).await.unwrap();
        assert_eq!(client.api("version").await.unwrap().body, VERSION_BODY);
    })
    .await;
}

#[tokio::test]
async fn t18_log_frames_nolog_noevents() {
    replay(false, "18-log-7-and-nolog", |addr| async move {
        let client = connect(&addr).await;
        let mut rx = client.take_events().unwrap();
        assert_eq!(
            client.command("log 7").await.unwrap().reply_text,
            "+OK log level 7 [7]"
        );
        assert_eq!(client.reloadxml().await.unwrap().result, Ok(()));
        let mut logs = Vec::new();
        while logs.len() < 2 {
            match rx.recv().await {
                Some(Received::Log(l)) => logs.push(l),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(logs[0].level, Some(6));
        assert_eq!(logs[0].file.as_deref(), Some("switch_xml.c"));
        assert_eq!(logs[0].line, Some(1436));
        assert!(logs[1]
            .text
            .ends_with("[INFO] switch_time.c:1436 Timezone reloaded 0 definitions\n"));
        assert_eq!(logs[1].text.len(), 92);
        assert_eq!(
            client.command("nolog").await.unwrap().reply_text,
            "+OK no longer logging"
        );
        match client.noevents().await {
            Err(EslError::Rejected { reply, .. }) => {
                assert_eq!(reply, "-ERR not listening for events")
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn t19_oversized_content_length_sent_gets_disconnected() {
    replay(false, "19-oversized-content-length", |addr| async move {
        let client = connect(&addr).await;
        // The typed sendevent refuses, without sending, what FreeSWITCH would drop us for.
        let big = vec![b'x'; MAX_CONTENT_LENGTH as usize + 1];
        assert!(matches!(
            client.sendevent("CUSTOM", &[], Some(&big)).await,
            Err(EslError::InvalidCommand { .. })
        ));
        // The raw command goes out as recorded: no reply, a disconnect notice, EOF.
        let r = client
            .command("sendevent CUSTOM\nEvent-Subclass: peers::test\nContent-Length: 99999999")
            .await;
        match r {
            Err(EslError::Closed(CloseReason::Eof { notice })) => {
                assert_eq!(notice.as_deref(), Some(NOTICE))
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn t20_sendevent_echo_with_two_content_lengths() {
    replay(false, "20-sendevent-custom-small-body", |addr| async move {
        let client = connect(&addr).await;
        let mut rx = client.take_events().unwrap();
        client
            .subscribe(EventFormat::Plain, &["CUSTOM", "peers::test"])
            .await
            .unwrap();
        let r = client
            .sendevent(
                "CUSTOM",
                &[("Event-Subclass", "peers::test"), ("X-Peer", "hello world")],
                Some(b"hello"),
            )
            .await
            .unwrap();
        assert_eq!(r.reply_text, "+OK 9fa2c8ba-ee12-4238-b4b7-8d95a6a29415");
        let e = wait_events(&mut rx, |_| true, 1).await.remove(0);
        assert_eq!(e.subclass(), Some("peers::test"));
        assert_eq!(e.get("X-Peer"), Some("hello world"));
        assert_eq!(
            e.get("Event-UUID"),
            Some("9fa2c8ba-ee12-4238-b4b7-8d95a6a29415")
        );
        assert_eq!(e.headers.get_all("Content-Length").count(), 2);
        assert_eq!(e.body.as_deref(), Some("hello"));
    })
    .await;
}

// ------------------------------------------------ refusals not in the recordings

/// The server side of the 16 MiB cap: a reply announcing more is refused without buffering
/// it, and the connection is closed. FreeSWITCH never sends this; the header is the one from
/// `19-oversized-content-length.tx`, sent the other way by the test double.
#[tokio::test]
async fn oversized_content_length_from_server_is_refused() {
    let mut steps = load(false, "03-auth-ok");
    steps.pop(); // client close
    steps.push(Step::Expect(b"api status\n\n".to_vec()));
    steps.push(Step::Send(
        b"Content-Type: api/response\nContent-Length: 99999999\n\n".to_vec(),
    ));
    for chunking in CHUNKINGS {
        let (addr, server) = ReplayServer::start(steps.clone(), chunking).await;
        let client = connect(&addr).await;
        match client.api("status").await {
            Err(EslError::Closed(CloseReason::Frame(FrameError::ContentLengthTooLarge {
                length: 99_999_999,
                ..
            }))) => {}
            other => panic!("{chunking:?}: {other:?}"),
        }
        server.await.unwrap().unwrap();
    }
}

/// ACL rejection. Not in the recordings (the recorder was allowed); the frame is the one
/// mod_event_socket writes for a denied address.
#[tokio::test]
async fn acl_rejection_is_access_denied() {
    let steps = vec![
        Step::Send(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
                .to_vec(),
        ),
        Step::ServerClose,
    ];
    for chunking in CHUNKINGS {
        let (addr, server) = ReplayServer::start(steps.clone(), chunking).await;
        match EslClient::connect(&addr, "ClueCon", opts()).await {
            Err(e @ EslError::AccessDenied { .. }) => {
                assert!(e.is_permanent());
                assert!(e.to_string().contains("Access Denied, go away."));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
        server.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn command_timeout_keeps_replies_aligned() {
    // The double answers `api status` only after `api version` was also sent; with a short
    // timeout the first call gives up, and the second must still get its own reply.
    let auth = load(false, "03-auth-ok");
    let status = load(false, "04-api-status");
    let version = load(false, "08-api-version");
    let reply = |s: &[Step]| match &s[s.len() - 2] {
        Step::Send(b) => b.clone(),
        other => panic!("{other:?}"),
    };
    let mut steps: Vec<Step> = auth[..auth.len() - 1].to_vec();
    steps.push(Step::Expect(b"api status\n\n".to_vec()));
    steps.push(Step::Expect(b"api version\n\n".to_vec()));
    steps.push(Step::Send(reply(&status)));
    steps.push(Step::Send(reply(&version)));
    steps.push(Step::ClientClose);
    let (addr, server) = ReplayServer::start(steps, Chunking::Recorded).await;
    let o = ConnectOptions {
        command_timeout: Duration::from_millis(300),
        ..opts()
    };
    let client = EslClient::connect(&addr, "ClueCon", o).await.unwrap();
    assert!(matches!(
        client.api("status").await,
        Err(EslError::Timeout { .. })
    ));
    // The late reply to `status` is consumed for the abandoned call, not handed to this one.
    let v = client.api("version").await.unwrap();
    assert_eq!(v.body, VERSION_BODY);
    drop(client);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn commands_that_would_break_framing_are_refused() {
    let steps = load(false, "03-auth-ok");
    let (addr, server) = ReplayServer::start(steps, Chunking::Recorded).await;
    let client = connect(&addr).await;
    for bad in ["status\n\napi version", "status\r", ""] {
        assert!(matches!(
            client.api(bad).await,
            Err(EslError::InvalidCommand { .. })
        ));
    }
    assert!(matches!(
        client.command("log 7\n\nexit").await,
        Err(EslError::InvalidCommand { .. })
    ));
    assert!(matches!(
        client.sofia_profile("a b", ProfileAction::Start).await,
        Err(EslError::InvalidCommand { .. })
    ));
    drop(client);
    server.await.unwrap().unwrap(); // nothing was sent
}

// ---------------------------------------------------------------- reconnecting wrapper

#[tokio::test]
async fn reconnects_and_resubscribes_after_connection_loss() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let auth = load(false, "03-auth-ok");
    let sub = load(false, "09b-bgapi-status-event-plain");
    let greeting_and_ok: Vec<Step> = auth[..auth.len() - 1].to_vec();
    // First connection: auth, subscribe, then FreeSWITCH goes away (13-exit's notice).
    let mut first = greeting_and_ok.clone();
    first.extend(sub[3..5].iter().cloned()); // event plain BACKGROUND_JOB + reply
    let exit = load(false, "13-exit");
    if let Step::Send(b) = &exit[4] {
        let notice_at = lossy(b)
            .find("Content-Type: text/disconnect-notice")
            .unwrap();
        first.push(Step::Send(b[notice_at..].to_vec()));
    }
    first.push(Step::ServerClose);
    // Second connection: the wrapper must subscribe again by itself.
    let mut second = greeting_and_ok;
    second.extend(sub[3..5].iter().cloned());
    second.push(Step::ClientClose);
    let server = tokio::spawn(async move {
        for steps in [first, second] {
            let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
            play(&mut sock, &steps, Chunking::Recorded).await?;
        }
        Ok::<(), String>(())
    });
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        ..Backoff::default()
    };
    let rc = ReconnectingClient::spawn(addr, "ClueCon", opts(), backoff);
    let mut events = rc.take_events().unwrap();
    rc.wait_connected(Duration::from_secs(5)).await.unwrap();
    rc.subscribe(EventFormat::Plain, &["BACKGROUND_JOB"])
        .await
        .unwrap();
    // The notice of the first connection comes through the wrapper's single receiver.
    match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        Ok(Some(Received::Disconnect(n))) => assert_eq!(n, NOTICE),
        other => panic!("{other:?}"),
    }
    // Wait for the second connection to have re-subscribed.
    let mut c = None;
    for _ in 0..200 {
        if let Ok(client) = rc.client() {
            if client.is_subscribed("BACKGROUND_JOB") {
                c = Some(client);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = c.expect("reconnected and re-subscribed");
    assert!(matches!(rc.state(), ConnectionState::Connected));
    drop(c);
    drop(rc);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn wrong_password_is_not_retried_in_a_tight_loop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let steps = load(false, "02-wrong-password");
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
        play(&mut sock, &steps, Chunking::Recorded).await?;
        // A second attempt within the test's lifetime would be a tight loop.
        match tokio::time::timeout(Duration::from_millis(500), listener.accept()).await {
            Ok(_) => Err("reconnected right after a wrong password".to_string()),
            Err(_) => Ok(()),
        }
    });
    let backoff = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(1),
        permanent_failure_delay: Duration::from_secs(60),
        ..Backoff::default()
    };
    let rc = ReconnectingClient::spawn(addr, "WrongPassword", opts(), backoff);
    let mut state = rc.state();
    for _ in 0..200 {
        state = rc.state();
        if matches!(state, ConnectionState::Waiting { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match &state {
        ConnectionState::Waiting {
            retry_in,
            last_error,
            failures: 1,
        } => {
            assert!(matches!(**last_error, EslError::AuthFailed { .. }));
            assert!(*retry_in >= Duration::from_secs(30), "{retry_in:?}");
        }
        other => panic!("{other}"),
    }
    assert!(matches!(rc.client(), Err(EslError::NotConnected { .. })));
    server.await.unwrap().unwrap();
}

// ---------------------------------------------------------------- freeswitch-esl-apply

/// What the applier-style driver got for one command of an apply transcript.
#[derive(Debug)]
struct Applied {
    command: String,
    body: String,
}

/// Sends every command of `NAME.tx` (after auth) in order, through the typed helper where
/// one exists (checking it agrees with the raw body), and returns the replies.
async fn drive(addr: &str, name: &str) -> (EslClient, Vec<Applied>) {
    let tx = std::fs::read_to_string(fixture_dir(true).join(format!("{name}.tx"))).unwrap();
    let client = connect(addr).await;
    let mut out = Vec::new();
    for cmd in tx.split("\n\n").filter(|c| !c.is_empty()).skip(1) {
        if let Some(rest) = cmd.strip_prefix("event plain ") {
            let names: Vec<&str> = rest.split(' ').collect();
            client.subscribe(EventFormat::Plain, &names).await.unwrap();
            continue;
        }
        let api = cmd.strip_prefix("api ").expect("api command");
        let words: Vec<&str> = api.split(' ').collect();
        let body = match words.as_slice() {
            ["reloadxml"] => client.reloadxml().await.unwrap().response.body,
            ["reloadacl"] => client.reloadacl().await.unwrap().response.body,
            ["sofia", "xmlstatus"] => client.sofia_xmlstatus().await.unwrap().response.body,
            ["sofia", "status"] => client.sofia_status().await.unwrap().response.body,
            ["show", "channels", "count"] => client.channels_count().await.unwrap().response.body,
            ["fsctl", "pause", "inbound"] => client.pause_inbound().await.unwrap().response.body,
            ["fsctl", "resume", "inbound"] => client.resume_inbound().await.unwrap().response.body,
            ["sofia", "profile", p, verb @ ("rescan" | "start" | "stop" | "restart")] => {
                let action = match *verb {
                    "rescan" => ProfileAction::Rescan,
                    "start" => ProfileAction::Start,
                    "stop" => ProfileAction::Stop,
                    _ => ProfileAction::Restart,
                };
                client.sofia_profile(p, action).await.unwrap().response.body
            }
            _ => client.api(api).await.unwrap().body,
        };
        out.push(Applied {
            command: api.to_string(),
            body,
        });
    }
    (client, out)
}

fn bodies<'a>(applied: &'a [Applied], command: &str) -> Vec<&'a str> {
    applied
        .iter()
        .filter(|a| a.command == command)
        .map(|a| a.body.as_str())
        .collect()
}

fn profile_results(
    applied: &[Applied],
    profile: &str,
    action: ProfileAction,
) -> Vec<Result<ProfileAccepted, CommandError>> {
    bodies(
        applied,
        &format!("sofia profile {profile} {}", action.as_str()),
    )
    .into_iter()
    .map(|b| parse_sofia_profile(profile, action, b))
    .collect()
}

fn statuses(applied: &[Applied]) -> Vec<SofiaStatus> {
    bodies(applied, "sofia status")
        .into_iter()
        .map(|b| parse_sofia_status_table(b).unwrap())
        .collect()
}

fn too_young(profile: &str, wait_seconds: u32) -> Result<ProfileAccepted, CommandError> {
    Err(CommandError::ProfileTooYoung {
        profile: profile.into(),
        wait_seconds,
    })
}

fn invalid(profile: &str) -> Result<ProfileAccepted, CommandError> {
    Err(CommandError::InvalidProfile {
        profile: profile.into(),
    })
}

#[tokio::test]
async fn a01_reloadxml_reloadacl() {
    replay(true, "01a-api-reloadxml", |addr| async move {
        let c = connect(&addr).await;
        assert_eq!(c.reloadxml().await.unwrap().result, Ok(()));
    })
    .await;
    replay(true, "01b-api-reloadacl", |addr| async move {
        let c = connect(&addr).await;
        let out = c.reloadacl().await.unwrap();
        assert_eq!(out.response.body, "+OK acl reloaded\n");
        assert_eq!(out.result, Ok(()));
    })
    .await;
    replay(true, "01c-api-reloadacl-reloadxml", |addr| async move {
        let (_c, a) = drive(&addr, "01c-api-reloadacl-reloadxml").await;
        let b = bodies(&a, "reloadacl reloadxml");
        assert!(b[0].starts_with("This option is deprecated"));
        assert_eq!(parse_reloadacl(b[0]), Ok(()));
    })
    .await;
}

#[tokio::test]
async fn a01d_reloadxml_does_not_reload_acls() {
    replay(
        true,
        "01d-acl-edit-reloadxml-vs-reloadacl",
        |addr| async move {
            let (_c, a) = drive(&addr, "01d-acl-edit-reloadxml-vs-reloadacl").await;
            let checks: Vec<bool> = bodies(&a, "acl 127.0.0.3 test-ingress")
                .into_iter()
                .map(|b| parse_bool("acl", b).unwrap())
                .collect();
            assert_eq!(checks, [false, false, true]);
        },
    )
    .await;
}

#[tokio::test]
async fn a01e_reloadacl_with_broken_xml() {
    replay(true, "01e-reloadacl-broken-xml", |addr| async move {
        let (_c, a) = drive(&addr, "01e-reloadacl-broken-xml").await;
        let msg = "[error near line 176]: unexpected closing tag </settings>".to_string();
        let acl: Vec<_> = bodies(&a, "reloadacl")
            .into_iter()
            .map(parse_reloadacl)
            .collect();
        assert_eq!(
            acl,
            [
                Err(CommandError::ReloadAcl {
                    message: msg.clone()
                }),
                Ok(())
            ]
        );
        assert_eq!(
            parse_reloadacl(bodies(&a, "reloadacl reloadxml")[0]),
            Err(CommandError::ReloadAcl {
                message: msg.clone()
            })
        );
        assert_eq!(
            ccnq_esl::reply::parse_reloadxml(bodies(&a, "reloadxml")[0]),
            Err(CommandError::ReloadXml { message: msg })
        );
    })
    .await;
}

#[tokio::test]
async fn a02_rescan_applies_non_bind_change() {
    replay(true, "02-rescan-after-non-bind-change", |addr| async move {
        let (_c, a) = drive(&addr, "02-rescan-after-non-bind-change").await;
        assert_eq!(
            profile_results(&a, "test-ingress", ProfileAction::Rescan),
            [Ok(ProfileAccepted::ScanComplete)]
        );
        let extra = bodies(&a, "sofia profile test-ingress rescan reloadxml");
        assert_eq!(
            parse_sofia_profile("test-ingress", ProfileAction::Rescan, extra[0]),
            Ok(ProfileAccepted::ScanComplete)
        );
        let detail = bodies(&a, "sofia status profile test-ingress");
        assert!(detail[1].contains("Context          \ttest-ingress-v2\n"));
        assert!(detail[2].contains("Context          \ttest-ingress-v3\n"));
    })
    .await;
}

#[tokio::test]
async fn a03_restart_refused_within_10s() {
    replay(true, "03-restart-within-10s-and-after", |addr| async move {
        let (_c, a) = drive(&addr, "03-restart-within-10s-and-after").await;
        assert_eq!(
            profile_results(&a, "test-ingress", ProfileAction::Restart),
            [
                too_young("test-ingress", 8),
                Ok(ProfileAccepted::Restarting),
                too_young("test-ingress", 9)
            ]
        );
        assert_eq!(
            profile_results(&a, "test-ingress", ProfileAction::Stop),
            [too_young("test-ingress", 8)]
        );
        let running: Vec<bool> = statuses(&a)
            .iter()
            .map(|s| s.is_running_at("test-ingress", "127.0.0.1:5200"))
            .collect();
        assert_eq!(running, [true, false, false, false, false, true, true]);
        assert_eq!(
            bodies(&a, "sofia status profile test-ingress")[0],
            "Invalid Profile!\n"
        );
    })
    .await;
}

#[tokio::test]
async fn a04a_add_start_stop_remove_profile() {
    replay(
        true,
        "04a-add-start-stop-remove-profile",
        |addr| async move {
            let (_c, a) = drive(&addr, "04a-add-start-stop-remove-profile").await;
            assert_eq!(
                profile_results(&a, "new-ingress", ProfileAction::Start),
                [
                    Ok(ProfileAccepted::Started),
                    Ok(ProfileAccepted::Started),
                    Err(CommandError::ProfileStartFailed {
                        profile: "new-ingress".into()
                    })
                ]
            );
            let stops = profile_results(&a, "new-ingress", ProfileAction::Stop);
            assert!(matches!(
                stops[0],
                Err(CommandError::ProfileTooYoung { .. })
            ));
            assert_eq!(stops[1], Ok(ProfileAccepted::Stopping));
            assert_eq!(
                bodies(&a, "sofia profile new-ingress killgw"),
                ["-ERR missing gw name\n"]
            );
            let s = statuses(&a);
            assert!(s
                .iter()
                .any(|s| s.is_running_at("new-ingress", "127.0.0.1:5300")));
            assert!(s.last().unwrap().profile("new-ingress").is_none());
        },
    )
    .await;
}

#[tokio::test]
async fn a04b_remove_xml_then_rescan_and_stop() {
    replay(
        true,
        "04b-remove-xml-first-then-rescan-stop",
        |addr| async move {
            let (_c, a) = drive(&addr, "04b-remove-xml-first-then-rescan-stop").await;
            assert_eq!(
                profile_results(&a, "new-ingress", ProfileAction::Rescan),
                [Err(CommandError::ProfileConfigMissing {
                    profile: "new-ingress".into()
                })]
            );
            assert_eq!(
                profile_results(&a, "new-ingress", ProfileAction::Stop),
                [Ok(ProfileAccepted::Stopping), invalid("new-ingress")]
            );
        },
    )
    .await;
}

#[tokio::test]
async fn a04c_restart_without_xml_is_a_stop() {
    replay(true, "04c-remove-xml-then-restart", |addr| async move {
        let (_c, a) = drive(&addr, "04c-remove-xml-then-restart").await;
        assert_eq!(
            profile_results(&a, "new-ingress", ProfileAction::Restart),
            [Ok(ProfileAccepted::Restarting)]
        );
        let s = statuses(&a);
        assert_eq!(s.len(), 26);
        // Gone from the first poll after the restart, and never back.
        assert!(s.iter().all(|s| s.profile("new-ingress").is_none()));
        assert!(s
            .iter()
            .all(|s| s.is_running_at("test-ingress", "127.0.0.1:5200")));
    })
    .await;
}

#[tokio::test]
async fn a05_unknown_profile() {
    replay(true, "05-unknown-profile", |addr| async move {
        let (_c, a) = drive(&addr, "05-unknown-profile").await;
        for action in [
            ProfileAction::Rescan,
            ProfileAction::Stop,
            ProfileAction::Restart,
        ] {
            assert_eq!(profile_results(&a, "nosuch", action), [invalid("nosuch")]);
        }
        assert_eq!(
            profile_results(&a, "nosuch", ProfileAction::Start),
            [Err(CommandError::ProfileStartFailed {
                profile: "nosuch".into()
            })]
        );
        assert_eq!(
            parse_sofia_profile(
                "nosuch",
                ProfileAction::Rescan,
                bodies(&a, "sofia profile nosuch rescan reloadxml")[0]
            ),
            invalid("nosuch")
        );
        assert!(matches!(
            parse_sofia_profile(
                "test-ingress",
                ProfileAction::Rescan,
                bodies(&a, "sofia profile test-ingress bogusverb")[0]
            ),
            Err(CommandError::Refused { .. })
        ));
        assert!(ccnq_esl::reply::parse_sofia_xmlstatus(
            bodies(&a, "sofia xmlstatus profile nosuch")[0]
        )
        .is_err());
    })
    .await;
}

#[tokio::test]
async fn a06_port_change_needs_restart() {
    replay(
        true,
        "06-egress-port-change-rescan-restart",
        |addr| async move {
            let (_c, a) = drive(&addr, "06-egress-port-change-rescan-restart").await;
            assert_eq!(
                profile_results(&a, "test-egress", ProfileAction::Rescan),
                [Ok(ProfileAccepted::ScanComplete)]
            );
            assert_eq!(
                profile_results(&a, "test-egress", ProfileAction::Restart),
                [Ok(ProfileAccepted::Restarting)]
            );
            let s = statuses(&a);
            // Rescan did not rebind; only the restart moved it to 15201.
            assert!(s[0].is_running_at("test-egress", "127.0.0.1:15200"));
            assert!(s
                .last()
                .unwrap()
                .is_running_at("test-egress", "127.0.0.1:15201"));
            assert!(s.iter().any(|s| s.profile("test-egress").is_none()));
        },
    )
    .await;
}

#[tokio::test]
async fn a07_channel_counts_and_fsctl() {
    replay(true, "07-channels-count-fsctl", |addr| async move {
        let (_c, a) = drive(&addr, "07-channels-count-fsctl").await;
        assert_eq!(bodies(&a, "show channels count"), ["\n0 total.\n"]);
        assert_eq!(
            ccnq_esl::reply::parse_total_count(bodies(&a, "show channels count")[0]),
            Ok(0)
        );
        assert_eq!(bodies(&a, "fsctl pause inbound"), ["+OK\n"]);
        assert_eq!(bodies(&a, "fsctl resume inbound"), ["+OK\n"]);
        let checks: Vec<bool> = bodies(&a, "fsctl pause_check inbound")
            .into_iter()
            .map(|b| parse_bool("pause_check", b).unwrap())
            .collect();
        assert_eq!(checks, [false, true, false, true]);
        assert!(bodies(&a, "fsctl")[0].starts_with("-USAGE: "));
    })
    .await;
}

#[tokio::test]
async fn a08_xmlstatus_confirms_profiles_and_addresses() {
    replay(true, "08-sofia-xmlstatus", |addr| async move {
        let c = connect(&addr).await;
        let out = c.sofia_xmlstatus().await.unwrap();
        let s = out.result.unwrap();
        assert!(s.is_running_at("test-ingress", "127.0.0.1:5200"));
        assert!(s.is_running_at("test-egress", "127.0.0.1:15200"));
        assert_eq!(s.entries.len(), 2);
        let detail = c.api("sofia status profile test-ingress").await.unwrap();
        assert!(detail.body.contains(
            "BIND-URL         \tsip:mod_sofia@127.0.0.1:5200;maddr=127.0.0.1;transport=udp,tcp\n"
        ));
        let xml = c.api("sofia xmlstatus profile test-ingress").await.unwrap();
        assert!(xml.body.contains("<bind-url>"));
    })
    .await;
}

#[tokio::test]
async fn a09a_bad_ip_start_reports_success_but_never_runs() {
    replay(true, "09a-bad-ip-profile-start", |addr| async move {
        let (_c, a) = drive(&addr, "09a-bad-ip-profile-start").await;
        assert_eq!(
            profile_results(&a, "bad-ingress", ProfileAction::Start),
            [Ok(ProfileAccepted::Started)]
        );
        let s = statuses(&a);
        assert_eq!(s.len(), 30);
        assert!(s.iter().all(|s| s.profile("bad-ingress").is_none()));
        assert_eq!(
            profile_results(&a, "bad-ingress", ProfileAction::Rescan),
            [invalid("bad-ingress")]
        );
        assert_eq!(
            profile_results(&a, "bad-ingress", ProfileAction::Stop),
            [invalid("bad-ingress")]
        );
    })
    .await;
}

#[tokio::test]
async fn a09b_bad_ip_start_events() {
    replay(
        true,
        "09b-bad-ip-profile-start-with-events",
        |addr| async move {
            let tx = fixture_dir(true).join("09b-bad-ip-profile-start-with-events.tx");
            assert!(tx.exists());
            let (c, a) = drive(&addr, "09b-bad-ip-profile-start-with-events").await;
            assert_eq!(
                profile_results(&a, "test-egress", ProfileAction::Start),
                [Ok(ProfileAccepted::Started)]
            );
            let mut rx = c.take_events().unwrap();
            let events = wait_events(
                &mut rx,
                |e| e.name() == Some("FAILURE") || e.subclass() == Some("sofia::profile_start"),
                2,
            )
            .await;
            let start = events
                .iter()
                .find(|e| e.subclass() == Some("sofia::profile_start"))
                .expect("profile_start event");
            assert_eq!(start.get("profile_name"), Some("bad-ingress"));
            let failure = events
                .iter()
                .find(|e| e.name() == Some("FAILURE"))
                .expect("FAILURE event");
            assert_eq!(failure.get("profile_name"), Some("bad-ingress"));
            assert_eq!(
                failure.get("failure_message"),
                Some("Profile failed to start.")
            );
        },
    )
    .await;
}

#[tokio::test]
async fn a09c_port_conflict_start() {
    replay(true, "09c-port-conflict-profile-start", |addr| async move {
        let (_c, a) = drive(&addr, "09c-port-conflict-profile-start").await;
        assert_eq!(
            profile_results(&a, "dup-ingress", ProfileAction::Start),
            [Ok(ProfileAccepted::Started)]
        );
        let s = statuses(&a);
        assert!(s.iter().all(|s| s.profile("dup-ingress").is_none()));
        assert!(s
            .iter()
            .all(|s| s.is_running_at("test-ingress", "127.0.0.1:5200")));
    })
    .await;
}

#[tokio::test]
async fn a10_call_count_pause_kill() {
    replay(true, "10-call-count-pause-kill", |addr| async move {
        let (_c, a) = drive(&addr, "10-call-count-pause-kill").await;
        let counts: Vec<u64> = bodies(&a, "show channels count")
            .into_iter()
            .map(|b| ccnq_esl::reply::parse_total_count(b).unwrap())
            .collect();
        assert_eq!(counts, [0, 1, 1, 0, 1, 0]);
        let kills: Vec<_> = bodies(&a, "uuid_kill 4e215c1b-f352-4714-9901-1b302fe2cc5f")
            .into_iter()
            .map(|b| ccnq_esl::reply::parse_plain_ok("uuid_kill", b))
            .collect();
        assert!(kills[0].is_ok());
        assert!(matches!(kills[1], Err(CommandError::Refused { .. })));
        assert!(bodies(&a, "show channels as json")[0].contains("\"callstate\":\"RINGING\""));
    })
    .await;
}

/// Every recorded scenario must be replayed by a test above: a new recording without one
/// fails here.
#[test]
fn every_transcript_is_covered() {
    let source = include_str!("replay.rs");
    for apply in [false, true] {
        let mut names: Vec<String> = std::fs::read_dir(fixture_dir(apply))
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".rx").map(str::to_string)
            })
            .collect();
        names.sort();
        assert!(names.len() >= 17, "{names:?}");
        for name in names {
            assert!(
                source.contains(&format!("\"{name}\"")),
                "{name} is not replayed by any test"
            );
        }
    }
}
