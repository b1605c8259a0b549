//! `ccnq-update`: where a host's next image comes from, and proof that it is ours.
//!
//! A fleet is upgraded by naming an image version in host documents; the bytes come from
//! a signed update repository of plain files that any web server or mirror can serve.
//! The repository is TUF (The Update Framework), read with `tough`, the client
//! Bottlerocket uses: signatures by a threshold of keys per role, expiry of every
//! metadata file, protection against rollback and freeze attacks (the last trusted
//! metadata is kept in a datastore on `/var`), and a root of trust that rotates itself.
//! docs/decisions.md says why TUF rather than sysupdate's `SHA256SUMS`.
//!
//! - [`release`]: which targets make up one version of one image, checked against what
//!   the signed metadata says of them (pure);
//! - [`repository`]: loads and verifies the repository's metadata (talks to the update
//!   repository, through `tough`);
//! - [`artifact`]: checks downloaded or written bytes against the signed length and
//!   SHA-256 before anything is made bootable;
//! - [`fetch`]: metadata for `tough`, and artifacts resumably and at a set rate, from
//!   the repository's web server (talks to it over HTTP(S));
//! - [`install`]: writes a release into the slot the host did not boot and places its
//!   boot entry, with a boot counter, on the ESP (talks to the disk and the ESP);
//! - [`pxe`]: which version a PXE server would boot a network-booted host into (talks
//!   to the PXE server's web server);
//! - [`publish`]: makes and signs a repository from an image build's output, for the
//!   operator's release process and the tests.

pub mod artifact;
pub mod error;
pub mod fetch;
pub mod install;
pub mod publish;
pub mod pxe;
pub mod release;
pub mod repository;

pub use error::{Refusal, UpdateError};
pub use release::{Artifact, ArtifactRole, Release};
