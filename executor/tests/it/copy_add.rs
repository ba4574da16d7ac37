//! ADD of local archives: tar, gzip, bzip2, xz and zstd extracted into the destination,
//! `--unpack=false`, non-archives copied as they are, chown, hardlinks, and hostile paths
//! kept inside the rootfs.

use std::io::Write;

use kiln_ir::{Chown, CopyAction};

use crate::copy_flags::{context_of, cp, op};
use crate::fixture::Fixture;

/// A tar with `entries` (name, kind, data/link target); names are written raw so hostile
/// paths (`../x`) survive.
fn tar_raw(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o750 } else { 0o640 });
        h.set_uid(12);
        h.set_gid(34);
        h.set_mtime(1_600_000_000);
        let body: &[u8] = if kind.is_symlink() || kind.is_hard_link() {
            h.set_link_name(std::str::from_utf8(data).unwrap()).unwrap();
            &[]
        } else {
            data
        };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

fn simple_tar() -> Vec<u8> {
    use tar::EntryType as T;
    tar_raw(&[
        ("top/", T::Directory, b""),
        ("top/f", T::Regular, b"F"),
        ("top/hard", T::Link, b"top/f"),
        ("top/sym", T::Symlink, b"f"),
    ])
}

#[test]
fn archives_of_every_compression_are_extracted() {
    let fx = Fixture::new();
    let plain = simple_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    let bz = bz.finish().unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut notar = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    notar.write_all(b"just text").unwrap();
    let notar = notar.finish().unwrap();
    let (ctx, _) = context_of(&[("placeholder", "")]);
    for (name, data) in [
        ("a.tar", &plain),
        ("a.tar.gz", &gz),
        ("a.tbz", &bz),
        ("a.txz", &xz),
        ("a.tar.zst", &zst),
        ("text.gz", &notar),
    ] {
        std::fs::write(ctx.path().join(name), data).unwrap();
    }
    let src = crate::copy_flags::listed(ctx.path());
    let add = |s: &str, dest: &str| CopyAction {
        unpack: true,
        ..cp(&[s], dest)
    };
    let layer = fx
        .file(
            &fx.base,
            op(vec![
                add("a.tar", "/plain"),
                add("a.tar.gz", "/gz/"),
                add("a.tbz", "/bz/implied/parent/"),
                add("a.txz", "/xz/"),
                add("a.tar.zst", "/zst/"),
                add("text.gz", "/t/"),
                cp(&["a.tar.gz"], "/kept/"),
                CopyAction {
                    chown: Some(Chown {
                        user: "100".into(),
                        group: Some("200".into()),
                    }),
                    ..add("a.tar", "/owned/")
                },
            ]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    for d in ["plain", "gz", "bz/implied/parent", "xz", "zst"] {
        assert_eq!(e[&format!("{d}/top/f")].data, b"F", "{d}");
        assert_eq!(e[&format!("{d}/top/f")].mode & 0o7777, 0o640, "{d}");
        assert_eq!(
            (e[&format!("{d}/top/f")].uid, e[&format!("{d}/top/f")].gid),
            (12, 34),
            "{d}: archive owners kept"
        );
        assert_eq!(e[&format!("{d}/top")].mode & 0o7777, 0o750, "{d}");
        assert_eq!(e[&format!("{d}/top/sym")].link.as_deref(), Some("f"), "{d}");
        let pair = [&e[&format!("{d}/top/f")], &e[&format!("{d}/top/hard")]];
        assert_eq!(
            pair.iter()
                .filter(|x| x.kind == tar::EntryType::Link)
                .count(),
            1,
            "{d}: hardlink preserved"
        );
    }
    assert_eq!(
        e["t/text.gz"].data, notar,
        "a compressed non-tar is copied as is"
    );
    assert_eq!(
        e["kept/a.tar.gz"].data, gz,
        "COPY (unpack off) never extracts"
    );
    assert_eq!((e["owned/top/f"].uid, e["owned/top/f"].gid), (100, 200));
    assert_eq!((e["owned"].uid, e["owned"].gid), (100, 200));
}

#[test]
fn hostile_archive_paths_stay_inside_the_rootfs() {
    use tar::EntryType as T;
    let fx = Fixture::new();
    let evil = tar_raw(&[
        ("../../../../escape-dotdot", T::Regular, b"1"),
        ("/abs-file", T::Regular, b"2"),
        ("lnk", T::Symlink, b"/"),
        ("lnk/tmp/through-link", T::Regular, b"3"),
        ("dup", T::Regular, b"first"),
        ("dup", T::Regular, b"second"),
    ]);
    let (ctx, _) = context_of(&[]);
    std::fs::write(ctx.path().join("evil.tar"), &evil).unwrap();
    let src = crate::copy_flags::listed(ctx.path());
    // The parent has /var/run -> /run (absolute): extraction goes through it inside the root.
    let parent = fx
        .run_op(
            &fx.base,
            &Fixture::op(&["sh", "-c", "mkdir -p /run /var && ln -s /run /var/run"]),
        )
        .0
        .unwrap()
        .unwrap();
    let add = CopyAction {
        unpack: true,
        ..cp(&["evil.tar"], "/var/run/x/")
    };
    let layer = fx
        .file(&fx.with(&parent), op(vec![add]), std::slice::from_ref(&src))
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    assert_eq!(e["run/x/escape-dotdot"].data, b"1");
    assert_eq!(e["run/x/abs-file"].data, b"2");
    assert_eq!(e["run/x/dup"].data, b"second");
    assert_eq!(
        e["tmp/through-link"].data, b"3",
        "the symlink resolves to the rootfs's /"
    );
    assert!(!std::path::Path::new("/tmp/through-link").exists());
    assert!(!std::path::Path::new("/escape-dotdot").exists());
    // Device nodes are refused with a clear error.
    let dev = tar_raw(&[("null", T::Char, b"")]);
    std::fs::write(ctx.path().join("dev.tar"), &dev).unwrap();
    let src = crate::copy_flags::listed(ctx.path());
    let err = fx
        .file(
            &fx.base,
            op(vec![CopyAction {
                unpack: true,
                ..cp(&["dev.tar"], "/d/")
            }]),
            std::slice::from_ref(&src),
        )
        .unwrap_err();
    assert!(err.to_string().contains("unsupported type"), "{err}");
}
