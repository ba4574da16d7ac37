//! Cache-warm rebuilds with one `--root`: identical results, no base re-download, and a miss
//! exactly when a COPYed file's content changes (never for mtime alone).

use std::time::{Duration, SystemTime};

use kiln_testsupport::Image;

use crate::common::{Bases, Fixture};

/// Build `testdata/e2e/cache` to a fresh OCI dir `name`; returns (image, /r bytes).
fn build(f: &Fixture<'_>, name: &str, extra: &[&str]) -> (Image, Vec<u8>, crate::common::Outcome) {
    let dir = f.out(name);
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    let mut args = vec!["-t", "kiln-e2e/cache:latest", "-o", &dest];
    args.extend_from_slice(extra);
    let out = f.build(&args);
    out.ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    let r = image
        .file("r")
        .expect("read layers")
        .expect("/r in the image");
    assert_eq!(r.len(), 16, "/r holds 16 random bytes");
    (image, r, out)
}

#[test]
fn rebuild_reuses_cache_until_a_copied_file_changes() {
    // Own registry: its access log must only show this test's pulls.
    let bases = Bases::start();
    let f = Fixture::with_bases(&bases);
    f.copy_case("cache");

    let (first, r1, _) = build(&f, "1", &[]);
    let gets_after_first = bases.registry.blob_gets().len();
    assert!(
        gets_after_first > 0,
        "first build pulls the base: {}",
        bases.registry.access_log()
    );

    // No-op rebuild: same bytes, same manifest digest, nothing downloaded, steps reported CACHED.
    let (second, r2, out) = build(&f, "2", &[]);
    assert_eq!(r2, r1, "RUN was re-executed on a no-op rebuild");
    assert_eq!(
        second.manifest_digest, first.manifest_digest,
        "no-op rebuild changed the image"
    );
    assert_eq!(
        bases.registry.blob_gets().len(),
        gets_after_first,
        "second build downloaded blobs again:\n{:?}",
        &bases.registry.blob_gets()[gets_after_first..]
    );
    assert!(
        out.progress().iter().any(|(_, l)| l == "CACHED"),
        "no `#N CACHED` line\n{}",
        out.text()
    );

    // Touching the mtime alone changes nothing.
    let input = f.ctx().join("input.txt");
    let later = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&input)
        .expect("open input")
        .set_modified(later)
        .expect("set mtime");
    let (third, r3, _) = build(&f, "3", &[]);
    assert_eq!(r3, r1, "mtime-only change re-ran the RUN");
    assert_eq!(
        third.manifest_digest, first.manifest_digest,
        "mtime-only change changed the image"
    );

    // Editing the COPYed file invalidates the COPY and the RUN after it.
    std::fs::write(&input, "version 2\n").expect("edit input");
    let (fourth, r4, _) = build(&f, "4", &[]);
    assert_ne!(r4, r1, "RUN after a changed COPY was served from cache");
    assert_ne!(fourth.manifest_digest, first.manifest_digest);
    assert_eq!(
        fourth.file("input.txt").expect("read layers").as_deref(),
        Some(&b"version 2\n"[..])
    );

    // --no-cache re-runs even when nothing changed.
    let (_, r5, _) = build(&f, "5", &["--no-cache"]);
    assert_ne!(r5, r4, "--no-cache reused the RUN result");
}

/// 13.4 / 13.5: a wildcard COPY is keyed on what it matches: editing a file it does not
/// match keeps the cache, editing a matched one re-runs, and renaming a file out of the
/// match makes a later RUN that needs it fail (no stale cache).
#[test]
fn wildcard_copy_keys_on_matched_files_only() {
    let f = Fixture::empty();
    f.write("a.txt", "a1")
        .write("notes.md", "n1")
        .write("sub/x.txt", "deep")
        .write(
            "Dockerfile",
            "FROM @BASE@\nCOPY *.txt /d/\n\
             RUN cat /d/a.txt && head -c16 /dev/urandom > /r\n",
        );
    let (_, first, _) = build(&f, "one", &[]);
    // Not matched: a top-level .md and a .txt one level down (`*` stops at `/`).
    f.write("notes.md", "n2").write("sub/x.txt", "deeper");
    let (_, second, _) = build(&f, "two", &[]);
    assert_eq!(
        first, second,
        "unmatched files must not invalidate the COPY"
    );
    f.write("a.txt", "a2");
    let (image, third, _) = build(&f, "three", &[]);
    assert_ne!(second, third, "a matched file changed");
    assert_eq!(image.file("d/a.txt").expect("read"), Some(b"a2".to_vec()));
    // A new matching file changes the selection too.
    f.write("b.txt", "b");
    let (image, fourth, _) = build(&f, "four", &[]);
    assert_ne!(third, fourth);
    assert_eq!(image.file("d/b.txt").expect("read"), Some(b"b".to_vec()));
    // Renamed out of the match: the RUN needing it must run again and fail.
    std::fs::rename(f.ctx().join("a.txt"), f.ctx().join("a.txt.old")).expect("rename");
    let dest = format!("type=oci,dest={}", f.out("five.tar").display());
    let out = f.build(&["-o", &dest]);
    assert_eq!(out.code(), Some(1), "{}", out.text());
    assert!(out.text().contains("/d/a.txt"), "{}", out.text());
}

/// 13.6: `--no-cache-filter STAGE` re-runs that stage's steps and the steps that depend on
/// them; other stages (its base included) stay cached.
#[test]
fn no_cache_filter_reruns_only_the_named_stage_and_its_dependents() {
    let f = Fixture::empty();
    let rnd = |p: &str| format!("RUN head -c8 /dev/urandom | od -An -tx1 > /{p}\n");
    f.write(
        "Dockerfile",
        &format!(
            "FROM @BASE@ AS base\n{}FROM base AS build\n{}FROM @BASE@ AS other\n{}\
             FROM build\nCOPY --from=other /other /other\n{}",
            rnd("base"),
            rnd("build"),
            rnd("other"),
            rnd("final")
        ),
    );
    let read = |name: &str, extra: &[&str]| {
        let dir = f.out(name);
        let dest = format!("type=oci,dest={},tar=false", dir.display());
        let mut args = vec!["-o", dest.as_str()];
        args.extend_from_slice(extra);
        f.build(&args).ok();
        let image = Image::from_oci_dir(&dir).expect("read OCI dir");
        ["base", "build", "other", "final"].map(|p| {
            image
                .file(p)
                .expect("read layers")
                .unwrap_or_else(|| panic!("/{p}"))
        })
    };
    let first = read("one", &[]);
    let second = read("two", &["--no-cache-filter", "BUILD"]);
    assert_eq!(
        first[0], second[0],
        "the filtered stage's base stays cached"
    );
    assert_ne!(first[1], second[1], "the filtered stage re-runs");
    assert_eq!(first[2], second[2], "an unrelated stage stays cached");
    assert_ne!(first[3], second[3], "a step depending on the stage re-runs");
    // An unknown name is a warning, not an error; everything is cached again.
    let third = read("three", &["--no-cache-filter", "nope,other"]);
    assert_eq!(third[0], second[0]);
    assert_eq!(third[1], second[1]);
    assert_ne!(third[2], second[2], "other re-runs");
    assert_ne!(
        third[3], second[3],
        "and so does the final stage that copies from it"
    );
}

/// `--explain`: a step that misses the cache says why, compared with its last build.
#[test]
fn explain_says_why_a_step_missed() {
    let f = Fixture::empty();
    f.write("src/a.txt", "1").write("other.txt", "x").write(
        "Dockerfile",
        "FROM @BASE@\nARG V=1\nCOPY src /src\nRUN echo $V > /v\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["--explain"];
        args.extend_from_slice(extra);
        let out = f.build(&args);
        out.ok();
        out.text()
    };
    let first = run(&[]);
    assert!(
        first.contains("explain: missed: first build of this step"),
        "{first}"
    );
    let again = run(&[]);
    assert!(
        !again.contains("explain:"),
        "a no-op rebuild misses nothing: {again}"
    );
    f.write("src/a.txt", "2");
    let edited = run(&[]);
    assert!(
        edited.contains("explain: missed: `src` in the context changed"),
        "{edited}"
    );
    assert!(
        edited.contains("explain: missed: the step before it changed"),
        "{edited}"
    );
    let arg = run(&["--build-arg", "V=2"]);
    assert!(
        arg.contains("explain: missed: the environment changed: V changed"),
        "{arg}"
    );
    f.write(
        "Dockerfile",
        "FROM @BASE@\nARG V=1\nCOPY src /src\nRUN echo $V >> /v\n",
    );
    let cmd = run(&[]);
    assert!(
        cmd.contains("explain: missed: the command changed: `/bin/sh -c echo $V > /v` -> `/bin/sh -c echo $V >> /v`"),
        "{cmd}"
    );
}
