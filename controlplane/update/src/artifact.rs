//! Bytes checked against what was signed, before anything is made bootable.
//!
//! `tough` checks a target as it streams it; an artifact fetched in pieces (resumed after
//! a broken connection or a restart) or already written to a partition is checked here
//! instead, as a whole: its length first (cheap, and it bounds the read), then its
//! SHA-256.

use crate::error::{Refusal, UpdateError};
use crate::release::Artifact;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Checks the first `artifact.length` bytes of `path` (a file, or a partition that may be
/// larger than what was written to it) against the artifact's signed SHA-256, and, on a
/// partition written whole, that the bytes after them up to `artifact.image_length` are
/// zeros.
pub async fn check(path: &Path, artifact: &Artifact) -> Result<(), UpdateError> {
    let (path, artifact) = (path.to_owned(), artifact.clone());
    tokio::task::spawn_blocking(move || check_blocking(&path, &artifact))
        .await
        .map_err(|e| UpdateError::Local(format!("checking an artifact: {e}")))?
}

/// [`check`], for code already on a blocking thread (the slot writer).
pub fn check_blocking(path: &Path, artifact: &Artifact) -> Result<(), UpdateError> {
    let local = |e: std::io::Error| UpdateError::Local(format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(local)?;
    let mut hasher = Sha256::new();
    let mut left = artifact.length;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).map_err(local)?;
        if n == 0 {
            return Err(UpdateError::refused(
                Refusal::Artifact,
                format!(
                    "{}: {} bytes, {} signed for {}",
                    path.display(),
                    artifact.length - left,
                    artifact.length,
                    artifact.name
                ),
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let got: [u8; 32] = hasher.finalize().into();
    // A downloaded file ends with the artifact; a partition (a block device, whose
    // metadata says 0 bytes, or a file standing in for one) goes on to the image's end.
    let partition =
        is_block_device(&file) || file.metadata().map_err(local)?.len() > artifact.length;
    if partition {
        let mut left = artifact.image_length - artifact.length;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).map_err(local)?;
            if n == 0 {
                return Err(UpdateError::Local(format!(
                    "{}: ends {left} bytes before the image's {}",
                    path.display(),
                    artifact.image_length
                )));
            }
            if let Some(at) = buf[..n].iter().position(|b| *b != 0) {
                let offset = artifact.image_length - left + at as u64;
                return Err(UpdateError::refused(
                    Refusal::Artifact,
                    format!(
                        "{}: byte {offset} is not zero: the image {} is zeros after byte {}",
                        path.display(),
                        artifact.name,
                        artifact.length
                    ),
                ));
            }
            left -= n as u64;
        }
    }
    if got != artifact.sha256 {
        return Err(UpdateError::refused(
            Refusal::Artifact,
            format!(
                "{}: SHA-256 {} where {} is signed for {}",
                path.display(),
                hex::encode(got),
                hex::encode(artifact.sha256),
                artifact.name
            ),
        ));
    }
    Ok(())
}

fn is_block_device(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata()
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ArtifactRole;

    fn artifact_of(bytes: &[u8]) -> Artifact {
        Artifact {
            role: ArtifactRole::Root,
            name: "1.root.raw".into(),
            length: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
            image_length: bytes.len() as u64,
        }
    }

    #[tokio::test]
    async fn the_signed_prefix_of_a_larger_partition_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let signed = vec![5u8; 3 << 20];
        let mut partition = signed.clone();
        partition.extend([0u8; 4096]);
        std::fs::write(&path, &partition).unwrap();
        check(&path, &artifact_of(&signed)).await.unwrap();
    }

    #[tokio::test]
    async fn a_changed_byte_or_a_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let signed = b"the root partition".to_vec();
        let mut tampered = signed.clone();
        tampered[3] ^= 1;
        std::fs::write(&path, &tampered).unwrap();
        let e = check(&path, &artifact_of(&signed)).await.unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Artifact));
        assert!(e.to_string().contains("SHA-256"), "{e}");

        // A partition whose tail, meant to be zeros, is not.
        let mut partition = signed.clone();
        partition.extend([0u8, 0, 9, 0]);
        std::fs::write(&path, &partition).unwrap();
        let whole = Artifact {
            image_length: signed.len() as u64 + 4,
            ..artifact_of(&signed)
        };
        let e = check(&path, &whole).await.unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Artifact));
        assert!(e.to_string().contains("byte 20 is not zero"), "{e}");
        partition[signed.len() + 2] = 0;
        std::fs::write(&path, &partition).unwrap();
        check(&path, &whole).await.unwrap();

        std::fs::write(&path, &signed[..5]).unwrap();
        let e = check(&path, &artifact_of(&signed)).await.unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::Artifact));
        assert!(e.to_string().contains("5 bytes, 18 signed"), "{e}");
    }
}
