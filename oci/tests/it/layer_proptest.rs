//! Property: for random small trees, upper → layer → unpack gives the same tree.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use kiln_oci::layer::{unpack_layer, write_layer_from_upper, Compression};
use kiln_oci::ContentStore;
use proptest::prelude::*;

use crate::fs_snapshot::snapshot;

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    HardlinkToPrevious,
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "long-name-with.dots_and-dashes", "ünï"])
        .prop_map(str::to_string)
}

fn entry() -> impl Strategy<Value = (Vec<String>, Kind, u32, i64)> {
    let kind = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000).prop_map(Kind::File),
        Just(Kind::Dir),
        "[a-z/.]{1,20}".prop_map(Kind::Symlink),
        Just(Kind::HardlinkToPrevious),
    ];
    (
        prop::collection::vec(name(), 1..4),
        kind,
        prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o4711, 0o1777]),
        0i64..2_000_000_000,
    )
}

fn build(root: &Path, entries: &[(Vec<String>, Kind, u32, i64)]) {
    let mut last_file: Option<std::path::PathBuf> = None;
    let mut made = Vec::new();
    for (comps, kind, mode, mtime) in entries {
        let path = comps.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let Some(parent) = path.parent() else {
            continue;
        };
        if fs::create_dir_all(parent).is_err() || fs::symlink_metadata(&path).is_ok() {
            continue; // a file in the way, or already there
        }
        let ok = match kind {
            Kind::File(data) => fs::write(&path, data).is_ok(),
            Kind::Dir => fs::create_dir(&path).is_ok(),
            Kind::Symlink(t) => symlink(t, &path).is_ok(),
            Kind::HardlinkToPrevious => match &last_file {
                Some(f) => fs::hard_link(f, &path).is_ok(),
                None => false,
            },
        };
        if !ok {
            continue;
        }
        if matches!(kind, Kind::File(_)) {
            last_file = Some(path.clone());
        }
        if !matches!(kind, Kind::Symlink(_)) {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(*mode));
        }
        made.push((path, *mtime));
    }
    // Every path (created parents too) gets an mtime, deepest first.
    let all: Vec<_> = snapshot(root).into_keys().rev().collect();
    for (i, p) in all.iter().enumerate() {
        let t = made
            .iter()
            .find(|(m, _)| m == &root.join(p))
            .map_or(1_000 + i as i64, |x| x.1);
        let ft = filetime::FileTime::from_unix_time(t, 0);
        filetime::set_symlink_file_times(root.join(p), ft, ft).expect("utimes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_round_trip(
        entries in prop::collection::vec(entry(), 1..12),
        zstd in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (upper, dest) = (tmp.path().join("u"), tmp.path().join("d"));
        fs::create_dir(&upper).expect("mkdir");
        fs::create_dir(&dest).expect("mkdir");
        build(&upper, &entries);
        let store = ContentStore::open(&tmp.path().join("content")).expect("store");
        let c = if zstd { Compression::Zstd } else { Compression::Gzip };
        // Entries that could not be made (a hardlink with no earlier file) may leave nothing:
        // then the only right answer is "no layer".
        let Some(layer) = write_layer_from_upper(&upper, &store, c).expect("write") else {
            let left = fs::read_dir(&upper).expect("read upper").count();
            prop_assert_eq!(left, 0, "a non-empty upper dir gave no layer");
            return Ok(());
        };
        let diff_id = unpack_layer(&store.blob_path(&layer.blob), &layer.media_type, &dest).expect("unpack");
        prop_assert_eq!(&diff_id, &layer.diff_id);
        prop_assert_eq!(snapshot(&dest), snapshot(&upper));
        let again = write_layer_from_upper(&dest, &store, c).expect("write").expect("non-empty");
        prop_assert_eq!(again, layer);
    }
}
