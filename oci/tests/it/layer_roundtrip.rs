//! Upper dir → layer → unpacked dir: the same tree, for every compression; deterministic.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use kiln_oci::layer::{
    unpack_layer, write_layer, write_layer_from_upper, Compression, LayerOptions,
};
use kiln_oci::{media_types, ContentStore, Digest};

use crate::fs_snapshot::snapshot;

type R = Result<(), Box<dyn std::error::Error>>;

const COMPRESSIONS: [Compression; 3] = [Compression::Gzip, Compression::Zstd, Compression::None];

fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // A test helper: nix's mknod would do too, but libc keeps the dev-dependency list short.
    nix::sys::stat::mknod(
        c.as_c_str(),
        nix::sys::stat::SFlag::from_bits_truncate(kind),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
        nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
}

/// Every kind of entry an overlay upper dir can hold.
fn build_upper(u: &Path) {
    fs::create_dir_all(u.join("a/deep/er")).expect("mkdir");
    fs::write(u.join("a/file"), b"hello layer\n").expect("write");
    fs::set_permissions(u.join("a/file"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    chown(&u.join("a/file"), 1000, 1001);
    fs::set_permissions(u.join("a/file"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::hard_link(u.join("a/file"), u.join("a/hard")).expect("link");
    fs::hard_link(u.join("a/file"), u.join("zz-hard")).expect("link");
    symlink("/etc/passwd", u.join("a/abs-link")).expect("symlink");
    symlink("../a/file", u.join("a/rel-link")).expect("symlink");
    chown(&u.join("a/rel-link"), 7, 8);
    fs::write(u.join("a/deep/er/big"), vec![0xabu8; 3 << 20]).expect("write");
    fs::write(u.join("empty"), b"").expect("write");
    mknod(&u.join("fifo"), libc::S_IFIFO, 0, 0);
    mknod(&u.join("null"), libc::S_IFCHR, 1, 3);
    mknod(&u.join("blk"), libc::S_IFBLK, 8, 1);
    // Overlay whiteout of a lower file.
    mknod(&u.join("removed"), libc::S_IFCHR, 0, 0);
    // Opaque directory with new content.
    fs::create_dir(u.join("opaque")).expect("mkdir");
    fs::write(u.join("opaque/new"), b"new").expect("write");
    xattr::set(u.join("opaque"), "trusted.overlay.opaque", b"y").expect("xattr");
    // A user-xattr opaque dir (rootless overlay) is opaque too.
    fs::create_dir(u.join("uopaque")).expect("mkdir");
    xattr::set(u.join("uopaque"), "user.overlay.opaque", b"y").expect("xattr");
    // Xattrs that travel.
    xattr::set(u.join("a/file"), "user.note", b"kept").expect("xattr");
    xattr::set(
        u.join("a/file"),
        "security.capability",
        &[
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    )
    .expect("xattr");
    // An overlay bookkeeping xattr that must not.
    xattr::set(u.join("a"), "trusted.overlay.origin", b"junk").expect("xattr");
    // Names past 100 bytes (GNU long name and long link).
    let long = "n".repeat(120);
    fs::create_dir(u.join(&long)).expect("mkdir");
    fs::write(u.join(&long).join(&long), b"long").expect("write");
    symlink(format!("/{long}/{long}/{long}"), u.join("long-target")).expect("symlink");
    fs::set_permissions(u.join("a/deep"), fs::Permissions::from_mode(0o700)).expect("chmod");
    chown(&u.join("a/deep"), 5, 6);
    // mtimes last, children before parents.
    let paths: Vec<_> = snapshot(u).into_keys().rev().collect();
    for (i, p) in paths.iter().enumerate() {
        let t = filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 1000, 0);
        filetime::set_symlink_file_times(u.join(p), t, t).expect("utimes");
    }
}

/// The tree an unpacked layer should be: the upper minus overlay-private xattrs (the
/// opaque ones become `trusted.overlay.opaque=y`).
fn expected(u: &Path) -> std::collections::BTreeMap<std::path::PathBuf, crate::fs_snapshot::Node> {
    let mut s = snapshot(u);
    for node in s.values_mut() {
        if node.kind == "char" && node.payload == "0:0" {
            // A whiteout's permission bits carry no meaning; unpacked ones are 0.
            node.mode = 0;
        }
        let opaque = node.xattrs.remove("user.overlay.opaque").is_some()
            | node.xattrs.remove("trusted.overlay.opaque").is_some();
        node.xattrs
            .retain(|k, _| !k.starts_with("trusted.overlay."));
        if opaque {
            node.xattrs
                .insert("trusted.overlay.opaque".into(), b"y".to_vec());
        }
    }
    s
}

#[test]
fn round_trip_every_entry_kind_and_compression() -> R {
    let tmp = tempfile::tempdir()?;
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper)?;
    build_upper(&upper);
    let store = ContentStore::open(&tmp.path().join("content"))?;
    for c in COMPRESSIONS {
        let layer = write_layer_from_upper(&upper, &store, c)?.ok_or("layer expected")?;
        assert_eq!(layer.media_type, c.media_type());
        assert_eq!(store.size(&layer.blob)?, layer.size);
        let dest = tmp.path().join(format!("dest-{c:?}"));
        fs::create_dir(&dest)?;
        let diff_id = unpack_layer(&store.blob_path(&layer.blob), &layer.media_type, &dest)?;
        assert_eq!(diff_id, layer.diff_id, "{c:?}");
        let (want, got) = (expected(&upper), snapshot(&dest));
        for (p, n) in &want {
            assert_eq!(got.get(p), Some(n), "{c:?}: {}", p.display());
        }
        assert_eq!(
            want.len(),
            got.len(),
            "{c:?}: extra paths {:?}",
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .collect::<Vec<_>>()
        );
        // Sniffing (unknown media type) gives the same result.
        let dest2 = tmp.path().join(format!("dest2-{c:?}"));
        fs::create_dir(&dest2)?;
        assert_eq!(
            unpack_layer(&store.blob_path(&layer.blob), "", &dest2)?,
            layer.diff_id
        );
    }
    Ok(())
}

#[test]
fn tar_entries_follow_the_oci_changeset_format() -> R {
    let tmp = tempfile::tempdir()?;
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper)?;
    build_upper(&upper);
    let store = ContentStore::open(&tmp.path().join("content"))?;
    let layer = write_layer_from_upper(&upper, &store, Compression::None)?.ok_or("layer")?;
    assert_eq!(layer.media_type, media_types::OCI_LAYER_TAR);
    assert_eq!(
        layer.diff_id, layer.blob,
        "an uncompressed layer's blob is its tar"
    );
    let mut ar = tar::Archive::new(store.open_blob(&layer.blob)?);
    let mut names = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let name = String::from_utf8(e.path_bytes().into_owned())?;
        let h = e.header();
        assert_eq!(h.username_bytes().unwrap_or_default(), b"", "{name}");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"", "{name}");
        if let Some(gnu) = h.as_gnu() {
            assert_eq!(gnu.atime().unwrap_or(0), 0, "{name}");
            assert_eq!(gnu.ctime().unwrap_or(0), 0, "{name}");
        }
        let kind = h.entry_type();
        assert_eq!(kind.is_dir(), name.ends_with('/'), "{name}");
        if name == "a/hard" || name == "zz-hard" {
            assert!(kind.is_hard_link(), "{name}");
            assert_eq!(e.link_name_bytes().as_deref(), Some(&b"a/file"[..]));
        }
        if name == "a/file" {
            let mut keys = Vec::new();
            for x in e.pax_extensions()?.ok_or("pax")? {
                keys.push(x?.key()?.to_string());
            }
            assert_eq!(
                keys,
                ["SCHILY.xattr.security.capability", "SCHILY.xattr.user.note"]
            );
        }
        if name == "a/" {
            assert!(
                e.pax_extensions()?.is_none(),
                "overlay xattrs must not be recorded"
            );
        }
        names.push(name);
    }
    for want in [
        ".wh.removed",
        "opaque/",
        "opaque/.wh..wh..opq",
        "uopaque/.wh..wh..opq",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "removed"));
    // Depth first, names sorted bytewise within each directory.
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or(usize::MAX);
    assert!(pos("a/") < pos("a/abs-link") && pos("a/abs-link") < pos("a/deep/"));
    assert!(pos("opaque/") + 1 == pos("opaque/.wh..wh..opq"));
    Ok(())
}

#[test]
fn same_tree_gives_same_digests() -> R {
    let tmp = tempfile::tempdir()?;
    let store = ContentStore::open(&tmp.path().join("content"))?;
    let (u1, u2) = (tmp.path().join("u1"), tmp.path().join("u2"));
    fs::create_dir(&u1)?;
    fs::create_dir(&u2)?;
    build_upper(&u1);
    build_upper(&u2);
    for c in COMPRESSIONS {
        let a = write_layer_from_upper(&u1, &store, c)?.ok_or("layer")?;
        let b = write_layer_from_upper(&u2, &store, c)?.ok_or("layer")?;
        let again = write_layer_from_upper(&u1, &store, c)?.ok_or("layer")?;
        assert_eq!(a, b, "{c:?}");
        assert_eq!(a, again, "{c:?}");
    }
    // The diff id does not depend on the compression.
    let g = write_layer_from_upper(&u1, &store, Compression::Gzip)?.ok_or("layer")?;
    let z = write_layer_from_upper(&u1, &store, Compression::Zstd)?.ok_or("layer")?;
    assert_eq!(g.diff_id, z.diff_id);
    assert_ne!(g.blob, z.blob);
    // gzip output is a plain gzip stream anyone can read back to the same tar.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(store.open_blob(&g.blob)?).read_to_end(&mut tar)?;
    assert_eq!(Digest::of(&tar), g.diff_id);
    Ok(())
}

#[test]
fn mtime_clamp_applies_source_date_epoch() -> R {
    let tmp = tempfile::tempdir()?;
    let store = ContentStore::open(&tmp.path().join("content"))?;
    let upper = tmp.path().join("u");
    fs::create_dir(&upper)?;
    fs::write(upper.join("f"), b"x")?;
    let opts = LayerOptions {
        compression: Compression::None,
        mtime_clamp: Some(86_400),
    };
    let layer = write_layer(&upper, &store, &opts)?.ok_or("layer")?;
    let mut ar = tar::Archive::new(store.open_blob(&layer.blob)?);
    for e in ar.entries()? {
        assert_eq!(e?.header().mtime()?, 86_400);
    }
    Ok(())
}

#[test]
fn empty_upper_is_no_layer() -> R {
    let tmp = tempfile::tempdir()?;
    let store = ContentStore::open(&tmp.path().join("content"))?;
    let upper = tmp.path().join("u");
    fs::create_dir(&upper)?;
    assert_eq!(
        write_layer_from_upper(&upper, &store, Compression::Gzip)?,
        None
    );
    Ok(())
}
