//! Replies, raw and typed. FreeSWITCH answers configuration commands in free text, and some
//! of that text lies (`+OK [error near line 132]` is a failed `reloadxml`). This module turns
//! the exact bodies recorded in `shared/fixtures/freeswitch-esl-apply` into typed results, as
//! pure functions of the text, so the configuration applier can act on them and the parsing
//! is tested on the recorded bytes without a socket.

use crate::frame::Headers;
use crate::xml;
use std::time::Duration;
use thiserror::Error;

/// A `command/reply` frame (to `auth`, `event`, `bgapi`, `exit`, `sendevent`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReply {
    /// The command line as sent (first line only; no password for `auth`).
    pub command: String,
    /// `Reply-Text`, e.g. `+OK accepted` or `-ERR invalid`.
    pub reply_text: String,
    pub headers: Headers,
    /// From sending the command to receiving this reply.
    pub elapsed: Duration,
}

impl CommandReply {
    pub fn is_ok(&self) -> bool {
        self.reply_text.starts_with("+OK")
    }
}

/// An `api/response` frame: the body is whatever the API command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// The API command as sent, without the `api ` prefix.
    pub command: String,
    pub body: String,
    /// From sending the command to receiving this reply.
    pub elapsed: Duration,
}

/// The finished BACKGROUND_JOB of a `bgapi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundJob {
    pub command: String,
    pub job_uuid: String,
    /// The command's output (the event body).
    pub body: String,
    /// From sending `bgapi` to receiving the BACKGROUND_JOB event.
    pub elapsed: Duration,
}

/// A typed command's result together with what was sent and received and how long it took,
/// which is what the applier reports. `result` is FreeSWITCH's verdict; transport failures
/// are `EslError`s instead and never reach here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub response: ApiResponse,
    pub result: Result<T, CommandError>,
}

/// FreeSWITCH understood the command and said it did not (or could not) do it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// `reloadxml` answered `+OK [<message>]` with something other than `Success`: the XML
    /// did not parse and the previous configuration stays live.
    #[error("reloadxml failed, previous configuration still live: {message}")]
    ReloadXml { message: String },
    /// `reloadacl` answered `-ERR [<message>]`; the previous ACLs stay live.
    #[error("reloadacl failed, previous ACLs still live: {message}")]
    ReloadAcl { message: String },
    /// `stop`/`restart` less than 10 s after the profile (re)started.
    #[error(
        "profile {profile} must be up for 10 s before stop/restart; retry in {wait_seconds} s"
    )]
    ProfileTooYoung { profile: String, wait_seconds: u32 },
    /// `Invalid Profile [X]`: no such running profile.
    #[error("no running sofia profile {profile}")]
    InvalidProfile { profile: String },
    /// `Failure starting X`: no configuration for it after reloading XML.
    #[error("sofia profile {profile} could not be started (no configuration for it)")]
    ProfileStartFailed { profile: String },
    /// `-ERR cannot find config for profile X` on rescan.
    #[error("no configuration found for sofia profile {profile}")]
    ProfileConfigMissing { profile: String },
    /// Any other `-ERR ...`/`-USAGE: ...` answer, text kept verbatim.
    #[error("{command}: {message}")]
    Refused { command: String, message: String },
    /// An answer this parser does not know; never silently taken as success.
    #[error("{command}: unrecognised answer {body:?}")]
    Unexpected { command: String, body: String },
}

fn unexpected<T>(command: &str, body: &str) -> Result<T, CommandError> {
    Err(CommandError::Unexpected {
        command: command.to_string(),
        body: body.to_string(),
    })
}

/// `-ERR`/`-USAGE` answers become `Refused`.
fn refused(command: &str, body: &str) -> Option<CommandError> {
    let t = body.trim_end_matches('\n');
    (t.starts_with("-ERR") || t.starts_with("-USAGE")).then(|| CommandError::Refused {
        command: command.to_string(),
        message: t.to_string(),
    })
}

/// `reloadxml`: only `+OK [Success]` is success.
pub fn parse_reloadxml(body: &str) -> Result<(), CommandError> {
    let t = body.trim_end_matches('\n');
    if t == "+OK [Success]" {
        return Ok(());
    }
    if let Some(msg) = t.strip_prefix("+OK [").and_then(|m| m.strip_suffix(']')) {
        return Err(CommandError::ReloadXml {
            message: msg.to_string(),
        });
    }
    Err(
        refused("reloadxml", body).unwrap_or_else(|| CommandError::Unexpected {
            command: "reloadxml".into(),
            body: body.into(),
        }),
    )
}

/// `reloadacl` (which also reloads XML): `+OK acl reloaded`, possibly after the deprecation
/// line that `reloadacl reloadxml` prints; `-ERR [<message>]` on broken XML.
pub fn parse_reloadacl(body: &str) -> Result<(), CommandError> {
    let last = body.trim_end_matches('\n').lines().last().unwrap_or("");
    if last == "+OK acl reloaded" {
        return Ok(());
    }
    if let Some(msg) = last
        .strip_prefix("-ERR [")
        .and_then(|m| m.strip_suffix(']'))
    {
        return Err(CommandError::ReloadAcl {
            message: msg.to_string(),
        });
    }
    match refused("reloadacl", last) {
        Some(e) => Err(e),
        None => unexpected("reloadacl", body),
    }
}

/// The `sofia profile <name> <verb>` verbs the applier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileAction {
    Rescan,
    Start,
    Stop,
    Restart,
}

impl ProfileAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileAction::Rescan => "rescan",
            ProfileAction::Start => "start",
            ProfileAction::Stop => "stop",
            ProfileAction::Restart => "restart",
        }
    }
}

/// What FreeSWITCH said it did. None of these means the profile is running on the new
/// address: `start` reports success even when the bind fails later (recorded in 09a/09c), and
/// `stop`/`restart` return before the work is done. Confirm with `sofia xmlstatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileAccepted {
    /// `+OK scan complete`: non-bind settings applied live.
    ScanComplete,
    /// `<name> started successfully` (also answered by `start` on a running profile).
    Started,
    /// `stopping: <name>`.
    Stopping,
    /// `restarting: <name>`.
    Restarting,
}

/// Parses the answer to `sofia profile <profile> <action>`.
pub fn parse_sofia_profile(
    profile: &str,
    action: ProfileAction,
    body: &str,
) -> Result<ProfileAccepted, CommandError> {
    let command = format!("sofia profile {profile} {}", action.as_str());
    let mut lines = body.lines();
    let mut first = lines.next().unwrap_or("");
    // Every verb but the refusals reloads XML first and says how that went.
    if let Some(result) = first
        .strip_prefix("Reload XML [")
        .and_then(|r| r.strip_suffix(']'))
    {
        if result != "Success" {
            return Err(CommandError::ReloadXml {
                message: result.to_string(),
            });
        }
        first = lines.next().unwrap_or("");
    }
    let rest: Vec<&str> = lines.collect();
    if let Some(p) = first
        .strip_prefix("Invalid Profile [")
        .and_then(|r| r.strip_suffix(']'))
    {
        return Err(CommandError::InvalidProfile {
            profile: p.to_string(),
        });
    }
    if let Some(p) = first
        .strip_prefix("Profile ")
        .and_then(|r| r.strip_suffix(" must be up for at least 10 seconds to stop/restart."))
    {
        let wait = rest.first().and_then(|l| {
            l.strip_prefix("Please wait ")?
                .strip_suffix(" seconds")
                .or_else(|| l.strip_prefix("Please wait ")?.strip_suffix(" second"))?
                .parse::<u32>()
                .ok()
        });
        return match wait {
            Some(wait_seconds) => Err(CommandError::ProfileTooYoung {
                profile: p.to_string(),
                wait_seconds,
            }),
            None => unexpected(&command, body),
        };
    }
    if let Some(p) = first.strip_prefix("-ERR cannot find config for profile ") {
        return Err(CommandError::ProfileConfigMissing {
            profile: p.to_string(),
        });
    }
    if let Some(p) = first.strip_prefix("Failure starting ") {
        return Err(CommandError::ProfileStartFailed {
            profile: p.to_string(),
        });
    }
    let accepted = match action {
        ProfileAction::Rescan if first == "+OK scan complete" => {
            Some(ProfileAccepted::ScanComplete)
        }
        ProfileAction::Start if first == format!("{profile} started successfully") => {
            Some(ProfileAccepted::Started)
        }
        ProfileAction::Stop if first == format!("stopping: {profile}") => {
            Some(ProfileAccepted::Stopping)
        }
        ProfileAction::Restart if first == format!("restarting: {profile}") => {
            Some(ProfileAccepted::Restarting)
        }
        _ => None,
    };
    match accepted {
        Some(a) if rest.iter().all(|l| l.is_empty()) => Ok(a),
        _ => match refused(&command, first) {
            Some(e) => Err(e),
            None => unexpected(&command, body),
        },
    }
}

/// One row of `sofia xmlstatus` (or of the `sofia status` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SofiaStatusEntry {
    pub name: String,
    /// `profile`, `alias` or `gateway`.
    pub kind: String,
    /// For a profile, its URL, e.g. `sip:mod_sofia@127.0.0.1:5200`.
    pub data: String,
    /// e.g. `RUNNING (0)`.
    pub state: String,
}

impl SofiaStatusEntry {
    pub fn is_running(&self) -> bool {
        self.state == "RUNNING" || self.state.starts_with("RUNNING ")
    }

    /// `host:port` of a profile URL (the part after `@`, without URI parameters).
    pub fn address(&self) -> Option<&str> {
        let after = self.data.rsplit_once('@').map(|(_, a)| a)?;
        Some(after.split(';').next().unwrap_or(after))
    }
}

/// Parsed `sofia xmlstatus`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SofiaStatus {
    pub entries: Vec<SofiaStatusEntry>,
}

impl SofiaStatus {
    pub fn profile(&self, name: &str) -> Option<&SofiaStatusEntry> {
        self.entries
            .iter()
            .find(|e| e.kind == "profile" && e.name == name)
    }

    /// What the applier checks after start/restart: the profile is listed, RUNNING, on the
    /// expected `host:port`.
    pub fn is_running_at(&self, name: &str, address: &str) -> bool {
        self.profile(name)
            .is_some_and(|e| e.is_running() && e.address() == Some(address))
    }
}

/// Parses `sofia xmlstatus` (the list, not `xmlstatus profile X`).
pub fn parse_sofia_xmlstatus(body: &str) -> Result<SofiaStatus, CommandError> {
    let command = "sofia xmlstatus";
    let root = match xml::parse(body) {
        Ok(r) if r.name == "profiles" => r,
        _ => {
            return Err(
                refused(command, body).unwrap_or_else(|| CommandError::Unexpected {
                    command: command.into(),
                    body: body.into(),
                }),
            )
        }
    };
    let mut entries = Vec::new();
    for el in &root.children {
        let field = |n: &str| el.child_text(n).map(|t| t.trim().to_string());
        match (field("name"), field("type"), field("data"), field("state")) {
            (Some(name), Some(kind), Some(data), Some(state)) => entries.push(SofiaStatusEntry {
                name,
                kind,
                data,
                state,
            }),
            _ => return unexpected(command, body),
        }
    }
    Ok(SofiaStatus { entries })
}

/// Parses the `sofia status` text table: rows between the two `=` rules, tab-separated,
/// padded with spaces (printf `"%25s\t%s\t  %40s\t%s (%u)\n"`).
pub fn parse_sofia_status_table(body: &str) -> Result<SofiaStatus, CommandError> {
    let command = "sofia status";
    let mut lines = body.lines();
    let rule = |l: &str| !l.is_empty() && l.bytes().all(|b| b == b'=');
    if !lines.by_ref().any(rule) {
        return refused(command, body).map_or_else(|| unexpected(command, body), Err);
    }
    let mut entries = Vec::new();
    for line in lines.by_ref() {
        if rule(line) {
            return Ok(SofiaStatus { entries });
        }
        let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
        match cols.as_slice() {
            [name, kind, data, state] => entries.push(SofiaStatusEntry {
                name: name.to_string(),
                kind: kind.to_string(),
                data: data.to_string(),
                state: state.to_string(),
            }),
            _ => return unexpected(command, body),
        }
    }
    unexpected(command, body)
}

/// `show channels count` / `show calls count`: `\nN total.\n`.
pub fn parse_total_count(body: &str) -> Result<u64, CommandError> {
    let t = body.trim();
    match t.strip_suffix(" total.").and_then(|n| n.parse().ok()) {
        Some(n) => Ok(n),
        None => Err(
            refused("show ... count", body).unwrap_or_else(|| CommandError::Unexpected {
                command: "show ... count".into(),
                body: body.into(),
            }),
        ),
    }
}

/// Commands whose whole answer is `+OK\n` (`fsctl pause inbound`, `fsctl resume inbound`,
/// `uuid_kill`).
pub fn parse_plain_ok(command: &str, body: &str) -> Result<(), CommandError> {
    if body.trim_end_matches('\n') == "+OK" {
        return Ok(());
    }
    match refused(command, body) {
        Some(e) => Err(e),
        None => unexpected(command, body),
    }
}

/// `true`/`false` answers (no newline): `fsctl pause_check`, `acl <ip> <list>`, ...
pub fn parse_bool(command: &str, body: &str) -> Result<bool, CommandError> {
    match body.trim_end_matches('\n') {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => match refused(command, body) {
            Some(e) => Err(e),
            None => unexpected(command, body),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Every body here is copied byte for byte from the recordings named in each test.
    use super::*;

    #[test]
    fn reloadxml_success_only_on_success() {
        // 01a / 05 / 14b
        assert_eq!(parse_reloadxml("+OK [Success]\n"), Ok(()));
        // 14: `+OK` although it failed
        assert_eq!(
            parse_reloadxml("+OK [[error near line 132]: unexpected closing tag </settings>]\n"),
            Err(CommandError::ReloadXml {
                message: "[error near line 132]: unexpected closing tag </settings>".into()
            })
        );
        assert!(matches!(
            parse_reloadxml("-ERR nope\n"),
            Err(CommandError::Refused { .. })
        ));
        assert!(matches!(
            parse_reloadxml("+OK\n"),
            Err(CommandError::Unexpected { .. })
        ));
    }

    #[test]
    fn reloadacl_answers() {
        assert_eq!(parse_reloadacl("+OK acl reloaded\n"), Ok(())); // 01b
        assert_eq!(
            parse_reloadacl(
                "This option is deprecated, we now always reloadxml.\n+OK acl reloaded\n"
            ),
            Ok(())
        ); // 01c
        let broken = "-ERR [[error near line 176]: unexpected closing tag </settings>]\n"; // 01e
        assert_eq!(
            parse_reloadacl(broken),
            Err(CommandError::ReloadAcl {
                message: "[error near line 176]: unexpected closing tag </settings>".into()
            })
        );
        assert!(parse_reloadacl(&format!(
            "This option is deprecated, we now always reloadxml.\n{broken}"
        ))
        .is_err());
        assert!(matches!(
            parse_reloadacl("+OK [Success]\n"),
            Err(CommandError::Unexpected { .. })
        ));
    }

    #[test]
    fn sofia_profile_answers() {
        use ProfileAction::*;
        let p = |name, a, body| parse_sofia_profile(name, a, body);
        assert_eq!(
            p(
                "test-ingress",
                Rescan,
                "Reload XML [Success]\n+OK scan complete\n"
            ),
            Ok(ProfileAccepted::ScanComplete)
        );
        assert_eq!(
            p(
                "test-ingress",
                Restart,
                "Reload XML [Success]\nrestarting: test-ingress"
            ),
            Ok(ProfileAccepted::Restarting)
        );
        assert_eq!(
            p(
                "new-ingress",
                Stop,
                "Reload XML [Success]\nstopping: new-ingress"
            ),
            Ok(ProfileAccepted::Stopping)
        );
        assert_eq!(
            p(
                "new-ingress",
                Start,
                "Reload XML [Success]\nnew-ingress started successfully\n"
            ),
            Ok(ProfileAccepted::Started)
        );
        let young = "Profile test-ingress must be up for at least 10 seconds to stop/restart.\nPlease wait 8 seconds\n";
        for a in [Stop, Restart] {
            assert_eq!(
                p("test-ingress", a, young),
                Err(CommandError::ProfileTooYoung {
                    profile: "test-ingress".into(),
                    wait_seconds: 8
                })
            );
        }
        assert_eq!(
            p(
                "x",
                Stop,
                "Profile x must be up for at least 10 seconds to stop/restart.\nPlease wait 1 second\n"
            ),
            Err(CommandError::ProfileTooYoung {
                profile: "x".into(),
                wait_seconds: 1
            })
        );
        assert_eq!(
            p("nosuch", Rescan, "Invalid Profile [nosuch]"),
            Err(CommandError::InvalidProfile {
                profile: "nosuch".into()
            })
        );
        assert_eq!(
            p(
                "nosuch",
                Start,
                "Reload XML [Success]\nFailure starting nosuch\n"
            ),
            Err(CommandError::ProfileStartFailed {
                profile: "nosuch".into()
            })
        );
        assert_eq!(
            p(
                "new-ingress",
                Rescan,
                "Reload XML [Success]\n-ERR cannot find config for profile new-ingress\n"
            ),
            Err(CommandError::ProfileConfigMissing {
                profile: "new-ingress".into()
            })
        );
        assert!(matches!(
            p("test-ingress", Rescan, "-ERR Unknown command!\n"),
            Err(CommandError::Refused { .. })
        ));
        // Success text for another profile or verb is not success.
        assert!(matches!(
            p("a", Restart, "Reload XML [Success]\nrestarting: b"),
            Err(CommandError::Unexpected { .. })
        ));
        assert!(matches!(
            p("a", Stop, "Reload XML [Success]\nrestarting: a"),
            Err(CommandError::Unexpected { .. })
        ));
        assert!(matches!(
            p(
                "a",
                Rescan,
                "Reload XML [[error near line 3]]\n+OK scan complete\n"
            ),
            Err(CommandError::ReloadXml { .. })
        ));
    }

    const XMLSTATUS: &str = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profiles>\n<profile>\n<name>test-egress</name>\n<type>profile</type>\n<data>sip:mod_sofia@127.0.0.1:15200</data>\n<state>RUNNING (0)</state>\n</profile>\n<profile>\n<name>test-ingress</name>\n<type>profile</type>\n<data>sip:mod_sofia@127.0.0.1:5200</data>\n<state>RUNNING (0)</state>\n</profile>\n</profiles>\n";

    #[test]
    fn xmlstatus_lists_profiles_with_addresses() {
        let s = parse_sofia_xmlstatus(XMLSTATUS).unwrap();
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[0].name, "test-egress");
        assert_eq!(s.entries[0].address(), Some("127.0.0.1:15200"));
        assert!(s.is_running_at("test-ingress", "127.0.0.1:5200"));
        assert!(!s.is_running_at("test-ingress", "127.0.0.1:5201"));
        assert!(!s.is_running_at("new-ingress", "127.0.0.1:5300"));
        assert!(matches!(
            parse_sofia_xmlstatus("Invalid Profile!\n"),
            Err(CommandError::Unexpected { .. })
        ));
    }

    #[test]
    fn status_table_matches_xmlstatus() {
        let table = "                     Name\t   Type\t                                      Data\tState\n=================================================================================================\n              test-egress\tprofile\t             sip:mod_sofia@127.0.0.1:15200\tRUNNING (0)\n             test-ingress\tprofile\t              sip:mod_sofia@127.0.0.1:5200\tRUNNING (0)\n=================================================================================================\n2 profiles 0 aliases\n";
        assert_eq!(
            parse_sofia_status_table(table).unwrap(),
            parse_sofia_xmlstatus(XMLSTATUS).unwrap()
        );
        assert!(parse_sofia_status_table("Invalid Profile!\n").is_err());
    }

    #[test]
    fn counts_and_plain_ok() {
        assert_eq!(parse_total_count("\n0 total.\n"), Ok(0));
        assert_eq!(parse_total_count("\n1 total.\n"), Ok(1));
        assert!(parse_total_count("{\"row_count\": 0}\n").is_err());
        assert_eq!(parse_plain_ok("fsctl pause inbound", "+OK\n"), Ok(()));
        assert!(matches!(
            parse_plain_ok("uuid_kill", "-ERR No such channel!\n"),
            Err(CommandError::Refused { .. })
        ));
        assert!(matches!(
            parse_plain_ok("fsctl", "-USAGE: x\n"),
            Err(CommandError::Refused { .. })
        ));
        assert_eq!(parse_bool("acl", "true"), Ok(true));
        assert_eq!(parse_bool("acl", "false"), Ok(false));
        assert!(parse_bool("acl", "maybe").is_err());
    }
}
