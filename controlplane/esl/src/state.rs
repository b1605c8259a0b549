//! What FreeSWITCH is doing now, for the operator's diagnostics: the calls in progress
//! (`show channels as json`) and the registrations (`show registrations as json`).
//!
//! Read-only, and a fixed set: the local API offers these answers, never a way to send
//! an arbitrary command. The parsers are pure. FreeSWITCH's `show … as json` answers
//! `{"row_count":0}` (no `rows`) when there is nothing, and `{"row_count":N,"rows":[…]}`
//! otherwise, every value a string (numbers included); a field it leaves out, or adds
//! in a later release, must not break the list, so every field defaults to empty and
//! unknown ones are ignored.

use crate::client::EslClient;
use crate::error::EslError;
use crate::reply::{CommandError, Outcome};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// One channel (a call leg) of `show channels as json`: the fields an operator looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub uuid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Seconds since the epoch, as FreeSWITCH writes it (a string).
    pub created_epoch: String,
    /// e.g. `sofia/qa-ingress/sipp@127.0.0.1:5060`: the profile is its second part.
    pub name: String,
    /// The channel state machine's state, e.g. `CS_EXECUTE`.
    pub state: String,
    /// The call state, e.g. `RINGING`, `EARLY`, `ACTIVE`, `HELD`.
    pub callstate: String,
    pub cid_name: String,
    pub cid_num: String,
    /// The caller's address as FreeSWITCH saw it.
    pub ip_addr: String,
    /// The number dialled.
    pub dest: String,
    /// The dialplan application running, e.g. `park`, `socket`, `bridge`.
    pub application: String,
    pub context: String,
    pub read_codec: String,
    pub write_codec: String,
    /// The other leg's UUID when the call is bridged.
    pub call_uuid: String,
    pub callee_num: String,
}

impl Channel {
    /// The sofia profile of a SIP channel (`sofia/<profile>/…`), if it is one.
    pub fn profile(&self) -> Option<&str> {
        let mut parts = self.name.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some("sofia"), Some(p)) if !p.is_empty() => Some(p),
            _ => None,
        }
    }

    /// When the channel was created, in seconds since the epoch.
    pub fn created_secs(&self) -> Option<u64> {
        self.created_epoch.parse().ok()
    }
}

/// One row of `show registrations as json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Registration {
    pub reg_user: String,
    pub realm: String,
    /// The contact URL the user registered.
    pub url: String,
    /// Seconds since the epoch when the registration expires (a string).
    pub expires: String,
    pub network_ip: String,
    pub network_port: String,
    pub network_proto: String,
    pub hostname: String,
}

#[derive(Deserialize)]
struct Rows<T> {
    row_count: u64,
    #[serde(default = "Vec::new")]
    rows: Vec<T>,
}

/// Parses a `show … as json` answer into its rows. A `-ERR`/`-USAGE` answer is
/// `Refused`; anything else that is not the JSON shape above is `Unexpected`.
pub fn parse_show_json<T: DeserializeOwned>(
    command: &str,
    body: &str,
) -> Result<Vec<T>, CommandError> {
    let t = body.trim();
    if let Some(message) = t.strip_prefix("-ERR").or_else(|| t.strip_prefix("-USAGE:")) {
        return Err(CommandError::Refused {
            command: command.to_string(),
            message: message.trim().to_string(),
        });
    }
    let unexpected = || CommandError::Unexpected {
        command: command.to_string(),
        body: body.chars().take(400).collect(),
    };
    let parsed: Rows<T> = serde_json::from_str(t).map_err(|_| unexpected())?;
    // A count that disagrees with the rows is an answer cut short: never a short list.
    if parsed.row_count != parsed.rows.len() as u64 {
        return Err(unexpected());
    }
    Ok(parsed.rows)
}

impl EslClient {
    /// `show channels as json`: every call leg in progress.
    pub async fn show_channels(&self) -> Result<Outcome<Vec<Channel>>, EslError> {
        let command = "show channels as json";
        let response = self.api(command).await?;
        let result = parse_show_json(command, &response.body);
        Ok(Outcome { response, result })
    }

    /// `show registrations as json`: the SIP registrations FreeSWITCH holds.
    pub async fn show_registrations(&self) -> Result<Outcome<Vec<Registration>>, EslError> {
        let command = "show registrations as json";
        let response = self.api(command).await?;
        let result = parse_show_json(command, &response.body);
        Ok(Outcome { response, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_in_progress_is_an_empty_list() {
        let rows: Vec<Channel> =
            parse_show_json("show channels as json", "{\"row_count\":0}\n").unwrap();
        assert!(rows.is_empty());
    }

    #[test]
    fn a_call_leg_with_fields_left_out_and_added() {
        let body = r#"{"row_count":1,"rows":[{"uuid":"6f1c","direction":"inbound",
            "created_epoch":"1796318000","name":"sofia/qa-ingress/sipp@127.0.0.1:5060",
            "state":"CS_EXECUTE","callstate":"ACTIVE","cid_num":"33123456789",
            "dest":"service","application":"park","read_codec":"PCMA",
            "a_field_of_a_later_release":"x"}]}"#;
        let rows: Vec<Channel> = parse_show_json("show channels as json", body).unwrap();
        assert_eq!(rows.len(), 1);
        let c = &rows[0];
        assert_eq!(c.profile(), Some("qa-ingress"));
        assert_eq!(c.created_secs(), Some(1796318000));
        assert_eq!(c.cid_num, "33123456789");
        assert_eq!(c.write_codec, "", "left out: empty");
    }

    #[test]
    fn a_refusal_and_a_cut_answer_are_errors_not_empty_lists() {
        let refused = parse_show_json::<Channel>("show channels as json", "-ERR no reply\n");
        assert!(
            matches!(&refused, Err(CommandError::Refused { message, .. }) if message == "no reply"),
            "{refused:?}"
        );
        let cut =
            parse_show_json::<Channel>("show channels as json", "{\"row_count\":2,\"rows\":[{}]}");
        assert!(
            matches!(cut, Err(CommandError::Unexpected { .. })),
            "{cut:?}"
        );
        let text = parse_show_json::<Registration>("show registrations as json", "0 total.\n");
        assert!(
            matches!(text, Err(CommandError::Unexpected { .. })),
            "{text:?}"
        );
    }

    #[test]
    fn only_sofia_channels_have_a_profile() {
        let c = |name: &str| Channel {
            name: name.into(),
            ..Channel::default()
        };
        assert_eq!(c("loopback/park-a").profile(), None);
        assert_eq!(c("sofia//x").profile(), None);
        assert_eq!(c("sofia/egress/1000@10.0.0.1").profile(), Some("egress"));
    }
}
