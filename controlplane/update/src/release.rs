//! One version of one image, as the signed targets metadata describes it.
//!
//! A release is four targets, named after the version (target names are flat: TUF
//! percent-encodes a `/` in them): `<version>.root.raw` (the erofs root partition),
//! `<version>.root-verity.raw` (its dm-verity hash partition), and `<version>.a.efi` and
//! `<version>.b.efi`: the unified kernel image once per slot, because its embedded
//! command line names the partitions it boots (`PARTLABEL=root-a` or `root-b`) beside
//! the root hash. A host writes the UKI of the slot it fills. Each target's
//! `custom` says which image and version it was built as, and the root hash, stamped by
//! the publisher from the build's output: a host refuses a release built for another
//! image id, and one whose parts disagree. The partitions travel without their zero
//! tail (`custom.image_length` gives the whole). Pure: the caller hands over what `tough`
//! has already verified.

use crate::error::{Refusal, UpdateError};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// The part of the slot an artifact fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArtifactRole {
    Root,
    Verity,
    /// The UKI that boots slot a.
    UkiA,
    /// The UKI that boots slot b.
    UkiB,
}

impl ArtifactRole {
    /// In the order a slot is written: the partitions, then the boot entry that makes
    /// them bootable.
    pub const ALL: [ArtifactRole; 4] = [
        ArtifactRole::Root,
        ArtifactRole::Verity,
        ArtifactRole::UkiA,
        ArtifactRole::UkiB,
    ];

    /// The target name's suffix, after `<version>.`; also the suffix of mkosi's split
    /// artifacts (`ccnq.root.raw`, `ccnq.root-verity.raw`) and of the per-slot UKIs
    /// `image/build` makes (`ccnq.a.efi`, `ccnq.b.efi`).
    pub fn suffix(self) -> &'static str {
        match self {
            ArtifactRole::Root => "root.raw",
            ArtifactRole::Verity => "root-verity.raw",
            ArtifactRole::UkiA => "a.efi",
            ArtifactRole::UkiB => "b.efi",
        }
    }
}

impl fmt::Display for ArtifactRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArtifactRole::Root => "root",
            ArtifactRole::Verity => "verity",
            ArtifactRole::UkiA => "uki-a",
            ArtifactRole::UkiB => "uki-b",
        })
    }
}

/// The target name of one artifact of a version.
pub fn target_name(version: &str, role: ArtifactRole) -> String {
    format!("{version}.{}", role.suffix())
}

/// One file of a release, as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub role: ArtifactRole,
    /// Its target name.
    pub name: String,
    /// The bytes fetched, as signed.
    pub length: u64,
    pub sha256: [u8; 32],
    /// The partition image's whole length: the artifact is its first `length` bytes and
    /// the rest is zeros, left off the wire (a 1 GiB root slot holds about 200 MB of
    /// erofs). The slot writer writes those zeros too, because the verity hash covers the
    /// whole partition. Equal to `length` for the UKIs.
    pub image_length: u64,
}

/// A version of an image, complete and consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub image_id: String,
    pub version: String,
    /// The root partition's dm-verity root hash (hex), as the UKI's command line names it.
    pub roothash: String,
    /// One per [`ArtifactRole`], in [`ArtifactRole::ALL`]'s order.
    pub artifacts: Vec<Artifact>,
}

impl Release {
    /// Bytes to fetch or write for the whole release.
    pub fn total_length(&self) -> u64 {
        self.artifacts.iter().map(|a| a.length).sum()
    }

    pub fn artifact(&self, role: ArtifactRole) -> &Artifact {
        // Built by `select` with every role.
        self.artifacts
            .iter()
            .find(|a| a.role == role)
            .expect("a release has every artifact")
    }
}

/// What the signed targets metadata says of one target.
#[derive(Debug, Clone, Copy)]
pub struct TargetInfo<'a> {
    pub name: &'a str,
    pub length: u64,
    pub sha256: &'a [u8],
    pub custom: &'a HashMap<String, Value>,
}

/// The `custom` fields the publisher stamps on each artifact of a release.
pub mod custom {
    pub const IMAGE_ID: &str = "image_id";
    pub const VERSION: &str = "version";
    pub const ROOTHASH: &str = "roothash";
    /// On the partitions only: the partition image's whole length (see
    /// [`super::Artifact::image_length`]).
    pub const IMAGE_LENGTH: &str = "image_length";
}

/// The release `version` of `image_id` among `targets`.
pub fn select<'a>(
    targets: impl IntoIterator<Item = TargetInfo<'a>>,
    image_id: &str,
    version: &str,
) -> Result<Release, UpdateError> {
    let targets: Vec<TargetInfo<'a>> = targets.into_iter().collect();
    let found: Vec<(ArtifactRole, TargetInfo<'a>)> = ArtifactRole::ALL
        .iter()
        .filter_map(|&role| {
            let name = target_name(version, role);
            targets.iter().find(|t| t.name == name).map(|t| (role, *t))
        })
        .collect();
    if found.is_empty() {
        return Err(UpdateError::NoSuchVersion {
            image_id: image_id.to_owned(),
            version: version.to_owned(),
        });
    }
    if found.len() < ArtifactRole::ALL.len() {
        let missing: Vec<String> = ArtifactRole::ALL
            .iter()
            .filter(|r| !found.iter().any(|(f, _)| f == *r))
            .map(|r| target_name(version, *r))
            .collect();
        return Err(UpdateError::refused(
            Refusal::Metadata,
            format!("version {version} is incomplete: no {}", missing.join(", ")),
        ));
    }

    let text = |t: &TargetInfo<'_>, key: &str| -> Result<String, UpdateError> {
        t.custom
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                UpdateError::refused(
                    Refusal::Metadata,
                    format!("target {}: custom.{key}: missing or not a string", t.name),
                )
            })
    };
    let mut roothash: Option<String> = None;
    let mut artifacts = Vec::new();
    for (role, t) in &found {
        let built_for = text(t, custom::IMAGE_ID)?;
        if built_for != image_id {
            return Err(UpdateError::refused(
                Refusal::OtherImage,
                format!(
                    "target {}: built for image {built_for:?}, this host runs image {image_id:?}",
                    t.name
                ),
            ));
        }
        let stamped = text(t, custom::VERSION)?;
        if stamped != version {
            return Err(UpdateError::refused(
                Refusal::Metadata,
                format!("target {}: custom.version is {stamped:?}", t.name),
            ));
        }
        let hash = text(t, custom::ROOTHASH)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UpdateError::refused(
                Refusal::Metadata,
                format!(
                    "target {}: custom.roothash: not 64 hexadecimal digits",
                    t.name
                ),
            ));
        }
        match &roothash {
            None => roothash = Some(hash),
            Some(first) if *first != hash => {
                return Err(UpdateError::refused(
                    Refusal::Metadata,
                    format!(
                        "target {}: custom.roothash differs from the other artifacts' of {version}",
                        t.name
                    ),
                ))
            }
            Some(_) => {}
        }
        let sha256: [u8; 32] = t.sha256.try_into().map_err(|_| {
            UpdateError::refused(
                Refusal::Metadata,
                format!("target {}: no SHA-256 of 32 bytes", t.name),
            )
        })?;
        let image_length = match role {
            ArtifactRole::Root | ArtifactRole::Verity => {
                let n = t.custom.get(custom::IMAGE_LENGTH).and_then(Value::as_u64);
                match n {
                    Some(n) if n >= t.length => n,
                    _ => {
                        return Err(UpdateError::refused(
                            Refusal::Metadata,
                            format!(
                            "target {}: custom.{}: missing, or shorter than the target's {} bytes",
                            t.name,
                            custom::IMAGE_LENGTH,
                            t.length
                        ),
                        ))
                    }
                }
            }
            ArtifactRole::UkiA | ArtifactRole::UkiB => t.length,
        };
        artifacts.push(Artifact {
            role: *role,
            name: t.name.to_owned(),
            length: t.length,
            sha256,
            image_length,
        });
    }
    Ok(Release {
        image_id: image_id.to_owned(),
        version: version.to_owned(),
        roothash: roothash.expect("every artifact checked"),
        artifacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "6567ef489d4cd03d56e18b9f1388ce9dadcd2295dd215e837059c39858451396";

    struct Entry {
        name: String,
        custom: HashMap<String, Value>,
    }

    fn entry(version: &str, role: ArtifactRole, image_id: &str) -> Entry {
        let mut custom = HashMap::from([
            (custom::IMAGE_ID.to_owned(), json!(image_id)),
            (custom::VERSION.to_owned(), json!(version)),
            (custom::ROOTHASH.to_owned(), json!(HASH)),
        ]);
        if matches!(role, ArtifactRole::Root | ArtifactRole::Verity) {
            custom.insert(custom::IMAGE_LENGTH.to_owned(), json!(4096));
        }
        Entry {
            name: target_name(version, role),
            custom,
        }
    }

    fn release_of(version: &str, image_id: &str) -> Vec<Entry> {
        ArtifactRole::ALL
            .iter()
            .map(|r| entry(version, *r, image_id))
            .collect()
    }

    fn infos(entries: &[Entry]) -> Vec<TargetInfo<'_>> {
        entries
            .iter()
            .map(|e| TargetInfo {
                name: &e.name,
                length: 10,
                sha256: &[7u8; 32],
                custom: &e.custom,
            })
            .collect()
    }

    #[test]
    fn a_complete_release_is_selected_among_others() {
        let mut entries = release_of("2026.12.0", "ccnq");
        entries.extend(release_of("2026.11.0", "ccnq"));
        let r = select(infos(&entries), "ccnq", "2026.12.0").unwrap();
        assert_eq!(r.version, "2026.12.0");
        assert_eq!(r.roothash, HASH);
        assert_eq!(
            r.artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            [
                "2026.12.0.root.raw",
                "2026.12.0.root-verity.raw",
                "2026.12.0.a.efi",
                "2026.12.0.b.efi"
            ]
        );
        assert_eq!(r.total_length(), 40);
        assert_eq!(r.artifact(ArtifactRole::Root).image_length, 4096);
        assert_eq!(r.artifact(ArtifactRole::UkiA).image_length, 10);
        assert_eq!(r.artifact(ArtifactRole::UkiB).name, "2026.12.0.b.efi");
    }

    #[test]
    fn an_absent_version_is_no_such_version_not_a_refusal() {
        let entries = release_of("2026.11.0", "ccnq");
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert!(matches!(e, UpdateError::NoSuchVersion { .. }), "{e}");
        assert_eq!(e.refusal(), None);
    }

    #[test]
    fn a_release_missing_a_part_is_refused_naming_it() {
        let mut entries = release_of("2026.12.0", "ccnq");
        entries.remove(1);
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Metadata));
        assert!(e.to_string().contains("2026.12.0.root-verity.raw"), "{e}");
    }

    #[test]
    fn a_release_built_for_another_image_is_refused_naming_both() {
        let entries = release_of("2026.12.0", "ccnq-lab");
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::OtherImage));
        let text = e.to_string();
        assert!(
            text.contains("\"ccnq-lab\"") && text.contains("\"ccnq\""),
            "{text}"
        );
    }

    #[test]
    fn parts_that_disagree_are_refused() {
        let mut entries = release_of("2026.12.0", "ccnq");
        entries[2]
            .custom
            .insert(custom::ROOTHASH.into(), json!(HASH.replace('6', "7")));
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert!(e.to_string().contains("custom.roothash differs"), "{e}");

        let mut entries = release_of("2026.12.0", "ccnq");
        entries[0]
            .custom
            .insert(custom::VERSION.into(), json!("2026.11.0"));
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert!(e.to_string().contains("custom.version"), "{e}");

        let mut entries = release_of("2026.12.0", "ccnq");
        entries[1].custom.remove(custom::IMAGE_ID);
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert!(e.to_string().contains("custom.image_id: missing"), "{e}");

        // A partition image said to be shorter than its own fetched part.
        let mut entries = release_of("2026.12.0", "ccnq");
        entries[0]
            .custom
            .insert(custom::IMAGE_LENGTH.into(), json!(9));
        let e = select(infos(&entries), "ccnq", "2026.12.0").unwrap_err();
        assert!(e.to_string().contains("custom.image_length"), "{e}");
    }
}
