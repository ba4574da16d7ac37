//! Layer compression at export time, as BuildKit's `compression=`, `compression-level=` and
//! `force-compression=` output options.
//!
//! Layers are stored once, as the layer codec wrote them (normally gzip). A layer whose
//! compression differs from the requested one (every layer, with `force`) is decompressed and
//! recompressed into a new blob, streaming, and its uncompressed digest checked against the
//! config's `rootfs.diff_ids`. Each conversion is remembered in
//! `<store root>/conversions/<diff_id hex>.<compression>[.<level>]` (the new layer's
//! descriptor as JSON), so the next export of the same layer reuses the blob.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_oci::layer::{recompress_layer, Compression};
use kiln_oci::{ContentStore, Descriptor, Digest};

use crate::error::io_err;
use crate::ExportError;

/// The compression an export asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportCompression {
    /// The layers' compression (default gzip).
    pub compression: Compression,
    /// The codec's level (gzip 0-9, zstd up to 22); the codec's default when `None`.
    pub level: Option<i32>,
    /// Recompress layers that already have the requested compression too.
    pub force: bool,
}

impl ExportCompression {
    /// Parses BuildKit's output attributes: `compression` (`gzip`, `zstd`, `uncompressed`),
    /// `compression-level` (an integer) and `force-compression` (`true`/`false`; empty means
    /// true, as in BuildKit).
    pub fn from_attrs(
        compression: Option<&str>,
        level: Option<&str>,
        force: Option<&str>,
    ) -> Result<Self, ExportError> {
        let bad = |attr: &str, value: &str, reason: &str| ExportError::BadOption {
            option: attr.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let compression = match compression {
            None | Some("gzip") => Compression::Gzip,
            Some("zstd") => Compression::Zstd,
            Some("uncompressed") => Compression::None,
            Some(v) => return Err(bad("compression", v, "expected gzip, zstd or uncompressed")),
        };
        let level = level
            .map(|v| {
                let l = v
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| bad("compression-level", v, "not an integer"))?;
                kiln_oci::layer::check_compression_level(compression, Some(l))
                    .map_err(|e| bad("compression-level", v, &e.to_string()))?;
                Ok::<i32, ExportError>(l)
            })
            .transpose()?;
        let force = match force {
            None | Some("false") => false,
            Some("" | "true") => true,
            Some(v) => return Err(bad("force-compression", v, "expected true or false")),
        };
        Ok(ExportCompression {
            compression,
            level,
            force,
        })
    }

    /// The cache file's suffix: `gzip`, `zstd.19`, `uncompressed`.
    fn cache_suffix(&self) -> String {
        let name = match self.compression {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => return "uncompressed".to_string(),
        };
        match self.level {
            Some(l) => format!("{name}.{l}"),
            None => name.to_string(),
        }
    }
}

/// The compression of a stored layer: from its media type, else sniffed from its first bytes.
fn layer_compression(store: &ContentStore, layer: &Descriptor) -> Result<Compression, ExportError> {
    if let Some(c) = Compression::from_media_type(&layer.media_type) {
        return Ok(c);
    }
    let path = store.blob_path(&layer.digest);
    let mut head = [0u8; 4];
    let mut file = store.open_blob(&layer.digest)?;
    let n = std::io::Read::read(&mut file, &mut head).map_err(io_err(&path))?;
    Ok(Compression::sniff(&head[..n]))
}

/// `layers` as `opts` wants them. `diff_ids` are the config's `rootfs.diff_ids`, one per layer.
pub(crate) fn convert_layers(
    layers: Vec<Descriptor>,
    diff_ids: &[Digest],
    store: &ContentStore,
    opts: &ExportCompression,
) -> Result<Vec<Descriptor>, ExportError> {
    if layers.len() != diff_ids.len() {
        return Err(ExportError::LayerCount {
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    layers
        .into_iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let from = layer_compression(store, &layer)?;
            if from == opts.compression && !opts.force {
                return Ok(layer);
            }
            convert_layer(layer, from, diff_id, store, opts)
        })
        .collect()
}

/// Where the conversion of `diff_id` to `opts` is remembered.
fn cache_path(store: &ContentStore, diff_id: &Digest, opts: &ExportCompression) -> PathBuf {
    store
        .root()
        .join("conversions")
        .join(format!("{}.{}", diff_id.hex(), opts.cache_suffix()))
}

/// A remembered conversion whose blob is still in the store.
fn cached(path: &Path, store: &ContentStore, opts: &ExportCompression) -> Option<Descriptor> {
    let bytes = std::fs::read(path).ok()?;
    let d: Descriptor = serde_json::from_slice(&bytes).ok()?;
    let ok =
        d.media_type == opts.compression.media_type() && store.size(&d.digest).ok() == Some(d.size);
    ok.then_some(d)
}

fn convert_layer(
    layer: Descriptor,
    from: Compression,
    diff_id: &Digest,
    store: &ContentStore,
    opts: &ExportCompression,
) -> Result<Descriptor, ExportError> {
    let path = cache_path(store, diff_id, opts);
    if let Some(d) = cached(&path, store, opts) {
        tracing::debug!(layer = %layer.digest, to = %d.digest, "reusing converted layer");
        return Ok(Descriptor {
            annotations: layer.annotations,
            ..d
        });
    }
    let level = match opts.compression {
        Compression::None => None,
        _ => opts.level,
    };
    let w = recompress_layer(
        store,
        &layer.digest,
        from,
        opts.compression,
        level,
        Some(diff_id),
    )?;
    tracing::debug!(layer = %layer.digest, to = %w.blob, media_type = %w.media_type, "converted layer");
    let d = Descriptor {
        media_type: w.media_type,
        digest: w.blob,
        size: w.size,
        platform: None,
        annotations: None,
    };
    remember(&path, &d)?;
    Ok(Descriptor {
        annotations: layer.annotations,
        ..d
    })
}

/// Writes the cache entry atomically (temp file beside it, rename).
fn remember(path: &Path, d: &Descriptor) -> Result<(), ExportError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    // Plain data with string keys: serialisation cannot fail.
    tmp.write_all(&serde_json::to_vec(d).unwrap_or_default())
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ExportError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
