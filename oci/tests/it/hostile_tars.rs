//! Hostile layers (testdata/hostile-tars, made by generate.py there): each one gives a clear
//! error or a result confined to the destination; nothing outside it changes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kiln_oci::layer::{unpack_layer, LayerError};
use kiln_oci::Digest;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/hostile-tars")
}

enum Want {
    /// `LayerError::BadEntry` naming this entry, with this in the reason.
    Bad(&'static str, &'static str),
    /// Any error (malformed archive).
    AnyErr,
    /// Success; then this check on the destination.
    Ok(fn(&Path)),
}

fn cases() -> Vec<(&'static str, Want)> {
    use Want::*;
    vec![
        ("traversal.tar", Bad("../escape.txt", "`..`")),
        ("traversal-nested.tar", Bad("a/../../escape.txt", "`..`")),
        ("traversal-longname.tar", Bad("", "`..`")),
        (
            "absolute.tar",
            Ok(|d| {
                assert_eq!(
                    fs::read(d.join("kiln-hostile-absolute.txt"))
                        .ok()
                        .as_deref(),
                    Some(&b"contained\n"[..])
                );
            }),
        ),
        ("symlink-then-file.tar", Bad("etc/passwd", "symlink")),
        ("symlink-relative-escape.tar", Bad("a/pwned", "symlink")),
        ("symlink-dir-swap.tar", Bad("d/pwned", "symlink")),
        (
            "symlink-then-overwrite.tar",
            Ok(|d| {
                let m = fs::symlink_metadata(d.join("f")).expect("f");
                assert!(m.is_file());
                assert_eq!(
                    fs::read(d.join("f")).expect("read"),
                    b"replaced, not followed\n"
                );
            }),
        ),
        ("hardlink-outside.tar", Bad("h", "`..`")),
        ("hardlink-absolute.tar", Bad("h", "does not exist")),
        ("hardlink-through-symlink.tar", Bad("h", "symlink")),
        (
            "hardlink-to-symlink.tar",
            Ok(|d| {
                assert!(fs::symlink_metadata(d.join("s"))
                    .expect("s")
                    .file_type()
                    .is_symlink());
                assert_eq!(fs::read(d.join("h")).expect("h"), b"replaced\n");
            }),
        ),
        (
            "devices.tar",
            Ok(|d| {
                let null = fs::symlink_metadata(d.join("dev/null")).expect("null");
                assert!(null.file_type().is_char_device());
                assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
                assert_eq!(null.mode() & 0o7777, 0o666);
                assert!(fs::symlink_metadata(d.join("dev/sda"))
                    .expect("sda")
                    .file_type()
                    .is_block_device());
                assert!(fs::symlink_metadata(d.join("dev/fifo"))
                    .expect("fifo")
                    .file_type()
                    .is_fifo());
            }),
        ),
        (
            "duplicates.tar",
            Ok(|d| {
                assert_eq!(fs::read(d.join("f")).expect("f"), b"two\n");
                assert_eq!(fs::read(d.join("d/child")).expect("d/child"), b"child\n");
                assert_eq!(fs::read(d.join("x")).expect("x"), b"file last\n");
            }),
        ),
        ("whiteout-dot.tar", Bad(".wh..", "whiteout")),
        ("whiteout-dotdot.tar", Bad("a/.wh...", "whiteout")),
        ("empty-name.tar", Bad(".", "empty path")),
        (
            "many-entries.tar.gz",
            Ok(|d| {
                let n: usize = fs::read_dir(d)
                    .expect("dest")
                    .map(|e| fs::read_dir(e.expect("e").path()).expect("sub").count())
                    .sum();
                assert_eq!(n, 10_000);
                assert_eq!(fs::read(d.join("d099/f099")).expect("last"), b"9999\n");
            }),
        ),
        ("truncated.tar", AnyErr),
        ("garbage.tar", AnyErr),
    ]
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn hostile_tars_fail_clearly_or_stay_inside() {
    let passwd = fs::read("/etc/passwd").expect("/etc/passwd");
    let listed: Vec<String> = listing(&corpus())
        .into_iter()
        .filter(|n| n.contains(".tar"))
        .collect();
    let cases = cases();
    let named: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for file in &listed {
        assert!(
            named.contains(&file.as_str()),
            "{file} has no expectation in hostile_tars.rs"
        );
    }
    for (file, want) in cases {
        let base = tempfile::tempdir().expect("tempdir");
        let (dest, outside) = (base.path().join("dest"), base.path().join("outside"));
        fs::create_dir(&dest).expect("dest");
        fs::create_dir(&outside).expect("outside");
        fs::write(outside.join("secret"), b"secret\n").expect("secret");
        let result = unpack_layer(&corpus().join(file), "", &dest);
        match (&want, &result) {
            (Want::Bad(entry, why), Err(LayerError::BadEntry { entry: e, reason })) => {
                if !entry.is_empty() {
                    assert_eq!(e, entry, "{file}");
                }
                assert!(reason.contains(why), "{file}: {reason}");
            }
            (Want::AnyErr, Err(_)) => {}
            (Want::Ok(check), Ok(diff_id)) => {
                check(&dest);
                if file.ends_with(".tar") {
                    let bytes = fs::read(corpus().join(file)).expect("read");
                    assert_eq!(*diff_id, Digest::of(&bytes), "{file}");
                }
            }
            _ => panic!("{file}: unexpected result {result:?}"),
        }
        // Nothing escaped.
        assert_eq!(listing(base.path()), ["dest", "outside"], "{file}");
        assert_eq!(listing(&outside), ["secret"], "{file}");
        assert_eq!(
            fs::read(outside.join("secret")).expect("secret"),
            b"secret\n",
            "{file}"
        );
        assert!(!Path::new("/kiln-hostile-absolute.txt").exists(), "{file}");
        assert_eq!(
            fs::read("/etc/passwd").expect("/etc/passwd"),
            passwd,
            "{file}"
        );
    }
}
