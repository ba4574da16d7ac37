//! Pulling: resolve a reference to a platform manifest and its config; fetch blobs.

use std::io::Write;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use super::transport::{error_for, request_error, with_retries, Transport};
use super::{RegistryError, ResolvedManifest};
use crate::media_types::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::reference::ImageRef;
use crate::store::{ContentStore, StoreError};
use crate::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform};

/// Manifests and configs larger than this are refused (the spec suggests registries accept
/// at least 4 MiB manifests).
const MAX_DOCUMENT: usize = 32 << 20;

fn pull_scope(image: &ImageRef) -> Vec<String> {
    vec![format!("repository:{}:pull", image.repository)]
}

/// `registry/repo@digest`, for messages about a blob or a child manifest.
fn at(image: &ImageRef, digest: &Digest) -> String {
    format!("{}/{}@{digest}", image.registry, image.repository)
}

/// GETs a manifest by tag or digest; returns its bytes and media type.
async fn get_manifest(
    t: &Transport,
    image: &ImageRef,
    reference: &str,
    shown: &str,
) -> Result<(Vec<u8>, String), RegistryError> {
    with_retries(|| async {
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let resp = t
            .send(image, &pull_scope(image), |c, base| {
                let url = Transport::url(base, image, &format!("manifests/{reference}"))?;
                Ok(c.get(url).header(ACCEPT, accept.as_str()))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(error_for(resp, shown).await);
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let bytes = read_limited(resp, shown).await?;
        Ok((bytes, media_type))
    })
    .await
}

async fn read_limited(resp: reqwest::Response, shown: &str) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| request_error(&e, shown))?;
        if out.len() + chunk.len() > MAX_DOCUMENT {
            return Err(RegistryError::Other {
                reference: shown.to_string(),
                reason: format!("document larger than {MAX_DOCUMENT} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn verify(shown: &str, expected: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
    let actual = Digest::of(bytes);
    if &actual != expected {
        return Err(RegistryError::DigestMismatch {
            reference: shown.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // Untyped (or oddly typed) documents: an index is the one with `manifests`.
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .is_some_and(|v| v.get("manifests").is_some()),
    }
}

/// The variant a platform means when it names none (containerd's `platforms` normalisation).
fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// Picks `want` from an index: os and architecture must match; the variant must match after
/// defaulting; when the caller names no variant, an entry without one is preferred.
pub(crate) fn choose<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let norm = |p: &Platform| {
        p.variant
            .clone()
            .or(default_variant(&p.architecture).map(String::from))
    };
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == want.os && p.architecture == want.architecture && norm(p) == norm(want)
            })
        })
        .collect();
    candidates
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.variant == want.variant)
        })
        .or(candidates.first())
        .copied()
}

fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// See `RegistryClient::resolve`.
pub(crate) async fn resolve(
    t: &Transport,
    image: &ImageRef,
    platform: &Platform,
    store: Option<&ContentStore>,
) -> Result<ResolvedManifest, RegistryError> {
    let shown = image.to_string();
    let reference = match (&image.digest, &image.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_string(),
    };
    let (mut bytes, mut media_type) = get_manifest(t, image, &reference, &shown).await?;
    let mut digest = Digest::of(&bytes);
    if let Some(want) = &image.digest {
        verify(&shown, want, &bytes)?;
    }
    if is_index(&media_type, &bytes) {
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Other {
            reference: shown.clone(),
            reason: format!("invalid image index: {e}"),
        })?;
        let Some(child) = choose(&index, platform) else {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(platform_name))
                .collect();
            return Err(RegistryError::Other {
                reference: shown,
                reason: format!(
                    "no manifest for platform {} (the index has: {})",
                    platform_name(platform),
                    have.join(", ")
                ),
            });
        };
        let child_shown = at(image, &child.digest);
        (bytes, media_type) = get_manifest(t, image, child.digest.as_str(), &child_shown).await?;
        verify(&child_shown, &child.digest, &bytes)?;
        digest = child.digest.clone();
        if is_index(&media_type, &bytes) {
            return Err(RegistryError::Other {
                reference: child_shown,
                reason: "nested image indexes are not supported".into(),
            });
        }
    }
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Other {
        reference: shown.clone(),
        reason: format!("invalid manifest ({media_type}): {e}"),
    })?;
    if manifest.schema_version != 2 {
        return Err(RegistryError::Other {
            reference: shown,
            reason: format!(
                "unsupported manifest schema version {}",
                manifest.schema_version
            ),
        });
    }
    let config_digest = &manifest.config.digest;
    let cached = store
        .filter(|s| s.has(config_digest))
        .and_then(|s| s.read(config_digest).ok())
        .filter(|b| Digest::of(b) == *config_digest);
    let config_bytes = match cached {
        Some(b) => b,
        None => {
            let b = get_blob_bytes(t, image, config_digest).await?;
            if let Some(s) = store {
                s.write_bytes(&b).map_err(|e| store_error(&shown, e))?;
            }
            b
        }
    };
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Other {
            reference: at(image, &manifest.config.digest),
            reason: format!("invalid image config: {e}"),
        })?;
    Ok(ResolvedManifest {
        digest,
        manifest,
        config_bytes,
        config,
    })
}

/// See `RegistryClient::fetch_manifest`.
pub(crate) async fn fetch_manifest(
    t: &Transport,
    image: &ImageRef,
) -> Result<(Vec<u8>, String, Digest), RegistryError> {
    let shown = image.to_string();
    let reference = match (&image.digest, &image.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_string(),
    };
    let (bytes, media_type) = get_manifest(t, image, &reference, &shown).await?;
    if let Some(want) = &image.digest {
        verify(&shown, want, &bytes)?;
    }
    let digest = Digest::of(&bytes);
    Ok((bytes, media_type, digest))
}

/// GETs a small blob (a config) into memory, verified.
pub(crate) async fn get_blob_bytes(
    t: &Transport,
    image: &ImageRef,
    digest: &Digest,
) -> Result<Vec<u8>, RegistryError> {
    let shown = at(image, digest);
    let bytes = with_retries(|| async {
        let resp = t
            .send(image, &pull_scope(image), |c, base| {
                Ok(c.get(Transport::url(base, image, &format!("blobs/{digest}"))?))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(error_for(resp, &shown).await);
        }
        read_limited(resp, &shown).await
    })
    .await?;
    verify(&shown, digest, &bytes)?;
    Ok(bytes)
}

fn store_error(shown: &str, e: StoreError) -> RegistryError {
    match e {
        StoreError::DigestMismatch { expected, actual } => RegistryError::DigestMismatch {
            reference: shown.to_string(),
            expected,
            actual,
        },
        e => RegistryError::Other {
            reference: shown.to_string(),
            reason: format!("content store: {e}"),
        },
    }
}

/// See `RegistryClient::fetch_blob`.
pub(crate) async fn fetch_blob(
    t: &Transport,
    image: &ImageRef,
    blob: &Descriptor,
    store: &ContentStore,
) -> Result<(), RegistryError> {
    if store.has(&blob.digest) {
        return Ok(());
    }
    let shown = at(image, &blob.digest);
    with_retries(|| async {
        let resp = t
            .send(image, &pull_scope(image), |c, base| {
                Ok(c.get(Transport::url(
                    base,
                    image,
                    &format!("blobs/{}", blob.digest),
                )?))
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(error_for(resp, &shown).await);
        }
        let mut w = store.writer().map_err(|e| store_error(&shown, e))?;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| request_error(&e, &shown))?;
            w.write_all(&chunk).map_err(|e| RegistryError::Other {
                reference: shown.clone(),
                reason: format!("writing to the content store: {e}"),
            })?;
        }
        let (_, size) = w
            .commit(Some(&blob.digest))
            .map_err(|e| store_error(&shown, e))?;
        if size != blob.size {
            tracing::warn!(
                "{shown}: descriptor says {} bytes, blob has {size}",
                blob.size
            );
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(String::from),
            }),
            annotations: None,
        }
    }

    #[test]
    fn chooses_platform_variant_aware() {
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                desc("arm", Some("v6"), 0),
                desc("arm", Some("v7"), 1),
                desc("arm64", Some("v8"), 2),
                desc("amd64", Some("v3"), 3),
                desc("amd64", None, 4),
            ],
            annotations: None,
        };
        let p = |a: &str, v: Option<&str>| Platform {
            architecture: a.into(),
            os: "linux".into(),
            variant: v.map(String::from),
        };
        let pick = |a, v| choose(&index, &p(a, v)).map(|d| d.digest.clone());
        assert_eq!(pick("amd64", None), Some(Digest::of(&[4])));
        assert_eq!(pick("arm64", None), Some(Digest::of(&[2])));
        assert_eq!(pick("arm", None), Some(Digest::of(&[1])));
        assert_eq!(pick("arm", Some("v6")), Some(Digest::of(&[0])));
        assert_eq!(pick("s390x", None), None);
    }
}
