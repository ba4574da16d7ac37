//! Image names as the outputs spell them.

use kiln_oci::ImageRef;

use crate::ExportError;

/// Parses a name given by the user (`app:1`, `127.0.0.1:5000/a/b`).
pub(crate) fn parse(name: &str) -> Result<ImageRef, ExportError> {
    name.parse::<ImageRef>()
        .map_err(|e| ExportError::InvalidName {
            name: name.to_string(),
            reason: e.reason,
        })
}

/// The tag a name carries (`latest` when it names none).
pub(crate) fn tag(r: &ImageRef) -> String {
    r.tag.clone().unwrap_or_else(|| "latest".to_string())
}

/// Docker's familiar `repo:tag` for `manifest.json`'s `RepoTags` (`docker.io/library/app:1`
/// → `app:1`); `None` for digest-only names, which Docker cannot tag.
pub(crate) fn repo_tag(r: &ImageRef) -> Option<String> {
    let t = r.tag.as_ref()?;
    let bare = ImageRef {
        tag: Some(t.clone()),
        digest: None,
        ..r.clone()
    };
    Some(bare.familiar())
}
