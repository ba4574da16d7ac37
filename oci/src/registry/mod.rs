//! Registry client (OCI distribution spec): resolve, pull blobs, push.
//!
//! One [`RegistryClient`] talks to any number of registries. Per registry it remembers the
//! scheme (HTTPS, or plain HTTP for loopback and `insecure` hosts, as Docker does), the
//! authentication challenge and bearer tokens per scope. Credentials come from
//! [`RegistryOptions::credentials`] or `~/.docker/config.json` (`auths`, `credsStore`,
//! `credHelpers`).
//!
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

mod auth;
mod pull;
mod push;
mod tls;
mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// The registry could not be reached at all.
    #[error("cannot connect to registry {registry}: {reason}")]
    Connect {
        /// The registry host.
        registry: String,
        /// The reason (connection refused, TLS failure, …).
        reason: String,
    },
    /// The registry refused our credentials (or we had none).
    #[error("{reference}: unauthorized: {reason}")]
    Unauthorized {
        /// The reference.
        reference: String,
        /// The registry's message.
        reason: String,
    },
    /// A failure that may pass (5xx, 429, a dropped connection) and persisted through retries.
    #[error("{reference}: {reason}")]
    Transient {
        /// The reference.
        reference: String,
        /// The reason.
        reason: String,
    },
    /// Content did not hash to the digest it was asked for by.
    #[error("{reference}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The reference or blob.
        reference: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
}

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Options for talking to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host:port`) to reach over plain HTTP. Loopback hosts always are allowed to.
    pub insecure: Vec<String>,
    /// PEM files of extra CA certificates to trust (added to the system roots).
    pub ca_files: Vec<PathBuf>,
    /// Credentials by registry host as written in references (`docker.io`, `127.0.0.1:5000`);
    /// these win over the Docker config file.
    pub credentials: BTreeMap<String, Credentials>,
    /// The Docker config file to read credentials from; `None` means `$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Do not read any Docker config file.
    pub no_docker_config: bool,
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

/// A client for OCI distribution registries. Cheap to clone; clones share connections,
/// tokens and per-registry state.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<transport::Transport>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client with these options. If a CA file cannot be loaded, every operation fails
    /// with that error; use [`RegistryClient::try_new`] to see it up front.
    pub fn new(opts: RegistryOptions) -> Self {
        RegistryClient {
            inner: Arc::new(transport::Transport::new(opts)),
        }
    }

    /// A client with these options, failing if a CA file cannot be loaded.
    pub fn try_new(opts: RegistryOptions) -> Result<Self, RegistryError> {
        let t = transport::Transport::new(opts);
        if let Some(e) = t.init_error() {
            return Err(e);
        }
        Ok(RegistryClient { inner: Arc::new(t) })
    }

    /// Resolves a reference to the manifest for `platform` (following an index) and fetches
    /// its config.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<ResolvedManifest, RegistryError> {
        pull::resolve(&self.inner, image, platform, None).await
    }

    /// Like [`RegistryClient::resolve`], but takes the config blob from `store` when it is
    /// there (and keeps it there otherwise), so a rebuild downloads no blob at all.
    pub async fn resolve_cached(
        &self,
        image: &ImageRef,
        platform: &Platform,
        store: &ContentStore,
    ) -> Result<ResolvedManifest, RegistryError> {
        pull::resolve(&self.inner, image, platform, Some(store)).await
    }

    /// Fetches the manifest (or index) the reference names as it is, without following an
    /// index or reading its config: its bytes, media type and digest (verified when the
    /// reference has one). For artifacts such as kiln's build cache.
    pub async fn fetch_manifest(
        &self,
        image: &ImageRef,
    ) -> Result<(Vec<u8>, String, Digest), RegistryError> {
        pull::fetch_manifest(&self.inner, image).await
    }

    /// Fetches a blob into the store unless it is there, verifying its digest.
    pub async fn fetch_blob(
        &self,
        image: &ImageRef,
        blob: &Descriptor,
        store: &ContentStore,
    ) -> Result<(), RegistryError> {
        pull::fetch_blob(&self.inner, image, blob, store).await
    }

    /// Fetches a small blob (at most 32 MiB, such as a config) into memory, verified.
    pub async fn fetch_blob_bytes(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        pull::get_blob_bytes(&self.inner, image, digest).await
    }

    /// True when the image's repository has the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub async fn blob_exists(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        push::blob_exists(&self.inner, image, digest).await
    }

    /// Uploads a blob from a file unless the repository has it.
    pub async fn push_blob(
        &self,
        image: &ImageRef,
        blob: &Descriptor,
        path: &Path,
    ) -> Result<(), RegistryError> {
        push::push_blob(&self.inner, image, blob, path, None).await
    }

    /// Like [`RegistryClient::push_blob`], but first asks the registry to mount the blob
    /// from repository `from` (same registry) instead of uploading it; falls back to an upload
    /// when the registry declines.
    pub async fn push_blob_mount(
        &self,
        image: &ImageRef,
        blob: &Descriptor,
        path: &Path,
        from: &str,
    ) -> Result<(), RegistryError> {
        push::push_blob(&self.inner, image, blob, path, Some(from)).await
    }

    /// Puts a manifest under the reference's tag (or its digest).
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        push::push_manifest(&self.inner, image, media_type, bytes).await
    }
}
