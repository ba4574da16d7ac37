//! The layer codec: overlay upper dir → OCI layer blob, and layer blob → overlay-format dir.
//!
//! Layers follow the OCI image-spec `layer.md` changeset format: whiteouts are empty
//! `.wh.<name>` entries and an opaque directory carries a `.wh..wh..opq` entry. On disk, kiln
//! keeps layers in overlayfs format (a whiteout is a 0/0 character device, an opaque directory
//! has the `trusted.overlay.opaque=y` xattr), so an unpacked layer can be an overlay lowerdir
//! as is, and an overlay upper dir can be tarred as is.

mod convert;
mod encoder;
mod pgzip;
mod safe_fs;
mod unpack;
mod write;

pub use convert::{
    check_compression_level, compression_level_range, recompress_layer, ConvertError,
};
pub use unpack::{apply_layer, extract_tar, unpack_layer};
pub use write::{write_layer, write_layer_from_upper, LayerOptions};

use crate::media_types;

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

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => media_types::OCI_LAYER_GZIP,
            Compression::Zstd => media_types::OCI_LAYER_ZSTD,
            Compression::None => media_types::OCI_LAYER_TAR,
        }
    }

    /// The compression a layer media type names (OCI, including non-distributable, and
    /// Docker's), or `None` when the media type is not a known layer type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        // Parameters (`; foo=bar`) do not change the encoding.
        let mt = media_type.split(';').next().unwrap_or("").trim();
        match mt {
            media_types::OCI_LAYER_GZIP
            | media_types::DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            media_types::OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            media_types::OCI_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            _ => None,
        }
    }

    /// Guesses the compression from a stream's first bytes (gzip and zstd magic numbers;
    /// anything else is taken as a plain tar).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// Digest of the uncompressed tar.
    pub diff_id: crate::Digest,
    /// Digest of the compressed blob.
    pub blob: crate::Digest,
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

impl LayerError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> LayerError {
        LayerError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn bad(entry: impl Into<String>, reason: impl Into<String>) -> LayerError {
        LayerError::BadEntry {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// Whiteout prefix (OCI image-spec `layer.md`, "Whiteouts").
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
/// Opaque whiteout entry name.
pub(crate) const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque (as root).
pub(crate) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The same, for overlay mounted with `userxattr` (rootless).
pub(crate) const OVERLAY_USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// Xattrs that must not travel in a layer: overlayfs' own bookkeeping (`trusted.overlay.*`,
/// `user.overlay.*`) and the host's SELinux label.
pub(crate) fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == b"security.selinux"
}
