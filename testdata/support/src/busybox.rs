//! A busybox base image built offline from busybox-static's `/bin/busybox`, written as an OCI
//! layout by hand (sorted entries, fixed mtimes, so its digests are stable) and pushed with
//! skopeo as an OCI manifest, a Docker schema 2 manifest or an image index.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{ensure_tools, run, Error, Registry, Result};

/// The image's `PATH`, as in Docker's official images.
pub const BUSYBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// 2000-01-01T00:00:00Z: every entry's mtime and the config's `created`.
const EPOCH: u64 = 946_684_800;
const CREATED: &str = "2000-01-01T00:00:00Z";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n";

/// The gzip layer and its diff-id, built once per process.
struct Layer {
    gz: Vec<u8>,
    diff_id: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn layer() -> Result<&'static Layer> {
    static LAYER: OnceLock<std::result::Result<Layer, String>> = OnceLock::new();
    LAYER
        .get_or_init(|| build_layer().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::invalid("busybox layer", e.clone()))
}

fn build_layer() -> Result<Layer> {
    ensure_tools()?;
    let busybox =
        std::fs::read("/bin/busybox").map_err(|e| Error::io("read", "/bin/busybox", e))?;
    let list = run(Command::new("/bin/busybox").arg("--list"))?;
    let applets: std::collections::BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect();

    // (path, kind) sorted by path; kind: Dir(mode) | File(mode, bytes) | Link(target).
    enum Kind<'a> {
        Dir(u32),
        File(u32, &'a [u8]),
        Link(&'static str),
    }
    let mut entries: Vec<(String, Kind<'_>)> = Vec::new();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sbin", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
    ] {
        entries.push((format!("{dir}/"), Kind::Dir(mode)));
    }
    entries.push(("bin/busybox".into(), Kind::File(0o755, &busybox)));
    for a in &applets {
        entries.push((format!("bin/{a}"), Kind::Link("busybox")));
    }
    entries.push(("etc/group".into(), Kind::File(0o644, GROUP.as_bytes())));
    entries.push(("etc/passwd".into(), Kind::File(0o644, PASSWD.as_bytes())));
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind) in &entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(EPOCH);
        h.set_uid(0);
        h.set_gid(0);
        let io = |e| Error::io("tar append", path.as_str(), e);
        match kind {
            Kind::Dir(mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                builder
                    .append_data(&mut h, path, std::io::empty())
                    .map_err(io)?;
            }
            Kind::File(mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                builder.append_data(&mut h, path, *data).map_err(io)?;
            }
            Kind::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                builder.append_link(&mut h, path, target).map_err(io)?;
            }
        }
    }
    let tar = builder
        .into_inner()
        .map_err(|e| Error::io("tar finish", "busybox layer", e))?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut gz, &tar).map_err(|e| Error::io("gzip", "busybox layer", e))?;
    let gz = gz
        .finish()
        .map_err(|e| Error::io("gzip", "busybox layer", e))?;
    Ok(Layer {
        diff_id: sha256(&tar),
        gz,
    })
}

/// Write `bytes` as a blob of the layout at `dir`; returns its descriptor fields.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Result<Value> {
    let digest = sha256(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("mkdir", &blobs, e))?;
    let path = blobs.join(digest.trim_start_matches("sha256:"));
    std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
    Ok(json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Write config + manifest for `arch` into the layout; returns the manifest descriptor.
fn put_image(dir: &Path, arch: &str) -> Result<Value> {
    let layer = layer()?;
    let layer_desc = put_blob(
        dir,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &layer.gz,
    )?;
    let config = json!({
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {"Env": [format!("PATH={BUSYBOX_PATH}")], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": CREATED, "created_by": "kiln-testsupport: busybox from /bin/busybox"}],
    });
    let config_desc = put_blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &to_bytes(&config),
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    put_blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &to_bytes(&manifest),
    )
}

fn write_layout(dir: &Path, mut top: Value) -> Result<()> {
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]});
    for (name, v) in [
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, to_bytes(&v)).map_err(|e| Error::io("write", &p, e))?;
    }
    Ok(())
}

/// Write the busybox image as an OCI layout at `dir` with tag `latest` (one linux/amd64
/// manifest). Same bytes every time on the same machine.
pub fn busybox_layout(dir: &Path) -> Result<()> {
    let manifest = put_image(dir, "amd64")?;
    write_layout(dir, manifest)
}

/// Write an OCI layout whose `latest` is an image index with linux/amd64 and linux/arm64
/// entries (the arm64 one has the same layer, only its config says arm64).
fn busybox_index_layout(dir: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for arch in ["arm64", "amd64"] {
        let mut m = put_image(dir, arch)?;
        m["platform"] = json!({"architecture": arch, "os": "linux"});
        entries.push(m);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let desc = put_blob(
        dir,
        "application/vnd.oci.image.index.v1+json",
        &to_bytes(&index),
    )?;
    write_layout(dir, desc)
}

/// Push the image tagged `tag` in the OCI layout `layout` to `registry` as `repo_tag`
/// (e.g. `"busybox:latest"`) with extra skopeo options (e.g. `--format=v2s2`, `--all`).
/// Returns the full reference `127.0.0.1:PORT/repo:tag`.
pub fn push_oci_dir(
    layout: &Path,
    tag: &str,
    registry: &Registry,
    repo_tag: &str,
    extra: &[&str],
) -> Result<String> {
    let reference = format!("{}/{repo_tag}", registry.addr());
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--retry-times=3"])
        .args(registry.skopeo_opts("dest"))
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{reference}")))?;
    Ok(reference)
}

fn push_variant(
    registry: &Registry,
    repo_tag: &str,
    index: bool,
    extra: &[&str],
) -> Result<String> {
    let dir =
        tempfile::tempdir().map_err(|e| Error::io("create tempdir", std::env::temp_dir(), e))?;
    if index {
        busybox_index_layout(dir.path())?;
    } else {
        busybox_layout(dir.path())?;
    }
    push_oci_dir(dir.path(), "latest", registry, repo_tag, extra)
}

/// Push busybox as an OCI image manifest; returns `"127.0.0.1:PORT/busybox:latest"`.
pub fn busybox_image(registry: &Registry) -> Result<String> {
    push_variant(registry, "busybox:latest", false, &[])
}

/// Push busybox as a Docker schema 2 manifest; returns `"127.0.0.1:PORT/busybox-docker:latest"`.
pub fn busybox_image_docker(registry: &Registry) -> Result<String> {
    push_variant(registry, "busybox-docker:latest", false, &["--format=v2s2"])
}

/// Push busybox as an OCI image index (linux/arm64 first, then linux/amd64); returns
/// `"127.0.0.1:PORT/busybox-index:latest"`.
pub fn busybox_image_index(registry: &Registry) -> Result<String> {
    push_variant(registry, "busybox-index:latest", true, &["--all"])
}
