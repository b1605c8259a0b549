//! The upgrade path of the real `ccnqd`, from `image.version` in a host document in a
//! real CouchDB to the other slot written, against a real TUF repository (signed by
//! `ccnq_update::publish`) served by a real nginx. The slots' partitions and the ESP are
//! files here (the same writes as on a block device); the VM tests boot the result.
//! The documents hold the version (`image.hold`), so no test asks for a reboot.

mod common;

use ccnq_couch::{Auth as CouchAuth, Client, ClientConfig, Db};
use ccnq_testkit::couchdb::CouchServer;
use ccnq_testkit::nginx::Nginx;
use ccnq_update::publish::{self, Build, Signing};
use ccnq_update::ArtifactRole;
use common::{Daemon, Site};
use serde_json::{json, Value};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BOOTED: &str = "2026.11.2";
const NEXT: &str = "2026.12.1";
const ROOTHASH: &str = "6567ef489d4cd03d56e18b9f1388ce9dadcd2295dd215e837059c39858451396";

fn key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, rcgen::KeyPair::generate().unwrap().serialize_der()).unwrap();
    path
}

fn days(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * n)
}

/// A repository holding `NEXT`, signed with `signer`; returns the root it was made
/// under and the build's files.
async fn repository(dir: &Path, signer: &Path) -> (Vec<u8>, Vec<(ArtifactRole, Vec<u8>)>) {
    let repo = dir.join("repo");
    let root = publish::create_root(&repo, &[signer.to_owned()], days(365))
        .await
        .unwrap();
    let out = dir.join("build");
    std::fs::create_dir_all(&out).unwrap();
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for role in ArtifactRole::ALL {
        let bytes = format!("{NEXT} {role}\n").repeat(3000).into_bytes();
        let path = out.join(format!("ccnq.{}", role.suffix()));
        std::fs::write(&path, &bytes).unwrap();
        files.push((role, path));
        contents.push((role, bytes));
    }
    let build = Build {
        image_id: "ccnq".into(),
        version: NEXT.into(),
        roothash: ROOTHASH.into(),
        files,
    };
    let signing = Signing {
        expires: days(7),
        version: NonZeroU64::MIN,
    };
    publish::publish(&repo, &[signer.to_owned()], &[build], signing)
        .await
        .unwrap();
    (root, contents)
}

struct Host {
    site: Site,
    db: Db,
    daemon: Daemon,
    _nginx: Nginx,
}

impl Host {
    /// A host booted from slot a on `BOOTED`, its slot b holding an older image, its
    /// ESP the booted entry and the old slot's, following `doc` and trusting `root`.
    async fn start(tag: &str, repo_dir: &Path, root: &[u8], doc: Value) -> Host {
        let couch = CouchServer::shared();
        let (user, password) = couch.admin();
        let database = format!("upgrade-{tag}");
        let db = Client::new(ClientConfig::new(
            &couch.url(),
            CouchAuth::basic(user, password),
        ))
        .unwrap()
        .db(&database);
        assert!(db.create().await.unwrap());
        db.put(doc["_id"].as_str().unwrap(), &doc).await.unwrap();
        let nginx = Nginx::serve(&repo_dir.join("repo"), None);

        let site = Site::new();
        std::fs::write(site.path("couch.password"), format!("{password}\n")).unwrap();
        std::fs::write(site.path("root.json"), root).unwrap();
        let parts = site.path("by-partlabel");
        std::fs::create_dir(&parts).unwrap();
        for p in ["root-a", "root-a-verity", "root-b", "root-b-verity"] {
            std::fs::write(parts.join(p), vec![p.len() as u8; 1 << 20]).unwrap();
        }
        let entries = site.path("esp/EFI/Linux");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join(format!("ccnq_{BOOTED}.efi")), "booted").unwrap();
        std::fs::write(entries.join("ccnq_2026.10.0+0-3.efi"), "old slot b").unwrap();
        let text = std::fs::read_to_string(site.config(true, "")).unwrap()
            + &format!(
                "\n[couchdb]\nurl = \"{url}\"\ndatabase = \"{database}\"\nuser = \"{user}\"\n\
                 password_file = \"{pw}\"\nheartbeat_secs = 1\nreconnect_max_secs = 1\n\
                 [update]\nmetadata_url = \"{repo}/metadata/\"\ntargets_url = \"{repo}/targets/\"\n\
                 trusted_root = \"{root}\"\npartitions = \"{parts}\"\nesp = \"{esp}\"\nretry_secs = 1\n",
                url = couch.url(),
                pw = site.path("couch.password").display(),
                repo = nginx.url(),
                root = site.path("root.json").display(),
                parts = parts.display(),
                esp = site.path("esp").display(),
            );
        let config = site.path("ccnqd-upgrade.toml");
        std::fs::write(&config, text).unwrap();
        let daemon = Daemon::start(&config);
        Host {
            site,
            db,
            daemon,
            _nginx: nginx,
        }
    }

    /// The `upgrade` part of the status document, once `f` holds of it.
    async fn until_upgrade(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(s)) = self.db.get_opt("status:sbc1.example.net").await {
                last = s["upgrade"].clone();
                if f(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{what}: not within 60 s; last upgrade part {last:#}; log:\n{}",
            self.daemon.stderr.lock().unwrap().join("\n")
        );
    }

    fn partition(&self, label: &str) -> Vec<u8> {
        std::fs::read(self.site.path("by-partlabel").join(label)).unwrap()
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.site.path("esp/EFI/Linux"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

fn host_doc(version: &str) -> Value {
    json!({
        "_id": "host:sbc1.example.net",
        "type": "host",
        "host": "sbc1.example.net",
        "server_only": true,
        "image": { "version": version, "hold": true }
    })
}

#[tokio::test]
async fn a_held_version_is_fetched_written_to_the_other_slot_and_waits_for_its_wave() {
    let dir = tempfile::tempdir().unwrap();
    let signer = key(dir.path(), "key.pk8");
    let (root, contents) = repository(dir.path(), &signer).await;
    let host = Host::start("held", dir.path(), &root, host_doc(NEXT)).await;

    let up = host
        .until_upgrade("waiting-wave", |u| u["state"] == "waiting-wave")
        .await;
    assert_eq!(up["target_version"], NEXT);
    assert_eq!(up["booted_version"], BOOTED);
    assert_eq!(up["booted_slot"], "a");
    assert_eq!(up["other_slot_version"], NEXT);

    // Slot b holds the signed bytes from its first byte; slot a is untouched.
    let bytes = |role| &contents.iter().find(|(r, _)| *r == role).unwrap().1;
    let root_b = host.partition("root-b");
    assert_eq!(
        &root_b[..bytes(ArtifactRole::Root).len()],
        &bytes(ArtifactRole::Root)[..]
    );
    let verity_b = host.partition("root-b-verity");
    assert_eq!(
        &verity_b[..bytes(ArtifactRole::Verity).len()],
        &bytes(ArtifactRole::Verity)[..]
    );
    assert_eq!(host.partition("root-a"), vec![6u8; 1 << 20]);
    assert_eq!(host.partition("root-a-verity"), vec![13u8; 1 << 20]);
    // The old slot's entry is gone, the booted one kept, slot b's UKI counted.
    assert_eq!(
        host.entries(),
        [format!("ccnq_{BOOTED}.efi"), format!("ccnq_{NEXT}+3.efi")]
    );
    let uki = std::fs::read(host.site.path(&format!("esp/EFI/Linux/ccnq_{NEXT}+3.efi"))).unwrap();
    assert_eq!(&uki, bytes(ArtifactRole::UkiB), "the UKI that boots slot b");
    // Nothing is left of the download.
    assert!(!host.site.path("data/update/downloads").exists());
}

#[tokio::test]
async fn a_repository_signed_by_a_stranger_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let ours = key(dir.path(), "ours.pk8");
    let stranger = key(dir.path(), "stranger.pk8");
    // The host trusts a root under our key; the repository is signed by another one.
    let ours_dir = dir.path().join("ours");
    let (trusted, _) = repository(&ours_dir, &ours).await;
    let (_, _) = repository(dir.path(), &stranger).await;
    let host = Host::start("stranger", dir.path(), &trusted, host_doc(NEXT)).await;

    let up = host
        .until_upgrade("refused", |u| {
            u["state"] == "downloading"
                && u["reason"].as_str().is_some_and(|r| r.contains("refused"))
        })
        .await;
    assert_eq!(up["target_version"], NEXT);
    assert!(up.get("other_slot_version").is_none(), "{up}");
    assert_eq!(host.partition("root-b"), vec![6u8; 1 << 20]);
    assert_eq!(host.partition("root-b-verity"), vec![13u8; 1 << 20]);
    assert_eq!(
        host.entries(),
        [
            "ccnq_2026.10.0+0-3.efi".to_string(),
            format!("ccnq_{BOOTED}.efi")
        ]
    );
}
