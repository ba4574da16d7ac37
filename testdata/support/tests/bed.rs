//! The test bed itself works against the real tools.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use kiln_testsupport::{
    busybox_image, busybox_image_docker, busybox_image_index, busybox_layout, pull_to_layout, run,
    umoci_unpack, Dockerd, EntryKind, Image, Node, Registry, RegistryAuth, Tree, BUSYBOX_PATH,
};
use serde_json::Value;

fn inspect(registry: &Registry, reference: &str, raw: bool) -> Value {
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect").args(registry.skopeo_opts(""));
    if raw {
        cmd.arg("--raw");
    }
    let out = run(cmd.arg(format!("docker://{reference}"))).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn plain_registry_starts_serves_and_stops() {
    let registry = Registry::start(RegistryAuth::None).unwrap();
    assert!(registry.addr().starts_with("127.0.0.1:"));
    assert_eq!(registry.v2_status().unwrap(), 200);
    let pid = registry.pid().unwrap();
    let dir = registry.dir().to_path_buf();
    assert!(
        registry.access_log().contains("\"GET /v2/ HTTP/1.0\" 200"),
        "{}",
        registry.access_log()
    );
    drop(registry);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry pid {pid} still running"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn basic_auth_registry_wants_credentials() {
    let registry = Registry::start(RegistryAuth::Basic {
        user: "kiln".into(),
        pass: "s3cret".into(),
    })
    .unwrap();
    assert_eq!(registry.v2_status().unwrap(), 401);
    assert!(registry.access_log().contains("\"GET /v2/ HTTP/1.0\" 401"));
    let reference = busybox_image(&registry).unwrap();
    let raw = inspect(&registry, &reference, true);
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // Wrong credentials are refused.
    let bad = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds=kiln:wrong"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn tls_registry_serves_https_with_its_ca() {
    let registry = Registry::start(RegistryAuth::Tls).unwrap();
    assert_eq!(
        registry.v2_status().unwrap(),
        400,
        "plain HTTP to a TLS port answers 400"
    );
    let ca = registry.ca_cert_path().unwrap();
    assert!(ca.exists());
    let reference = busybox_image(&registry).unwrap();
    let cfg = inspect(&registry, &reference, false);
    assert_eq!(cfg["Architecture"], "amd64");
    // Without the CA, verification fails.
    let out = Command::new("skopeo")
        .args(["inspect"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn busybox_layout_is_deterministic_and_unpacks_with_umoci() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    busybox_layout(a.path()).unwrap();
    busybox_layout(b.path()).unwrap();
    let (ia, ib) = (
        Image::from_oci_dir(a.path()).unwrap(),
        Image::from_oci_dir(b.path()).unwrap(),
    );
    assert_eq!(ia.manifest_digest, ib.manifest_digest);
    ia.check_diff_ids().unwrap();
    assert_eq!(ia.ref_name.as_deref(), Some("latest"));
    assert_eq!(ia.env()["PATH"], BUSYBOX_PATH);
    assert_eq!(ia.cfg("Cmd"), &serde_json::json!(["sh"]));
    let entries = ia.entries().unwrap();
    let sh = entries.iter().find(|e| e.path == "bin/sh").unwrap();
    assert_eq!(
        (sh.kind, sh.link.as_deref()),
        (EntryKind::Symlink, Some("busybox"))
    );

    let unpacked = umoci_unpack(a.path(), None).unwrap();
    let tree = Tree::read(&unpacked.rootfs()).unwrap();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    assert_eq!(
        tree.get("bin/busybox"),
        Some(&Node::file(&busybox, 0o755, 0, 0))
    );
    assert_eq!(tree.get("tmp"), Some(&Node::dir(0o1777, 0, 0)));
    assert_eq!(tree.get("var/tmp"), Some(&Node::dir(0o1777, 0, 0)));
    assert_eq!(tree.get("root"), Some(&Node::dir(0o700, 0, 0)));
    assert_eq!(tree.get("bin/sh"), Some(&Node::symlink("busybox", 0, 0)));
    let passwd = std::fs::read_to_string(unpacked.rootfs().join("etc/passwd")).unwrap();
    assert!(passwd.contains("nobody:x:65534:65534:"));
    // A tree compares equal to itself and reports each difference.
    assert!(tree.diff(&tree).is_empty());
    let mut other = tree.clone();
    other.0.remove("etc/group");
    assert_eq!(
        other.diff(&tree),
        vec!["missing /etc/group (expected File 644 0:0 39 bytes)".to_string()]
    );
}

#[test]
fn busybox_pushes_as_oci_docker_and_index() {
    let registry = Registry::start(RegistryAuth::None).unwrap();
    let oci = busybox_image(&registry).unwrap();
    assert_eq!(oci, format!("{}/busybox:latest", registry.addr()));
    assert_eq!(
        inspect(&registry, &oci, true)["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let cfg = inspect(&registry, &oci, false);
    assert_eq!(
        (cfg["Os"].as_str(), cfg["Architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );

    let docker = busybox_image_docker(&registry).unwrap();
    assert_eq!(
        inspect(&registry, &docker, true)["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    let index = busybox_image_index(&registry).unwrap();
    let raw = inspect(&registry, &index, true);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let arches: Vec<_> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].clone())
        .collect();
    assert_eq!(arches, vec!["arm64", "amd64"]);

    // Pull back with skopeo and read it: the amd64 entry of the index is followed.
    let layout = pull_to_layout(&registry, &index, "pulled").unwrap();
    let image = Image::from_oci_dir(layout.path()).unwrap();
    assert_eq!(image.config["architecture"], "amd64");
    assert!(image
        .file("etc/group")
        .unwrap()
        .unwrap()
        .starts_with(b"root:x:0:"));
    assert!(
        !registry.blob_gets().is_empty(),
        "pull shows blob GETs: {}",
        registry.access_log()
    );
}

#[test]
fn dockerd_loads_and_runs_busybox() {
    let layout = tempfile::tempdir().unwrap();
    busybox_layout(layout.path()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tar = scratch.path().join("bb-docker.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:latest", layout.path().display()))
        .arg(format!("docker-archive:{}:bb:test", tar.display())))
    .unwrap();
    let docker_image = Image::from_docker_tar(&tar).unwrap();
    assert_eq!(docker_image.layers.len(), 1);
    let dockerd = Dockerd::start().unwrap();
    dockerd
        .docker(&["load", "-i", tar.to_str().unwrap()])
        .unwrap();
    let out = dockerd
        .docker(&["run", "--rm", "--network=none", "bb:test", "echo", "hello"])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let dir = dockerd.dir().to_path_buf();
    drop(dockerd);
    assert!(!dir.exists(), "{} not removed", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "mounts left under {}",
        dir.display()
    );
}
