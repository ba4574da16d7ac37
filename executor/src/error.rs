//! The executor's errors.

use std::path::PathBuf;

use kiln_ir::WorkerError;
use kiln_oci::layer::LayerError;
use kiln_oci::registry::RegistryError;
use kiln_oci::Digest;

/// Why an executor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// I/O on a path of the store or a run directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or unpacking a layer failed.
    #[error("layer {layer}: {source}")]
    Layer {
        /// The layer's blob or upper dir.
        layer: String,
        /// The error.
        #[source]
        source: LayerError,
    },
    /// An unpacked layer's content does not match its diff id.
    #[error(
        "layer {blob}: uncompressed digest {actual} does not match the expected diff id {expected}"
    )]
    DiffIdMismatch {
        /// The blob.
        blob: Digest,
        /// The diff id from the image config (or the layer record).
        expected: Digest,
        /// What the blob holds.
        actual: Digest,
    },
    /// Fetching a blob failed.
    #[error("pulling {reference}: {source}")]
    Registry {
        /// The image reference.
        reference: String,
        /// The error.
        #[source]
        source: RegistryError,
    },
    /// The image is inconsistent (reference, layer count).
    #[error("image {reference}: {reason}")]
    Image {
        /// The image reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The sandbox init could not be started or failed before the command ran.
    /// Fetching a remote ADD source (URL or git repository) failed.
    #[error("{remote}: {reason}")]
    Fetch {
        /// The URL or repository.
        remote: String,
        /// What went wrong (BuildKit's wording for checksum mismatches).
        reason: String,
    },
    /// The sandbox or a helper task failed outside any command (spawn, join, set-up).
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl ExecutorError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ExecutorError::Io { path, source }
    }
}

impl From<ExecutorError> for WorkerError {
    fn from(e: ExecutorError) -> Self {
        WorkerError::Other(e.to_string())
    }
}
