//! Reading what a build produced: OCI layouts (dir or tar), docker-save tars, layer tars,
//! and real-tool unpacking (`skopeo copy` + `umoci unpack`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest;
use tempfile::TempDir;

use crate::{ensure_tools, run, Error, Registry, Result};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One image read from an output: its manifest, config and (compressed) layer blobs.
#[derive(Debug, Clone)]
pub struct Image {
    /// The top-level `index.json` (OCI layouts, and docker tars that carry one).
    pub index: Option<Value>,
    /// `org.opencontainers.image.ref.name` of the index entry that was followed.
    pub ref_name: Option<String>,
    /// Digest of the image manifest (`sha256:…`); empty for docker tars without an index.
    pub manifest_digest: String,
    /// The image manifest (OCI layouts) or the docker tar's `manifest.json` entry.
    pub manifest: Value,
    /// The image config.
    pub config: Value,
    /// The layer blobs, bottom first, as stored (gzip, zstd or plain tar).
    pub layers: Vec<Vec<u8>>,
}

/// Kind of a layer tar entry or file tree node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Hard link to an earlier entry.
    Hardlink,
    /// Character device (also overlay whiteouts on disk).
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Anything else.
    Other,
}

/// One entry of a layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path without leading `./` or `/` and without trailing `/` (e.g. `etc/passwd`).
    pub path: String,
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Link target of symlinks and hardlinks.
    pub link: Option<String>,
    /// File content (empty for non-files).
    pub content: Vec<u8>,
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| Error::invalid("digest", digest.to_string()))?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

fn str_field<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| Error::invalid(what, format!("no string field {key:?} in {v}")))
}

impl Image {
    /// Read the first image of the OCI layout directory `dir` (following a nested index to
    /// its linux/amd64 entry, or its first entry).
    pub fn from_oci_dir(dir: &Path) -> Result<Image> {
        Self::from_oci_dir_ref(dir, None)
    }

    /// Read the image whose index entry has `org.opencontainers.image.ref.name == ref_name`
    /// (any entry's if `None`: the first).
    pub fn from_oci_dir_ref(dir: &Path, ref_name: Option<&str>) -> Result<Image> {
        let index = read_json(&dir.join("index.json"))?;
        let entries = index["manifests"]
            .as_array()
            .ok_or_else(|| Error::invalid("index.json", "no manifests array"))?;
        let name_of = |e: &Value| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        };
        let entry = match ref_name {
            None => entries.first(),
            Some(r) => entries.iter().find(|e| name_of(e).as_deref() == Some(r)),
        }
        .ok_or_else(|| {
            Error::invalid(
                "index.json",
                format!("no manifest for ref {ref_name:?}: {index}"),
            )
        })?;
        let found_name = name_of(entry);
        let mut desc = entry.clone();
        let mut manifest;
        loop {
            let digest = str_field(&desc, "digest", "descriptor")?.to_string();
            manifest = read_json(&blob_path(dir, &digest)?)?;
            let media = manifest["mediaType"]
                .as_str()
                .or(desc["mediaType"].as_str())
                .unwrap_or_default();
            if !INDEX_TYPES.contains(&media) {
                let config_digest = str_field(&manifest["config"], "digest", "manifest config")?;
                let config = read_json(&blob_path(dir, config_digest)?)?;
                let mut layers = Vec::new();
                for l in manifest["layers"].as_array().into_iter().flatten() {
                    let p = blob_path(dir, str_field(l, "digest", "layer")?)?;
                    layers.push(std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?);
                }
                return Ok(Image {
                    index: Some(index),
                    ref_name: found_name,
                    manifest_digest: digest,
                    manifest,
                    config,
                    layers,
                });
            }
            let list = manifest["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            desc = list
                .iter()
                .find(|m| {
                    m["platform"]["architecture"] == "amd64" && m["platform"]["os"] == "linux"
                })
                .or(list.first())
                .cloned()
                .ok_or_else(|| Error::invalid("image index", format!("empty: {manifest}")))?;
        }
    }

    /// Read an OCI layout tar (extracted to a temp dir first).
    pub fn from_oci_tar(path: &Path) -> Result<Image> {
        let dir = extract_tar(path)?;
        Self::from_oci_dir(dir.path())
    }

    /// Read a docker-save tar: `manifest.json`'s first entry, its `Config` and `Layers`.
    pub fn from_docker_tar(path: &Path) -> Result<Image> {
        let dir = extract_tar(path)?;
        let root = dir.path();
        let manifest_json = read_json(&root.join("manifest.json"))?;
        let manifest = manifest_json
            .get(0)
            .cloned()
            .ok_or_else(|| Error::invalid("manifest.json", format!("empty: {manifest_json}")))?;
        let config = read_json(&root.join(str_field(&manifest, "Config", "manifest.json")?))?;
        let mut layers = Vec::new();
        for l in manifest["Layers"].as_array().into_iter().flatten() {
            let p = root.join(
                l.as_str()
                    .ok_or_else(|| Error::invalid("manifest.json Layers", l.to_string()))?,
            );
            layers.push(std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?);
        }
        let index = read_json(&root.join("index.json")).ok();
        let first = index.as_ref().map(|i| i["manifests"][0].clone());
        let manifest_digest = first
            .as_ref()
            .and_then(|f| f["digest"].as_str())
            .unwrap_or_default()
            .to_string();
        let ref_name = first
            .as_ref()
            .and_then(|f| f["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string);
        Ok(Image {
            index,
            ref_name,
            manifest_digest,
            manifest,
            config,
            layers,
        })
    }

    /// The entries of every layer, bottom layer first.
    pub fn entries(&self) -> Result<Vec<LayerEntry>> {
        let mut all = Vec::new();
        for l in &self.layers {
            all.extend(layer_entries(l)?);
        }
        Ok(all)
    }

    /// The content of regular file `path` (no leading `/`) as the topmost layer has it.
    pub fn file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let path = path.trim_start_matches('/');
        Ok(self
            .entries()?
            .into_iter()
            .rev()
            .find(|e| e.path == path)
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.content))
    }

    /// Check the config's `rootfs.diff_ids` against the layers: same count, and each is the
    /// sha256 of the uncompressed layer tar. Also checks that the history has exactly one
    /// non-`empty_layer` entry per layer.
    pub fn check_diff_ids(&self) -> Result<()> {
        let diff_ids: Vec<&str> = self.config["rootfs"]["diff_ids"]
            .as_array()
            .ok_or_else(|| Error::invalid("config", "no rootfs.diff_ids"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if diff_ids.len() != self.layers.len() {
            return Err(Error::invalid(
                "config",
                format!(
                    "{} diff_ids for {} layers",
                    diff_ids.len(),
                    self.layers.len()
                ),
            ));
        }
        let non_empty = self.config["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["empty_layer"] != Value::Bool(true))
            .count();
        if non_empty != diff_ids.len() {
            return Err(Error::invalid(
                "config",
                format!(
                    "{non_empty} non-empty history entries for {} diff_ids",
                    diff_ids.len()
                ),
            ));
        }
        for (i, (layer, want)) in self.layers.iter().zip(&diff_ids).enumerate() {
            let got = format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(decompress(layer)?))
            );
            if got != *want {
                return Err(Error::invalid(
                    "config",
                    format!("layer {i}: diff_id {want} but content hashes to {got}"),
                ));
            }
        }
        Ok(())
    }

    /// The config's `config` object field `key` (e.g. `"Env"`), `Null` if absent.
    pub fn cfg(&self, key: &str) -> &Value {
        &self.config["config"][key]
    }

    /// Env entries as `NAME -> value`.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.cfg("Env")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e.as_str()?
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }
}

/// Extract a tar file into a new temp dir.
pub(crate) fn extract_tar(path: &Path) -> Result<TempDir> {
    let dir =
        tempfile::tempdir().map_err(|e| Error::io("create tempdir", std::env::temp_dir(), e))?;
    let f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    tar::Archive::new(f)
        .unpack(dir.path())
        .map_err(|e| Error::io("untar", path, e))?;
    Ok(dir)
}

fn layer_reader(blob: &[u8]) -> Result<Box<dyn Read + '_>> {
    Ok(if blob.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(blob))
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(blob).map_err(|e| Error::io("zstd", "layer", e))?)
    } else {
        Box::new(blob)
    })
}

fn decompress(blob: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    layer_reader(blob)?
        .read_to_end(&mut out)
        .map_err(|e| Error::io("decompress", "layer", e))?;
    Ok(out)
}

/// List the entries of a layer blob (gzip, zstd or plain tar, detected by magic bytes).
pub fn layer_entries(blob: &[u8]) -> Result<Vec<LayerEntry>> {
    let mut archive = tar::Archive::new(layer_reader(blob)?);
    let mut out = Vec::new();
    let io = |e| Error::io("read layer tar", "layer", e);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::Hardlink,
            tar::EntryType::Char => EntryKind::Char,
            tar::EntryType::Block => EntryKind::Block,
            tar::EntryType::Fifo => EntryKind::Fifo,
            _ => EntryKind::Other,
        };
        let (mode, uid, gid, mtime) = (
            h.mode().map_err(io)? & 0o7777,
            h.uid().map_err(io)?,
            h.gid().map_err(io)?,
            h.mtime().map_err(io)?,
        );
        let link = entry
            .link_name()
            .map_err(io)?
            .map(|l| l.to_string_lossy().into_owned());
        let mut content = Vec::new();
        if kind == EntryKind::File {
            entry.read_to_end(&mut content).map_err(io)?;
        }
        out.push(LayerEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            link,
            content,
        });
    }
    Ok(out)
}

/// An OCI layout (from `skopeo copy`) kept in a temp dir.
pub fn skopeo_to_layout(source: &str, opts: &[String], tag: &str) -> Result<TempDir> {
    ensure_tools()?;
    let dir =
        tempfile::tempdir().map_err(|e| Error::io("create tempdir", std::env::temp_dir(), e))?;
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .args(opts)
        .arg(source)
        .arg(format!("oci:{}:{tag}", dir.path().display())))?;
    Ok(dir)
}

/// Pull `reference` (`127.0.0.1:PORT/name:tag`) from `registry` with `skopeo copy` into a new
/// OCI layout tagged `tag`.
pub fn pull_to_layout(registry: &Registry, reference: &str, tag: &str) -> Result<TempDir> {
    skopeo_to_layout(
        &format!("docker://{reference}"),
        &registry.skopeo_opts("src"),
        tag,
    )
}

/// A bundle unpacked by `umoci unpack`: `rootfs/` and the runtime `config.json`.
#[derive(Debug)]
pub struct Unpacked {
    dir: TempDir,
}

impl Unpacked {
    /// The unpacked root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The OCI runtime config umoci generated from the image config.
    pub fn runtime_config(&self) -> Result<Value> {
        read_json(&self.dir.path().join("bundle/config.json"))
    }
}

/// `umoci unpack --image LAYOUT:TAG` into a temp bundle; `tag` defaults to the
/// `org.opencontainers.image.ref.name` of the layout's first index entry.
pub fn umoci_unpack(layout: &Path, tag: Option<&str>) -> Result<Unpacked> {
    ensure_tools()?;
    let tag = match tag {
        Some(t) => t.to_string(),
        None => {
            let index = read_json(&layout.join("index.json"))?;
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .ok_or_else(|| {
                    Error::invalid(
                        "index.json",
                        format!("first entry has no ref.name: {index}"),
                    )
                })?
                .to_string()
        }
    };
    let dir =
        tempfile::tempdir().map_err(|e| Error::io("create tempdir", std::env::temp_dir(), e))?;
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dir.path().join("bundle")))?;
    Ok(Unpacked { dir })
}
