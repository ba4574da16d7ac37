//! ADD of HTTP(S) URLs and git repositories end to end, against an HTTP server (std::net)
//! and `git daemon` started on loopback by each test; each read from the built layers.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kiln_testsupport::{make_git_repo, EntryKind, GitDaemon, HttpFiles, HttpServer, Image};

use crate::common::{top_entry as entry, Fixture};

fn has_under(image: &Image, prefix: &str) -> bool {
    image
        .entries()
        .expect("layers")
        .iter()
        .any(|e| e.path.starts_with(prefix))
}

fn targz(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o640);
    h.set_cksum();
    b.append(&h, data).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_url_downloads_with_name_mode_mtime_checksum_and_unpack() {
    let files: HttpFiles = Arc::default();
    let lm = Some("Sun, 06 Nov 1994 08:49:37 GMT".to_string());
    files.lock().unwrap().insert(
        "/dl/file.tgz".into(),
        (targz("pkg/file", b"data"), lm.clone()),
    );
    files
        .lock()
        .unwrap()
        .insert("/plain".into(), (b"plain v1".to_vec(), None));
    let port = HttpServer::start(files.clone()).unwrap().port;
    let u = format!("http://127.0.0.1:{port}");
    let good = kiln_oci::Digest::of(b"plain v1");
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!(
            "FROM @BASE@\n\
             ADD {u}/dl/file.tgz /dl/\n\
             ADD {u}/dl/file.tgz /named\n\
             ADD --chmod=644 --chown=1:2 {u}/dl/file.tgz /chm/\n\
             ADD --unpack=true {u}/dl/file.tgz /unp/\n\
             ADD --checksum={good} {u}/plain /sum/\n"
        ),
    );
    let image = f.build_oci("url", &[]).0;
    let e = entry(&image, "dl/file.tgz").expect("downloaded into the dir");
    assert_eq!(e.kind, EntryKind::File);
    assert_eq!((e.mode, e.uid, e.gid, e.mtime), (0o600, 0, 0, 784111777));
    assert_eq!(e.content, targz("pkg/file", b"data"));
    assert!(!has_under(&image, "dl/pkg"), "not unpacked by default");
    let e = entry(&image, "named").expect("downloaded as the dest name");
    assert_eq!(e.kind, EntryKind::File);
    let e = entry(&image, "chm/file.tgz").expect("chmod/chown");
    assert_eq!((e.mode, e.uid, e.gid), (0o644, 1, 2));
    let e = entry(&image, "unp/pkg/file").expect("--unpack=true extracts");
    assert_eq!(e.content, b"data");
    assert_eq!(entry(&image, "sum/plain").unwrap().content, b"plain v1");
    assert_eq!(entry(&image, "sum/plain").unwrap().mtime, 0);

    // New content at the same URL is fetched again (not a stale cache hit).
    let g = Fixture::empty();
    g.write("Dockerfile", &format!("FROM @BASE@\nADD {u}/plain /p/\n"));
    let (first, _) = g.build_oci("p1", &[]);
    files
        .lock()
        .unwrap()
        .insert("/plain".into(), (b"plain v2".to_vec(), None));
    let (second, _) = g.build_oci("p2", &[]);
    assert_eq!(entry(&first, "p/plain").unwrap().content, b"plain v1");
    assert_eq!(entry(&second, "p/plain").unwrap().content, b"plain v2");

    // A wrong checksum fails in BuildKit's words.
    let bad = format!("sha256:{}", "0".repeat(64));
    let h = Fixture::empty();
    h.write(
        "Dockerfile",
        &format!("FROM @BASE@\nADD --checksum={bad} {u}/plain /x/\n"),
    );
    let out = h.build(&[]);
    assert_ne!(out.code(), Some(0));
    let want = format!(
        "digest mismatch {bad}: {}",
        kiln_oci::Digest::of(b"plain v2")
    );
    assert!(out.text().contains(&want), "{}", out.text());
    // A missing URL fails with the status.
    let m = Fixture::empty();
    m.write("Dockerfile", &format!("FROM @BASE@\nADD {u}/nope /x/\n"));
    let out = m.build(&[]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.text().contains("invalid response status 404"),
        "{}",
        out.text()
    );
}

#[test]
fn add_git_checks_out_refs_subdirs_and_verifies_checksums() {
    let base = tempfile::tempdir().unwrap();
    let (c1, c2) = make_git_repo(base.path()).unwrap();
    let daemon = GitDaemon::start(base.path()).unwrap();
    let r = format!("{}/repo.git", daemon.url);
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!(
            "FROM @BASE@\n\
             ADD {r} /src\n\
             ADD {r}#v1 /v1/\n\
             ADD {r}#main:sub /sub\n\
             ADD {r}?tag=v1 /q/\n\
             ADD {r}?commit={c1}&subdir=/ /c/\n\
             ADD --keep-git-dir=true {r} /kept\n\
             ADD --chown=5:6 --checksum={c2} {r}#main:sub /sum/\n"
        ),
    );
    let image = f.build_oci("git", &[]).0;
    let a = entry(&image, "src/a.txt").expect("checked out");
    assert_eq!(a.content, b"two");
    assert_eq!((a.mode, a.uid, a.gid, a.mtime), (0o644, 0, 0, 1600000000));
    let run = entry(&image, "src/sub/run.sh").expect("subdir file");
    assert_eq!(run.mode, 0o755);
    assert!(!has_under(&image, "src/.git"), ".git removed by default");
    assert_eq!(entry(&image, "v1/a.txt").unwrap().content, b"one");
    assert!(!has_under(&image, "v1/sub"));
    assert_eq!(entry(&image, "sub/b.txt").unwrap().content, b"b");
    assert!(entry(&image, "sub/a.txt").is_none());
    assert_eq!(entry(&image, "q/a.txt").unwrap().content, b"one");
    assert_eq!(entry(&image, "c/a.txt").unwrap().content, b"one");
    assert!(entry(&image, "kept/.git/HEAD").is_some(), "--keep-git-dir");
    let s = entry(&image, "sum/run.sh").expect("checksum ok");
    assert_eq!((s.uid, s.gid), (5, 6));

    let g = Fixture::empty();
    g.write(
        "Dockerfile",
        &format!("FROM @BASE@\nADD --checksum={c1} {r} /x\n"),
    );
    let out = g.build(&[]);
    assert_ne!(out.code(), Some(0));
    let want = format!("expected checksum to match {c1}, got {c2}");
    assert!(out.text().contains(&want), "{}", out.text());
}

#[test]
fn add_remote_flag_errors() {
    let f = Fixture::empty();
    f.write("a", "a")
        .write("Dockerfile", "FROM @BASE@\nADD --checksum=sha256:00 a /x\n");
    let out = f.build(&[]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.text()
            .contains("checksum requires HTTP(S) or Git sources"),
        "{}",
        out.text()
    );
    let g = Fixture::empty();
    g.write(
        "Dockerfile",
        "FROM @BASE@\nADD http://127.0.0.1:1/a http://127.0.0.1:1/b /x\n",
    );
    let out = g.build(&[]);
    assert_ne!(out.code(), Some(0));
    assert!(
        out.text()
            .contains("When using ADD with more than one source file, the destination must be a directory and end with a /"),
        "{}",
        out.text()
    );
}

/// 5.8 / 5.9: `ADD --chmod` forms on a URL (755, 0413, `${mode}`), `--checksum` with sha256,
/// sha384 and sha512, and the errors for an unsupported algorithm or a missing prefix.
/// 5.12: the `?ref=`, `?branch=` and `?subdir=` query forms of a git source.
#[test]
fn add_url_chmod_forms_checksum_algorithms_and_git_queries() {
    use sha2::Digest as _;
    let body = b"payload".to_vec();
    let files: HttpFiles = Arc::default();
    files
        .lock()
        .unwrap()
        .insert("/p".into(), (body.clone(), None));
    let u = HttpServer::start(files).unwrap().url();
    let sha384 = format!("sha384:{}", hex::encode(sha2::Sha384::digest(&body)));
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(&body)));
    let base = tempfile::tempdir().unwrap();
    make_git_repo(base.path()).unwrap();
    let daemon = GitDaemon::start(base.path()).unwrap();
    let r = format!("{}/repo.git", daemon.url);
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!(
            "FROM @BASE@\nARG mode=640\n\
             ADD --chmod=755 {u}/p /m755\n\
             ADD --chmod=0413 {u}/p /m413\n\
             ADD --chmod=${{mode}} {u}/p /mvar\n\
             ADD --checksum={sha384} {u}/p /s384\n\
             ADD --checksum={sha512} {u}/p /s512\n\
             ADD {r}?ref=v1 /qref/\n\
             ADD {r}?branch=main&subdir=sub /qsub/\n"
        ),
    );
    let image = f.build_oci("forms", &[]).0;
    let mode = |p: &str| entry(&image, p).unwrap_or_else(|| panic!("{p}")).mode;
    assert_eq!(mode("m755"), 0o755);
    assert_eq!(mode("m413"), 0o413);
    assert_eq!(mode("mvar"), 0o640);
    assert_eq!(entry(&image, "s384").unwrap().content, body);
    assert_eq!(entry(&image, "s512").unwrap().content, body);
    assert_eq!(entry(&image, "qref/a.txt").unwrap().content, b"one");
    assert_eq!(entry(&image, "qsub/b.txt").unwrap().content, b"b");
    assert!(entry(&image, "qsub/a.txt").is_none());

    let fails = |checksum: &str, want: &str| {
        let g = Fixture::empty();
        g.write(
            "Dockerfile",
            &format!("FROM @BASE@\nADD --checksum={checksum} {u}/p /x\n"),
        );
        let out = g.build(&[]);
        assert_eq!(out.code(), Some(1), "{}", out.text());
        assert!(out.text().contains(want), "{checksum}: {}", out.text());
    };
    fails(
        &format!("md5:{}", "0".repeat(32)),
        "unsupported digest algorithm",
    );
    fails(&"0".repeat(64), "invalid checksum digest format");
    fails("sha256:abc", "invalid checksum digest format");
    let wrong512 = format!("sha512:{}", "0".repeat(128));
    fails(&wrong512, &format!("digest mismatch {wrong512}: {sha512}"));
}

/// A git URL as the build context (`kiln build git://…/repo.git#ref:subdir`, as buildx):
/// the Dockerfile and the files come from the checkout; the ref and subdir are honoured.
#[test]
fn git_url_as_the_build_context() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    std::fs::create_dir_all(work.join("app")).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    let bases = crate::common::shared();
    let base_image = format!("{}/busybox:latest", bases.registry.addr());
    std::fs::write(
        work.join("Dockerfile"),
        format!("FROM {base_image}\nCOPY top.txt /top.txt\n"),
    )
    .unwrap();
    std::fs::write(work.join("top.txt"), "v1").unwrap();
    std::fs::write(
        work.join("app/Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    std::fs::write(work.join("app/hello.txt"), "from the subdir").unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    std::fs::write(work.join("top.txt"), "v2").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    git(base.path(), &["clone", "-q", "--bare", "work", "repo.git"]);
    let daemon = GitDaemon::start(base.path()).unwrap();
    let url = format!("{}/repo.git", daemon.url);

    let f = Fixture::empty();
    let build_url = |context: &str, name: &str| {
        let dir = f.out(name);
        let out = crate::common::kiln(&[
            "build".into(),
            "--progress=plain".into(),
            "--root".into(),
            f.root().display().to_string(),
            "--explain".into(),
            "-o".into(),
            format!("type=oci,dest={},tar=false", dir.display()),
            context.to_string(),
        ]);
        out.ok();
        assert!(out.text().contains("load git source"), "{}", out.text());
        (Image::from_oci_dir(&dir).expect("read OCI dir"), out.text())
    };
    let (head, _) = build_url(&url, "head");
    assert_eq!(entry(&head, "top.txt").unwrap().content, b"v2");
    let (tag, log) = build_url(&format!("{url}#v1"), "tag");
    assert_eq!(entry(&tag, "top.txt").unwrap().content, b"v1");
    // --explain compares with the same step of the other commit (named by URL, not by the
    // checkout directory, which differs per commit).
    assert!(
        log.contains("explain: missed: `top.txt` in the context changed"),
        "{log}"
    );
    let (sub, _) = build_url(&format!("{url}#main:app"), "sub");
    assert_eq!(
        entry(&sub, "hello.txt").unwrap().content,
        b"from the subdir"
    );
    assert!(entry(&sub, "top.txt").is_none());

    let out = crate::common::kiln(&[
        "build".into(),
        "--root".into(),
        f.root().display().to_string(),
        format!("{url}#no-such-ref"),
    ]);
    out.fails_with(1);
    assert!(out.text().contains("no-such-ref"), "{}", out.text());
}
