//! COPY/ADD flags end to end: symbolic --chmod, --exclude, --parents, --link (cached across
//! a changed parent), ADD of a local archive, WORKDIR owned by the current USER; each read
//! from the built image's layers.

use std::io::Write;

use kiln_testsupport::{EntryKind, Image};

use crate::common::{top_entry as entry, Fixture};

fn paths_under(image: &Image, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = image
        .entries()
        .expect("layers")
        .into_iter()
        .filter(|e| e.path.starts_with(prefix))
        .map(|e| e.path)
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn copy_flags_shape_the_layers() {
    let f = Fixture::empty();
    f.write("app/main.go", "m")
        .write("app/main_test.go", "t")
        .write("app/run.sh", "#!/bin/sh\n")
        .write("src/a/b/c.txt", "c")
        .write("src/a/d.md", "d")
        .write(
            "Dockerfile",
            "FROM @BASE@\n\
             COPY --chmod=u=rw,g=r,o= app/main.go /chmod/\n\
             COPY --chmod=a+X app/ /chmodx/\n\
             COPY --exclude=*_test.go app /excl/\n\
             COPY --parents src/./a/**/*.txt /par/\n\
             USER nobody\n\
             WORKDIR /home/work\n",
        );
    std::fs::set_permissions(
        f.ctx().join("app/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o744),
    )
    .expect("chmod");
    let (image, _) = f.build_oci("flags", &[]);
    let mode = |p: &str| entry(&image, p).map(|e| e.mode);
    assert_eq!(mode("chmod/main.go"), Some(0o640));
    assert_eq!(mode("chmodx/run.sh"), Some(0o755));
    assert_eq!(mode("chmodx/main.go"), Some(0o644));
    assert_eq!(
        paths_under(&image, "excl/"),
        ["excl/main.go", "excl/run.sh"]
    );
    assert_eq!(
        paths_under(&image, "par/"),
        ["par/a", "par/a/b", "par/a/b/c.txt"]
    );
    let wd = entry(&image, "home/work").expect("WORKDIR created");
    assert_eq!(wd.kind, EntryKind::Dir);
    assert_eq!(
        (wd.uid, wd.gid),
        (65534, 65534),
        "WORKDIR owned by USER nobody"
    );
}

#[test]
fn copy_link_is_cached_across_a_changed_parent() {
    let f = Fixture::empty();
    f.write("f.txt", "F").write(
        "Dockerfile",
        "FROM @BASE@\nARG V=1\nRUN echo $V > /v\nCOPY --link f.txt /dst/\n",
    );
    let (first, _) = f.build_oci("one", &[]);
    assert_eq!(first.file("dst/f.txt").expect("read"), Some(b"F".to_vec()));
    let dir = f.out("two");
    let out = f.build(&[
        "--build-arg",
        "V=2",
        "-o",
        &format!("type=oci,dest={},tar=false", dir.display()),
    ]);
    out.ok();
    let second = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(second.file("v").expect("read"), Some(b"2\n".to_vec()));
    assert_eq!(
        first.layers.last(),
        second.layers.last(),
        "the --link layer does not depend on the parent"
    );
    assert!(
        out.progress().iter().any(|(_, l)| l == "CACHED"),
        "COPY --link was not reused\n{}",
        out.text()
    );
}

#[test]
fn add_extracts_local_archives_unless_unpack_false() {
    let f = Fixture::empty();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("pkg/file").expect("path");
    h.set_size(4);
    h.set_mode(0o600);
    h.set_cksum();
    b.append(&h, &b"data"[..]).expect("append");
    let tar = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gz");
    std::fs::write(f.ctx().join("a.tar.gz"), gz.finish().expect("gz")).expect("write");
    f.write(
        "Dockerfile",
        "FROM @BASE@\n\
         ADD a.tar.gz /x\n\
         ADD --unpack=false a.tar.gz /kept/\n\
         COPY a.tar.gz /copied/\n",
    );
    let (image, _) = f.build_oci("add", &[]);
    let e = entry(&image, "x/pkg/file").expect("extracted");
    assert_eq!((e.content.as_slice(), e.mode), (&b"data"[..], 0o600));
    assert!(entry(&image, "kept/a.tar.gz").is_some_and(|e| e.kind == EntryKind::File));
    assert!(entry(&image, "copied/a.tar.gz").is_some());
    assert!(entry(&image, "copied/pkg/file").is_none());
}
