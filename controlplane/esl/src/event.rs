//! Events and log lines as the client hands them out, decoded from the three event formats
//! FreeSWITCH can send (plain: URL-encoded header lines; json: an object of strings with the
//! body under `_body`; xml: `<headers>` plus `<body>`) into one shape, so callers never care
//! which format they subscribed with. Pure functions of a frame: no I/O.

use crate::frame::{parse_header_block, percent_decode, ContentType, Frame, FrameError, Headers};
use crate::xml;
use thiserror::Error;

/// Which serialisation to ask FreeSWITCH for in `event <format> ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFormat {
    Plain,
    Json,
    Xml,
}

impl EventFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
            EventFormat::Xml => "xml",
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventError {
    #[error("plain event headers: {0}")]
    Plain(#[from] FrameError),
    #[error("json event: {0}")]
    Json(String),
    #[error("xml event: {0}")]
    Xml(#[from] xml::XmlError),
    #[error("xml event has no <headers> element")]
    XmlNoHeaders,
    #[error("frame of type {0:?} is not an event")]
    NotAnEvent(ContentType),
}

/// One FreeSWITCH event, whatever format it came in. Header values are decoded (no `%3A`),
/// in the order they arrived (json: alphabetical, as the object carries no order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub format: EventFormat,
    pub headers: Headers,
    /// The event body (for BACKGROUND_JOB: the command's output), if it has one.
    pub body: Option<String>,
}

impl Event {
    pub fn name(&self) -> Option<&str> {
        self.headers.get("Event-Name")
    }

    pub fn subclass(&self) -> Option<&str> {
        self.headers.get("Event-Subclass")
    }

    pub fn get(&self, header: &str) -> Option<&str> {
        self.headers.get(header)
    }

    pub fn job_uuid(&self) -> Option<&str> {
        self.headers.get("Job-UUID")
    }

    /// FreeSWITCH's per-process event counter. Wire order is not sequence order (recorded in
    /// `10-event-plain-ALL`), so consumers that care must sort on this, not on arrival.
    pub fn sequence(&self) -> Option<u64> {
        self.headers.get("Event-Sequence")?.parse().ok()
    }

    /// Decodes an event frame (`text/event-plain|json|xml`).
    pub fn from_frame(frame: &Frame) -> Result<Event, EventError> {
        match frame.content_type() {
            ContentType::EventPlain => parse_plain(&frame.body),
            ContentType::EventJson => parse_json(&frame.body),
            ContentType::EventXml => parse_xml(&frame.body),
            other => Err(EventError::NotAnEvent(other)),
        }
    }
}

fn parse_plain(body: &[u8]) -> Result<Event, EventError> {
    let (block, rest) = match body.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&body[..p + 1], &body[p + 2..]),
        None => (body, &body[body.len()..]),
    };
    let headers = parse_header_block(block, true)?;
    // A sendevent echo carries the sender's Content-Length and FreeSWITCH's own; they agree,
    // and the last one is FreeSWITCH's.
    let declared = headers
        .get_all("Content-Length")
        .last()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = match declared {
        Some(n) => Some(String::from_utf8_lossy(&rest[..n.min(rest.len())]).into_owned()),
        None if rest.is_empty() => None,
        None => Some(String::from_utf8_lossy(rest).into_owned()),
    };
    Ok(Event {
        format: EventFormat::Plain,
        headers,
        body,
    })
}

fn parse_json(body: &[u8]) -> Result<Event, EventError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| EventError::Json(e.to_string()))?;
    let mut headers = Headers::new();
    let mut event_body = None;
    for (k, v) in map {
        let text = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        if k == "_body" {
            event_body = Some(text);
        } else {
            headers.push(k, text);
        }
    }
    Ok(Event {
        format: EventFormat::Json,
        headers,
        body: event_body,
    })
}

fn parse_xml(body: &[u8]) -> Result<Event, EventError> {
    let text = String::from_utf8_lossy(body);
    let root = xml::parse(&text)?;
    let header_el = root.child("headers").ok_or(EventError::XmlNoHeaders)?;
    let mut headers = Headers::new();
    for h in &header_el.children {
        // Values inside the XML are URL-encoded as well (recorded in 09d).
        headers.push(h.name.clone(), percent_decode(h.text.as_bytes()));
    }
    // The serialiser indents the closing tag inside <body>; <Content-Length> tells how much
    // of the text is the real body.
    let body = root.child("body").map(|b| {
        let declared = root
            .child_text("Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        match declared {
            Some(n) if n <= b.text.len() && b.text.is_char_boundary(n) => b.text[..n].to_string(),
            _ => b.text.clone(),
        }
    });
    Ok(Event {
        format: EventFormat::Xml,
        headers,
        body,
    })
}

/// One `log/data` frame (after `log <level>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Option<u8>,
    pub file: Option<String>,
    pub function: Option<String>,
    pub line: Option<u32>,
    pub text: String,
}

impl LogLine {
    pub fn from_frame(frame: &Frame) -> LogLine {
        let h = &frame.headers;
        LogLine {
            level: h.get("Log-Level").and_then(|v| v.parse().ok()),
            file: h.get("Log-File").map(str::to_string),
            function: h.get("Log-Func").map(str::to_string),
            line: h.get("Log-Line").and_then(|v| v.parse().ok()),
            text: frame.body_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(ct: &str, body: &str) -> Frame {
        let mut headers = Headers::new();
        headers.push("Content-Type", ct);
        Frame {
            headers,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn plain_event_without_body() {
        let e = Event::from_frame(&frame(
            "text/event-plain",
            "Event-Name: API\nFreeSWITCH-IPv6: fd00%3A%3A2\nEvent-Sequence: 431\n\n",
        ))
        .unwrap();
        assert_eq!(e.name(), Some("API"));
        assert_eq!(e.get("freeswitch-ipv6"), Some("fd00::2"));
        assert_eq!(e.sequence(), Some(431));
        assert_eq!(e.body, None);
    }

    #[test]
    fn plain_event_with_duplicated_content_length() {
        let e = Event::from_frame(&frame(
            "text/event-plain",
            "Event-Subclass: peers%3A%3Atest\nContent-Length: 5\nEvent-Name: CUSTOM\nContent-Length: 5\n\nhello",
        ))
        .unwrap();
        assert_eq!(e.subclass(), Some("peers::test"));
        assert_eq!(e.body.as_deref(), Some("hello"));
    }

    #[test]
    fn json_and_xml_events() {
        let j = Event::from_frame(&frame(
            "text/event-json",
            r#"{"Event-Name":"BACKGROUND_JOB","Job-UUID":"u","_body":"ok\n"}"#,
        ))
        .unwrap();
        assert_eq!(
            (j.name(), j.job_uuid()),
            (Some("BACKGROUND_JOB"), Some("u"))
        );
        assert_eq!(j.body.as_deref(), Some("ok\n"));
        let x = Event::from_frame(&frame(
            "text/event-xml",
            "<event>\n  <headers>\n    <Event-Name>BACKGROUND_JOB</Event-Name>\n    <A>b%20c</A>\n  </headers>\n  <Content-Length>3</Content-Length>\n  <body>ok\n\n  </body>\n</event>\n",
        ))
        .unwrap();
        assert_eq!(x.get("A"), Some("b c"));
        assert_eq!(x.body.as_deref(), Some("ok\n"));
        assert!(Event::from_frame(&frame("text/event-json", "{")).is_err());
        assert!(Event::from_frame(&frame("api/response", "")).is_err());
    }
}
