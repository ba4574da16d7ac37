use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;

use super::*;

/// (patterns, path, excluded) in Docker's semantics (moby patternmatcher
/// `MatchesOrParentMatches`).
const TABLE: &[(&[&str], &str, bool)] = &[
    (&["foo"], "foo", true),
    (&["foo"], "foo/bar", true),
    (&["foo"], "bar/foo", false),
    (&["foo"], "foobar", false),
    (&["/foo"], "foo", true),
    (&["./foo/"], "foo/x", true),
    (&["foo/"], "foo", true),
    (&["foo/../bar"], "bar", true),
    (&["*.txt"], "a.txt", true),
    (&["*.txt"], "dir/a.txt", false),
    (&["**/*.txt"], "dir/a.txt", true),
    (&["**/*.txt"], "a.txt", true),
    (&["**/*.txt"], "a/b/c.txt", true),
    (&["*/foo"], "a/foo", true),
    (&["*/foo"], "a/b/foo", false),
    (&["?.md"], "a.md", true),
    (&["?.md"], "ab.md", false),
    (&["?.md"], "/.md", false),
    (&["[abc].go"], "b.go", true),
    (&["[abc].go"], "d.go", false),
    (&["[^abc].go"], "d.go", true),
    (&["[^abc].go"], "a.go", false),
    (&["[a-c]x"], "bx", true),
    (&["[a-c]x"], "dx", false),
    (&["\\*"], "*", true),
    (&["\\*"], "a", false),
    (&["a\\?b"], "a?b", true),
    (&["a\\?b"], "axb", false),
    (&["foo", "!foo/keep"], "foo/keep", false),
    (&["foo", "!foo/keep"], "foo/other", true),
    (&["!foo/keep", "foo"], "foo/keep", true),
    (&["*.md", "!README.md"], "README.md", false),
    (&["*.md", "!README.md"], "CHANGES.md", true),
    (&["*.md", "!README.md", "README*"], "README.md", true),
    (&["docs/**"], "docs/a/b", true),
    (&["docs/**"], "docs", false),
    (&["**"], "anything/x", true),
    (&["**"], "x", true),
    (&["a/**/b"], "a/b", true),
    (&["a/**/b"], "a/x/y/b", true),
    (&["a/**/b"], "a/xb", false),
    (&["**/foo"], "foo", true),
    (&["**/foo"], "x/y/foo", true),
    (&["**/foo"], "xfoo", false),
    (&["**/foo"], "foo/bar", true),
    (&["a.b"], "axb", false),
    (&["a.b"], "a.b", true),
    (&["a+b"], "a+b", true),
    (&["{a,b}"], "a", false),
    (&["{a,b}"], "{a,b}", true),
    (&["(x|y)$"], "(x|y)$", true),
    (&["*"], "x/y", true),
    (&["foo*"], "foobar/x", true),
    (&["dir/*", "!dir/keep.txt"], "dir/keep.txt", false),
    (&["dir/*", "!dir/keep.txt"], "dir/drop.txt", true),
    (&[".dockerignore"], ".dockerignore", true),
    (&["Dockerfile"], "Dockerfile", true),
    (&["Dockerfile"], "Dockerfile.dev", false),
    (&["!foo"], "foo", false),
    (&["/"], "x", false),
    (&["foo bar"], "foo bar", true),
    (&["a", "!a/b", "a/b/c"], "a/b/c", true),
    (&["a", "!a/b", "a/b/c"], "a/b/d", false),
    (&["a", "!a/b"], "a/b/d", false),
    (&["a", "!a/b"], "a/c", true),
    (&["# comment"], "# comment", false),
    (&["  foo  "], "foo", true),
    (&["! foo", "*"], "foo", true),
    (&["*", "! foo"], "foo", false),
    (&["**/node_modules"], "web/node_modules/x/y.js", true),
    (&["**/node_modules"], "node_modules", true),
];

#[test]
fn dockerignore_table() {
    let mut failures = Vec::new();
    for (patterns, path, want) in TABLE {
        let text = patterns.join("\n");
        let ignore = match DockerIgnore::parse(&text) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{patterns:?}: parse error {e}"));
                continue;
            }
        };
        let got = ignore.is_excluded(path);
        if got != *want {
            failures.push(format!("{patterns:?} on {path:?}: got {got}, want {want}"));
        }
    }
    assert!(TABLE.len() >= 40);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dockerignore_file_syntax() {
    let text = "\u{feff}# comment\r\n\r\n  *.log  \r\n!keep.log\n#!other.log\n";
    let ignore = DockerIgnore::parse(text).expect("valid");
    assert!(ignore.is_excluded("a.log"));
    assert!(!ignore.is_excluded("keep.log"));
    assert!(ignore.has_exceptions());
    assert!(DockerIgnore::parse("").expect("valid").is_empty());
}

#[test]
fn dockerignore_errors() {
    assert_eq!(
        DockerIgnore::parse("foo\n!\n").err(),
        Some(IgnoreError::IllegalExclusion)
    );
    assert_eq!(
        DockerIgnore::parse("!").err().map(|e| e.to_string()),
        Some("illegal exclusion pattern: \"!\"".to_string())
    );
    for bad in ["[", "a[", "[]", "[a-]", "a\\", "[\\"] {
        assert!(
            matches!(
                DockerIgnore::parse(bad),
                Err(IgnoreError::BadPattern { .. })
            ),
            "{bad:?} should be rejected"
        );
    }
    for good in ["a]", "[a]b", "[\\]]", "x[!a]"] {
        assert!(DockerIgnore::parse(good).is_ok(), "{good:?} should parse");
    }
}

#[test]
fn go_clean_semantics() {
    for (input, want) in [
        ("", "."),
        (".", "."),
        ("./a/", "a"),
        ("a//b", "a/b"),
        ("a/./b/..", "a"),
        ("../a", "../a"),
        ("/../a", "/a"),
        ("/", "/"),
        ("!a/../b", "b"),
    ] {
        assert_eq!(go_clean(input), want, "{input:?}");
    }
}

fn write(root: &Path, path: &str, content: &str) {
    let p = root.join(path);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(p, content).expect("write");
}

fn paths(index: &ContextIndex) -> Vec<String> {
    index
        .files()
        .entries
        .into_iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/", e.path)
            } else {
                e.path
            }
        })
        .collect()
}

#[test]
fn walk_applies_dockerignore_and_reincludes_inside_excluded_dirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, ".dockerignore", "a\n!a/b/c\n*.log\nnode_modules\n");
    write(root, "a/b/c", "kept");
    write(root, "a/b/d", "dropped");
    write(root, "a/x", "dropped");
    write(root, "x.log", "dropped");
    write(root, "src/main.rs", "fn main() {}");
    write(root, "node_modules/m/index.js", "dropped");
    fs::create_dir(root.join("empty")).expect("mkdir");
    let index = ContextIndex::open(root).expect("open");
    assert_eq!(
        paths(&index),
        [
            ".dockerignore",
            "Dockerfile",
            "a/",
            "a/b/",
            "a/b/c",
            "empty/",
            "src/",
            "src/main.rs"
        ]
    );
    assert!(index.contains("./src/"));
    assert!(index.contains("/src/main.rs"));
    assert!(index.contains("."));
    assert!(!index.contains("x.log"));
    assert!(!index.contains("a/x"));
}

#[test]
fn walk_skips_excluded_dirs_without_exceptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, ".dockerignore", "build\nDockerfile\n.dockerignore\n");
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, "build/out/x", "x");
    write(root, "keep", "k");
    let index = ContextIndex::open(root).expect("open");
    assert_eq!(paths(&index), ["keep"]);
}

#[test]
fn invalid_dockerignore_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), ".dockerignore", "!\n");
    let err = ContextIndex::open(dir.path()).expect_err("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains(".dockerignore") && msg.contains("illegal exclusion"),
        "{msg}"
    );
}

#[test]
fn digest_covers_content_and_mode_but_not_mtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "src/a.txt", "one");
    write(root, "other.txt", "x");
    let d = |root: &Path, prefix: &str| {
        ContextIndex::open(root)
            .expect("open")
            .digest(prefix, None)
            .expect("digest")
    };
    let base = d(root, "src");
    let whole = d(root, "");

    filetime::set_file_mtime(root.join("src/a.txt"), FileTime::from_unix_time(1_000, 0))
        .expect("mtime");
    assert_eq!(d(root, "src"), base, "mtime must not count");

    write(root, "other.txt", "changed");
    assert_eq!(
        d(root, "src"),
        base,
        "files outside the prefix must not count"
    );
    assert_ne!(d(root, ""), whole);

    fs::set_permissions(root.join("src/a.txt"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let chmodded = d(root, "src");
    assert_ne!(chmodded, base, "mode counts");

    write(root, "src/a.txt", "two");
    assert_ne!(d(root, "src"), chmodded, "content counts");
}

#[test]
fn stat_cache_skips_unchanged_files_and_rehashes_racy_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tempfile::tempdir().expect("tempdir");
    let cache = StatCache::open(&db.path().join("index.sqlite")).expect("cache");
    let root = dir.path();
    let old = FileTime::from_unix_time(1_600_000_000, 0);
    write(root, "old.txt", "aaaa");
    filetime::set_file_mtime(root.join("old.txt"), old).expect("mtime");
    let first = ContextIndex::open(root)
        .expect("open")
        .digest("old.txt", Some(&cache))
        .expect("digest");

    // Same size, same inode, same mtime: the cache is trusted, the file is not read again.
    fs::write(root.join("old.txt"), "bbbb").expect("write");
    filetime::set_file_mtime(root.join("old.txt"), old).expect("mtime");
    let index = ContextIndex::open(root).expect("open");
    assert_eq!(
        index.digest("old.txt", Some(&cache)).expect("digest"),
        first
    );
    assert_ne!(index.digest("old.txt", None).expect("digest"), first);

    // A file whose mtime is not safely older than its record is always re-read.
    write(root, "new.txt", "cccc");
    let index = ContextIndex::open(root).expect("open");
    let fresh = index.digest("new.txt", Some(&cache)).expect("digest");
    let mtime =
        FileTime::from_last_modification_time(&fs::metadata(root.join("new.txt")).expect("stat"));
    fs::write(root.join("new.txt"), "dddd").expect("write");
    filetime::set_file_mtime(root.join("new.txt"), mtime).expect("mtime");
    let index = ContextIndex::open(root).expect("open");
    assert_ne!(
        index.digest("new.txt", Some(&cache)).expect("digest"),
        fresh
    );
}

#[test]
fn symlinked_source_hashes_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "real/f", "1");
    std::os::unix::fs::symlink("real", root.join("link")).expect("symlink");
    let d = || {
        let index = ContextIndex::open(root).expect("open");
        assert!(index.contains("link/f"));
        index.digest("link", None).expect("digest")
    };
    let before = d();
    write(root, "real/f", "2");
    assert_ne!(d(), before);
}
