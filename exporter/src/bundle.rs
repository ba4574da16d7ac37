//! The finished image: config and manifest bytes in the content store, plus its layers.

use kiln_oci::media_types::{OCI_CONFIG, OCI_MANIFEST};
use kiln_oci::{ContentStore, Descriptor, Digest, ImageConfig, Manifest};

use crate::compression::convert_layers;
use crate::{ExportCompression, ExportError};

/// An image ready to export. The config and manifest blobs are in the store; so must the
/// layer blobs be by the time it is written anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBundle {
    /// The config JSON, exactly as stored.
    pub config_bytes: Vec<u8>,
    /// Its digest.
    pub config_digest: Digest,
    /// The OCI manifest JSON, exactly as stored.
    pub manifest_bytes: Vec<u8>,
    /// Its digest (the image's digest).
    pub manifest_digest: Digest,
    /// The layer descriptors, bottom first (media types as the layer codec made them).
    pub layers: Vec<Descriptor>,
}

impl ImageBundle {
    /// Serialises `config` and an OCI image manifest (`application/vnd.oci.image.manifest.v1+json`,
    /// config `application/vnd.oci.image.config.v1+json`) over `layers`, and writes both into
    /// `store`. Layers are used as they are.
    pub fn new(
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        store: &ContentStore,
    ) -> Result<Self, ExportError> {
        Self::assemble(config.to_json(), layers, store)
    }

    /// As [`ImageBundle::new`], with the layers first converted to `opts`' compression (see
    /// [`ExportCompression`]): `layers[i]` must be the layer of `config.rootfs.diff_ids[i]`.
    /// Converted blobs are written to `store` and remembered there, so exporting the same
    /// layers again does not recompress them.
    pub fn new_with(
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        store: &ContentStore,
        opts: &ExportCompression,
    ) -> Result<Self, ExportError> {
        let layers = convert_layers(layers, &config.rootfs.diff_ids, store, opts)?;
        Self::new(config, layers, store)
    }

    /// This image with its layers converted to `opts`' compression; the config bytes (and so
    /// the image id) stay the same. Returns a clone when no layer changes.
    pub fn recompressed(
        &self,
        store: &ContentStore,
        opts: &ExportCompression,
    ) -> Result<Self, ExportError> {
        let config =
            ImageConfig::from_json(&self.config_bytes).map_err(|e| ExportError::Invalid {
                path: store.blob_path(&self.config_digest),
                reason: format!("not an image config: {e}"),
            })?;
        let layers = convert_layers(self.layers.clone(), &config.rootfs.diff_ids, store, opts)?;
        if layers == self.layers {
            return Ok(self.clone());
        }
        Self::assemble(self.config_bytes.clone(), layers, store)
    }

    /// Stores `config_bytes` and a manifest over `layers`.
    fn assemble(
        config_bytes: Vec<u8>,
        layers: Vec<Descriptor>,
        store: &ContentStore,
    ) -> Result<Self, ExportError> {
        let config_digest = store.write_bytes(&config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: None,
            },
            layers: layers.clone(),
            annotations: None,
        };
        // Plain data with string keys: serialisation cannot fail.
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        let manifest_digest = store.write_bytes(&manifest_bytes)?;
        Ok(ImageBundle {
            config_bytes,
            config_digest,
            manifest_bytes,
            manifest_digest,
            layers,
        })
    }

    /// The manifest's descriptor (OCI media type, digest, size), as an index lists it.
    pub fn manifest_descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: self.manifest_digest.clone(),
            size: self.manifest_bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }

    /// Every blob of the image, deduplicated: manifest, config, then layers.
    pub(crate) fn blobs(&self) -> Vec<Digest> {
        let mut out = vec![self.manifest_digest.clone(), self.config_digest.clone()];
        for l in &self.layers {
            if !out.contains(&l.digest) {
                out.push(l.digest.clone());
            }
        }
        out
    }
}
