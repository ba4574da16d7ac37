//! The `docker save` tarball, as BuildKit's docker exporter writes it: `manifest.json` and
//! `repositories` for `docker load`, plus an OCI layout in the same tar.
//!
//! Docker 20.10's loader (moby `image/tarexport/load.go`) reads only `manifest.json`: `Config`
//! and `Layers` are paths inside the tar; layers may be gzip (it sniffs compression), and the
//! uncompressed digests must equal the config's `rootfs.diff_ids`.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_oci::layer::Compression;
use kiln_oci::ContentStore;
use serde::Serialize;

use crate::layout::{index_entries, index_json, OCI_LAYOUT};
use crate::tarball::TarOut;
use crate::{names, ExportCompression, ExportError, ImageBundle};

/// One `manifest.json` entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_path(d: &kiln_oci::Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Writes `bundle` as a docker-save tar at `dest` (replaced atomically), tagged with `names`
/// (normalised as Docker prints them: `docker.io/library/app:1` → `app:1`). Blobs are
/// streamed from `store`, never held in memory.
///
/// Docker 20.10 loads only gzip (or plain) layers, so zstd and uncompressed layers are
/// converted to gzip first (see [`ImageBundle::recompressed`]; the image id is unchanged).
pub fn write_docker_tar(
    bundle: &ImageBundle,
    names: &[String],
    store: &ContentStore,
    dest: &Path,
) -> Result<(), ExportError> {
    let all_gzip = bundle
        .layers
        .iter()
        .all(|l| Compression::from_media_type(&l.media_type) == Some(Compression::Gzip));
    if !all_gzip {
        let gzip = bundle.recompressed(store, &ExportCompression::default())?;
        return write_gzip_docker_tar(&gzip, names, store, dest);
    }
    write_gzip_docker_tar(bundle, names, store, dest)
}

fn write_gzip_docker_tar(
    bundle: &ImageBundle,
    names: &[String],
    store: &ContentStore,
    dest: &Path,
) -> Result<(), ExportError> {
    let refs = names
        .iter()
        .map(|n| names::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    let repo_tags: Vec<String> = refs.iter().filter_map(names::repo_tag).collect();
    let manifest = [DockerManifest {
        config: blob_path(&bundle.config_digest),
        repo_tags,
        layers: bundle.layers.iter().map(|l| blob_path(&l.digest)).collect(),
    }];
    // `repositories`: {"app": {"1": "<top layer id>"}}, the legacy index `docker save` writes.
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(top) = bundle.layers.last() {
        for r in &refs {
            if let (Some(tag), Some(full)) = (&r.tag, names::repo_tag(r)) {
                let repo = full
                    .strip_suffix(&format!(":{tag}"))
                    .unwrap_or(&full)
                    .to_string();
                repositories
                    .entry(repo)
                    .or_default()
                    .insert(tag.clone(), top.digest.hex().to_string());
            }
        }
    }
    let mut out = TarOut::create(dest)?;
    out.dir("blobs/")?;
    out.dir("blobs/sha256/")?;
    for d in bundle.blobs() {
        out.blob(store, &d)?;
    }
    out.bytes("oci-layout", OCI_LAYOUT)?;
    out.bytes("index.json", &index_json(index_entries(bundle, names)?))?;
    // Plain data with string keys: serialisation cannot fail.
    out.bytes(
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap_or_default(),
    )?;
    if !repositories.is_empty() {
        out.bytes(
            "repositories",
            &serde_json::to_vec(&repositories).unwrap_or_default(),
        )?;
    }
    out.finish()
}
