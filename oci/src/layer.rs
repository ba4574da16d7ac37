//! The layer codec: overlay upper dir → OCI layer blob, and layer blob → overlay-format dir.
//!
//! STUB: signatures agreed between crates; the bodies are being written.

use std::path::Path;

use crate::store::ContentStore;
use crate::Digest;

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (the default; Docker 20.10 loads only this).
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// Plain tar.
    None,
}

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the compressed blob.
    pub blob: Digest,
    /// Compressed size.
    pub size: u64,
    /// OCI media type of the blob.
    pub media_type: String,
}

/// Why a layer could not be written or applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A hostile or malformed archive entry.
    #[error("layer entry {entry:?}: {reason}")]
    BadEntry {
        /// Entry path as in the archive.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Tars an overlay upper dir into a layer blob in the store.
///
/// Overlay whiteouts (0/0 char devices) become `.wh.<name>`, opaque directories
/// (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`) get `.wh..wh..opq`. Entries are
/// sorted, headers deterministic (no atime/ctime, no user/group names). Returns `None` when
/// the dir is empty (nothing changed).
pub fn write_layer_from_upper(
    upper: &Path,
    store: &ContentStore,
    compression: Compression,
) -> Result<Option<WrittenLayer>, LayerError> {
    todo!("{upper:?} {store:?} {compression:?}")
}

/// Unpacks a layer blob into the empty dir `dest`, in overlay's format (so `dest` can be an
/// overlay lowerdir): `.wh.<name>` becomes a 0/0 char device, `.wh..wh..opq` the opaque
/// xattr. Every path is resolved inside `dest`. Returns the diff id (sha256 of the
/// uncompressed tar) so the caller can verify it.
pub fn unpack_layer(blob: &Path, media_type: &str, dest: &Path) -> Result<Digest, LayerError> {
    todo!("{blob:?} {media_type} {dest:?}")
}
