//! Several kiln processes on one `--root` at once (CI runners sharing a cache directory): a
//! step both need is computed once, the other waits and reuses it; unrelated builds do not
//! block each other; both images are complete.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_testsupport::Image;

use crate::common::Fixture;

/// Starts `kiln build` of `f`'s context with `root`, writing an OCI dir at `out`.
fn spawn(f: &Fixture<'_>, root: &std::path::Path, out: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--progress=plain",
            "--root",
            &root.display().to_string(),
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            &f.ctx().display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln")
}

fn finish(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("wait kiln");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn two_processes_share_one_store_and_compute_a_step_once() {
    let a = Fixture::empty();
    let b = Fixture::empty();
    let shared_root = a.root();
    // The same Dockerfile in two contexts: one key per step for both processes.
    for f in [&a, &b] {
        f.write(
            "Dockerfile",
            "FROM @BASE@\nRUN sleep 2; head -c16 /dev/urandom > /r\n",
        );
    }
    // A third, unrelated build at the same time.
    let c = Fixture::empty();
    c.write("Dockerfile", "FROM @BASE@\nRUN sleep 2; echo other > /o\n");
    let (out_a, out_b, out_c) = (a.out("a"), b.out("b"), c.out("c"));
    let started = Instant::now();
    let children = [
        spawn(&a, &shared_root, &out_a),
        spawn(&b, &shared_root, &out_b),
        spawn(&c, &shared_root, &out_c),
    ];
    let logs: Vec<String> = children.into_iter().map(finish).collect();
    let elapsed = started.elapsed();
    let r = |dir: &std::path::Path| {
        Image::from_oci_dir(dir)
            .expect("read OCI dir")
            .file("r")
            .expect("read layers")
            .expect("/r")
    };
    assert_eq!(r(&out_a), r(&out_b), "the shared step ran once");
    let o = Image::from_oci_dir(&out_c)
        .expect("read OCI dir")
        .file("o")
        .expect("read layers");
    assert_eq!(o.as_deref(), Some(&b"other\n"[..]));
    // The step ran in one process; the other one waited for its lock and found it done.
    assert!(
        logs[..2]
            .iter()
            .any(|l| l.contains("RUN sleep 2") && l.contains("CACHED")),
        "one of the two builds reuses the other's step: {logs:#?}"
    );
    // Three 2 s steps, two of them the same: well under the 6 s a serial run takes.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}
