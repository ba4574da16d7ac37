//! Docker tar and OCI layout outputs, checked with skopeo and umoci.

use std::io::Read;
use std::process::Command;

use kiln_exporter::{write_docker_tar, write_oci_layout};

use crate::fixture::{image, run_ok, skopeo_inspect};

fn tar_member(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return Some(v);
        }
    }
    None
}

#[test]
fn docker_tar_is_readable_by_skopeo_with_normalised_tags() {
    let f = image("docker");
    let bundle = f.bundle();
    let dest = f.dir.path().join("out/app.tar");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let names = vec![
        "docker.io/library/app:1".to_string(),
        "127.0.0.1:5000/x/y:2".to_string(),
    ];
    write_docker_tar(&bundle, &names, &f.store, &dest).unwrap();

    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_member(&dest, "manifest.json").unwrap()).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["app:1", "127.0.0.1:5000/x/y:2"])
    );
    assert_eq!(
        manifest[0]["Config"],
        format!("blobs/sha256/{}", bundle.config_digest.hex())
    );
    assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 2);
    let repos: serde_json::Value =
        serde_json::from_slice(&tar_member(&dest, "repositories").unwrap()).unwrap();
    assert!(repos["app"]["1"].is_string(), "{repos}");
    let index: serde_json::Value =
        serde_json::from_slice(&tar_member(&dest, "index.json").unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/app:1"
    );
    assert!(tar_member(&dest, "oci-layout").is_some());
    // No temp file is left beside the output.
    let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1);

    let v = skopeo_inspect(&[&format!("docker-archive:{}", dest.display())]);
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Env"], serde_json::json!(["SEED=docker"]));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["RepoTags"],
        serde_json::json!([]),
        "skopeo lists registry tags only"
    );
    // The OCI layout inside the same tar is readable too.
    let v = skopeo_inspect(&[&format!("oci-archive:{}:1", dest.display())]);
    assert_eq!(v["Digest"], bundle.manifest_digest.as_str());
}

#[test]
fn oci_archive_is_readable_by_skopeo() {
    let f = image("ociarchive");
    let bundle = f.bundle();
    let dest = f.dir.path().join("app-oci.tar");
    write_oci_layout(&bundle, &["app:1".to_string()], &f.store, &dest, true).unwrap();
    let v = skopeo_inspect(&[&format!("oci-archive:{}", dest.display())]);
    assert_eq!(v["Digest"], bundle.manifest_digest.as_str());
    assert_eq!(v["Env"], serde_json::json!(["SEED=ociarchive"]));
    let index: serde_json::Value =
        serde_json::from_slice(&tar_member(&dest, "index.json").unwrap()).unwrap();
    let ann = &index["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "1");
    assert_eq!(ann["io.containerd.image.name"], "docker.io/library/app:1");
    // Writing again gives the same bytes (fixed tar metadata).
    let first = std::fs::read(&dest).unwrap();
    write_oci_layout(&bundle, &["app:1".to_string()], &f.store, &dest, true).unwrap();
    assert_eq!(first, std::fs::read(&dest).unwrap());
}

#[test]
fn oci_dir_unpacks_with_umoci_and_keeps_other_images() {
    let f = image("ocidir");
    let bundle = f.bundle();
    let dir = f.dir.path().join("layout");
    write_oci_layout(&bundle, &["app:1".to_string()], &f.store, &dir, false).unwrap();
    let other = image("other");
    let other_bundle = other.bundle();
    write_oci_layout(
        &other_bundle,
        &["app:2".to_string()],
        &other.store,
        &dir,
        false,
    )
    .unwrap();

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");

    let unpacked = f.dir.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:1", dir.display()))
            .arg(&unpacked),
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.join("rootfs/hello.txt")).unwrap(),
        "hello from ocidir\n"
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.join("rootfs/etc/motd")).unwrap(),
        "second layer of ocidir\n"
    );
    let v = skopeo_inspect(&[&format!("oci:{}:2", dir.display())]);
    assert_eq!(v["Digest"], other_bundle.manifest_digest.as_str());
}

#[test]
fn missing_layer_blob_is_a_store_error_naming_the_digest() {
    let f = image("missing");
    let bundle = f.bundle();
    std::fs::remove_file(f.store.blob_path(&f.layers[1].digest)).unwrap();
    let dest = f.dir.path().join("x.tar");
    let err = write_docker_tar(&bundle, &["app:1".into()], &f.store, &dest).unwrap_err();
    assert!(err.to_string().contains(f.layers[1].digest.hex()), "{err}");
    assert!(!dest.exists());
}

#[test]
fn docker_load_accepts_the_tar() {
    let f = image("dockerload");
    let bundle = f.bundle();
    let dest = f.dir.path().join("load.tar");
    write_docker_tar(&bundle, &["kiln-export-test:1".into()], &f.store, &dest).unwrap();
    let d = kiln_testsupport::Dockerd::start().unwrap();
    let out = d.docker(&["load", "-i", dest.to_str().unwrap()]).unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Loaded image: kiln-export-test:1"), "{text}");
    let out = d
        .docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "kiln-export-test:1",
        ])
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        bundle.config_digest.as_str()
    );
}
