//! Build cache export and import (`--cache-to`, `--cache-from`), so machines that do not
//! share a `--root` (CI runners) share cached steps through a directory or any OCI registry.
//!
//! Cache keys do not depend on the machine (no absolute path of the context, the store or the
//! Dockerfile enters them), so a key computed on one runner names the same step on another.
//!
//! # Format
//!
//! A cache is one OCI image manifest (`application/vnd.oci.image.manifest.v1+json`) with
//! `artifactType` [`CACHE_ARTIFACT_TYPE`]:
//!
//! - its config blob, media type [`CACHE_CONFIG_MEDIA_TYPE`], is JSON
//!   `{"version":1,"records":[{"key":…,"created":…,"layer":{…}}…]}`: one record per step, sorted
//!   by key — the step's cache key (64 hex digits), the time it first ran (RFC 3339 UTC; a hit
//!   reproduces the image's `created` and history times, so the image digest), and the layer it
//!   added, if any (`mediaType`, `digest`, `size` of the blob, `diffID` of the tar). Key
//!   preimages are not exported: the importing build computes its own;
//! - its layers are those layer blobs, once each, so registries keep them (and can mount them
//!   across repositories).
//!
//! `type=registry,ref=REF` pushes the layers, the config and the manifest under `REF`'s tag.
//! `type=local,dest=DIR` writes an OCI image layout into `DIR` (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) whose `index.json` names the manifest with
//! `org.opencontainers.image.ref.name` = the `tag=` (default `latest`); blobs already there are
//! kept, so a directory re-exported by every build only grows.
//!
//! # Modes
//!
//! `mode=min` (the default, as BuildKit's) exports the records of the image's own steps: the
//! target stage's chain of parents down to its base. `mode=max` exports every step of every
//! stage the build solved (a builder stage's `RUN` too).
//!
//! # Import
//!
//! Every `--cache-from` manifest and config is read before the solve (a missing or broken one
//! is a warning). When a step's key has no usable local record, the first imported cache with
//! that key gives it: its layer blob is fetched into the content store (only then, and verified
//! against its digest; the snapshot is unpacked from the blob, checking the diff id, like a base
//! image's), the build's lease holds it, and the record enters the local index, after which the
//! step is an ordinary cache hit. A blob that fails verification is reported and the step is
//! computed instead. Local records win over imported ones.

mod export;
mod format;
mod import;
mod spec;

use std::path::PathBuf;

use kiln_oci::registry::RegistryError;
use kiln_oci::store::StoreError;
use kiln_oci::Digest;

pub use export::{export, select_records};
pub use format::{
    encode, parse_config, parse_manifest, CacheConfig, CacheEntry, CacheLayer, CacheManifest,
    EncodedCache, FormatError, CACHE_ARTIFACT_TYPE, CACHE_CONFIG_MEDIA_TYPE, CACHE_FORMAT_VERSION,
};
pub use import::{CacheImports, ImportedCache};
pub use spec::{
    parse_cache_from, parse_cache_to, CacheExport, CacheImport, CacheLocation, CacheMode,
    CacheSpecError, DEFAULT_LOCAL_TAG,
};

/// Why a cache could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    /// A file of a local cache.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The content store.
    #[error("content store: {0}")]
    Store(#[from] StoreError),
    /// The cache's documents.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Content that does not hash to its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was read.
        what: String,
        /// The digest it is named by.
        expected: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A local cache directory has no cache under the tag.
    #[error("{dir}: index.json names no cache {tag:?}")]
    NoSuchTag {
        /// The directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
    /// A layer to export is no longer in the content store.
    #[error("layer {0} is no longer in the content store (removed by a concurrent prune?)")]
    LayerGone(Digest),
    /// The build's lease.
    #[error(transparent)]
    Lease(#[from] crate::LeaseError),
    /// Encoding the cache failed.
    #[error("cannot encode the cache: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RemoteCacheError + '_ {
    move |source| RemoteCacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
