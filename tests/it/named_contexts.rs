//! `--build-context NAME=VALUE` (4.5): local named contexts for `COPY --from`, `FROM` and
//! `RUN --mount=from=`, each with its own `.dockerignore`; `docker-image://` contexts in place
//! of an image name; a stage replaced by a context; cache keys; flag and directory errors.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_testsupport::{EntryKind, Image, LayerEntry};

use crate::common::{Fixture, Outcome};

/// Write `files` (path, content, mode) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str, u32)]) {
    for (rel, content, mode) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// A named context directory next to the fixture's context (outside it).
fn named_dir(f: &Fixture<'_>, name: &str, files: &[(&str, &str, u32)]) -> PathBuf {
    let dir = f.out(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_tree(&dir, files);
    dir
}

/// Build to an OCI dir `name` with `args`; the image.
fn build_image(f: &Fixture<'_>, name: &str, args: &[&str]) -> (Image, Outcome) {
    let dir = f.out(name);
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let mut all = vec!["-o", dest.as_str()];
    all.extend_from_slice(args);
    let out = f.build(&all);
    out.ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    image
        .check_diff_ids()
        .expect("diff_ids, layers and history");
    (image, out)
}

/// Regular files under `prefix/` in the image: path → entry.
fn files_under(image: &Image, prefix: &str) -> BTreeMap<String, LayerEntry> {
    image
        .entries()
        .expect("read layers")
        .into_iter()
        .filter(|e| e.kind == EntryKind::File && e.path.starts_with(prefix))
        .map(|e| (e.path.clone(), e))
        .collect()
}

fn names(m: &BTreeMap<String, LayerEntry>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// 4.5: `COPY --from=NAME` reads the named directory through its own `.dockerignore`; the
/// main context's `.dockerignore` applies to the main context only. Modes and root
/// ownership are as for the main context; a relative path is relative to the current dir.
#[test]
fn copy_from_a_local_context_applies_its_own_dockerignore() {
    let f = Fixture::empty();
    f.write(".dockerignore", "secret.txt\n*.md\n")
        .write("secret.txt", "main secret")
        .write("keep.txt", "main keep")
        .write(
            "Dockerfile",
            "FROM scratch\nCOPY --from=docs / /docs/\nCOPY . /main/\n",
        );
    named_dir(
        &f,
        "docs",
        &[
            (".dockerignore", "*.log\nsub/private\n", 0o644),
            ("run.sh", "#!/bin/sh\necho hi\n", 0o755),
            ("sub/b.txt", "b", 0o600),
            ("sub/private/x", "x", 0o644),
            ("secret.txt", "docs secret", 0o644),
            ("notes.md", "notes", 0o644),
            ("skip.log", "log", 0o644),
        ],
    );
    // `out/docs` relative to the fixture's temp dir, run from there.
    let tmp = f.root().parent().unwrap().to_path_buf();
    let dest = format!("type=oci,dest={},tar=false", f.out("img").display());
    let out = run_in(
        &tmp,
        &[
            "build",
            "--progress=plain",
            "--root",
            &f.root().display().to_string(),
            "--build-context",
            "docs=out/docs",
            "-o",
            &dest,
            &f.ctx().display().to_string(),
        ],
    );
    out.ok();
    let image = Image::from_oci_dir(&f.out("img")).unwrap();
    image.check_diff_ids().unwrap();
    let docs = files_under(&image, "docs/");
    assert_eq!(
        names(&docs),
        vec![
            "docs/.dockerignore",
            "docs/notes.md",
            "docs/run.sh",
            "docs/secret.txt",
            "docs/sub/b.txt"
        ],
        "named context files"
    );
    assert_eq!(docs["docs/run.sh"].mode, 0o755);
    assert_eq!(docs["docs/sub/b.txt"].mode, 0o600);
    assert_eq!(docs["docs/secret.txt"].content, b"docs secret");
    for e in docs.values() {
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path);
    }
    let main = files_under(&image, "main/");
    assert_eq!(
        names(&main),
        vec!["main/.dockerignore", "main/Dockerfile", "main/keep.txt"],
        "the main context keeps its own rules"
    );
    out.shows("[context docs] load from client");
}

/// Run the kiln binary in `cwd`.
fn run_in(cwd: &Path, args: &[&str]) -> Outcome {
    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    Outcome {
        args: args.iter().map(|a| a.to_string()).collect(),
        output,
    }
}

/// `FROM NAME` of a local context is its files with `FROM scratch`'s config (its layer has a
/// history entry); `RUN --mount=from=NAME` binds it; a later stage copies from the first.
#[test]
fn from_and_run_mount_of_local_contexts() {
    let f = Fixture::empty();
    f.write("extra.txt", "extra").write(
        "Dockerfile",
        "FROM base AS b\nCOPY extra.txt /extra.txt\n\
         FROM @BASE@\n\
         RUN --mount=from=src,target=/src cat /src/in.txt /src/sub/deep.txt > /out.txt\n\
         COPY --from=b / /fromb/\n",
    );
    let base = named_dir(
        &f,
        "base",
        &[
            ("etc/motd", "hello from base", 0o644),
            (".dockerignore", "ignored\n", 0o644),
            ("ignored", "no", 0o644),
        ],
    );
    let src = named_dir(
        &f,
        "src",
        &[("in.txt", "in;", 0o644), ("sub/deep.txt", "deep", 0o644)],
    );
    let ctx_args = [
        "--build-context".to_string(),
        format!("base={}", base.display()),
        "--build-context".to_string(),
        format!("src={}", src.display()),
    ];
    let ctx_args: Vec<&str> = ctx_args.iter().map(String::as_str).collect();
    let (image, _) = build_image(&f, "all", &ctx_args);
    assert_eq!(
        image.file("out.txt").unwrap().as_deref(),
        Some(&b"in;deep"[..])
    );
    let fromb = files_under(&image, "fromb/");
    assert_eq!(
        names(&fromb),
        vec!["fromb/.dockerignore", "fromb/etc/motd", "fromb/extra.txt"]
    );

    // The stage `b` alone: the context's layer, then the COPY's.
    let mut args = ctx_args.clone();
    args.extend(["--target", "b"]);
    let (b, _) = build_image(&f, "b", &args);
    assert_eq!(b.layers.len(), 2);
    assert_eq!(
        b.file("etc/motd").unwrap().as_deref(),
        Some(&b"hello from base"[..])
    );
    assert_eq!(b.file("ignored").unwrap(), None);
    assert_eq!(b.cfg("WorkingDir"), "/");
    assert_eq!(
        b.cfg("Env"),
        &serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    let history = b.config["history"].as_array().unwrap();
    assert_eq!(history[0]["created_by"], "local source for base");
    assert_eq!(
        history[1]["created_by"],
        "COPY extra.txt /extra.txt # buildkit"
    );
}

/// `--build-context NAME=docker-image://REF` stands for the image `NAME` in `FROM` and
/// `COPY --from`, which would not resolve otherwise; a stage named like a context is
/// replaced by it, its instructions not run.
#[test]
fn image_contexts_and_replaced_stages() {
    let f = Fixture::empty();
    let base = f.bases.oci.clone();
    f.write(
        "Dockerfile",
        "FROM nosuchimage\nRUN cat /etc/group > /g\n\
         COPY --from=docker.io/library/alsonothere:latest /etc/passwd /p\n",
    );
    let a = format!("nosuchimage=docker-image://{base}");
    let b = format!("alsonothere=docker-image://{base}");
    let (image, _) = build_image(&f, "img", &["--build-context", &a, "--build-context", &b]);
    assert_eq!(
        image.file("g").unwrap().as_deref(),
        Some(&b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"[..])
    );
    assert!(image.file("p").unwrap().is_some());
    assert_eq!(
        image.cfg("Cmd"),
        &serde_json::json!(["sh"]),
        "the image's config"
    );

    // A stage named like a context is that context.
    f.write(
        "Dockerfile",
        "FROM nosuchimage AS gen\nRUN exit 3\n\
         FROM @BASE@\nCOPY --from=gen /out.txt /gen.txt\n",
    );
    let gen = named_dir(&f, "gen", &[("out.txt", "generated", 0o644)]);
    let g = format!("gen={}", gen.display());
    let (image, out) = build_image(&f, "gen-image", &["--build-context", &g]);
    assert_eq!(
        image.file("gen.txt").unwrap().as_deref(),
        Some(&b"generated"[..])
    );
    assert!(!out.text().contains("exit 3"), "{}", out.text());
}

/// A COPY from a named context is keyed on what it reads: editing an ignored file keeps the
/// cache, editing a copied one re-runs the COPY and what follows.
#[test]
fn named_context_cache_keys_follow_its_content() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nCOPY --from=docs / /docs/\nRUN head -c16 /dev/urandom > /r\n",
    );
    let docs = named_dir(
        &f,
        "docs",
        &[
            (".dockerignore", "scratch.tmp\n", 0o644),
            ("a.txt", "a1", 0o644),
            ("scratch.tmp", "t1", 0o644),
        ],
    );
    let arg = format!("docs={}", docs.display());
    let r = |name: &str| {
        let (image, out) = build_image(&f, name, &["--build-context", &arg]);
        (image.file("r").unwrap().unwrap(), image, out)
    };
    let (r1, _, _) = r("one");
    write_tree(&docs, &[("scratch.tmp", "t2", 0o644)]);
    let (r2, _, out) = r("two");
    assert_eq!(
        r1,
        r2,
        "an ignored file invalidated the COPY\n{}",
        out.text()
    );
    write_tree(&docs, &[("a.txt", "a2", 0o644)]);
    let (r3, image, _) = r("three");
    assert_ne!(r2, r3, "an edited file did not re-run the COPY");
    assert_eq!(
        image.file("docs/a.txt").unwrap().as_deref(),
        Some(&b"a2"[..])
    );
}

/// A context no needed step reads is never walked (its invalid `.dockerignore` is not
/// read); a used one is.
#[test]
fn unused_contexts_are_not_walked() {
    let f = Fixture::empty();
    let bad = named_dir(
        &f,
        "bad",
        &[(".dockerignore", "!\n", 0o644), ("f", "f", 0o644)],
    );
    let arg = format!("bad={}", bad.display());
    f.write(
        "Dockerfile",
        "FROM scratch AS other\nCOPY --from=bad f /f\nFROM scratch\nCOPY Dockerfile /\n",
    );
    f.build(&["--build-context", &arg]).ok();
    f.build(&["--build-context", &arg, "--target", "other"])
        .fails_with(1)
        .shows("illegal exclusion pattern");
}

/// Flag errors are usage errors (exit 2); a missing or non-directory path fails the build
/// (exit 1) with buildx's words, before anything runs.
#[test]
fn build_context_errors() {
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM scratch\nCOPY --from=docs f /f\n");
    for (arg, says) in [
        ("docs", "expected NAME=VALUE"),
        ("=./x", "empty name"),
        ("Docs=./x", "invalid context name"),
        ("docs=https://example.com/x.tar", "not supported"),
        ("docs=git@github.com:o/r.git", "not supported"),
        ("docs=oci-layout:///tmp/layout", "not supported"),
    ] {
        f.build(&["--build-context", arg])
            .fails_with(2)
            .error_line_names(&[says]);
    }
    let missing = f.out("missing");
    f.build(&["--build-context", &format!("docs={}", missing.display())])
        .fails_with(1)
        .error_line_names(&[
            "failed to get build context docs",
            "no such file or directory",
        ]);
    let file = f.out("file");
    std::fs::write(&file, "x").unwrap();
    f.build(&["--build-context", &format!("docs={}", file.display())])
        .fails_with(1)
        .error_line_names(&["not a directory"]);
    // A file the named context lacks.
    let empty = named_dir(&f, "empty", &[]);
    f.build(&["--build-context", &format!("docs={}", empty.display())])
        .fails_with(1)
        .shows("not found");
}

/// A stage the target does not need (as a replaced stage usually is) is not taken for the
/// parent of a target whose base is the graph's first node: the history matches the layers.
#[test]
fn an_unneeded_stage_is_not_taken_for_the_parent() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@ AS unused\nRUN exit 1\nFROM @BASE@\nRUN echo hi > /hi\n",
    );
    let (image, _) = build_image(&f, "img", &[]);
    assert_eq!(image.file("hi").unwrap().as_deref(), Some(&b"hi\n"[..]));
    assert_eq!(image.layers.len(), 2);
}
