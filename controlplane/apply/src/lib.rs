//! `ccnq-apply`: carries a [`ccnq_freeswitch::Plan`] out, safely — the effects half of
//! applying a host document, the planner being pure.
//!
//! - [`files`]: the rendered file set on the data volume, installed as a whole by one
//!   atomic symlink swap, keeping the last good set for rollback and recording which
//!   document it came from, so a restarted daemon knows what runs.
//! - [`drain`]: refuse new calls and wait for the calls in progress to end, with a
//!   deadline (also used by the services API).
//! - [`applier`]: runs each step over the event socket and systemd, checks every reply,
//!   and on failure puts the last good files back.

pub mod applier;
pub mod drain;
pub mod files;

pub use applier::{
    step_number, ActionRecord, Applier, ApplyOptions, ApplyReport, Outcome, Progress, Services,
};
pub use drain::{drain, resume, DrainError, DrainOutcome};
pub use files::{Applied, FileStore, FilesError, InDoubt, Installed};
