//! Typed helpers for the commands the configuration applier sends. Each sends one `api`
//! command and parses FreeSWITCH's answer with the pure parsers in `reply`, returning the
//! raw response and its duration alongside the verdict so the applier can report all three.

use crate::client::EslClient;
use crate::error::EslError;
use crate::reply::{
    parse_plain_ok, parse_reloadacl, parse_reloadxml, parse_sofia_profile,
    parse_sofia_status_table, parse_sofia_xmlstatus, parse_total_count, ApiResponse, Outcome,
    ProfileAccepted, ProfileAction, SofiaStatus,
};

fn outcome<T>(
    response: ApiResponse,
    parse: impl FnOnce(&str) -> Result<T, crate::reply::CommandError>,
) -> Outcome<T> {
    let result = parse(&response.body);
    Outcome { response, result }
}

impl EslClient {
    /// `reloadxml`: success only on `+OK [Success]`. Note it does not reload ACLs.
    pub async fn reloadxml(&self) -> Result<Outcome<()>, EslError> {
        Ok(outcome(self.api("reloadxml").await?, parse_reloadxml))
    }

    /// `reloadacl` (reloads XML, then the ACLs).
    pub async fn reloadacl(&self) -> Result<Outcome<()>, EslError> {
        Ok(outcome(self.api("reloadacl").await?, parse_reloadacl))
    }

    /// `sofia profile <profile> rescan|start|stop|restart`.
    pub async fn sofia_profile(
        &self,
        profile: &str,
        action: ProfileAction,
    ) -> Result<Outcome<ProfileAccepted>, EslError> {
        if profile.is_empty() || profile.contains(char::is_whitespace) {
            return Err(EslError::InvalidCommand {
                reason: "sofia profile name empty or with whitespace",
            });
        }
        let cmd = format!("sofia profile {profile} {}", action.as_str());
        Ok(outcome(self.api(&cmd).await?, |b| {
            parse_sofia_profile(profile, action, b)
        }))
    }

    /// `sofia xmlstatus`: every profile with its type, URL and state.
    pub async fn sofia_xmlstatus(&self) -> Result<Outcome<SofiaStatus>, EslError> {
        Ok(outcome(
            self.api("sofia xmlstatus").await?,
            parse_sofia_xmlstatus,
        ))
    }

    /// `sofia status` (the text table; same content as `sofia_xmlstatus`).
    pub async fn sofia_status(&self) -> Result<Outcome<SofiaStatus>, EslError> {
        Ok(outcome(
            self.api("sofia status").await?,
            parse_sofia_status_table,
        ))
    }

    /// `show channels count`.
    pub async fn channels_count(&self) -> Result<Outcome<u64>, EslError> {
        Ok(outcome(
            self.api("show channels count").await?,
            parse_total_count,
        ))
    }

    /// `fsctl pause inbound`: refuse new inbound calls (SIP 503) while draining.
    pub async fn pause_inbound(&self) -> Result<Outcome<()>, EslError> {
        Ok(outcome(self.api("fsctl pause inbound").await?, |b| {
            parse_plain_ok("fsctl pause inbound", b)
        }))
    }

    /// `fsctl resume inbound`.
    pub async fn resume_inbound(&self) -> Result<Outcome<()>, EslError> {
        Ok(outcome(self.api("fsctl resume inbound").await?, |b| {
            parse_plain_ok("fsctl resume inbound", b)
        }))
    }
}
