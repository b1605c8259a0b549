//! `kill -9` at any moment leaves the rendered configuration on a complete set, old or new,
//! never a mix, and the store never takes for applied a revision whose apply did not get
//! to its end, nor forgets one that may be partly in force.
//!
//! This binary is its own victim: run with `CCNQ_APPLY_CRASH_CHILD=<dir>` it applies
//! revisions in a loop until killed, as the applier does ([`FileStore::begin`], an effect
//! on FreeSWITCH, the install, two more effects, then [`FileStore::confirm`], or a
//! rollback for every third revision, which FreeSWITCH "refuses"), after carrying out
//! the revision it finds in doubt again (every other start), as a restarted daemon does. Each
//! effect is a line appended to `effects.log` beside the store, the stand-in for a
//! command sent to FreeSWITCH. Run normally it starts such a child again and again, kills
//! it with SIGKILL after a random delay, and after each kill opens the store and checks:
//!
//! - every file FreeSWITCH would read is what the linked generation's revision contains;
//! - the revision applied got through its last effect (so an install alone never counts);
//! - every revision with an effect since then is the one applied or in doubt;
//! - the linked generation is the applied revision's (the good one) or one in doubt.
//!
//! The loop is bounded by iterations.

use ccnq_apply::files::{FileStore, FilesError, LINK_NAME, STATE_NAME};
use ccnq_freeswitch::RenderedTree;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "CCNQ_APPLY_CRASH_CHILD";
const ITERATIONS: u32 = 200;
/// The effects the child had on "FreeSWITCH", one per line: `begin K` (about to record
/// it in doubt), `effect K I` (I = 0 before the install, 1 and 2 after), `failed K`,
/// `applied K` (both after the store call returned).
const EFFECTS: &str = "effects.log";
/// The last effect of an apply: after it, only the store's record.
const LAST_EFFECT: u32 = 2;

/// What revision `k` installs: a file set that changes in size and in membership with
/// `k`, so that a set mixing two revisions cannot pass for either.
fn tree_for(k: u64) -> RenderedTree {
    let mut files = vec![
        ("vars.xml".to_owned(), format!("<vars rev=\"{k}\"/>\n")),
        (
            "autoload_configs/acl.conf.xml".to_owned(),
            format!(
                "<acl rev=\"{k}\">{}</acl>\n",
                "a".repeat((k % 7) as usize * 900)
            ),
        ),
    ];
    for p in 0..(k % 5) {
        files.push((
            format!("sip_profiles/p{p}-ingress.xml"),
            format!(
                "<profile rev=\"{k}\" n=\"{p}\">{}</profile>\n",
                "x".repeat(4000)
            ),
        ));
    }
    if k.is_multiple_of(2) {
        files.push((
            "dialplan/even.xml".to_owned(),
            format!("<even rev=\"{k}\"/>"),
        ));
    }
    files
        .into_iter()
        .map(|(p, b)| (p, b.into_bytes()))
        .collect()
}

fn document_for(k: u64) -> Value {
    json!({ "_id": "host:crash.example.net", "_rev": format!("{k}-x"), "k": k })
}

fn rev_for(k: u64) -> String {
    format!("{k}-x")
}

fn k_of(rev: &str) -> u64 {
    rev.strip_suffix("-x")
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("unexpected rev {rev:?}"))
}

/// The victim: apply revisions forever, continuing after the last one it began.
fn child(dir: &Path) -> ! {
    let mut store = FileStore::open(dir).expect("child: open");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(EFFECTS))
        .expect("child: effects log");
    // One write per line, whole or not at all under a SIGKILL.
    let mut say = |line: String| {
        log.write_all(format!("{line}\n").as_bytes())
            .expect("child: log")
    };
    let mut next = effects(dir)
        .iter()
        .filter_map(|l| l.strip_prefix("begin ")?.parse::<u64>().ok())
        .max()
        .map_or(1, |k| k + 1);
    // As a restarted daemon reading the same document: the revision in doubt again, first
    // (every other start), then new ones.
    let mut again = store
        .in_doubt()
        .last()
        .map(|d| k_of(&d.rev))
        .filter(|_| next.is_multiple_of(2));
    loop {
        let k = again.take().unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        say(format!("begin {k}"));
        store
            .begin(&document_for(k), &rev_for(k))
            .expect("child: begin");
        effect(&mut say, k, 0);
        store
            .install(&tree_for(k), &document_for(k), &rev_for(k))
            .expect("child: install");
        effect(&mut say, k, 1);
        effect(&mut say, k, 2);
        if k.is_multiple_of(3) {
            match store.rollback() {
                Err(FilesError::NoPrevious) => store.forget("failed").expect("child: forget"),
                r => r.expect("child: rollback"),
            }
            say(format!("failed {k}"));
        } else {
            store
                .confirm(&document_for(k), &rev_for(k))
                .expect("child: confirm");
            say(format!("applied {k}"));
        }
    }
}

/// A command sent to FreeSWITCH, and the time it takes to answer.
fn effect(say: &mut impl FnMut(String), k: u64, i: u32) {
    say(format!("effect {k} {i}"));
    std::thread::sleep(Duration::from_micros(300));
}

fn effects(dir: &Path) -> Vec<String> {
    match std::fs::read_to_string(dir.join(EFFECTS)) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// A small deterministic generator, so a failing iteration can be replayed.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Everything FreeSWITCH would read under the link, read the way it reads it.
fn read_through_link(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    let link = dir.join(LINK_NAME);
    if link.exists() {
        walk(&link, &link, &mut out);
    }
    out.sort();
    out
}

/// What a kill left, for the totals.
#[derive(Default)]
struct Seen {
    /// Revisions found linked and complete.
    linked: BTreeSet<u64>,
    /// Kills with nothing installed yet.
    empty: u32,
    /// Kills that left a revision in doubt.
    in_doubt: u32,
    /// Kills that left the linked files not yet confirmed.
    unconfirmed: u32,
}

fn check(dir: &Path, iteration: u32, seen: &mut Seen) {
    let store = FileStore::open(dir)
        .unwrap_or_else(|e| panic!("iteration {iteration}: open after SIGKILL: {e}"));
    let installed = store
        .current()
        .unwrap_or_else(|e| panic!("iteration {iteration}: current after SIGKILL: {e}"));
    let on_disk = read_through_link(dir);
    let log = effects(dir);
    let applied = store.applied().map(|a| k_of(&a.rev));
    let in_doubt: BTreeSet<u64> = store.in_doubt().iter().map(|d| k_of(&d.rev)).collect();
    let context = || {
        format!(
            "applied {applied:?}, in doubt {in_doubt:?}, effects:\n{}",
            log[log.len().saturating_sub(30)..].join("\n")
        )
    };

    // The revision applied got to its last effect, after it was last begun: an install
    // alone, or an apply that failed, does not make a revision applied.
    let mut since = 0;
    if let Some(a) = applied {
        assert!(
            a % 3 != 0,
            "iteration {iteration}: a failing revision is applied: {}",
            context()
        );
        let begun = log
            .iter()
            .rposition(|l| *l == format!("begin {a}"))
            .unwrap_or_else(|| {
                panic!(
                    "iteration {iteration}: {a} applied, never begun: {}",
                    context()
                )
            });
        let last = format!("effect {a} {LAST_EFFECT}");
        since = log[begun..]
            .iter()
            .position(|l| *l == last)
            .map(|i| begun + i)
            .unwrap_or_else(|| {
                panic!(
                    "iteration {iteration}: {a} recorded applied before its apply ended: {}",
                    context()
                )
            });
        assert_eq!(
            document_for(a),
            store.applied().unwrap().document,
            "iteration {iteration}"
        );
    }
    // Anything that may have reached FreeSWITCH since is known: applied, or in doubt.
    for line in &log[since..] {
        if let Some(k) = line
            .strip_prefix("effect ")
            .and_then(|r| r.split(' ').next())
            .and_then(|k| k.parse::<u64>().ok())
        {
            assert!(
                Some(k) == applied || in_doubt.contains(&k),
                "iteration {iteration}: {k} had an effect and is neither applied nor in doubt: {}",
                context()
            );
        }
    }
    for d in store.in_doubt() {
        assert_eq!(
            d.document,
            document_for(k_of(&d.rev)),
            "iteration {iteration}"
        );
    }
    if !in_doubt.is_empty() {
        seen.in_doubt += 1;
    }

    let Some(inst) = installed else {
        assert!(
            on_disk.is_empty() || applied.is_none(),
            "iteration {iteration}: files linked, no document known, yet {applied:?} applied"
        );
        if on_disk.is_empty() {
            seen.empty += 1;
        }
        return;
    };
    let k = k_of(&inst.rev);
    let expected = tree_for(k);
    assert_eq!(
        inst.tree, expected,
        "iteration {iteration}: generation {} claims rev {} but holds other files",
        inst.generation, inst.rev
    );
    assert_eq!(inst.document, document_for(k), "iteration {iteration}");
    let expected_files: Vec<(String, Vec<u8>)> = expected
        .iter()
        .map(|(p, b)| (p.to_owned(), b.to_vec()))
        .collect();
    assert_eq!(
        on_disk, expected_files,
        "iteration {iteration}: what FreeSWITCH reads is not rev {}",
        inst.rev
    );
    // The files linked are the good ones, of the revision applied, or one in doubt's.
    if inst.confirmed {
        assert_eq!(Some(k), applied, "iteration {iteration}: {}", context());
    } else {
        assert!(
            in_doubt.contains(&k),
            "iteration {iteration}: linked {k}: {}",
            context()
        );
        seen.unconfirmed += 1;
    }
    // At most the current and the good generation survive an open.
    let gens: BTreeSet<String> = std::fs::read_dir(dir.join("freeswitch.gen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != STATE_NAME)
        .collect();
    assert!(
        gens.len() <= 4,
        "iteration {iteration}: left after open: {gens:?}"
    );
    seen.linked.insert(k);
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    // libtest-style arguments (`--list`, filters) come from `cargo test`; this binary
    // has one test and runs it whatever they say, except for listing.
    if std::env::args().any(|a| a == "--list") {
        println!("kill_9_leaves_a_complete_set: test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let exe = std::env::current_exe().expect("current_exe");
    let seed = std::env::var("CCNQ_APPLY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    println!("kill -9 test: {ITERATIONS} iterations, seed {seed} (CCNQ_APPLY_CRASH_SEED)");
    let mut rng = XorShift(seed);
    let mut seen = Seen::default();
    for i in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        // 0 to 150 ms: from before the child has opened the store to a few applies (each
        // fsyncs every file and directory, and the state twice: tens of ms on a disk).
        let delay = Duration::from_micros(rng.next() % 150_000);
        std::thread::sleep(delay);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(
            status.code().is_none(),
            "iteration {i}: the child ended by itself ({status}) instead of being killed"
        );
        check(dir, i, &mut seen);
    }
    println!(
        "kill -9 test: {} distinct revisions found complete after a kill, {} kills before \
         the first install, {} with a revision in doubt, {} with unconfirmed files linked",
        seen.linked.len(),
        seen.empty,
        seen.in_doubt,
        seen.unconfirmed
    );
    assert!(
        !seen.linked.is_empty(),
        "no install ever completed: the test exercised nothing"
    );
    assert!(
        seen.in_doubt > 0 && seen.unconfirmed > 0,
        "no kill landed inside an apply: the test exercised nothing of the rule"
    );
    println!("test kill_9_leaves_a_complete_set ... ok");
}
