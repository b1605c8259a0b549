//! The continuous `_changes` feed, as bytes in and typed lines out: no I/O here.
//!
//! Kept pure so that the byte-exact recordings of CouchDB 3.4.3 and pouchdb-server 4.2.0
//! can be replayed through it, and so the reconnect loop (`follower`) only decides what
//! to do, never how to parse. Rules from spec/couchdb.md: one JSON object per line, empty
//! lines are heartbeats, key order differs between servers (parse JSON, never
//! positions), `seq` is opaque (kept as raw JSON), a `{"last_seq": …}` line means the
//! server ended the feed.

use serde::Deserialize;
use serde_json::Value;

use crate::client::encode_component;
use crate::error::{CouchError, ErrorBody};

/// One change of one of the followed documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Opaque: send it back unchanged as `since`; never compare or parse it.
    pub seq: Value,
    pub id: String,
    pub deleted: bool,
    /// The winning revision named by the change (`changes[0].rev`).
    pub rev: Option<String>,
    /// The document at that revision (`include_docs=true`); `None` if the server sent none.
    pub doc: Option<Value>,
}

/// What one line of a continuous feed means.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedLine {
    /// An empty line: the server is alive.
    Heartbeat,
    Change(Change),
    /// The server ended the feed (its `timeout`, or the database was deleted: the bytes
    /// are the same, only `GET /db` tells them apart).
    LastSeq(Value),
    /// The server reported an error inside a 200 stream.
    Error(ErrorBody),
}

#[derive(Deserialize)]
struct RawRev {
    rev: String,
}

#[derive(Deserialize)]
struct RawLine {
    seq: Option<Value>,
    id: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    changes: Vec<RawRev>,
    doc: Option<Value>,
    last_seq: Option<Value>,
    error: Option<String>,
    reason: Option<String>,
}

/// Parses one line (without its `\n`; a trailing `\r` is tolerated).
pub fn parse_line(line: &[u8]) -> Result<FeedLine, CouchError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(FeedLine::Heartbeat);
    }
    let raw: RawLine = serde_json::from_slice(line).map_err(|e| {
        CouchError::Decode(format!(
            "changes line {:?}: {e}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        ))
    })?;
    if let Some(error) = raw.error {
        return Ok(FeedLine::Error(ErrorBody {
            error,
            reason: raw.reason.unwrap_or_default(),
        }));
    }
    if let (Some(seq), Some(id)) = (raw.seq, raw.id) {
        return Ok(FeedLine::Change(Change {
            seq,
            id,
            deleted: raw.deleted,
            rev: raw.changes.into_iter().next().map(|r| r.rev),
            doc: raw.doc.filter(|d| !d.is_null()),
        }));
    }
    if let Some(last) = raw.last_seq {
        return Ok(FeedLine::LastSeq(last));
    }
    Err(CouchError::Decode(format!(
        "changes line is neither a change nor last_seq: {}",
        String::from_utf8_lossy(&line[..line.len().min(200)])
    )))
}

/// Cuts a byte stream into lines, whatever the split of bytes across reads.
///
/// A line is only complete at its `\n`: bytes left over when the stream ends are a line
/// cut off mid-way (the server died), reported by [`LineSplitter::unfinished`], never
/// parsed.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

/// A single change line larger than this is not a host document: refuse it rather than
/// buffer without bound.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns the lines they complete, each without its `\n`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CouchError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(std::mem::take(&mut self.buf));
            } else {
                self.buf.push(b);
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(CouchError::Decode(format!(
                "changes line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(out)
    }

    /// Bytes received after the last `\n`: non-empty at the end of a stream means the
    /// last line was cut off.
    pub fn unfinished(&self) -> &[u8] {
        &self.buf
    }
}

/// Parameters of one `_changes` request.
#[derive(Debug, Clone)]
pub struct FeedRequest<'a> {
    pub db: &'a str,
    pub doc_ids: &'a [String],
    pub heartbeat_ms: u64,
    pub since: &'a Value,
}

/// Renders a `since` value for the query string: a JSON string as its raw text, any
/// other JSON value (pouchdb-server's integers) as JSON. The value itself is never
/// interpreted.
pub fn since_param(since: &Value) -> String {
    match since {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl FeedRequest<'_> {
    /// Path and query, e.g.
    /// `/provisioning/_changes?feed=continuous&filter=_doc_ids&include_docs=true&heartbeat=1000&since=0`.
    pub fn path_and_query(&self) -> String {
        format!(
            "/{}/_changes?feed=continuous&filter=_doc_ids&include_docs=true&heartbeat={}&since={}",
            encode_component(self.db),
            self.heartbeat_ms,
            encode_component(&since_param(self.since))
        )
    }

    /// The POST body naming the followed documents (server-side filter: other hosts'
    /// documents cost nothing).
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "doc_ids": self.doc_ids })
            .to_string()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn couchdb_and_pouchdb_lines_parse_alike() {
        let c = br#"{"seq":"1-g1AA","id":"host:a","changes":[{"rev":"1-x"}],"doc":{"_id":"host:a","v":1}}"#;
        let p =
            br#"{"id":"host:a","changes":[{"rev":"1-x"}],"doc":{"_id":"host:a","v":1},"seq":1}"#;
        let (FeedLine::Change(c), FeedLine::Change(p)) =
            (parse_line(c).unwrap(), parse_line(p).unwrap())
        else {
            panic!("not changes");
        };
        assert_eq!(c.seq, json!("1-g1AA"));
        assert_eq!(p.seq, json!(1));
        assert_eq!(c.doc, p.doc);
        assert_eq!(c.rev.as_deref(), Some("1-x"));
    }

    #[test]
    fn heartbeat_last_seq_error_and_garbage() {
        assert_eq!(parse_line(b"").unwrap(), FeedLine::Heartbeat);
        assert_eq!(parse_line(b"\r").unwrap(), FeedLine::Heartbeat);
        assert_eq!(
            parse_line(br#"{"last_seq":"9-g","pending":0}"#).unwrap(),
            FeedLine::LastSeq(json!("9-g"))
        );
        assert!(matches!(
            parse_line(br#"{"error":"not_found","reason":"x"}"#).unwrap(),
            FeedLine::Error(ErrorBody { ref error, .. }) if error == "not_found"
        ));
        assert!(matches!(
            parse_line(b"{\"seq\":"),
            Err(CouchError::Decode(_))
        ));
        assert!(matches!(parse_line(b"{}"), Err(CouchError::Decode(_))));
    }

    #[test]
    fn deleted_change() {
        let l = br#"{"seq":5,"id":"host:a","changes":[{"rev":"2-y"}],"deleted":true,"doc":{"_id":"host:a","_rev":"2-y","_deleted":true}}"#;
        let FeedLine::Change(c) = parse_line(l).unwrap() else {
            panic!()
        };
        assert!(c.deleted);
    }

    #[test]
    fn splitter_keeps_partial_lines() {
        let mut s = LineSplitter::new();
        assert!(s.push(b"{\"a\"").unwrap().is_empty());
        assert_eq!(
            s.push(b":1}\n\n{").unwrap(),
            vec![b"{\"a\":1}".to_vec(), vec![]]
        );
        assert_eq!(s.unfinished(), b"{");
    }

    #[test]
    fn request_renders_since_unchanged() {
        let ids = vec!["host:a.example.net".to_string()];
        let since = json!("3-g1AAAAB5eJzL_yD");
        let r = FeedRequest {
            db: "provisioning",
            doc_ids: &ids,
            heartbeat_ms: 1000,
            since: &since,
        };
        assert_eq!(
            r.path_and_query(),
            "/provisioning/_changes?feed=continuous&filter=_doc_ids&include_docs=true&heartbeat=1000&since=3-g1AAAAB5eJzL_yD"
        );
        assert_eq!(r.body(), br#"{"doc_ids":["host:a.example.net"]}"#.to_vec());
        let since = json!(4);
        let r = FeedRequest { since: &since, ..r };
        assert!(r.path_and_query().ends_with("&since=4"));
    }
}
