//! Real fetches: an HTTP server on loopback (std::net) and `git daemon` on loopback serving a
//! repository made here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kiln_ir::{GitSource, HttpSource};
use kiln_testsupport::{make_git_repo, GitDaemon, HttpServer};

use super::{fetch_git, fetch_http};

/// Serves `files` (path → body, Last-Modified) on 127.0.0.1 until the process ends.
fn http_server(files: HashMap<String, (Vec<u8>, Option<String>)>) -> u16 {
    HttpServer::start(Arc::new(Mutex::new(files))).unwrap().port
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn http_download_has_name_mode_mtime_and_checked_digest() {
    let body = b"hello archive".to_vec();
    let mut files = HashMap::new();
    files.insert(
        "/dl/file.tgz".to_string(),
        (
            body.clone(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT".to_string()),
        ),
    );
    files.insert("/plain".to_string(), (b"p".to_vec(), None));
    let port = http_server(files);
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let url = format!("http://127.0.0.1:{port}/dl/file.tgz");
    let src = HttpSource {
        url: url.clone(),
        checksum: None,
        filename: "file.tgz".into(),
    };
    let f = fetch_http(tmp.path(), 0, rt.handle(), &src).unwrap();
    assert_eq!(f.files.entries.len(), 1);
    assert_eq!(f.files.entries[0].path, "file.tgz");
    let file = f.files.root.join("file.tgz");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.mtime(), 784111777);
    assert_eq!(std::fs::read(&file).unwrap(), body);
    // Same content again: same identity, same directory.
    let again = fetch_http(tmp.path(), 1, rt.handle(), &src).unwrap();
    assert_eq!(again.digest, f.digest);
    assert_eq!(again.files.root, f.files.root);

    let good = kiln_oci::Digest::of(&body).to_string();
    let ok = HttpSource {
        checksum: Some(good.clone()),
        ..src.clone()
    };
    fetch_http(tmp.path(), 2, rt.handle(), &ok).unwrap();
    let bad_sum = format!("sha256:{}", "0".repeat(64));
    let bad = HttpSource {
        checksum: Some(bad_sum.clone()),
        ..src.clone()
    };
    let err = fetch_http(tmp.path(), 3, rt.handle(), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("digest mismatch {bad_sum}: {good}")),
        "{err}"
    );

    let plain = HttpSource {
        url: format!("http://127.0.0.1:{port}/plain"),
        checksum: None,
        filename: "plain".into(),
    };
    let f = fetch_http(tmp.path(), 4, rt.handle(), &plain).unwrap();
    assert_eq!(
        std::fs::metadata(f.files.root.join("plain"))
            .unwrap()
            .mtime(),
        0
    );
    let missing = HttpSource {
        url: format!("http://127.0.0.1:{port}/nope"),
        ..plain
    };
    let err = fetch_http(tmp.path(), 5, rt.handle(), &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid response status 404"), "{err}");
    // No temp dir is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn git_checkout_of_refs_subdirs_and_checksums() {
    let base = tempfile::tempdir().unwrap();
    let (c1, c2) = make_git_repo(base.path()).unwrap();
    let daemon = GitDaemon::start(base.path()).unwrap();
    let dl = tempfile::tempdir().unwrap();
    let remote = format!("{}/repo.git", daemon.url);
    let src = |reference: Option<&str>, subdir: &str| GitSource {
        remote: remote.clone(),
        reference: reference.map(str::to_string),
        subdir: subdir.to_string(),
        keep_git_dir: false,
        checksum: None,
    };
    let head = fetch_git(dl.path(), 0, &src(None, "")).unwrap();
    let paths: Vec<&str> = head.files.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "sub", "sub/b.txt", "sub/run.sh"]);
    let root = &head.files.root;
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "two");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&root.join("sub/run.sh")), 0o755);
    assert_eq!(mode(&root.join("a.txt")), 0o644);
    assert_eq!(
        std::fs::metadata(root.join("a.txt")).unwrap().mtime(),
        1600000000
    );

    let tag = fetch_git(dl.path(), 1, &src(Some("v1"), "")).unwrap();
    assert_eq!(
        std::fs::read_to_string(tag.files.root.join("a.txt")).unwrap(),
        "one"
    );
    let tag = fetch_git(dl.path(), 2, &src(Some("refs/tags/v1"), "")).unwrap();
    assert_eq!(
        std::fs::read_to_string(tag.files.root.join("a.txt")).unwrap(),
        "one"
    );
    let commit = fetch_git(dl.path(), 3, &src(Some(&c1), "")).unwrap();
    assert_eq!(
        std::fs::read_to_string(commit.files.root.join("a.txt")).unwrap(),
        "one"
    );

    let sub = fetch_git(dl.path(), 4, &src(Some("main"), "sub")).unwrap();
    let paths: Vec<&str> = sub.files.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["b.txt", "run.sh"]);

    let keep = GitSource {
        keep_git_dir: true,
        ..src(None, "")
    };
    let keep = fetch_git(dl.path(), 5, &keep).unwrap();
    assert!(keep.files.entries.iter().any(|e| e.path == ".git/HEAD"));
    assert_ne!(keep.digest, head.digest);

    let ok = GitSource {
        checksum: Some(c2.clone()),
        ..src(None, "")
    };
    fetch_git(dl.path(), 6, &ok).unwrap();
    let bad = GitSource {
        checksum: Some(c1.clone()),
        ..src(None, "")
    };
    let err = fetch_git(dl.path(), 7, &bad).unwrap_err().to_string();
    assert!(
        err.contains(&format!("expected checksum to match {c1}, got {c2}")),
        "{err}"
    );
    let err = fetch_git(dl.path(), 8, &src(Some("nope"), ""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}
