//! The one event the peer raises, `BACKGROUND_JOB` (the result of a `bgapi`), encoded in
//! the three formats a subscriber may ask for, in the shapes of `09b` (plain), `09c` (json)
//! and `09d` (xml) of `shared/fixtures/freeswitch-esl/`.

use std::fmt::Write as _;

use crate::replies::xml_escape;

/// A `BACKGROUND_JOB` event: ordered headers and the job's output as body.
#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The format a connection subscribed with (`event plain|json|xml …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
    Xml,
}

impl Format {
    pub fn parse(word: &str) -> Option<Format> {
        match word {
            "plain" => Some(Format::Plain),
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Json => "json",
            Format::Xml => "xml",
        }
    }
}

/// Percent-encodes a plain/xml header value as FreeSWITCH does (`09b`: `:` and space
/// encoded, `,` and `-` kept).
fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,/@+".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The whole frame (outer headers and body) for `format`.
pub fn encode(event: &Event, format: Format) -> Vec<u8> {
    let len = event.body.len();
    let (content_type, inner) = match format {
        Format::Plain => {
            let mut s = String::new();
            for (k, v) in &event.headers {
                let _ = writeln!(s, "{k}: {}", url_encode(v));
            }
            let _ = write!(s, "Content-Length: {len}\n\n{}", event.body);
            ("text/event-plain", s)
        }
        Format::Json => {
            let mut s = String::from("{");
            for (k, v) in &event.headers {
                let _ = write!(s, "{}:{},", json(k), json(v));
            }
            let _ = write!(
                s,
                "\"Content-Length\":{},\"_body\":{}}}",
                json(&len.to_string()),
                json(&event.body)
            );
            ("text/event-json", s)
        }
        Format::Xml => {
            let mut s = String::from("<event>\n  <headers>\n");
            for (k, v) in &event.headers {
                let _ = writeln!(s, "    <{k}>{}</{k}>", xml_escape(&url_encode(v)));
            }
            let _ = write!(
                s,
                "  </headers>\n  <Content-Length>{len}</Content-Length>\n  <body>{}  </body>\n</event>\n",
                xml_escape(&event.body)
            );
            ("text/event-xml", s)
        }
    };
    format!(
        "Content-Length: {}\nContent-Type: {content_type}\n\n{inner}",
        inner.len()
    )
    .into_bytes()
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
