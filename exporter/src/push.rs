//! Pushing an image to a registry.

use futures_util::{StreamExt, TryStreamExt};
use kiln_oci::media_types::OCI_MANIFEST;
use kiln_oci::registry::RegistryClient;
use kiln_oci::{ContentStore, Descriptor, Digest, ImageRef};

use crate::{ExportError, ImageBundle};

/// A repository of `target`'s registry (not `target`'s own) the layer was pulled from.
fn mount_source(store: &ContentStore, layer: &Descriptor, target: &ImageRef) -> Option<String> {
    store.origins(&layer.digest).into_iter().find_map(|origin| {
        let (registry, repository) = origin.split_once('/')?;
        (registry == target.registry && repository != target.repository)
            .then(|| repository.to_string())
    })
}

/// How many blobs upload at once.
const CONCURRENT_UPLOADS: usize = 4;

/// Pushes `bundle` to `reference` (its tag, or its digest): layers first, a few at a time
/// (blobs the repository has are skipped; a layer pulled from another repository of the same
/// registry is mounted from there instead of uploaded), then the config, then the manifest.
/// Returns the manifest digest.
pub async fn push(
    bundle: &ImageBundle,
    reference: &ImageRef,
    client: &RegistryClient,
    store: &ContentStore,
) -> Result<Digest, ExportError> {
    let mut seen = Vec::new();
    let layers: Vec<&Descriptor> = bundle
        .layers
        .iter()
        .filter(|l| {
            let new = !seen.contains(&&l.digest);
            seen.push(&l.digest);
            new
        })
        .collect();
    futures_util::stream::iter(layers)
        .map(|l| async move {
            let path = store.blob_path(&l.digest);
            match mount_source(store, l, reference) {
                Some(from) => client.push_blob_mount(reference, l, &path, &from).await,
                None => client.push_blob(reference, l, &path).await,
            }
            .map_err(ExportError::from)
        })
        .buffer_unordered(CONCURRENT_UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    let config = Descriptor {
        media_type: kiln_oci::media_types::OCI_CONFIG.to_string(),
        digest: bundle.config_digest.clone(),
        size: bundle.config_bytes.len() as u64,
        platform: None,
        annotations: None,
    };
    client
        .push_blob(reference, &config, &store.blob_path(&config.digest))
        .await?;
    Ok(client
        .push_manifest(reference, OCI_MANIFEST, &bundle.manifest_bytes)
        .await?)
}
