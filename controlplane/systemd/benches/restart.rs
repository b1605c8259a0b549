//! Restart latency: from a restart request to the job's completion, through this crate,
//! beside `systemctl restart` of the same unit in the same container. Prints numbers
//! and the ratio to the target (≤ 1.2× systemctl); asserts nothing.
//!
//! Needs root, systemd-nspawn and debootstrap (qa/nspawn/up boots the container), and
//! `unshare`: systemctl refuses to run unless /run/systemd/system exists, so it runs in
//! a private mount namespace where that directory does, and reaches the container's
//! bus through DBUS_SYSTEM_BUS_ADDRESS.
//!
//! Run: `cargo bench -p ccnq-systemd --bench restart` (ROUNDS=n to change the count).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ccnq_systemd::{JobResult, Systemd};

const UNIT: &str = "ccnq-bench.service";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let nspawn = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qa/nspawn");
    let state = std::env::temp_dir().join(format!("ccnq-systemd-bench-{}", std::process::id()));

    let boot = Instant::now();
    let out = Command::new(nspawn.join("up"))
        .arg(&state)
        .env("CCNQ_NSPAWN_OWNER_PID", std::process::id().to_string())
        .env("CCNQ_NSPAWN_CLEANUP", "1")
        .output()
        .expect("run qa/nspawn/up");
    assert!(
        out.status.success(),
        "qa/nspawn/up failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boot = boot.elapsed();
    let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::write(
        state.join("units").join(UNIT),
        // No start rate limit: the default (5 starts in 10 s) would fail the loop.
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    .expect("write the bench unit");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ours = rt.block_on(async {
        let sd = Systemd::connect(&address).await.expect("connect");
        sd.daemon_reload().await.expect("daemon-reload");
        assert_eq!(sd.start(UNIT).await.expect("start"), JobResult::Done);
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let r = sd.restart(UNIT).await.expect("restart");
            times.push(t.elapsed());
            assert_eq!(r, JobResult::Done);
        }
        times
    });

    let script = format!(
        "set -e; mkdir -p /run/systemd; mount -t tmpfs tmpfs /run/systemd; \
         mkdir /run/systemd/system; \
         for i in $(seq {rounds}); do s=$(date +%s%N); systemctl restart {UNIT}; \
         e=$(date +%s%N); echo $((e - s)); done"
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .output()
        .expect("run systemctl under unshare");
    assert!(
        out.status.success(),
        "systemctl restart failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .map(Duration::from_nanos)
        .collect();
    assert_eq!(theirs.len(), rounds, "systemctl timings missing");

    let _ = Command::new(nspawn.join("down")).arg(&state).status();
    let _ = std::fs::remove_dir_all(&state);

    let (m_ours, m_theirs) = (median(ours.clone()), median(theirs.clone()));
    println!("container boot (qa/nspawn/up): {boot:?}");
    println!("restart {UNIT}, {rounds} rounds, request to job completion:");
    println!(
        "  ccnq-systemd       median {m_ours:?}  mean {:?}",
        mean(&ours)
    );
    println!(
        "  systemctl restart  median {m_theirs:?}  mean {:?}  (process spawn included)",
        mean(&theirs)
    );
    let ratio = m_ours.as_secs_f64() / m_theirs.as_secs_f64();
    println!("  ratio ccnq-systemd/systemctl (median): {ratio:.2}  target <= 1.20");
}
