//! Pushing: blob existence checks, uploads (monolithic, streamed from the file), cross-repo
//! mounts and manifests.

use std::path::Path;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use super::transport::{error_for, with_retries, Transport};
use super::RegistryError;
use crate::reference::ImageRef;
use crate::{Descriptor, Digest};

fn push_scopes(image: &ImageRef, from: Option<&str>) -> Vec<String> {
    let mut s = vec![format!("repository:{}:pull,push", image.repository)];
    if let Some(from) = from {
        s.push(format!("repository:{from}:pull"));
    }
    s
}

fn at(image: &ImageRef, digest: &Digest) -> String {
    format!("{}/{}@{digest}", image.registry, image.repository)
}

/// See `RegistryClient::blob_exists`.
pub(crate) async fn blob_exists(
    t: &Transport,
    image: &ImageRef,
    digest: &Digest,
) -> Result<bool, RegistryError> {
    let shown = at(image, digest);
    with_retries(|| async {
        let resp = t
            .send(image, &push_scopes(image, None), |c, base| {
                Ok(c.head(Transport::url(base, image, &format!("blobs/{digest}"))?))
            })
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_for(resp, &shown).await),
        }
    })
    .await
}

/// The upload URL from a `Location` header, which may be relative to the registry.
fn location(resp: &reqwest::Response, shown: &str) -> Result<Url, RegistryError> {
    let other = |reason: String| RegistryError::Other {
        reference: shown.to_string(),
        reason,
    };
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| other("upload response has no Location header".into()))?;
    resp.url()
        .join(loc)
        .map_err(|e| other(format!("bad upload Location {loc:?}: {e}")))
}

/// See `RegistryClient::push_blob`.
pub(crate) async fn push_blob(
    t: &Transport,
    image: &ImageRef,
    blob: &Descriptor,
    path: &Path,
    from: Option<&str>,
) -> Result<(), RegistryError> {
    let shown = at(image, &blob.digest);
    if blob_exists(t, image, &blob.digest).await? {
        tracing::debug!("{shown}: already present");
        return Ok(());
    }
    let size = std::fs::metadata(path)
        .map_err(|e| RegistryError::Other {
            reference: shown.clone(),
            reason: format!("{}: {e}", path.display()),
        })?
        .len();
    let scopes = push_scopes(image, from);
    with_retries(|| async {
        // POST starts an upload session, or mounts the blob from another repository.
        let resp = t
            .send(image, &scopes, |c, base| {
                let mut url = Transport::url(base, image, "blobs/uploads/")?;
                if let Some(from) = from {
                    url.query_pairs_mut()
                        .append_pair("mount", blob.digest.as_str())
                        .append_pair("from", from);
                }
                Ok(c.post(url).header(CONTENT_LENGTH, 0))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED if from.is_some() => {
                tracing::debug!("{shown}: mounted from {from:?}");
                return Ok(());
            }
            StatusCode::ACCEPTED => {}
            _ => return Err(error_for(resp, &shown).await),
        }
        let mut url = location(&resp, &shown)?;
        url.query_pairs_mut()
            .append_pair("digest", blob.digest.as_str());
        let resp = t
            .send(image, &scopes, |c, _| {
                let file = std::fs::File::open(path).map_err(|e| RegistryError::Other {
                    reference: shown.clone(),
                    reason: format!("{}: {e}", path.display()),
                })?;
                Ok(c.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(tokio::fs::File::from_std(file)))
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(error_for(resp, &shown).await);
        }
        Ok(())
    })
    .await
}

/// See `RegistryClient::push_manifest`.
pub(crate) async fn push_manifest(
    t: &Transport,
    image: &ImageRef,
    media_type: &str,
    bytes: &[u8],
) -> Result<Digest, RegistryError> {
    let digest = Digest::of(bytes);
    let reference = match (&image.tag, &image.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".into(),
    };
    let shown = image.to_string();
    if let Some(d) = &image.digest {
        if d != &digest {
            return Err(RegistryError::DigestMismatch {
                reference: shown,
                expected: d.clone(),
                actual: digest,
            });
        }
    }
    with_retries(|| async {
        let resp = t
            .send(image, &push_scopes(image, None), |c, base| {
                Ok(c.put(Transport::url(
                    base,
                    image,
                    &format!("manifests/{reference}"),
                )?)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec()))
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(error_for(resp, &shown).await);
        }
        Ok(())
    })
    .await?;
    Ok(digest)
}
