//! OCI image layout (image-spec `image-layout.md`): `oci-layout`, `index.json`, `blobs/`.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_oci::media_types::OCI_INDEX;
use kiln_oci::{ContentStore, Descriptor, Index};

use crate::error::io_err;
use crate::tarball::{write_atomic, TarOut};
use crate::{names, ExportError, ImageBundle};

/// The `oci-layout` file.
pub(crate) const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation umoci, skopeo and containerd look a tag up by.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and BuildKit's) full image name annotation.
const IMAGE_NAME: &str = "io.containerd.image.name";

/// The manifest descriptors `index.json` lists: one per name, annotated as BuildKit does
/// (`io.containerd.image.name` = the full name, `org.opencontainers.image.ref.name` = the
/// tag); one without annotations when there are no names.
pub(crate) fn index_entries(
    bundle: &ImageBundle,
    names: &[String],
) -> Result<Vec<Descriptor>, ExportError> {
    if names.is_empty() {
        return Ok(vec![bundle.manifest_descriptor()]);
    }
    names
        .iter()
        .map(|n| {
            let r = names::parse(n)?;
            let mut a = BTreeMap::new();
            let mut full = r.clone();
            full.digest = None;
            a.insert(IMAGE_NAME.to_string(), full.to_string());
            a.insert(REF_NAME.to_string(), names::tag(&r));
            Ok(Descriptor {
                annotations: Some(a),
                ..bundle.manifest_descriptor()
            })
        })
        .collect()
}

/// `index.json` bytes for `entries`.
pub(crate) fn index_json(entries: Vec<Descriptor>) -> Vec<u8> {
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: entries,
        annotations: None,
    };
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_vec(&index).unwrap_or_default()
}

/// Writes `bundle` as an OCI image layout at `dest`: a tar file when `tar` is true (replaced
/// atomically), else a directory. An existing layout directory is extended: its other images
/// stay listed, entries with the same `org.opencontainers.image.ref.name` are replaced.
/// Blobs are streamed from `store`.
pub fn write_oci_layout(
    bundle: &ImageBundle,
    names: &[String],
    store: &ContentStore,
    dest: &Path,
    tar: bool,
) -> Result<(), ExportError> {
    let entries = index_entries(bundle, names)?;
    if tar {
        let mut out = TarOut::create(dest)?;
        out.bytes("oci-layout", OCI_LAYOUT)?;
        out.bytes("index.json", &index_json(entries))?;
        out.dir("blobs/")?;
        out.dir("blobs/sha256/")?;
        for d in bundle.blobs() {
            out.blob(store, &d)?;
        }
        return out.finish();
    }
    let blobs = dest.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for d in bundle.blobs() {
        let to = blobs.join(d.hex());
        if to.is_file() {
            continue;
        }
        let from = store.blob_path(&d);
        if !from.is_file() {
            return Err(ExportError::Store(kiln_oci::store::StoreError::NotFound(d)));
        }
        // Copy via a temp name so a crash never leaves a truncated blob under its digest.
        let tmp = blobs.join(format!(".tmp-{}", d.hex()));
        std::fs::copy(&from, &tmp).map_err(io_err(&from))?;
        std::fs::rename(&tmp, &to).map_err(io_err(&to))?;
    }
    let index_path = dest.join("index.json");
    let mut all = existing_entries(&index_path)?;
    let ours: Vec<Option<&String>> = entries
        .iter()
        .map(|e| e.annotations.as_ref().and_then(|a| a.get(REF_NAME)))
        .collect();
    all.retain(|e| {
        let theirs = e.annotations.as_ref().and_then(|a| a.get(REF_NAME));
        theirs.is_none_or(|t| !ours.contains(&Some(t)))
            && !(theirs.is_none() && ours.contains(&None) && e.digest == bundle.manifest_digest)
    });
    all.extend(entries);
    write_atomic(&dest.join("oci-layout"), OCI_LAYOUT)?;
    write_atomic(&index_path, &index_json(all))
}

/// The manifests an existing `index.json` lists (none if there is no file).
fn existing_entries(path: &Path) -> Result<Vec<Descriptor>, ExportError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| ExportError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not an OCI index: {e}"),
    })?;
    Ok(index.manifests)
}
