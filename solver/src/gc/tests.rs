//! Prune and du on hand-made stores.

use std::path::Path;

use kiln_ir::LayerRef;
use kiln_oci::Digest;

use super::*;
use crate::index::CacheRecord;
use crate::lease::Lease;

fn layer(tag: &str) -> LayerRef {
    LayerRef {
        diff_id: Digest::of(format!("diff-{tag}").as_bytes()),
        blob: Digest::of(format!("blob-{tag}").as_bytes()),
        size: 4,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    }
}

/// A blob (1000 bytes), its snapshot (500 bytes) and, when `record`, a record of it.
fn add_layer(root: &Path, index: &CacheIndex, tag: &str, record: bool) -> LayerRef {
    let l = layer(tag);
    let blobs = root.join("content/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(l.blob.hex()), vec![7u8; 1000]).unwrap();
    let snap = root.join("snapshots").join(&l.diff_id.hex()[..12]);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("f"), vec![1u8; 500]).unwrap();
    if record {
        index
            .put(
                &format!("key-{tag}"),
                &CacheRecord {
                    layer: Some(l.clone()),
                    created: "2026-01-01T00:00:00.000000000Z".into(),
                    preimage: "{}".into(),
                },
            )
            .unwrap();
    }
    l
}

fn exists(root: &Path, l: &LayerRef) -> (bool, bool) {
    (
        root.join("content/blobs/sha256")
            .join(l.blob.hex())
            .exists(),
        root.join("snapshots").join(&l.diff_id.hex()[..12]).exists(),
    )
}

#[test]
fn default_prune_keeps_records_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = CacheIndex::open(&root.join("index.sqlite")).unwrap();
    let kept = add_layer(root, &index, "a", true);
    let gone = add_layer(root, &index, "b", false);
    // A config blob nobody references, a dead process's run dir, trash.
    std::fs::write(
        root.join("content/blobs/sha256")
            .join(Digest::of(b"{}").hex()),
        b"{}",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("runs/999999999-0/upper")).unwrap();
    std::fs::create_dir_all(root.join("trash/999999999-0/x")).unwrap();

    let usage = du(root).unwrap();
    assert_eq!(usage.records, 1);
    let row = |c| usage.rows.iter().find(|r| r.category == c).unwrap();
    assert_eq!(
        row(Category::Layers).total,
        Amount {
            count: 2,
            size: 2000
        }
    );
    assert_eq!(
        row(Category::Layers).reclaimable,
        Amount {
            count: 1,
            size: 1000
        }
    );
    assert_eq!(row(Category::Configs).reclaimable.count, 1);
    assert_eq!(
        row(Category::Snapshots).reclaimable,
        Amount {
            count: 1,
            size: 500
        }
    );
    assert_eq!(row(Category::Runs).reclaimable.count, 1);

    let report = prune(root, &PruneOptions::default()).unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(report.freed, 1000 + 500 + 2);
    assert_eq!(exists(root, &kept), (true, true));
    assert_eq!(exists(root, &gone), (false, false));
    assert!(!root.join("runs/999999999-0").exists());
    assert_eq!(std::fs::read_dir(root.join("trash")).unwrap().count(), 0);
    assert_eq!(du(root).unwrap().reclaimable, 0);
}

#[test]
fn all_removes_records_but_not_what_a_live_lease_holds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = CacheIndex::open(&root.join("index.sqlite")).unwrap();
    let a = add_layer(root, &index, "a", true);
    let b = add_layer(root, &index, "b", true);
    // Backdate everything so the lease protects only what it lists.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let lease = Lease::acquire(root).unwrap();
    assert!(lease.hold(&[crate::lease::Held::Layer(&b)]).unwrap());
    let report = prune(
        root,
        &PruneOptions {
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(exists(root, &a), (false, false));
    assert_eq!(exists(root, &b), (true, true));
    drop(lease);
    prune(root, &PruneOptions::default()).unwrap();
    assert_eq!(exists(root, &b), (false, false));
}

#[test]
fn keep_storage_removes_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = CacheIndex::open(&root.join("index.sqlite")).unwrap();
    let old = add_layer(root, &index, "old", true);
    let new = add_layer(root, &index, "new", true);
    index.touch("key-new").unwrap();
    let total = du(root).unwrap().total;
    // Room for everything but one layer (1500 bytes with its snapshot).
    let report = prune(
        root,
        &PruneOptions {
            keep_storage: Some(total - 1500),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(exists(root, &old), (false, false));
    assert_eq!(exists(root, &new), (true, true));
    // A large limit removes nothing more; 0 removes every record.
    assert_eq!(
        prune(
            root,
            &PruneOptions {
                keep_storage: Some(u64::MAX),
                ..Default::default()
            }
        )
        .unwrap()
        .records,
        0
    );
    let report = prune(
        root,
        &PruneOptions {
            keep_storage: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(exists(root, &new), (false, false));
}

#[test]
fn until_keeps_recent_things() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let index = CacheIndex::open(&root.join("index.sqlite")).unwrap();
    let a = add_layer(root, &index, "a", true);
    let report = prune(
        root,
        &PruneOptions {
            all: true,
            until: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(report.freed, 0);
    assert_eq!(exists(root, &a), (true, true));
}

#[test]
fn missing_root_is_empty_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nope");
    assert_eq!(du(&root).unwrap().total, 0);
    assert_eq!(prune(&root, &PruneOptions::default()).unwrap().freed, 0);
    assert!(!root.exists());
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(du(&file), Err(GcError::NotADirectory(_))));
}
