//! `ccnq-apply` (in progress).
pub mod files;
pub use files::{FileStore, FilesError, Installed};
