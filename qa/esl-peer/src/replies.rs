//! Every text the peer answers with, in one place, each copied from a recording of
//! FreeSWITCH 1.11.2 (`shared/fixtures/freeswitch-esl*/`, file named beside it).
//!
//! Kept apart from the model so a reader can check the strings against the recordings
//! at a glance, and so the conformance tests catch any drift: they compare the peer's
//! answers with the recorded bytes, never with these constants.
//!
//! The few texts marked "from FreeSWITCH's source" were not recorded; they are the
//! format strings of `mod_sofia`/`mod_event_socket` as released in 1.11.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Sent on connect (`01-connect-auth-request`).
pub const AUTH_REQUEST: &str = "Content-Type: auth/request\n\n";

/// Body of the disconnect notice (`02-wrong-password`, `13-exit`).
pub const DISCONNECT_BODY: &str =
    "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// `auth` replies (`03-auth-ok`, `02-wrong-password`).
pub const AUTH_OK: &str = "+OK accepted";
pub const AUTH_INVALID: &str = "-ERR invalid";
/// Any unknown top-level command, before or after auth (`15-preauth-command-then-auth`).
pub const COMMAND_NOT_FOUND: &str = "-ERR command not found";
/// `exit` (`13-exit`).
pub const BYE: &str = "+OK bye";
/// `log 7` / `nolog` / `noevents` (`18-log-7-and-nolog`); the `noevents` success text is
/// from FreeSWITCH's source.
pub const NO_LONGER_LOGGING: &str = "+OK no longer logging";
pub const NOT_LISTENING: &str = "-ERR not listening for events";
pub const NO_LONGER_LISTENING: &str = "+OK no longer listening for events";

/// `event plain|json|xml …` (`09b`, `09c`).
pub fn event_listener_enabled(format: &str) -> String {
    format!("+OK event listener enabled {format}")
}

/// `log N` (`18-log-7-and-nolog`).
pub fn log_level(level: u8) -> String {
    format!("+OK log level {level} [{level}]")
}

/// `bgapi` acknowledgement (`09a`).
pub fn job_accepted(uuid: &str) -> String {
    format!("+OK Job-UUID: {uuid}")
}

/// `api <unknown>` (`12-api-nonexistent-command`).
pub fn api_not_found(command: &str) -> String {
    format!("-ERR {command} Command not found!\n")
}

/// `reloadxml` (`01a`, `14-broken-xml-reloadxml`, `01e`): **`+OK`** even on failure.
pub fn reloadxml(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "+OK [Success]\n".into(),
        Err(e) => format!("+OK [{e}]\n"),
    }
}

/// The first line of every `sofia profile` verb that reloads the XML (`02`, `04a`): the
/// same `[…]` text `reloadxml` gives. Only `[Success]` was recorded here; the failure
/// form follows FreeSWITCH's source (`"Reload XML [%s]\n", err`).
pub fn reload_xml_line(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "Reload XML [Success]\n".into(),
        Err(e) => format!("Reload XML [{e}]\n"),
    }
}

/// `reloadacl` (`01b`, `01e`).
pub fn reloadacl(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "+OK acl reloaded\n".into(),
        Err(e) => format!("-ERR [{e}]\n"),
    }
}

/// `reloadacl reloadxml` prefixes this line (`01c`, `01e`).
pub const RELOADACL_DEPRECATED: &str = "This option is deprecated, we now always reloadxml.\n";

/// `sofia profile X <verb>` on a profile not running (`05`, `04b`, `09a`): no newline.
pub fn invalid_profile(name: &str) -> String {
    format!("Invalid Profile [{name}]")
}
/// `sofia profile X` without verb, `sofia profile` (`05`).
pub const INVALID_ARGS: &str = "Invalid Args!\n";
/// `sofia status profile X` / `sofia xmlstatus profile X` for an absent profile (`05`, `03`).
pub const INVALID_PROFILE_BANG: &str = "Invalid Profile!\n";
/// `sofia profile <running> bogusverb` (`05`).
pub const UNKNOWN_VERB: &str = "-ERR Unknown command!\n";

/// The 10-second rule for `stop`/`restart` (`03`, `04a`).
pub fn must_be_up(name: &str, wait: u64) -> String {
    let s = if wait == 1 { "" } else { "s" };
    format!(
        "Profile {name} must be up for at least 10 seconds to stop/restart.\nPlease wait {wait} second{s}\n"
    )
}

/// `start` (`04a`, `09a`, `09c`): reported even when the bind will fail.
pub fn started(name: &str) -> String {
    format!("{name} started successfully\n")
}
/// `start` of a profile with no XML (`04a`, `05`).
pub fn failure_starting(name: &str) -> String {
    format!("Failure starting {name}\n")
}
/// `stop`/`restart` (`04a`, `03`): no newline.
pub fn stopping(name: &str) -> String {
    format!("stopping: {name}")
}
pub fn restarting(name: &str) -> String {
    format!("restarting: {name}")
}
/// `rescan` (`02`, `04b`).
pub const SCAN_COMPLETE: &str = "+OK scan complete\n";
pub fn cannot_find_config(name: &str) -> String {
    format!("-ERR cannot find config for profile {name}\n")
}
/// `killgw` (`04a`); the named-gateway answer is from FreeSWITCH's source (the peer models
/// no gateways).
pub const KILLGW_ALL: &str = "+OK every gateway marked for deletion.\n";
pub const KILLGW_MISSING: &str = "-ERR missing gw name\n";
pub const KILLGW_NO_SUCH: &str = "-ERR no such gateway.\n";

/// `show channels count` and friends (`07`, `10`).
pub fn total(n: u64) -> String {
    format!("\n{n} total.\n")
}
/// `show channels as json` on an idle system (`07`).
pub const CHANNELS_JSON_EMPTY: &str = "{\"row_count\": 0}\n";

/// `fsctl …` (`07`).
pub const FSCTL_OK: &str = "+OK\n";
pub const FSCTL_USAGE: &str = "-USAGE: [api_expansion [on|off]|recover|send_sighup|hupall|pause [inbound|outbound]|resume [inbound|outbound]|shutdown [cancel|elegant|asap|now|restart]|uuid_version [4|7]|sps|sps_peak_reset|sync_clock|sync_clock_when_idle|reclaim_mem|max_sessions|min_dtmf_duration [num]|max_dtmf_duration [num]|default_dtmf_duration [num]|min_idle_cpu|loglevel [level]|debug_level [level]|mdns_resolve [enable|disable]]\n";
/// `fsctl pause_check` and friends answer a bare `true`/`false` (`07`).
pub fn bool_text(b: bool) -> String {
    (if b { "true" } else { "false" }).into()
}

/// `version` (`08-api-version`, `17-crlf-line-endings`).
pub const VERSION: &str = "FreeSWITCH Version 1.11.2-release+git~20260809T162310Z~3f13ad1b1d~64bit (git 3f13ad1 2026-08-09 16:23:10Z 64bit)\n";

/// `status` (`04-api-status`), with the peer's uptime and session count.
pub fn status(uptime: std::time::Duration, sessions: u64) -> String {
    let s = uptime.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let millis = uptime.subsec_millis();
    let micros = uptime.subsec_micros() % 1000;
    format!(
        "UP 0 years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, {millis} milliseconds, {micros} microseconds\n\
         FreeSWITCH (Version 1.11.2-release git 3f13ad1 2026-08-09 16:23:10Z 64bit) is ready\n\
         0 session(s) since startup\n\
         {sessions} session(s) - peak 0, last 5min 0 \n\
         0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n\
         100 session(s) max\n\
         min idle cpu 0.00/99.00\n\
         Current Stack Size/Max 240K/240K\n"
    )
}

/// The URL a running profile shows in `sofia status`/`xmlstatus` (`08`).
pub fn profile_url(bind: SocketAddr) -> String {
    format!("sip:mod_sofia@{bind}")
}

const RULE: &str =
    "=================================================================================================\n";

/// `sofia status` (`02`, `03`, `04a`): printf `%25s\t%7s\t  %40s\t%s (%u)`.
pub fn sofia_status(running: &[(&str, SocketAddr)]) -> String {
    let mut out = format!(
        "{:>25}\t{:>7}\t  {:>40}\t{}\n{RULE}",
        "Name", "Type", "Data", "State"
    );
    for (name, bind) in running {
        // The peer has no other state to show than FreeSWITCH's `RUNNING (0)`.
        let _ = writeln!(
            out,
            "{name:>25}\t{:>7}\t  {:>40}\tRUNNING (0)",
            "profile",
            profile_url(*bind),
        );
    }
    let n = running.len();
    let s = if n == 1 { "" } else { "s" };
    let _ = writeln!(out, "{RULE}{n} profile{s} 0 aliases");
    out
}

/// `sofia xmlstatus` (`08-sofia-xmlstatus`).
pub fn sofia_xmlstatus(running: &[(&str, SocketAddr)]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profiles>\n");
    for (name, bind) in running {
        let _ = write!(
            out,
            "<profile>\n<name>{}</name>\n<type>profile</type>\n<data>{}</data>\n<state>RUNNING (0)</state>\n</profile>\n",
            xml_escape(name),
            xml_escape(&profile_url(*bind))
        );
    }
    out.push_str("</profiles>\n");
    out
}

/// What `sofia status profile X` / `xmlstatus profile X` show of one profile. Fields the
/// peer does not model keep the values recorded for `test-ingress` (`08`).
pub struct ProfileDetail<'a> {
    pub name: &'a str,
    pub bind: SocketAddr,
    pub context: &'a str,
    pub rtp_ip: String,
    pub codecs_in: &'a str,
    pub codecs_out: &'a str,
}

/// `sofia status profile X` (`08`, `02`).
pub fn sofia_status_profile(d: &ProfileDetail<'_>) -> String {
    let ip = d.bind.ip().to_string();
    let url = profile_url(d.bind);
    let rows: [(&str, String); 33] = [
        ("Name", d.name.into()),
        ("Domain Name", "N/A".into()),
        ("Auto-NAT", "false".into()),
        ("DBName", format!("sofia_reg_{}", d.name)),
        ("Pres Hosts", String::new()),
        ("Dialplan", "XML".into()),
        ("Context", d.context.into()),
        ("Challenge Realm", "auto_to".into()),
        ("RTP-IP", d.rtp_ip.clone()),
        ("Ext-RTP-IP", d.rtp_ip.clone()),
        ("SIP-IP", ip.clone()),
        ("Ext-SIP-IP", ip.clone()),
        ("URL", url.clone()),
        ("BIND-URL", format!("{url};maddr={ip};transport=udp,tcp")),
        ("HOLD-MUSIC", "N/A".into()),
        ("OUTBOUND-PROXY", "N/A".into()),
        ("CODECS IN", d.codecs_in.into()),
        ("CODECS OUT", d.codecs_out.into()),
        ("TEL-EVENT", "101".into()),
        ("DTMF-MODE", "rfc2833".into()),
        ("CNG", "13".into()),
        ("SESSION-TO", "0".into()),
        ("MAX-DIALOG", "0".into()),
        ("MAX-RECV-RPS", "1000".into()),
        ("NOMEDIA", "false".into()),
        ("LATE-NEG", "false".into()),
        ("PROXY-MEDIA", "false".into()),
        ("AGGRESSIVENAT", "false".into()),
        ("CALLS-IN", "0".into()),
        ("FAILED-CALLS-IN", "0".into()),
        ("CALLS-OUT", "0".into()),
        ("FAILED-CALLS-OUT", "0".into()),
        ("REGISTRATIONS", "0".into()),
    ];
    let mut out = String::from(RULE);
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<17}\t{v}");
    }
    out
}

/// `sofia xmlstatus profile X` (`08`).
pub fn sofia_xmlstatus_profile(d: &ProfileDetail<'_>) -> String {
    let ip = d.bind.ip().to_string();
    let url = profile_url(d.bind);
    let rows: [(&str, String); 33] = [
        ("name", d.name.into()),
        ("domain-name", "N/A".into()),
        ("auto-nat", "false".into()),
        ("db-name", format!("sofia_reg_{}", d.name)),
        ("pres-hosts", String::new()),
        ("dialplan", "XML".into()),
        ("context", d.context.into()),
        ("challenge-realm", "auto_to".into()),
        ("rtp-ip", d.rtp_ip.clone()),
        ("ext-rtp-ip", d.rtp_ip.clone()),
        ("sip-ip", ip.clone()),
        ("ext-sip-ip", ip.clone()),
        ("url", url.clone()),
        ("bind-url", format!("{url};maddr={ip};transport=udp,tcp")),
        ("hold-music", "N/A".into()),
        ("outbound-proxy", "N/A".into()),
        ("inbound-codecs", d.codecs_in.into()),
        ("outbound-codecs", d.codecs_out.into()),
        ("tel-event", "101".into()),
        ("dtmf-mode", "rfc2833".into()),
        ("cng", "13".into()),
        ("session-to", "0".into()),
        ("max-dialog", "0".into()),
        ("max-recv-rps", "1000".into()),
        ("nomedia", "false".into()),
        ("late-neg", "false".into()),
        ("proxy-media", "false".into()),
        ("aggressive-nat", "false".into()),
        ("calls-in", "0".into()),
        ("calls-out", "0".into()),
        ("failed-calls-in", "0".into()),
        ("failed-calls-out", "0".into()),
        ("registrations", "0".into()),
    ];
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profile>\n  <profile-info>\n",
    );
    for (k, v) in rows {
        let _ = writeln!(out, "    <{k}>{}</{k}>", xml_escape(&v));
    }
    out.push_str("  </profile-info>\n</profile>\n");
    out
}

/// Escapes text for an XML element body or attribute: the renderer's own escaping (all
/// five entities), so the double and the files it reads agree.
pub use ccnq_freeswitch::render::escape as xml_escape;
