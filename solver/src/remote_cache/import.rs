//! Reading `--cache-from` caches, and fetching their layers when a step uses one.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use kiln_oci::media_types::OCI_MANIFEST;
use kiln_oci::registry::{RegistryClient, RegistryError};
use kiln_oci::store::StoreError;
use kiln_oci::{ContentStore, Descriptor, Digest, ImageRef, Index};

use super::format::{parse_config, parse_manifest, CacheEntry, CacheLayer};
use super::spec::{CacheImport, CacheLocation};
use super::{io_err, RemoteCacheError};

/// The annotation naming a manifest in an OCI layout's `index.json`.
pub(super) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One cache read by `--cache-from`: where it is and its records by key.
#[derive(Debug)]
pub struct ImportedCache {
    location: CacheLocation,
    manifest: Digest,
    records: HashMap<String, CacheEntry>,
}

impl ImportedCache {
    /// Reads the cache's manifest and config (not its layers), verifying both.
    pub async fn load(
        import: &CacheImport,
        client: &RegistryClient,
    ) -> Result<ImportedCache, RemoteCacheError> {
        let (manifest_digest, manifest_bytes, config_bytes) = match &import.location {
            CacheLocation::Local { dir, tag } => {
                let manifest = local_manifest(dir, tag)?;
                let bytes = read_blob(dir, &manifest, "cache manifest")?;
                let parsed = parse_manifest(&bytes)?;
                let config = read_blob(dir, &parsed.config.digest, "cache config")?;
                (manifest, bytes, config)
            }
            CacheLocation::Registry(image) => {
                let (bytes, _media_type, digest) = client.fetch_manifest(image).await?;
                let parsed = parse_manifest(&bytes)?;
                let config = client
                    .fetch_blob_bytes(image, &parsed.config.digest)
                    .await?;
                (digest, bytes, config)
            }
        };
        let manifest = parse_manifest(&manifest_bytes)?;
        let config = parse_config(&manifest, &config_bytes)?;
        let mut records = HashMap::new();
        for r in config.records {
            records.entry(r.key.clone()).or_insert(r);
        }
        Ok(ImportedCache {
            location: import.location.clone(),
            manifest: manifest_digest,
            records,
        })
    }

    /// Where the cache was read from.
    pub fn location(&self) -> &CacheLocation {
        &self.location
    }

    /// The digest of its manifest.
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The manifest digest `index.json` of `dir` names `tag` with.
fn local_manifest(dir: &Path, tag: &str) -> Result<Digest, RemoteCacheError> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| RemoteCacheError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    index
        .manifests
        .iter()
        .find(|d| {
            d.media_type == OCI_MANIFEST
                && d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|n| n == tag)
        })
        .map(|d| d.digest.clone())
        .ok_or_else(|| RemoteCacheError::NoSuchTag {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        })
}

/// A blob of a local layout, verified.
fn read_blob(dir: &Path, digest: &Digest, what: &str) -> Result<Vec<u8>, RemoteCacheError> {
    let path = dir.join("blobs/sha256").join(digest.hex());
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(RemoteCacheError::DigestMismatch {
            what: format!("{what} {}", path.display()),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Every cache read by `--cache-from`, in the order given, with what fetching their layers
/// needs. The solver consults it on local misses.
#[derive(Debug)]
pub struct CacheImports {
    caches: Vec<ImportedCache>,
    store: ContentStore,
    client: RegistryClient,
    runtime: tokio::runtime::Handle,
    /// Layer blobs that failed verification: never offered again in this build.
    bad: Mutex<HashSet<Digest>>,
}

/// A record an imported cache offers for a key.
#[derive(Debug, Clone)]
pub(crate) struct Offer<'a> {
    /// Index of the cache in [`CacheImports`].
    cache: usize,
    /// The record.
    pub(crate) entry: &'a CacheEntry,
}

impl Offer<'_> {
    /// The `from` of [`CacheImports::offer`] that looks past this offer's cache.
    pub(crate) fn next(&self) -> usize {
        self.cache + 1
    }
}

impl CacheImports {
    /// The imports; layers are fetched into `store` with `client` (blocking on `runtime`).
    pub fn new(
        caches: Vec<ImportedCache>,
        store: ContentStore,
        client: RegistryClient,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        CacheImports {
            caches,
            store,
            client,
            runtime,
            bad: Mutex::new(HashSet::new()),
        }
    }

    /// True when no cache was imported.
    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// Layer blobs that failed verification during this build (a cache directory exported
    /// into again rewrites them).
    pub fn bad_blobs(&self) -> HashSet<Digest> {
        self.bad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_bad(&self, digest: &Digest) -> bool {
        self.bad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }

    /// The record of the first cache from the `from`th on that has `key` (skipping layers
    /// known to be bad).
    pub(crate) fn offer(&self, key: &str, from: usize) -> Option<Offer<'_>> {
        self.caches
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(cache, c)| {
                let entry = c.records.get(key)?;
                let bad = entry.layer.as_ref().is_some_and(|l| self.is_bad(&l.digest));
                (!bad).then_some(Offer { cache, entry })
            })
    }

    /// Where an offer comes from, for messages.
    pub(crate) fn location(&self, offer: &Offer<'_>) -> String {
        self.caches
            .get(offer.cache)
            .map(|c| c.location.to_string())
            .unwrap_or_default()
    }

    /// Makes sure the offer's layer blob is in the content store: copied from the cache
    /// directory or downloaded from the registry, verified against its digest. Blocks; call
    /// from a blocking thread. A blob that does not verify is remembered as bad.
    pub(crate) fn fetch(
        &self,
        offer: &Offer<'_>,
        layer: &CacheLayer,
    ) -> Result<(), RemoteCacheError> {
        if self.store.has(&layer.digest) {
            return Ok(());
        }
        let Some(cache) = self.caches.get(offer.cache) else {
            return Ok(());
        };
        let result = match &cache.location {
            CacheLocation::Local { dir, .. } => {
                let path = dir.join("blobs/sha256").join(layer.digest.hex());
                match self.store.ingest_file(&path, Some(&layer.digest)) {
                    Ok(_) => Ok(()),
                    Err(StoreError::DigestMismatch { expected, actual }) => {
                        Err(RemoteCacheError::DigestMismatch {
                            what: format!("cache layer {}", path.display()),
                            expected,
                            actual,
                        })
                    }
                    Err(e) => Err(e.into()),
                }
            }
            CacheLocation::Registry(image) => self.fetch_remote(image, layer),
        };
        if matches!(
            result,
            Err(RemoteCacheError::DigestMismatch { .. }
                | RemoteCacheError::Registry(RegistryError::DigestMismatch { .. }))
        ) {
            self.bad
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(layer.digest.clone());
        }
        result
    }

    fn fetch_remote(&self, image: &ImageRef, layer: &CacheLayer) -> Result<(), RemoteCacheError> {
        let desc = Descriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            platform: None,
            annotations: None,
        };
        self.runtime
            .block_on(self.client.fetch_blob(image, &desc, &self.store))?;
        // A later push to another repository of this registry can mount it.
        let repo = format!("{}/{}", image.registry, image.repository);
        if let Err(e) = self.store.add_origin(&layer.digest, &repo) {
            tracing::debug!("cannot record the origin of {}: {e}", layer.digest);
        }
        Ok(())
    }
}
