//! The build context and base images: .dockerignore as seen in the produced layer, and bases
//! served as an OCI manifest, a Docker schema 2 manifest and an image index.

use std::collections::BTreeSet;

use kiln_testsupport::{EntryKind, Image};

use crate::common::Fixture;

#[test]
fn dockerignore_patterns_shape_the_copied_layer() {
    let f = Fixture::case("dockerignore");
    let dir = f.out("layout");
    f.build(&["-o", &format!("type=oci,dest={},tar=false", dir.display())])
        .ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    let entries = image.entries().expect("read layers");
    let files: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.path.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "ctx/.dockerignore",
        "ctx/Dockerfile",
        "ctx/keep.txt",       // not matched
        "ctx/sub/nested.key", // `*.key` is anchored at the root
        "ctx/logs/keep.log",  // `!logs/keep.log` re-includes it after `**/*.log`
        "ctx/docs/readme.md", // `docs/**/draft.md` only takes draft.md
    ]
    .into_iter()
    .collect();
    assert_eq!(files, expected, "files in the COPY . layer");
    assert!(
        !entries
            .iter()
            .any(|e| e.path == "ctx/build" || e.path.starts_with("ctx/build/")),
        "ignored dir `build` was copied"
    );
    for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
        assert_eq!(
            (e.uid, e.gid),
            (0, 0),
            "{}: context files are owned by root",
            e.path
        );
        assert!(!e.content.is_empty(), "{}: empty", e.path);
    }
    let keep = entries
        .iter()
        .find(|e| e.path == "ctx/logs/keep.log")
        .expect("keep.log");
    assert_eq!(keep.content, b"content of logs/keep.log\n");
}

/// Build `FROM <base>` + one RUN and check the result sits on the amd64 busybox layer.
fn build_on(base_placeholder: &str) {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        &format!("FROM {base_placeholder}\nRUN cat /etc/group > /group-copy\n"),
    );
    let dir = f.out("layout");
    f.build(&["-o", &format!("type=oci,dest={},tar=false", dir.display())])
        .ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(
        image.file("group-copy").expect("read layers").as_deref(),
        Some(&b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"[..])
    );
    assert_eq!(image.config["architecture"], "amd64");
    assert_eq!(image.layers.len(), 2, "busybox layer + RUN layer");
    assert_eq!(
        image.cfg("Cmd"),
        &serde_json::json!(["sh"]),
        "base config is inherited"
    );
    image
        .check_diff_ids()
        .expect("diff_ids match layers and history");
}

#[test]
fn base_as_oci_manifest() {
    build_on("@BASE@");
}

#[test]
fn base_as_docker_schema2_manifest() {
    build_on("@BASE_DOCKER@");
}

#[test]
fn base_as_image_index_picks_linux_amd64() {
    build_on("@BASE_INDEX@");
}
