//! Writing `--cache-to` caches: choosing the records, then a local OCI layout or a push.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};
use kiln_ir::{Graph, NodeId, Op, SourceOp};
use kiln_oci::media_types::{OCI_INDEX, OCI_MANIFEST};
use kiln_oci::registry::RegistryClient;
use kiln_oci::{ContentStore, Descriptor, Digest, ImageRef, Index};

use super::format::{encode, CacheEntry, CacheLayer, EncodedCache};
use super::import::REF_NAME;
use super::spec::{CacheExport, CacheLocation, CacheMode};
use super::{io_err, RemoteCacheError};
use crate::lease::{Held, Lease};
use crate::solver::SolveResult;

/// How many blobs upload at once.
const CONCURRENT_UPLOADS: usize = 4;

/// The records a cache export of `mode` holds, from a finished solve: with
/// [`CacheMode::Min`], the target stage's last node and its chain of parents (first inputs)
/// down to the base; with [`CacheMode::Max`], every solved node. Local contexts have no
/// record and are left out.
pub fn select_records(graph: &Graph, result: &SolveResult, mode: CacheMode) -> Vec<CacheEntry> {
    let ids: Vec<NodeId> = match mode {
        CacheMode::Max => result.nodes.keys().copied().collect(),
        CacheMode::Min => {
            let mut chain = Vec::new();
            let mut next = graph.stages.get(graph.target).map(|s| s.last);
            while let Some(id) = next {
                if chain.contains(&id) {
                    break;
                }
                chain.push(id);
                next = match graph.nodes.get(id) {
                    Some(n) if matches!(n.op, Op::Exec(_) | Op::File(_)) => {
                        n.inputs.first().copied()
                    }
                    _ => None,
                };
            }
            chain
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let Some(node) = graph.nodes.get(id) else {
            continue;
        };
        if matches!(node.op, Op::Source(SourceOp::Context(_))) {
            continue;
        }
        let Some(o) = result.nodes.get(&id) else {
            continue;
        };
        out.push(CacheEntry {
            key: o.cache_key.clone(),
            created: o.created.clone(),
            layer: o.layer.as_ref().map(CacheLayer::from),
        });
    }
    out
}

/// Writes `records` to the export's location. `lease` is the build's (the config blob of a
/// registry export passes through the content store); `rewrite` names blobs a cache
/// directory holds corrupt (found so by this build's import), which are written again.
/// `note` gets BuildKit's progress lines (`writing layer sha256:… done`). Returns the cache
/// manifest's digest.
pub async fn export(
    target: &CacheExport,
    records: &[CacheEntry],
    store: &ContentStore,
    client: &RegistryClient,
    lease: &Lease,
    rewrite: &HashSet<Digest>,
    note: &(dyn Fn(String) + Sync),
) -> Result<Digest, RemoteCacheError> {
    let enc = encode(records)?;
    note(format!(
        "preparing build cache for export: {} records done",
        records.len()
    ));
    // Every layer is the build's own (made or used by it), so already leased; check that a
    // concurrent prune did not take one first.
    let layer_refs: Vec<kiln_ir::LayerRef> = records
        .iter()
        .filter_map(|r| r.layer.as_ref().map(kiln_ir::LayerRef::from))
        .collect();
    let held: Vec<Held<'_>> = layer_refs.iter().map(Held::Layer).collect();
    if !lease.hold(&held)? {
        if let Some(gone) = enc.layers.iter().find(|l| !store.has(&l.digest)) {
            return Err(RemoteCacheError::LayerGone(gone.digest.clone()));
        }
    }
    match &target.location {
        CacheLocation::Local { dir, tag } => write_local(dir, tag, &enc, store, rewrite, note)?,
        CacheLocation::Registry(image) => push(image, &enc, store, client, lease, note).await?,
    }
    Ok(enc.manifest.digest)
}

/// Copies `src` to the blob `digest` of a layout's `blobs/sha256/` through a temp file.
fn put_file(blobs: &Path, digest: &Digest, src: &Path) -> Result<(), RemoteCacheError> {
    let dest = blobs.join(digest.hex());
    let tmp = blobs.join(format!(".tmp-{}-{}", digest.hex(), std::process::id()));
    let result = std::fs::copy(src, &tmp)
        .map_err(io_err(src))
        .and_then(|_| std::fs::rename(&tmp, &dest).map_err(io_err(&dest)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` as a blob (temp file + rename) unless it is there with the right size.
fn put_bytes(blobs: &Path, digest: &Digest, bytes: &[u8]) -> Result<(), RemoteCacheError> {
    let dest = blobs.join(digest.hex());
    if std::fs::read(&dest).is_ok_and(|b| b == bytes) {
        return Ok(());
    }
    let mut tmp = tempfile::NamedTempFile::new_in(blobs).map_err(io_err(blobs))?;
    tmp.write_all(bytes).map_err(io_err(&dest))?;
    tmp.persist(&dest).map_err(|e| RemoteCacheError::Io {
        path: dest.clone(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes the cache into the OCI layout `dir` under `tag`, keeping its other entries.
fn write_local(
    dir: &Path,
    tag: &str,
    enc: &EncodedCache,
    store: &ContentStore,
    rewrite: &HashSet<Digest>,
    note: &(dyn Fn(String) + Sync),
) -> Result<(), RemoteCacheError> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for layer in &enc.layers {
        let dest = blobs.join(layer.digest.hex());
        let present = std::fs::metadata(&dest).is_ok_and(|m| m.len() == layer.size);
        // Digest-named blobs are immutable: one of the right size is kept, unless this
        // build found it corrupt.
        if !present || rewrite.contains(&layer.digest) {
            put_file(&blobs, &layer.digest, &store.blob_path(&layer.digest))?;
        }
        note(format!("writing layer {} done", layer.digest));
    }
    put_bytes(&blobs, &enc.config.digest, &enc.config_bytes)?;
    note(format!("writing config {} done", enc.config.digest));
    put_bytes(&blobs, &enc.manifest.digest, &enc.manifest_bytes)?;
    note(format!(
        "writing cache manifest {} done",
        enc.manifest.digest
    ));

    let layout = dir.join("oci-layout");
    if !layout.is_file() {
        std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err(&layout))?;
    }
    // Other tags' entries stay; an unreadable index.json is replaced.
    let index_path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = std::fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
        .map(|i| i.manifests)
        .unwrap_or_default();
    manifests.retain(|d| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .is_none_or(|n| n != tag)
    });
    let mut entry = enc.manifest.clone();
    entry.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), tag.to_string())]));
    manifests.push(entry);
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&index)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(&bytes).map_err(io_err(&index_path))?;
    tmp.persist(&index_path).map_err(|e| RemoteCacheError::Io {
        path: index_path.clone(),
        source: e.error,
    })?;
    Ok(())
}

/// A repository of `target`'s registry (not `target`'s own) the blob came from.
fn mount_source(store: &ContentStore, digest: &Digest, target: &ImageRef) -> Option<String> {
    store.origins(digest).into_iter().find_map(|origin| {
        let (registry, repository) = origin.split_once('/')?;
        (registry == target.registry && repository != target.repository)
            .then(|| repository.to_string())
    })
}

/// Pushes the layers (a few at a time; those the repository has are skipped, those from
/// another repository of the registry mounted), the config and then the manifest.
async fn push(
    image: &ImageRef,
    enc: &EncodedCache,
    store: &ContentStore,
    client: &RegistryClient,
    lease: &Lease,
    note: &(dyn Fn(String) + Sync),
) -> Result<(), RemoteCacheError> {
    futures_util::stream::iter(&enc.layers)
        .map(|l| async move {
            let path = store.blob_path(&l.digest);
            match mount_source(store, &l.digest, image) {
                Some(from) => client.push_blob_mount(image, l, &path, &from).await,
                None => client.push_blob(image, l, &path).await,
            }?;
            note(format!("writing layer {} done", l.digest));
            Ok::<(), RemoteCacheError>(())
        })
        .buffer_unordered(CONCURRENT_UPLOADS)
        .try_collect::<Vec<()>>()
        .await?;
    let digest = store.write_bytes(&enc.config_bytes)?;
    if !lease.hold(&[Held::Blob(&digest)])? {
        store.write_bytes(&enc.config_bytes)?;
    }
    client
        .push_blob(image, &enc.config, &store.blob_path(&digest))
        .await?;
    note(format!("writing config {} done", enc.config.digest));
    let pushed = client
        .push_manifest(image, OCI_MANIFEST, &enc.manifest_bytes)
        .await?;
    note(format!("writing cache manifest {pushed} done"));
    Ok(())
}
