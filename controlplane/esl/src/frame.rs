//! The event-socket wire framing, with no I/O: a frame is a block of `Name: value` header
//! lines ended by a blank line, followed by exactly `Content-Length` bytes of body when that
//! header is present. This module turns bytes into frames (whatever way TCP split or
//! coalesced them) and commands into bytes, so the client above it only deals in frames and
//! the codec can be tested and benchmarked on recorded bytes without a socket.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// FreeSWITCH 1.11.2 disconnects a client that announces a body above 16 MiB; we refuse
/// such frames from the server side too rather than buffer an unbounded amount.
pub const MAX_CONTENT_LENGTH: u64 = 16 * 1024 * 1024;

/// Real header blocks are well under 2 KiB; a peer that never ends its header block must not
/// make us buffer forever.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Why a byte stream is not a valid frame sequence. Any of these ends the connection: once
/// framing is lost nothing after it can be trusted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("Content-Length {length} exceeds the {max}-byte limit")]
    ContentLengthTooLarge { length: u64, max: u64 },
    #[error("Content-Length {0:?} is not a byte count")]
    InvalidContentLength(String),
    #[error("header block longer than {max} bytes without a terminating blank line")]
    HeaderBlockTooLarge { max: usize },
    #[error("header line {0:?} has no `:`")]
    MalformedHeader(String),
}

/// Ordered header list. Order is kept and duplicates are allowed because FreeSWITCH sends
/// both (an echoed `sendevent` carries two `Content-Length` headers). Lookups ignore ASCII
/// case, as FreeSWITCH's own header lookups do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a frame is, from its `Content-Type`: the only thing the client dispatches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    AuthRequest,
    CommandReply,
    ApiResponse,
    EventPlain,
    EventJson,
    EventXml,
    LogData,
    DisconnectNotice,
    RudeRejection,
    /// Anything else (kept so that a newer FreeSWITCH does not break the connection).
    Other(String),
    /// No `Content-Type` header at all.
    Missing,
}

impl ContentType {
    pub fn parse(value: Option<&str>) -> ContentType {
        match value {
            None => ContentType::Missing,
            Some("auth/request") => ContentType::AuthRequest,
            Some("command/reply") => ContentType::CommandReply,
            Some("api/response") => ContentType::ApiResponse,
            Some("text/event-plain") => ContentType::EventPlain,
            Some("text/event-json") => ContentType::EventJson,
            Some("text/event-xml") => ContentType::EventXml,
            Some("log/data") => ContentType::LogData,
            Some("text/disconnect-notice") => ContentType::DisconnectNotice,
            Some("text/rude-rejection") => ContentType::RudeRejection,
            Some(other) => ContentType::Other(other.to_string()),
        }
    }
}

/// One decoded frame. `body` is empty when the frame had no `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub headers: Headers,
    pub body: Bytes,
}

impl Frame {
    pub fn content_type(&self) -> ContentType {
        ContentType::parse(self.headers.get("Content-Type"))
    }

    /// The body as text. FreeSWITCH bodies are text; invalid UTF-8 is replaced rather than
    /// refused because a reply with one odd byte is still a reply.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses a header block (without its terminating blank line). Shared by the outer frame and
/// the inner header block of plain events.
pub fn parse_header_block(block: &[u8], url_decode: bool) -> Result<Headers, FrameError> {
    let mut headers = Headers::new();
    for raw in block.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
            FrameError::MalformedHeader(String::from_utf8_lossy(line).into_owned())
        })?;
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        let mut value = &line[colon + 1..];
        if let Some(rest) = value.strip_prefix(b" ") {
            value = rest;
        }
        let value = if url_decode {
            percent_decode(value)
        } else {
            String::from_utf8_lossy(value).into_owned()
        };
        headers.push(name, value);
    }
    Ok(headers)
}

/// FreeSWITCH's `switch_url_encode` writes `%XX` (space as `%20`, `+` as `%2B`), so `+` is
/// left alone. A `%` not followed by two hex digits is kept literally.
pub fn percent_decode(input: &[u8]) -> String {
    if !input.contains(&b'%') {
        return String::from_utf8_lossy(input).into_owned();
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_content_length(value: &str) -> Result<usize, FrameError> {
    let length: u64 = value
        .trim()
        .parse()
        .map_err(|_| FrameError::InvalidContentLength(value.to_string()))?;
    if length > MAX_CONTENT_LENGTH {
        return Err(FrameError::ContentLengthTooLarge {
            length,
            max: MAX_CONTENT_LENGTH,
        });
    }
    usize::try_from(length).map_err(|_| FrameError::InvalidContentLength(value.to_string()))
}

/// Incremental decoder. Feed it whatever bytes arrived; it returns whole frames and keeps the
/// rest. It remembers how far it already scanned for the blank line so that a frame arriving
/// one byte at a time costs linear, not quadratic, time.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Header block parsed, waiting for this many body bytes.
    pending: Option<(Headers, usize)>,
    /// Bytes of `buf` already searched for the end of the header block.
    scanned: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one frame off the front of `buf` if it is complete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            // Tolerate stray newlines between frames.
            let skip = buf
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            if skip > 0 {
                let _ = buf.split_to(skip);
                self.scanned = self.scanned.saturating_sub(skip);
            }
            let Some(end) = self.find_blank_line(buf) else {
                if buf.len() > MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlockTooLarge {
                        max: MAX_HEADER_BLOCK,
                    });
                }
                return Ok(None);
            };
            let block = buf.split_to(end.0);
            let _ = buf.split_to(end.1);
            self.scanned = 0;
            let headers = parse_header_block(&block, false)?;
            let length = match headers.get("Content-Length") {
                Some(v) => parse_content_length(v)?,
                None => 0,
            };
            self.pending = Some((headers, length));
        }
        let length = self.pending.as_ref().map_or(0, |(_, l)| *l);
        if buf.len() < length {
            // Reserve now so a large body does not grow the buffer piecemeal.
            buf.reserve(length - buf.len());
            return Ok(None);
        }
        let Some((headers, _)) = self.pending.take() else {
            return Ok(None);
        };
        let body = buf.split_to(length).freeze();
        Ok(Some(Frame { headers, body }))
    }

    /// Position of the header block's end and the length of the terminator (`\n\n` or
    /// `\n\r\n`).
    fn find_blank_line(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        let start = self.scanned.saturating_sub(2);
        let mut i = start;
        while i < buf.len() {
            if buf[i] == b'\n' {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some((i + 1, 1));
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some((i + 1, 2));
                }
            }
            i += 1;
        }
        self.scanned = buf.len();
        None
    }
}

/// How commands end their lines. FreeSWITCH accepts both (recorded in
/// `17-crlf-line-endings`); LF is what its own `fs_cli` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    #[default]
    Lf,
    CrLf,
}

impl LineEnding {
    fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::CrLf => b"\r\n",
        }
    }
}

/// Appends one command to `out`: the command line, its header lines, a blank line, and the
/// body (announced by a computed `Content-Length`) if there is one. Callers have checked
/// that nothing in `line` or `headers` can end the block early (see `validate_command_text`).
pub fn encode_command(
    out: &mut Vec<u8>,
    line: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    eol: LineEnding,
) {
    let eol = eol.as_bytes();
    for (i, l) in line.split('\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(l.as_bytes());
    }
    out.extend_from_slice(eol);
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(eol);
    }
    if let Some(body) = body {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(eol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(f) = dec.decode(&mut buf)? {
                frames.push(f);
            }
        }
        assert!(buf.is_empty(), "left over: {:?}", buf);
        Ok(frames)
    }

    #[test]
    fn coalesced_and_split_give_the_same_frames() {
        let wire: &[u8] = b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\nContent-Type: text/disconnect-notice\nContent-Length: 5\n\nbye.\n";
        let whole = decode_all(&[wire]).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].content_type(), ContentType::CommandReply);
        assert_eq!(whole[0].headers.get("reply-text"), Some("-ERR invalid"));
        assert_eq!(whole[1].content_type(), ContentType::DisconnectNotice);
        assert_eq!(&whole[1].body[..], b"bye.\n");
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap(), whole);
    }

    #[test]
    fn content_length_counts_bytes_not_chars() {
        let wire = "Content-Type: api/response\nContent-Length: 3\n\n\u{e9}xContent-Type: auth/request\n\n";
        let frames = decode_all(&[wire.as_bytes()]).unwrap();
        assert_eq!(frames[0].body_text(), "\u{e9}x");
        assert_eq!(frames[1].content_type(), ContentType::AuthRequest);
    }

    #[test]
    fn oversized_content_length_is_refused_before_buffering() {
        let wire = b"Content-Type: api/response\nContent-Length: 16777217\n\n";
        assert_eq!(
            decode_all(&[wire]),
            Err(FrameError::ContentLengthTooLarge {
                length: 16_777_217,
                max: MAX_CONTENT_LENGTH
            })
        );
        let ok = b"Content-Type: api/response\nContent-Length: 16777216\n\n";
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::from(&ok[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            decode_all(&[b"no colon here\n\n"]),
            Err(FrameError::MalformedHeader(_))
        ));
        assert!(matches!(
            decode_all(&[b"Content-Length: -1\n\n"]),
            Err(FrameError::InvalidContentLength(_))
        ));
        let endless = vec![b'a'; MAX_HEADER_BLOCK + 1];
        assert!(matches!(
            decode_all(&[&endless]),
            Err(FrameError::HeaderBlockTooLarge { .. })
        ));
    }

    #[test]
    fn percent_decoding_matches_switch_url_encode() {
        assert_eq!(percent_decode(b"fd00%3A%3A2"), "fd00::2");
        assert_eq!(
            percent_decode(b"1.11.2-release%2Bgit"),
            "1.11.2-release+git"
        );
        assert_eq!(percent_decode(b"a+b%2"), "a+b%2");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }

    #[test]
    fn encodes_commands_like_the_recordings() {
        let mut out = Vec::new();
        encode_command(&mut out, "api status", &[], None, LineEnding::Lf);
        assert_eq!(out, b"api status\n\n");
        out.clear();
        encode_command(
            &mut out,
            "sendevent CUSTOM",
            &[("Event-Subclass", "peers::test"), ("X-Peer", "hello world")],
            Some(b"hello"),
            LineEnding::Lf,
        );
        assert_eq!(
            out,
            b"sendevent CUSTOM\nEvent-Subclass: peers::test\nX-Peer: hello world\nContent-Length: 5\n\nhello"
        );
        out.clear();
        encode_command(&mut out, "api version", &[], None, LineEnding::CrLf);
        assert_eq!(out, b"api version\r\n\r\n");
    }
}
