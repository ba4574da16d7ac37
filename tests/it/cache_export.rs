//! Cache export and import across roots (13.8): `--cache-to`/`--cache-from` through a local
//! directory and the loopback registry. Each "runner" is a fresh `--root` with its own copy
//! of the context in another directory, so nothing but the exported cache is shared.

use std::path::Path;

use kiln_testsupport::Image;

use crate::common::{Fixture, Outcome};

/// Two COPYs, each followed by a RUN writing random bytes (a rerun changes them).
const TWO_STEPS: &str = "FROM @BASE@\n\
    COPY a.txt /a.txt\n\
    RUN head -c16 /dev/urandom > /r1\n\
    COPY b.txt /b.txt\n\
    RUN head -c16 /dev/urandom > /r2\n";

/// A builder stage whose RUN only the max mode exports.
const TWO_STAGES: &str = "FROM @BASE@ AS builder\n\
    RUN head -c16 /dev/urandom > /b\n\
    FROM @BASE@\n\
    COPY --from=builder /b /b\n\
    RUN head -c16 /dev/urandom > /r\n";

/// A new runner: a fresh context dir and root holding `dockerfile`, `a.txt` and `b.txt`.
fn runner(dockerfile: &str, b: &str) -> Fixture<'static> {
    let f = Fixture::empty();
    f.write("Dockerfile", dockerfile)
        .write("a.txt", "a\n")
        .write("b.txt", b);
    f
}

fn file(image: &Image, path: &str) -> Vec<u8> {
    image
        .file(path)
        .expect("read layers")
        .unwrap_or_else(|| panic!("/{path} in the image"))
}

/// True when the vertex whose name contains `step` was answered from the cache.
fn cached(out: &Outcome, step: &str) -> bool {
    let progress = out.progress();
    let ids: Vec<u32> = progress
        .iter()
        .filter(|(_, l)| l.contains(step))
        .map(|(n, _)| *n)
        .collect();
    assert!(!ids.is_empty(), "no vertex {step:?}\n{}", out.text());
    progress
        .iter()
        .any(|(n, l)| ids.contains(n) && l == "CACHED")
}

fn local_to(dir: &Path, mode: &str) -> String {
    format!("type=local,dest={},mode={mode}", dir.display())
}

fn local_from(dir: &Path) -> String {
    format!("type=local,src={}", dir.display())
}

/// The manifest of a local cache directory's only cache.
fn cache_manifest(dir: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let digest = index["manifests"][0]["digest"].as_str().expect("manifest");
    blob_json(dir, digest)
}

fn blob_json(dir: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).expect("read"))
        .expect("blob is JSON")
}

/// The layer blobs a local cache directory's manifest lists.
fn cache_layers(dir: &Path) -> Vec<String> {
    cache_manifest(dir)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// How many records a local cache directory's config lists.
fn cache_records(dir: &Path) -> usize {
    let manifest = cache_manifest(dir);
    let config = blob_json(dir, manifest["config"]["digest"].as_str().expect("config"));
    config["records"].as_array().map_or(0, Vec::len)
}

/// 13.8: a cache exported to a directory and imported on a fresh root reproduces every step
/// (no RUN runs), the files and the image digest; after an edit only the steps from the
/// edited file's COPY on run.
#[test]
fn local_cache_reproduces_the_build_on_a_fresh_root() {
    let a = runner(TWO_STEPS, "b\n");
    let cache = a.out("cache");
    let to = local_to(&cache, "min");
    let (first, out) = a.build_oci("img", &["--cache-to", &to]);
    out.shows(&format!("exporting cache to {}", cache.display()))
        .shows("writing layer sha256:")
        .shows("writing cache manifest sha256:");
    assert!(cache.join("oci-layout").is_file() && cache.join("index.json").is_file());
    // Both COPY layers and both RUN layers.
    assert_eq!(cache_layers(&cache).len(), 4, "{}", out.text());

    // Another runner: its own context dir and an empty root.
    let b = runner(TWO_STEPS, "b\n");
    let from = local_from(&cache);
    let (second, out) = b.build_oci("img", &["--cache-from", &from]);
    out.shows(&format!(
        "importing cache manifest from {}",
        cache.display()
    ));
    for step in [
        "COPY a.txt",
        "RUN head -c16 /dev/urandom > /r1",
        "COPY b.txt",
    ] {
        assert!(cached(&out, step), "{step} not CACHED\n{}", out.text());
    }
    assert!(cached(&out, "> /r2"), "{}", out.text());
    assert_eq!(file(&second, "r1"), file(&first, "r1"));
    assert_eq!(file(&second, "r2"), file(&first, "r2"));
    assert_eq!(
        second.manifest_digest, first.manifest_digest,
        "the imported cache gave another image"
    );

    // A third runner with b.txt edited: the first COPY and RUN hit, the rest runs.
    let c = runner(TWO_STEPS, "b, edited\n");
    let (third, out) = c.build_oci("img", &["--cache-from", &from]);
    assert!(
        cached(&out, "COPY a.txt") && cached(&out, "> /r1"),
        "{}",
        out.text()
    );
    assert!(
        !cached(&out, "COPY b.txt") && !cached(&out, "> /r2"),
        "{}",
        out.text()
    );
    assert_eq!(file(&third, "r1"), file(&first, "r1"));
    assert_ne!(file(&third, "r2"), file(&first, "r2"));
    assert_eq!(file(&third, "b.txt"), b"b, edited\n");
}

/// mode=min exports the image's own steps; a builder stage's RUN is a hit after import only
/// with mode=max. Both exports come from one build (--cache-to repeats).
#[test]
fn mode_max_also_exports_other_stages() {
    let a = runner(TWO_STAGES, "");
    let (min_dir, max_dir) = (a.out("min"), a.out("max"));
    let (to_min, to_max) = (local_to(&min_dir, "min"), local_to(&max_dir, "max"));
    let (first, _) = a.build_oci("img", &["--cache-to", &to_min, "--cache-to", &to_max]);
    // The builder's RUN and the COPY of its file make the same layer; the records differ.
    assert_eq!(cache_records(&min_dir), 3, "image source, COPY, RUN");
    assert_eq!(
        cache_records(&max_dir),
        4,
        "and the builder's RUN (same base)"
    );

    let from_min = local_from(&min_dir);
    let b = runner(TWO_STAGES, "");
    let (image, out) = b.build_oci("img", &["--cache-from", &from_min]);
    assert!(
        !cached(&out, "> /b"),
        "min exported the builder stage\n{}",
        out.text()
    );
    // The COPY's key names the builder's step, not its bytes: the image's steps still hit.
    assert!(
        cached(&out, "COPY --from=builder") && cached(&out, "> /r"),
        "{}",
        out.text()
    );
    assert_eq!(image.manifest_digest, first.manifest_digest);

    let from_max = local_from(&max_dir);
    let c = runner(TWO_STAGES, "");
    let (image, out) = c.build_oci("img", &["--cache-from", &from_max]);
    assert!(
        cached(&out, "> /b"),
        "max did not export the builder\n{}",
        out.text()
    );
    assert!(cached(&out, "> /r"), "{}", out.text());
    assert_eq!(image.manifest_digest, first.manifest_digest);
}

/// The same through the loopback registry: the pushed cache is a valid OCI manifest (as
/// skopeo reads it), a fresh root imports it, fetching only the layers it uses.
#[test]
fn registry_cache_round_trip() {
    let a = runner(TWO_STEPS, "b\n");
    let addr = a.bases.registry.addr().to_string();
    let reference = format!("{addr}/kiln-e2e/cache-export:latest");
    let to = format!("type=registry,ref={reference},mode=max");
    let (first, out) = a.build_oci("img", &["--cache-to", &to]);
    out.shows(&format!("exporting cache to {reference}"))
        .shows("writing layer sha256:");

    let mut skopeo = std::process::Command::new("skopeo");
    skopeo
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"));
    let raw = kiln_testsupport::run(&mut skopeo).expect("skopeo inspect --raw");
    let manifest: serde_json::Value =
        serde_json::from_slice(&raw.stdout).expect("the cache manifest is JSON");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["artifactType"], "application/vnd.kiln.cache.v1");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(4));

    let b = runner(TWO_STEPS, "b\n");
    // A missing cache next to the real one: a warning, and the real one still serves.
    let missing = format!("type=registry,ref={addr}/kiln-e2e/no-such-cache:latest");
    let from = format!("type=registry,ref={reference}");
    let (second, out) = b.build_oci("img", &["--cache-from", &missing, "--cache-from", &from]);
    out.shows(&format!("importing cache manifest from {reference}"))
        .shows("WARNING: cannot import cache from");
    assert!(
        cached(&out, "> /r1") && cached(&out, "> /r2"),
        "{}",
        out.text()
    );
    assert_eq!(file(&second, "r2"), file(&first, "r2"));
    assert_eq!(second.manifest_digest, first.manifest_digest);
    let log = a.bases.registry.access_log();
    let layer = manifest["layers"][0]["digest"].as_str().expect("digest");
    assert!(
        log.contains(&format!("GET /v2/kiln-e2e/cache-export/blobs/{layer}")),
        "the import did not fetch the cache's layers from the registry"
    );
}

/// A layer blob of a local cache that does not match its digest is reported and its step
/// computed; exporting into that directory again repairs it.
#[test]
fn corrupt_cache_blobs_are_detected_and_recomputed() {
    let a = runner(TWO_STEPS, "b\n");
    let cache = a.out("cache");
    let (first, _) = a.build_oci("img", &["--cache-to", &local_to(&cache, "min")]);
    for digest in cache_layers(&cache) {
        let path = cache
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let len = std::fs::metadata(&path).expect("blob").len();
        std::fs::write(&path, vec![b'x'; len as usize]).expect("corrupt blob");
    }
    let b = runner(TWO_STEPS, "b\n");
    let (second, out) = b.build_oci(
        "img",
        &[
            "--cache-from",
            &local_from(&cache),
            "--cache-to",
            &local_to(&cache, "min"),
        ],
    );
    out.shows("digest mismatch");
    assert!(
        !cached(&out, "> /r1"),
        "a corrupt layer was used\n{}",
        out.text()
    );
    assert_ne!(file(&second, "r1"), file(&first, "r1"));

    // The export rewrote the corrupt blobs (the COPY layers have the same digests).
    let c = runner(TWO_STEPS, "b\n");
    let (third, out) = c.build_oci("img", &["--cache-from", &local_from(&cache)]);
    assert!(!out.text().contains("digest mismatch"), "{}", out.text());
    assert!(cached(&out, "> /r2"), "{}", out.text());
    assert_eq!(third.manifest_digest, second.manifest_digest);
}

/// An unreachable or missing --cache-from is a warning; a --cache-to that cannot be written
/// fails the build after its outputs were written (unless ignore-error=true); bad specs are
/// usage errors.
#[test]
fn cache_flag_errors() {
    let f = runner(TWO_STEPS, "b\n");
    let (_, out) = f.build_oci(
        "img",
        &[
            "--cache-from",
            "type=registry,ref=127.0.0.1:1/nothing:latest",
            "--cache-from",
            "type=local,src=/nonexistent/kiln-cache",
        ],
    );
    out.shows("WARNING: cannot import cache from 127.0.0.1:1/nothing:latest")
        .shows("WARNING: cannot import cache from /nonexistent/kiln-cache");

    // A cache directory below a regular file cannot be created.
    let blocker = f.out("file");
    std::fs::write(&blocker, "x").expect("write");
    let bad_dest = format!("type=local,dest={}/cache", blocker.display());
    let oci = f.out("after-failure");
    let dest = format!("type=oci,dest={},tar=false", oci.display());
    let out = f.build(&["-o", &dest, "--cache-to", &bad_dest]);
    out.fails_with(1).shows("failed to export cache to");
    assert!(
        oci.join("index.json").is_file(),
        "the image was not written before the cache export failed"
    );
    let ignored = format!("{bad_dest},ignore-error=true");
    f.build(&["--cache-to", &ignored])
        .ok()
        .shows("WARNING: cache export to");

    for (flag, spec) in [
        ("--cache-to", "type=gha"),
        ("--cache-to", "type=local"),
        ("--cache-to", "type=local,dest=x,mode=all"),
        ("--cache-to", "type=registry,ref=r.io/c,colour=red"),
        ("--cache-from", "type=local,dest=x"),
        ("--cache-from", "type=registry"),
    ] {
        f.build(&[flag, spec])
            .fails_with(2)
            .error_line_names(&[flag, spec]);
    }
}
