//! Slot write throughput beside `dd` of the same bytes to the same device.
//!
//! A partition image shaped like the QA root (206 MB of incompressible data in a 1 GiB
//! slot) is written to one target (a loop device over a file on /var/tmp, or the device
//! in `CCNQ_BENCH_DEVICE`) three ways, side by side in one run, three rounds each:
//! - `write_partition`: the published prefix, the zero tail by `fallocate`, a sync, the
//!   cache dropped and the whole image read back and checked (what a host does);
//! - `dd bs=4M conv=fsync` of the whole 1 GiB image (the plain copy);
//! - the same `dd`, then `sha256sum` of the device after dropping the cache (a copy with
//!   the check ours makes).
//!
//! Prints the best time of each, MB/s of the image, and the ratios; asserts nothing.

use ccnq_update::install::write_partition;
use ccnq_update::{Artifact, ArtifactRole};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: u64 = 1 << 30;
const DATA: usize = 206 << 20;

fn main() {
    let dir = PathBuf::from(std::env::var("CCNQ_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()))
        .join(format!("ccnq-slot-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("root.prefix");
    let whole = dir.join("root.raw");
    // Incompressible, like erofs's lz4hc blocks.
    let mut data = vec![0u8; DATA];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&prefix, &data).unwrap();
    {
        let mut f = std::fs::File::create(&whole).unwrap();
        f.write_all(&data).unwrap();
        f.set_len(IMAGE).unwrap();
    }
    let artifact = Artifact {
        role: ArtifactRole::Root,
        name: "bench.root.raw".into(),
        length: DATA as u64,
        sha256: Sha256::digest(&data).into(),
        image_length: IMAGE,
    };
    drop(data);

    let (device, backing) = match std::env::var("CCNQ_BENCH_DEVICE") {
        Ok(d) => (PathBuf::from(d), None),
        Err(_) => {
            let file = dir.join("device.img");
            std::fs::File::create(&file)
                .unwrap()
                .set_len(IMAGE)
                .unwrap();
            let out = Command::new("losetup")
                .args(["-f", "--show"])
                .arg(&file)
                .output()
                .expect("losetup");
            let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            assert!(
                !dev.is_empty(),
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (PathBuf::from(dev), Some(file))
        }
    };
    println!(
        "slot write: a {} MiB image ({} MiB of data) onto {}",
        IMAGE >> 20,
        DATA >> 20,
        device.display()
    );

    let mut ours = Vec::new();
    let mut dd = Vec::new();
    let mut dd_check = Vec::new();
    for _ in 0..3 {
        scribble(&device);
        let t = Instant::now();
        write_partition(&prefix, &device, &artifact, &|_| {}).expect("write_partition");
        ours.push(t.elapsed());

        scribble(&device);
        let t = Instant::now();
        run_dd(&whole, &device);
        dd.push(t.elapsed());

        scribble(&device);
        let t = Instant::now();
        run_dd(&whole, &device);
        drop_cache(&device);
        let sum = Command::new("sha256sum").arg(&device).output().unwrap();
        assert!(sum.status.success());
        dd_check.push(t.elapsed());
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap();
    let mbs = |d: Duration| (IMAGE as f64 / 1e6) / d.as_secs_f64();
    let (o, d, c) = (best(&ours), best(&dd), best(&dd_check));
    println!(
        "write_partition (prefix, zero tail, sync, read back, checked): {:>7.2} s  {:>7.1} MB/s",
        o.as_secs_f64(),
        mbs(o)
    );
    println!(
        "dd bs=4M conv=fsync of the whole image:                       {:>7.2} s  {:>7.1} MB/s",
        d.as_secs_f64(),
        mbs(d)
    );
    println!(
        "dd, then sha256sum of the device (the same check):            {:>7.2} s  {:>7.1} MB/s",
        c.as_secs_f64(),
        mbs(c)
    );
    println!(
        "ratio ours/dd: {:.2}; ours/(dd + check): {:.2}",
        o.as_secs_f64() / d.as_secs_f64(),
        o.as_secs_f64() / c.as_secs_f64()
    );

    if let Some(file) = backing {
        let _ = Command::new("losetup").arg("-d").arg(&device).status();
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills the device's first and last MiB with non-zeros: every round starts from an
/// older version's bytes, not from the previous round's.
fn scribble(dev: &Path) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
    let junk = vec![0xa5u8; 1 << 20];
    f.write_all(&junk).unwrap();
    f.seek(SeekFrom::Start(IMAGE - (1 << 20))).unwrap();
    f.write_all(&junk).unwrap();
    f.sync_all().unwrap();
    drop_cache(dev);
}

fn run_dd(from: &Path, to: &Path) {
    let status = Command::new("dd")
        .arg(format!("if={}", from.display()))
        .arg(format!("of={}", to.display()))
        .args(["bs=4M", "conv=fsync", "status=none"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn drop_cache(dev: &Path) {
    let f = std::fs::File::open(dev).unwrap();
    let _ = nix::fcntl::posix_fadvise(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}
