//! Reading the recordings and talking to the peer over a raw socket, byte for byte.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccnq_esl_peer::{Peer, PeerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `shared/` beside the checkout, or `$CCNQ_SHARED`.
pub fn shared() -> PathBuf {
    match std::env::var_os("CCNQ_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// One frame as bytes on the wire, with its parsed header block and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    pub bytes: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawFrame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }
    pub fn body_text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.bytes.clone()).expect("utf-8 frame")
    }
}

/// Splits one frame off the front of `buf`, if it holds a whole one.
pub fn split_frame(buf: &mut Vec<u8>) -> Option<RawFrame> {
    let end = buf.windows(2).position(|w| w == b"\n\n")? + 2;
    let block = String::from_utf8_lossy(&buf[..end - 2]).to_string();
    let headers: Vec<(String, String)> = block
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "Content-Length")
        .map_or(0, |(_, v)| v.parse().expect("Content-Length"));
    if buf.len() < end + len {
        return None;
    }
    let bytes: Vec<u8> = buf.drain(..end + len).collect();
    let body = bytes[end..].to_vec();
    Some(RawFrame {
        bytes,
        headers,
        body,
    })
}

/// A recorded scenario: the commands sent (`.tx`) and the frames received (`.rx`).
pub struct Recording {
    pub name: String,
    /// Each command with its terminating blank line, exactly as sent.
    pub commands: Vec<Vec<u8>>,
    /// Every frame received, in order.
    pub frames: Vec<RawFrame>,
}

impl Recording {
    pub fn load(set: &str, name: &str) -> Recording {
        let dir = shared().join("fixtures").join(set);
        let tx = std::fs::read(dir.join(format!("{name}.tx")))
            .unwrap_or_else(|e| panic!("{}/{name}.tx: {e}", dir.display()));
        let mut rx = std::fs::read(dir.join(format!("{name}.rx"))).expect("rx");
        let mut commands = Vec::new();
        let mut rest = &tx[..];
        while !rest.is_empty() {
            let (end, term) = match (
                rest.windows(4).position(|w| w == b"\r\n\r\n"),
                rest.windows(2).position(|w| w == b"\n\n"),
            ) {
                (Some(c), Some(l)) if c < l => (c, 4),
                (_, Some(l)) => (l, 2),
                (Some(c), None) => (c, 4),
                (None, None) => panic!("{name}.tx: unterminated command"),
            };
            commands.push(rest[..end + term].to_vec());
            rest = &rest[end + term..];
        }
        let mut frames = Vec::new();
        while let Some(f) = split_frame(&mut rx) {
            frames.push(f);
        }
        assert!(rx.is_empty(), "{name}.rx: trailing bytes");
        Recording {
            name: name.into(),
            commands,
            frames,
        }
    }

    /// The command text of command `i` (first line).
    pub fn command(&self, i: usize) -> String {
        let s = String::from_utf8_lossy(&self.commands[i]).to_string();
        s.lines().next().unwrap_or("").trim_end().to_string()
    }

    /// The reply frames (command/reply, api/response) in order: reply `i` answers command `i`.
    pub fn replies(&self) -> Vec<RawFrame> {
        self.frames
            .iter()
            .filter(|f| matches!(f.content_type(), "command/reply" | "api/response"))
            .cloned()
            .collect()
    }

    pub fn reply(&self, i: usize) -> RawFrame {
        self.replies()[i].clone()
    }
}

/// A raw connection to the peer.
pub struct Session {
    stream: TcpStream,
    buf: Vec<u8>,
    pub rec: Recording,
}

impl Session {
    /// Connects, checks the greeting, sends the recording's `auth` and checks its reply:
    /// both byte for byte.
    pub async fn open(peer: &Peer, rec: Recording) -> Session {
        let mut s = Session::open_unauthenticated(peer, rec).await;
        s.exact(0).await;
        s
    }

    /// Connects and checks the greeting only.
    pub async fn open_unauthenticated(peer: &Peer, rec: Recording) -> Session {
        let stream = TcpStream::connect(peer.addr()).await.expect("connect");
        let mut s = Session {
            stream,
            buf: Vec::new(),
            rec,
        };
        let greeting = s.frame().await;
        assert_eq!(greeting, s.rec.frames[0], "{}: greeting", s.rec.name);
        s
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next frame (10 s bound so a missing reply fails the test instead of hanging it).
    pub async fn frame(&mut self) -> RawFrame {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(f) = split_frame(&mut self.buf) {
                    return f;
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "peer closed the connection");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("a frame within 10 s")
    }

    /// Asserts the peer closes the connection with nothing more to say.
    pub async fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes before EOF");
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("EOF within 10 s")
            .expect("read");
        assert_eq!(n, 0, "expected EOF, got {:?}", &chunk[..n]);
    }

    /// Sends command `i` and returns the frame it got.
    pub async fn send(&mut self, i: usize) -> RawFrame {
        let cmd = self.rec.commands[i].clone();
        self.send_raw(&cmd).await;
        self.frame().await
    }

    /// Sends command `i`; the reply must be the recorded one, byte for byte.
    pub async fn exact(&mut self, i: usize) -> RawFrame {
        let got = self.send(i).await;
        let want = self.rec.reply(i);
        assert_eq!(
            got.text(),
            want.text(),
            "{} command {i} `{}`",
            self.rec.name,
            self.rec.command(i)
        );
        got
    }

    /// Sends commands `range` in turn, each answered exactly as recorded.
    pub async fn exact_all(&mut self, range: std::ops::Range<usize>) {
        for i in range {
            self.exact(i).await;
        }
    }

    /// Sends command `i`, a `stop`/`restart` refused by the 10-second rule: the reply
    /// must be the recorded text with the peer's own N (1..=10) in place of the recorded
    /// one, the frame's Content-Length matching. Returns N.
    pub async fn please_wait(&mut self, i: usize) -> u64 {
        let got = self.send(i).await;
        let want = self.rec.reply(i).body_text();
        let got_body = got.body_text();
        let n: u64 = got_body
            .rsplit("Please wait ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{}: no wait count in {got_body:?}", self.rec.name));
        assert!((1..=10).contains(&n), "{got_body:?}");
        let recorded_n: String = want
            .rsplit("Please wait ")
            .next()
            .unwrap()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let s = if n == 1 { "" } else { "s" };
        let expected = want.replace(
            &format!("Please wait {recorded_n} seconds"),
            &format!("Please wait {n} second{s}"),
        );
        assert_eq!(got_body, expected, "{} command {i}", self.rec.name);
        assert_eq!(
            got.header("Content-Length"),
            Some(expected.len().to_string().as_str())
        );
        n
    }
}

/// A sofia profile file in the shape `ccnq-freeswitch` renders, with the parameters the
/// recordings' base configuration had.
pub fn profile_xml(name: &str, ip: &str, port: u16, context: &str) -> String {
    format!(
        r#"<!-- Written by ccnqd from the host document: do not edit, it is rewritten. -->
<include>
<profile name="{name}">
  <settings>
    <param name="sip-ip" value="{ip}"/>
    <param name="sip-port" value="{port}"/>
    <param name="rtp-ip" value="{ip}"/>
    <param name="apply-inbound-acl" value="{name}"/>
    <param name="auth-calls" value="false"/>
    <param name="dialplan" value="XML"/>
    <param name="context" value="{context}"/>
    <param name="inbound-codec-prefs" value="PCMU,PCMA"/>
    <param name="outbound-codec-prefs" value="PCMU,PCMA"/>
  </settings>
</profile>
</include>
"#
    )
}

pub fn write_profile(conf: &Path, name: &str, ip: &str, port: u16, context: &str) {
    let dir = conf.join("sip_profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.xml")),
        profile_xml(name, ip, port, context),
    )
    .unwrap();
}

pub fn remove_profile(conf: &Path, name: &str) {
    std::fs::remove_file(conf.join("sip_profiles").join(format!("{name}.xml"))).unwrap();
}

/// The recordings' base state: test-ingress 127.0.0.1:5200, test-egress 127.0.0.1:15200,
/// just started (FreeSWITCH was restarted fresh for each scenario).
pub async fn base_peer(ten_second_rule: Duration) -> (Peer, tempfile::TempDir) {
    let conf = tempfile::tempdir().unwrap();
    write_profile(
        conf.path(),
        "test-egress",
        "127.0.0.1",
        15200,
        "test-egress",
    );
    write_profile(
        conf.path(),
        "test-ingress",
        "127.0.0.1",
        5200,
        "test-ingress",
    );
    let peer = Peer::start(PeerConfig {
        conf_dir: Some(conf.path().to_path_buf()),
        ten_second_rule,
        ..PeerConfig::default()
    })
    .await
    .unwrap();
    (peer, conf)
}

pub const APPLY: &str = "freeswitch-esl-apply";
pub const ESL: &str = "freeswitch-esl";
