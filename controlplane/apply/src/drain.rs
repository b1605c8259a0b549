//! Draining calls before something that drops them (a FreeSWITCH restart, a reboot): new
//! inbound calls are refused (`fsctl pause inbound`: FreeSWITCH answers new INVITEs with
//! `503 Maximum Calls In Progress`, so callers and upstream proxies fail over) while the
//! calls in progress run to their end, up to a deadline set by the operator.
//!
//! Its own module because the services API reuses it ("drain then restart FreeSWITCH")
//! outside of an apply. Only the event socket is touched; what follows the drain is the
//! caller's business, and so is [`resume`] when what follows did not restart FreeSWITCH
//! (a restarted FreeSWITCH comes back accepting calls: the pause lives in its memory).

use ccnq_esl::{CommandError, EslClient, EslError};
use std::time::Duration;
use tokio::time::Instant;

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "drain", rename_all = "snake_case")]
pub enum DrainOutcome {
    /// No call left.
    Drained,
    /// The deadline came first; `calls` were still up at the last count.
    DeadlineReached {
        /// `show channels count` at the deadline.
        calls: u64,
    },
}

/// Why a drain (or resume) could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The event socket failed (closed, timed out).
    #[error(transparent)]
    Esl(#[from] EslError),
    /// FreeSWITCH answered, and not as expected; `reply` is its own text.
    #[error("{command}: {error} (FreeSWITCH answered {reply:?})")]
    Refused {
        /// The command sent.
        command: String,
        /// FreeSWITCH's answer, verbatim.
        reply: String,
        /// What the answer means.
        error: CommandError,
    },
}

impl DrainError {
    /// FreeSWITCH's own words when it answered, else the transport error.
    pub fn reply_text(&self) -> String {
        match self {
            DrainError::Refused { reply, .. } => reply.trim_end().to_owned(),
            DrainError::Esl(e) => e.to_string(),
        }
    }
}

fn refused(outcome_body: &str, command: &str, error: CommandError) -> DrainError {
    DrainError::Refused {
        command: command.to_owned(),
        reply: outcome_body.to_owned(),
        error,
    }
}

/// Pauses inbound calls, then polls `show channels count` every `poll` until it reads 0
/// or `deadline` has passed, calling `progress` with each count. Inbound calls stay
/// paused whatever the outcome: the caller restarts FreeSWITCH or calls [`resume`].
pub async fn drain(
    esl: &EslClient,
    deadline: Duration,
    poll: Duration,
    progress: impl Fn(u64),
) -> Result<DrainOutcome, DrainError> {
    let until = Instant::now() + deadline;
    let paused = esl.pause_inbound().await?;
    if let Err(e) = paused.result {
        return Err(refused(&paused.response.body, "fsctl pause inbound", e));
    }
    loop {
        let count = esl.channels_count().await?;
        let calls = match count.result {
            Ok(n) => n,
            Err(e) => return Err(refused(&count.response.body, "show channels count", e)),
        };
        progress(calls);
        if calls == 0 {
            return Ok(DrainOutcome::Drained);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(DrainOutcome::DeadlineReached { calls });
        }
        // Never sleep past the deadline: the last count is taken at it.
        tokio::time::sleep(poll.min(until - now)).await;
    }
}

/// `fsctl resume inbound`: take new calls again.
pub async fn resume(esl: &EslClient) -> Result<(), DrainError> {
    let r = esl.resume_inbound().await?;
    r.result
        .map_err(|e| refused(&r.response.body, "fsctl resume inbound", e))
}
