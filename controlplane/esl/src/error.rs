//! Transport-level errors of the client: what went wrong talking to FreeSWITCH, as opposed
//! to FreeSWITCH answering "no" to a command (that is `reply::CommandError`). Wrong password
//! and ACL rejection are their own variants so the reconnecting wrapper and the daemon can
//! tell "fix the configuration" from "try again later".

use crate::frame::FrameError;
use std::time::Duration;
use thiserror::Error;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// FreeSWITCH closed the socket; `notice` is the `text/disconnect-notice` body it sent
    /// first, if any.
    Eof { notice: Option<String> },
    /// The byte stream stopped being valid ESL framing (for instance an oversized
    /// `Content-Length`); we closed.
    Frame(FrameError),
    /// A read or write failed.
    Io(String),
    /// The `EslClient` was dropped.
    ClientDropped,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Eof { notice: Some(n) } => {
                write!(f, "closed by FreeSWITCH after disconnect notice {:?}", n)
            }
            CloseReason::Eof { notice: None } => write!(f, "closed by FreeSWITCH"),
            CloseReason::Frame(e) => write!(f, "invalid framing from FreeSWITCH: {e}"),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::ClientDropped => write!(f, "client dropped"),
        }
    }
}

#[derive(Debug, Error)]
pub enum EslError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no greeting from {addr} within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    /// `-ERR invalid` to `auth`: the password is wrong. Retrying will not help.
    #[error("FreeSWITCH refused the event-socket password ({reply})")]
    AuthFailed { reply: String },
    /// `text/rude-rejection`: our address is not allowed by the event socket's ACL.
    #[error("FreeSWITCH's event-socket ACL rejected this client: {message}")]
    AccessDenied { message: String },
    #[error("expected auth/request as greeting, got {0}")]
    UnexpectedGreeting(String),
    #[error("command {command:?} got no reply within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("connection closed ({0})")]
    Closed(CloseReason),
    /// `-ERR ...` in a `command/reply`.
    #[error("command {command:?} rejected: {reply}")]
    Rejected { command: String, reply: String },
    /// The text would break framing (an embedded blank line could smuggle a second command).
    #[error("invalid command text: {reason}")]
    InvalidCommand { reason: &'static str },
    /// `bgapi` would wait forever: FreeSWITCH only delivers BACKGROUND_JOB to subscribers
    /// (recorded in `09a-bgapi-status-no-subscription`).
    #[error("not subscribed to {event}: subscribe first, or use bgapi_submit")]
    NotSubscribed { event: &'static str },
    /// The reconnecting wrapper has no live connection right now.
    #[error("not connected to FreeSWITCH ({state})")]
    NotConnected { state: String },
    #[error("command {command:?}: unexpected {what}")]
    UnexpectedReply { command: String, what: String },
}

impl EslError {
    /// True for errors that repeating the same connection attempt cannot fix.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            EslError::AuthFailed { .. } | EslError::AccessDenied { .. }
        )
    }
}
