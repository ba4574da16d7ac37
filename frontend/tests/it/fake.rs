//! A fake image resolver: every reference resolves to a small busybox-like image, except
//! names containing `missing`. Counts calls per reference.

use std::cell::RefCell;
use std::collections::BTreeMap;

use kiln_frontend::ImageResolver;
use kiln_ir::{LayerDesc, ResolvedImage};
use kiln_oci::{ContainerConfig, Digest, HistoryEntry, ImageConfig, RootFs};

#[derive(Default)]
pub(crate) struct FakeResolver {
    pub(crate) calls: RefCell<BTreeMap<String, usize>>,
}

/// `busybox` → `docker.io/library/busybox:latest`, as the binary's resolver normalises.
fn normalise(r: &str) -> String {
    let (name, suffix) = match r.find('@') {
        Some(i) => (&r[..i], &r[i..]),
        None => (r, ""),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let name = if suffix.is_empty() && !last.contains(':') {
        format!("{name}:latest")
    } else {
        name.to_string()
    };
    let first = name.split('/').next().unwrap_or("");
    let name = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if !(first.contains('.') || first.contains(':') || first == "localhost") {
        format!("docker.io/{name}")
    } else {
        name
    };
    format!("{name}{suffix}")
}

impl ImageResolver for FakeResolver {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, String> {
        *self
            .calls
            .borrow_mut()
            .entry(reference.to_string())
            .or_default() += 1;
        if reference.contains("missing") {
            return Err("not found".into());
        }
        let mut config = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        if !reference.contains("nopath") {
            config.env = Some(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()]);
        }
        if reference.contains("withwd") {
            config.working_dir = Some("/srv".into());
            config.user = Some("nobody".into());
        }
        let layer = Digest::of(reference.as_bytes());
        Ok(ResolvedImage {
            reference: normalise(reference),
            manifest_digest: Digest::of(format!("manifest {reference}").as_bytes()),
            config_digest: Digest::of(format!("config {reference}").as_bytes()),
            config: ImageConfig {
                created: Some("2024-01-01T00:00:00Z".into()),
                architecture: "amd64".into(),
                os: "linux".into(),
                config,
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![layer.clone()],
                },
                history: vec![HistoryEntry {
                    created_by: Some("base".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            layers: vec![LayerDesc {
                digest: layer,
                size: 1,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
        })
    }
}
