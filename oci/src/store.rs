//! The content store: blobs by digest under `<root>/blobs/sha256/<hex>`.
//!
//! STUB: signatures agreed between crates; the bodies are being written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Digest;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Written content did not match the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Expected.
        expected: Digest,
        /// Actual.
        actual: Digest,
    },
    /// The blob is not in the store.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
}

/// Blobs by digest; writes are atomic (temp file, fsync, rename) and verified.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// A blob being written; [`BlobWriter::commit`] verifies and publishes it.
pub struct BlobWriter {
    _priv: (),
}

impl ContentStore {
    /// Opens (creating) a store rooted at `root` (kiln uses `<--root>/content`).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }
    /// Where the blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }
    /// True when the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }
    /// Reads a whole blob.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        todo!("{digest}")
    }
    /// Stores bytes, returning their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        todo!("{}", bytes.len())
    }
    /// Starts a streamed write.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        todo!()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    /// Finishes the write; fails (and discards it) if `expected` is given and differs.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        todo!("{expected:?}")
    }
}
