//! `ccnq-esl`: FreeSWITCH's event socket (ESL) for the control plane.
//!
//! - [`frame`]: the wire codec (pure), with the 16 MiB `Content-Length` cap.
//! - [`event`]: plain/json/xml events decoded into one [`Event`] shape (pure).
//! - [`reply`]: raw replies and the typed parsing of configuration commands' answers (pure).
//! - [`client`]: the tokio client ([`EslClient`]); [`commands`] adds typed helpers to it.
//! - [`state`]: what FreeSWITCH is doing now (calls, registrations), read for diagnostics.
//! - [`reconnect`]: a supervisor that keeps a client connected with capped, jittered backoff.
//!
//! Tested against byte-exact recordings of a real FreeSWITCH 1.11.2
//! (`shared/fixtures/freeswitch-esl*`), replayed by a test double in `tests/replay.rs`.

pub mod client;
pub mod commands;
pub mod error;
pub mod event;
pub mod frame;
pub mod reconnect;
pub mod reply;
pub mod state;
mod xml;

pub use client::{ConnectOptions, EslClient, JobHandle, Received};
pub use error::{CloseReason, EslError};
pub use event::{Event, EventFormat, LogLine};
pub use frame::{Frame, FrameDecoder, FrameError, Headers, LineEnding, MAX_CONTENT_LENGTH};
pub use reconnect::{Backoff, ConnectionState, ReconnectingClient};
pub use reply::{
    ApiResponse, BackgroundJob, CommandError, CommandReply, Outcome, ProfileAccepted,
    ProfileAction, SofiaStatus, SofiaStatusEntry,
};
pub use state::{Channel, Registration};
