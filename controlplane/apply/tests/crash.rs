//! `kill -9` at any moment leaves the rendered configuration on a complete set, old or new,
//! never a mix. This binary is its own victim: run with `CCNQ_APPLY_CRASH_CHILD=<dir>` it
//! installs (and now and then rolls back) generations in a loop until killed; run normally
//! it starts such a child again and again, kills it with SIGKILL after a random delay, and
//! after each kill opens the store and checks every file FreeSWITCH would read against
//! what the revision it claims must contain. The loop is bounded by iterations.

use ccnq_apply::files::{FileStore, LINK_NAME};
use ccnq_freeswitch::RenderedTree;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "CCNQ_APPLY_CRASH_CHILD";
const ITERATIONS: u32 = 200;

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

/// The victim: continue from whatever revision is installed, forever.
fn child(dir: &Path) -> ! {
    let mut store = FileStore::open(dir).expect("child: open");
    let mut k = match store.current().expect("child: current") {
        Some(i) => k_of(&i.rev),
        None => 0,
    };
    loop {
        k += 1;
        store
            .install(&tree_for(k), &document_for(k), &rev_for(k))
            .expect("child: install");
        if k.is_multiple_of(3) {
            // Back to k - 1; the next round installs k + 1.
            store.rollback().expect("child: rollback");
        }
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

fn check(dir: &Path, iteration: u32) -> Option<u64> {
    let store = FileStore::open(dir)
        .unwrap_or_else(|e| panic!("iteration {iteration}: open after SIGKILL: {e}"));
    let installed = store
        .current()
        .unwrap_or_else(|e| panic!("iteration {iteration}: current after SIGKILL: {e}"));
    let on_disk = read_through_link(dir);
    let Some(inst) = installed else {
        assert!(
            on_disk.is_empty(),
            "iteration {iteration}: nothing installed, yet files are linked: {:?}",
            on_disk.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        return None;
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
    // At most the current and the previous generation survive an open.
    let gens: BTreeSet<String> = std::fs::read_dir(dir.join("freeswitch.gen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        gens.len() <= 4,
        "iteration {iteration}: left after open: {gens:?}"
    );
    Some(k)
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
    let mut seen = BTreeSet::new();
    let mut empty = 0;
    for i in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        // 0 to 60 ms: from before the child has opened the store to several installs
        // (each fsyncs every file and directory, a few ms on a disk).
        let delay = Duration::from_micros(rng.next() % 60_000);
        std::thread::sleep(delay);
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(
            status.code().is_none(),
            "iteration {i}: the child ended by itself ({status}) instead of being killed"
        );
        match check(dir, i) {
            Some(k) => {
                seen.insert(k);
            }
            None => empty += 1,
        }
    }
    println!(
        "kill -9 test: {} distinct revisions found complete after a kill, {empty} kills before the first install",
        seen.len()
    );
    assert!(
        !seen.is_empty(),
        "no install ever completed: the test exercised nothing"
    );
    println!("test kill_9_leaves_a_complete_set ... ok");
}
