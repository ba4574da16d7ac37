//! `apply_layer`: layers applied bottom first onto one plain tree, with whiteouts and opaque
//! directories deleting what lower layers put there (a `type=local` output).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use kiln_oci::layer::apply_layer;

type R = Result<(), Box<dyn std::error::Error>>;

enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str, u32),
    Link(&'a str, &'a str),
}

/// A gzip layer blob of `entries`, written to `path`.
fn layer(path: &Path, entries: &[E<'_>]) -> R {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..])?;
            }
            E::File(p, body, uid) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o640);
                h.set_uid(u64::from(*uid));
                h.set_gid(u64::from(*uid));
                h.set_size(body.len() as u64);
                b.append_data(&mut h, p, body.as_bytes())?;
            }
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target)?;
            }
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &b.into_inner()?)?;
    fs::write(path, gz.finish()?)?;
    Ok(())
}

fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_dir() {
                stack.push(p);
                out.push(format!("{rel}/"));
            } else if ft.is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else {
                out.push(format!("{rel} = {}", fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn whiteouts_and_opaque_dirs_delete_lower_content() -> R {
    let tmp = tempfile::tempdir()?;
    let (l1, l2, l3) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("l3"),
    );
    layer(
        &l1,
        &[
            E::Dir("etc/"),
            E::File("etc/keep", "k", 0),
            E::File("etc/gone", "g", 0),
            E::Dir("var/"),
            E::Dir("var/cache/"),
            E::File("var/cache/old", "o", 0),
            E::Dir("tree/"),
            E::File("tree/a", "a", 0),
            E::Link("link", "etc/keep"),
        ],
    )?;
    layer(
        &l2,
        &[
            E::File("etc/.wh.gone", "", 0),
            E::Dir("var/cache/"),
            // The layer's own file comes before the marker: it must survive it.
            E::File("var/cache/new", "n", 1000),
            E::File("var/cache/.wh..wh..opq", "", 0),
            E::File(".wh.tree", "", 0),
            E::File(".wh.not-there", "", 0),
            E::File("missing-dir/.wh.x", "", 0),
            E::File("etc/keep", "k2", 0),
        ],
    )?;
    // A file where a directory was, and a directory where a file was.
    layer(
        &l3,
        &[E::File("var/cache", "now a file", 0), E::Dir("link/")],
    )?;
    let dest = tmp.path().join("rootfs");
    fs::create_dir(&dest)?;
    for l in [&l1, &l2] {
        apply_layer(l, "application/vnd.oci.image.layer.v1.tar+gzip", &dest)?;
    }
    assert_eq!(
        listing(&dest),
        [
            "etc/",
            "etc/keep = k2",
            "link -> etc/keep",
            "var/",
            "var/cache/",
            "var/cache/new = n",
        ]
    );
    let new = fs::metadata(dest.join("var/cache/new"))?;
    assert_eq!((new.uid(), new.mode() & 0o7777), (1000, 0o640));
    assert!(
        !dest.join("missing-dir").exists(),
        "a whiteout creates nothing"
    );
    apply_layer(&l3, "", &dest)?;
    assert_eq!(
        listing(&dest),
        [
            "etc/",
            "etc/keep = k2",
            "link/",
            "var/",
            "var/cache = now a file",
        ]
    );
    assert_eq!(
        fs::metadata(dest.join("link"))?.permissions().mode() & 0o777,
        0o755
    );
    Ok(())
}

/// `extract_tar`: a plain tar (a build context), where `.wh.` names are ordinary files.
#[test]
fn extract_tar_keeps_whiteout_names_as_files() -> R {
    let tmp = tempfile::tempdir()?;
    let t = tmp.path().join("ctx.tgz");
    layer(
        &t,
        &[
            E::Dir("d/"),
            E::File("d/.wh.x", "literal", 0),
            E::File("d/.wh..wh..opq", "also", 0),
        ],
    )?;
    let dest = tmp.path().join("ctx");
    fs::create_dir(&dest)?;
    kiln_oci::layer::extract_tar(&t, &dest)?;
    assert_eq!(
        listing(&dest),
        ["d/", "d/.wh..wh..opq = also", "d/.wh.x = literal"]
    );
    Ok(())
}
