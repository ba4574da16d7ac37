//! A small synthetic image: gzip layers made with tar + flate2, a config with matching diff ids.

use std::io::Write;
use std::process::Command;

use flate2::write::GzEncoder;
use kiln_exporter::ImageBundle;
use kiln_oci::media_types::OCI_LAYER_GZIP;
use kiln_oci::{ContainerConfig, ContentStore, Descriptor, Digest, ImageConfig, ImageRef, RootFs};
use tempfile::TempDir;

/// A store holding an image's blobs.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) store: ContentStore,
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<Descriptor>,
}

impl Fixture {
    pub(crate) fn bundle(&self) -> ImageBundle {
        ImageBundle::new(&self.config, self.layers.clone(), &self.store).unwrap()
    }
}

/// A gzip layer with `files`; returns (blob, diff id).
pub(crate) fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let raw = b.into_inner().unwrap();
    let diff = Digest::of(&raw);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff)
}

/// An image of two layers whose files mention `seed`, for `arch`.
pub(crate) fn image_for(seed: &str, arch: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let first = format!("hello from {seed}\n");
    let second = format!("second layer of {seed}\n");
    for files in [
        vec![("hello.txt", first.as_bytes())],
        vec![
            ("etc/motd", second.as_bytes()),
            ("hello2.txt", b"x".as_slice()),
        ],
    ] {
        let (blob, diff) = layer(&files);
        let digest = store.write_bytes(&blob).unwrap();
        layers.push(Descriptor {
            media_type: OCI_LAYER_GZIP.into(),
            digest,
            size: blob.len() as u64,
            platform: None,
            annotations: None,
        });
        diff_ids.push(diff);
    }
    let config = ImageConfig {
        architecture: arch.into(),
        os: "linux".into(),
        config: ContainerConfig {
            cmd: Some(vec!["/hello".into()]),
            env: Some(vec![format!("SEED={seed}")]),
            ..Default::default()
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    Fixture {
        dir,
        store,
        config,
        layers,
    }
}

pub(crate) fn image(seed: &str) -> Fixture {
    image_for(seed, "amd64")
}

pub(crate) fn reference(s: &str) -> ImageRef {
    s.parse().unwrap()
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// skopeo inspect's JSON.
pub(crate) fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    let out = run_ok(Command::new("skopeo").arg("inspect").args(args));
    serde_json::from_str(&out).unwrap()
}
