//! A local cache directory written by [`export`] and read back by [`ImportedCache::load`]
//! into another store, with a corrupt blob detected.

use std::collections::HashSet;
use std::sync::Mutex;

use kiln_oci::media_types::OCI_LAYER_GZIP;
use kiln_oci::registry::{RegistryClient, RegistryOptions};
use kiln_oci::{ContentStore, Digest};

use super::*;
use crate::lease::Lease;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn local_directory_round_trip() -> TestResult {
    let rt = tokio::runtime::Runtime::new()?;
    let a = tempfile::tempdir()?;
    let store = ContentStore::open(&a.path().join("content"))?;
    let lease = Lease::acquire(a.path())?;
    let blob = store.write_bytes(b"pretend this is a gzip layer")?;
    let layer = CacheLayer {
        media_type: OCI_LAYER_GZIP.into(),
        digest: blob.clone(),
        size: 28,
        diff_id: Digest::of(b"tar"),
    };
    let records = vec![
        CacheEntry {
            key: "1".repeat(64),
            created: "2026-01-01T00:00:00.000000000Z".into(),
            layer: Some(layer.clone()),
        },
        CacheEntry {
            key: "2".repeat(64),
            created: "2026-01-01T00:00:01.000000000Z".into(),
            layer: None,
        },
    ];
    let client = RegistryClient::new(RegistryOptions::default());
    let dir = a.path().join("cache");
    let target = parse_cache_to(&format!("type=local,dest={}", dir.display()))?;
    let lines = Mutex::new(Vec::new());
    let note = |l: String| lines.lock().unwrap_or_else(|e| e.into_inner()).push(l);
    let digest = rt.block_on(export(
        &target,
        &records,
        &store,
        &client,
        &lease,
        &HashSet::new(),
        &note,
    ))?;
    let lines = lines.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        lines.contains(&format!("writing layer {blob} done")),
        "{lines:?}"
    );
    assert!(dir.join("oci-layout").is_file());
    // Exporting again under another tag keeps the first entry.
    let v2 = parse_cache_to(&format!("type=local,dest={},tag=v2", dir.display()))?;
    rt.block_on(export(
        &v2,
        &records[1..],
        &store,
        &client,
        &lease,
        &HashSet::new(),
        &|_| {},
    ))?;
    let index: kiln_oci::Index = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    assert_eq!(index.manifests.len(), 2);

    // Another machine: its own store.
    let b = tempfile::tempdir()?;
    let store_b = ContentStore::open(&b.path().join("content"))?;
    let import = parse_cache_from(&format!("type=local,src={}", dir.display()))?;
    let cache = rt.block_on(ImportedCache::load(&import, &client))?;
    assert_eq!(cache.manifest_digest(), &digest);
    assert_eq!(cache.len(), 2);
    let imports = CacheImports::new(
        vec![cache],
        store_b.clone(),
        client.clone(),
        rt.handle().clone(),
    );
    assert!(imports.offer(&"3".repeat(64), 0).is_none());
    let offer = imports.offer(&"1".repeat(64), 0).ok_or("no offer")?;
    assert_eq!(offer.entry, &records[0]);
    assert!(!store_b.has(&blob));
    imports.fetch(&offer, &layer)?;
    assert_eq!(store_b.read(&blob)?, b"pretend this is a gzip layer");

    // A corrupt blob (same size) is refused and never offered again.
    let store_c = ContentStore::open(&b.path().join("content-c"))?;
    std::fs::write(
        dir.join("blobs/sha256").join(blob.hex()),
        b"pretend this is a gzip laye!",
    )?;
    let cache = rt.block_on(ImportedCache::load(&import, &client))?;
    let imports = CacheImports::new(vec![cache], store_c.clone(), client, rt.handle().clone());
    let offer = imports.offer(&"1".repeat(64), 0).ok_or("no offer")?;
    let e = imports.fetch(&offer, &layer).err();
    assert!(
        matches!(e, Some(RemoteCacheError::DigestMismatch { .. })),
        "{e:?}"
    );
    assert!(!store_c.has(&blob));
    assert!(imports.offer(&"1".repeat(64), 0).is_none());
    assert!(imports.bad_blobs().contains(&blob));
    // The key without a layer is still offered.
    assert!(imports.offer(&"2".repeat(64), 0).is_some());
    Ok(())
}

#[test]
fn a_missing_tag_or_directory_is_an_error() -> TestResult {
    let rt = tokio::runtime::Runtime::new()?;
    let client = RegistryClient::new(RegistryOptions::default());
    let dir = tempfile::tempdir()?;
    let import = parse_cache_from(&format!("type=local,src={}", dir.path().display()))?;
    let e = rt.block_on(ImportedCache::load(&import, &client)).err();
    assert!(matches!(e, Some(RemoteCacheError::Io { .. })), "{e:?}");
    std::fs::write(
        dir.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )?;
    let e = rt.block_on(ImportedCache::load(&import, &client)).err();
    assert!(
        matches!(e, Some(RemoteCacheError::NoSuchTag { .. })),
        "{e:?}"
    );
    Ok(())
}
