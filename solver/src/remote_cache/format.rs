//! The cache artifact: an OCI image manifest whose config lists cache records and whose
//! layers are the records' layer blobs (see the module documentation of
//! [`crate::remote_cache`] for the layout).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use kiln_ir::LayerRef;
use kiln_oci::media_types::{
    DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use kiln_oci::{Descriptor, Digest};

/// The media type of the config blob listing the records.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The manifest's `artifactType`.
pub const CACHE_ARTIFACT_TYPE: &str = "application/vnd.kiln.cache.v1";
/// The version of the config's schema.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// Layer media types a cache may carry (what kiln itself writes and pulls).
const LAYER_TYPES: [&str; 4] = [
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYER_TAR,
    DOCKER_LAYER_GZIP,
];

/// Why a cache document is unusable.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not JSON of the expected shape.
    #[error("invalid cache {what}: {source}")]
    Json {
        /// `manifest` or `config`.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// JSON of the right shape that breaks a rule of the format.
    #[error("invalid cache {what}: {reason}")]
    Invalid {
        /// `manifest` or `config`.
        what: &'static str,
        /// The rule.
        reason: String,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        what,
        reason: reason.into(),
    }
}

/// A layer as a cache record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheLayer {
    /// Media type of the blob.
    pub media_type: String,
    /// Digest of the (compressed) blob: one of the manifest's layers.
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
}

impl From<&LayerRef> for CacheLayer {
    fn from(l: &LayerRef) -> Self {
        CacheLayer {
            media_type: l.media_type.clone(),
            digest: l.blob.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
        }
    }
}

impl From<&CacheLayer> for LayerRef {
    fn from(l: &CacheLayer) -> Self {
        LayerRef {
            diff_id: l.diff_id.clone(),
            blob: l.digest.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

impl CacheLayer {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: None,
        }
    }
}

/// One exported cache record: a step's key and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheEntry {
    /// The cache key (64 hex digits).
    pub key: String,
    /// When the step first ran (RFC 3339, UTC): a hit reproduces the image's times.
    pub created: String,
    /// The layer the step added; absent when it added none (or for image sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<CacheLayer>,
}

/// The config blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    /// [`CACHE_FORMAT_VERSION`].
    pub version: u32,
    /// Records sorted by key, one per key.
    pub records: Vec<CacheEntry>,
}

/// The manifest as kiln writes it (an OCI image manifest with `artifactType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`].
    pub media_type: String,
    /// [`CACHE_ARTIFACT_TYPE`].
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The config blob ([`CACHE_CONFIG_MEDIA_TYPE`]).
    pub config: Descriptor,
    /// Every layer blob the records name, once each, in the order records first name them.
    pub layers: Vec<Descriptor>,
}

/// A cache ready to write: the config and manifest bytes and the layers to copy.
#[derive(Debug, Clone)]
pub struct EncodedCache {
    /// The config blob.
    pub config_bytes: Vec<u8>,
    /// Its descriptor.
    pub config: Descriptor,
    /// The manifest blob.
    pub manifest_bytes: Vec<u8>,
    /// Its descriptor.
    pub manifest: Descriptor,
    /// The layer blobs, once each.
    pub layers: Vec<Descriptor>,
}

/// True for 64 lower-case hex digits.
fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Encodes `records` (sorted and de-duplicated by key here; the first of a key wins).
/// The same records give the same bytes, so re-exporting an unchanged cache changes nothing.
pub fn encode(records: &[CacheEntry]) -> Result<EncodedCache, serde_json::Error> {
    let mut by_key: BTreeMap<&str, &CacheEntry> = BTreeMap::new();
    for r in records {
        by_key.entry(&r.key).or_insert(r);
    }
    let config = CacheConfig {
        version: CACHE_FORMAT_VERSION,
        records: by_key.into_values().cloned().collect(),
    };
    let mut seen = HashSet::new();
    let layers: Vec<Descriptor> = config
        .records
        .iter()
        .filter_map(|r| r.layer.as_ref())
        .filter(|l| seen.insert(l.digest.clone()))
        .map(CacheLayer::descriptor)
        .collect();
    let config_bytes = serde_json::to_vec(&config)?;
    let config_desc = Descriptor {
        media_type: CACHE_CONFIG_MEDIA_TYPE.into(),
        digest: Digest::of(&config_bytes),
        size: config_bytes.len() as u64,
        platform: None,
        annotations: None,
    };
    let manifest = CacheManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST.into(),
        artifact_type: Some(CACHE_ARTIFACT_TYPE.into()),
        config: config_desc.clone(),
        layers: layers.clone(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_desc = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: Digest::of(&manifest_bytes),
        size: manifest_bytes.len() as u64,
        platform: None,
        annotations: None,
    };
    Ok(EncodedCache {
        config_bytes,
        config: config_desc,
        manifest_bytes,
        manifest: manifest_desc,
        layers,
    })
}

/// Parses a cache manifest and checks it is one of kiln's.
pub fn parse_manifest(bytes: &[u8]) -> Result<CacheManifest, FormatError> {
    const WHAT: &str = "manifest";
    let m: CacheManifest =
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json { what: WHAT, source })?;
    if m.schema_version != 2 || m.media_type != OCI_MANIFEST {
        return Err(invalid(WHAT, "not an OCI image manifest"));
    }
    if m.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
        return Err(invalid(
            WHAT,
            format!(
                "config media type {:?} is not {CACHE_CONFIG_MEDIA_TYPE} (not a kiln cache)",
                m.config.media_type
            ),
        ));
    }
    Ok(m)
}

/// Parses the config of `manifest` (its bytes already verified against the descriptor) and
/// checks every record: keys are 64 hex digits, times are set, and each layer is one of the
/// manifest's layers with the same size and a layer media type kiln can unpack.
pub fn parse_config(manifest: &CacheManifest, bytes: &[u8]) -> Result<CacheConfig, FormatError> {
    const WHAT: &str = "config";
    let c: CacheConfig =
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json { what: WHAT, source })?;
    if c.version != CACHE_FORMAT_VERSION {
        return Err(invalid(
            WHAT,
            format!(
                "version {} (this kiln reads version {CACHE_FORMAT_VERSION})",
                c.version
            ),
        ));
    }
    let layers: BTreeMap<&Digest, &Descriptor> =
        manifest.layers.iter().map(|d| (&d.digest, d)).collect();
    for r in &c.records {
        if !is_key(&r.key) {
            return Err(invalid(WHAT, format!("bad record key {:?}", r.key)));
        }
        if r.created.is_empty() {
            return Err(invalid(WHAT, format!("record {} has no time", r.key)));
        }
        let Some(l) = &r.layer else { continue };
        let listed = layers
            .get(&l.digest)
            .is_some_and(|d| d.size == l.size && d.media_type == l.media_type);
        if !listed {
            return Err(invalid(
                WHAT,
                format!(
                    "record {} names layer {} that the manifest does not list",
                    r.key, l.digest
                ),
            ));
        }
        if !LAYER_TYPES.contains(&l.media_type.as_str()) {
            return Err(invalid(
                WHAT,
                format!("layer {} has media type {:?}", l.digest, l.media_type),
            ));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> CacheLayer {
        CacheLayer {
            media_type: OCI_LAYER_GZIP.into(),
            digest: Digest::of(&[n]),
            size: u64::from(n) + 10,
            diff_id: Digest::of(&[n, n]),
        }
    }

    fn entry(k: char, layer: Option<CacheLayer>) -> CacheEntry {
        CacheEntry {
            key: k.to_string().repeat(64),
            created: "2026-01-02T03:04:05.000000006Z".into(),
            layer,
        }
    }

    #[test]
    fn round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let records = vec![
            entry('b', Some(layer(1))),
            entry('a', Some(layer(2))),
            entry('c', None),
            // Same layer as `b`: listed once.
            entry('d', Some(layer(1))),
            // A second record for `a`: the first wins.
            entry('a', Some(layer(3))),
        ];
        let enc = encode(&records)?;
        let manifest = parse_manifest(&enc.manifest_bytes)?;
        assert_eq!(manifest.artifact_type.as_deref(), Some(CACHE_ARTIFACT_TYPE));
        assert_eq!(manifest.config, enc.config);
        assert_eq!(enc.config.digest, Digest::of(&enc.config_bytes));
        assert_eq!(enc.manifest.digest, Digest::of(&enc.manifest_bytes));
        let digests: Vec<&Digest> = manifest.layers.iter().map(|d| &d.digest).collect();
        assert_eq!(digests, [&layer(2).digest, &layer(1).digest]);
        let config = parse_config(&manifest, &enc.config_bytes)?;
        let keys: Vec<char> = config
            .records
            .iter()
            .filter_map(|r| r.key.chars().next())
            .collect();
        assert_eq!(keys, ['a', 'b', 'c', 'd']);
        assert_eq!(config.records[0].layer, Some(layer(2)));
        assert_eq!(config.records[2], entry('c', None));
        // A LayerRef survives the trip.
        let lr = LayerRef::from(&layer(5));
        assert_eq!(CacheLayer::from(&lr), layer(5));
        // Deterministic: the same records, in any order, give the same manifest.
        let mut shuffled = records.clone();
        shuffled.swap(0, 2);
        shuffled.swap(1, 3);
        assert_eq!(encode(&shuffled)?.manifest.digest, enc.manifest.digest);
        // The manifest is a plain OCI image manifest as JSON.
        let v: serde_json::Value = serde_json::from_slice(&enc.manifest_bytes)?;
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], OCI_MANIFEST);
        assert_eq!(v["config"]["mediaType"], CACHE_CONFIG_MEDIA_TYPE);
        Ok(())
    }

    #[test]
    fn rejects_what_is_not_a_kiln_cache() -> Result<(), Box<dyn std::error::Error>> {
        let enc = encode(&[entry('a', Some(layer(1)))])?;
        let manifest = parse_manifest(&enc.manifest_bytes)?;
        // An image manifest is not a cache.
        let mut image: serde_json::Value = serde_json::from_slice(&enc.manifest_bytes)?;
        image["config"]["mediaType"] = kiln_oci::media_types::OCI_CONFIG.into();
        let e = parse_manifest(&serde_json::to_vec(&image)?).err();
        assert!(e.is_some_and(|e| e.to_string().contains("not a kiln cache")));
        assert!(parse_manifest(b"{}").is_err());
        // A record naming a layer the manifest does not list.
        let other = CacheConfig {
            version: CACHE_FORMAT_VERSION,
            records: vec![entry('a', Some(layer(9)))],
        };
        let e = parse_config(&manifest, &serde_json::to_vec(&other)?).err();
        assert!(e.is_some_and(|e| e.to_string().contains("does not list")));
        // Bad keys, other versions, unknown fields.
        let bad_key = CacheConfig {
            version: CACHE_FORMAT_VERSION,
            records: vec![CacheEntry {
                key: "../x".into(),
                ..entry('a', None)
            }],
        };
        assert!(parse_config(&manifest, &serde_json::to_vec(&bad_key)?).is_err());
        assert!(parse_config(&manifest, br#"{"version":2,"records":[]}"#).is_err());
        assert!(parse_config(&manifest, br#"{"version":1,"records":[],"x":1}"#).is_err());
        Ok(())
    }
}
