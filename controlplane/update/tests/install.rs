//! The slot writer and the boot entries, on files standing in for the partitions and
//! the ESP (the same system calls as on a block device; the VM tests use real ones).

use ccnq_update::install::{write_partition, Entries, BOOT_TRIES};
use ccnq_update::{Artifact, ArtifactRole, Refusal};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

fn artifact_of(bytes: &[u8]) -> Artifact {
    Artifact {
        role: ArtifactRole::Root,
        name: "2.root.raw".into(),
        length: bytes.len() as u64,
        sha256: Sha256::digest(bytes).into(),
        image_length: bytes.len() as u64,
    }
}

#[test]
fn a_partition_is_written_from_its_start_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2.root.raw");
    let dev = dir.path().join("root-b");
    let bytes: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    // The partition is larger than the image and holds an older one.
    std::fs::write(&dev, vec![0xeeu8; 12 << 20]).unwrap();
    let seen = AtomicU64::new(0);
    write_partition(&src, &dev, &artifact_of(&bytes), &|n| {
        seen.store(n, Ordering::Relaxed)
    })
    .unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), bytes.len() as u64);
    let on_dev = std::fs::read(&dev).unwrap();
    assert_eq!(on_dev.len(), 12 << 20, "the partition keeps its size");
    assert_eq!(&on_dev[..bytes.len()], &bytes[..]);
}

#[test]
fn the_zero_tail_left_off_the_wire_is_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2.root.raw");
    let dev = dir.path().join("root-b");
    let data = vec![0x5au8; 5 << 20];
    std::fs::write(&src, &data).unwrap();
    // The old version filled the whole partition.
    std::fs::write(&dev, vec![0xeeu8; 12 << 20]).unwrap();
    let artifact = Artifact {
        image_length: 9 << 20,
        ..artifact_of(&data)
    };
    let seen = AtomicU64::new(0);
    write_partition(&src, &dev, &artifact, &|n| seen.store(n, Ordering::Relaxed)).unwrap();
    assert_eq!(
        seen.load(Ordering::Relaxed),
        9 << 20,
        "the zeros count as written"
    );
    let on_dev = std::fs::read(&dev).unwrap();
    assert_eq!(&on_dev[..5 << 20], &data[..]);
    assert!(
        on_dev[5 << 20..9 << 20].iter().all(|b| *b == 0),
        "the old bytes are zeroed"
    );
    assert!(
        on_dev[9 << 20..].iter().all(|b| *b == 0xee),
        "past the image: untouched"
    );
}

#[test]
fn a_source_that_differs_from_the_signature_is_refused_after_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2.root.raw");
    let dev = dir.path().join("root-b");
    let signed = vec![1u8; 1 << 20];
    let mut served = signed.clone();
    served[100] = 2;
    std::fs::write(&src, &served).unwrap();
    std::fs::write(&dev, vec![0u8; 2 << 20]).unwrap();
    let e = write_partition(&src, &dev, &artifact_of(&signed), &|_| {}).unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::Artifact), "{e}");
}

#[test]
fn a_partition_too_small_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("2.root.raw");
    let dev = dir.path().join("root-b");
    let bytes = vec![1u8; 1 << 20];
    std::fs::write(&src, &bytes).unwrap();
    std::fs::write(&dev, vec![7u8; 4096]).unwrap();
    let e = write_partition(&src, &dev, &artifact_of(&bytes), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("too small"), "{e}");
    assert_eq!(std::fs::read(&dev).unwrap(), vec![7u8; 4096]);
}

fn names(entries: &Entries) -> Vec<String> {
    let mut v: Vec<String> = entries
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.file)
        .collect();
    v.sort();
    v
}

#[test]
fn an_upgrade_replaces_the_other_slots_entry_and_leaves_the_booted_one() {
    let esp = tempfile::tempdir().unwrap();
    let entries = Entries {
        dir: esp.path().to_owned(),
        image_id: "ccnq".into(),
    };
    std::fs::write(esp.path().join("ccnq_1.efi"), "booted").unwrap();
    std::fs::write(esp.path().join("ccnq_0.9+0-3.efi"), "old slot").unwrap();
    std::fs::write(esp.path().join("other_5.efi"), "not ours").unwrap();
    assert_eq!(entries.remove_others("1").unwrap(), ["ccnq_0.9+0-3.efi"]);
    assert_eq!(names(&entries), ["ccnq_1.efi"]);

    let uki = esp.path().join("uki.download");
    std::fs::write(&uki, "uki of 2").unwrap();
    let name = entries.install(&uki, "2", "1", BOOT_TRIES).unwrap();
    assert_eq!(name, format!("ccnq_2+{BOOT_TRIES}.efi"));
    assert_eq!(names(&entries), ["ccnq_1.efi", "ccnq_2+3.efi"]);
    assert_eq!(
        std::fs::read_to_string(esp.path().join(&name)).unwrap(),
        "uki of 2"
    );
    assert_eq!(
        std::fs::read_to_string(esp.path().join("ccnq_1.efi")).unwrap(),
        "booted"
    );
    assert!(esp.path().join("other_5.efi").exists());
}

#[test]
fn a_downgrade_makes_the_booted_entry_a_last_resort() {
    let esp = tempfile::tempdir().unwrap();
    let entries = Entries {
        dir: esp.path().to_owned(),
        image_id: "ccnq".into(),
    };
    std::fs::write(esp.path().join("ccnq_2.efi"), "booted").unwrap();
    let uki = esp.path().join("uki.download");
    std::fs::write(&uki, "uki of 1").unwrap();
    entries.install(&uki, "1", "2", BOOT_TRIES).unwrap();
    // systemd-boot would pick 2 over 1 among entries with tries left; with 2 at +0 it
    // tries 1 first, and goes back to 2 when 1's tries run out.
    assert_eq!(names(&entries), ["ccnq_1+3.efi", "ccnq_2+0.efi"]);
}
