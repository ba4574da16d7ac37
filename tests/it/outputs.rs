//! The multi-stage build (`testdata/e2e/multistage`) through every output: docker tar, OCI tar,
//! OCI dir and a registry push, each unpacked with `umoci unpack` and compared file by file,
//! plus `docker load` + `docker run` against a real dockerd.

use std::path::Path;

use kiln_testsupport::{
    pull_to_layout, skopeo_to_layout, umoci_unpack, Dockerd, Image, Node, Tree,
};
use serde_json::json;

use crate::common::{shared, Fixture, Outcome};

/// The final image's filesystem as the Dockerfile defines it.
fn expected_tree() -> Tree {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let greeting = std::fs::read(crate::common::case_dir("multistage").join("greeting.txt"))
        .expect("read greeting");
    let mut t = Tree::default();
    let mut put = |p: &str, n: Node| {
        t.0.insert(p.to_string(), n);
    };
    put("app", Node::dir(0o755, 0, 0));
    put("app/bin", Node::dir(0o755, 0, 0));
    put("app/bin/busybox", Node::file(&busybox, 0o755, 0, 0));
    put("app/bin/cat", Node::symlink("busybox", 0, 0));
    put("app/etc", Node::dir(0o755, 0, 0));
    put(
        "app/etc/owned.conf",
        Node::file(b"owned\n", 0o640, 1000, 1001),
    );
    put("app/greeting.txt", Node::file(&greeting, 0o600, 0, 0));
    put(
        "app/hello.txt",
        Node::file(b"hello from kiln\n", 0o644, 0, 0),
    );
    put("data", Node::dir(0o755, 0, 0));
    t
}

/// Unpack `layout` with umoci (tag from its index) and compare to [`expected_tree`].
fn assert_rootfs(layout: &Path, tag: Option<&str>) {
    let unpacked = umoci_unpack(layout, tag).expect("umoci unpack");
    let mut tree = Tree::read(&unpacked.rootfs()).expect("read rootfs");
    tree.0.remove(""); // the rootfs directory itself is umoci's
    let diff = tree.diff(&expected_tree());
    assert!(
        diff.is_empty(),
        "rootfs differs from the Dockerfile's:\n{}",
        diff.join("\n")
    );
}

/// Field-by-field check of the final image config.
fn assert_config(image: &Image) {
    let env = image.env();
    assert_eq!(
        env.get("PATH").map(String::as_str),
        Some("/app/bin"),
        "Env: {}",
        image.cfg("Env")
    );
    assert_eq!(
        env.get("GREETING").map(String::as_str),
        Some("hi"),
        "Env: {}",
        image.cfg("Env")
    );
    assert_eq!(env.len(), 2, "Env: {}", image.cfg("Env"));
    assert_eq!(image.cfg("Entrypoint"), &json!(["/app/bin/busybox"]));
    assert_eq!(image.cfg("Cmd"), &json!(["cat", "/app/hello.txt"]));
    assert_eq!(image.cfg("WorkingDir"), &json!("/data"));
    assert_eq!(image.cfg("User"), &json!("1000:1001"));
    assert_eq!(image.cfg("ExposedPorts"), &json!({"8080/tcp": {}}));
    assert_eq!(
        image.cfg("Labels"),
        &json!({"org.example.name": "multistage", "org.example.version": "1.0"})
    );
    assert_eq!(image.config["architecture"], "amd64");
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["rootfs"]["type"], "layers");
    let created = image.config["created"].as_str().unwrap_or_default();
    assert!(
        created.len() >= 20 && created.as_bytes()[4] == b'-' && created.contains('T'),
        "created: {created:?}"
    );
    assert!(!image.layers.is_empty(), "no layers");
    image
        .check_diff_ids()
        .expect("diff_ids match layers and history");
}

fn build_multistage(f: &Fixture<'_>, args: &[&str]) -> Outcome {
    let out = f.build(args);
    out.ok();
    out
}

#[test]
fn docker_tar_output_unpacks_to_expected_files() {
    let f = Fixture::case("multistage");
    let tar = f.out("image.tar");
    let dest = format!("type=docker,dest={}", tar.display());
    build_multistage(&f, &["-t", "kiln-e2e/multistage:docker", "-o", &dest]);

    let image = Image::from_docker_tar(&tar).expect("read docker tar");
    assert_config(&image);
    let repo_tags = &image.manifest["RepoTags"];
    assert!(
        repo_tags.as_array().into_iter().flatten().any(|t| t
            .as_str()
            .is_some_and(|t| t.ends_with("kiln-e2e/multistage:docker"))),
        "RepoTags: {repo_tags}"
    );
    // A real consumer reads it: skopeo converts the docker-archive to an OCI layout for umoci.
    let layout = skopeo_to_layout(&format!("docker-archive:{}", tar.display()), &[], "img")
        .expect("skopeo copy docker-archive");
    assert_rootfs(layout.path(), Some("img"));
}

#[test]
fn oci_tar_output_unpacks_to_expected_files_and_shows_plain_progress() {
    let f = Fixture::case("multistage");
    let tar = f.out("image.oci.tar");
    let dest = format!("type=oci,dest={}", tar.display());
    let out = build_multistage(&f, &["-t", "kiln-e2e/multistage:oci", "-o", &dest]);

    let image = Image::from_oci_tar(&tar).expect("read OCI tar");
    assert_config(&image);
    assert!(
        image.ref_name.is_some(),
        "index.json entry lacks org.opencontainers.image.ref.name"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    tar::Archive::new(std::fs::File::open(&tar).expect("open tar"))
        .unpack(dir.path())
        .expect("untar");
    assert_rootfs(dir.path(), None);

    // BuildKit-style plain progress: `#N [stage i/n] INSTR`, `#N <secs> <output>`, `#N DONE <secs>s`.
    let progress = out.progress();
    assert!(
        progress
            .iter()
            .any(|(_, l)| l.starts_with("[build ") && l.contains("RUN ")),
        "no `#N [build i/n] RUN` line\n{}",
        out.text()
    );
    assert!(
        progress.iter().any(|(_, l)| l.starts_with("DONE ")),
        "no `#N DONE` line\n{}",
        out.text()
    );
    let marker = progress
        .iter()
        .find(|(_, l)| l.ends_with(" kiln-progress-marker"))
        .unwrap_or_else(|| panic!("RUN output not shown as `#N <time> line`\n{}", out.text()));
    let secs = marker.1.split_whitespace().next().unwrap_or_default();
    assert!(
        secs.parse::<f64>().is_ok(),
        "timestamp {secs:?} in {marker:?}"
    );
}

#[test]
fn oci_dir_output_names_the_image_in_its_index() {
    let f = Fixture::case("multistage");
    let dir = f.out("layout");
    let dest = format!("type=oci,dest={},tar=false", dir.display());
    build_multistage(&f, &["-t", "kiln-e2e/multistage:dir", "-o", &dest]);

    let image = Image::from_oci_dir(&dir).expect("read OCI dir");
    let name = image
        .ref_name
        .clone()
        .expect("index.json entry lacks org.opencontainers.image.ref.name");
    assert!(!name.is_empty());
    assert_config(&image);
    assert_rootfs(&dir, None);
}

#[test]
fn pushed_image_pulls_back_identical() {
    let bases = shared();
    let f = Fixture::case("multistage");
    let by_tag = format!("{}/e2e/multistage:pushed", bases.registry.addr());
    build_multistage(&f, &["--push", "-t", &by_tag]);
    let layout =
        pull_to_layout(&bases.registry, &by_tag, "pulled").expect("skopeo copy from registry");
    let image = Image::from_oci_dir(layout.path()).expect("read pulled image");
    assert_config(&image);
    assert_rootfs(layout.path(), Some("pulled"));

    // The `type=image` output form, same root: the image is the same.
    let by_output = format!("{}/e2e/multistage:output", bases.registry.addr());
    let spec = format!("type=image,name={by_output},push=true");
    build_multistage(&f, &["-o", &spec]);
    let layout2 =
        pull_to_layout(&bases.registry, &by_output, "pulled").expect("skopeo copy from registry");
    let image2 = Image::from_oci_dir(layout2.path()).expect("read pulled image");
    assert_eq!(image2.config["rootfs"], image.config["rootfs"]);
    assert_rootfs(layout2.path(), Some("pulled"));
}

#[test]
fn docker_loads_and_runs_the_image() {
    let f = Fixture::case("multistage");
    let tar = f.out("load.tar");
    let dest = format!("type=docker,dest={}", tar.display());
    build_multistage(&f, &["-t", "kiln-e2e/load:1", "-o", &dest]);

    let dockerd = Dockerd::start().expect("start dockerd");
    let load = dockerd
        .docker(&["load", "-i", &tar.display().to_string()])
        .expect("docker load");
    assert!(
        String::from_utf8_lossy(&load.stdout).contains("kiln-e2e/load:1"),
        "docker load: {load:?}"
    );
    let run = dockerd
        .docker(&["run", "--rm", "--network=none", "kiln-e2e/load:1"])
        .expect("docker run");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from kiln\n");
    for (flag, want) in [("-u", "1000"), ("-g", "1001")] {
        let id = dockerd
            .docker(&[
                "run",
                "--rm",
                "--network=none",
                "kiln-e2e/load:1",
                "id",
                flag,
            ])
            .expect("docker run id");
        assert_eq!(
            String::from_utf8_lossy(&id.stdout).trim(),
            want,
            "USER 1000:1001 at run time"
        );
    }
    let owned = dockerd
        .docker(&[
            "run",
            "--rm",
            "--network=none",
            "kiln-e2e/load:1",
            "cat",
            "/app/etc/owned.conf",
        ])
        .expect("docker run cat");
    assert_eq!(String::from_utf8_lossy(&owned.stdout), "owned\n");
}

/// A base layer pulled from one repository of a registry is mounted into the pushed
/// repository (`POST …/blobs/uploads/?mount=…&from=busybox`, 201), never uploaded again.
#[test]
fn push_mounts_base_layers_from_their_repository() {
    let bases = shared();
    let f = Fixture::empty();
    f.write("Dockerfile", "FROM @BASE@\nRUN echo mounted > /m\n");
    let target = format!("{}/e2e/mount:1", bases.registry.addr());
    f.build(&["--push", "-t", &target]).ok();
    let layout = pull_to_layout(&bases.registry, &target, "pulled").expect("skopeo copy");
    let image = Image::from_oci_dir(layout.path()).expect("read pulled image");
    let base_layer = image.manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .trim_start_matches("sha256:")
        .to_string();
    let log = bases.registry.access_log();
    let mounts: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("POST /v2/e2e/mount/blobs/uploads/")
                && l.contains("from=busybox")
                && l.contains(&base_layer)
        })
        .collect();
    assert!(
        mounts.iter().any(|l| l.contains("\" 201 ")),
        "no successful mount of {base_layer}:\n{}",
        log.lines()
            .filter(|l| l.contains("e2e/mount"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("PUT /v2/e2e/mount/blobs/uploads/") && l.contains(&base_layer)),
        "the base layer was uploaded instead of mounted"
    );
}

/// `--load`: the image goes into the Docker daemon `DOCKER_HOST` names (through the `docker`
/// on PATH) and runs there; a daemon that is not there fails the build with docker's error.
#[test]
fn load_puts_the_image_into_docker() {
    let f = Fixture::empty();
    f.write(
        "Dockerfile",
        "FROM @BASE@\nRUN echo loaded > /l\nCMD [\"cat\", \"/l\"]\n",
    );
    let dockerd = Dockerd::start().expect("start dockerd");
    // Debian's docker CLI first: /usr/local/bin/docker may be another version.
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let kiln_with = |host: &str, how: &[&str]| {
        let root = f.root().display().to_string();
        let ctx = f.ctx().display().to_string();
        let mut args = vec!["build", "--progress=plain", "--root", root.as_str()];
        args.extend_from_slice(how);
        args.push(ctx.as_str());
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(&args)
            .env("PATH", &path)
            .env("DOCKER_HOST", host)
            .output()
            .expect("run kiln")
    };
    let kiln = |host: &str| kiln_with(host, &["--load", "-t", "kiln-e2e/loaded:1"]);
    let out = kiln(&format!("unix://{}", dockerd.socket().display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dockerd
        .docker(&["run", "--rm", "--network=none", "kiln-e2e/loaded:1"])
        .expect("docker run");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "loaded\n");
    // buildx's other spelling: -o type=docker without dest=.
    let out = kiln_with(
        &format!("unix://{}", dockerd.socket().display()),
        &["-o", "type=docker", "-t", "kiln-e2e/loaded:2"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dockerd
        .docker(&["run", "--rm", "--network=none", "kiln-e2e/loaded:2"])
        .expect("docker run");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "loaded\n");

    let missing = f.out("no-daemon.sock");
    let out = kiln(&format!("unix://{}", missing.display()));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--load: docker load failed"), "{err}");
}
