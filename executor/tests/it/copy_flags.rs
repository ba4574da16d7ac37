//! COPY flags: symbolic --chmod, --exclude, --parents, --link (onto an empty rootfs), and
//! COPY edge cases (sockets, hardlinks, unicode names, symlinked destinations), read back
//! from the produced layer tars.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kiln_ir::{
    Chown, ContextEntry, ContextFiles, CopyAction, FileAction, FileOp, FileSource, MkdirAction,
};

use crate::fixture::{Entry, Fixture};

/// A context holding `files` (path → content; a trailing `/` makes a directory), every
/// entry listed.
pub(crate) fn context_of(files: &[(&str, &str)]) -> (tempfile::TempDir, FileSource) {
    let dir = tempfile::tempdir().unwrap();
    for (p, content) in files {
        let host = dir.path().join(p);
        if p.ends_with('/') {
            std::fs::create_dir_all(&host).unwrap();
        } else {
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::fs::write(&host, content).unwrap();
        }
    }
    let src = listed(dir.path());
    (dir, src)
}

/// Lists every entry under `root` as a context.
pub(crate) fn listed(root: &Path) -> FileSource {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<ContextEntry>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let p = rel.join(e.file_name());
            let is_dir = e.file_type().unwrap().is_dir();
            out.push(ContextEntry {
                path: p.to_string_lossy().into_owned(),
                is_dir,
            });
            if is_dir {
                walk(root, &p, out);
            }
        }
    }
    let mut entries = Vec::new();
    walk(root, Path::new(""), &mut entries);
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    FileSource::Context(Arc::new(ContextFiles {
        root: root.to_path_buf(),
        entries,
    }))
}

pub(crate) fn cp(sources: &[&str], dest: &str) -> CopyAction {
    CopyAction {
        source_input: 1,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.to_string(),
        ..Default::default()
    }
}

pub(crate) fn op(actions: Vec<CopyAction>) -> FileOp {
    FileOp {
        actions: actions.into_iter().map(FileAction::Copy).collect(),
    }
}

fn run(fx: &Fixture, actions: Vec<CopyAction>, src: &FileSource) -> BTreeMap<String, Entry> {
    let layer = fx
        .file(&fx.base, op(actions), std::slice::from_ref(src))
        .unwrap()
        .unwrap();
    fx.entries(&layer)
}

fn keys(e: &BTreeMap<String, Entry>, under: &str) -> Vec<String> {
    e.keys().filter(|k| k.starts_with(under)).cloned().collect()
}

#[test]
fn symbolic_chmod_is_applied_per_entry() {
    let fx = Fixture::new();
    let (ctx, src) = context_of(&[("d/exe", "x"), ("d/plain", "p"), ("d/sub/", "")]);
    let r = ctx.path();
    std::fs::set_permissions(r.join("d/exe"), PermissionsExt::from_mode(0o744)).unwrap();
    std::fs::set_permissions(r.join("d/plain"), PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::set_permissions(r.join("d/sub"), PermissionsExt::from_mode(0o700)).unwrap();
    let with = |spec: &str, dest: &str| CopyAction {
        chmod_symbolic: Some(spec.into()),
        ..cp(&["d"], dest)
    };
    let e = run(
        &fx,
        vec![
            with("a+X", "/x/"),
            with("go-w", "/w/"),
            with("u=rw,g=r,o=", "/eq/"),
            with("a+X", "/new/deep/"),
        ],
        &src,
    );
    let mode = |p: &str| e[p].mode & 0o7777;
    assert_eq!(mode("x/exe"), 0o755, "X adds x to a file with an x bit");
    assert_eq!(
        mode("x/plain"),
        0o666,
        "X leaves a file without x bits alone"
    );
    assert_eq!(mode("x/sub"), 0o711, "X adds x to directories");
    assert_eq!(mode("w/plain"), 0o644);
    assert_eq!(mode("w/exe"), 0o744);
    assert_eq!(mode("eq/exe"), 0o640);
    assert_eq!(mode("eq/sub"), 0o640);
    assert_eq!(mode("new"), 0o755, "implied parents: 0755 with a+X applied");
    let bad = CopyAction {
        chmod_symbolic: Some("64a".into()),
        ..cp(&["d"], "/bad/")
    };
    let err = fx
        .file(&fx.base, op(vec![bad]), std::slice::from_ref(&src))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"
    );
}

#[test]
fn exclude_patterns_drop_paths() {
    let fx = Fixture::new();
    let (_ctx, src) = context_of(&[
        ("app/main.go", "m"),
        ("app/main_test.go", "t"),
        ("app/vendor/lib.go", "l"),
        ("app/docs/readme.md", "r"),
        ("home1.txt", "1"),
        ("home2.md", "2"),
        ("keep.txt", "k"),
    ]);
    let ex = |sources: &[&str], dest: &str, pats: &[&str]| CopyAction {
        exclude: pats.iter().map(|s| s.to_string()).collect(),
        ..cp(sources, dest)
    };
    let e = run(
        &fx,
        vec![
            ex(&["app"], "/a/", &["*_test.go", "vendor"]),
            ex(&["hom*"], "/h/", &["*.txt"]),
            ex(&["."], "/all/", &["**/*.md", "app/vendor"]),
            ex(&["."], "/none/", &["*"]),
            ex(&["."], "/neg/", &["*.txt", "!keep.txt", "app"]),
        ],
        &src,
    );
    assert_eq!(keys(&e, "a/"), ["a/docs", "a/docs/readme.md", "a/main.go"]);
    assert_eq!(keys(&e, "h/"), ["h/home2.md"]);
    assert_eq!(
        keys(&e, "all/"),
        [
            "all/app",
            "all/app/docs",
            "all/app/main.go",
            "all/app/main_test.go",
            "all/home1.txt",
            "all/keep.txt"
        ]
    );
    assert!(
        e.contains_key("none"),
        "--exclude=* still creates the destination"
    );
    assert_eq!(keys(&e, "none/"), Vec::<String>::new());
    assert_eq!(keys(&e, "neg/"), ["neg/home2.md", "neg/keep.txt"]);
}

#[test]
fn parents_keep_source_directories() {
    let fx = Fixture::new();
    let (_ctx, src) = context_of(&[
        ("foo1/foo2/bar", "b"),
        ("foo1/foo2/baz.txt", "z"),
        ("x/y/a.txt", "a"),
        ("x/y/deep/b.txt", "b"),
        ("x/y/deep/c.md", "c"),
        ("top.txt", "t"),
    ]);
    let par = |sources: &[&str], dest: &str| CopyAction {
        parents: true,
        ..cp(sources, dest)
    };
    let e = run(
        &fx,
        vec![
            par(&["foo1/foo2/bar"], "/p/"),
            par(&["foo1/*/baz.txt", "top.txt"], "/w/"),
            par(&["x/./y/a.txt"], "/pivot/"),
            par(&["x/./**/*.txt"], "/star/"),
            par(&["./x/y/deep"], "/dir/"),
            par(&["nomatch*/*.txt"], "/empty/"),
        ],
        &src,
    );
    assert_eq!(e["p/foo1/foo2/bar"].data, b"b");
    assert_eq!(keys(&e, "p/"), ["p/foo1", "p/foo1/foo2", "p/foo1/foo2/bar"]);
    assert_eq!(
        keys(&e, "w/"),
        ["w/foo1", "w/foo1/foo2", "w/foo1/foo2/baz.txt", "w/top.txt"]
    );
    assert_eq!(keys(&e, "pivot/"), ["pivot/y", "pivot/y/a.txt"]);
    assert_eq!(
        keys(&e, "star/"),
        ["star/y", "star/y/a.txt", "star/y/deep", "star/y/deep/b.txt"]
    );
    assert_eq!(
        keys(&e, "dir/"),
        [
            "dir/x",
            "dir/x/y",
            "dir/x/y/deep",
            "dir/x/y/deep/b.txt",
            "dir/x/y/deep/c.md"
        ]
    );
    assert!(e.contains_key("empty"));
    let err = fx
        .file(
            &fx.base,
            op(vec![par(&["missing/file"], "/m/")]),
            std::slice::from_ref(&src),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("\"/missing/file\": not found"),
        "{err}"
    );
    // --exclude applies to --parents matches, relative to the pivot.
    let e = run(
        &fx,
        vec![CopyAction {
            exclude: vec!["y/deep".into()],
            ..par(&["x/./y"], "/ex/")
        }],
        &src,
    );
    assert_eq!(keys(&e, "ex/"), ["ex/y", "ex/y/a.txt"]);
}

#[test]
fn link_copies_onto_an_empty_rootfs() {
    let fx = Fixture::new();
    // The parent has /app as a symlink to /tmp: without --link COPY writes through it.
    let parent = fx
        .run_op(&fx.base, &Fixture::op(&["sh", "-c", "ln -s /tmp /app"]))
        .0
        .unwrap()
        .unwrap();
    let (_ctx, src) = context_of(&[("f", "F")]);
    let linked = CopyAction {
        link: true,
        ..cp(&["f"], "/app/")
    };
    // With --link the solver hands the worker an empty rootfs: the layer holds only the copy.
    let layer = fx
        .file(&[], op(vec![linked.clone()]), std::slice::from_ref(&src))
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    assert_eq!(keys(&e, ""), ["app", "app/f"]);
    assert_eq!(e["app"].kind, tar::EntryType::Directory);
    assert_eq!(e["app/f"].data, b"F");
    // Without --link the copy follows the parent's symlink.
    let layer = fx
        .file(
            &fx.with(&parent),
            op(vec![cp(&["f"], "/app/")]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    assert_eq!(keys(&fx.entries(&layer), ""), ["tmp", "tmp/f"]);
}

#[test]
fn sockets_hardlinks_unicode_and_symlinked_destinations() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir(r.join("d")).unwrap();
    std::fs::write(r.join("d/orig"), "H").unwrap();
    std::fs::hard_link(r.join("d/orig"), r.join("d/hard")).unwrap();
    std::fs::write(r.join("d/é 100%25.txt"), "U").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(r.join("d/sock")).unwrap();
    std::os::unix::fs::symlink("nowhere", r.join("d/dangling")).unwrap();
    let src = listed(r);
    let parent = fx
        .run_op(
            &fx.base,
            &Fixture::op(&["sh", "-c", "mkdir -p /real && ln -s real /via"]),
        )
        .0
        .unwrap()
        .unwrap();
    let layer = fx
        .file(
            &fx.with(&parent),
            op(vec![cp(&["d"], "/out/"), cp(&["d/orig"], "/via/")]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    assert_eq!(e["out/sock"].kind, tar::EntryType::Regular, "socket → file");
    assert_eq!(e["out/é 100%25.txt"].data, b"U");
    assert_eq!(e["out/dangling"].link.as_deref(), Some("nowhere"));
    let hard = [&e["out/hard"], &e["out/orig"]];
    let links: Vec<_> = hard
        .iter()
        .filter(|x| x.kind == tar::EntryType::Link)
        .collect();
    assert_eq!(links.len(), 1, "one of the pair is a hardlink to the other");
    assert_eq!(
        e["real/orig"].data, b"H",
        "symlinked dest dir writes into its target"
    );
    assert!(!e.contains_key("via/orig"));
}

#[test]
fn chown_name_only_uses_primary_group_and_existing_dirs_keep_owner() {
    let fx = Fixture::new();
    let (_ctx, src) = context_of(&[("f", "F")]);
    let parent = fx
        .run_op(
            &fx.base,
            &Fixture::op(&["sh", "-c", "mkdir /ex && chown 7:8 /ex"]),
        )
        .0
        .unwrap()
        .unwrap();
    let owned = |dest: &str| CopyAction {
        chown: Some(Chown {
            user: "app".into(),
            group: None,
        }),
        ..cp(&["f"], dest)
    };
    let layer = fx
        .file(
            &fx.with(&parent),
            op(vec![owned("/ex/"), owned("/made/here/")]),
            std::slice::from_ref(&src),
        )
        .unwrap()
        .unwrap();
    let e = fx.entries(&layer);
    let ids = |p: &str| (e[p].uid, e[p].gid);
    assert_eq!(ids("ex/f"), (1000, 1000));
    assert_eq!(ids("ex"), (7, 8), "an existing dir keeps its owner");
    assert_eq!(ids("made"), (1000, 1000));
    assert_eq!(ids("made/here/f"), (1000, 1000));
    // WORKDIR after USER app: created dirs belong to app, existing ones are left alone.
    let mk = FileOp {
        actions: vec![FileAction::Mkdir(MkdirAction {
            path: "/ex/w/x".into(),
            mode: 0o755,
            chown: Some(Chown {
                user: "app".into(),
                group: None,
            }),
        })],
    };
    let layer = fx.file(&fx.with(&parent), mk, &[]).unwrap().unwrap();
    let e = fx.entries(&layer);
    assert_eq!((e["ex/w"].uid, e["ex/w"].gid), (1000, 1000));
    assert_eq!((e["ex/w/x"].uid, e["ex/w/x"].gid), (1000, 1000));
}
