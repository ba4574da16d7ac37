//! Registry client (OCI distribution spec): resolve, pull blobs, push.
//!
//! STUB: signatures agreed between crates; the bodies are being written.

use std::path::Path;

use crate::reference::ImageRef;
use crate::store::ContentStore;
use crate::{Descriptor, Digest, ImageConfig, Manifest, Platform};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry does not have the reference.
    #[error("{reference}: not found")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// Anything else, with the reference and the reason.
    #[error("{reference}: {reason}")]
    Other {
        /// The reference.
        reference: String,
        /// The reason.
        reason: String,
    },
}

/// Options for talking to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host:port`) to reach over plain HTTP. Loopback hosts always are allowed to.
    pub insecure: Vec<String>,
}

/// A manifest resolved for one platform, with its config.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    /// Digest of the platform manifest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// The config blob's bytes.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
}

/// A client for OCI distribution registries.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    _opts: RegistryOptions,
}

impl RegistryClient {
    /// A client with these options.
    pub fn new(opts: RegistryOptions) -> Self {
        RegistryClient { _opts: opts }
    }

    /// Resolves a reference to the manifest for `platform` (following an index) and fetches
    /// its config.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<ResolvedManifest, RegistryError> {
        todo!("{image} {platform:?}")
    }

    /// Fetches a blob into the store unless it is there, verifying its digest.
    pub async fn fetch_blob(
        &self,
        image: &ImageRef,
        blob: &Descriptor,
        store: &ContentStore,
    ) -> Result<(), RegistryError> {
        todo!("{image} {blob:?} {store:?}")
    }

    /// Uploads a blob from a file unless the repository has it.
    pub async fn push_blob(
        &self,
        image: &ImageRef,
        blob: &Descriptor,
        path: &Path,
    ) -> Result<(), RegistryError> {
        todo!("{image} {blob:?} {path:?}")
    }

    /// Puts a manifest under the reference's tag (or its digest).
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        todo!("{image} {media_type} {}", bytes.len())
    }
}
