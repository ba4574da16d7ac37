//! The exporter's error type.

use std::path::PathBuf;

use kiln_oci::layer::ConvertError;
use kiln_oci::registry::RegistryError;
use kiln_oci::store::StoreError;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The content store failed (a missing layer blob, a failed write).
    #[error("content store: {0}")]
    Store(#[from] StoreError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An image name could not be parsed.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer could not be recompressed (corrupt blob, diff_id mismatch, bad level).
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The manifest's layers and the config's `rootfs.diff_ids` differ in number.
    #[error("the image has {layers} layers but its config lists {diff_ids} diff_ids")]
    LayerCount {
        /// Layer descriptors.
        layers: usize,
        /// Config diff ids.
        diff_ids: usize,
    },
    /// An output option has a bad value.
    #[error("output option {option}={value:?}: {reason}")]
    BadOption {
        /// The option (`compression-level`).
        option: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer could not be applied to the flattened filesystem of a local or tar output.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer blob's digest.
        digest: String,
        /// What went wrong.
        #[source]
        source: kiln_oci::layer::LayerError,
    },
    /// An existing file in the destination is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `map_err` helper for I/O on `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.into();
    move |source| ExportError::Io { path, source }
}
