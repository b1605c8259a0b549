//! The rendered FreeSWITCH files on the data volume, installed as a whole and atomically.
//!
//! FreeSWITCH's skeleton includes from `<data_dir>/freeswitch` (`VOLUME_DIR`). Writing
//! files there one by one would let FreeSWITCH (a `reloadxml`, a respawn) or a crash see
//! a mix of two configurations. So that path is a **symbolic link** to a *generation*:
//!
//! ```text
//! <data_dir>/freeswitch          -> freeswitch.gen/7      (relative link)
//! <data_dir>/freeswitch.gen/6/    last good set, kept for rollback
//! <data_dir>/freeswitch.gen/6.json
//! <data_dir>/freeswitch.gen/7/    current set: the rendered tree, 0755 dirs, 0644 files
//! <data_dir>/freeswitch.gen/7.json  its manifest: the host document it was rendered
//!                                   from, its revision and each file's SHA-256
//! <data_dir>/freeswitch.gen/state.json  what runs: the last good generation, the
//!                                   revision applied, the revisions in doubt
//! ```
//! (manifests and the state are 0600: only ccnqd reads them.)
//!
//! A generation is complete once its manifest exists: the tree is written and made
//! durable first, then the manifest, and only then is a new link renamed over
//! `<data_dir>/freeswitch` (one `rename`, atomic). A `kill -9` or a power cut at any point
//! therefore leaves the link on the old or on the new complete set, and [`FileStore::open`]
//! removes whatever half-written generation is left, and every generation but the current
//! one and the last good one.
//!
//! Installed is not applied. Files are installed half-way through an apply: stops (and a
//! drain) come before, the commands that make FreeSWITCH read them after, and any of
//! these may be cut short by a `kill -9` or fail. So what runs is recorded apart from the
//! files, in `state.json`, written whole through a rename, made durable before the call
//! returns, at two points of an apply:
//!
//! - [`FileStore::begin`], before its first step: the revision joins the revisions *in
//!   doubt* (any part of it may be in force from now on);
//! - [`FileStore::confirm`], after its last step succeeded: it becomes the revision
//!   *applied*, its generation the *good* one (what a later failure rolls back to), and
//!   nothing is in doubt any more.
//!
//! A failed apply rolls the files back to the good generation and leaves its revision in
//! doubt (the rollback reloads the files; it does not undo the profiles it started or
//! stopped). A restarted daemon plans from the revision applied and every revision in
//! doubt ([`ccnq_freeswitch::plan_from`]): the interrupted revision is carried out again
//! from the last known state, and one left behind leaves nothing of itself running.
//!
//! A generation whose document is unknown (migrated from the older layout, where
//! `<data_dir>/freeswitch` was a plain directory, or a failed first apply with nothing to
//! roll back to) is kept and included by FreeSWITCH, but [`FileStore::current`] reports
//! nothing known for it. A store without `state.json` (made by a daemon that recorded the
//! document with the files) is taken to run the current generation's document, as that
//! daemon believed, and the state is written at once.

use ccnq_freeswitch::RenderedTree;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The link FreeSWITCH includes from, under the data directory.
pub const LINK_NAME: &str = "freeswitch";
/// Where the rendered files are for FreeSWITCH with this data directory:
/// `<data_dir>/freeswitch` (the link). What plans name as the files' directory.
pub fn link_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LINK_NAME)
}

/// The directory holding the generations, under the data directory.
pub const GENERATIONS_DIR: &str = "freeswitch.gen";
/// The new link is made here, then renamed over [`LINK_NAME`]. After a directory swap
/// (migration) it names the old directory until that is removed.
const LINK_TMP: &str = ".freeswitch.link-new";
/// Where the old-layout directory goes when the filesystem cannot swap it with the link
/// in one step.
const OLD_LAYOUT: &str = ".freeswitch.old-layout";
/// Suffix of anything still being written.
const PARTIAL: &str = ".partial";
/// Taken for the life of a [`FileStore`]: two daemons on one volume would undo each
/// other's swaps.
const LOCK_NAME: &str = ".lock";

/// Without a group for FreeSWITCH (development, tests): readable by everyone.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
/// When the generations directory is set-group-ID (the image's tmpfiles make it
/// `2750 root:freeswitch`), every generation inherits its group and is readable by that
/// group only: the event socket's password is in these files.
const GROUP_DIR_MODE: u32 = 0o2750;
const GROUP_FILE_MODE: u32 = 0o640;
const MANIFEST_MODE: u32 = 0o600;
const MANIFEST_FORMAT: u32 = 1;
/// What runs, in the generations directory (see the module doc).
pub const STATE_NAME: &str = "state.json";
const STATE_FORMAT: u32 = 1;

/// What went wrong with the files on the data volume.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A filesystem call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `rename`, …).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: io::Error,
    },
    /// Something this store did not make is where it keeps its link or generations.
    #[error("{path}: {what}; remove it or move it away")]
    Unexpected {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A generation's files do not match its manifest.
    #[error("generation {generation} in {dir} is damaged: {reason}")]
    Corrupt {
        /// The generation.
        generation: u64,
        /// Its directory.
        dir: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A rendered path would land outside the generation (absolute, `..`, empty).
    #[error("rendered path {path:?} cannot be installed: {reason}")]
    BadPath {
        /// The path as rendered.
        path: String,
        /// Why not.
        reason: &'static str,
    },
    /// [`FileStore::rollback`] with no earlier generation on disk.
    #[error("no previous generation to roll back to")]
    NoPrevious,
    /// Another process has this data directory's store open.
    #[error("{path} is locked by another process (a second ccnqd on this data directory?)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A manifest could not be read or written.
    #[error("manifest {path}: {source}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The record of what runs could not be read or written.
    #[error("record of what runs {path}: {source}")]
    State {
        /// `state.json`.
        path: PathBuf,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FilesError + 'a {
    move |source| FilesError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The generation FreeSWITCH includes now, read back from the disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    /// Its number (increasing with each install while the store lives).
    pub generation: u64,
    /// The host document it was rendered from, as given to [`FileStore::install`].
    pub document: Value,
    /// The document's revision, as given to [`FileStore::install`].
    pub rev: String,
    /// The files, read back and checked against the manifest's hashes.
    pub tree: RenderedTree,
    /// Whether it is the good generation: the files of the last apply that succeeded.
    /// `false` for files an apply installed and did not see through (killed half-way).
    pub confirmed: bool,
}

/// The revision last applied with success: what runs, as far as anyone knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// Its `_rev`.
    pub rev: String,
    /// The host document.
    pub document: Value,
    /// When its apply ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Applied {
    /// When its apply ended.
    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.at_ms)
    }
}

/// A revision whose apply began after the one applied and never succeeded: any part of
/// it may be in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InDoubt {
    /// Its `_rev`.
    pub rev: String,
    /// The host document.
    pub document: Value,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    format: u32,
    /// The generation the last apply that succeeded left linked (or migrated files):
    /// what a failure rolls back to. `None`: there is none.
    good: Option<u64>,
    /// `None`: nothing known applied.
    applied: Option<Applied>,
    /// In the order they were last begun.
    in_doubt: Vec<InDoubt>,
}

impl State {
    fn empty() -> State {
        State {
            format: STATE_FORMAT,
            good: None,
            applied: None,
            in_doubt: Vec::new(),
        }
    }
}

/// `<n>.json`: everything needed to check a generation and to know what it applies.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    generation: u64,
    /// `None`: the files' document is not known (see the module doc).
    document: Option<Value>,
    rev: Option<String>,
    /// Why the document is unknown, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Relative path → lowercase hex SHA-256 of its bytes.
    files: BTreeMap<String, String>,
}

/// The generations of rendered files under one data directory.
#[derive(Debug)]
pub struct FileStore {
    data_dir: PathBuf,
    gen_dir: PathBuf,
    current: Option<u64>,
    /// As on disk.
    state: State,
    next: u64,
    /// Directory and file modes of the generations.
    modes: (u32, u32),
    _lock: Flock<File>,
}

impl FileStore {
    /// Opens the store under `data_dir` (which must exist): finishes or undoes whatever a
    /// crash interrupted, migrates a plain `<data_dir>/freeswitch` directory (older
    /// layout) into a generation, and removes every generation but the current and the
    /// good one.
    pub fn open(data_dir: &Path) -> Result<FileStore, FilesError> {
        let data_dir = data_dir.to_owned();
        let gen_dir = data_dir.join(GENERATIONS_DIR);
        match fs::symlink_metadata(&gen_dir) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(FilesError::Unexpected {
                    path: gen_dir,
                    what: "not a directory".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dir(&gen_dir, DIR_MODE)?;
                fsync_dir(&data_dir)?;
            }
            Err(e) => return Err(io_err("stat", &gen_dir)(e)),
        }
        let group_only = fs::metadata(&gen_dir)
            .map_err(io_err("stat", &gen_dir))?
            .mode()
            & 0o2000
            != 0;
        let modes = if group_only {
            (GROUP_DIR_MODE, GROUP_FILE_MODE)
        } else {
            // FreeSWITCH follows the link through this directory.
            set_mode(&gen_dir, DIR_MODE)?;
            (DIR_MODE, FILE_MODE)
        };
        let lock_path = gen_dir.join(LOCK_NAME);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(MANIFEST_MODE)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| FilesError::Locked { path: lock_path })?;

        let mut store = FileStore {
            data_dir,
            gen_dir,
            current: None,
            state: State::empty(),
            next: 1,
            modes,
            _lock: lock,
        };
        store.recover()?;
        Ok(store)
    }

    /// The data directory this store works in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The path FreeSWITCH includes from: `<data_dir>/freeswitch`.
    pub fn link_path(&self) -> PathBuf {
        link_path(&self.data_dir)
    }

    /// The generation the link points to, if any.
    pub fn current_generation(&self) -> Option<u64> {
        self.current
    }

    /// The generation [`FileStore::rollback`] would go back to, if any: the good one,
    /// when the link is elsewhere.
    pub fn previous_generation(&self) -> Option<u64> {
        self.state.good.filter(|g| Some(*g) != self.current)
    }

    /// The revision last applied with success (`None`: nothing known applied; plan from
    /// nothing).
    pub fn applied(&self) -> Option<&Applied> {
        self.state.applied.as_ref()
    }

    /// The revisions whose applies began after [`FileStore::applied`] and never
    /// succeeded, in the order they were last begun.
    pub fn in_doubt(&self) -> &[InDoubt] {
        &self.state.in_doubt
    }

    /// What FreeSWITCH includes now, read back through the link and checked against its
    /// manifest. `None` when nothing is installed or when the files in place come from an
    /// unknown document (see the module doc). Not necessarily what runs: see
    /// [`Installed::confirmed`] and [`FileStore::applied`].
    pub fn current(&self) -> Result<Option<Installed>, FilesError> {
        let Some(generation) = self.link_target()? else {
            return Ok(None);
        };
        let manifest = self.read_manifest(generation)?;
        // Through the link, as FreeSWITCH reads it.
        let tree = self.read_checked(generation, &self.link_path(), &manifest)?;
        match (manifest.document, manifest.rev) {
            (Some(document), Some(rev)) => Ok(Some(Installed {
                generation,
                document,
                rev,
                tree,
                confirmed: self.state.good == Some(generation),
            })),
            _ => Ok(None),
        }
    }

    /// Installs `tree` as a new generation and makes it the one FreeSWITCH includes, in one
    /// atomic swap; every generation but the good one (for [`FileStore::rollback`]) and
    /// this one is removed. It does not make `document` applied: that is
    /// [`FileStore::confirm`]'s, once the apply succeeded. Returns the new generation.
    pub fn install(
        &mut self,
        tree: &RenderedTree,
        document: &Value,
        rev: &str,
    ) -> Result<u64, FilesError> {
        for (path, _) in tree.iter() {
            check_relative(path)?;
        }
        let n = self.next;
        self.next += 1;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            generation: n,
            document: Some(document.clone()),
            rev: Some(rev.to_owned()),
            note: None,
            files: tree
                .iter()
                .map(|(p, b)| (p.to_owned(), sha256(b)))
                .collect(),
        };
        self.write_generation(n, tree.iter(), &manifest)?;
        self.swap_link(n)?;
        self.current = Some(n);
        self.prune()?;
        log::info!(
            "installed FreeSWITCH files generation {n} ({} files, rev {rev}) at {}",
            tree.len(),
            self.link_path().display()
        );
        Ok(n)
    }

    /// Records that an apply of `rev` begins: it joins the revisions in doubt (moved to
    /// the end if it was there already), durably, before the apply's first step.
    pub fn begin(&mut self, document: &Value, rev: &str) -> Result<(), FilesError> {
        let mut state = self.state.clone();
        state.in_doubt.retain(|d| d.rev != rev);
        state.in_doubt.push(InDoubt {
            rev: rev.to_owned(),
            document: document.clone(),
        });
        if state != self.state {
            self.write_state(&state)?;
            self.state = state;
        }
        Ok(())
    }

    /// Records that the apply of `rev` succeeded: it is the revision applied, the linked
    /// generation the good one, and nothing is in doubt any more (the plan it carried out
    /// was made from every state in doubt). In one atomic write; then the generations no
    /// longer needed go.
    pub fn confirm(&mut self, document: &Value, rev: &str) -> Result<(), FilesError> {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX));
        let state = State {
            format: STATE_FORMAT,
            good: self.current,
            applied: Some(Applied {
                rev: rev.to_owned(),
                document: document.clone(),
                at_ms,
            }),
            in_doubt: Vec::new(),
        };
        self.write_state(&state)?;
        self.state = state;
        self.prune()
    }

    /// Points the link back at the good generation and removes the current one (it is
    /// the set that failed). The revisions in doubt stay so: the rollback puts the files
    /// back, not what the failed apply did to FreeSWITCH.
    pub fn rollback(&mut self) -> Result<(), FilesError> {
        let Some(good) = self.previous_generation() else {
            return Err(FilesError::NoPrevious);
        };
        let failed = self.current;
        self.swap_link(good)?;
        self.current = Some(good);
        if let Some(f) = failed {
            self.remove_generation(f)?;
            fsync_dir(&self.gen_dir)?;
        }
        log::info!(
            "rolled FreeSWITCH files back from generation {} to {good}",
            failed.map_or("-".into(), |f| f.to_string())
        );
        Ok(())
    }

    /// Marks the current generation as coming from an unknown document, keeping its
    /// files in place: for a failed apply with nothing to roll back to, so that
    /// [`FileStore::current`] no longer claims that document runs.
    pub fn forget(&mut self, why: &str) -> Result<(), FilesError> {
        let Some(n) = self.current else {
            return Ok(());
        };
        let mut manifest = self.read_manifest(n)?;
        manifest.document = None;
        manifest.rev = None;
        manifest.note = Some(why.to_owned());
        self.write_manifest(n, &manifest)?;
        fsync_dir(&self.gen_dir)
    }

    fn gen_path(&self, n: u64) -> PathBuf {
        self.gen_dir.join(n.to_string())
    }

    fn manifest_path(&self, n: u64) -> PathBuf {
        self.gen_dir.join(format!("{n}.json"))
    }

    fn state_path(&self) -> PathBuf {
        self.gen_dir.join(STATE_NAME)
    }

    /// `None` when there is no `state.json` (a store made by an older daemon).
    fn read_state(&self) -> Result<Option<State>, FilesError> {
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|source| FilesError::State {
            path: path.clone(),
            source,
        })?;
        if state.format != STATE_FORMAT {
            return Err(FilesError::Unexpected {
                path,
                what: format!(
                    "format {} (this daemon reads format {STATE_FORMAT})",
                    state.format
                ),
            });
        }
        Ok(Some(state))
    }

    /// Writes `state.json` through a temporary name and a rename, durable before it
    /// returns: an apply's first command must not be sent before it is on disk.
    fn write_state(&self, state: &State) -> Result<(), FilesError> {
        let path = self.state_path();
        let tmp = self.gen_dir.join(format!("{STATE_NAME}{PARTIAL}"));
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| FilesError::State {
            path: path.clone(),
            source,
        })?;
        remove_any(&tmp)?;
        write_file(&tmp, &bytes, MANIFEST_MODE)?;
        rename(&tmp, &path)?;
        fsync_dir(&self.gen_dir)
    }

    /// What a store without `state.json` runs: the current generation's document, as the
    /// daemon that installed it believed (it recorded the document with the files and
    /// could not tell an interrupted apply from one that succeeded).
    fn state_of_older_layout(&self) -> Result<State, FilesError> {
        let Some(c) = self.current else {
            return Ok(State::empty());
        };
        let manifest = self.read_manifest(c)?;
        let path = self.manifest_path(c);
        let at_ms = fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io_err("stat", &path))?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX));
        let applied = match (manifest.document, manifest.rev) {
            (Some(document), Some(rev)) => Some(Applied {
                rev,
                document,
                at_ms,
            }),
            _ => None,
        };
        log::info!(
            "no {STATE_NAME} in {}: taking generation {c} for the good one, rev {} for applied",
            self.gen_dir.display(),
            applied.as_ref().map_or("(unknown)", |a| a.rev.as_str())
        );
        Ok(State {
            format: STATE_FORMAT,
            good: Some(c),
            applied,
            in_doubt: Vec::new(),
        })
    }

    /// Reads where the link points: `Some(n)` for `freeswitch.gen/<n>`.
    fn link_target(&self) -> Result<Option<u64>, FilesError> {
        let link = self.link_path();
        match fs::read_link(&link) {
            Ok(target) => {
                parse_link_target(&target)
                    .map(Some)
                    .ok_or_else(|| FilesError::Unexpected {
                        path: link,
                        what: format!("links to {}, not to a generation", target.display()),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("readlink", &link)(e)),
        }
    }

    fn read_manifest(&self, n: u64) -> Result<Manifest, FilesError> {
        let path = self.manifest_path(n);
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|source| FilesError::Manifest {
                path: path.clone(),
                source,
            })?;
        if m.generation != n || m.format != MANIFEST_FORMAT {
            return Err(FilesError::Corrupt {
                generation: n,
                dir: self.gen_path(n),
                reason: format!(
                    "manifest says generation {} format {}",
                    m.generation, m.format
                ),
            });
        }
        Ok(m)
    }

    /// Reads every file under `root` and checks the set and each file's hash against
    /// the manifest: a generation is all of its files, or it is damaged.
    fn read_checked(
        &self,
        n: u64,
        root: &Path,
        manifest: &Manifest,
    ) -> Result<RenderedTree, FilesError> {
        let mut files = Vec::new();
        read_tree(root, root, &mut files)?;
        let corrupt = |reason: String| FilesError::Corrupt {
            generation: n,
            dir: self.gen_path(n),
            reason,
        };
        if files.len() != manifest.files.len() {
            return Err(corrupt(format!(
                "{} files on disk, {} in the manifest",
                files.len(),
                manifest.files.len()
            )));
        }
        for (path, bytes) in &files {
            match manifest.files.get(path) {
                None => return Err(corrupt(format!("{path} is not in the manifest"))),
                Some(h) if *h != sha256(bytes) => {
                    return Err(corrupt(format!("{path} does not match its hash")))
                }
                Some(_) => {}
            }
        }
        Ok(files.into_iter().collect())
    }

    /// Writes generation `n` (tree, then manifest), durable before it returns, but not yet
    /// linked.
    fn write_generation<'a>(
        &self,
        n: u64,
        files: impl Iterator<Item = (&'a str, &'a [u8])>,
        manifest: &Manifest,
    ) -> Result<(), FilesError> {
        let partial = self.gen_dir.join(format!("{n}{PARTIAL}"));
        remove_any(&partial)?;
        make_dir(&partial, self.modes.0)?;
        let mut dirs = vec![partial.clone()];
        for (rel, bytes) in files {
            let path = partial.join(rel);
            let parent = path.parent().unwrap_or(&partial).to_owned();
            // Create each missing ancestor below the generation root.
            let mut missing = Vec::new();
            let mut p = parent.as_path();
            while p != partial && !p.exists() {
                missing.push(p.to_owned());
                p = p.parent().unwrap_or(&partial);
            }
            for d in missing.into_iter().rev() {
                make_dir(&d, self.modes.0)?;
                dirs.push(d);
            }
            write_file(&path, bytes, self.modes.1)?;
        }
        // Deepest first, so each directory entry is durable before its parent's.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            fsync_dir(d)?;
        }
        let final_dir = self.gen_path(n);
        rename(&partial, &final_dir)?;
        self.write_manifest(n, manifest)?;
        fsync_dir(&self.gen_dir)
    }

    /// Writes `<n>.json` through a temporary name and a rename.
    fn write_manifest(&self, n: u64, manifest: &Manifest) -> Result<(), FilesError> {
        let path = self.manifest_path(n);
        let tmp = self.gen_dir.join(format!("{n}.json{PARTIAL}"));
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|source| FilesError::Manifest {
            path: path.clone(),
            source,
        })?;
        remove_any(&tmp)?;
        write_file(&tmp, &bytes, MANIFEST_MODE)?;
        rename(&tmp, &path)
    }

    /// Makes `<data_dir>/freeswitch` point at generation `n`: a new link under a temporary
    /// name renamed over it, then the directory made durable.
    fn swap_link(&self, n: u64) -> Result<(), FilesError> {
        let tmp = self.data_dir.join(LINK_TMP);
        remove_any(&tmp)?;
        let target = link_target_for(n);
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("symlink", &tmp))?;
        rename(&tmp, &self.link_path())?;
        fsync_dir(&self.data_dir)
    }

    /// Removes a generation: the manifest first, so that a crash half-way leaves an
    /// incomplete generation (removed at open), never a manifest for missing files.
    fn remove_generation(&self, n: u64) -> Result<(), FilesError> {
        remove_any(&self.manifest_path(n))?;
        remove_any(&self.gen_path(n))
    }

    /// Removes every generation but the current and the good one.
    fn prune(&self) -> Result<(), FilesError> {
        let keep = [self.current, self.state.good];
        for n in self.scan()?.numbers {
            if !keep.contains(&Some(n)) {
                self.remove_generation(n)?;
            }
        }
        fsync_dir(&self.gen_dir)
    }

    /// What is in the generations directory, after removing anything partial.
    fn scan(&self) -> Result<Scan, FilesError> {
        let mut scan = Scan::default();
        let entries = fs::read_dir(&self.gen_dir).map_err(io_err("list", &self.gen_dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.gen_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == STATE_NAME {
                continue;
            }
            if name.ends_with(PARTIAL) {
                remove_any(&entry.path())?;
                continue;
            }
            let (stem, is_manifest) = match name.strip_suffix(".json") {
                Some(stem) => (stem, true),
                None => (name.as_str(), false),
            };
            match stem.parse::<u64>() {
                Ok(n) if stem == n.to_string() => {
                    scan.numbers.insert(n);
                    if is_manifest {
                        scan.manifests.insert(n);
                    } else {
                        scan.dirs.insert(n);
                    }
                }
                _ => log::warn!("{}: not a generation, left alone", entry.path().display()),
            }
        }
        Ok(scan)
    }

    /// Brings the data directory back to "link on a complete generation (or no link), at
    /// most the good generation besides, nothing partial, a `state.json`".
    fn recover(&mut self) -> Result<(), FilesError> {
        // A temporary link, or the old-layout directory a swap left under that name.
        remove_any(&self.data_dir.join(LINK_TMP))?;
        let scan = self.scan()?;
        self.next = scan.numbers.iter().max().map_or(1, |m| m + 1);

        let link = self.link_path();
        let old_layout = self.data_dir.join(OLD_LAYOUT);
        match fs::symlink_metadata(&link) {
            Ok(md) if md.file_type().is_symlink() => {
                self.current = self.link_target()?;
                // A migration that stopped after linking but before cleaning up.
                remove_any(&old_layout)?;
            }
            Ok(md) if md.is_dir() => self.migrate(&link)?,
            Ok(_) => {
                return Err(FilesError::Unexpected {
                    path: link,
                    what: "a file where the link to the rendered configuration belongs".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(&old_layout).is_ok() {
                    // A migration that moved the old directory aside, then stopped.
                    self.migrate(&old_layout)?;
                }
            }
            Err(e) => return Err(io_err("stat", &link)(e)),
        }

        let scan = self.scan()?;
        let complete: Vec<u64> = scan.dirs.intersection(&scan.manifests).copied().collect();
        if let Some(c) = self.current {
            if !complete.contains(&c) {
                return Err(FilesError::Corrupt {
                    generation: c,
                    dir: self.gen_path(c),
                    reason: format!("{} links to it but it is incomplete", link.display()),
                });
            }
        }
        let (mut state, write) = match self.read_state()? {
            Some(state) => (state, false),
            None => (self.state_of_older_layout()?, true),
        };
        let lost = state.good.filter(|g| !complete.contains(g));
        if let Some(g) = lost {
            log::warn!(
                "generation {g}, the good one, is missing from {}: a failed apply cannot roll back until one succeeds",
                self.gen_dir.display()
            );
            state.good = None;
        }
        if write || lost.is_some() {
            self.write_state(&state)?;
        }
        self.state = state;
        for n in scan.numbers {
            if Some(n) != self.current && Some(n) != self.state.good {
                self.remove_generation(n)?;
            }
        }
        fsync_dir(&self.gen_dir)?;
        fsync_dir(&self.data_dir)
    }

    /// Copies a plain directory (older layout) into a generation whose document is
    /// unknown, then puts the link in its place. FreeSWITCH sees the old directory or the
    /// link to the same files, never nothing, where the filesystem can exchange the two
    /// (`renameat2(RENAME_EXCHANGE)`); elsewhere there is a moment with neither.
    fn migrate(&mut self, old: &Path) -> Result<(), FilesError> {
        let mut files = Vec::new();
        read_tree(old, old, &mut files)?;
        let n = self.next;
        self.next += 1;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            generation: n,
            document: None,
            rev: None,
            note: Some(format!(
                "migrated from the directory {} (older layout)",
                self.link_path().display()
            )),
            files: files.iter().map(|(p, b)| (p.clone(), sha256(b))).collect(),
        };
        self.write_generation(
            n,
            files.iter().map(|(p, b)| (p.as_str(), b.as_slice())),
            &manifest,
        )?;
        let tmp = self.data_dir.join(LINK_TMP);
        let link = self.link_path();
        remove_any(&tmp)?;
        std::os::unix::fs::symlink(link_target_for(n), &tmp).map_err(io_err("symlink", &tmp))?;
        if old == link {
            match nix::fcntl::renameat2(
                None,
                &tmp,
                None,
                &link,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            ) {
                Ok(()) => {
                    // `tmp` now names the old directory.
                    fsync_dir(&self.data_dir)?;
                    remove_any(&tmp)?;
                }
                Err(errno) => {
                    log::warn!(
                        "cannot exchange {} with a link in one step ({errno}); moving it aside first",
                        link.display()
                    );
                    let aside = self.data_dir.join(OLD_LAYOUT);
                    remove_any(&aside)?;
                    rename(&link, &aside)?;
                    fsync_dir(&self.data_dir)?;
                    rename(&tmp, &link)?;
                    fsync_dir(&self.data_dir)?;
                    remove_any(&aside)?;
                }
            }
        } else {
            rename(&tmp, &link)?;
            fsync_dir(&self.data_dir)?;
            remove_any(old)?;
        }
        fsync_dir(&self.data_dir)?;
        self.current = Some(n);
        log::info!(
            "migrated {} (a directory, older layout) into generation {n}",
            link.display()
        );
        Ok(())
    }
}

#[derive(Default)]
struct Scan {
    numbers: std::collections::BTreeSet<u64>,
    dirs: std::collections::BTreeSet<u64>,
    manifests: std::collections::BTreeSet<u64>,
}

fn link_target_for(n: u64) -> PathBuf {
    // Relative, so the link stays right wherever the data volume is mounted.
    Path::new(GENERATIONS_DIR).join(n.to_string())
}

fn parse_link_target(target: &Path) -> Option<u64> {
    let rest = target.strip_prefix(GENERATIONS_DIR).ok()?;
    let s = rest.to_str()?;
    let n = s.parse::<u64>().ok()?;
    (s == n.to_string()).then_some(n)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A rendered path must stay inside the generation.
fn check_relative(path: &str) -> Result<(), FilesError> {
    let bad = |reason| {
        Err(FilesError::BadPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.starts_with('/') {
        return bad("absolute");
    }
    // Split by hand: `Path::components` silently drops `.` and empty segments.
    for segment in path.split('/') {
        match segment {
            "" => return bad("empty segment"),
            "." => return bad("contains ."),
            ".." => return bad("goes up with .."),
            _ => {}
        }
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<(), FilesError> {
    fs::DirBuilder::new()
        .mode(mode & 0o777)
        .create(path)
        .map_err(io_err("mkdir", path))?;
    if mode & 0o7000 != 0 {
        // ccnqd.service has RestrictSUIDSGID=yes: a mkdir or chmod asking for
        // set-group-ID is refused (EPERM). None is needed: a directory made in a
        // set-group-ID one inherits the bit and the group from it, and the service's umask
        // (0022) leaves the permission bits asked for.
        return Ok(());
    }
    // The umask may have taken bits FreeSWITCH needs.
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), FilesError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FilesError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("create", path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", path))?;
    f.write_all(bytes).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

fn fsync_dir(path: &Path) -> Result<(), FilesError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", path))
}

fn rename(from: &Path, to: &Path) -> Result<(), FilesError> {
    fs::rename(from, to).map_err(io_err("rename", from))
}

/// Removes a file, link or directory tree; absent is fine.
fn remove_any(path: &Path) -> Result<(), FilesError> {
    let result = match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Every regular file under `dir`, with its path relative to `root` (`/`-separated).
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), FilesError> {
    let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(io_err("stat", &path))?;
        if ft.is_dir() {
            read_tree(root, &path, out)?;
        } else if ft.is_file() {
            let bytes = fs::read(&path).map_err(io_err("read", &path))?;
            let rel = path
                .strip_prefix(root)
                .map_err(|_| FilesError::Unexpected {
                    path: path.clone(),
                    what: "outside the tree being read".into(),
                })?
                .to_string_lossy()
                .into_owned();
            out.push((rel, bytes));
        } else {
            return Err(FilesError::Unexpected {
                path,
                what: "neither a file nor a directory (the rendered tree has only those)".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    fn tree(files: &[(&str, &str)]) -> RenderedTree {
        files
            .iter()
            .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    fn data_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn an_empty_store_has_nothing_installed() {
        let d = data_dir();
        let s = FileStore::open(d.path()).unwrap();
        assert_eq!(s.current().unwrap(), None);
        assert_eq!(s.current_generation(), None);
        assert!(!d.path().join(LINK_NAME).exists());
    }

    #[test]
    fn install_links_the_tree_and_reads_it_back() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        let t = tree(&[("vars.xml", "<a/>"), ("sip_profiles/x-ingress.xml", "<b/>")]);
        let doc = json!({"_id": "host:a", "_rev": "1-a"});
        let n = s.install(&t, &doc, "1-a").unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!(cur.generation, n);
        assert_eq!(cur.tree, t);
        assert_eq!(cur.document, doc);
        assert_eq!(cur.rev, "1-a");
        // What FreeSWITCH reads, at the path it includes.
        let through_link =
            fs::read(d.path().join("freeswitch/sip_profiles/x-ingress.xml")).unwrap();
        assert_eq!(through_link, b"<b/>");
        assert_eq!(
            fs::read_link(d.path().join(LINK_NAME)).unwrap(),
            Path::new("freeswitch.gen").join(n.to_string())
        );
    }

    #[test]
    fn modes_let_freeswitch_read_and_keep_the_manifest_private() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        let t = tree(&[("autoload_configs/acl.conf.xml", "<c/>")]);
        let n = s.install(&t, &json!({}), "1").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        let g = d.path().join(GENERATIONS_DIR);
        assert_eq!(mode(&g), 0o755);
        assert_eq!(mode(&g.join(n.to_string())), 0o755);
        assert_eq!(mode(&g.join(format!("{n}/autoload_configs"))), 0o755);
        assert_eq!(
            mode(&g.join(format!("{n}/autoload_configs/acl.conf.xml"))),
            0o644
        );
        assert_eq!(mode(&g.join(format!("{n}.json"))), 0o600);
    }

    #[test]
    fn a_set_group_id_generations_directory_makes_generations_readable_by_its_group_only() {
        let d = data_dir();
        let g = d.path().join(GENERATIONS_DIR);
        // As the image's tmpfiles make it (the group is whatever this test runs with).
        fs::create_dir(&g).unwrap();
        fs::set_permissions(&g, fs::Permissions::from_mode(0o2750)).unwrap();
        let mut s = FileStore::open(d.path()).unwrap();
        let n = s
            .install(
                &tree(&[("autoload_configs/acl.conf.xml", "<a/>")]),
                &json!({}),
                "1-a",
            )
            .unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(
            mode(&g),
            0o2750,
            "the directory tmpfiles made is left as it is"
        );
        assert_eq!(mode(&g.join(n.to_string())), 0o2750);
        assert_eq!(mode(&g.join(format!("{n}/autoload_configs"))), 0o2750);
        assert_eq!(
            mode(&g.join(format!("{n}/autoload_configs/acl.conf.xml"))),
            0o640
        );
        assert_eq!(mode(&g.join(format!("{n}.json"))), 0o600);
    }

    #[test]
    fn keeps_the_current_and_the_good_generation_only_and_rolls_back_to_the_good_one() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        let t1 = tree(&[("vars.xml", "1"), ("only-in-1.xml", "x")]);
        let t2 = tree(&[("vars.xml", "2")]);
        let t3 = tree(&[("vars.xml", "3"), ("dialplan/d.xml", "3")]);
        let g1 = s.install(&t1, &json!({"v": 1}), "1").unwrap();
        s.confirm(&json!({"v": 1}), "1").unwrap();
        // 2 installed and never confirmed (its apply cut short), then 3 over it.
        let g2 = s.install(&t2, &json!({"v": 2}), "2").unwrap();
        let g3 = s.install(&t3, &json!({"v": 3}), "3").unwrap();
        let g = d.path().join(GENERATIONS_DIR);
        assert!(g.join(g1.to_string()).exists());
        assert!(!g.join(g2.to_string()).exists());
        assert!(!g.join(format!("{g2}.json")).exists());
        assert_eq!(s.previous_generation(), Some(g1), "the good one, not 2");

        s.rollback().unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!((cur.generation, cur.rev.as_str()), (g1, "1"));
        assert!(cur.confirmed);
        assert_eq!(cur.tree, t1);
        assert!(
            !g.join(g3.to_string()).exists(),
            "the failed set is removed"
        );
        assert!(matches!(s.rollback(), Err(FilesError::NoPrevious)));

        // A success makes its set the good one; the one before is no longer kept.
        let g4 = s.install(&t3, &json!({"v": 4}), "4").unwrap();
        s.confirm(&json!({"v": 4}), "4").unwrap();
        assert_eq!(s.previous_generation(), None);
        assert!(!g.join(g1.to_string()).exists());
        assert!(s.current().unwrap().unwrap().confirmed);
        assert_eq!(s.current_generation(), Some(g4));
    }

    #[test]
    fn reopen_finds_the_same_generations() {
        let d = data_dir();
        {
            let mut s = FileStore::open(d.path()).unwrap();
            s.install(&tree(&[("vars.xml", "1")]), &json!(1), "1")
                .unwrap();
            s.confirm(&json!(1), "1").unwrap();
            s.install(&tree(&[("vars.xml", "2")]), &json!(2), "2")
                .unwrap();
            s.confirm(&json!(2), "2").unwrap();
        }
        let mut s = FileStore::open(d.path()).unwrap();
        assert_eq!(s.current().unwrap().unwrap().rev, "2");
        assert_eq!(s.applied().unwrap().rev, "2");
        s.install(&tree(&[("vars.xml", "3")]), &json!(3), "3")
            .unwrap();
        s.rollback().unwrap();
        assert_eq!(s.current().unwrap().unwrap().rev, "2");
    }

    #[test]
    fn installed_is_not_applied_until_confirmed() {
        let d = data_dir();
        let (doc1, doc2) = (json!({"v": 1}), json!({"v": 2}));
        let g1 = {
            let mut s = FileStore::open(d.path()).unwrap();
            s.begin(&doc1, "1").unwrap();
            let g1 = s.install(&tree(&[("vars.xml", "1")]), &doc1, "1").unwrap();
            s.confirm(&doc1, "1").unwrap();
            assert_eq!(s.in_doubt(), []);
            // The apply of 2 installs its files, then the daemon is killed.
            s.begin(&doc2, "2").unwrap();
            s.install(&tree(&[("vars.xml", "2")]), &doc2, "2").unwrap();
            g1
        };
        let mut s = FileStore::open(d.path()).unwrap();
        let cur = s.current().unwrap().unwrap();
        assert_eq!((cur.rev.as_str(), cur.confirmed), ("2", false));
        let applied = s.applied().unwrap();
        assert_eq!((applied.rev.as_str(), &applied.document), ("1", &doc1));
        assert!(applied.at() > UNIX_EPOCH);
        assert_eq!(
            s.in_doubt(),
            [InDoubt {
                rev: "2".into(),
                document: doc2.clone()
            }]
        );
        assert_eq!(
            s.previous_generation(),
            Some(g1),
            "rollback goes to 1's files"
        );
        // Carried out again, to the end this time.
        s.begin(&doc2, "2").unwrap();
        assert_eq!(s.in_doubt().len(), 1, "begun again, in doubt once");
        s.confirm(&doc2, "2").unwrap();
        drop(s);
        let s = FileStore::open(d.path()).unwrap();
        assert_eq!(s.applied().unwrap().rev, "2");
        assert_eq!(s.in_doubt(), []);
        assert!(s.current().unwrap().unwrap().confirmed);
        assert_eq!(s.previous_generation(), None);
    }

    #[test]
    fn a_failed_apply_rolls_back_and_stays_in_doubt_until_one_succeeds() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        s.install(&tree(&[("vars.xml", "1")]), &json!(1), "1")
            .unwrap();
        s.confirm(&json!(1), "1").unwrap();
        for rev in ["2", "3", "2"] {
            s.begin(&json!(rev), rev).unwrap();
            s.install(&tree(&[("vars.xml", rev)]), &json!(rev), rev)
                .unwrap();
            s.rollback().unwrap();
        }
        assert_eq!(s.current().unwrap().unwrap().rev, "1");
        assert_eq!(s.applied().unwrap().rev, "1");
        let revs: Vec<&str> = s.in_doubt().iter().map(|d| d.rev.as_str()).collect();
        assert_eq!(revs, ["3", "2"], "in the order last begun, each once");
        s.begin(&json!(4), "4").unwrap();
        s.confirm(&json!(4), "4").unwrap();
        assert_eq!(s.in_doubt(), []);
        assert_eq!(s.applied().unwrap().rev, "4");
    }

    #[test]
    fn a_store_without_a_state_runs_its_current_document_as_the_older_daemon_believed() {
        let d = data_dir();
        let g = {
            let mut s = FileStore::open(d.path()).unwrap();
            s.install(&tree(&[("vars.xml", "1")]), &json!(1), "1")
                .unwrap()
        };
        let state = d.path().join(GENERATIONS_DIR).join(STATE_NAME);
        fs::remove_file(&state).unwrap();
        let s = FileStore::open(d.path()).unwrap();
        assert_eq!(s.applied().unwrap().rev, "1");
        assert_eq!(s.in_doubt(), []);
        assert!(s.current().unwrap().unwrap().confirmed);
        assert_eq!(s.current_generation(), Some(g));
        assert_eq!(
            fs::metadata(&state).unwrap().mode() & 0o7777,
            0o600,
            "written at once, private"
        );
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let d = data_dir();
        let _s = FileStore::open(d.path()).unwrap();
        assert!(matches!(
            FileStore::open(d.path()),
            Err(FilesError::Locked { .. })
        ));
    }

    #[test]
    fn open_removes_partial_and_incomplete_generations() {
        let d = data_dir();
        {
            let mut s = FileStore::open(d.path()).unwrap();
            s.install(&tree(&[("vars.xml", "1")]), &json!(1), "1")
                .unwrap();
        }
        let g = d.path().join(GENERATIONS_DIR);
        // What a crash can leave: a tree being written, a tree without its manifest, a
        // manifest being written, a state being written, a link being made.
        fs::create_dir_all(g.join("7.partial/sip_profiles")).unwrap();
        fs::create_dir(g.join("8")).unwrap();
        fs::write(g.join("8/vars.xml"), "8").unwrap();
        fs::write(g.join("9.json.partial"), "{").unwrap();
        fs::write(g.join(format!("{STATE_NAME}.partial")), "{").unwrap();
        std::os::unix::fs::symlink("freeswitch.gen/8", d.path().join(LINK_TMP)).unwrap();
        let s = FileStore::open(d.path()).unwrap();
        assert_eq!(s.current().unwrap().unwrap().rev, "1");
        let mut left: Vec<String> = fs::read_dir(&g)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        left.sort();
        assert_eq!(left, ["1", "1.json", STATE_NAME]);
        assert!(fs::symlink_metadata(d.path().join(LINK_TMP)).is_err());
        // Numbers seen are not reused.
        assert!(s.next > 8);
    }

    #[test]
    fn a_damaged_file_is_reported_not_returned() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        let n = s
            .install(&tree(&[("vars.xml", "good")]), &json!(1), "1")
            .unwrap();
        fs::write(
            d.path().join(format!("{GENERATIONS_DIR}/{n}/vars.xml")),
            "edited by hand",
        )
        .unwrap();
        assert!(matches!(s.current(), Err(FilesError::Corrupt { .. })));
    }

    #[test]
    fn paths_outside_the_generation_are_refused() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        for bad in ["../x.xml", "/etc/passwd", "", "a/./b"] {
            let err = s.install(&tree(&[(bad, "x")]), &json!(1), "1").unwrap_err();
            assert!(matches!(err, FilesError::BadPath { .. }), "{bad}: {err}");
        }
        assert_eq!(s.current_generation(), None);
    }

    #[test]
    fn an_older_layout_directory_is_migrated_as_unknown() {
        let d = data_dir();
        let old = d.path().join(LINK_NAME);
        fs::create_dir_all(old.join("sip_profiles")).unwrap();
        fs::write(old.join("vars.xml"), "old vars").unwrap();
        fs::write(old.join("sip_profiles/p.xml"), "old p").unwrap();
        let mut s = FileStore::open(d.path()).unwrap();
        assert!(fs::symlink_metadata(&old).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(old.join("sip_profiles/p.xml")).unwrap(), b"old p");
        // Files in place, document unknown: the planner must start from nothing.
        assert_eq!(s.current().unwrap(), None);
        let migrated = s.current_generation().unwrap();
        // A later install can roll back to the migrated files.
        s.install(&tree(&[("vars.xml", "new")]), &json!(1), "1")
            .unwrap();
        assert_eq!(s.previous_generation(), Some(migrated));
        s.rollback().unwrap();
        assert_eq!(fs::read(old.join("vars.xml")).unwrap(), b"old vars");
        assert!(fs::symlink_metadata(d.path().join(LINK_TMP)).is_err());
    }

    #[test]
    fn a_migration_interrupted_after_moving_the_directory_aside_completes() {
        let d = data_dir();
        let aside = d.path().join(OLD_LAYOUT);
        fs::create_dir_all(&aside).unwrap();
        fs::write(aside.join("vars.xml"), "old vars").unwrap();
        let s = FileStore::open(d.path()).unwrap();
        assert_eq!(
            fs::read(d.path().join("freeswitch/vars.xml")).unwrap(),
            b"old vars"
        );
        assert!(s.current_generation().is_some());
        assert!(!aside.exists());
    }

    #[test]
    fn forget_keeps_the_files_but_not_the_document() {
        let d = data_dir();
        let mut s = FileStore::open(d.path()).unwrap();
        s.install(&tree(&[("vars.xml", "1")]), &json!(1), "1")
            .unwrap();
        s.forget("first apply failed").unwrap();
        assert_eq!(s.current().unwrap(), None);
        assert_eq!(
            fs::read(d.path().join("freeswitch/vars.xml")).unwrap(),
            b"1"
        );
    }
}
