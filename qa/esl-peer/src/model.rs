//! The model of FreeSWITCH's state and of its answers to `api` commands (pure: the clock
//! and the XML are passed in, nothing here does I/O).
//!
//! What it models, each point seen in `shared/fixtures/freeswitch-esl-apply/`:
//! - `sofia status` lists profiles in the order they were started (FreeSWITCH's order is
//!   its hash table's; in the recordings a profile started later comes last, a restarted
//!   one keeps its place);
//! - `start` answers success at once; the bind happens afterwards and, if the address is
//!   not local or its port is taken by another profile, the profile simply never appears
//!   (`09a`, `09c`);
//! - `stop`/`restart` are refused while the profile is younger than the 10-second rule,
//!   counted in whole (scaled) seconds as FreeSWITCH counts epoch seconds (`03`, `04a`);
//! - `restart` makes the profile vanish for about 1.1 s of the 10 s (`03`), then it comes
//!   back with the bind its XML has *then* (`06`), or never if its XML is gone (`04c`);
//! - `rescan` applies everything but the bind (`02`, `06`);
//! - `reloadxml` updates the known XML but changes no running profile; a failed one keeps
//!   the last good XML (`01e`, `04b`, `14`).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::conf::{ProfileConf, Profiles};
use crate::replies;

/// Where the XML comes from when a command reloads it.
pub trait XmlSource {
    /// `None`: there is no configuration directory, the known XML never changes (the
    /// profiles preloaded are their own XML). `Some(Err(text))`: the XML is broken.
    fn load(&self) -> Option<Result<Profiles, String>>;
}

/// No configuration directory.
pub struct NoXml;
impl XmlSource for NoXml {
    fn load(&self) -> Option<Result<Profiles, String>> {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running {
        since: Instant,
    },
    /// Between `restart` and its coming back: absent from every answer.
    Restarting {
        until: Instant,
    },
    /// Started but its bind failed: absent from every answer; kept for `Peer::profiles`.
    Failed,
}

#[derive(Clone, Debug)]
struct Profile {
    name: String,
    conf: ProfileConf,
    state: State,
}

/// FreeSWITCH as far as the control plane can see it.
#[derive(Debug)]
pub struct Model {
    profiles: Vec<Profile>,
    known: Profiles,
    local_ips: Vec<IpAddr>,
    ten_second_rule: Duration,
    channels: VecDeque<u64>,
    reloadxml_error: Option<String>,
    /// Fails the next reload only (the files are then put back, as a rollback does).
    reloadxml_error_once: Option<String>,
    paused_all: bool,
    paused_inbound: bool,
    paused_outbound: bool,
    booted: Instant,
}

/// A profile as `Peer::profiles` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileView {
    pub name: String,
    pub bind: Option<SocketAddr>,
    pub running: bool,
}

impl Model {
    pub fn new(
        local_ips: Vec<IpAddr>,
        ten_second_rule: Duration,
        channels: Vec<u64>,
        reloadxml_error: Option<String>,
        now: Instant,
    ) -> Model {
        let mut m = Model {
            profiles: Vec::new(),
            known: Profiles::new(),
            local_ips,
            ten_second_rule,
            channels: VecDeque::new(),
            reloadxml_error,
            reloadxml_error_once: None,
            paused_all: false,
            paused_inbound: false,
            paused_outbound: false,
            booted: now,
        };
        m.set_channels(channels);
        m
    }

    /// FreeSWITCH's start: load the XML and start every profile in it.
    pub fn boot(&mut self, known: Profiles, now: Instant) {
        self.known = known;
        let names: Vec<String> = self.known.keys().cloned().collect();
        for name in names {
            self.start(&name, now);
        }
    }

    /// A profile already running for `started_ago` (its XML is known too).
    pub fn preload(&mut self, name: &str, bind: SocketAddr, started_at: Instant) {
        let conf = ProfileConf::at(bind);
        self.known.insert(name.to_string(), conf.clone());
        let p = Profile {
            name: name.to_string(),
            conf,
            state: State::Running { since: started_at },
        };
        match self.profiles.iter_mut().find(|q| q.name == name) {
            Some(q) => *q = p,
            None => self.profiles.push(p),
        }
    }

    /// The channel-count script: each `show channels count` takes the next, the last repeats.
    pub fn set_channels(&mut self, script: Vec<u64>) {
        self.channels = script.into();
        if self.channels.is_empty() {
            self.channels.push_back(0);
        }
    }

    pub fn set_reloadxml_error(&mut self, text: Option<String>) {
        self.reloadxml_error = text;
    }

    /// The next XML reload (only) fails with `text`.
    pub fn fail_next_reload(&mut self, text: String) {
        self.reloadxml_error_once = Some(text);
    }

    /// Whether new inbound calls are refused (`fsctl pause` or `fsctl pause inbound`).
    pub fn paused_inbound(&self) -> bool {
        self.paused_all || self.paused_inbound
    }

    /// Every profile the model holds, in `sofia status` order, failed ones included.
    pub fn profiles(&mut self, now: Instant) -> Vec<ProfileView> {
        self.settle(now);
        self.profiles
            .iter()
            .map(|p| ProfileView {
                name: p.name.clone(),
                bind: p.conf.bind,
                running: matches!(p.state, State::Running { .. }),
            })
            .collect()
    }

    /// Answers one `api` command (the text after `api `), as FreeSWITCH's body.
    pub fn api(&mut self, command: &str, now: Instant, xml: &dyn XmlSource) -> String {
        self.settle(now);
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            return replies::api_not_found("");
        };
        let answer = match name {
            "reloadxml" => Some(replies::reloadxml(&self.reload(xml))),
            "reloadacl" => Some(self.reloadacl(args, xml)),
            "sofia" => self.sofia(args, now, xml),
            "show" => self.show(args),
            "fsctl" => self.fsctl(args),
            "version" => Some(replies::VERSION.into()),
            "status" => Some(replies::status(
                now.duration_since(self.booted),
                self.current_channels(),
            )),
            _ => None,
        };
        // What the peer does not model is answered as FreeSWITCH answers an unknown
        // command, so a client relying on it fails loudly instead of reading an invented text.
        answer.unwrap_or_else(|| replies::api_not_found(name))
    }

    /// Reloads the known XML: the forced error wins, then the source's verdict.
    fn reload(&mut self, xml: &dyn XmlSource) -> Result<(), String> {
        if let Some(e) = self.reloadxml_error_once.take() {
            return Err(e);
        }
        if let Some(e) = &self.reloadxml_error {
            return Err(e.clone());
        }
        match xml.load() {
            None => Ok(()),
            Some(Ok(known)) => {
                self.known = known;
                Ok(())
            }
            Some(Err(e)) => Err(e),
        }
    }

    fn reloadacl(&mut self, args: &[&str], xml: &dyn XmlSource) -> String {
        let prefix = if args.first() == Some(&"reloadxml") {
            replies::RELOADACL_DEPRECATED
        } else {
            ""
        };
        format!("{prefix}{}", replies::reloadacl(&self.reload(xml)))
    }

    fn sofia(&mut self, args: &[&str], now: Instant, xml: &dyn XmlSource) -> Option<String> {
        match args {
            ["status"] => Some(replies::sofia_status(&self.running())),
            ["xmlstatus"] => Some(replies::sofia_xmlstatus(&self.running())),
            ["status", "profile", name, ..] => Some(self.detail(name, false)),
            ["xmlstatus", "profile", name, ..] => Some(self.detail(name, true)),
            ["profile", rest @ ..] => Some(self.profile_command(rest, now, xml)),
            _ => None,
        }
    }

    fn running(&self) -> Vec<(&str, SocketAddr)> {
        self.profiles
            .iter()
            .filter_map(|p| match (p.state, p.conf.bind) {
                (State::Running { .. }, Some(bind)) => Some((p.name.as_str(), bind)),
                _ => None,
            })
            .collect()
    }

    fn running_profile(&self, name: &str) -> Option<usize> {
        self.profiles
            .iter()
            .position(|p| p.name == name && matches!(p.state, State::Running { .. }))
    }

    fn detail(&self, name: &str, xml: bool) -> String {
        let Some(i) = self.running_profile(name) else {
            return replies::INVALID_PROFILE_BANG.into();
        };
        let p = &self.profiles[i];
        let Some(bind) = p.conf.bind else {
            return replies::INVALID_PROFILE_BANG.into();
        };
        let d = replies::ProfileDetail {
            name: &p.name,
            bind,
            context: &p.conf.context,
            rtp_ip: p.conf.rtp_ip.unwrap_or(bind.ip()).to_string(),
            codecs_in: &p.conf.codecs_in,
            codecs_out: &p.conf.codecs_out,
        };
        if xml {
            replies::sofia_xmlstatus_profile(&d)
        } else {
            replies::sofia_status_profile(&d)
        }
    }

    /// `sofia profile NAME VERB …`, in the order FreeSWITCH's `cmd_profile` checks.
    fn profile_command(&mut self, args: &[&str], now: Instant, xml: &dyn XmlSource) -> String {
        let [name, verb, rest @ ..] = args else {
            return replies::INVALID_ARGS.into();
        };
        if *verb == "start" {
            let reload = replies::reload_xml_line(&self.reload(xml));
            let answer = if self.known.contains_key(*name) {
                self.start(name, now);
                replies::started(name)
            } else {
                replies::failure_starting(name)
            };
            return format!("{reload}{answer}");
        }
        let Some(i) = self.running_profile(name) else {
            return replies::invalid_profile(name);
        };
        match *verb {
            "stop" | "restart" => {
                if let Some(wait) = self.must_wait(i, now) {
                    return replies::must_be_up(name, wait);
                }
                let reload = replies::reload_xml_line(&self.reload(xml));
                if *verb == "stop" {
                    self.profiles.remove(i);
                    format!("{reload}{}", replies::stopping(name))
                } else {
                    self.profiles[i].state = State::Restarting {
                        until: now + self.restart_gap(),
                    };
                    format!("{reload}{}", replies::restarting(name))
                }
            }
            "rescan" => {
                let reload = replies::reload_xml_line(&self.reload(xml));
                match self.known.get(*name) {
                    Some(conf) => {
                        // Everything but the bind is applied live (`02`, `06`).
                        let bind = self.profiles[i].conf.bind;
                        self.profiles[i].conf = ProfileConf {
                            bind,
                            ..conf.clone()
                        };
                        format!("{reload}{}", replies::SCAN_COMPLETE)
                    }
                    None => format!("{reload}{}", replies::cannot_find_config(name)),
                }
            }
            "killgw" => match rest.first() {
                None => replies::KILLGW_MISSING.into(),
                Some(&"_all_") => replies::KILLGW_ALL.into(),
                Some(_) => replies::KILLGW_NO_SUCH.into(),
            },
            _ => replies::UNKNOWN_VERB.into(),
        }
    }

    /// `Some(seconds to wait)` while the profile is younger than the 10-second rule.
    fn must_wait(&self, i: usize, now: Instant) -> Option<u64> {
        let State::Running { since } = self.profiles[i].state else {
            return None;
        };
        let unit = self.ten_second_rule / 10;
        if unit.is_zero() {
            return None;
        }
        // Whole (scaled) seconds, as FreeSWITCH subtracts epoch seconds.
        let age = (now.saturating_duration_since(since).as_nanos() / unit.as_nanos()) as u64;
        (age < 10).then(|| 10 - age)
    }

    /// How long a restarting profile is absent: 1.1 s of the 10 s in the recording (`03`).
    fn restart_gap(&self) -> Duration {
        self.ten_second_rule * 11 / 100
    }

    /// Starts (or re-starts, for one already running: a no-op) a profile from its known XML.
    fn start(&mut self, name: &str, now: Instant) {
        let Some(conf) = self.known.get(name).cloned() else {
            return;
        };
        if let Some(p) = self.profiles.iter().find(|p| p.name == name) {
            if !matches!(p.state, State::Failed) {
                return;
            }
        }
        let state = if self.can_bind(name, conf.bind) {
            State::Running { since: now }
        } else {
            State::Failed
        };
        let p = Profile {
            name: name.to_string(),
            conf,
            state,
        };
        match self.profiles.iter_mut().find(|q| q.name == name) {
            Some(q) => *q = p,
            None => self.profiles.push(p),
        }
    }

    /// Whether `bind` is a local address no other running profile holds.
    fn can_bind(&self, name: &str, bind: Option<SocketAddr>) -> bool {
        let Some(bind) = bind else {
            return false;
        };
        let local = bind.ip().is_unspecified() || self.local_ips.contains(&bind.ip());
        let taken = self.profiles.iter().any(|p| {
            p.name != name
                && !matches!(p.state, State::Failed)
                && p.conf.bind.is_some_and(|b| {
                    b.port() == bind.port()
                        && (b.ip() == bind.ip()
                            || b.ip().is_unspecified()
                            || bind.ip().is_unspecified())
                })
        });
        local && !taken
    }

    /// Brings back the profiles whose restart is over, with the XML known now.
    fn settle(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.profiles.len() {
            let State::Restarting { until } = self.profiles[i].state else {
                i += 1;
                continue;
            };
            if now < until {
                i += 1;
                continue;
            }
            let name = self.profiles[i].name.clone();
            match self.known.get(&name).cloned() {
                // Restarting a profile whose XML is gone is stopping it (`04c`).
                None => {
                    self.profiles.remove(i);
                    continue;
                }
                Some(conf) => {
                    let ok = self.can_bind(&name, conf.bind);
                    let p = &mut self.profiles[i];
                    p.conf = conf;
                    p.state = if ok {
                        State::Running { since: until }
                    } else {
                        State::Failed
                    };
                }
            }
            i += 1;
        }
    }

    fn current_channels(&self) -> u64 {
        self.channels.front().copied().unwrap_or(0)
    }

    fn next_channels(&mut self) -> u64 {
        if self.channels.len() > 1 {
            self.channels.pop_front().unwrap_or(0)
        } else {
            self.current_channels()
        }
    }

    fn show(&mut self, args: &[&str]) -> Option<String> {
        match args {
            ["channels", "count"] => Some(replies::total(self.next_channels())),
            // Without rows to show, these print only the total (`07`); with calls the real
            // `show channels` prints rows first, which the peer does not model.
            ["channels"] | ["calls", "count"] | ["calls"] => {
                Some(replies::total(self.current_channels()))
            }
            ["channels", "as", "json"] if self.current_channels() == 0 => {
                Some(replies::CHANNELS_JSON_EMPTY.into())
            }
            _ => None,
        }
    }

    fn fsctl(&mut self, args: &[&str]) -> Option<String> {
        let ok = || Some(replies::FSCTL_OK.to_string());
        match args {
            [] => Some(replies::FSCTL_USAGE.into()),
            ["pause"] => {
                self.paused_all = true;
                ok()
            }
            ["pause", "inbound"] => {
                self.paused_inbound = true;
                ok()
            }
            ["pause", "outbound"] => {
                self.paused_outbound = true;
                ok()
            }
            ["resume"] => {
                self.paused_all = false;
                ok()
            }
            ["resume", "inbound"] => {
                self.paused_inbound = false;
                ok()
            }
            ["resume", "outbound"] => {
                self.paused_outbound = false;
                ok()
            }
            ["pause_check"] => Some(replies::bool_text(self.paused_all)),
            ["pause_check", "inbound"] => Some(replies::bool_text(self.paused_inbound())),
            ["pause_check", "outbound"] => {
                Some(replies::bool_text(self.paused_all || self.paused_outbound))
            }
            ["shutdown", "cancel"] => ok(),
            ["shutdown_check"] => Some(replies::bool_text(false)),
            ["ready_check"] => Some(replies::bool_text(!self.paused_all)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn model(t0: Instant) -> Model {
        let mut m = Model::new(
            vec!["127.0.0.1".parse().unwrap()],
            10 * SEC,
            vec![0],
            None,
            t0,
        );
        m.preload("test-egress", "127.0.0.1:15200".parse().unwrap(), t0);
        m.preload("test-ingress", "127.0.0.1:5200".parse().unwrap(), t0);
        m
    }

    #[test]
    fn ten_second_rule_counts_whole_seconds() {
        let t0 = Instant::now();
        let mut m = model(t0);
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let cmd = "sofia profile test-ingress restart";
        assert_eq!(
            m.api(cmd, at(0.2), &NoXml),
            replies::must_be_up("test-ingress", 10)
        );
        assert_eq!(
            m.api(cmd, at(2.4), &NoXml),
            replies::must_be_up("test-ingress", 8)
        );
        assert!(m
            .api(cmd, at(9.5), &NoXml)
            .ends_with("Please wait 1 second\n"));
        assert_eq!(
            m.api(cmd, at(10.0), &NoXml),
            "Reload XML [Success]\nrestarting: test-ingress"
        );
    }

    #[test]
    fn restart_hides_the_profile_then_resets_its_age() {
        let t0 = Instant::now();
        let mut m = model(t0);
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        m.api("sofia profile test-ingress restart", at(11.0), &NoXml);
        let status = m.api("sofia status", at(11.5), &NoXml);
        assert!(status.ends_with("1 profile 0 aliases\n"), "{status}");
        assert_eq!(
            m.api("sofia status profile test-ingress", at(11.5), &NoXml),
            "Invalid Profile!\n"
        );
        assert_eq!(
            m.api("sofia profile test-ingress stop", at(11.5), &NoXml),
            "Invalid Profile [test-ingress]"
        );
        // Back 1.1 s after the restart (12.1), and its 10 s count starts again from there.
        let status = m.api("sofia status", at(12.2), &NoXml);
        assert!(status.ends_with("2 profiles 0 aliases\n"), "{status}");
        assert_eq!(
            m.api("sofia profile test-ingress restart", at(13.2), &NoXml),
            replies::must_be_up("test-ingress", 9)
        );
    }

    #[test]
    fn start_succeeds_but_a_bad_bind_never_runs() {
        let t0 = Instant::now();
        let mut m = model(t0);
        let mut p = Profiles::new();
        p.insert(
            "bad".into(),
            ProfileConf::at("192.0.2.123:5400".parse().unwrap()),
        );
        p.insert(
            "dup".into(),
            ProfileConf::at("127.0.0.1:5200".parse().unwrap()),
        );
        struct Src(Profiles);
        impl XmlSource for Src {
            fn load(&self) -> Option<Result<Profiles, String>> {
                Some(Ok(self.0.clone()))
            }
        }
        let src = Src(p);
        for name in ["bad", "dup"] {
            assert_eq!(
                m.api(&format!("sofia profile {name} start"), t0, &src),
                format!("Reload XML [Success]\n{name} started successfully\n")
            );
        }
        let xml = m.api("sofia xmlstatus", t0, &src);
        assert!(!xml.contains("bad") && !xml.contains("dup"), "{xml}");
        let views = m.profiles(t0);
        assert!(views.iter().any(|v| v.name == "bad" && !v.running));
        assert!(views.iter().any(|v| v.name == "dup" && !v.running));
        assert_eq!(
            m.api("sofia profile bad rescan", t0, &src),
            "Invalid Profile [bad]"
        );
    }

    #[test]
    fn channel_script_repeats_its_last_value() {
        let t0 = Instant::now();
        let mut m = model(t0);
        m.set_channels(vec![2, 1, 0]);
        let counts: Vec<String> = (0..5)
            .map(|_| m.api("show channels count", t0, &NoXml))
            .collect();
        assert_eq!(
            counts,
            [
                "\n2 total.\n",
                "\n1 total.\n",
                "\n0 total.\n",
                "\n0 total.\n",
                "\n0 total.\n"
            ]
        );
    }

    #[test]
    fn forced_reloadxml_error_keeps_old_xml_and_shows_in_profile_verbs() {
        let t0 = Instant::now();
        let mut m = model(t0);
        m.set_reloadxml_error(Some("[error near line 1]: x".into()));
        assert_eq!(
            m.api("reloadxml", t0, &NoXml),
            "+OK [[error near line 1]: x]\n"
        );
        assert_eq!(
            m.api("reloadacl", t0, &NoXml),
            "-ERR [[error near line 1]: x]\n"
        );
        assert_eq!(
            m.api("sofia profile test-ingress rescan", t0, &NoXml),
            "Reload XML [[error near line 1]: x]\n+OK scan complete\n"
        );
    }
}
