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

/// 13.3: `<Dockerfile>.dockerignore` next to the Dockerfile replaces the context's
/// `.dockerignore` (BuildKit's testDockerignoreOverride), also with `-f` elsewhere.
#[test]
fn dockerfile_specific_dockerignore_overrides_the_context_one() {
    let f = Fixture::empty();
    f.write("a.txt", "a")
        .write("b.txt", "b")
        .write(".dockerignore", "a.txt\n")
        .write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n")
        .write("Dockerfile.dockerignore", "b.txt\n*.dockerignore\n");
    let files = |image: &Image| -> Vec<String> {
        let mut v: Vec<String> = image
            .entries()
            .expect("layers")
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.path)
            .collect();
        v.sort();
        v
    };
    let dir = f.out("one");
    f.build(&["-o", &format!("type=oci,dest={},tar=false", dir.display())])
        .ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(files(&image), ["ctx/Dockerfile", "ctx/a.txt"]);

    // A Dockerfile outside the context, named by -f, brings its own ignore file.
    let df_dir = f.out("dockerfiles");
    std::fs::create_dir_all(&df_dir).expect("mkdir");
    std::fs::write(
        df_dir.join("app.Dockerfile"),
        "FROM scratch\nCOPY . /ctx/\n",
    )
    .expect("write");
    std::fs::write(df_dir.join("app.Dockerfile.dockerignore"), "*.txt\n").expect("write");
    let df = df_dir.join("app.Dockerfile").display().to_string();
    let dir = f.out("two");
    f.build(&[
        "-f",
        &df,
        "-o",
        &format!("type=oci,dest={},tar=false", dir.display()),
    ])
    .ok();
    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    assert_eq!(
        files(&image),
        [
            "ctx/.dockerignore",
            "ctx/Dockerfile",
            "ctx/Dockerfile.dockerignore"
        ]
    );
}

/// `kiln build -`: the context as a (gzip) tar on stdin, or just a Dockerfile (empty
/// context), as `docker build -` takes either.
#[test]
fn context_from_stdin_as_a_tar_or_a_dockerfile() {
    let f = Fixture::empty();
    let base = crate::common::shared().oci.clone();
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, path, body).expect("append");
        };
        add(
            &mut b,
            "Dockerfile",
            format!("FROM {base}\nCOPY sub/hello.txt sub/.wh.keep /\n").as_bytes(),
        );
        add(&mut b, "sub/hello.txt", b"from stdin");
        // Not a layer: a `.wh.` name is an ordinary file, not a whiteout.
        add(&mut b, "sub/.wh.keep", b"kept");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b.into_inner().expect("tar")).expect("gzip");
        gz.finish().expect("gzip")
    };
    let run = |stdin: Vec<u8>, out: &str| {
        let dir = f.out(out);
        let o = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--progress=plain", "--root"])
            .arg(f.root())
            .args([
                "-o",
                &format!("type=oci,dest={},tar=false", dir.display()),
                "-",
            ])
            .write_stdin(stdin)
            .output()
            .expect("run kiln");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Image::from_oci_dir(&dir).expect("read OCI dir")
    };
    let image = run(tar, "tar");
    assert_eq!(
        image.file("hello.txt").expect("read"),
        Some(b"from stdin".to_vec())
    );
    let names: Vec<String> = image
        .entries()
        .expect("layers")
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".wh.keep")), "{names:?}");
    let image = run(
        format!("FROM {base}\nRUN echo dockerfile-only > /d\n").into_bytes(),
        "df",
    );
    assert_eq!(
        image.file("d").expect("read"),
        Some(b"dockerfile-only\n".to_vec())
    );
    // Nothing of the unpacked context is left in the store.
    let leftovers: Vec<_> = std::fs::read_dir(f.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
