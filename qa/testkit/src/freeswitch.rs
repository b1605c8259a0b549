//! The real FreeSWITCH 1.11.2 for tests, from the pinned build in
//! `../shared/peers/freeswitch-1.11.2-bookworm-amd64.tar.xz` (its README says how it was
//! built and how to run it), run as a systemd unit inside the nspawn test container
//! ([`crate::nspawn`]).
//!
//! Why the real server: the event-socket double (`qa/esl-peer`) answers as the
//! recordings say, but only FreeSWITCH itself shows what a configuration really does:
//! whether the rendered XML is read, whether `reloadacl` loads the lists, whether a
//! `rescan` applies a setting and a `restart` rebinds, whether a profile on an address
//! the host does not have fails. The double stays for the faults FreeSWITCH cannot be
//! made to produce on purpose (a parse error the renderer never writes, calls that end
//! on a script).
//!
//! How:
//! - The tarball is unpacked once per machine ([`crate::peers::unpacked`]: sha256
//!   checked, lock, atomic rename). Its `usr/` is linked (hard links, a copy if the cache
//!   is on another file system) once per container into the container's `/var`, where
//!   the unit runs it with `LD_LIBRARY_PATH` and `-mod`: nothing is installed in the
//!   root, whose debootstrap carries FreeSWITCH's Debian runtime libraries
//!   (qa/nspawn/mkroot).
//! - Each FreeSWITCH gets a folder of its own in the container's `/var` with a
//!   configuration written here, never upstream's vanilla one (it sends STUN queries
//!   and starts profiles on every address): only the modules of the build, the event
//!   socket on 127.0.0.1 and a free port, the core database in its own `-db` folder
//!   (never `core-db-name`: 1.11 takes `:memory:` for an ODBC DSN and fails), its TLS
//!   keys in its own `-certs` folder. Like the image's skeleton
//!   (`overlays/etc/freeswitch/freeswitch.xml`) it includes what ccnqd renders, from the
//!   test's data folder instead of `/var/lib/ccnq`. Its own files are included first:
//!   FreeSWITCH takes the first `<configuration name=…>` it finds, so the rendered
//!   `event_socket.conf.xml` (always 127.0.0.1:8021) and `modules.conf.xml` are read but
//!   lose to these, and parallel tests do not fight over port 8021.
//! - The unit is the image's `freeswitch.service` in small: `Type=forking` with
//!   `-ncwait` (active means ready), the same start conditions (rendered `vars.xml`
//!   present, the `switched-off` flag of ccnqd absent), no restart on failure (a test
//!   must see a crash).
//! - The container shares the host's network: the test reaches the event socket on
//!   127.0.0.1, and sofia profiles bind 127.0.0.x (Linux answers on all of 127.0.0.0/8),
//!   so nothing leaves the machine ([`loopback`] gives each test process addresses of
//!   its own).
//! - A test reads what FreeSWITCH did where an operator would, over its event socket
//!   with `ccnq-esl`'s client ([`Freeswitch::api`], [`Freeswitch::sofia`],
//!   [`Freeswitch::profile_field`]), the same way in every crate's tests.

use crate::nspawn::Container;
use crate::peers;
use ccnq_esl::{ConnectOptions, EslClient, SofiaStatus};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A dialplan context of the test's own configuration, as the QA image has one
/// (`qa-answer`): a profile whose handler names it (`{"context": …}`) answers every call
/// and holds it until the caller hangs up, so that a test's sipp calls stay up.
pub const ANSWER_CONTEXT: &str = "ccnq-test-answer";

/// The release this harness runs.
pub const VERSION: &str = "1.11.2";
const TARBALL: &str = "freeswitch-1.11.2-bookworm-amd64.tar.xz";
/// From `../shared/peers/README.md`: a different file is refused, never run.
const TARBALL_SHA256: &str = "8b743e0237411b99bac525a33c353ca225a7da35248e34aa700d3ff766cb7ab8";

/// Every module of the build, in load order (logging first, so the others' start-up is
/// logged); the configuration loads these and nothing else. Not the renderer's
/// `ccnq_freeswitch::render::MODULES`, which is what the appliance chooses to load: this
/// is what the pinned build holds (`mod_loopback` too), and this file's
/// `modules.conf.xml` wins over the rendered one.
pub const MODULES: &[&str] = &[
    "mod_console",
    "mod_logfile",
    "mod_event_socket",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
    "mod_loopback",
    "mod_sofia",
];

/// The unpacked build (the folder holding `usr/`), unpacked first if this machine has
/// not yet.
pub fn tree() -> PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = peers::unpacked(TARBALL, TARBALL_SHA256, &format!("freeswitch-{VERSION}"));
        assert!(
            dir.join("usr/bin/freeswitch").exists(),
            "{} has no usr/bin/freeswitch",
            dir.display()
        );
        dir
    })
    .clone()
}

/// The build's `usr/` inside `c` (a container path), linked there on first use.
fn usr_in(c: &Container) -> PathBuf {
    static USR: OnceLock<PathBuf> = OnceLock::new();
    USR.get_or_init(|| {
        let rel = format!("lib/ccnq-test-freeswitch-{VERSION}");
        let host = c.var.join(&rel);
        if !host.join("usr/bin/freeswitch").exists() {
            std::fs::create_dir_all(&host).unwrap();
            let from = tree().join("usr");
            let to = host.join("usr");
            let linked = Command::new("cp")
                .arg("-al")
                .arg(&from)
                .arg(&to)
                .status()
                .is_ok_and(|s| s.success());
            if !linked {
                let _ = std::fs::remove_dir_all(&to);
                let copied = Command::new("cp")
                    .arg("-a")
                    .arg(&from)
                    .arg(&to)
                    .status()
                    .expect("run cp");
                assert!(
                    copied.success(),
                    "cannot copy {} into the container",
                    from.display()
                );
            }
        }
        Path::new("/var").join(rel).join("usr")
    })
    .clone()
}

/// A loopback address of this test process for sofia profiles to bind:
/// 127.<pid>.<pid>.<n>. Linux answers on all of 127.0.0.0/8, and an address of its own
/// keeps each test's profiles (and another run of the same tests on this machine) from
/// fighting over 127.0.0.1's ports.
pub fn loopback(n: u8) -> String {
    let pid = std::process::id();
    format!("127.{}.{}.{n}", (pid >> 8) & 0xff, pid & 0xff)
}

pub use crate::free_port;

/// One FreeSWITCH of a test: its unit in the container, its event socket and its files.
/// Installing writes the unit and the configuration; starting, stopping and
/// daemon-reload are the test's (or ccnqd's) business, over the container's bus.
pub struct Freeswitch {
    /// `<name>.service`, in the container's /etc/systemd/system.
    pub unit: String,
    /// Its event socket, 127.0.0.1:<free port>.
    pub esl: SocketAddr,
    /// The event socket's password.
    pub password: String,
    /// Its own folder (configuration, log, db, run, certs, temp), seen from the host.
    pub dir: PathBuf,
    /// The data folder of the ccnq side (host path, in the container's /var): FreeSWITCH
    /// includes `<data_dir>/freeswitch/…` and is switched off by
    /// `<data_dir>/switched-off/<unit>`, as the image's unit does with /var/lib/ccnq.
    pub data_dir: PathBuf,
}

impl Freeswitch {
    /// Writes the configuration and the unit `<name>.service` of a FreeSWITCH reading
    /// what ccnq renders into `data_dir/freeswitch`. `data_dir` must be in the
    /// container's /var (`c.var`), as everything FreeSWITCH reads.
    pub fn install(c: &Container, name: &str, data_dir: &Path, password: &str) -> Freeswitch {
        let usr = usr_in(c);
        let dir = c.var.join(format!("lib/{name}-freeswitch"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["conf/autoload_configs", "log", "db", "run", "temp", "certs"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::create_dir_all(data_dir).unwrap();
        let fs = Freeswitch {
            unit: format!("{name}.service"),
            esl: SocketAddr::from(([127, 0, 0, 1], free_port())),
            password: password.to_owned(),
            dir,
            data_dir: data_dir.to_owned(),
        };
        let inside = |p: &Path| c.inside(p).display().to_string();
        let rendered = inside(&data_dir.join("freeswitch"));
        let conf = fs.dir.join("conf");
        for (file, text) in fs.configuration(&rendered, &inside(&fs.dir.join("log"))) {
            std::fs::write(conf.join(file), text).unwrap();
        }
        let base = inside(&fs.dir);
        let lib = usr.join("lib").display().to_string();
        let unit = format!(
            "[Unit]\n\
             Description=ccnq test: FreeSWITCH {VERSION} (ccnq_testkit::freeswitch)\n\
             ConditionPathExists={rendered}/vars.xml\n\
             ConditionPathExists=!{off}\n\
             [Service]\n\
             Type=forking\n\
             PIDFile={base}/run/freeswitch.pid\n\
             Environment=LD_LIBRARY_PATH={lib}:{lib}/x86_64-linux-gnu\n\
             ExecStart={usr}/bin/freeswitch -ncwait -nonat -base {base} -mod {lib}/freeswitch/mod \
             -conf {base}/conf -log {base}/log -db {base}/db -run {base}/run -temp {base}/temp \
             -certs {base}/certs\n\
             TimeoutStartSec=180s\n\
             TimeoutStopSec=60s\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            off = inside(&data_dir.join("switched-off").join(&fs.unit)),
            usr = usr.display(),
        );
        c.install(&[(fs.unit.clone(), unit)]);
        fs
    }

    /// The test's own part of the configuration: (file under conf/, text).
    fn configuration(&self, rendered: &str, log: &str) -> Vec<(&'static str, String)> {
        let modules: String = MODULES
            .iter()
            .map(|m| format!("    <load module=\"{m}\"/>\n"))
            .collect();
        vec![
            (
                "freeswitch.xml",
                format!(
                    "<?xml version=\"1.0\"?>\n\
                     <!-- ccnq_testkit::freeswitch: the image's skeleton, including what ccnqd\n     \
                     renders from the test's data folder; this folder's own files first. -->\n\
                     <document type=\"freeswitch/xml\">\n  \
                     <X-PRE-PROCESS cmd=\"include\" data=\"{rendered}/vars.xml\"/>\n  \
                     <section name=\"configuration\" description=\"Various Configuration\">\n    \
                     <X-PRE-PROCESS cmd=\"include\" data=\"autoload_configs/*.xml\"/>\n    \
                     <X-PRE-PROCESS cmd=\"include\" data=\"{rendered}/autoload_configs/*.xml\"/>\n  \
                     </section>\n  \
                     <section name=\"dialplan\" description=\"Regex/XML Dialplan\">\n    \
                     <X-PRE-PROCESS cmd=\"include\" data=\"{rendered}/dialplan/*.xml\"/>\n    \
                     <context name=\"{ANSWER_CONTEXT}\">\n      \
                     <extension name=\"answer-and-hold\">\n        \
                     <condition field=\"destination_number\" expression=\"^.+$\">\n          \
                     <action application=\"answer\"/>\n          \
                     <action application=\"park\"/>\n        \
                     </condition>\n      </extension>\n    </context>\n  \
                     </section>\n\
                     </document>\n"
                ),
            ),
            (
                "autoload_configs/switch.conf.xml",
                "<configuration name=\"switch.conf\" description=\"Core Configuration\">\n  \
                 <settings>\n    \
                 <param name=\"colorize-console\" value=\"false\"/>\n    \
                 <param name=\"loglevel\" value=\"debug\"/>\n    \
                 <param name=\"max-sessions\" value=\"100\"/>\n    \
                 <param name=\"sessions-per-second\" value=\"30\"/>\n    \
                 <param name=\"dump-cores\" value=\"no\"/>\n  \
                 </settings>\n\
                 </configuration>\n"
                    .to_owned(),
            ),
            (
                "autoload_configs/console.conf.xml",
                "<configuration name=\"console.conf\" description=\"Console Logger\">\n  \
                 <mappings>\n    <map name=\"all\" value=\"console,debug,info,notice,warning,err,crit,alert\"/>\n  </mappings>\n  \
                 <settings>\n    <param name=\"colorize\" value=\"false\"/>\n    <param name=\"loglevel\" value=\"info\"/>\n  </settings>\n\
                 </configuration>\n"
                    .to_owned(),
            ),
            (
                "autoload_configs/logfile.conf.xml",
                format!(
                    "<configuration name=\"logfile.conf\" description=\"File Logging\">\n  \
                     <profiles>\n    <profile name=\"default\">\n      <settings>\n        \
                     <param name=\"logfile\" value=\"{log}/freeswitch.log\"/>\n      </settings>\n      \
                     <mappings>\n        <map name=\"all\" value=\"info,notice,warning,err,crit,alert\"/>\n      </mappings>\n    \
                     </profile>\n  </profiles>\n\
                     </configuration>\n"
                ),
            ),
            (
                "autoload_configs/modules.conf.xml",
                format!(
                    "<configuration name=\"modules.conf\" description=\"Modules\">\n  \
                     <modules>\n{modules}  </modules>\n\
                     </configuration>\n"
                ),
            ),
            (
                "autoload_configs/event_socket.conf.xml",
                format!(
                    "<configuration name=\"event_socket.conf\" description=\"Socket Client\">\n  \
                     <settings>\n    \
                     <param name=\"nat-map\" value=\"false\"/>\n    \
                     <param name=\"listen-ip\" value=\"{ip}\"/>\n    \
                     <param name=\"listen-port\" value=\"{port}\"/>\n    \
                     <param name=\"password\" value=\"{password}\"/>\n  \
                     </settings>\n\
                     </configuration>\n",
                    ip = self.esl.ip(),
                    port = self.esl.port(),
                    password = self.password,
                ),
            ),
            (
                "autoload_configs/sofia.conf.xml",
                format!(
                    "<configuration name=\"sofia.conf\" description=\"sofia Endpoint\">\n  \
                     <global_settings>\n    <param name=\"log-level\" value=\"0\"/>\n  </global_settings>\n  \
                     <profiles>\n    \
                     <X-PRE-PROCESS cmd=\"include\" data=\"{rendered}/sip_profiles/*.xml\"/>\n  \
                     </profiles>\n\
                     </configuration>\n"
                ),
            ),
        ]
    }

    /// FreeSWITCH's own log (`freeswitch.log`), seen from the host.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/freeswitch.log")
    }

    /// The log as it is now (empty before the first start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A new event-socket connection of the test's own (the unit must be running).
    pub async fn esl_client(&self) -> EslClient {
        EslClient::connect(
            &self.esl.to_string(),
            &self.password,
            ConnectOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("connect to FreeSWITCH's event socket {}: {e}", self.esl))
    }

    /// FreeSWITCH's answer to `api <command>`.
    pub async fn api(&self, command: &str) -> String {
        self.esl_client().await.api(command).await.unwrap().body
    }

    /// `sofia xmlstatus`, parsed.
    pub async fn sofia(&self) -> SofiaStatus {
        let o = self.esl_client().await.sofia_xmlstatus().await.unwrap();
        o.result
            .unwrap_or_else(|e| panic!("sofia xmlstatus: {e}: {}", o.response.body))
    }

    /// `sofia status profile <profile>`: the value of its `field` line (`CODECS IN`, …).
    pub async fn profile_field(&self, profile: &str, field: &str) -> String {
        let body = self.api(&format!("sofia status profile {profile}")).await;
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('\t')?;
                (k.trim() == field).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {field} in sofia status profile {profile}:\n{body}"))
    }
}
