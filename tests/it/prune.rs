//! `kiln du` and `kiln prune` on real stores: what is kept for the cache, what dangling things
//! go, `--all`, `--keep-storage`, `--filter until=`, a prune while a build runs, empty and
//! missing roots, bad flags.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kiln_testsupport::Image;

use crate::common::{kiln, Fixture, Outcome};

/// Builds the fixture's Dockerfile into a fresh OCI dir `name`; returns the image.
fn build(f: &Fixture<'_>, name: &str) -> (Image, Outcome) {
    let dir = f.out(name);
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let out = f.build(&["-o", &dest]);
    out.ok();
    (Image::from_oci_dir(&dir).expect("read OCI dir"), out)
}

fn file(image: &Image, path: &str) -> Vec<u8> {
    image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("/{path} in the image"))
}

/// `kiln <cmd> --root ROOT args…`.
fn run(cmd: &str, root: &Path, args: &[&str]) -> Outcome {
    let mut full = vec![cmd.to_string(), "--root".into(), root.display().to_string()];
    full.extend(args.iter().map(|a| a.to_string()));
    kiln(&full)
}

/// `kiln du --format json` as JSON.
fn du(root: &Path) -> serde_json::Value {
    let out = run("du", root, &["--format", "json"]);
    out.ok();
    serde_json::from_str(&out.stdout()).unwrap_or_else(|e| panic!("du json: {e}\n{}", out.stdout()))
}

/// (count, size) of a `du` category (zeros when absent).
fn amount(du: &serde_json::Value, category: &str) -> (u64, u64) {
    du["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["category"] == category)
        .map_or((0, 0), |r| {
            (
                r["total"]["count"].as_u64().expect("count"),
                r["total"]["size"].as_u64().expect("size"),
            )
        })
}

fn prune(root: &Path, args: &[&str]) -> Outcome {
    let mut all = vec!["--force"];
    all.extend_from_slice(args);
    let out = run("prune", root, &all);
    out.ok();
    out
}

/// True when none of the progress lines says a RUN ran (every RUN step is CACHED).
fn ran_runs(out: &Outcome) -> Vec<String> {
    let progress = out.progress();
    let runs: Vec<u32> = progress
        .iter()
        .filter(|(_, l)| l.contains("] RUN "))
        .map(|(n, _)| *n)
        .collect();
    runs.iter()
        .filter(|n| !progress.iter().any(|(m, l)| m == *n && l == "CACHED"))
        .map(|n| format!("#{n}"))
        .collect()
}

const MARKED: &str = "FROM @BASE@\nRUN head -c16 /dev/urandom > /r\nRUN echo one > /one\n";

#[test]
fn prune_removes_dangling_things_but_keeps_what_the_cache_needs() {
    let f = Fixture::empty();
    let root = f.root();
    f.write("Dockerfile", MARKED);
    let (first, _) = build(&f, "1");
    let r1 = file(&first, "r");
    // A second version: a new last layer, and the first build's image config and manifest
    // become dangling.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN head -c16 /dev/urandom > /r\nRUN echo two > /two\n",
    );
    let (second, _) = build(&f, "2");
    assert_eq!(file(&second, "r"), r1, "the shared RUN was cached");

    let before = du(&root);
    let (layers, layer_bytes) = amount(&before, "layers");
    assert!(layers >= 3, "base + 3 RUN layers expected: {before}");
    assert!(
        layer_bytes > 100_000,
        "the busybox layer is counted: {before}"
    );
    assert!(amount(&before, "snapshots").0 >= 4, "{before}");
    assert!(amount(&before, "configs").0 >= 4, "{before}");
    assert!(before["records"].as_u64().expect("records") >= 4);
    assert!(before["reclaimable"].as_u64().expect("reclaimable") > 0);
    let text = run("du", &root, &[]);
    text.ok()
        .shows("TYPE")
        .shows("RECLAIMABLE")
        .shows("Layers")
        .shows("Total");

    // Leftovers: a dead process's run dir, a stale temp file, a dangling snapshot and blob.
    let dead_run = root.join("runs/999999999-0");
    std::fs::create_dir_all(dead_run.join("upper/x")).expect("mkdir");
    let stale_tmp = root.join("content/tmp/blob-stale");
    std::fs::write(&stale_tmp, vec![0u8; 1000]).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&stale_tmp)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600)))
        .expect("age temp file");
    let stray_snapshot = root.join("snapshots/0123456789ab");
    std::fs::create_dir_all(stray_snapshot.join("etc")).expect("mkdir");
    let stray_blob = root.join("content/blobs/sha256").join("ab".repeat(32));
    std::fs::write(&stray_blob, vec![1u8; 5000]).expect("write");

    let out = prune(&root, &[]);
    assert!(
        !out.stdout().contains("Deleted cache records"),
        "no record may go without --all: {}",
        out.stdout()
    );
    out.shows("Total: ");
    for gone in [&dead_run, &stale_tmp, &stray_snapshot, &stray_blob] {
        assert!(!gone.exists(), "{} survived the prune", gone.display());
    }
    let after = du(&root);
    assert_eq!(after["reclaimable"], 0, "{after}");
    assert_eq!(after["records"], before["records"]);
    assert_eq!(amount(&after, "layers"), (layers, layer_bytes), "{after}");
    assert_eq!(amount(&after, "configs").0, 0, "{after}");
    assert!(!root.join("trash").read_dir().expect("trash").any(|_| true));

    // Both versions rebuild without running anything.
    let (third, out) = build(&f, "3");
    assert_eq!(ran_runs(&out), Vec::<String>::new(), "{}", out.text());
    assert_eq!(file(&third, "r"), r1);
    assert_eq!(third.manifest_digest, second.manifest_digest);
    f.write("Dockerfile", MARKED);
    let (fourth, out) = build(&f, "4");
    assert_eq!(ran_runs(&out), Vec::<String>::new(), "{}", out.text());
    assert_eq!(fourth.manifest_digest, first.manifest_digest);
}

#[test]
fn prune_all_empties_the_cache_and_the_next_build_runs_everything() {
    let f = Fixture::empty();
    let root = f.root();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN head -c16 /dev/urandom > /r\nRUN --mount=type=cache,target=/c echo x > /c/f && echo one > /one\n",
    );
    let (first, _) = build(&f, "1");
    // Without --force and without an answer (stdin is empty) nothing goes, and that is no
    // error (as `docker builder prune`).
    let before = du(&root);
    let out = run("prune", &root, &["--all"]);
    assert_eq!(out.code(), Some(0), "{}", out.text());
    out.shows("nothing was removed");
    assert_eq!(du(&root)["records"], before["records"]);
    // Cache mounts survive a plain prune, not --all.
    assert_eq!(amount(&du(&root), "cache-mounts").0, 1);
    prune(&root, &[]);
    assert_eq!(amount(&du(&root), "cache-mounts").0, 1);
    let out = prune(&root, &["--all"]);
    out.shows("Deleted cache records: ").shows("Total: ");
    let after = du(&root);
    assert_eq!(after["records"], 0, "{after}");
    assert_eq!(amount(&after, "layers"), (0, 0), "{after}");
    assert_eq!(amount(&after, "configs"), (0, 0), "{after}");
    assert_eq!(amount(&after, "cache-mounts"), (0, 0), "{after}");
    // Only the two built-in snapshots (empty dir, sandbox stubs) stay.
    assert_eq!(amount(&after, "snapshots").0, 2, "{after}");

    let (second, out) = build(&f, "2");
    assert_eq!(
        ran_runs(&out).len(),
        2,
        "both RUNs run again\n{}",
        out.text()
    );
    assert_ne!(file(&second, "r"), file(&first, "r"));
    assert_eq!(file(&second, "one"), b"one\n");
}

/// A `kiln build` in the background, killed (its whole process group) when dropped.
struct Background {
    child: Child,
    done: bool,
}

impl Background {
    fn start(f: &Fixture<'_>, args: &[String], log: &Path) -> Background {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(log).expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--progress=plain", "--root"])
            .arg(f.root())
            .args(args)
            .arg(f.ctx())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start kiln build");
        Background { child, done: false }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The build and its sandboxes share the child's process group.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.wait();
    }
}

/// Waits until `cond` holds (at most 60 s).
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn prune_while_a_build_runs_does_not_break_it() {
    let f = Fixture::empty();
    let root = f.root();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN head -c16 /dev/urandom > /r\nRUN echo a > /a\n",
    );
    let (first, _) = build(&f, "1");
    let r1 = file(&first, "r");
    // The same first steps (cache hits the lease must keep), then a slow one.
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN head -c16 /dev/urandom > /r\nRUN echo a > /a\nRUN sleep 3 && echo b > /b\nRUN cat /r /a /b > /all\n",
    );
    let dir = f.out("2");
    let log = f.out("build.log");
    let bg = Background::start(
        &f,
        &[
            "-o".into(),
            format!("type=oci,dest={},tar=false", dir.display()),
        ],
        &log,
    );
    // The RUN sleep is running once its scratch dir exists (the cached steps make none).
    let runs = root.join("runs");
    wait_for("the RUN to start", || has_entries(&runs));
    std::thread::sleep(Duration::from_millis(300));

    let during = du(&root);
    assert_eq!(during["live_leases"], 1, "{during}");
    let out = prune(&root, &["--all"]);
    out.shows("Deleted cache records: ");
    assert!(
        has_entries(&runs),
        "the running RUN's scratch dir was removed"
    );
    let mut bg = bg;
    let status = bg.child.wait().expect("wait for the build");
    bg.done = true;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "build failed during a prune:\n{text}");
    drop(bg);

    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(file(&image, "r"), r1, "the cached RUN was reused");
    assert_eq!(file(&image, "b"), b"b\n");
    let mut all = r1.clone();
    all.extend_from_slice(b"a\nb\n");
    assert_eq!(file(&image, "all"), all);
    assert!(
        file(&image, "bin/busybox").len() > 100_000,
        "base layer intact"
    );

    // With the build gone, its lease is gone too and everything is reclaimable.
    let after = du(&root);
    assert_eq!(after["live_leases"], 0, "{after}");
    prune(&root, &["--all"]);
    let empty = du(&root);
    assert_eq!(amount(&empty, "layers"), (0, 0), "{empty}");
    assert_eq!(empty["records"], 0);
}

#[test]
fn keep_storage_removes_least_recently_used_records_first() {
    let f = Fixture::empty();
    let root = f.root();
    let a = "FROM @BASE@\nRUN head -c16 /dev/urandom > /a\n";
    let b = "FROM @BASE@\nRUN head -c16 /dev/urandom > /b\n";
    f.write("Dockerfile", a);
    let (ia, _) = build(&f, "a1");
    f.write("Dockerfile", b);
    let (ib, _) = build(&f, "b1");
    prune(&root, &[]);
    let total = du(&root)["total"].as_u64().expect("total");
    let records = du(&root)["records"].as_u64().expect("records");

    // A limit above the store removes nothing.
    let out = prune(&root, &["--keep-storage", "10GB"]);
    assert!(
        !out.stdout().contains("Deleted cache records"),
        "{}",
        out.stdout()
    );
    out.shows("Total: 0B");
    assert_eq!(du(&root)["records"].as_u64(), Some(records));

    // One byte under: the least recently used record (A's RUN) goes, B's stays.
    let limit = (total - 1).to_string();
    prune(&root, &["--keep-storage", &limit]).shows("Deleted cache records: 1");
    f.write("Dockerfile", b);
    let (ib2, out) = build(&f, "b2");
    assert_eq!(ran_runs(&out), Vec::<String>::new(), "{}", out.text());
    assert_eq!(file(&ib2, "b"), file(&ib, "b"));
    f.write("Dockerfile", a);
    let (ia2, out) = build(&f, "a2");
    assert_eq!(ran_runs(&out).len(), 1, "{}", out.text());
    assert_ne!(file(&ia2, "a"), file(&ia, "a"));

    // 0: every record goes.
    prune(&root, &["--keep-storage", "0"]);
    let after = du(&root);
    assert_eq!(after["records"], 0, "{after}");
    assert_eq!(amount(&after, "layers"), (0, 0), "{after}");
}

#[test]
fn until_filter_keeps_recently_used_records() {
    let f = Fixture::empty();
    let root = f.root();
    f.write("Dockerfile", MARKED);
    build(&f, "1");
    let records = du(&root)["records"].clone();
    let out = prune(&root, &["--all", "--filter", "until=24h"]);
    assert!(
        !out.stdout().contains("Deleted cache records"),
        "{}",
        out.stdout()
    );
    assert_eq!(du(&root)["records"], records);
}

#[test]
fn du_and_prune_on_missing_and_empty_roots() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing: PathBuf = tmp.path().join("missing");
    let out = run("du", &missing, &[]);
    out.ok().shows("Total").shows("Cache records: 0");
    let json = du(&missing);
    assert_eq!(json["total"], 0);
    prune(&missing, &[]).shows("Total: 0B");
    prune(&missing, &["--all"]).shows("Total: 0B");
    assert!(!missing.exists(), "du/prune created the root");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_eq!(du(&empty)["total"], 0);
    prune(&empty, &["--all", "--keep-storage", "0"]).shows("Total: 0B");

    let not_dir = tmp.path().join("file");
    std::fs::write(&not_dir, b"x").expect("write");
    run("du", &not_dir, &[])
        .fails_with(1)
        .error_line_names(&["not a directory"]);
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    run("prune", root, &["--force", "--keep-storage", "10XB"])
        .fails_with(2)
        .error_line_names(&["--keep-storage", "invalid size", "10XB"]);
    run("prune", root, &["--force", "--filter", "until=soon"])
        .fails_with(2)
        .error_line_names(&["invalid duration", "soon"]);
    run("prune", root, &["--force", "--filter", "type=regular"])
        .fails_with(2)
        .error_line_names(&["unknown filter", "until=DURATION"]);
    run("du", root, &["--format", "xml"])
        .fails_with(2)
        .shows("xml");
    run("prune", root, &["--bogus"])
        .fails_with(2)
        .shows("--bogus");
    // Without --force and without a yes on stdin nothing is removed, and that is no error.
    let declined = run("prune", root, &[]);
    assert_eq!(declined.code(), Some(0), "{}", declined.text());
    declined.shows("Are you sure").shows("--force");
}
