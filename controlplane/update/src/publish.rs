//! Making and signing an update repository from image builds.
//!
//! The operator's release process (and the tests) turn `image/build` outputs into a
//! repository of plain files: `metadata/` (TUF roles, signed) and `targets/` (each
//! artifact as `<sha256>.<version>.<suffix>`, consistent snapshots, so a mirror can be
//! updated file by file and never serves a half-published version). Publishing keeps
//! the versions already there: a fleet may be told to go back to one.
//!
//! One key set signs every role here, with a threshold of one: enough for a lab or a
//! small fleet. A repository whose root names other keys per role is signed with
//! `tuftool` instead; hosts read both alike.

use crate::error::UpdateError;
use crate::release::{custom, target_name, ArtifactRole};
use aws_lc_rs::rand::SystemRandom;
use serde_json::json;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use tough::editor::signed::SignedRole;
use tough::editor::RepositoryEditor;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root, Target};
use tough::{ExpirationEnforcement, FilesystemTransport, RepositoryLoader, TargetName};
use url::Url;

/// One image build to publish.
#[derive(Debug, Clone)]
pub struct Build {
    pub image_id: String,
    pub version: String,
    /// The root partition's dm-verity root hash (hex).
    pub roothash: String,
    /// The file of each artifact.
    pub files: Vec<(ArtifactRole, PathBuf)>,
}

impl Build {
    /// The build `image/build` left in `dir` (`<image_id>.version`, `.roothash`,
    /// `.root.raw`, `.root-verity.raw`, `.a.efi`, `.b.efi`).
    pub fn from_image_output(dir: &Path, image_id: &str) -> Result<Build, UpdateError> {
        let read = |suffix: &str| {
            let path = dir.join(format!("{image_id}.{suffix}"));
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| UpdateError::Local(format!("{}: {e}", path.display())))
        };
        let files = ArtifactRole::ALL
            .iter()
            .map(|r| (*r, dir.join(format!("{image_id}.{}", r.suffix()))))
            .collect();
        Ok(Build {
            image_id: image_id.to_owned(),
            version: read("version")?,
            roothash: read("roothash")?,
            files,
        })
    }
}

/// How long what is signed now stays valid, and the version it carries.
#[derive(Debug, Clone, Copy)]
pub struct Signing {
    /// Timestamp, snapshot and targets expire then: the repository must be signed again
    /// before, or hosts refuse it (a freeze attack looks the same as a neglected repo).
    pub expires: jiff::Timestamp,
    /// The metadata version: greater than the last published one.
    pub version: NonZeroU64,
}

fn local(what: impl std::fmt::Display, e: impl std::fmt::Display) -> UpdateError {
    UpdateError::Local(format!("{what}: {e}"))
}

fn key_sources(keys: &[PathBuf]) -> Vec<Box<dyn KeySource>> {
    keys.iter()
        .map(|path| Box::new(LocalKeySource { path: path.clone() }) as Box<dyn KeySource>)
        .collect()
}

/// A new `root.json` trusting `keys` (PKCS#8: DER for ECDSA P-256 and Ed25519, PEM for
/// RSA, as `tough` reads them) for every role, one signature needed,
/// expiring at `expires`; written as `<repo>/metadata/1.root.json` and returned (the
/// image ships these bytes as its trusted root).
pub async fn create_root(
    repo: &Path,
    keys: &[PathBuf],
    expires: jiff::Timestamp,
) -> Result<Vec<u8>, UpdateError> {
    let sources = key_sources(keys);
    let mut root = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires,
        keys: HashMap::new(),
        roles: HashMap::new(),
        _extra: HashMap::new(),
    };
    let mut ids = Vec::new();
    for (source, path) in sources.iter().zip(keys) {
        let sign = source
            .as_sign()
            .await
            .map_err(|e| local(path.display(), e))?;
        let key = sign.tuf_key();
        let id = key.key_id().map_err(|e| local(path.display(), e))?;
        root.keys.insert(id.clone(), key);
        ids.push(id);
    }
    for role in [
        RoleType::Root,
        RoleType::Snapshot,
        RoleType::Targets,
        RoleType::Timestamp,
    ] {
        root.roles.insert(
            role,
            RoleKeys {
                keyids: ids.clone(),
                threshold: NonZeroU64::MIN,
                _extra: HashMap::new(),
            },
        );
    }
    let signed = SignedRole::new(
        root.clone(),
        &KeyHolder::Root(root),
        &sources,
        &SystemRandom::new(),
    )
    .await
    .map_err(|e| local("signing root.json", e))?;
    let metadata = repo.join("metadata");
    std::fs::create_dir_all(&metadata).map_err(|e| local(metadata.display(), e))?;
    let path = metadata.join("1.root.json");
    std::fs::write(&path, signed.buffer()).map_err(|e| local(path.display(), e))?;
    Ok(signed.buffer().clone())
}

/// Adds `builds` to the repository at `repo` (made by [`create_root`]; versions already
/// published are kept), signs timestamp, snapshot and targets with `keys`, and writes
/// the artifacts under `targets/`.
pub async fn publish(
    repo: &Path,
    keys: &[PathBuf],
    builds: &[Build],
    signing: Signing,
) -> Result<(), UpdateError> {
    let metadata = repo.join("metadata");
    let targets = repo.join("targets");
    std::fs::create_dir_all(&targets).map_err(|e| local(targets.display(), e))?;
    let root_path = latest_root(&metadata)?;

    let mut editor = if metadata.join("timestamp.json").exists() {
        // What is there, whatever its expiry: re-signing an expired repository is how
        // it is brought back.
        let root = std::fs::read(&root_path).map_err(|e| local(root_path.display(), e))?;
        let loaded = RepositoryLoader::new(&root, dir_url(&metadata)?, dir_url(&targets)?)
            .transport(FilesystemTransport)
            .expiration_enforcement(ExpirationEnforcement::Unsafe)
            .load()
            .await
            .map_err(|e| local(format!("the repository at {}", repo.display()), e))?;
        RepositoryEditor::from_repo(&root_path, loaded).await
    } else {
        RepositoryEditor::new(&root_path).await
    }
    .map_err(|e| local(root_path.display(), e))?;

    for build in builds {
        for (role, file) in &build.files {
            let name = target_name(&build.version, *role);
            let image_length = std::fs::metadata(file)
                .map_err(|e| local(file.display(), e))?
                .len();
            let partition = matches!(role, ArtifactRole::Root | ArtifactRole::Verity);
            // A partition's zero tail stays off the wire: the host writes it back.
            let staged = targets.join(format!(".{name}.staged"));
            let data = if partition {
                data_length(file)?
            } else {
                image_length
            };
            let sent = if data < image_length {
                copy_prefix(file, &staged, data)?;
                staged.clone()
            } else {
                file.clone()
            };
            let mut target = Target::from_path(&sent)
                .await
                .map_err(|e| local(sent.display(), e))?;
            target.custom = HashMap::from([
                (custom::IMAGE_ID.to_owned(), json!(build.image_id)),
                (custom::VERSION.to_owned(), json!(build.version)),
                (custom::ROOTHASH.to_owned(), json!(build.roothash)),
            ]);
            if partition {
                target
                    .custom
                    .insert(custom::IMAGE_LENGTH.to_owned(), json!(image_length));
            }
            let served = targets.join(format!("{}.{name}", hex::encode(&target.hashes.sha256)));
            place(&sent, &served)?;
            if sent == staged {
                std::fs::remove_file(&staged).map_err(|e| local(staged.display(), e))?;
            }
            let name = TargetName::new(name.clone()).map_err(|e| local(&name, e))?;
            editor
                .add_target(name, target)
                .map_err(|e| local(file.display(), e))?;
        }
    }
    editor
        .snapshot_version(signing.version)
        .snapshot_expires(signing.expires)
        .timestamp_version(signing.version)
        .timestamp_expires(signing.expires);
    editor
        .targets_version(signing.version)
        .map_err(|e| local("targets", e))?
        .targets_expires(signing.expires)
        .map_err(|e| local("targets", e))?;
    let signed = editor
        .sign(&key_sources(keys))
        .await
        .map_err(|e| local("signing the repository", e))?;
    signed
        .write(&metadata)
        .await
        .map_err(|e| local(metadata.display(), e))
}

/// The highest `N.root.json` in `metadata`.
fn latest_root(metadata: &Path) -> Result<PathBuf, UpdateError> {
    let entries = std::fs::read_dir(metadata).map_err(|e| local(metadata.display(), e))?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name.strip_suffix(".root.json")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max()
        .map(|(_, path)| path)
        .ok_or_else(|| {
            UpdateError::Local(format!(
                "{}: no N.root.json (create_root first)",
                metadata.display()
            ))
        })
}

/// The length of `file` without its trailing zero blocks (of 4 KiB: erofs's and
/// dm-verity's block).
fn data_length(file: &Path) -> Result<u64, UpdateError> {
    use std::io::Read;
    const BLOCK: usize = 4096;
    let mut f = std::fs::File::open(file).map_err(|e| local(file.display(), e))?;
    let mut buf = vec![0u8; 256 * BLOCK];
    let (mut offset, mut end) = (0u64, 0u64);
    loop {
        let n = read_full(&mut f, &mut buf).map_err(|e| local(file.display(), e))?;
        if n == 0 {
            return Ok(end);
        }
        if let Some(last) = buf[..n].iter().rposition(|b| *b != 0) {
            let block_end = (last / BLOCK + 1) * BLOCK;
            end = offset + block_end.min(n) as u64;
        }
        offset += n as u64;
        if n < buf.len() {
            return Ok(end);
        }
    }

    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..])? {
                0 => break,
                n => got += n,
            }
        }
        Ok(got)
    }
}

/// Copies the first `len` bytes of `from` to `to`.
fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<(), UpdateError> {
    use std::io::Read;
    let input = std::fs::File::open(from).map_err(|e| local(from.display(), e))?;
    let mut out = std::fs::File::create(to).map_err(|e| local(to.display(), e))?;
    std::io::copy(&mut input.take(len), &mut out).map_err(|e| local(to.display(), e))?;
    Ok(())
}

/// A hard link where it can (an image's root is a gigabyte), a copy where it cannot.
fn place(from: &Path, to: &Path) -> Result<(), UpdateError> {
    if to.exists() {
        return Ok(());
    }
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(|_| ()))
        .map_err(|e| local(format!("{} -> {}", from.display(), to.display()), e))
}

/// A directory as a base URL (with its trailing slash).
pub fn dir_url(dir: &Path) -> Result<Url, UpdateError> {
    let abs = std::fs::canonicalize(dir).map_err(|e| local(dir.display(), e))?;
    Url::from_directory_path(&abs)
        .map_err(|()| UpdateError::Local(format!("{}: not a directory URL", abs.display())))
}
