//! COPY and mkdir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kiln_ir::{
    Chown, ContextEntry, ContextFiles, CopyAction, FileAction, FileOp, FileSource, MkdirAction,
    WorkerError,
};

use crate::fixture::Fixture;

/// A context dir with a.txt, b.txt, dir/x, dir/sub/y, ignored.txt (not listed), link -> a.txt.
fn context() -> (tempfile::TempDir, FileSource) {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::write(r.join("a.txt"), "A").unwrap();
    std::fs::write(r.join("b.txt"), "B").unwrap();
    std::fs::create_dir_all(r.join("dir/sub")).unwrap();
    std::fs::write(r.join("dir/x"), "X").unwrap();
    std::fs::write(r.join("dir/sub/y"), "Y").unwrap();
    std::fs::set_permissions(r.join("dir/x"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::fs::write(r.join("ignored.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("a.txt", r.join("link")).unwrap();
    std::os::unix::fs::symlink("x", r.join("dir/inner-link")).unwrap();
    let mut entries: Vec<ContextEntry> = [
        "a.txt",
        "b.txt",
        "dir",
        "dir/inner-link",
        "dir/sub",
        "dir/sub/y",
        "dir/x",
        "link",
    ]
    .iter()
    .map(|p| ContextEntry {
        path: p.to_string(),
        is_dir: r.join(p).is_dir() && !r.join(p).is_symlink(),
    })
    .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let files = ContextFiles {
        root: r.to_path_buf(),
        entries,
    };
    (dir, FileSource::Context(Arc::new(files)))
}

fn copy(sources: &[&str], dest: &str) -> CopyAction {
    CopyAction {
        source_input: 1,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
        chown: None,
        chmod: None,
        ..Default::default()
    }
}

fn op(actions: Vec<CopyAction>) -> FileOp {
    FileOp {
        actions: actions.into_iter().map(FileAction::Copy).collect(),
    }
}

#[test]
fn copy_files_dirs_wildcards_and_slashes() {
    let fx = Fixture::new();
    let (_ctx, src) = context();
    let layer = fx
        .file(
            &fx.base,
            op(vec![
                copy(&["a.txt"], "/dst/a-renamed"),
                copy(&["dir"], "/d"),
                copy(&["*.txt"], "/w/"),
                copy(&["b.txt"], "/newdir/"),
                copy(&["link"], "/followed"),
            ]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    let keys: Vec<&str> = e.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "d",
            "d/inner-link",
            "d/sub",
            "d/sub/y",
            "d/x",
            "dst",
            "dst/a-renamed",
            "followed",
            "newdir",
            "newdir/b.txt",
            "w",
            "w/a.txt",
            "w/b.txt"
        ]
    );
    assert_eq!(e["dst/a-renamed"].data, b"A");
    assert_eq!((e["dst/a-renamed"].uid, e["dst/a-renamed"].gid), (0, 0));
    assert_eq!(e["d/x"].mode & 0o7777, 0o751);
    assert_eq!(
        e["d/inner-link"].link.as_deref(),
        Some("x"),
        "nested symlinks stay symlinks"
    );
    assert_eq!(
        e["followed"].data, b"A",
        "a top-level symlink source is followed"
    );
    assert_eq!(e["newdir"].mode & 0o7777, 0o755);

    // Several sources need a directory destination.
    let err = fx
        .file(
            &fx.base,
            op(vec![copy(&["a.txt", "b.txt"], "/nodir")]),
            std::slice::from_ref(&src),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("must be a directory and end with a /"),
        "{err}"
    );
    let err = fx
        .file(
            &fx.base,
            op(vec![copy(&["*.txt"], "/nodir")]),
            std::slice::from_ref(&src),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("must be a directory and end with a /"),
        "{err}"
    );
}

#[test]
fn missing_and_ignored_sources_are_not_found() {
    let fx = Fixture::new();
    let (_ctx, src) = context();
    for missing in ["missing", "ignored.txt", "nomatch*"] {
        let err = fx
            .file(
                &fx.base,
                op(vec![copy(&[missing], "/x/")]),
                std::slice::from_ref(&src),
            )
            .unwrap_err();
        let WorkerError::NotFound(msg) = &err else {
            panic!("{missing}: {err:?}")
        };
        assert_eq!(
            msg,
            &format!("failed to compute cache key: \"/{missing}\": not found")
        );
    }
    // An empty wildcard is fine next to a source that exists.
    assert!(fx
        .file(
            &fx.base,
            op(vec![copy(&["a.txt", "nomatch*"], "/x/")]),
            std::slice::from_ref(&src)
        )
        .is_ok());
}

#[test]
fn chown_and_chmod() {
    let fx = Fixture::new();
    let (_ctx, src) = context();
    let mut by_name = copy(&["dir"], "/owned");
    by_name.chown = Some(Chown {
        user: "app".into(),
        group: None,
    });
    let mut numeric = copy(&["a.txt"], "/num/a");
    numeric.chown = Some(Chown {
        user: "10".into(),
        group: Some("11".into()),
    });
    let mut group_name = copy(&["a.txt"], "/grp");
    group_name.chown = Some(Chown {
        user: "4242".into(),
        group: Some("staff".into()),
    });
    let mut modes = copy(&["dir"], "/modes/");
    modes.chmod = Some(0o600);
    let layer = fx
        .file(
            &fx.base,
            op(vec![by_name, numeric, group_name, modes]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    for p in ["owned", "owned/x", "owned/sub", "owned/sub/y"] {
        assert_eq!((e[p].uid, e[p].gid), (1000, 1000), "{p}");
    }
    assert_eq!((e["num/a"].uid, e["num/a"].gid), (10, 11));
    assert_eq!(
        (e["num"].uid, e["num"].gid),
        (10, 11),
        "created parent gets the chown owner"
    );
    assert_eq!((e["grp"].uid, e["grp"].gid), (4242, 50));
    assert_eq!(e["modes/x"].mode & 0o7777, 0o600);
    assert_eq!(e["modes/sub"].mode & 0o7777, 0o600);
    let mut unknown = copy(&["a.txt"], "/u");
    unknown.chown = Some(Chown {
        user: "ghost".into(),
        group: None,
    });
    let err = fx
        .file(&fx.base, op(vec![unknown]), std::slice::from_ref(&src))
        .unwrap_err();
    assert!(
        err.to_string().contains("unable to find user ghost"),
        "{err}"
    );
}

#[test]
fn copy_from_layers_keeps_owner_and_follows_symlinks_inside() {
    let fx = Fixture::new();
    let stage = fx
        .run_op(&fx.base, &Fixture::op(&["sh", "-c", "mkdir -p /out/lib && echo data > /out/lib/f && chown 1000:50 /out/lib/f && ln -s /out/lib /abs && ln -f /out/lib/f /out/lib/hard"]))
        .0
        .unwrap()
        .unwrap();
    let stage_fs = FileSource::Layers(fx.with(&stage));
    let layer = fx
        .file(
            &fx.base,
            op(vec![copy(&["/abs/f"], "/copied"), copy(&["out"], "/tree/")]),
            &[stage_fs],
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    assert_eq!(e["copied"].data, b"data\n");
    assert_eq!((e["copied"].uid, e["copied"].gid), (1000, 50));
    assert_eq!(e["tree/lib/f"].data, b"data\n");
    let hard = &e["tree/lib/hard"];
    assert!(
        hard.kind == tar::EntryType::Link || hard.data == b"data\n",
        "{hard:?}"
    );
    // COPY from the empty filesystem: nothing there.
    let err = fx
        .file(
            &fx.base,
            op(vec![copy(&["x"], "/y")]),
            &[FileSource::Layers(vec![])],
        )
        .unwrap_err();
    assert!(matches!(err, WorkerError::NotFound(_)), "{err:?}");
}

#[test]
fn symlinked_destination_stays_inside_the_rootfs() {
    let fx = Fixture::new();
    let (_ctx, src) = context();
    let esc = fx
        .run_op(&fx.base, &Fixture::op(&["ln", "-s", "/", "/esc"]))
        .0
        .unwrap()
        .unwrap();
    let name = format!("kiln-escape-{}", std::process::id());
    let layer = fx
        .file(
            &fx.with(&esc),
            op(vec![copy(&["a.txt"], &format!("/esc/tmp/{name}"))]),
            &[src],
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    assert_eq!(e[&format!("tmp/{name}")].data, b"A");
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "COPY wrote to the host"
    );
}

#[test]
fn mkdir_creates_parents_with_owner_and_mode() {
    let fx = Fixture::new();
    let op = FileOp {
        actions: vec![FileAction::Mkdir(MkdirAction {
            path: "/app/data".into(),
            mode: 0o755,
            chown: Some(Chown {
                user: "app".into(),
                group: None,
            }),
        })],
    };
    let layer = fx.file(&fx.base, op.clone(), &[]).unwrap().unwrap();
    let e = fx.entries(&layer);
    assert_eq!(
        (e["app/data"].uid, e["app/data"].mode & 0o7777),
        (1000, 0o755)
    );
    // Existing directories are left alone: no change, no layer.
    let again = fx
        .file(
            &fx.with(&layer),
            FileOp {
                actions: vec![FileAction::Mkdir(MkdirAction {
                    path: "/tmp".into(),
                    mode: 0o700,
                    chown: None,
                })],
            },
            &[],
        )
        .unwrap();
    assert_eq!(again, None);
}
