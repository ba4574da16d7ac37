//! Arbitrary text as a Dockerfile: `parse` returns an AST or an error (never panics, never
//! hangs), an error's span lies inside the text, and a parsed file lowers (with a resolver
//! that gives every reference the same small image) to a graph or an error, never a panic.
#![no_main]

use kiln_frontend::{build_graph, parse, ImageResolver, LowerOptions};
use kiln_ir::ResolvedImage;
use kiln_oci::{ContainerConfig, Digest, ImageConfig, RootFs};
use libfuzzer_sys::fuzz_target;

struct FixedResolver;

impl ImageResolver for FixedResolver {
    fn resolve(&self, reference: &str) -> Result<ResolvedImage, String> {
        if reference.contains("missing") {
            return Err(format!("{reference}: not found"));
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            manifest_digest: Digest::of(reference.as_bytes()),
            config_digest: Digest::of(reference.as_bytes()),
            config: ImageConfig {
                architecture: "amd64".into(),
                os: "linux".into(),
                config: ContainerConfig {
                    env: Some(vec!["PATH=/usr/bin:/bin".into()]),
                    cmd: Some(vec!["sh".into()]),
                    on_build: reference
                        .contains("onbuild")
                        .then(|| vec!["RUN echo from-onbuild".into()]),
                    ..Default::default()
                },
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![],
                },
                ..Default::default()
            },
            layers: vec![],
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(_) => {
            let opts = LowerOptions::default();
            if let Err(e) = build_graph(text, &opts, &FixedResolver) {
                check_span(text, e.span().map(|s| (s.start, s.end)));
                let _ = (e.to_string(), e.help());
            }
        }
        Err(e) => {
            check_span(text, e.span().map(|s| (s.start, s.end)));
            let _ = (e.to_string(), e.help());
        }
    }
});

fn check_span(text: &str, span: Option<(usize, usize)>) {
    if let Some((start, end)) = span {
        assert!(
            start <= end && end <= text.len(),
            "span {start}..{end} outside a {}-byte text",
            text.len()
        );
        let _ = kiln_frontend::line_col(text, start);
    }
}
